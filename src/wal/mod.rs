//! The write-ahead segment log: durable, crash-recoverable storage for messages
//! between the sources and the compactor.
//!
//! One log serves the whole process. Each [`Wal::append`] call becomes one
//! CRC32-checked entry ([`entry`]) in the active segment file ([`segment`]);
//! a dedicated writer thread writes every queued entry (vectored writes, large
//! payloads not copied), makes them durable with one `fdatasync` (group
//! commit, shared by every concurrent appender and station) and only then
//! answers the appenders, so a source may acknowledge upstream as soon as
//! `append` returns. Segments roll by size and age and are then *sealed*;
//! the compactor reads sealed segments ([`Wal::sealed`], [`Wal::read_segment`])
//! and deletes them once archived ([`Wal::remove_sealed`]). A clean
//! [`Wal::close`] seals the active segment when it holds data, so the next
//! open checks it by size and header instead of reading it through.
//!
//! Every `(station, seq)` is held once: drafts without a sequence get the
//! station's next one, redelivered ones are dropped as duplicates, and the
//! durable sequences survive restarts (and the deletion of compacted segments)
//! in a snapshot file written at each seal.
//!
//! Directory layout:
//!
//! ```text
//! <dir>/wal.id                         random id of this WAL (UUID, simple form)
//! <dir>/wal.lock                       flock'ed by the owning process; holds its pid
//! <dir>/seqs.snapshot                  durable sequences up to a segment (see `snapshot`)
//! <dir>/wal-00000000000000000007.seg   sealed segments, waiting for the compactor
//! <dir>/wal-00000000000000000008.open  the active segment (none after a clean close)
//! <dir>/corrupt/                       segments set aside by recovery or the compactor,
//!                                      each with a `.reason` file; never deleted by Strata
//! ```
//!
//! A failed write or fsync *poisons* the WAL: the data's fate is unknown, so
//! every later append fails with [`WalError::Poisoned`] until a restart
//! recovers from what is on disk. Recovery is described at [`RecoveryMode`].
//!
//! # Layers
//!
//! Each module uses only modules above it in this list (and `options`, and
//! `error`, which names a [`SegmentId`]); the byte formats are documented
//! where they are encoded. Tests inject I/O failures (a full disk, a failed
//! fsync) through the writer's `segment::SegmentIo` seam (`fault`), not
//! through switches in the writer.
//!
//! | module | job | I/O |
//! | --- | --- | --- |
//! | [`entry`] | entry format: encode, decode, CRC | none |
//! | [`segment`] | segment header and file names, scanning a segment's bytes, the active and sealed segments, creating and sealing segment files | files |
//! | `directory` | listing segment files, `corrupt/`, `wal.id` | files |
//! | `dedup` | sequence sets, the sequencer (duplicates, next seqs) | none |
//! | `snapshot` | `seqs.snapshot`: durable sequences and segment summaries | files |
//! | `lock` | `wal.lock` | files |
//! | `recovery` | open-time recovery ([`RecoveryMode`]) | files |
//! | `writer` | the writer thread: group commit, rolling, sealing, poisoning | files |
//! | `log` | opening, the append path, the sealed segments handed to the compactor | via `writer` |
//! | `reader` | reading a sealed segment back in groups without holding it | files |
//! | `inspect` | `strata wal inspect` (read-only; `directory`, `segment`, `snapshot`) | files |

use std::path::Path;

use crate::message::{Draft, Message, StationName, Timestamp};

mod dedup;
mod directory;
pub mod entry;
mod error;
#[cfg(test)]
pub(crate) mod fault;
mod inspect;
mod lock;
mod log;
mod options;
pub mod reader;
mod recovery;
pub mod segment;
mod snapshot;
mod writer;

pub use error::WalError;
pub use inspect::{
    inspect, InspectReport, InspectTotals, SegmentReport, SetAsideReport, StationStats,
};
pub use log::{StationLoads, WalStats};
pub use options::WalOptions;
pub use recovery::RecoveryMode;
pub use segment::{SealedSegment, SegmentId, SegmentState, StationLoad};
pub use writer::Appended;

/// The write-ahead log; cheap to clone, shared by every source.
///
/// Dropping the last clone closes it like [`Wal::close`].
#[derive(Clone)]
pub struct Wal {
    inner: std::sync::Arc<log::Inner>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir())
            .field("wal_id", &self.wal_id())
            .finish()
    }
}

impl Wal {
    /// Opens (creating if needed) and recovers the WAL directory, taking its
    /// lock, with [`RecoveryMode::TruncateTornTail`].
    ///
    /// # Errors
    /// [`WalError::Locked`] when another process owns the directory,
    /// [`WalError::Corrupt`] when `wal.id` or `seqs.snapshot` is damaged (damaged
    /// segments are set aside instead), [`WalError::Io`] otherwise.
    pub fn open(opts: WalOptions) -> Result<Wal, WalError> {
        Self::open_with_recovery(opts, RecoveryMode::default())
    }

    /// [`Wal::open`] with an explicit recovery policy.
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with_recovery(opts: WalOptions, mode: RecoveryMode) -> Result<Wal, WalError> {
        Ok(Wal {
            inner: log::Inner::open(opts, mode, segment::FileIo)?,
        })
    }

    /// Appends a batch as one entry; returns when it is durable (group
    /// commit). Duplicate (station, seq) pairs are dropped; drafts without seq
    /// get the next one. A batch that is all duplicates returns at once, or
    /// once the earlier batch holding them is durable.
    ///
    /// # Errors
    /// [`WalError::SeqOutOfRange`], [`WalError::BatchTooLarge`] and
    /// [`WalError::Full`] with nothing written; [`WalError::Io`] when the write
    /// or fsync failed (the WAL is then poisoned), [`WalError::Poisoned`],
    /// [`WalError::Closed`].
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        self.submit(drafts).await
    }

    /// [`Wal::append`] in two steps: the batch takes its place in the log
    /// now, when this is called (so batches submitted one after another are
    /// logged in that order), and the returned future resolves once it is
    /// durable. The caller can prepare its next batch meanwhile.
    ///
    /// # Errors
    /// As [`Wal::append`], from the future.
    pub fn submit(
        &self,
        drafts: Vec<Draft>,
    ) -> impl std::future::Future<Output = Result<Appended, WalError>> + Send + 'static {
        let queued = self.inner.submit(drafts);
        async move {
            match queued? {
                log::Pending::Ready(a) => Ok(a),
                log::Pending::Wait(rx) => rx.await.unwrap_or(Err(WalError::Poisoned)),
            }
        }
    }

    /// Blocking form of [`Wal::append`], for threads outside an async runtime
    /// (it blocks the calling thread until the batch is durable).
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn append_blocking(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        match self.inner.submit(drafts)? {
            log::Pending::Ready(a) => Ok(a),
            log::Pending::Wait(rx) => {
                futures::executor::block_on(rx).unwrap_or(Err(WalError::Poisoned))
            }
        }
    }

    /// Seals the active segment now if it holds anything; returns its id.
    /// Blocks until the seal is durable.
    ///
    /// # Errors
    /// [`WalError::Io`] (the WAL is then poisoned), [`WalError::Poisoned`],
    /// [`WalError::Closed`].
    pub fn seal(&self) -> Result<Option<SegmentId>, WalError> {
        self.inner.seal()
    }

    /// Sealed segments, oldest first.
    pub fn sealed(&self) -> Vec<SealedSegment> {
        self.inner.sealed()
    }

    /// Every message of a sealed segment, in log order, every entry CRC-checked.
    ///
    /// # Errors
    /// [`WalError::Corrupt`] with the file and byte offset of the first damage
    /// (call [`Wal::set_aside`] then), [`WalError::NotSealed`], [`WalError::Io`].
    pub fn read_segment(&self, id: SegmentId) -> Result<Vec<Message>, WalError> {
        self.inner.read_segment(id)
    }

    /// A sealed segment's messages as an index (every entry CRC-checked, no
    /// payload held), and its file to read them back from in groups.
    ///
    /// # Errors
    /// As [`Wal::read_segment`].
    pub fn index_segment(
        &self,
        id: SegmentId,
    ) -> Result<(reader::SegmentFile, Vec<reader::IndexedMessage>), WalError> {
        self.inner.index_segment(id)
    }

    /// Deletes a sealed segment once it is committed to the archive. Its
    /// sequences stay known as durable (duplicates stay dropped).
    ///
    /// # Errors
    /// [`WalError::NotSealed`], [`WalError::Io`], [`WalError::Closed`].
    pub fn remove_sealed(&self, id: SegmentId) -> Result<(), WalError> {
        self.inner.remove_sealed(id)
    }

    /// Moves a sealed segment that turned out corrupt into `<dir>/corrupt/`
    /// (never deleting it), with `reason` in a `.reason` file next to it, and
    /// stops listing it as sealed. Logged with `tracing::error!`.
    ///
    /// # Errors
    /// [`WalError::NotSealed`], [`WalError::Io`], [`WalError::Closed`].
    pub fn set_aside(&self, id: SegmentId, reason: &str) -> Result<(), WalError> {
        self.inner.set_aside(id, reason)
    }

    /// The earliest message timestamp in a sealed segment still waiting for
    /// compaction (`strata_oldest_unuploaded_age_seconds`): corrupt segments
    /// that could not be moved aside are skipped by compaction and left out.
    pub fn oldest_unuploaded(&self) -> Option<Timestamp> {
        self.inner.oldest_unuploaded()
    }

    /// Stable identity of this WAL directory (random, made at creation).
    pub fn wal_id(&self) -> &str {
        &self.inner.shared.wal_id
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.opts.dir
    }

    /// Whether a failed write, fsync or seal poisoned the WAL: it refuses
    /// appends until Strata restarts and recovers from what is on disk.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// The most bytes of segment files the WAL holds before it refuses
    /// appends (`[wal] max_disk_bytes`).
    pub fn max_disk_bytes(&self) -> u64 {
        self.inner.shared.opts.max_disk_bytes
    }

    /// Live figures (cheap: a few counters).
    pub fn stats(&self) -> WalStats {
        self.inner.stats()
    }

    /// What each station has in the WAL now, not yet uploaded (cheap: sums
    /// kept in memory, no disk access).
    pub fn station_loads(&self) -> StationLoads {
        self.inner.station_loads()
    }

    /// Whether this WAL has ever taken `(station, seq)`: durable (uploaded
    /// or not; the WAL remembers every seq it stored) or being appended.
    pub fn holds(&self, station: &StationName, seq: u64) -> bool {
        self.inner.holds(station, seq)
    }

    /// The highest seq this WAL has taken for `station`, durable or being
    /// appended.
    pub fn highest_seq(&self, station: &StationName) -> Option<u64> {
        self.inner.highest_seq(station)
    }

    /// Highest durable seq of a station, if any.
    pub fn last_seq(&self, station: &StationName) -> Option<u64> {
        self.inner.last_seq(station)
    }

    /// Stops the writer after in-flight appends finish, seals the active
    /// segment when it holds data (so the next open need not read it
    /// through), and releases the directory lock. Later calls on any clone
    /// get [`WalError::Closed`].
    ///
    /// # Errors
    /// [`WalError::Poisoned`] when the writer thread died unexpectedly.
    pub fn close(&self) -> Result<(), WalError> {
        self.inner.close()
    }
}
