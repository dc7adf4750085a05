#!/usr/bin/env bash
# Archive-from-JetStream benchmark (not a timed test), against one local
# nats-server -js started here. The stream BENCH is pre-filled once with N
# messages of SIZE bytes (examples/bare_publisher.rs), then ROUNDS interleaved
# rounds (odd rounds a then b, even rounds b then a), each through fresh
# durable consumers on the same stream, so both read identical content:
#   (a) bare consumer (examples/bare_consumer.rs consume): async-nats durable
#       pull consumer, AckPolicy::All, one continuous pull stream with
#       overlapping requests of BATCH messages, one ack per BATCH messages, no
#       storage; timed from process start until the server reports the
#       consumer's ack floor at N;
#   (a1) the bare consumer's leanest form, for context (bare_consumer.rs
#       consume --core): the same consumer read on the core connection, one
#       reply inbox, raw pull requests of BATCH (two outstanding), plain
#       messages, one ack per BATCH; timed the same way;
#   (b) `strata run` (release binary) with a fresh WAL and local-folder
#       archive, every other setting at its default (the compactor runs as in
#       production); timed from process start until its consumer's ack floor
#       reaches N with nothing pending (examples/bare_consumer.rs watch, 10 ms
#       polls).
# Also printed: CPU seconds (user + system) of each client and of nats-server
# during each run, from /proc and /usr/bin/time.
# Prints each round's rates and b/a, then the medians. Goal: b >= 0.9x a.
# Then, unless HTTP=0, one run of HTTP ingest: CLIENTS concurrent clients
# posting 1,000-message NDJSON bodies (examples/http_load.rs).
#
#   N=200000 SIZE=1024 ROUNDS=6 benches/ingest_vs_bare.sh
#
# Diagnostics: FETCH_BATCH=n sets Strata's [nats] fetch_batch (default: Strata's
# own default); SEGMENT_MAX_BYTES=1GiB seals nothing (so nothing is compacted)
# during the run; WAL_ROOT=/dev/shm puts the WAL on tmpfs; SKIP_BUILD=1 reuses
# the release binaries; EXPLICIT=1 gives Strata a consumer created beforehand
# with ack policy explicit (as earlier versions made it: one ack per message).
# ARCHIVE_ROOT=/dev/shm puts the archive (the file:// store the compactor
# uploads to, standing in for S3) on tmpfs, so its writes and fsyncs do not
# share the WAL's disk.
# DEFER=0s sets Strata's [compaction] defer_while_busy (default 10s: sealed
# segments wait while messages keep arriving; "0s" compacts each segment as soon
# as it is sealed, as builds before this key did; not with a BASELINE binary
# older than the key, which would refuse the config).
# BASELINE=path/to/strata adds (c), another `strata run` binary (e.g. an earlier
# commit's, built once into its own path) run the same way in every round, so a
# change is measured before/after in the same session: odd rounds a, b, c; even
# rounds c, b, a; printed with b/c.
set -euo pipefail

N=${N:-200000}
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-6}
BATCH=${BATCH:-1000}
FETCH_BATCH=${FETCH_BATCH:-}
HTTP=${HTTP:-1}
EXPLICIT=${EXPLICIT:-}
CLIENTS=${CLIENTS:-8}
PER_BATCH=${PER_BATCH:-1000}
BATCHES=${BATCHES:-$(( (N + CLIENTS * PER_BATCH - 1) / (CLIENTS * PER_BATCH) ))}
WAL_ROOT=${WAL_ROOT:-}
SEGMENT_MAX_BYTES=${SEGMENT_MAX_BYTES:-}
DEFER=${DEFER:-}
BASELINE=${BASELINE:-}
ARCHIVE_ROOT=${ARCHIVE_ROOT:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/strata-ingest-bench.XXXXXX)
NATS_PID=""
STRATA_PID=""
WAL_BASE=$WORK
if [ -n "$WAL_ROOT" ]; then WAL_BASE=$(mktemp -d "$WAL_ROOT/strata-ingest-bench-wal.XXXXXX"); fi
ARCHIVE_BASE=$WORK
if [ -n "$ARCHIVE_ROOT" ]; then ARCHIVE_BASE=$(mktemp -d "$ARCHIVE_ROOT/strata-ingest-bench-archive.XXXXXX"); fi

. "$ROOT/benches/ports.sh"
now() { date +%s.%N; }
# CPU seconds (user + system) a process has used so far, from /proc.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
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
    rm -rf "$WORK" "$WAL_BASE" "$ARCHIVE_BASE"
}
trap cleanup EXIT

echo "load before: $(uptime)"
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
strata_config() { # name nats_url consumer
    local name=$1 nats=$2 consumer=${3:-} port wal
    port=$(free_port)
    mkdir -p "$WORK/$name" "$ARCHIVE_BASE/$name/archive"
    wal="$WAL_BASE/$name-wal"
    {
        echo "[wal]"
        echo "dir = \"$wal\""
        if [ -n "$SEGMENT_MAX_BYTES" ]; then echo "segment_max_bytes = \"$SEGMENT_MAX_BYTES\""; fi
        echo "[storage]"
        echo "url = \"file://$ARCHIVE_BASE/$name/archive\""
        if [ -n "$DEFER" ]; then echo "[compaction]"; echo "defer_while_busy = \"$DEFER\""; fi
        echo "[http]"
        echo "listen = \"127.0.0.1:$port\""
        if [ -n "$nats" ]; then
            echo "[nats]"
            echo "url = \"$nats\""
            echo "stations = [\"BENCH\"]"
            echo "consumer = \"$consumer\""
            if [ -n "$FETCH_BATCH" ]; then echo "fetch_batch = $FETCH_BATCH"; fi
        fi
    } >"$WORK/$name.toml"
    echo "$port"
}

echo "pre-filling stream BENCH ($N x $SIZE B)..." >&2
"$EX/bare_publisher" --url "$URL" --create --stream BENCH --subject bench.ingest \
    --count "$N" --size "$SIZE" >"$WORK/fill.json"

run_bare() { # round [name [extra consume flag]]
    local t0 t1 s0 s1 name=${2:-bare-$1}
    s0=$(cpu_of "$NATS_PID")
    t0=$(now)
    /usr/bin/time -f "%U %S" -o "$WORK/$name.cpu" \
        "$EX/bare_consumer" --url "$URL" --stream BENCH --consumer "$name" --count "$N" \
        consume --batch "$BATCH" ${3:-} >"$WORK/$name.json"
    t1=$(now)
    s1=$(cpu_of "$NATS_PID")
    "$EX/bare_consumer" --url "$URL" --stream BENCH --consumer "$name" delete
    echo "$t0 $t1 $(awk '{print $1 + $2}' "$WORK/$name.cpu") $(awk -v a="$s1" -v b="$s0" 'BEGIN {printf "%.3f", a - b}')" >"$WORK/$name.t"
}

run_strata() { # round [binary [name]]
    local port t0 t1 s0 s1 c bin=${2:-$BIN/strata} name=${3:-strata-$1}
    port=$(strata_config "nats-$1" "$URL" "$name")
    if [ -n "$EXPLICIT" ]; then
        "$EX/bare_consumer" --url "$URL" --stream BENCH --consumer "$name" create-explicit
    fi
    s0=$(cpu_of "$NATS_PID")
    t0=$(now)
    "$bin" run --config "$WORK/nats-$1.toml" >"$WORK/$name.log" 2>&1 &
    STRATA_PID=$!
    "$EX/bare_consumer" --url "$URL" --stream BENCH --consumer "$name" --count "$N" \
        watch >"$WORK/watch-$name.json"
    t1=$(now)
    s1=$(cpu_of "$NATS_PID")
    c=$(cpu_of "$STRATA_PID")
    curl -s "http://127.0.0.1:$port/metrics" >"$WORK/metrics-$name.txt"
    stop_strata
    "$EX/bare_consumer" --url "$URL" --stream BENCH --consumer "$name" delete
    rm -rf "$WORK/nats-$1" "$ARCHIVE_BASE/nats-$1" "$WAL_BASE/nats-$1-wal"
    echo "$t0 $t1 $c $(awk -v a="$s1" -v b="$s0" 'BEGIN {printf "%.3f", a - b}')" >"$WORK/$name.t"
}

for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS..." >&2
    base() { if [ -n "$BASELINE" ]; then run_strata "$r" "$BASELINE" "old-$r"; fi; }
    core() { run_bare "$r" "core-$r" --core; }
    if [ $((r % 2)) = 1 ]; then run_bare "$r"; core; run_strata "$r"; base; else base; run_strata "$r"; core; run_bare "$r"; fi
    compactions=$(awk '/^strata_compaction_duration_seconds_count/ {s+=$2} END {print s+0}' "$WORK/metrics-strata-$r.txt")
    ingested=$(awk '/^strata_ingested_messages_total\{station="BENCH",source="nats"\}/ {print $2}' "$WORK/metrics-strata-$r.txt")
    old=""
    if [ -n "$BASELINE" ]; then old=" $(cat "$WORK/old-$r.t")"; fi
    echo "$r $(cat "$WORK/bare-$r.t") $(cat "$WORK/strata-$r.t") ${compactions:-0} ${ingested:-0} $(cat "$WORK/core-$r.t")$old" >>"$WORK/rounds.txt"
done

python3 - "$N" "$SIZE" "$BATCH" "${FETCH_BATCH:-default}" "$(field rate <"$WORK/fill.json")" "$WORK/rounds.txt" "$EXPLICIT" <<'PY'
import statistics, sys
n, size, batch, fetch_batch, fill, rounds, explicit = sys.argv[1:]
n = int(n)
print(f"messages: {n} x {size} B; bare: AckPolicy::All, pull stream batch {batch}, one ack per batch; "
      f"strata: fetch_batch {fetch_batch}{', consumer with ack policy explicit' if explicit else ''}")
print(f"pre-fill (bare publisher): {float(fill):,.0f} msg/s")
print(f"{'round':>5} {'(a) bare msg/s':>15} {'(b) strata msg/s':>17} {'b/a':>6} {'compactions':>12} {'ingested':>9}"
      f"   CPU s: {'a':>5} {'server':>6} | {'b':>5} {'server':>6}")
ratios, bares, stratas, cpu, olds, old_ratios = [], [], [], [], [], []
cores, core_ratios, core_cpu = [], [], []
for line in open(rounds):
    r, a0, a1, ac, asrv, b0, b1, bc, bsrv, comp, ing, k0, k1, kc, ksrv, *old = line.split()
    a = n / (float(a1) - float(a0)); b = n / (float(b1) - float(b0))
    k = n / (float(k1) - float(k0))
    bares.append(a); stratas.append(b); ratios.append(b / a)
    cores.append(k); core_ratios.append(b / k); core_cpu.append((float(kc), float(ksrv)))
    cpu.append(tuple(map(float, (ac, asrv, bc, bsrv))))
    extra = f"   (a1) core {k:,.0f} msg/s, b/a1 {b / k:.2f}"
    if old:
        c0, c1, cc, csrv = old
        c = n / (float(c1) - float(c0))
        olds.append(c); old_ratios.append((b / c, c / a))
        extra += f"   (c) baseline {c:,.0f} msg/s, c/a {c / a:.2f}, b/c {b / c:.2f}, CPU s {float(cc):.2f} + server {float(csrv):.2f}"
    print(f"{r:>5} {a:15,.0f} {b:17,.0f} {b / a:6.2f} {comp:>12} {ing:>9}"
          f"          {float(ac):5.2f} {float(asrv):6.2f} | {float(bc):5.2f} {float(bsrv):6.2f}{extra}")
m = [statistics.median(c[i] for c in cpu) for i in range(4)]
print(f"median {statistics.median(bares):14,.0f} {statistics.median(stratas):17,.0f} "
      f"{statistics.median(ratios):6.2f}   (median of the per-round ratios; "
      f"range {min(ratios):.2f}-{max(ratios):.2f})")
print(f"median CPU seconds until the end point: bare consumer {m[0]:.2f} + nats-server {m[1]:.2f}; "
      f"strata {m[2]:.2f} + nats-server {m[3]:.2f}")
print(f"(a1) core-connection bare consumer median {statistics.median(cores):,.0f} msg/s; "
      f"b/a1 {statistics.median(core_ratios):.2f} (range {min(core_ratios):.2f}-{max(core_ratios):.2f}); "
      f"CPU s {statistics.median(c[0] for c in core_cpu):.2f} + nats-server {statistics.median(c[1] for c in core_cpu):.2f}")
if olds:
    print(f"(c) baseline median {statistics.median(olds):,.0f} msg/s; c/a {statistics.median(r[1] for r in old_ratios):.2f}; "
          f"b/c {statistics.median(r[0] for r in old_ratios):.2f} "
          f"(range {min(r[0] for r in old_ratios):.2f}-{max(r[0] for r in old_ratios):.2f})")
PY

if [ "$HTTP" != 0 ]; then
    echo "HTTP ingest..." >&2
    PORT_C=$(strata_config http "")
    "$BIN/strata" run --config "$WORK/http.toml" >"$WORK/strata-http.log" 2>&1 &
    STRATA_PID=$!
    wait_port "$PORT_C"
    HTTP_OUT=$("$EX/http_load" --url "http://127.0.0.1:$PORT_C" --station http-bench \
        --clients "$CLIENTS" --batches "$BATCHES" --per-batch "$PER_BATCH" --size "$SIZE")
    stop_strata
    echo "HTTP ingest ($CLIENTS clients x $BATCHES x $PER_BATCH x $SIZE B): $HTTP_OUT"
fi
echo "load after: $(uptime)"
