//! Object keys of the archive, a contract with every reader:
//! `<prefix>/station=<station>/date=<YYYY-MM-DD>/hour=<HH>/<first_seq>-<last_seq>.parquet`
//! and commit records under `<prefix>/_strata/commits/`. Pure: no I/O.
//! (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]

use chrono::NaiveDate;
use object_store::path::Path;

use crate::message::{StationName, Timestamp};

/// The (UTC date, hour) partition of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour {
    pub date: NaiveDate,
    pub hour: u8,
}

impl Hour {
    pub fn of(ts: Timestamp) -> Hour {
        todo!()
    }
    /// First microsecond of the hour.
    pub fn start(&self) -> Timestamp {
        todo!()
    }
}

/// The key of one data file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataKey {
    pub station: StationName,
    pub hour: Hour,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl DataKey {
    /// Full object path under `prefix`.
    pub fn path(&self, prefix: &Path) -> Path {
        todo!()
    }
    /// Parses a path produced by [`DataKey::path`]; `None` for anything else.
    pub fn parse(prefix: &Path, path: &Path) -> Option<DataKey> {
        todo!()
    }
}

/// `<prefix>/station=<station>/`
pub fn station_prefix(prefix: &Path, station: &StationName) -> Path {
    todo!()
}

/// `<prefix>/station=<station>/date=<date>/hour=<HH>/`
pub fn hour_prefix(prefix: &Path, station: &StationName, hour: Hour) -> Path {
    todo!()
}

/// `<prefix>/_strata/commits/<wal_id>-<segment 20 digits>.json`
pub fn commit_record_path(prefix: &Path, wal_id: &str, segment: u64) -> Path {
    todo!()
}

/// One file listed in a commit record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedFile {
    pub key: String,
    pub station: String,
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// RFC 3339 UTC.
    pub min_timestamp: String,
    pub max_timestamp: String,
    pub bytes: u64,
    /// Hex SHA-256 of the object bytes.
    pub sha256: String,
}

/// The record stored after every file of a segment is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitRecord {
    pub version: u32,
    pub wal_id: String,
    pub segment: u64,
    pub files: Vec<CommittedFile>,
    pub committed_at: String,
    pub strata_version: String,
}
