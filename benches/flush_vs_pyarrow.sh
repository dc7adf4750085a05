#!/usr/bin/env bash
# A whole `strata flush` process against pyarrow's encode-only time for the same rows
# (a benchmark, not a test).
#
#   benches/flush_vs_pyarrow.sh            # N=300000 ROUNDS=5
#   N=300000 ROUNDS=7 benches/flush_vs_pyarrow.sh
#   BASELINE=/path/to/old/strata benches/flush_vs_pyarrow.sh   # old build's flush too, each round
#
# 1. Generates N order events (~300 B JSON payloads, fixed seed) as NDJSON, and the same rows
#    as an Arrow table (benches/flush_vs_pyarrow.py generate).
# 2. `strata ingest` appends them to a fresh WAL once (default [wal] settings: 64 MiB
#    segments); that WAL is kept as a template.
# 3. ROUNDS interleaved rounds, each: a copy of the template WAL (not timed), then
#    - `strata flush --wal-dir W --archive file://A` as a whole process under
#      /usr/bin/time -v: start, WAL recovery, seal, read and check segments, encode, store
#      (file:// archive: every file and commit record fsync'd), commit, delete;
#    - pyarrow: `pq.write_table` of the same rows (table built beforehand, not timed), zstd 3,
#      one thread (pa.set_cpu_count(1)), into memory: encode only.
#    The ratio of a round is pyarrow's seconds over Strata's wall seconds (>= 1.0: the whole
#    flush is at least as fast as pyarrow's encoding alone); the median of the rounds counts.
#    pyarrow encodes three times in its process: the first call (what a script pays: its
#    memory pool grows, pages are touched; "pyarrow s") and the best of the next two (pyarrow
#    warm, "warm s", its strongest figure, which the goal is held to).
#    With BASELINE=<binary>, each round first runs that binary's flush the same way, and the
#    medians of its ratio and of baseline wall / Strata wall are printed (interleaved A/B).
# 4. pyarrow reads the archive of the last round back and checks it equals the table.
#
# Needs a Python with pyarrow: PY (default target/venv/bin/python, which scripts/test.sh
# creates). Output and scratch files go to OUT (default target/bench-flush).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${N:-300000}"
ROUNDS="${ROUNDS:-5}"
SEED="${SEED:-20261124}"
OUT="${OUT:-$ROOT/target/bench-flush}"
PY="${PY:-$ROOT/target/venv/bin/python}"
STRATA="${STRATA:-$ROOT/target/release/strata}"
HELPER="$ROOT/benches/flush_vs_pyarrow.py"

[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package: time)" >&2; exit 1; }
"$PY" -c 'import pyarrow' 2>/dev/null || { echo "needs pyarrow in $PY (set PY=...)" >&2; exit 1; }

if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin strata)
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# No strata.toml of the caller's applies: every command runs in OUT with the defaults.
cd "$OUT"

if [ ! -s "events-$N-$SEED.ndjson" ] || [ ! -s "table-$N-$SEED.arrow" ]; then
    "$PY" "$HELPER" generate "events-$N-$SEED.ndjson" "table-$N-$SEED.arrow" "$N" "$SEED"
fi
rm -rf wal-template
"$STRATA" ingest --wal-dir wal-template "events-$N-$SEED.ndjson"
echo "WAL: $(du -sb wal-template | cut -f1) bytes in $(ls wal-template | grep -c '\.seg$\|\.open$') segment files"

# Seconds since the epoch, nanosecond resolution.
now() { date +%s.%N; }

# One whole flush of a fresh copy of the template WAL by binary $1; sets wall, user, sys, rss.
flush_once() {
    rm -rf wal archive && cp -a wal-template wal
    sync
    start=$(now)
    /usr/bin/time -v -o time.txt "$1" flush --wal-dir wal --archive "file://$OUT/archive" --json >flush.json
    end=$(now)
    wall=$(echo "$end - $start" | bc -l)
    user=$(awk -F': ' '/User time/ {print $2}' time.txt)
    sys=$(awk -F': ' '/System time/ {print $2}' time.txt)
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' time.txt)
}

strata_s=(); pyarrow_s=(); ratios=(); warm_s=(); warm_ratios=(); base_ratios=(); speedups=()
printf '%-6s %10s %8s %8s %10s %12s %8s %10s %8s\n' round "strata s" "user s" "sys s" "peak MiB" "pyarrow s" ratio "warm s" ratio
for round in $(seq 1 "$ROUNDS"); do
    if [ -n "${BASELINE:-}" ]; then
        flush_once "$BASELINE"
        base_wall=$wall
        printf '%-6s %10.3f %8s %8s %10s   (baseline %s)\n' "$round" "$wall" "$user" "$sys" "$rss" "$BASELINE"
    fi
    flush_once "$STRATA"
    read -r pa warm < <("$PY" "$HELPER" encode "table-$N-$SEED.arrow" pyarrow.parquet | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print(r["encode_seconds"], r["warm_seconds"])')
    ratio=$(echo "$pa / $wall" | bc -l)
    warm_ratio=$(echo "$warm / $wall" | bc -l)
    strata_s+=("$wall"); pyarrow_s+=("$pa"); ratios+=("$ratio"); warm_s+=("$warm"); warm_ratios+=("$warm_ratio")
    printf '%-6s %10.3f %8s %8s %10s %12.3f %7.2fx %10.3f %7.2fx\n' "$round" "$wall" "$user" "$sys" "$rss" "$pa" "$ratio" "$warm" "$warm_ratio"
    if [ -n "${BASELINE:-}" ]; then
        base_ratios+=("$(echo "$warm / $base_wall" | bc -l)")
        speedups+=("$(echo "$base_wall / $wall" | bc -l)")
    fi
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '%-6s %10.3f %8s %8s %10s %12.3f %7.2fx %10.3f %7.2fx\n' median "$(median "${strata_s[@]}")" "" "" "" \
    "$(median "${pyarrow_s[@]}")" "$(median "${ratios[@]}")" "$(median "${warm_s[@]}")" "$(median "${warm_ratios[@]}")"
if [ -n "${BASELINE:-}" ]; then
    printf 'baseline ratio to warm pyarrow (median) %.2fx; baseline wall / strata wall (median of rounds) %.2fx\n' \
        "$(median "${base_ratios[@]}")" "$(median "${speedups[@]}")"
fi
"$PY" -c 'import json,sys; r=json.load(open("flush.json")); print("last flush:", len(r["segments"]), "segments,", sum(len(s["files"]) for s in r["segments"]), "files,", sum(f["bytes"] for s in r["segments"] for f in s["files"]), "bytes")'
echo "pyarrow file: $(stat -c %s pyarrow.parquet) bytes"
"$PY" "$HELPER" check "$OUT/archive" "table-$N-$SEED.arrow"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
