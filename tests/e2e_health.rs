//! End to end: `GET /healthz`, the health gauges and the health log of the real
//! `strata run`. A poisoned WAL, a store that refuses compaction for good (no
//! such bucket) and a store unreachable for longer than
//! `[compaction] unhealthy_after` each turn `/healthz` into a 503 naming the
//! problem and what to do, set `strata_wal_poisoned` /
//! `strata_compactor_failing_seconds`, and are logged at `error` once per
//! episode, not once per retry.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{conf::*, python::*, strata::*, *};

const TOKEN: &str = "health-token";
const UNHEALTHY: &str = "strata is unhealthy";

/// `strata run` with `conf` (its TOML passed through `edit`), answering HTTP.
async fn start(dir: &Path, conf: &Conf, edit: impl FnOnce(String) -> String) -> StrataRun {
    let config = dir.join("strata.toml");
    std::fs::write(&config, edit(conf.toml())).expect("write strata.toml");
    let http = conf.http.clone().expect("http");
    let mut run = StrataRun::spawn(&config, &http, &[], dir);
    run.ready().await;
    run
}

/// `GET /healthz`: status and body.
async fn healthz(run: &StrataRun) -> (u16, String) {
    let r = http_client()
        .get(format!("{}/healthz", run.http.base()))
        .send()
        .await
        .expect("GET /healthz");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// `POST /v1/flush`: status and body.
async fn flush(run: &StrataRun) -> (u16, String) {
    let r = http_client()
        .post(format!("{}/v1/flush", run.http.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST /v1/flush");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn post_one(run: &StrataRun, payload: &str) -> Resp {
    post_messages(
        &http_client(),
        &run.http,
        "health",
        format!("{{\"payload\":\"{payload}\"}}\n"),
        Some(TOKEN),
    )
    .await
}

/// Polls `/healthz` until it answers `status` (at most `timeout`).
async fn wait_health(run: &mut StrataRun, status: u16, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        run.assert_running();
        let (got, body) = healthz(run).await;
        if got == status {
            return body;
        }
        assert!(
            start.elapsed() < timeout,
            "/healthz still answers {got} {body} after {timeout:?}, want {status}\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The 503 body: its problems and its reasons.
#[track_caller]
fn unhealthy(body: &str) -> (Vec<String>, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let problems = v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .map(|p| p.as_str().expect("a problem name").to_string())
        .collect();
    let error = v["error"].as_str().expect("error").to_string();
    (problems, error)
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_wal_turns_healthz_503_until_a_restart_recovers_it() {
    need!(python());
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    let mut run = start(dir.path(), &conf, |t| t).await;
    assert_eq!(healthz(&run).await, (200, "ok".to_string()));
    let r = post_one(&run, "before").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The disk "goes away" under the WAL: sealing its segment fails, which poisons it.
    let moved: PathBuf = dir.path().join("wal.moved");
    std::fs::rename(&conf.wal_dir, &moved).expect("move the WAL directory");
    let (status, body) = flush(&run).await;
    assert_eq!(status, 500, "the seal fails: {body}");

    let body = wait_health(&mut run, 503, Duration::from_secs(10)).await;
    let (problems, error) = unhealthy(&body);
    assert_eq!(problems, ["wal_poisoned"], "{body}");
    assert!(
        error.contains("poisoned") && error.contains("restart"),
        "{body}"
    );
    let metrics = run.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "strata_wal_poisoned"),
        Some(1.0),
        "{metrics}"
    );
    // New messages are refused, not acknowledged.
    let r = post_one(&run, "after").await;
    assert_eq!(r.status, 500, "{}", r.body);

    // Checked every second and on every request: still logged once.
    for _ in 0..3 {
        assert_eq!(healthz(&run).await.0, 503);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = run.stderr();
    assert_eq!(count(&log, UNHEALTHY), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(UNHEALTHY) && l.contains("ERROR")),
        "{log}"
    );

    // Once the disk is back, a restart recovers what was acknowledged.
    run.kill9();
    std::fs::rename(&moved, &conf.wal_dir).expect("move the WAL directory back");
    let mut run = start(dir.path(), &conf, |t| t).await;
    assert_eq!(healthz(&run).await, (200, "ok".to_string()));
    let (status, body) = flush(&run).await;
    assert_eq!(status, 200, "{body}");
    let metrics = run.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "strata_wal_poisoned"),
        Some(0.0),
        "{metrics}"
    );
    run.terminate().await;
    let archived = read_archive(&dir.path().join("archive"), "pyarrow");
    let payloads: Vec<Vec<u8>> = archived
        .station("health")
        .iter()
        .map(|r| r.payload())
        .collect();
    assert_eq!(
        payloads,
        [b"before".to_vec()],
        "the acknowledged message, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_the_bucket_is_unhealthy_at_once_and_says_what_to_fix() {
    let endpoint = need!(s3::endpoint());
    need!(python());
    let dir = tempdir();
    let bucket = s3::unique_bucket("strata-e2e"); // not created yet
    let mut conf = Conf::local(dir.path());
    conf.storage = Storage::S3 {
        endpoint: endpoint.clone(),
        bucket: bucket.clone(),
        prefix: "archive".into(),
    };
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    let mut run = start(dir.path(), &conf, |t| t).await;
    let r = post_one(&run, "kept").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let (status, body) = flush(&run).await;
    assert_eq!(status, 500, "{body}");
    let body = wait_health(&mut run, 503, Duration::from_secs(10)).await;
    let (problems, error) = unhealthy(&body);
    assert_eq!(problems, ["store_refuses"], "{body}");
    assert!(
        error.contains("does not exist") && error.contains("[storage] url"),
        "says what to fix: {body}"
    );
    let metrics = run.metrics().await;
    let failing = metric_sum(&metrics, "strata_compactor_failing_seconds").expect("gauge");
    assert!(failing >= 0.0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "strata_wal_poisoned"), Some(0.0));

    // No blind retries: the background loop (which may also have met the
    // error by now) waits minutes, so in the next seconds no new upload error
    // is counted, and the problem was logged once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = run.metrics().await;
    let errors = metric_sum(&metrics, "strata_upload_errors_total").unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = run.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "strata_upload_errors_total").unwrap_or(0.0),
        errors,
        "a permanent error is not retried in a loop\n{}",
        run.logs()
    );
    let log = run.stderr();
    assert_eq!(count(&log, UNHEALTHY), 1, "{log}");

    // Fixed: the bucket exists now. A flush retries at once and health comes back.
    s3::create_bucket(&endpoint, &bucket);
    let (status, body) = flush(&run).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(healthz(&run).await, (200, "ok".to_string()));
    let metrics = run.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "strata_compactor_failing_seconds"),
        Some(0.0),
        "{metrics}"
    );
    run.terminate().await;
    let log = run.stderr();
    assert_eq!(count(&log, UNHEALTHY), 1, "{log}");
    assert!(
        count(&log, "resolved") >= 1,
        "the end of the episode is logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_unreachable_longer_than_unhealthy_after_turns_healthz_503() {
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    // Nothing listens there: every upload fails as "unreachable", which may pass.
    conf.storage = Storage::S3 {
        endpoint: format!("http://127.0.0.1:{}", free_port()),
        bucket: "unreachable".into(),
        prefix: String::new(),
    };
    conf.segment_max_age = Some("1s".into());
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    let mut run = start(dir.path(), &conf, |t| {
        t.replacen("[storage]\n", "[storage]\nmax_retries = 0\n", 1)
            + "\n[compaction]\nunhealthy_after = \"3s\"\n"
    })
    .await;
    let started = Instant::now();
    let r = post_one(&run, "waits").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The segment seals after a second and compaction starts failing; the
    // process stays healthy until the failures have lasted 3 s.
    let body = wait_health(&mut run, 503, Duration::from_secs(30)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "503 only after the bound: {:?}",
        started.elapsed()
    );
    let (problems, error) = unhealthy(&body);
    assert_eq!(problems, ["compaction_failing"], "{body}");
    assert!(
        error.contains("unhealthy_after") && error.contains("cannot reach"),
        "{body}"
    );
    let metrics = run.metrics().await;
    let failing = metric_sum(&metrics, "strata_compactor_failing_seconds").expect("gauge");
    assert!(failing >= 3.0, "{metrics}");

    // Retries go on (the store may come back), but the problem is logged once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = run.stderr();
    assert!(count(&log, "compaction failed") >= 2, "retried: {log}");
    assert_eq!(count(&log, UNHEALTHY), 1, "{log}");
    run.kill9();
}
