//! Helpers shared by Strata's integration tests (`mod support;` in a test file).
//!
//! `scripts/test.sh` starts an S3-compatible server (moto) and `nats-server -js`
//! on loopback and exports where they are:
//!
//! | variable | value |
//! | --- | --- |
//! | `STRATA_TEST_S3_ENDPOINT` | `http://127.0.0.1:PORT` (any credentials, path style) |
//! | `STRATA_TEST_NATS_URL` | `nats://127.0.0.1:PORT` (JetStream enabled) |
//! | `STRATA_TEST_PYTHON` | a Python with `duckdb`, `pyarrow`, `boto3` |
//! | `STRATA_TEST_REQUIRE_SERVERS` | `1`: a missing variable fails the test |
//!
//! Under plain `cargo test` a test whose server is missing prints a note and
//! returns early:
//!
//! ```ignore
//! let Some(endpoint) = support::s3_endpoint() else { return };
//! ```
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use strata::config::{Secret, StorageConfig};

/// Access key id the tests give the S3 test server (moto accepts any).
pub const TEST_ACCESS_KEY_ID: &str = "strata-test-key";
/// Secret access key the tests give the S3 test server.
pub const TEST_SECRET_ACCESS_KEY: &str = "strata-test-secret";
/// Region the tests use.
pub const TEST_REGION: &str = "us-east-1";

/// Whether a missing server is a failure rather than a skip.
pub fn require_servers() -> bool {
    std::env::var("STRATA_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The value of `var`, or `None` after a note (or a panic when servers are required).
fn server_var(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ if require_servers() => panic!(
            "{var} is not set but STRATA_TEST_REQUIRE_SERVERS=1: {what} is required \
             (scripts/test.sh starts it and sets {var})"
        ),
        _ => {
            // Straight to stderr: the test harness captures eprintln! of passing tests.
            let thread = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "note: skipping {}: {var} is not set ({what}); scripts/test.sh starts the \
                 test servers",
                thread.name().unwrap_or("this test")
            );
            None
        }
    }
}

/// The S3-compatible test server, e.g. `http://127.0.0.1:PORT`.
pub fn s3_endpoint() -> Option<String> {
    server_var("STRATA_TEST_S3_ENDPOINT", "an S3-compatible server, moto")
}

/// The NATS JetStream test server, e.g. `nats://127.0.0.1:PORT`.
pub fn nats_url() -> Option<String> {
    server_var("STRATA_TEST_NATS_URL", "nats-server -js")
}

/// A Python interpreter with `duckdb`, `pyarrow` and `boto3`.
pub fn python() -> Option<PathBuf> {
    server_var(
        "STRATA_TEST_PYTHON",
        "a Python with duckdb, pyarrow and boto3",
    )
    .map(PathBuf::from)
}

/// The `strata` binary built for this test run.
pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// Runs `python -c script args…` and returns its stdout; panics with its
/// stderr when it fails. Call [`python`] first to skip when there is none.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python =
        python().expect("run_python needs STRATA_TEST_PYTHON: check support::python() first");
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "python script failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// A bucket name no other test uses: `<prefix>-<12 hex digits>`, lower case.
pub fn unique_bucket(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", prefix.to_ascii_lowercase(), &id[..12])
}

/// Creates `name` on the S3 test server at `endpoint` (path style). The test
/// server accepts unsigned requests, so this is one plain HTTP PUT over
/// std's TCP (usable from sync and async tests alike).
pub fn create_bucket(endpoint: &str, name: &str) {
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("create_bucket needs an http:// endpoint, got {endpoint}"))
        .trim_end_matches('/');
    let mut stream =
        TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot connect to {endpoint}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("cannot send to {endpoint}: {e}"));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("no answer from {endpoint}: {e}"));
    let status = response.lines().next().unwrap_or_default();
    assert!(
        status.contains(" 200"),
        "creating bucket {name} on {endpoint} failed: {response}"
    );
}

/// `[storage]` for `s3://bucket/prefix` on the S3 test server: path style,
/// test credentials, and few retries so failures show quickly.
pub fn s3_storage(endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    StorageConfig {
        url,
        region: TEST_REGION.to_string(),
        endpoint: endpoint.to_string(),
        path_style: true,
        access_key_id: Secret::new(TEST_ACCESS_KEY_ID),
        secret_access_key: Secret::new(TEST_SECRET_ACCESS_KEY),
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..StorageConfig::default()
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}
