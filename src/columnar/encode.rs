//! Encoding messages into a zstd Parquet data file, incrementally, on one thread or
//! several.
//!
//! A file's row groups are cut from its messages alone ([`row_group_ends`]): a row
//! group holds at most `row_group_rows` messages and ends with the message that takes
//! its message bytes to `row_group_bytes`. So the same messages always make the same
//! row groups and the same bytes, however they are handed to the encoder and however
//! many threads encode them, and a compaction redone after a crash writes the same
//! object.
//!
//! - [`FileEncoder::write`] encodes on the calling thread.
//! - [`RowGroupEncoder::encode`] encodes one row group on any thread; its
//!   [`EncodedRowGroup`] is appended in order with [`FileEncoder::append`]. Row
//!   groups of one file (and of different files) can so be encoded in parallel.
//!
//! [`FileEncoder::take_bytes`] drains the file written so far: each completed row
//! group's bytes can be uploaded (e.g. as a multipart part) while the next one is
//! encoded, so memory stays bounded by the row groups in progress, whatever the size
//! of the file.

use std::sync::Arc;

use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use bytes::Bytes;

use super::schema::{self, SEQ_INDEX};
use super::{
    ColumnarError, ParquetOptions, META_FIRST_SEQ, META_LAST_SEQ, META_SCHEMA_VERSION,
    META_STATION, META_VERSION, SCHEMA_VERSION,
};
use crate::message::{Message, MessageView, Seq, StationName, Timestamp};

/// Most rows converted to Arrow at once.
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

/// The size at which a column's data page is closed (before compression;
/// checked after every 1,024 values, so a page of large values holds 1,024).
///
/// A quarter of parquet-rs' 1 MiB default: a page, its zstd state and its
/// buffers stay closer to the core's cache. Measured against 1 MiB: the whole
/// `strata flush` ~5 % faster and one-thread encoding 5–10 % faster; files
/// 0.4 % smaller for ~300-byte payloads, 0.9 % larger for ~700-byte ones
/// (each page is its own zstd frame). `docs/bench/flush.md`, `docs/bench/parquet.md`.
pub const DATA_PAGE_BYTES: usize = 256 << 10;

/// The Parquet writer properties of a data file of `station` holding
/// `first_seq..=last_seq`.
///
/// zstd at `opts.zstd_level`; data pages of [`DATA_PAGE_BYTES`]; statistics with page
/// index (column and offset index) on every column; `seq` declared as the sorting
/// column; dictionary encoding only where values repeat (`subject`, headers), not for
/// the unique `seq`, `timestamp`, `id` and `payload`; Strata key-value metadata.
///
/// # Errors
/// [`ColumnarError::InvalidOptions`] for an out-of-range level or a zero bound.
pub fn writer_properties(
    station: &StationName,
    first_seq: u64,
    last_seq: u64,
    opts: &ParquetOptions,
) -> Result<WriterProperties, ColumnarError> {
    let kv = vec![
        KeyValue::new(META_STATION.into(), station.to_string()),
        KeyValue::new(META_FIRST_SEQ.into(), first_seq.to_string()),
        KeyValue::new(META_LAST_SEQ.into(), last_seq.to_string()),
        KeyValue::new(META_VERSION.into(), env!("CARGO_PKG_VERSION").to_string()),
        KeyValue::new(META_SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
    ];
    Ok(column_properties(opts)?
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: SEQ_INDEX as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(kv))
        .build())
}

/// The settings of [`writer_properties`] that decide how columns are encoded.
fn column_properties(
    opts: &ParquetOptions,
) -> Result<parquet::file::properties::WriterPropertiesBuilder, ColumnarError> {
    let level = ZstdLevel::try_new(opts.zstd_level).map_err(|_| {
        ColumnarError::InvalidOptions(format!("zstd level {} is outside 1..=22", opts.zstd_level))
    })?;
    if opts.row_group_rows == 0 {
        return Err(ColumnarError::InvalidOptions(
            "row_group_rows is 0: use at least 1 (default 100000)".into(),
        ));
    }
    if opts.row_group_bytes == 0 {
        return Err(ColumnarError::InvalidOptions(
            "row_group_bytes is 0: use at least 1 (default 16777216)".into(),
        ));
    }
    let no_dictionary = [schema::SEQ, schema::TIMESTAMP, schema::ID, schema::PAYLOAD];
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_size(opts.row_group_rows)
        .set_data_page_size_limit(DATA_PAGE_BYTES);
    for column in no_dictionary {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    Ok(builder)
}

/// Facts about a run of consecutive rows (a row group, or the file so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    rows: u64,
    first_seq: u64,
    last_seq: u64,
    min_timestamp: Timestamp,
    max_timestamp: Timestamp,
}

impl Written {
    /// The facts of `later`'s rows following these.
    fn then(self, later: Written) -> Written {
        Written {
            rows: self.rows + later.rows,
            first_seq: self.first_seq,
            last_seq: later.last_seq,
            min_timestamp: self.min_timestamp.min(later.min_timestamp),
            max_timestamp: self.max_timestamp.max(later.max_timestamp),
        }
    }
}

/// Checks that `msgs` are of `station`, archivable and strictly ascending by seq,
/// and returns their facts (`None` for no message).
fn facts_of<M: MessageView>(
    station: &StationName,
    msgs: &[M],
) -> Result<Option<Written>, ColumnarError> {
    let mut facts: Option<Written> = None;
    for m in msgs {
        if m.station() != station.as_str() {
            return Err(ColumnarError::WrongStation {
                expected: station.clone(),
                // A view's station follows the rules (a `StationName`, or checked when read).
                found: StationName::trusted(m.station()),
            });
        }
        let seq = m.seq();
        if Seq::new(seq).is_err() {
            return Err(ColumnarError::SeqTooLarge(seq));
        }
        let one = Written {
            rows: 1,
            first_seq: seq,
            last_seq: seq,
            min_timestamp: m.timestamp(),
            max_timestamp: m.timestamp(),
        };
        facts = Some(match facts {
            None => one,
            Some(w) if seq <= w.last_seq => {
                return Err(ColumnarError::NotAscending {
                    previous: w.last_seq,
                    seq,
                })
            }
            Some(w) => w.then(one),
        });
    }
    Ok(facts)
}

/// Where the row groups of a file holding `msgs` end (exclusive indices into
/// `msgs`, ascending, the last one `msgs.len()`): a row group takes messages until
/// it holds `row_group_rows` of them or their bytes reach `row_group_bytes`.
/// [`FileEncoder::write`] cuts its row groups by the same rule.
pub fn row_group_ends(msgs: &[Message], opts: &ParquetOptions) -> Vec<usize> {
    row_group_ends_by_size(msgs.iter().map(message_data_len), opts)
}

/// [`row_group_ends`] of rows given by their data lengths (see
/// [`message_data_len`]), for messages not in memory.
pub fn row_group_ends_by_size(
    data_lens: impl IntoIterator<Item = usize>,
    opts: &ParquetOptions,
) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut fill = Fill::default();
    let mut n = 0;
    for data_len in data_lens {
        n += 1;
        if fill.add_len(data_len, opts) {
            ends.push(n);
            fill = Fill::default();
        }
    }
    if fill.rows > 0 {
        ends.push(n);
    }
    ends
}

/// Where the row groups of a file end when all its rows are known before it is
/// written: as few row groups as the bounds of [`row_group_ends`] allow, rounded
/// up to an even number when there is more than one, of even size. Their number
/// is set by the bound that needs more of them (bytes or rows), and the rows are
/// cut where that measure reaches each even share; a bound still closes a row
/// group before its share (many small rows in a row). Encoded on the cores of a
/// machine (which come in pairs), the row groups then take about as long on each:
/// a file of 58 MiB with 16 MiB row groups gets four of ~14.5 MiB instead of three
/// of 16 MiB and one of 10, and one of 40 MiB four of 10 MiB instead of 16, 16
/// and 8. The cut depends on the rows only, not on the number of threads.
pub fn even_row_group_ends_by_size<I>(data_lens: I, opts: &ParquetOptions) -> Vec<usize>
where
    I: IntoIterator<Item = usize>,
    I::IntoIter: Clone,
{
    let lens = data_lens.into_iter();
    let (rows, bytes) = lens.clone().fold((0u128, 0u128), |(n, b), len| {
        (n + 1, b + (ROW_OVERHEAD + len) as u128)
    });
    if rows == 0 {
        return Vec::new();
    }
    let by_bytes = bytes.div_ceil(opts.row_group_bytes.max(1) as u128);
    let by_rows = rows.div_ceil(opts.row_group_rows.max(1) as u128);
    let mut groups = by_bytes.max(by_rows).max(1);
    if groups > 1 && groups % 2 == 1 {
        groups += 1;
    }
    // The measure whose bound decides the number of row groups is the one shared out.
    let (total, share_bytes) = if by_bytes >= by_rows {
        (bytes, true)
    } else {
        (rows, false)
    };
    let mut ends = Vec::new();
    let mut fill = Fill::default();
    let (mut n, mut done) = (0usize, 0u128);
    for data_len in lens {
        n += 1;
        done += if share_bytes {
            (ROW_OVERHEAD + data_len) as u128
        } else {
            1
        };
        let full = fill.add_len(data_len, opts);
        // The share this row group ends at: (its number) / groups of the total.
        let reached = done * groups >= total * (ends.len() as u128 + 1);
        if full || reached {
            ends.push(n);
            fill = Fill::default();
        }
    }
    if fill.rows > 0 {
        ends.push(n);
    }
    ends
}

/// How full a row group is, by the rule of [`row_group_ends`].
#[derive(Debug, Clone, Copy, Default)]
struct Fill {
    rows: usize,
    bytes: usize,
}

impl Fill {
    /// Counts `m` in; returns whether the row group is then full.
    fn add(&mut self, m: &Message, opts: &ParquetOptions) -> bool {
        self.add_len(message_data_len(m), opts)
    }

    /// Counts in a message of `data_len` data bytes; returns whether the row
    /// group is then full.
    fn add_len(&mut self, data_len: usize, opts: &ParquetOptions) -> bool {
        self.rows += 1;
        self.bytes += ROW_OVERHEAD + data_len;
        self.rows >= opts.row_group_rows || self.bytes >= opts.row_group_bytes
    }
}

/// Encodes the row groups of data files on any thread; cheap to clone and share.
///
/// Built from the same [`ParquetOptions`] as the [`FileEncoder`] its row groups are
/// appended to, it encodes exactly as that file encoder would itself.
#[derive(Debug, Clone)]
pub struct RowGroupEncoder {
    factory: Arc<ArrowRowGroupWriterFactory>,
    chunk_bytes: usize,
}

/// One row group's column chunks, encoded by [`RowGroupEncoder::encode`] and not
/// yet part of a file.
#[derive(Debug)]
pub struct EncodedRowGroup {
    chunks: Vec<parquet::arrow::arrow_writer::ArrowColumnChunk>,
    facts: Written,
}

impl EncodedRowGroup {
    /// Messages in the row group.
    pub fn rows(&self) -> u64 {
        self.facts.rows
    }
}

impl RowGroupEncoder {
    /// An encoder of row groups with `opts`' column settings.
    ///
    /// # Errors
    /// [`ColumnarError::InvalidOptions`] for bad options.
    pub fn new(opts: &ParquetOptions) -> Result<Self, ColumnarError> {
        // Column writers depend only on the schema and the column settings, which
        // every file shares: the file's own metadata does not matter here.
        let props = column_properties(opts)?.build();
        let (_, factory) = ArrowWriter::try_new(Vec::new(), schema::schema(), Some(props))?
            .into_serialized_writer()?;
        Ok(Self::from_factory(factory, opts))
    }

    fn from_factory(factory: ArrowRowGroupWriterFactory, opts: &ParquetOptions) -> Self {
        Self {
            factory: Arc::new(factory),
            chunk_bytes: (opts.row_group_bytes / 8).clamp(1, CHUNK_BYTES),
        }
    }

    /// Encodes `msgs` as one row group of a file of `station`.
    ///
    /// # Errors
    /// [`ColumnarError::Empty`] for no message; [`ColumnarError::WrongStation`],
    /// [`ColumnarError::SeqTooLarge`], [`ColumnarError::NotAscending`]; or an encoding
    /// error.
    pub fn encode<M: MessageView>(
        &self,
        station: &StationName,
        msgs: &[M],
    ) -> Result<EncodedRowGroup, ColumnarError> {
        let mut group = self.start(station)?;
        group.write(msgs)?;
        group.finish()
    }

    /// Starts a row group of `station` whose messages are then written in
    /// parts ([`RowGroupWriter::write`]); the same bytes as
    /// [`RowGroupEncoder::encode`] of all of them when each part is one of the
    /// chunks [`RowGroupEncoder::chunk_ends`] cuts.
    ///
    /// # Errors
    /// An encoding error.
    pub fn start(&self, station: &StationName) -> Result<RowGroupWriter<'_>, ColumnarError> {
        Ok(RowGroupWriter {
            encoder: self,
            station: station.clone(),
            writers: self.columns()?,
            facts: None,
        })
    }

    /// Where the chunks that a row group's messages are converted to Arrow in
    /// end (exclusive indices, the last one the number of messages), for
    /// messages of these data lengths (see [`message_data_len`]).
    pub fn chunk_ends(&self, data_lens: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut ends = Vec::new();
        let (mut rows, mut bytes, mut n) = (0, 0, 0);
        for data_len in data_lens {
            rows += 1;
            bytes += ROW_OVERHEAD + data_len;
            n += 1;
            if rows == CHUNK_ROWS || bytes >= self.chunk_bytes {
                ends.push(n);
                (rows, bytes) = (0, 0);
            }
        }
        if rows > 0 {
            ends.push(n);
        }
        ends
    }

    fn columns(&self) -> Result<Vec<ArrowColumnWriter>, ColumnarError> {
        Ok(self.factory.create_column_writers(0)?)
    }

    /// Converts `msgs` to Arrow chunk by chunk and writes them into `writers`.
    fn write_chunks<M: MessageView>(
        &self,
        writers: &mut [ArrowColumnWriter],
        msgs: &[M],
    ) -> Result<(), ColumnarError> {
        let schema = schema::schema();
        let mut start = 0;
        for end in self.chunk_ends(msgs.iter().map(message_data_len)) {
            let batch = schema::to_record_batch(&msgs[start..end])?;
            let mut columns = writers.iter_mut();
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                for leaf in compute_leaves(field, array)? {
                    let Some(writer) = columns.next() else {
                        return Err(ColumnarError::Schema(
                            "more leaf columns than column writers".into(),
                        ));
                    };
                    writer.write(&leaf)?;
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// A row group being encoded from parts of its messages; see
/// [`RowGroupEncoder::start`].
pub struct RowGroupWriter<'a> {
    encoder: &'a RowGroupEncoder,
    station: StationName,
    writers: Vec<ArrowColumnWriter>,
    facts: Option<Written>,
}

impl std::fmt::Debug for RowGroupWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroupWriter")
            .field("station", &self.station)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl RowGroupWriter<'_> {
    /// Writes `msgs`, the row group's next messages.
    ///
    /// # Errors
    /// As [`RowGroupEncoder::encode`]; [`ColumnarError::NotAscending`] also
    /// across parts.
    pub fn write<M: MessageView>(&mut self, msgs: &[M]) -> Result<(), ColumnarError> {
        let Some(part) = facts_of(&self.station, msgs)? else {
            return Ok(());
        };
        self.facts = Some(match self.facts {
            None => part,
            Some(w) if part.first_seq <= w.last_seq => {
                return Err(ColumnarError::NotAscending {
                    previous: w.last_seq,
                    seq: part.first_seq,
                })
            }
            Some(w) => w.then(part),
        });
        self.encoder.write_chunks(&mut self.writers, msgs)
    }

    /// The row group's column chunks.
    ///
    /// # Errors
    /// [`ColumnarError::Empty`] when no message was written; an encoding error.
    pub fn finish(self) -> Result<EncodedRowGroup, ColumnarError> {
        let facts = self.facts.ok_or(ColumnarError::Empty)?;
        Ok(EncodedRowGroup {
            chunks: close_columns(self.writers)?,
            facts,
        })
    }
}

fn close_columns(
    writers: Vec<ArrowColumnWriter>,
) -> Result<Vec<parquet::arrow::arrow_writer::ArrowColumnChunk>, ColumnarError> {
    Ok(writers
        .into_iter()
        .map(ArrowColumnWriter::close)
        .collect::<Result<_, _>>()?)
}

/// The row group [`FileEncoder::write`] is filling.
#[derive(Debug)]
struct OpenRowGroup {
    writers: Vec<ArrowColumnWriter>,
    fill: Fill,
}

/// Encodes one file incrementally: [`FileEncoder::write`] (on this thread) and
/// [`FileEncoder::append`] (row groups encoded elsewhere) may complete row groups
/// whose bytes [`FileEncoder::take_bytes`] hands out, so a caller can upload parts
/// while encoding and never hold the whole file.
///
/// The concatenation of every [`FileEncoder::take_bytes`] and the bytes of
/// [`FileEncoder::finish`] is the file. The encoder holds at most the open row group
/// (bounded by [`ParquetOptions`]) plus the bytes not yet taken.
pub struct FileEncoder {
    writer: SerializedFileWriter<Vec<u8>>,
    groups: RowGroupEncoder,
    opts: ParquetOptions,
    open: Option<OpenRowGroup>,
    station: StationName,
    first_seq: u64,
    last_seq: u64,
    written: Option<Written>,
    /// Set when encoding failed part-way: the file is then unusable.
    failed: bool,
}

impl std::fmt::Debug for FileEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder")
            .field("station", &self.station)
            .field("first_seq", &self.first_seq)
            .field("last_seq", &self.last_seq)
            .field("written", &self.written)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
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
        let (writer, factory) = ArrowWriter::try_new(Vec::new(), schema::schema(), Some(props))?
            .into_serialized_writer()?;
        Ok(Self {
            writer,
            groups: RowGroupEncoder::from_factory(factory, opts),
            opts: opts.clone(),
            open: None,
            station: station.clone(),
            first_seq,
            last_seq,
            written: None,
            failed: false,
        })
    }

    /// Adds messages (ascending seq, continuing the previous call), encoding them on
    /// this thread; row groups are cut as [`row_group_ends`] says.
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
        let Some(facts) = facts_of(&self.station, msgs)? else {
            return Ok(());
        };
        let written = self.follow(facts)?;
        // Cleared only when every message is encoded: a partial write leaves the
        // file inconsistent with `written`.
        self.failed = true;
        self.encode(msgs)?;
        self.failed = false;
        self.written = Some(written);
        Ok(())
    }

    /// Appends a row group encoded by a [`RowGroupEncoder`] built with the same
    /// options, after everything written so far (an open row group of
    /// [`FileEncoder::write`] is closed first). For the file to come out as
    /// [`FileEncoder::write`] would make it, cut the row groups by [`row_group_ends`].
    ///
    /// # Errors
    /// As [`FileEncoder::write`]: [`ColumnarError::NotAscending`] or
    /// [`ColumnarError::OutOfRange`] refuse the row group (nothing written), an
    /// encoding error fails the file.
    pub fn append(&mut self, group: EncodedRowGroup) -> Result<(), ColumnarError> {
        if self.failed {
            return Err(ColumnarError::Failed);
        }
        let written = self.follow(group.facts)?;
        self.failed = true;
        self.close_open()?;
        self.write_row_group(group.chunks)?;
        self.failed = false;
        self.written = Some(written);
        Ok(())
    }

    /// The file's facts once rows with `facts` follow what was written, if they may.
    fn follow(&self, facts: Written) -> Result<Written, ColumnarError> {
        for seq in [facts.first_seq, facts.last_seq] {
            if seq < self.first_seq || seq > self.last_seq {
                return Err(ColumnarError::OutOfRange {
                    seq,
                    first_seq: self.first_seq,
                    last_seq: self.last_seq,
                });
            }
        }
        match self.written {
            None => Ok(facts),
            Some(w) if facts.first_seq <= w.last_seq => Err(ColumnarError::NotAscending {
                previous: w.last_seq,
                seq: facts.first_seq,
            }),
            Some(w) => Ok(w.then(facts)),
        }
    }

    /// Encodes `msgs` into the open row group, closing each one that fills up.
    fn encode(&mut self, msgs: &[Message]) -> Result<(), ColumnarError> {
        let mut start = 0;
        while start < msgs.len() {
            let mut open = match self.open.take() {
                Some(open) => open,
                None => OpenRowGroup {
                    writers: self.groups.columns()?,
                    fill: Fill::default(),
                },
            };
            let mut end = start;
            let mut full = false;
            while end < msgs.len() && !full {
                full = open.fill.add(&msgs[end], &self.opts);
                end += 1;
            }
            self.groups
                .write_chunks(&mut open.writers, &msgs[start..end])?;
            if full {
                self.write_row_group(close_columns(open.writers)?)?;
            } else {
                self.open = Some(open);
            }
            start = end;
        }
        Ok(())
    }

    /// Closes the row group [`FileEncoder::write`] was filling, if any.
    fn close_open(&mut self) -> Result<(), ColumnarError> {
        if let Some(open) = self.open.take() {
            self.write_row_group(close_columns(open.writers)?)?;
        }
        Ok(())
    }

    fn write_row_group(
        &mut self,
        chunks: Vec<parquet::arrow::arrow_writer::ArrowColumnChunk>,
    ) -> Result<(), ColumnarError> {
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Encoded bytes produced so far and not yet taken.
    pub fn take_bytes(&mut self) -> Bytes {
        self.writer
            .flush()
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
        self.close_open()?;
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

/// The bytes of a message that count towards a row group's size: payload, id,
/// subject, and per header its name, its value and 8.
pub fn message_data_len<M: MessageView>(m: &M) -> usize {
    m.data_len()
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
