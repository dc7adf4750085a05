#!/usr/bin/env python3
"""Prints the reliability figures the tests wrote as a Markdown table.

    figures.py [DIR]      # default: target/reliability

Each test of the proof (crash loop, store faults, hostile input, secrets)
writes one JSON line to DIR/<name>.json; this prints one row per test and a
total, the table docs/RELIABILITY.md ends with.
"""

import glob
import json
import os
import sys


def fmt_dict(d):
    return ", ".join("%s %s" % (k, v) for k, v in d.items())


def count(d):
    return sum(v for v in d.values() if isinstance(v, (int, float)))


def row(f):
    t = f["test"]
    faults = ""
    n_faults = 0
    bad = ""
    n_bad = 0
    crashes = f.get("crashes", 0)
    if "crashes_by_kind" in f:
        faults = "%d kill -9 (%s)" % (crashes, fmt_dict(f["crashes_by_kind"]))
    if "faults_injected" in f:
        n_faults = count(f["faults_injected"])
        faults = "%d: %s" % (n_faults, fmt_dict(f["faults_injected"]))
    if "bad_inputs_tried" in f:
        n_bad = f["bad_inputs_tried"]
        bad = "%d (answers: %s; %d slow connections)" % (
            n_bad,
            fmt_dict(f.get("answers_by_status", {})),
            f.get("slow_connections", 0),
        )
    if "secrets" in f:
        n_bad = f.get("failures_provoked", 0)
        bad = "%d failures provoked; %d secrets searched in %d texts (%d bytes): %d found" % (
            n_bad,
            f["secrets"],
            f.get("texts_checked", 0),
            f.get("bytes_checked", 0),
            f.get("leaks", 0),
        )
    notes = []
    for k in (
        "orphaned_multipart_uploads",
        "orphaned_uploads_after_a_lost_multipart_start",
        "false_gap_records",
        "stored_from_rejected",
        "wrong_answers",
        "upload_errors_seen",
        "aborts_retried",
    ):
        if k in f:
            notes.append("%s %s" % (k.replace("_", " "), f[k]))
    if "seed" in f:
        notes.append("seed %s" % f["seed"])
    rss = f.get("peak_rss_bytes")
    return {
        "test": t,
        "crashes": crashes,
        "faults": faults,
        "n_faults": n_faults,
        "bad": bad,
        "n_bad": n_bad,
        "checked": f.get("messages_checked", ""),
        "lost": f.get("lost", ""),
        "duplicated": f.get("duplicated", ""),
        "rss": "%.0f MiB" % (rss / 1048576) if rss else "",
        "rss_bytes": rss or 0,
        "notes": "; ".join(notes),
    }


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "reliability")
    files = sorted(glob.glob(os.path.join(d, "*.json")))
    if not files:
        sys.exit("no figures in %s: run scripts/test.sh first" % d)
    rows = []
    for p in files:
        with open(p) as fh:
            for line in fh:
                if line.strip():
                    rows.append(row(json.loads(line)))
    print(
        "| test | crashes survived / faults injected | bad inputs tried | messages checked "
        "| lost | duplicated | peak RSS | notes |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            "| %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                r["test"],
                r["faults"],
                r["bad"],
                r["checked"],
                r["lost"],
                r["duplicated"],
                r["rss"],
                r["notes"],
            )
        )
    num = lambda k: sum(r[k] for r in rows if isinstance(r[k], (int, float)))
    print(
        "| **total** | %d crashes, %d faults | %d | %d | %d | %d | %s | |"
        % (
            num("crashes"),
            num("n_faults"),
            num("n_bad"),
            num("checked"),
            num("lost"),
            num("duplicated"),
            "%.0f MiB" % (max(r["rss_bytes"] for r in rows) / 1048576),
        )
    )


if __name__ == "__main__":
    main()
