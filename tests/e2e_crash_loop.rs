//! The crash loop: `strata run` is killed with `kill -9` at least 25 times —
//! at random moments, during start-up (WAL recovery), and at the compactor's
//! failpoints (after the upload, after the commit record) — while one producer
//! publishes into a NATS stream and another POSTs to a second station over
//! HTTP, each recording every message that was acknowledged. At the end DuckDB
//! (and pyarrow) must read exactly the acknowledged messages, each once, byte
//! for byte.
//!
//! The schedule (order of the kinds of kill, every delay, the HTTP messages) is
//! drawn from a seed, printed at the start; `STRATA_CRASH_SEED=<seed>` replays it.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{conf::*, figures::*, msg::*, nats::*, python::*, strata::*, *};

/// Restarts of `strata run`; every one ends in a kill -9 or an abort.
const CYCLES: usize = 30;
const TOKEN: &str = "crash-loop-token";
const SEED_ENV: &str = "STRATA_CRASH_SEED";
/// The source's ack wait is 60 s: messages handed to a killed process come
/// back only after it, so the last catch-up may take that long.
const CATCH_UP: Duration = Duration::from_secs(150);

/// How one run of `strata run` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// kill -9 a random time after it answered `/healthz`.
    Timed,
    /// kill -9 a random time after the start, ready or not (WAL recovery,
    /// consumer creation, first compaction).
    Startup,
    /// `STRATA_FAILPOINT`: the process aborts once a segment's files are
    /// uploaded, before the commit record.
    AfterUpload,
    /// `STRATA_FAILPOINT`: the process aborts once the commit record is
    /// stored, before the WAL segment is deleted.
    AfterCommit,
}

impl Kill {
    fn name(self) -> &'static str {
        match self {
            Kill::Timed => "timed",
            Kill::Startup => "startup",
            Kill::AfterUpload => "after-upload",
            Kill::AfterCommit => "after-commit",
        }
    }
}

/// Bytes of the text payloads: JSON's special characters included.
const ALPHABET: &[u8] = b"abcdefghij {}\":,\\\n\t";

/// The HTTP producer's `i`-th message (seq `i`): random subject, id, headers
/// and payload (text or binary), drawn from `rng`.
fn http_message(rng: &mut SplitMix64, station: &str, seq: i64) -> Expected {
    let len = rng.range(0, 400) as usize;
    let payload = if rng.range(0, 3) == 0 {
        rng.bytes(len)
    } else {
        (0..len)
            .map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64) as usize])
            .collect()
    };
    let headers = (0..rng.range(0, 4))
        .map(|h| {
            (
                format!("X-H{}", h % 2),
                format!("v{}-{seq}", rng.next_u64()),
            )
        })
        .collect();
    Expected {
        station: station.to_string(),
        seq,
        timestamp_us: now_us(),
        id: (rng.range(0, 4) != 0).then(|| format!("http-{seq}")),
        subject: (rng.range(0, 4) != 0).then(|| format!("{station}.kind{}", seq % 3)),
        headers,
        payload,
    }
}

/// What the HTTP producer did.
#[derive(Debug, Default)]
struct HttpBook {
    acknowledged: Vec<Expected>,
    batches: u64,
    retries: u64,
}

/// POSTs batches with explicit seqs until `stop`; a batch that gets no `200`
/// (the process was killed, is starting, or says 503) is sent again, same
/// seqs, until it is acknowledged: retries are safe because `(station, seq)`
/// identifies a message, so everything sent ends up acknowledged.
async fn http_producer(
    http: HttpConf,
    station: String,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> HttpBook {
    let mut rng = SplitMix64::new(seed ^ 0x4854_5450);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut book = HttpBook::default();
    let mut next = 1i64;
    while !stop.load(Ordering::SeqCst) {
        let n = rng.range(1, 25) as i64;
        let batch: Vec<Expected> = (next..next + n)
            .map(|s| http_message(&mut rng, &station, s))
            .collect();
        let body: String = batch
            .iter()
            .map(|m| ndjson_line(m, rng.range(0, 2) == 0, true) + "\n")
            .collect();
        let started = Instant::now();
        loop {
            let resp = client
                .post(format!("{}/v1/stations/{station}/messages", http.base()))
                .bearer_auth(TOKEN)
                .body(body.clone())
                .send()
                .await;
            match resp {
                Ok(r) if r.status().as_u16() == 200 => {
                    let v: serde_json::Value = r.json().await.expect("200 is JSON");
                    let done =
                        v["accepted"].as_u64().unwrap_or(0) + v["duplicates"].as_u64().unwrap_or(0);
                    assert_eq!(done, n as u64, "a 200 must account for every line: {v}");
                    break;
                }
                Ok(r) if r.status().as_u16() == 503 || r.status().is_server_error() => {}
                Ok(r) => {
                    let status = r.status();
                    panic!(
                        "HTTP producer: {status}: {}",
                        r.text().await.unwrap_or_default()
                    )
                }
                Err(_) => {} // killed mid-request, or not listening yet
            }
            book.retries += 1;
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "HTTP batch from seq {next} not acknowledged within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        book.acknowledged.extend(batch);
        book.batches += 1;
        next += n;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    book
}

/// Publishes [`test_message`]s into the stream until `stop`, 10 at a time;
/// every one is acknowledged by JetStream (`publish` checks the sequences).
async fn nats_producer(
    js: async_nats::jetstream::Context,
    stream: String,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
) {
    let mut next = 1u64;
    while !stop.load(Ordering::SeqCst) {
        let msgs: Vec<Pub> = (next..next + 10)
            .map(|i| test_message(&stream, i))
            .collect();
        let seqs = publish(&js, &msgs).await;
        assert_eq!(seqs, (next..next + 10).collect::<Vec<_>>(), "stream seqs");
        next += 10;
        published.store(next - 1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// The kinds of kill for [`CYCLES`] runs: fixed shares, seeded order.
fn schedule(rng: &mut SplitMix64) -> Vec<Kill> {
    let mut kinds: Vec<Kill> = (0..CYCLES)
        .map(|i| match i % 5 {
            0 => Kill::AfterUpload,
            1 => Kill::AfterCommit,
            2 => Kill::Startup,
            _ => Kill::Timed,
        })
        .collect();
    rng.shuffle(&mut kinds);
    kinds
}

/// Per station, how many acknowledged seqs have no row (lost), and how many
/// rows repeat a seq (duplicated).
fn lost_and_duplicated(rows: &[Row], expected: &BTreeMap<String, Vec<i64>>) -> (u64, u64) {
    let mut seen: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    for r in rows {
        *seen.entry((r.station.as_str(), r.seq)).or_default() += 1;
    }
    let duplicated = seen.values().map(|n| n - 1).sum();
    let lost = expected
        .iter()
        .flat_map(|(st, seqs)| seqs.iter().map(move |s| (st.as_str(), *s)))
        .filter(|k| !seen.contains_key(k))
        .count() as u64;
    (lost, duplicated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_kill_9_at_random_moments_and_failpoints_loses_and_doubles_nothing() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let test = "crash_loop_kill_9_at_random_moments_and_failpoints_loses_and_doubles_nothing";
    let seed = test_seed(SEED_ENV, test);
    let mut rng = SplitMix64::new(seed);
    let began = Instant::now();

    let dir = tempdir();
    let stream = unique("crash_nats");
    let station = unique("crash_http");
    let js = jetstream(&url).await;
    create_stream(&js, &stream, None).await;
    let (mut conf, _) = archiver_config(dir.path(), &url, &stream, TOKEN);
    // Small, young segments: every run seals and compacts several.
    conf.segment_max_bytes = Some(48 * 1024);
    conf.segment_max_age = Some("300ms".into());
    let config = conf.write(&dir.path().join("strata.toml"));
    let http = conf.http.clone().expect("http");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let nats = tokio::spawn(nats_producer(
        js.clone(),
        stream.clone(),
        stop.clone(),
        published.clone(),
    ));
    let http_task = tokio::spawn(http_producer(
        http.clone(),
        station.clone(),
        seed,
        stop.clone(),
    ));
    let t0 = now_us() - 1_000_000;

    let kinds = schedule(&mut rng);
    let mut done: BTreeMap<&str, u64> = BTreeMap::new();
    for (cycle, kind) in kinds.iter().enumerate() {
        let fired = run_once(*kind, &config, &http, &logs, &mut rng).await;
        eprintln!("cycle {cycle}: {} -> {fired}", kind.name());
        *done.entry(fired).or_default() += 1;
        // Sometimes stay down a while, so producers meet a closed port.
        if rng.range(0, 3) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.range(50, 400))).await;
        }
    }
    let kills: u64 = done.values().sum();

    // The last run: nothing armed. Producers stop; the HTTP one finishes its
    // batch against this run.
    let mut run = StrataRun::spawn(&config, &http, &[], &logs);
    run.ready().await;
    stop.store(true, Ordering::SeqCst);
    nats.await.expect("NATS producer");
    let book = http_task.await.expect("HTTP producer");
    let nats_total = published.load(Ordering::SeqCst);
    wait_consumer_caught_up(
        &js,
        &stream,
        ARCHIVER_CONSUMER,
        nats_total,
        CATCH_UP,
        Some(&mut run),
    )
    .await;
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let status = run.terminate().await;
    assert!(status.success(), "SIGTERM: {status}\n{}", run.logs());
    let t1 = now_us() + 1_000_000;
    let _ = js.delete_stream(&stream).await;

    let archive = dir.path().join("archive");
    let expected: BTreeMap<String, Vec<i64>> = [
        (stream.clone(), (1..=nats_total as i64).collect()),
        (
            station.clone(),
            book.acknowledged.iter().map(|m| m.seq).collect(),
        ),
    ]
    .into_iter()
    .collect();
    let a = archive.clone();
    let duck = blocking(move || read_archive(&a, "duckdb")).await;
    let (lost, duplicated) = lost_and_duplicated(&duck.rows, &expected);
    // Nothing was expelled (the stream has no limits): a gap record would be
    // a false report of loss, e.g. for messages handed to a killed run that
    // the broker redelivers only after the ack wait.
    let gaps = gap_records(&archive, &stream);
    let checked = nats_total + book.acknowledged.len() as u64;
    record_figures(
        "crash_loop",
        serde_json::json!({
            "seed": seed.to_string(),
            "crashes": kills,
            "crashes_by_kind": done,
            "messages_checked": checked,
            "nats_messages": nats_total,
            "http_messages": book.acknowledged.len(),
            "http_batches": book.batches,
            "http_retries": book.retries,
            "lost": lost,
            "false_gap_records": gaps.len(),
            "duplicated": duplicated,
            "seconds": began.elapsed().as_secs(),
        }),
    );
    eprintln!(
        "crash loop (seed {seed}): {kills} crashes {done:?}, {nats_total} NATS + {} HTTP messages, {} HTTP retries, lost {lost}, duplicated {duplicated}, {:?}",
        book.acknowledged.len(),
        book.retries,
        began.elapsed()
    );
    assert_eq!((lost, duplicated), (0, 0), "seed {seed}: lost / duplicated");
    assert!(
        gaps.is_empty(),
        "seed {seed}: {} gap records although the stream expelled nothing, e.g. {:?}",
        gaps.len(),
        gaps.first()
    );
    assert!(kills >= 25, "only {kills} crashes");
    assert!(
        done.get("after-upload").copied().unwrap_or(0) >= 3
            && done.get("after-commit").copied().unwrap_or(0) >= 3,
        "seed {seed}: the failpoints fired too rarely: {done:?}"
    );

    // Exactly the acknowledged messages, byte for byte, read by DuckDB and
    // pyarrow alike (the archive's contract checked too).
    let s = stream.clone();
    let acknowledged = book.acknowledged;
    let c = config.clone();
    blocking(move || {
        let read = read_archive_checked(&archive);
        assert_eq!(
            read.count(),
            checked,
            "seed {seed}: the archive holds other rows than the acknowledged ones"
        );
        assert_archived_test_messages(&read, &s, nats_total, t0, t1);
        assert_rows_match(&read.station(&station), &acknowledged);
        // The Iceberg table after every kill (those `after-commit` included,
        // before the snapshot): the same rows, each once.
        let table = support::iceberg::scan(&support::iceberg::metadata_url(&c), None, None);
        assert_eq!(table.summary["rows"], table.summary["distinct_station_seq"]);
        assert!(
            table.rows == read.rows,
            "seed {seed}: pyiceberg and DuckDB read different rows"
        );
    })
    .await;
}

/// One run of `strata run` ended the way `kind` says; returns how it ended
/// (a failpoint that was not reached within 20 s becomes a timed kill).
async fn run_once(
    kind: Kill,
    config: &Path,
    http: &HttpConf,
    logs: &Path,
    rng: &mut SplitMix64,
) -> &'static str {
    match kind {
        Kill::Timed => {
            let mut run = StrataRun::spawn(config, http, &[], logs);
            run.ready().await;
            tokio::time::sleep(Duration::from_millis(rng.range(50, 1500))).await;
            run.assert_running();
            run.kill9();
            "timed"
        }
        Kill::Startup => {
            let mut run = StrataRun::spawn(config, http, &[], logs);
            tokio::time::sleep(Duration::from_millis(rng.range(0, 400))).await;
            if let Some(status) = run.exited() {
                panic!("strata run exited by itself ({status})\n{}", run.logs());
            }
            run.kill9();
            "startup"
        }
        Kill::AfterUpload | Kill::AfterCommit => {
            let env = [("STRATA_FAILPOINT", kind.name())];
            let mut run = StrataRun::spawn_env(config, http, &[], logs, &env);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Some(status) = run.exited() {
                    assert_eq!(
                        status.signal(),
                        Some(libc_sigabrt()),
                        "strata run should abort at {}, ended {status}\n{}",
                        kind.name(),
                        run.logs()
                    );
                    assert!(
                        run.stderr().contains("STRATA_FAILPOINT"),
                        "no failpoint message:\n{}",
                        run.logs()
                    );
                    return kind.name();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            run.kill9();
            "timed"
        }
    }
}

/// SIGABRT (6 on Linux).
fn libc_sigabrt() -> i32 {
    6
}

/// The gap records of `station` in the archive (file name and contents).
fn gap_records(archive: &Path, station: &str) -> Vec<(String, String)> {
    let dir = archive.join(format!("_strata/stations/{station}/gaps"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}
