//! The Parquet form of messages, a contract with every reader (DuckDB, Spark, pyarrow,
//! `strata restore`). Pure over bytes: no I/O.
//!
//! - [`schema`]: the Arrow schema of a data file and the exact conversion between
//!   messages and record batches ([`to_record_batch`], [`from_record_batch`]).
//! - [`encode`]: zstd Parquet with statistics, page index and Strata key-value metadata,
//!   written incrementally ([`FileEncoder`]) so a caller can upload parts while encoding,
//!   with row groups that can be encoded on several threads ([`RowGroupEncoder`]).
//! - [`decode`]: pruning by row-group statistics and page index ([`select_row_groups`],
//!   [`page_selection`]) and whole-file decoding ([`decode_file`]).
//!
//! # Data file format (schema version 1)
//!
//! | column      | Arrow type                                         | null | Parquet                        |
//! |-------------|----------------------------------------------------|------|--------------------------------|
//! | `seq`       | Int64 (never negative)                             | no   | INT64                          |
//! | `timestamp` | Timestamp(Microsecond, "UTC")                      | no   | INT64 TIMESTAMP(MICROS, UTC)   |
//! | `id`        | Utf8                                               | yes  | BYTE_ARRAY STRING              |
//! | `subject`   | Utf8                                               | yes  | BYTE_ARRAY STRING              |
//! | `headers`   | List<element: Struct<name: Utf8, value: Utf8>>     | no   | LIST of required group         |
//! | `payload`   | Binary                                             | no   | BYTE_ARRAY                     |
//!
//! - Rows are sorted by `seq`, strictly ascending (declared as the file's sorting column).
//! - `headers` keeps order, case and repeated names; a message without headers has an
//!   empty list (never null). Elements, names and values are never null.
//! - There is no `station` column: the station is the Hive partition `station=…` in the
//!   object path (query engines add it back; a column of the same name would conflict),
//!   and the key-value metadata `strata.station`.
//! - File key-value metadata: `strata.station`, `strata.first_seq`, `strata.last_seq`
//!   (decimal), `strata.version` (the Strata version that wrote it), `strata.schema_version`
//!   ([`SCHEMA_VERSION`]), plus the Arrow schema (`ARROW:schema`) that Arrow readers use.
//! - zstd compression, column statistics and page index (column index + offset index) on,
//!   row groups bounded by rows and encoded bytes ([`ParquetOptions`]).

use crate::message::{StationName, MAX_SEQ};

pub mod decode;
pub mod encode;
pub mod parallel;
pub mod schema;

pub use decode::{
    decode_file, file_info, file_seqs, page_selection, reader_options, select_row_groups, FileInfo,
    Selection,
};
pub use encode::{
    encode_file, even_row_group_ends_by_size, message_data_len, row_group_ends,
    row_group_ends_by_size, writer_properties, EncodedRowGroup, FileEncoder, FileSummary,
    RowGroupEncoder, RowGroupWriter,
};
pub use parallel::{encode_each_in_order, encode_file_on_threads, encode_in_order, RowGroupJob};
pub use schema::{check_schema, from_record_batch, schema, to_record_batch};

/// Version of the data file schema, stored as `strata.schema_version`. Readers refuse
/// files with a newer version.
pub const SCHEMA_VERSION: u32 = 1;

/// Key-value metadata key: the station of every row.
pub const META_STATION: &str = "strata.station";
/// Key-value metadata key: the smallest seq in the file.
pub const META_FIRST_SEQ: &str = "strata.first_seq";
/// Key-value metadata key: the largest seq in the file.
pub const META_LAST_SEQ: &str = "strata.last_seq";
/// Key-value metadata key: the Strata version that wrote the file.
pub const META_VERSION: &str = "strata.version";
/// Key-value metadata key: [`SCHEMA_VERSION`] of the file.
pub const META_SCHEMA_VERSION: &str = "strata.schema_version";

/// Errors encoding or decoding Parquet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnarError {
    /// The Parquet library failed (damaged file, or an internal limit).
    #[error("Parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The Arrow library failed.
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The file or batch does not have the Strata data schema.
    #[error("not a Strata data file: {0}")]
    Schema(String),
    /// The writer options are out of range.
    #[error("invalid Parquet options: {0}; fix the [compaction] settings")]
    InvalidOptions(String),
    /// A message of another station was given to a file encoder.
    #[error("message of station {found} given to the file of station {expected}: a file holds one station")]
    WrongStation {
        /// The station of the file.
        expected: StationName,
        /// The station of the message.
        found: StationName,
    },
    /// Sequences were not strictly ascending.
    #[error("seq {seq} follows seq {previous}: messages must be sorted by seq without duplicates")]
    NotAscending {
        /// The seq written before.
        previous: u64,
        /// The seq that does not follow it.
        seq: u64,
    },
    /// A seq outside the range declared for the file (its object key).
    #[error("seq {seq} is outside the file's declared range {first_seq}..={last_seq}")]
    OutOfRange {
        /// The offending seq.
        seq: u64,
        /// Declared first seq.
        first_seq: u64,
        /// Declared last seq.
        last_seq: u64,
    },
    /// A seq larger than Parquet's Int64 can hold.
    #[error("seq {0} is larger than the largest archivable seq {MAX_SEQ} (Parquet stores Int64)")]
    SeqTooLarge(u64),
    /// A message's text (read back from a WAL segment) is not UTF-8: the
    /// segment changed after it was checked.
    #[error(
        "a message's {what} is not UTF-8 ({reason}): the WAL segment changed after it was checked"
    )]
    NotUtf8 {
        /// Which text: id, subject, header name or header value.
        what: &'static str,
        /// What the check found.
        reason: String,
    },
    /// The file would not hold exactly the declared range.
    #[error(
        "file declared to hold seq {declared_first}..={declared_last} but holds \
         {actual_first}..={actual_last}: its key would not describe its content"
    )]
    RangeMismatch {
        /// Declared first seq.
        declared_first: u64,
        /// Declared last seq.
        declared_last: u64,
        /// First seq written.
        actual_first: u64,
        /// Last seq written.
        actual_last: u64,
    },
    /// An earlier write failed part-way, so the file is inconsistent.
    #[error("an earlier write to this file failed part-way: abandon the file and encode it again")]
    Failed,
    /// A file without messages was requested.
    #[error("no messages to encode: a data file holds at least one message")]
    Empty,
    /// One record batch would exceed Arrow's 2 GiB per-array offset limit.
    #[error("{0} bytes of {1} in one record batch exceed Arrow's 2 GiB limit: convert fewer messages at once")]
    BatchTooLarge(usize, &'static str),
}

/// Parquet writer settings (from `[compaction]`).
///
/// Defaults: zstd level 3, row groups of at most 100,000 rows and 16 MiB of message
/// data: row groups that small stream out of the encoder (and into an upload) while
/// the next one is encoded, and still let DuckDB, Spark and `strata restore` prune by
/// row-group statistics. An encoder holds one row group's encoded pages at a time
/// (one per encoding thread), so `row_group_bytes` also bounds its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// zstd level, 1 (fastest) to 22 (smallest).
    pub zstd_level: i32,
    /// Most rows in one row group (at least 1).
    pub row_group_rows: usize,
    /// Most message bytes in one row group (at least 1): a row group ends with the
    /// message that takes the bytes of its messages (payload, id, subject, headers and
    /// 32 per message) to this size. Counted on the messages, not the encoding, so
    /// the same messages always make the same row groups.
    pub row_group_bytes: usize,
}

/// Default [`ParquetOptions::zstd_level`].
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Default [`ParquetOptions::row_group_rows`].
pub const DEFAULT_ROW_GROUP_ROWS: usize = 100_000;
/// Default [`ParquetOptions::row_group_bytes`]: 16 MiB.
pub const DEFAULT_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
        }
    }
}

#[cfg(test)]
mod tests;
