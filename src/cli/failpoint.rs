//! Crash injection for tests of the real binary: `STRATA_FAILPOINT=after-upload`
//! (or `after-commit`, `iceberg-after-manifest`, `iceberg-after-metadata`)
//! makes `strata run` and `strata flush` abort the process at that point of a
//! segment's compaction; `tier2-after-upload`, `tier2-after-record`,
//! `tier2-after-hook` or `tier2-after-delete` make a tier-2 pass
//! (`strata compact-tier2`, the background pass of `strata run`) abort at that
//! step of a merge. Only the command line reads the variable; the library never
//! crashes by itself.

use strata::compactor::{FailPoint, FailPointAction};
use strata::tier2::{Tier2FailPoint, Tier2Observer};

/// The environment variable naming the point to abort at.
pub(crate) const FAILPOINT_ENV: &str = "STRATA_FAILPOINT";

/// A point of a segment's compaction or of a tier-2 merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    Compaction(FailPoint),
    Tier2(Tier2FailPoint),
}

/// Where to abort, read once from [`FAILPOINT_ENV`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CrashAt(Option<Point>);

impl CrashAt {
    /// Reads [`FAILPOINT_ENV`]; an unknown name is ignored with a warning.
    pub(crate) fn from_env() -> Self {
        match std::env::var(FAILPOINT_ENV) {
            Ok(v) if !v.is_empty() => match parse(&v) {
                Ok(p) => {
                    tracing::warn!(failpoint = %v, "{FAILPOINT_ENV} is set: the process will abort at this point");
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
        if self.0 == Some(Point::Compaction(point)) {
            eprintln!("strata: {FAILPOINT_ENV}={point}: aborting after segment {segment}");
            std::process::abort();
        }
        FailPointAction::Continue
    }
}

impl Tier2Observer for CrashAt {
    fn at_fail_point(&self, point: Tier2FailPoint) -> FailPointAction {
        if self.0 == Some(Point::Tier2(point)) {
            eprintln!("strata: {FAILPOINT_ENV}={point}: aborting the tier-2 pass");
            std::process::abort();
        }
        FailPointAction::Continue
    }
}

fn parse(name: &str) -> Result<Point, String> {
    if let Ok(p) = name.parse::<FailPoint>() {
        return Ok(Point::Compaction(p));
    }
    name.parse::<Tier2FailPoint>()
        .map(Point::Tier2)
        .map_err(|e| format!("{e}; or after-upload, after-commit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_both_kinds_parse() {
        assert_eq!(
            parse("after-commit"),
            Ok(Point::Compaction(FailPoint::AfterCommit))
        );
        assert_eq!(
            parse("tier2-after-hook"),
            Ok(Point::Tier2(Tier2FailPoint::AfterHook))
        );
        let e = parse("later").unwrap_err();
        assert!(
            e.contains("after-commit") && e.contains("tier2-after-upload"),
            "{e}"
        );
    }
}
