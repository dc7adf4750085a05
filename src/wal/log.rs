//! The running log: opening (lock, recovery, writer), the append path (plan,
//! reserve, encode, enqueue) and the sealed segments handed to the compactor.
//!
//! Appenders plan their batch against the [`Sequencer`](super::dedup::Sequencer)
//! and enqueue the encoded entry while holding the `gate` mutex, so the queue
//! order is the order in which sequences were reserved; the [`Writer`] makes
//! entries durable in that order and answers them.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::dedup::PlanError;
use super::directory::{self, set_aside_file};
use super::entry;
use super::error::{io_at, WalError};
use super::lock::lock as lock_dir;
use super::options::WalOptions;
use super::reader;
use super::recovery::{self, RecoveryMode};
use super::segment::{
    self, Expect, SealedSegment, SegmentId, SegmentIo, StationLoad,
    HEADER_LEN as SEGMENT_HEADER_LEN,
};
use super::writer::{lock, AppendReq, Appended, Gate, Request, Shared, Writer};
use crate::message::{Draft, Message, StationName, Timestamp};

/// What an appender waits on.
pub(crate) enum Pending {
    /// Nothing to wait for (an empty batch, or only duplicates of durable messages).
    Ready(Appended),
    /// Answered by the writer once the batch is durable.
    Wait(oneshot::Receiver<Result<Appended, WalError>>),
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

/// The shared part of every clone; dropping the last one closes the WAL.
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    /// Creates or opens the directory, locks it, recovers it and starts the
    /// writer, which writes and syncs segment files through `io`.
    pub(crate) fn open(
        opts: WalOptions,
        mode: RecoveryMode,
        io: impl SegmentIo,
    ) -> Result<Arc<Inner>, WalError> {
        let dir = opts.dir.clone();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            // A new directory's own name must survive a crash too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                segment::sync_dir(parent).map_err(io_at(parent))?;
            }
        }
        let dir_lock = lock_dir(&dir)?;
        let (wal_id, wal_id_bytes) = directory::load_or_create_wal_id(&dir)?;
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
            stuck: Mutex::default(),
            appends: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            opts,
        });
        let (tx, rx) = mpsc::channel();
        lock(&shared.gate).tx = Some(tx);
        let handle =
            Writer::spawn(shared.clone(), io, rx, rec.active, dir_lock).map_err(io_at(&dir))?;
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
            gate.send(Request::Barrier { appended, reply })?;
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
        if let Err(back) = gate.send_raw(Request::Append(req)) {
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
        lock(&self.shared.gate).send(Request::Seal(reply))?;
        futures::executor::block_on(rx).unwrap_or(Err(WalError::Poisoned))
    }

    pub(crate) fn sealed(&self) -> Vec<SealedSegment> {
        lock(&self.shared.sealed).values().cloned().collect()
    }

    pub(crate) fn read_segment(&self, id: SegmentId) -> Result<Vec<Message>, WalError> {
        let (file, index) = self.index_segment(id)?;
        file.read(&index)
    }

    pub(crate) fn index_segment(
        &self,
        id: SegmentId,
    ) -> Result<(reader::SegmentFile, Vec<reader::IndexedMessage>), WalError> {
        let (path, known) = lock(&self.shared.sealed)
            .get(&id)
            .map(|s| (s.path.clone(), s.stations.is_some()))
            .ok_or(WalError::NotSealed(id))?;
        // A segment sealed at a clean close (or covered by the snapshot at
        // open) gets its per-station breakdown from this first read through.
        let mut loads = (!known).then(BTreeMap::new);
        let indexed = reader::index(
            &path,
            Expect {
                wal_id: Some(self.shared.wal_id_bytes),
                id,
            },
            loads.as_mut(),
        )?;
        if let Some(loads) = loads {
            if let Some(seg) = lock(&self.shared.sealed).get_mut(&id) {
                seg.stations.get_or_insert(loads);
            }
        }
        Ok(indexed)
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
                Err(e) => return Err(io_at(&seg.path)(e)),
            }
            segment::sync_dir(&dir).map_err(io_at(&dir))
        })
    }

    pub(crate) fn set_aside(&self, id: SegmentId, reason: &str) -> Result<(), WalError> {
        let dir = self.shared.opts.dir.clone();
        let moved = self.take_sealed(id, |seg| {
            let to = set_aside_file(&dir, &seg.path, reason).map_err(io_at(&seg.path))?;
            tracing::error!(
                file = %seg.path.display(),
                moved_to = %to.display(),
                reason,
                "corrupt sealed WAL segment set aside; it stays on disk for inspection"
            );
            Ok(())
        });
        if let Err(e) = moved {
            if lock(&self.shared.sealed).contains_key(&id) {
                lock(&self.shared.stuck).insert(id);
            }
            return Err(e);
        }
        self.shared.set_aside.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn oldest_unuploaded(&self) -> Option<Timestamp> {
        let stuck = lock(&self.shared.stuck);
        lock(&self.shared.sealed)
            .values()
            .filter(|s| !stuck.contains(&s.id))
            .filter_map(|s| s.min_timestamp)
            .min()
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
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::super::{fault, Wal, WalOptions};
    use super::*;
    use crate::message::Timestamp;

    fn draft(station: &str, seq: Option<u64>, payload: &[u8]) -> Draft {
        Draft {
            station: StationName::new(station).unwrap(),
            seq,
            timestamp: Timestamp(1_000 + seq.unwrap_or(0) as i64),
            id: None,
            subject: None,
            headers: vec![],
            payload: bytes::Bytes::copy_from_slice(payload),
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

        // Reopened after a clean close: the segment was sealed at close and the
        // snapshot covers it, so open does not read it and has no breakdown...
        let wal = Wal::open(opts(dir.path())).unwrap();
        let loads = wal.station_loads();
        assert!(!loads.complete);
        assert!(loads.stations.is_empty());
        let sealed = wal.sealed();
        assert_eq!(sealed.len(), 1);
        // ...until the compactor first reads it through.
        let (_, index) = wal.index_segment(sealed[0].id).unwrap();
        assert_eq!(index.len(), 1);
        let loads = wal.station_loads();
        assert!(loads.complete);
        assert_eq!(loads.stations[&a], load(1, 1, 1_003));
        drop(wal);

        // After a crash (no clean close), open reads the active segment
        // through, so its figures are known at once.
        let running = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(running.path())).unwrap();
        wal.append_blocking(vec![draft("b", Some(7), b"abcd")])
            .unwrap();
        // What a crash leaves: the files as they are on disk now.
        let crashed = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(running.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), crashed.path().join(e.file_name())).unwrap();
            }
        }
        drop(wal);
        let wal = Wal::open(opts(crashed.path())).unwrap();
        let loads = wal.station_loads();
        assert!(loads.complete);
        assert_eq!(loads.stations[&b], load(1, 4, 1_007));
    }

    #[test]
    fn a_clean_close_seals_the_active_segment_and_the_next_open_does_not_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        wal.append_blocking(vec![draft("a", Some(1), b"x"), draft("a", Some(2), b"y")])
            .unwrap();
        wal.close().unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("wal-"))
            .collect();
        assert_eq!(
            names,
            ["wal-00000000000000000001.seg"],
            "sealed, no new active segment"
        );

        // Damage in the body that only a read-through would see: open trusts
        // the sealed size and header, and the compactor's read finds it.
        let path = dir.path().join("wal-00000000000000000001.seg");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        assert_eq!(wal.last_seq(&StationName::new("a").unwrap()), Some(2));
        let sealed = wal.sealed();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].messages, 2);
        assert!(matches!(
            wal.index_segment(sealed[0].id),
            Err(WalError::Corrupt { .. })
        ));

        // An empty WAL closed cleanly seals nothing.
        let empty = tempfile::tempdir().unwrap();
        Wal::open(opts(empty.path())).unwrap().close().unwrap();
        let wal = Wal::open(opts(empty.path())).unwrap();
        assert!(wal.sealed().is_empty());
    }

    #[test]
    fn oldest_unuploaded_leaves_out_segments_stuck_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        assert_eq!(wal.oldest_unuploaded(), None);
        wal.append_blocking(vec![draft("a", Some(1), b"x")])
            .unwrap();
        let first = wal.seal().unwrap().unwrap();
        wal.append_blocking(vec![draft("a", Some(5), b"y")])
            .unwrap();
        let second = wal.seal().unwrap().unwrap();
        assert_eq!(wal.oldest_unuploaded(), Some(Timestamp(1_001)));

        // A file where the corrupt/ folder should be: the move fails, the
        // segment stays in place and is no longer counted as waiting.
        std::fs::write(dir.path().join(super::super::directory::CORRUPT_DIR), b"").unwrap();
        assert!(wal.set_aside(first, "test").is_err());
        assert_eq!(wal.sealed().len(), 2);
        assert_eq!(wal.oldest_unuploaded(), Some(Timestamp(1_005)));

        // A segment moved aside is gone from the sealed list altogether.
        std::fs::remove_file(dir.path().join(super::super::directory::CORRUPT_DIR)).unwrap();
        wal.set_aside(second, "test").unwrap();
        assert_eq!(wal.oldest_unuploaded(), None);
    }

    /// The OS error of an I/O failure the writer reported.
    fn errno(e: &WalError) -> Option<i32> {
        match e {
            WalError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    #[test]
    fn a_failed_fdatasync_poisons_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, faults) = fault::open(opts(dir.path())).unwrap();
        wal.append_blocking(vec![draft("a", Some(1), b"x")])
            .unwrap();
        assert!(!wal.is_poisoned());
        faults.fail_next_sync(fault::EIO);
        let e = wal
            .append_blocking(vec![draft("a", Some(2), b"y")])
            .unwrap_err();
        assert_eq!(errno(&e), Some(fault::EIO), "{e}");
        // Only that one fdatasync fails: the WAL refuses the next append anyway.
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
    fn a_full_disk_poisons_and_its_batch_is_neither_acknowledged_nor_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, faults) = fault::open(opts(dir.path())).unwrap();
        wal.append_blocking(vec![draft("a", Some(1), b"x")])
            .unwrap();
        faults.fail_next_write(fault::ENOSPC);
        let e = wal
            .append_blocking(vec![draft("a", Some(2), b"y")])
            .unwrap_err();
        assert_eq!(errno(&e), Some(fault::ENOSPC), "{e}");
        assert!(wal.is_poisoned());
        let e = wal
            .append_blocking(vec![draft("a", Some(3), b"z")])
            .unwrap_err();
        assert!(matches!(e, WalError::Poisoned), "{e}");
        assert_eq!(wal.last_seq(&StationName::new("a").unwrap()), Some(1));
        // The refused seqs are free again: not taken, so a redelivery is no duplicate.
        assert!(!wal.holds(&StationName::new("a").unwrap(), 2));
        drop(wal);

        let wal = Wal::open(opts(dir.path())).unwrap();
        let seqs: Vec<u64> = all_messages(&wal).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1]);
        let a = wal
            .append_blocking(vec![draft("a", Some(2), b"y")])
            .unwrap();
        assert_eq!(a.accepted, 1);
    }

    #[test]
    fn a_failed_fsync_at_a_seal_poisons_and_keeps_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, faults) = fault::open(opts(dir.path())).unwrap();
        wal.append_blocking(vec![draft("a", Some(1), b"x"), draft("a", Some(2), b"y")])
            .unwrap();
        faults.fail_next_seal(fault::EIO);
        let e = wal.seal().unwrap_err();
        assert_eq!(errno(&e), Some(fault::EIO), "{e}");
        assert!(wal.is_poisoned());
        assert!(
            wal.sealed().is_empty(),
            "nothing is handed to the compactor"
        );
        assert!(matches!(
            wal.append_blocking(vec![draft("a", Some(3), b"z")]),
            Err(WalError::Poisoned)
        ));
        drop(wal);

        // Both messages were fdatasync'd before the seal: a restart keeps them.
        let wal = Wal::open(opts(dir.path())).unwrap();
        let seqs: Vec<u64> = all_messages(&wal).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2]);
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
