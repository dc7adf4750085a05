//! The real S3-compatible server goes away mid-upload and comes back: `strata
//! run` archives into a moto server of the test's own, reached through a TCP
//! proxy the test cuts (every connection reset, the port refusing) and
//! restores, and whose process it freezes (SIGSTOP: requests hang until the
//! request timeout) and thaws, while large files go up as multipart uploads.
//! Object_store's own retries are limited (`max_retries = 1`, `retry_timeout
//! = "2s"`) so the outages reach the compactor and show in `/metrics`.
//! Afterwards the archive holds every acknowledged message once, every
//! multipart upload Strata started is completed or aborted (an abort the
//! outage failed is retried until the server answers), and `/metrics` shows
//! the failures. The one upload Strata cannot abort is one whose start the
//! server carried out while its answer was lost: Strata never learnt its id.
//!
//! The schedule (kinds of fault, their moments and lengths) comes from a seed,
//! printed; `STRATA_STORE_SEED=<seed>` replays it.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{conf::*, figures::*, msg::*, python::*, strata::*, *};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const TOKEN: &str = "outage-token";
const SEED_ENV: &str = "STRATA_STORE_SEED";
const CYCLES: usize = 6;
/// Messages per cycle, each with 64 KiB of random bytes: one ~6.5 MiB file,
/// a multipart upload of two parts, about 3 s through the throttled proxy.
const PER_CYCLE: usize = 100;
const PAYLOAD: usize = 64 * 1024;

/// A moto server of this test's own; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(dir: &std::path::Path) -> Result<Self, String> {
        let py = python()?;
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).map_err(|e| e.to_string())?;
        let child = Command::new(py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start moto: {e}"))?;
        let moto = Self { child, port };
        wait_until(Duration::from_secs(60), "moto to answer", || {
            probe::answers(&moto.endpoint())
        });
        Ok(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP / SIGCONT: a server that hangs, then carries on.
    fn freeze(&self, on: bool) {
        signal(self.child.id(), if on { "STOP" } else { "CONT" });
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `url` answers at all (no reqwest blocking feature: a raw socket).
mod probe {
    pub fn answers(url: &str) -> bool {
        use std::io::{Read, Write};
        let addr = url.trim_start_matches("http://");
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
    }
}

/// A TCP proxy to the store that can be cut: `down` resets every connection
/// and closes the port; `up` listens again on the same port.
struct Proxy {
    port: u16,
    target: u16,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    async fn start(target: u16) -> Arc<Self> {
        let p = Arc::new(Self {
            port: free_port(),
            target,
            task: Mutex::new(None),
        });
        p.up().await;
        p
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn up(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(start.elapsed() < Duration::from_secs(10), "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let target = self.target;
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection: the client sees its requests cut.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        relay(&mut inbound, outbound).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        *self.task.lock().expect("lock") = Some(task);
    }

    async fn down(&self) {
        let task = self.task.lock().expect("lock").take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Relays a connection, uploads throttled to about 2 MiB/s so that an upload
/// of a few MiB takes seconds and a fault can strike in the middle of it.
async fn relay(inbound: &mut TcpStream, mut outbound: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut in_r, mut in_w) = inbound.split();
    let (mut out_r, mut out_w) = outbound.split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match in_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if out_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(n as u64 / 2048)).await;
        }
        let _ = out_w.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
        let _ = in_w.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Multipart uploads the server holds, neither completed nor aborted.
async fn incomplete_uploads(endpoint: &str, bucket: &str) -> usize {
    let body = http_client()
        .get(format!("{endpoint}/{bucket}?uploads"))
        .send()
        .await
        .expect("list multipart uploads")
        .text()
        .await
        .expect("body");
    body.matches("<Upload>").count()
}

/// The kinds of fault.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The proxy resets every connection and refuses new ones for a while.
    Cut,
    /// The server process hangs (SIGSTOP) for a while, past the request timeout.
    Freeze,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_going_away_mid_upload_loses_doubles_and_orphans_nothing() {
    need!(python());
    let _serial = serial_async().await;
    let test = "the_store_going_away_mid_upload_loses_doubles_and_orphans_nothing";
    let seed = test_seed(SEED_ENV, test);
    let mut rng = SplitMix64::new(seed);
    let began = Instant::now();
    let dir = tempdir();
    let moto = need!(Moto::start(dir.path()));
    let proxy = Proxy::start(moto.port).await;
    let bucket = s3::unique_bucket("strata-e2e");
    let (e, b) = (moto.endpoint(), bucket.clone());
    blocking(move || s3::create_bucket(&e, &b)).await;

    let mut conf = Conf::local(dir.path());
    conf.storage = Storage::S3 {
        endpoint: proxy.endpoint(),
        bucket: bucket.clone(),
        prefix: "archive".into(),
    };
    conf.segment_max_age = Some("1s".into());
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    let http = conf.http.clone().expect("http");
    let toml = conf.toml().replace(
        "path_style = true\n",
        "path_style = true\nrequest_timeout = \"3s\"\nconnect_timeout = \"1s\"\n\
         max_retries = 1\nretry_timeout = \"2s\"\n",
    ) + "\n[compaction]\nmultipart_threshold = \"5MiB\"\npart_size = \"5MiB\"\n";
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, toml).expect("write config");
    let mut run = StrataRun::spawn(&config, &http, &[], dir.path());
    run.ready().await;
    let client = http_client();

    let mut expected: Vec<Expected> = Vec::new();
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let mut seq = 0i64;
    for cycle in 0..CYCLES {
        let batch: Vec<Expected> = (0..PER_CYCLE)
            .map(|_| {
                seq += 1;
                Expected {
                    station: "outage".into(),
                    seq,
                    timestamp_us: now_us(),
                    id: None,
                    subject: None,
                    headers: Vec::new(),
                    payload: rng.bytes(PAYLOAD),
                }
            })
            .collect();
        for chunk in batch.chunks(25) {
            let body: String = chunk
                .iter()
                .map(|m| ndjson_line(m, false, true) + "\n")
                .collect();
            let r = post_messages(&client, &http, "outage", body, Some(TOKEN)).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        expected.extend(batch);
        // The segment seals within a second and its upload starts: strike
        // somewhere in it.
        tokio::time::sleep(Duration::from_millis(rng.range(500, 3500))).await;
        let kind = if rng.range(0, 2) == 0 {
            Fault::Cut
        } else {
            Fault::Freeze
        };
        let length = Duration::from_millis(rng.range(1000, 5000));
        eprintln!("cycle {cycle}: {kind:?} for {length:?}");
        match kind {
            Fault::Cut => {
                proxy.down().await;
                tokio::time::sleep(length).await;
                proxy.up().await;
                *faults.entry("connections_cut").or_default() += 1;
            }
            Fault::Freeze => {
                moto.freeze(true);
                tokio::time::sleep(length).await;
                moto.freeze(false);
                *faults.entry("server_frozen").or_default() += 1;
            }
        }
        run.assert_running();
    }

    // Everything goes up in the end (a flush retries at once).
    let start = Instant::now();
    loop {
        let r = client
            .post(format!("{}/v1/flush", http.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("flush");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "flush still fails: {status} {body}\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Uploads the outage failed are aborted, retried until the server answers.
    // Only an upload whose start the server carried out without Strata
    // hearing back (its id unknown, so it cannot be aborted) may remain: at
    // most one per failed start.
    let starts_failed = run
        .stderr()
        .lines()
        .filter(|l| l.contains("compaction failed") && l.contains("put_multipart "))
        .count();
    let start = Instant::now();
    let mut orphans = incomplete_uploads(&moto.endpoint(), &bucket).await;
    let aborts_pending = |log: &str| {
        log.matches("cannot abort multipart upload yet").count()
            > log
                .matches("multipart upload aborted after retries")
                .count()
    };
    while (orphans > starts_failed || aborts_pending(&run.stderr()))
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        orphans = incomplete_uploads(&moto.endpoint(), &bucket).await;
    }
    let metrics = run.metrics().await;
    let errors = metric_sum(&metrics, "strata_upload_errors_total").unwrap_or(0.0);
    let retries = metric_sum(&metrics, "strata_upload_retries_total").unwrap_or(0.0);
    let status = run.terminate().await;
    assert!(status.success(), "{}", run.logs());
    let aborts_retried = run
        .stderr()
        .matches("cannot abort multipart upload yet")
        .count();
    let local = dir.path().join("downloaded");
    let (e, b, l) = (moto.endpoint(), bucket.clone(), local.clone());
    blocking(move || s3::download(&e, &b, "archive", &l)).await;
    let read = blocking(move || read_archive_checked(&local)).await;
    let rows = read.station("outage");
    let mut seen = BTreeMap::new();
    for r in &rows {
        *seen.entry(r.seq).or_insert(0u64) += 1;
    }
    let lost = expected
        .iter()
        .filter(|m| !seen.contains_key(&m.seq))
        .count();
    let duplicated: u64 = seen.values().map(|n| n - 1).sum();
    record_figures(
        "store_outage",
        serde_json::json!({
            "seed": seed.to_string(),
            "faults_injected": faults,
            "messages_checked": expected.len(),
            "bytes_uploaded": expected.len() * PAYLOAD,
            "upload_errors_seen": errors,
            "upload_retries_seen": retries,
            "aborts_retried": aborts_retried,
            "orphaned_multipart_uploads": orphans,
            "multipart_starts_unanswered": starts_failed,
            "lost": lost,
            "duplicated": duplicated,
            "seconds": began.elapsed().as_secs(),
        }),
    );
    eprintln!(
        "store outage (seed {seed}): {faults:?}, {} messages, errors {errors}, retries {retries}, orphans {orphans}, lost {lost}, duplicated {duplicated}, {:?}",
        expected.len(),
        began.elapsed()
    );
    assert_eq!((lost, duplicated), (0, 0), "seed {seed}");
    let log = run.stderr();
    let notes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("multipart") || l.contains("abort"))
        .collect();
    assert!(
        orphans <= starts_failed,
        "seed {seed}: {orphans} incomplete multipart uploads left on the server, \
         {starts_failed} starts unanswered; the log says:\n{}",
        notes.join("\n")
    );
    assert_eq!(
        log.matches("cannot abort multipart upload yet").count(),
        log.matches("multipart upload aborted after retries")
            .count(),
        "seed {seed}: every abort the outage failed succeeds once the server is back:\n{}",
        notes.join("\n")
    );
    assert!(
        errors + retries > 0.0,
        "seed {seed}: the faults are not visible in /metrics:\n{metrics}"
    );
    assert_rows_match(&rows, &expected);
    drop(proxy);
    drop(moto);
}
