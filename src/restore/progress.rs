//! How a restore reports its progress while it runs: a [`Progress`] the
//! caller hands in. The library shows nothing itself; `strata restore` draws a
//! bar with it, and [`NoProgress`] ignores it.

/// Receives a restore's progress. Called from the restoring task, so each
/// call should return quickly.
pub trait Progress: Sync {
    /// The plan is made: at most `planned` messages will be delivered.
    fn planned(&self, planned: u64);
    /// `n` more messages were delivered.
    fn delivered(&self, n: u64);
    /// Delivery ended: every message went out (`ok`), or an error stopped it
    /// (the error is what [`super::run`] returns).
    fn ended(&self, ok: bool);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _planned: u64) {}
    fn delivered(&self, _n: u64) {}
    fn ended(&self, _ok: bool) {}
}
