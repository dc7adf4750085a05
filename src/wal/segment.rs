//! Segment files: a fixed header followed by entries (see [`super::entry`]).
//!
//! # File names
//!
//! `wal-<20-digit segment number>.open` for the active segment and
//! `wal-<20-digit segment number>.seg` once sealed. The number is zero padded,
//! so listing order is segment order. Sealing is a rename made durable by a
//! directory fsync, so the state of every segment is visible in the listing.
//! Numbers start at 1 and are never reused, even after a segment is deleted.
//!
//! # Segment header, version 1
//!
//! All integers are little endian.
//!
//! ```text
//!  0          8         10         12                28              36        40
//!  +----------+---------+----------+-----------------+---------------+---------+---------
//!  |  magic   | version | reserved |     wal id      | segment number|  crc32  | entries…
//!  |"STRATAWL"| u16 = 1 |  u16 = 0 | 16 bytes (UUID) |      u64      |   u32   |
//!  +----------+---------+----------+-----------------+---------------+---------+---------
//! ```
//!
//! `crc32` (CRC-32/ISO-HDLC) covers bytes 0..36. The wal id ties the segment to
//! its directory (`wal.id`) and the number to its file name, so a file copied
//! from another WAL or renamed by hand is noticed rather than replayed.
//!
//! # Scanning
//!
//! [`scan`] reads a segment's bytes (no I/O) and returns its good entries, the
//! first damage if any, and whether that damage has the shape of an append cut
//! short by a crash (a *torn tail*: a partial last entry, a CRC mismatch in an
//! entry that ends exactly at the end of the file, or zeroes to the end) with
//! no good entry after it. Recovery may truncate a torn tail of the active
//! segment; any other damage sets the whole segment aside.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use super::entry::{self, DecodeError, SharedStations};
use crate::message::{Message, MessageView, StationName, Timestamp};

/// The eight bytes every segment file starts with.
pub const MAGIC: [u8; 8] = *b"STRATAWL";
/// The segment header version this code writes and reads.
pub const VERSION: u16 = 1;
/// Length of the segment header in bytes.
pub const HEADER_LEN: usize = 40;

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
        self.min_timestamp = min_timestamp(self.min_timestamp, other.min_timestamp);
    }

    /// Per station, what `messages` hold.
    pub fn of<'a>(
        messages: impl IntoIterator<Item = &'a Message>,
    ) -> BTreeMap<StationName, StationLoad> {
        Self::fold(
            messages
                .into_iter()
                .map(|m| (&m.station, m.payload.len() as u64, m.timestamp)),
        )
    }

    /// Per station, what the messages found by [`scan`] hold.
    pub fn of_scanned<'a>(
        messages: impl IntoIterator<Item = &'a ScannedMessage>,
    ) -> BTreeMap<StationName, StationLoad> {
        Self::fold(
            messages
                .into_iter()
                .map(|m| (&*m.station, m.payload_len, m.timestamp)),
        )
    }

    /// Per station, the loads of `(station, payload bytes, timestamp)`.
    fn fold<'a>(
        messages: impl Iterator<Item = (&'a StationName, u64, Timestamp)>,
    ) -> BTreeMap<StationName, StationLoad> {
        let mut loads: BTreeMap<StationName, StationLoad> = BTreeMap::new();
        for (station, payload_bytes, timestamp) in messages {
            Self::count(&mut loads, station, payload_bytes, timestamp);
        }
        loads
    }

    /// Adds one message of `station` (`payload_bytes` long, at `timestamp`)
    /// to the per-station `loads`.
    pub(crate) fn count(
        loads: &mut BTreeMap<StationName, StationLoad>,
        station: &StationName,
        payload_bytes: u64,
        timestamp: Timestamp,
    ) {
        let one = StationLoad {
            messages: 1,
            payload_bytes,
            min_timestamp: Some(timestamp),
        };
        // Looked up first: a name is cloned once per station, not per message.
        match loads.get_mut(station) {
            Some(load) => load.add(&one),
            None => {
                loads.insert(station.clone(), one);
            }
        }
    }
}

/// The earlier of two optional timestamps (either one when the other is unknown).
pub(crate) fn min_timestamp(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The segment being appended to: its open file and what it holds so far.
/// Recovery finds or creates it; the writer appends to it and seals it.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) id: SegmentId,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// File length (header included).
    pub(crate) len: u64,
    /// Entries made durable in it.
    pub(crate) entries: u64,
    /// Messages in those entries.
    pub(crate) messages: u64,
    pub(crate) min_timestamp: Option<Timestamp>,
    /// When the first entry was written: the segment's age counts from it.
    pub(crate) first_write: Option<Instant>,
}

impl ActiveSegment {
    /// A segment holding no entry yet, `len` bytes long (its header).
    pub(crate) fn empty(id: SegmentId, path: PathBuf, file: File, len: u64) -> ActiveSegment {
        ActiveSegment {
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

    /// Its description once sealed at `path`, with `stations` its per-station loads.
    pub(crate) fn sealed(
        &self,
        path: PathBuf,
        stations: BTreeMap<StationName, StationLoad>,
    ) -> SealedSegment {
        SealedSegment {
            id: self.id,
            path,
            bytes: self.len,
            messages: self.messages,
            min_timestamp: self.min_timestamp,
            stations: Some(stations),
        }
    }
}

/// Whether a segment is still being written or sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentState {
    /// The segment being appended to (`.open`).
    Active,
    /// A sealed segment waiting for the compactor (`.seg`).
    Sealed,
}

/// The file name of segment `id` in `state`.
pub fn file_name(id: SegmentId, state: SegmentState) -> String {
    match state {
        SegmentState::Active => format!("wal-{:020}.open", id.0),
        SegmentState::Sealed => format!("wal-{:020}.seg", id.0),
    }
}

/// Parses a segment file name; `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<(SegmentId, SegmentState)> {
    let rest = name.strip_prefix("wal-")?;
    let (digits, state) = if let Some(d) = rest.strip_suffix(".open") {
        (d, SegmentState::Active)
    } else {
        (rest.strip_suffix(".seg")?, SegmentState::Sealed)
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((SegmentId(digits.parse().ok()?), state))
}

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The id of the WAL directory the segment belongs to (UUID bytes).
    pub wal_id: [u8; 16],
    /// The segment number.
    pub id: SegmentId,
}

/// Why a segment header is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The file is shorter than a header.
    #[error("segment header is incomplete: {0} of 40 bytes")]
    Truncated(u64),
    /// The file does not start with [`MAGIC`].
    #[error("not a Strata WAL segment (bad magic)")]
    BadMagic,
    /// An unknown header version.
    #[error("segment format version {0} is not supported (this Strata reads version 1)")]
    UnsupportedVersion(u16),
    /// The header CRC does not match.
    #[error("segment header CRC mismatch")]
    CrcMismatch,
    /// The header belongs to another WAL directory.
    #[error("segment belongs to WAL {found}, not to this directory's WAL {expected}")]
    WrongWal {
        /// This directory's wal id.
        expected: String,
        /// The id in the header.
        found: String,
    },
    /// The header's number differs from the file name's.
    #[error("segment header says number {found}, the file name says {expected}")]
    WrongNumber {
        /// The number in the file name.
        expected: u64,
        /// The number in the header.
        found: u64,
    },
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[12..28].copy_from_slice(&self.wal_id);
        h[28..36].copy_from_slice(&self.id.0.to_le_bytes());
        let crc = crc32fast::hash(&h[0..36]);
        h[36..40].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Parses the header at the start of `buf`.
    ///
    /// # Errors
    /// A [`HeaderError`] saying what is wrong.
    pub fn parse(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Err(HeaderError::Truncated(buf.len() as u64));
        };
        if h[0..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let stored = u32::from_le_bytes([h[36], h[37], h[38], h[39]]);
        if crc32fast::hash(&h[0..36]) != stored || h[10..12] != [0, 0] {
            return Err(HeaderError::CrcMismatch);
        }
        let mut wal_id = [0u8; 16];
        wal_id.copy_from_slice(&h[12..28]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&h[28..36]);
        Ok(SegmentHeader {
            wal_id,
            id: SegmentId(u64::from_le_bytes(n)),
        })
    }
}

/// A message found by [`scan`]: what recovery and `strata wal inspect` need
/// of it (its strings and payload are checked, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedMessage {
    /// Its station (one shared name per station of the scan).
    pub station: Arc<StationName>,
    /// Its sequence.
    pub seq: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Length of its payload.
    pub payload_len: u64,
}

/// An entry found by [`scan`].
#[derive(Debug, Clone)]
pub struct ScannedEntry {
    /// Byte offset of the entry in the file.
    pub offset: u64,
    /// Length of the entry, header included.
    pub len: u64,
    /// Its messages, in order.
    pub messages: Vec<ScannedMessage>,
}

/// The first damage found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset in the file where the damage starts.
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
    /// Whether it has the shape of an append cut short by a crash, with
    /// nothing readable after it (see the module doc).
    pub torn_tail: bool,
}

/// The result of [`scan`].
#[derive(Debug, Clone)]
pub struct Scan {
    /// Length of the file.
    pub len: u64,
    /// The header, when valid.
    pub header: Option<SegmentHeader>,
    /// Good entries before the first damage, in file order.
    pub entries: Vec<ScannedEntry>,
    /// End of the last good entry (of the header when there is none; 0 when
    /// the header itself is damaged).
    pub valid_end: u64,
    /// The first damage, if any.
    pub damage: Option<Damage>,
    /// Good entries found after the damage by looking for the next entry magic.
    pub salvaged: Vec<ScannedEntry>,
}

impl Scan {
    /// Messages in the good entries before the damage.
    pub fn messages(&self) -> u64 {
        self.entries.iter().map(|e| e.messages.len() as u64).sum()
    }
}

/// What [`scan`] checks the header against.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// The directory's wal id, when known.
    pub wal_id: Option<[u8; 16]>,
    /// The number in the file name.
    pub id: SegmentId,
}

/// Scans a whole segment file's bytes. Never panics, whatever the bytes.
pub fn scan(bytes: &[u8], expect: Expect) -> Scan {
    let len = bytes.len() as u64;
    let mut scan = Scan {
        len,
        header: None,
        entries: Vec::new(),
        valid_end: 0,
        damage: None,
        salvaged: Vec::new(),
    };
    match check_header(bytes, expect) {
        Ok(h) => scan.header = Some(h),
        Err(e) => {
            // A header cut short or never written (zeroes) holds nothing: torn.
            let torn = matches!(e, HeaderError::Truncated(_)) || bytes.iter().all(|&b| b == 0);
            scan.damage = Some(Damage {
                offset: 0,
                reason: e.to_string(),
                torn_tail: torn,
            });
            return scan;
        }
    }
    let mut pos = HEADER_LEN;
    scan.valid_end = pos as u64;
    let mut stations = SharedStations::default();
    while pos < bytes.len() {
        match scan_entry(&bytes[pos..], &mut stations) {
            Ok((messages, elen)) => {
                scan.entries.push(ScannedEntry {
                    offset: pos as u64,
                    len: elen,
                    messages,
                });
                pos += elen as usize;
                scan.valid_end = pos as u64;
            }
            Err(e) => {
                scan.salvaged = salvage(bytes, pos + 1, &mut stations);
                let torn = scan.salvaged.is_empty() && is_torn_tail(bytes, pos, &e);
                scan.damage = Some(Damage {
                    offset: pos as u64,
                    reason: e.to_string(),
                    torn_tail: torn,
                });
                break;
            }
        }
    }
    scan
}

/// Parses the header at the start of `bytes` and checks it against `expect`.
pub(crate) fn check_header(bytes: &[u8], expect: Expect) -> Result<SegmentHeader, HeaderError> {
    let h = SegmentHeader::parse(bytes)?;
    if let Some(wal_id) = expect.wal_id {
        if wal_id != h.wal_id {
            return Err(HeaderError::WrongWal {
                expected: uuid::Uuid::from_bytes(wal_id).simple().to_string(),
                found: uuid::Uuid::from_bytes(h.wal_id).simple().to_string(),
            });
        }
    }
    if h.id != expect.id {
        return Err(HeaderError::WrongNumber {
            expected: expect.id.0,
            found: h.id.0,
        });
    }
    Ok(h)
}

/// Whether damage at `pos` looks like an interrupted last append.
fn is_torn_tail(bytes: &[u8], pos: usize, e: &DecodeError) -> bool {
    match e {
        DecodeError::Truncated { .. } => true,
        DecodeError::CrcMismatch { .. } => entry::EntryHeader::parse(&bytes[pos..])
            .is_ok_and(|h| pos as u64 + h.entry_len() == bytes.len() as u64),
        _ => bytes[pos..].iter().all(|&b| b == 0),
    }
}

/// Good entries after damage: looks for the next entry magic from `from`, then
/// reads entries one after another, looking again after each damaged one.
fn salvage(bytes: &[u8], from: usize, stations: &mut SharedStations) -> Vec<ScannedEntry> {
    let mut found = Vec::new();
    let mut pos = from;
    while let Some(at) = find_magic(bytes, pos) {
        match scan_entry(&bytes[at..], stations) {
            Ok((messages, elen)) => {
                found.push(ScannedEntry {
                    offset: at as u64,
                    len: elen,
                    messages,
                });
                pos = at + elen as usize;
            }
            Err(_) => pos = at + 1,
        }
    }
    found
}

/// Checks the entry at the start of `buf` as [`entry::decode`] does (the
/// same errors) and returns its messages as [`ScannedMessage`]s, and its
/// length. `stations` holds the names met so far, shared by their messages.
fn scan_entry(
    buf: &[u8],
    stations: &mut SharedStations,
) -> Result<(Vec<ScannedMessage>, u64), DecodeError> {
    let header = entry::check(buf)?;
    let len = header.entry_len();
    let mut messages = Vec::new();
    entry::walk_body(&buf[entry::HEADER_LEN..len as usize], |m, _| {
        let station = stations.get(m.station);
        messages.push(ScannedMessage {
            station,
            seq: m.seq,
            timestamp: m.timestamp,
            payload_len: m.payload().len() as u64,
        });
        Ok(())
    })?;
    Ok((messages, len))
}

fn find_magic(bytes: &[u8], from: usize) -> Option<usize> {
    let hay = bytes.get(from..)?;
    hay.windows(entry::MAGIC.len())
        .position(|w| w == entry::MAGIC)
        .map(|p| from + p)
}

pub(crate) use crate::fsio::sync_dir;

/// The calls the writer makes on the active segment's file. [`FileIo`] makes
/// them on the file system; tests put a wrapper in its place that fails them
/// on demand (a full disk, an fsync error), which a real disk will not do.
pub(crate) trait SegmentIo: Send + 'static {
    /// Writes some of `bufs` at the end of `file` (one `writev`); returns how
    /// many bytes it wrote.
    fn write_vectored(&mut self, file: &mut File, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Makes the data written so far durable (`fdatasync`): one per group commit.
    fn sync_data(&mut self, file: &File) -> io::Result<()>;
    /// Makes the data and the file's final size durable (`fsync`) before a seal.
    fn sync_all(&mut self, file: &File) -> io::Result<()>;
}

/// [`SegmentIo`] on the file system.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileIo;

impl SegmentIo for FileIo {
    fn write_vectored(&mut self, file: &mut File, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        file.write_vectored(bufs)
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&mut self, file: &File) -> io::Result<()> {
        file.sync_all()
    }
}

/// `write_all` for a list of buffers through `io` (one `writev` in the
/// common case).
pub(crate) fn write_all_vectored(
    io: &mut impl SegmentIo,
    file: &mut File,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !bufs.is_empty() {
        match io.write_vectored(file, bufs) {
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

/// Creates segment `id` as the active segment: writes its header, fsyncs the
/// file and the directory (so the new name survives a crash).
pub(crate) fn create(dir: &Path, wal_id: [u8; 16], id: SegmentId) -> io::Result<(File, PathBuf)> {
    let path = dir.join(file_name(id, SegmentState::Active));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(&SegmentHeader { wal_id, id }.encode())?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Renames active segment `id` to its sealed name and fsyncs the directory.
/// The caller has already made the file's data durable.
pub(crate) fn rename_sealed(dir: &Path, id: SegmentId) -> io::Result<PathBuf> {
    let from = dir.join(file_name(id, SegmentState::Active));
    let to = dir.join(file_name(id, SegmentState::Sealed));
    std::fs::rename(&from, &to)?;
    sync_dir(dir)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    const WAL: [u8; 16] = [7; 16];

    fn msg(seq: u64) -> Message {
        Message::for_test(seq, vec![b'x'; 20])
    }

    fn segment(entries: usize) -> (Vec<u8>, Vec<u64>) {
        let mut out = SegmentHeader {
            wal_id: WAL,
            id: SegmentId(3),
        }
        .encode()
        .to_vec();
        let mut ends = vec![out.len() as u64];
        for i in 0..entries {
            out.extend(entry::encode(&[msg(i as u64 * 2 + 1), msg(i as u64 * 2 + 2)]).unwrap());
            ends.push(out.len() as u64);
        }
        (out, ends)
    }

    fn expect() -> Expect {
        Expect {
            wal_id: Some(WAL),
            id: SegmentId(3),
        }
    }

    #[test]
    fn file_names_sort_in_segment_order_and_parse_back() {
        let a = file_name(SegmentId(9), SegmentState::Sealed);
        let b = file_name(SegmentId(10), SegmentState::Active);
        assert_eq!(a, "wal-00000000000000000009.seg");
        assert!(a < b);
        assert_eq!(
            parse_file_name(&b),
            Some((SegmentId(10), SegmentState::Active))
        );
        for bad in [
            "wal-1.seg",
            "wal-0000000000000000000x.seg",
            "seqs.snapshot",
            "x.seg",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let (bytes, ends) = segment(3);
        let s = scan(&Bytes::from(bytes), expect());
        assert!(s.damage.is_none());
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.valid_end, *ends.last().unwrap());
        assert_eq!(s.messages(), 6);
    }

    #[test]
    fn every_cut_of_the_last_entry_is_a_torn_tail() {
        let (bytes, ends) = segment(3);
        for cut in ends[2] + 1..ends[3] {
            let s = scan(&Bytes::copy_from_slice(&bytes[..cut as usize]), expect());
            let d = s.damage.expect("damage");
            assert!(d.torn_tail, "cut {cut}: {d:?}");
            assert_eq!(d.offset, ends[2]);
            assert_eq!(s.entries.len(), 2);
            assert_eq!(s.valid_end, ends[2]);
        }
    }

    #[test]
    fn a_crc_mismatch_in_the_last_entry_is_torn_but_in_the_middle_is_not() {
        let (mut bytes, ends) = segment(3);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let s = scan(&Bytes::from(bytes), expect());
        assert!(s.damage.unwrap().torn_tail);

        let (mut bytes, ends2) = segment(3);
        assert_eq!(ends, ends2);
        bytes[ends[1] as usize + 20] ^= 1;
        let s = scan(&Bytes::from(bytes), expect());
        let d = s.damage.unwrap();
        assert!(!d.torn_tail);
        assert_eq!(d.offset, ends[1]);
        assert_eq!(s.entries.len(), 1);
        // The entry after the damage is still found.
        assert_eq!(s.salvaged.len(), 1);
        assert_eq!(s.salvaged[0].offset, ends[2]);
    }

    #[test]
    fn a_length_grown_by_a_bit_flip_mid_file_is_not_torn() {
        let (mut bytes, ends) = segment(3);
        // The top byte of the first entry's body length: it now runs past the end.
        bytes[ends[0] as usize + 11] ^= 0x40;
        let s = scan(&Bytes::from(bytes), expect());
        let d = s.damage.unwrap();
        assert!(!d.torn_tail, "{d:?}");
        assert_eq!(s.salvaged.len(), 2);
    }

    #[test]
    fn zeroes_after_the_last_entry_are_torn() {
        let (mut bytes, ends) = segment(2);
        bytes.extend([0u8; 100]);
        let s = scan(&Bytes::from(bytes), expect());
        let d = s.damage.unwrap();
        assert!(d.torn_tail);
        assert_eq!(d.offset, ends[2]);
    }

    #[test]
    fn header_problems_are_reported() {
        let (bytes, _) = segment(1);
        let s = scan(&Bytes::copy_from_slice(&bytes[..10]), expect());
        assert!(s.damage.unwrap().torn_tail);
        let s = scan(&Bytes::from(vec![0u8; 64]), expect());
        assert!(s.damage.unwrap().torn_tail);
        let other = Expect {
            wal_id: Some([1; 16]),
            id: SegmentId(3),
        };
        let s = scan(&Bytes::from(bytes.clone()), other);
        let d = s.damage.unwrap();
        assert!(!d.torn_tail);
        assert!(d.reason.contains("belongs to WAL"), "{}", d.reason);
        let renamed = Expect {
            wal_id: Some(WAL),
            id: SegmentId(4),
        };
        assert!(!scan(&Bytes::from(bytes), renamed).damage.unwrap().torn_tail);
    }

    proptest! {
        #[test]
        fn scan_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), keep_header in any::<bool>()) {
            let mut b = if keep_header { segment(0).0 } else { vec![] };
            b.extend(bytes);
            let _ = scan(&Bytes::from(b), expect());
        }

        #[test]
        fn a_flipped_bit_is_always_found(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (mut bytes, _) = segment(3);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let s = scan(&Bytes::from(bytes), expect());
            prop_assert!(s.damage.is_some());
        }
    }
}
