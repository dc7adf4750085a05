//! [`WalError`], the one error type of every WAL layer.

use std::io;
use std::path::{Path, PathBuf};

use super::segment::SegmentId;

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The append would take the segment files past `max_disk_bytes`; nothing was written.
    #[error("WAL full: {used} bytes used of max_disk_bytes {max}; wait for uploads to drain or raise [wal] max_disk_bytes")]
    Full {
        /// Bytes used (including appends in flight).
        used: u64,
        /// The configured limit.
        max: u64,
    },
    /// Another process (or another open `Wal` in this one) owns the directory.
    #[error("WAL directory {dir} is locked by process {pid}: stop that process or use another --wal-dir")]
    Locked {
        /// The WAL directory.
        dir: PathBuf,
        /// The owner's pid, as written in `wal.lock`.
        pid: String,
    },
    /// A file system operation failed.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An earlier write or fsync failed; no more appends are taken.
    #[error("WAL is poisoned after a failed fsync; restart Strata to recover from disk")]
    Poisoned,
    /// A file is damaged.
    #[error("corrupt WAL segment {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong, and what to do when it is not a segment.
        reason: String,
    },
    /// A sequence above [`crate::message::MAX_SEQ`]; nothing was written.
    #[error("sequence {0} is too large: at most 9223372036854775807")]
    SeqOutOfRange(u64),
    /// The batch does not fit in one entry; nothing was written.
    #[error(
        "batch of {bytes} encoded bytes is too large for one WAL entry (at most {max}): split it"
    )]
    BatchTooLarge {
        /// The encoded size.
        bytes: u64,
        /// The largest entry.
        max: u64,
    },
    /// The segment is not (or no longer) a sealed segment of this WAL.
    #[error("segment {0} is not a sealed segment of this WAL: list them with Wal::sealed")]
    NotSealed(SegmentId),
    /// [`super::Wal::close`] was called.
    #[error("WAL is closed")]
    Closed,
}

/// Maps an I/O error on `path` to [`WalError::Io`] (for `map_err`).
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}
