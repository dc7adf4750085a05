//! Encoding messages into a zstd Parquet data file, incrementally.
//!
//! [`FileEncoder`] writes into an in-memory sink that [`FileEncoder::take_bytes`]
//! drains: each completed row group's bytes can be uploaded (e.g. as a multipart part)
//! while the next one is encoded, so memory stays bounded by one row group plus one
//! write chunk, whatever the size of the file.

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use bytes::Bytes;

use super::schema::{self, SEQ_INDEX};
use super::{
    ColumnarError, ParquetOptions, META_FIRST_SEQ, META_LAST_SEQ, META_SCHEMA_VERSION,
    META_STATION, META_VERSION, SCHEMA_VERSION,
};
use crate::message::{Message, Seq, StationName, Timestamp};

/// Most rows converted to Arrow at once; bounds the overshoot of the byte bound.
const CHUNK_ROWS: usize = 8 * 1024;
/// Most message bytes converted to Arrow at once (also capped by `row_group_bytes / 8`).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Rough per-row overhead beyond variable-length fields (seq, timestamp, offsets).
const ROW_OVERHEAD: usize = 32;

/// Summary of an encoded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Number of messages (rows).
    pub rows: u64,
    /// Smallest (first) seq.
    pub first_seq: u64,
    /// Largest (last) seq.
    pub last_seq: u64,
    /// Earliest message timestamp.
    pub min_timestamp: Timestamp,
    /// Latest message timestamp.
    pub max_timestamp: Timestamp,
}

/// The Parquet writer properties of a data file of `station` holding
/// `first_seq..=last_seq`.
///
/// zstd at `opts.zstd_level`; statistics with page index (column and offset index) on
/// every column; `seq` declared as the sorting column; dictionary encoding only where
/// values repeat (`subject`, headers), not for the unique `seq`, `timestamp`, `id`
/// and `payload`; Strata key-value metadata.
///
/// # Errors
/// [`ColumnarError::InvalidOptions`] for an out-of-range level or a zero bound.
pub fn writer_properties(
    station: &StationName,
    first_seq: u64,
    last_seq: u64,
    opts: &ParquetOptions,
) -> Result<WriterProperties, ColumnarError> {
    let level = ZstdLevel::try_new(opts.zstd_level).map_err(|_| {
        ColumnarError::InvalidOptions(format!("zstd level {} is outside 1..=22", opts.zstd_level))
    })?;
    if opts.row_group_rows == 0 {
        return Err(ColumnarError::InvalidOptions(
            "row_group_rows is 0: use at least 1 (default 1000000)".into(),
        ));
    }
    if opts.row_group_bytes == 0 {
        return Err(ColumnarError::InvalidOptions(
            "row_group_bytes is 0: use at least 1 (default 134217728)".into(),
        ));
    }
    let kv = vec![
        KeyValue::new(META_STATION.into(), station.to_string()),
        KeyValue::new(META_FIRST_SEQ.into(), first_seq.to_string()),
        KeyValue::new(META_LAST_SEQ.into(), last_seq.to_string()),
        KeyValue::new(META_VERSION.into(), env!("CARGO_PKG_VERSION").to_string()),
        KeyValue::new(META_SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
    ];
    let no_dictionary = [schema::SEQ, schema::TIMESTAMP, schema::ID, schema::PAYLOAD];
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_size(opts.row_group_rows)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: SEQ_INDEX as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(kv));
    for column in no_dictionary {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    Ok(builder.build())
}

/// Running facts about the rows written so far.
#[derive(Debug, Clone, Copy)]
struct Written {
    rows: u64,
    first_seq: u64,
    last_seq: u64,
    min_timestamp: Timestamp,
    max_timestamp: Timestamp,
}

/// Encodes one file incrementally: each call to [`FileEncoder::write`] may
/// complete row groups whose bytes [`FileEncoder::take_bytes`] hands out, so a
/// caller can upload parts while encoding and never hold the whole file.
///
/// The concatenation of every [`FileEncoder::take_bytes`] and the bytes of
/// [`FileEncoder::finish`] is the file. The encoder holds at most the open row group
/// (bounded by [`ParquetOptions`]) plus the bytes not yet taken.
#[derive(Debug)]
pub struct FileEncoder {
    writer: ArrowWriter<Vec<u8>>,
    station: StationName,
    first_seq: u64,
    last_seq: u64,
    row_group_bytes: usize,
    chunk_bytes: usize,
    written: Option<Written>,
    /// Set when encoding failed part-way: the file is then unusable.
    failed: bool,
}

impl FileEncoder {
    /// Starts a file for `station` holding exactly `first_seq..=last_seq` (its object
    /// key); the range goes into the key-value metadata and [`FileEncoder::finish`]
    /// checks that the rows match it.
    ///
    /// # Errors
    /// [`ColumnarError::InvalidOptions`] for bad options or `first_seq > last_seq`.
    pub fn new(
        station: &StationName,
        first_seq: u64,
        last_seq: u64,
        opts: &ParquetOptions,
    ) -> Result<Self, ColumnarError> {
        if first_seq > last_seq {
            return Err(ColumnarError::InvalidOptions(format!(
                "file range {first_seq}..={last_seq} is empty: first_seq must not exceed last_seq"
            )));
        }
        let props = writer_properties(station, first_seq, last_seq, opts)?;
        let writer = ArrowWriter::try_new(Vec::new(), schema::schema(), Some(props))?;
        Ok(Self {
            writer,
            station: station.clone(),
            first_seq,
            last_seq,
            row_group_bytes: opts.row_group_bytes,
            chunk_bytes: (opts.row_group_bytes / 8).clamp(1, CHUNK_BYTES),
            written: None,
            failed: false,
        })
    }

    /// Adds messages (ascending seq, continuing the previous call).
    ///
    /// Nothing is written when any message is refused.
    ///
    /// # Errors
    /// [`ColumnarError::WrongStation`], [`ColumnarError::NotAscending`],
    /// [`ColumnarError::OutOfRange`], [`ColumnarError::SeqTooLarge`] (nothing written, the
    /// file can go on), or an encoding error, after which every call fails with
    /// [`ColumnarError::Failed`] and the file must be abandoned.
    pub fn write(&mut self, msgs: &[Message]) -> Result<(), ColumnarError> {
        if self.failed {
            return Err(ColumnarError::Failed);
        }
        let Some(written) = self.check(msgs)? else {
            return Ok(());
        };
        // Cleared only when every chunk is encoded: a partial write leaves the file
        // inconsistent with `written`.
        self.failed = true;
        self.encode(msgs)?;
        self.failed = false;
        self.written = Some(written);
        Ok(())
    }

    /// Converts `msgs` to Arrow chunk by chunk and hands them to the Parquet writer,
    /// closing the row group whenever it reaches `row_group_bytes`.
    fn encode(&mut self, msgs: &[Message]) -> Result<(), ColumnarError> {
        let mut start = 0;
        while start < msgs.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < msgs.len() && end - start < CHUNK_ROWS && bytes < self.chunk_bytes {
                bytes += message_size(&msgs[end]);
                end += 1;
            }
            let batch = schema::to_record_batch(&msgs[start..end])?;
            // ArrowWriter closes a row group by itself at `row_group_rows`.
            self.writer.write(&batch)?;
            if self.writer.in_progress_size() >= self.row_group_bytes {
                self.writer.flush()?;
            }
            start = end;
        }
        Ok(())
    }

    /// Validates `msgs` against the file and what was written before; returns the
    /// facts after writing them (`None` for an empty slice).
    fn check(&self, msgs: &[Message]) -> Result<Option<Written>, ColumnarError> {
        let mut written = self.written;
        for m in msgs {
            if m.station != self.station {
                return Err(ColumnarError::WrongStation {
                    expected: self.station.clone(),
                    found: m.station.clone(),
                });
            }
            if Seq::new(m.seq).is_err() {
                return Err(ColumnarError::SeqTooLarge(m.seq));
            }
            if m.seq < self.first_seq || m.seq > self.last_seq {
                return Err(ColumnarError::OutOfRange {
                    seq: m.seq,
                    first_seq: self.first_seq,
                    last_seq: self.last_seq,
                });
            }
            written = Some(match written {
                None => Written {
                    rows: 1,
                    first_seq: m.seq,
                    last_seq: m.seq,
                    min_timestamp: m.timestamp,
                    max_timestamp: m.timestamp,
                },
                Some(w) if m.seq <= w.last_seq => {
                    return Err(ColumnarError::NotAscending {
                        previous: w.last_seq,
                        seq: m.seq,
                    })
                }
                Some(w) => Written {
                    rows: w.rows + 1,
                    first_seq: w.first_seq,
                    last_seq: m.seq,
                    min_timestamp: w.min_timestamp.min(m.timestamp),
                    max_timestamp: w.max_timestamp.max(m.timestamp),
                },
            });
        }
        Ok(if msgs.is_empty() { None } else { written })
    }

    /// Encoded bytes produced so far and not yet taken.
    pub fn take_bytes(&mut self) -> Bytes {
        self.writer
            .sync()
            .expect("flushing a buffered writer into a Vec cannot fail");
        Bytes::from(std::mem::take(self.writer.inner_mut()))
    }

    /// Bytes encoded so far (taken or not), excluding the open row group.
    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// Finishes the file; returns the remaining bytes and the summary.
    ///
    /// # Errors
    /// [`ColumnarError::Failed`] after a failed write; [`ColumnarError::Empty`] when no
    /// message was written;
    /// [`ColumnarError::RangeMismatch`] when the rows do not start at `first_seq` and
    /// end at `last_seq` given to [`FileEncoder::new`]; or an encoding error.
    pub fn finish(mut self) -> Result<(Bytes, FileSummary), ColumnarError> {
        if self.failed {
            return Err(ColumnarError::Failed);
        }
        let w = match self.written {
            None => return Err(ColumnarError::Empty),
            Some(w) if w.first_seq == self.first_seq && w.last_seq == self.last_seq => w,
            Some(w) => {
                return Err(ColumnarError::RangeMismatch {
                    declared_first: self.first_seq,
                    declared_last: self.last_seq,
                    actual_first: w.first_seq,
                    actual_last: w.last_seq,
                })
            }
        };
        self.writer.finish()?;
        let bytes = self.take_bytes();
        Ok((
            bytes,
            FileSummary {
                rows: w.rows,
                first_seq: w.first_seq,
                last_seq: w.last_seq,
                min_timestamp: w.min_timestamp,
                max_timestamp: w.max_timestamp,
            },
        ))
    }
}

/// Approximate in-memory size of a message's variable-length fields.
fn message_size(m: &Message) -> usize {
    ROW_OVERHEAD
        + m.payload.len()
        + m.id.as_ref().map_or(0, String::len)
        + m.subject.as_ref().map_or(0, String::len)
        + m.headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 8)
            .sum::<usize>()
}

/// Encodes a whole file in memory (small files, tests). `msgs` must be non-empty,
/// of `station`, sorted by seq without duplicates; the file covers the first to
/// the last seq.
///
/// # Errors
/// As [`FileEncoder::write`] and [`FileEncoder::finish`].
pub fn encode_file(
    station: &StationName,
    msgs: &[Message],
    opts: &ParquetOptions,
) -> Result<(Bytes, FileSummary), ColumnarError> {
    let (first_seq, last_seq) = match (msgs.first(), msgs.last()) {
        (Some(first), Some(last)) if first.seq <= last.seq => (first.seq, last.seq),
        (Some(first), Some(last)) => {
            return Err(ColumnarError::NotAscending {
                previous: first.seq,
                seq: last.seq,
            })
        }
        _ => return Err(ColumnarError::Empty),
    };
    let mut encoder = FileEncoder::new(station, first_seq, last_seq, opts)?;
    encoder.write(msgs)?;
    // Nothing was taken, so the remaining bytes are the whole file.
    encoder.finish()
}
