//! Helpers shared by the end-to-end tests (`tests/e2e_*.rs`): they run the built
//! `strata` binary against real servers (an S3-compatible server, NATS
//! JetStream) and read the archive back with DuckDB and pyarrow through the
//! scripts in `tests/py/`.
//!
//! Environment (set by `scripts/test.sh`):
//! - `STRATA_TEST_S3_ENDPOINT`: `http://127.0.0.1:PORT`, path style, any credentials;
//! - `STRATA_TEST_NATS_URL`: `nats://127.0.0.1:PORT` of a `nats-server -js`;
//! - `STRATA_TEST_PYTHON`: a python with duckdb, pyarrow and boto3;
//! - `STRATA_TEST_REQUIRE_SERVERS=1`: a missing piece fails the test instead of
//!   skipping it with a printed note.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// Skips the test (returns) when a requirement is missing, or fails it when
/// `STRATA_TEST_REQUIRE_SERVERS=1`.
#[macro_export]
macro_rules! need {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(why) => {
                if $crate::e2e_support::require_servers() {
                    panic!("STRATA_TEST_REQUIRE_SERVERS=1 but {why}");
                }
                eprintln!("SKIPPED {}: {why}", module_path!());
                return;
            }
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

/// True when missing servers must fail the tests.
pub fn require_servers() -> bool {
    std::env::var("STRATA_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The python that has duckdb, pyarrow and boto3.
pub fn python() -> Result<PathBuf, String> {
    env_nonempty("STRATA_TEST_PYTHON")
        .map(PathBuf::from)
        .ok_or_else(|| {
            "STRATA_TEST_PYTHON is not set (a python with duckdb, pyarrow, boto3)".into()
        })
}

/// The S3-compatible server's endpoint.
pub fn s3_endpoint() -> Result<String, String> {
    env_nonempty("STRATA_TEST_S3_ENDPOINT")
        .ok_or_else(|| "STRATA_TEST_S3_ENDPOINT is not set (an S3-compatible server)".into())
}

/// The shared NATS JetStream server.
pub fn nats_url() -> Result<String, String> {
    env_nonempty("STRATA_TEST_NATS_URL")
        .ok_or_else(|| "STRATA_TEST_NATS_URL is not set (a nats-server -js)".into())
}

/// `nats-server` on PATH, for tests that run (and restart) their own server.
pub fn nats_server_bin() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| "nats-server is not on PATH".into())
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

/// A port that was free a moment ago on 127.0.0.1.
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

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// What a finished command did.
#[derive(Debug)]
pub struct Out {
    /// The command line, for messages.
    pub what: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Out {
    /// Standard output and error together.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// Panics (showing everything) unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "{} failed:\n{self}", self.what);
        self
    }
    /// Panics unless the command failed with a non-zero exit code.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "{} should have exited non-zero:\n{self}",
            self.what
        );
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `strata ARGS` to completion (at most 5 minutes).
pub fn strata<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    strata_with(args, None, Duration::from_secs(300))
}

/// Runs `strata ARGS` with `stdin` and a timeout (killed and failed past it).
pub fn strata_with<I, S>(args: I, stdin: Option<&[u8]>, timeout: Duration) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_command(cmd, stdin, timeout)
}

/// Runs a command with piped output and a timeout.
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // A command that stops reading early closes the pipe: not our failure.
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
            let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
            panic!("{what} did not finish within {timeout:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Out {
        what,
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// True when `text` holds the number `n` as a whole token (not as part of a
/// longer number or a temporary path).
pub fn has_number(text: &str, n: u64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|tok| tok.parse::<u64>() == Ok(n) && !tok.is_empty())
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

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Where the archive lives.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A local folder (`file:///abs`).
    File(PathBuf),
    /// A bucket on the S3-compatible test server.
    S3 {
        /// `http://127.0.0.1:PORT`.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Key prefix (no leading or trailing slash; may be empty).
        prefix: String,
    },
}

/// The `[http]` table.
#[derive(Debug, Clone)]
pub struct HttpConf {
    /// `127.0.0.1:PORT`.
    pub listen: String,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// `max_body_bytes`, if set.
    pub max_body_bytes: Option<usize>,
}

impl HttpConf {
    /// A listener on a free loopback port.
    pub fn free(token: Option<&str>) -> Self {
        Self {
            listen: format!("127.0.0.1:{}", free_port()),
            token: token.map(str::to_string),
            max_body_bytes: None,
        }
    }
    /// `http://<listen>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// The `[nats]` table.
#[derive(Debug, Clone)]
pub struct NatsConf {
    /// Server URL.
    pub url: String,
    /// Stream names.
    pub stations: Vec<String>,
    /// Durable consumer name.
    pub consumer: String,
    /// `fetch_batch`, if set.
    pub fetch_batch: Option<usize>,
}

/// A `strata.toml` for one test.
#[derive(Debug, Clone)]
pub struct Conf {
    /// `[wal] dir`.
    pub wal_dir: PathBuf,
    /// `[storage]`.
    pub storage: Storage,
    /// `[wal] segment_max_bytes`.
    pub segment_max_bytes: Option<u64>,
    /// `[wal] segment_max_age`, e.g. `"500ms"`.
    pub segment_max_age: Option<String>,
    /// `[wal] max_disk_bytes`, a TOML value (`65536` or `"64MiB"`).
    pub max_disk_bytes: Option<String>,
    /// `[compaction] row_group_rows`.
    pub row_group_rows: Option<usize>,
    /// `[http]`.
    pub http: Option<HttpConf>,
    /// `[nats]`.
    pub nats: Option<NatsConf>,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

impl Conf {
    /// WAL under `dir/wal`, archive in the local folder `dir/archive`.
    pub fn local(dir: &Path) -> Self {
        Self {
            wal_dir: dir.join("wal"),
            storage: Storage::File(dir.join("archive")),
            segment_max_bytes: None,
            segment_max_age: None,
            max_disk_bytes: None,
            row_group_rows: None,
            http: None,
            nats: None,
        }
    }

    /// The `[storage] url`.
    pub fn storage_url(&self) -> String {
        match &self.storage {
            Storage::File(p) => format!("file://{}", p.display()),
            Storage::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            Storage::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut t = String::new();
        t += "[wal]\n";
        t += &format!("dir = {}\n", q(&self.wal_dir.display().to_string()));
        if let Some(v) = self.segment_max_bytes {
            t += &format!("segment_max_bytes = {v}\n");
        }
        if let Some(v) = &self.segment_max_age {
            t += &format!("segment_max_age = {}\n", q(v));
        }
        if let Some(v) = &self.max_disk_bytes {
            t += &format!("max_disk_bytes = {v}\n");
        }
        t += "\n[storage]\n";
        t += &format!("url = {}\n", q(&self.storage_url()));
        if let Storage::S3 { endpoint, .. } = &self.storage {
            t += "region = \"us-east-1\"\n";
            t += &format!("endpoint = {}\n", q(endpoint));
            t += "path_style = true\n";
            t += "access_key_id = \"strata-test\"\n";
            t += "secret_access_key = \"strata-test-secret\"\n";
        }
        if let Some(v) = self.row_group_rows {
            t += &format!("\n[compaction]\nrow_group_rows = {v}\n");
        }
        if let Some(h) = &self.http {
            t += "\n[http]\n";
            t += &format!("listen = {}\n", q(&h.listen));
            if let Some(tok) = &h.token {
                t += &format!("token = {}\n", q(tok));
            }
            if let Some(v) = h.max_body_bytes {
                t += &format!("max_body_bytes = {v}\n");
            }
        }
        if let Some(n) = &self.nats {
            t += "\n[nats]\n";
            t += &format!("url = {}\n", q(&n.url));
            let list: Vec<String> = n.stations.iter().map(|s| q(s)).collect();
            t += &format!("stations = [{}]\n", list.join(", "));
            t += &format!("consumer = {}\n", q(&n.consumer));
            if let Some(v) = n.fetch_batch {
                t += &format!("fetch_batch = {v}\n");
            }
        }
        t
    }

    /// Writes the file and returns its path.
    pub fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.toml()).expect("write strata.toml");
        path.to_path_buf()
    }
}

// ---------------------------------------------------------------------------
// `strata run`
// ---------------------------------------------------------------------------

/// A running `strata run`; killed (SIGKILL) when dropped if still running.
#[derive(Debug)]
pub struct StrataRun {
    child: Option<Child>,
    /// The config file it runs with.
    pub config: PathBuf,
    /// Its `[http]` table.
    pub http: HttpConf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl StrataRun {
    /// Starts `strata run --config CONFIG EXTRA..`, logging into `log_dir`.
    pub fn spawn(config: &Path, http: &HttpConf, extra: &[&str], log_dir: &Path) -> Self {
        Self::spawn_env(config, http, extra, log_dir, &[])
    }

    /// [`StrataRun::spawn`] with extra environment variables (e.g.
    /// `STRATA_FAILPOINT`).
    pub fn spawn_env(
        config: &Path,
        http: &HttpConf,
        extra: &[&str],
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let n = fs::read_dir(log_dir).map(|d| d.count()).unwrap_or(0);
        let stdout = log_dir.join(format!("run-{n}.stdout"));
        let stderr = log_dir.join(format!("run-{n}.stderr"));
        let child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("create log"))
            .stderr(fs::File::create(&stderr).expect("create log"))
            .spawn()
            .expect("start strata run");
        Self {
            child: Some(child),
            config: config.to_path_buf(),
            http: http.clone(),
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Its exit status, if it has exited (reaped); `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Everything it wrote to standard output so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Everything it wrote to standard error so far (its log).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        let tail = |p: &Path| {
            let s = fs::read_to_string(p).unwrap_or_default();
            let start = s.len().saturating_sub(6000);
            let start = (start..s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(0);
            s[start..].to_string()
        };
        format!(
            "--- strata run stdout (tail) ---\n{}\n--- strata run stderr (tail) ---\n{}",
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }

    /// Panics with the logs if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("strata run exited early ({status})\n{}", self.logs());
        }
    }

    /// Waits until `GET /healthz` answers 200 (at most 60 s).
    pub async fn ready(&mut self) {
        let client = http_client();
        let url = format!("{}/healthz", self.http.base());
        let start = Instant::now();
        loop {
            self.assert_running();
            let mut req = client.get(&url);
            if let Some(t) = &self.http.token {
                req = req.bearer_auth(t);
            }
            if let Ok(resp) = req.send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "strata run did not answer {url} within 60 s\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself (at most `timeout`).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait for strata run") {
                self.child = None;
                return status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "strata run did not exit within {timeout:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit (at most 60 s).
    pub async fn terminate(&mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(Duration::from_secs(60)).await
    }

    /// SIGINT, then waits for the exit (at most 60 s).
    pub async fn interrupt(&mut self) -> ExitStatus {
        signal(self.pid(), "INT");
        self.wait_exit(Duration::from_secs(60)).await
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        let mut req = http_client().get(format!("{}/metrics", self.http.base()));
        if let Some(t) = &self.http.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl Drop for StrataRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("{}", self.logs());
            }
        }
    }
}

/// The sum of every sample of the Prometheus metric `name` in `text`
/// (`name{labels} value [timestamp]`); `None` when it has no sample.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            match labels.find('}') {
                Some(end) => &labels[end + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            continue;
        };
        if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<f64>) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// A reqwest client with a sane timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client")
}

/// An HTTP answer: status, headers and body.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Response headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// `POST /v1/stations/{station}/messages` with `body`.
pub async fn post_messages(
    client: &reqwest::Client,
    http: &HttpConf,
    station: &str,
    body: String,
    token: Option<&str>,
) -> Resp {
    let content_type = if body.trim_start().starts_with('[') {
        "application/json"
    } else {
        "application/x-ndjson"
    };
    let mut req = client
        .post(format!("{}/v1/stations/{station}/messages", http.base()))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST messages");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = resp.text().await.unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------
// Python readers
// ---------------------------------------------------------------------------

/// Runs `tests/py/<script> ARGS` and parses its stdout as JSON.
pub fn python_json(script: &str, args: &[&OsStr]) -> Value {
    let py = python().expect("STRATA_TEST_PYTHON");
    let mut cmd = Command::new(py);
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script),
    )
    .args(args);
    let out = run_command(cmd, None, Duration::from_secs(300)).ok();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{out}"))
}

/// One archived row as the readers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// From the `station=` path segment.
    pub station: String,
    /// `seq`.
    pub seq: i64,
    /// `timestamp` in microseconds since the epoch.
    pub timestamp_us: i64,
    /// `id`.
    pub id: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `headers` in stored order.
    pub headers: Vec<(String, String)>,
    /// `payload`, base64.
    pub payload_b64: String,
    /// From the `date=` path segment.
    pub date: String,
    /// From the `hour=` path segment, two digits.
    pub hour: String,
}

impl Row {
    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload_b64)
            .expect("check_archive.py writes standard base64")
    }
}

/// What `check_archive.py` reported about an archive root.
#[derive(Debug, Clone)]
pub struct ArchiveRead {
    /// The JSON summary.
    pub summary: Value,
    /// Every row, sorted by (station, seq).
    pub rows: Vec<Row>,
}

impl ArchiveRead {
    /// Number of rows.
    pub fn count(&self) -> u64 {
        self.summary["rows"].as_u64().expect("rows")
    }
    /// Rows of one station.
    pub fn station(&self, station: &str) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.station == station).collect()
    }
}

/// Reads the archive under `root` with `engine` (`duckdb` or `pyarrow`).
pub fn read_archive(root: &Path, engine: &str) -> ArchiveRead {
    let rows_file = tempfile::NamedTempFile::new().expect("temp file");
    let summary = python_json(
        "check_archive.py",
        &[
            root.as_os_str(),
            OsStr::new("--engine"),
            OsStr::new(engine),
            OsStr::new("--rows"),
            rows_file.path().as_os_str(),
        ],
    );
    let text = fs::read_to_string(rows_file.path()).expect("read rows");
    let rows = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad row {l}: {e}")))
        .collect();
    ArchiveRead { summary, rows }
}

/// Reads `root` with both DuckDB and pyarrow, checks that they agree, that the
/// archive keeps its documented contract (layout, schema, zstd, statistics,
/// commit records, no duplicate identity) and returns the DuckDB view.
#[track_caller]
pub fn read_archive_checked(root: &Path) -> ArchiveRead {
    let duck = read_archive(root, "duckdb");
    let arrow = read_archive(root, "pyarrow");
    let s = &duck.summary;
    let ctx = || serde_json::to_string_pretty(s).unwrap_or_default();
    assert_eq!(
        s["rows"],
        s["distinct_station_seq"],
        "duplicate (station, seq) in the archive: {}",
        ctx()
    );
    assert_eq!(
        s["layout_violations"].as_array().map(Vec::len),
        Some(0),
        "layout violations: {}",
        ctx()
    );
    assert_eq!(
        arrow.summary["rows"], s["rows"],
        "pyarrow and DuckDB disagree on the row count"
    );
    assert_eq!(
        arrow.summary["digest"], s["digest"],
        "pyarrow and DuckDB read different rows"
    );
    assert_eq!(
        arrow.rows, duck.rows,
        "pyarrow and DuckDB read different rows"
    );
    if duck.count() > 0 {
        let cols = &s["columns"];
        for c in [
            "seq",
            "timestamp",
            "id",
            "subject",
            "headers",
            "payload",
            "station",
            "date",
            "hour",
        ] {
            assert!(
                cols.get(c).is_some(),
                "DuckDB sees no column {c}: {}",
                ctx()
            );
        }
        assert_eq!(cols["seq"], "BIGINT", "{}", ctx());
        assert_eq!(cols["timestamp"], "TIMESTAMP WITH TIME ZONE", "{}", ctx());
        assert_eq!(cols["payload"], "BLOB", "{}", ctx());
        assert_eq!(
            cols["headers"],
            "STRUCT(\"name\" VARCHAR, \"value\" VARCHAR)[]",
            "{}",
            ctx()
        );
        let phys = &s["parquet_schema"];
        let names: Vec<&String> = phys.as_object().expect("schema").keys().collect();
        let mut names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["headers", "id", "payload", "seq", "subject", "timestamp"],
            "the data files must hold exactly these columns (station/date/hour only in the path): {}",
            ctx()
        );
        assert_eq!(phys["seq"], "int64", "{}", ctx());
        let ts = phys["timestamp"].as_str().unwrap_or("");
        assert!(
            ts == "timestamp[us, tz=UTC]" || ts == "timestamp[us, tz=+00:00]",
            "timestamp must be Timestamp(us, UTC), is {ts}"
        );
        assert_eq!(phys["id"], "string", "{}", ctx());
        assert_eq!(phys["subject"], "string", "{}", ctx());
        assert_eq!(phys["payload"], "binary", "{}", ctx());
        let h = phys["headers"].as_str().unwrap_or("");
        assert!(
            h.starts_with("list<")
                && h.contains("struct<name: string")
                && h.contains("value: string"),
            "headers must be List<Struct<name Utf8, value Utf8>>, is {h}"
        );
        assert_eq!(
            s["codecs"],
            serde_json::json!(["ZSTD"]),
            "every column chunk must be zstd: {}",
            ctx()
        );
        assert_eq!(
            s["seq_stats_missing"],
            0,
            "seq statistics missing: {}",
            ctx()
        );
        let c = &s["commits"];
        assert!(
            c["count"].as_u64().unwrap_or(0) >= 1,
            "no commit record under _strata/commits/: {}",
            ctx()
        );
        assert_eq!(c["missing_keys"], serde_json::json!([]), "{}", ctx());
        assert_eq!(c["sha_mismatch"], serde_json::json!([]), "{}", ctx());
    }
    duck
}

// ---------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------

/// A bucket name no earlier run used.
pub fn unique_bucket() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("strata-e2e-{}", &id[..12])
}

/// Creates `bucket` on the S3 test server.
pub fn s3_create_bucket(endpoint: &str, bucket: &str) {
    python_json(
        "s3.py",
        &[
            OsStr::new("create-bucket"),
            OsStr::new(endpoint),
            OsStr::new(bucket),
        ],
    );
}

/// Downloads every object under `prefix` into `dest` (keys relative to the prefix).
pub fn s3_download(endpoint: &str, bucket: &str, prefix: &str, dest: &Path) -> Vec<String> {
    let v = python_json(
        "s3.py",
        &[
            OsStr::new("download"),
            OsStr::new(endpoint),
            OsStr::new(bucket),
            OsStr::new(prefix),
            dest.as_os_str(),
        ],
    );
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// NDJSON
// ---------------------------------------------------------------------------

/// One line of the NDJSON interchange format, as the tests expect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Station.
    pub station: String,
    /// Sequence.
    pub seq: i64,
    /// Microseconds since the epoch (UTC).
    pub timestamp_us: i64,
    /// Id.
    pub id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Parses an RFC 3339 timestamp into microseconds.
pub fn micros(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("bad timestamp {ts}: {e}"))
        .timestamp_micros()
}

/// Parses NDJSON lines written by the tests or by `strata restore --output`.
pub fn parse_ndjson(text: &str) -> Vec<Expected> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let payload = if let Some(b) = v.get("payload_base64").and_then(Value::as_str) {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("base64")
            } else {
                v["payload"].as_str().unwrap_or("").as_bytes().to_vec()
            };
            Expected {
                station: v["station"].as_str().unwrap_or("").to_string(),
                seq: v["seq"].as_i64().unwrap_or(-1),
                timestamp_us: micros(v["timestamp"].as_str().expect("timestamp")),
                id: v["id"].as_str().map(str::to_string),
                subject: v["subject"].as_str().map(str::to_string),
                headers: v["headers"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().expect("name").to_string(),
                                    h[1].as_str().expect("value").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                payload,
            }
        })
        .collect()
}

/// An NDJSON line for a message (binary payloads as `payload_base64`).
pub fn ndjson_line(m: &Expected, with_station: bool, with_seq: bool) -> String {
    let mut o = serde_json::Map::new();
    if with_station {
        o.insert("station".into(), m.station.clone().into());
    }
    if with_seq {
        o.insert("seq".into(), m.seq.into());
    }
    let ts = chrono::DateTime::from_timestamp_micros(m.timestamp_us)
        .expect("timestamp in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    o.insert("timestamp".into(), ts.into());
    if let Some(id) = &m.id {
        o.insert("id".into(), id.clone().into());
    }
    if let Some(s) = &m.subject {
        o.insert("subject".into(), s.clone().into());
    }
    o.insert(
        "headers".into(),
        Value::Array(
            m.headers
                .iter()
                .map(|(n, v)| serde_json::json!([n, v]))
                .collect(),
        ),
    );
    match std::str::from_utf8(&m.payload) {
        Ok(s) => o.insert("payload".into(), s.into()),
        Err(_) => o.insert(
            "payload_base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&m.payload)
                .into(),
        ),
    };
    Value::Object(o).to_string()
}

/// Asserts that archived rows are exactly `expected` (same order by seq), field by field.
#[track_caller]
pub fn assert_rows_match(rows: &[&Row], expected: &[Expected]) {
    assert_eq!(
        rows.len(),
        expected.len(),
        "archive holds {} rows, expected {}",
        rows.len(),
        expected.len()
    );
    for (r, e) in rows.iter().zip(expected) {
        assert_eq!(r.station, e.station, "station of seq {}", e.seq);
        assert_eq!(r.seq, e.seq, "seq order");
        assert_eq!(r.timestamp_us, e.timestamp_us, "timestamp of seq {}", e.seq);
        assert_eq!(r.id, e.id, "id of seq {}", e.seq);
        assert_eq!(r.subject, e.subject, "subject of seq {}", e.seq);
        assert_eq!(r.headers, e.headers, "headers of seq {}", e.seq);
        assert_eq!(r.payload(), e.payload, "payload of seq {}", e.seq);
        let t = chrono::DateTime::from_timestamp_micros(e.timestamp_us).expect("in range");
        assert_eq!(
            r.date,
            t.format("%Y-%m-%d").to_string(),
            "date of seq {}",
            e.seq
        );
        assert_eq!(r.hour, t.format("%H").to_string(), "hour of seq {}", e.seq);
    }
}

// ---------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------

/// A `nats-server -js` this test owns (its own port and store directory), so
/// it can be stopped and started again; killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl NatsServer {
    /// Starts a server with its store under `dir`.
    pub fn start(dir: &Path) -> Result<Self, String> {
        nats_server_bin()?;
        let mut s = Self {
            child: None,
            port: free_port(),
            store: dir.join("nats-store"),
            log: dir.join("nats-server.log"),
        };
        s.launch();
        Ok(s)
    }

    fn launch(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open nats log");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(30), "nats-server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Graceful stop (SIGTERM), waiting for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A JetStream context on `url`, retrying while the server comes up (30 s).
pub async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    let start = Instant::now();
    loop {
        let attempt = async {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url)
                .await
                .map_err(|e| e.to_string())?;
            // A raw account-info request: JetStream answers it once it is up.
            let reply = client
                .request("$JS.API.INFO", bytes::Bytes::new())
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
            if let Some(err) = v.get("error") {
                return Err(err.to_string());
            }
            Ok::<_, String>(async_nats::jetstream::new(client))
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(js)) => return js,
            Ok(Err(e)) if start.elapsed() > Duration::from_secs(30) => {
                panic!("JetStream at {url} not usable: {e}")
            }
            Err(_) if start.elapsed() > Duration::from_secs(30) => {
                panic!("JetStream at {url} not answering")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates stream `name` on subjects `<name>.>` (file storage).
pub async fn create_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    max_messages: Option<i64>,
) {
    let cfg = async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        max_messages: max_messages.unwrap_or(-1),
        ..Default::default()
    };
    js.create_stream(cfg)
        .await
        .unwrap_or_else(|e| panic!("create stream {name}: {e}"));
}

/// A message the tests publish: subject, ordered headers, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    /// Subject.
    pub subject: String,
    /// Headers (including `Nats-Msg-Id` when the message has an id).
    pub headers: Vec<(String, String)>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Pub {
    /// The `Nats-Msg-Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == "Nats-Msg-Id")
            .map(|(_, v)| v.as_str())
    }
}

/// The `i`-th (1-based) test message of `stream`: JSON or binary payloads,
/// repeated and mixed-case header names, an id on most.
pub fn test_message(stream: &str, i: u64) -> Pub {
    let kinds = ["created", "updated", "shipped"];
    let subject = format!("{stream}.{}", kinds[(i % 3) as usize]);
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if i % 3 == 0 {
        headers.push(("X-Tag".into(), format!("a-{i}")));
        headers.push(("X-Tag".into(), format!("b-{i}")));
        headers.push(("x-tag".into(), format!("lower-{i}")));
    }
    if i % 5 != 0 {
        headers.push(("Nats-Msg-Id".into(), format!("{stream}-msg-{i}")));
    }
    if i % 11 == 0 {
        headers.push(("X-Unicode".into(), format!("café-{i}")));
    }
    let payload = if i % 7 == 0 {
        let mut p = vec![0u8, 0xff, 0xfe];
        p.extend_from_slice(&i.to_le_bytes());
        p.extend_from_slice(&[0x80, 0x00]);
        p
    } else {
        format!(
            "{{\"n\":{i},\"text\":\"order {i} ✓\",\"pad\":\"{}\"}}",
            "x".repeat((i % 50) as usize)
        )
        .into_bytes()
    };
    Pub {
        subject,
        headers,
        payload,
    }
}

/// Headers as an async-nats map (repeated names appended in order).
pub fn header_map(headers: &[(String, String)]) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (n, v) in headers {
        map.append(n.as_str(), v.as_str());
    }
    map
}

/// Headers of a received message as a list.
pub fn header_list(map: Option<&async_nats::HeaderMap>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(map) = map {
        for (name, values) in map.iter() {
            for v in values {
                out.push((name.to_string(), v.as_str().to_string()));
            }
        }
    }
    out
}

/// Headers in a comparable form: `drop` names removed (case-insensitive),
/// then a stable sort by name. NATS headers travel through a map in the
/// client library, so only the order of values within one name is kept.
pub fn normalize_headers(headers: &[(String, String)], drop: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !drop.iter().any(|d| d.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Publishes `msgs` with JetStream acks (at most 512 in flight); returns the
/// stream sequence of each.
pub async fn publish(js: &async_nats::jetstream::Context, msgs: &[Pub]) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(msgs.len());
    for chunk in msgs.chunks(512) {
        let mut acks = Vec::with_capacity(chunk.len());
        for m in chunk {
            let ack = js
                .publish_with_headers(
                    m.subject.clone(),
                    header_map(&m.headers),
                    m.payload.clone().into(),
                )
                .await
                .unwrap_or_else(|e| panic!("publish to {}: {e}", m.subject));
            acks.push(ack);
        }
        for ack in acks {
            let ack = ack.await.expect("JetStream publish ack");
            assert!(!ack.duplicate, "the test never publishes a duplicate");
            seqs.push(ack.sequence);
        }
    }
    seqs
}

/// Waits until the durable consumer `consumer` of `stream` has every message
/// up to `last_seq` acknowledged (nothing pending, nothing unacknowledged).
pub async fn wait_consumer_caught_up(
    js: &async_nats::jetstream::Context,
    stream: &str,
    consumer: &str,
    last_seq: u64,
    timeout: Duration,
    run: Option<&mut StrataRun>,
) {
    let start = Instant::now();
    let mut run = run;
    let mut last = String::new();
    loop {
        if let Some(r) = run.as_deref_mut() {
            r.assert_running();
        }
        if let Ok(s) = js.get_stream(stream).await {
            match s.consumer_info(consumer).await {
                Ok(info) => {
                    if info.num_pending == 0
                        && info.num_ack_pending == 0
                        && info.ack_floor.stream_sequence >= last_seq
                    {
                        return;
                    }
                    last = format!(
                        "pending {} ack_pending {} ack_floor {} delivered {}",
                        info.num_pending,
                        info.num_ack_pending,
                        info.ack_floor.stream_sequence,
                        info.delivered.stream_sequence
                    );
                }
                Err(e) => last = format!("consumer info: {e}"),
            }
        }
        if start.elapsed() > timeout {
            let logs = run.as_deref().map(StrataRun::logs).unwrap_or_default();
            panic!(
                "consumer {consumer} of {stream} did not catch up to {last_seq} within {timeout:?}: {last}\n{logs}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the durable consumer exists (Strata created it).
pub async fn wait_consumer_exists(
    js: &async_nats::jetstream::Context,
    stream: &str,
    consumer: &str,
    run: &mut StrataRun,
) {
    let start = Instant::now();
    loop {
        run.assert_running();
        if let Ok(s) = js.get_stream(stream).await {
            if s.consumer_info(consumer).await.is_ok() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "strata run created no consumer {consumer} on {stream} within 60 s\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct StreamMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl StreamMsg {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every message currently in `stream`, in stream order.
pub async fn read_stream(js: &async_nats::jetstream::Context, stream: &str) -> Vec<StreamMsg> {
    use async_nats::jetstream::consumer;
    use futures::StreamExt;

    let mut s = js.get_stream(stream).await.expect("get stream");
    let total = s.info().await.expect("stream info").state.messages;
    let c = s
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .expect("create a reader consumer");
    let mut out = Vec::with_capacity(total as usize);
    let start = Instant::now();
    while (out.len() as u64) < total {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "read only {} of {total} messages of {stream}",
            out.len()
        );
        let mut batch = c
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let seq = m.info().expect("message info").stream_sequence;
            out.push(StreamMsg {
                seq,
                subject: m.subject.to_string(),
                headers: header_list(m.headers.as_ref()),
                payload: m.payload.to_vec(),
            });
        }
    }
    out
}

/// Asserts that the archive holds exactly messages `1..=total` of `stream`
/// as [`test_message`] builds them, under seq = stream sequence, with
/// timestamps inside `[t0_us, t1_us]` (the publishing window).
#[track_caller]
pub fn assert_archived_test_messages(
    read: &ArchiveRead,
    stream: &str,
    total: u64,
    t0_us: i64,
    t1_us: i64,
) {
    let rows = read.station(stream);
    assert_eq!(
        rows.len() as u64,
        total,
        "archive of {stream}: {} rows, expected {total}; summary {}",
        rows.len(),
        read.summary["stations"]
    );
    for (i, r) in (1..=total).zip(&rows) {
        assert_eq!(
            r.seq as u64, i,
            "archive of {stream}: seq {i} missing or doubled"
        );
        let m = test_message(stream, i);
        assert_eq!(r.payload(), m.payload, "payload of seq {i}");
        assert_eq!(
            r.subject.as_deref(),
            Some(m.subject.as_str()),
            "subject of seq {i}"
        );
        assert_eq!(r.id.as_deref(), m.id(), "id of seq {i} (Nats-Msg-Id)");
        assert_eq!(
            normalize_headers(&r.headers, &["Nats-Msg-Id"]),
            normalize_headers(&m.headers, &["Nats-Msg-Id"]),
            "headers of seq {i}"
        );
        assert!(
            (t0_us..=t1_us).contains(&r.timestamp_us),
            "timestamp of seq {i} ({}) is not the JetStream publish time",
            r.timestamp_us
        );
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The durable consumer name `strata run` uses (the `[nats] consumer` default).
pub const ARCHIVER_CONSUMER: &str = "strata";

/// A `strata run` archiving `stream` of `nats_url` into `dir/archive`, its
/// HTTP listener guarded by `token`; the config is written to `dir/strata.toml`.
pub fn archiver_config(dir: &Path, nats_url: &str, stream: &str, token: &str) -> (Conf, PathBuf) {
    let mut conf = Conf::local(dir);
    conf.http = Some(HttpConf::free(Some(token)));
    conf.nats = Some(NatsConf {
        url: nats_url.to_string(),
        stations: vec![stream.to_string()],
        consumer: ARCHIVER_CONSUMER.to_string(),
        fetch_batch: None,
    });
    let config = conf.write(&dir.join("strata.toml"));
    (conf, config)
}

/// Starts `strata run` with `config` and waits until it answers HTTP and its
/// durable consumer on `stream` exists.
pub async fn start_archiver(
    dir: &Path,
    conf: &Conf,
    config: &Path,
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> StrataRun {
    let http = conf.http.clone().expect("archiver config has [http]");
    let mut run = StrataRun::spawn(config, &http, &[], dir);
    run.ready().await;
    wait_consumer_exists(js, stream, ARCHIVER_CONSUMER, &mut run).await;
    run
}

/// `strata flush --config CONFIG`, off the async runtime.
pub async fn flush(config: &Path) {
    let c = config.to_path_buf();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
}

/// [`read_archive_checked`], off the async runtime.
pub async fn read_checked(root: PathBuf) -> ArchiveRead {
    blocking(move || read_archive_checked(&root)).await
}

/// `strata restore --station STATION --nats URL --quiet` with `config`.
pub async fn restore_to_nats(config: &Path, station: &str, url: &str) {
    let (c, s, u) = (config.to_path_buf(), station.to_string(), url.to_string());
    blocking(move || {
        strata(args![
            "restore",
            "--station",
            s,
            "--config",
            c,
            "--nats",
            u,
            "--quiet"
        ])
        .ok()
    })
    .await;
}

// ---------------------------------------------------------------------------
// Seeds and figures
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// schedule of faults, so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Shuffles `v` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The seed of a seeded test: `env_var` when set (to replay a failure),
/// otherwise one from the clock. Printed either way with the command that
/// replays it.
pub fn test_seed(env_var: &str, test: &str) -> u64 {
    let seed = match std::env::var(env_var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{env_var}={v:?} is not a u64: {e}")),
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            SplitMix64::new(nanos ^ u64::from(std::process::id())).next_u64()
        }
    };
    eprintln!(
        "{test}: seed {seed} (replay: {env_var}={seed} scripts/test.sh -- {test} --nocapture)"
    );
    seed
}

/// Where the reliability figures go: `target/reliability/` (or under
/// `CARGO_TARGET_DIR`).
pub fn figures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("reliability")
}

/// Records the figures of one test as a JSON line in
/// `target/reliability/<test>.json` (replacing those of an earlier run);
/// `tests/py/figures.py` prints them as a table. `figures` is an object of
/// counts, e.g. `{"crashes": 30, "messages_checked": 9000, "lost": 0,
/// "duplicated": 0}`.
pub fn record_figures(test: &str, figures: Value) {
    let mut line = serde_json::Map::new();
    line.insert("test".into(), test.into());
    line.insert(
        "at".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    if let Value::Object(map) = figures {
        line.extend(map);
    }
    let dir = figures_dir();
    fs::create_dir_all(&dir).expect("create target/reliability");
    fs::write(
        dir.join(format!("{test}.json")),
        format!("{}\n", Value::Object(line)),
    )
    .expect("write figures");
}

/// The peak resident set (`VmHWM`, bytes) of a running process, from `/proc`.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
