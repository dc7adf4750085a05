//! Compaction end to end with real parts: a real WAL on disk, real Parquet, and
//! a local-folder archive or the S3-compatible test server.
//!
//! S3 tests use `STRATA_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:15000`, a
//! moto or MinIO server; path style, any keys, us-east-1) with one new bucket
//! per test; without it they print a note and pass, unless
//! `STRATA_TEST_REQUIRE_SERVERS=1`, which makes them fail.

mod fault_store;
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use fault_store::{FaultStore, Op};
use strata::catalog;
use strata::columnar::{self, Selection};
use strata::compactor::{CompactionError, CompactionObserver, Compactor, FailPoint, NoopObserver};
use strata::config::{CompactionConfig, StorageConfig};
use strata::iceberg::IcebergTable;
use strata::layout::{self, CommitRecord, DataKey, Hour};
use strata::store::Archive;
use strata::wal::{SegmentId, Wal, WalOptions};
use strata::{Draft, Header, Message, StationName, Timestamp};

const HOUR: i64 = 3_600_000_000;
/// 2026-11-24T00:00:00Z.
const DAY: i64 = 1_795_478_400_000_000;

// ---------------------------------------------------------------- fixtures

fn station(name: &str) -> StationName {
    StationName::new(name).expect("valid test station")
}

fn config() -> CompactionConfig {
    CompactionConfig {
        zstd_level: 3,
        row_group_rows: 4096,
        row_group_bytes: 4 << 20,
        multipart_threshold: 16 << 20,
        ..CompactionConfig::default()
    }
}

fn open_wal(dir: &std::path::Path, segment_max_bytes: u64) -> Wal {
    let mut opts = WalOptions::new(dir);
    opts.segment_max_bytes = segment_max_bytes;
    opts.segment_max_age = Duration::from_secs(3600);
    Wal::open(opts).expect("open WAL")
}

/// A `file://` archive in `dir`, opened as `strata run` opens it (empty prefix).
fn local_archive(dir: &std::path::Path) -> Archive {
    let cfg = StorageConfig {
        url: format!("file://{}", dir.display()),
        ..StorageConfig::default()
    };
    Archive::open(&cfg).expect("open the folder archive")
}

/// A fresh bucket on the S3 test server, archive under the prefix `archive`,
/// or `None` (with a note) when no server is configured and none is required.
fn s3_archive(test: &str) -> Option<Archive> {
    let endpoint = support::or_skip(support::s3::endpoint())?;
    let bucket = support::s3::unique_bucket(&format!("compactor-{test}"));
    support::s3::create_bucket(&endpoint, &bucket);
    let cfg = support::s3::storage(&endpoint, &bucket, "archive");
    Some(Archive::open(&cfg).expect("open the S3 archive"))
}

/// Multipart uploads the S3 server still holds (neither completed nor aborted).
async fn s3_incomplete_uploads(archive: &Archive) -> usize {
    let endpoint = support::s3::endpoint().expect("S3 endpoint");
    let bucket = archive
        .url()
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .expect("bucket in url");
    support::s3::incomplete_uploads(&endpoint, bucket)
        .await
        .expect("list multipart uploads")
}

fn wrap(archive: &Archive) -> (Archive, FaultStore) {
    let faults = FaultStore::new(Arc::clone(archive.store()));
    (archive.with_store(Arc::new(faults.clone())), faults)
}

/// A message with a deterministic shape that exercises every column.
fn message(st: &str, seq: u64, micros: i64, payload: Bytes) -> Message {
    Message {
        station: station(st),
        seq,
        timestamp: Timestamp(micros),
        id: (seq % 2 == 0).then(|| format!("id-{st}-{seq}")),
        subject: Some(format!("{st}.events")),
        headers: if seq % 3 == 0 {
            vec![Header::new("k", "v"), Header::new("K", "v2")]
        } else {
            Vec::new()
        },
        payload,
    }
}

/// Messages of three stations spread over four hours (some published out of
/// hour order), `per_station` each.
fn spread(per_station: u64) -> Vec<Message> {
    let mut out = Vec::new();
    for st in ["orders", "billing", "audit.log"] {
        for seq in 1..=per_station {
            let hour = ((seq * 4 / per_station.max(1)) as i64).min(3);
            let jitter = if seq % 17 == 0 { -HOUR / 2 } else { 0 };
            let micros = DAY + 10 * HOUR + hour * HOUR + jitter + seq as i64 * 1000;
            out.push(message(
                st,
                seq,
                micros,
                Bytes::from(format!("payload {st} {seq}")),
            ));
        }
    }
    out
}

async fn append(wal: &Wal, msgs: &[Message]) {
    for chunk in msgs.chunks(100) {
        let drafts: Vec<Draft> = chunk.iter().cloned().map(Draft::from).collect();
        let done = wal.append(drafts).await.expect("append");
        assert_eq!(done.accepted, chunk.len(), "the WAL accepted every message");
    }
}

/// Every data file of the archive: its key and its messages, checking that
/// each file holds what its key says.
async fn archive_files(archive: &Archive) -> Vec<(DataKey, Vec<Message>)> {
    let objects = archive.list_all(None).await.expect("list archive");
    let mut files = Vec::new();
    for meta in objects {
        let Some(key) = DataKey::parse(&meta.location) else {
            let record = [
                "_strata/commits/",
                "_strata/replacements/",
                "_strata/iceberg/",
            ];
            assert!(
                record.iter().any(|r| meta.location.as_ref().contains(r)),
                "unexpected object {}",
                meta.location
            );
            continue;
        };
        assert_eq!(key.path(), meta.location, "keys round-trip");
        let bytes = archive.get(&meta.location).await.expect("get");
        let msgs = columnar::decode_file(&key.station, bytes, &Selection::default())
            .expect("decode data file");
        assert!(!msgs.is_empty(), "{} is empty", meta.location);
        assert!(
            msgs.windows(2).all(|w| w[0].seq < w[1].seq),
            "sorted by seq"
        );
        assert_eq!(msgs.first().map(|m| m.seq), Some(key.first_seq));
        assert_eq!(msgs.last().map(|m| m.seq), Some(key.last_seq));
        for m in &msgs {
            assert_eq!(m.station, key.station);
            assert_eq!(
                Hour::of(m.timestamp),
                key.hour,
                "message in its UTC hour partition"
            );
        }
        files.push((key, msgs));
    }
    files
}

/// Asserts that the archive holds exactly `expected`, each message once.
async fn assert_archive_holds_exactly(archive: &Archive, expected: &[Message]) {
    let mut got: Vec<Message> = archive_files(archive)
        .await
        .into_iter()
        .flat_map(|(_, m)| m)
        .collect();
    got.sort_by(|a, b| (&a.station, a.seq).cmp(&(&b.station, b.seq)));
    let mut want = expected.to_vec();
    want.sort_by(|a, b| (&a.station, a.seq).cmp(&(&b.station, b.seq)));
    assert_eq!(got.len(), want.len(), "message count in the archive");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// Commit records of the archive by segment.
async fn commit_records(archive: &Archive) -> BTreeMap<u64, CommitRecord> {
    let objects = archive.list_all(None).await.expect("list");
    let mut out = BTreeMap::new();
    for meta in objects {
        if meta.location.as_ref().contains("_strata/commits/") {
            let bytes = archive.get(&meta.location).await.expect("get");
            let r: CommitRecord = serde_json::from_slice(&bytes).expect("commit record JSON");
            out.insert(r.segment, r);
        }
    }
    out
}

/// Incompressible bytes, so a file's size is about its payloads' size.
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// About `mib` MiB of one station in one hour: one file of that size.
fn big_station(mib: usize) -> Vec<Message> {
    let per = 64 << 10;
    (1..=(mib * 16) as u64)
        .map(|seq| message("bulk", seq, DAY + 5 * HOUR + seq as i64, noise(seq, per)))
        .collect()
}

// ---------------------------------------------------------------- the suite

/// Append over several stations and hours, flush, and check the archive, the
/// commit records, the catalog and the WAL.
async fn flush_archives_every_message(archive: Archive) {
    let wal_dir = TempDir::new().expect("tempdir");
    // Small segments so that the messages span several of them.
    let wal = open_wal(wal_dir.path(), 32 << 10);
    let msgs = spread(300);
    append(&wal, &msgs).await;
    let compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    );

    let report = compactor.flush().await.expect("flush");
    assert!(report.segments.len() > 1, "several segments: {report}");
    assert_eq!(report.rows(), msgs.len() as u64, "{report}");
    assert!(report.set_aside.is_empty());
    assert!(
        wal.sealed().is_empty(),
        "every segment deleted after its commit"
    );
    assert_archive_holds_exactly(&archive, &msgs).await;

    // One commit record per segment, listing exactly the segment's files with
    // their true size and checksum.
    let records = commit_records(&archive).await;
    let reported: Vec<u64> = report.segments.iter().map(|s| s.segment).collect();
    assert_eq!(records.keys().copied().collect::<Vec<_>>(), reported);
    let mut committed_keys = Vec::new();
    for (segment, record) in &records {
        assert_eq!(record.wal_id, wal.wal_id());
        assert_eq!(
            archive
                .key(&layout::commit_record_path(wal.wal_id(), *segment))
                .to_string(),
            report
                .segments
                .iter()
                .find(|s| s.segment == *segment)
                .expect("reported")
                .commit_record
        );
        for f in &record.files {
            // Commit records hold the full key, prefix included.
            let rel = archive
                .relative(&Path::from(f.key.as_str()))
                .unwrap_or_else(|| panic!("{} is under the archive's prefix", f.key));
            let bytes = archive.get(&rel).await.expect("committed file exists");
            assert_eq!(f.bytes, bytes.len() as u64);
            assert_eq!(f.sha256, hex::encode(Sha256::digest(&bytes)));
            committed_keys.push(f.key.clone());
        }
    }
    let mut listed: Vec<String> = archive_files(&archive)
        .await
        .iter()
        .map(|(k, _)| archive.key(&k.path()).to_string())
        .collect();
    listed.sort();
    committed_keys.sort();
    assert_eq!(
        listed, committed_keys,
        "every file is committed, none twice"
    );

    // The catalog agrees: every row counted from the commit records, no gap.
    let listing = catalog::list(&archive, None).await.expect("catalog");
    assert_eq!(listing.stations.len(), 3);
    for s in &listing.stations {
        assert_eq!(s.rows(), 300, "{listing}");
        assert_eq!(s.seq_range(), Some((1, 300)));
        assert!(s.gaps.is_empty() && s.overlaps.is_empty(), "{listing}");
        assert!(s.files().all(|f| f.committed()));
    }
    let one = catalog::list(&archive, Some(&station("billing")))
        .await
        .expect("catalog");
    assert_eq!(one.stations.len(), 1);
    assert_eq!(one.stations[0].station, station("billing"));

    // Nothing left: a second flush is a no-op.
    let again = compactor.flush().await.expect("second flush");
    assert!(again.segments.is_empty(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_archives_every_message_to_a_local_folder() {
    let dir = TempDir::new().expect("tempdir");
    flush_archives_every_message(local_archive(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_archives_every_message_to_s3() {
    if let Some(archive) = s3_archive("flush") {
        flush_archives_every_message(archive).await;
    }
}

// ---------------------------------------------------------------- multipart

/// A file above the threshold goes up as one multipart upload, completed.
async fn large_file_goes_up_as_multipart(archive: Archive) {
    let (wrapped, faults) = wrap(&archive);
    let wal_dir = TempDir::new().expect("tempdir");
    let wal = open_wal(wal_dir.path(), 64 << 20);
    let msgs = big_station(20);
    append(&wal, &msgs).await;
    let compactor = Compactor::new(wal.clone(), wrapped, &config(), Arc::new(NoopObserver));
    let report = compactor.flush().await.expect("flush");
    let files: Vec<_> = report.files().collect();
    assert_eq!(files.len(), 1, "{report}");
    assert!(files[0].bytes > 16 << 20, "{report}");
    let book = faults.multipart();
    assert_eq!(book.started.len(), 1, "{book:?}");
    assert_eq!(book.completed.len(), 1, "{book:?}");
    assert!(book.parts >= 3, "20 MiB in 8 MiB parts: {book:?}");
    assert_eq!(book.incomplete(), 0);
    assert_eq!(
        faults.calls(Op::Put),
        1,
        "only the commit record went up with a single put"
    );
    assert_archive_holds_exactly(&archive, &msgs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_goes_up_as_multipart_to_a_local_folder() {
    let dir = TempDir::new().expect("tempdir");
    large_file_goes_up_as_multipart(local_archive(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_goes_up_as_multipart_to_s3() {
    if let Some(archive) = s3_archive("multipart") {
        large_file_goes_up_as_multipart(archive).await;
    }
}

/// A multipart upload failing at `op` is aborted, leaves nothing behind, the
/// segment stays in the WAL, and a rerun archives everything.
async fn failed_multipart_is_aborted(archive: Archive, op: Op, nth: usize) {
    let (wrapped, faults) = wrap(&archive);
    let wal_dir = TempDir::new().expect("tempdir");
    let wal = open_wal(wal_dir.path(), 64 << 20);
    let msgs = big_station(20);
    append(&wal, &msgs).await;
    let observer = Arc::new(Counting::default());
    let compactor = Compactor::new(wal.clone(), wrapped, &config(), observer.clone());

    faults.fail_nth(op, nth);
    let err = compactor
        .flush()
        .await
        .expect_err("the injected fault fails the compaction");
    assert!(matches!(err, CompactionError::Store { .. }), "{err}");
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(observer.errors.load(Ordering::SeqCst), 1);

    let book = faults.multipart();
    assert_eq!(book.started.len(), 1, "{book:?}");
    assert_eq!(
        book.aborted.len(),
        1,
        "the failed upload is aborted: {book:?}"
    );
    assert_eq!(book.incomplete(), 0, "{book:?}");
    assert!(
        archive_files(&archive).await.is_empty(),
        "no data file is visible"
    );
    assert!(
        commit_records(&archive).await.is_empty(),
        "no commit record"
    );
    if archive.url().starts_with("s3://") {
        assert_eq!(
            s3_incomplete_uploads(&archive).await,
            0,
            "the server holds no incomplete upload"
        );
    }
    assert_eq!(wal.sealed().len(), 1, "the segment stays in the WAL");

    faults.heal();
    let report = compactor.compact_sealed().await.expect("rerun");
    assert_eq!(report.rows(), msgs.len() as u64);
    assert!(wal.sealed().is_empty());
    assert_archive_holds_exactly(&archive, &msgs).await;
    let book = faults.multipart();
    assert_eq!(
        (book.completed.len(), book.incomplete()),
        (1, 0),
        "{book:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_part_aborts_the_multipart_upload_local() {
    let dir = TempDir::new().expect("tempdir");
    failed_multipart_is_aborted(local_archive(dir.path()), Op::Part, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_completion_aborts_the_multipart_upload_local() {
    let dir = TempDir::new().expect("tempdir");
    failed_multipart_is_aborted(local_archive(dir.path()), Op::Complete, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_part_aborts_the_multipart_upload_s3() {
    if let Some(archive) = s3_archive("failed-part") {
        failed_multipart_is_aborted(archive, Op::Part, 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_completion_aborts_the_multipart_upload_s3() {
    if let Some(archive) = s3_archive("failed-complete") {
        failed_multipart_is_aborted(archive, Op::Complete, 1).await;
    }
}

// ---------------------------------------------------------------- crashes

/// Stops at `point` in-process, then reruns with a fresh compactor.
async fn rerun_after_failpoint(archive: Archive, point: FailPoint) {
    let wal_dir = TempDir::new().expect("tempdir");
    let wal = open_wal(wal_dir.path(), 16 << 10);
    let msgs = spread(120);
    append(&wal, &msgs).await;
    wal.seal().expect("seal");
    let segments = wal.sealed().len();
    assert!(segments > 1);

    let table = IcebergTable::new(archive.clone());
    let crashing = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    )
    .with_iceberg(Some(table.clone()))
    .with_failpoint(Some(point));
    let err = crashing
        .compact_sealed()
        .await
        .expect_err("stops at the failpoint");
    assert!(
        matches!(err, CompactionError::FailPoint { point: p, .. } if p == point),
        "{err}"
    );
    assert_eq!(wal.sealed().len(), segments, "no segment deleted");
    let records = commit_records(&archive).await;
    match point {
        FailPoint::AfterUpload => assert!(records.is_empty(), "no commit record yet"),
        FailPoint::AfterCommit
        | FailPoint::IcebergAfterManifest
        | FailPoint::IcebergAfterMetadata => {
            assert_eq!(records.len(), 1, "the first segment committed")
        }
    }
    assert!(
        !archive_files(&archive).await.is_empty(),
        "the first segment's files are up"
    );
    drop(crashing);

    let compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    )
    .with_iceberg(Some(table.clone()));
    let report = compactor.compact_sealed().await.expect("rerun");
    assert_eq!(report.segments.len(), segments);
    assert_eq!(
        report.segments[0].already_committed,
        point != FailPoint::AfterUpload,
        "{report}"
    );
    // The Iceberg table: one snapshot per segment, none twice, every row once.
    let current = table.current().await.expect("load").expect("a table");
    assert_eq!(current.metadata.snapshots.len(), segments, "{point}");
    let summary = &current
        .metadata
        .current_snapshot()
        .expect("current")
        .summary;
    assert_eq!(summary["total-records"], msgs.len().to_string(), "{point}");
    assert!(wal.sealed().is_empty());
    assert_archive_holds_exactly(&archive, &msgs).await;
    assert_eq!(commit_records(&archive).await.len(), segments);
    let listing = catalog::list(&archive, None).await.expect("catalog");
    for s in &listing.stations {
        assert!(s.gaps.is_empty() && s.overlaps.is_empty(), "{listing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_a_stop_after_upload_archives_each_message_once() {
    let dir = TempDir::new().expect("tempdir");
    rerun_after_failpoint(local_archive(dir.path()), FailPoint::AfterUpload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_a_stop_after_commit_archives_each_message_once() {
    let dir = TempDir::new().expect("tempdir");
    rerun_after_failpoint(local_archive(dir.path()), FailPoint::AfterCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_a_stop_in_an_iceberg_commit_archives_each_message_once() {
    for point in [
        FailPoint::IcebergAfterManifest,
        FailPoint::IcebergAfterMetadata,
    ] {
        let dir = TempDir::new().expect("tempdir");
        rerun_after_failpoint(local_archive(dir.path()), point).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_failpoints_on_s3() {
    for point in [
        FailPoint::AfterUpload,
        FailPoint::AfterCommit,
        FailPoint::IcebergAfterManifest,
        FailPoint::IcebergAfterMetadata,
    ] {
        if let Some(archive) = s3_archive(point.as_str()) {
            rerun_after_failpoint(archive, point).await;
        }
    }
}

const CHILD_WAL: &str = "STRATA_TEST_CRASH_WAL";
const CHILD_ARCHIVE: &str = "STRATA_TEST_CRASH_ARCHIVE";

/// Runs in a child process started by [`a_real_crash_at_each_failpoint_loses_and_duplicates_nothing`]
/// with `STRATA_FAILPOINT` set: compacts, and the process aborts at the failpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: run in a child process by the crash test"]
async fn crash_child() {
    let wal_dir = std::env::var(CHILD_WAL).expect("run by the crash test");
    let archive_dir = std::env::var(CHILD_ARCHIVE).expect("run by the crash test");
    let wal = open_wal(std::path::Path::new(&wal_dir), 16 << 10);
    let compactor = Compactor::new(
        wal,
        local_archive(std::path::Path::new(&archive_dir)),
        &config(),
        Arc::new(AbortAt(
            std::env::var("STRATA_FAILPOINT")
                .expect("run by the crash test")
                .parse()
                .expect("a failpoint name"),
        )),
    );
    let outcome = compactor.compact_sealed().await;
    panic!("the failpoint should have aborted the process, got {outcome:?}");
}

/// Aborts the process at one failpoint: a real crash, installed by the test.
#[derive(Debug)]
struct AbortAt(FailPoint);

impl strata::compactor::CompactionObserver for AbortAt {
    fn at_fail_point(&self, point: FailPoint, _segment: u64) -> strata::compactor::FailPointAction {
        if point == self.0 {
            std::process::abort();
        }
        strata::compactor::FailPointAction::Continue
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_crash_at_each_failpoint_loses_and_duplicates_nothing() {
    for point in ["after-upload", "after-commit"] {
        let wal_dir = TempDir::new().expect("tempdir");
        let archive_dir = TempDir::new().expect("tempdir");
        let msgs = spread(100);
        {
            let wal = open_wal(wal_dir.path(), 16 << 10);
            append(&wal, &msgs).await;
            wal.seal().expect("seal");
            wal.close().expect("close");
        }
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STRATA_FAILPOINT", point)
            .env(CHILD_WAL, wal_dir.path())
            .env(CHILD_ARCHIVE, archive_dir.path())
            .status()
            .expect("run the child");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(6),
                "{point}: the child aborts (SIGABRT): {status}"
            );
        }
        assert!(!status.success());

        // Restart: recover the WAL and compact again.
        let wal = open_wal(wal_dir.path(), 16 << 10);
        assert!(
            !wal.sealed().is_empty(),
            "{point}: segments survive the crash"
        );
        let archive = local_archive(archive_dir.path());
        let compactor = Compactor::new(
            wal.clone(),
            archive.clone(),
            &config(),
            Arc::new(NoopObserver),
        );
        let report = compactor.flush().await.expect("compaction after the crash");
        assert_eq!(
            report.segments.first().map(|s| s.already_committed),
            Some(point == "after-commit"),
            "{point}: {report}"
        );
        assert!(wal.sealed().is_empty());
        assert_archive_holds_exactly(&archive, &msgs).await;
    }
}

// ---------------------------------------------------------------- corruption

/// Two sealed segments: stations' seqs 1..=`first` in the first (returned
/// with its id), `first + 1..=upto` in the second (returned).
async fn two_sealed_segments(wal: &Wal, first: u64, upto: u64) -> (SegmentId, Vec<Message>) {
    append(wal, &spread(first)).await;
    let id = wal.seal().expect("seal").expect("a segment");
    let second: Vec<Message> = spread(upto).into_iter().filter(|m| m.seq > first).collect();
    append(wal, &second).await;
    wal.seal().expect("seal");
    (id, second)
}

/// The file of sealed segment `id`.
fn sealed_path(wal: &Wal, id: SegmentId) -> std::path::PathBuf {
    wal.sealed()
        .into_iter()
        .find(|s| s.id == id)
        .expect("sealed segment")
        .path
}

/// Appends `entry` (an encoded WAL entry) to sealed segment `id`, behind the
/// WAL's back.
fn append_raw_entry(wal: &Wal, id: SegmentId, entry: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(sealed_path(wal, id))
        .expect("open segment");
    std::io::Write::write_all(&mut file, entry).expect("append entry");
}

/// Two sealed segments (seqs up to `first`, then up to `upto`), the first
/// damaged by `damage` (given the WAL, the segment and its path; it returns
/// the segment's bytes as it left them), then a compaction. The first must be
/// set aside whole — reported once, its bytes still on disk, nothing of it
/// archived, no longer offered — and the second archived. Returns the report.
async fn damaged_first_segment_is_set_aside(
    first: u64,
    upto: u64,
    damage: impl FnOnce(&Wal, SegmentId, &std::path::Path) -> Vec<u8>,
) -> strata::compactor::CompactionReport {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let wal = open_wal(wal_dir.path(), 1 << 20);
    let (bad, second) = two_sealed_segments(&wal, first, upto).await;
    let path = sealed_path(&wal, bad);
    let bytes = damage(&wal, bad, &path);

    let observer = Arc::new(Counting::default());
    let compactor = Compactor::new(wal.clone(), archive.clone(), &config(), observer.clone());
    let report = compactor
        .compact_sealed()
        .await
        .expect("compaction goes on past it");
    assert_eq!(report.set_aside.len(), 1, "{report}");
    assert_eq!(report.set_aside[0].segment, bad.0);
    assert!(report.to_string().contains("SET ASIDE"), "{report}");
    assert_eq!(
        report.segments.len(),
        1,
        "the next segment is compacted: {report}"
    );
    assert_eq!(observer.set_aside.load(Ordering::SeqCst), 1);
    assert!(
        wal_dir_holds_bytes(wal_dir.path(), &bytes),
        "the damaged segment is still on disk, untouched"
    );
    assert!(
        wal.sealed().iter().all(|s| s.id != bad),
        "the WAL no longer offers it for compaction"
    );
    assert_archive_holds_exactly(&archive, &second).await;

    // Reported once, not re-read on every pass.
    let again = compactor.compact_sealed().await.expect("second pass");
    assert!(
        again.set_aside.is_empty() && again.segments.is_empty(),
        "{again}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_segment_is_set_aside_reported_and_kept() {
    // One byte flipped in the middle of the first segment's entries.
    damaged_first_segment_is_set_aside(50, 100, |_, _, path| {
        let mut bytes = std::fs::read(path).expect("read segment");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x5A;
        std::fs::write(path, &bytes).expect("write segment");
        bytes
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_under_a_valid_crc_sets_the_segment_aside() {
    // A segment whose CRCs hold but whose header value is not UTF-8 (a
    // writer's bug, not a flipped bit) is found by the index pass and set
    // aside whole, before any of its files is stored: never half archived.
    let report = damaged_first_segment_is_set_aside(40, 60, |wal, bad, path| {
        // One more entry in the first segment: a message whose header value
        // is 0xff, its CRC computed over the bytes as they are.
        let marked = Message {
            seq: 1000,
            headers: vec![strata::message::Header::new("X-Bad", "MARK")],
            ..spread(1)[0].clone()
        };
        let mut entry = strata::wal::entry::encode(std::slice::from_ref(&marked)).expect("encode");
        let at = entry
            .windows(4)
            .position(|w| w == b"MARK")
            .expect("the marker");
        entry[at] = 0xff;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&entry[4..12]);
        crc.update(&entry[strata::wal::entry::HEADER_LEN..]);
        entry[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
        append_raw_entry(wal, bad, &entry);
        std::fs::read(path).expect("read segment")
    })
    .await;
    assert!(report.set_aside[0].reason.contains("not UTF-8"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_inside_a_segment_are_archived_once() {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let wal = open_wal(wal_dir.path(), 1 << 20);
    let msgs = spread(40);
    append(&wal, &msgs).await;
    let id = wal.seal().expect("seal").expect("a segment");

    // The WAL refuses duplicates at append, so write a second copy of some
    // messages (other payload, other hour) straight into the sealed segment,
    // as a WAL entry of its own format.
    let copies: Vec<Message> = msgs
        .iter()
        .filter(|m| m.seq % 5 == 0)
        .map(|m| Message {
            payload: Bytes::from("second copy"),
            timestamp: Timestamp(m.timestamp.micros() + 7 * HOUR),
            ..m.clone()
        })
        .collect();
    let entry = strata::wal::entry::encode(&copies).expect("encode entry");
    append_raw_entry(&wal, id, &entry);
    assert_eq!(
        wal.read_segment(id).expect("read").len(),
        msgs.len() + copies.len(),
        "the segment holds both copies"
    );

    let compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    );
    let report = compactor.compact_sealed().await.expect("compact");
    assert_eq!(
        report.segments[0].duplicates,
        copies.len() as u64,
        "{report}"
    );
    assert_eq!(report.rows(), msgs.len() as u64);
    assert_archive_holds_exactly(&archive, &msgs).await;
}

/// Whether some file under `dir` has exactly `bytes` as content.
fn wal_dir_holds_bytes(dir: &std::path::Path, bytes: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).map(|b| b == bytes).unwrap_or(false) {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------- the loop

#[derive(Debug, Default)]
struct Counting {
    errors: AtomicUsize,
    retries: AtomicUsize,
    compactions: AtomicUsize,
    rows: AtomicU64,
    set_aside: AtomicUsize,
    last_age: AtomicU64,
}

impl CompactionObserver for Counting {
    fn inc_upload_error(&self) {
        self.errors.fetch_add(1, Ordering::SeqCst);
    }
    fn inc_upload_retry(&self) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }
    fn observe_compaction(&self, _duration: Duration, _bytes: u64, rows: u64) {
        self.compactions.fetch_add(1, Ordering::SeqCst);
        self.rows.fetch_add(rows, Ordering::SeqCst);
    }
    fn set_oldest_unuploaded_age(&self, secs: f64) {
        self.last_age.store(secs as u64, Ordering::SeqCst);
    }
    fn inc_segment_set_aside(&self) {
        self.set_aside.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_loop_backs_off_through_an_outage_then_catches_up() {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let (wrapped, faults) = wrap(&archive);
    let wal = open_wal(wal_dir.path(), 16 << 10);
    let observer = Arc::new(Counting::default());
    let compactor = Arc::new(Compactor::new(
        wal.clone(),
        wrapped,
        &config(),
        observer.clone(),
    ));

    faults.set_outage(true);
    let msgs = spread(60);
    append(&wal, &msgs).await;
    wal.seal().expect("seal");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::clone(&compactor).run(shutdown));

    // The first attempt fails at once, the next one 0.5 s later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while observer.errors.load(Ordering::SeqCst) < 2 || observer.retries.load(Ordering::SeqCst) < 1
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop retries: {observer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !wal.sealed().is_empty(),
        "segments wait in the WAL during the outage"
    );
    assert!(
        observer.last_age.load(Ordering::SeqCst) > 3600,
        "test timestamps are over an hour old: {observer:?}"
    );

    faults.set_outage(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !wal.sealed().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the loop caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New data is picked up by polling.
    let more: Vec<Message> = spread(80).into_iter().filter(|m| m.seq > 60).collect();
    append(&wal, &more).await;
    wal.seal().expect("seal");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !wal.sealed().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop polls for sealed segments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(observer.last_age.load(Ordering::SeqCst), 0);

    stop.send(true).expect("signal shutdown");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop exits on shutdown")
        .expect("no panic");
    let all: Vec<Message> = msgs.into_iter().chain(more).collect();
    assert_eq!(observer.rows.load(Ordering::SeqCst), all.len() as u64);
    assert_archive_holds_exactly(&archive, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_messages_keep_arriving_sealed_segments_wait_at_most_defer_while_busy() {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let wal = open_wal(wal_dir.path(), 64 << 20);
    let limit = Duration::from_secs(3);
    let cfg = CompactionConfig {
        defer_while_busy: limit,
        ..config()
    };
    let compactor = Arc::new(Compactor::new(
        wal.clone(),
        archive.clone(),
        &cfg,
        Arc::new(NoopObserver),
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::clone(&compactor).run(shutdown));

    // A source that keeps appending, one message every 20 ms.
    let (quiet, mut quieted) = tokio::sync::watch::channel(false);
    let source = {
        let wal = wal.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for seq in 1u64.. {
                if *quieted.borrow_and_update() {
                    break;
                }
                let m = message("orders", seq, DAY + seq as i64, Bytes::from(vec![7u8; 100]));
                append(&wal, std::slice::from_ref(&m)).await;
                sent.push(m);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };
    // The compactor has looked at the WAL at least twice while appends came.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    wal.seal().expect("seal");
    let sealed = tokio::time::Instant::now();
    let deadline = sealed + limit + Duration::from_secs(7);
    while !wal.sealed().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a sealed segment waits at most defer_while_busy, then is compacted while \
             messages still arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = sealed.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "while messages keep arriving the sealed segment waits ({waited:?})"
    );

    // Once the source is quiet, a sealed segment goes at the next look.
    quiet.send(true).expect("quiet");
    let sent = source.await.expect("source");
    wal.seal().expect("seal");
    let sealed = tokio::time::Instant::now();
    while !wal.sealed().is_empty() {
        assert!(
            sealed.elapsed() < Duration::from_secs(5),
            "a quiet WAL's sealed segment is compacted at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sealed.elapsed() < limit, "{:?}", sealed.elapsed());

    stop.send(true).expect("shutdown");
    task.await.expect("loop");
    assert_archive_holds_exactly(&archive, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_the_loop_never_compact_one_segment_twice() {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let (wrapped, faults) = wrap(&archive);
    let wal = open_wal(wal_dir.path(), 8 << 10);
    let compactor = Arc::new(Compactor::new(
        wal.clone(),
        wrapped,
        &config(),
        Arc::new(NoopObserver),
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::clone(&compactor).run(shutdown));
    let mut all = Vec::new();
    for round in 0..5u64 {
        let batch: Vec<Message> = spread(40 * (round + 1))
            .into_iter()
            .filter(|m| m.seq > 40 * round)
            .collect();
        append(&wal, &batch).await;
        all.extend(batch);
        compactor.flush().await.expect("flush");
    }
    stop.send(true).expect("shutdown");
    task.await.expect("loop");
    assert!(wal.sealed().is_empty());
    // Each segment's commit record was written once: one put per file plus one
    // per segment, and no file was written twice.
    let records = commit_records(&archive).await;
    let files: usize = records.values().map(|r| r.files.len()).sum();
    assert_eq!(faults.calls(Op::Put), files + records.len());
    assert_archive_holds_exactly(&archive, &all).await;
}

// ---------------------------------------------------------------- catalog

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_reads_footers_without_commit_records_and_reports_gaps() {
    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let wal = open_wal(wal_dir.path(), 64 << 20);
    // seqs 1-10 in hour 1, 11-20 in hour 2, 21-30 in hour 3.
    let msgs: Vec<Message> = (1..=30u64)
        .map(|seq| {
            message(
                "orders",
                seq,
                DAY + ((seq as i64 - 1) / 10 + 1) * HOUR,
                Bytes::from("x"),
            )
        })
        .collect();
    append(&wal, &msgs).await;
    let compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    );
    compactor.flush().await.expect("flush");

    for record in commit_records(&archive).await.values() {
        let path = layout::commit_record_path(&record.wal_id, record.segment);
        archive.delete(&path).await.expect("delete commit record");
    }
    let middle = DataKey {
        station: station("orders"),
        hour: Hour::of(Timestamp(DAY + 2 * HOUR)),
        first_seq: 11,
        last_seq: 20,
    };
    archive.delete(&middle.path()).await.expect("delete a file");

    let listing = catalog::list(&archive, None).await.expect("catalog");
    let s = &listing.stations[0];
    assert_eq!(s.rows(), 20, "rows from the footers: {listing}");
    assert!(s.files().all(|f| f.rows_from == catalog::RowSource::Footer));
    assert_eq!(
        s.gaps,
        vec![catalog::Gap {
            from_seq: 11,
            to_seq: 20,
            missing: 10,
            exact: true
        }]
    );
    let text = listing.to_string();
    assert!(
        text.contains("GAP: seqs 11-20 are missing (10 messages)"),
        "{text}"
    );
    assert!(text.contains("not in a commit record"), "{text}");
}

/// A segment committed but not yet deleted (crash after the commit record),
/// whose file tier-2 compaction then merges and deletes: the redo must see the
/// merged file holding its rows and only delete the segment, not upload the
/// small file again beside the merged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redo_after_a_tier2_merge_does_not_upload_the_merged_file_again() {
    use strata::tier2::{NoopHook, NoopTier2Observer, Tier2, Tier2Options};

    let wal_dir = TempDir::new().expect("tempdir");
    let archive_dir = TempDir::new().expect("tempdir");
    let archive = local_archive(archive_dir.path());
    let wal = open_wal(wal_dir.path(), 1 << 30);
    let at = |seq: u64| DAY + 10 * HOUR + seq as i64;
    let first: Vec<Message> = (1..=5)
        .map(|s| message("orders", s, at(s), Bytes::from("a")))
        .collect();
    let second: Vec<Message> = (6..=9)
        .map(|s| message("orders", s, at(s), Bytes::from("b")))
        .collect();
    let compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    );
    append(&wal, &first).await;
    compactor.flush().await.expect("first segment");
    append(&wal, &second).await;
    wal.seal().expect("seal");
    let stopped = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config(),
        Arc::new(NoopObserver),
    )
    .with_failpoint(Some(FailPoint::AfterCommit));
    stopped
        .compact_sealed()
        .await
        .expect_err("stops after the commit record");
    assert_eq!(wal.sealed().len(), 1, "the second segment stays in the WAL");

    let tier2 = Tier2::new(
        archive.clone(),
        Tier2Options {
            target_file_bytes: 1 << 20,
            grace: Duration::ZERO,
        },
        &config(),
        Arc::new(NoopHook),
        Arc::new(NoopTier2Observer),
    );
    let report = tier2.pass().await.expect("tier-2 pass");
    assert_eq!(report.merges.len(), 1, "{report}");
    assert_eq!(report.merges[0].replaced_files, 2, "{report}");

    let redo = compactor.compact_sealed().await.expect("redo");
    assert!(redo.segments[0].already_committed, "{redo}");
    assert!(wal.sealed().is_empty());
    let files = archive_files(&archive).await;
    let keys: Vec<(u64, u64)> = files
        .iter()
        .map(|(k, _)| (k.first_seq, k.last_seq))
        .collect();
    assert_eq!(keys, [(1, 9)], "only the merged file");
    let seqs: Vec<u64> = files[0].1.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
}
