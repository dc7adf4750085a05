//! The `strata` binary built for this test run: one-shot commands
//! ([`strata`], [`Out`]), a running `strata run` ([`StrataRun`]: readiness,
//! logs, signals) and its HTTP API ([`post_messages`], [`metric_sum`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::conf::{Conf, HttpConf, NatsConf};
use super::nats::wait_consumer_exists;
use super::python::{read_archive_checked, ArchiveRead};
use super::{blocking, signal};
use crate::args;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

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
