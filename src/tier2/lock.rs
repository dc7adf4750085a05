//! One tier-2 pass at a time per archive: the lock object `_strata/tier2.lock`.
//!
//! A pass creates it with a conditional put (`put_if_absent`); it holds the
//! owner (`hostname:pid`), a token of the pass and an expiry, and the pass
//! renews it while it runs. Another pass finding it refuses to start, unless
//! the lock is stale: expired, or left by a process of this host that no
//! longer exists (a crash); a stale lock is deleted and taken with the same
//! conditional put, so of two passes taking it over only one gets it.
//! Without conditional writes on the store (see `Archive::put_if_absent`) two
//! passes starting in the same instant could both pass; run one
//! `strata compact-tier2` or one background pass per archive there.

use std::time::Duration;

use object_store::PutPayload;
use serde::{Deserialize, Serialize};

use crate::layout::tier2_lock_path as lock_path;
use crate::message::Timestamp;
use crate::store::{Archive, StoreError};

/// How long a lock lasts without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(120);

/// What the lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBody {
    /// `hostname:pid` of the pass's process.
    pub owner: String,
    /// Tells two passes of one process apart.
    pub token: String,
    /// RFC 3339 UTC time after which the lock is stale.
    pub expires_at: String,
}

impl LockBody {
    /// Whether the lock may be taken over at `now` by a process of `host`,
    /// given which pids of this host are alive.
    pub fn is_stale(&self, now: Timestamp, host: &str, alive: impl Fn(u32) -> bool) -> bool {
        let expired = Timestamp::parse_rfc3339(&self.expires_at).map_or(true, |t| t <= now);
        let dead_here = self
            .owner
            .rsplit_once(':')
            .filter(|(h, _)| *h == host)
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && !alive(pid));
        expired || dead_here
    }
}

/// Why the lock could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Who holds it.
    pub owner: String,
    /// Until when, unless renewed.
    pub expires_at: String,
}

/// A held lock; [`Tier2Lock::release`] deletes it.
#[derive(Debug, Clone)]
pub struct Tier2Lock {
    archive: Archive,
    body: LockBody,
}

impl Tier2Lock {
    /// Takes the lock, or says who holds it.
    ///
    /// # Errors
    /// [`StoreError`] of a failed put, get or delete.
    pub async fn acquire(archive: &Archive) -> Result<Result<Self, Held>, StoreError> {
        let body = LockBody {
            owner: crate::status::this_owner(),
            token: uuid::Uuid::new_v4().to_string(),
            expires_at: expiry(),
        };
        let path = lock_path();
        for _ in 0..2 {
            if archive.put_if_absent(&path, payload(&body)).await? {
                return Ok(Ok(Self {
                    archive: archive.clone(),
                    body,
                }));
            }
            let Some(bytes) = archive.get_if_exists(&path).await? else {
                continue;
            };
            let found: Option<LockBody> = serde_json::from_slice(&bytes).ok();
            let stale = found
                .as_ref()
                .is_none_or(|f| f.is_stale(Timestamp::now(), &host_of(&body.owner), pid_alive));
            if !stale {
                let f = found.unwrap_or_else(|| body.clone());
                return Ok(Err(Held {
                    owner: f.owner,
                    expires_at: f.expires_at,
                }));
            }
            tracing::info!(lock = %archive.key(&path), previous = ?found.map(|f| f.owner),
                "taking over a stale tier-2 lock");
            match archive.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Err(Held {
            owner: "another pass taking over the same stale lock".into(),
            expires_at: expiry(),
        }))
    }

    /// Renews the lock; `false` when it is no longer ours (it expired and
    /// another pass took it), and the pass must stop.
    ///
    /// # Errors
    /// [`StoreError`] of a failed get or put.
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        if !self.ours().await? {
            return Ok(false);
        }
        self.body.expires_at = expiry();
        self.archive.put(&lock_path(), payload(&self.body)).await?;
        Ok(true)
    }

    /// Deletes the lock if it is still ours.
    pub async fn release(self) {
        let result = async {
            if self.ours().await? {
                self.archive.delete(&lock_path()).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(error = %e, "cannot release the tier-2 lock; it expires by itself");
        }
    }

    async fn ours(&self) -> Result<bool, StoreError> {
        let bytes = self.archive.get_if_exists(&lock_path()).await?;
        Ok(bytes
            .and_then(|b| serde_json::from_slice::<LockBody>(&b).ok())
            .is_some_and(|f| f.token == self.body.token))
    }
}

fn payload(body: &LockBody) -> PutPayload {
    PutPayload::from(serde_json::to_vec(body).expect("strings always serialize"))
}

fn expiry() -> String {
    let ttl = i64::try_from(LOCK_TTL.as_micros()).unwrap_or(i64::MAX);
    Timestamp(Timestamp::now().micros().saturating_add(ttl)).to_rfc3339()
}

fn host_of(owner: &str) -> String {
    owner.rsplit_once(':').map_or(owner, |(h, _)| h).to_string()
}

/// Whether a process `pid` exists on this host (Linux: `/proc/<pid>`;
/// elsewhere every pid counts as alive, so only expiry frees a lock).
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    fn body(owner: &str, expires: Timestamp) -> LockBody {
        LockBody {
            owner: owner.into(),
            token: "t".into(),
            expires_at: expires.to_rfc3339(),
        }
    }

    #[test]
    fn stale_when_expired_or_its_process_is_gone() {
        let now = Timestamp(1_000_000);
        let later = Timestamp(2_000_000);
        assert!(!body("h:1", later).is_stale(now, "h", |_| true));
        assert!(body("h:1", now).is_stale(now, "h", |_| true));
        assert!(body("h:1", later).is_stale(now, "h", |_| false));
        assert!(
            !body("other:1", later).is_stale(now, "h", |_| false),
            "a pid of another host says nothing"
        );
        let mut bad = body("h:1", later);
        bad.expires_at = "soon".into();
        assert!(bad.is_stale(now, "h", |_| true));
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_stale_lock_is_taken_over() {
        let archive = Archive::from_store(
            Arc::new(InMemory::new()),
            object_store::path::Path::default(),
            "memory://",
        );
        let mut first = Tier2Lock::acquire(&archive).await.unwrap().unwrap();
        let held = Tier2Lock::acquire(&archive).await.unwrap().unwrap_err();
        assert_eq!(held.owner, crate::status::this_owner());
        assert!(first.renew().await.unwrap());

        // Expired: taken over; the first holder learns it lost the lock.
        let old = body("elsewhere:1", Timestamp(0));
        archive.put(&lock_path(), payload(&old)).await.unwrap();
        let second = Tier2Lock::acquire(&archive).await.unwrap().unwrap();
        assert!(!first.renew().await.unwrap());
        first.release().await;
        assert!(archive.get_if_exists(&lock_path()).await.unwrap().is_some());
        second.release().await;
        assert!(archive.get_if_exists(&lock_path()).await.unwrap().is_none());
    }
}
