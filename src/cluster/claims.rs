//! Upload claims: `upload.<station>` keys of the lease bucket, taken with
//! `create` before a compactor lists a station's partitions and uploads its
//! rows, renewed every third of the lease while held, deleted (at their
//! revision) once the files are stored. A holder that dies leaves its claim
//! to expire with the bucket's `max_age`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::bucket::{Bucket, Cas, Holder};
use super::keys::Key;
use super::lease::{Lease, LeaseTiming};
use crate::compactor::claims::{HeldClaims, UploadClaims};
use crate::message::StationName;

/// How long a claim is waited for before the segment is retried later.
const WAIT_LIMIT_LEASES: u32 = 10;

/// The claims of one member.
#[derive(Debug, Clone)]
pub struct BucketClaims {
    bucket: Bucket,
    me: Holder,
}

impl BucketClaims {
    /// Claims in `bucket` named after `me`.
    pub fn new(bucket: Bucket, me: Holder) -> Self {
        Self { bucket, me }
    }

    /// Takes one station's claim, waiting while another member holds it.
    async fn claim_one(
        &self,
        station: &StationName,
        timing: LeaseTiming,
    ) -> Result<(u64, Instant), String> {
        let key = Key::Upload(station.clone());
        let started = Instant::now();
        let mut logged = false;
        loop {
            let sent = Instant::now();
            match self
                .bucket
                .create(&key, &self.me)
                .await
                .map_err(|e| e.to_string())?
            {
                Cas::Written(rev) => return Ok((rev, sent)),
                Cas::Conflict => {}
            }
            match self.bucket.entry(&key).await.map_err(|e| e.to_string())? {
                // Left by a previous run of this WAL, which is dead (this
                // process holds the WAL's lock): take it over.
                Some(e) if e.holder.owner == self.me.owner => {
                    let sent = Instant::now();
                    if let Cas::Written(rev) = self
                        .bucket
                        .update(&key, &self.me, e.revision)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Ok((rev, sent));
                    }
                }
                Some(e) if !logged => {
                    tracing::info!(station = %station, holder = %e.holder.owner, host = %e.holder.host,
                        "another Strata process is uploading this station; waiting for its claim");
                    logged = true;
                }
                _ => {}
            }
            if started.elapsed() > timing.lease * WAIT_LIMIT_LEASES {
                return Err(format!(
                    "the upload claim on station {station} stayed taken for {:?}",
                    started.elapsed()
                ));
            }
            tokio::time::sleep(timing.claim_retry()).await;
        }
    }
}

#[async_trait::async_trait]
impl UploadClaims for BucketClaims {
    async fn claim(&self, stations: &[StationName]) -> Result<Box<dyn HeldClaims>, String> {
        let timing = LeaseTiming::new(self.bucket.lease());
        let mut held: Vec<(Key, u64)> = Vec::with_capacity(stations.len());
        let mut earliest: Option<Instant> = None;
        for station in stations {
            match self.claim_one(station, timing).await {
                Ok((rev, sent)) => {
                    held.push((Key::Upload(station.clone()), rev));
                    earliest = Some(earliest.map_or(sent, |e: Instant| e.min(sent)));
                }
                Err(e) => {
                    release(&self.bucket, &self.me, &held).await;
                    return Err(format!("cannot claim the upload: {e}"));
                }
            }
        }
        let lease = Lease::until(timing.deadline(earliest.unwrap_or_else(Instant::now)));
        let held = Arc::new(Mutex::new(held));
        let renewer = tokio::spawn(renew(
            self.bucket.clone(),
            self.me.clone(),
            Arc::clone(&held),
            lease.clone(),
            timing,
        ));
        Ok(Box::new(Claimed {
            bucket: self.bucket.clone(),
            me: self.me.clone(),
            held,
            lease,
            renewer,
        }))
    }
}

type Revisions = Arc<Mutex<Vec<(Key, u64)>>>;

fn revisions(held: &Revisions) -> Vec<(Key, u64)> {
    held.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Renews every claim every third of the lease; a conflict or a lapse
/// revokes them all (the compactor then stops before its next upload).
async fn renew(bucket: Bucket, me: Holder, held: Revisions, lease: Lease, timing: LeaseTiming) {
    loop {
        tokio::time::sleep(timing.renew_every()).await;
        let sent = Instant::now();
        let mut all = true;
        for (i, (key, rev)) in revisions(&held).into_iter().enumerate() {
            match bucket.update(&key, &me, rev).await {
                Ok(Cas::Written(r)) => {
                    if let Ok(mut v) = held.lock() {
                        v[i].1 = r;
                    }
                }
                Ok(Cas::Conflict) => {
                    tracing::warn!(key = %key.encode(), "an upload claim was taken over; stopping this upload");
                    lease.revoke();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing an upload claim failed");
                    all = false;
                }
            }
        }
        if all {
            lease.extend(timing.deadline(sent));
        }
        if !lease.held() {
            return;
        }
    }
}

/// Deletes each claim at its revision, or at the revision it has now if it
/// still names this member (a renewal's answer was lost).
async fn release(bucket: &Bucket, me: &Holder, held: &[(Key, u64)]) {
    for (key, rev) in held {
        if bucket.delete(key, *rev).await.is_ok() {
            continue;
        }
        if let Ok(Some(e)) = bucket.entry(key).await {
            if e.holder.owner == me.owner {
                let _ = bucket.delete(key, e.revision).await;
            }
        }
    }
}

struct Claimed {
    bucket: Bucket,
    me: Holder,
    held: Revisions,
    lease: Lease,
    renewer: tokio::task::JoinHandle<()>,
}

#[async_trait::async_trait]
impl HeldClaims for Claimed {
    fn held(&self) -> bool {
        self.lease.held()
    }

    async fn release(self: Box<Self>) {
        self.renewer.abort();
        let _ = self.renewer.await;
        self.lease.revoke();
        release(&self.bucket, &self.me, &revisions(&self.held)).await;
    }
}
