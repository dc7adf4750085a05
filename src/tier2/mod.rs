//! Tier-2 compaction: a partition's small committed files merged into larger
//! ones, so a quiet station does not leave millions of tiny objects behind.
//!
//! One pass ([`Tier2::pass`]), under the archive's lock ([`lock`]):
//! 1. deletes the replaced files of earlier merges whose grace has passed
//!    (after calling the [`ReplaceHook`] for their record again);
//! 2. plans the merges ([`plan`], pure) from the stored files, the commit
//!    records and the replacement records ([`crate::replacements`]);
//! 3. for each group: uploads the merged file ([`merge`]), stores the
//!    [`ReplacementRecord`] (`delete_after` = now + grace), calls the hook
//!    (the Iceberg table's `replace` snapshot), and, with a zero grace,
//!    deletes the replaced files at once.
//!
//! A crash between any two steps loses nothing and leaves nothing unaccounted:
//! before the record the merged file is uncommitted (readers ignore it as they
//! ignore any uncommitted upload, and the rerun plans the same group and
//! rewrites it); from the record on, readers read the merged file and skip the
//! replaced ones (pending deletes, which `strata ls` shows) until a later pass
//! deletes them. The hook runs before any delete and again on every pass that
//! finds the record's deletes pending, so it must be idempotent.

pub mod lock;
pub mod merge;
pub mod plan;
mod runner;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::columnar::ColumnarError;
use crate::compactor::FailPointAction;
use crate::display::human_bytes;
use crate::iceberg::IcebergTable;
use crate::layout::ReplacementRecord;
use crate::store::StoreError;

pub use runner::{Tier2, Tier2Options};

/// What must happen, besides the replacement record, before replaced files
/// may be deleted: the Iceberg table commits its `replace` snapshot here.
#[async_trait::async_trait]
pub trait ReplaceHook: Send + Sync + fmt::Debug {
    /// `record` is stored and its merged file uploaded; none of its replaced
    /// files is deleted yet. Called again for the same record after a crash
    /// or on a later pass while its deletes are pending: must be idempotent.
    ///
    /// # Errors
    /// Any failure; the pass stops and deletes nothing of this record.
    async fn replace(
        &self,
        record: &ReplacementRecord,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// The Iceberg table's `replace` snapshot (idempotent: a redo commits nothing).
#[async_trait::async_trait]
impl ReplaceHook for IcebergTable {
    async fn replace(
        &self,
        record: &ReplacementRecord,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        IcebergTable::replace(self, record).await?;
        Ok(())
    }
}

/// The hook `[iceberg]` asks for: the table's `replace` snapshot when the
/// table is kept, else [`NoopHook`].
pub fn replace_hook(table: Option<IcebergTable>) -> Arc<dyn ReplaceHook> {
    match table {
        Some(table) => Arc::new(table),
        None => Arc::new(NoopHook),
    }
}

/// A [`ReplaceHook`] that does nothing (no Iceberg table).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopHook;

#[async_trait::async_trait]
impl ReplaceHook for NoopHook {
    async fn replace(
        &self,
        _record: &ReplacementRecord,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// A point of a merge where crash tests stop it (`STRATA_FAILPOINT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tier2FailPoint {
    /// The merged file is uploaded; no replacement record yet.
    AfterUpload,
    /// The replacement record is stored; the hook has not run.
    AfterRecord,
    /// The hook ran; nothing is deleted yet.
    AfterHook,
    /// The replaced files are deleted (zero grace).
    AfterDelete,
}

impl Tier2FailPoint {
    /// Every point, in the order a merge reaches them.
    pub const ALL: [Tier2FailPoint; 4] = [
        Tier2FailPoint::AfterUpload,
        Tier2FailPoint::AfterRecord,
        Tier2FailPoint::AfterHook,
        Tier2FailPoint::AfterDelete,
    ];

    /// The point's name (`tier2-after-upload`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier2FailPoint::AfterUpload => "tier2-after-upload",
            Tier2FailPoint::AfterRecord => "tier2-after-record",
            Tier2FailPoint::AfterHook => "tier2-after-hook",
            Tier2FailPoint::AfterDelete => "tier2-after-delete",
        }
    }
}

impl fmt::Display for Tier2FailPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier2FailPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown tier-2 failpoint {s:?}: use one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// Receives what a pass does; the process wires it to logs or crash tests.
pub trait Tier2Observer: Send + Sync + fmt::Debug {
    /// A merge reached `point`; crash tests abort the process here.
    fn at_fail_point(&self, point: Tier2FailPoint) -> FailPointAction {
        let _ = point;
        FailPointAction::Continue
    }
}

/// A [`Tier2Observer`] that lets every pass run.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTier2Observer;

impl Tier2Observer for NoopTier2Observer {}

/// Errors of a tier-2 pass; what was done before stays valid, the next pass
/// goes on from there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Tier2Error {
    /// Another pass holds the archive's tier-2 lock.
    #[error("another tier-2 pass holds the archive's lock ({owner}, until {expires_at}); wait for it to finish, or for the lock to expire if it crashed")]
    Locked {
        /// Who holds it.
        owner: String,
        /// Until when.
        expires_at: String,
    },
    /// The lock expired during the pass and another pass took it.
    #[error("the tier-2 lock was lost during the pass (the store was too slow to renew it); the pass stopped and the next one goes on")]
    LockLost,
    /// The object store refused or failed an operation.
    #[error("{0}; the pass stopped, the next one goes on from here")]
    Store(#[source] Box<StoreError>),
    /// A file could not be decoded, or the merged file encoded.
    #[error(
        "cannot merge {key}: {source}; the files are left as they are (check them with DuckDB)"
    )]
    Encode {
        /// The object concerned (full key).
        key: String,
        /// What the Parquet side said.
        source: ColumnarError,
    },
    /// The files of a group do not hold what their keys say.
    #[error("cannot merge into {merged}: {reason}; the files are left as they are (please report this as a bug)")]
    Mismatch {
        /// The merged file's key.
        merged: String,
        /// What is wrong.
        reason: String,
    },
    /// The replace hook (the Iceberg table) failed; nothing of the record was deleted.
    #[error("the replace hook failed for {merged}: {reason}; its replaced files are kept and the next pass tries again")]
    Hook {
        /// The merged file's key.
        merged: String,
        /// What the hook said.
        reason: String,
    },
    /// An armed failpoint stopped the pass (tests only).
    #[error("tier-2 pass stopped at failpoint {0} (crash injection for tests)")]
    FailPoint(Tier2FailPoint),
    /// Something that should not happen.
    #[error("tier-2 pass failed: {0} (please report this as a bug)")]
    Internal(String),
}

impl Tier2Error {
    fn store(e: StoreError) -> Self {
        Tier2Error::Store(Box::new(e))
    }
}

/// One merge of a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeReport {
    /// The merged file (full key).
    pub merged: String,
    /// Its rows.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// Files it replaces.
    pub replaced_files: u64,
    /// Their sizes added up.
    pub replaced_bytes: u64,
    /// Rows dropped because their seq was in two files.
    pub duplicates: u64,
    /// When the replaced files may be deleted (RFC 3339).
    pub delete_after: String,
    /// Whether this pass already deleted them (zero grace).
    pub deleted: bool,
}

/// Replaced files of one record: deleted by this pass, or still pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReport {
    /// The merged file that holds their rows (full key).
    pub merged: String,
    /// The replaced files (full keys).
    pub files: Vec<String>,
    /// When they may be deleted (RFC 3339).
    pub delete_after: String,
}

/// What a pass did; printed by `strata compact-tier2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier2Report {
    /// Merges done by this pass.
    pub merges: Vec<MergeReport>,
    /// Replaced files of earlier merges deleted by this pass (grace passed).
    pub deleted: Vec<DeleteReport>,
    /// Replaced files still stored, waiting for their grace to pass.
    pub pending: Vec<DeleteReport>,
    /// The grace of this pass's merges.
    #[serde(with = "humantime_serde_secs")]
    pub grace: Duration,
}

mod humantime_serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl Tier2Report {
    /// Files deleted by this pass (earlier merges and zero-grace merges).
    pub fn files_deleted(&self) -> u64 {
        let earlier: usize = self.deleted.iter().map(|d| d.files.len()).sum();
        let now: u64 = self
            .merges
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.replaced_files)
            .sum();
        earlier as u64 + now
    }
}

impl fmt::Display for Tier2Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.merges.is_empty() {
            writeln!(
                f,
                "nothing to merge: no partition holds two small committed files"
            )?;
        } else {
            let files: u64 = self.merges.iter().map(|m| m.replaced_files).sum();
            let before: u64 = self.merges.iter().map(|m| m.replaced_bytes).sum();
            let after: u64 = self.merges.iter().map(|m| m.bytes).sum();
            writeln!(
                f,
                "merged {files} file(s) into {} ({} → {})",
                self.merges.len(),
                human_bytes(before),
                human_bytes(after)
            )?;
            for m in &self.merges {
                let fate = if m.deleted {
                    "deleted now".to_string()
                } else {
                    format!("deleted after {}", m.delete_after)
                };
                writeln!(
                    f,
                    "  {}  {} rows  {}  replaces {} file(s) ({fate})",
                    m.merged,
                    m.rows,
                    human_bytes(m.bytes),
                    m.replaced_files
                )?;
                if m.duplicates > 0 {
                    writeln!(f, "    {} duplicate row(s) dropped", m.duplicates)?;
                }
            }
        }
        for d in &self.deleted {
            writeln!(
                f,
                "deleted {} replaced file(s) of {} (grace passed)",
                d.files.len(),
                d.merged
            )?;
        }
        for p in &self.pending {
            writeln!(
                f,
                "pending delete: {} replaced file(s) of {} after {}",
                p.files.len(),
                p.merged,
                p.delete_after
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_parse_their_names() {
        for p in Tier2FailPoint::ALL {
            assert_eq!(p.as_str().parse::<Tier2FailPoint>(), Ok(p));
        }
        let e = "after-upload".parse::<Tier2FailPoint>().unwrap_err();
        assert!(e.contains("tier2-after-record"), "{e}");
    }

    #[test]
    fn the_report_says_what_was_merged_deleted_and_left() {
        let report = Tier2Report {
            merges: vec![MergeReport {
                merged: "station=s/date=2026-11-30/hour=09/1-200.parquet".into(),
                rows: 200,
                bytes: 4096,
                replaced_files: 200,
                replaced_bytes: 800 * 1024,
                duplicates: 0,
                delete_after: "2026-11-30T10:10:00Z".into(),
                deleted: false,
            }],
            deleted: vec![DeleteReport {
                merged: "m".into(),
                files: vec!["a".into(), "b".into()],
                delete_after: "x".into(),
            }],
            pending: Vec::new(),
            grace: Duration::from_secs(600),
        };
        let text = report.to_string();
        assert!(
            text.contains("merged 200 file(s) into 1 (800.0 KiB → 4.0 KiB)"),
            "{text}"
        );
        assert!(
            text.contains("deleted after 2026-11-30T10:10:00Z"),
            "{text}"
        );
        assert!(text.contains("deleted 2 replaced file(s) of m"), "{text}");
        assert_eq!(report.files_deleted(), 2);
        let json = serde_json::to_string(&report).unwrap();
        let back: Tier2Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
