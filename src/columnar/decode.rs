//! Reading data files: which row groups and pages may hold the wanted messages, and
//! decoding a whole in-memory file.
//!
//! An async reader (e.g. `ParquetRecordBatchStreamBuilder` over `ParquetObjectReader`)
//! prunes the same way [`decode_file`] does:
//!
//! ```text
//! let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, reader_options()).await?;
//! check_schema(builder.schema())?;
//! file_info(builder.metadata())?.check(&station)?;
//! let groups = select_row_groups(builder.metadata(), &sel);        // by row-group statistics
//! let pages = page_selection(builder.metadata(), &groups, &sel);   // by page index, if any
//! let mut builder = builder.with_row_groups(groups);
//! if let Some(rows) = pages { builder = builder.with_row_selection(rows); }
//! // then from_record_batch(&station, &batch) and keep messages where sel.contains(m)
//! ```
//!
//! Pruning is conservative (missing statistics or page index keep data), so the exact
//! filter [`Selection::contains`] must still be applied to decoded messages.

use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use super::schema::{check_schema, from_record_batch, SEQ, TIMESTAMP};
use super::{
    ColumnarError, META_FIRST_SEQ, META_LAST_SEQ, META_SCHEMA_VERSION, META_STATION, META_VERSION,
    SCHEMA_VERSION,
};
use crate::message::{Message, StationName, Timestamp};

/// Which messages a reader wants; `None` bounds are open. Bounds are inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// Smallest seq wanted.
    pub from_seq: Option<u64>,
    /// Largest seq wanted.
    pub to_seq: Option<u64>,
    /// Earliest timestamp wanted.
    pub from_ts: Option<Timestamp>,
    /// Latest timestamp wanted.
    pub to_ts: Option<Timestamp>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `m` is wanted.
    pub fn contains(&self, m: &Message) -> bool {
        self.from_seq.is_none_or(|s| m.seq >= s)
            && self.to_seq.is_none_or(|s| m.seq <= s)
            && self.from_ts.is_none_or(|t| m.timestamp >= t)
            && self.to_ts.is_none_or(|t| m.timestamp <= t)
    }

    /// Whether no message can be wanted (a lower bound above its upper bound).
    pub fn is_empty(&self) -> bool {
        matches!((self.from_seq, self.to_seq), (Some(a), Some(b)) if a > b)
            || matches!((self.from_ts, self.to_ts), (Some(a), Some(b)) if a > b)
    }

    /// Bounds on the stored Int64 value of `seq`, widened so no conversion can fail.
    fn seq_bounds(&self) -> Bounds {
        Bounds {
            lo: self.from_seq.map(i128::from),
            hi: self.to_seq.map(i128::from),
        }
    }

    /// Bounds on the stored Int64 value of `timestamp`.
    fn ts_bounds(&self) -> Bounds {
        Bounds {
            lo: self.from_ts.map(|t| i128::from(t.micros())),
            hi: self.to_ts.map(|t| i128::from(t.micros())),
        }
    }
}

/// Inclusive optional bounds on an integer column.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    lo: Option<i128>,
    hi: Option<i128>,
}

impl Bounds {
    fn is_open(&self) -> bool {
        self.lo.is_none() && self.hi.is_none()
    }

    /// Whether values in `min..=max` may fall within the bounds.
    fn overlaps(&self, min: i64, max: i64) -> bool {
        self.lo.is_none_or(|lo| lo <= i128::from(max))
            && self.hi.is_none_or(|hi| hi >= i128::from(min))
    }
}

/// Index of the leaf column `name` (a top-level primitive column) in the file.
fn leaf_index(meta: &ParquetMetaData, name: &str) -> Option<usize> {
    meta.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name])
}

/// Whether row group `rg` may hold rows within `bounds` on leaf column `leaf`
/// (true when statistics are missing).
fn row_group_may_match(
    meta: &ParquetMetaData,
    rg: usize,
    leaf: Option<usize>,
    bounds: Bounds,
) -> bool {
    if bounds.is_open() {
        return true;
    }
    let Some(leaf) = leaf else { return true };
    match meta.row_group(rg).column(leaf).statistics() {
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => bounds.overlaps(*min, *max),
            _ => true,
        },
        _ => true,
    }
}

/// Indexes of the row groups whose statistics may hold selected rows (a row group
/// without statistics is kept).
pub fn select_row_groups(meta: &ParquetMetaData, sel: &Selection) -> Vec<usize> {
    if sel.is_empty() {
        return Vec::new();
    }
    let seq = leaf_index(meta, SEQ);
    let ts = leaf_index(meta, TIMESTAMP);
    (0..meta.num_row_groups())
        .filter(|&rg| {
            row_group_may_match(meta, rg, seq, sel.seq_bounds())
                && row_group_may_match(meta, rg, ts, sel.ts_bounds())
        })
        .collect()
}

/// Rows of `row_groups` (concatenated, in order) on pages of leaf column `leaf` whose
/// page index may hold values within `bounds`; `None` when the page index is missing
/// or inconsistent.
fn pages_matching(
    meta: &ParquetMetaData,
    row_groups: &[usize],
    leaf: usize,
    bounds: Bounds,
    total_rows: usize,
) -> Option<RowSelection> {
    let column_index = meta.column_index()?;
    let offset_index = meta.offset_index()?;
    let mut ranges = Vec::new();
    let mut base = 0usize;
    for &rg in row_groups {
        let rows = usize::try_from(meta.row_group(rg).num_rows()).ok()?;
        let pages = offset_index.get(rg)?.get(leaf)?.page_locations();
        let index = column_index.get(rg)?.get(leaf)?;
        let mut previous_end = 0usize;
        for (p, page) in pages.iter().enumerate() {
            let start = usize::try_from(page.first_row_index).ok()?;
            let end = match pages.get(p + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            // Untrusted metadata: pages must tile the row group in order.
            if start != previous_end || end < start || end > rows {
                return None;
            }
            previous_end = end;
            let keep = match index {
                ColumnIndexMetaData::INT64(ci) => match (ci.min_value(p), ci.max_value(p)) {
                    (Some(min), Some(max)) => bounds.overlaps(*min, *max),
                    _ => true,
                },
                _ => true,
            };
            if keep {
                ranges.push(base + start..base + end);
            }
        }
        if previous_end != rows {
            return None;
        }
        base += rows;
    }
    Some(RowSelection::from_consecutive_ranges(
        ranges.into_iter(),
        total_rows,
    ))
}

/// The rows of `row_groups` (in the order given, as a reader configured with
/// `with_row_groups(row_groups)` sees them) on pages whose page index (column index of
/// `seq` and `timestamp`) may hold selected rows, for `with_row_selection`.
///
/// `None` when the selection has no bounds or the file has no usable page index
/// (read [`reader_options`] to load it): then read the row groups whole.
pub fn page_selection(
    meta: &ParquetMetaData,
    row_groups: &[usize],
    sel: &Selection,
) -> Option<RowSelection> {
    let mut total_rows = 0usize;
    for &rg in row_groups {
        if rg >= meta.num_row_groups() {
            return None;
        }
        total_rows += usize::try_from(meta.row_group(rg).num_rows()).ok()?;
    }
    let mut result: Option<RowSelection> = None;
    for (name, bounds) in [(SEQ, sel.seq_bounds()), (TIMESTAMP, sel.ts_bounds())] {
        if bounds.is_open() {
            continue;
        }
        let Some(leaf) = leaf_index(meta, name) else {
            continue;
        };
        let Some(rows) = pages_matching(meta, row_groups, leaf, bounds, total_rows) else {
            continue;
        };
        result = Some(match result {
            None => rows,
            Some(previous) => previous.intersection(&rows),
        });
    }
    result
}

/// Reader options that load the page index (needed by [`page_selection`]).
pub fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_page_index(true)
}

/// The Strata key-value metadata of a data file (each `None` when absent, e.g. in
/// a file not written by Strata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileInfo {
    /// `strata.station`.
    pub station: Option<String>,
    /// `strata.first_seq`.
    pub first_seq: Option<u64>,
    /// `strata.last_seq`.
    pub last_seq: Option<u64>,
    /// `strata.version`: the Strata version that wrote the file.
    pub strata_version: Option<String>,
    /// `strata.schema_version`.
    pub schema_version: Option<u32>,
}

impl FileInfo {
    /// Checks that the file can be read as messages of `station`.
    ///
    /// # Errors
    /// [`ColumnarError::Schema`] when the file names another station or a schema version
    /// newer than [`SCHEMA_VERSION`].
    pub fn check(&self, station: &StationName) -> Result<(), ColumnarError> {
        if let Some(v) = self.schema_version.filter(|&v| v > SCHEMA_VERSION) {
            return Err(ColumnarError::Schema(format!(
                "schema version {v} is newer than this Strata understands \
                 ({SCHEMA_VERSION}): upgrade Strata"
            )));
        }
        if let Some(s) = self.station.as_deref().filter(|s| *s != station.as_str()) {
            return Err(ColumnarError::Schema(format!(
                "the file belongs to station {s:?}, not {:?}: it is misplaced in the archive",
                station.as_str()
            )));
        }
        Ok(())
    }
}

/// Reads the Strata key-value metadata of a file.
///
/// # Errors
/// [`ColumnarError::Schema`] when a present number is not a number.
pub fn file_info(meta: &ParquetMetaData) -> Result<FileInfo, ColumnarError> {
    let mut info = FileInfo::default();
    let Some(kv) = meta.file_metadata().key_value_metadata() else {
        return Ok(info);
    };
    fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ColumnarError> {
        value.parse().map_err(|_| {
            ColumnarError::Schema(format!("metadata {key} = {value:?} is not a number"))
        })
    }
    for entry in kv {
        let Some(value) = entry.value.as_deref() else {
            continue;
        };
        match entry.key.as_str() {
            META_STATION => info.station = Some(value.to_string()),
            META_FIRST_SEQ => info.first_seq = Some(number(META_FIRST_SEQ, value)?),
            META_LAST_SEQ => info.last_seq = Some(number(META_LAST_SEQ, value)?),
            META_VERSION => info.strata_version = Some(value.to_string()),
            META_SCHEMA_VERSION => info.schema_version = Some(number(META_SCHEMA_VERSION, value)?),
            _ => {}
        }
    }
    Ok(info)
}

/// Decodes a whole file held in memory, keeping only selected messages (in seq order).
///
/// Row groups and pages are pruned by statistics and page index, then every decoded
/// message is checked against `sel`.
///
/// # Errors
/// [`ColumnarError::Parquet`] for a damaged file; [`ColumnarError::Schema`] for a file
/// without the data schema, of another station, or of a newer schema version.
pub fn decode_file(
    station: &StationName,
    bytes: Bytes,
    sel: &Selection,
) -> Result<Vec<Message>, ColumnarError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, reader_options())?;
    check_schema(builder.schema())?;
    let meta = Arc::clone(builder.metadata());
    file_info(&meta)?.check(station)?;

    let row_groups = select_row_groups(&meta, sel);
    if row_groups.is_empty() {
        return Ok(Vec::new());
    }
    let pages = page_selection(&meta, &row_groups, sel);
    let mut builder = builder.with_row_groups(row_groups);
    if let Some(rows) = pages {
        builder = builder.with_row_selection(rows);
    }

    let mut out = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        out.extend(
            from_record_batch(station, &batch)?
                .into_iter()
                .filter(|m| sel.contains(m)),
        );
    }
    Ok(out)
}

/// Every seq a data file holds, in file order (ascending), reading only the
/// `seq` column: how a cluster member learns which rows another process
/// already archived.
///
/// # Errors
/// [`ColumnarError::Parquet`] for a damaged file; [`ColumnarError::Schema`] for a
/// file without the data schema.
pub fn file_seqs(bytes: Bytes) -> Result<Vec<u64>, ColumnarError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, reader_options())?;
    check_schema(builder.schema())?;
    let column = builder
        .schema()
        .index_of(SEQ)
        .map_err(|e| ColumnarError::Schema(e.to_string()))?;
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [column]);
    let mut out = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let seqs = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .ok_or_else(|| ColumnarError::Schema("column seq is not Int64".into()))?;
        out.extend(seqs.values().iter().map(|&s| s as u64));
    }
    Ok(out)
}
