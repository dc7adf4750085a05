//! Two WALs that hold some of the same `(station, seq)` (a takeover
//! redelivered what an old owner had made durable without acknowledging)
//! upload into one archive through the real compactor and real Parquet:
//! with upload claims, every seq is stored once and none is lost, including
//! a seq that falls inside another file's key range without being in it.
//! The claims here are granted at once (the NATS-backed ones are exercised by
//! `e2e_cluster`); what is tested is the compactor's side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata::columnar;
use strata::compactor::claims::{HeldClaims, UploadClaims};
use strata::compactor::{CompactionObserver, Compactor};
use strata::config::{CompactionConfig, StorageConfig};
use strata::layout::DataKey;
use strata::store::Archive;
use strata::wal::{Wal, WalOptions};
use strata::{Draft, Message, StationName, Timestamp};

/// 2026-11-24T00:00:00Z.
const DAY: i64 = 1_795_478_400_000_000;

#[derive(Debug)]
struct Granted;

struct Held;

#[async_trait::async_trait]
impl HeldClaims for Held {
    fn held(&self) -> bool {
        true
    }
    async fn release(self: Box<Self>) {}
}

#[async_trait::async_trait]
impl UploadClaims for Granted {
    async fn claim(&self, _: &[StationName]) -> Result<Box<dyn HeldClaims>, String> {
        Ok(Box::new(Held))
    }
}

#[derive(Debug, Default)]
struct Dropped(std::sync::Mutex<u64>);

impl CompactionObserver for Dropped {
    fn duplicates_dropped(&self, _: &StationName, rows: u64) {
        *self.0.lock().expect("lock") += rows;
    }
}

fn message(seq: u64) -> Message {
    Message {
        station: StationName::new("orders").expect("valid"),
        seq,
        // One hour partition; the same content in both WALs, as a
        // redelivery has.
        timestamp: Timestamp(DAY + seq as i64),
        id: None,
        subject: Some("orders.created".into()),
        headers: Vec::new(),
        payload: Bytes::from(format!("payload {seq}")),
    }
}

fn wal(dir: &std::path::Path) -> Wal {
    let mut opts = WalOptions::new(dir);
    opts.segment_max_age = Duration::from_secs(3600);
    Wal::open(opts).expect("open WAL")
}

fn compactor(wal: Wal, archive: &Archive, observer: Arc<Dropped>) -> Compactor {
    Compactor::new(wal, archive.clone(), &CompactionConfig::default(), observer)
        .with_upload_claims(Arc::new(Granted))
}

/// seq → how many stored files hold it.
async fn stored_seqs(archive: &Archive) -> BTreeMap<u64, u32> {
    let metas = archive.list_all(None).await.expect("list archive");
    let mut out = BTreeMap::new();
    for m in metas {
        if DataKey::parse(&m.location).is_none() {
            continue;
        }
        let bytes = archive.get(&m.location).await.expect("get");
        for s in columnar::file_seqs(bytes).expect("seqs") {
            *out.entry(s).or_default() += 1;
        }
    }
    out
}

async fn append(wal: &Wal, seqs: impl Iterator<Item = u64>) {
    let drafts: Vec<Draft> = seqs.map(|s| Draft::from(message(s))).collect();
    wal.append(drafts).await.expect("append");
}

#[tokio::test]
async fn two_wals_holding_the_same_seqs_upload_each_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&StorageConfig {
        url: format!("file://{}", tmp.path().join("archive").display()),
        ..StorageConfig::default()
    })
    .expect("archive");
    // The old owner: 1..=100 but not 50 (redelivered later, to the new owner).
    let old = wal(&tmp.path().join("old"));
    append(&old, (1..=100).filter(|&s| s != 50)).await;
    // The new owner: the redelivered 50, 91..=100 it got again after the
    // takeover, and what came after.
    let new = wal(&tmp.path().join("new"));
    append(&new, std::iter::once(50).chain(91..=150)).await;

    let seen_new = Arc::new(Dropped::default());
    let report = compactor(new, &archive, Arc::clone(&seen_new))
        .flush()
        .await
        .expect("new owner's upload");
    assert_eq!(report.rows(), 61);
    // The old owner restarts with its disk and uploads after the new one.
    let seen_old = Arc::new(Dropped::default());
    let report = compactor(old, &archive, Arc::clone(&seen_old))
        .flush()
        .await
        .expect("old owner's upload");
    assert_eq!(
        *seen_old.0.lock().expect("lock"),
        10,
        "91..=100 were stored already"
    );
    assert_eq!(report.rows(), 89);

    let stored = stored_seqs(&archive).await;
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=150).collect::<Vec<_>>()
    );
    assert!(
        stored.values().all(|&n| n == 1),
        "a seq stored twice: {stored:?}"
    );
    // The new owner's file is 50-150 (it holds 50 and 91..=150): the old
    // owner's rest is split around its 50, so no new key equals a stored one.
    let mut keys: Vec<String> = report
        .files()
        .map(|f| f.key.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "00000000000000000001-00000000000000000049.parquet",
            "00000000000000000051-00000000000000000090.parquet"
        ]
    );
}
