#!/usr/bin/env python3
"""The pyarrow side of benches/flush_vs_pyarrow.sh (a benchmark, not a test).

  generate OUT.ndjson TABLE.arrow N SEED   N order events as NDJSON for `strata ingest`, and the
                                           same rows as an Arrow table (Strata's schema) in an
                                           Arrow IPC file
  encode TABLE.arrow OUT.parquet           times pq.write_table of that table, one thread, zstd 3,
                                           pyarrow's defaults otherwise; prints {"encode_seconds": S}
  check STRATA_ARCHIVE TABLE.arrow         pyarrow reads Strata's files back equal to the table

Order events: ~300 B JSON payloads (order id, customer, 1-3 line items, totals, address), a
seq, a timestamp ~1 ms apart, an id, a subject `orders.<kind>` and a `Content-Type` header. Everything is derived from SEED, so every run encodes the same rows.
"""

import json
import random
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

# Strata's data file schema, as the encoding benchmark beside this file spells it.
from parquet_vs_pyarrow import HEADER_TYPE, SCHEMA

T0_MICROS = 1_795_514_400_000_000  # 2026-11-24T10:00:00Z
KINDS = ["created", "paid", "packed", "shipped", "delivered", "cancelled"]
SKUS = [f"SKU-{i:05d}" for i in range(2000)]
CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Salem", "Dover"]
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "SE"]



def rfc3339(micros):
    secs, us = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{us:06d}Z"


def events(n, seed):
    r = random.Random(seed)
    ts = T0_MICROS
    for seq in range(1, n + 1):
        ts += r.randint(200, 1800)
        kind = r.choice(KINDS)
        order = f"ORD-{r.randrange(10**9):09d}"
        items = [{"sku": r.choice(SKUS), "qty": r.randint(1, 4),
                  "price": round(r.uniform(2, 300), 2)} for _ in range(r.randint(1, 3))]
        body = {"order_id": order, "event": kind,
                "placed_at": rfc3339(ts - r.randint(0, 5_000_000)),
                "channel": r.choice(["web", "ios", "android", "pos"]),
                "customer": f"c_{r.randrange(10**6):06d}",
                "items": items,
                "total": round(sum(i["qty"] * i["price"] for i in items), 2),
                "currency": r.choice(["EUR", "USD", "GBP"]),
                "ship_to": {"city": r.choice(CITIES), "country": r.choice(COUNTRIES)}}
        payload = json.dumps(body, separators=(",", ":"))
        msg_id = f"{order}-{kind}-{seq}"
        headers = [["Content-Type", "application/json"]]
        yield seq, ts, msg_id, f"orders.{kind}", headers, payload


def generate(ndjson_path, table_path, n, seed):
    cols = [[], [], [], [], [], []]
    payload_bytes = 0
    with open(ndjson_path, "w") as f:
        for seq, ts, msg_id, subject, headers, payload in events(n, seed):
            f.write(json.dumps({"station": "orders", "seq": seq, "timestamp": rfc3339(ts),
                                "id": msg_id, "subject": subject, "headers": headers,
                                "payload": payload}, separators=(",", ":")) + "\n")
            for col, v in zip(cols, (seq, ts, msg_id, subject,
                                     [{"name": k, "value": v} for k, v in headers],
                                     payload.encode())):
                col.append(v)
            payload_bytes += len(payload)
    table = pa.Table.from_arrays([
        pa.array(cols[0], pa.int64()),
        pa.array(cols[1], pa.timestamp("us", tz="UTC")),
        pa.array(cols[2], pa.string()),
        pa.array(cols[3], pa.string()),
        pa.array(cols[4], HEADER_TYPE),
        pa.array(cols[5], pa.binary()),
    ], schema=SCHEMA)
    with pa.OSFile(table_path, "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as w:
        w.write_table(table)
    print(json.dumps({"messages": n, "payload_bytes": payload_bytes}))


def load(table_path):
    with pa.memory_map(table_path) as source:
        return pa.ipc.open_file(source).read_all()


def encode(table_path, out_path):
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    table = load(table_path)
    table = table.combine_chunks()
    times = []
    # The first call is what a script pays (the memory pool grows, pages are
    # touched); the best of two more is pyarrow warm, its strongest figure.
    for _ in range(3):
        sink = pa.BufferOutputStream()
        start = time.perf_counter()
        pq.write_table(table, sink, compression="zstd", compression_level=3)
        times.append(time.perf_counter() - start)
    data = sink.getvalue()
    with open(out_path, "wb") as f:
        f.write(data)
    print(json.dumps({"encode_seconds": round(times[0], 6),
                      "warm_seconds": round(min(times[1:]), 6),
                      "file_bytes": data.size}))


def check(archive, table_path):
    table = load(table_path)
    files = sorted(p for p in __import__("glob").glob(f"{archive}/station=orders/**/*.parquet",
                                                      recursive=True))
    back = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in files])
    back = back.sort_by("seq")
    assert back.equals(table), "Strata's files do not hold the same rows"
    print(json.dumps({"files": len(files), "rows": back.num_rows,
                      "row_groups": sum(pq.ParquetFile(p).metadata.num_row_groups
                                        for p in files)}))


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "generate":
        generate(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "encode":
        encode(args[0], args[1])
    elif cmd == "check":
        check(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {cmd}: use generate, encode or check")


if __name__ == "__main__":
    main()
