#!/usr/bin/env python3
"""S3 helper for the end-to-end tests, talking to the test's S3-compatible
server (path-style, any credentials, us-east-1). Prints JSON on stdout.

    s3.py create-bucket ENDPOINT BUCKET
    s3.py list ENDPOINT BUCKET PREFIX
    s3.py download ENDPOINT BUCKET PREFIX DEST   # objects under PREFIX into DEST/<key minus PREFIX>
"""

import json
import os
import sys

import boto3
from botocore.config import Config


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="strata-test",
        aws_secret_access_key="strata-test-secret",
        config=Config(s3={"addressing_style": "path"}),
    )


def keys(c, bucket, prefix):
    out = []
    token = None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        resp = c.list_objects_v2(**kw)
        out.extend(o["Key"] for o in resp.get("Contents", []))
        if not resp.get("IsTruncated"):
            return out
        token = resp["NextContinuationToken"]


def main():
    cmd, endpoint = sys.argv[1], sys.argv[2]
    c = client(endpoint)
    if cmd == "create-bucket":
        c.create_bucket(Bucket=sys.argv[3])
        print(json.dumps({"created": sys.argv[3]}))
    elif cmd == "list":
        print(json.dumps({"keys": keys(c, sys.argv[3], sys.argv[4])}))
    elif cmd == "download":
        bucket, prefix, dest = sys.argv[3], sys.argv[4], sys.argv[5]
        got = keys(c, bucket, prefix)
        for k in got:
            rel = k[len(prefix):].lstrip("/")
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            c.download_file(bucket, k, path)
        print(json.dumps({"keys": got}))
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
