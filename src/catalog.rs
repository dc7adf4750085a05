//! What the archive holds, for `strata ls`: each station's partitions (UTC date
//! and hour) and files with rows, seq ranges and sizes, plus the seqs the
//! archive is missing.
//!
//! Rows come from the commit records (`_strata/commits/*.json`) when a file is
//! listed in one, else from the file's Parquet footer (a ranged read of its
//! tail). A file in no commit record is marked *uncommitted*: an upload whose
//! segment was not committed yet, which the next compaction rewrites in place.
//!
//! Files a tier-2 merge replaced ([`crate::replacements`]) are not counted:
//! their merged file is, rows from its replacement record. While they are
//! still stored they are listed apart, as pending deletes.
//!
//! Gaps: per station, file seq ranges are merged into runs. Seqs between two
//! runs are missing for certain (an exact gap). Inside a run, fewer rows than
//! seqs means some seqs are missing somewhere in it (an inexact gap, since a
//! file's range may also skip seqs that sit in another hour's file); more rows
//! than seqs means some seqs are stored twice (an overlap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use serde::{Serialize, Serializer};

use crate::display::human_bytes;
use crate::identity::ledger::{Ledger, LedgerError};
use crate::identity::{GapRecord, IncarnationRecord};
use crate::layout::{self, CommitRecord, CommittedFile, DataKey, Hour};
use crate::message::StationName;
use crate::replacements::{self, Fetch, Replacements};
use crate::store::{Archive, StoreError};

/// Store requests in flight while listing (commit records, footers).
const CONCURRENCY: usize = 16;

/// Errors listing the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Listing or reading an object failed.
    #[error("cannot list the archive: {0}")]
    Store(#[from] Box<StoreError>),
    /// The identity ledger could not be read.
    #[error("cannot read the archive's identity records: {0}")]
    Ledger(#[from] LedgerError),
    /// A data file's footer could not be read.
    #[error("cannot read the Parquet footer of {key}: {source}; the file may be damaged, check it with `parquet-tools meta` or DuckDB")]
    Footer {
        /// The object.
        key: String,
        /// What the Parquet reader said.
        source: parquet::errors::ParquetError,
    },
}

/// Where a file's row count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    /// A commit record lists the file.
    CommitRecord,
    /// A tier-2 replacement record names it as its merged file.
    ReplacementRecord,
    /// No commit record lists it; its Parquet footer was read.
    Footer,
}

/// One data file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchivedFile {
    /// The object key.
    pub key: String,
    /// First seq in the file.
    pub first_seq: u64,
    /// Last seq in the file.
    pub last_seq: u64,
    /// Messages in the file.
    pub rows: u64,
    /// Object size.
    pub bytes: u64,
    /// Where `rows` came from; [`RowSource::Footer`] also means the file is
    /// not (yet) in any commit record.
    pub rows_from: RowSource,
}

impl ArchivedFile {
    /// Whether a commit record (or a replacement record, for a merged file)
    /// lists the file.
    pub fn committed(&self) -> bool {
        self.rows_from != RowSource::Footer
    }
}

/// One `station=/date=/hour=` partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// UTC date.
    pub date: NaiveDate,
    /// UTC hour, 0–23.
    pub hour: u8,
    /// Its files in seq order.
    pub files: Vec<ArchivedFile>,
}

/// Seqs missing from a station's archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First seq of the range concerned.
    pub from_seq: u64,
    /// Last seq of the range concerned.
    pub to_seq: u64,
    /// Seqs missing in the range.
    pub missing: u64,
    /// True: every seq of the range is missing. False: `missing` seqs are
    /// missing somewhere inside it.
    pub exact: bool,
}

/// Seqs stored more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// First seq of the range concerned.
    pub from_seq: u64,
    /// Last seq of the range concerned.
    pub to_seq: u64,
    /// Rows beyond one per seq.
    pub extra_rows: u64,
}

/// A file a tier-2 merge replaced, still stored until its grace has passed;
/// its rows are counted in its merged file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingDelete {
    /// The replaced file (full key).
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// The stored file that holds its rows (full key).
    pub merged: String,
    /// When tier-2 compaction may delete it (RFC 3339; empty when unknown).
    pub delete_after: String,
}

/// One station's part of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationListing {
    /// The station.
    #[serde(serialize_with = "as_display")]
    pub station: StationName,
    /// Partitions in time order.
    pub partitions: Vec<Partition>,
    /// Seqs missing between the first and the last archived seq.
    pub gaps: Vec<Gap>,
    /// Seqs stored more than once.
    pub overlaps: Vec<Overlap>,
    /// The stream incarnations recorded for the station (identity ledger).
    pub incarnations: Vec<IncarnationRecord>,
    /// Gaps recorded by the NATS source: messages the stream expelled
    /// before Strata read them.
    pub lost: Vec<GapRecord>,
    /// Replaced files still stored (not in `partitions`, rows, gaps or overlaps).
    pub pending_deletes: Vec<PendingDelete>,
}

impl StationListing {
    /// Every file of the station.
    pub fn files(&self) -> impl Iterator<Item = &ArchivedFile> {
        self.partitions.iter().flat_map(|p| p.files.iter())
    }
    /// Rows over all files.
    pub fn rows(&self) -> u64 {
        self.files().map(|f| f.rows).sum()
    }
    /// Bytes over all files.
    pub fn bytes(&self) -> u64 {
        self.files().map(|f| f.bytes).sum()
    }
    /// Lowest and highest archived seq.
    pub fn seq_range(&self) -> Option<(u64, u64)> {
        let first = self.files().map(|f| f.first_seq).min()?;
        let last = self.files().map(|f| f.last_seq).max()?;
        Some((first, last))
    }
}

/// The archive's content, station by station.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The archive's URL.
    pub url: String,
    /// Stations in name order.
    pub stations: Vec<StationListing>,
}

fn as_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Lists the archive, or one station of it.
///
/// # Errors
/// A failed listing or read, or a data file whose footer cannot be read.
pub async fn list(
    archive: &Archive,
    station: Option<&StationName>,
) -> Result<Listing, CatalogError> {
    let data_prefix = station.map(layout::station_prefix);
    let objects = archive
        .list_all(data_prefix.as_ref())
        .await
        .map_err(Box::new)?;
    let data: Vec<(DataKey, ObjectMeta)> = objects
        .into_iter()
        .filter_map(|meta| DataKey::parse(&meta.location).map(|k| (k, meta)))
        .collect();
    let committed = committed_files(archive).await?;
    let stored: BTreeSet<DataKey> = data.iter().map(|(k, _)| k.clone()).collect();
    let index = replacements::load(archive, station, &stored, Fetch::All)
        .await
        .map_err(Box::new)?;
    let (data, pending) = split_replaced(archive, data, &stored, &index);

    let files: Vec<(DataKey, ArchivedFile)> = futures::stream::iter(data)
        .map(|(key, meta)| {
            // Commit records and the listing show the full key, prefix included.
            let full = archive.key(&meta.location).to_string();
            let recorded = match (committed.get(&full), index.record(&key)) {
                (Some(f), _) => Some((f.rows, RowSource::CommitRecord)),
                (None, Some(r)) => Some((r.record.merged.rows, RowSource::ReplacementRecord)),
                (None, None) => None,
            };
            async move {
                let (rows, rows_from) = match recorded {
                    Some(found) => found,
                    None => (footer_rows(archive, &meta).await?, RowSource::Footer),
                };
                let file = ArchivedFile {
                    key: full,
                    first_seq: key.first_seq,
                    last_seq: key.last_seq,
                    rows,
                    bytes: meta.size,
                    rows_from,
                };
                Ok::<_, CatalogError>((key, file))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut stations = group(files);
    for (station_name, p) in pending {
        match stations.iter_mut().find(|s| s.station == station_name) {
            Some(s) => s.pending_deletes.push(p),
            None => stations.push(StationListing {
                station: station_name,
                partitions: Vec::new(),
                gaps: Vec::new(),
                overlaps: Vec::new(),
                incarnations: Vec::new(),
                lost: Vec::new(),
                pending_deletes: vec![p],
            }),
        }
    }
    let ledger = Ledger::new(archive.clone());
    for listing in &mut stations {
        listing.incarnations = ledger.incarnations(&listing.station).await?;
        listing.lost = ledger.gaps(&listing.station).await?;
    }
    // Stations known only from the ledger (e.g. everything they had was lost).
    for name in ledger_stations(archive, station).await? {
        if stations.iter().any(|s| s.station == name) {
            continue;
        }
        let incarnations = ledger.incarnations(&name).await?;
        let lost = ledger.gaps(&name).await?;
        stations.push(StationListing {
            station: name,
            partitions: Vec::new(),
            gaps: Vec::new(),
            overlaps: Vec::new(),
            incarnations,
            lost,
            pending_deletes: Vec::new(),
        });
    }
    stations.sort_by(|a, b| a.station.cmp(&b.station));
    Ok(Listing {
        url: archive.url().to_string(),
        stations,
    })
}

/// Stations with identity records (`_strata/stations/<station>/`).
async fn ledger_stations(
    archive: &Archive,
    only: Option<&StationName>,
) -> Result<Vec<StationName>, CatalogError> {
    let found = archive
        .list_with_delimiter(&layout::ledgers_prefix())
        .await
        .map_err(Box::new)?;
    Ok(found
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(|n| StationName::new(n).ok()))
        .filter(|n| only.is_none_or(|o| o == n))
        .collect())
}

/// Stored data files with their listing entries.
type Listed = Vec<(DataKey, ObjectMeta)>;

/// Splits the stored data files into those read and those a stored merged
/// file replaced (pending deletes, with their station).
fn split_replaced(
    archive: &Archive,
    data: Listed,
    stored: &BTreeSet<DataKey>,
    index: &Replacements,
) -> (Listed, Vec<(StationName, PendingDelete)>) {
    let mut live = Vec::new();
    let mut pending = Vec::new();
    for (key, meta) in data {
        match index.covering(&key, |k| stored.contains(k)) {
            None => live.push((key, meta)),
            Some(merged) => {
                let delete_after = index
                    .records()
                    .find(|r| r.replaced.contains(&key))
                    .map(|r| r.record.delete_after.clone())
                    .unwrap_or_default();
                pending.push((
                    key.station.clone(),
                    PendingDelete {
                        key: archive.key(&meta.location).to_string(),
                        bytes: meta.size,
                        merged: archive.key(&merged.path()).to_string(),
                        delete_after,
                    },
                ));
            }
        }
    }
    (live, pending)
}

/// Files listed in commit records, by full key.
async fn committed_files(
    archive: &Archive,
) -> Result<HashMap<String, CommittedFile>, CatalogError> {
    let records = archive
        .list_all(Some(&layout::commits_prefix()))
        .await
        .map_err(Box::new)?;
    let records: Vec<Option<CommitRecord>> = futures::stream::iter(records)
        .filter(|m| {
            let ours = layout::parse_commit_record_path(&m.location).is_some();
            futures::future::ready(ours)
        })
        .map(|meta| async move {
            let bytes = archive.get(&meta.location).await.map_err(Box::new)?;
            Ok::<_, CatalogError>(match CommitRecord::from_json(&bytes) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(key = %archive.key(&meta.location), error = %e,
                        "unreadable commit record ignored; its files' rows come from their footers");
                    None
                }
            })
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(records
        .into_iter()
        .flatten()
        .flat_map(|r| r.files)
        .map(|f| (f.key.clone(), f))
        .collect())
}

/// Row count from a data file's footer.
async fn footer_rows(archive: &Archive, meta: &ObjectMeta) -> Result<u64, CatalogError> {
    let mut reader = ParquetObjectReader::new(Arc::clone(archive.store()), meta.location.clone())
        .with_file_size(meta.size);
    let footer = reader
        .get_metadata(None)
        .await
        .map_err(|source| CatalogError::Footer {
            key: archive.key(&meta.location).to_string(),
            source,
        })?;
    Ok(u64::try_from(footer.file_metadata().num_rows()).unwrap_or(0))
}

/// Files grouped by station and partition, with each station's gaps.
fn group(files: Vec<(DataKey, ArchivedFile)>) -> Vec<StationListing> {
    let mut by_station: BTreeMap<StationName, BTreeMap<Hour, Vec<ArchivedFile>>> = BTreeMap::new();
    for (key, file) in files {
        by_station
            .entry(key.station)
            .or_default()
            .entry(key.hour)
            .or_default()
            .push(file);
    }
    by_station
        .into_iter()
        .map(|(station, hours)| {
            let partitions: Vec<Partition> = hours
                .into_iter()
                .map(|(hour, mut files)| {
                    files.sort_by_key(|f| (f.first_seq, f.last_seq));
                    Partition {
                        date: hour.date,
                        hour: hour.hour,
                        files,
                    }
                })
                .collect();
            let ranges: Vec<(u64, u64, u64)> = partitions
                .iter()
                .flat_map(|p| p.files.iter())
                .map(|f| (f.first_seq, f.last_seq, f.rows))
                .collect();
            let (gaps, overlaps) = seq_coverage(ranges);
            StationListing {
                station,
                partitions,
                gaps,
                overlaps,
                incarnations: Vec::new(),
                lost: Vec::new(),
                pending_deletes: Vec::new(),
            }
        })
        .collect()
}

/// Gaps and overlaps of a station given its files' `(first_seq, last_seq, rows)`.
pub fn seq_coverage(mut ranges: Vec<(u64, u64, u64)>) -> (Vec<Gap>, Vec<Overlap>) {
    ranges.sort_unstable();
    let mut gaps = Vec::new();
    let mut overlaps = Vec::new();
    let mut close = |from: u64, to: u64, rows: u64| {
        let span = to - from + 1;
        if rows < span {
            gaps.push(Gap {
                from_seq: from,
                to_seq: to,
                missing: span - rows,
                exact: false,
            });
        } else if rows > span {
            overlaps.push(Overlap {
                from_seq: from,
                to_seq: to,
                extra_rows: rows - span,
            });
        }
    };
    let mut between = Vec::new();
    let mut run: Option<(u64, u64, u64)> = None;
    for (first, last, rows) in ranges {
        run = match run {
            Some((from, to, n)) if first <= to.saturating_add(1) => {
                Some((from, to.max(last), n + rows))
            }
            Some((from, to, n)) => {
                close(from, to, n);
                between.push(Gap {
                    from_seq: to + 1,
                    to_seq: first - 1,
                    missing: first - 1 - to,
                    exact: true,
                });
                Some((first, last, rows))
            }
            None => Some((first, last, rows)),
        };
    }
    if let Some((from, to, n)) = run {
        close(from, to, n);
    }
    gaps.extend(between);
    gaps.sort_by_key(|g| (g.from_seq, g.to_seq));
    (gaps, overlaps)
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stations.is_empty() {
            return writeln!(f, "{}: no archived messages", self.url);
        }
        let mut uncommitted = false;
        for (i, s) in self.stations.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let seqs = s
                .seq_range()
                .map_or(String::new(), |(a, b)| format!(", seq {a}-{b}"));
            writeln!(
                f,
                "station {}: {} file(s), {} rows, {}{seqs}",
                s.station,
                s.files().count(),
                s.rows(),
                human_bytes(s.bytes())
            )?;
            writeln!(
                f,
                "  {:<10}  {:>4}  {:>41}  {:>10}  {:>10}",
                "date", "hour", "seqs", "rows", "bytes"
            )?;
            for p in &s.partitions {
                for file in &p.files {
                    let mark = if file.committed() {
                        " "
                    } else {
                        uncommitted = true;
                        "*"
                    };
                    writeln!(
                        f,
                        "  {:<10}  {:>4}  {:>41}  {:>10}  {:>10}{mark}",
                        p.date.to_string(),
                        format!("{:02}", p.hour),
                        format!("{}-{}", file.first_seq, file.last_seq),
                        file.rows,
                        human_bytes(file.bytes)
                    )?;
                }
            }
            for inc in &s.incarnations {
                writeln!(
                    f,
                    "  INCARNATION {}: stream created {}, archived as seq = {} + stream seq \
                     (seqs from {}), first seen {}",
                    inc.incarnation,
                    inc.stream_created,
                    inc.seq_offset,
                    inc.seq_offset + 1,
                    inc.detected_at
                )?;
            }
            for g in &s.lost {
                writeln!(
                    f,
                    "  LOST UPSTREAM: seqs {}-{} ({} messages; stream seqs {}-{} of incarnation {}) \
                     were expelled by the stream before Strata read them; detected {}",
                    g.first_seq,
                    g.last_seq,
                    g.messages,
                    g.first_stream_seq,
                    g.last_stream_seq,
                    g.incarnation,
                    g.detected_at
                )?;
            }
            for g in &s.gaps {
                let recorded = s
                    .lost
                    .iter()
                    .any(|l| l.first_seq <= g.from_seq && g.to_seq <= l.last_seq);
                if recorded {
                    continue;
                }
                if g.exact {
                    writeln!(
                        f,
                        "  GAP: seqs {}-{} are missing ({} messages)",
                        g.from_seq, g.to_seq, g.missing
                    )?;
                } else {
                    writeln!(
                        f,
                        "  GAP: {} seq(s) missing somewhere in {}-{}",
                        g.missing, g.from_seq, g.to_seq
                    )?;
                }
            }
            let mut by_merged: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
            for p in &s.pending_deletes {
                let e = by_merged
                    .entry((p.merged.as_str(), p.delete_after.as_str()))
                    .or_default();
                e.0 += 1;
                e.1 += p.bytes;
            }
            for ((merged, after), (files, bytes)) in by_merged {
                let when = if after.is_empty() {
                    String::new()
                } else {
                    format!(", deleted by tier-2 compaction after {after}")
                };
                writeln!(
                    f,
                    "  PENDING DELETE: {files} replaced file(s), {}, rows held by {merged}{when}",
                    human_bytes(bytes)
                )?;
            }
            for o in &s.overlaps {
                writeln!(
                    f,
                    "  OVERLAP: {} row(s) more than seqs in {}-{}: some messages are stored twice",
                    o.extra_rows, o.from_seq, o.to_seq
                )?;
            }
        }
        if uncommitted {
            writeln!(
                f,
                "\n* not in a commit record: its segment's compaction (or tier-2 merge) has not \
                 committed yet (in progress or interrupted; the next run rewrites the same file)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_files_have_no_gap() {
        let (gaps, overlaps) = seq_coverage(vec![(11, 20, 10), (1, 10, 10), (21, 21, 1)]);
        assert!(gaps.is_empty(), "{gaps:?}");
        assert!(overlaps.is_empty(), "{overlaps:?}");
    }

    #[test]
    fn seqs_between_files_are_an_exact_gap() {
        let (gaps, _) = seq_coverage(vec![(1, 10, 10), (15, 20, 6), (30, 30, 1)]);
        assert_eq!(
            gaps,
            vec![
                Gap {
                    from_seq: 11,
                    to_seq: 14,
                    missing: 4,
                    exact: true
                },
                Gap {
                    from_seq: 21,
                    to_seq: 29,
                    missing: 9,
                    exact: true
                },
            ]
        );
    }

    #[test]
    fn interleaved_hours_are_whole_but_holes_inside_are_counted() {
        // Hour 10 holds 5 and 7, hour 9 holds 6: whole.
        let (gaps, overlaps) = seq_coverage(vec![(5, 7, 2), (6, 6, 1)]);
        assert!(
            gaps.is_empty() && overlaps.is_empty(),
            "{gaps:?} {overlaps:?}"
        );
        // A file 1-10 holding 8 rows: 2 seqs missing inside.
        let (gaps, _) = seq_coverage(vec![(1, 10, 8)]);
        assert_eq!(
            gaps,
            vec![Gap {
                from_seq: 1,
                to_seq: 10,
                missing: 2,
                exact: false
            }]
        );
    }

    #[test]
    fn overlapping_copies_are_reported() {
        let (gaps, overlaps) = seq_coverage(vec![(1, 10, 10), (5, 12, 8)]);
        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(
            overlaps,
            vec![Overlap {
                from_seq: 1,
                to_seq: 12,
                extra_rows: 6
            }]
        );
    }

    #[test]
    fn display_marks_gaps_and_uncommitted_files() {
        let station = StationName::new("orders").expect("valid");
        let file = |first, last, rows, from| ArchivedFile {
            key: format!("station=orders/date=2026-11-24/hour=10/{first}-{last}.parquet"),
            first_seq: first,
            last_seq: last,
            rows,
            bytes: 4096,
            rows_from: from,
        };
        let listing = Listing {
            url: "file:///archive".into(),
            stations: vec![StationListing {
                station,
                partitions: vec![Partition {
                    date: NaiveDate::from_ymd_opt(2026, 11, 24).expect("date"),
                    hour: 10,
                    files: vec![
                        file(1, 10, 10, RowSource::CommitRecord),
                        file(21, 30, 10, RowSource::Footer),
                    ],
                }],
                gaps: vec![Gap {
                    from_seq: 11,
                    to_seq: 20,
                    missing: 10,
                    exact: true,
                }],
                overlaps: vec![],
                incarnations: vec![],
                lost: vec![],
                pending_deletes: vec![PendingDelete {
                    key: "station=orders/date=2026-11-24/hour=10/a.parquet".into(),
                    bytes: 1024,
                    merged: "station=orders/date=2026-11-24/hour=10/m.parquet".into(),
                    delete_after: "2026-11-24T11:00:00Z".into(),
                }],
            }],
        };
        let text = listing.to_string();
        assert!(
            text.contains("station orders: 2 file(s), 20 rows, 8.0 KiB, seq 1-30"),
            "{text}"
        );
        assert!(
            text.contains("GAP: seqs 11-20 are missing (10 messages)"),
            "{text}"
        );
        assert!(text.contains("2026-11-24    10"), "{text}");
        assert!(text.contains("8.0 KiB") && text.contains("*\n"), "{text}");
        assert!(text.contains("not in a commit record"), "{text}");
        assert!(
            text.contains("PENDING DELETE: 1 replaced file(s), 1.0 KiB, rows held by station=orders/date=2026-11-24/hour=10/m.parquet, deleted by tier-2 compaction after 2026-11-24T11:00:00Z"),
            "{text}"
        );
        let json = serde_json::to_value(&listing).expect("json");
        assert_eq!(json["stations"][0]["station"], "orders");
        assert_eq!(
            json["stations"][0]["partitions"][0]["files"][1]["rows_from"],
            "footer"
        );
        assert_eq!(
            Listing {
                url: "file:///a".into(),
                stations: vec![]
            }
            .to_string(),
            "file:///a: no archived messages\n"
        );
    }
}
