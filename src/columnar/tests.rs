use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, LogicalType, TimeUnit as PqTimeUnit, Type};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use proptest::prelude::*;

use super::*;
use crate::message::{Header, Message, StationName, Timestamp, MAX_SEQ};

fn station() -> StationName {
    StationName::new("orders").unwrap()
}

/// Base timestamp: 2026-11-24T10:00:00Z.
const T0: i64 = 1_795_514_400_000_000;

fn msg(seq: u64) -> Message {
    Message {
        station: station(),
        seq,
        timestamp: Timestamp(T0 + seq as i64 * 1_000),
        id: (seq % 3 != 0).then(|| format!("id-{seq}")),
        subject: (seq % 5 != 0).then(|| format!("orders.{}", seq % 7)),
        headers: (0..seq % 4)
            .map(|i| {
                Header::new(
                    if i % 2 == 0 { "X-Trace" } else { "x-trace" },
                    format!("v{i}"),
                )
            })
            .collect(),
        payload: Bytes::from(format!(
            "{{\"order\":{seq},\"amount\":{}}}",
            seq * 17 % 1000
        )),
    }
}

fn msgs(range: std::ops::RangeInclusive<u64>) -> Vec<Message> {
    range.map(msg).collect()
}

fn metadata(bytes: &Bytes) -> Arc<ParquetMetaData> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), reader_options())
            .unwrap();
    Arc::clone(builder.metadata())
}

fn small_groups(rows: usize) -> ParquetOptions {
    ParquetOptions {
        row_group_rows: rows,
        ..ParquetOptions::default()
    }
}

#[test]
fn schema_is_exactly_the_contract() {
    let header = Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]);
    let expected = Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("id", DataType::Utf8, true),
        Field::new("subject", DataType::Utf8, true),
        Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(header),
                false,
            ))),
            false,
        ),
        Field::new("payload", DataType::Binary, false),
    ]);
    assert_eq!(*schema(), expected);
    assert!(schema().metadata().is_empty());
}

#[test]
fn parquet_schema_uses_standard_types() {
    let (bytes, _) = encode_file(&station(), &msgs(1..=10), &ParquetOptions::default()).unwrap();
    let meta = metadata(&bytes);
    let descr = meta.file_metadata().schema_descr();
    let leaves: Vec<(String, Type)> = descr
        .columns()
        .iter()
        .map(|c| (c.path().string(), c.physical_type()))
        .collect();
    assert_eq!(
        leaves,
        vec![
            ("seq".to_string(), Type::INT64),
            ("timestamp".to_string(), Type::INT64),
            ("id".to_string(), Type::BYTE_ARRAY),
            ("subject".to_string(), Type::BYTE_ARRAY),
            ("headers.list.element.name".to_string(), Type::BYTE_ARRAY),
            ("headers.list.element.value".to_string(), Type::BYTE_ARRAY),
            ("payload".to_string(), Type::BYTE_ARRAY),
        ]
    );
    assert_eq!(
        descr.column(1).logical_type_ref(),
        Some(&LogicalType::Timestamp {
            is_adjusted_to_u_t_c: true,
            unit: PqTimeUnit::MICROS,
        })
    );
    assert!(
        !descr.column(0).self_type().is_optional(),
        "seq is required"
    );
    assert!(descr.column(2).self_type().is_optional(), "id is optional");
}

#[test]
fn file_round_trips_with_metadata() {
    let input = msgs(1..=500);
    let (bytes, summary) = encode_file(&station(), &input, &small_groups(64)).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(
        summary,
        FileSummary {
            rows: 500,
            first_seq: 1,
            last_seq: 500,
            min_timestamp: Timestamp(T0 + 1_000),
            max_timestamp: Timestamp(T0 + 500_000),
        }
    );
    let output = decode_file(&station(), bytes.clone(), &Selection::all()).unwrap();
    assert_eq!(output, input);

    let meta = metadata(&bytes);
    let info = file_info(&meta).unwrap();
    assert_eq!(
        info,
        FileInfo {
            station: Some("orders".into()),
            first_seq: Some(1),
            last_seq: Some(500),
            strata_version: Some(env!("CARGO_PKG_VERSION").into()),
            schema_version: Some(SCHEMA_VERSION),
        }
    );
    let keys: Vec<&str> = meta
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    for key in [
        META_STATION,
        META_FIRST_SEQ,
        META_LAST_SEQ,
        META_VERSION,
        META_SCHEMA_VERSION,
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

#[test]
fn writer_settings_are_applied() {
    let opts = ParquetOptions {
        zstd_level: 5,
        ..small_groups(100)
    };
    let (bytes, _) = encode_file(&station(), &msgs(1..=250), &opts).unwrap();
    let meta = metadata(&bytes);
    assert_eq!(meta.num_row_groups(), 3);
    assert!(meta.column_index().is_some(), "column index written");
    assert!(meta.offset_index().is_some(), "offset index written");
    let descr = meta.file_metadata().schema_descr();
    for rg in meta.row_groups() {
        let sorting = rg.sorting_columns().unwrap();
        assert_eq!(sorting.len(), 1);
        assert_eq!(sorting[0].column_idx, 0);
        assert!(!sorting[0].descending);
        for (i, col) in rg.columns().iter().enumerate() {
            assert!(
                matches!(col.compression(), Compression::ZSTD(_)),
                "column {i} not zstd"
            );
            assert!(col.statistics().is_some(), "column {i} has no statistics");
        }
        let payload = descr
            .columns()
            .iter()
            .position(|c| c.path().string() == "payload")
            .unwrap();
        assert!(
            !rg.column(payload)
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)),
            "payload must not be dictionary encoded"
        );
    }
}

#[test]
fn row_groups_are_pruned_by_seq_and_time() {
    let (bytes, _) = encode_file(&station(), &msgs(1..=100), &small_groups(10)).unwrap();
    let meta = metadata(&bytes);
    assert_eq!(meta.num_row_groups(), 10);

    let by_seq = Selection {
        from_seq: Some(25),
        to_seq: Some(34),
        ..Selection::all()
    };
    assert_eq!(select_row_groups(&meta, &by_seq), vec![2, 3]);
    let got = decode_file(&station(), bytes.clone(), &by_seq).unwrap();
    assert_eq!(got, msgs(25..=34));

    let by_time = Selection {
        from_ts: Some(Timestamp(T0 + 95_000)),
        ..Selection::all()
    };
    assert_eq!(select_row_groups(&meta, &by_time), vec![9]);
    assert_eq!(
        decode_file(&station(), bytes.clone(), &by_time).unwrap(),
        msgs(95..=100)
    );

    let both = Selection {
        from_seq: Some(1),
        to_seq: Some(60),
        from_ts: Some(Timestamp(T0 + 41_000)),
        to_ts: Some(Timestamp(T0 + 41_500)),
    };
    assert_eq!(select_row_groups(&meta, &both), vec![4]);
    assert_eq!(
        decode_file(&station(), bytes.clone(), &both).unwrap(),
        msgs(41..=41)
    );

    let nothing = Selection {
        from_seq: Some(101),
        ..Selection::all()
    };
    assert!(select_row_groups(&meta, &nothing).is_empty());
    assert!(decode_file(&station(), bytes.clone(), &nothing)
        .unwrap()
        .is_empty());

    let inverted = Selection {
        from_seq: Some(50),
        to_seq: Some(40),
        ..Selection::all()
    };
    assert!(inverted.is_empty());
    assert!(select_row_groups(&meta, &inverted).is_empty());

    assert_eq!(select_row_groups(&meta, &Selection::all()).len(), 10);
}

#[test]
fn row_groups_without_statistics_are_kept() {
    let props = WriterProperties::builder()
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_size(10)
        .build();
    let batch = to_record_batch(&msgs(1..=30)).unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    let bytes = Bytes::from(writer.into_inner().unwrap());
    let meta = metadata(&bytes);
    let sel = Selection {
        from_seq: Some(25),
        to_seq: Some(26),
        ..Selection::all()
    };
    assert_eq!(select_row_groups(&meta, &sel), vec![0, 1, 2]);
    // No Strata metadata, no statistics: still decodes, and exactly.
    assert_eq!(decode_file(&station(), bytes, &sel).unwrap(), msgs(25..=26));
}

#[test]
fn pages_are_pruned_by_page_index() {
    // Small messages so that one row group holds several pages (pages close at
    // 20,000 rows or `DATA_PAGE_BYTES`).
    let input: Vec<Message> = (1..=60_000)
        .map(|seq| Message {
            station: station(),
            seq,
            timestamp: Timestamp(T0 + seq as i64),
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: Bytes::from_static(b"{}"),
        })
        .collect();
    let (bytes, _) = encode_file(&station(), &input, &ParquetOptions::default()).unwrap();
    let meta = metadata(&bytes);
    assert_eq!(meta.num_row_groups(), 1);
    let seq_pages = &meta.offset_index().unwrap()[0][0];
    let page_count = seq_pages.page_locations().len();
    assert!(page_count >= 3, "expected several pages, got {page_count}");
    let second_page_start = seq_pages.page_locations()[1].first_row_index as u64;
    let third_page_start = seq_pages.page_locations()[2].first_row_index as u64;

    // Rows inside the second page only.
    let sel = Selection {
        from_seq: Some(second_page_start + 2),
        to_seq: Some(second_page_start + 10),
        ..Selection::all()
    };
    let groups = select_row_groups(&meta, &sel);
    let rows = page_selection(&meta, &groups, &sel).unwrap();
    assert_eq!(
        rows.row_count() as u64,
        third_page_start - second_page_start
    );
    assert_eq!(
        rows.skipped_row_count() as u64,
        60_000 - rows.row_count() as u64
    );
    let got = decode_file(&station(), bytes.clone(), &sel).unwrap();
    assert_eq!(
        got,
        input[(second_page_start + 1) as usize..(second_page_start + 10) as usize].to_vec()
    );

    // A time bound prunes too, and both bounds intersect.
    let sel = Selection {
        to_ts: Some(Timestamp(T0 + 5)),
        from_seq: Some(3),
        ..Selection::all()
    };
    let rows = page_selection(&meta, &[0], &sel).unwrap();
    assert_eq!(rows.row_count() as u64, second_page_start);
    assert_eq!(
        decode_file(&station(), bytes.clone(), &sel).unwrap(),
        input[2..5].to_vec()
    );

    // No bounds: nothing to prune with.
    assert!(page_selection(&meta, &[0], &Selection::all()).is_none());
}

#[test]
fn data_pages_close_at_their_size() {
    // 2 MiB of payload in one row group; the size is checked after every 1,024 values.
    let input: Vec<Message> = (1..=4096)
        .map(|seq| Message {
            payload: Bytes::from(vec![(seq % 251) as u8; 512]),
            ..msg(seq)
        })
        .collect();
    let (bytes, _) = encode_file(&station(), &input, &ParquetOptions::default()).unwrap();
    let meta = metadata(&bytes);
    assert_eq!(meta.num_row_groups(), 1);
    let payload = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == "payload")
        .unwrap();
    let pages = meta.offset_index().unwrap()[0][payload]
        .page_locations()
        .len();
    // 1,024 values of 512 bytes reach DATA_PAGE_BYTES: a page at least every
    // 1,024 (a page of 1 MiB would make 2 or 3).
    assert!(pages >= 4, "{pages} payload pages");
}

#[test]
fn row_groups_are_bounded_by_bytes() {
    // Incompressible 1 KiB payloads: 1,000 of them make ~1 MiB of encoded data.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let input: Vec<Message> = (1..=1_000)
        .map(|seq| {
            let payload: Vec<u8> = (0..1024)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            Message {
                payload: Bytes::from(payload),
                ..msg(seq)
            }
        })
        .collect();
    let bound = 64 * 1024;
    let opts = ParquetOptions {
        row_group_bytes: bound,
        ..ParquetOptions::default()
    };
    let (bytes, _) = encode_file(&station(), &input, &opts).unwrap();
    let meta = metadata(&bytes);
    assert!(
        meta.num_row_groups() >= 8,
        "{} row groups for ~1 MiB with a 64 KiB bound",
        meta.num_row_groups()
    );
    for rg in meta.row_groups() {
        // A row group ends with the message that takes it to the bound.
        assert!(
            rg.compressed_size() as usize <= bound + bound / 4,
            "row group of {} bytes exceeds the bound",
            rg.compressed_size()
        );
    }
    assert_eq!(
        decode_file(&station(), bytes, &Selection::all()).unwrap(),
        input
    );
}

#[test]
fn encoder_hands_out_parts_while_encoding() {
    let opts = small_groups(50);
    let mut encoder = FileEncoder::new(&station(), 1, 400, &opts).unwrap();
    let mut file = Vec::new();
    let mut parts = 0;
    for chunk in msgs(1..=400).chunks(60) {
        encoder.write(chunk).unwrap();
        let part = encoder.take_bytes();
        if !part.is_empty() {
            parts += 1;
        }
        file.extend_from_slice(&part);
        assert!(encoder.take_bytes().is_empty(), "bytes are handed out once");
    }
    assert!(
        parts >= 5,
        "row groups should come out as they complete: {parts}"
    );
    assert!(file.len() < encoder.bytes_written() + 1);
    let (tail, summary) = encoder.finish().unwrap();
    file.extend_from_slice(&tail);
    assert_eq!(summary.rows, 400);
    let bytes = Bytes::from(file);
    assert_eq!(
        decode_file(&station(), bytes.clone(), &Selection::all()).unwrap(),
        msgs(1..=400)
    );
    assert_eq!(metadata(&bytes).num_row_groups(), 8);
}

#[test]
fn encoder_refuses_what_would_make_a_wrong_file() {
    let opts = ParquetOptions::default();
    let other = StationName::new("other").unwrap();

    let mut e = FileEncoder::new(&station(), 1, 10, &opts).unwrap();
    let foreign = Message {
        station: other.clone(),
        ..msg(1)
    };
    assert!(matches!(
        e.write(&[foreign]),
        Err(ColumnarError::WrongStation { .. })
    ));
    assert!(matches!(
        e.write(&[msg(2), msg(2)]),
        Err(ColumnarError::NotAscending {
            previous: 2,
            seq: 2
        })
    ));
    assert!(matches!(
        e.write(&[msg(11)]),
        Err(ColumnarError::OutOfRange { seq: 11, .. })
    ));
    // Refused calls wrote nothing: the file can still be completed.
    e.write(&[msg(1), msg(5)]).unwrap();
    assert!(matches!(
        e.write(&[msg(4)]),
        Err(ColumnarError::NotAscending {
            previous: 5,
            seq: 4
        })
    ));
    e.write(&[msg(10)]).unwrap();
    let (bytes, summary) = e.finish().unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(
        decode_file(&station(), bytes.clone(), &Selection::all()).unwrap(),
        vec![msg(1), msg(5), msg(10)]
    );
    assert!(matches!(
        decode_file(&other, bytes, &Selection::all()),
        Err(ColumnarError::Schema(_))
    ));

    let mut short = FileEncoder::new(&station(), 1, 10, &opts).unwrap();
    short.write(&msgs(1..=9)).unwrap();
    assert!(matches!(
        short.finish(),
        Err(ColumnarError::RangeMismatch { actual_last: 9, .. })
    ));
    let empty = FileEncoder::new(&station(), 1, 10, &opts).unwrap();
    assert!(matches!(empty.finish(), Err(ColumnarError::Empty)));
    assert!(matches!(
        encode_file(&station(), &[], &opts),
        Err(ColumnarError::Empty)
    ));
    assert!(matches!(
        encode_file(&station(), &[msg(3), msg(2)], &opts),
        Err(ColumnarError::NotAscending { .. })
    ));

    let huge = MAX_SEQ + 1;
    let mut e = FileEncoder::new(&station(), huge, huge, &opts).unwrap();
    assert!(matches!(
        e.write(&[Message {
            seq: huge,
            ..msg(1)
        }]),
        Err(ColumnarError::SeqTooLarge(_))
    ));
    assert!(matches!(
        FileEncoder::new(&station(), 2, 1, &opts),
        Err(ColumnarError::InvalidOptions(_))
    ));
}

#[test]
fn options_are_validated() {
    for bad in [
        ParquetOptions {
            zstd_level: 0,
            ..ParquetOptions::default()
        },
        ParquetOptions {
            zstd_level: 23,
            ..ParquetOptions::default()
        },
        ParquetOptions {
            row_group_rows: 0,
            ..ParquetOptions::default()
        },
        ParquetOptions {
            row_group_bytes: 0,
            ..ParquetOptions::default()
        },
    ] {
        assert!(
            matches!(
                FileEncoder::new(&station(), 1, 1, &bad),
                Err(ColumnarError::InvalidOptions(_))
            ),
            "{bad:?}"
        );
    }
    let ok = ParquetOptions {
        zstd_level: 1,
        row_group_rows: 1,
        row_group_bytes: 1,
    };
    let (bytes, _) = encode_file(&station(), &msgs(1..=3), &ok).unwrap();
    assert_eq!(metadata(&bytes).num_row_groups(), 3);
}

#[test]
fn selection_contains_is_inclusive() {
    let m = msg(10);
    let ts = m.timestamp;
    assert!(Selection::all().contains(&m));
    let exact = Selection {
        from_seq: Some(10),
        to_seq: Some(10),
        from_ts: Some(ts),
        to_ts: Some(ts),
    };
    assert!(exact.contains(&m));
    for outside in [
        Selection {
            from_seq: Some(11),
            ..exact
        },
        Selection {
            to_seq: Some(9),
            ..exact
        },
        Selection {
            from_ts: Some(Timestamp(ts.micros() + 1)),
            ..exact
        },
        Selection {
            to_ts: Some(Timestamp(ts.micros() - 1)),
            ..exact
        },
    ] {
        assert!(!outside.contains(&m), "{outside:?}");
    }
}

#[test]
fn record_batches_from_other_writers() {
    // Extra columns (a `station` partition column added by a query engine) are ignored.
    let batch = to_record_batch(&msgs(1..=3)).unwrap();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    fields.push(Arc::new(Field::new("station", DataType::Utf8, true)));
    columns.push(Arc::new(StringArray::from(vec!["orders"; 3])));
    let wider = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    assert_eq!(from_record_batch(&station(), &wider).unwrap(), msgs(1..=3));

    // A negative seq is refused.
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(Int64Array::from(vec![1, -2, 3]));
    let negative = RecordBatch::try_new(batch.schema(), columns).unwrap();
    assert!(matches!(
        from_record_batch(&station(), &negative),
        Err(ColumnarError::Schema(_))
    ));

    // A missing column is refused.
    let narrower = batch.project(&[0, 1, 2, 3, 4]).unwrap();
    assert!(matches!(
        from_record_batch(&station(), &narrower),
        Err(ColumnarError::Schema(_))
    ));

    // A sliced batch converts only its rows.
    let sliced = batch.slice(1, 2);
    assert_eq!(sliced.column(0).len(), 2);
    assert_eq!(from_record_batch(&station(), &sliced).unwrap(), msgs(2..=3));
}

#[test]
fn garbage_is_not_a_data_file() {
    assert!(matches!(
        decode_file(
            &station(),
            Bytes::from_static(b"not parquet"),
            &Selection::all()
        ),
        Err(ColumnarError::Parquet(_))
    ));
}

/// A file made of `rows`' row groups encoded on `threads` threads and appended.
fn encode_parallel(rows: &[Message], opts: &ParquetOptions, threads: usize) -> Bytes {
    encode_file_on_threads(&station(), rows, opts, threads)
        .unwrap()
        .0
}

#[test]
fn row_groups_encoded_on_threads_make_the_same_bytes() {
    let input = msgs(1..=3_000);
    let opts = ParquetOptions {
        row_group_bytes: 16 * 1024,
        ..ParquetOptions::default()
    };
    let (serial, _) = encode_file(&station(), &input, &opts).unwrap();
    assert!(metadata(&serial).num_row_groups() > 4);
    for threads in [1, 2, 3, 8] {
        assert!(
            encode_parallel(&input, &opts, threads) == serial,
            "{threads} threads"
        );
    }
    // However the messages are handed to write, the row groups are the same.
    let mut enc = FileEncoder::new(&station(), 1, 3_000, &opts).unwrap();
    let mut file = Vec::new();
    for chunk in input.chunks(7) {
        enc.write(chunk).unwrap();
        file.extend_from_slice(&enc.take_bytes());
    }
    file.extend_from_slice(&enc.finish().unwrap().0);
    assert!(file == serial, "chunked writes");
}

#[test]
fn row_group_ends_follow_rows_and_message_bytes() {
    let input = msgs(1..=10);
    let by_rows = small_groups(4);
    assert_eq!(row_group_ends(&input, &by_rows), vec![4, 8, 10]);
    assert_eq!(row_group_ends(&[], &by_rows), Vec::<usize>::new());
    // 100 bytes each (32 counted per message, a 68-byte payload): a 150-byte
    // bound closes every second one.
    let input: Vec<Message> = (1..=10)
        .map(|seq| Message {
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: Bytes::from(vec![b'x'; 68]),
            ..msg(seq)
        })
        .collect();
    let by_bytes = ParquetOptions {
        row_group_bytes: 150,
        ..ParquetOptions::default()
    };
    assert_eq!(row_group_ends(&input, &by_bytes), vec![2, 4, 6, 8, 10]);
    let (bytes, _) = encode_file(&station(), &input, &by_bytes).unwrap();
    let rows: Vec<i64> = metadata(&bytes)
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert_eq!(rows, vec![2, 2, 2, 2, 2]);
}

#[test]
fn even_row_groups_share_out_the_bound_that_sets_their_number() {
    let ends = |lens: &[usize], rows: usize, bytes: usize| {
        let opts = ParquetOptions {
            row_group_rows: rows,
            row_group_bytes: bytes,
            ..ParquetOptions::default()
        };
        even_row_group_ends_by_size(lens.iter().copied(), &opts)
    };
    // 100 bytes counted per message (68 + 32): 12 messages under a 350-byte
    // bound need 4 row groups, cut at every 300 bytes (greedily: 4, 4, 4).
    let hundred = [68; 12];
    assert_eq!(ends(&hundred, 1_000, 350), vec![3, 6, 9, 12]);
    // 10 of them under a 450-byte bound need 3, made 4: cut at every 250 bytes
    // (greedily: 5, 5).
    assert_eq!(ends(&hundred[..10], 1_000, 450), vec![3, 5, 8, 10]);
    // Rows decide: 12 rows under 5 per group need 3, made 4 of 3.
    assert_eq!(ends(&hundred, 5, 1 << 30), vec![3, 6, 9, 12]);
    // One row group when everything fits; none for no rows.
    assert_eq!(ends(&hundred, 1_000, 1 << 30), vec![12]);
    assert_eq!(ends(&[], 4, 350), Vec::<usize>::new());
    // Bytes are shared out (2 row groups), but the row bound closes the first
    // after 4 of the small rows, before its share of the bytes.
    let mixed = [0, 0, 0, 0, 0, 0, 1_000, 1_000];
    assert_eq!(ends(&mixed, 4, 1_200), vec![4, 8]);
    // The bounds hold for every row group, whatever the sizes.
    let lens: Vec<usize> = (0..5_000).map(|i| (i * 7919) % 3_000).collect();
    for (rows, bytes) in [(1_000, 1 << 20), (100_000, 256 << 10), (64, 1 << 30)] {
        let cut = ends(&lens, rows, bytes);
        assert_eq!(cut.last(), Some(&lens.len()));
        let greedy = row_group_ends_by_size(
            lens.iter().copied(),
            &ParquetOptions {
                row_group_rows: rows,
                row_group_bytes: bytes,
                ..ParquetOptions::default()
            },
        );
        // At most one more than the greedy rule makes, and an even number.
        assert!(cut.len() <= greedy.len() + 1, "{rows} rows, {bytes} bytes");
        assert_eq!(cut.len() % 2, 0, "{rows} rows, {bytes} bytes");
        let mut start = 0;
        let mut sizes = Vec::new();
        for &end in &cut {
            assert!(end > start);
            let group = &lens[start..end];
            let size: usize = group.iter().map(|l| l + 32).sum();
            // Closed at the bound at the latest, like the greedy rule.
            assert!(group.len() <= rows);
            assert!(size - (group[group.len() - 1] + 32) < bytes);
            sizes.push(size);
            start = end;
        }
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        if rows >= 1_000 {
            // Shared by bytes: within a message or so of each other.
            assert!(max - min <= 2 * 3_032, "{sizes:?}");
        }
    }
}

#[test]
fn appended_row_groups_are_checked_like_writes() {
    let opts = ParquetOptions::default();
    let groups = RowGroupEncoder::new(&opts).unwrap();
    let other = StationName::new("other").unwrap();
    assert!(matches!(
        groups.encode(&other, &msgs(1..=2)),
        Err(ColumnarError::WrongStation { .. })
    ));
    assert!(matches!(
        groups.encode::<Message>(&station(), &[]),
        Err(ColumnarError::Empty)
    ));
    let mut enc = FileEncoder::new(&station(), 1, 10, &opts).unwrap();
    enc.write(&msgs(1..=3)).unwrap();
    assert!(matches!(
        enc.append(groups.encode(&station(), &msgs(3..=4)).unwrap()),
        Err(ColumnarError::NotAscending {
            previous: 3,
            seq: 3
        })
    ));
    assert!(matches!(
        enc.append(groups.encode(&station(), &msgs(9..=11)).unwrap()),
        Err(ColumnarError::OutOfRange { seq: 11, .. })
    ));
    // Refused row groups wrote nothing; writes and appends mix.
    let group = groups.encode(&station(), &msgs(4..=6)).unwrap();
    assert_eq!(group.rows(), 3);
    enc.append(group).unwrap();
    enc.write(&msgs(7..=10)).unwrap();
    let (bytes, summary) = enc.finish().unwrap();
    assert_eq!(summary.rows, 10);
    assert_eq!(metadata(&bytes).num_row_groups(), 3);
    assert_eq!(
        decode_file(&station(), bytes, &Selection::all()).unwrap(),
        msgs(1..=10)
    );
}

#[test]
fn the_first_encoding_error_stops_the_hand_out() {
    let opts = ParquetOptions::default();
    let groups = RowGroupEncoder::new(&opts).unwrap();
    let good = msgs(1..=5);
    let bad = vec![msg(7), msg(6)];
    let st = station();
    let jobs = [
        RowGroupJob {
            station: &st,
            msgs: &good,
        },
        RowGroupJob {
            station: &st,
            msgs: &bad,
        },
        RowGroupJob {
            station: &st,
            msgs: &good,
        },
    ];
    for threads in [1, 2] {
        let mut seen = Vec::new();
        let result = encode_in_order(&groups, &jobs, threads, |i, _| {
            seen.push(i);
            Ok::<_, ColumnarError>(std::ops::ControlFlow::Continue(()))
        });
        assert!(
            matches!(result, Err(ColumnarError::NotAscending { .. })),
            "{threads}"
        );
        assert_eq!(seen, vec![0], "{threads} threads");
        let mut seen = Vec::new();
        encode_in_order(&groups, &jobs[..1], threads, |i, _| {
            seen.push(i);
            Ok::<_, ColumnarError>(std::ops::ControlFlow::Break(()))
        })
        .unwrap();
        assert_eq!(seen, vec![0]);
    }
}

fn any_message() -> impl Strategy<Value = Message> {
    (
        0..=MAX_SEQ,
        any::<i64>(),
        proptest::option::of("\\PC{0,12}"),
        proptest::option::of("[a-z.>*]{0,12}"),
        proptest::collection::vec(("(X-Id|x-id|Nats-Msg-Id|\\PC{0,6})", "\\PC{0,10}"), 0..5),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(seq, ts, id, subject, headers, payload)| Message {
            station: station(),
            seq,
            timestamp: Timestamp(ts),
            id,
            subject,
            headers: headers
                .into_iter()
                .map(|(n, v)| Header::new(n, v))
                .collect(),
            payload: Bytes::from(payload),
        })
}

proptest! {
    #[test]
    fn record_batch_round_trip(input in proptest::collection::vec(any_message(), 0..40)) {
        let batch = to_record_batch(&input).unwrap();
        prop_assert_eq!(batch.num_rows(), input.len());
        prop_assert_eq!(from_record_batch(&station(), &batch).unwrap(), input);
    }

    #[test]
    fn file_round_trip(mut input in proptest::collection::vec(any_message(), 1..40), rows in 1usize..8) {
        input.sort_by_key(|m| m.seq);
        input.dedup_by_key(|m| m.seq);
        let (bytes, summary) = encode_file(&station(), &input, &small_groups(rows)).unwrap();
        prop_assert_eq!(summary.rows, input.len() as u64);
        prop_assert_eq!(summary.min_timestamp, input.iter().map(|m| m.timestamp).min().unwrap());
        prop_assert_eq!(decode_file(&station(), bytes.clone(), &Selection::all()).unwrap(), input.clone());

        // Pruned decoding equals filtering.
        let mid = input[input.len() / 2].clone();
        let sel = Selection { from_seq: Some(mid.seq), to_ts: Some(mid.timestamp), ..Selection::all() };
        let expected: Vec<Message> = input.iter().filter(|m| sel.contains(m)).cloned().collect();
        prop_assert_eq!(decode_file(&station(), bytes, &sel).unwrap(), expected);
    }
}

#[test]
fn a_row_group_written_in_its_chunks_is_the_row_group_encoded_whole() {
    // Small row groups, so their Arrow chunks are small too (an eighth).
    let opts = ParquetOptions {
        row_group_bytes: 16 << 10,
        ..ParquetOptions::default()
    };
    let groups = RowGroupEncoder::new(&opts).unwrap();
    let all: Vec<Message> = (1..=120)
        .map(|seq| {
            let mut m = msg(seq);
            m.payload = Bytes::from(vec![b'p'; (seq as usize * 37) % 700]);
            m
        })
        .collect();
    let ends = groups.chunk_ends(all.iter().map(message_data_len));
    assert!(ends.len() > 3, "{ends:?}");
    assert_eq!(ends.last(), Some(&all.len()));

    let file = |group: EncodedRowGroup| {
        let mut enc = FileEncoder::new(&station(), 1, 120, &opts).unwrap();
        enc.append(group).unwrap();
        enc.finish().unwrap().0
    };
    let whole = file(groups.encode(&station(), &all).unwrap());
    let mut parts = groups.start(&station()).unwrap();
    let mut start = 0;
    for &end in &ends {
        parts.write(&all[start..end]).unwrap();
        start = end;
    }
    assert_eq!(file(parts.finish().unwrap()), whole);

    // Parts are checked as one run: ascending across them, not empty.
    let mut parts = groups.start(&station()).unwrap();
    parts.write(&all[5..10]).unwrap();
    assert!(matches!(
        parts.write(&all[9..12]),
        Err(ColumnarError::NotAscending {
            previous: 10,
            seq: 10
        })
    ));
    assert!(matches!(
        groups.start(&station()).unwrap().finish(),
        Err(ColumnarError::Empty)
    ));
}
