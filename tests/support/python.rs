//! The test virtualenv's Python (`STRATA_TEST_PYTHON`): scripts of
//! `tests/py/` and inline ones, and DuckDB and pyarrow reading an archive back
//! ([`read_archive_checked`]).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env_var;
use super::strata::{run_command, Out};

/// A Python interpreter with `duckdb`, `pyarrow` and `boto3`.
pub fn python() -> Result<PathBuf, String> {
    env_var(
        "STRATA_TEST_PYTHON",
        "a Python with duckdb, pyarrow and boto3",
    )
    .map(PathBuf::from)
}

/// A Python with DuckDB and its iceberg, avro and httpfs extensions as PyPI
/// packages (`STRATA_TEST_DUCKDB_ICEBERG_PYTHON`, a virtualenv of its own).
pub fn duckdb_iceberg_python() -> Result<PathBuf, String> {
    env_var(
        "STRATA_TEST_DUCKDB_ICEBERG_PYTHON",
        "a Python with DuckDB's iceberg extension",
    )
    .map(PathBuf::from)
}

/// The test Python running `args` (at most 5 minutes); panics with its output
/// unless it succeeds. Check [`python`] first to skip when there is none.
fn run(what: &str, args: &[&OsStr]) -> Out {
    let py = python().unwrap_or_else(|why| panic!("{what} needs the test Python: {why}"));
    run_with(&py, args)
}

/// `py ARGS` (at most 5 minutes); panics with its output unless it succeeds.
fn run_with(py: &Path, args: &[&OsStr]) -> Out {
    let mut cmd = Command::new(py);
    cmd.args(args);
    run_command(cmd, None, Duration::from_secs(300)).ok()
}

/// Runs `python -c script ARGS` and returns its standard output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let mut all = vec![OsStr::new("-c"), OsStr::new(script)];
    all.extend(args.iter().map(OsStr::new));
    run("an inline Python script", &all).stdout
}

/// Runs `tests/py/<script> ARGS` and parses its standard output as JSON.
pub fn python_json(script: &str, args: &[&OsStr]) -> Value {
    let py = python().unwrap_or_else(|why| panic!("{script} needs the test Python: {why}"));
    python_json_with(&py, script, args)
}

/// [`python_json`] with the interpreter `py`.
pub fn python_json_with(py: &Path, script: &str, args: &[&OsStr]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut all = vec![path.as_os_str()];
    all.extend_from_slice(args);
    let out = run_with(py, &all);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{out}"))
}

/// The rows a script wrote to `path`, one JSON [`Row`] a line.
pub fn read_rows(path: &Path) -> Vec<Row> {
    let text = fs::read_to_string(path).expect("read rows");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad row {l}: {e}")))
        .collect()
}

/// One archived row as the readers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// From the `station=` path segment.
    pub station: String,
    /// `seq`.
    pub seq: i64,
    /// `timestamp` in microseconds since the epoch.
    pub timestamp_us: i64,
    /// `id`.
    pub id: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `headers` in stored order.
    pub headers: Vec<(String, String)>,
    /// `payload`, base64.
    pub payload_b64: String,
    /// From the `date=` path segment.
    pub date: String,
    /// From the `hour=` path segment, two digits.
    pub hour: String,
}

impl Row {
    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload_b64)
            .expect("check_archive.py writes standard base64")
    }
}

/// What `check_archive.py` reported about an archive root.
#[derive(Debug, Clone)]
pub struct ArchiveRead {
    /// The JSON summary.
    pub summary: Value,
    /// Every row, sorted by (station, seq).
    pub rows: Vec<Row>,
}

impl ArchiveRead {
    /// Number of rows.
    pub fn count(&self) -> u64 {
        self.summary["rows"].as_u64().expect("rows")
    }
    /// Rows of one station.
    pub fn station(&self, station: &str) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.station == station).collect()
    }
}

/// Reads the archive under `root` with `engine` (`duckdb` or `pyarrow`).
pub fn read_archive(root: &Path, engine: &str) -> ArchiveRead {
    let rows_file = tempfile::NamedTempFile::new().expect("temp file");
    let summary = python_json(
        "check_archive.py",
        &[
            root.as_os_str(),
            OsStr::new("--engine"),
            OsStr::new(engine),
            OsStr::new("--rows"),
            rows_file.path().as_os_str(),
        ],
    );
    let rows = read_rows(rows_file.path());
    ArchiveRead { summary, rows }
}

/// Reads `root` with both DuckDB and pyarrow, checks that they agree, that the
/// archive keeps its documented contract (layout, schema, zstd, statistics,
/// commit records, no duplicate identity) and returns the DuckDB view.
#[track_caller]
pub fn read_archive_checked(root: &Path) -> ArchiveRead {
    let duck = read_archive(root, "duckdb");
    let arrow = read_archive(root, "pyarrow");
    let s = &duck.summary;
    let ctx = || serde_json::to_string_pretty(s).unwrap_or_default();
    assert_eq!(
        s["rows"],
        s["distinct_station_seq"],
        "duplicate (station, seq) in the archive: {}",
        ctx()
    );
    assert_eq!(
        s["layout_violations"].as_array().map(Vec::len),
        Some(0),
        "layout violations: {}",
        ctx()
    );
    assert_eq!(
        arrow.summary["rows"], s["rows"],
        "pyarrow and DuckDB disagree on the row count"
    );
    assert_eq!(
        arrow.summary["digest"], s["digest"],
        "pyarrow and DuckDB read different rows"
    );
    assert_eq!(
        arrow.rows, duck.rows,
        "pyarrow and DuckDB read different rows"
    );
    if duck.count() > 0 {
        let cols = &s["columns"];
        for c in [
            "seq",
            "timestamp",
            "id",
            "subject",
            "headers",
            "payload",
            "station",
            "date",
            "hour",
        ] {
            assert!(
                cols.get(c).is_some(),
                "DuckDB sees no column {c}: {}",
                ctx()
            );
        }
        assert_eq!(cols["seq"], "BIGINT", "{}", ctx());
        assert_eq!(cols["timestamp"], "TIMESTAMP WITH TIME ZONE", "{}", ctx());
        assert_eq!(cols["payload"], "BLOB", "{}", ctx());
        assert_eq!(
            cols["headers"],
            "STRUCT(\"name\" VARCHAR, \"value\" VARCHAR)[]",
            "{}",
            ctx()
        );
        let phys = &s["parquet_schema"];
        let names: Vec<&String> = phys.as_object().expect("schema").keys().collect();
        let mut names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["headers", "id", "payload", "seq", "subject", "timestamp"],
            "the data files must hold exactly these columns (station/date/hour only in the path): {}",
            ctx()
        );
        assert_eq!(phys["seq"], "int64", "{}", ctx());
        let ts = phys["timestamp"].as_str().unwrap_or("");
        assert!(
            ts == "timestamp[us, tz=UTC]" || ts == "timestamp[us, tz=+00:00]",
            "timestamp must be Timestamp(us, UTC), is {ts}"
        );
        assert_eq!(phys["id"], "string", "{}", ctx());
        assert_eq!(phys["subject"], "string", "{}", ctx());
        assert_eq!(phys["payload"], "binary", "{}", ctx());
        let h = phys["headers"].as_str().unwrap_or("");
        assert!(
            h.starts_with("list<")
                && h.contains("struct<name: string")
                && h.contains("value: string"),
            "headers must be List<Struct<name Utf8, value Utf8>>, is {h}"
        );
        assert_eq!(
            s["codecs"],
            serde_json::json!(["ZSTD"]),
            "every column chunk must be zstd: {}",
            ctx()
        );
        assert_eq!(
            s["seq_stats_missing"],
            0,
            "seq statistics missing: {}",
            ctx()
        );
        let c = &s["commits"];
        assert!(
            c["count"].as_u64().unwrap_or(0) >= 1,
            "no commit record under _strata/commits/: {}",
            ctx()
        );
        assert_eq!(c["missing_keys"], serde_json::json!([]), "{}", ctx());
        assert_eq!(c["sha_mismatch"], serde_json::json!([]), "{}", ctx());
    }
    duck
}
