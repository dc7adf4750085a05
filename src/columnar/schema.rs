//! The Arrow schema of a data file and the exact conversion between messages and
//! record batches (see the table in the [module docs](super)).

use std::sync::{Arc, LazyLock};

use arrow_array::{
    Array, ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{Buffer, NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;

use super::ColumnarError;
use crate::message::{Header, Message, MessageView, Seq, StationName, Timestamp};

/// Column `seq`.
pub const SEQ: &str = "seq";
/// Column `timestamp`.
pub const TIMESTAMP: &str = "timestamp";
/// Column `id`.
pub const ID: &str = "id";
/// Column `subject`.
pub const SUBJECT: &str = "subject";
/// Column `headers`.
pub const HEADERS: &str = "headers";
/// Column `payload`.
pub const PAYLOAD: &str = "payload";
/// Name of the list element field of `headers` (the Parquet spec's name).
pub const HEADER_ELEMENT: &str = "element";
/// Field `name` of a header.
pub const HEADER_NAME: &str = "name";
/// Field `value` of a header.
pub const HEADER_VALUE: &str = "value";

/// Index of `seq` in [`schema`] (the sorting column).
pub const SEQ_INDEX: usize = 0;

/// Largest total of bytes (or items) one Arrow array with i32 offsets can hold.
const MAX_ARRAY_BYTES: usize = i32::MAX as usize;

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new(HEADER_NAME, DataType::Utf8, false),
        Field::new(HEADER_VALUE, DataType::Utf8, false),
    ])
}

fn header_element() -> Arc<Field> {
    Arc::new(Field::new(
        HEADER_ELEMENT,
        DataType::Struct(header_fields()),
        false,
    ))
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SEQ, DataType::Int64, false),
        Field::new(TIMESTAMP, timestamp_type(), false),
        Field::new(ID, DataType::Utf8, true),
        Field::new(SUBJECT, DataType::Utf8, true),
        Field::new(HEADERS, DataType::List(header_element()), false),
        Field::new(PAYLOAD, DataType::Binary, false),
    ]))
});

/// The Arrow schema of a data file.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Fails with [`ColumnarError::BatchTooLarge`] when `total` exceeds one array's limit.
fn check_size(total: usize, what: &'static str) -> Result<(), ColumnarError> {
    if total > MAX_ARRAY_BYTES {
        return Err(ColumnarError::BatchTooLarge(total, what));
    }
    Ok(())
}

/// Messages as one record batch of [`schema`], in the given order.
///
/// # Errors
/// [`ColumnarError::SeqTooLarge`] for a seq above [`crate::message::MAX_SEQ`];
/// [`ColumnarError::BatchTooLarge`] when a column would exceed 2 GiB.
pub fn to_record_batch<M: MessageView>(msgs: &[M]) -> Result<RecordBatch, ColumnarError> {
    let n = msgs.len();
    let (mut id_bytes, mut subject_bytes, mut payload_bytes) = (0usize, 0usize, 0usize);
    let (mut header_count, mut header_bytes) = (0usize, 0usize);
    for m in msgs {
        if Seq::new(m.seq()).is_err() {
            return Err(ColumnarError::SeqTooLarge(m.seq()));
        }
        id_bytes += m.id().map_or(0, <[u8]>::len);
        subject_bytes += m.subject().map_or(0, <[u8]>::len);
        payload_bytes += m.payload().len();
        header_count += m.header_count();
        header_bytes += m.headers_len();
    }
    // Names and values together: an upper bound for each.
    let text_bytes = header_bytes - 8 * header_count;
    check_size(id_bytes, "ids")?;
    check_size(subject_bytes, "subjects")?;
    check_size(payload_bytes, "payloads")?;
    check_size(header_count, "headers")?;
    check_size(text_bytes, "header names and values")?;

    let seq = Int64Array::from_iter_values(msgs.iter().map(|m| m.seq() as i64));
    let timestamp =
        TimestampMicrosecondArray::from_iter_values(msgs.iter().map(|m| m.timestamp().micros()))
            .with_timezone("UTC");

    // Text is gathered as bytes and checked as UTF-8 a column at a time (see
    // `MessageView`): one pass over each column's bytes, not one per string.
    let mut id = Gathered::new(n, id_bytes, true);
    let mut subject = Gathered::new(n, subject_bytes, true);
    let mut payload = Gathered::new(n, payload_bytes, false);
    let mut names = Gathered::new(header_count, text_bytes, false);
    let mut values = Gathered::new(header_count, text_bytes, false);
    let mut header_offsets = Vec::with_capacity(n + 1);
    header_offsets.push(0i32);
    let mut headers_so_far = 0i32;
    for m in msgs {
        id.push(m.id());
        subject.push(m.subject());
        payload.push(Some(m.payload()));
        m.for_each_header(|name, value| {
            names.push(Some(name));
            values.push(Some(value));
        });
        // Cannot overflow: header_count <= i32::MAX was checked above.
        headers_so_far += m.header_count() as i32;
        header_offsets.push(headers_so_far);
    }

    let header_structs = StructArray::try_new(
        header_fields(),
        vec![
            Arc::new(names.utf8("header name")?) as ArrayRef,
            Arc::new(values.utf8("header value")?) as ArrayRef,
        ],
        None,
    )?;
    let headers = ListArray::try_new(
        header_element(),
        OffsetBuffer::new(ScalarBuffer::from(header_offsets)),
        Arc::new(header_structs),
        None,
    )?;

    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(seq),
            Arc::new(timestamp),
            Arc::new(id.utf8("id")?),
            Arc::new(subject.utf8("subject")?),
            Arc::new(headers),
            Arc::new(payload.binary()?),
        ],
    )?)
}

/// The values of one byte or text column, gathered into one buffer with
/// their offsets: a copy and a push per value, the array built at the end.
struct Gathered {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: Option<NullBufferBuilder>,
}

impl Gathered {
    /// Room for `rows` values of `bytes` bytes together; `nullable` columns
    /// take `None`.
    fn new(rows: usize, bytes: usize, nullable: bool) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Gathered {
            offsets,
            values: Vec::with_capacity(bytes),
            nulls: nullable.then(|| NullBufferBuilder::new(rows)),
        }
    }

    /// Appends a value (`None`: null, for a nullable column).
    fn push(&mut self, value: Option<&[u8]>) {
        if let Some(v) = value {
            self.values.extend_from_slice(v);
        }
        if let Some(nulls) = &mut self.nulls {
            nulls.append(value.is_some());
        }
        // Below 2 GiB: the column's bytes were checked by `check_size`.
        self.offsets.push(self.values.len() as i32);
    }

    fn parts(self) -> (OffsetBuffer<i32>, Buffer, Option<NullBuffer>) {
        (
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Buffer::from_vec(self.values),
            self.nulls.and_then(|mut n| n.finish()),
        )
    }

    /// The gathered bytes as a binary column.
    fn binary(self) -> Result<BinaryArray, ColumnarError> {
        let (offsets, values, nulls) = self.parts();
        Ok(BinaryArray::try_new(offsets, values, nulls)?)
    }

    /// The gathered text as a string column, checked as UTF-8 in one pass.
    ///
    /// # Errors
    /// [`ColumnarError::NotUtf8`] naming the column.
    fn utf8(self, what: &'static str) -> Result<StringArray, ColumnarError> {
        let (offsets, values, nulls) = self.parts();
        StringArray::try_new(offsets, values, nulls).map_err(|e| ColumnarError::NotUtf8 {
            what,
            reason: e.to_string(),
        })
    }
}

/// Checks that `schema` holds the columns of [`schema`] with compatible types (any
/// timezone for `timestamp`, any names for the list element; other columns, such as a
/// `station` partition column added by a query engine, are ignored).
///
/// # Errors
/// [`ColumnarError::Schema`] naming the first missing or mistyped column.
pub fn check_schema(schema: &Schema) -> Result<(), ColumnarError> {
    for expected in SCHEMA.fields() {
        let found = schema.field_with_name(expected.name()).map_err(|_| {
            ColumnarError::Schema(format!("column {:?} is missing", expected.name()))
        })?;
        let compatible = match (expected.data_type(), found.data_type()) {
            (DataType::Timestamp(TimeUnit::Microsecond, _), DataType::Timestamp(unit, tz)) => {
                *unit == TimeUnit::Microsecond && tz.is_some()
            }
            (DataType::List(_), DataType::List(item)) => match item.data_type() {
                DataType::Struct(fields) => {
                    let has = |name: &str| {
                        fields
                            .iter()
                            .any(|f| f.name() == name && f.data_type() == &DataType::Utf8)
                    };
                    has(HEADER_NAME) && has(HEADER_VALUE)
                }
                _ => false,
            },
            (e, f) => e == f,
        };
        if !compatible {
            return Err(ColumnarError::Schema(format!(
                "column {:?} has type {} where {} was expected",
                expected.name(),
                found.data_type(),
                expected.data_type()
            )));
        }
    }
    Ok(())
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ColumnarError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ColumnarError::Schema(format!("column {name:?} is missing")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| ColumnarError::Schema(format!("column {name:?} has an unexpected type")))
}

fn no_nulls(array: &dyn Array, name: &str) -> Result<(), ColumnarError> {
    if array.null_count() > 0 {
        return Err(ColumnarError::Schema(format!(
            "column {name:?} holds nulls, which Strata never writes"
        )));
    }
    Ok(())
}

/// `Bytes` sharing an Arrow buffer, so payloads are not copied out of a batch.
struct ArrowOwned(Buffer);

impl AsRef<[u8]> for ArrowOwned {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Record batch of [`schema`] back to messages of `station`, in row order.
///
/// Payloads share the batch's memory (no copy).
///
/// # Errors
/// [`ColumnarError::Schema`] when a column is missing, mistyped, holds nulls where
/// Strata never writes them, or a seq is negative.
pub fn from_record_batch(
    station: &StationName,
    batch: &RecordBatch,
) -> Result<Vec<Message>, ColumnarError> {
    check_schema(&batch.schema())?;
    let seq = column::<Int64Array>(batch, SEQ)?;
    let timestamp = column::<TimestampMicrosecondArray>(batch, TIMESTAMP)?;
    let id = column::<StringArray>(batch, ID)?;
    let subject = column::<StringArray>(batch, SUBJECT)?;
    let headers = column::<ListArray>(batch, HEADERS)?;
    let payload = column::<BinaryArray>(batch, PAYLOAD)?;
    no_nulls(seq, SEQ)?;
    no_nulls(timestamp, TIMESTAMP)?;
    no_nulls(payload, PAYLOAD)?;

    let header_structs = headers
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| ColumnarError::Schema("headers are not structs".into()))?;
    let struct_column = |name: &str| -> Result<&StringArray, ColumnarError> {
        let array = header_structs
            .column_by_name(name)
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| ColumnarError::Schema(format!("header field {name:?} is missing")))?;
        Ok(array)
    };
    let names = struct_column(HEADER_NAME)?;
    let values = struct_column(HEADER_VALUE)?;
    let header_offsets = headers.value_offsets();

    let payload_values = Bytes::from_owner(ArrowOwned(payload.values().clone()));
    let payload_offsets = payload.value_offsets();

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let s = seq.value(row);
        let seq = u64::try_from(s)
            .map_err(|_| ColumnarError::Schema(format!("negative seq {s} in row {row}")))?;

        // A null list (never written by Strata) reads as no headers.
        let mut msg_headers = Vec::new();
        if headers.is_valid(row) {
            let (start, end) = (
                header_offsets[row] as usize,
                header_offsets[row + 1] as usize,
            );
            msg_headers.reserve(end - start);
            for i in start..end {
                if header_structs.is_null(i) || names.is_null(i) || values.is_null(i) {
                    return Err(ColumnarError::Schema(format!(
                        "null header in row {row}, which Strata never writes"
                    )));
                }
                msg_headers.push(Header::new(names.value(i), values.value(i)));
            }
        }

        let (start, end) = (
            payload_offsets[row] as usize,
            payload_offsets[row + 1] as usize,
        );
        out.push(Message {
            station: station.clone(),
            seq,
            timestamp: Timestamp(timestamp.value(row)),
            id: id.is_valid(row).then(|| id.value(row).to_string()),
            subject: subject
                .is_valid(row)
                .then(|| subject.value(row).to_string()),
            headers: msg_headers,
            payload: payload_values.slice(start..end),
        });
    }
    Ok(out)
}
