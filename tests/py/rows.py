"""One archived row in the form the Rust tests compare (`tests/support/python.rs`,
`Row`): the row's fields, the payload in base64, and the UTC date and hour of its
timestamp (the partition a reader of the Iceberg table derives)."""

import base64
import datetime as dt
import json
import sys

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def row(station, seq, timestamp_us, id_, subject, headers, payload):
    """The row as a JSON-ready dict; `headers` is a list of {name, value}."""
    t = EPOCH + dt.timedelta(microseconds=timestamp_us)
    return {
        "station": station,
        "seq": seq,
        "timestamp_us": timestamp_us,
        "id": id_,
        "subject": subject,
        "headers": [[h["name"], h["value"]] for h in (headers or [])],
        "payload_b64": base64.b64encode(bytes(payload) if payload is not None else b"").decode(),
        "date": t.strftime("%Y-%m-%d"),
        "hour": t.strftime("%H"),
    }


def distinct_station_seq(rows):
    """How many distinct (station, seq) identities `rows` hold."""
    return len({(r["station"], r["seq"]) for r in rows})


def emit(summary, rows, rows_path):
    """Writes `rows` one JSON object per line to `rows_path` (when given), then
    `summary` as one JSON line on standard output."""
    if rows_path:
        with open(rows_path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    json.dump(summary, sys.stdout)
    print()
