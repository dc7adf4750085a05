#!/usr/bin/env bash
# Scale-out benchmark (not a timed test): one `strata run` vs two, over eight
# stations of one local nats-server started here.
#
# Eight streams are pre-filled with N/8 messages of SIZE bytes each
# (examples/bare_publisher.rs). Then
#   (1) one `strata run` archives all eight through consumer "one";
#   (2) two `strata run` processes (own WALs, one archive folder) share them
#       through consumer "two": each takes four stations via the lease bucket.
# Each run is timed from the first process start until every stream's
# consumer has acknowledged N/8 (examples/bare_consumer.rs watch), and the
# processes' CPU time (utime + stime from /proc) is divided by N: the
# per-message cost. The lease traffic is per station and per lease/3, not per
# message: the point on a 2-core machine is that the second process adds no
# per-message cost, not that it doubles throughput.
#
#   N=800000 SIZE=1024 LEASE=2s benches/cluster_scale.sh
set -euo pipefail

N=${N:-800000}
SIZE=${SIZE:-1024}
# A short lease so that the two processes have balanced (4 + 4) within a
# second or two of a run that lasts several seconds; both runs use it.
LEASE=${LEASE:-2s}
STATIONS=8
PER=$(( N / STATIONS ))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/strata-cluster-bench.XXXXXX)
PIDS=()
NATS_PID=""

. "$ROOT/benches/ports.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cleanup() {
    rc=$?
    if [ "$rc" != 0 ]; then tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

echo "building (release)..." >&2
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
    --bin strata --example bare_publisher --example bare_consumer
BIN="$CARGO_TARGET_DIR/release"
EX="$BIN/examples"

NATS_PORT=$(free_port)
URL="nats://127.0.0.1:$NATS_PORT"
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT"

LIST=""
echo "pre-filling $STATIONS streams ($PER x $SIZE B each)..." >&2
for i in $(seq 1 $STATIONS); do
    "$EX/bare_publisher" --url "$URL" --create --stream "S$i" --subject "s$i.bench" \
        --count "$PER" --size "$SIZE" >/dev/null
    LIST="$LIST\"S$i\", "
done
LIST="[${LIST%, }]"

config() { # name consumer
    local port
    port=$(free_port)
    mkdir -p "$WORK/archive"
    cat >"$WORK/$1.toml" <<TOML
[wal]
dir = "$WORK/$1-wal"
[storage]
url = "file://$WORK/archive-$2"
[http]
listen = "127.0.0.1:$port"
[nats]
url = "$URL"
stations = $LIST
consumer = "$2"
[cluster]
lease = "$LEASE"
TOML
}

# run CONSUMER MEMBERS...: starts one strata run per member, waits for every
# stream's consumer to acknowledge PER messages; prints "seconds cpu_seconds".
run() {
    local consumer=$1; shift
    local pids=() t0 t1 ticks=0 hz
    hz=$(getconf CLK_TCK)
    t0=$(date +%s.%N)
    for m in "$@"; do
        config "$m" "$consumer"
        "$BIN/strata" run --config "$WORK/$m.toml" >"$WORK/$m.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
    done
    local watchers=()
    for i in $(seq 1 $STATIONS); do
        "$EX/bare_consumer" --url "$URL" --stream "S$i" --consumer "$consumer" --count "$PER" watch \
            >"$WORK/watch-$consumer-$i.json" &
        watchers+=($!)
    done
    for w in "${watchers[@]}"; do wait "$w"; done
    t1=$(date +%s.%N)
    for p in "${pids[@]}"; do ticks=$(( ticks + $(cpu_ticks "$p") )); done
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    python3 -c "print($t1 - $t0, $ticks / $hz)"
}

echo "(1) one process, $STATIONS stations..." >&2
read -r ONE_S ONE_CPU < <(run one solo)
echo "(2) two processes sharing $STATIONS stations..." >&2
read -r TWO_S TWO_CPU < <(run two left right)
OWNED_L=$(grep -c "took the station's lease" "$WORK/left.log" || true)
OWNED_R=$(grep -c "took the station's lease" "$WORK/right.log" || true)
RELEASED=$(cat "$WORK/left.log" "$WORK/right.log" | grep "released the station" | grep -c "balancing" || true)

python3 - "$N" "$SIZE" "$ONE_S" "$ONE_CPU" "$TWO_S" "$TWO_CPU" "$OWNED_L" "$OWNED_R" "$RELEASED" "$LEASE" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
one_s, one_cpu, two_s, two_cpu = map(float, sys.argv[3:7])
left, right, released, lease = sys.argv[7:11]
print(f"messages: {n} x {size} B over 8 stations, lease {lease}")
print(f"(1) one process    {n / one_s:10,.0f} msg/s  ({one_s:.2f} s)  CPU {one_cpu / n * 1e6:.1f} us/msg")
print(f"(2) two processes  {n / two_s:10,.0f} msg/s  ({two_s:.2f} s)  CPU {two_cpu / n * 1e6:.1f} us/msg"
      f"  (leases taken: {left} + {right}, released while balancing: {released})")
print(f"ratio two/one: {one_s / two_s:.2f}x throughput, {two_cpu / one_cpu:.2f}x CPU per message")
PY
