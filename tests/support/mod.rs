//! Helpers shared by Strata's integration tests: every test file that needs
//! them says `mod support;`, and takes what it uses from a section:
//!
//! | module | what |
//! | --- | --- |
//! | this one | skipping without a server, temporary directories, unique names, ports, waiting |
//! | [`strata`] | running the built `strata` binary: one-shot commands, `strata run` and its HTTP API |
//! | [`conf`] | the `strata.toml` a test writes |
//! | [`nats`] | the NATS JetStream server: a server of a test's own, streams, publishing, reading back |
//! | [`s3`] | the S3-compatible server: buckets (created with boto3), `[storage]` for a bucket |
//! | [`python`] | DuckDB and pyarrow reading the archive back (`tests/py/`) |
//! | [`msg`] | the messages tests publish and the NDJSON lines they expect |
//! | [`figures`] | seeded tests and the reliability figures they record |
//! | [`iceberg`] | the Iceberg table as pyiceberg and DuckDB's `iceberg_scan` read it (`tests/py/`) |
//!
//! `scripts/test.sh` starts an S3-compatible server (moto) and `nats-server -js`
//! on loopback and exports where they are:
//!
//! | variable | value |
//! | --- | --- |
//! | `STRATA_TEST_S3_ENDPOINT` | `http://127.0.0.1:PORT` (any credentials, path style) |
//! | `STRATA_TEST_NATS_URL` | `nats://127.0.0.1:PORT` (JetStream enabled) |
//! | `STRATA_TEST_PYTHON` | a Python with `duckdb`, `pyarrow`, `boto3` |
//! | `STRATA_TEST_DUCKDB_ICEBERG_PYTHON` | a Python with DuckDB and its `iceberg`, `avro`, `httpfs` extensions |
//! | `STRATA_TEST_REQUIRE_SERVERS` | `1`: a missing variable fails the test |
//!
//! Under plain `cargo test` a test whose server is missing prints a note and
//! returns early:
//!
//! ```ignore
//! let endpoint = need!(support::s3::endpoint());
//! ```
// Each test binary compiles this whole tree but uses only a part of it, so
// the rest would be reported as dead code in every binary (the usual
// `tests/common` situation); allowed here once, for the tree.
#![allow(dead_code)]

pub mod conf;
pub mod figures;
pub mod iceberg;
pub mod msg;
pub mod nats;
pub mod python;
pub mod s3;
pub mod strata;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether a missing server is a failure rather than a skip
/// (`STRATA_TEST_REQUIRE_SERVERS=1`, as `scripts/test.sh` sets).
pub fn require_servers() -> bool {
    std::env::var("STRATA_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The value of environment variable `name`, or why a test cannot run
/// without it (`what` the variable points to).
pub fn env_var(name: &str, what: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!(
            "{name} is not set ({what}); scripts/test.sh starts the test servers and sets it"
        )),
    }
}

/// `name` on `PATH`.
pub fn which(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not on PATH"))
}

/// `Some(value)`; or, when `r` says what is missing, `None` after a note that
/// the test is skipped, or a panic under `STRATA_TEST_REQUIRE_SERVERS=1`.
pub fn or_skip<T>(r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(why) if require_servers() => panic!("STRATA_TEST_REQUIRE_SERVERS=1 but {why}"),
        Err(why) => {
            // Straight to stderr: the test harness captures eprintln! of passing tests.
            let thread = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "note: skipping {}: {why}",
                thread.name().unwrap_or("this test")
            );
            None
        }
    }
}

/// The value of a `Result` from this module's environment accessors, or a
/// return from the test after a note ([`or_skip`]): `need!(s3::endpoint())`.
#[macro_export]
macro_rules! need {
    ($e:expr) => {
        match $crate::support::or_skip($e) {
            Some(v) => v,
            None => return,
        }
    };
}

/// Command-line arguments from anything path- or string-like:
/// `args!["ingest", "--config", &config]`.
#[macro_export]
macro_rules! args {
    ($($x:expr),* $(,)?) => {
        vec![$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$x))),*]
    };
}

/// A file of `fixtures/e2e/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/e2e")
        .join(name)
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-e2e-")
        .tempdir()
        .expect("create a temporary directory")
}

/// `base_<8 hex>`: a name no earlier run used (streams on a long-lived server).
pub fn unique(base: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}_{}", &id[..8])
}

/// A loopback port that was free a moment ago (bound, then released): for a
/// server of the test to listen on, or for a connection that must be refused.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Serialises the heavy tests of one test binary (2 cores in CI).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`serial`] for async tests (a guard that may be held across `.await`).
pub async fn serial_async() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Polls `check` every 50 ms until it holds, or panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a blocking closure (a `strata` command, a python check) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Sends a signal to a process this test started.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg("-s")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {sig} {pid} failed");
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
