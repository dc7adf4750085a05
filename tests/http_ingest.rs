//! HTTP ingest end to end: the router on a loopback port, a real WAL in a
//! temporary directory, reqwest as the client.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use strata::config::{HttpConfig, Secret};
use strata::message::{Message, StationName};
use strata::metrics::Metrics;
use strata::source::http::{self, FlushHandle, HttpState};
use strata::wal::{Wal, WalOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    base: String,
    wal: Wal,
    opts: WalOptions,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

struct Setup {
    token: Option<&'static str>,
    max_body_bytes: usize,
    max_inflight_bytes: usize,
    max_disk_bytes: u64,
    flush: Option<Arc<dyn FlushHandle>>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            token: None,
            max_body_bytes: HttpConfig::default().max_body_bytes,
            max_inflight_bytes: HttpConfig::default().max_inflight_bytes,
            max_disk_bytes: WalOptions::new("unused").max_disk_bytes,
            flush: None,
        }
    }
}

async fn start(setup: Setup) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = WalOptions::new(dir.path().join("wal"));
    opts.max_disk_bytes = setup.max_disk_bytes;
    let wal = Wal::open(opts.clone()).unwrap();
    let config = HttpConfig {
        listen: "127.0.0.1:0".into(),
        token: setup.token.map(Secret::new),
        max_body_bytes: setup.max_body_bytes,
        max_inflight_bytes: setup.max_inflight_bytes,
    };
    let mut state = HttpState::new(wal.clone(), Arc::new(Metrics::new()), &config);
    if let Some(flush) = setup.flush {
        state = state.with_flush(flush);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(http::serve(listener, state, async {
        let _ = rx.await;
    }));
    Server {
        base,
        wal,
        opts,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, station: &str, body: impl Into<String>) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.url(&format!("/v1/stations/{station}/messages")))
            .body(body.into())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn stop(mut self) -> (Wal, WalOptions, tempfile::TempDir) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("graceful shutdown")
            .unwrap()
            .unwrap();
        (self.wal, self.opts, self._dir)
    }
}

/// Every message the WAL holds: seals the active segment, reads every sealed one.
fn durable(wal: &Wal) -> Vec<Message> {
    wal.seal().unwrap();
    let mut all = Vec::new();
    for seg in wal.sealed() {
        all.extend(wal.read_segment(seg.id).unwrap());
    }
    all
}

fn lines(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"payload\":\"{tag}-{i}\",\"headers\":[[\"k\",\"v{i}\"]]}}\n"))
        .collect()
}

#[tokio::test]
async fn accepted_batches_answer_with_their_sequences() {
    let s = start(Setup::default()).await;
    let (status, body) = s.post("orders", lines(3, "a")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["duplicates"], 0);
    assert_eq!(body["first_seq"], 1);
    assert_eq!(body["last_seq"], 3);

    // Explicit sequences make retries harmless.
    let with_seq = r#"{"seq":100,"payload":"x"}
{"seq":101,"payload":"y"}"#;
    let (status, body) = s.post("orders", with_seq).await;
    assert_eq!(
        (status, &body["accepted"]),
        (200, &Value::from(2)),
        "{body}"
    );
    let (status, body) = s.post("orders", with_seq).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["duplicates"], 2);

    // An empty body stores nothing.
    let (status, body) = s.post("orders", "\n").await;
    assert_eq!((status, &body["accepted"]), (200, &Value::from(0)));

    let (wal, _opts, _dir) = s.stop().await;
    let msgs = durable(&wal);
    assert_eq!(msgs.len(), 5);
    assert_eq!(&msgs[0].payload[..], b"a-0");
    assert_eq!(msgs[0].headers[0].value, "v0");
    assert!(msgs.iter().all(|m| m.station.as_str() == "orders"));
}

#[tokio::test]
async fn json_array_bodies_are_accepted() {
    let s = start(Setup::default()).await;
    let (status, body) = s
        .post(
            "orders",
            r#" [{"payload":"a","id":"i1"},{"payload_base64":"/wA=","subject":"s.t"}]"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    let (wal, _opts, _dir) = s.stop().await;
    let msgs = durable(&wal);
    assert_eq!(msgs[0].id.as_deref(), Some("i1"));
    assert_eq!(&msgs[1].payload[..], &[0xff, 0x00]);
    assert_eq!(msgs[1].subject.as_deref(), Some("s.t"));
}

#[tokio::test]
async fn bad_input_is_a_400_naming_line_and_field_and_stores_nothing() {
    let s = start(Setup::default()).await;
    let body = "{\"payload\":\"ok\"}\n{\"payload\":\"ok\"}\n{\"timestamp\":\"yesterday\"}\n";
    let (status, err) = s.post("orders", body).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["line"], 3);
    assert_eq!(err["field"], "timestamp");
    assert!(err["error"].as_str().unwrap().contains("RFC 3339"), "{err}");

    let (status, err) = s.post("orders", "[{},{\"station\":\"billing\"}]").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        (err["line"].as_u64(), err["field"].as_str()),
        (Some(2), Some("station"))
    );

    let (status, err) = s.post("orders", "{\"paylod\":\"typo\"}").await;
    assert_eq!((status, err["field"].as_str()), (400, Some("paylod")));

    // Bad station names in the path name the rule.
    let (status, err) = s.post("a=b", lines(1, "x")).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("A-Z a-z 0-9 _ - ."),
        "{err}"
    );

    // None of it was stored: the next good message is the first.
    let (status, ok) = s.post("orders", lines(1, "good")).await;
    assert_eq!((status, &ok["first_seq"]), (200, &Value::from(1)), "{ok}");
    let (wal, _opts, _dir) = s.stop().await;
    assert_eq!(durable(&wal).len(), 1);
}

#[tokio::test]
async fn tokens_guard_ingest_and_flush_but_not_health() {
    let s = start(Setup {
        token: Some("s3cret"),
        flush: Some(Arc::new(FakeFlush(Ok(serde_json::json!({"uploaded": 0}))))),
        ..Setup::default()
    })
    .await;
    let client = reqwest::Client::new();
    let url = s.url("/v1/stations/orders/messages");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret2"),
        Some("Basic s3cret"),
    ] {
        let mut req = client.post(&url).body(lines(1, "x"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        assert!(!body.to_string().contains("s3cret"));
    }
    let r = client
        .post(&url)
        .bearer_auth("s3cret")
        .body(lines(2, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let r = client.post(s.url("/v1/flush")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(s.url("/v1/flush"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["uploaded"], 0);

    let r = client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let (wal, _opts, _dir) = s.stop().await;
    assert_eq!(durable(&wal).len(), 2);
}

#[tokio::test]
async fn bodies_over_the_limit_are_a_413_with_json() {
    let s = start(Setup {
        max_body_bytes: 1024,
        ..Setup::default()
    })
    .await;
    let (status, body) = s.post("orders", lines(100, "big")).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max_body_bytes"),
        "{body}"
    );

    // Without Content-Length (chunked), the limit holds while reading.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let chunk = "x".repeat(800);
    let request = format!(
        "POST /v1/stations/orders/messages HTTP/1.1\r\nHost: {addr}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_body_bytes"), "{answer}");

    // The server is still there.
    let (status, _) = s.post("orders", lines(1, "small")).await;
    assert_eq!(status, 200);
    s.stop().await;
}

/// Sends the head of a POST announcing `len` body bytes (or chunked when
/// `None`) and `first` bytes of the body, and leaves the request open.
async fn open_request(s: &Server, len: Option<usize>, first: &[u8]) -> tokio::net::TcpStream {
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let framing = match len {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_string(),
    };
    let head = format!(
        "POST /v1/stations/orders/messages HTTP/1.1\r\nHost: {addr}\r\n{framing}\r\n\
         Connection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    if len.is_some() {
        tcp.write_all(first).await.unwrap();
    } else {
        tcp.write_all(format!("{:x}\r\n", first.len()).as_bytes())
            .await
            .unwrap();
        tcp.write_all(first).await.unwrap();
        tcp.write_all(b"\r\n").await.unwrap();
    }
    tcp
}

/// The `strata_http_inflight_bytes` gauge.
async fn inflight_bytes(s: &Server) -> u64 {
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("strata_http_inflight_bytes "))
        .unwrap_or_else(|| panic!("no strata_http_inflight_bytes in\n{text}"))
        .parse()
        .unwrap()
}

async fn wait_inflight_at_least(s: &Server, bytes: u64) {
    let start = std::time::Instant::now();
    while inflight_bytes(s).await < bytes {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server never held {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn request_bytes_in_flight_are_bounded_with_503_and_retry_after() {
    let s = start(Setup {
        max_body_bytes: 64 << 10,
        max_inflight_bytes: 100 << 10,
        ..Setup::default()
    })
    .await;
    let line = format!("{{\"payload\":\"{}\"}}\n", "a".repeat((60 << 10) - 20));
    assert!(line.len() < 64 << 10 && line.len() > 50 << 10);

    // A slow client announces 60 KiB and sends part of it: its bytes are taken.
    let mut slow = open_request(&s, Some(line.len()), &line.as_bytes()[..1000]).await;
    wait_inflight_at_least(&s, line.len() as u64).await;

    // A second 60 KiB body does not fit beside it: 503, Retry-After, JSON.
    let r = reqwest::Client::new()
        .post(s.url("/v1/stations/orders/messages"))
        .body(line.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers().get("retry-after").unwrap(),
        &http::RETRY_AFTER_SECS.to_string()
    );
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("max_inflight_bytes"),
        "{err}"
    );
    // A small one still fits.
    let (status, body) = s.post("orders", lines(1, "small")).await;
    assert_eq!(status, 200, "{body}");

    // A chunked body (no length announced) is counted as it arrives.
    let mut chunked = open_request(&s, None, &[b' '; 30 << 10]).await;
    wait_inflight_at_least(&s, (line.len() + (30 << 10)) as u64).await;
    let r = reqwest::Client::new()
        .post(s.url("/v1/stations/orders/messages"))
        .body(lines(1, "x") + &" ".repeat(20 << 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "60 + 30 + 20 KiB is over 100 KiB");
    // The chunked client gives up: its bytes are given back too.
    let _ = chunked.shutdown().await;
    drop(chunked);

    // The slow client finishes: stored, and its bytes are given back.
    slow.write_all(&line.as_bytes()[1000..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let start_wait = std::time::Instant::now();
    while inflight_bytes(&s).await != 0 {
        assert!(
            start_wait.elapsed() < Duration::from_secs(10),
            "bytes never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = s.post("orders", line.clone()).await;
    assert_eq!(status, 200, "{body}");

    let (wal, _opts, _dir) = s.stop().await;
    let stored = durable(&wal);
    assert_eq!(
        stored.len(),
        3,
        "slow, small and the last: nothing of a refused body"
    );
}

#[tokio::test]
async fn a_full_wal_answers_503_with_retry_after() {
    let s = start(Setup {
        max_disk_bytes: 64 << 10,
        ..Setup::default()
    })
    .await;
    let payload = "p".repeat(16 << 10);
    let body = format!("{{\"payload\":\"{payload}\"}}\n");
    let client = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..64 {
        let r = client
            .post(s.url("/v1/stations/orders/messages"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            503 => {
                refused = Some(r);
                break;
            }
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let r = refused.expect("the WAL fills up within 1 MiB of posts");
    assert_eq!(
        r.headers().get("retry-after").unwrap(),
        &http::RETRY_AFTER_SECS.to_string()
    );
    let err: Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("full"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_a_404_with_json_and_metrics_are_served() {
    let s = start(Setup::default()).await;
    let client = reqwest::Client::new();
    let r = client.get(s.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("/v2/nothing"),
        "{body}"
    );

    let (status, _) = s.post("orders", lines(4, "m")).await;
    assert_eq!(status, 200);
    let r = client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"strata_ingested_messages_total{station="orders",source="http"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"strata_http_requests_total{code="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("# TYPE strata_wal_bytes gauge"), "{text}");

    // Prometheus asks for OpenMetrics first, and gets it: the same samples,
    // counter families named without `_total`, `# EOF` at the end.
    let r = client
        .get(s.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,\
             application/openmetrics-text;version=0.0.1;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"strata_ingested_messages_total{station="orders",source="http"} 4"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE strata_ingested_messages counter"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    // No flush handle in this process.
    let r = client.post(s.url("/v1/flush")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_naming_the_right_one() {
    let s = start(Setup::default()).await;
    let client = reqwest::Client::new();
    for (method, path, allowed) in [
        ("GET", "/v1/stations/x/messages", "POST"),
        ("PUT", "/v1/stations/x/messages", "POST"),
        ("GET", "/v1/flush", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/metrics", "GET"),
    ] {
        let r = client
            .request(method.parse().unwrap(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        let allow = r.headers()["allow"].to_str().unwrap().to_string();
        assert!(allow.contains(allowed), "{method} {path}: Allow: {allow}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("{method} is not allowed"))
                && error.contains(&format!("use {allowed} {path}")),
            "{method} {path}: {body}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_accepted_messages_and_duplicates_apart() {
    let s = start(Setup::default()).await;
    let body = |seqs: &[u64]| -> String {
        seqs.iter()
            .map(|n| format!("{{\"seq\":{n},\"payload\":\"abcd\"}}\n"))
            .collect()
    };
    let (status, reply) = s.post("orders", body(&[1, 2, 3])).await;
    assert_eq!((status, reply["accepted"].as_u64()), (200, Some(3)));
    // Two redeliveries and one new message; a repeat inside the batch is a duplicate too.
    let (status, reply) = s.post("orders", body(&[2, 3, 4, 4])).await;
    assert_eq!(status, 200);
    assert_eq!(
        (reply["accepted"].as_u64(), reply["duplicates"].as_u64()),
        (Some(1), Some(3))
    );
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"strata_ingested_messages_total{station="orders",source="http"} 4"#,
        r#"strata_ingested_bytes_total{station="orders",source="http"} 16"#,
        r#"strata_duplicates_total{station="orders",source="http"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn failed_flushes_are_a_500_with_the_error() {
    let s = start(Setup {
        flush: Some(Arc::new(FakeFlush(Err("upload to s3://b failed".into())))),
        ..Setup::default()
    })
    .await;
    let r = reqwest::Client::new()
        .post(s.url("/v1/flush"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upload to s3://b failed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_store_every_message_exactly_once() {
    const CLIENTS: usize = 20;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 50;
    let s = Arc::new(start(Setup::default()).await);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seqs = Vec::new();
            for b in 0..BATCHES {
                let station = if c % 2 == 0 { "even" } else { "odd" };
                let r = client
                    .post(s.url(&format!("/v1/stations/{station}/messages")))
                    .body(lines(PER_BATCH, &format!("c{c}-b{b}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["accepted"], PER_BATCH);
                let (first, last) = (
                    body["first_seq"].as_u64().unwrap(),
                    body["last_seq"].as_u64().unwrap(),
                );
                assert_eq!(
                    last - first + 1,
                    PER_BATCH as u64,
                    "a batch gets consecutive sequences"
                );
                seqs.push((station, first, last));
            }
            seqs
        }));
    }
    let mut ranges = Vec::new();
    for t in tasks {
        ranges.extend(t.await.unwrap());
    }
    let s = Arc::into_inner(s).expect("every client finished");
    let (wal, opts, _dir) = s.stop().await;

    let check = |msgs: Vec<Message>| {
        assert_eq!(msgs.len(), CLIENTS * BATCHES * PER_BATCH);
        let mut by_station: BTreeMap<StationName, BTreeSet<u64>> = BTreeMap::new();
        let mut payloads = BTreeSet::new();
        for m in &msgs {
            assert!(
                by_station
                    .entry(m.station.clone())
                    .or_default()
                    .insert(m.seq),
                "seq twice"
            );
            assert!(payloads.insert(m.payload.clone()), "payload twice");
        }
        for (station, seqs) in by_station {
            let n = seqs.len() as u64;
            assert_eq!(seqs, (1..=n).collect(), "{station}: gapless sequences");
        }
        for c in 0..CLIENTS {
            for b in 0..BATCHES {
                for i in 0..PER_BATCH {
                    let p = format!("c{c}-b{b}-{i}");
                    assert!(payloads.contains(p.as_bytes()), "{p} missing");
                }
            }
        }
    };
    check(durable(&wal));
    // And after reopening the directory.
    close(wal);
    let reopened = Wal::open(opts).unwrap();
    check(durable(&reopened));
    let reported: u64 = ranges.iter().map(|(_, f, l)| l - f + 1).sum();
    assert_eq!(reported, (CLIENTS * BATCHES * PER_BATCH) as u64);
}

/// Closes the WAL and lets go of it, releasing the directory's lock.
fn close(wal: Wal) {
    wal.close().unwrap();
}

struct FakeFlush(Result<Value, String>);

#[async_trait::async_trait]
impl FlushHandle for FakeFlush {
    async fn flush(&self) -> Result<Value, String> {
        self.0.clone()
    }
}
