//! End to end, through the real binary, a real nats-server and DuckDB: the
//! identity rule holds over a station's life. A stream deleted and created
//! again keeps every message of both incarnations; the disaster-recovery
//! flow (recreate, live traffic, restore, more traffic) archives each message
//! once; forged `Strata-*` headers take nothing away; two messages that
//! shared a `Nats-Msg-Id` both come back from a restore; HTTP ingest cannot
//! collide with a NATS station; and messages a stream expelled before Strata
//! read them are a loud, recorded gap, warned about by the expel-risk gauge.

#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{conf::*, msg::*, nats::*, python::*, strata::*, *};

const CONSUMER: &str = ARCHIVER_CONSUMER;
const CATCH_UP: Duration = Duration::from_secs(120);
const TOKEN: &str = "identity-e2e-token";

/// A stream of the test's own, archived by a running `strata run` of its own
/// (WAL and archive in `dir`).
struct Archiving {
    dir: tempfile::TempDir,
    archive: PathBuf,
    stream: String,
    js: async_nats::jetstream::Context,
    conf: Conf,
    config: PathBuf,
    run: StrataRun,
}

/// Creates stream `<base>_<unique>` (keeping `max_messages`) and starts
/// `strata run` archiving it.
async fn archiving(url: &str, base: &str, max_messages: Option<i64>) -> Archiving {
    let dir = tempdir();
    let archive = dir.path().join("archive");
    let stream = unique(base);
    let js = jetstream(url).await;
    create_stream(&js, &stream, max_messages).await;
    let (conf, config) = archiver_config(dir.path(), url, &stream, TOKEN);
    let run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    Archiving {
        dir,
        archive,
        stream,
        js,
        conf,
        config,
        run,
    }
}

async fn ls(config: &Path, station: &str) -> String {
    let (c, s) = (config.to_path_buf(), station.to_string());
    blocking(move || {
        strata(args!["ls", "--config", c, "--station", s])
            .ok()
            .text()
    })
    .await
}

/// `(seq, incarnation, stream_seq)` of every row, recovered by DuckDB from
/// the rows and the incarnation records (the README's query).
async fn stream_seqs(archive: &Path, station: &str) -> Vec<(u64, Option<u64>, Option<u64>)> {
    let (a, s) = (archive.to_path_buf(), station.to_string());
    let v =
        blocking(move || python_json("stream_seqs.py", &[a.as_os_str(), OsStr::new(s.as_str())]))
            .await;
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64(), r[2].as_u64()))
        .collect()
}

/// Every data file of the archive with its bytes.
fn data_files(archive: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension() == Some(OsStr::new("parquet")) {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(archive, &mut out);
    out
}

fn payloads(rows: &[&Row]) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = rows.iter().map(|r| r.payload()).collect();
    p.sort();
    p
}

fn metric(text: &str, name: &str, station: &str) -> Option<f64> {
    let want = format!("{name}{{station=\"{station}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_stream_keeps_every_message_of_both_incarnations() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir,
        archive,
        stream,
        js,
        conf: _conf,
        config,
        mut run,
    } = archiving(&url, "e2e_recreate", None).await;

    let old: Vec<Pub> = (1..=100).map(|i| test_message(&stream, i)).collect();
    publish(&js, &old).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 100, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;
    let before = data_files(&archive);
    assert!(!before.is_empty());

    // Deleted and created again while Strata runs: sequences restart at 1,
    // for more messages than the first life had.
    js.delete_stream(&stream).await.expect("delete");
    create_stream(&js, &stream, None).await;
    let new: Vec<Pub> = (1001..=1150).map(|i| test_message(&stream, i)).collect();
    let seqs = publish(&js, &new).await;
    assert_eq!(seqs, (1..=150).collect::<Vec<_>>());
    wait_consumer_exists(&js, &stream, CONSUMER, &mut run).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 150, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    // Every message of both lives, once; (station, seq) unique (checked by
    // read_archive_checked with DuckDB and pyarrow).
    let read = read_checked(archive.clone()).await;
    let rows = read.station(&stream);
    let want: Vec<Vec<u8>> = {
        let mut w: Vec<Vec<u8>> = old.iter().chain(&new).map(|m| m.payload.clone()).collect();
        w.sort();
        w
    };
    assert_eq!(
        payloads(&rows),
        want,
        "every message of both incarnations, once"
    );
    let archived: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(archived, (1..=250).collect::<Vec<i64>>());
    // No archived object was rewritten.
    let after = data_files(&archive);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    // The stream sequence and incarnation of each row, by DuckDB.
    let mapped = stream_seqs(&archive, &stream).await;
    assert_eq!(mapped.len(), 250);
    for (seq, inc, stream_seq) in &mapped {
        if *seq <= 100 {
            assert_eq!((*inc, *stream_seq), (Some(0), Some(*seq)), "seq {seq}");
        } else {
            assert_eq!((*inc, *stream_seq), (Some(1), Some(seq - 100)), "seq {seq}");
        }
    }
    let by_seq: BTreeMap<i64, &Row> = rows.iter().map(|r| (r.seq, *r)).collect();
    assert_eq!(
        by_seq[&101].payload(),
        new[0].payload,
        "stream seq 1 of incarnation 1"
    );

    // Logged, counted, and recorded for `strata ls`.
    assert!(
        run.logs().contains("deleted and created again"),
        "{}",
        run.logs()
    );
    let metrics = run.metrics().await;
    assert_eq!(
        metric(&metrics, "strata_stream_incarnations_total", &stream),
        Some(1.0),
        "{metrics}"
    );
    let listing = ls(&config, &stream).await;
    assert!(listing.contains("INCARNATION 0"), "{listing}");
    assert!(listing.contains("INCARNATION 1"), "{listing}");
    assert!(listing.contains("seq = 100 + stream seq"), "{listing}");
    assert!(run.terminate().await.success(), "{}", run.logs());

    // A restore returns both incarnations, in archive order.
    let out = dir.path().join("both.ndjson");
    let (c, s, o) = (config.clone(), stream.clone(), out.clone());
    blocking(move || {
        strata(args![
            "restore",
            "--config",
            c,
            "--station",
            s,
            "--output",
            o
        ])
        .ok()
    })
    .await;
    let restored = parse_ndjson(&std::fs::read_to_string(&out).unwrap());
    let seqs: Vec<i64> = restored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=250).collect::<Vec<i64>>());
    let in_order: Vec<Vec<u8>> = old.iter().chain(&new).map(|m| m.payload.clone()).collect();
    let got: Vec<Vec<u8>> = restored.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, in_order);
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_recovery_archives_each_message_once() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir: _dir,
        archive,
        stream,
        js,
        conf: _conf,
        config,
        mut run,
    } = archiving(&url, "e2e_dr", None).await;

    let first: Vec<Pub> = (1..=5_000).map(|i| test_message(&stream, i)).collect();
    publish(&js, &first).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 5_000, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    // The stream is lost and recreated; live traffic resumes at once.
    js.delete_stream(&stream).await.expect("delete");
    create_stream(&js, &stream, None).await;
    let live: Vec<Pub> = (10_001..=11_000)
        .map(|i| test_message(&stream, i))
        .collect();
    publish(&js, &live).await;
    wait_consumer_exists(&js, &stream, CONSUMER, &mut run).await;
    // The archive is put back while Strata archives the stream.
    restore_to_nats(&config, &stream, &url).await;
    let later: Vec<Pub> = (20_001..=22_000)
        .map(|i| test_message(&stream, i))
        .collect();
    publish(&js, &later).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 8_000, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    let read = read_checked(archive.clone()).await;
    let rows = read.station(&stream);
    let mut want: Vec<Vec<u8>> = first
        .iter()
        .chain(&live)
        .chain(&later)
        .map(|m| m.payload.clone())
        .collect();
    want.sort();
    assert_eq!(rows.len(), 8_000, "exactly the 8,000 distinct messages");
    assert_eq!(payloads(&rows), want);
    let distinct: BTreeSet<Vec<u8>> = rows.iter().map(|r| r.payload()).collect();
    assert_eq!(distinct.len(), 8_000, "no message archived twice");
    let metrics = run.metrics().await;
    assert_eq!(
        metric(&metrics, "strata_restore_echoes_total", &stream),
        Some(5_000.0),
        "every restored copy recognised: {metrics}"
    );
    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_provenance_headers_take_nothing_away() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir: _dir,
        archive,
        stream,
        js,
        conf: _conf,
        config,
        mut run,
    } = archiving(&url, "e2e_forged", None).await;

    let mut sent: Vec<Pub> = (1..=20).map(|i| test_message(&stream, i)).collect();
    publish(&js, &sent).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 20, CATCH_UP, Some(&mut run)).await;
    // Claims of past (archived) and future seqs, with and without a signature.
    let forged: Vec<Pub> = [1u64, 5, 20, 21, 25, 30, 40]
        .iter()
        .enumerate()
        .map(|(k, seq)| {
            let mut headers = vec![
                ("Strata-Station".to_string(), stream.clone()),
                ("Strata-Seq".to_string(), seq.to_string()),
                (
                    "Strata-Timestamp".to_string(),
                    "2026-11-24T10:00:00.000000Z".to_string(),
                ),
            ];
            if k % 2 == 0 {
                headers.push(("Strata-Mac".to_string(), "ab".repeat(32)));
            }
            Pub {
                subject: format!("{stream}.forged"),
                headers,
                payload: format!("forged claim of seq {seq}").into_bytes(),
            }
        })
        .collect();
    publish(&js, &forged).await;
    let more: Vec<Pub> = (21..=40).map(|i| test_message(&stream, i)).collect();
    publish(&js, &more).await;
    sent.extend(forged.iter().cloned());
    sent.extend(more);
    wait_consumer_caught_up(&js, &stream, CONSUMER, 47, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    let read = read_checked(archive).await;
    let rows = read.station(&stream);
    let mut want: Vec<Vec<u8>> = sent.iter().map(|m| m.payload.clone()).collect();
    want.sort();
    assert_eq!(payloads(&rows), want, "every real and forged message, once");
    // seq = stream sequence, and the forged ones keep their headers.
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
    }
    for (k, f) in forged.iter().enumerate() {
        let r = rows[20 + k];
        assert_eq!(r.payload(), f.payload);
        assert_eq!(
            normalize_headers(&r.headers, &[]),
            normalize_headers(&f.headers, &[]),
            "forged message {k} keeps its headers"
        );
    }
    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_shared_a_msg_id_both_come_back() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let station = unique("e2e_sharedid");
    let conf = Conf::local(dir.path());
    let config = conf.write(&dir.path().join("strata.toml"));
    let lines = format!(
        "{{\"seq\":1,\"id\":\"order-7\",\"subject\":\"{station}.a\",\"headers\":[[\"Nats-Msg-Id\",\"order-7\"]],\"payload\":\"first\"}}\n\
         {{\"seq\":2,\"id\":\"order-7\",\"subject\":\"{station}.a\",\"headers\":[[\"Nats-Msg-Id\",\"order-7\"]],\"payload\":\"second, minutes later\"}}\n"
    );
    let file = dir.path().join("in.ndjson");
    std::fs::write(&file, lines).unwrap();
    {
        let (c, s, f) = (config.clone(), station.clone(), file.clone());
        blocking(move || {
            strata(args!["ingest", "--station", s, "--config", c.clone(), f]).ok();
            strata(args!["flush", "--config", c]).ok();
        })
        .await;
    }
    let js = jetstream(&url).await;
    create_stream(&js, &station, None).await;
    restore_to_nats(&config, &station, &url).await;
    let got = read_stream(&js, &station).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(bodies, [&b"first"[..], &b"second, minutes later"[..]]);
    for (m, seq) in got.iter().zip([1, 2]) {
        assert_eq!(m.header("Strata-Original-Msg-Id"), Some("order-7"));
        assert_eq!(
            m.header("Nats-Msg-Id"),
            Some(format!("strata:{station}:{seq}").as_str())
        );
    }
    let _ = js.delete_stream(&station).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_cannot_take_seqs_of_a_nats_station() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir: _dir,
        archive,
        stream,
        js,
        conf,
        config,
        mut run,
    } = archiving(&url, "e2e_http409", None).await;
    let http = conf.http.clone().expect("http");
    let client = http_client();

    let r = post_messages(
        &client,
        &http,
        &stream,
        "{\"payload\":\"x\"}\n".into(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(&stream) && error.contains("NATS"), "{error}");
    let r = post_messages(
        &client,
        &http,
        &stream,
        "{\"seq\":3,\"payload\":\"x\"}\n".into(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Another station is HTTP's to number.
    let other = unique("e2e_http_only");
    let r = post_messages(
        &client,
        &http,
        &other,
        "{\"payload\":\"y\"}\n".into(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let msgs: Vec<Pub> = (1..=10).map(|i| test_message(&stream, i)).collect();
    publish(&js, &msgs).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 10, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;
    let read = read_checked(archive).await;
    let seqs: Vec<i64> = read.station(&stream).iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<i64>>(),
        "no stream message dropped"
    );
    assert_eq!(read.station(&other).len(), 1);
    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_expelled_while_strata_was_down_are_a_recorded_gap() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir,
        archive,
        stream,
        js,
        conf,
        config,
        mut run,
    } = archiving(&url, "e2e_gap", Some(100)).await;
    let msgs: Vec<Pub> = (1..=230).map(|i| test_message(&stream, i)).collect();
    publish(&js, &msgs[..30]).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 30, CATCH_UP, Some(&mut run)).await;
    assert!(run.terminate().await.success(), "{}", run.logs());

    // While Strata is down the stream keeps only the last 100 of 200 more.
    publish(&js, &msgs[30..]).await;
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 230, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    let logs = run.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("GAP"))
        .unwrap_or_else(|| panic!("no GAP log line:\n{logs}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("first_stream_seq=31") && line.contains("last_stream_seq=130"),
        "{line}"
    );
    let metrics = run.metrics().await;
    assert_eq!(
        metric(&metrics, "strata_gap_messages_total", &stream),
        Some(100.0),
        "{metrics}"
    );
    assert!(run.terminate().await.success(), "{}", run.logs());
    // Recorded in the archive: `strata ls` shows it after the process is gone.
    let listing = ls(&config, &stream).await;
    assert!(
        listing.contains("LOST UPSTREAM: seqs 31-130 (100 messages"),
        "{listing}"
    );
    // Everything still in the stream is archived once.
    let read = read_checked(archive).await;
    let seqs: Vec<i64> = read.station(&stream).iter().map(|r| r.seq).collect();
    let want: Vec<i64> = (1..=30).chain(131..=230).collect();
    assert_eq!(seqs, want);
    // A restore over the range says what it cannot return.
    let out = dir.path().join("gap.ndjson");
    let (c, s, o) = (config.clone(), stream.clone(), out.clone());
    let summary = blocking(move || {
        strata(args![
            "restore",
            "--config",
            c,
            "--station",
            s,
            "--output",
            o
        ])
        .ok()
        .text()
    })
    .await;
    assert!(summary.contains("known_gaps"), "{summary}");
    assert!(summary.contains("\"first_seq\":31"), "{summary}");
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expel_risk_gauge_warns_before_a_loss() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let stream = unique("e2e_risk");
    let js = jetstream(&url).await;
    create_stream(&js, &stream, Some(100)).await;
    // Uploads fail while a file stands where the station's folder goes, so
    // the small WAL fills and Strata stops taking messages from the stream.
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let blocker = archive.join(format!("station={stream}"));
    std::fs::write(&blocker, b"not a folder").unwrap();
    let mut conf = Conf::local(dir.path());
    conf.max_disk_bytes = Some("65536".into());
    conf.segment_max_bytes = Some(16 * 1024);
    conf.segment_max_age = Some("200ms".into());
    conf.http = Some(HttpConf::free(Some(TOKEN)));
    conf.nats = Some(NatsConf {
        url: url.clone(),
        stations: vec![stream.clone()],
        consumer: CONSUMER.to_string(),
        fetch_batch: Some(8),
    });
    let config = conf.write(&dir.path().join("strata.toml"));
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;

    let big = |i: u64| Pub {
        subject: format!("{stream}.big"),
        headers: vec![],
        payload: format!("{i:08}{}", "x".repeat(16 * 1024)).into_bytes(),
    };
    let msgs: Vec<Pub> = (1..=90).map(big).collect();
    publish(&js, &msgs).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let risk = loop {
        run.assert_running();
        let m = run.metrics().await;
        if let Some(r) = metric(&m, "strata_expel_risk", &stream) {
            if r > 0.8 {
                break r;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "strata_expel_risk never rose above 0.8:\n{m}\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(risk <= 1.0);
    let info = js
        .get_stream(&stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(info.first_sequence, 1, "nothing was lost yet");
    std::fs::remove_file(&blocker).unwrap();
    wait_consumer_caught_up(&js, &stream, CONSUMER, 90, CATCH_UP, Some(&mut run)).await;
    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_archive_unreachable_goes_on_archiving_into_the_wal() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir,
        archive,
        stream,
        js,
        conf,
        config,
        mut run,
    } = archiving(&url, "e2e_offline", None).await;
    let msgs: Vec<Pub> = (1..=40).map(|i| test_message(&stream, i)).collect();
    publish(&js, &msgs[..20]).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 20, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;
    assert!(run.terminate().await.success(), "{}", run.logs());

    // The archive's `_strata/` (identity records, restore key) cannot be
    // read: a file stands where the folder was.
    let ledger = archive.join("_strata");
    let away = dir.path().join("strata-away");
    std::fs::rename(&ledger, &away).unwrap();
    std::fs::write(&ledger, b"not a folder").unwrap();
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    publish(&js, &msgs[20..]).await;
    // Acknowledged means durable in the WAL: the local copy of the key and
    // of the incarnation was enough.
    wait_consumer_caught_up(&js, &stream, CONSUMER, 40, CATCH_UP, Some(&mut run)).await;
    assert!(run.terminate().await.success(), "{}", run.logs());

    std::fs::remove_file(&ledger).unwrap();
    std::fs::rename(&away, &ledger).unwrap();
    flush(&config).await;
    let read = read_checked(archive).await;
    let seqs: Vec<i64> = read.station(&stream).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_recovery_on_a_new_machine_archives_each_message_once() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let Archiving {
        dir,
        archive,
        stream,
        js,
        conf,
        config,
        mut run,
    } = archiving(&url, "e2e_newhost", None).await;
    let first: Vec<Pub> = (1..=300).map(|i| test_message(&stream, i)).collect();
    publish(&js, &first).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 300, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;
    assert!(run.terminate().await.success(), "{}", run.logs());

    // The machine is gone with its WAL, and so is the stream.
    std::fs::remove_dir_all(&conf.wal_dir).unwrap();
    js.delete_stream(&stream).await.expect("delete");
    create_stream(&js, &stream, None).await;
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    let live: Vec<Pub> = (5_001..=5_050).map(|i| test_message(&stream, i)).collect();
    publish(&js, &live).await;
    restore_to_nats(&config, &stream, &url).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 350, CATCH_UP, Some(&mut run)).await;
    flush(&config).await;

    // The restored copies are recognised from the archive itself.
    let read = read_checked(archive).await;
    let rows = read.station(&stream);
    let mut want: Vec<Vec<u8>> = first
        .iter()
        .chain(&live)
        .map(|m| m.payload.clone())
        .collect();
    want.sort();
    assert_eq!(payloads(&rows), want, "each message once");
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let expected: Vec<i64> = (1..=300).chain(301..=350).collect();
    assert_eq!(
        seqs, expected,
        "the new life continues above the archived seqs"
    );
    let metrics = run.metrics().await;
    assert_eq!(
        metric(&metrics, "strata_restore_echoes_total", &stream),
        Some(300.0),
        "{metrics}"
    );
    assert!(run.terminate().await.success(), "{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}
