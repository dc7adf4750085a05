//! Lease arithmetic and the lease a station worker checks. No I/O.
//!
//! An owner renews every [`LeaseTiming::renew_every`] (a third of the
//! lease) and computes its deadline from the local time at which it *sent*
//! its last successful renewal: `deadline = sent + lease − margin`. The
//! server wrote that renewal at some instant after `sent`, and expires the
//! key `lease` after the write (the bucket's `max_age`); no other process can
//! `create` the key before that. So the owner stops at least `margin` before
//! anyone else can start: the margin absorbs the difference in clock rates
//! and an append that began just before the deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The timings derived from `[cluster] lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a key lives without renewal (the bucket's `max_age`).
    pub lease: Duration,
}

impl LeaseTiming {
    /// Timings for a lease of `lease`.
    pub fn new(lease: Duration) -> Self {
        Self { lease }
    }

    /// How often owners renew, and how often the bucket is read to balance.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// How long before the server could expire its key an owner stops.
    pub fn margin(&self) -> Duration {
        self.lease / 5
    }

    /// The last instant an owner may fetch or append, given when it sent its
    /// last successful renewal.
    pub fn deadline(&self, sent: Instant) -> Instant {
        sent + self.lease - self.margin()
    }

    /// How long a waiting upload claim pauses before it asks again.
    pub fn claim_retry(&self) -> Duration {
        (self.lease / 15).max(Duration::from_millis(100))
    }

    /// The ack wait of consumers created by a cluster member: messages a
    /// stopped owner had fetched and not acknowledged come back this long
    /// after their delivery, to whoever owns the station then.
    pub fn ack_wait(&self) -> Duration {
        (self.lease * 2).max(Duration::from_secs(10))
    }
}

/// A lease as its holder sees it: held until its deadline, unless revoked.
/// Shared between the coordinator (which renews or revokes it) and the
/// worker (which checks it before every fetch and append).
#[derive(Debug, Clone)]
pub struct Lease(Arc<LeaseInner>);

#[derive(Debug)]
struct LeaseInner {
    base: Instant,
    /// Deadline as nanoseconds after `base`.
    deadline: AtomicU64,
    revoked: AtomicBool,
}

impl Lease {
    /// A lease held until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        let base = Instant::now().min(deadline);
        let lease = Lease(Arc::new(LeaseInner {
            base,
            deadline: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        }));
        lease.extend(deadline);
        lease
    }

    /// Moves the deadline to `deadline` (after a successful renewal).
    pub fn extend(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.0.base).as_nanos();
        self.0
            .deadline
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Ends the lease now (lost, released or shutting down).
    pub fn revoke(&self) {
        self.0.revoked.store(true, Ordering::SeqCst);
    }

    /// The current deadline.
    pub fn deadline(&self) -> Instant {
        self.0.base + Duration::from_nanos(self.0.deadline.load(Ordering::SeqCst))
    }

    /// Whether the lease is held at `now`.
    pub fn held_at(&self, now: Instant) -> bool {
        !self.0.revoked.load(Ordering::SeqCst) && now < self.deadline()
    }

    /// Whether the lease is held now: checked right before every append.
    pub fn held(&self) -> bool {
        self.held_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_stops_a_margin_before_the_server_can_expire_its_key() {
        let t = LeaseTiming::new(Duration::from_secs(15));
        assert_eq!(t.renew_every(), Duration::from_secs(5));
        assert_eq!(t.margin(), Duration::from_secs(3));
        let sent = Instant::now();
        // The server writes at `sent` at the earliest: the key lives until
        // sent + lease at least, and the owner stops at sent + 12 s.
        assert_eq!(t.deadline(sent) + t.margin(), sent + t.lease);
        // Two renewals may fail before the deadline comes.
        assert!(sent + 2 * t.renew_every() < t.deadline(sent));
        assert_eq!(t.ack_wait(), Duration::from_secs(30));
        assert_eq!(
            LeaseTiming::new(Duration::from_secs(3)).ack_wait(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_lease_is_held_until_its_deadline_or_revocation() {
        let now = Instant::now();
        let lease = Lease::until(now + Duration::from_secs(10));
        assert!(lease.held_at(now));
        assert!(!lease.held_at(now + Duration::from_secs(10)));
        lease.extend(now + Duration::from_secs(20));
        assert!(lease.held_at(now + Duration::from_secs(15)));
        let seen_by_worker = lease.clone();
        lease.revoke();
        assert!(!seen_by_worker.held_at(now));
        let past = Lease::until(now);
        assert!(!past.held_at(now));
    }
}
