//! Recovery at open: rebuild duplicate detection, the sealed list and the
//! active segment from the directory, following a [`RecoveryMode`].
//!
//! 1. Load `seqs.snapshot` (durable sequences of segments `1..=through`).
//! 2. Sealed segments the snapshot covers are checked cheaply (size, header):
//!    after a clean close that is every segment, the active one included, since
//!    the close sealed it.
//! 3. Every other segment is read in chunks and every entry CRC-checked. A
//!    damaged one is then read whole to find what is readable: a torn tail of
//!    the last, active segment is truncated (the mode permitting); any other
//!    damage moves the segment into `corrupt/`, untouched.
//! 4. A recovered active segment holding data is sealed; an empty one is
//!    reused. A new snapshot covering everything before the active segment is
//!    written.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::dedup::Sequencer;
use super::directory::{list_segments, list_set_aside, set_aside_file};
use super::entry::SharedStations;
use super::error::{io_at, WalError};
use super::reader;
use super::segment::{
    self, ActiveSegment, Expect, Scan, SealedSegment, SegmentHeader, SegmentId, SegmentState,
    StationLoad, HEADER_LEN,
};
use super::snapshot::{self, SegmentSummary};
use crate::message::{MessageView, StationName, Timestamp};

/// How [`super::Wal::open`] treats damage found on disk.
///
/// Whatever the mode, nothing readable is deleted: a damaged segment is moved
/// whole into `<dir>/corrupt/` (with a `.reason` file) and logged with
/// `tracing::error!` naming the file and byte offset; the readable entries'
/// sequences still count as taken, so they are never assigned again.
///
/// At open, segments newer than the sequence snapshot (normally just the last,
/// active one) are read and every entry CRC-checked; sealed segments the
/// snapshot already covers are checked cheaply (size and header), and fully
/// when the compactor reads them ([`super::Wal::read_segment`] reports damage;
/// the compactor then calls [`super::Wal::set_aside`]).
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

/// What recovery hands to the running log.
pub(crate) struct Recovered {
    pub(crate) sequencer: Sequencer,
    pub(crate) sealed: BTreeMap<SegmentId, SealedSegment>,
    pub(crate) active: ActiveSegment,
    /// Bytes of the live segment files.
    pub(crate) used: u64,
    /// Segments in `corrupt/`.
    pub(crate) set_aside: u64,
}

/// Recovers `dir` (already locked, `wal.id` known).
pub(crate) fn recover(
    dir: &Path,
    wal_id: [u8; 16],
    mode: RecoveryMode,
) -> Result<Recovered, WalError> {
    let listed = list_segments(dir).map_err(io_at(dir))?;
    let set_aside_before = list_set_aside(dir).map_err(io_at(dir))?;
    let mut set_aside = set_aside_before.len() as u64;
    let mut next_id = set_aside_before
        .iter()
        .filter_map(|(_, id)| id.map(|i| i.0 + 1))
        .max()
        .unwrap_or(1);

    let snap_path = dir.join(snapshot::FILE_NAME);
    let snap = match snapshot::read(dir).map_err(io_at(&snap_path))? {
        None => None,
        Some(bytes) => {
            let snap = snapshot::decode(&bytes).map_err(|reason| WalError::Corrupt {
                path: snap_path.clone(),
                offset: 0,
                reason: format!(
                    "{reason}; move the file away to rebuild duplicate detection from the \
                     segments on disk (the sequences of segments already compacted are then \
                     forgotten, so their redeliveries would be archived again)"
                ),
            })?;
            if snap.wal_id != wal_id {
                return Err(WalError::Corrupt {
                    path: snap_path,
                    offset: 16,
                    reason: "the snapshot belongs to another WAL directory; move it away".into(),
                });
            }
            Some(snap)
        }
    };
    let mut seq = Sequencer::default();
    let (through, summaries) = match snap {
        Some(s) => {
            for (station, set) in &s.stations {
                seq.add_durable(station, set);
            }
            next_id = next_id.max(s.next_segment);
            let map: BTreeMap<SegmentId, SegmentSummary> =
                s.segments.into_iter().map(|x| (x.id, x)).collect();
            (s.through, map)
        }
        None => {
            if listed.first().is_some_and(|l| l.id.0 > 1) {
                tracing::warn!(
                    dir = %dir.display(),
                    "no sequence snapshot in a WAL whose first segments are gone: sequences \
                     of compacted segments are unknown, redeliveries of them would be archived again"
                );
            }
            (0, BTreeMap::new())
        }
    };

    let mut sealed = BTreeMap::new();
    let mut reuse: Option<(SegmentId, PathBuf, u64)> = None;
    let last = listed.len().checked_sub(1);
    for (i, l) in listed.iter().enumerate() {
        next_id = next_id.max(l.id.0 + 1);
        let duplicate_number = listed
            .get(i + 1)
            .is_some_and(|n| n.id == l.id && l.state == SegmentState::Active);
        let is_last_active = Some(i) == last && l.state == SegmentState::Active;
        let file = l.path.display().to_string();

        if duplicate_number {
            let reason = "an active segment with the same number as a sealed one";
            tracing::error!(file, offset = 0, reason, "WAL segment set aside");
            set_aside_file(dir, &l.path, reason).map_err(io_at(&l.path))?;
            set_aside += 1;
            continue;
        }

        if l.state == SegmentState::Sealed && l.id.0 <= through {
            if let Some(sum) = summaries.get(&l.id) {
                match quick_check(&l.path, wal_id, l.id, sum.bytes) {
                    Ok(None) => {
                        sealed.insert(
                            l.id,
                            SealedSegment {
                                id: l.id,
                                path: l.path.clone(),
                                bytes: sum.bytes,
                                messages: sum.messages,
                                min_timestamp: sum.min_timestamp,
                                stations: None,
                            },
                        );
                    }
                    Ok(Some((offset, reason))) => {
                        tracing::error!(
                            file,
                            offset,
                            reason,
                            "corrupt sealed WAL segment set aside"
                        );
                        set_aside_file(dir, &l.path, &reason).map_err(io_at(&l.path))?;
                        set_aside += 1;
                    }
                    Err(e) => return Err(io_at(&l.path)(e)),
                }
                continue;
            }
        }

        let expect = Expect {
            wal_id: Some(wal_id),
            id: l.id,
        };
        // Read in chunks first: a segment without damage (the rule) is never
        // held whole in memory.
        let checked = match walk_clean(&l.path, expect) {
            Ok((checked, durable)) => {
                for (station, set) in durable.durable() {
                    seq.add_durable(station, set);
                }
                checked
            }
            Err(WalError::Corrupt { .. }) => {
                // Damage: the whole file is scanned, to tell a torn tail from
                // other damage and to salvage what is readable after it.
                let bytes = fs::read(&l.path).map_err(io_at(&l.path))?;
                let scan = segment::scan(&bytes, expect);
                let mut len = scan.len;
                if let Some(d) = &scan.damage {
                    let truncate =
                        is_last_active && d.torn_tail && mode == RecoveryMode::TruncateTornTail;
                    if !truncate {
                        tracing::error!(
                            file,
                            offset = d.offset,
                            reason = %d.reason,
                            good_entries_before = scan.entries.len(),
                            good_entries_after = scan.salvaged.len(),
                            "corrupt WAL segment set aside into corrupt/ (not deleted); its \
                             readable sequences stay reserved"
                        );
                        for e in scan.entries.iter().chain(&scan.salvaged) {
                            for m in &e.messages {
                                seq.add_durable_seq(&m.station, m.seq);
                            }
                        }
                        let reason = format!("damage at byte {}: {}", d.offset, d.reason);
                        set_aside_file(dir, &l.path, &reason).map_err(io_at(&l.path))?;
                        set_aside += 1;
                        continue;
                    }
                    truncate_torn_tail(
                        &l.path,
                        wal_id,
                        l.id,
                        scan.header.is_some(),
                        scan.valid_end,
                    )
                    .map_err(io_at(&l.path))?;
                    len = scan.valid_end.max(HEADER_LEN as u64);
                    tracing::warn!(
                        file,
                        offset = d.offset,
                        bytes_dropped = scan.len - scan.valid_end,
                        reason = %d.reason,
                        "truncated the torn tail of the active WAL segment (an append cut \
                         short by a crash, never acknowledged)"
                    );
                }
                for e in &scan.entries {
                    for m in &e.messages {
                        seq.add_durable_seq(&m.station, m.seq);
                    }
                }
                Checked::of_scan(&scan, len)
            }
            Err(e) => return Err(e),
        };
        if is_last_active && checked.entries == 0 {
            reuse = Some((l.id, l.path.clone(), checked.len));
            continue;
        }
        let path = if l.state == SegmentState::Active {
            segment::rename_sealed(dir, l.id).map_err(io_at(&l.path))?
        } else {
            l.path.clone()
        };
        sealed.insert(
            l.id,
            SealedSegment {
                id: l.id,
                path,
                bytes: checked.len,
                messages: checked.messages,
                min_timestamp: checked.min_timestamp,
                stations: Some(checked.stations),
            },
        );
    }

    let active = match reuse {
        Some((id, path, len)) => {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            ActiveSegment::empty(id, path, file, len)
        }
        None => {
            let id = SegmentId(next_id);
            let (file, path) = segment::create(dir, wal_id, id).map_err(io_at(dir))?;
            ActiveSegment::empty(id, path, file, HEADER_LEN as u64)
        }
    };
    // Everything before the active segment is now sealed, set aside or gone:
    // one snapshot covers it all, so the next open reads only the active one.
    let summaries: Vec<SegmentSummary> = sealed.values().map(SegmentSummary::from).collect();
    let bytes = snapshot::encode(
        wal_id,
        active.id.0 - 1,
        active.id.0,
        &seq.durable(),
        &summaries,
    );
    snapshot::write(dir, &bytes).map_err(io_at(&snap_path))?;
    let used = sealed.values().map(|s| s.bytes).sum::<u64>() + active.len;
    Ok(Recovered {
        sequencer: seq,
        sealed,
        active,
        used,
        set_aside,
    })
}

/// What recovery keeps of a fully checked segment (after any torn tail is cut).
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    /// File length in bytes.
    len: u64,
    /// Entries in it.
    entries: u64,
    /// Messages in those entries.
    messages: u64,
    /// Their earliest timestamp.
    min_timestamp: Option<Timestamp>,
    /// Per station, what those messages hold.
    stations: BTreeMap<StationName, StationLoad>,
}

impl Checked {
    /// A segment `len` bytes long of `entries` entries, whose messages
    /// `stations` sums up per station (the totals follow from it).
    fn new(len: u64, entries: u64, stations: BTreeMap<StationName, StationLoad>) -> Checked {
        Checked {
            len,
            entries,
            messages: stations.values().map(|l| l.messages).sum(),
            min_timestamp: stations.values().filter_map(|l| l.min_timestamp).min(),
            stations,
        }
    }

    /// What the good entries before any damage of `scan` hold, the file now
    /// `len` bytes long.
    fn of_scan(scan: &Scan, len: u64) -> Checked {
        Checked::new(
            len,
            scan.entries.len() as u64,
            StationLoad::of_scanned(scan.entries.iter().flat_map(|e| e.messages.iter())),
        )
    }
}

/// Checks every entry of the segment at `path`, reading it in chunks, and
/// gathers what recovery keeps of it, with its messages' sequences in a
/// sequencer of their own (merged only when the whole segment is good, so
/// that a damaged segment's sequences are taken from the whole-file scan as
/// before).
///
/// # Errors
/// [`WalError::Corrupt`] at the first damage, [`WalError::Io`].
fn walk_clean(path: &Path, expect: Expect) -> Result<(Checked, Sequencer), WalError> {
    let mut durable = Sequencer::default();
    let mut stations = SharedStations::default();
    let mut loads = BTreeMap::new();
    let walked = reader::walk(path, expect, |_, m, _| {
        let station = stations.get(m.station);
        durable.add_durable_seq(&station, m.seq);
        StationLoad::count(&mut loads, &station, m.payload().len() as u64, m.timestamp);
    })?;
    Ok((Checked::new(walked.len, walked.entries, loads), durable))
}

/// Cheap checks of a sealed segment the snapshot covers: its size is what was
/// sealed and its header is intact. `Ok(Some((offset, reason)))` on damage.
fn quick_check(
    path: &Path,
    wal_id: [u8; 16],
    id: SegmentId,
    bytes: u64,
) -> io::Result<Option<(u64, String)>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len != bytes {
        return Ok(Some((
            len.min(bytes),
            format!("file is {len} bytes, but {bytes} were sealed"),
        )));
    }
    let mut head = [0u8; HEADER_LEN];
    if let Err(e) = f.read_exact(&mut head) {
        return Ok(Some((0, format!("cannot read the header: {e}"))));
    }
    let check = SegmentHeader::parse(&head).and_then(|h| {
        if h.wal_id != wal_id {
            Err(segment::HeaderError::WrongWal {
                expected: uuid::Uuid::from_bytes(wal_id).simple().to_string(),
                found: uuid::Uuid::from_bytes(h.wal_id).simple().to_string(),
            })
        } else if h.id != id {
            Err(segment::HeaderError::WrongNumber {
                expected: id.0,
                found: h.id.0,
            })
        } else {
            Ok(h)
        }
    });
    Ok(check.err().map(|e| (0, e.to_string())))
}

/// Cuts a torn tail off, durably. A torn header is rewritten.
fn truncate_torn_tail(
    path: &Path,
    wal_id: [u8; 16],
    id: SegmentId,
    header_ok: bool,
    valid_end: u64,
) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    if header_ok {
        f.set_len(valid_end)?;
    } else {
        f.set_len(0)?;
        f.write_all(&SegmentHeader { wal_id, id }.encode())?;
    }
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Header, Message};
    use crate::wal::entry;
    use bytes::Bytes;

    const WAL: [u8; 16] = [9; 16];

    fn expect() -> Expect {
        Expect {
            wal_id: Some(WAL),
            id: SegmentId(4),
        }
    }

    /// A segment of `entries` entries, messages of three stations with gaps
    /// in their sequences, timestamps out of order and empty payloads.
    fn segment(entries: u64) -> Vec<u8> {
        let mut bytes = SegmentHeader {
            wal_id: WAL,
            id: SegmentId(4),
        }
        .encode()
        .to_vec();
        for e in 0..entries {
            let batch: Vec<Message> = (0..5)
                .map(|i| {
                    let n = e * 5 + i;
                    Message {
                        station: StationName::new(["a", "b", "orders"][(n % 3) as usize]).unwrap(),
                        seq: n * 2 + 1,
                        timestamp: Timestamp(1_000 - (n as i64 * 37) % 500),
                        id: (n % 2 == 0).then(|| format!("id-{n}")),
                        subject: Some("orders.created".into()),
                        headers: vec![Header::new("Content-Type", "json")],
                        payload: Bytes::from(vec![n as u8; (n * 13 % 40) as usize]),
                    }
                })
                .collect();
            bytes.extend(entry::encode(&batch).unwrap());
        }
        bytes
    }

    fn durable_of_scan(scan: &Scan) -> Sequencer {
        let mut seq = Sequencer::default();
        for e in &scan.entries {
            for m in &e.messages {
                seq.add_durable_seq(&m.station, m.seq);
            }
        }
        seq
    }

    #[test]
    fn a_clean_segment_walked_in_chunks_is_summed_up_as_scanned_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        for entries in [0, 1, 7] {
            let bytes = segment(entries);
            fs::write(&path, &bytes).unwrap();
            let scan = segment::scan(&bytes, expect());
            assert!(scan.damage.is_none());
            let (checked, durable) = walk_clean(&path, expect()).unwrap();
            assert_eq!(checked, Checked::of_scan(&scan, scan.len));
            assert_eq!(checked.entries, entries);
            assert_eq!(checked.messages, entries * 5);
            assert_eq!(durable.durable(), durable_of_scan(&scan).durable());
        }
    }

    #[test]
    fn a_damaged_segment_is_left_to_the_whole_file_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let clean = segment(3);
        // A torn tail, a flipped byte in the middle, a bad header.
        let mut flipped = clean.clone();
        flipped[clean.len() / 2] ^= 0x40;
        let mut header = clean.clone();
        header[3] ^= 1;
        for bytes in [clean[..clean.len() - 3].to_vec(), flipped, header] {
            fs::write(&path, &bytes).unwrap();
            let damage = segment::scan(&bytes, expect()).damage.unwrap();
            match walk_clean(&path, expect()) {
                Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, damage.offset),
                other => panic!("{other:?} where scan found {damage:?}"),
            }
        }
    }
}
