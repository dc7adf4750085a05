#!/usr/bin/env python3
"""Reads a Strata archive (a local folder laid out as Hive-partitioned Parquet)
the way a user's query engine would, and prints one JSON summary on stdout.

    check_archive.py ROOT [--engine duckdb|pyarrow] [--rows OUT.jsonl]

ROOT is the archive prefix: the folder that holds `station=<S>/` directories
(and `_strata/commits/`). The summary holds row counts, distinct identities,
the column types the engine sees, the Parquet physical schema and codecs,
layout violations (a file outside the documented key layout, a row whose
timestamp is outside its path's date/hour, a seq outside the file name's
range), the commit records (a committed file that tier-2 compaction merged
and deleted counts as replaced, not missing), and a digest of every row in canonical form, so
the two engines can be compared with each other. With --rows every row is
also written as one JSON line, sorted by (station, seq):

    {"station", "seq", "timestamp_us", "id", "subject",
     "headers": [[name, value], ...], "payload_b64", "date", "hour"}
"""

import argparse
import base64
import datetime as dt
import glob
import hashlib
import json
import os
import re
import sys

KEY_RE = re.compile(
    r"^station=(?P<station>[A-Za-z0-9_.\-]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


def data_files(root):
    files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
    return [f for f in files if "/_strata/" not in f.replace(os.sep, "/")]


def hour_string(v):
    return "%02d" % int(v)


def date_string(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.strftime("%Y-%m-%d")
    return str(v)


def canonical(row):
    return json.dumps(
        [
            row["station"],
            row["seq"],
            row["timestamp_us"],
            row["id"],
            row["subject"],
            row["headers"],
            row["payload_b64"],
            row["date"],
            row["hour"],
        ],
        separators=(",", ":"),
        ensure_ascii=True,
    )


def rows_duckdb(root, files):
    import duckdb

    con = duckdb.connect()
    pattern = os.path.join(root, "**", "*.parquet")
    rel = con.sql(
        "SELECT * FROM read_parquet(?, hive_partitioning = true, filename = true)",
        params=[pattern],
    )
    columns = {name: str(t) for name, t in zip(rel.columns, rel.types)}
    cur = con.execute(
        """
        SELECT station, seq, epoch_us("timestamp") AS ts, id, subject, headers, payload,
               CAST("date" AS VARCHAR) AS d, CAST("hour" AS VARCHAR) AS h, filename
        FROM read_parquet(?, hive_partitioning = true, filename = true)
        """,
        [pattern],
    )
    out = []
    for station, seq, ts, id_, subject, headers, payload, d, h, fname in cur.fetchall():
        out.append(
            {
                "station": station,
                "seq": seq,
                "timestamp_us": ts,
                "id": id_,
                "subject": subject,
                "headers": [[x["name"], x["value"]] for x in (headers or [])],
                "payload_b64": base64.b64encode(bytes(payload) if payload is not None else b"").decode(),
                "payload_null": payload is None,
                "date": date_string(d),
                "hour": hour_string(h),
                "file": fname,
            }
        )
    columns.pop("filename", None)
    return columns, out


def rows_pyarrow(root, files):
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    dataset = ds.dataset(
        files,
        format="parquet",
        partitioning=ds.partitioning(flavor="hive"),
        partition_base_dir=root,
    )
    columns = {f.name: str(f.type) for f in dataset.schema}
    out = []
    # Each file through pq.read_table too: a plain reader with no dataset logic.
    for f in files:
        t = pq.read_table(f)
        m = KEY_RE.match(os.path.relpath(f, root).replace(os.sep, "/"))
        # A file outside the layout is reported by layout_violations().
        station = m.group("station") if m else ""
        d = m.group("date") if m else ""
        h = m.group("hour") if m else ""
        ts_col = t.column("timestamp").cast("int64").to_pylist()
        cols = {name: t.column(name).to_pylist() for name in ("seq", "id", "subject", "headers", "payload")}
        for i in range(t.num_rows):
            payload = cols["payload"][i]
            out.append(
                {
                    "station": station,
                    "seq": cols["seq"][i],
                    "timestamp_us": ts_col[i],
                    "id": cols["id"][i],
                    "subject": cols["subject"][i],
                    "headers": [[x["name"], x["value"]] for x in (cols["headers"][i] or [])],
                    "payload_b64": base64.b64encode(payload if payload is not None else b"").decode(),
                    "payload_null": payload is None,
                    "date": d,
                    "hour": h,
                    "file": f,
                }
            )
    # The dataset view must agree with the per-file reads on counts.
    table = dataset.to_table(columns=["seq", "station", "date", "hour"])
    if table.num_rows != len(out):
        raise SystemExit(
            "pyarrow dataset saw %d rows but the files hold %d" % (table.num_rows, len(out))
        )
    return columns, out


def physical(files):
    import pyarrow.parquet as pq

    if not files:
        return {}, [], {}
    schema = pq.read_schema(files[0])
    codecs = set()
    stats_missing = []
    kv = {}
    for f in files:
        md = pq.ParquetFile(f).metadata
        for rg in range(md.num_row_groups):
            for c in range(md.num_columns):
                col = md.row_group(rg).column(c)
                codecs.add(col.compression)
                if col.path_in_schema == "seq" and (col.statistics is None or not col.statistics.has_min_max):
                    stats_missing.append(f)
        if not kv and md.metadata:
            kv = {k.decode(errors="replace"): v.decode(errors="replace")[:200] for k, v in md.metadata.items()
                  if k != b"ARROW:schema"}
    return {f.name: str(f.type) for f in schema}, sorted(codecs), {"seq_stats_missing": stats_missing, "kv": kv}


def layout_violations(root, files, rows):
    bad = []
    ranges = {}
    for f in files:
        rel = os.path.relpath(f, root).replace(os.sep, "/")
        m = KEY_RE.match(rel)
        if not m:
            bad.append("file outside the key layout: " + rel)
            continue
        ranges[f] = (int(m.group("first")), int(m.group("last")), m.group("date"), m.group("hour"))
    for r in rows:
        rng = ranges.get(r["file"])
        if rng is None:
            continue
        first, last, d, h = rng
        if not first <= r["seq"] <= last:
            bad.append("seq %s outside the name range of %s" % (r["seq"], r["file"]))
        t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=r["timestamp_us"])
        if t.strftime("%Y-%m-%d") != d or t.strftime("%H") != h:
            bad.append(
                "seq %s at %s is in partition date=%s/hour=%s" % (r["seq"], t.isoformat(), d, h)
            )
        if r["date"] != d or r["hour"] != h:
            bad.append("engine reports date=%s hour=%s for a file in date=%s/hour=%s" % (r["date"], r["hour"], d, h))
        if r["payload_null"]:
            bad.append("seq %s has a null payload" % r["seq"])
    return bad[:50]


def replaced_tails(root, by_tail):
    """Tails (station=/date=/hour=/file) of data files a tier-2 merge replaced
    whose rows a present file holds, following merges of merged files."""
    paths = glob.glob(os.path.join(root, "_strata", "replacements", "**", "*.json"), recursive=True)
    merged_of = {}
    for p in paths:
        with open(p, "rb") as fh:
            rec = json.loads(fh.read())
        merged = "/".join(str(rec["merged"]["key"]).split("/")[-4:])
        for cf in rec.get("replaced", []):
            merged_of.setdefault("/".join(str(cf["key"]).split("/")[-4:]), []).append(merged)
    out = set()
    for tail in merged_of:
        seen, todo = set(), [tail]
        while todo:
            for m in merged_of.get(todo.pop(), []):
                if m in seen or m == tail:
                    continue
                seen.add(m)
                if m in by_tail:
                    out.add(tail)
                    todo = []
                    break
                todo.append(m)
    return out


def commits(root, files):
    paths = sorted(glob.glob(os.path.join(root, "_strata", "commits", "**", "*"), recursive=True))
    paths = [p for p in paths if os.path.isfile(p)]
    report = {"count": len(paths), "files": 0, "rows": 0, "unparsed": [], "missing_keys": [], "sha_mismatch": [],
              "replaced_keys": 0}
    by_tail = {}
    for f in files:
        tail = "/".join(os.path.relpath(f, root).replace(os.sep, "/").split("/")[-4:])
        by_tail[tail] = f
    replaced = replaced_tails(root, by_tail)
    for p in paths:
        try:
            with open(p, "rb") as fh:
                rec = json.loads(fh.read())
            for cf in rec.get("files", []):
                report["files"] += 1
                report["rows"] += int(cf.get("rows", 0))
                tail = "/".join(str(cf.get("key", "")).split("/")[-4:])
                local = by_tail.get(tail)
                if local is None and tail in replaced:
                    # Merged by tier-2 compaction: a present file holds its rows.
                    report["replaced_keys"] += 1
                elif local is None:
                    report["missing_keys"].append(cf.get("key"))
                elif cf.get("sha256"):
                    with open(local, "rb") as fh:
                        if hashlib.sha256(fh.read()).hexdigest() != cf["sha256"]:
                            report["sha_mismatch"].append(cf.get("key"))
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            report["unparsed"].append("%s: %s" % (os.path.relpath(p, root), e))
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--engine", choices=["duckdb", "pyarrow"], default="duckdb")
    ap.add_argument("--rows")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    files = data_files(root)
    if files:
        if args.engine == "duckdb":
            columns, rows = rows_duckdb(root, files)
        else:
            columns, rows = rows_pyarrow(root, files)
    else:
        columns, rows = {}, []
    rows.sort(key=lambda r: (r["station"] or "", r["seq"]))
    schema, codecs, meta = physical(files)
    digest = hashlib.sha256()
    stations = {}
    partitions = {}
    for r in rows:
        digest.update(canonical(r).encode())
        digest.update(b"\n")
        s = stations.setdefault(r["station"], {"rows": 0, "min_seq": r["seq"], "max_seq": r["seq"]})
        s["rows"] += 1
        s["min_seq"] = min(s["min_seq"], r["seq"])
        s["max_seq"] = max(s["max_seq"], r["seq"])
        key = (r["station"], r["date"], r["hour"])
        partitions[key] = partitions.get(key, 0) + 1
    summary = {
        "engine": args.engine,
        "files": len(files),
        "rows": len(rows),
        "distinct_station_seq": len({(r["station"], r["seq"]) for r in rows}),
        "columns": columns,
        "parquet_schema": schema,
        "codecs": codecs,
        "seq_stats_missing": len(meta.get("seq_stats_missing", [])) if meta else 0,
        "stations": stations,
        "partitions": [[k[0], k[1], k[2], v] for k, v in sorted(partitions.items())],
        "layout_violations": layout_violations(root, files, rows),
        "commits": commits(root, files),
        "digest": digest.hexdigest(),
    }
    if args.rows:
        with open(args.rows, "w") as fh:
            for r in rows:
                r = dict(r)
                r.pop("file", None)
                r.pop("payload_null", None)
                fh.write(json.dumps(r, ensure_ascii=True) + "\n")
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
