//! Object-store faults beyond failed calls (`tests/compactor.rs` covers
//! those): a write the store carried out whose response was lost (a data
//! file's put, the commit record's put, a multipart upload's start and its
//! completion), and a store that answers every write slowly. Each runs on a
//! local folder and on the S3-compatible test server, through the
//! fault-injecting wrapper of `tests/fault_store`. The compaction reports the
//! failure and keeps the segment; the next pass archives every message once;
//! no multipart upload is left unfinished where Strata can know of it.

mod fault_store;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tempfile::TempDir;

use fault_store::{FaultStore, Op};
use strata::columnar::{self, Selection};
use strata::compactor::{Compactor, NoopObserver};
use strata::config::{CompactionConfig, StorageConfig};
use strata::layout::DataKey;
use strata::store::Archive;
use strata::wal::{Wal, WalOptions};
use strata::{Draft, Header, Message, StationName, Timestamp};

/// 2026-11-24T10:00:00Z.
const T0: i64 = 1_795_514_400_000_000;

fn config() -> CompactionConfig {
    CompactionConfig {
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        ..CompactionConfig::default()
    }
}

fn open_wal(dir: &std::path::Path) -> Wal {
    let mut opts = WalOptions::new(dir);
    opts.segment_max_age = Duration::from_secs(3600);
    Wal::open(opts).expect("open WAL")
}

/// Messages of one station in one hour: `n` of `size` bytes (random, so a
/// large total does not compress below the multipart threshold).
fn messages(n: u64, size: usize) -> Vec<Message> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (1..=n)
        .map(|seq| {
            let payload: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Message {
                station: StationName::new("faults").expect("station"),
                seq,
                timestamp: Timestamp(T0 + seq as i64),
                id: (seq % 2 == 0).then(|| format!("id-{seq}")),
                subject: Some("faults.x".into()),
                headers: vec![Header::new("k", format!("v{seq}"))],
                payload: Bytes::from(payload),
            }
        })
        .collect()
}

/// Every message of every data file, with how often each `(station, seq)` occurs.
async fn archived(archive: &Archive) -> (Vec<Message>, BTreeMap<u64, u64>) {
    let objects = archive.list_all(None).await.expect("list");
    let mut all = Vec::new();
    for meta in objects {
        let Some(key) = DataKey::parse(&meta.location) else {
            continue;
        };
        let bytes = archive.get(&meta.location).await.expect("get");
        all.extend(
            columnar::decode_file(&key.station, bytes, &Selection::default()).expect("decode"),
        );
    }
    let mut count = BTreeMap::new();
    for m in &all {
        *count.entry(m.seq).or_insert(0) += 1;
    }
    all.sort_by_key(|m| m.seq);
    (all, count)
}

/// Incomplete multipart uploads the S3 server holds for the archive's bucket.
async fn server_incomplete_uploads(archive: &Archive) -> Option<usize> {
    let endpoint = support::s3::endpoint().ok()?;
    let bucket = archive.url().strip_prefix("s3://")?.split('/').next()?;
    support::s3::incomplete_uploads(&endpoint, bucket)
        .await
        .ok()
}

fn local(dir: &std::path::Path) -> Archive {
    Archive::open(&StorageConfig {
        url: format!("file://{}", dir.display()),
        ..StorageConfig::default()
    })
    .expect("folder archive")
}

fn s3(test: &str) -> Option<Archive> {
    let endpoint = support::s3::endpoint().ok()?;
    let bucket = support::s3::unique_bucket(&format!("faults-{test}"));
    support::s3::create_bucket(&endpoint, &bucket);
    Some(Archive::open(&support::s3::storage(&endpoint, &bucket, "archive")).expect("S3 archive"))
}

/// The archives to run a case on: a local folder and, when there is one, S3.
fn archives(test: &str, dir: &TempDir) -> Vec<Archive> {
    let mut out = vec![local(dir.path())];
    match s3(test) {
        Some(a) => out.push(a),
        None if support::require_servers() => {
            panic!("STRATA_TEST_REQUIRE_SERVERS=1 but STRATA_TEST_S3_ENDPOINT is not set")
        }
        None => eprintln!("{test}: no S3 server, local folder only"),
    }
    out
}

/// Appends `msgs`, arms a fault with `arm`, expects the flush to fail, heals,
/// and checks that the next pass archives every message exactly once.
/// Returns the faults injected and the incomplete uploads left on the server.
async fn lost_response_case(archive: Archive, msgs: &[Message], op: Op, nth: usize) -> usize {
    let faults = FaultStore::new(Arc::clone(archive.store()));
    let wrapped = archive.with_store(Arc::new(faults.clone()));
    let wal_dir = TempDir::new().expect("tempdir");
    let wal = open_wal(wal_dir.path());
    for chunk in msgs.chunks(50) {
        let drafts: Vec<Draft> = chunk.iter().cloned().map(Draft::from).collect();
        wal.append(drafts).await.expect("append");
    }
    let compactor = Compactor::new(wal.clone(), wrapped, &config(), Arc::new(NoopObserver));

    faults.lose_response_nth(op, nth);
    let err = compactor
        .flush()
        .await
        .expect_err("a lost response fails the compaction");
    assert!(
        err.to_string().contains("response was lost"),
        "{op:?}: {err}"
    );
    assert_eq!(
        wal.sealed().len(),
        1,
        "{op:?}: the segment stays in the WAL"
    );
    assert_eq!(faults.injected(), 1);

    faults.heal();
    compactor
        .compact_sealed()
        .await
        .expect("the next pass succeeds");
    assert!(wal.sealed().is_empty(), "{op:?}: the segment is archived");
    let (got, count) = archived(&archive).await;
    assert!(
        count.values().all(|n| *n == 1),
        "{op:?}: a message archived twice"
    );
    assert_eq!(got.len(), msgs.len(), "{op:?}: messages lost");
    assert!(
        got.as_slice() == msgs,
        "{op:?}: the archive differs from what was written"
    );
    let book = faults.multipart();
    assert_eq!(book.incomplete(), 0, "{op:?}: {book:?}");
    faults.injected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_to_a_write_that_succeeded_loses_and_doubles_nothing() {
    let began = Instant::now();
    let dir = TempDir::new().expect("tempdir");
    let small = messages(200, 100);
    let big = messages(100, 64 * 1024); // ~6.5 MiB: two parts
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked = 0;
    let mut orphans_after_lost_start = 0;
    for (i, archive) in archives("lost", &dir).into_iter().enumerate() {
        let kind = if i == 0 { "local" } else { "s3" };
        let sub = |name: &str| archive.within(&object_store::path::Path::from(name));
        for (name, msgs, op, nth) in [
            ("data file put", &small, Op::Put, 1),
            ("commit record put", &small, Op::Put, 2),
            ("multipart completion", &big, Op::Complete, 1),
        ] {
            let n = lost_response_case(sub(&name.replace(' ', "-")), msgs, op, nth).await;
            *injected
                .entry(format!("lost response: {name}"))
                .or_default() += n;
            checked += msgs.len();
        }
        if kind == "s3" {
            assert_eq!(
                server_incomplete_uploads(&archive).await,
                Some(0),
                "incomplete multipart uploads on the server"
            );
            // The start of a multipart upload whose response was lost: the
            // server holds an upload whose id Strata never learnt, so it
            // cannot abort it (object_store cannot list uploads). Nothing is
            // lost or doubled; the orphan is for a lifecycle rule.
            let n = lost_response_case(sub("multipart-start"), &big, Op::StartMultipart, 1).await;
            *injected
                .entry("lost response: multipart start".into())
                .or_default() += n;
            checked += big.len();
            orphans_after_lost_start = server_incomplete_uploads(&archive).await.unwrap_or(0);
        }
    }
    support::figures::record_figures(
        "store_lost_responses",
        serde_json::json!({
            "faults_injected": injected,
            "messages_checked": checked,
            "lost": 0,
            "duplicated": 0,
            "orphaned_uploads_after_a_lost_multipart_start": orphans_after_lost_start,
            "seconds": began.elapsed().as_secs(),
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_delays_but_loses_nothing() {
    let dir = TempDir::new().expect("tempdir");
    let msgs = messages(300, 200);
    let mut writes = 0;
    for archive in archives("slow", &dir) {
        let faults = FaultStore::new(Arc::clone(archive.store()));
        faults.set_delay(Duration::from_millis(400));
        let wrapped = archive.with_store(Arc::new(faults.clone()));
        let wal_dir = TempDir::new().expect("tempdir");
        let wal = open_wal(wal_dir.path());
        for chunk in msgs.chunks(100) {
            let drafts: Vec<Draft> = chunk.iter().cloned().map(Draft::from).collect();
            wal.append(drafts).await.expect("append");
            wal.seal().expect("seal");
        }
        let compactor = Compactor::new(wal.clone(), wrapped, &config(), Arc::new(NoopObserver));
        let start = Instant::now();
        compactor
            .flush()
            .await
            .expect("a slow store is still a store");
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "the delay was applied"
        );
        assert!(wal.sealed().is_empty());
        let (got, count) = archived(&archive).await;
        assert!(count.values().all(|n| *n == 1));
        assert!(
            got.as_slice() == msgs.as_slice(),
            "the archive differs from what was written"
        );
        writes += faults.calls(Op::Put);
    }
    support::figures::record_figures(
        "store_slow",
        serde_json::json!({
            "faults_injected": {"slow write (400 ms)": writes},
            "messages_checked": msgs.len() * 2,
            "lost": 0,
            "duplicated": 0,
        }),
    );
}
