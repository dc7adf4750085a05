//! Process metrics in the Prometheus text exposition format (version 0.0.4),
//! served by `GET /metrics`. Every part of `strata run` shares one [`Metrics`]
//! (behind an `Arc`); updates are lock-free atomics except the first sighting
//! of a (station, source) pair, which takes a short write lock.
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
//! | `strata_compaction_duration_seconds` | summary (`_sum`, `_count`) | | compactor: time to compact and upload one segment |
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::wal::Appended;

/// Per (station, source) counters.
#[derive(Debug, Default)]
struct StationCounters {
    messages: AtomicU64,
    bytes: AtomicU64,
    duplicates: AtomicU64,
}

/// Status codes 100..=599 each get a counter; anything else is counted as 599+1.
const HTTP_CODES: usize = 501;

/// The process-wide metrics registry.
#[derive(Debug)]
pub struct Metrics {
    /// source -> station -> counters; BTreeMaps so the output is sorted and stable.
    stations: RwLock<BTreeMap<&'static str, BTreeMap<String, Arc<StationCounters>>>>,
    /// source -> (WAL full refusals, transient errors)
    sources: RwLock<BTreeMap<&'static str, Arc<(AtomicU64, AtomicU64)>>>,
    wal_bytes: AtomicU64,
    wal_segments: AtomicU64,
    wal_poisoned: AtomicU64,
    /// f64 bits.
    compactor_failing: AtomicU64,
    http_inflight_bytes: AtomicU64,
    /// f64 bits.
    oldest_unuploaded_age: AtomicU64,
    upload_errors: AtomicU64,
    upload_retries: AtomicU64,
    compactions: AtomicU64,
    compaction_nanos: AtomicU64,
    compacted_bytes: AtomicU64,
    compacted_rows: AtomicU64,
    http: Box<[AtomicU64]>,
    /// station -> identity counters of the NATS source.
    identity: RwLock<BTreeMap<String, Arc<IdentityCounters>>>,
    cluster_owned: AtomicU64,
    cluster_lease_losses: AtomicU64,
    /// station -> rows left out of uploads as already archived elsewhere.
    cluster_dropped: RwLock<BTreeMap<String, u64>>,
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

/// Per-station identity counters and the expel-risk gauge.
#[derive(Debug, Default)]
struct IdentityCounters {
    incarnations: AtomicU64,
    gap_messages: AtomicU64,
    echoes: AtomicU64,
    /// f64 bits.
    expel_risk: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry (every counter zero).
    pub fn new() -> Self {
        Self {
            stations: RwLock::default(),
            sources: RwLock::default(),
            wal_bytes: AtomicU64::new(0),
            wal_segments: AtomicU64::new(0),
            wal_poisoned: AtomicU64::new(0),
            compactor_failing: AtomicU64::new(0f64.to_bits()),
            http_inflight_bytes: AtomicU64::new(0),
            oldest_unuploaded_age: AtomicU64::new(0f64.to_bits()),
            upload_errors: AtomicU64::new(0),
            upload_retries: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compaction_nanos: AtomicU64::new(0),
            compacted_bytes: AtomicU64::new(0),
            compacted_rows: AtomicU64::new(0),
            http: (0..HTTP_CODES).map(|_| AtomicU64::new(0)).collect(),
            identity: RwLock::default(),
            cluster_owned: AtomicU64::new(0),
            cluster_lease_losses: AtomicU64::new(0),
            cluster_dropped: RwLock::default(),
        }
    }

    /// Cluster: the stations whose lease this process holds now.
    pub fn set_cluster_stations_owned(&self, n: u64) {
        self.cluster_owned.store(n, Relaxed);
    }

    /// Cluster: a lease was lost.
    pub fn inc_cluster_lease_loss(&self) {
        self.cluster_lease_losses.fetch_add(1, Relaxed);
    }

    /// Cluster: `rows` rows of `station` were left out of an upload as
    /// already archived by another process.
    pub fn inc_cluster_duplicates_dropped(&self, station: &str, rows: u64) {
        let mut map = self
            .cluster_dropped
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry(station.to_string()).or_default() += rows;
    }

    fn render_cluster(&self, out: &mut String) {
        header(
            out,
            "strata_cluster_stations_owned",
            "Stations whose lease this process holds now (cluster of processes sharing the NATS consumer).",
            "gauge",
        );
        sample(
            out,
            "strata_cluster_stations_owned",
            &[],
            self.cluster_owned.load(Relaxed),
        );
        header(
            out,
            "strata_cluster_lease_losses_total",
            "Station leases lost (renewal conflicted or missed its deadline); the station stopped being archived here at once.",
            "counter",
        );
        sample(
            out,
            "strata_cluster_lease_losses_total",
            &[],
            self.cluster_lease_losses.load(Relaxed),
        );
        header(
            out,
            "strata_cluster_duplicates_dropped_total",
            "Rows left out of an upload because another Strata process had already archived them (after a takeover).",
            "counter",
        );
        let map = self
            .cluster_dropped
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for (station, n) in map.iter() {
            sample(
                out,
                "strata_cluster_duplicates_dropped_total",
                &[("station", station)],
                *n,
            );
        }
    }

    fn station(&self, station: &str, source: &'static str) -> Arc<StationCounters> {
        // Counters only ever grow, so a poisoned lock still holds valid data.
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
        Arc::clone(
            map.entry(source)
                .or_default()
                .entry(station.to_string())
                .or_default(),
        )
    }

    fn source(&self, source: &'static str) -> Arc<(AtomicU64, AtomicU64)> {
        if let Some(c) = self
            .sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
        {
            return Arc::clone(c);
        }
        let mut map = self.sources.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(source).or_default())
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
        c.messages.fetch_add(msgs, Relaxed);
        c.bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts messages the WAL dropped because their (station, seq) was already
    /// stored, in flight, or earlier in the same batch.
    pub fn inc_duplicates(&self, station: &str, source: &'static str, msgs: u64) {
        self.station(station, source)
            .duplicates
            .fetch_add(msgs, Relaxed);
    }

    /// Counts an append `source` could not make because the WAL was full.
    pub fn inc_wal_full(&self, source: &'static str) {
        self.source(source).0.fetch_add(1, Relaxed);
    }

    /// Counts a transient error of `source` (a failed fetch or ack, a lost connection).
    pub fn inc_source_error(&self, source: &'static str) {
        self.source(source).1.fetch_add(1, Relaxed);
    }

    /// Sets the WAL gauges (from `Wal::stats`).
    pub fn set_wal(&self, bytes: u64, segments: u64) {
        self.wal_bytes.store(bytes, Relaxed);
        self.wal_segments.store(segments, Relaxed);
    }

    /// Sets the health gauges from a health check.
    pub fn set_health(&self, status: &crate::health::Status) {
        self.wal_poisoned
            .store(u64::from(status.wal_poisoned), Relaxed);
        self.compactor_failing
            .store(status.compactor_failing.as_secs_f64().to_bits(), Relaxed);
    }

    /// Sets the request body bytes the HTTP server holds now.
    pub fn set_http_inflight_bytes(&self, bytes: u64) {
        self.http_inflight_bytes.store(bytes, Relaxed);
    }

    /// Sets the age of the oldest message in a sealed segment waiting for upload
    /// (0 when none is waiting).
    pub fn set_oldest_unuploaded_age(&self, secs: f64) {
        self.oldest_unuploaded_age.store(secs.to_bits(), Relaxed);
    }

    /// Counts a failed segment compaction (usually an object store error).
    pub fn inc_upload_error(&self) {
        self.upload_errors.fetch_add(1, Relaxed);
    }

    /// Counts a compaction pass retried after a failed one.
    pub fn inc_upload_retry(&self) {
        self.upload_retries.fetch_add(1, Relaxed);
    }

    /// Records one segment compacted: how long it took, and the Parquet bytes
    /// uploaded and rows written.
    pub fn observe_compaction(&self, duration: Duration, bytes: u64, rows: u64) {
        self.compactions.fetch_add(1, Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.compaction_nanos.fetch_add(nanos, Relaxed);
        self.compacted_bytes.fetch_add(bytes, Relaxed);
        self.compacted_rows.fetch_add(rows, Relaxed);
    }

    /// Counts an HTTP answer with `status`.
    pub fn inc_http(&self, status: u16) {
        let i = usize::from(status).saturating_sub(100).min(HTTP_CODES - 1);
        self.http[i].fetch_add(1, Relaxed);
    }

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
        Arc::clone(map.entry(station.to_string()).or_default())
    }

    /// Counts a new incarnation of `station`'s stream.
    pub fn inc_incarnation(&self, station: &str) {
        self.identity(station).incarnations.fetch_add(1, Relaxed);
    }

    /// Counts `n` messages of `station` lost upstream (a gap).
    pub fn inc_gap_messages(&self, station: &str, n: u64) {
        self.identity(station).gap_messages.fetch_add(n, Relaxed);
    }

    /// Counts `n` restored copies of `station` recognised and not archived again.
    pub fn inc_restore_echoes(&self, station: &str, n: u64) {
        self.identity(station).echoes.fetch_add(n, Relaxed);
    }

    /// Sets `station`'s expel risk (0..1).
    pub fn set_expel_risk(&self, station: &str, risk: f64) {
        self.identity(station)
            .expel_risk
            .store(risk.to_bits(), Relaxed);
    }

    /// Per station, the identity figures (every station the NATS source has
    /// reported on).
    pub fn identity_figures(&self) -> BTreeMap<String, IdentityFigures> {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        identity
            .iter()
            .map(|(station, c)| {
                let figures = IdentityFigures {
                    incarnations: c.incarnations.load(Relaxed),
                    gap_messages: c.gap_messages.load(Relaxed),
                    restore_echoes: c.echoes.load(Relaxed),
                    expel_risk: f64::from_bits(c.expel_risk.load(Relaxed)),
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
                *out.entry(station.clone()).or_default() += c.messages.load(Relaxed);
            }
        }
        out
    }

    /// `strata_oldest_unuploaded_age_seconds`.
    pub fn oldest_unuploaded_age(&self) -> f64 {
        f64::from_bits(self.oldest_unuploaded_age.load(Relaxed))
    }

    fn render_identity(&self, out: &mut String) {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        type Get = fn(&IdentityCounters) -> u64;
        let counters: [(&str, &str, Get); 3] = [
            (
                "strata_stream_incarnations_total",
                "New incarnations of a station's stream detected (deleted and created again); archived under new seqs.",
                |c| c.incarnations.load(Relaxed),
            ),
            (
                "strata_gap_messages_total",
                "Messages the stream expelled or lost before Strata read them (a gap, recorded in the archive).",
                |c| c.gap_messages.load(Relaxed),
            ),
            (
                "strata_restore_echoes_total",
                "Messages recognised as signed restored copies of archived messages and not archived again.",
                |c| c.echoes.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            header(out, name, help, "counter");
            for (station, c) in identity.iter() {
                sample(out, name, &[("station", station)], get(c));
            }
        }
        header(
            out,
            "strata_expel_risk",
            "How close the oldest unarchived message is to the stream's max_msgs, max_bytes or max_age (0..1; 1 = about to be lost).",
            "gauge",
        );
        for (station, c) in identity.iter() {
            let v = f64::from_bits(c.expel_risk.load(Relaxed));
            let mut line = String::new();
            sample(&mut line, "strata_expel_risk", &[("station", station)], 0);
            // `sample` writes integers; replace the value with the float.
            let cut = line.trim_end().rfind(' ').unwrap_or(0);
            let _ = writeln!(out, "{} {}", &line[..cut], float(v));
        }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        {
            let stations = self.stations.read().unwrap_or_else(|e| e.into_inner());
            type Get = fn(&StationCounters) -> u64;
            let families: [(&str, &str, Get); 3] = [
                (
                    "strata_ingested_messages_total",
                    "Messages a source appended that the WAL accepted and made durable (duplicates are counted in strata_duplicates_total only).",
                    |c| c.messages.load(Relaxed),
                ),
                (
                    "strata_ingested_bytes_total",
                    "Payload bytes of the messages counted by strata_ingested_messages_total.",
                    |c| c.bytes.load(Relaxed),
                ),
                (
                    "strata_duplicates_total",
                    "Messages the WAL dropped because their (station, seq) was already stored, in flight, or earlier in the same batch.",
                    |c| c.duplicates.load(Relaxed),
                ),
            ];
            for (name, help, get) in families {
                header(&mut out, name, help, "counter");
                for (source, by_station) in stations.iter() {
                    for (station, c) in by_station {
                        sample(
                            &mut out,
                            name,
                            &[("station", station), ("source", source)],
                            get(c),
                        );
                    }
                }
            }
        }
        {
            let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
            header(
                &mut out,
                "strata_wal_full_total",
                "Appends a source could not make because the WAL was full (HTTP answers 503, the NATS source waits and retries).",
                "counter",
            );
            for (source, c) in sources.iter() {
                let v = c.0.load(Relaxed);
                sample(&mut out, "strata_wal_full_total", &[("source", source)], v);
            }
            header(
                &mut out,
                "strata_source_errors_total",
                "Transient source errors (failed fetch or ack, lost connection); the source retries.",
                "counter",
            );
            for (source, c) in sources.iter() {
                let v = c.1.load(Relaxed);
                sample(
                    &mut out,
                    "strata_source_errors_total",
                    &[("source", source)],
                    v,
                );
            }
        }
        let plain: [(&str, &str, &str, u64); 9] = [
            (
                "strata_wal_bytes",
                "Bytes of the WAL's segment files (active and sealed), as counted against [wal] max_disk_bytes.",
                "gauge",
                self.wal_bytes.load(Relaxed),
            ),
            (
                "strata_wal_segments",
                "WAL segment files (active and sealed).",
                "gauge",
                self.wal_segments.load(Relaxed),
            ),
            (
                "strata_wal_poisoned",
                "1 while the WAL refuses appends after a failed write, fsync or seal (restart to recover).",
                "gauge",
                self.wal_poisoned.load(Relaxed),
            ),
            (
                "strata_http_inflight_bytes",
                "Request body bytes the HTTP server holds now (at most [http] max_inflight_bytes).",
                "gauge",
                self.http_inflight_bytes.load(Relaxed),
            ),
            (
                "strata_upload_errors_total",
                "Segment compactions that failed (usually an object store error); the segment stays in the WAL.",
                "counter",
                self.upload_errors.load(Relaxed),
            ),
            (
                "strata_upload_retries_total",
                "Compaction passes retried after a failed one (with backoff).",
                "counter",
                self.upload_retries.load(Relaxed),
            ),
            (
                "strata_compacted_bytes_total",
                "Parquet bytes uploaded by compaction.",
                "counter",
                self.compacted_bytes.load(Relaxed),
            ),
            (
                "strata_compacted_rows_total",
                "Rows written to Parquet by compaction.",
                "counter",
                self.compacted_rows.load(Relaxed),
            ),
            (
                "strata_compactions_total",
                "WAL segments compacted and uploaded.",
                "counter",
                self.compactions.load(Relaxed),
            ),
        ];
        for (name, help, kind, v) in plain {
            header(&mut out, name, help, kind);
            sample(&mut out, name, &[], v);
        }
        header(
            &mut out,
            "strata_oldest_unuploaded_age_seconds",
            "Age of the oldest message in a sealed WAL segment waiting for upload (0 when none waits; the active segment is not counted).",
            "gauge",
        );
        let age = f64::from_bits(self.oldest_unuploaded_age.load(Relaxed));
        let _ = writeln!(out, "strata_oldest_unuploaded_age_seconds {}", float(age));
        header(
            &mut out,
            "strata_compactor_failing_seconds",
            "How long compaction has been failing (0 after a pass that succeeded).",
            "gauge",
        );
        let failing = f64::from_bits(self.compactor_failing.load(Relaxed));
        let _ = writeln!(out, "strata_compactor_failing_seconds {}", float(failing));
        header(
            &mut out,
            "strata_compaction_duration_seconds",
            "Time to compact and upload one WAL segment.",
            "summary",
        );
        let secs = self.compaction_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "strata_compaction_duration_seconds_sum {}",
            float(secs)
        );
        let _ = writeln!(
            out,
            "strata_compaction_duration_seconds_count {}",
            self.compactions.load(Relaxed)
        );
        header(
            &mut out,
            "strata_http_requests_total",
            "HTTP requests answered, by status code.",
            "counter",
        );
        for (i, c) in self.http.iter().enumerate() {
            let v = c.load(Relaxed);
            if v > 0 {
                let code = (i + 100).to_string();
                sample(
                    &mut out,
                    "strata_http_requests_total",
                    &[("code", &code)],
                    v,
                );
            }
        }
        self.render_identity(&mut out);
        self.render_cluster(&mut out);
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    // HELP text escapes backslash and newline; ours has neither, but stay correct.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN` spelled its way).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        v.to_string()
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
            "strata_compaction_duration_seconds_sum 2",
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
                let family = name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|f| typed.contains(*f))
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
}
