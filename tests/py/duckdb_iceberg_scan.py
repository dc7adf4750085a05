#!/usr/bin/env python3
"""Reads Strata's Iceberg table the way a DuckDB user would:
`iceberg_scan('<metadata url>')` with the iceberg extension. Prints one JSON
summary on stdout.

    duckdb_iceberg_scan.py METADATA_URL [--s3-endpoint URL] [--rows OUT.jsonl]

Runs in the virtualenv scripts/test.sh makes for it (target/venv-duckdb-iceberg):
a DuckDB with the PyPI packages duckdb-extension-{iceberg,avro,httpfs} of the
same version, loaded from their files (extensions.duckdb.org is not needed).
METADATA_URL is what `strata ls --iceberg` prints (file:// or s3://). With
--s3-endpoint, S3 goes to that endpoint (moto) with the test credentials, path
style, plain HTTP. The summary: DuckDB's version, the extensions' versions,
the columns iceberg_scan sees with their types, the rows read and the distinct
(station, seq) among them. With --rows every row is written as one JSON line in
the form of check_archive.py (station, seq, timestamp_us, id, subject, headers,
payload_b64, date, hour), sorted by (station, seq).
"""

import argparse
import glob
import os
import sys

import duckdb

from rows import distinct_station_seq, emit, row

EXTENSIONS = ("avro", "httpfs", "iceberg")


def connect():
    """A connection with the extensions loaded from their PyPI packages."""
    con = duckdb.connect()
    for name in EXTENSIONS:
        package = __import__("duckdb_extension_" + name)
        pattern = os.path.join(os.path.dirname(package.__file__), "extensions", "*", name + ".duckdb_extension")
        files = glob.glob(pattern)
        if len(files) != 1:
            sys.exit("expected one %s extension file, found %r" % (name, files))
        con.execute("LOAD '%s'" % files[0].replace("'", "''"))
    return con


def s3_secret(con, endpoint):
    scheme, _, host = endpoint.partition("://")
    con.execute(
        "CREATE SECRET strata_test (TYPE s3, PROVIDER config, KEY_ID 'strata-test', "
        "SECRET 'strata-test-secret', REGION 'us-east-1', ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
        [host.rstrip("/"), scheme == "https"],
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--rows")
    a = ap.parse_args()

    con = connect()
    if a.s3_endpoint:
        s3_secret(con, a.s3_endpoint)
    scan = "iceberg_scan('%s')" % a.url.replace("'", "''")
    columns = {name: typ for name, typ, *_ in con.execute("DESCRIBE SELECT * FROM " + scan).fetchall()}
    # epoch_us: a plain integer, no time zone conversion on the Python side.
    rows = con.execute(
        "SELECT station, seq, epoch_us(timestamp), id, subject, headers, payload FROM "
        + scan
        + " ORDER BY station, seq"
    ).fetchall()
    out = [row(*r) for r in rows]
    versions = dict(
        con.execute(
            "SELECT extension_name, extension_version FROM duckdb_extensions() WHERE extension_name IN ?",
            [list(EXTENSIONS)],
        ).fetchall()
    )
    summary = {
        "duckdb_version": duckdb.__version__,
        "extensions": versions,
        "columns": columns,
        "rows": len(out),
        "distinct_station_seq": distinct_station_seq(out),
    }
    emit(summary, out, a.rows)


if __name__ == "__main__":
    main()
