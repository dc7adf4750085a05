#!/usr/bin/env bash
# One benchmark run (not a timed test) against one local nats-server started here:
#   (a) a bare async-nats durable pull consumer (examples/bare_consumer.rs):
#       no-wait fetches of FETCH_BATCH messages, one ack per message, no WAL,
#       until N acks;
#   (b) `strata run` (release binary) archiving the same stream into a fresh
#       WAL through its own durable consumer, timed from process start until
#       its consumer's ack floor reaches N (polled every 20 ms);
#   (c) HTTP ingest: CLIENTS concurrent clients posting BATCHES bodies of
#       1,000 NDJSON messages of SIZE bytes each (examples/http_load.rs) to a
#       running `strata run`.
# The stream is pre-filled once with N messages of SIZE bytes
# (examples/bare_publisher.rs); (a) and (b) read it through two durable
# consumers ("bare" and "strata"), so they see identical content.
# Prints each rate and the ratio. Goal: strata >= 0.9x the bare consumer.
#
#   N=200000 SIZE=1024 benches/ingest_vs_bare.sh
set -euo pipefail

N=${N:-200000}
SIZE=${SIZE:-1024}
FETCH_BATCH=${FETCH_BATCH:-256}
CLIENTS=${CLIENTS:-8}
PER_BATCH=${PER_BATCH:-1000}
BATCHES=${BATCHES:-$(( (N + CLIENTS * PER_BATCH - 1) / (CLIENTS * PER_BATCH) ))}
# Diagnostics (defaults are Strata's own): put the WALs elsewhere (e.g. /dev/shm
# to take the disk's fdatasync out), or set [wal] segment_max_bytes (e.g. 1GiB so
# no segment is sealed, hence nothing compacted, during the run).
WAL_ROOT=${WAL_ROOT:-}
SEGMENT_MAX_BYTES=${SEGMENT_MAX_BYTES:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/strata-ingest-bench.XXXXXX)
NATS_PID=""
STRATA_PID=""
WAL_BASE=$WORK
if [ -n "$WAL_ROOT" ]; then WAL_BASE=$(mktemp -d "$WAL_ROOT/strata-ingest-bench-wal.XXXXXX"); fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}
stop_strata() {
    if [ -n "$STRATA_PID" ]; then
        kill "$STRATA_PID" 2>/dev/null || true
        wait "$STRATA_PID" 2>/dev/null || true
        STRATA_PID=""
    fi
}
cleanup() {
    rc=$?
    if [ "$rc" != 0 ]; then tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true; fi
    stop_strata
    if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK" "$WAL_BASE"
}
trap cleanup EXIT

echo "building (release)..." >&2
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    --bin strata --example bare_publisher --example bare_consumer --example http_load
BIN="$CARGO_TARGET_DIR/release"
EX="$BIN/examples"

NATS_PORT=$(free_port)
URL="nats://127.0.0.1:$NATS_PORT"
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT"

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

# Writes a config for `strata run` with a fresh WAL and archive; prints the HTTP port.
strata_config() { # name nats_url
    local name=$1 nats=$2 port wal
    port=$(free_port)
    mkdir -p "$WORK/$name/archive"
    wal="$WAL_BASE/$name-wal"
    {
        echo "[wal]"
        echo "dir = \"$wal\""
        if [ -n "$SEGMENT_MAX_BYTES" ]; then echo "segment_max_bytes = \"$SEGMENT_MAX_BYTES\""; fi
        echo "[storage]"
        echo "url = \"file://$WORK/$name/archive\""
        echo "[http]"
        echo "listen = \"127.0.0.1:$port\""
        if [ -n "$nats" ]; then
            echo "[nats]"
            echo "url = \"$nats\""
            echo "stations = [\"BENCH\"]"
            echo "consumer = \"strata\""
            echo "fetch_batch = $FETCH_BATCH"
        fi
    } >"$WORK/$name.toml"
    echo "$port"
}

echo "pre-filling stream BENCH ($N x $SIZE B)..." >&2
FILL=$("$EX/bare_publisher" --url "$URL" --create --stream BENCH --subject bench.ingest \
    --count "$N" --size "$SIZE")

echo "(a) bare pull consumer..." >&2
BARE=$("$EX/bare_consumer" --url "$URL" --stream BENCH --consumer bare --count "$N" \
    consume --batch "$FETCH_BATCH")

echo "(b) strata run (NATS source -> WAL)..." >&2
PORT_B=$(strata_config nats "$URL")
T0=$(date +%s.%N)
"$BIN/strata" run --config "$WORK/nats.toml" >"$WORK/strata-nats.log" 2>&1 &
STRATA_PID=$!
WATCH=$("$EX/bare_consumer" --url "$URL" --stream BENCH --consumer strata --count "$N" watch)
T1=$(date +%s.%N)
METRICS_B=$(curl -s "http://127.0.0.1:$PORT_B/metrics")
stop_strata
WAL_B=$(du -sbc "$WORK/nats" "$WAL_BASE/nats-wal" | tail -1 | cut -f1)

echo "(c) HTTP ingest..." >&2
PORT_C=$(strata_config http "")
"$BIN/strata" run --config "$WORK/http.toml" >"$WORK/strata-http.log" 2>&1 &
STRATA_PID=$!
wait_port "$PORT_C"
HTTP=$("$EX/http_load" --url "http://127.0.0.1:$PORT_C" --station http-bench \
    --clients "$CLIENTS" --batches "$BATCHES" --per-batch "$PER_BATCH" --size "$SIZE")
METRICS_C=$(curl -s "http://127.0.0.1:$PORT_C/metrics")
stop_strata

INGESTED_B=$(echo "$METRICS_B" | awk '/^strata_ingested_messages_total\{station="BENCH",source="nats"\}/ {print $2}')
INGESTED_C=$(echo "$METRICS_C" | awk '/^strata_ingested_messages_total\{station="http-bench",source="http"\}/ {print $2}')
COMPACTIONS_B=$(echo "$METRICS_B" | awk '/^strata_compaction_duration_seconds_count/ {print $2}')

python3 - "$N" "$SIZE" "$FETCH_BATCH" "$(echo "$FILL" | field rate)" "$(echo "$BARE" | field rate)" \
    "$T0" "$T1" "$(echo "$WATCH" | field seconds_from_first_ack)" "${INGESTED_B:-0}" \
    "$(echo "$HTTP" | field rate)" "$(echo "$HTTP" | field mb_per_s)" \
    "$(echo "$HTTP" | field p50_ms)" "$(echo "$HTTP" | field p99_ms)" "${INGESTED_C:-0}" <<'PY'
import sys
(n, size, batch, fill, bare, t0, t1, from_first, ingested_b,
 http, http_mb, p50, p99, ingested_c) = sys.argv[1:]
n = int(n); bare = float(bare)
total = float(t1) - float(t0)
strata = n / total
steady = n / float(from_first)
print(f"messages: {n} x {size} B, fetch batch {batch}")
print(f"pre-fill (bare publisher)        {float(fill):12,.0f} msg/s")
print(f"(a) bare pull consumer           {bare:12,.0f} msg/s")
print(f"(b) strata run, start to last ack {strata:11,.0f} msg/s  ({strata / bare:.2f}x bare; {total:.2f} s)")
print(f"    from its first ack            {steady:11,.0f} msg/s  ({steady / bare:.2f}x bare; {float(from_first):.2f} s)")
print(f"    strata_ingested_messages_total = {ingested_b}")
print(f"(c) HTTP ingest                  {float(http):12,.0f} msg/s  {float(http_mb):.1f} MB/s payload  "
      f"(p50 {float(p50):.0f} ms, p99 {float(p99):.0f} ms per 1,000-message request)")
print(f"    strata_ingested_messages_total = {ingested_c}")
PY
echo "bare:   $BARE"
echo "watch:  $WATCH"
echo "http:   $HTTP"
echo "strata (b): WAL+archive $WAL_B bytes, compactions ${COMPACTIONS_B:-0}, fetch_batch $FETCH_BATCH, WAL root ${WAL_ROOT:-$WORK}, segment_max_bytes ${SEGMENT_MAX_BYTES:-default}"
