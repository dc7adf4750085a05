//! The archive's Iceberg table as pyiceberg (`tests/py/iceberg_scan.py`) and
//! DuckDB's `iceberg_scan` (`tests/py/duckdb_iceberg_scan.py`) read it:
//! `strata ls --iceberg` for the metadata URL, then a scan of it.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

use super::python::{duckdb_iceberg_python, python_json, python_json_with, read_rows, Row};
use super::strata::strata;
use crate::args;

/// The current metadata URL `strata ls --iceberg --config CONFIG` prints on its
/// line `iceberg metadata: <url>`.
#[track_caller]
pub fn metadata_url(config: &Path) -> String {
    let out = strata(args!["ls", "--iceberg", "--config", config]).ok();
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("iceberg metadata: "))
        .unwrap_or_else(|| panic!("no `iceberg metadata:` line:\n{out}"));
    assert!(
        line.starts_with("file:///") || line.starts_with("s3://"),
        "not a URL a reader opens: {line}"
    );
    line.to_string()
}

/// A filter on one station and a time range (microseconds, inclusive).
#[derive(Debug, Clone)]
pub struct Filter {
    /// The station.
    pub station: String,
    /// First microsecond.
    pub from_us: i64,
    /// Last microsecond.
    pub to_us: i64,
}

/// What a reader of the table read.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The reader script's JSON summary.
    pub summary: Value,
    /// Every row, sorted by (station, seq).
    pub rows: Vec<Row>,
}

impl Scan {
    /// Files pyiceberg's full scan planned.
    pub fn files(&self) -> u64 {
        self.summary["files_planned"]
            .as_u64()
            .expect("files_planned")
    }
}

/// Loads the table at `url` with pyiceberg (`StaticTable`, pyarrow FileIO;
/// S3 through `s3_endpoint`) and scans it, and with `filter` a filtered scan.
pub fn scan(url: &str, s3_endpoint: Option<&str>, filter: Option<&Filter>) -> Scan {
    scan_with(url, s3_endpoint, filter, false)
}

/// [`scan`], and with `history` also a scan of every snapshot the table keeps
/// (in `summary["history"]`: snapshot id, operation, rows, distinct
/// `(station, seq)`); every file they name must still be stored.
pub fn scan_with(
    url: &str,
    s3_endpoint: Option<&str>,
    filter: Option<&Filter>,
    history: bool,
) -> Scan {
    let rows_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut a: Vec<std::ffi::OsString> = args![url, "--rows", rows_file.path()];
    if history {
        a.extend(args!["--all-snapshots"]);
    }
    if let Some(e) = s3_endpoint {
        a.extend(args!["--s3-endpoint", e]);
    }
    if let Some(f) = filter {
        a.extend(args![
            "--station",
            f.station,
            "--from-us",
            f.from_us.to_string(),
            "--to-us",
            f.to_us.to_string()
        ]);
    }
    let refs: Vec<&OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let summary = python_json("iceberg_scan.py", &refs);
    let rows = read_rows(rows_file.path());
    Scan { summary, rows }
}

/// Reads the table at `url` with DuckDB's `iceberg_scan`
/// (`tests/py/duckdb_iceberg_scan.py` in the [`duckdb_iceberg_python`]
/// virtualenv; S3 through `s3_endpoint`). Its summary has DuckDB's and the
/// extensions' versions, the columns, `rows` and `distinct_station_seq`.
pub fn duckdb_scan(url: &str, s3_endpoint: Option<&str>) -> Scan {
    let py = duckdb_iceberg_python()
        .unwrap_or_else(|why| panic!("iceberg_scan needs DuckDB's iceberg extension: {why}"));
    let rows_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut a: Vec<std::ffi::OsString> = args![url, "--rows", rows_file.path()];
    if let Some(e) = s3_endpoint {
        a.extend(args!["--s3-endpoint", e]);
    }
    let refs: Vec<&OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let summary = python_json_with(&py, "duckdb_iceberg_scan.py", &refs);
    let rows = read_rows(rows_file.path());
    Scan { summary, rows }
}
