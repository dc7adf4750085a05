//! The archive as an Apache Iceberg table (format v2): metadata beside the
//! Parquet files, not a copy of them, so Spark, Trino, pyiceberg and DuckDB's
//! `iceberg_scan` read the archive as a table with atomic snapshots and
//! file statistics for pruning, while glob readers go on as before.
//!
//! ```text
//! <prefix>/_strata/iceberg/                          the table's location
//! <prefix>/_strata/iceberg/metadata/v<N>.metadata.json
//! <prefix>/_strata/iceberg/metadata/version-hint.text
//! <prefix>/_strata/iceberg/metadata/snap-<id>-<uuid>.avro   manifest lists
//! <prefix>/_strata/iceberg/metadata/<uuid>-m<i>.avro        manifests
//! ```
//!
//! - [`spec`] (pure): schema with field ids, partition spec (`station`
//!   identity, `hour(timestamp)`), name mapping, table metadata, data file
//!   entries with bounds.
//! - [`manifest`] (pure): manifests and manifest lists in Avro.
//! - [`plan`] (pure): what a snapshot changes; the live files of an archive.
//! - `records` (I/O): the commit and replacement records the table follows.
//! - [`table`] (I/O through [`crate::store::Archive`]): load, commit with
//!   `put_if_absent` and retry, append, replace, rebuild.
//!
//! Why not the `iceberg` crate: its 0.10 release needs arrow/parquet 58 and
//! object_store 0.13 (whose `ObjectStore` trait changed), and its writers go
//! through a FileIO of their own rather than Strata's store. The metadata is
//! small and its format well specified, so Strata writes it with `apache-avro`
//! (manifests) and `serde_json` (table metadata); no Avro is hand-encoded.
//!
//! REST catalogs (`[iceberg] catalog = "rest"`) are refused for now
//! ([`IcebergError::RestCatalog`]). The plan: the file table stays the source
//! of truth; after each commit, Strata registers the table once
//! (`POST /v1/{prefix}/namespaces/{ns}/register` with the metadata location)
//! and then sends each new snapshot as a table commit (`POST
//! /v1/{prefix}/namespaces/{ns}/tables/{table}`: requirement
//! `assert-ref-snapshot-id` on `main`, updates `add-snapshot` and
//! `set-snapshot-ref`), with the bearer token or the OAuth2 client credential
//! of `[iceberg]`. No REST catalog server could be run locally from the
//! package registries to test it against.

pub mod manifest;
pub mod plan;
mod records;
pub mod spec;
pub mod table;

pub use table::{CommitOutcome, CommitStep, Current, IcebergTable, StepHook};

use crate::store::StoreError;

/// Errors of the Iceberg table. The data files and the records are not
/// touched by any of them: a failed commit is retried, or the table rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IcebergError {
    /// The object store failed.
    #[error("Iceberg table: {0}")]
    Store(#[source] Box<StoreError>),
    /// A metadata file does not read.
    #[error("Iceberg table metadata {url}: {reason}; run `strata iceberg rebuild` to write a fresh version")]
    Metadata {
        /// The file.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or manifest list does not read (or write).
    #[error("Iceberg manifest {url}: {source}")]
    Manifest {
        /// The file.
        url: String,
        /// What the codec said.
        source: manifest::ManifestError,
    },
    /// A commit or replacement record does not read.
    #[error("record {key}: {reason}; move it aside if it is not Strata's, then run `strata iceberg rebuild` again")]
    Record {
        /// The record's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A committed file's statistics do not read.
    #[error(transparent)]
    BadFile(#[from] spec::BadCommittedFile),
    /// A file named by a record is not under the archive's prefix.
    #[error("file {key} is not under this archive's prefix: was the record copied from another archive?")]
    OutsideArchive {
        /// The key.
        key: String,
    },
    /// Other processes kept committing first.
    #[error("Iceberg commit lost to other writers {attempts} times in a row; it is retried with the next compaction pass")]
    Conflict {
        /// Attempts made.
        attempts: usize,
    },
    /// A crash test stopped the commit.
    #[error("Iceberg commit stopped at {0:?} (crash injection for tests)")]
    Stopped(CommitStep),
    /// `catalog = "rest"` was chosen.
    #[error("[iceberg] catalog = \"rest\" (uri {uri}) is not supported by this Strata yet: use catalog = \"file\" \
             (readers open the metadata file `strata ls --iceberg` prints, or register it in the catalog \
             with its register-table call), or set [iceberg] enabled = false")]
    RestCatalog {
        /// The configured uri.
        uri: String,
    },
    /// The data file schema has no Iceberg form (a bug).
    #[error(transparent)]
    Schema(#[from] spec::UnsupportedType),
}
