//! The running log: the append path (plan, reserve, encode, enqueue) and the
//! writer thread (group commit, rolling, sealing, poisoning).
//!
//! Appenders plan their batch against the [`Sequencer`] and enqueue the encoded
//! entry while holding the `gate` mutex, so the queue order is the order in
//! which sequences were reserved. The writer thread writes entries in queue
//! order as they arrive (one vectored `write` per batch of arrivals) until the
//! group is complete (see [`Writer::run`]), calls `fdatasync` once, and only
//! then commits the sequences and answers every waiter. One failed write or
//! fsync poisons the WAL for good (an fsync error may have dropped dirty pages:
//! retrying and succeeding would claim durability for data that is gone).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::dedup::{PlanError, Reserved, Sequencer};
use super::lock::{self, DirLock};
use super::segment::{self, Expect, SegmentState, HEADER_LEN as SEGMENT_HEADER_LEN};
use super::snapshot::{self, SegmentSummary};
use super::{entry, recovery};
use super::{
    Appended, RecoveryMode, SealedSegment, SegmentId, StationLoad, StationLoads, WalError,
    WalOptions, WalStats,
};
use crate::message::{Draft, Message, StationName, Timestamp};

/// What an appender waits on.
pub(crate) enum Pending {
    /// Nothing to wait for (an empty batch, or only duplicates of durable messages).
    Ready(Appended),
    /// Answered by the writer once the batch is durable.
    Wait(oneshot::Receiver<Result<Appended, WalError>>),
}

/// A request to the writer thread.
enum Request {
    Append(AppendReq),
    /// Answered after everything queued before it is durable.
    Barrier {
        appended: Appended,
        reply: oneshot::Sender<Result<Appended, WalError>>,
    },
    Seal(oneshot::Sender<Result<Option<SegmentId>, WalError>>),
}

struct AppendReq {
    entry: entry::EncodedEntry,
    messages: u64,
    min_timestamp: Option<Timestamp>,
    /// Per station, what the entry holds (for [`Inner::station_loads`]).
    loads: BTreeMap<StationName, StationLoad>,
    reserved: Reserved,
    appended: Appended,
    reply: oneshot::Sender<Result<Appended, WalError>>,
}

/// State appenders and the writer share under one small mutex.
pub(crate) struct Gate {
    seq: Sequencer,
    /// Bytes of the live segment files (sealed and active).
    used: u64,
    /// Bytes of entries accepted but not yet written.
    reserved: u64,
    /// `None` once closed.
    tx: Option<Sender<Request>>,
}

/// Everything the clones of a [`super::Wal`] and its writer share.
pub(crate) struct Shared {
    pub(crate) opts: WalOptions,
    pub(crate) wal_id: String,
    wal_id_bytes: [u8; 16],
    gate: Mutex<Gate>,
    /// Sealed segments by id. Lock order: `gate` before `sealed`.
    sealed: Mutex<BTreeMap<SegmentId, SealedSegment>>,
    /// Per station, what the active segment holds durably (the writer updates
    /// it after each fsync and moves it into the sealed segment at a roll).
    /// Lock order: `sealed` before `active_loads`.
    active_loads: Mutex<BTreeMap<StationName, StationLoad>>,
    poisoned: AtomicBool,
    closed: AtomicBool,
    set_aside: AtomicU64,
    appends: AtomicU64,
    fsyncs: AtomicU64,
    /// Test hook: the next fdatasync fails.
    #[cfg(test)]
    fail_next_sync: AtomicBool,
}

/// The shared part of every clone; dropping the last one closes the WAL.
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Locks a mutex; a panic while holding it cannot leave our state half
/// updated in a way later code relies on, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A copy of an I/O error for the other waiters of a failed group.
fn same_io(path: &Path, e: &io::Error) -> WalError {
    WalError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(e.kind(), e.to_string()),
    }
}

impl Inner {
    /// Creates or opens the directory, locks it, recovers it and starts the writer.
    pub(crate) fn open(opts: WalOptions, mode: RecoveryMode) -> Result<Arc<Inner>, WalError> {
        let dir = opts.dir.clone();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            // A new directory's own name must survive a crash too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                segment::sync_dir(parent).map_err(io_err(parent))?;
            }
        }
        let dir_lock = lock::lock(&dir)?;
        let (wal_id, wal_id_bytes) = recovery::load_or_create_wal_id(&dir)?;
        let rec = recovery::recover(&dir, wal_id_bytes, mode)?;
        let shared = Arc::new(Shared {
            wal_id,
            wal_id_bytes,
            gate: Mutex::new(Gate {
                seq: rec.sequencer,
                used: rec.used,
                reserved: 0,
                tx: None,
            }),
            sealed: Mutex::new(rec.sealed),
            active_loads: Mutex::default(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            set_aside: AtomicU64::new(rec.set_aside),
            appends: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
            opts,
        });
        let (tx, rx) = mpsc::channel();
        lock(&shared.gate).tx = Some(tx);
        let writer = Writer {
            shared: shared.clone(),
            rx,
            active: rec.active,
            _lock: dir_lock,
            last_group: 0,
            last_sync: Duration::ZERO,
        };
        let handle = std::thread::Builder::new()
            .name("strata-wal-writer".into())
            .spawn(move || writer.run())
            .map_err(io_err(&dir))?;
        Ok(Arc::new(Inner {
            shared,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// Plans, reserves, encodes and enqueues a batch.
    pub(crate) fn submit(&self, drafts: Vec<Draft>) -> Result<Pending, WalError> {
        let sh = &self.shared;
        if sh.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        let mut gate = lock(&sh.gate);
        if gate.tx.is_none() {
            return Err(WalError::Closed);
        }
        let plan = gate.seq.plan(drafts).map_err(|e| match e {
            PlanError::SeqOutOfRange(s) => WalError::SeqOutOfRange(s),
        })?;
        let appended = Appended {
            accepted: plan.messages.len(),
            accepted_bytes: plan.messages.iter().map(|m| m.payload.len() as u64).sum(),
            duplicates: plan.duplicates,
            ranges: plan.ranges,
        };
        let (reply, rx) = oneshot::channel();
        if plan.messages.is_empty() {
            if !plan.waits_for_in_flight {
                return Ok(Pending::Ready(appended));
            }
            // Acknowledging now could acknowledge a duplicate whose first copy
            // later fails: wait for what is queued before us instead.
            send(&gate, Request::Barrier { appended, reply })?;
            return Ok(Pending::Wait(rx));
        }
        let size = entry::encoded_len(&plan.messages);
        if size - entry::HEADER_LEN as u64 > entry::MAX_BODY_LEN as u64 {
            return Err(WalError::BatchTooLarge {
                bytes: size,
                max: entry::HEADER_LEN as u64 + entry::MAX_BODY_LEN as u64,
            });
        }
        // Room for two more segment headers too: the group holding this entry
        // may roll before it is written and again after.
        let used = gate.used + gate.reserved;
        let max = sh.opts.max_disk_bytes;
        if used + size + 2 * SEGMENT_HEADER_LEN as u64 > max {
            return Err(WalError::Full { used, max });
        }
        let encoded = entry::encode_chunks(&plan.messages).map_err(|e| match e {
            entry::EncodeError::SeqOutOfRange(s) => WalError::SeqOutOfRange(s),
            entry::EncodeError::TooLarge(b) => WalError::BatchTooLarge {
                bytes: b,
                max: entry::HEADER_LEN as u64 + entry::MAX_BODY_LEN as u64,
            },
        })?;
        let req = AppendReq {
            entry: encoded,
            messages: plan.messages.len() as u64,
            min_timestamp: plan.messages.iter().map(|m| m.timestamp).min(),
            loads: StationLoad::of(&plan.messages),
            reserved: plan.reserved,
            appended,
            reply,
        };
        gate.seq.reserve(&req.reserved);
        gate.reserved += size;
        if let Err(back) = send_raw(&gate, Request::Append(req)) {
            if let Request::Append(req) = *back {
                gate.seq.release(&req.reserved);
            }
            gate.reserved -= size;
            return Err(WalError::Poisoned);
        }
        Ok(Pending::Wait(rx))
    }

    pub(crate) fn seal(&self) -> Result<Option<SegmentId>, WalError> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        let (reply, rx) = oneshot::channel();
        send(&lock(&self.shared.gate), Request::Seal(reply))?;
        futures::executor::block_on(rx).unwrap_or(Err(WalError::Poisoned))
    }

    pub(crate) fn sealed(&self) -> Vec<SealedSegment> {
        lock(&self.shared.sealed).values().cloned().collect()
    }

    fn sealed_path(&self, id: SegmentId) -> Result<PathBuf, WalError> {
        lock(&self.shared.sealed)
            .get(&id)
            .map(|s| s.path.clone())
            .ok_or(WalError::NotSealed(id))
    }

    pub(crate) fn read_segment(&self, id: SegmentId) -> Result<Vec<Message>, WalError> {
        let path = self.sealed_path(id)?;
        let bytes = Bytes::from(std::fs::read(&path).map_err(io_err(&path))?);
        let scan = segment::scan(
            &bytes,
            Expect {
                wal_id: Some(self.shared.wal_id_bytes),
                id,
            },
        );
        if let Some(d) = scan.damage {
            return Err(WalError::Corrupt {
                path,
                offset: d.offset,
                reason: d.reason,
            });
        }
        // Sized once: growing by doubling would briefly hold the messages twice.
        let count = scan.entries.iter().map(|e| e.messages.len()).sum();
        let mut messages = Vec::with_capacity(count);
        for entry in scan.entries {
            messages.extend(entry.messages);
        }
        Ok(messages)
    }

    fn check_open(&self) -> Result<(), WalError> {
        if self.shared.closed.load(Ordering::Acquire) {
            Err(WalError::Closed)
        } else {
            Ok(())
        }
    }

    /// Takes a sealed segment off the list, runs `op` on it, and puts it back
    /// if `op` fails. The budget is credited on success.
    fn take_sealed(
        &self,
        id: SegmentId,
        op: impl FnOnce(&SealedSegment) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        self.check_open()?;
        let seg = lock(&self.shared.sealed)
            .remove(&id)
            .ok_or(WalError::NotSealed(id))?;
        if let Err(e) = op(&seg) {
            lock(&self.shared.sealed).insert(id, seg);
            return Err(e);
        }
        lock(&self.shared.gate).used -= seg.bytes;
        Ok(())
    }

    pub(crate) fn remove_sealed(&self, id: SegmentId) -> Result<(), WalError> {
        let dir = self.shared.opts.dir.clone();
        self.take_sealed(id, |seg| {
            match std::fs::remove_file(&seg.path) {
                Ok(()) => {}
                // Already gone (removed by hand): the outcome the caller wants.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&seg.path)(e)),
            }
            segment::sync_dir(&dir).map_err(io_err(&dir))
        })
    }

    pub(crate) fn set_aside(&self, id: SegmentId, reason: &str) -> Result<(), WalError> {
        let dir = self.shared.opts.dir.clone();
        self.take_sealed(id, |seg| {
            let to =
                recovery::set_aside_file(&dir, &seg.path, reason).map_err(io_err(&seg.path))?;
            tracing::error!(
                file = %seg.path.display(),
                moved_to = %to.display(),
                reason,
                "corrupt sealed WAL segment set aside; it stays on disk for inspection"
            );
            Ok(())
        })?;
        self.shared.set_aside.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn station_loads(&self) -> StationLoads {
        let sealed = lock(&self.shared.sealed);
        let mut out = StationLoads {
            stations: BTreeMap::new(),
            complete: true,
        };
        let mut add = |loads: &BTreeMap<StationName, StationLoad>| {
            for (station, load) in loads {
                out.stations.entry(station.clone()).or_default().add(load);
            }
        };
        for seg in sealed.values() {
            match &seg.stations {
                Some(loads) => add(loads),
                None => out.complete = false,
            }
        }
        // Taken while `sealed` is held, so a roll between the two is not
        // counted twice or missed.
        add(&lock(&self.shared.active_loads));
        out
    }

    pub(crate) fn stats(&self) -> WalStats {
        let disk_bytes = lock(&self.shared.gate).used;
        let sealed_segments = lock(&self.shared.sealed).len() as u64;
        WalStats {
            disk_bytes,
            segments: sealed_segments + 1,
            sealed_segments,
            set_aside: self.shared.set_aside.load(Ordering::Relaxed),
            appends: self.shared.appends.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn holds(&self, station: &StationName, seq: u64) -> bool {
        lock(&self.shared.gate).seq.holds(station, seq)
    }

    pub(crate) fn highest_seq(&self, station: &StationName) -> Option<u64> {
        lock(&self.shared.gate).seq.highest(station)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn last_seq(&self, station: &StationName) -> Option<u64> {
        lock(&self.shared.gate).seq.last_durable(station)
    }

    pub(crate) fn close(&self) -> Result<(), WalError> {
        // Dropping the sender ends the writer once it has drained the queue,
        // so every batch enqueued before this point is written and answered.
        drop(lock(&self.shared.gate).tx.take());
        self.shared.closed.store(true, Ordering::Release);
        let handle = lock(&self.writer).take();
        match handle {
            Some(h) => h.join().map_err(|_| WalError::Poisoned),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn fail_next_sync(&self) {
        self.shared.fail_next_sync.store(true, Ordering::SeqCst);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Enqueues a request; gives it back (boxed: only on this rare path) when the
/// WAL is closed or the writer is gone.
fn send_raw(gate: &Gate, req: Request) -> Result<(), Box<Request>> {
    match &gate.tx {
        Some(tx) => tx.send(req).map_err(|e| Box::new(e.0)),
        None => Err(Box::new(req)),
    }
}

fn send(gate: &Gate, req: Request) -> Result<(), WalError> {
    if gate.tx.is_none() {
        return Err(WalError::Closed);
    }
    // The writer only stops early when it died: treat that like poisoning.
    send_raw(gate, req).map_err(|_| WalError::Poisoned)
}

/// The segment being appended to, owned by the writer thread.
pub(crate) struct Active {
    pub(crate) id: SegmentId,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// File length (header included).
    pub(crate) len: u64,
    pub(crate) entries: u64,
    pub(crate) messages: u64,
    pub(crate) min_timestamp: Option<Timestamp>,
    /// When the first entry was written: the segment's age counts from it.
    pub(crate) first_write: Option<Instant>,
}

impl Active {
    pub(crate) fn empty(id: SegmentId, path: PathBuf, file: File, len: u64) -> Active {
        Active {
            id,
            path,
            file,
            len,
            entries: 0,
            messages: 0,
            min_timestamp: None,
            first_write: None,
        }
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Request>,
    active: Active,
    /// Held for as long as the writer runs; released when it stops.
    _lock: DirLock,
    /// Appends in the last group made durable, and how long its fdatasync
    /// took (see [`Writer::run`]).
    last_group: usize,
    last_sync: Duration,
}

/// The longest the writer waits for the rest of a group.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

type Reply = oneshot::Sender<Result<Appended, WalError>>;

/// Appends written to the active segment but not yet fsynced, and the
/// barriers to answer with them.
#[derive(Default)]
struct Group {
    written: Vec<AppendReq>,
    bytes: u64,
    barriers: Vec<(Appended, Reply)>,
}

impl Writer {
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
        if let Err(e) = write_all_vectored(&mut self.active.file, &mut slices) {
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
        if let Err(e) = self.sync_data() {
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
            a.min_timestamp = match (a.min_timestamp, req.min_timestamp) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
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

    fn sync_data(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.shared.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        self.active.file.sync_data()
    }

    /// Seals the active segment (fsync, rename, directory fsync), writes the
    /// sequence snapshot covering it, publishes it to the compactor and starts
    /// the next segment.
    fn seal_and_roll(&mut self) -> Result<SegmentId, (PathBuf, io::Error)> {
        let sh = self.shared.clone();
        let dir = &sh.opts.dir;
        let id = self.active.id;
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| (p, e)
        };
        // Data is durable already; this also makes the final size durable.
        self.active.file.sync_all().map_err(at(&self.active.path))?;
        let path = segment::rename_sealed(dir, id).map_err(at(&self.active.path))?;
        let sealed = SealedSegment {
            id,
            path,
            bytes: self.active.len,
            messages: self.active.messages,
            min_timestamp: self.active.min_timestamp,
            // Cloned, not taken: it is emptied below together with the insert.
            stations: Some(lock(&sh.active_loads).clone()),
        };
        // Only the writer commits sequences, and everything it wrote is in
        // segments up to `id`: the durable set is exactly theirs.
        let snap = {
            let gate = lock(&sh.gate);
            let sealed_list = lock(&sh.sealed);
            let summaries: Vec<SegmentSummary> = sealed_list
                .values()
                .chain(std::iter::once(&sealed))
                .map(summary)
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
        let next = SegmentId(id.0 + 1);
        let (file, path) = segment::create(dir, sh.wal_id_bytes, next)
            .map_err(at(&dir.join(segment::file_name(next, SegmentState::Active))))?;
        lock(&sh.gate).used += SEGMENT_HEADER_LEN as u64;
        self.active = Active::empty(next, path, file, SEGMENT_HEADER_LEN as u64);
        tracing::debug!(segment = id.0, "sealed WAL segment");
        Ok(id)
    }
}

pub(crate) fn summary(s: &SealedSegment) -> SegmentSummary {
    SegmentSummary {
        id: s.id,
        bytes: s.bytes,
        messages: s.messages,
        min_timestamp: s.min_timestamp,
    }
}

/// `write_all` for a list of buffers (one `writev` in the common case).
fn write_all_vectored(file: &mut File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the segment file accepted no more bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Wal, WalOptions};
    use super::*;

    fn draft(station: &str, seq: Option<u64>, payload: &[u8]) -> Draft {
        Draft {
            station: StationName::new(station).unwrap(),
            seq,
            timestamp: Timestamp(1_000 + seq.unwrap_or(0) as i64),
            id: None,
            subject: None,
            headers: vec![],
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn opts(dir: &Path) -> WalOptions {
        let mut o = WalOptions::new(dir);
        o.segment_max_bytes = 4096;
        o
    }

    fn all_messages(wal: &Wal) -> Vec<Message> {
        wal.seal().unwrap();
        wal.sealed()
            .iter()
            .flat_map(|s| wal.read_segment(s.id).unwrap())
            .collect()
    }

    #[test]
    fn station_loads_follow_appends_seals_and_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let (a, b) = (
            StationName::new("a").unwrap(),
            StationName::new("b").unwrap(),
        );
        let load = |messages, payload_bytes, min| StationLoad {
            messages,
            payload_bytes,
            min_timestamp: Some(Timestamp(min)),
        };
        assert_eq!(
            wal.station_loads(),
            StationLoads {
                stations: BTreeMap::new(),
                complete: true
            }
        );
        wal.append_blocking(vec![
            draft("a", Some(1), b"xx"),
            draft("a", Some(2), b"yyy"),
            draft("b", Some(5), b"z"),
        ])
        .unwrap();
        let loads = wal.station_loads();
        assert!(loads.complete);
        assert_eq!(loads.stations[&a], load(2, 5, 1_001));
        assert_eq!(loads.stations[&b], load(1, 1, 1_005));
        let first = wal.seal().unwrap().unwrap();
        assert_eq!(wal.station_loads(), loads, "sealing moves, never loses");
        // A duplicate adds nothing.
        wal.append_blocking(vec![draft("a", Some(3), b"w"), draft("a", Some(1), b"xx")])
            .unwrap();
        assert_eq!(wal.station_loads().stations[&a], load(3, 6, 1_001));
        wal.remove_sealed(first).unwrap();
        let loads = wal.station_loads();
        assert_eq!(loads.stations[&a], load(1, 1, 1_003));
        assert!(!loads.stations.contains_key(&b));
        drop(wal);

        // Reopened: the active segment is scanned, so its figures are known.
        let wal = Wal::open(opts(dir.path())).unwrap();
        let loads = wal.station_loads();
        assert!(loads.complete);
        assert_eq!(loads.stations[&a], load(1, 1, 1_003));
        drop(wal);
        // Reopened again: the snapshot covers that segment, with no breakdown.
        let wal = Wal::open(opts(dir.path())).unwrap();
        let loads = wal.station_loads();
        assert!(!loads.complete);
        assert!(loads.stations.is_empty());
        assert_eq!(wal.sealed().len(), 1);
    }

    #[test]
    fn a_failed_fdatasync_poisons_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        wal.append_blocking(vec![draft("a", Some(1), b"x")])
            .unwrap();
        assert!(!wal.is_poisoned());
        wal.inner.fail_next_sync();
        let e = wal
            .append_blocking(vec![draft("a", Some(2), b"y")])
            .unwrap_err();
        assert!(matches!(e, WalError::Io { .. }), "{e}");
        let e = wal
            .append_blocking(vec![draft("a", Some(3), b"z")])
            .unwrap_err();
        assert!(matches!(e, WalError::Poisoned), "{e}");
        assert!(matches!(wal.seal(), Err(WalError::Poisoned)));
        assert!(wal.is_poisoned());
        // The failed batch was never committed.
        assert_eq!(wal.last_seq(&StationName::new("a").unwrap()), Some(1));
        drop(wal);

        // A restart recovers what is on disk; seq 1 is there for sure.
        let wal = Wal::open(opts(dir.path())).unwrap();
        let seqs: Vec<u64> = all_messages(&wal).iter().map(|m| m.seq).collect();
        assert_eq!(seqs.first(), Some(&1));
        assert!(wal.append_blocking(vec![draft("a", Some(4), b"w")]).is_ok());
    }

    #[test]
    fn segments_roll_by_age_only_when_non_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.segment_max_age = Duration::from_millis(100);
        let wal = Wal::open(o).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(wal.sealed().is_empty(), "an empty segment never rolls");
        wal.append_blocking(vec![draft("a", None, b"x")]).unwrap();
        let start = Instant::now();
        while wal.sealed().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let sealed = wal.sealed();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].messages, 1);
        assert_eq!(sealed[0].min_timestamp, Some(Timestamp(1_000)));
    }

    #[test]
    fn segments_roll_by_size_and_keep_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        for i in 1..=50u64 {
            let a = wal
                .append_blocking(vec![draft("a", None, &[i as u8; 300])])
                .unwrap();
            assert_eq!(a.ranges, vec![(StationName::new("a").unwrap(), i, i)]);
        }
        let sealed = wal.sealed();
        assert!(sealed.len() >= 3, "{}", sealed.len());
        for s in &sealed {
            assert!(s.bytes <= 4096, "{s:?}");
        }
        let seqs: Vec<u64> = all_messages(&wal).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_redeliveries_are_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let results: Vec<Appended> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let wal = wal.clone();
                    s.spawn(move || {
                        let mut total = Appended::default();
                        for chunk in (1..=100u64).collect::<Vec<_>>().chunks(10) {
                            let drafts = chunk.iter().map(|&q| draft("a", Some(q), b"p")).collect();
                            let a = wal.append_blocking(drafts).unwrap();
                            total.accepted += a.accepted;
                            total.duplicates += a.duplicates;
                        }
                        total
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().map(|a| a.accepted).sum::<usize>(), 100);
        assert_eq!(results.iter().map(|a| a.duplicates).sum::<usize>(), 700);
        let mut seqs: Vec<u64> = all_messages(&wal).iter().map(|m| m.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_appenders_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let wal = wal.clone();
                s.spawn(move || {
                    for _ in 0..40 {
                        wal.append_blocking(vec![draft(&format!("s{t}"), None, b"x")])
                            .unwrap();
                    }
                });
            }
        });
        let st = wal.stats();
        assert_eq!(st.appends, 320);
        // One fsync per append would be 320; group commit shares them.
        assert!(st.fsyncs * 3 / 2 <= st.appends, "{st:?}");
    }

    #[test]
    fn close_drains_then_refuses_and_releases_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let other = wal.clone();
        wal.append_blocking(vec![draft("a", None, b"x")]).unwrap();
        wal.close().unwrap();
        wal.close().unwrap();
        assert!(matches!(
            other.append_blocking(vec![draft("a", None, b"y")]),
            Err(WalError::Closed)
        ));
        assert!(matches!(other.seal(), Err(WalError::Closed)));
        // The lock went with the writer, though a clone is still alive.
        let again = Wal::open(opts(dir.path())).unwrap();
        assert_eq!(again.last_seq(&StationName::new("a").unwrap()), Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_appends_and_seal_work_inside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        wal.append(vec![draft(&format!("s{t}"), None, b"x")])
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // seal() blocks but must not panic inside a runtime.
        assert!(wal.seal().unwrap().is_some());
        assert_eq!(wal.last_seq(&StationName::new("s3").unwrap()), Some(10));
    }
}
