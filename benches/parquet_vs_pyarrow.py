#!/usr/bin/env python3
"""Strata's Parquet encoder against pyarrow on the same messages (a benchmark, not a test).

Generates >= 200 MB (by default) of realistic JSON e-commerce event payloads with a fixed
seed, writes them as messages (seq, timestamp, id, subject, headers, payload) to a record
file, then turns the SAME messages into one zstd Parquet file:

  * with Strata: `cargo run --release --example parquet_encode` (times only
    `columnar::encode_file`: messages in memory -> Parquet bytes in memory, one thread,
    including the conversion of messages to Arrow);
  * with pyarrow: `pq.write_table` of an Arrow table built beforehand (times only the
    Parquet write into an in-memory buffer, one thread), once with pyarrow's defaults
    and once with the settings Strata uses (dictionary only for subject and headers,
    page index on, sorting column declared).

Every encoder runs --repeat times, interleaved, each in a warm process; the best time
counts. It prints payload throughput
(MB = 10^6 bytes of payload per second) and file size, with ratios, checks that pyarrow
reads Strata's file back equal to its own table, and writes the figures as JSON.

Run with a Python that has pyarrow, from the repository root:

  target-venv/bin/python benches/parquet_vs_pyarrow.py
"""

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"STRATA-BENCH-1\n"
T0_MICROS = 1_795_514_400_000_000  # 2026-11-24T10:00:00Z

WORDS = (
    "alpine amber arc atlas aurora basalt beacon birch bloom bolt breeze canyon cedar "
    "cinder cloud cobalt comet coral crest dawn delta drift dune echo ember fern fjord "
    "flint frost glade glow granite harbor haze horizon iris ivory jade juniper lagoon "
    "lark lava linen lotus lunar maple marble meadow mesa mist moss nova oak ocean onyx "
    "opal orbit pebble pine plume prairie quartz rain raven reef ridge river sage shale "
    "sierra slate solar spruce storm summit terra thistle tide timber topaz tundra vale "
    "velvet willow zephyr"
).split()
CATEGORIES = [
    ["home", "kitchen", "cookware"], ["home", "kitchen", "small-appliances"],
    ["home", "furniture", "chairs"], ["home", "bedding", "duvets"],
    ["fashion", "women", "shoes"], ["fashion", "men", "jackets"],
    ["fashion", "kids", "t-shirts"], ["electronics", "audio", "headphones"],
    ["electronics", "computers", "keyboards"], ["electronics", "phones", "cases"],
    ["sports", "outdoor", "tents"], ["sports", "fitness", "yoga"],
    ["beauty", "skincare", "serums"], ["garden", "tools", "pruners"],
    ["toys", "building", "blocks"], ["books", "fiction", "thrillers"],
]
BRANDS = ["Nordhaus", "Keller & Sons", "Lumio", "Vantara", "Oakline", "Brightfield",
          "Casa Verde", "Polaris", "Mirela", "Tessaro", "Fjordic", "Halvorsen"]
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "SE", "PL", "CA", "BR", "JP", "AU"]
LOCALES = {"US": "en-US", "DE": "de-DE", "FR": "fr-FR", "GB": "en-GB", "NL": "nl-NL",
           "ES": "es-ES", "IT": "it-IT", "SE": "sv-SE", "PL": "pl-PL", "CA": "en-CA",
           "BR": "pt-BR", "JP": "ja-JP", "AU": "en-AU"}
CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "SE": "SEK", "PL": "PLN", "BR": "BRL",
            "JP": "JPY", "AU": "AUD"}
CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Clinton",
          "Salem", "Franklin", "Greenville", "Bristol", "Ashland", "Dover", "Milton"]
STREETS = ["Main St", "Oak Ave", "Park Rd", "Lindenstrasse", "Rue de la Paix",
           "High Street", "Kerkstraat", "Calle Mayor", "Via Roma", "Storgatan"]
DEVICES = [("mobile", "iOS", "Safari"), ("mobile", "Android", "Chrome"),
           ("desktop", "Windows", "Chrome"), ("desktop", "macOS", "Safari"),
           ("desktop", "Windows", "Edge"), ("tablet", "iPadOS", "Safari"),
           ("desktop", "Linux", "Firefox")]
EVENT_TYPES = [("page_view", 34), ("product_click", 20), ("search", 10),
               ("add_to_cart", 12), ("checkout_started", 6), ("order_placed", 7),
               ("payment_authorized", 5), ("shipment_updated", 4), ("review_submitted", 2)]
CARRIERS = ["DHL", "UPS", "FedEx", "PostNL", "La Poste", "Royal Mail", "USPS"]
SHIP_STATUS = ["label_created", "picked_up", "in_transit", "out_for_delivery", "delivered"]


class Generator:
    """Deterministic realistic event payloads and message envelopes."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        r = self.rng
        self.products = []
        for i in range(5000):
            cat = r.choice(CATEGORIES)
            name = f"{r.choice(WORDS).title()} {r.choice(WORDS).title()} {cat[-1].rstrip('s').replace('-', ' ')}"
            self.products.append({
                "sku": f"SKU-{r.randrange(10**7):07d}-{i % 97:02d}",
                "name": name,
                "brand": r.choice(BRANDS),
                "category": cat,
                "price": round(r.lognormvariate(3.3, 0.9), 2),
            })
        self.types = [t for t, w in EVENT_TYPES for _ in range(w)]
        self.ts = T0_MICROS
        self.seq = 0

    def hexid(self, n):
        return "%0*x" % (n, self.rng.getrandbits(4 * n))

    def uuid(self):
        h = self.hexid(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def product(self):
        # Popular products are viewed more (roughly Zipf).
        p = self.products[min(int(self.rng.paretovariate(1.1)) - 1, len(self.products) - 1)
                          if self.rng.random() < 0.5 else self.rng.randrange(len(self.products))]
        return {"sku": p["sku"], "name": p["name"], "brand": p["brand"],
                "category": p["category"], "price": {"amount": p["price"], "currency": self.cur}}

    def words(self, lo, hi):
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(lo, hi)))

    def address(self, country):
        r = self.rng
        return {"name": f"{self.words(1, 1).title()} {self.words(1, 1).title()}",
                "street": f"{r.randint(1, 250)} {r.choice(STREETS)}",
                "city": r.choice(CITIES), "postal_code": f"{r.randint(1000, 99999):05d}",
                "country": country}

    def properties(self, kind, country):
        r = self.rng
        if kind == "page_view":
            path = r.choice(["/", "/c/" + "/".join(r.choice(CATEGORIES)), "/p/" + self.product()["sku"],
                             "/cart", "/account/orders", "/help/returns", "/deals/today"])
            return {"path": path, "title": self.words(2, 6).title(),
                    "load_ms": r.randint(80, 4000), "scroll_depth": round(r.random(), 2),
                    "viewport": {"w": r.choice([390, 414, 768, 1280, 1440, 1920]),
                                 "h": r.choice([844, 896, 1024, 800, 900, 1080])}}
        if kind == "product_click":
            return {"product": self.product(), "position": r.randint(1, 48),
                    "list_id": r.choice(["search_results", "recommended", "category_grid",
                                         "recently_viewed", "bundle"])}
        if kind == "search":
            return {"query": self.words(1, 4), "results_count": r.randint(0, 2400),
                    "filters": {"brand": r.sample(BRANDS, r.randint(0, 2)),
                                "price_max": r.choice([None, 25, 50, 100, 250]),
                                "in_stock": r.random() < 0.7},
                    "sort": r.choice(["relevance", "price_asc", "price_desc", "newest"]),
                    "page": r.randint(1, 5)}
        if kind == "add_to_cart":
            return {"product": self.product(), "quantity": r.randint(1, 4),
                    "cart_id": "cart_" + self.hexid(12),
                    "cart_value": round(r.uniform(5, 800), 2)}
        if kind == "checkout_started":
            n = r.randint(1, 6)
            return {"cart_id": "cart_" + self.hexid(12), "item_count": n,
                    "skus": [self.product()["sku"] for _ in range(n)],
                    "estimated_total": round(r.uniform(10, 1500), 2),
                    "shipping_option": r.choice(["standard", "express", "pickup"])}
        if kind == "order_placed":
            items = []
            for _ in range(r.randint(1, 8)):
                p = self.product()
                qty = r.randint(1, 3)
                items.append({"sku": p["sku"], "name": p["name"], "brand": p["brand"],
                              "quantity": qty, "unit_price": p["price"]["amount"],
                              "discount": r.choice([0, 0, 0, 5, 10, 15])})
            subtotal = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
            tax = round(subtotal * 0.19, 2)
            shipping = r.choice([0, 4.99, 9.99])
            return {"order_id": f"ORD-{r.randrange(10**9):09d}", "items": items,
                    "totals": {"subtotal": subtotal, "tax": tax, "shipping": shipping,
                               "total": round(subtotal + tax + shipping, 2), "currency": self.cur},
                    "shipping_address": self.address(country),
                    "billing_same_as_shipping": r.random() < 0.85,
                    "payment_method": r.choice(["card", "paypal", "klarna", "apple_pay", "ideal"]),
                    "coupon": r.choice([None, None, None, "WELCOME10", "BLACKFRIDAY", "FREESHIP"])}
        if kind == "payment_authorized":
            return {"payment_id": "pay_" + self.hexid(24), "order_id": f"ORD-{r.randrange(10**9):09d}",
                    "amount": round(r.uniform(5, 2000), 2), "currency": self.cur,
                    "provider": r.choice(["stripe", "adyen", "braintree"]),
                    "card": {"brand": r.choice(["visa", "mastercard", "amex"]),
                             "last4": f"{r.randint(0, 9999):04d}",
                             "exp": f"{r.randint(1, 12):02d}/{r.randint(27, 33)}"},
                    "risk_score": round(r.random() * 100, 1), "three_ds": r.random() < 0.6}
        if kind == "shipment_updated":
            steps = r.randint(1, 5)
            return {"shipment_id": "shp_" + self.hexid(16), "order_id": f"ORD-{r.randrange(10**9):09d}",
                    "carrier": r.choice(CARRIERS), "tracking_number": self.hexid(18).upper(),
                    "status": SHIP_STATUS[steps - 1],
                    "checkpoints": [{"at": self.iso(self.ts - (steps - i) * 3_600_000_000),
                                     "location": r.choice(CITIES), "status": SHIP_STATUS[i]}
                                    for i in range(steps)]}
        # review_submitted
        return {"sku": self.product()["sku"], "rating": r.randint(1, 5),
                "title": self.words(2, 7).capitalize(), "body": self.words(20, 140).capitalize() + ".",
                "verified_purchase": r.random() < 0.8, "photos": r.randint(0, 3)}

    @staticmethod
    def iso(micros):
        secs, us = divmod(micros, 1_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{us // 1000:03d}Z"

    def message(self):
        r = self.rng
        self.seq += 1
        self.ts += int(r.expovariate(1 / 2000)) + 1  # ~500 events/s
        kind = r.choice(self.types)
        country = r.choice(COUNTRIES)
        self.cur = CURRENCY.get(country, "EUR")
        device = r.choice(DEVICES)
        event_id = self.uuid()
        anonymous = r.random() < 0.25
        body = {
            "event_id": event_id,
            "event_type": kind,
            "schema": "shop.events/v3",
            "occurred_at": self.iso(self.ts - r.randint(0, 1_500_000)),
            "user": None if anonymous else {
                "id": f"u_{int(r.paretovariate(0.8)) % 2_000_000:08d}",
                "country": country, "locale": LOCALES[country],
                "segment": r.choice(["new", "returning", "vip", "churn_risk"]),
                "marketing_opt_in": r.random() < 0.4},
            "session": {"id": self.hexid(16),
                        "device": {"type": device[0], "os": device[1], "browser": device[2],
                                   "app_version": f"5.{r.randint(0, 14)}.{r.randint(0, 9)}"},
                        "ip": f"203.0.{r.randint(0, 255)}.{r.randint(1, 254)}",
                        "referrer": r.choice([None, "https://www.google.com/", "https://www.instagram.com/",
                                              "https://news.example.org/deals", "android-app://com.shop"]),
                        "utm": ({"source": r.choice(["newsletter", "google", "meta", "tiktok"]),
                                 "medium": r.choice(["email", "cpc", "social"]),
                                 "campaign": r.choice(["bf26", "winter_sale", "retarget_q4"])}
                                if r.random() < 0.3 else None)},
            "properties": self.properties(kind, country),
            "experiments": [f"exp_{r.randint(100, 140)}:{r.choice('ab')}" for _ in range(r.randint(0, 3))],
        }
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json")]
        msg_id = event_id if r.random() < 0.97 else None
        if msg_id:
            headers.insert(0, ("Nats-Msg-Id", msg_id))
        if r.random() < 0.3:
            headers.append(("traceparent", f"00-{self.hexid(32)}-{self.hexid(16)}-01"))
        if r.random() < 0.1:
            headers += [("X-Tenant", "acme"), ("x-tenant", "ACME")]
        return (self.seq, self.ts, msg_id, f"shop.events.{kind}", headers, payload)


def generate(target_bytes, seed):
    gen = Generator(seed)
    msgs, total = [], 0
    while total < target_bytes:
        m = gen.message()
        msgs.append(m)
        total += len(m[5])
    return msgs, total


def write_records(path, msgs):
    with open(path, "wb") as f:
        f.write(MAGIC)
        for seq, ts, mid, subject, headers, payload in msgs:
            out = [struct.pack("<Qq", seq, ts)]
            for s in (mid, subject):
                if s is None:
                    out.append(struct.pack("<i", -1))
                else:
                    b = s.encode()
                    out += [struct.pack("<i", len(b)), b]
            out.append(struct.pack("<I", len(headers)))
            for name, value in headers:
                n, v = name.encode(), value.encode()
                out += [struct.pack("<I", len(n)), n, struct.pack("<I", len(v)), v]
            out += [struct.pack("<I", len(payload)), payload]
            f.write(b"".join(out))


HEADER_TYPE = pa.list_(pa.field("element", pa.struct([
    pa.field("name", pa.string(), nullable=False),
    pa.field("value", pa.string(), nullable=False)]), nullable=False))
SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("id", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("headers", HEADER_TYPE, nullable=False),
    pa.field("payload", pa.binary(), nullable=False),
])


def to_table(msgs):
    cols = list(zip(*msgs))
    headers = [[{"name": n, "value": v} for n, v in hs] for hs in cols[4]]
    return pa.Table.from_arrays([
        pa.array(cols[0], pa.int64()),
        pa.array(cols[1], pa.timestamp("us", tz="UTC")),
        pa.array(cols[2], pa.string()),
        pa.array(cols[3], pa.string()),
        pa.array(headers, HEADER_TYPE),
        pa.array(cols[5], pa.binary()),
    ], schema=SCHEMA)


def time_pyarrow(table, repeat, **kwargs):
    seconds, data = [], None
    for _ in range(repeat):
        sink = pa.BufferOutputStream()
        start = time.perf_counter()
        pq.write_table(table, sink, **kwargs)
        seconds.append(time.perf_counter() - start)
        data = sink.getvalue()
    return seconds, data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=200, help="payload megabytes to generate (10^6)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--zstd-level", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5, help="runs per encoder; the best counts")
    ap.add_argument("--out-dir", default="target/bench-parquet")
    ap.add_argument("--cargo", default="cargo")
    ap.add_argument("--strata-args", default="", help="extra arguments for parquet_encode")
    args = ap.parse_args()

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    os.makedirs(args.out_dir, exist_ok=True)
    records = os.path.join(args.out_dir, "messages.bin")
    strata_file = os.path.join(args.out_dir, "strata.parquet")

    t = time.perf_counter()
    msgs, payload_bytes = generate(int(args.mb * 1e6), args.seed)
    write_records(records, msgs)
    print(f"generated {len(msgs)} messages, {payload_bytes / 1e6:.1f} MB of JSON payload "
          f"(avg {payload_bytes / len(msgs):.0f} B) in {time.perf_counter() - t:.0f}s", flush=True)

    table = to_table(msgs)
    del msgs

    subprocess.run([args.cargo, "build", "--release", "--example", "parquet_encode"], check=True)
    strata_cmd = [args.cargo, "run", "--quiet", "--release", "--example", "parquet_encode", "--",
                  records, strata_file, "--zstd-level", str(args.zstd_level)]
    strata_cmd += args.strata_args.split()

    level = args.zstd_level
    variants = {
        "pyarrow (defaults)": dict(compression="zstd", compression_level=level),
        "pyarrow (Strata's settings)": dict(
            compression="zstd", compression_level=level,
            use_dictionary=["subject", "headers.list.element.name", "headers.list.element.value"],
            write_statistics=True, write_page_index=True,
            sorting_columns=[pq.SortingColumn(0)]),
    }
    results = {name: {"seconds": [], "bytes": 0} for name in ["Strata", *variants]}
    # One warm Strata process encodes on request, so its runs interleave with pyarrow's
    # (same machine load for all) and, like pyarrow's, reuse a warm heap.
    proc = subprocess.Popen(strata_cmd + ["--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    assert json.loads(proc.stdout.readline()).get("ready")
    for run in range(args.repeat):
        proc.stdin.write("encode\n")
        results["Strata"]["seconds"].append(json.loads(proc.stdout.readline())["encode_seconds"])
        for name, kwargs in variants.items():
            seconds, data = time_pyarrow(table, 1, **kwargs)
            results[name]["seconds"] += seconds
            results[name]["bytes"] = data.size
            if name == "pyarrow (defaults)" and run == 0:
                with open(os.path.join(args.out_dir, "pyarrow.parquet"), "wb") as f:
                    f.write(data)
        print(f"run {run + 1}/{args.repeat}: " + ", ".join(
            f"{n} {r['seconds'][-1]:.3f}s" for n, r in results.items()), flush=True)
    proc.stdin.close()
    strata = json.loads(proc.stdout.read().strip().splitlines()[-1])
    if proc.wait() != 0:
        raise SystemExit("parquet_encode failed")
    assert strata["payload_bytes"] == payload_bytes, "Strata read different messages"
    results["Strata"]["bytes"] = strata["file_bytes"]
    convert = strata["convert_seconds"]

    # pyarrow must read Strata's file back as exactly the same table.
    back = pq.read_table(strata_file)
    assert back.schema.equals(SCHEMA), f"schema differs:\n{back.schema}\nvs\n{SCHEMA}"
    assert back.equals(table), "Strata's file does not hold the same messages"
    meta = pq.ParquetFile(strata_file).metadata
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.startswith(b"strata.")}

    print(f"\n{len(table)} messages, {payload_bytes / 1e6:.1f} MB payload, zstd level {level}, "
          f"best of {args.repeat}, one thread")
    print(f"Strata file: {meta.num_row_groups} row group(s), metadata {kv}; "
          "pyarrow reads it back equal to its own table\n")
    base = results["pyarrow (defaults)"]
    print(f"{'encoder':<30}{'best s':>9}{'median s':>10}{'MB/s':>9}{'file MB':>10}"
          f"{'speed vs pa':>13}{'size vs pa':>12}")
    summary = {"messages": len(table), "payload_bytes": payload_bytes, "zstd_level": level,
               "pyarrow_version": pa.__version__, "results": {}}
    for name, r in results.items():
        best = min(r["seconds"])
        mbps = payload_bytes / 1e6 / best
        speed = min(base["seconds"]) / best
        size = r["bytes"] / base["bytes"]
        print(f"{name:<30}{best:>9.3f}{statistics.median(r['seconds']):>10.3f}{mbps:>9.1f}"
              f"{r['bytes'] / 1e6:>10.2f}{speed:>12.2f}x{size:>11.3f}x")
        summary["results"][name] = {"seconds": r["seconds"], "best_mb_per_s": mbps,
                                    "file_bytes": r["bytes"]}
    best = min(results["Strata"]["seconds"])
    print(f"\nof Strata's best {best:.3f}s, {convert:.3f}s is converting messages to Arrow "
          f"(pyarrow gets its Arrow table for free); Parquet writing alone: "
          f"{payload_bytes / 1e6 / (best - convert):.1f} MB/s, "
          f"{min(base['seconds']) / (best - convert):.2f}x pyarrow (defaults)")
    summary["strata_convert_seconds"] = convert
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
