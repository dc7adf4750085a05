//! Process metrics, served by `GET /metrics` in the Prometheus text format
//! (version 0.0.4), or in OpenMetrics when the scraper asks for it ([`Format`]).
//! Every part of `strata run` shares one [`Metrics`] (behind an `Arc`); the
//! families are `prometheus-client` counters, gauges and a histogram, updated
//! with lock-free atomics except the first sighting of a label set, which
//! takes a short write lock.
//!
//! | metric | type | labels | set by |
//! | --- | --- | --- | --- |
//! | `strata_ingested_messages_total` | counter | station, source | sources: messages the WAL accepted and made durable (duplicates not counted) |
//! | `strata_ingested_bytes_total` | counter | station, source | sources: payload bytes of the same messages |
//! | `strata_duplicates_total` | counter | station, source | sources: messages the WAL dropped because their (station, seq) was already stored, in flight, or earlier in the same batch |
//! | `strata_wal_full_total` | counter | source | sources: appends refused because the WAL was full (HTTP answers 503, NATS waits and retries) |
//! | `strata_source_errors_total` | counter | source | sources: transient errors (fetch, ack, reconnect) |
//! | `strata_wal_bytes` | gauge | | process: bytes of the WAL's segment files (active and sealed), as counted against `max_disk_bytes` |
//! | `strata_wal_segments` | gauge | | process: WAL segment files (active and sealed) |
//! | `strata_oldest_unuploaded_age_seconds` | gauge | | compactor: age of the oldest message in a sealed segment waiting for upload (the active segment is not counted) |
//! | `strata_upload_errors_total` | counter | | compactor: failed compaction passes (a store error; the segment stays in the WAL) |
//! | `strata_upload_retries_total` | counter | | compactor: compaction passes retried after a failure |
//! | `strata_compactions_total` | counter | | compactor: segments compacted and uploaded |
//! | `strata_compaction_duration_seconds` | histogram (`_bucket`, `_sum`, `_count`) | | compactor: time to compact and upload one segment |
//! | `strata_compacted_bytes_total` | counter | | compactor: Parquet bytes uploaded |
//! | `strata_wal_poisoned` | gauge | | process: 1 while the WAL refuses appends after a failed write or fsync ([`crate::health`]) |
//! | `strata_compactor_failing_seconds` | gauge | | process: how long compaction has been failing (0 after a success) |
//! | `strata_http_inflight_bytes` | gauge | | HTTP server: request body bytes held now (bounded by `max_inflight_bytes`) |
//! | `strata_compacted_rows_total` | counter | | compactor: rows written |
//! | `strata_http_requests_total` | counter | code | HTTP server: answers by status code |
//! | `strata_stream_incarnations_total` | counter | station | NATS source: new incarnations of a stream detected (deleted and created again) |
//! | `strata_gap_messages_total` | counter | station | NATS source: messages the stream expelled (or lost) before Strata read them |
//! | `strata_restore_echoes_total` | counter | station | NATS source: messages recognised as restored copies of archived ones, not archived again |
//! | `strata_expel_risk` | gauge | station | NATS source: how close the oldest unarchived message is to the stream's limits (0..1, 1 = about to be lost) |
//! | `strata_cluster_stations_owned` | gauge | | cluster: stations whose lease this process holds now |
//! | `strata_cluster_lease_losses_total` | counter | | cluster: leases lost (renewal conflicted or could not be made before the deadline); archiving of the station stopped at once |
//! | `strata_cluster_duplicates_dropped_total` | counter | station | compactor (cluster): rows left out of an upload because another process had already archived them |
//!
//! Counters are registered without their `_total` suffix: `prometheus-client`
//! adds it to the exposed name.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{
    prometheus_text, text, EncodeLabelSet, EncodeMetric, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};

use crate::wal::Appended;

/// A gauge of whole numbers (bytes, counts).
type IntGauge = Gauge<u64, AtomicU64>;
/// A gauge of seconds or ratios.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels of the per-station ingest counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StationSource {
    station: String,
    source: &'static str,
}

/// The `source` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: &'static str,
}

/// The `station` label of the identity figures.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Station {
    station: String,
}

/// The `code` label of HTTP answers.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: u16,
}

/// One (station, source)'s ingest counters: handles on the family members,
/// kept so an append finds them without building a label set.
#[derive(Debug)]
struct StationCounters {
    messages: Counter,
    bytes: Counter,
    duplicates: Counter,
}

/// One station's identity counters and expel-risk gauge.
#[derive(Debug)]
struct IdentityCounters {
    incarnations: Counter,
    gap_messages: Counter,
    echoes: Counter,
    expel_risk: FloatGauge,
}

/// The families, each registered once in [`Metrics::registry`].
#[derive(Debug, Default)]
struct Families {
    ingested_messages: Family<StationSource, Counter>,
    ingested_bytes: Family<StationSource, Counter>,
    duplicates: Family<StationSource, Counter>,
    wal_full: Family<Source, Counter>,
    source_errors: Family<Source, Counter>,
    http_requests: Family<Code, Counter>,
    incarnations: Family<Station, Counter>,
    gap_messages: Family<Station, Counter>,
    restore_echoes: Family<Station, Counter>,
    expel_risk: Family<Station, FloatGauge>,
    cluster_dropped: Family<Station, Counter>,
}

/// Status codes below 100 are counted as 100, above 599 as 600.
const HTTP_CODES: std::ops::RangeInclusive<u16> = 100..=600;

/// Buckets of `strata_compaction_duration_seconds`: a segment takes from
/// well under a second (small, local) to minutes (64 MiB to a slow store).
const COMPACTION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The exposition formats `GET /metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics 1.0 text: counter families are named without `_total`
    /// in `# HELP`/`# TYPE` (samples keep it) and the text ends with `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (as Prometheus does), else the
    /// Prometheus text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The process-wide metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    /// source -> station -> counters; read-locked on every append.
    stations: RwLock<HashMap<&'static str, HashMap<String, Arc<StationCounters>>>>,
    /// station -> identity counters of the NATS source.
    identity: RwLock<BTreeMap<String, Arc<IdentityCounters>>>,
    wal_bytes: IntGauge,
    wal_segments: IntGauge,
    wal_poisoned: IntGauge,
    compactor_failing: FloatGauge,
    http_inflight_bytes: IntGauge,
    oldest_unuploaded_age: FloatGauge,
    upload_errors: Counter,
    upload_retries: Counter,
    compactions: Counter,
    compaction_duration: Histogram,
    compacted_bytes: Counter,
    compacted_rows: Counter,
    cluster_owned: IntGauge,
    cluster_lease_losses: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry (every counter zero).
    pub fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            families: Families::default(),
            stations: RwLock::default(),
            identity: RwLock::default(),
            wal_bytes: IntGauge::default(),
            wal_segments: IntGauge::default(),
            wal_poisoned: IntGauge::default(),
            compactor_failing: FloatGauge::default(),
            http_inflight_bytes: IntGauge::default(),
            oldest_unuploaded_age: FloatGauge::default(),
            upload_errors: Counter::default(),
            upload_retries: Counter::default(),
            compactions: Counter::default(),
            compaction_duration: Histogram::new(COMPACTION_BUCKETS),
            compacted_bytes: Counter::default(),
            compacted_rows: Counter::default(),
            cluster_owned: IntGauge::default(),
            cluster_lease_losses: Counter::default(),
        };
        m.register()
    }

    /// Registers every family with its help text (the registry clones the
    /// handles: they share their values with the fields).
    fn register(mut self) -> Self {
        let f = &self.families;
        let r = &mut self.registry;
        // The registry ends each help text with a period.
        fn add(r: &mut Registry, name: &str, help: &str, metric: impl Metric) {
            r.register(name, help, Announced(metric));
        }
        add(
            r,
            "strata_ingested_messages",
            "Messages a source appended that the WAL accepted and made durable (duplicates are counted in strata_duplicates_total only)",
            f.ingested_messages.clone(),
        );
        add(
            r,
            "strata_ingested_bytes",
            "Payload bytes of the messages counted by strata_ingested_messages_total",
            f.ingested_bytes.clone(),
        );
        add(
            r,
            "strata_duplicates",
            "Messages the WAL dropped because their (station, seq) was already stored, in flight, or earlier in the same batch",
            f.duplicates.clone(),
        );
        add(
            r,
            "strata_wal_full",
            "Appends a source could not make because the WAL was full (HTTP answers 503, the NATS source waits and retries)",
            f.wal_full.clone(),
        );
        add(
            r,
            "strata_source_errors",
            "Transient source errors (failed fetch or ack, lost connection); the source retries",
            f.source_errors.clone(),
        );
        add(
            r,
            "strata_wal_bytes",
            "Bytes of the WAL's segment files (active and sealed), as counted against [wal] max_disk_bytes",
            self.wal_bytes.clone(),
        );
        add(
            r,
            "strata_wal_segments",
            "WAL segment files (active and sealed)",
            self.wal_segments.clone(),
        );
        add(
            r,
            "strata_wal_poisoned",
            "1 while the WAL refuses appends after a failed write, fsync or seal (restart to recover)",
            self.wal_poisoned.clone(),
        );
        add(
            r,
            "strata_http_inflight_bytes",
            "Request body bytes the HTTP server holds now (at most [http] max_inflight_bytes)",
            self.http_inflight_bytes.clone(),
        );
        add(
            r,
            "strata_upload_errors",
            "Segment compactions that failed (usually an object store error); the segment stays in the WAL",
            self.upload_errors.clone(),
        );
        add(
            r,
            "strata_upload_retries",
            "Compaction passes retried after a failed one (with backoff)",
            self.upload_retries.clone(),
        );
        add(
            r,
            "strata_compacted_bytes",
            "Parquet bytes uploaded by compaction",
            self.compacted_bytes.clone(),
        );
        add(
            r,
            "strata_compacted_rows",
            "Rows written to Parquet by compaction",
            self.compacted_rows.clone(),
        );
        add(
            r,
            "strata_compactions",
            "WAL segments compacted and uploaded",
            self.compactions.clone(),
        );
        add(
            r,
            "strata_oldest_unuploaded_age_seconds",
            "Age of the oldest message in a sealed WAL segment waiting for upload (0 when none waits; the active segment is not counted)",
            self.oldest_unuploaded_age.clone(),
        );
        add(
            r,
            "strata_compactor_failing_seconds",
            "How long compaction has been failing (0 after a pass that succeeded)",
            self.compactor_failing.clone(),
        );
        add(
            r,
            "strata_compaction_duration_seconds",
            "Time to compact and upload one WAL segment",
            self.compaction_duration.clone(),
        );
        add(
            r,
            "strata_cluster_stations_owned",
            "Stations whose lease this process holds now (cluster of processes sharing the NATS consumer)",
            self.cluster_owned.clone(),
        );
        add(
            r,
            "strata_cluster_lease_losses",
            "Station leases lost (renewal conflicted or missed its deadline); the station stopped being archived here at once",
            self.cluster_lease_losses.clone(),
        );
        add(
            r,
            "strata_cluster_duplicates_dropped",
            "Rows left out of an upload because another Strata process had already archived them (after a takeover)",
            f.cluster_dropped.clone(),
        );
        add(
            r,
            "strata_http_requests",
            "HTTP requests answered, by status code",
            f.http_requests.clone(),
        );
        add(
            r,
            "strata_stream_incarnations",
            "New incarnations of a station's stream detected (deleted and created again); archived under new seqs",
            f.incarnations.clone(),
        );
        add(
            r,
            "strata_gap_messages",
            "Messages the stream expelled or lost before Strata read them (a gap, recorded in the archive)",
            f.gap_messages.clone(),
        );
        add(
            r,
            "strata_restore_echoes",
            "Messages recognised as signed restored copies of archived messages and not archived again",
            f.restore_echoes.clone(),
        );
        add(
            r,
            "strata_expel_risk",
            "How close the oldest unarchived message is to the stream's max_msgs, max_bytes or max_age (0..1; 1 = about to be lost)",
            f.expel_risk.clone(),
        );
        self
    }

    fn station(&self, station: &str, source: &'static str) -> Arc<StationCounters> {
        // The map only ever grows, so a poisoned lock still holds valid data.
        if let Some(c) = self
            .stations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
            .and_then(|m| m.get(station))
        {
            return Arc::clone(c);
        }
        let mut map = self.stations.write().unwrap_or_else(|e| e.into_inner());
        let f = &self.families;
        let counters = map
            .entry(source)
            .or_default()
            .entry(station.to_string())
            .or_insert_with(|| {
                let labels = StationSource {
                    station: station.to_string(),
                    source,
                };
                Arc::new(StationCounters {
                    messages: f.ingested_messages.get_or_create_owned(&labels),
                    bytes: f.ingested_bytes.get_or_create_owned(&labels),
                    duplicates: f.duplicates.get_or_create_owned(&labels),
                })
            });
        Arc::clone(counters)
    }

    /// Counts what one append by `source` for `station` did: the messages the
    /// WAL accepted (and their payload bytes) in `strata_ingested_*`, the
    /// duplicates it dropped in `strata_duplicates_total` only.
    pub fn inc_appended(&self, station: &str, source: &'static str, appended: &Appended) {
        self.inc_ingested(
            station,
            source,
            appended.accepted as u64,
            appended.accepted_bytes,
        );
        if appended.duplicates > 0 {
            self.inc_duplicates(station, source, appended.duplicates as u64);
        }
    }

    /// Counts `msgs` messages of `bytes` payload bytes that `source` (`"http"`,
    /// `"nats"`) appended to the WAL for `station` and that the WAL accepted:
    /// never the duplicates it dropped (those go to [`Metrics::inc_duplicates`]).
    /// [`Metrics::inc_appended`] does both from an append's result.
    pub fn inc_ingested(&self, station: &str, source: &'static str, msgs: u64, bytes: u64) {
        let c = self.station(station, source);
        c.messages.inc_by(msgs);
        c.bytes.inc_by(bytes);
    }

    /// Counts messages the WAL dropped because their (station, seq) was already
    /// stored, in flight, or earlier in the same batch.
    pub fn inc_duplicates(&self, station: &str, source: &'static str, msgs: u64) {
        self.station(station, source).duplicates.inc_by(msgs);
    }

    /// Counts an append `source` could not make because the WAL was full.
    pub fn inc_wal_full(&self, source: &'static str) {
        self.families
            .wal_full
            .get_or_create(&Source { source })
            .inc();
    }

    /// Counts a transient error of `source` (a failed fetch or ack, a lost connection).
    pub fn inc_source_error(&self, source: &'static str) {
        self.families
            .source_errors
            .get_or_create(&Source { source })
            .inc();
    }

    /// Sets the WAL gauges (from `Wal::stats`).
    pub fn set_wal(&self, bytes: u64, segments: u64) {
        self.wal_bytes.set(bytes);
        self.wal_segments.set(segments);
    }

    /// Sets the health gauges from a health check.
    pub fn set_health(&self, status: &crate::health::Status) {
        self.wal_poisoned.set(u64::from(status.wal_poisoned));
        self.compactor_failing
            .set(status.compactor_failing.as_secs_f64());
    }

    /// Cluster: the stations whose lease this process holds now.
    pub fn set_cluster_stations_owned(&self, n: u64) {
        self.cluster_owned.set(n);
    }

    /// Cluster: a lease was lost.
    pub fn inc_cluster_lease_loss(&self) {
        self.cluster_lease_losses.inc();
    }

    /// Cluster: `rows` rows of `station` were left out of an upload as
    /// already archived by another process.
    pub fn inc_cluster_duplicates_dropped(&self, station: &str, rows: u64) {
        self.families
            .cluster_dropped
            .get_or_create(&Station {
                station: station.to_string(),
            })
            .inc_by(rows);
    }

    /// Sets the request body bytes the HTTP server holds now.
    pub fn set_http_inflight_bytes(&self, bytes: u64) {
        self.http_inflight_bytes.set(bytes);
    }

    /// Sets the age of the oldest message in a sealed segment waiting for upload
    /// (0 when none is waiting).
    pub fn set_oldest_unuploaded_age(&self, secs: f64) {
        self.oldest_unuploaded_age.set(secs);
    }

    /// Counts a failed segment compaction (usually an object store error).
    pub fn inc_upload_error(&self) {
        self.upload_errors.inc();
    }

    /// Counts a compaction pass retried after a failed one.
    pub fn inc_upload_retry(&self) {
        self.upload_retries.inc();
    }

    /// Records one segment compacted: how long it took, and the Parquet bytes
    /// uploaded and rows written.
    pub fn observe_compaction(&self, duration: Duration, bytes: u64, rows: u64) {
        self.compactions.inc();
        self.compaction_duration.observe(duration.as_secs_f64());
        self.compacted_bytes.inc_by(bytes);
        self.compacted_rows.inc_by(rows);
    }

    /// Counts an HTTP answer with `status`.
    pub fn inc_http(&self, status: u16) {
        let code = status.clamp(*HTTP_CODES.start(), *HTTP_CODES.end());
        self.families
            .http_requests
            .get_or_create(&Code { code })
            .inc();
    }

    /// A station's identity figures; the first call for a station creates
    /// all four series, so each appears (at 0) once the station is reported on.
    fn identity(&self, station: &str) -> Arc<IdentityCounters> {
        if let Some(c) = self
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(station)
        {
            return Arc::clone(c);
        }
        let mut map = self.identity.write().unwrap_or_else(|e| e.into_inner());
        let f = &self.families;
        let counters = map.entry(station.to_string()).or_insert_with(|| {
            let labels = Station {
                station: station.to_string(),
            };
            Arc::new(IdentityCounters {
                incarnations: f.incarnations.get_or_create_owned(&labels),
                gap_messages: f.gap_messages.get_or_create_owned(&labels),
                echoes: f.restore_echoes.get_or_create_owned(&labels),
                expel_risk: f.expel_risk.get_or_create_owned(&labels),
            })
        });
        Arc::clone(counters)
    }

    /// Counts a new incarnation of `station`'s stream.
    pub fn inc_incarnation(&self, station: &str) {
        self.identity(station).incarnations.inc();
    }

    /// Counts `n` messages of `station` lost upstream (a gap).
    pub fn inc_gap_messages(&self, station: &str, n: u64) {
        self.identity(station).gap_messages.inc_by(n);
    }

    /// Counts `n` restored copies of `station` recognised and not archived again.
    pub fn inc_restore_echoes(&self, station: &str, n: u64) {
        self.identity(station).echoes.inc_by(n);
    }

    /// Sets `station`'s expel risk (0..1).
    pub fn set_expel_risk(&self, station: &str, risk: f64) {
        self.identity(station).expel_risk.set(risk);
    }

    /// Per station, the identity figures (every station the NATS source has
    /// reported on).
    pub fn identity_figures(&self) -> BTreeMap<String, IdentityFigures> {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        identity
            .iter()
            .map(|(station, c)| {
                let figures = IdentityFigures {
                    incarnations: c.incarnations.get(),
                    gap_messages: c.gap_messages.get(),
                    restore_echoes: c.echoes.get(),
                    expel_risk: c.expel_risk.get(),
                };
                (station.clone(), figures)
            })
            .collect()
    }

    /// Per station, `strata_ingested_messages_total` summed over the sources.
    pub fn ingested_messages(&self) -> BTreeMap<String, u64> {
        let stations = self.stations.read().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for by_station in stations.values() {
            for (station, c) in by_station {
                *out.entry(station.clone()).or_default() += c.messages.get();
            }
        }
        out
    }

    /// `strata_oldest_unuploaded_age_seconds`.
    pub fn oldest_unuploaded_age(&self) -> f64 {
        self.oldest_unuploaded_age.get()
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.render_as(Format::Prometheus)
    }

    /// Every metric in `format`.
    pub fn render_as(&self, format: Format) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail, nor can our metrics' encoders.
        let _ = match format {
            Format::Prometheus => prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => text::encode(&mut out, &self.registry),
        };
        out
    }
}

/// One station's identity figures as `/metrics` reports them (read by `GET /v1/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IdentityFigures {
    /// `strata_stream_incarnations_total`.
    pub incarnations: u64,
    /// `strata_gap_messages_total`.
    pub gap_messages: u64,
    /// `strata_restore_echoes_total`.
    pub restore_echoes: u64,
    /// `strata_expel_risk` (0..1).
    pub expel_risk: f64,
}

/// A metric whose `# HELP` and `# TYPE` lines are written even before its
/// first sample, so every documented family shows on `/metrics` from the
/// start (`prometheus-client` leaves out families without a sample).
#[derive(Debug)]
struct Announced<M>(M);

impl<M: EncodeMetric> EncodeMetric for Announced<M> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::new();
        m.inc_ingested("orders", "http", 3, 30);
        m.inc_ingested("orders", "http", 2, 20);
        m.inc_ingested("billing", "nats", 1, 7);
        m.inc_duplicates("orders", "http", 1);
        m.inc_wal_full("nats");
        m.inc_source_error("nats");
        m.set_wal(1 << 20, 3);
        m.set_oldest_unuploaded_age(12.5);
        m.inc_upload_error();
        m.inc_upload_retry();
        m.inc_upload_retry();
        m.observe_compaction(Duration::from_millis(1500), 4096, 100);
        m.observe_compaction(Duration::from_millis(500), 1024, 10);
        m.inc_http(200);
        m.inc_http(200);
        m.inc_http(413);
        m.set_http_inflight_bytes(4096);
        m.set_health(&crate::health::Status {
            problems: Vec::new(),
            wal_poisoned: true,
            compactor_failing: Duration::from_millis(2500),
            changes: Vec::new(),
        });
        let text = m.render();
        for line in [
            r#"strata_ingested_messages_total{station="orders",source="http"} 5"#,
            r#"strata_ingested_bytes_total{station="orders",source="http"} 50"#,
            r#"strata_ingested_messages_total{station="billing",source="nats"} 1"#,
            r#"strata_duplicates_total{station="orders",source="http"} 1"#,
            r#"strata_wal_full_total{source="nats"} 1"#,
            r#"strata_source_errors_total{source="nats"} 1"#,
            "strata_wal_bytes 1048576",
            "strata_wal_segments 3",
            "strata_oldest_unuploaded_age_seconds 12.5",
            "strata_upload_errors_total 1",
            "strata_upload_retries_total 2",
            "strata_compactions_total 2",
            "strata_compaction_duration_seconds_sum 2.0",
            r#"strata_compaction_duration_seconds_bucket{le="1"} 1"#,
            r#"strata_compaction_duration_seconds_bucket{le="+Inf"} 2"#,
            "strata_compaction_duration_seconds_count 2",
            "strata_compacted_bytes_total 5120",
            "strata_compacted_rows_total 110",
            r#"strata_http_requests_total{code="200"} 2"#,
            r#"strata_http_requests_total{code="413"} 1"#,
            "strata_wal_poisoned 1",
            "strata_compactor_failing_seconds 2.5",
            "strata_http_inflight_bytes 4096",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family announced by HELP and TYPE lines.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_sum", "_count", "_bucket"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{line} has no TYPE line");
                assert!(name.starts_with("strata_"), "{line}");
            }
        }
        assert!(text.contains("# HELP strata_wal_bytes "));
    }

    #[test]
    fn appends_count_accepted_messages_and_duplicates_apart() {
        let m = Metrics::new();
        let station = crate::message::StationName::new("orders").unwrap();
        m.inc_appended(
            "orders",
            "http",
            &Appended {
                accepted: 2,
                accepted_bytes: 10,
                duplicates: 3,
                ranges: vec![(station, 1, 2)],
            },
        );
        m.inc_appended("orders", "http", &Appended::default());
        let text = m.render();
        for line in [
            r#"strata_ingested_messages_total{station="orders",source="http"} 2"#,
            r#"strata_ingested_bytes_total{station="orders",source="http"} 10"#,
            r#"strata_duplicates_total{station="orders",source="http"} 3"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn identity_figures_read_what_metrics_render() {
        let m = Metrics::new();
        m.inc_incarnation("orders");
        m.inc_gap_messages("orders", 4);
        m.inc_restore_echoes("orders", 2);
        m.set_expel_risk("orders", 0.25);
        m.set_expel_risk("billing", 0.5);
        m.inc_ingested("orders", "nats", 3, 30);
        m.inc_ingested("orders", "http", 2, 20);
        let figures = m.identity_figures();
        assert_eq!(
            figures["orders"],
            IdentityFigures {
                incarnations: 1,
                gap_messages: 4,
                restore_echoes: 2,
                expel_risk: 0.25
            }
        );
        assert_eq!(figures["billing"].expel_risk, 0.5);
        assert_eq!(m.ingested_messages()["orders"], 5);
        let text = m.render();
        assert!(text.contains(r#"strata_gap_messages_total{station="orders"} 4"#));
        assert!(text.contains(r#"strata_expel_risk{station="orders"} 0.25"#));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.inc_ingested("a\"b\\c\nd", "file", 1, 1);
        assert!(m
            .render()
            .contains(r#"strata_ingested_messages_total{station="a\"b\\c\nd",source="file"} 1"#));
    }

    #[test]
    fn odd_values_stay_valid() {
        let m = Metrics::new();
        m.inc_http(42);
        m.inc_http(999);
        m.set_oldest_unuploaded_age(f64::INFINITY);
        let text = m.render();
        assert!(text.contains(r#"strata_http_requests_total{code="100"} 1"#));
        assert!(text.contains(r#"strata_http_requests_total{code="600"} 1"#));
        assert!(text.contains("strata_oldest_unuploaded_age_seconds +Inf"));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        m.inc_ingested(&format!("s{}", (t + i) % 4), "http", 1, 2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render();
        let total: u64 = text
            .lines()
            .filter(|l| l.starts_with("strata_ingested_messages_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 8000);
    }

    /// Every family of the module doc's table, with its type.
    const FAMILIES: [(&str, &str); 25] = [
        ("strata_ingested_messages_total", "counter"),
        ("strata_ingested_bytes_total", "counter"),
        ("strata_duplicates_total", "counter"),
        ("strata_wal_full_total", "counter"),
        ("strata_source_errors_total", "counter"),
        ("strata_wal_bytes", "gauge"),
        ("strata_wal_segments", "gauge"),
        ("strata_oldest_unuploaded_age_seconds", "gauge"),
        ("strata_upload_errors_total", "counter"),
        ("strata_upload_retries_total", "counter"),
        ("strata_compactions_total", "counter"),
        ("strata_compaction_duration_seconds", "histogram"),
        ("strata_compacted_bytes_total", "counter"),
        ("strata_wal_poisoned", "gauge"),
        ("strata_compactor_failing_seconds", "gauge"),
        ("strata_http_inflight_bytes", "gauge"),
        ("strata_compacted_rows_total", "counter"),
        ("strata_http_requests_total", "counter"),
        ("strata_stream_incarnations_total", "counter"),
        ("strata_gap_messages_total", "counter"),
        ("strata_restore_echoes_total", "counter"),
        ("strata_expel_risk", "gauge"),
        ("strata_cluster_stations_owned", "gauge"),
        ("strata_cluster_lease_losses_total", "counter"),
        ("strata_cluster_duplicates_dropped_total", "counter"),
    ];

    #[test]
    fn every_family_is_announced_before_its_first_sample() {
        let text = Metrics::new().render();
        for (name, kind) in FAMILIES {
            assert!(
                text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
                "no TYPE line for {name} in\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, FAMILIES.len(), "{text}");
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let m = Metrics::new();
        m.inc_ingested("orders", "http", 3, 30);
        let text = m.render_as(Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE strata_ingested_messages counter\n"));
        assert!(
            text.contains(r#"strata_ingested_messages_total{station="orders",source="http"} 3"#)
        );
        assert!(text.contains("# TYPE strata_wal_bytes gauge\n"));
        assert!(!m.render().contains("# EOF"));
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        // What Prometheus 2.x and 3.x send.
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
            application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text; version=1.0.0"));
    }
}
