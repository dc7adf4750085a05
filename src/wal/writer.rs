//! The writer thread: group commit, rolling, sealing, poisoning.
//!
//! Appenders (see [`super::log`]) enqueue encoded entries through the
//! [`Gate`]; the writer writes entries in queue order as they arrive (one
//! vectored `write` per batch of arrivals) until the group is complete (see
//! [`Writer::run`]), calls `fdatasync` once, and only then commits the
//! sequences and answers every waiter. One failed write or fsync poisons the
//! WAL for good (an fsync error may have dropped dirty pages: retrying and
//! succeeding would claim durability for data that is gone).

use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::dedup::{Reserved, Sequencer};
use super::entry;
use super::error::WalError;
use super::lock::DirLock;
use super::options::WalOptions;
use super::segment::{
    self, min_timestamp, write_all_vectored, ActiveSegment, SealedSegment, SegmentId, SegmentIo,
    SegmentState, StationLoad, HEADER_LEN as SEGMENT_HEADER_LEN,
};
use super::snapshot::{self, SegmentSummary};
use crate::message::{StationName, Timestamp};

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

/// How the writer answers an append or a barrier.
pub(crate) type Reply = oneshot::Sender<Result<Appended, WalError>>;

/// A request to the writer thread.
pub(crate) enum Request {
    /// Write an entry and answer once it is durable.
    Append(AppendReq),
    /// Answered after everything queued before it is durable.
    Barrier { appended: Appended, reply: Reply },
    /// Make everything queued before it durable, then seal the active segment.
    Seal(oneshot::Sender<Result<Option<SegmentId>, WalError>>),
}

/// An encoded entry on its way to the writer, with what it holds.
pub(crate) struct AppendReq {
    pub(crate) entry: entry::EncodedEntry,
    pub(crate) messages: u64,
    pub(crate) min_timestamp: Option<Timestamp>,
    /// Per station, what the entry holds (for the station loads).
    pub(crate) loads: BTreeMap<StationName, StationLoad>,
    /// The sequences it takes, committed once durable, released on failure.
    pub(crate) reserved: Reserved,
    pub(crate) appended: Appended,
    pub(crate) reply: Reply,
}

/// State appenders and the writer share under one small mutex.
pub(crate) struct Gate {
    pub(crate) seq: Sequencer,
    /// Bytes of the live segment files (sealed and active).
    pub(crate) used: u64,
    /// Bytes of entries accepted but not yet written.
    pub(crate) reserved: u64,
    /// `None` once closed.
    pub(crate) tx: Option<Sender<Request>>,
}

impl Gate {
    /// Enqueues a request; gives it back (boxed: only on this rare path) when
    /// the WAL is closed or the writer is gone.
    pub(crate) fn send_raw(&self, req: Request) -> Result<(), Box<Request>> {
        match &self.tx {
            Some(tx) => tx.send(req).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(req)),
        }
    }

    /// Enqueues a request: [`WalError::Closed`] after a close,
    /// [`WalError::Poisoned`] when the writer died.
    pub(crate) fn send(&self, req: Request) -> Result<(), WalError> {
        if self.tx.is_none() {
            return Err(WalError::Closed);
        }
        // The writer only stops early when it died: treat that like poisoning.
        self.send_raw(req).map_err(|_| WalError::Poisoned)
    }
}

/// Everything the clones of a [`super::Wal`] and its writer share.
pub(crate) struct Shared {
    pub(crate) opts: WalOptions,
    pub(crate) wal_id: String,
    pub(crate) wal_id_bytes: [u8; 16],
    pub(crate) gate: Mutex<Gate>,
    /// Sealed segments by id. Lock order: `gate` before `sealed`.
    pub(crate) sealed: Mutex<BTreeMap<SegmentId, SealedSegment>>,
    /// Per station, what the active segment holds durably (the writer updates
    /// it after each fsync and moves it into the sealed segment at a roll).
    /// Lock order: `sealed` before `active_loads`.
    pub(crate) active_loads: Mutex<BTreeMap<StationName, StationLoad>>,
    pub(crate) poisoned: AtomicBool,
    pub(crate) closed: AtomicBool,
    /// Segments in `corrupt/`.
    pub(crate) set_aside: AtomicU64,
    /// Sealed segments found corrupt that could not be moved aside: they stay
    /// in place, skipped by compaction, and are not "waiting for upload".
    pub(crate) stuck: Mutex<std::collections::BTreeSet<SegmentId>>,
    /// Entries made durable since open.
    pub(crate) appends: AtomicU64,
    /// `fdatasync` calls (group commits) since open.
    pub(crate) fsyncs: AtomicU64,
}

/// Locks a mutex; a panic while holding it cannot leave our state half
/// updated in a way later code relies on, so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of an I/O error for each waiter of a failed group (the OS error
/// code kept, so each reads like the original, e.g. "No space left on device").
fn same_io(path: &Path, e: &io::Error) -> WalError {
    let source = match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The writer thread's state.
pub(crate) struct Writer<I> {
    shared: Arc<Shared>,
    /// How it writes and syncs the active segment's file.
    io: I,
    rx: Receiver<Request>,
    active: ActiveSegment,
    /// Held for as long as the writer runs; released when it stops.
    _lock: DirLock,
    /// Appends in the last group made durable, and how long its fdatasync
    /// took (see [`Writer::run`]).
    last_group: usize,
    last_sync: Duration,
}

/// The longest the writer waits for the rest of a group.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

/// Appends written to the active segment but not yet fsynced, and the
/// barriers to answer with them.
#[derive(Default)]
struct Group {
    written: Vec<AppendReq>,
    bytes: u64,
    barriers: Vec<(Appended, Reply)>,
}

impl<I: SegmentIo> Writer<I> {
    /// Starts the writer thread on `active`, writing and syncing through
    /// `io`; it holds the directory lock until it stops, which it does once
    /// every sender of `rx` is dropped and the queue is drained.
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        io: I,
        rx: Receiver<Request>,
        active: ActiveSegment,
        dir_lock: DirLock,
    ) -> io::Result<JoinHandle<()>> {
        let writer = Writer {
            shared,
            io,
            rx,
            active,
            _lock: dir_lock,
            last_group: 0,
            last_sync: Duration::ZERO,
        };
        std::thread::Builder::new()
            .name("strata-wal-writer".into())
            .spawn(move || writer.run())
    }

    /// Group commit: wait for a first request, write everything queued, and
    /// keep writing what arrives while fewer appends are in hand than the last
    /// group had (at most as long as the last fdatasync took, and 2 ms); then
    /// one fdatasync for all of them, and answer them all.
    ///
    /// The appenders answered by one fdatasync come back one after another;
    /// starting the next fdatasync with only the first of them would split
    /// them over two device flushes. Writing each arrival at once (into the
    /// page cache, in queue order) overlaps that copy with waiting for the
    /// others. A lone appender (last group of one) never waits, and a drop in
    /// load costs one such wait before the target follows it down.
    fn run(mut self) {
        loop {
            let first = match self.age_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => {
                            self.roll_if_due();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let mut group = Group::default();
            let mut batch = vec![first];
            batch.extend(self.rx.try_iter());
            self.accept(batch, &mut group);
            let deadline = Instant::now() + self.last_sync.min(MAX_GATHER_WAIT);
            while !group.written.is_empty() && group.written.len() < self.last_group {
                let wait = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(r) => {
                        let mut batch = vec![r];
                        batch.extend(self.rx.try_iter());
                        self.accept(batch, &mut group);
                    }
                    Err(_) => break,
                }
            }
            self.flush(&mut group);
            self.roll_if_full();
            self.roll_if_due();
        }
        self.seal_at_close();
    }

    /// A clean close (every request drained and answered) seals the active
    /// segment if it holds data, and the snapshot then covers it: the next
    /// open checks it by its size and header instead of reading it through
    /// (it is read through and checked once, when the compactor indexes it).
    /// After a crash the active segment is still read and checked at open.
    fn seal_at_close(&mut self) {
        if self.poisoned() || self.active.entries == 0 {
            return;
        }
        if let Err((path, e)) = self.seal_active() {
            // Every append is durable already: the next open reads the
            // segment through, as after a crash.
            tracing::warn!(
                file = %path.display(),
                error = %e,
                "could not seal the active WAL segment at close; nothing is lost, the next \
                 start reads it through"
            );
        }
    }

    fn poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    fn poison(&self, what: &str, path: &Path, e: &io::Error) {
        self.shared.poisoned.store(true, Ordering::Release);
        tracing::error!(
            file = %path.display(),
            error = %e,
            "WAL {what} failed: the WAL is poisoned and refuses appends until Strata restarts"
        );
    }

    fn age_deadline(&self) -> Option<Instant> {
        if self.poisoned() {
            return None;
        }
        self.active
            .first_write
            .map(|t| t + self.shared.opts.segment_max_age)
    }

    fn roll_if_due(&mut self) {
        if self.age_deadline().is_some_and(|d| Instant::now() >= d) {
            self.roll();
        }
    }

    fn roll_if_full(&mut self) {
        if !self.poisoned()
            && self.active.entries > 0
            && self.active.len >= self.shared.opts.segment_max_bytes
        {
            self.roll();
        }
    }

    fn roll(&mut self) {
        if let Err((path, e)) = self.seal_and_roll() {
            self.poison("seal", &path, &e);
        }
    }

    /// Takes a batch of requests in queue order: appends are written at once,
    /// barriers join the group, a seal makes the group durable and seals.
    fn accept(&mut self, requests: Vec<Request>, group: &mut Group) {
        let mut fresh = Vec::new();
        for r in requests {
            match r {
                Request::Append(a) => fresh.push(a),
                Request::Barrier { appended, reply } => {
                    // Answered with the group, so what was queued before it
                    // must be in the group first.
                    self.write(std::mem::take(&mut fresh), group);
                    group.barriers.push((appended, reply));
                }
                Request::Seal(reply) => {
                    // Everything queued before the seal goes into the sealed segment.
                    self.write(std::mem::take(&mut fresh), group);
                    self.flush(group);
                    let _ = reply.send(self.seal_now());
                }
            }
        }
        self.write(fresh, group);
    }

    fn seal_now(&mut self) -> Result<Option<SegmentId>, WalError> {
        if self.poisoned() {
            return Err(WalError::Poisoned);
        }
        if self.active.entries == 0 {
            return Ok(None);
        }
        match self.seal_and_roll() {
            Ok(id) => Ok(Some(id)),
            Err((path, e)) => {
                self.poison("seal", &path, &e);
                Err(WalError::Io { path, source: e })
            }
        }
    }

    /// Writes appends to the active segment (one vectored write), rolling
    /// first, after making the group durable, if they would overflow a
    /// non-empty segment.
    fn write(&mut self, fresh: Vec<AppendReq>, group: &mut Group) {
        if fresh.is_empty() {
            return;
        }
        let total: u64 = fresh.iter().map(|a| a.entry.len).sum();
        let non_empty = self.active.entries > 0 || !group.written.is_empty();
        if !self.poisoned()
            && non_empty
            && self.active.len + total > self.shared.opts.segment_max_bytes
        {
            self.flush(group);
            if !self.poisoned() && self.active.entries > 0 {
                self.roll();
            }
        }
        if self.poisoned() {
            self.fail(fresh, Vec::new(), None);
            return;
        }
        let mut slices: Vec<IoSlice<'_>> = fresh
            .iter()
            .flat_map(|a| a.entry.chunks.iter().map(|c| IoSlice::new(c)))
            .collect();
        if let Err(e) = write_all_vectored(&mut self.io, &mut self.active.file, &mut slices) {
            let path = self.active.path.clone();
            self.poison("write", &path, &e);
            let mut all = std::mem::take(&mut group.written);
            all.extend(fresh);
            self.fail(all, std::mem::take(&mut group.barriers), Some((&path, &e)));
            group.bytes = 0;
            return;
        }
        self.active.len += total;
        group.bytes += total;
        group.written.extend(fresh);
    }

    /// One fdatasync for everything written, then commit and answer the group.
    fn flush(&mut self, group: &mut Group) {
        let written = std::mem::take(&mut group.written);
        let barriers = std::mem::take(&mut group.barriers);
        let bytes = std::mem::take(&mut group.bytes);
        if written.is_empty() {
            for (appended, reply) in barriers {
                let _ = reply.send(if self.poisoned() {
                    Err(WalError::Poisoned)
                } else {
                    Ok(appended)
                });
            }
            return;
        }
        let start = Instant::now();
        if let Err(e) = self.io.sync_data(&self.active.file) {
            let path = self.active.path.clone();
            self.poison("fdatasync", &path, &e);
            self.fail(written, barriers, Some((&path, &e)));
            return;
        }
        self.last_sync = start.elapsed();
        self.last_group = written.len();
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.shared
            .appends
            .fetch_add(written.len() as u64, Ordering::Relaxed);
        {
            let mut gate = lock(&self.shared.gate);
            for a in &written {
                gate.seq.commit(&a.reserved);
            }
            gate.reserved -= bytes;
            gate.used += bytes;
        }
        let a = &mut self.active;
        a.entries += written.len() as u64;
        a.first_write.get_or_insert_with(Instant::now);
        let mut loads = lock(&self.shared.active_loads);
        for req in written {
            for (station, load) in &req.loads {
                loads.entry(station.clone()).or_default().add(load);
            }
            a.messages += req.messages;
            a.min_timestamp = min_timestamp(a.min_timestamp, req.min_timestamp);
            let _ = req.reply.send(Ok(req.appended));
        }
        drop(loads);
        for (appended, reply) in barriers {
            let _ = reply.send(Ok(appended));
        }
    }

    /// Answers appends that will never be durable and frees their sequences
    /// and budget. `io` is the failure that caused it, if this is it.
    fn fail(
        &self,
        appends: Vec<AppendReq>,
        barriers: Vec<(Appended, Reply)>,
        io: Option<(&Path, &io::Error)>,
    ) {
        {
            let mut gate = lock(&self.shared.gate);
            for a in &appends {
                gate.seq.release(&a.reserved);
                gate.reserved -= a.entry.len;
            }
        }
        for a in appends {
            let err = match io {
                Some((path, e)) => same_io(path, e),
                None => WalError::Poisoned,
            };
            let _ = a.reply.send(Err(err));
        }
        for (_, reply) in barriers {
            let _ = reply.send(Err(WalError::Poisoned));
        }
    }

    /// Seals the active segment (fsync, rename, directory fsync), writes the
    /// sequence snapshot covering it, publishes it to the compactor and starts
    /// the next segment.
    fn seal_and_roll(&mut self) -> Result<SegmentId, (PathBuf, io::Error)> {
        let id = self.seal_active()?;
        let sh = self.shared.clone();
        let dir = &sh.opts.dir;
        let next = SegmentId(id.0 + 1);
        let (file, path) = segment::create(dir, sh.wal_id_bytes, next)
            .map_err(|e| (dir.join(segment::file_name(next, SegmentState::Active)), e))?;
        lock(&sh.gate).used += SEGMENT_HEADER_LEN as u64;
        self.active = ActiveSegment::empty(next, path, file, SEGMENT_HEADER_LEN as u64);
        Ok(id)
    }

    /// Seals the active segment: makes its size durable, renames it sealed,
    /// writes the snapshot covering it and lists it as sealed. `self.active`
    /// still describes that segment afterwards: [`Self::seal_and_roll`]
    /// replaces it with a new one; at close nothing more is written.
    fn seal_active(&mut self) -> Result<SegmentId, (PathBuf, io::Error)> {
        let sh = self.shared.clone();
        let dir = &sh.opts.dir;
        let id = self.active.id;
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| (p, e)
        };
        // Data is durable already; this also makes the final size durable.
        self.io
            .sync_all(&self.active.file)
            .map_err(at(&self.active.path))?;
        let path = segment::rename_sealed(dir, id).map_err(at(&self.active.path))?;
        // Loads cloned, not taken: they are emptied below together with the insert.
        let sealed = self.active.sealed(path, lock(&sh.active_loads).clone());
        // Only the writer commits sequences, and everything it wrote is in
        // segments up to `id`: the durable set is exactly theirs.
        let snap = {
            let gate = lock(&sh.gate);
            let sealed_list = lock(&sh.sealed);
            let summaries: Vec<SegmentSummary> = sealed_list
                .values()
                .chain(std::iter::once(&sealed))
                .map(SegmentSummary::from)
                .collect();
            snapshot::encode(
                sh.wal_id_bytes,
                id.0,
                id.0 + 1,
                &gate.seq.durable(),
                &summaries,
            )
        };
        snapshot::write(dir, &snap).map_err(at(&dir.join(snapshot::FILE_NAME)))?;
        {
            let mut sealed_list = lock(&sh.sealed);
            sealed_list.insert(id, sealed);
            lock(&sh.active_loads).clear();
        }
        tracing::debug!(segment = id.0, "sealed WAL segment");
        Ok(id)
    }
}
