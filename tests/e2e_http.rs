//! End to end: `strata run` with HTTP ingest. Every status code of the
//! contract through the real binary (200, 400, 401, 413, 503 + Retry-After),
//! 20 concurrent clients whose messages all land exactly once, and clean
//! exits on SIGTERM/SIGINT that lose nothing acknowledged.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{conf::*, python::*, strata::*, *};

const TOKEN: &str = "e2e-http-token-7d1f";

/// One NDJSON line without station or seq (HTTP assigns them).
fn line(payload: &str, headers: &[(&str, &str)]) -> String {
    let headers: Vec<Value> = headers
        .iter()
        .map(|(n, v)| serde_json::json!([n, v]))
        .collect();
    serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "subject": "http.test",
        "headers": headers,
        "payload": payload,
    })
    .to_string()
}

fn body(lines: &[String]) -> String {
    let mut b = lines.join("\n");
    b.push('\n');
    b
}

/// Starts `strata run` on a local-folder archive with `tweak` applied to the config.
async fn start(
    dir: &Path,
    tweak: impl FnOnce(&mut Conf),
    extra: &[&str],
) -> (Conf, PathBuf, StrataRun) {
    let mut conf = Conf::local(dir);
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    tweak(&mut conf);
    let config = conf.write(&dir.join("strata.toml"));
    let http = conf.http.clone().expect("http");
    let mut run = StrataRun::spawn(&config, &http, extra, dir);
    run.ready().await;
    (conf, config, run)
}

fn archive_of(conf: &Conf) -> PathBuf {
    match &conf.storage {
        Storage::File(p) => p.clone(),
        Storage::S3 { .. } => unreachable!("local archive"),
    }
}

/// Checks a 200 answer and returns (accepted, duplicates, first_seq, last_seq).
#[track_caller]
fn accepted(r: &Resp) -> (u64, u64, Option<u64>, Option<u64>) {
    assert_eq!(r.status, 200, "expected 200, got {}: {}", r.status, r.body);
    let v = r.json();
    let acc = v["accepted"]
        .as_u64()
        .unwrap_or_else(|| panic!("no accepted: {v}"));
    let dup = v["duplicates"]
        .as_u64()
        .unwrap_or_else(|| panic!("no duplicates: {v}"));
    let first = v["first_seq"].as_u64();
    let last = v["last_seq"].as_u64();
    if acc > 0 {
        let (f, l) = (first.expect("first_seq"), last.expect("last_seq"));
        assert_eq!(
            l - f + 1,
            acc,
            "first_seq..last_seq must span the accepted messages: {v}"
        );
    }
    (acc, dup, first, last)
}

/// The 400 body names the line and the field.
#[track_caller]
fn assert_names_line_and_field(r: &Resp, line_no: u64, field: &str) {
    assert_eq!(r.status, 400, "expected 400: {}", r.body);
    let v = r.json();
    let text = r.body.to_lowercase();
    let line_ok = v["line"].as_u64() == Some(line_no) || text.contains(&format!("line {line_no}"));
    assert!(line_ok, "400 body should name line {line_no}: {}", r.body);
    assert!(
        text.contains(field),
        "400 body should name field {field}: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_code_through_the_real_binary() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let (conf, config, mut run) = start(
        dir.path(),
        |c| c.http.as_mut().expect("http").max_body_bytes = Some(64 * 1024),
        &[],
    )
    .await;
    let http = conf.http.clone().expect("http");
    let client = http_client();

    // 200 for NDJSON; the WAL gives consecutive sequences.
    let first: Vec<String> = (0..3)
        .map(|i| line(&format!("codes-{i}"), &[("X-N", "1")]))
        .collect();
    let r = post_messages(&client, &http, "http_codes", body(&first), Some(TOKEN)).await;
    let (acc, dup, _, last) = accepted(&r);
    assert_eq!((acc, dup), (3, 0), "{}", r.body);

    // 200 for a JSON array of the same objects.
    let arr: Vec<Value> = (3..5)
        .map(|i| serde_json::from_str(&line(&format!("codes-{i}"), &[])).expect("json"))
        .collect();
    let r = post_messages(
        &client,
        &http,
        "http_codes",
        Value::Array(arr).to_string(),
        Some(TOKEN),
    )
    .await;
    let (acc, _, first_seq, _) = accepted(&r);
    assert_eq!(acc, 2, "{}", r.body);
    assert_eq!(
        first_seq,
        last.map(|l| l + 1),
        "sequences continue: {}",
        r.body
    );

    // Explicit sequences: the second post is all duplicates.
    let seqd: String = (1..=3)
        .map(|s| {
            let mut v: Value = serde_json::from_str(&line(&format!("seq-{s}"), &[])).expect("json");
            v["seq"] = s.into();
            v.to_string() + "\n"
        })
        .collect();
    let r = post_messages(&client, &http, "http_seq", seqd.clone(), Some(TOKEN)).await;
    assert_eq!(accepted(&r).0, 3, "{}", r.body);
    let r = post_messages(&client, &http, "http_seq", seqd, Some(TOKEN)).await;
    let (acc, dup, _, _) = accepted(&r);
    assert_eq!(
        (acc, dup),
        (0, 3),
        "re-posting the same sequences: {}",
        r.body
    );

    // 400: the body names the line and the field; nothing of the batch is kept.
    let bad_ts = format!(
        "{}\n{}\n",
        line("rejected-1", &[]),
        r#"{"timestamp":"not a time","payload":"rejected-2"}"#
    );
    let r = post_messages(&client, &http, "http_codes", bad_ts, Some(TOKEN)).await;
    assert_names_line_and_field(&r, 2, "timestamp");
    let bad_b64 = format!(
        "{}\n{}\n{}\n",
        line("rejected-3", &[]),
        line("rejected-4", &[]),
        r#"{"timestamp":"2026-11-24T10:00:00Z","payload_base64":"%%%"}"#
    );
    let r = post_messages(&client, &http, "http_codes", bad_b64, Some(TOKEN)).await;
    assert_names_line_and_field(&r, 3, "payload_base64");
    let r = post_messages(
        &client,
        &http,
        "http_codes",
        "{\"payload\": \n".to_string(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 400, "invalid JSON: {}", r.body);

    // 401 without a token and with a wrong one.
    let r = post_messages(&client, &http, "http_codes", body(&first), None).await;
    assert_eq!(r.status, 401, "no token: {}", r.body);
    let r = post_messages(
        &client,
        &http,
        "http_codes",
        body(&first),
        Some("wrong-token"),
    )
    .await;
    assert_eq!(r.status, 401, "wrong token: {}", r.body);
    assert!(!r.body.contains(TOKEN), "the 401 body shows the token");

    // 413 over max_body_bytes.
    let big: Vec<String> = (0..400)
        .map(|i| line(&format!("{i}-{}", "z".repeat(300)), &[]))
        .collect();
    let big = body(&big);
    assert!(big.len() > 64 * 1024);
    // Its own client: the server answers before reading the whole body.
    let r = post_messages(&http_client(), &http, "http_codes", big, Some(TOKEN)).await;
    assert_eq!(r.status, 413, "over max_body_bytes: {}", r.body);

    // /healthz and /metrics.
    let health = client
        .get(format!("{}/healthz", http.base()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let metrics = run.metrics().await;
    assert!(
        metrics.contains("strata_"),
        "/metrics shows no strata_ metric:\n{metrics}"
    );

    // Only the accepted messages reach the archive.
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let archive = archive_of(&conf);
    let read = blocking(move || read_archive_checked(&archive)).await;
    let payloads = |station: &str| -> Vec<String> {
        read.station(station)
            .iter()
            .map(|r| String::from_utf8(r.payload()).expect("utf8"))
            .collect()
    };
    assert_eq!(
        payloads("http_codes"),
        (0..5).map(|i| format!("codes-{i}")).collect::<Vec<_>>(),
        "the archive holds exactly the accepted messages, in sequence order"
    );
    assert_eq!(payloads("http_seq"), ["seq-1", "seq-2", "seq-3"]);
    let codes = read.station("http_codes");
    assert_eq!(codes[0].headers, [("X-N".to_string(), "1".to_string())]);
    assert_eq!(codes[0].subject.as_deref(), Some("http.test"));

    let status = run.terminate().await;
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}\n{}",
        run.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wal_answers_503_with_retry_after_until_uploads_drain_it() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    // Uploads cannot succeed while a file stands where the station's folder
    // must go, so the WAL fills up; removing it lets the compactor drain it.
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).expect("mkdir archive");
    let blocker = archive.join("station=http_full");
    std::fs::write(&blocker, b"not a folder").expect("write blocker");
    let (conf, config, mut run) = start(
        dir.path(),
        |c| {
            c.max_disk_bytes = Some("65536".into());
            c.segment_max_bytes = Some(16 * 1024);
            c.segment_max_age = Some("200ms".into());
        },
        &[],
    )
    .await;
    let http = conf.http.clone().expect("http");
    let client = http_client();

    let mut sent: Vec<String> = Vec::new();
    let mut full = None;
    for b in 0..200 {
        let lines: Vec<String> = (0..20)
            .map(|i| line(&format!("full-{b}-{i}-{}", "p".repeat(150)), &[]))
            .collect();
        let r = post_messages(&client, &http, "http_full", body(&lines), Some(TOKEN)).await;
        if r.status == 503 {
            full = Some(r);
            break;
        }
        assert_eq!(accepted(&r).0, 20, "{}", r.body);
        sent.extend(lines.iter().map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["payload"].as_str().expect("payload").to_string()
        }));
    }
    let full = full.expect("no 503 after 200 batches of ~4 KiB with max_disk_bytes = 64 KiB");
    assert!(
        full.headers.contains_key("retry-after"),
        "503 without Retry-After: {:?}",
        full.headers
    );
    assert!(
        !sent.is_empty(),
        "the very first batch was refused: {}",
        full.body
    );
    run.assert_running();

    // Once uploads work again the compactor drains the WAL by itself, and
    // appends are accepted again.
    std::fs::remove_file(&blocker).expect("remove blocker");
    let start_t = Instant::now();
    loop {
        let lines = vec![line("after-drain", &[])];
        let r = post_messages(&client, &http, "http_full", body(&lines), Some(TOKEN)).await;
        if r.status == 200 {
            sent.push("after-drain".into());
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            start_t.elapsed() < Duration::from_secs(60),
            "still 503 60 s after uploads became possible\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let read = blocking(move || read_archive_checked(&archive)).await;
    let got: Vec<String> = read
        .station("http_full")
        .iter()
        .map(|r| String::from_utf8(r.payload()).expect("utf8"))
        .collect();
    assert_eq!(got, sent, "every acknowledged message, nothing refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_clients_each_message_archived_once() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let (conf, config, mut run) = start(dir.path(), |_| {}, &[]).await;
    let http = conf.http.clone().expect("http");
    const CLIENTS: usize = 20;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 50;

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let client = http_client();
            let mut out = Vec::new();
            for b in 0..BATCHES {
                let payloads: Vec<String> =
                    (0..PER_BATCH).map(|i| format!("c{c}-b{b}-i{i}")).collect();
                let client_name = format!("client-{c}");
                let lines: Vec<String> = payloads
                    .iter()
                    .map(|p| line(p, &[("X-Client", client_name.as_str())]))
                    .collect();
                let r = post_messages(&client, &http, "http_conc", body(&lines), Some(TOKEN)).await;
                let (acc, dup, first, _) = accepted(&r);
                assert_eq!((acc, dup), (PER_BATCH as u64, 0), "{}", r.body);
                out.push((first.expect("first_seq"), payloads));
            }
            out
        }));
    }
    // seq → payload, from what each response said.
    let mut expected: BTreeMap<u64, String> = BTreeMap::new();
    for t in tasks {
        for (first, payloads) in t.await.expect("client task") {
            for (i, p) in payloads.into_iter().enumerate() {
                let prev = expected.insert(first + i as u64, p);
                assert!(
                    prev.is_none(),
                    "two responses claimed seq {}",
                    first + i as u64
                );
            }
        }
    }
    let total = (CLIENTS * BATCHES * PER_BATCH) as u64;
    assert_eq!(expected.len() as u64, total);
    assert_eq!(
        (
            expected.keys().next().copied(),
            expected.keys().last().copied()
        ),
        (Some(1), Some(total)),
        "sequences of a new station are 1..={total}"
    );

    // `strata flush` asks the running process.
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    run.assert_running();
    let archive = archive_of(&conf);
    let a = archive.clone();
    let read = blocking(move || read_archive_checked(&a)).await;
    let got: BTreeMap<u64, String> = read
        .station("http_conc")
        .iter()
        .map(|r| (r.seq as u64, String::from_utf8(r.payload()).expect("utf8")))
        .collect();
    assert_eq!(read.station("http_conc").len() as u64, total, "rows");
    assert_eq!(
        got, expected,
        "every message exactly once, under the seq its response named"
    );

    // Acknowledged after the flush, then SIGTERM without --flush-on-exit: the
    // messages stay in the WAL and a later `strata flush` uploads them.
    let client = http_client();
    let tail: Vec<String> = (0..7).map(|i| line(&format!("tail-{i}"), &[])).collect();
    let r = post_messages(&client, &http, "http_conc", body(&tail), Some(TOKEN)).await;
    assert_eq!(accepted(&r).0, 7);
    let status = run.terminate().await;
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}\n{}",
        run.logs()
    );
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let read = blocking(move || read_archive_checked(&archive)).await;
    let rows = read.station("http_conc");
    assert_eq!(
        rows.len() as u64,
        total + 7,
        "acknowledged messages lost across SIGTERM"
    );
    let last: Vec<String> = rows[rows.len() - 7..]
        .iter()
        .map(|r| String::from_utf8(r.payload()).expect("utf8"))
        .collect();
    assert_eq!(
        last,
        (0..7).map(|i| format!("tail-{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_on_exit_uploads_everything_on_sigint() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let (conf, _config, mut run) = start(
        dir.path(),
        |c| c.segment_max_age = Some("1h".into()),
        &["--flush-on-exit"],
    )
    .await;
    let http = conf.http.clone().expect("http");
    let client = http_client();
    let mut sent = Vec::new();
    for b in 0..3 {
        let payloads: Vec<String> = (0..100).map(|i| format!("exit-{b}-{i}")).collect();
        let lines: Vec<String> = payloads.iter().map(|p| line(p, &[])).collect();
        let r = post_messages(&client, &http, "http_exit", body(&lines), Some(TOKEN)).await;
        assert_eq!(accepted(&r).0, 100);
        sent.extend(payloads);
    }
    let status = run.interrupt().await;
    assert!(
        status.success(),
        "SIGINT should exit cleanly, got {status}\n{}",
        run.logs()
    );
    let archive = archive_of(&conf);
    let read = blocking(move || read_archive_checked(&archive)).await;
    let got: Vec<String> = read
        .station("http_exit")
        .iter()
        .map(|r| String::from_utf8(r.payload()).expect("utf8"))
        .collect();
    assert_eq!(
        got, sent,
        "--flush-on-exit must upload every acknowledged message"
    );
}
