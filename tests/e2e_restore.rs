//! End to end: `strata restore` from the archive back into NATS JetStream and
//! into NDJSON. Restored messages equal what was first published (payload,
//! headers, subject, order), carry `Strata-Seq`, `Strata-Timestamp` and
//! `Nats-Msg-Id`, are archived once even while `strata run` archives the
//! target stream, are not duplicated by a second restore, resume from a
//! checkpoint after a kill with no gap, and round-trip through NDJSON.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{conf::*, msg::*, nats::*, python::*, strata::*, *};

const CONSUMER: &str = ARCHIVER_CONSUMER;
const CATCH_UP: Duration = Duration::from_secs(180);
/// Headers Strata adds to restored messages (README, "Restore").
const RESTORE_HEADERS: [&str; 6] = [
    "Strata-Seq",
    "Strata-Timestamp",
    "Strata-Station",
    "Strata-Mac",
    "Strata-Original-Msg-Id",
    "Nats-Msg-Id",
];

/// The expected form of an archived row.
fn expected_from_row(r: &Row) -> Expected {
    Expected {
        station: r.station.clone(),
        seq: r.seq,
        timestamp_us: r.timestamp_us,
        id: r.id.clone(),
        subject: r.subject.clone(),
        headers: r.headers.clone(),
        payload: r.payload(),
    }
}

/// Test message `i` of `station` as an NDJSON-ingested message at `base_us + i * step_us`.
fn generated(station: &str, i: u64, base_us: i64, step_us: i64) -> Expected {
    let m = test_message(station, i);
    Expected {
        station: station.to_string(),
        seq: i as i64,
        timestamp_us: base_us + i as i64 * step_us,
        id: m.id().map(str::to_string),
        subject: Some(m.subject.clone()),
        headers: m
            .headers
            .iter()
            .filter(|(n, _)| n != "Nats-Msg-Id")
            .cloned()
            .collect(),
        payload: m.payload,
    }
}

/// Ingests `msgs` with `strata ingest` and flushes them to the archive of `config`.
fn ingest_and_flush(dir: &Path, config: &Path, station: &str, msgs: &[Expected]) {
    let mut text = String::new();
    for m in msgs {
        text += &ndjson_line(m, true, true);
        text.push('\n');
    }
    let file = dir.join(format!("{station}.ndjson"));
    std::fs::write(&file, text).expect("write ndjson");
    strata(args![
        "ingest",
        "--station",
        station,
        "--config",
        config,
        file
    ])
    .ok();
    strata(args!["flush", "--config", config]).ok();
}

/// `Strata-Timestamp` as microseconds (RFC 3339 or an integer of microseconds).
fn strata_timestamp(v: &str) -> i64 {
    v.parse::<i64>().unwrap_or_else(|_| micros(v))
}

/// Asserts the stream holds exactly `expected`, restored, in order.
#[track_caller]
fn assert_restored(got: &[StreamMsg], expected: &[Expected]) {
    assert_eq!(
        got.len(),
        expected.len(),
        "the stream holds {} messages, expected {}",
        got.len(),
        expected.len()
    );
    let mut ids = HashSet::new();
    let mut prev_stream_seq = 0;
    for (m, e) in got.iter().zip(expected) {
        assert!(m.seq > prev_stream_seq, "stream order");
        prev_stream_seq = m.seq;
        assert_eq!(
            m.header("Strata-Seq"),
            Some(e.seq.to_string().as_str()),
            "message {} of the stream should be archived seq {} (restore keeps seq order)",
            m.seq,
            e.seq
        );
        assert_eq!(m.payload, e.payload, "payload of seq {}", e.seq);
        assert_eq!(
            Some(m.subject.as_str()),
            e.subject.as_deref(),
            "subject of seq {}",
            e.seq
        );
        assert_eq!(
            normalize_headers(&m.headers, &RESTORE_HEADERS),
            normalize_headers(&e.headers, &["Nats-Msg-Id"]),
            "headers of seq {}",
            e.seq
        );
        let ts = m
            .header("Strata-Timestamp")
            .unwrap_or_else(|| panic!("seq {} has no Strata-Timestamp", e.seq));
        assert_eq!(
            strata_timestamp(ts),
            e.timestamp_us,
            "Strata-Timestamp of seq {}",
            e.seq
        );
        let id = m
            .header("Nats-Msg-Id")
            .unwrap_or_else(|| panic!("seq {} has no Nats-Msg-Id", e.seq));
        assert_eq!(
            id,
            format!("strata:{}:{}", e.station, e.seq),
            "Nats-Msg-Id of seq {} is unique per archived message",
            e.seq
        );
        assert_eq!(
            m.header("Strata-Original-Msg-Id"),
            e.id.as_deref(),
            "Strata-Original-Msg-Id of seq {} is its original id",
            e.seq
        );
        assert_eq!(
            m.header("Strata-Mac").map(str::len),
            Some(64),
            "seq {} is signed",
            e.seq
        );
        assert!(ids.insert(id.to_string()), "Nats-Msg-Id {id} used twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_nats_is_faithful_idempotent_and_archived_once() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let stream = unique("e2e_restore");
    const TOTAL: u64 = 20_000;
    let js = jetstream(&url).await;
    create_stream(&js, &stream, Some(5_000)).await;
    let (conf, config) = archiver_config(dir.path(), &url, &stream, "restore-e2e-token");
    let archive = dir.path().join("archive");
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;

    // Archive 20,000 messages of a stream that keeps 5,000.
    let t0 = now_us() - 1_000_000;
    let mut from = 1;
    while from <= TOTAL {
        let to = (from + 1_999).min(TOTAL);
        let msgs: Vec<Pub> = (from..=to).map(|i| test_message(&stream, i)).collect();
        let seqs = publish(&js, &msgs).await;
        assert_eq!(seqs, (from..=to).collect::<Vec<_>>());
        wait_consumer_caught_up(&js, &stream, CONSUMER, to, CATCH_UP, Some(&mut run)).await;
        from = to + 1;
    }
    flush(&config).await;
    let t1 = now_us() + 1_000_000;
    let first = read_checked(archive.clone()).await;
    assert_archived_test_messages(&first, &stream, TOTAL, t0, t1);
    let expected: Vec<Expected> = first
        .station(&stream)
        .into_iter()
        .map(expected_from_row)
        .collect();

    // The stream is lost: delete it and create it again, empty and unlimited.
    assert!(run.terminate().await.success(), "{}", run.logs());
    js.delete_stream(&stream).await.expect("delete stream");
    create_stream(&js, &stream, None).await;
    // Strata archives the recreated stream while the restore fills it.
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;

    restore_to_nats(&config, &stream, &url).await;
    let got = read_stream(&js, &stream).await;
    assert_restored(&got, &expected);

    // What Strata archived from the restore is the same identity: each once.
    wait_consumer_caught_up(&js, &stream, CONSUMER, TOTAL, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;
    let after = read_checked(archive.clone()).await;
    assert_eq!(
        after.station(&stream).len() as u64,
        TOTAL,
        "archiving the restored messages must not add rows"
    );
    assert_eq!(
        after.rows, first.rows,
        "archived rows changed by the restore"
    );

    // A second restore adds nothing to the stream or the archive.
    restore_to_nats(&config, &stream, &url).await;
    let again = read_stream(&js, &stream).await;
    assert_restored(&again, &expected);
    wait_consumer_caught_up(
        &js,
        &stream,
        CONSUMER,
        again.last().map_or(0, |m| m.seq),
        CATCH_UP,
        Some(&mut run),
    )
    .await;
    flush(&config).await;
    let twice = read_checked(archive).await;
    assert_eq!(
        twice.rows, first.rows,
        "a second restore changed the archive"
    );

    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_restore_resumes_from_its_checkpoint_without_gap_or_duplicate() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let station = unique("e2e_ckpt");
    const TOTAL: u64 = 20_000;
    let base = micros("2026-11-24T08:00:00Z");
    let msgs: Vec<Expected> = (1..=TOTAL)
        .map(|i| generated(&station, i, base, 250_000))
        .collect();
    let conf = Conf::local(dir.path());
    let config = conf.write(&dir.path().join("strata.toml"));
    {
        let (d, c, s, m) = (
            dir.path().to_path_buf(),
            config.clone(),
            station.clone(),
            msgs.clone(),
        );
        blocking(move || ingest_and_flush(&d, &c, &s, &m)).await;
    }
    let js = jetstream(&url).await;
    create_stream(&js, &station, None).await;
    let checkpoint = dir.path().join("restore.checkpoint");

    // First attempt, slowed down, killed part-way.
    let mut child = Command::new(BIN)
        .args(args![
            "restore",
            "--station",
            station,
            "--config",
            config,
            "--nats",
            url,
            "--checkpoint",
            checkpoint,
            "--rate",
            "4000",
            "--quiet"
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("restore-1.stderr")).expect("log"))
        .spawn()
        .expect("start strata restore");
    let start = Instant::now();
    let mut published = 0;
    while published < TOTAL / 4 {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "strata restore exited ({status}) before it could be killed part-way:\n{}",
                std::fs::read_to_string(dir.path().join("restore-1.stderr")).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "restore made no progress in 60 s"
        );
        let mut s = js.get_stream(&station).await.expect("stream");
        published = s.info().await.expect("info").state.messages;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL strata restore");
    child.wait().expect("reap");
    let mut s = js.get_stream(&station).await.expect("stream");
    let at_kill = s.info().await.expect("info").state.messages;
    assert!(
        at_kill < TOTAL,
        "the restore finished before the kill ({at_kill} messages): --rate 4000 not honoured?"
    );
    assert!(
        checkpoint.exists(),
        "no checkpoint file after {at_kill} restored messages"
    );

    // Second attempt resumes.
    {
        let (c, s, u, k) = (
            config.clone(),
            station.clone(),
            url.clone(),
            checkpoint.clone(),
        );
        blocking(move || {
            strata(args![
                "restore",
                "--station",
                s,
                "--config",
                c,
                "--nats",
                u,
                "--checkpoint",
                k,
                "--quiet"
            ])
            .ok()
        })
        .await;
    }
    let got = read_stream(&js, &station).await;
    assert_restored(&got, &msgs);
    let _ = js.delete_stream(&station).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_output_reingested_gives_identical_parquet_rows() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let station = "ndjson_trip";
    const TOTAL: u64 = 5_000;
    let base = micros("2026-11-24T22:30:00.000001Z");
    // 2 s apart: the messages cross three hours and a date.
    let msgs: Vec<Expected> = (1..=TOTAL)
        .map(|i| generated(station, i, base, 2_000_001))
        .collect();
    let first_dir = dir.path().join("first");
    std::fs::create_dir_all(&first_dir).expect("mkdir");
    let conf = Conf::local(&first_dir);
    let config = conf.write(&first_dir.join("strata.toml"));
    let (d, c, m) = (first_dir.clone(), config.clone(), msgs.clone());
    blocking(move || {
        ingest_and_flush(&d, &c, station, &m);
        let first = read_archive_checked(&d.join("archive"));
        let rows = first.station(station);
        assert_rows_match(&rows, &m);

        // Whole station to a file.
        let out = d.join("restored.ndjson");
        strata(args![
            "restore",
            "--station",
            station,
            "--config",
            c,
            "--output",
            out,
            "--quiet"
        ])
        .ok();
        let text = std::fs::read_to_string(&out).expect("read output");
        assert_eq!(
            parse_ndjson(&text),
            m,
            "NDJSON output equals the archived messages, in seq order"
        );

        // Into a fresh WAL and archive: identical Parquet rows.
        let second_dir = d.parent().expect("parent").join("second");
        std::fs::create_dir_all(&second_dir).expect("mkdir");
        let conf2 = Conf::local(&second_dir);
        let config2 = conf2.write(&second_dir.join("strata.toml"));
        strata(args![
            "ingest",
            "--station",
            station,
            "--config",
            config2,
            out
        ])
        .ok();
        strata(args!["flush", "--config", config2]).ok();
        let second = read_archive_checked(&second_dir.join("archive"));
        assert_eq!(
            second.rows, first.rows,
            "re-ingested NDJSON gives different rows"
        );
        assert_eq!(second.summary["digest"], first.summary["digest"]);
        assert_eq!(second.summary["partitions"], first.summary["partitions"]);

        // Ranges, to stdout: seq bounds and time bounds are inclusive.
        let out = strata(args![
            "restore",
            "--station",
            station,
            "--config",
            c,
            "--from-seq",
            "100",
            "--to-seq",
            "199",
            "--output",
            "-",
            "--quiet"
        ])
        .ok();
        let got = parse_ndjson(&out.stdout);
        assert_eq!(got, m[99..199].to_vec(), "--from-seq 100 --to-seq 199");

        let ts = |i: usize| {
            chrono::DateTime::from_timestamp_micros(m[i].timestamp_us)
                .expect("in range")
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let out = strata(args![
            "restore",
            "--station",
            station,
            "--config",
            c,
            "--from",
            ts(999),
            "--to",
            ts(1998),
            "--output",
            "-",
            "--quiet"
        ])
        .ok();
        let got = parse_ndjson(&out.stdout);
        assert_eq!(
            got,
            m[999..1999].to_vec(),
            "--from/--to select seq 1000..=1999"
        );
    })
    .await;
}

/// `--rate 1e-300` used to panic in `Duration::from_secs_f64`; bad values of
/// `--rate` and `--max-inflight` stop with the accepted range, before any work.
#[test]
fn out_of_range_rate_and_max_inflight_are_refused_with_their_range() {
    let dir = tempdir();
    let output = dir.path().join("out.ndjson");
    for (flag, value, range) in [
        ("--rate", "1e-300", "at least 0.001"),
        ("--rate", "0", "at least 0.001"),
        ("--max-inflight", "0", "1 to 1000000"),
    ] {
        let out = strata(args![
            "restore",
            "--station",
            "orders",
            "--output",
            &output,
            flag,
            value
        ])
        .failed();
        let text = out.text();
        assert!(
            text.contains(flag) && text.contains(range),
            "{flag} {value}:\n{out}"
        );
        assert!(!text.contains("panicked"), "{flag} {value}:\n{out}");
        assert!(!output.exists(), "nothing is written");
    }
}
