//! Crash injection for tests of the real binary: `STRATA_FAILPOINT=after-upload`
//! (or `after-commit`, `iceberg-after-manifest`, `iceberg-after-metadata`) makes `strata run` and `strata flush` abort the process
//! at that point of a segment's compaction. Only the command line reads the
//! variable; the library never crashes by itself.

use strata::compactor::{FailPoint, FailPointAction};

/// The environment variable naming the [`FailPoint`] to abort at.
pub(crate) const FAILPOINT_ENV: &str = "STRATA_FAILPOINT";

/// Where to abort, read once from [`FAILPOINT_ENV`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CrashAt(Option<FailPoint>);

impl CrashAt {
    /// Reads [`FAILPOINT_ENV`]; an unknown name is ignored with a warning.
    pub(crate) fn from_env() -> Self {
        match std::env::var(FAILPOINT_ENV) {
            Ok(v) if !v.is_empty() => match v.parse::<FailPoint>() {
                Ok(p) => {
                    tracing::warn!(failpoint = %p, "{FAILPOINT_ENV} is set: the process will abort at this point of the next compaction");
                    Self(Some(p))
                }
                Err(e) => {
                    tracing::warn!("{FAILPOINT_ENV} ignored: {e}");
                    Self(None)
                }
            },
            _ => Self(None),
        }
    }

    /// Aborts the process when `point` is the one named; else goes on.
    pub(crate) fn at(&self, point: FailPoint, segment: u64) -> FailPointAction {
        if self.0 == Some(point) {
            eprintln!("strata: {FAILPOINT_ENV}={point}: aborting after segment {segment}");
            std::process::abort();
        }
        FailPointAction::Continue
    }
}
