//! When the background compactor leaves sealed segments for later (pure).
//!
//! Encoding a segment takes CPU that the sources need while a burst arrives,
//! and the archive's latency is counted in minutes, not milliseconds. So while
//! messages keep arriving (the WAL took appends since the compactor last
//! looked, every 500 ms) the background compactor lets a few sealed segments
//! wait: at most [`MAX_WAITING_SEGMENTS`] (a burst of up to about 256 MiB with
//! the default 64 MiB segments is taken in with both cores and compacted right
//! after), at most `[compaction] defer_while_busy` in a row, and only while the
//! WAL holds less than a quarter of its `max_disk_bytes`. Past any bound it
//! compacts what is sealed, so under sustained load it keeps a few segments
//! behind the sources, reading them back while they are still in the page
//! cache (waiting for many segments and compacting them in one long step was
//! measured slower under sustained load). The first quiet look compacts at
//! once; `strata flush`, `POST /v1/flush` and shutdown never wait.

use std::time::{Duration, Instant};

/// The most sealed segments left waiting for a busy source.
pub const MAX_WAITING_SEGMENTS: u64 = 4;

/// What the compactor sees of the WAL when it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalLook {
    /// Appends made durable since the WAL opened.
    pub appends: u64,
    /// Bytes of live segment files.
    pub disk_bytes: u64,
    /// The WAL's `max_disk_bytes`.
    pub max_disk_bytes: u64,
    /// Sealed segments waiting for the compactor.
    pub sealed_segments: u64,
}

/// The background compactor's pacing: whether to leave sealed segments for
/// later, look by look.
#[derive(Debug, Clone)]
pub struct Pace {
    limit: Duration,
    last_appends: Option<u64>,
    waiting_since: Option<Instant>,
}

impl Pace {
    /// Waits for a busy source at most `limit` in a row (zero: never waits).
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            last_appends: None,
            waiting_since: None,
        }
    }

    /// Whether to leave the sealed segments for a later look, given the WAL
    /// `now`.
    pub fn wait(&mut self, now: Instant, wal: WalLook) -> bool {
        let busy = self.last_appends.is_some_and(|last| wal.appends != last);
        self.last_appends = Some(wal.appends);
        let room =
            wal.disk_bytes < wal.max_disk_bytes / 4 && wal.sealed_segments <= MAX_WAITING_SEGMENTS;
        if !busy || !room || wal.sealed_segments == 0 || self.limit.is_zero() {
            self.waiting_since = None;
            return false;
        }
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.limit {
            self.waiting_since = None;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn look(appends: u64, disk_bytes: u64, sealed_segments: u64) -> WalLook {
        WalLook {
            appends,
            disk_bytes,
            max_disk_bytes: 10 * GIB,
            sealed_segments,
        }
    }

    #[test]
    fn waits_only_while_appends_keep_coming() {
        let t0 = Instant::now();
        let mut pace = Pace::new(Duration::from_secs(10));
        // The first look has nothing to compare with: busy is not known.
        assert!(!pace.wait(t0, look(5, GIB, 1)));
        assert!(pace.wait(t0 + Duration::from_millis(500), look(9, GIB, 1)));
        assert!(pace.wait(t0 + Duration::from_secs(1), look(12, GIB, 2)));
        // A quiet look compacts at once.
        assert!(!pace.wait(t0 + Duration::from_millis(1500), look(12, GIB, 2)));
    }

    #[test]
    fn never_waits_longer_than_the_limit_in_a_row_then_waits_again() {
        let t0 = Instant::now();
        let mut pace = Pace::new(Duration::from_secs(2));
        let mut appends = 0;
        let mut at = |ms: u64| {
            appends += 100;
            (t0 + Duration::from_millis(ms), look(appends, GIB, 1))
        };
        let (t, l) = at(0);
        assert!(!pace.wait(t, l));
        for ms in [500, 1000, 1500, 2000] {
            let (t, l) = at(ms);
            assert!(pace.wait(t, l), "{ms} ms");
        }
        // Two seconds after the first wait: compact.
        let (t, l) = at(2500);
        assert!(!pace.wait(t, l));
        // Still busy: the next sealed segments wait again, for the same bound.
        let (t, l) = at(3000);
        assert!(pace.wait(t, l));
    }

    #[test]
    fn never_waits_with_a_quarter_of_the_wal_budget_held_or_nothing_sealed() {
        let t0 = Instant::now();
        let mut pace = Pace::new(Duration::from_secs(10));
        assert!(!pace.wait(t0, look(1, GIB, 1)));
        assert!(!pace.wait(t0, look(2, 10 * GIB / 4, 1)), "a quarter held");
        assert!(pace.wait(t0, look(3, 10 * GIB / 4 - 1, 1)));
        assert!(!pace.wait(t0, look(4, GIB, 0)), "nothing sealed");
    }

    #[test]
    fn never_leaves_more_than_a_few_segments_waiting() {
        let t0 = Instant::now();
        let mut pace = Pace::new(Duration::from_secs(10));
        assert!(!pace.wait(t0, look(1, GIB, 1)));
        assert!(pace.wait(t0, look(2, GIB, MAX_WAITING_SEGMENTS)));
        assert!(!pace.wait(t0, look(3, GIB, MAX_WAITING_SEGMENTS + 1)));
        // After that pass, the next few wait again.
        assert!(pace.wait(t0, look(4, GIB, 1)));
    }

    #[test]
    fn a_zero_limit_never_waits() {
        let t0 = Instant::now();
        let mut pace = Pace::new(Duration::ZERO);
        assert!(!pace.wait(t0, look(1, GIB, 1)));
        assert!(!pace.wait(t0, look(2, GIB, 1)));
    }
}
