#!/usr/bin/env bash
# One benchmark run (not a timed test) against one local nats-server:
#   (a) a bare async-nats JetStream publisher with pipelined acks
#       (examples/bare_publisher.rs), N messages of SIZE bytes: plain, with a
#       Nats-Msg-Id, and with the same headers restore adds (the server's cost
#       of de-duplication and headers, apart from restore's own);
#   (b) `strata restore` of an archive of the same messages from a local folder
#       (examples/restore_bench.rs runs strata::restore::run, the code behind
#       the `strata restore` command, against a folder without a config file);
#   (c) NDJSON export (`--output`) against pyarrow reading the same files.
# Prints each rate and the ratios. Goal: restore >= 0.9x the bare publisher.
#
#   N=200000 SIZE=1024 benches/restore_vs_bare.sh
set -euo pipefail

N=${N:-200000}
SIZE=${SIZE:-1024}
PORT=${PORT:-14334}
INFLIGHT=${INFLIGHT:-256}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/strata-restore-bench.XXXXXX)
URL="nats://127.0.0.1:$PORT"
NATS_PID=""

cleanup() {
    rc=$?
    if [ "$rc" != 0 ]; then cat "$WORK"/*.err "$WORK/nats.log" 2>/dev/null | tail -20 >&2; fi
    if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (release)..." >&2
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --example bare_publisher --example restore_bench --manifest-path "$ROOT/Cargo.toml"
BIN="$CARGO_TARGET_DIR/release/examples"

nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

echo "writing the archive ($N x $SIZE B)..." >&2
"$BIN/restore_bench" write --dir "$WORK/arch" --station bench --subject bench.restore \
    --count "$N" --size "$SIZE" >"$WORK/archive.json"

echo "(a) bare publisher..." >&2
BARE=$("$BIN/bare_publisher" --url "$URL" --create --stream BARE --subject bench.bare \
    --count "$N" --size "$SIZE" --max-inflight "$INFLIGHT")
BARE_ID=$("$BIN/bare_publisher" --url "$URL" --create --stream BAREID --subject bench.bareid \
    --count "$N" --size "$SIZE" --max-inflight "$INFLIGHT" --msg-id)
BARE_HDR=$("$BIN/bare_publisher" --url "$URL" --create --stream BAREHDR --subject bench.barehdr \
    --count "$N" --size "$SIZE" --max-inflight "$INFLIGHT" --strata-headers)

echo "(b) strata restore..." >&2
"$BIN/bare_publisher" --url "$URL" --create --stream RESTORE --subject bench.restore --count 0 >/dev/null
# stderr is not a terminal here, so restore prints its JSON summary on stdout.
RESTORE=$("$BIN/restore_bench" restore --dir "$WORK/arch" --station bench --nats "$URL" \
    --max-inflight "$INFLIGHT" 2>"$WORK/restore.err")

echo "(c) NDJSON export..." >&2
EXPORT=$("$BIN/restore_bench" restore --dir "$WORK/arch" --station bench \
    --output "$WORK/out.ndjson" 2>"$WORK/export.err")

VENV=${VENV:-$CARGO_TARGET_DIR/venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet pyarrow
fi
PYARROW=$("$VENV/bin/python" - "$WORK/arch" <<'PY'
import base64, glob, json, sys, time
import pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True))
t = time.perf_counter()
rows = sum(pq.read_table(f).num_rows for f in files)
read_s = time.perf_counter() - t
t = time.perf_counter()
out = 0
for f in files:
    for r in pq.read_table(f).to_pylist():
        line = json.dumps({"station": "bench", "seq": r["seq"],
                           "payload": base64.b64encode(r["payload"]).decode()})
        out += len(line) + 1
json_s = time.perf_counter() - t
print(json.dumps({"rows": rows, "read_rate": rows / read_s, "ndjson_rate": rows / json_s}))
PY
)

BARE_RATE=$(echo "$BARE" | field rate)
BARE_ID_RATE=$(echo "$BARE_ID" | field rate)
BARE_HDR_RATE=$(echo "$BARE_HDR" | field rate)
RESTORE_RATE=$(echo "$RESTORE" | field rate)
EXPORT_RATE=$(echo "$EXPORT" | field rate)
PA_READ=$(echo "$PYARROW" | field read_rate)
PA_JSON=$(echo "$PYARROW" | field ndjson_rate)

python3 - "$N" "$SIZE" "$BARE_RATE" "$BARE_ID_RATE" "$BARE_HDR_RATE" "$RESTORE_RATE" "$EXPORT_RATE" "$PA_READ" "$PA_JSON" <<'PY'
import sys
n, size, *rates = sys.argv[1:]
bare, bare_id, bare_hdr, restore, export, pa_read, pa_json = map(float, rates)
print(f"messages: {n} x {size} B")
print(f"bare publisher              {bare:12,.0f} msg/s")
print(f"bare publisher + msg id     {bare_id:12,.0f} msg/s")
print(f"bare + restore's headers    {bare_hdr:12,.0f} msg/s")
print(f"strata restore -> JetStream {restore:12,.0f} msg/s  "
      f"({restore / bare:.2f}x bare, {restore / bare_id:.2f}x bare+id, {restore / bare_hdr:.2f}x bare+headers)")
print(f"strata restore -> NDJSON    {export:12,.0f} msg/s")
print(f"pyarrow read only           {pa_read:12,.0f} rows/s  (NDJSON export {export / pa_read:.2f}x)")
print(f"pyarrow read + NDJSON       {pa_json:12,.0f} rows/s  (NDJSON export {export / pa_json:.2f}x)")
PY
echo "restore summary: $RESTORE"
echo "export summary:  $EXPORT"
echo "archive:         $(cat "$WORK/archive.json")"
