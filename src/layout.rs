//! Object keys of the archive, a contract with every reader (DuckDB, Spark, `strata ls`,
//! `strata restore`). Pure: no I/O.
//!
//! ```text
//! <prefix>/station=<station>/date=<YYYY-MM-DD>/hour=<HH>/<first_seq>-<last_seq>.parquet
//! <prefix>/_strata/commits/<wal_id>-<segment>.json
//! <prefix>/_strata/replacements/station=<station>/date=<D>/hour=<HH>/<first_seq>-<last_seq>.json
//! <prefix>/_strata/iceberg/metadata/v<N>.metadata.json        (Iceberg table metadata)
//! <prefix>/_strata/iceberg/metadata/version-hint.text         (N)
//! <prefix>/_strata/iceberg/metadata/snap-<id>-<uuid>.avro     (manifest lists)
//! <prefix>/_strata/iceberg/metadata/<uuid>-m<i>.avro          (manifests)
//! ```
//!
//! - `station` is a [`StationName`], which can never contain `/`, `=` or start with `.`,
//!   so it is always exactly one `station=…` path segment.
//! - `date` and `hour` are the UTC date and hour of the message timestamps in the file
//!   (Hive partition columns: query engines add them back as columns).
//! - `first_seq`, `last_seq` and `segment` are zero-padded to 20 digits (the width of
//!   `u64::MAX`), so lexical listing order is numeric order, and the key of a file is a
//!   pure function of what it holds: re-uploading after a crash overwrites the same object.
//!
//! [`DataKey::parse`] accepts exactly the paths [`DataKey::path`] produces and nothing else.
//!
//! The paths built here are relative to the archive root: `store::Archive` puts
//! them under `<prefix>` (an object_store `PrefixStore`), so no prefix travels here.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use object_store::path::Path;

use crate::columnar::FileSummary;
use crate::message::{StationName, Timestamp};

/// Width of zero-padded sequence and segment numbers (digits of `u64::MAX`).
pub const SEQ_DIGITS: usize = 20;

/// Extension of data files.
pub const DATA_FILE_EXTENSION: &str = "parquet";

/// The current version of [`CommitRecord`]; readers refuse newer records.
pub const COMMIT_RECORD_VERSION: u32 = 1;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const HOURS_PER_DAY: i64 = 24;

/// The (UTC date, hour) partition of a timestamp.
///
/// Dates are limited to years 0000–9999 so that `date=` is always exactly
/// `YYYY-MM-DD`; timestamps outside that range fall into its first or last hour.
/// [`Hour::of`] is monotone, so pruning a time range by hour partitions stays correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour {
    /// The UTC date.
    pub date: NaiveDate,
    /// The UTC hour of the day, 0–23.
    pub hour: u8,
}

impl Hour {
    /// The first hour representable in a partition path: 0000-01-01 hour 00.
    pub const MIN: Hour = Hour {
        date: match NaiveDate::from_ymd_opt(0, 1, 1) {
            Some(d) => d,
            None => panic!("0000-01-01 is a valid date"),
        },
        hour: 0,
    };

    /// The last hour representable in a partition path: 9999-12-31 hour 23.
    pub const MAX: Hour = Hour {
        date: match NaiveDate::from_ymd_opt(9999, 12, 31) {
            Some(d) => d,
            None => panic!("9999-12-31 is a valid date"),
        },
        hour: 23,
    };

    /// The UTC hour holding `ts` (clamped to [`Hour::MIN`]..=[`Hour::MAX`]).
    pub fn of(ts: Timestamp) -> Hour {
        let hours = ts.micros().div_euclid(MICROS_PER_HOUR);
        Self::from_epoch_hours(hours)
    }

    /// Hours since the Unix epoch → hour, clamped to the representable range.
    fn from_epoch_hours(hours: i64) -> Hour {
        let min = Self::MIN.epoch_hours();
        let max = Self::MAX.epoch_hours();
        let hours = hours.clamp(min, max);
        let days = hours.div_euclid(HOURS_PER_DAY);
        let hour = hours.rem_euclid(HOURS_PER_DAY) as u8;
        let date = NaiveDate::from_num_days_from_ce_opt(
            i32::try_from(days + i64::from(UNIX_EPOCH_DAYS_FROM_CE))
                .expect("clamped to years 0000-9999, far inside i32"),
        )
        .expect("clamped to years 0000-9999, inside chrono's range");
        Hour { date, hour }
    }

    /// Hours since the Unix epoch of the start of this hour.
    fn epoch_hours(&self) -> i64 {
        let days = i64::from(self.date.num_days_from_ce()) - i64::from(UNIX_EPOCH_DAYS_FROM_CE);
        days * HOURS_PER_DAY + i64::from(self.hour)
    }

    /// First microsecond of the hour.
    pub fn start(&self) -> Timestamp {
        Timestamp(self.epoch_hours() * MICROS_PER_HOUR)
    }

    /// Last microsecond of the hour (inclusive).
    pub fn end(&self) -> Timestamp {
        Timestamp(self.start().micros() + MICROS_PER_HOUR - 1)
    }

    /// The following hour (saturating at [`Hour::MAX`]).
    pub fn next(&self) -> Hour {
        Self::from_epoch_hours(self.epoch_hours() + 1)
    }

    /// The `date=` value: `YYYY-MM-DD`.
    pub fn date_string(&self) -> String {
        format_date(self.date)
    }
}

impl fmt::Display for Hour {
    /// `YYYY-MM-DDTHH` (UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{:02}", format_date(self.date), self.hour)
    }
}

/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn format_date(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// Parses exactly `YYYY-MM-DD` (what [`format_date`] writes), nothing else.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = parse_digits(&s[0..4])?;
    let month = parse_digits(&s[5..7])?;
    let day = parse_digits(&s[8..10])?;
    NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )
}

/// Parses a `date=YYYY-MM-DD` path segment (the date partition), exactly as
/// [`date_prefix`] writes it.
pub fn parse_date_segment(segment: &str) -> Option<NaiveDate> {
    parse_date(segment.strip_prefix("date=")?)
}

/// Parses an `hour=HH` path segment (the hour partition, `00`..`23`), exactly
/// as [`hour_prefix`] writes it.
pub fn parse_hour_segment(segment: &str) -> Option<u8> {
    let value = segment.strip_prefix("hour=")?;
    if value.len() != 2 {
        return None;
    }
    u8::try_from(parse_digits(value)?).ok().filter(|h| *h < 24)
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces) as u64.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses exactly 20 ASCII digits.
fn parse_padded(s: &str) -> Option<u64> {
    if s.len() != SEQ_DIGITS {
        return None;
    }
    parse_digits(s)
}

/// The key of one data file: what it holds determines where it lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataKey {
    /// The station of every message in the file.
    pub station: StationName,
    /// The UTC hour of every message timestamp in the file.
    pub hour: Hour,
    /// The smallest seq in the file.
    pub first_seq: u64,
    /// The largest seq in the file (`>= first_seq`).
    pub last_seq: u64,
}

impl DataKey {
    /// The object path, relative to the archive root.
    pub fn path(&self) -> Path {
        hour_prefix(&self.station, self.hour).child(self.file_name())
    }

    /// `<first_seq>-<last_seq>.parquet`, zero-padded.
    pub fn file_name(&self) -> String {
        format!(
            "{:0w$}-{:0w$}.{DATA_FILE_EXTENSION}",
            self.first_seq,
            self.last_seq,
            w = SEQ_DIGITS
        )
    }

    /// Parses a path produced by [`DataKey::path`]; `None` for anything else
    /// (bad station names, dates or hours, unpadded numbers,
    /// `first_seq > last_seq`, extra or missing segments).
    pub fn parse(path: &Path) -> Option<DataKey> {
        let mut parts = path.parts();
        let station = parts.next()?;
        let date = parts.next()?;
        let hour = parts.next()?;
        let file = parts.next()?;
        if parts.next().is_some() {
            return None;
        }

        let station = StationName::new(station.as_ref().strip_prefix("station=")?).ok()?;
        let date = parse_date_segment(date.as_ref())?;
        let hour = parse_hour_segment(hour.as_ref())?;

        let stem = file
            .as_ref()
            .strip_suffix(DATA_FILE_EXTENSION)?
            .strip_suffix('.')?;
        let (first, last) = stem.split_once('-')?;
        let first_seq = parse_padded(first)?;
        let last_seq = parse_padded(last)?;
        if first_seq > last_seq {
            return None;
        }

        let key = DataKey {
            station,
            hour: Hour { date, hour },
            first_seq,
            last_seq,
        };
        // Belt and braces: the only accepted spelling is the one `path` writes.
        (key.path() == *path).then_some(key)
    }

    /// Parses a path given as a string (e.g. from a listing or the command line).
    pub fn from_path_str(path: &str) -> Option<DataKey> {
        let path = Path::parse(path).ok()?;
        Self::parse(&path)
    }

    /// Whether the file may hold a message with a seq in `from..=to`.
    pub fn overlaps_seq(&self, from: u64, to: u64) -> bool {
        self.first_seq <= to && from <= self.last_seq
    }
}

/// `station=<station>/`
pub fn station_prefix(station: &StationName) -> Path {
    Path::from_iter([format!("station={station}")])
}

/// `station=<station>/date=<YYYY-MM-DD>/`
pub fn date_prefix(station: &StationName, date: NaiveDate) -> Path {
    station_prefix(station).child(format!("date={}", format_date(date)))
}

/// `station=<station>/date=<date>/hour=<HH>/`
pub fn hour_prefix(station: &StationName, hour: Hour) -> Path {
    date_prefix(station, hour.date).child(format!("hour={:02}", hour.hour))
}

/// `_strata/commits/`
pub fn commits_prefix() -> Path {
    Path::from_iter(["_strata", "commits"])
}

/// `_strata/commits/<wal_id>-<segment 20 digits>.json`
///
/// `wal_id` should be made of `A-Z a-z 0-9 _ -` (a UUID is); other characters are
/// percent-encoded by [`Path`] and such a path is not accepted by [`parse_commit_record_path`].
pub fn commit_record_path(wal_id: &str, segment: u64) -> Path {
    commits_prefix().child(format!("{wal_id}-{segment:0w$}.json", w = SEQ_DIGITS))
}

/// Parses a path produced by [`commit_record_path`] into `(wal_id, segment)`.
pub fn parse_commit_record_path(path: &Path) -> Option<(String, u64)> {
    let mut parts = path.prefix_match(&commits_prefix())?;
    let file = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let stem = file.as_ref().strip_suffix(".json")?;
    let (wal_id, segment) = stem.rsplit_once('-')?;
    let valid_id = !wal_id.is_empty()
        && wal_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_id {
        return None;
    }
    Some((wal_id.to_string(), parse_padded(segment)?))
}

/// `_strata/restore.key`: the archive's restore key (see
/// `identity::mac`), created on first use.
pub fn restore_key_path() -> Path {
    Path::from_iter(["_strata", "restore.key"])
}

/// `_strata/stations/`: every station's identity ledger.
pub fn ledgers_prefix() -> Path {
    Path::from_iter(["_strata", "stations"])
}

/// `_strata/stations/<station>/`: the station's identity ledger.
pub fn ledger_prefix(station: &StationName) -> Path {
    ledgers_prefix().child(station.as_str())
}

/// `_strata/stations/<station>/incarnations/<index 10 digits>.json`
pub fn incarnation_path(station: &StationName, index: u32) -> Path {
    ledger_prefix(station)
        .child("incarnations")
        .child(format!("{index:010}.json"))
}

/// `_strata/stations/<station>/gaps/<first_seq>-<last_seq>.json`,
/// seqs zero-padded to 20 digits.
pub fn gap_path(station: &StationName, first_seq: u64, last_seq: u64) -> Path {
    ledger_prefix(station).child("gaps").child(format!(
        "{first_seq:0w$}-{last_seq:0w$}.json",
        w = SEQ_DIGITS
    ))
}

/// `_strata/tier2.lock`: the lock of the one tier-2 pass running (`tier2::lock`).
pub fn tier2_lock_path() -> Path {
    Path::from_iter(["_strata", "tier2.lock"])
}

/// `_strata/replacements/`: every tier-2 replacement record.
pub fn replacements_prefix() -> Path {
    Path::from_iter(["_strata", "replacements"])
}

/// `_strata/replacements/station=<station>/date=<D>/hour=<HH>/`: the replacement
/// records of one partition.
pub fn replacements_hour_prefix(station: &StationName, hour: Hour) -> Path {
    let mut path = replacements_prefix();
    for part in hour_prefix(station, hour).parts() {
        path = path.child(part);
    }
    path
}

/// `_strata/replacements/<the merged file's DataKey path, .json instead of .parquet>`:
/// the record of the tier-2 merge that produced `merged`. Deterministic, so a redo
/// after a crash rewrites the same record.
pub fn replacement_record_path(merged: &DataKey) -> Path {
    let stem = merged
        .file_name()
        .strip_suffix(DATA_FILE_EXTENSION)
        .expect("file_name ends with the data file extension")
        .to_string();
    replacements_hour_prefix(&merged.station, merged.hour).child(format!("{stem}json"))
}

/// Parses a path produced by [`replacement_record_path`] into the merged file's key.
pub fn parse_replacement_record_path(path: &Path) -> Option<DataKey> {
    let rest: Vec<_> = path.prefix_match(&replacements_prefix())?.collect();
    let (file, dirs) = rest.split_last()?;
    let stem = file.as_ref().strip_suffix(".json")?;
    let data = dirs
        .iter()
        .map(|p| p.as_ref().to_string())
        .chain([format!("{stem}.{DATA_FILE_EXTENSION}")])
        .collect::<Vec<_>>()
        .join("/");
    DataKey::from_path_str(&data)
}

/// `_strata/iceberg/`: the Iceberg table over the data files (its `location`).
pub fn iceberg_prefix() -> Path {
    Path::from_iter(["_strata", "iceberg"])
}

/// `_strata/iceberg/metadata/`: table metadata, manifest lists and manifests.
pub fn iceberg_metadata_prefix() -> Path {
    iceberg_prefix().child("metadata")
}

/// `_strata/iceberg/metadata/v<version>.metadata.json`: one version of the
/// table metadata, created once (`put_if_absent`), never rewritten.
pub fn iceberg_metadata_path(version: u64) -> Path {
    iceberg_metadata_prefix().child(format!("v{version}.metadata.json"))
}

/// Parses a path produced by [`iceberg_metadata_path`] into its version.
pub fn parse_iceberg_metadata_path(path: &Path) -> Option<u64> {
    let mut parts = path.prefix_match(&iceberg_metadata_prefix())?;
    let file = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let digits = file
        .as_ref()
        .strip_prefix('v')?
        .strip_suffix(".metadata.json")?;
    let version = parse_digits(digits)?;
    (iceberg_metadata_path(version) == *path).then_some(version)
}

/// `_strata/iceberg/metadata/version-hint.text`: the latest version number
/// (a hint: a newer `v<N>.metadata.json` may exist).
pub fn iceberg_version_hint_path() -> Path {
    iceberg_metadata_prefix().child("version-hint.text")
}

/// `_strata/iceberg/metadata/<uuid>-m<index>.avro`: a manifest.
pub fn iceberg_manifest_path(commit_uuid: &str, index: usize) -> Path {
    iceberg_metadata_prefix().child(format!("{commit_uuid}-m{index}.avro"))
}

/// `_strata/iceberg/metadata/snap-<snapshot id>-<uuid>.avro`: a manifest list.
pub fn iceberg_manifest_list_path(snapshot_id: i64, commit_uuid: &str) -> Path {
    iceberg_metadata_prefix().child(format!("snap-{snapshot_id}-{commit_uuid}.avro"))
}

/// The current version of [`ReplacementRecord`]; readers refuse newer records.
pub const REPLACEMENT_RECORD_VERSION: u32 = 1;

/// The record of one tier-2 merge: `merged` holds exactly the rows of `replaced`
/// (same station and hour, seq order), which are deleted once `delete_after` has
/// passed. Stored at [`replacement_record_path`] after `merged` is uploaded and
/// before any file of `replaced` is deleted: from then on readers that know the
/// record (`strata ls`, `strata restore`, the Iceberg table) read `merged` and skip
/// the files of `replaced` that are still there (pending deletes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplacementRecord {
    /// Format version of this record ([`REPLACEMENT_RECORD_VERSION`]).
    pub version: u32,
    /// The merged file.
    pub merged: CommittedFile,
    /// The files it replaces, in seq order.
    pub replaced: Vec<CommittedFile>,
    /// RFC 3339 UTC time the record was stored.
    pub committed_at: String,
    /// RFC 3339 UTC time after which the files of `replaced` may be deleted
    /// (`committed_at` plus `[tier2] grace`).
    pub delete_after: String,
    /// The Strata version that wrote the record.
    pub strata_version: String,
}

impl ReplacementRecord {
    /// The record as pretty JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self)
            .expect("a struct of strings, integers and vectors always serializes")
    }

    /// Reads a record written by [`ReplacementRecord::to_json`].
    ///
    /// # Errors
    /// [`CommitRecordError`] when the bytes are not a record or the version is newer.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CommitRecordError> {
        let record: ReplacementRecord = serde_json::from_slice(bytes)?;
        if record.version > REPLACEMENT_RECORD_VERSION {
            return Err(CommitRecordError::UnsupportedVersion(record.version));
        }
        Ok(record)
    }
}

/// Why a commit record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CommitRecordError {
    /// The bytes were not a JSON commit record.
    #[error("commit record is not valid JSON of the expected shape ({0}); the object may be damaged or was not written by Strata")]
    Json(#[from] serde_json::Error),
    /// The record was written by a newer Strata.
    #[error("commit record version {0} is newer than this Strata understands (version {COMMIT_RECORD_VERSION}); upgrade Strata")]
    UnsupportedVersion(u32),
}

/// One file listed in a commit record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedFile {
    /// The object's full key in the store: the archive's prefix, then
    /// [`DataKey::path`] (as `store::Archive::key` gives it).
    pub key: String,
    /// The station of the file.
    pub station: String,
    /// Number of messages (rows) in the file.
    pub rows: u64,
    /// Smallest seq in the file.
    pub first_seq: u64,
    /// Largest seq in the file.
    pub last_seq: u64,
    /// RFC 3339 UTC.
    pub min_timestamp: String,
    /// RFC 3339 UTC.
    pub max_timestamp: String,
    /// Size of the object in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the object bytes.
    pub sha256: String,
}

impl CommittedFile {
    /// Describes the uploaded file `key`, stored as `object` (its full key,
    /// prefix included), from its encoding summary.
    pub fn new(
        object: &Path,
        key: &DataKey,
        summary: &FileSummary,
        bytes: u64,
        sha256: String,
    ) -> Self {
        Self {
            key: object.to_string(),
            station: key.station.to_string(),
            rows: summary.rows,
            first_seq: summary.first_seq,
            last_seq: summary.last_seq,
            min_timestamp: summary.min_timestamp.to_rfc3339(),
            max_timestamp: summary.max_timestamp.to_rfc3339(),
            bytes,
            sha256,
        }
    }
}

/// The record stored after every file of a segment is uploaded.
///
/// JSON at [`commit_record_path`]; `version` is [`COMMIT_RECORD_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitRecord {
    /// Format version of this record.
    pub version: u32,
    /// Identity of the WAL that produced the segment.
    pub wal_id: String,
    /// The segment number within that WAL.
    pub segment: u64,
    /// Every data file made from the segment.
    pub files: Vec<CommittedFile>,
    /// RFC 3339 UTC time of the commit.
    pub committed_at: String,
    /// The Strata version that wrote the record.
    pub strata_version: String,
}

impl CommitRecord {
    /// The record as pretty JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self)
            .expect("a struct of strings, integers and vectors always serializes")
    }

    /// Reads a record written by [`CommitRecord::to_json`].
    ///
    /// # Errors
    /// [`CommitRecordError`] when the bytes are not a record or the version is newer.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CommitRecordError> {
        let record: CommitRecord = serde_json::from_slice(bytes)?;
        if record.version > COMMIT_RECORD_VERSION {
            return Err(CommitRecordError::UnsupportedVersion(record.version));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_record_paths_round_trip() {
        let key = DataKey {
            station: StationName::new("orders").unwrap(),
            hour: Hour {
                date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                hour: 9,
            },
            first_seq: 1,
            last_seq: 200,
        };
        let path = replacement_record_path(&key);
        assert_eq!(
            path.as_ref(),
            "_strata/replacements/station=orders/date=2026-11-30/hour=09/\
             00000000000000000001-00000000000000000200.json"
        );
        assert_eq!(parse_replacement_record_path(&path), Some(key.clone()));
        assert_eq!(parse_replacement_record_path(&key.path()), None);
        assert!(path.prefix_matches(&replacements_hour_prefix(&key.station, key.hour)));
    }

    #[test]
    fn parses_partition_segments() {
        assert_eq!(
            parse_date_segment("date=2026-11-24"),
            NaiveDate::from_ymd_opt(2026, 11, 24)
        );
        assert_eq!(parse_date_segment("date=2026-11-4"), None);
        assert_eq!(parse_date_segment("hour=10"), None);
        assert_eq!(parse_hour_segment("hour=07"), Some(7));
        assert_eq!(parse_hour_segment("hour=24"), None);
        assert_eq!(parse_hour_segment("hour=7"), None);
        assert_eq!(parse_hour_segment("hour=+7"), None);
    }
    use proptest::prelude::*;

    fn station(s: &str) -> StationName {
        StationName::new(s).unwrap()
    }

    fn hour(y: i32, m: u32, d: u32, h: u8) -> Hour {
        Hour {
            date: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            hour: h,
        }
    }

    fn key() -> DataKey {
        DataKey {
            station: station("orders"),
            hour: hour(2026, 11, 24, 7),
            first_seq: 1,
            last_seq: 42,
        }
    }

    #[test]
    fn hour_of_and_start() {
        let ts = Timestamp::parse_rfc3339("2026-11-24T07:59:59.999999Z").unwrap();
        assert_eq!(Hour::of(ts), hour(2026, 11, 24, 7));
        assert_eq!(
            Hour::of(ts).start(),
            Timestamp::parse_rfc3339("2026-11-24T07:00:00Z").unwrap()
        );
        assert_eq!(Hour::of(ts).end(), ts);
        assert_eq!(Hour::of(Timestamp(0)), hour(1970, 1, 1, 0));
        assert_eq!(Hour::of(Timestamp(-1)), hour(1969, 12, 31, 23));
        assert_eq!(hour(1969, 12, 31, 23).start(), Timestamp(-MICROS_PER_HOUR));
        assert_eq!(hour(2026, 12, 31, 23).next(), hour(2027, 1, 1, 0));
        assert_eq!(hour(2026, 11, 24, 7).to_string(), "2026-11-24T07");
    }

    #[test]
    fn hour_of_clamps_to_four_digit_years() {
        assert_eq!(Hour::of(Timestamp(i64::MIN)), Hour::MIN);
        assert_eq!(Hour::of(Timestamp(i64::MAX)), Hour::MAX);
        assert_eq!(Hour::MAX.next(), Hour::MAX);
        assert_eq!(Hour::MIN.date_string(), "0000-01-01");
        assert_eq!(Hour::MAX.date_string(), "9999-12-31");
    }

    #[test]
    fn data_path_layout() {
        let p = key().path();
        assert_eq!(
            p.as_ref(),
            "station=orders/date=2026-11-24/hour=07/\
             00000000000000000001-00000000000000000042.parquet"
        );
        assert_eq!(DataKey::parse(&p), Some(key()));
        assert_eq!(DataKey::from_path_str(p.as_ref()), Some(key()));
    }

    #[test]
    fn prefixes() {
        let s = station("orders");
        assert_eq!(station_prefix(&s).as_ref(), "station=orders");
        assert_eq!(
            hour_prefix(&s, hour(2026, 1, 2, 3)).as_ref(),
            "station=orders/date=2026-01-02/hour=03"
        );
        assert!(key().path().prefix_matches(&station_prefix(&s)));
        assert!(key().path().prefix_matches(&hour_prefix(&s, key().hour)));
        // Station "orders" must not match the prefix of station "orders2".
        assert!(!station_prefix(&station("orders2")).prefix_matches(&station_prefix(&s)));
        assert_eq!(
            commit_record_path("wal-1", 7).as_ref(),
            "_strata/commits/wal-1-00000000000000000007.json"
        );
        assert_eq!(restore_key_path().as_ref(), "_strata/restore.key");
        assert_eq!(
            incarnation_path(&s, 3).as_ref(),
            "_strata/stations/orders/incarnations/0000000003.json"
        );
        assert!(gap_path(&s, 1, 2).prefix_matches(&ledgers_prefix()));
        assert_eq!(
            iceberg_metadata_path(12).as_ref(),
            "_strata/iceberg/metadata/v12.metadata.json"
        );
        assert_eq!(
            iceberg_version_hint_path().as_ref(),
            "_strata/iceberg/metadata/version-hint.text"
        );
        assert!(iceberg_manifest_path("u", 0).prefix_matches(&iceberg_prefix()));
        assert_eq!(
            parse_iceberg_metadata_path(&iceberg_metadata_path(12)),
            Some(12)
        );
        for bad in [
            "_strata/iceberg/metadata/v012.metadata.json",
            "_strata/iceberg/metadata/v.metadata.json",
            "_strata/iceberg/metadata/12.metadata.json",
            "_strata/iceberg/metadata/version-hint.text",
            "_strata/iceberg/v12.metadata.json",
        ] {
            assert_eq!(parse_iceberg_metadata_path(&Path::from(bad)), None, "{bad}");
        }
        assert!(iceberg_manifest_list_path(5, "u").prefix_matches(&iceberg_metadata_prefix()));
    }

    #[test]
    fn parse_rejects_everything_path_does_not_produce() {
        let good = "station=orders/date=2026-11-24/hour=07/\
                    00000000000000000001-00000000000000000042.parquet";
        assert!(DataKey::from_path_str(good).is_some());
        let bad = [
            // under a prefix: keys are relative to the archive root
            "p/station=orders/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            // station names StationName refuses
            "station=/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=.hidden/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=a=b/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=a b/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=a%2Fb/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "stations=orders/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            // dates
            "station=orders/date=2026-1-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=orders/date=2026-02-30/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=orders/date=+026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet",
            "station=orders/date=20261124/hour=07/00000000000000000001-00000000000000000042.parquet",
            // hours
            "station=orders/date=2026-11-24/hour=7/00000000000000000001-00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=24/00000000000000000001-00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=+7/00000000000000000001-00000000000000000042.parquet",
            // numbers
            "station=orders/date=2026-11-24/hour=07/1-42.parquet",
            "station=orders/date=2026-11-24/hour=07/000000000000000000001-00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=07/+0000000000000000001-00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=07/00000000000000000043-00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=07/99999999999999999999-99999999999999999999.parquet",
            // file name shape
            "station=orders/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.json",
            "station=orders/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042parquet",
            "station=orders/date=2026-11-24/hour=07/00000000000000000001_00000000000000000042.parquet",
            "station=orders/date=2026-11-24/hour=07/00000000000000000001-00000000000000000042.parquet.tmp",
            // segment count
            "station=orders/date=2026-11-24/hour=07",
            "station=orders/date=2026-11-24/hour=07/x/00000000000000000001-00000000000000000042.parquet",
            "station=orders/hour=07/00000000000000000001-00000000000000000042.parquet",
            "_strata/commits/w-00000000000000000001.json",
        ];
        for b in bad {
            assert_eq!(DataKey::from_path_str(b), None, "{b}");
        }
    }

    #[test]
    fn commit_record_paths_round_trip() {
        let id = "6f1c2b1e-8d44-4d8e-9a7b-3f0f6c1d2e3a";
        let p = commit_record_path(id, 12);
        assert_eq!(parse_commit_record_path(&p), Some((id.to_string(), 12)));
        assert_eq!(
            parse_commit_record_path(&Path::from("_strata/commits/w-12.json")),
            None
        );
        assert_eq!(
            parse_commit_record_path(&Path::from("x/_strata/commits/w-00000000000000000012.json")),
            None
        );
        assert_eq!(parse_commit_record_path(&key().path()), None);
    }

    #[test]
    fn commit_record_json_round_trip() {
        let summary = FileSummary {
            rows: 42,
            first_seq: 1,
            last_seq: 42,
            min_timestamp: Timestamp(0),
            max_timestamp: Timestamp(1),
        };
        let object = Path::from(format!("a/{}", key().path()));
        let rec = CommitRecord {
            version: COMMIT_RECORD_VERSION,
            wal_id: "w".into(),
            segment: 3,
            files: vec![CommittedFile::new(
                &object,
                &key(),
                &summary,
                1234,
                "ab".into(),
            )],
            committed_at: Timestamp(5).to_rfc3339(),
            strata_version: env!("CARGO_PKG_VERSION").into(),
        };
        assert_eq!(
            rec.files[0].key,
            format!("a/{}", key().path()),
            "the full key, prefix included"
        );
        assert_eq!(rec.files[0].min_timestamp, "1970-01-01T00:00:00.000000Z");
        let back = CommitRecord::from_json(&rec.to_json()).unwrap();
        assert_eq!(back, rec);

        let mut newer = rec.clone();
        newer.version = COMMIT_RECORD_VERSION + 1;
        assert!(matches!(
            CommitRecord::from_json(&newer.to_json()),
            Err(CommitRecordError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            CommitRecord::from_json(b"{"),
            Err(CommitRecordError::Json(_))
        ));
    }

    fn any_station() -> impl Strategy<Value = StationName> {
        "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}".prop_map(|s| StationName::new(s).unwrap())
    }

    fn any_hour() -> impl Strategy<Value = Hour> {
        any::<i64>().prop_map(|t| Hour::of(Timestamp(t)))
    }

    proptest! {
        #[test]
        fn path_parse_round_trip(
            station in any_station(),
            hour in any_hour(),
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let key = DataKey { station, hour, first_seq: a.min(b), last_seq: a.max(b) };
            let path = key.path();
            prop_assert_eq!(DataKey::parse(&path), Some(key.clone()));
            prop_assert_eq!(DataKey::from_path_str(path.as_ref()), Some(key));
        }

        #[test]
        fn station_name_stays_one_segment(
            name in prop_oneof!["\\PC{1,40}", "[A-Za-z0-9_.=/ -]{1,20}"],
        ) {
            // Whatever the text, either StationName refuses it or the path has exactly
            // the expected segments, the first of which is `station=<name>`.
            if let Ok(station) = StationName::new(name.clone()) {
                let key = DataKey { station, hour: Hour::MIN, first_seq: 0, last_seq: 0 };
                let path = key.path();
                let rest: Vec<String> = path.parts().map(|p| p.as_ref().to_string()).collect();
                prop_assert_eq!(rest.len(), 4);
                prop_assert_eq!(&rest[0], &format!("station={name}"));
                prop_assert!(path.prefix_matches(&station_prefix(&key.station)));
            }
        }

        #[test]
        fn hour_of_is_monotone_and_contains_ts(a in any::<i64>(), b in any::<i64>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(Hour::of(Timestamp(lo)) <= Hour::of(Timestamp(hi)));
            let h = Hour::of(Timestamp(lo));
            if h != Hour::MIN && h != Hour::MAX {
                prop_assert!(h.start().micros() <= lo && lo <= h.end().micros());
                prop_assert_eq!(Hour::of(h.start()), h);
            }
        }

        #[test]
        fn commit_path_round_trip(id in "[A-Za-z0-9_-]{1,40}", seg in any::<u64>()) {
            let p = commit_record_path(&id, seg);
            prop_assert_eq!(parse_commit_record_path(&p), Some((id, seg)));
        }
    }
}
