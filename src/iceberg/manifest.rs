//! Iceberg manifests and manifest lists (format v2) as Avro files, written
//! and read with the `apache-avro` crate: pure, bytes in and out.
//!
//! The Avro schemas below are Iceberg's (spec, "Manifests" and "Manifest
//! Lists"), each field with its Iceberg `field-id`, map columns as arrays of
//! `key`/`value` records with `logicalType: map`. A manifest's header holds
//! what the spec requires: `schema`, `schema-id`, `partition-spec`,
//! `partition-spec-id`, `format-version` and `content`; a manifest list's
//! header holds `snapshot-id`, `parent-snapshot-id`, `sequence-number` and
//! `format-version`. Readers (pyiceberg, Spark, DuckDB) resolve columns by
//! field id, so the names only follow the spec's for people.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Reader, Schema, Writer};

use super::spec::{self, DataFile};

/// Errors encoding or decoding a manifest or manifest list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The Avro encoder or decoder failed.
    #[error("Avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    /// The file decodes but does not have the shape Strata writes.
    #[error("{0} (the table's metadata was not written by this Strata; rebuild it with `strata iceberg rebuild`)")]
    Shape(String),
}

impl From<apache_avro::Error> for ManifestError {
    fn from(e: apache_avro::Error) -> Self {
        ManifestError::Avro(Box::new(e))
    }
}

/// A manifest entry's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Carried over from an earlier snapshot.
    Existing = 0,
    /// Added by this manifest's snapshot.
    Added = 1,
    /// Deleted by this manifest's snapshot.
    Deleted = 2,
}

impl Status {
    fn from_i32(v: i32) -> Option<Status> {
        match v {
            0 => Some(Status::Existing),
            1 => Some(Status::Added),
            2 => Some(Status::Deleted),
            _ => None,
        }
    }
}

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Added, existing or deleted.
    pub status: Status,
    /// The snapshot that added (or deleted) the file.
    pub snapshot_id: i64,
    /// Data sequence number of the file.
    pub sequence_number: i64,
    /// Sequence number of the snapshot that added the file.
    pub file_sequence_number: i64,
    /// The file.
    pub file: DataFile,
}

/// One entry of a manifest list: a manifest and its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Absolute URL of the manifest.
    pub path: String,
    /// Its length in bytes.
    pub length: i64,
    /// Sequence number of the snapshot that added it.
    pub sequence_number: i64,
    /// Smallest data sequence number of its live files.
    pub min_sequence_number: i64,
    /// Snapshot that added it.
    pub added_snapshot_id: i64,
    /// Entries with status added.
    pub added_files: i32,
    /// Entries with status existing.
    pub existing_files: i32,
    /// Entries with status deleted.
    pub deleted_files: i32,
    /// Rows of added entries.
    pub added_rows: i64,
    /// Rows of existing entries.
    pub existing_rows: i64,
    /// Rows of deleted entries.
    pub deleted_rows: i64,
    /// Per partition field (station, hour): lower and upper bound.
    pub partitions: Vec<(Vec<u8>, Vec<u8>)>,
}

fn map_of(
    name: &str,
    key_id: i32,
    value_id: i32,
    value: &str,
    field_id: i32,
    field: &str,
) -> String {
    format!(
        r#"{{"name": "{field}", "type": ["null", {{"type": "array", "logicalType": "map", "items": {{
            "type": "record", "name": "k{key_id}_v{value_id}", "fields": [
                {{"name": "key", "type": "int", "field-id": {key_id}}},
                {{"name": "value", "type": "{value}", "field-id": {value_id}}}]}}}}],
            "default": null, "field-id": {field_id}, "doc": "{name}"}}"#
    )
}

/// The Avro schema of a v2 data manifest entry for Strata's partition spec.
static MANIFEST_SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let text = format!(
        r#"{{"type": "record", "name": "manifest_entry", "fields": [
        {{"name": "status", "type": "int", "field-id": 0}},
        {{"name": "snapshot_id", "type": ["null", "long"], "default": null, "field-id": 1}},
        {{"name": "sequence_number", "type": ["null", "long"], "default": null, "field-id": 3}},
        {{"name": "file_sequence_number", "type": ["null", "long"], "default": null, "field-id": 4}},
        {{"name": "data_file", "field-id": 2, "type": {{"type": "record", "name": "r2", "fields": [
            {{"name": "content", "type": "int", "field-id": 134}},
            {{"name": "file_path", "type": "string", "field-id": 100}},
            {{"name": "file_format", "type": "string", "field-id": 101}},
            {{"name": "partition", "field-id": 102, "type": {{"type": "record", "name": "r102", "fields": [
                {{"name": "{station}", "type": ["null", "string"], "default": null, "field-id": {station_id}}},
                {{"name": "{hour}", "type": ["null", "int"], "default": null, "field-id": {hour_id}}}]}}}},
            {{"name": "record_count", "type": "long", "field-id": 103}},
            {{"name": "file_size_in_bytes", "type": "long", "field-id": 104}},
            {value_counts},
            {null_counts},
            {lower},
            {upper},
            {{"name": "sort_order_id", "type": ["null", "int"], "default": null, "field-id": 140}}
        ]}}}}]}}"#,
        station = spec::STATION,
        station_id = spec::STATION_PARTITION_ID,
        hour = spec::HOUR_PARTITION,
        hour_id = spec::HOUR_PARTITION_ID,
        value_counts = map_of("value counts", 119, 120, "long", 109, "value_counts"),
        null_counts = map_of(
            "null value counts",
            121,
            122,
            "long",
            110,
            "null_value_counts"
        ),
        lower = map_of("lower bounds", 126, 127, "bytes", 125, "lower_bounds"),
        upper = map_of("upper bounds", 129, 130, "bytes", 128, "upper_bounds"),
    );
    Schema::parse_str(&text).expect("the manifest entry schema is valid Avro")
});

/// The Avro schema of a v2 manifest list entry.
static MANIFEST_LIST_SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let text = r#"{"type": "record", "name": "manifest_file", "fields": [
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "content", "type": "int", "field-id": 517},
        {"name": "sequence_number", "type": "long", "field-id": 515},
        {"name": "min_sequence_number", "type": "long", "field-id": 516},
        {"name": "added_snapshot_id", "type": "long", "field-id": 503},
        {"name": "added_files_count", "type": "int", "field-id": 504},
        {"name": "existing_files_count", "type": "int", "field-id": 505},
        {"name": "deleted_files_count", "type": "int", "field-id": 506},
        {"name": "added_rows_count", "type": "long", "field-id": 512},
        {"name": "existing_rows_count", "type": "long", "field-id": 513},
        {"name": "deleted_rows_count", "type": "long", "field-id": 514},
        {"name": "partitions", "default": null, "field-id": 507, "type": ["null", {
            "type": "array", "element-id": 508, "items": {"type": "record", "name": "r508", "fields": [
                {"name": "contains_null", "type": "boolean", "field-id": 509},
                {"name": "contains_nan", "type": ["null", "boolean"], "default": null, "field-id": 518},
                {"name": "lower_bound", "type": ["null", "bytes"], "default": null, "field-id": 510},
                {"name": "upper_bound", "type": ["null", "bytes"], "default": null, "field-id": 511}]}}]},
        {"name": "key_metadata", "type": ["null", "bytes"], "default": null, "field-id": 519}
    ]}"#;
    Schema::parse_str(text).expect("the manifest list schema is valid Avro")
});

fn some(v: Value) -> Value {
    Value::Union(1, Box::new(v))
}

fn none() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn long_map(entries: &[(i32, i64)]) -> Value {
    some(Value::Array(
        entries
            .iter()
            .map(|(k, v)| record(vec![("key", Value::Int(*k)), ("value", Value::Long(*v))]))
            .collect(),
    ))
}

fn bytes_map(m: &BTreeMap<i32, Vec<u8>>) -> Value {
    some(Value::Array(
        m.iter()
            .map(|(k, v)| {
                record(vec![
                    ("key", Value::Int(*k)),
                    ("value", Value::Bytes(v.clone())),
                ])
            })
            .collect(),
    ))
}

fn entry_value(e: &ManifestEntry) -> Value {
    let f = &e.file;
    let counted = [spec::SEQ_FIELD_ID, spec::TIMESTAMP_FIELD_ID];
    let data_file = record(vec![
        ("content", Value::Int(0)),
        ("file_path", Value::String(f.path.clone())),
        ("file_format", Value::String("PARQUET".to_string())),
        (
            "partition",
            record(vec![
                (spec::STATION, some(Value::String(f.station.clone()))),
                (spec::HOUR_PARTITION, some(Value::Int(f.hour))),
            ]),
        ),
        ("record_count", Value::Long(f.record_count)),
        ("file_size_in_bytes", Value::Long(f.file_size)),
        (
            "value_counts",
            long_map(&counted.map(|id| (id, f.record_count))),
        ),
        ("null_value_counts", long_map(&counted.map(|id| (id, 0)))),
        ("lower_bounds", bytes_map(&f.lower_bounds)),
        ("upper_bounds", bytes_map(&f.upper_bounds)),
        ("sort_order_id", none()),
    ]);
    record(vec![
        ("status", Value::Int(e.status as i32)),
        ("snapshot_id", some(Value::Long(e.snapshot_id))),
        ("sequence_number", some(Value::Long(e.sequence_number))),
        (
            "file_sequence_number",
            some(Value::Long(e.file_sequence_number)),
        ),
        ("data_file", data_file),
    ])
}

/// A manifest holding `entries`, as Avro bytes.
///
/// # Errors
/// [`ManifestError::Avro`] when the encoder refuses a value (a bug).
pub fn write_manifest(entries: &[ManifestEntry]) -> Result<Vec<u8>, ManifestError> {
    let schema = &*MANIFEST_SCHEMA;
    let mut w = Writer::with_codec(
        schema,
        Vec::new(),
        Codec::Deflate(DeflateSettings::default()),
    );
    let cols = spec::columns().map_err(|e| ManifestError::Shape(e.to_string()))?;
    w.add_user_metadata("schema".into(), spec::schema_json(&cols).to_string())?;
    w.add_user_metadata("schema-id".into(), spec::SCHEMA_ID.to_string())?;
    w.add_user_metadata(
        "partition-spec".into(),
        spec::partition_fields_json().to_string(),
    )?;
    w.add_user_metadata("partition-spec-id".into(), spec::SPEC_ID.to_string())?;
    w.add_user_metadata("format-version".into(), spec::FORMAT_VERSION.to_string())?;
    w.add_user_metadata("content".into(), "data")?;
    for e in entries {
        w.append(entry_value(e))?;
    }
    Ok(w.into_inner()?)
}

/// The summary of a manifest at `path` (`length` bytes) holding `entries`,
/// added by `snapshot_id` at `sequence_number`.
pub fn summarize(
    path: String,
    length: i64,
    entries: &[ManifestEntry],
    snapshot_id: i64,
    sequence_number: i64,
) -> ManifestFile {
    let mut m = ManifestFile {
        path,
        length,
        sequence_number,
        min_sequence_number: sequence_number,
        added_snapshot_id: snapshot_id,
        added_files: 0,
        existing_files: 0,
        deleted_files: 0,
        added_rows: 0,
        existing_rows: 0,
        deleted_rows: 0,
        partitions: Vec::new(),
    };
    let mut station: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut hour: Option<(i32, i32)> = None;
    for e in entries {
        let rows = e.file.record_count;
        match e.status {
            Status::Added => {
                (m.added_files, m.added_rows) = (m.added_files + 1, m.added_rows + rows)
            }
            Status::Existing => {
                (m.existing_files, m.existing_rows) = (m.existing_files + 1, m.existing_rows + rows)
            }
            Status::Deleted => {
                (m.deleted_files, m.deleted_rows) = (m.deleted_files + 1, m.deleted_rows + rows)
            }
        }
        if e.status != Status::Deleted {
            m.min_sequence_number = m.min_sequence_number.min(e.sequence_number);
        }
        let s = e.file.station.as_bytes().to_vec();
        station = Some(match station {
            None => (s.clone(), s),
            Some((lo, hi)) => (lo.min(s.clone()), hi.max(s)),
        });
        hour = Some(match hour {
            None => (e.file.hour, e.file.hour),
            Some((lo, hi)) => (lo.min(e.file.hour), hi.max(e.file.hour)),
        });
    }
    if let (Some(s), Some((lo, hi))) = (station, hour) {
        m.partitions = vec![s, (spec::int_bytes(lo), spec::int_bytes(hi))];
    }
    m
}

/// A manifest list of `manifests` for snapshot `snapshot_id`, as Avro bytes.
///
/// # Errors
/// [`ManifestError::Avro`] when the encoder refuses a value (a bug).
pub fn write_manifest_list(
    manifests: &[ManifestFile],
    snapshot_id: i64,
    parent: Option<i64>,
    sequence_number: i64,
) -> Result<Vec<u8>, ManifestError> {
    let schema = &*MANIFEST_LIST_SCHEMA;
    let mut w = Writer::with_codec(
        schema,
        Vec::new(),
        Codec::Deflate(DeflateSettings::default()),
    );
    w.add_user_metadata("snapshot-id".into(), snapshot_id.to_string())?;
    w.add_user_metadata(
        "parent-snapshot-id".into(),
        parent.map_or_else(|| "null".to_string(), |p| p.to_string()),
    )?;
    w.add_user_metadata("sequence-number".into(), sequence_number.to_string())?;
    w.add_user_metadata("format-version".into(), spec::FORMAT_VERSION.to_string())?;
    for m in manifests {
        let partitions = if m.partitions.is_empty() {
            none()
        } else {
            some(Value::Array(
                m.partitions
                    .iter()
                    .map(|(lo, hi)| {
                        record(vec![
                            ("contains_null", Value::Boolean(false)),
                            ("contains_nan", some(Value::Boolean(false))),
                            ("lower_bound", some(Value::Bytes(lo.clone()))),
                            ("upper_bound", some(Value::Bytes(hi.clone()))),
                        ])
                    })
                    .collect(),
            ))
        };
        w.append(record(vec![
            ("manifest_path", Value::String(m.path.clone())),
            ("manifest_length", Value::Long(m.length)),
            ("partition_spec_id", Value::Int(spec::SPEC_ID)),
            ("content", Value::Int(0)),
            ("sequence_number", Value::Long(m.sequence_number)),
            ("min_sequence_number", Value::Long(m.min_sequence_number)),
            ("added_snapshot_id", Value::Long(m.added_snapshot_id)),
            ("added_files_count", Value::Int(m.added_files)),
            ("existing_files_count", Value::Int(m.existing_files)),
            ("deleted_files_count", Value::Int(m.deleted_files)),
            ("added_rows_count", Value::Long(m.added_rows)),
            ("existing_rows_count", Value::Long(m.existing_rows)),
            ("deleted_rows_count", Value::Long(m.deleted_rows)),
            ("partitions", partitions),
            ("key_metadata", none()),
        ]))?;
    }
    Ok(w.into_inner()?)
}

/// Fields of a decoded record by name.
struct Fields(BTreeMap<String, Value>);

impl Fields {
    fn of(v: Value, what: &str) -> Result<Fields, ManifestError> {
        match v {
            Value::Record(fields) => Ok(Fields(fields.into_iter().collect())),
            other => Err(shape(format!("{what} is not a record: {other:?}"))),
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, ManifestError> {
        let v = self
            .0
            .remove(name)
            .ok_or_else(|| shape(format!("field {name} is missing")))?;
        Ok(match v {
            Value::Union(_, inner) => *inner,
            v => v,
        })
    }

    fn long(&mut self, name: &str) -> Result<Option<i64>, ManifestError> {
        match self.take(name)? {
            Value::Long(v) => Ok(Some(v)),
            Value::Int(v) => Ok(Some(i64::from(v))),
            Value::Null => Ok(None),
            other => Err(shape(format!("field {name} is not a long: {other:?}"))),
        }
    }

    fn int(&mut self, name: &str) -> Result<Option<i32>, ManifestError> {
        match self.take(name)? {
            Value::Int(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(shape(format!("field {name} is not an int: {other:?}"))),
        }
    }

    fn string(&mut self, name: &str) -> Result<String, ManifestError> {
        match self.take(name)? {
            Value::String(v) => Ok(v),
            other => Err(shape(format!("field {name} is not a string: {other:?}"))),
        }
    }

    fn required<T>(v: Option<T>, name: &str) -> Result<T, ManifestError> {
        v.ok_or_else(|| shape(format!("field {name} is null")))
    }
}

fn shape(s: String) -> ManifestError {
    ManifestError::Shape(s)
}

fn bytes_map_of(v: Value) -> Result<BTreeMap<i32, Vec<u8>>, ManifestError> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                let mut kv = Fields::of(item, "a map entry")?;
                let k = Fields::required(kv.int("key")?, "key")?;
                match kv.take("value")? {
                    Value::Bytes(b) => out.insert(k, b),
                    other => return Err(shape(format!("a bound is not bytes: {other:?}"))),
                };
            }
        }
        other => return Err(shape(format!("a bounds map is not an array: {other:?}"))),
    }
    Ok(out)
}

/// The entries of a manifest written by [`write_manifest`]. Entries whose
/// sequence numbers are null inherit `inherited_sequence_number` (the
/// manifest list's), as the spec says.
///
/// # Errors
/// [`ManifestError`] when the bytes are not such a manifest.
pub fn read_manifest(
    bytes: &[u8],
    inherited_sequence_number: i64,
    inherited_snapshot_id: i64,
) -> Result<Vec<ManifestEntry>, ManifestError> {
    let reader = Reader::with_schema(&MANIFEST_SCHEMA, bytes)?;
    let mut out = Vec::new();
    for value in reader {
        let mut e = Fields::of(value?, "a manifest entry")?;
        let status = Fields::required(e.int("status")?, "status")?;
        let status = Status::from_i32(status)
            .ok_or_else(|| shape(format!("status {status} is not 0, 1 or 2")))?;
        let snapshot_id = e.long("snapshot_id")?.unwrap_or(inherited_snapshot_id);
        let sequence_number = e
            .long("sequence_number")?
            .unwrap_or(inherited_sequence_number);
        let file_sequence_number = e
            .long("file_sequence_number")?
            .unwrap_or(inherited_sequence_number);
        let mut f = Fields::of(e.take("data_file")?, "data_file")?;
        let mut partition = Fields::of(f.take("partition")?, "partition")?;
        let station = partition.string(spec::STATION)?;
        let hour = Fields::required(partition.int(spec::HOUR_PARTITION)?, spec::HOUR_PARTITION)?;
        let file = DataFile {
            path: f.string("file_path")?,
            station,
            hour,
            record_count: Fields::required(f.long("record_count")?, "record_count")?,
            file_size: Fields::required(f.long("file_size_in_bytes")?, "file_size_in_bytes")?,
            lower_bounds: bytes_map_of(f.take("lower_bounds")?)?,
            upper_bounds: bytes_map_of(f.take("upper_bounds")?)?,
        };
        out.push(ManifestEntry {
            status,
            snapshot_id,
            sequence_number,
            file_sequence_number,
            file,
        });
    }
    Ok(out)
}

/// The manifests listed by a manifest list written by [`write_manifest_list`].
///
/// # Errors
/// [`ManifestError`] when the bytes are not such a list.
pub fn read_manifest_list(bytes: &[u8]) -> Result<Vec<ManifestFile>, ManifestError> {
    let reader = Reader::with_schema(&MANIFEST_LIST_SCHEMA, bytes)?;
    let mut out = Vec::new();
    for value in reader {
        let mut m = Fields::of(value?, "a manifest list entry")?;
        let req_long = |m: &mut Fields, n: &str| -> Result<i64, ManifestError> {
            Fields::required(m.long(n)?, n)
        };
        let req_int = |m: &mut Fields, n: &str| -> Result<i32, ManifestError> {
            Fields::required(m.int(n)?, n)
        };
        let partitions = match m.take("partitions")? {
            Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    let mut p = Fields::of(item, "a partition summary")?;
                    let bound = |v: Value| match v {
                        Value::Bytes(b) => Ok(b),
                        other => Err(shape(format!("a partition bound is not bytes: {other:?}"))),
                    };
                    parts.push((
                        bound(p.take("lower_bound")?)?,
                        bound(p.take("upper_bound")?)?,
                    ));
                }
                parts
            }
            _ => Vec::new(),
        };
        out.push(ManifestFile {
            path: m.string("manifest_path")?,
            length: req_long(&mut m, "manifest_length")?,
            sequence_number: req_long(&mut m, "sequence_number")?,
            min_sequence_number: req_long(&mut m, "min_sequence_number")?,
            added_snapshot_id: req_long(&mut m, "added_snapshot_id")?,
            added_files: req_int(&mut m, "added_files_count")?,
            existing_files: req_int(&mut m, "existing_files_count")?,
            deleted_files: req_int(&mut m, "deleted_files_count")?,
            added_rows: req_long(&mut m, "added_rows_count")?,
            existing_rows: req_long(&mut m, "existing_rows_count")?,
            deleted_rows: req_long(&mut m, "deleted_rows_count")?,
            partitions,
        });
    }
    Ok(out)
}

/// The header metadata of an Avro file (for tests and diagnostics).
///
/// # Errors
/// [`ManifestError::Avro`] when the bytes are not an Avro object container file.
pub fn header_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, ManifestError> {
    let reader = Reader::new(bytes)?;
    Ok(reader
        .user_metadata()
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(station: &str, hour: i32, first: i64, last: i64) -> DataFile {
        DataFile {
            path: format!("s3://b/station={station}/{first}.parquet"),
            station: station.to_string(),
            hour,
            record_count: last - first + 1,
            file_size: 100 + first,
            lower_bounds: BTreeMap::from([(1, spec::long_bytes(first))]),
            upper_bounds: BTreeMap::from([(1, spec::long_bytes(last))]),
        }
    }

    #[test]
    fn header_carries_what_the_spec_requires() {
        let bytes = write_manifest(&[]).unwrap();
        let h = header_metadata(&bytes).unwrap();
        for k in [
            "schema",
            "schema-id",
            "partition-spec",
            "partition-spec-id",
            "format-version",
            "content",
        ] {
            assert!(h.contains_key(k), "{k} missing: {h:?}");
        }
        assert_eq!(h["format-version"], "2");
        assert_eq!(h["content"], "data");
        let schema: serde_json::Value = serde_json::from_str(&h["schema"]).unwrap();
        assert_eq!(schema["fields"][0]["name"], "seq");
        // The Avro schema keeps Iceberg's field ids.
        let avro = Reader::new(&bytes[..]).unwrap().writer_schema().clone();
        let text = serde_json::to_string(&avro).unwrap();
        for id in [
            "\"field-id\":102",
            "\"field-id\":1000",
            "\"field-id\":127",
            "\"logicalType\":\"map\"",
        ] {
            assert!(text.contains(id), "{id} missing: {text}");
        }
        let list = write_manifest_list(&[], 5, None, 1).unwrap();
        let h = header_metadata(&list).unwrap();
        assert_eq!(h["snapshot-id"], "5");
        assert_eq!(h["parent-snapshot-id"], "null");
        assert_eq!(h["sequence-number"], "1");
        let text = serde_json::to_string(Reader::new(&list[..]).unwrap().writer_schema()).unwrap();
        assert!(text.contains("\"element-id\":508"), "{text}");
    }

    #[test]
    fn summary_counts_and_bounds() {
        let entries = vec![
            ManifestEntry {
                status: Status::Added,
                snapshot_id: 9,
                sequence_number: 3,
                file_sequence_number: 3,
                file: file("b", 10, 1, 5),
            },
            ManifestEntry {
                status: Status::Existing,
                snapshot_id: 8,
                sequence_number: 2,
                file_sequence_number: 2,
                file: file("a", 12, 6, 6),
            },
            ManifestEntry {
                status: Status::Deleted,
                snapshot_id: 9,
                sequence_number: 1,
                file_sequence_number: 1,
                file: file("c", 11, 7, 9),
            },
        ];
        let m = summarize("m".into(), 10, &entries, 9, 3);
        assert_eq!(
            (m.added_files, m.existing_files, m.deleted_files),
            (1, 1, 1)
        );
        assert_eq!((m.added_rows, m.existing_rows, m.deleted_rows), (5, 1, 3));
        assert_eq!(m.min_sequence_number, 2);
        assert_eq!(m.partitions[0], (b"a".to_vec(), b"c".to_vec()));
        assert_eq!(m.partitions[1], (spec::int_bytes(10), spec::int_bytes(12)));
    }

    fn any_entry() -> impl Strategy<Value = ManifestEntry> {
        (
            "[a-z]{1,8}",
            any::<i32>(),
            0i64..1 << 40,
            0i64..1000,
            0usize..3,
            any::<i64>(),
        )
            .prop_map(|(station, hour, first, n, status, snap)| ManifestEntry {
                status: [Status::Existing, Status::Added, Status::Deleted][status],
                snapshot_id: snap,
                sequence_number: n,
                file_sequence_number: n + 1,
                file: file(&station, hour, first, first + n),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn manifests_round_trip(entries in prop::collection::vec(any_entry(), 0..20)) {
            let bytes = write_manifest(&entries).unwrap();
            prop_assert_eq!(read_manifest(&bytes, 0, 0).unwrap(), entries.clone());
            let m = summarize("s3://b/m.avro".into(), bytes.len() as i64, &entries, 4, 7);
            let list = write_manifest_list(&[m.clone(), m.clone()], 4, Some(3), 7).unwrap();
            prop_assert_eq!(read_manifest_list(&list).unwrap(), vec![m.clone(), m]);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_manifest(b"not avro", 0, 0).is_err());
        assert!(read_manifest_list(b"Obj\x01").is_err());
        let entry = ManifestEntry {
            status: Status::Added,
            snapshot_id: 1,
            sequence_number: 1,
            file_sequence_number: 1,
            file: file("a", 1, 1, 1),
        };
        let manifest = write_manifest(&[entry]).unwrap();
        assert!(read_manifest_list(&manifest).is_err());
    }
}
