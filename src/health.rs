//! The health of `strata run`: what `GET /healthz` answers, the
//! `strata_wal_poisoned` and `strata_compactor_failing_seconds` gauges, and one
//! log line at `error` when a problem starts (and one at `info` when it ends),
//! never a line per retry.
//!
//! Three problems make the process unhealthy, each with what to do about it:
//! - the WAL is poisoned (a write, fsync or seal failed): appends are refused
//!   until a restart recovers from what is on disk;
//! - the store refuses compaction for a reason retrying cannot fix (credentials,
//!   missing bucket, wrong region, a folder Strata may not write): at once;
//! - compaction has failed for longer than `[compaction] unhealthy_after`
//!   (an unreachable or failing store): acknowledged data piles up in the WAL.
//!
//! The parts that see trouble report it: the compactor through
//! [`Health::compaction_failed`] / [`Health::compaction_succeeded`], the WAL
//! through its poison flag, read at every check. [`Health::check_at`] turns that
//! into a [`Status`] for a given instant, so the rules are tested without a clock.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::wal::Wal;

/// How often a failing compaction is retried when the store's answer means
/// retrying cannot help until someone changes the configuration or the store.
pub const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// One kind of problem; a problem is logged once when its kind appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// The WAL refuses appends after a failed write, fsync or seal.
    WalPoisoned,
    /// The store refuses compaction in a way retrying cannot fix.
    StoreRefuses,
    /// Compaction has failed for longer than `unhealthy_after`.
    CompactionFailing,
}

impl ProblemKind {
    /// A short name for logs and JSON (`wal_poisoned`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::WalPoisoned => "wal_poisoned",
            ProblemKind::StoreRefuses => "store_refuses",
            ProblemKind::CompactionFailing => "compaction_failing",
        }
    }
}

/// A problem that makes the process unhealthy, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its kind.
    pub kind: ProblemKind,
    /// What is wrong and what to do, for people.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A problem that started or ended since the previous check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The problem is new (logged at `error`).
    Raised(Problem),
    /// A problem of this kind is over (logged at `info`).
    Cleared(ProblemKind),
}

/// The health at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Every current problem; none means healthy.
    pub problems: Vec<Problem>,
    /// Whether the WAL is poisoned (the `strata_wal_poisoned` gauge).
    pub wal_poisoned: bool,
    /// How long compaction has been failing, zero when its last pass succeeded
    /// (the `strata_compactor_failing_seconds` gauge).
    pub compactor_failing: Duration,
    /// Problems that started or ended since the previous check.
    pub changes: Vec<Change>,
}

impl Status {
    /// Whether nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A compaction failure episode: from the first failed pass to the next success.
#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    /// The latest error, as displayed.
    error: String,
    /// Whether the latest error is one retrying cannot fix.
    permanent: bool,
}

#[derive(Debug, Default)]
struct State {
    wal_poisoned: bool,
    compaction: Option<Failing>,
    /// Kinds reported as raised and not yet as cleared.
    raised: Vec<ProblemKind>,
}

/// The shared health state; one per process, behind an `Arc`.
#[derive(Debug)]
pub struct Health {
    unhealthy_after: Duration,
    wal: Option<Wal>,
    state: Mutex<State>,
}

impl Health {
    /// Health where compaction failing for longer than `unhealthy_after`
    /// is a problem (`[compaction] unhealthy_after`).
    pub fn new(unhealthy_after: Duration) -> Self {
        Self {
            unhealthy_after,
            wal: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Reads `wal`'s poison flag at every check.
    pub fn with_wal(mut self, wal: Wal) -> Self {
        self.wal = Some(wal);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole, so a panic elsewhere cannot
        // have left it half written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the WAL is poisoned (when it is not read through
    /// [`Health::with_wal`]); it stays so until the process restarts.
    pub fn wal_poisoned(&self) {
        self.state().wal_poisoned = true;
    }

    /// Records a failed compaction pass now; see [`Health::compaction_failed_at`].
    pub fn compaction_failed(&self, error: &dyn fmt::Display, permanent: bool) {
        self.compaction_failed_at(Instant::now(), error, permanent);
    }

    /// Records a failed compaction pass at `now`: `error` as displayed, and
    /// whether retrying cannot fix it (a permanent store error).
    pub fn compaction_failed_at(&self, now: Instant, error: &dyn fmt::Display, permanent: bool) {
        let mut state = self.state();
        let since = state.compaction.as_ref().map_or(now, |f| f.since);
        state.compaction = Some(Failing {
            since,
            error: error.to_string(),
            permanent,
        });
    }

    /// Records a compaction pass that succeeded: any failure episode is over.
    pub fn compaction_succeeded(&self) {
        self.state().compaction = None;
    }

    /// The health now; logs what started (`error`) or ended (`info`) since the
    /// previous check, once.
    pub fn check(&self) -> Status {
        let status = self.check_at(Instant::now());
        for change in &status.changes {
            match change {
                Change::Raised(p) => {
                    tracing::error!(problem = p.kind.as_str(), "strata is unhealthy: {p}")
                }
                Change::Cleared(kind) => {
                    tracing::info!(problem = kind.as_str(), "resolved: {}", cleared(*kind))
                }
            }
        }
        status
    }

    /// The health at `now` (no logging): the problems, the gauges, and what
    /// changed since the previous check.
    pub fn check_at(&self, now: Instant) -> Status {
        let wal_poisoned_now = self.wal.as_ref().is_some_and(Wal::is_poisoned);
        let mut state = self.state();
        state.wal_poisoned |= wal_poisoned_now;
        let mut problems = Vec::new();
        if state.wal_poisoned {
            problems.push(Problem {
                kind: ProblemKind::WalPoisoned,
                reason: "the WAL is poisoned: a write, fsync or seal failed (the log names the \
                         file and error), so new messages are refused; fix the disk, then restart \
                         Strata, which recovers everything acknowledged from the WAL directory"
                    .to_string(),
            });
        }
        let failing_for = state
            .compaction
            .as_ref()
            .map_or(Duration::ZERO, |f| now.saturating_duration_since(f.since));
        if let Some(f) = &state.compaction {
            if f.permanent {
                problems.push(Problem {
                    kind: ProblemKind::StoreRefuses,
                    reason: format!(
                        "the archive store refuses compaction: {}. Retrying cannot help until \
                         [storage] (or the bucket) is fixed; Strata retries every {} s, or now \
                         with `strata flush`. Messages stay in the WAL meanwhile",
                        f.error,
                        PERMANENT_RETRY.as_secs()
                    ),
                });
            } else if failing_for >= self.unhealthy_after {
                problems.push(Problem {
                    kind: ProblemKind::CompactionFailing,
                    reason: format!(
                        "compaction has failed for {} s (longer than [compaction] \
                         unhealthy_after, {} s): {}. Messages stay in the WAL until the store \
                         answers; ingestion stops when it reaches [wal] max_disk_bytes",
                        failing_for.as_secs(),
                        self.unhealthy_after.as_secs(),
                        f.error
                    ),
                });
            }
        }
        let mut changes = Vec::new();
        for p in &problems {
            if !state.raised.contains(&p.kind) {
                state.raised.push(p.kind);
                changes.push(Change::Raised(p.clone()));
            }
        }
        state.raised.retain(|kind| {
            let still = problems.iter().any(|p| p.kind == *kind);
            if !still {
                changes.push(Change::Cleared(*kind));
            }
            still
        });
        Status {
            problems,
            wal_poisoned: state.wal_poisoned,
            compactor_failing: failing_for,
            changes,
        }
    }
}

/// What an `info` line says when a problem of `kind` is over.
fn cleared(kind: ProblemKind) -> &'static str {
    match kind {
        ProblemKind::WalPoisoned => "the WAL is no longer poisoned",
        ProblemKind::StoreRefuses | ProblemKind::CompactionFailing => {
            "compaction succeeds again; the WAL drains"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &Status) -> Vec<ProblemKind> {
        s.problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn healthy_until_something_is_reported() {
        let h = Health::new(Duration::from_secs(60));
        let s = h.check_at(Instant::now());
        assert!(s.is_healthy());
        assert!(!s.wal_poisoned);
        assert_eq!(s.compactor_failing, Duration::ZERO);
        assert!(s.changes.is_empty());
    }

    #[test]
    fn a_poisoned_wal_is_raised_once_and_stays() {
        let h = Health::new(Duration::from_secs(60));
        h.wal_poisoned();
        let t = Instant::now();
        let s = h.check_at(t);
        assert_eq!(kinds(&s), [ProblemKind::WalPoisoned]);
        assert!(s.wal_poisoned);
        assert!(s.problems[0].reason.contains("restart"), "{:?}", s.problems);
        assert!(matches!(
            s.changes.as_slice(),
            [Change::Raised(Problem {
                kind: ProblemKind::WalPoisoned,
                ..
            })]
        ));
        for i in 1..5 {
            let again = h.check_at(t + Duration::from_secs(i));
            assert_eq!(kinds(&again), [ProblemKind::WalPoisoned]);
            assert!(again.changes.is_empty(), "logged once per episode");
        }
        // Poisoning lasts until the process restarts, whatever is reported later.
        h.compaction_succeeded();
        assert!(h.check_at(t).wal_poisoned);
    }

    #[test]
    fn transient_failures_turn_unhealthy_only_after_the_bound() {
        let h = Health::new(Duration::from_secs(60));
        let t0 = Instant::now();
        h.compaction_failed_at(t0, &"put x failed: cannot reach the store", false);
        let s = h.check_at(t0 + Duration::from_secs(59));
        assert!(s.is_healthy());
        assert_eq!(s.compactor_failing, Duration::from_secs(59));

        // Later failures of the same episode keep its start.
        h.compaction_failed_at(t0 + Duration::from_secs(30), &"timed out", false);
        let s = h.check_at(t0 + Duration::from_secs(61));
        assert_eq!(kinds(&s), [ProblemKind::CompactionFailing]);
        assert_eq!(s.compactor_failing, Duration::from_secs(61));
        let reason = &s.problems[0].reason;
        assert!(
            reason.contains("61 s")
                && reason.contains("unhealthy_after")
                && reason.contains("timed out"),
            "{reason}"
        );
        assert_eq!(s.changes.len(), 1);
        assert!(h.check_at(t0 + Duration::from_secs(90)).changes.is_empty());

        // A success ends the episode: healthy again, said once.
        h.compaction_succeeded();
        let s = h.check_at(t0 + Duration::from_secs(91));
        assert!(s.is_healthy());
        assert_eq!(s.compactor_failing, Duration::ZERO);
        assert_eq!(s.changes, [Change::Cleared(ProblemKind::CompactionFailing)]);
        assert!(h.check_at(t0 + Duration::from_secs(92)).changes.is_empty());

        // The next episode starts its own clock.
        h.compaction_failed_at(t0 + Duration::from_secs(100), &"again", false);
        assert!(h.check_at(t0 + Duration::from_secs(150)).is_healthy());
    }

    #[test]
    fn permanent_store_errors_are_unhealthy_at_once_and_say_what_to_fix() {
        let h = Health::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        h.compaction_failed_at(
            t0,
            &"put a failed: bucket \"typo\" does not exist: check the bucket name in [storage] url",
            true,
        );
        let s = h.check_at(t0);
        assert_eq!(kinds(&s), [ProblemKind::StoreRefuses]);
        let reason = &s.problems[0].reason;
        assert!(
            reason.contains("[storage] url") && reason.contains("strata flush"),
            "{reason}"
        );
        assert_eq!(s.changes.len(), 1);
        // A transient failure afterwards (the store now unreachable) is a
        // different problem: the permanent one is cleared.
        h.compaction_failed_at(t0 + Duration::from_secs(1), &"unreachable", false);
        let s = h.check_at(t0 + Duration::from_secs(2));
        assert!(s.is_healthy());
        assert_eq!(s.changes, [Change::Cleared(ProblemKind::StoreRefuses)]);
    }

    #[test]
    fn a_watched_wal_is_read_at_every_check() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(crate::wal::WalOptions::new(dir.path())).unwrap();
        let h = Health::new(Duration::from_secs(60)).with_wal(wal.clone());
        assert!(h.check_at(Instant::now()).is_healthy());
        // Poison it the way a dying disk would: its directory is gone when it seals.
        let station = crate::StationName::new("s").unwrap();
        let drafts = crate::ndjson::parse_body_bytes(
            &bytes::Bytes::from_static(b"{\"payload\":\"x\"}"),
            Some(&station),
        )
        .unwrap();
        wal.append_blocking(drafts).unwrap();
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        assert!(wal.seal().is_err());
        let s = h.check_at(Instant::now());
        assert_eq!(kinds(&s), [ProblemKind::WalPoisoned]);
        std::fs::rename(&moved, dir.path()).unwrap();
    }

    #[test]
    fn a_full_disk_at_fdatasync_turns_unhealthy_and_sets_the_poisoned_gauge() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, faults) =
            crate::wal::fault::open(crate::wal::WalOptions::new(dir.path())).unwrap();
        let h = Health::new(Duration::from_secs(60)).with_wal(wal.clone());
        let metrics = crate::metrics::Metrics::new();
        let draft = |seq| crate::Draft {
            station: crate::StationName::new("s").unwrap(),
            seq: Some(seq),
            timestamp: crate::Timestamp(1),
            id: None,
            subject: None,
            headers: vec![],
            payload: bytes::Bytes::from_static(b"x"),
        };
        wal.append_blocking(vec![draft(1)]).unwrap();
        metrics.set_health(&h.check_at(Instant::now()));
        assert!(metrics
            .render()
            .lines()
            .any(|l| l == "strata_wal_poisoned 0"));

        faults.fail_next_sync(crate::wal::fault::ENOSPC);
        assert!(wal.append_blocking(vec![draft(2)]).is_err());
        let s = h.check_at(Instant::now());
        assert_eq!(kinds(&s), [ProblemKind::WalPoisoned]);
        metrics.set_health(&s);
        assert!(metrics
            .render()
            .lines()
            .any(|l| l == "strata_wal_poisoned 1"));
    }

    #[test]
    fn problems_add_up() {
        let h = Health::new(Duration::from_secs(1));
        let t0 = Instant::now();
        h.wal_poisoned();
        h.compaction_failed_at(t0, &"down", false);
        let s = h.check_at(t0 + Duration::from_secs(5));
        assert_eq!(
            kinds(&s),
            [ProblemKind::WalPoisoned, ProblemKind::CompactionFailing]
        );
        assert_eq!(s.changes.len(), 2);
    }
}
