//! The write-ahead segment log: durable, crash-recoverable storage for messages
//! between the sources and the compactor. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::{Draft, Message, StationName, Timestamp};

/// Options for [`Wal::open`], usually from the `[wal]` config table.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory of segment files (default `./data/wal`).
    pub dir: PathBuf,
    /// Roll the active segment once it reaches this size (default 64 MiB).
    pub segment_max_bytes: u64,
    /// Roll the active segment once it is this old, if non-empty (default 60 s).
    pub segment_max_age: Duration,
    /// Refuse appends that would take the WAL directory past this size.
    pub max_disk_bytes: u64,
}

impl WalOptions {
    /// Defaults for a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(60),
            max_disk_bytes: 10 << 30,
        }
    }
}

/// Monotonic number of a segment within one WAL directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

/// A sealed segment waiting for the compactor.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub id: SegmentId,
    pub path: PathBuf,
    pub bytes: u64,
    pub messages: u64,
    /// Earliest message timestamp in the segment (for the "oldest not uploaded" metric).
    pub min_timestamp: Option<Timestamp>,
}

/// What one append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Messages made durable.
    pub accepted: usize,
    /// Messages dropped because their (station, seq) was already durable.
    pub duplicates: usize,
    /// Per station: (station, first seq, last seq) of the accepted messages.
    pub ranges: Vec<(StationName, u64, u64)>,
}

/// Per-station figures for stats and `wal inspect`.
#[derive(Debug, Clone, Default)]
pub struct StationStats {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// Live WAL figures (for metrics).
#[derive(Debug, Clone, Default)]
pub struct WalStats {
    pub disk_bytes: u64,
    pub segments: u64,
    pub sealed_segments: u64,
    pub set_aside: u64,
}

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("WAL full: {used} bytes used of max_disk_bytes {max}; wait for uploads to drain or raise [wal] max_disk_bytes")]
    Full { used: u64, max: u64 },
    #[error("WAL directory {dir} is locked by process {pid}: stop that process or use another --wal-dir")]
    Locked { dir: PathBuf, pid: String },
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAL is poisoned after a failed fsync; restart Strata to recover from disk")]
    Poisoned,
    #[error("corrupt WAL segment {path} at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("sequence {0} is too large: at most 9223372036854775807")]
    SeqOutOfRange(u64),
    #[error("WAL is closed")]
    Closed,
}

/// The write-ahead log; cheap to clone, shared by every source.
#[derive(Debug, Clone)]
pub struct Wal {}

impl Wal {
    /// Opens (creating if needed) and recovers the WAL directory, taking its lock.
    pub fn open(opts: WalOptions) -> Result<Wal, WalError> {
        todo!()
    }
    /// Appends a batch; returns when it is durable (group commit). Duplicate
    /// (station, seq) pairs are dropped; drafts without seq get the next one.
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        todo!()
    }
    /// Blocking form of [`Wal::append`] (not for use inside a tokio runtime thread).
    pub fn append_blocking(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        todo!()
    }
    /// Seals the active segment if it holds anything; returns its id.
    pub fn seal(&self) -> Result<Option<SegmentId>, WalError> {
        todo!()
    }
    /// Sealed segments, oldest first.
    pub fn sealed(&self) -> Vec<SealedSegment> {
        todo!()
    }
    /// Every message of a sealed segment, in log order.
    pub fn read_segment(&self, id: SegmentId) -> Result<Vec<Message>, WalError> {
        todo!()
    }
    /// Deletes a sealed segment once it is committed to the archive.
    pub fn remove_sealed(&self, id: SegmentId) -> Result<(), WalError> {
        todo!()
    }
    /// Stable identity of this WAL directory (random, made at creation).
    pub fn wal_id(&self) -> &str {
        todo!()
    }
    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        todo!()
    }
    /// Live figures.
    pub fn stats(&self) -> WalStats {
        todo!()
    }
    /// Highest durable seq of a station, if any.
    pub fn last_seq(&self, station: &StationName) -> Option<u64> {
        todo!()
    }
    /// Stops the writer after in-flight appends finish.
    pub fn close(&self) -> Result<(), WalError> {
        todo!()
    }
}

/// Result of [`inspect`]: a read-only report over a WAL directory.
#[derive(Debug, Clone, Default)]
pub struct InspectReport {}

/// Reads every segment of `dir` (without taking the lock) and checks every CRC.
pub fn inspect(dir: &Path) -> Result<InspectReport, WalError> {
    todo!()
}
