#!/usr/bin/env bash
# Restore benchmark (not a timed test) against one local nats-server -js
# started here. An archive of N messages of SIZE incompressible bytes is
# written once into a local folder the way the compactor writes it
# (examples/restore_bench.rs write), then ROUNDS interleaved rounds (the order
# of the three runs rotates each round), each into a fresh empty stream:
#   (a) bare publisher, same messages (examples/bare_publisher.rs --archive):
#       the very messages restore sends (same payloads, subjects and headers,
#       Nats-Msg-Id and the signed Strata-* headers included), built before
#       its clock starts, published with async-nats with at most INFLIGHT
#       acks outstanding, acks read in order;
#   (a0) the same payloads without any header (for context: what the
#       server's de-duplication and headers cost);
#   (a1) the bare publisher's leanest form, for context: the same messages
#       with their acknowledgements on one reply inbox (--ack-inbox: reply
#       subjects built before its clock, acks counted as they come, no order
#       kept);
#   (b) strata restore -> JetStream (examples/restore_bench.rs restore runs
#       strata::restore::run, the code of `strata restore`, on the folder),
#       --max-inflight INFLIGHT, timed by its own summary from the start of
#       the restore (connect, key, listing, reading included).
# Then ROUNDS interleaved rounds of NDJSON export of the same rows:
#   (c) strata restore --output FILE;
#   (d) DuckDB: COPY (SELECT the same fields, in seq order) TO FILE (FORMAT JSON)
#       over the same Parquet files (DuckDB from the test virtualenv).
# With BEFORE=path/to/an/older/restore_bench, each round also runs (b0): that
# binary's restore, right after (b), for before/after figures in one run.
# Prints every round, then the medians of the per-round ratios.
# Goal: (b) >= 0.9x (a).
#
#   N=100000 SIZE=1024 ROUNDS=6 benches/restore_vs_bare.sh
#   BEFORE=/tmp/restore_bench.old EXPORT=0 benches/restore_vs_bare.sh
# CPU=1 also reports the CPU time (perf stat task-clock) of every (b) and (b0)
# run: the restore process's own CPU per message, which varies far less than
# throughput on a shared machine.
set -euo pipefail

N=${N:-100000}
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-6}
INFLIGHT=${INFLIGHT:-256}
EXPORT=${EXPORT:-1}
BEFORE=${BEFORE:-}
CPU=${CPU:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/strata-restore-bench.XXXXXX)
NATS_PID=""

cleanup() {
    rc=$?
    if [ "$rc" != 0 ]; then cat "$WORK"/*.err "$WORK/nats.log" 2>/dev/null | tail -20 >&2; fi
    if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "load before: $(uptime)"
echo "building (release)..." >&2
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --example bare_publisher \
    --example restore_bench --manifest-path "$ROOT/Cargo.toml"
BIN="$CARGO_TARGET_DIR/release/examples"
VENV=${VENV:-$CARGO_TARGET_DIR/venv}
if [ "$EXPORT" != 0 ] && ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet duckdb
fi

. "$ROOT/benches/ports.sh"
PORT=$(free_port)
URL="nats://127.0.0.1:$PORT"
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$PORT"

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

echo "writing the archive ($N x $SIZE B)..." >&2
"$BIN/restore_bench" write --dir "$WORK/arch" --station bench --subject bench.restore \
    --count "$N" --size "$SIZE" >"$WORK/archive.json"

# Each run publishes into the stream BENCH, deleted and created empty first.
fresh_stream() {
    "$BIN/bare_publisher" --url "$URL" --recreate --stream BENCH --subject bench.restore \
        --count 0 >/dev/null
}
run_same() {
    "$BIN/bare_publisher" --url "$URL" --recreate --stream BENCH --subject bench.restore \
        --archive "$WORK/arch" --station bench --max-inflight "$INFLIGHT" | field rate
}
run_inbox() {
    "$BIN/bare_publisher" --url "$URL" --recreate --stream BENCH --subject bench.restore \
        --archive "$WORK/arch" --station bench --max-inflight "$INFLIGHT" --ack-inbox | field rate
}
run_plain() {
    "$BIN/bare_publisher" --url "$URL" --recreate --stream BENCH --subject bench.restore \
        --archive "$WORK/arch" --station bench --max-inflight "$INFLIGHT" --no-headers | field rate
}
# Runs "$@", recording its CPU milliseconds in $WORK/cpu.$TAG when CPU=1.
timed() {
    if [ "$CPU" = 1 ]; then
        perf stat -x, -e task-clock -o "$WORK/stat" "$@"
        grep task-clock "$WORK/stat" | cut -d, -f1 >>"$WORK/cpu.$TAG"
    else
        "$@"
    fi
}
run_restore() {
    fresh_stream
    # stderr is not a terminal here, so restore prints its JSON summary on stdout.
    TAG=b timed "$BIN/restore_bench" restore --dir "$WORK/arch" --station bench --nats "$URL" \
        --max-inflight "$INFLIGHT" 2>"$WORK/restore.err" | field rate
}

run_before() {
    fresh_stream
    TAG=b0 timed "$BEFORE" restore --dir "$WORK/arch" --station bench --nats "$URL" \
        --max-inflight "$INFLIGHT" 2>"$WORK/before.err" | field rate
}

for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS..." >&2
    case $((r % 3)) in
        1) S=$(run_same); P=$(run_plain); R=$(run_restore); I=$(run_inbox) ;;
        2) P=$(run_plain); R=$(run_restore); I=$(run_inbox); S=$(run_same) ;;
        0) R=$(run_restore); I=$(run_inbox); S=$(run_same); P=$(run_plain) ;;
    esac
    B0=-
    if [ -n "$BEFORE" ]; then B0=$(run_before); fi
    echo "$r $S $P $R $B0 $I" >>"$WORK/rounds.txt"
done

if [ "$EXPORT" != 0 ]; then
    for r in $(seq "$ROUNDS"); do
        echo "export round $r/$ROUNDS..." >&2
        export_strata() {
            "$BIN/restore_bench" restore --dir "$WORK/arch" --station bench \
                --output "$WORK/out.ndjson" --force 2>"$WORK/export.err" | field rate
            rm -f "$WORK/out.ndjson"
        }
        export_duckdb() {
            "$VENV/bin/python" - "$WORK/arch" "$WORK/duck.ndjson" <<'PY'
import json, sys, time
import duckdb
arch, out = sys.argv[1:]
con = duckdb.connect()
t = time.perf_counter()
con.execute(f"""
COPY (
  SELECT 'bench' AS station, seq,
         strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS timestamp,
         id, subject,
         list_transform(headers, lambda h: [h.name, h.value]) AS headers,
         to_base64(payload) AS payload_base64
  FROM read_parquet('{arch}/**/*.parquet', hive_partitioning = false)
  ORDER BY seq
) TO '{out}' (FORMAT JSON)""")
seconds = time.perf_counter() - t
rows = con.execute(f"SELECT count(*) FROM read_json_auto('{out}')").fetchall()[0][0]
print(json.dumps({"rows": rows, "seconds": seconds, "rate": rows / seconds}))
PY
            rm -f "$WORK/duck.ndjson"
        }
        if [ $((r % 2)) = 1 ]; then
            E=$(export_strata); D=$(export_duckdb | field rate)
        else
            D=$(export_duckdb | field rate); E=$(export_strata)
        fi
        echo "$r $E $D" >>"$WORK/export.txt"
    done
fi

python3 - "$N" "$SIZE" "$INFLIGHT" "$WORK/rounds.txt" "$WORK/export.txt" "$WORK" <<'PY'
import os, statistics, sys
n, size, inflight, rounds, export, work = sys.argv[1:]
med = statistics.median
print(f"messages: {n} x {size} B, {inflight} acks in flight")
before = any(line.split()[4] != "-" for line in open(rounds))
extra = f" {'(b0) before':>12} {'b0/a':>6}" if before else ""
print(f"{'round':>5} {'(a) bare, same msgs':>20} {'(a0) no headers':>16} {'(a1) ack inbox':>15} {'(b) restore':>12} {'b/a':>6} {'b/a0':>6} {'b/a1':>6}{extra}")
ra, ra0, ra1, A, A0, A1, B, B0, rb0 = [], [], [], [], [], [], [], [], []
for line in open(rounds):
    r, s, p, b, b0, i = line.split(); s, p, b, i = float(s), float(p), float(b), float(i)
    A.append(s); A0.append(p); A1.append(i); B.append(b)
    ra.append(b / s); ra0.append(b / p); ra1.append(b / i)
    tail = ""
    if before:
        b0 = float(b0); B0.append(b0); rb0.append(b0 / s)
        tail = f" {b0:12,.0f} {b0 / s:6.2f}"
    print(f"{r:>5} {s:20,.0f} {p:16,.0f} {i:15,.0f} {b:12,.0f} {b / s:6.2f} {b / p:6.2f} {b / i:6.2f}{tail}")
tail = f" {med(B0):12,.0f} {med(rb0):6.2f}" if before else ""
print(f"median {med(A):19,.0f} {med(A0):16,.0f} {med(A1):15,.0f} {med(B):12,.0f} {med(ra):6.2f} {med(ra0):6.2f} {med(ra1):6.2f}{tail}"
      f"   (ratios: medians of the per-round ratios; b/a range {min(ra):.2f}-{max(ra):.2f})")
for tag in ["b", "b0"]:
    path = os.path.join(work, f"cpu.{tag}")
    if os.path.exists(path):
        ms = [float(x) for x in open(path) if x.strip()]
        print(f"({tag}) CPU ms per run: {' '.join(f'{x:.0f}' for x in ms)}; median {med(ms):.0f}"
              f" ({1000 * med(ms) / int(n):.2f} us per message)")
if os.path.exists(export):
    print(f"{'round':>5} {'(c) strata NDJSON':>18} {'(d) duckdb COPY':>16} {'c/d':>6}")
    E, D, rd = [], [], []
    for line in open(export):
        r, e, d = line.split(); e, d = float(e), float(d)
        E.append(e); D.append(d); rd.append(e / d)
        print(f"{r:>5} {e:18,.0f} {d:16,.0f} {e / d:6.2f}")
    print(f"median {med(E):17,.0f} {med(D):16,.0f} {med(rd):6.2f}")
PY
echo "archive: $(cat "$WORK/archive.json")"
echo "load after: $(uptime)"
