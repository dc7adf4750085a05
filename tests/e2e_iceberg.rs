//! End to end: the archive as an Iceberg table, read by pyiceberg
//! (`StaticTable` on the metadata file `strata ls --iceberg` prints), on a
//! local folder and on the S3-compatible server: the scan returns exactly the
//! rows DuckDB reads by glob, byte for byte; a filter on station and time plans
//! fewer files; a crash at each commit step then a rerun leaves a valid current
//! snapshot with every message once; an archive written with
//! `[iceberg] enabled = false` gets an equal table from `strata iceberg rebuild`;
//! a tier-2 merge committed as a `replace` snapshot swaps files without
//! changing a row, and files it replaced are never appended again. DuckDB's
//! `iceberg_scan` on the same metadata file reads the glob's rows too, after
//! a few flushes and after `strata compact-tier2`, from a folder and from S3.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ::strata::columnar::{self, Selection};
use ::strata::config::{CompactionConfig, StorageConfig};
use ::strata::iceberg::{CommitOutcome, IcebergTable};
use ::strata::layout::{self, CommitRecord, CommittedFile, DataKey, Hour, ReplacementRecord};
use ::strata::store::Archive;
use ::strata::{StationName, Timestamp};
use base64::Engine as _;
use sha2::Digest as _;
use support::iceberg::{duckdb_scan, metadata_url, scan, Filter, Scan};
use support::{conf::*, python::*, strata::*, *};

/// 2026-11-30T00:00:00Z in microseconds.
const DAY_US: i64 = 1_795_996_800_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// `n` messages of batch `batch`: two stations, three hours, optional id and
/// subject, headers, binary payloads (not UTF-8).
fn batch(batch: u32, n: u32) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let k = batch * 1000 + i;
        let station = if k % 3 == 0 { "payments" } else { "orders" };
        let ts = DAY_US + i64::from(k % 3) * HOUR_US + i64::from(k) * 1_000_003;
        let t = chrono::DateTime::from_timestamp_micros(ts).expect("in range");
        let payload: Vec<u8> = (0..(k % 17 + 1))
            .map(|j| (k * 31 + j * 7) as u8 | 0x80)
            .collect();
        let mut line = serde_json::json!({
            "station": station,
            "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "headers": [["k", k.to_string()], ["batch", batch.to_string()]],
            "payload_base64": base64::engine::general_purpose::STANDARD.encode(payload),
        });
        if k % 4 != 0 {
            line["id"] = format!("id-{k}").into();
        }
        if k % 5 != 0 {
            line["subject"] = format!("{station}.created").into();
        }
        out += &line.to_string();
        out.push('\n');
    }
    out.into_bytes()
}

fn ingest(config: &Path, body: &[u8]) {
    strata_with(
        args!["ingest", "--config", config, "-"],
        Some(body),
        Duration::from_secs(120),
    )
    .ok();
}

fn flush(config: &Path) {
    strata(args!["flush", "--config", config]).ok();
}

/// `strata flush` that aborts at `point` (`STRATA_FAILPOINT`).
fn flush_crashing_at(config: &Path, point: &str) {
    let mut cmd = Command::new(BIN);
    cmd.args(args!["flush", "--config", config])
        .env("STRATA_FAILPOINT", point);
    let out = run_command(cmd, None, Duration::from_secs(120));
    assert!(
        !out.status.success() && out.stderr.contains(point),
        "flush should have aborted at {point}:\n{out}"
    );
}

/// Where glob readers find the archive: the folder, or a download of the bucket.
fn glob_root(conf: &Conf, dir: &Path) -> PathBuf {
    match &conf.storage {
        Storage::File(p) => p.clone(),
        Storage::S3 {
            endpoint,
            bucket,
            prefix,
        } => {
            let mirror = dir.join(format!("mirror-{}", unique("m")));
            s3::download(endpoint, bucket, prefix, &mirror);
            mirror
        }
    }
}

fn endpoint_of(conf: &Conf) -> Option<String> {
    match &conf.storage {
        Storage::S3 { endpoint, .. } => Some(endpoint.clone()),
        Storage::File(_) => None,
    }
}

/// Reads the table with pyiceberg and the archive with DuckDB by glob, and
/// checks they hold the same rows, each once; a filter on one station and hour
/// plans fewer files and reads exactly that station's rows of that hour.
#[track_caller]
fn assert_table_equals_glob(conf: &Conf, config: &Path, dir: &Path) -> Scan {
    assert_table_equals(conf, config, read_archive_checked(&glob_root(conf, dir)))
}

/// [`assert_table_equals_glob`] for an archive after a tier-2 merge: its
/// commit records name the deleted small files, which the full archive check
/// would report as missing.
#[track_caller]
fn assert_table_equals_glob_after_merge(conf: &Conf, config: &Path, dir: &Path) -> Scan {
    let duck = read_archive(&glob_root(conf, dir), "duckdb");
    assert_eq!(duck.summary["rows"], duck.summary["distinct_station_seq"]);
    assert_table_equals(conf, config, duck)
}

#[track_caller]
fn assert_table_equals(conf: &Conf, config: &Path, duck: ArchiveRead) -> Scan {
    let url = metadata_url(config);
    assert!(duck.count() > 0, "the archive is empty");
    let filter = Filter {
        station: "orders".into(),
        from_us: DAY_US + HOUR_US,
        to_us: DAY_US + 2 * HOUR_US - 1,
    };
    let got = scan(&url, endpoint_of(conf).as_deref(), Some(&filter));
    let s = &got.summary;
    assert_eq!(s["rows"], s["distinct_station_seq"], "a row twice: {s}");
    assert_eq!(s["bounds_errors"], serde_json::json!([]), "{s}");
    assert_eq!(s["bounds_checked"], s["files_planned"], "{s}");
    assert_eq!(got.rows.len(), duck.rows.len(), "row counts differ: {s}");
    assert!(
        got.rows == duck.rows,
        "pyiceberg and DuckDB read different rows: {s}"
    );
    let expected = duck
        .rows
        .iter()
        .filter(|r| {
            r.station == filter.station && (filter.from_us..=filter.to_us).contains(&r.timestamp_us)
        })
        .count();
    assert!(expected > 0, "the filter should select rows");
    assert_eq!(s["filtered_rows"], expected, "{s}");
    assert_eq!(s["filtered_ok"], true, "{s}");
    let planned = s["filtered_files_planned"].as_u64().expect("planned");
    assert!(
        planned >= 1 && planned < got.files(),
        "the filter should plan fewer files than the full scan: {s}"
    );
    got
}

fn write_two_batches_and_check(conf: Conf) {
    let dir = tempdir();
    let config = conf.write(&dir.path().join("strata.toml"));
    ingest(&config, &batch(1, 60));
    flush(&config);
    ingest(&config, &batch(2, 45));
    flush(&config);
    let got = assert_table_equals_glob(&conf, &config, dir.path());
    assert_eq!(
        got.summary["snapshots"], 2,
        "one snapshot per commit record"
    );
    assert_eq!(got.summary["operation"], "append");
    let paths = got.summary["file_paths"].as_array().expect("paths");
    let scheme = if endpoint_of(&conf).is_some() {
        "s3://"
    } else {
        "file:///"
    };
    assert!(
        paths
            .iter()
            .all(|p| p.as_str().is_some_and(|p| p.starts_with(scheme))),
        "data file paths are absolute URLs: {paths:?}"
    );
}

#[test]
fn pyiceberg_reads_the_glob_rows_from_a_folder() {
    need!(python());
    let dir = tempdir();
    write_two_batches_and_check(Conf::local(dir.path()));
}

#[test]
fn pyiceberg_reads_the_glob_rows_from_s3() {
    need!(python());
    let endpoint = need!(s3::endpoint());
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    conf.storage = s3::fresh_storage(&endpoint, "strata-iceberg", "archive/ice");
    write_two_batches_and_check(conf);
}

/// A local-folder config at `dir/strata.toml` with `[iceberg] enabled = false`,
/// and the [`Conf`] it was made from.
fn config_without_table(dir: &Path) -> (Conf, std::path::PathBuf) {
    let conf = Conf::local(dir);
    let config = dir.join("strata.toml");
    std::fs::write(&config, conf.toml() + "\n[iceberg]\nenabled = false\n").expect("write config");
    (conf, config)
}

/// A crash at each step of a snapshot commit (and between the commit record
/// and the snapshot), then a rerun: the current snapshot is valid, every
/// message is there once, and the crashed commit has exactly one snapshot.
fn crash_then_rerun(conf: &Conf, dir: &Path, point: &str) {
    let config = conf.write(&dir.join("strata.toml"));
    ingest(&config, &batch(1, 40));
    flush(&config);
    ingest(&config, &batch(2, 40));
    flush_crashing_at(&config, point);
    flush(&config);
    let got = assert_table_equals_glob(conf, &config, dir);
    assert_eq!(got.rows.len(), 80, "{point}: every message once");
    assert_eq!(
        got.summary["snapshots"], 2,
        "{point}: one snapshot per commit record, none twice"
    );
}

#[test]
fn a_crash_at_each_commit_step_leaves_a_valid_table() {
    need!(python());
    for point in [
        "after-commit",
        "iceberg-after-manifest",
        "iceberg-after-metadata",
    ] {
        let dir = tempdir();
        crash_then_rerun(&Conf::local(dir.path()), dir.path(), point);
    }
}

#[test]
fn a_crash_after_the_metadata_on_s3_leaves_a_valid_table() {
    need!(python());
    let endpoint = need!(s3::endpoint());
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    conf.storage = s3::fresh_storage(&endpoint, "strata-iceberg-crash", "");
    crash_then_rerun(&conf, dir.path(), "iceberg-after-metadata");
}

#[test]
fn rebuild_gives_an_archive_without_a_table_one_equal_to_the_glob() {
    need!(python());
    let dir = tempdir();
    let (conf, config) = config_without_table(dir.path());
    ingest(&config, &batch(1, 50));
    flush(&config);
    ingest(&config, &batch(2, 30));
    flush(&config);
    let archive = dir.path().join("archive");
    assert!(
        !archive.join("_strata/iceberg").exists(),
        "[iceberg] enabled = false writes no table"
    );
    let out = strata(args!["ls", "--iceberg", "--config", config]).ok();
    assert!(out.stdout.contains("iceberg metadata: none"), "{out}");

    let out = strata(args!["iceberg", "rebuild", "--config", config]).ok();
    assert!(out.stdout.contains("iceberg metadata: file:///"), "{out}");
    let got = assert_table_equals_glob(&conf, &config, dir.path());
    assert_eq!(got.summary["snapshots"], 1);
    assert_eq!(got.summary["operation"], "overwrite");

    // Rebuilding again replaces the table's files with the same ones.
    strata(args!["iceberg", "rebuild", "--config", config]).ok();
    let again = assert_table_equals_glob(&conf, &config, dir.path());
    assert_eq!(again.summary["snapshots"], 2);
    assert_eq!(again.files(), got.files());
}

// ------------------------------------------------------ DuckDB iceberg_scan

/// DuckDB's `iceberg_scan` of the metadata file at `url` reads exactly the
/// rows of `glob` (DuckDB by glob), each once, byte for byte; returns what it
/// read.
#[track_caller]
fn assert_iceberg_scan_equals(conf: &Conf, url: &str, glob: &ArchiveRead) -> Scan {
    assert!(glob.count() > 0, "the archive is empty");
    let got = duckdb_scan(url, endpoint_of(conf).as_deref());
    let s = &got.summary;
    assert_eq!(s["rows"], s["distinct_station_seq"], "a row twice: {s}");
    assert_eq!(
        s["columns"]["station"], "VARCHAR",
        "station comes from the identity partition: {s}"
    );
    assert_eq!(got.rows.len(), glob.rows.len(), "row counts differ: {s}");
    assert!(
        got.rows == glob.rows,
        "iceberg_scan and DuckDB by glob read different rows: {s}"
    );
    got
}

/// Three flushes, then a tier-2 merge of every partition (`grace = "0s"`:
/// the small files are deleted in the same pass): `iceberg_scan` reads the
/// glob's rows before the merge and after it, at the `replace` snapshot.
fn iceberg_scan_before_and_after_a_merge(conf: Conf) {
    let dir = tempdir();
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, conf.toml() + "\n[tier2]\ngrace = \"0s\"\n").expect("write config");
    for b in 1..=3 {
        ingest(&config, &batch(b, 40));
        flush(&config);
    }
    let before_url = metadata_url(&config);
    let glob = read_archive_checked(&glob_root(&conf, dir.path()));
    let before = assert_iceberg_scan_equals(&conf, &before_url, &glob);
    assert_eq!(before.rows.len(), 120, "every message once");

    let out = strata(args!["--config", config, "compact-tier2", "--json"]).ok();
    let line = out.stdout.lines().find(|l| !l.is_empty()).unwrap_or("{}");
    let report: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
    let merges = report["merges"].as_array().expect("merges");
    assert!(
        !merges.is_empty(),
        "three flushes leave files to merge:\n{out}"
    );
    assert!(
        merges.iter().all(|m| m["deleted"] == true),
        "grace 0s deletes the small files at once:\n{out}"
    );

    let after_url = metadata_url(&config);
    assert_ne!(
        after_url, before_url,
        "the merge commits new table metadata"
    );
    // The commit records still name the deleted files: no full archive check.
    let glob = read_archive(&glob_root(&conf, dir.path()), "duckdb");
    assert_eq!(glob.summary["rows"], glob.summary["distinct_station_seq"]);
    let after = assert_iceberg_scan_equals(&conf, &after_url, &glob);
    assert!(after.rows == before.rows, "the merge changed no row");
}

#[test]
fn duckdb_iceberg_scan_reads_the_glob_rows_from_a_folder() {
    need!(python());
    need!(duckdb_iceberg_python());
    let dir = tempdir();
    iceberg_scan_before_and_after_a_merge(Conf::local(dir.path()));
}

#[test]
fn duckdb_iceberg_scan_reads_the_glob_rows_from_s3() {
    need!(python());
    need!(duckdb_iceberg_python());
    let endpoint = need!(s3::endpoint());
    let dir = tempdir();
    let bucket = s3::unique_bucket("strata-duckdb-iceberg");
    s3::create_bucket(&endpoint, &bucket);
    let mut conf = Conf::local(dir.path());
    conf.storage = Storage::S3 {
        endpoint,
        bucket,
        prefix: "archive/ice".into(),
    };
    iceberg_scan_before_and_after_a_merge(conf);
}

// ------------------------------------------------------------ tier-2 replace

fn open_archive(dir: &Path) -> Archive {
    Archive::open(&StorageConfig {
        url: format!("file://{}", dir.join("archive").display()),
        ..StorageConfig::default()
    })
    .expect("open the archive")
}

/// Every commit record of the archive, with its path.
async fn commit_records(archive: &Archive) -> Vec<(object_store::path::Path, CommitRecord)> {
    let mut out = Vec::new();
    for meta in archive
        .list_all(Some(&layout::commits_prefix()))
        .await
        .expect("list")
    {
        let bytes = archive.get(&meta.location).await.expect("get");
        out.push((
            meta.location,
            CommitRecord::from_json(&bytes).expect("a commit record"),
        ));
    }
    out
}

/// What tier-2 compaction does to one partition: merges the committed files
/// of the first (station, hour) that has several into one file and stores the
/// replacement record. The small files stay (the grace period).
async fn merge_one_partition(archive: &Archive) -> ReplacementRecord {
    let mut groups: BTreeMap<(String, Hour), Vec<CommittedFile>> = BTreeMap::new();
    for (_, record) in commit_records(archive).await {
        for f in record.files {
            let rel = archive
                .relative(&object_store::path::Path::from(f.key.as_str()))
                .expect("under the prefix");
            let key = DataKey::parse(&rel).expect("a data key");
            groups
                .entry((key.station.to_string(), key.hour))
                .or_default()
                .push(f);
        }
    }
    let ((station, hour), replaced) = groups
        .into_iter()
        .find(|(_, files)| files.len() >= 2)
        .expect("a partition with two files");
    let station = StationName::new(station).expect("station");
    let mut msgs = Vec::new();
    for f in &replaced {
        let rel = archive
            .relative(&object_store::path::Path::from(f.key.as_str()))
            .expect("under the prefix");
        let bytes = archive.get(&rel).await.expect("get");
        msgs.extend(columnar::decode_file(&station, bytes, &Selection::default()).expect("decode"));
    }
    msgs.sort_by_key(|m| m.seq);
    let opts = CompactionConfig::default().parquet_options();
    let (bytes, summary) = columnar::encode_file(&station, &msgs, &opts).expect("encode");
    let key = DataKey {
        station,
        hour,
        first_seq: summary.first_seq,
        last_seq: summary.last_seq,
    };
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    archive
        .put(&key.path(), bytes.into())
        .await
        .expect("put merged");
    let record = ReplacementRecord {
        version: layout::REPLACEMENT_RECORD_VERSION,
        merged: CommittedFile::new(&archive.key(&key.path()), &key, &summary, size, sha),
        replaced,
        committed_at: Timestamp::now().to_rfc3339(),
        delete_after: Timestamp::now().to_rfc3339(),
        strata_version: "test".into(),
    };
    archive
        .put(
            &layout::replacement_record_path(&key),
            record.to_json().into(),
        )
        .await
        .expect("put record");
    record
}

/// The small files go once the grace period is over.
async fn delete_replaced(archive: &Archive, record: &ReplacementRecord) {
    for f in &record.replaced {
        let rel = archive
            .relative(&object_store::path::Path::from(f.key.as_str()))
            .expect("under the prefix");
        archive.delete(&rel).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_snapshot_swaps_the_small_files_for_the_merged_one() {
    need!(python());
    let dir = tempdir();
    let conf = Conf::local(dir.path());
    let config = conf.write(&dir.path().join("strata.toml"));
    ingest(&config, &batch(1, 60));
    flush(&config);
    ingest(&config, &batch(2, 45));
    flush(&config);
    let archive = open_archive(dir.path());
    let before = scan(&metadata_url(&config), None, None);

    let record = merge_one_partition(&archive).await;
    let table = IcebergTable::new(archive.clone());
    let outcome = table.replace(&record).await.expect("replace");
    assert!(
        matches!(outcome, CommitOutcome::Committed { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        table.replace(&record).await.expect("replace again"),
        CommitOutcome::AlreadyDone,
        "a redo adds no snapshot"
    );

    // During the grace period the glob sees both; the table each message once.
    let during = scan(&metadata_url(&config), None, None);
    assert_eq!(during.summary["operation"], "replace");
    assert_eq!(during.summary["snapshots"], 3);
    assert!(during.rows == before.rows, "the same rows after the swap");
    assert_eq!(
        during.files(),
        before.files() + 1 - record.replaced.len() as u64
    );

    delete_replaced(&archive, &record).await;
    assert_table_equals_glob_after_merge(&conf, &config, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_a_replacement_record_replaced_are_not_appended() {
    need!(python());
    let dir = tempdir();
    let (conf, config) = config_without_table(dir.path());
    ingest(&config, &batch(1, 60));
    flush(&config);
    ingest(&config, &batch(2, 45));
    flush(&config);
    let archive = open_archive(dir.path());
    let record = merge_one_partition(&archive).await;

    // Appends that come after the merge (a redo, a table turned on later)
    // leave out the replaced files; the replace adds the merged one.
    let table = IcebergTable::new(archive.clone());
    for (path, commit) in commit_records(&archive).await {
        table
            .append_commit(&commit, &path, true)
            .await
            .expect("append");
    }
    table.replace(&record).await.expect("replace");
    delete_replaced(&archive, &record).await;
    assert_table_equals_glob_after_merge(&conf, &config, dir.path());

    // The rebuild agrees: committed + merged - replaced.
    let files = scan(&metadata_url(&config), None, None).files();
    strata(args!["iceberg", "rebuild", "--config", config]).ok();
    let rebuilt = assert_table_equals_glob_after_merge(&conf, &config, dir.path());
    assert_eq!(rebuilt.files(), files);
}

// ------------------------------------------------------- concurrent writers

/// A commit record of one synthetic file (appends read only the records).
fn synthetic_record(archive: &Archive, writer: usize, segment: u64) -> CommitRecord {
    let key = DataKey {
        station: StationName::new(format!("s{writer}")).expect("station"),
        hour: Hour::of(Timestamp(DAY_US)),
        first_seq: segment * 10 + 1,
        last_seq: segment * 10 + 10,
    };
    CommitRecord {
        version: layout::COMMIT_RECORD_VERSION,
        wal_id: format!("w{writer}"),
        segment,
        files: vec![CommittedFile {
            key: archive.key(&key.path()).to_string(),
            station: key.station.to_string(),
            rows: 10,
            first_seq: key.first_seq,
            last_seq: key.last_seq,
            min_timestamp: Timestamp(DAY_US).to_rfc3339(),
            max_timestamp: Timestamp(DAY_US + 9).to_rfc3339(),
            bytes: 100,
            sha256: String::new(),
        }],
        committed_at: Timestamp::now().to_rfc3339(),
        strata_version: "test".into(),
    }
}

/// Several writers (as several `strata run` processes) commit at once: the
/// conditional create of `v<N+1>` lets exactly one win each version, the
/// others retry, and every record ends up in exactly one snapshot.
async fn concurrent_commits_all_land(archive: Archive) {
    const WRITERS: usize = 4;
    const EACH: u64 = 4;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let archive = archive.clone();
        tasks.push(tokio::spawn(async move {
            let table = IcebergTable::new(archive.clone());
            for seg in 0..EACH {
                let record = synthetic_record(&archive, w, seg);
                let path = layout::commit_record_path(&record.wal_id, seg);
                let outcome = table
                    .append_commit(&record, &path, false)
                    .await
                    .expect("commit");
                assert!(
                    matches!(outcome, CommitOutcome::Committed { .. }),
                    "{outcome:?}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let table = IcebergTable::new(archive.clone());
    let current = table.current().await.expect("load").expect("a table");
    let total = WRITERS * EACH as usize;
    assert_eq!(current.version, total as u64, "one version per commit");
    assert_eq!(current.metadata.snapshots.len(), total);
    for w in 0..WRITERS {
        for seg in 0..EACH {
            let path = layout::commit_record_path(&format!("w{w}"), seg);
            assert!(current.metadata.has_record(archive.key(&path).as_ref()));
        }
    }
    let summary = &current
        .metadata
        .current_snapshot()
        .expect("current")
        .summary;
    assert_eq!(summary["total-data-files"], total.to_string());
    assert_eq!(summary["total-records"], (total * 10).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_each_land_once_in_a_folder() {
    let dir = tempdir();
    concurrent_commits_all_land(open_archive(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_each_land_once_on_s3() {
    need!(python());
    let endpoint = need!(s3::endpoint());
    let bucket = s3::unique_bucket("strata-iceberg-race");
    s3::create_bucket(&endpoint, &bucket);
    let archive = Archive::open(&s3::storage(&endpoint, &bucket, "p")).expect("open");
    concurrent_commits_all_land(archive).await;
}

#[test]
fn a_rest_catalog_is_refused_with_what_to_do() {
    let dir = tempdir();
    let conf = Conf::local(dir.path());
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        conf.toml() + "\n[iceberg]\ncatalog = \"rest\"\nuri = \"http://127.0.0.1:9\"\ntoken = \"t0ps3cret\"\n",
    )
    .expect("write config");
    ingest(&config, &batch(1, 5));
    let out = strata(args!["flush", "--config", config]).failed();
    assert!(
        out.stderr.contains("catalog = \"rest\"") && out.stderr.contains("catalog = \"file\""),
        "{out}"
    );
    assert!(!out.text().contains("t0ps3cret"), "{out}");
    let out = strata(args!["iceberg", "rebuild", "--config", config]).failed();
    assert!(out.stderr.contains("not supported"), "{out}");
}

#[test]
fn a_table_turned_on_later_lists_the_older_files_too() {
    need!(python());
    let dir = tempdir();
    let (conf, config) = config_without_table(dir.path());
    ingest(&config, &batch(1, 50));
    flush(&config);
    // The next compaction with the table on (the default) starts it complete.
    conf.write(&config);
    ingest(&config, &batch(2, 30));
    flush(&config);
    let got = assert_table_equals_glob(&conf, &config, dir.path());
    assert_eq!(got.rows.len(), 80);
    // One snapshot: built from every record, the new one included, whose
    // append then finds its files listed.
    assert_eq!(got.summary["snapshots"], 1, "{}", got.summary);
    assert_eq!(got.summary["operation"], "overwrite");
}
