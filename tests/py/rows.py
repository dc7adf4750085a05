"""One archived row in the form the Rust tests compare (`tests/support/python.rs`,
`Row`): the row's fields, the payload in base64, and the UTC date and hour of its
timestamp (the partition a reader of the Iceberg table derives)."""

import base64
import datetime as dt

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
