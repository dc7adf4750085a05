#!/usr/bin/env bash
# Strata's one test command (CI runs it through .ci/run).
#
# On a fresh Debian machine it installs what the tests need (nats-server;
# chromium and promtool, for the status page and alert rules tests, which fail
# if they could not be installed; a virtualenv in target/venv with moto, duckdb, pyarrow, boto3 and pyiceberg,
# and a second one in target/venv-duckdb-iceberg with DuckDB and its iceberg extension), starts an
# S3-compatible server (moto) and a NATS JetStream server on free loopback ports,
# runs `cargo test --all-targets --no-run` (one build of every test binary, benches
# included so they keep compiling), then `cargo test --lib --bins --tests --examples "$@"`
# (benches left out: they time the disk and assert nothing), stops the servers, and
# exits with cargo's status.
#
#   scripts/test.sh                  # everything
#   scripts/test.sh store_           # tests whose name contains store_
#   scripts/test.sh --test e2e_nats  # one test binary (--lib, --test X, … replace the default targets)
#   scripts/test.sh -- --nocapture   # arguments after -- go to the test binaries
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/target/venv"
SERVERS="$ROOT/target/test-servers"
# Versions checked to install together on Python 3.11 (Debian 12 / the CI image).
# pyiceberg reads the archive's Iceberg table (tests/e2e_iceberg.rs); 0.12.0 works with pyarrow 26.
PY_PACKAGES=("moto[server]==5.2.5" "duckdb==2.0.1" "pyarrow==26.0.1" "boto3==1.44.8" "PyYAML==6.0.4" "pyiceberg==0.12.0")
PY_IMPORTS="import moto, moto.server, duckdb, pyarrow, pyarrow.parquet, boto3, yaml, pyiceberg.table"
# DuckDB's iceberg_scan (tests/e2e_iceberg.rs) in a virtualenv of its own: no
# iceberg extension exists on PyPI for the duckdb pinned above, and
# extensions.duckdb.org is not needed when the extensions come as PyPI
# packages of the same version (loaded from their files by tests/py/duckdb_iceberg_scan.py).
DUCKDB_ICEBERG_VENV="$ROOT/target/venv-duckdb-iceberg"
DUCKDB_ICEBERG_PACKAGES=("duckdb==1.5.5" "duckdb-extension-iceberg==1.5.5" "duckdb-extension-avro==1.5.5"
    "duckdb-extension-httpfs==1.5.5")
DUCKDB_ICEBERG_IMPORTS="import duckdb, duckdb_extension_iceberg, duckdb_extension_avro, duckdb_extension_httpfs"
READY_TIMEOUT_S=60

log() { echo "test.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- system packages ---------------------------------------------------------

APT_UPDATED=0
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        log "need root (or sudo) to run $*"
        return 1
    fi
}
apt_update() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq >/dev/null || { log "apt-get update failed"; return 1; }
        APT_UPDATED=1
    fi
}
# try_apt_install PACKAGE...: apt-get install, returning non-zero on failure.
try_apt_install() {
    apt_update || return 1
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null || { log "apt-get install $* failed"; return 1; }
}
apt_install() { try_apt_install "$@" || die "cannot install $*"; }

find_nats() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}
NATS_BIN="$(find_nats || true)"
if [ -z "$NATS_BIN" ]; then
    apt_install nats-server
    NATS_BIN="$(find_nats)" || die "nats-server is still missing after apt-get install"
fi

# A headless browser for the status page test (tests/e2e_status.rs). Not fatal
# here: without it that test fails under STRATA_TEST_REQUIRE_SERVERS=1 and says why.
find_chromium() { command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null; }
CHROMIUM_BIN="$(find_chromium || true)"
if [ -z "$CHROMIUM_BIN" ]; then
    if try_apt_install chromium; then
        CHROMIUM_BIN="$(find_chromium || true)"
    fi
    [ -n "$CHROMIUM_BIN" ] || log "warning: no chromium; the status page test will fail"
fi

# promtool, to check deploy/strata-rules.yml: Debian's prometheus package holds
# it. Only that one binary is taken out of the package, into target/ (a few
# seconds); the Prometheus server is not installed. Not fatal here either.
TOOLS="$ROOT/target/test-tools"
find_promtool() { command -v promtool 2>/dev/null || { [ -x "$TOOLS/promtool" ] && echo "$TOOLS/promtool"; }; }
fetch_promtool() {
    local deb="$TOOLS/deb"
    rm -rf "$deb" && mkdir -p "$deb" || return 1
    (cd "$deb" && apt-get download -qq prometheus >/dev/null 2>&1) ||
        { apt_update && (cd "$deb" && apt-get download -qq prometheus >/dev/null 2>&1); } || return 1
    dpkg-deb --fsys-tarfile "$deb"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$TOOLS/promtool.tmp" &&
        chmod +x "$TOOLS/promtool.tmp" && mv "$TOOLS/promtool.tmp" "$TOOLS/promtool"
    local status=$?
    rm -rf "$deb"
    return "$status"
}
PROMTOOL_BIN="$(find_promtool || true)"
if [ -z "$PROMTOOL_BIN" ]; then
    log "extracting promtool from Debian's prometheus package into $TOOLS"
    if fetch_promtool; then
        PROMTOOL_BIN="$TOOLS/promtool"
    else
        log "warning: no promtool; the alert rules test will fail"
    fi
fi

# A Python that can make a virtualenv (Debian's python3 needs python3-venv).
find_python() {
    local p
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            command -v "$p"
            return 0
        fi
    done
    return 1
}
PYTHON="$(find_python || true)"
if [ -z "$PYTHON" ]; then
    apt_install python3 python3-venv
    PYTHON="$(find_python)" || die "python3 cannot create a virtualenv even after installing python3-venv"
fi

# --- virtualenv --------------------------------------------------------------

mkdir -p "$ROOT/target" "$SERVERS"
exec 9>"$ROOT/target/.venv.lock"
flock 9 # one setup at a time when two test runs start together

# ensure_venv DIR IMPORTS PACKAGE...: a virtualenv in DIR with exactly these
# pinned packages, made afresh unless its stamp names them and IMPORTS runs.
ensure_venv() {
    local venv=$1 imports=$2
    shift 2
    local stamp="$venv/.strata-packages" want start
    want="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "$imports" 2>/dev/null; then
        log "reusing virtualenv $venv"
        return 0
    fi
    log "creating virtualenv $venv ($*)"
    start=$SECONDS
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input "$@" ||
        die "pip install $* failed"
    "$venv/bin/python" -c "$imports" || die "the virtualenv $venv cannot import its packages"
    echo "$want" >"$stamp" # written last: marks the virtualenv complete
    log "virtualenv ready in $((SECONDS - start))s"
}
ensure_venv "$VENV" "$PY_IMPORTS" "${PY_PACKAGES[@]}"
ensure_venv "$DUCKDB_ICEBERG_VENV" "$DUCKDB_ICEBERG_IMPORTS" "${DUCKDB_ICEBERG_PACKAGES[@]}"
flock -u 9

# --- servers -----------------------------------------------------------------

PIDS=()
stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_ok URL: whether URL answers 2xx within a second.
http_ok() {
    "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" \
        >/dev/null 2>&1
}

# wait_ready NAME PID LOG URL: polls URL until it answers, the process dies, or
# READY_TIMEOUT_S passes.
wait_ready() {
    local name=$1 pid=$2 logfile=$3 url=$4
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during startup; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        if http_ok "$url"; then
            return 0
        fi
        sleep 0.1
    done
    log "$name did not answer $url within ${READY_TIMEOUT_S}s; last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
    return 1
}

# start_server NAME URL_TEMPLATE CMD...: runs CMD with @PORT@ and @MPORT@ replaced
# by free ports, waits until URL_TEMPLATE (same replacements) answers; retries
# with other ports if a port was taken in between. Sets SERVER_PORT.
start_server() {
    local name=$1 url_template=$2
    shift 2
    local attempt port mport url pid logfile="$SERVERS/$name.log" args arg
    for attempt in 1 2 3; do
        port=$(free_port)
        mport=$(free_port)
        args=()
        for arg in "$@"; do
            arg=${arg//@MPORT@/$mport}
            args+=("${arg//@PORT@/$port}")
        done
        url=${url_template//@MPORT@/$mport}
        url=${url//@PORT@/$port}
        "${args[@]}" >"$logfile" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        if wait_ready "$name" "$pid" "$logfile" "$url"; then
            SERVER_PORT=$port
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        log "$name: attempt $attempt failed"
    done
    die "cannot start $name (log: $logfile)"
}

start=$SECONDS
start_server moto "http://127.0.0.1:@PORT@/" \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p @PORT@
S3_PORT=$SERVER_PORT

rm -rf "$SERVERS/nats"
start_server nats "http://127.0.0.1:@MPORT@/healthz" \
    "$NATS_BIN" -js -a 127.0.0.1 -p @PORT@ -m @MPORT@ -sd "$SERVERS/nats"
NATS_PORT=$SERVER_PORT
log "servers ready in $((SECONDS - start))s: moto on 127.0.0.1:$S3_PORT, nats-server on 127.0.0.1:$NATS_PORT (logs in $SERVERS)"

export STRATA_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export STRATA_TEST_NATS_URL="nats://127.0.0.1:$NATS_PORT"
export STRATA_TEST_PYTHON="$VENV/bin/python"
export STRATA_TEST_DUCKDB_ICEBERG_PYTHON="$DUCKDB_ICEBERG_VENV/bin/python"
if [ -n "$CHROMIUM_BIN" ]; then
    export STRATA_TEST_CHROMIUM="$CHROMIUM_BIN"
fi
if [ -n "$PROMTOOL_BIN" ]; then
    export STRATA_TEST_PROMTOOL="$PROMTOOL_BIN"
fi
export STRATA_TEST_REQUIRE_SERVERS=1
export PATH="$VENV/bin:$PATH"

# --- build and test ----------------------------------------------------------

# One build of the test binaries: `cargo build` would also build the examples
# as plain binaries, which `cargo test` then builds again as test harnesses.
cargo test --all-targets --no-run
status=0
# Not --all-targets: that would also run benches/ (tens of seconds of fsync timing).
# Arguments that choose targets themselves (`--test NAME`, `--lib`, …) replace
# the default selection, so `scripts/test.sh --test e2e_nats` runs just that.
own_targets=0
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    --lib | --bins | --bin | --bin=* | --test | --test=* | --tests | --examples | --example | --example=*) own_targets=1 ;;
    esac
done
if [ "$own_targets" -eq 1 ]; then
    cargo test "$@" || status=$?
else
    cargo test --lib --bins --tests --examples "$@" || status=$?
fi
exit "$status"
