#!/usr/bin/env python3
"""Reads Strata's Iceberg table the way a pyiceberg user would: StaticTable
from the metadata file, pyarrow FileIO, a full scan, and a scan planned with a
filter on station and time. Prints one JSON summary on stdout.

    iceberg_scan.py METADATA_URL [--s3-endpoint URL] [--rows OUT.jsonl]
                    [--station S --from-us A --to-us B]

METADATA_URL is what `strata ls --iceberg` prints (file:// or s3://). With
--s3-endpoint, S3 goes to that endpoint (moto) with the test credentials.
The summary: the current snapshot (id, operation, summary), the files a full
scan plans, the rows read, the data file entries whose partition values or
seq/timestamp bounds disagree with their key (`bounds_errors`), and with --station the files the filtered scan
plans and the rows it reads. With --rows every row is written as one JSON line
in the form of check_archive.py (station, seq, timestamp_us, id, subject,
headers, payload_b64, date, hour), sorted by (station, seq).
"""

import argparse
import datetime as dt
import re

from rows import distinct_station_seq, emit, row


def load(url, endpoint):
    from pyiceberg.table import StaticTable

    props = {"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO"}
    if endpoint:
        props.update(
            {
                "s3.endpoint": endpoint,
                "s3.access-key-id": "strata-test",
                "s3.secret-access-key": "strata-test-secret",
                "s3.region": "us-east-1",
                "s3.force-virtual-addressing": "false",
            }
        )
    return StaticTable.from_metadata(url, properties=props)


def rows_of(table):
    out = []
    ts = table.column("timestamp").cast("int64").to_pylist()
    cols = {n: table.column(n).to_pylist() for n in ("station", "seq", "id", "subject", "headers", "payload")}
    for i in range(table.num_rows):
        out.append(
            row(
                cols["station"][i],
                cols["seq"][i],
                ts[i],
                cols["id"][i],
                cols["subject"][i],
                cols["headers"][i],
                cols["payload"][i],
            )
        )
    out.sort(key=lambda r: (r["station"], r["seq"]))
    return out


NAME_RE = re.compile(
    r"station=(?P<station>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


def bounds_errors(table):
    """Every data file entry as a reader decodes it: partition values and the
    seq and timestamp bounds must agree with the file's key."""
    errors = []
    files = table.inspect.files().to_pylist()
    for f in files:
        m = NAME_RE.search(f["file_path"])
        if not m:
            errors.append("not a Strata data key: " + f["file_path"])
            continue
        seq = f["readable_metrics"]["seq"]
        ts = f["readable_metrics"]["timestamp"]
        if (seq["lower_bound"], seq["upper_bound"]) != (int(m["first"]), int(m["last"])):
            errors.append("seq bounds %s..%s for %s" % (seq["lower_bound"], seq["upper_bound"], f["file_path"]))
        part = f["partition"]
        hour_start = dt.datetime.strptime(m["date"] + m["hour"], "%Y-%m-%d%H").replace(tzinfo=dt.timezone.utc)
        epoch_hours = int(hour_start.timestamp()) // 3600
        if part["station"] != m["station"] or part["timestamp_hour"] != epoch_hours:
            errors.append("partition %s for %s" % (part, f["file_path"]))
        for b in (ts["lower_bound"], ts["upper_bound"]):
            if not (hour_start <= b < hour_start + dt.timedelta(hours=1)):
                errors.append("timestamp bound %s outside the hour of %s" % (b, f["file_path"]))
        if ts["lower_bound"] > ts["upper_bound"]:
            errors.append("timestamp bounds reversed for " + f["file_path"])
        if seq["value_count"] != f["record_count"] or seq["null_value_count"] != 0:
            errors.append("counts for " + f["file_path"])
    return len(files), errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--rows")
    ap.add_argument("--station")
    ap.add_argument("--from-us", type=int)
    ap.add_argument("--to-us", type=int)
    ap.add_argument(
        "--all-snapshots",
        action="store_true",
        help="also scan every snapshot of the history (its files must still be stored)",
    )
    a = ap.parse_args()

    table = load(a.url, a.s3_endpoint)
    snap = table.current_snapshot()
    scan = table.scan()
    tasks = list(scan.plan_files())
    data = scan.to_arrow()
    rows = rows_of(data)
    summary = {
        "snapshot_id": snap.snapshot_id if snap else None,
        "operation": str(snap.summary.operation.value) if snap and snap.summary else None,
        "summary": dict(snap.summary.additional_properties) if snap and snap.summary else {},
        "snapshots": len(table.metadata.snapshots),
        "files_planned": len(tasks),
        "file_paths": sorted(t.file.file_path for t in tasks),
        "rows": len(rows),
        "distinct_station_seq": distinct_station_seq(rows),
        "schema": str(table.schema()),
    }
    summary["bounds_checked"], summary["bounds_errors"] = bounds_errors(table)
    if a.station:
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

        start = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=a.from_us)
        end = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=a.to_us)
        expr = And(
            EqualTo("station", a.station),
            And(
                GreaterThanOrEqual("timestamp", start.isoformat()),
                LessThanOrEqual("timestamp", end.isoformat()),
            ),
        )
        fscan = table.scan(row_filter=expr)
        summary["filtered_files_planned"] = len(list(fscan.plan_files()))
        frows = rows_of(fscan.to_arrow())
        summary["filtered_rows"] = len(frows)
        summary["filtered_ok"] = all(
            r["station"] == a.station and a.from_us <= r["timestamp_us"] <= a.to_us for r in frows
        )
    if a.all_snapshots:
        history = []
        for s in table.metadata.snapshots:
            srows = rows_of(table.scan(snapshot_id=s.snapshot_id).to_arrow())
            history.append(
                {
                    "snapshot_id": s.snapshot_id,
                    "operation": str(s.summary.operation.value) if s.summary else None,
                    "rows": len(srows),
                    "distinct_station_seq": distinct_station_seq(srows),
                }
            )
        summary["history"] = history
    emit(summary, rows, a.rows)


if __name__ == "__main__":
    main()
