//! The sequence snapshot (`seqs.snapshot`): every durable `(station, seq)` of
//! the segments up to a given number, written at each seal.
//!
//! It lets [`super::Wal::open`] rebuild duplicate detection without reading
//! every segment (only those newer than the snapshot), and it is the only
//! place that remembers the sequences of segments already compacted and
//! deleted. It also keeps the summary of each sealed segment (so sealed
//! segments need not be read at open) and the next segment number (so numbers
//! are never reused). It is replaced atomically: written to
//! `seqs.snapshot.tmp`, fsynced, renamed over the old one, directory fsynced.
//!
//! # Format, version 1 (little endian)
//!
//! ```text
//! magic "STRASNAP" (8) | version u16 = 1 | reserved u16 = 0 | crc32 u32 of every byte after it
//! wal id (16) | through u64 (segments 1..=through are included) | next_segment u64
//! station_count u32, then per station:
//!     name_len u8 | name | range_count u32 | (start u64, end u64 inclusive) * range_count
//! segment_count u32, then per sealed segment still on disk:
//!     id u64 | bytes u64 | messages u64 | has_min_ts u8 | min_ts i64 (micros)
//! ```

use std::fs;
use std::io;
use std::path::Path;

use super::dedup::SeqSet;
use super::segment::{SealedSegment, SegmentId};
use crate::message::{StationName, Timestamp};

/// File name of the snapshot in the WAL directory.
pub(crate) const FILE_NAME: &str = "seqs.snapshot";
const MAGIC: [u8; 8] = *b"STRASNAP";
const VERSION: u16 = 1;

/// What a sealed segment holds, remembered so it need not be read at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub(crate) id: SegmentId,
    pub(crate) bytes: u64,
    pub(crate) messages: u64,
    pub(crate) min_timestamp: Option<Timestamp>,
}

impl From<&SealedSegment> for SegmentSummary {
    fn from(s: &SealedSegment) -> Self {
        SegmentSummary {
            id: s.id,
            bytes: s.bytes,
            messages: s.messages,
            min_timestamp: s.min_timestamp,
        }
    }
}

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) wal_id: [u8; 16],
    /// Segments `1..=through` are included (0: none).
    pub(crate) through: u64,
    /// The lowest segment number never used.
    pub(crate) next_segment: u64,
    pub(crate) stations: Vec<(StationName, SeqSet)>,
    pub(crate) segments: Vec<SegmentSummary>,
}

/// Encodes a snapshot from borrowed state (the sequencer's durable sets).
pub(crate) fn encode(
    wal_id: [u8; 16],
    through: u64,
    next_segment: u64,
    stations: &[(&StationName, &SeqSet)],
    segments: &[SegmentSummary],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + stations
            .iter()
            .map(|(n, s)| 5 + n.as_str().len() + 16 * s.range_count())
            .sum::<usize>()
            + 33 * segments.len(),
    );
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    out.extend_from_slice(&wal_id);
    out.extend_from_slice(&through.to_le_bytes());
    out.extend_from_slice(&next_segment.to_le_bytes());
    out.extend_from_slice(&(stations.len() as u32).to_le_bytes());
    for (name, set) in stations {
        out.push(name.as_str().len() as u8);
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(set.range_count() as u32).to_le_bytes());
        for (s, e) in set.ranges() {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
        }
    }
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for seg in segments {
        out.extend_from_slice(&seg.id.0.to_le_bytes());
        out.extend_from_slice(&seg.bytes.to_le_bytes());
        out.extend_from_slice(&seg.messages.to_le_bytes());
        out.push(u8::from(seg.min_timestamp.is_some()));
        out.extend_from_slice(&seg.min_timestamp.map_or(0, |t| t.0).to_le_bytes());
    }
    let crc = crc32fast::hash(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a snapshot; the error says what is wrong.
pub(crate) fn decode(buf: &[u8]) -> Result<Snapshot, String> {
    let mut r = Reader { buf, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a Strata sequence snapshot (bad magic)".into());
    }
    let version = u16::from_le_bytes(r.array()?);
    if version != VERSION {
        return Err(format!("snapshot version {version} is not supported"));
    }
    if r.take(2)? != [0, 0] {
        return Err("snapshot reserved bytes are not zero".into());
    }
    let stored = u32::from_le_bytes(r.array()?);
    if crc32fast::hash(&buf[16..]) != stored {
        return Err("snapshot CRC mismatch".into());
    }
    let wal_id = r.array()?;
    let through = r.u64()?;
    let next_segment = r.u64()?;
    let station_count = r.u32()?;
    let mut stations = Vec::new();
    for _ in 0..station_count {
        let len = r.array::<1>()?[0] as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .ok()
            .and_then(|s| StationName::new(s).ok())
            .ok_or("snapshot holds an invalid station name")?;
        let ranges = r.u32()?;
        let mut set = SeqSet::default();
        for _ in 0..ranges {
            let (s, e) = (r.u64()?, r.u64()?);
            if s > e {
                return Err(format!("snapshot range {s}..={e} is reversed"));
            }
            set.insert_range(s, e);
        }
        stations.push((name, set));
    }
    let segment_count = r.u32()?;
    let mut segments = Vec::new();
    for _ in 0..segment_count {
        let id = SegmentId(r.u64()?);
        let bytes = r.u64()?;
        let messages = r.u64()?;
        let has_min = r.array::<1>()?[0];
        let min = i64::from_le_bytes(r.array()?);
        segments.push(SegmentSummary {
            id,
            bytes,
            messages,
            min_timestamp: (has_min != 0).then_some(Timestamp(min)),
        });
    }
    if r.pos != buf.len() {
        return Err("trailing bytes after the snapshot".into());
    }
    Ok(Snapshot {
        wal_id,
        through,
        next_segment,
        stations,
        segments,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("snapshot ends early at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Reads the snapshot of `dir`; `Ok(None)` when there is none.
pub(crate) fn read(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(FILE_NAME)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the snapshot of `dir` atomically and durably.
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::fsio::write_atomic(&dir.join(FILE_NAME), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let a = StationName::new("a").unwrap();
        let mut set = SeqSet::default();
        set.insert_range(1, 10);
        set.insert_range(20, 20);
        let segs = vec![SegmentSummary {
            id: SegmentId(4),
            bytes: 100,
            messages: 3,
            min_timestamp: Some(Timestamp(-5)),
        }];
        let bytes = encode([1; 16], 4, 5, &[(&a, &set)], &segs);
        let snap = decode(&bytes).unwrap();
        assert_eq!(snap.through, 4);
        assert_eq!(snap.next_segment, 5);
        assert_eq!(snap.stations, vec![(a, set)]);
        assert_eq!(snap.segments, segs);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(decode(&b).is_err(), "flip at {i}");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i}");
        }
    }
}
