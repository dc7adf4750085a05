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
//! and deletes them once archived ([`Wal::remove_sealed`]).
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
//! <dir>/wal-00000000000000000008.open  the active segment
//! <dir>/corrupt/                       segments set aside by recovery or the compactor,
//!                                      each with a `.reason` file; never deleted by Strata
//! ```
//!
//! A failed write or fsync *poisons* the WAL: the data's fate is unknown, so
//! every later append fails with [`WalError::Poisoned`] until a restart
//! recovers from what is on disk. Recovery is described at [`RecoveryMode`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::{Draft, Message, StationName, Timestamp};

mod dedup;
pub mod entry;
mod inspect;
mod lock;
mod log;
mod recovery;
pub mod segment;
mod snapshot;

pub use inspect::{inspect, InspectReport, InspectTotals, SegmentReport, SetAsideReport};
pub use segment::SegmentState;

/// Options for [`Wal::open`], usually from the `[wal]` config table.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory of segment files (default `./data/wal`).
    pub dir: PathBuf,
    /// Roll the active segment once it reaches this size (default 64 MiB).
    pub segment_max_bytes: u64,
    /// Roll the active segment once its first entry is this old (default 60 s).
    pub segment_max_age: Duration,
    /// Refuse appends that would take the WAL's segment files past this size.
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

/// Monotonic number of a segment within one WAL directory (from 1, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl std::fmt::Display for SegmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A sealed segment waiting for the compactor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// The segment number.
    pub id: SegmentId,
    /// Its file.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    /// Messages it holds.
    pub messages: u64,
    /// Earliest message timestamp in the segment (for the "oldest not uploaded" metric).
    pub min_timestamp: Option<Timestamp>,
    /// What each station has in the segment; `None` when the segment was
    /// recovered from the snapshot's summary, which does not break it down
    /// (reading the segment to find out would make opening slow).
    pub stations: Option<BTreeMap<StationName, StationLoad>>,
}

/// What one station has in the WAL (or in one segment of it): what
/// `GET /v1/status` reports per station.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StationLoad {
    /// Messages.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub payload_bytes: u64,
    /// Earliest message timestamp.
    pub min_timestamp: Option<Timestamp>,
}

impl StationLoad {
    /// Adds `other`'s messages to this one.
    pub fn add(&mut self, other: &StationLoad) {
        self.messages += other.messages;
        self.payload_bytes += other.payload_bytes;
        self.min_timestamp = match (self.min_timestamp, other.min_timestamp) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
    }

    /// Per station, what `messages` hold.
    pub fn of<'a>(
        messages: impl IntoIterator<Item = &'a Message>,
    ) -> BTreeMap<StationName, StationLoad> {
        let mut loads: BTreeMap<StationName, StationLoad> = BTreeMap::new();
        for m in messages {
            let one = StationLoad {
                messages: 1,
                payload_bytes: m.payload.len() as u64,
                min_timestamp: Some(m.timestamp),
            };
            // Looked up first: a name is cloned once per station, not per message.
            match loads.get_mut(&m.station) {
                Some(load) => load.add(&one),
                None => {
                    loads.insert(m.station.clone(), one);
                }
            }
        }
        loads
    }
}

/// What every station has in the WAL, sealed and active segments together
/// ([`Wal::station_loads`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationLoads {
    /// Per station.
    pub stations: BTreeMap<StationName, StationLoad>,
    /// False when some sealed segment came from the snapshot's summary without
    /// a per-station breakdown (after a restart, until it is uploaded): the
    /// figures then leave that segment out.
    pub complete: bool,
}

/// What one append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Messages made durable.
    pub accepted: usize,
    /// Payload bytes of the accepted messages (duplicates not counted).
    pub accepted_bytes: u64,
    /// Messages dropped because their (station, seq) was already durable, in
    /// flight, or earlier in the same batch.
    pub duplicates: usize,
    /// Per station, in order of first appearance: (station, first seq, last seq)
    /// of the accepted messages.
    pub ranges: Vec<(StationName, u64, u64)>,
}

/// Per-station figures for stats and `wal inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationStats {
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Lowest sequence.
    pub first_seq: Option<u64>,
    /// Highest sequence.
    pub last_seq: Option<u64>,
}

/// Live WAL figures (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes of the live segment files (sealed and active), as counted against
    /// `max_disk_bytes`.
    pub disk_bytes: u64,
    /// Live segment files (sealed and active).
    pub segments: u64,
    /// Sealed segments waiting for the compactor.
    pub sealed_segments: u64,
    /// Segments in `<dir>/corrupt/`.
    pub set_aside: u64,
    /// Entries made durable since open (one per append that wrote anything).
    pub appends: u64,
    /// Group commits (`fdatasync` calls) since open; `appends / fsyncs` is
    /// the average group size.
    pub fsyncs: u64,
}

/// How [`Wal::open`] treats damage found on disk.
///
/// Whatever the mode, nothing readable is deleted: a damaged segment is moved
/// whole into `<dir>/corrupt/` (with a `.reason` file) and logged with
/// `tracing::error!` naming the file and byte offset; the readable entries'
/// sequences still count as taken, so they are never assigned again.
///
/// At open, segments newer than the sequence snapshot (normally just the last,
/// active one) are read and every entry CRC-checked; sealed segments the
/// snapshot already covers are checked cheaply (size and header), and fully
/// when the compactor reads them ([`Wal::read_segment`] reports damage;
/// the compactor then calls [`Wal::set_aside`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// The default. A torn tail of the active (last) segment, i.e. a partial
    /// last entry, a CRC mismatch in its last entry, or zeroes to the end, with
    /// nothing readable after it, is what a crash during an append leaves: it
    /// was never acknowledged, so it is truncated (the bytes dropped are logged
    /// with `tracing::warn!`). Any other damage sets the segment aside.
    #[default]
    TruncateTornTail,
    /// Treats a torn tail like any other damage: the active segment is set
    /// aside whole. For operators who want to look at every crash by hand.
    SetAsideTornTail,
}

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
        source: std::io::Error,
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
    /// [`Wal::close`] was called.
    #[error("WAL is closed")]
    Closed,
}

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
            inner: log::Inner::open(opts, mode)?,
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
        match self.inner.submit(drafts)? {
            log::Pending::Ready(a) => Ok(a),
            log::Pending::Wait(rx) => rx.await.unwrap_or(Err(WalError::Poisoned)),
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

    /// Stops the writer after in-flight appends finish, and releases the
    /// directory lock. Later calls on any clone get [`WalError::Closed`].
    ///
    /// # Errors
    /// [`WalError::Poisoned`] when the writer thread died unexpectedly.
    pub fn close(&self) -> Result<(), WalError> {
        self.inner.close()
    }
}
