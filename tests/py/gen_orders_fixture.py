#!/usr/bin/env python3
"""Regenerates fixtures/e2e/orders.ndjson (deterministic): 200 messages of
station `orders` over five UTC hours across a date change, with ids, subjects,
repeated and mixed-case header names, unicode, empty payloads, a few
timestamps given with a non-UTC offset, and binary payloads as payload_base64.

    python3 tests/py/gen_orders_fixture.py > fixtures/e2e/orders.ndjson
"""

import base64
import datetime as dt
import json
import random
import sys

rng = random.Random(20261124)
start = dt.datetime(2026, 11, 24, 21, 3, 0, 123456, tzinfo=dt.timezone.utc)
subjects = ["orders.created", "orders.updated", "orders.cancelled", "orders.eu.created"]
t = start
for seq in range(1, 201):
    # ~1.5 min apart on average: 200 messages span ~5 hours (21:00 .. 02:00 next day).
    t = t + dt.timedelta(seconds=rng.randint(30, 150), microseconds=rng.randint(0, 999999))
    line = {"station": "orders", "seq": seq}
    if seq % 25 == 0:
        # Same instant written with a +02:00 offset: the archive keeps UTC.
        local = t.astimezone(dt.timezone(dt.timedelta(hours=2)))
        line["timestamp"] = local.isoformat(timespec="microseconds")
    else:
        line["timestamp"] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if seq % 10 != 3:
        line["id"] = "m-%d" % seq
    if seq % 13 != 5:
        line["subject"] = subjects[seq % len(subjects)]
    headers = []
    if seq % 4 != 0:
        headers.append(["Content-Type", "application/json"])
    if seq % 3 == 0:
        # Repeated names, and the same name in another case, in a deliberate order.
        headers += [["X-Trace", "t-%d-a" % seq], ["x-trace", "t-%d-b" % seq], ["X-Trace", "t-%d-c" % seq]]
    if seq % 7 == 0:
        headers.append(["Note", "naïve café ☕ %d" % seq])
    line["headers"] = headers
    if seq % 17 == 0:
        raw = bytes([0, 255, 1, 254]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))) + b"\x00"
        line["payload_base64"] = base64.b64encode(raw).decode()
    elif seq % 29 == 0:
        line["payload"] = ""
    else:
        body = {"order": seq, "amount": rng.randint(1, 100000) / 100, "customer": "c-%d" % rng.randint(1, 40),
                "items": [rng.choice(["apple", "pear", "Äpfel", "梨"]) for _ in range(rng.randint(1, 4))]}
        line["payload"] = json.dumps(body, ensure_ascii=False)
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
