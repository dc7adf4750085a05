//! Tier-2 compaction end to end: an archive of many small files of one
//! station (segments flushed one by one into a real WAL and compacted, as
//! `strata flush` does), merged by the real `strata compact-tier2`, then read
//! by every reader: DuckDB and pyarrow by glob after the grace, `strata
//! restore` (NDJSON), `strata ls` and pyiceberg (the Iceberg table, at every
//! snapshot) during and after it. The crash test
//! aborts the pass at each of its steps (`STRATA_FAILPOINT`, an abort is a
//! kill -9 to the archive) on the S3-compatible server and reruns it.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ::strata::compactor::{Compactor, NoopObserver};
use ::strata::config::Config;
use ::strata::iceberg::IcebergTable;
use ::strata::store::Archive;
use ::strata::wal::{Wal, WalOptions};
use ::strata::{Draft, Header, StationName, Timestamp};
use bytes::Bytes;
use serde_json::Value;
use support::iceberg::{metadata_url, scan_with};
use support::{conf::*, msg::*, python::*, strata::*, *};

const STATION: &str = "orders";
/// Messages per small file.
const PER_FILE: u64 = 5;
/// 2026-11-30T09:00:00Z.
const HOUR_START: i64 = 1_796_029_200_000_000;

/// A config at `dir/strata.toml`: `storage`, and `[tier2] grace`.
fn write_config(dir: &Path, storage: Storage, grace: &str) -> PathBuf {
    write_config_with(
        Conf {
            storage,
            ..Conf::local(dir)
        },
        dir,
        &format!("grace = \"{grace}\"\n"),
    )
}

/// `conf` at `dir/strata.toml`, with `tier2` as the `[tier2]` table.
fn write_config_with(conf: Conf, dir: &Path, tier2: &str) -> PathBuf {
    let text = format!("{}\n[tier2]\n{tier2}", conf.toml());
    let path = dir.join("strata.toml");
    std::fs::write(&path, text).expect("write strata.toml");
    path
}

/// The `seq`-th message: all in one hour, with a header on some.
fn draft(seq: u64) -> Draft {
    Draft {
        station: StationName::new(STATION).expect("valid"),
        seq: Some(seq),
        timestamp: Timestamp(HOUR_START + seq as i64 * 1_000),
        id: Some(format!("id-{seq}")),
        subject: Some("orders.created".into()),
        headers: if seq % 3 == 0 {
            vec![Header::new("k", format!("v{seq}"))]
        } else {
            Vec::new()
        },
        payload: Bytes::from(format!("payload of message {seq}")),
    }
}

/// Archives `files` small files of [`PER_FILE`] messages each, one WAL
/// segment flushed per file, with the config's WAL and archive. Returns the
/// number of messages (seqs 1..=n).
async fn small_files(config: &Path, files: u64) -> u64 {
    let cfg = Config::load(Some(config)).expect("config");
    let mut opts = WalOptions::new(&cfg.wal.dir);
    opts.segment_max_age = Duration::from_secs(3600);
    let wal = Wal::open(opts).expect("open WAL");
    let archive = Archive::open(&cfg.storage).expect("archive");
    // As `strata flush` does: each commit is appended to the Iceberg table.
    let table = IcebergTable::open(&archive, &cfg.iceberg).expect("iceberg table");
    let compactor = Compactor::new(
        wal.clone(),
        archive,
        &cfg.compaction,
        Arc::new(NoopObserver),
    )
    .with_iceberg(table);
    for f in 0..files {
        let drafts = (1..=PER_FILE).map(|i| draft(f * PER_FILE + i)).collect();
        wal.append(drafts).await.expect("append");
        let report = compactor.flush().await.expect("flush");
        assert_eq!(report.files().count(), 1, "one small file per flush");
    }
    wal.close().expect("close WAL");
    files * PER_FILE
}

/// `strata compact-tier2 --json` with `config` (and `env`), its report.
fn compact(config: &Path, env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(["compact-tier2", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd, None, Duration::from_secs(300))
}

fn report(out: &Out) -> Value {
    let line = out.stdout.lines().find(|l| !l.is_empty()).unwrap_or("{}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// `strata restore --output -`: the seqs of the NDJSON lines, checked
/// against what was archived, and exactly `1..=n` in order.
fn assert_restore_once(config: &Path, n: u64) {
    let out = strata(args![
        "--config",
        config,
        "restore",
        "--station",
        STATION,
        "--output",
        "-"
    ])
    .ok();
    let restored = parse_ndjson(&out.stdout);
    let seqs: Vec<u64> = restored.iter().map(|m| m.seq as u64).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "restore must return each message once, in order"
    );
    for m in &restored {
        let d = draft(m.seq as u64);
        assert_eq!(m.payload, d.payload.to_vec(), "seq {}", m.seq);
        assert_eq!(m.id.as_deref(), d.id.as_deref(), "seq {}", m.seq);
        assert_eq!(m.timestamp_us, d.timestamp.micros(), "seq {}", m.seq);
        let headers: Vec<(String, String)> = d
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        assert_eq!(m.headers, headers, "seq {}", m.seq);
    }
}

/// `strata ls` text.
/// pyiceberg reads the table's current snapshot: each of seqs 1..=n once.
/// With `history`, every snapshot the table keeps holds each seq at most once
/// (its files must all still be stored: during the grace). Returns the
/// scan's summary.
fn assert_iceberg_once(config: &Path, s3: Option<&str>, n: u64, history: bool) -> Value {
    let url = metadata_url(config);
    let scan = scan_with(&url, s3, None, history);
    let seqs: Vec<u64> = scan.rows.iter().map(|r| r.seq as u64).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "the table's current snapshot must hold each message once: {}",
        scan.summary
    );
    assert_eq!(scan.summary["bounds_errors"], serde_json::json!([]));
    if history {
        let snapshots = scan.summary["history"].as_array().expect("history");
        for s in snapshots {
            assert_eq!(s["rows"], s["distinct_station_seq"], "a duplicate in {s}");
        }
    }
    scan.summary
}

fn ls(config: &Path) -> String {
    strata(args!["--config", config, "ls"]).ok().stdout
}

/// DuckDB and pyarrow by glob: every message once, byte for byte.
fn assert_glob_once(root: &Path, n: u64) {
    let read = read_archive_checked(root);
    let rows = read.station(STATION);
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>());
    for r in rows {
        assert_eq!(r.payload(), draft(r.seq as u64).payload.to_vec());
    }
}

fn parquet_files(root: &Path) -> usize {
    walk(root)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn two_hundred_small_files_become_one_and_every_reader_sees_each_message_once() {
    let dir = tempdir();
    let root = dir.path().join("archive");
    let config = write_config(dir.path(), Storage::File(root.clone()), "3s");
    let n = small_files(&config, 200).await;
    assert_eq!(parquet_files(&root), 200);

    let out = compact(&config, &[]).ok();
    let r = report(&out);
    let merges = r["merges"].as_array().expect("merges");
    assert_eq!(merges.len(), 1, "{out}");
    assert_eq!(merges[0]["replaced_files"], 200, "{out}");
    assert_eq!(merges[0]["rows"], n, "{out}");
    assert_eq!(merges[0]["deleted"], false, "{out}");

    // During the grace: the small files are still there for running queries;
    // ls counts the merged file only and shows them as pending deletes.
    assert_eq!(parquet_files(&root), 201);
    let text = ls(&config);
    assert!(
        text.contains(&format!("station {STATION}: 1 file(s), {n} rows")),
        "{text}"
    );
    assert!(
        text.contains("PENDING DELETE: 200 replaced file(s)"),
        "{text}"
    );
    assert!(!text.contains("OVERLAP") && !text.contains("GAP"), "{text}");
    assert!(!text.contains('*'), "the merged file is committed:\n{text}");
    assert_restore_once(&config, n);
    // A pass within the grace deletes nothing and merges nothing more.
    let r = report(&compact(&config, &[]).ok());
    assert_eq!(r["merges"].as_array().map(Vec::len), Some(0));
    assert_eq!(r["pending"][0]["files"].as_array().map(Vec::len), Some(200));

    // The table swapped the 200 files for the merged one in one snapshot;
    // no snapshot before or after it holds a message twice.
    let summary = assert_iceberg_once(&config, None, n, true);
    assert_eq!(summary["operation"], "replace", "{summary}");
    assert_eq!(summary["files_planned"], 1, "{summary}");
    // The table keeps its last 100 snapshots: 99 appends, then the replace;
    // the last append held all 200 small files.
    let history = summary["history"].as_array().expect("history");
    assert_eq!(history.len(), 100, "{summary}");
    assert!(history[..99].iter().all(|s| s["operation"] == "append"));
    assert_eq!(history[98]["rows"], n, "{summary}");

    // After the grace the next pass deletes them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = compact(&config, &[]).ok();
    let r = report(&out);
    assert_eq!(
        r["deleted"][0]["files"].as_array().map(Vec::len),
        Some(200),
        "{out}"
    );
    assert_eq!(parquet_files(&root), 1);
    let text = ls(&config);
    assert!(!text.contains("PENDING DELETE"), "{text}");
    assert_glob_once(&root, n);
    assert_restore_once(&config, n);
    assert_iceberg_once(&config, None, n, false);
}

#[tokio::test]
async fn a_target_size_cuts_the_merge_into_several_files() {
    let dir = tempdir();
    let root = dir.path().join("archive");
    let config = write_config(dir.path(), Storage::File(root.clone()), "0s");
    let n = small_files(&config, 40).await;
    let mut text = std::fs::read_to_string(&config).expect("config");
    // About ten small files (~2.5 KiB each) per merged file.
    text += "target_file_bytes = \"24KiB\"\n";
    std::fs::write(&config, text).expect("write config");
    let out = compact(&config, &[]).ok();
    let r = report(&out);
    let merges = r["merges"].as_array().expect("merges");
    assert!(merges.len() >= 3, "{out}");
    assert!(merges.iter().all(|m| m["deleted"] == true), "{out}");
    let merged: u64 = merges
        .iter()
        .map(|m| m["replaced_files"].as_u64().unwrap())
        .sum();
    assert!(merged >= 39, "at most one small file left:\n{out}");
    assert_eq!(parquet_files(&root), 40 - merged as usize + merges.len());
    assert_glob_once(&root, n);
    assert_restore_once(&config, n);
    let summary = assert_iceberg_once(&config, None, n, false);
    assert_eq!(
        summary["files_planned"].as_u64(),
        Some(40 - merged + merges.len() as u64),
        "{summary}"
    );
    let text = ls(&config);
    assert!(!text.contains("OVERLAP") && !text.contains("GAP"), "{text}");
}

#[tokio::test]
async fn a_crash_at_each_step_then_a_rerun_keeps_every_message_once_on_s3() {
    let endpoint = need!(s3::endpoint());
    let bucket = s3::unique_bucket("tier2-crash");
    s3::create_bucket(&endpoint, &bucket);
    for point in [
        "tier2-after-upload",
        "tier2-after-record",
        "tier2-after-hook",
        "tier2-after-delete",
    ] {
        let dir = tempdir();
        let storage = Storage::S3 {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
            prefix: point.to_string(),
        };
        let config = write_config(dir.path(), storage, "0s");
        let n = small_files(&config, 20).await;

        let out = compact(&config, &[("STRATA_FAILPOINT", point)]);
        assert!(
            !out.status.success() && out.stderr.contains(point),
            "{point}: the pass should have aborted:\n{out}"
        );
        // Whatever the step, restore and the table read each message once.
        assert_restore_once(&config, n);
        assert_iceberg_once(&config, Some(&endpoint), n, false);
        let text = ls(&config);
        if point != "tier2-after-upload" {
            // From the record on, the merged file is committed.
            assert!(!text.contains("OVERLAP"), "{point}:\n{text}");
        }

        // The rerun (the lock of the dead process is taken over) finishes the job.
        let out = compact(&config, &[]).ok();
        let r = report(&out);
        let expect_merge = point == "tier2-after-upload";
        assert_eq!(
            r["merges"].as_array().map(|m| m.len()),
            Some(usize::from(expect_merge)),
            "{point}:\n{out}"
        );
        let text = ls(&config);
        assert!(
            text.contains(&format!("station {STATION}: 1 file(s), {n} rows")),
            "{point}:\n{text}"
        );
        for bad in ["OVERLAP", "GAP", "PENDING DELETE", "*"] {
            assert!(!text.contains(bad), "{point}: {bad}\n{text}");
        }
        assert_restore_once(&config, n);
        let summary = assert_iceberg_once(&config, Some(&endpoint), n, false);
        assert_eq!(summary["files_planned"], 1, "{point}: {summary}");
        let local = dir.path().join("download");
        s3::download(&endpoint, &bucket, point, &local);
        assert_eq!(parquet_files(&local), 1, "{point}");
        assert_glob_once(&local, n);
    }
}

#[tokio::test]
async fn strata_run_merges_in_the_background_when_enabled() {
    let dir = tempdir();
    let root = dir.path().join("archive");
    let http = HttpConf::free(None);
    let conf = Conf {
        http: Some(http.clone()),
        ..Conf::local(dir.path())
    };
    let config = write_config_with(
        conf,
        dir.path(),
        "enabled = true\ninterval = \"1s\"\ngrace = \"0s\"\n",
    );
    let n = small_files(&config, 30).await;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let mut run = StrataRun::spawn(&config, &http, &[], &logs);
    run.ready().await;
    let start = std::time::Instant::now();
    // The pass removes the small files before it reports, so wait for both:
    // a stop between the two would cut the report short, not the merge.
    while parquet_files(&root) != 1 || !run.stderr().contains("tier-2 pass done") {
        run.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no background merge within 60 s ({} files)\n{}",
            parquet_files(&root),
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(run.terminate().await.success(), "{}", run.logs());
    assert_glob_once(&root, n);
    assert_restore_once(&config, n);
}
