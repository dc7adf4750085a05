//! `strata wal inspect`: a read-only report over a WAL directory.
//!
//! It takes no lock and writes nothing, so it works while `strata run` owns the
//! WAL; the active segment may then end in an append still being written,
//! which the report calls an incomplete last entry rather than damage.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::directory::{list_segments, list_set_aside, WAL_ID_FILE};
use super::error::WalError;
use super::segment::{self, Expect, SegmentId, SegmentState};
use super::snapshot;
use crate::message::StationName;

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

/// One live segment in an [`InspectReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment number.
    pub id: SegmentId,
    /// The file name.
    pub file: String,
    /// Active or sealed.
    pub state: SegmentState,
    /// File size.
    pub bytes: u64,
    /// Good entries before any damage.
    pub entries: u64,
    /// Messages in those entries.
    pub messages: u64,
    /// `None` when every entry's CRC checks; else the byte offset of the first damage.
    pub first_bad_offset: Option<u64>,
    /// What is wrong at `first_bad_offset`.
    pub problem: Option<String>,
    /// Good entries found after the damage (by looking for the next entry magic).
    pub entries_after_damage: u64,
}

/// One segment in `<dir>/corrupt/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAsideReport {
    /// The file name in `corrupt/`.
    pub file: String,
    /// File size.
    pub bytes: u64,
    /// The recorded reason (first line of its `.reason` file), if any.
    pub reason: Option<String>,
}

/// Totals over the live segments of an [`InspectReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectTotals {
    /// Live segment files.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Good entries.
    pub entries: u64,
    /// Messages in good entries.
    pub messages: u64,
    /// Live segments with damage (an incomplete last entry of the active one excluded).
    pub damaged: u64,
    /// Segments in `corrupt/`.
    pub set_aside: u64,
}

/// Result of [`inspect`]: a read-only report over a WAL directory.
#[derive(Debug, Clone, Default)]
pub struct InspectReport {
    /// The directory.
    pub dir: PathBuf,
    /// Contents of `wal.id`, if readable.
    pub wal_id: Option<String>,
    /// Segments `1..=n` whose sequences the snapshot holds; `None` without one.
    pub snapshot_through: Option<u64>,
    /// Stations the snapshot remembers sequences for (including compacted ones).
    pub snapshot_stations: usize,
    /// Live segments in order.
    pub segments: Vec<SegmentReport>,
    /// Per station, over the good entries of the live segments, by name.
    pub stations: BTreeMap<StationName, StationStats>,
    /// Segments set aside in `corrupt/`.
    pub set_aside: Vec<SetAsideReport>,
    /// Totals.
    pub totals: InspectTotals,
}

/// Reads every segment of `dir` (without taking the lock) and checks every CRC.
///
/// # Errors
/// [`WalError::Io`] when the directory or a file cannot be read.
pub fn inspect(dir: &Path) -> Result<InspectReport, WalError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::Io { path, source }
    };
    let mut report = InspectReport {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    report.wal_id = fs::read_to_string(dir.join(WAL_ID_FILE))
        .ok()
        .map(|s| s.trim().to_string());
    let wal_id_bytes = report
        .wal_id
        .as_deref()
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
        .map(|u| *u.as_bytes());
    if let Ok(Some(bytes)) = snapshot::read(dir) {
        if let Ok(s) = snapshot::decode(&bytes) {
            report.snapshot_through = Some(s.through);
            report.snapshot_stations = s.stations.len();
        }
    }
    let listed = list_segments(dir).map_err(io(dir))?;
    let last = listed.len().checked_sub(1);
    for (i, l) in listed.into_iter().enumerate() {
        let bytes = match fs::read(&l.path) {
            Ok(b) => Bytes::from(b),
            // Sealed and compacted between the listing and now: not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&l.path)(e)),
        };
        let scan = segment::scan(
            &bytes,
            Expect {
                wal_id: wal_id_bytes,
                id: l.id,
            },
        );
        for m in scan.entries.iter().flat_map(|e| &e.messages) {
            let s = match report.stations.get_mut(&*m.station) {
                Some(s) => s,
                None => report
                    .stations
                    .entry(StationName::clone(&m.station))
                    .or_default(),
            };
            s.messages += 1;
            s.bytes += m.payload_len;
            s.first_seq = Some(s.first_seq.map_or(m.seq, |f| f.min(m.seq)));
            s.last_seq = Some(s.last_seq.map_or(m.seq, |f| f.max(m.seq)));
        }
        let in_progress = Some(i) == last
            && l.state == SegmentState::Active
            && scan.damage.as_ref().is_some_and(|d| d.torn_tail);
        let (first_bad_offset, problem) = match &scan.damage {
            None => (None, None),
            Some(d) if in_progress => (
                Some(d.offset),
                Some(format!(
                    "incomplete last entry (an append in progress, or a torn tail that \
                     recovery will truncate): {}",
                    d.reason
                )),
            ),
            Some(d) => (Some(d.offset), Some(d.reason.clone())),
        };
        let seg = SegmentReport {
            id: l.id,
            file: file_name(&l.path),
            state: l.state,
            bytes: scan.len,
            entries: scan.entries.len() as u64,
            messages: scan.messages(),
            first_bad_offset,
            problem,
            entries_after_damage: scan.salvaged.len() as u64,
        };
        let t = &mut report.totals;
        t.segments += 1;
        t.bytes += seg.bytes;
        t.entries += seg.entries;
        t.messages += seg.messages;
        t.damaged += u64::from(scan.damage.is_some() && !in_progress);
        report.segments.push(seg);
    }
    for (path, _) in list_set_aside(dir).map_err(io(dir))? {
        let mut note = path.clone().into_os_string();
        note.push(".reason");
        report.set_aside.push(SetAsideReport {
            file: file_name(&path),
            bytes: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            reason: fs::read_to_string(&note)
                .ok()
                .and_then(|r| r.lines().next().map(str::to_string)),
        });
    }
    report.totals.set_aside = report.set_aside.len() as u64;
    Ok(report)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "WAL {}", self.dir.display())?;
        writeln!(
            f,
            "  id: {}",
            self.wal_id.as_deref().unwrap_or("(no wal.id)")
        )?;
        match self.snapshot_through {
            Some(n) => writeln!(
                f,
                "  sequence snapshot: segments 1..={n}, {} station(s)",
                self.snapshot_stations
            )?,
            None => writeln!(f, "  sequence snapshot: none")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<30} {:<7} {:>12} {:>8} {:>10}  crc",
            "segment", "state", "bytes", "entries", "messages"
        )?;
        for s in &self.segments {
            let state = match s.state {
                SegmentState::Active => "active",
                SegmentState::Sealed => "sealed",
            };
            let after = match s.entries_after_damage {
                0 => String::new(),
                n => format!(" ({n} readable entries after it)"),
            };
            let crc = match (&s.first_bad_offset, &s.problem) {
                (None, _) => "ok".to_string(),
                (Some(o), Some(p)) => format!("bad at byte {o}: {p}{after}"),
                (Some(o), None) => format!("bad at byte {o}{after}"),
            };
            writeln!(
                f,
                "{:<30} {:<7} {:>12} {:>8} {:>10}  {crc}",
                s.file, state, s.bytes, s.entries, s.messages
            )?;
        }
        if self.segments.is_empty() {
            writeln!(f, "(no segments)")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<30} {:>10} {:>14} {:>12} {:>12}",
            "station", "messages", "payload bytes", "first seq", "last seq"
        )?;
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        for (name, s) in &self.stations {
            writeln!(
                f,
                "{:<30} {:>10} {:>14} {:>12} {:>12}",
                name.as_str(),
                s.messages,
                s.bytes,
                opt(s.first_seq),
                opt(s.last_seq)
            )?;
        }
        if self.stations.is_empty() {
            writeln!(f, "(no messages)")?;
        }
        if !self.set_aside.is_empty() {
            writeln!(f)?;
            writeln!(f, "set aside in {}/corrupt/:", self.dir.display())?;
            for s in &self.set_aside {
                writeln!(
                    f,
                    "  {:<32} {:>12} bytes  {}",
                    s.file,
                    s.bytes,
                    s.reason.as_deref().unwrap_or("(no reason recorded)")
                )?;
            }
        }
        let t = &self.totals;
        writeln!(f)?;
        write!(
            f,
            "total: {} segment(s), {} bytes, {} entries, {} messages, {} damaged, {} set aside",
            t.segments, t.bytes, t.entries, t.messages, t.damaged, t.set_aside
        )
    }
}
