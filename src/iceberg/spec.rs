//! The Iceberg side of Strata's data files, pure: the table schema (field ids),
//! the partition spec, the name mapping, the table metadata JSON and the data
//! file entries with their statistics.
//!
//! The schema is derived from the Arrow schema of the data files
//! ([`crate::columnar::schema()`]) plus the partition source column `station`
//! (in the path only, like every Hive partition column). Field ids are given in
//! a fixed order — top-level columns `1..=6`, `station` 7, then nested fields —
//! and pinned by a test: they are a contract with every reader of the table.
//! Strata's Parquet files carry no field ids, so the table property
//! `schema.name-mapping.default` maps column names to ids.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::columnar;
use crate::layout::CommittedFile;
use crate::message::Timestamp;

/// The Iceberg format version Strata writes.
pub const FORMAT_VERSION: i32 = 2;
/// The id of the one schema.
pub const SCHEMA_ID: i32 = 0;
/// The id of the one partition spec.
pub const SPEC_ID: i32 = 0;
/// Name of the partition source column that lives in the path only.
pub const STATION: &str = "station";
/// Field id of `seq`.
pub const SEQ_FIELD_ID: i32 = 1;
/// Field id of `timestamp`.
pub const TIMESTAMP_FIELD_ID: i32 = 2;
/// Field id of `station`.
pub const STATION_FIELD_ID: i32 = 7;
/// Partition field id of `station` (identity).
pub const STATION_PARTITION_ID: i32 = 1000;
/// Partition field id of `timestamp_hour` (`hour(timestamp)`).
pub const HOUR_PARTITION_ID: i32 = 1001;
/// Name of the hour partition field.
pub const HOUR_PARTITION: &str = "timestamp_hour";
/// Snapshot summary property naming the commit or replacement record a
/// snapshot came from: a redo finds it and adds nothing.
pub const RECORD_PROPERTY: &str = "strata.record";
/// Most snapshots kept in the metadata (older ones are dropped from it; their
/// files stay, unreferenced).
pub const MAX_SNAPSHOTS: usize = 100;
/// Most entries kept in `metadata-log`.
pub const MAX_METADATA_LOG: usize = 100;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// One column of the Iceberg schema: id, name, whether required, type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Field id.
    pub id: i32,
    /// Column name (as in the Parquet file).
    pub name: String,
    /// Whether a value is always present.
    pub required: bool,
    /// The type.
    pub kind: Kind,
}

/// An Iceberg type as far as Strata's schema needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A primitive: `long`, `string`, `binary`, `timestamptz`.
    Primitive(&'static str),
    /// A list with its element's id and whether elements are required.
    List {
        /// Element field id.
        element_id: i32,
        /// Whether elements are never null.
        element_required: bool,
        /// The element type.
        element: Box<Kind>,
    },
    /// A struct of columns.
    Struct(Vec<Column>),
}

/// The error of a data file schema Iceberg cannot describe (a bug: the Arrow
/// schema gained a type this conversion does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: Arrow type {data_type} has no Iceberg type here (please report this as a bug)")]
pub struct UnsupportedType {
    /// The column.
    pub column: String,
    /// The Arrow type.
    pub data_type: String,
}

/// The table's columns: the data file columns, then `station`, with field ids
/// as described in the module doc.
///
/// # Errors
/// [`UnsupportedType`] when the Arrow schema holds a type with no mapping here.
pub fn columns() -> Result<Vec<Column>, UnsupportedType> {
    let schema = columnar::schema();
    let top = schema.fields().len() as i32 + 1; // + station
    let mut next_id = top + 1;
    let mut cols = Vec::with_capacity(schema.fields().len() + 1);
    for (i, field) in schema.fields().iter().enumerate() {
        cols.push(Column {
            id: i as i32 + 1,
            name: field.name().clone(),
            required: !field.is_nullable(),
            kind: kind_of(field, &mut next_id)?,
        });
    }
    cols.push(Column {
        id: top,
        name: STATION.to_string(),
        // Filled from the partition value by readers; optional so that a reader
        // that cannot do that reads nulls instead of failing.
        required: false,
        kind: Kind::Primitive("string"),
    });
    Ok(cols)
}

fn kind_of(field: &Field, next_id: &mut i32) -> Result<Kind, UnsupportedType> {
    let unsupported = || UnsupportedType {
        column: field.name().clone(),
        data_type: field.data_type().to_string(),
    };
    Ok(match field.data_type() {
        DataType::Int64 => Kind::Primitive("long"),
        DataType::Utf8 => Kind::Primitive("string"),
        DataType::Binary => Kind::Primitive("binary"),
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
            Kind::Primitive("timestamptz")
        }
        DataType::List(element) => {
            let element_id = *next_id;
            *next_id += 1;
            Kind::List {
                element_id,
                element_required: !element.is_nullable(),
                element: Box::new(kind_of(element, next_id)?),
            }
        }
        DataType::Struct(fields) => {
            let first = *next_id;
            *next_id += fields.len() as i32;
            let mut cols = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                cols.push(Column {
                    id: first + i as i32,
                    name: f.name().clone(),
                    required: !f.is_nullable(),
                    kind: kind_of(f, next_id)?,
                });
            }
            Kind::Struct(cols)
        }
        _ => return Err(unsupported()),
    })
}

/// The largest field id in `cols`.
pub fn last_column_id(cols: &[Column]) -> i32 {
    fn max_kind(k: &Kind) -> i32 {
        match k {
            Kind::Primitive(_) => 0,
            Kind::List {
                element_id,
                element,
                ..
            } => (*element_id).max(max_kind(element)),
            Kind::Struct(cols) => last_column_id(cols),
        }
    }
    cols.iter()
        .map(|c| c.id.max(max_kind(&c.kind)))
        .max()
        .unwrap_or(0)
}

fn kind_json(k: &Kind) -> Value {
    match k {
        Kind::Primitive(p) => json!(p),
        Kind::List {
            element_id,
            element_required,
            element,
        } => json!({
            "type": "list",
            "element-id": element_id,
            "element-required": element_required,
            "element": kind_json(element),
        }),
        Kind::Struct(cols) => json!({"type": "struct", "fields": fields_json(cols)}),
    }
}

fn fields_json(cols: &[Column]) -> Vec<Value> {
    cols.iter()
        .map(|c| {
            json!({"id": c.id, "name": c.name, "required": c.required, "type": kind_json(&c.kind)})
        })
        .collect()
}

/// The Iceberg schema JSON (`schemas[0]` of the table metadata).
pub fn schema_json(cols: &[Column]) -> Value {
    json!({"type": "struct", "schema-id": SCHEMA_ID, "fields": fields_json(cols)})
}

/// The partition spec's fields: `station` identity, `hour(timestamp)`.
pub fn partition_fields_json() -> Value {
    json!([
        {"name": STATION, "transform": "identity", "source-id": STATION_FIELD_ID, "field-id": STATION_PARTITION_ID},
        {"name": HOUR_PARTITION, "transform": "hour", "source-id": TIMESTAMP_FIELD_ID, "field-id": HOUR_PARTITION_ID},
    ])
}

/// The partition spec (`partition-specs[0]`).
pub fn partition_spec_json() -> Value {
    json!({"spec-id": SPEC_ID, "fields": partition_fields_json()})
}

/// The name mapping (`schema.name-mapping.default`): every field id with the
/// Parquet column name that holds it. Lists map their element by the name
/// Arrow writes (`element`).
pub fn name_mapping(cols: &[Column]) -> Value {
    fn kind_fields(k: &Kind) -> Option<Vec<Value>> {
        match k {
            Kind::Primitive(_) => None,
            Kind::List {
                element_id,
                element,
                ..
            } => {
                let mut m =
                    json!({"field-id": element_id, "names": [columnar::schema::HEADER_ELEMENT]});
                if let Some(f) = kind_fields(element) {
                    m["fields"] = json!(f);
                }
                Some(vec![m])
            }
            Kind::Struct(cols) => Some(mapping(cols)),
        }
    }
    fn mapping(cols: &[Column]) -> Vec<Value> {
        cols.iter()
            .map(|c| {
                let mut m = json!({"field-id": c.id, "names": [c.name]});
                if let Some(f) = kind_fields(&c.kind) {
                    m["fields"] = json!(f);
                }
                m
            })
            .collect()
    }
    json!(mapping(cols))
}

/// `hour(ts)` as Iceberg computes it: whole hours since the Unix epoch.
pub fn hour_of(ts: Timestamp) -> i32 {
    let hours = ts.micros().div_euclid(MICROS_PER_HOUR);
    i32::try_from(hours).unwrap_or(if hours < 0 { i32::MIN } else { i32::MAX })
}

/// Iceberg's single-value binary form of a `long` or `timestamptz`: 8 bytes,
/// little endian.
pub fn long_bytes(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Iceberg's single-value binary form of an `int`: 4 bytes, little endian.
pub fn int_bytes(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// One data file as the table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Absolute URL a reader opens (`s3://…` or `file:///…`).
    pub path: String,
    /// Partition value `station`.
    pub station: String,
    /// Partition value `timestamp_hour` (hours since the epoch).
    pub hour: i32,
    /// Rows in the file.
    pub record_count: i64,
    /// Object size in bytes.
    pub file_size: i64,
    /// Lower bounds by field id, single-value binary.
    pub lower_bounds: BTreeMap<i32, Vec<u8>>,
    /// Upper bounds by field id, single-value binary.
    pub upper_bounds: BTreeMap<i32, Vec<u8>>,
}

/// A committed file whose recorded statistics do not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("committed file {key}: {reason}; the record is not one Strata wrote (check the object)")]
pub struct BadCommittedFile {
    /// The file's key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl DataFile {
    /// The entry for `file` (from a commit or replacement record), whose object
    /// a reader opens at `url`.
    ///
    /// # Errors
    /// [`BadCommittedFile`] when the timestamps or counts do not parse.
    pub fn from_committed(file: &CommittedFile, url: String) -> Result<DataFile, BadCommittedFile> {
        let bad = |reason: String| BadCommittedFile {
            key: file.key.clone(),
            reason,
        };
        let min_ts = Timestamp::parse_rfc3339(&file.min_timestamp)
            .map_err(|e| bad(format!("min_timestamp: {e}")))?;
        let max_ts = Timestamp::parse_rfc3339(&file.max_timestamp)
            .map_err(|e| bad(format!("max_timestamp: {e}")))?;
        let first = i64::try_from(file.first_seq).map_err(|_| bad("first_seq above i64".into()))?;
        let last = i64::try_from(file.last_seq).map_err(|_| bad("last_seq above i64".into()))?;
        let record_count = i64::try_from(file.rows).map_err(|_| bad("rows above i64".into()))?;
        let file_size = i64::try_from(file.bytes).map_err(|_| bad("bytes above i64".into()))?;
        // Every row of a data file is in one UTC hour (the layout's rule).
        let hour = hour_of(min_ts);
        let station = file.station.clone();
        let lower_bounds = BTreeMap::from([
            (SEQ_FIELD_ID, long_bytes(first)),
            (TIMESTAMP_FIELD_ID, long_bytes(min_ts.micros())),
            (STATION_FIELD_ID, station.as_bytes().to_vec()),
        ]);
        let upper_bounds = BTreeMap::from([
            (SEQ_FIELD_ID, long_bytes(last)),
            (TIMESTAMP_FIELD_ID, long_bytes(max_ts.micros())),
            (STATION_FIELD_ID, station.as_bytes().to_vec()),
        ]);
        Ok(DataFile {
            path: url,
            station,
            hour,
            record_count,
            file_size,
            lower_bounds,
            upper_bounds,
        })
    }
}

/// A snapshot in the table metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    /// Unique id.
    pub snapshot_id: i64,
    /// The snapshot it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_snapshot_id: Option<i64>,
    /// The table's sequence number of this snapshot.
    pub sequence_number: i64,
    /// When it was committed, ms since the epoch.
    pub timestamp_ms: i64,
    /// Absolute URL of its manifest list.
    pub manifest_list: String,
    /// `operation` and counts; Strata adds [`RECORD_PROPERTY`].
    pub summary: BTreeMap<String, String>,
    /// The schema it was written with.
    pub schema_id: i32,
}

/// `snapshot-log` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotLogEntry {
    /// When the snapshot became current.
    pub timestamp_ms: i64,
    /// The snapshot.
    pub snapshot_id: i64,
}

/// `metadata-log` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MetadataLogEntry {
    /// When that metadata file was replaced.
    pub timestamp_ms: i64,
    /// The earlier metadata file's absolute URL.
    pub metadata_file: String,
}

/// A branch or tag; Strata writes only `main`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotRef {
    /// The snapshot it points at.
    pub snapshot_id: i64,
    /// `branch`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Iceberg table metadata (format v2), as stored in `vN.metadata.json`.
/// Schemas, specs and sort orders are kept as JSON: Strata writes one of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TableMetadata {
    /// 2.
    pub format_version: i32,
    /// Identity of the table.
    pub table_uuid: String,
    /// Absolute URL of the table's folder.
    pub location: String,
    /// Highest sequence number assigned.
    pub last_sequence_number: i64,
    /// Last change, ms since the epoch.
    pub last_updated_ms: i64,
    /// Highest field id.
    pub last_column_id: i32,
    /// The schemas.
    pub schemas: Vec<Value>,
    /// Current schema id.
    pub current_schema_id: i32,
    /// The partition specs.
    pub partition_specs: Vec<Value>,
    /// Default spec id.
    pub default_spec_id: i32,
    /// Highest partition field id.
    pub last_partition_id: i32,
    /// Table properties (the name mapping among them).
    pub properties: BTreeMap<String, String>,
    /// Current snapshot, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_snapshot_id: Option<i64>,
    /// Snapshots kept.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// History of the current snapshot.
    #[serde(default)]
    pub snapshot_log: Vec<SnapshotLogEntry>,
    /// Earlier metadata files.
    #[serde(default)]
    pub metadata_log: Vec<MetadataLogEntry>,
    /// Sort orders (one, unsorted).
    pub sort_orders: Vec<Value>,
    /// Default sort order id.
    pub default_sort_order_id: i32,
    /// Branches; `main` is the current snapshot.
    #[serde(default)]
    pub refs: BTreeMap<String, SnapshotRef>,
}

impl TableMetadata {
    /// A new table at `location` (absolute URL) with no snapshot.
    ///
    /// # Errors
    /// [`UnsupportedType`] (a bug) when the data file schema has no Iceberg form.
    pub fn new(location: String, table_uuid: String, now_ms: i64) -> Result<Self, UnsupportedType> {
        let cols = columns()?;
        let properties = BTreeMap::from([
            (
                "schema.name-mapping.default".to_string(),
                name_mapping(&cols).to_string(),
            ),
            ("write.format.default".to_string(), "parquet".to_string()),
            (
                "write.parquet.compression-codec".to_string(),
                "zstd".to_string(),
            ),
            (
                "strata.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]);
        Ok(TableMetadata {
            format_version: FORMAT_VERSION,
            table_uuid,
            location,
            last_sequence_number: 0,
            last_updated_ms: now_ms,
            last_column_id: last_column_id(&cols),
            schemas: vec![schema_json(&cols)],
            current_schema_id: SCHEMA_ID,
            partition_specs: vec![partition_spec_json()],
            default_spec_id: SPEC_ID,
            last_partition_id: HOUR_PARTITION_ID,
            properties,
            current_snapshot_id: None,
            snapshots: Vec::new(),
            snapshot_log: Vec::new(),
            metadata_log: Vec::new(),
            sort_orders: vec![json!({"order-id": 0, "fields": []})],
            default_sort_order_id: 0,
            refs: BTreeMap::new(),
        })
    }

    /// The current snapshot.
    pub fn current_snapshot(&self) -> Option<&Snapshot> {
        let id = self.current_snapshot_id?;
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }

    /// Whether a kept snapshot came from the record `key` ([`RECORD_PROPERTY`]).
    pub fn has_record(&self, key: &str) -> bool {
        self.snapshots
            .iter()
            .any(|s| s.summary.get(RECORD_PROPERTY).map(String::as_str) == Some(key))
    }

    /// This metadata with `snapshot` made current; `previous` (the URL of the
    /// metadata file this one replaces, if any) goes to the metadata log.
    /// Keeps at most [`MAX_SNAPSHOTS`] snapshots and [`MAX_METADATA_LOG`] log entries.
    pub fn with_snapshot(&self, snapshot: Snapshot, previous: Option<String>) -> TableMetadata {
        let mut next = self.clone();
        let ts = snapshot.timestamp_ms;
        next.last_sequence_number = snapshot.sequence_number;
        next.last_updated_ms = ts;
        next.current_snapshot_id = Some(snapshot.snapshot_id);
        next.refs.insert(
            "main".to_string(),
            SnapshotRef {
                snapshot_id: snapshot.snapshot_id,
                kind: "branch".to_string(),
            },
        );
        next.snapshot_log.push(SnapshotLogEntry {
            timestamp_ms: ts,
            snapshot_id: snapshot.snapshot_id,
        });
        next.snapshots.push(snapshot);
        if next.snapshots.len() > MAX_SNAPSHOTS {
            let drop = next.snapshots.len() - MAX_SNAPSHOTS;
            next.snapshots.drain(..drop);
            let kept: std::collections::HashSet<i64> =
                next.snapshots.iter().map(|s| s.snapshot_id).collect();
            next.snapshot_log.retain(|e| kept.contains(&e.snapshot_id));
        }
        if let Some(file) = previous {
            next.metadata_log.push(MetadataLogEntry {
                timestamp_ms: self.last_updated_ms,
                metadata_file: file,
            });
            if next.metadata_log.len() > MAX_METADATA_LOG {
                let drop = next.metadata_log.len() - MAX_METADATA_LOG;
                next.metadata_log.drain(..drop);
            }
        }
        next
    }

    /// The metadata as pretty JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self)
            .expect("metadata of strings, numbers and JSON values serializes")
    }

    /// Reads metadata written by [`TableMetadata::to_json`] (or another v2 writer
    /// that keeps to the fields Strata uses).
    ///
    /// # Errors
    /// The JSON error, or a message when the format version is not 2.
    pub fn from_json(bytes: &[u8]) -> Result<TableMetadata, String> {
        let m: TableMetadata = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format_version != FORMAT_VERSION {
            return Err(format!(
                "format-version {} (Strata reads and writes version {FORMAT_VERSION})",
                m.format_version
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_ids_are_pinned() {
        let cols = columns().unwrap();
        let schema = schema_json(&cols);
        assert_eq!(
            schema,
            json!({"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "seq", "required": true, "type": "long"},
                {"id": 2, "name": "timestamp", "required": true, "type": "timestamptz"},
                {"id": 3, "name": "id", "required": false, "type": "string"},
                {"id": 4, "name": "subject", "required": false, "type": "string"},
                {"id": 5, "name": "headers", "required": true, "type": {
                    "type": "list", "element-id": 8, "element-required": true,
                    "element": {"type": "struct", "fields": [
                        {"id": 9, "name": "name", "required": true, "type": "string"},
                        {"id": 10, "name": "value", "required": true, "type": "string"},
                    ]}}},
                {"id": 6, "name": "payload", "required": true, "type": "binary"},
                {"id": 7, "name": "station", "required": false, "type": "string"},
            ]})
        );
        assert_eq!(last_column_id(&cols), 10);
        let id_of = |name: &str| cols.iter().find(|c| c.name == name).map(|c| c.id);
        assert_eq!(id_of(columnar::schema::SEQ), Some(SEQ_FIELD_ID));
        assert_eq!(id_of(columnar::schema::TIMESTAMP), Some(TIMESTAMP_FIELD_ID));
        assert_eq!(id_of(STATION), Some(STATION_FIELD_ID));
        assert_eq!(
            name_mapping(&cols)[4],
            json!({"field-id": 5, "names": ["headers"], "fields": [
            {"field-id": 8, "names": ["element"], "fields": [
                {"field-id": 9, "names": ["name"]},
                {"field-id": 10, "names": ["value"]},
            ]}]})
        );
    }

    #[test]
    fn data_file_carries_partition_and_bounds() {
        let file = CommittedFile {
            key: "p/station=orders/date=2026-11-30/hour=09/x.parquet".into(),
            station: "orders".into(),
            rows: 3,
            first_seq: 7,
            last_seq: 9,
            min_timestamp: "2026-11-30T09:00:00.000001Z".into(),
            max_timestamp: "2026-11-30T09:59:59Z".into(),
            bytes: 1234,
            sha256: String::new(),
        };
        let f = DataFile::from_committed(&file, "s3://b/p/x".into()).unwrap();
        assert_eq!(f.station, "orders");
        let min = Timestamp::parse_rfc3339("2026-11-30T09:00:00Z").unwrap();
        assert_eq!(i64::from(f.hour) * MICROS_PER_HOUR, min.micros());
        assert_eq!(f.lower_bounds[&SEQ_FIELD_ID], 7i64.to_le_bytes());
        assert_eq!(f.upper_bounds[&SEQ_FIELD_ID], 9i64.to_le_bytes());
        assert_eq!(f.record_count, 3);
        let mut bad = file.clone();
        bad.max_timestamp = "yesterday".into();
        assert!(DataFile::from_committed(&bad, String::new()).is_err());
    }

    #[test]
    fn metadata_round_trips_and_keeps_a_bounded_history() {
        let mut m = TableMetadata::new("file:///a/_strata/iceberg".into(), "u".into(), 1).unwrap();
        assert!(m.current_snapshot().is_none());
        for i in 0..(MAX_SNAPSHOTS as i64 + 5) {
            let s = Snapshot {
                snapshot_id: i + 1,
                parent_snapshot_id: m.current_snapshot_id,
                sequence_number: i + 1,
                timestamp_ms: i,
                manifest_list: format!("file:///l{i}"),
                summary: BTreeMap::from([(RECORD_PROPERTY.to_string(), format!("r{i}"))]),
                schema_id: SCHEMA_ID,
            };
            m = m.with_snapshot(s, Some(format!("v{i}")));
        }
        assert_eq!(m.snapshots.len(), MAX_SNAPSHOTS);
        assert_eq!(m.snapshot_log.len(), MAX_SNAPSHOTS);
        assert_eq!(m.metadata_log.len(), MAX_METADATA_LOG);
        assert_eq!(
            m.current_snapshot().unwrap().snapshot_id,
            MAX_SNAPSHOTS as i64 + 5
        );
        assert!(m.has_record(&format!("r{}", MAX_SNAPSHOTS + 4)));
        assert!(!m.has_record("r0"));
        let back = TableMetadata::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let v: Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(v["format-version"], 2);
        assert_eq!(v["refs"]["main"]["type"], "branch");
        assert!(v["properties"]["schema.name-mapping.default"].is_string());
    }

    proptest! {
        #[test]
        fn hour_transform_contains_the_timestamp(ts in -(1i64 << 55)..(1i64 << 55)) {
            let h = i64::from(hour_of(Timestamp(ts)));
            prop_assert!(h * MICROS_PER_HOUR <= ts && ts < (h + 1) * MICROS_PER_HOUR);
        }

        #[test]
        fn bounds_decode_back_to_the_value(a in any::<i64>(), h in any::<i32>()) {
            // Iceberg's single-value form is little endian (readers decode, then compare).
            prop_assert_eq!(i64::from_le_bytes(long_bytes(a).try_into().unwrap()), a);
            prop_assert_eq!(i32::from_le_bytes(int_bytes(h).try_into().unwrap()), h);
        }
    }
}
