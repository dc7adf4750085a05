//! The NATS JetStream test server (`STRATA_TEST_NATS_URL`), a server of a
//! test's own ([`NatsServer`], to stop and restart), streams, publishing with
//! acks, and reading a stream back.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::msg::{test_message, Pub};
use super::python::ArchiveRead;
use super::strata::StrataRun;
use super::{env_var, free_port, signal, wait_until, which};

/// The shared NATS JetStream test server, e.g. `nats://127.0.0.1:PORT`.
pub fn url() -> Result<String, String> {
    env_var("STRATA_TEST_NATS_URL", "nats-server -js")
}

/// `nats-server` on PATH, for tests that run (and restart) their own server.
pub fn server_bin() -> Result<PathBuf, String> {
    which("nats-server")
}

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
        server_bin()?;
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

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
        }
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
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
