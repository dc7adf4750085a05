//! What `GET /v1/status` and the status page `GET /` report: per station, what
//! this process holds in its WAL, when it last uploaded, and the identity
//! figures of `/metrics`. [`build`] assembles the report from figures already
//! in memory (the WAL's per-station sums, [`Uploads`], [`Metrics`]) with no I/O,
//! so a request costs no disk read and no object-store call; [`render_html`]
//! turns it into the page.
//!
//! The JSON field names are a contract (the README's HTTP table lists them):
//! add fields, never rename one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;

pub use crate::cluster::coordinator::MemberStatus;
use crate::message::{StationName, Timestamp};
use crate::metrics::{IdentityFigures, Metrics};
use crate::wal::{StationLoads, WalStats};

/// Seconds between two refreshes of the status page.
pub const PAGE_REFRESH_SECS: u32 = 10;

/// Which process holds a station: `hostname:pid`.
pub fn this_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

/// The last upload of each station this process made (the compactor records
/// every file it archives).
#[derive(Debug, Default)]
pub struct Uploads(Mutex<BTreeMap<StationName, StationUploads>>);

/// What [`Uploads`] knows of one station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationUploads {
    /// When the last file of the station was archived.
    pub last_upload: Timestamp,
    /// Messages archived since this process started.
    pub archived_messages: u64,
    /// The highest seq archived since this process started.
    pub last_archived_seq: u64,
}

impl Uploads {
    /// Records a file of `rows` messages of `station`, up to `last_seq`,
    /// archived at `at`.
    pub fn record(&self, station: &StationName, rows: u64, last_seq: u64, at: Timestamp) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(station.clone()).or_insert(StationUploads {
            last_upload: at,
            archived_messages: 0,
            last_archived_seq: last_seq,
        });
        entry.last_upload = entry.last_upload.max(at);
        entry.archived_messages += rows;
        entry.last_archived_seq = entry.last_archived_seq.max(last_seq);
    }

    /// Every station's figures now.
    pub fn snapshot(&self) -> BTreeMap<StationName, StationUploads> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The body of `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// This process: `hostname:pid`.
    pub owner: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// The WAL as a whole.
    pub wal: WalStatus,
    /// One entry per station this process archives or holds in its WAL, by name.
    pub stations: Vec<StationStatus>,
    /// With `[nats]`: this process as a member of the cluster sharing the
    /// consumer, and the stations it owns now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<MemberStatus>,
}

/// The WAL part of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalStatus {
    /// Bytes of the segment files (`strata_wal_bytes`).
    pub bytes: u64,
    /// Segment files, active and sealed (`strata_wal_segments`).
    pub segments: u64,
    /// Sealed segments waiting for upload.
    pub sealed_segments: u64,
    /// `strata_oldest_unuploaded_age_seconds`.
    pub oldest_unuploaded_age_seconds: f64,
    /// False after a restart while segments recovered without a per-station
    /// breakdown wait for upload: the stations' `wal_*` figures leave them out.
    pub per_station_complete: bool,
}

/// One station in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationStatus {
    /// The station.
    pub station: String,
    /// `"nats"` when the NATS source archives it, else `"http"` (HTTP or `strata ingest`).
    pub source: &'static str,
    /// The process that holds it: `hostname:pid`.
    pub owner: String,
    /// Messages of the station in the WAL, not yet uploaded.
    pub wal_messages: u64,
    /// Payload bytes of those messages.
    pub wal_bytes: u64,
    /// Age in seconds of the station's oldest message not yet uploaded
    /// (active segment included); 0 when the WAL holds none.
    pub archive_lag_seconds: f64,
    /// When this process last archived a file of the station (RFC 3339), if it has.
    pub last_upload: Option<String>,
    /// Seconds since then.
    pub last_upload_age_seconds: Option<f64>,
    /// Messages this process archived since it started.
    pub archived_messages: u64,
    /// Messages accepted since this process started (`strata_ingested_messages_total`).
    pub ingested_messages: u64,
    /// `strata_gap_messages_total`.
    pub gap_messages: u64,
    /// `strata_stream_incarnations_total`.
    pub stream_incarnations: u64,
    /// `strata_restore_echoes_total`.
    pub restore_echoes: u64,
    /// `strata_expel_risk` (0..1); `null` for a station the NATS source does not archive.
    pub expel_risk: Option<f64>,
}

/// Everything [`build`] reads, gathered by the caller.
#[derive(Debug)]
pub struct Inputs {
    /// Now.
    pub now: Timestamp,
    /// This process (`hostname:pid`).
    pub owner: String,
    /// The WAL's live figures.
    pub wal: WalStats,
    /// What each station has in the WAL.
    pub loads: StationLoads,
    /// The last uploads.
    pub uploads: BTreeMap<StationName, StationUploads>,
    /// Stations the NATS source archives.
    pub nats: Vec<StationName>,
    /// `strata_oldest_unuploaded_age_seconds`.
    pub oldest_unuploaded_age_seconds: f64,
    /// The identity figures per station.
    pub identity: BTreeMap<String, IdentityFigures>,
    /// Messages ingested per station.
    pub ingested: BTreeMap<String, u64>,
    /// The cluster member, with `[nats]`.
    pub cluster: Option<MemberStatus>,
}

impl Inputs {
    /// Gathers the figures from the live parts of `strata run`.
    pub fn gather(
        wal: &crate::wal::Wal,
        uploads: &Uploads,
        nats: Vec<StationName>,
        metrics: &Metrics,
        owner: String,
    ) -> Self {
        Self {
            now: Timestamp::now(),
            owner,
            wal: wal.stats(),
            loads: wal.station_loads(),
            uploads: uploads.snapshot(),
            nats,
            oldest_unuploaded_age_seconds: metrics.oldest_unuploaded_age(),
            identity: metrics.identity_figures(),
            ingested: metrics.ingested_messages(),
            cluster: None,
        }
    }
}

fn age_secs(now: Timestamp, then: Timestamp) -> f64 {
    (now.micros() - then.micros()).max(0) as f64 / 1e6
}

/// The status report (pure: no I/O).
pub fn build(inputs: &Inputs) -> Status {
    let nats: BTreeSet<&str> = inputs.nats.iter().map(|s| s.as_str()).collect();
    let names: BTreeSet<&str> = inputs
        .loads
        .stations
        .keys()
        .map(|s| s.as_str())
        .chain(inputs.uploads.keys().map(|s| s.as_str()))
        .chain(nats.iter().copied())
        .chain(inputs.identity.keys().map(String::as_str))
        .chain(inputs.ingested.keys().map(String::as_str))
        .collect();
    let stations = names
        .into_iter()
        .map(|name| {
            let load = inputs
                .loads
                .stations
                .iter()
                .find(|(s, _)| s.as_str() == name)
                .map(|(_, l)| *l)
                .unwrap_or_default();
            let upload = inputs
                .uploads
                .iter()
                .find(|(s, _)| s.as_str() == name)
                .map(|(_, u)| *u);
            let identity = inputs.identity.get(name).copied().unwrap_or_default();
            let is_nats = nats.contains(name);
            StationStatus {
                station: name.to_string(),
                source: if is_nats { "nats" } else { "http" },
                owner: inputs.owner.clone(),
                wal_messages: load.messages,
                wal_bytes: load.payload_bytes,
                archive_lag_seconds: load.min_timestamp.map_or(0.0, |t| age_secs(inputs.now, t)),
                last_upload: upload.map(|u| u.last_upload.to_rfc3339()),
                last_upload_age_seconds: upload.map(|u| age_secs(inputs.now, u.last_upload)),
                archived_messages: upload.map_or(0, |u| u.archived_messages),
                ingested_messages: inputs.ingested.get(name).copied().unwrap_or(0),
                gap_messages: identity.gap_messages,
                stream_incarnations: identity.incarnations,
                restore_echoes: identity.restore_echoes,
                expel_risk: is_nats.then_some(identity.expel_risk),
            }
        })
        .collect();
    Status {
        owner: inputs.owner.clone(),
        generated_at: inputs.now.to_rfc3339(),
        wal: WalStatus {
            bytes: inputs.wal.disk_bytes,
            segments: inputs.wal.segments,
            sealed_segments: inputs.wal.sealed_segments,
            oldest_unuploaded_age_seconds: inputs.oldest_unuploaded_age_seconds,
            per_station_complete: inputs.loads.complete,
        },
        stations,
        cluster: inputs.cluster.clone(),
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds as the page shows them: `-` for none, else with one decimal.
fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// The status page: the report as a table, reloaded by the browser every
/// [`PAGE_REFRESH_SECS`] (a meta refresh reloads the same URL, so a `?token=`
/// in it is kept without the page ever containing the token). Each figure's
/// cell carries `data-field` naming its `/v1/status` field, and `data-value`
/// with the exact number.
pub fn render_html(status: &Status) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{PAGE_REFRESH_SECS}\">\n\
         <title>Strata status</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         .warn {{ background: #fdd; }}\n</style>\n</head>\n<body>\n\
         <h1>Strata status</h1>\n\
         <p>Process <span id=\"owner\">{owner}</span> at <span id=\"generated_at\">{at}</span>. \
         WAL: <span data-field=\"wal.bytes\" data-value=\"{wal_bytes}\">{wal_bytes}</span> bytes in \
         <span data-field=\"wal.segments\" data-value=\"{segments}\">{segments}</span> segment(s); \
         oldest unuploaded message <span data-field=\"wal.oldest_unuploaded_age_seconds\" \
         data-value=\"{oldest}\">{oldest_text}</span> s old.{incomplete} \
         The same figures as JSON: <code>GET /v1/status</code>.</p>\n",
        owner = escape(&status.owner),
        at = escape(&status.generated_at),
        wal_bytes = status.wal.bytes,
        segments = status.wal.segments,
        oldest = status.wal.oldest_unuploaded_age_seconds,
        oldest_text = secs(Some(status.wal.oldest_unuploaded_age_seconds)),
        incomplete = if status.wal.per_station_complete {
            ""
        } else {
            " Per-station WAL figures leave out segments recovered at start until they are uploaded."
        },
    );
    if status.stations.is_empty() {
        out.push_str("<p id=\"no-stations\">No station yet.</p>\n</body>\n</html>\n");
        return out;
    }
    out.push_str(
        "<table id=\"stations\">\n<thead><tr><th>station</th><th>source</th>\
         <th>archive lag (s)</th><th>WAL messages</th><th>WAL bytes</th>\
         <th>last upload</th><th>archived</th><th>gaps (messages)</th>\
         <th>incarnations</th><th>restore echoes</th><th>expel risk</th><th>owner</th></tr></thead>\n<tbody>\n",
    );
    for s in &status.stations {
        let risk_class = if s.expel_risk.is_some_and(|r| r > 0.8) {
            " class=\"warn\""
        } else {
            ""
        };
        let gap_class = if s.gap_messages > 0 {
            " class=\"warn\""
        } else {
            ""
        };
        let num = |field: &str, value: String, text: String, class: &str| {
            format!("<td data-field=\"{field}\" data-value=\"{value}\"{class}>{text}</td>")
        };
        let name = escape(&s.station);
        let _ = write!(
            out,
            "<tr data-station=\"{name}\"><td>{name}</td><td>{}</td>",
            s.source
        );
        let int = |v: u64| (v.to_string(), v.to_string());
        let cells = [
            (
                "archive_lag_seconds",
                (
                    s.archive_lag_seconds.to_string(),
                    secs(Some(s.archive_lag_seconds)),
                ),
                "",
            ),
            ("wal_messages", int(s.wal_messages), ""),
            ("wal_bytes", int(s.wal_bytes), ""),
        ];
        for (field, (value, text), class) in cells {
            out.push_str(&num(field, value, text, class));
        }
        let upload = match (&s.last_upload, s.last_upload_age_seconds) {
            (Some(at), Some(age)) => format!("{} ({} s ago)", escape(at), secs(Some(age))),
            _ => "never".to_string(),
        };
        let _ = write!(
            out,
            "<td data-field=\"last_upload\" data-value=\"{}\">{upload}</td>",
            escape(s.last_upload.as_deref().unwrap_or(""))
        );
        let cells = [
            ("archived_messages", int(s.archived_messages), ""),
            ("gap_messages", int(s.gap_messages), gap_class),
            ("stream_incarnations", int(s.stream_incarnations), ""),
            ("restore_echoes", int(s.restore_echoes), ""),
            (
                "expel_risk",
                (
                    s.expel_risk.map_or_else(String::new, |r| r.to_string()),
                    s.expel_risk
                        .map_or_else(|| "-".to_string(), |r| format!("{r:.2}")),
                ),
                risk_class,
            ),
        ];
        for (field, (value, text), class) in cells {
            out.push_str(&num(field, value, text, class));
        }
        let _ = writeln!(
            out,
            "<td data-field=\"owner\">{}</td></tr>",
            escape(&s.owner)
        );
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::StationLoad;

    fn station(name: &str) -> StationName {
        StationName::new(name).unwrap()
    }

    fn inputs() -> Inputs {
        let now = Timestamp(100_000_000);
        let mut loads = StationLoads {
            stations: BTreeMap::new(),
            complete: true,
        };
        loads.stations.insert(
            station("orders"),
            StationLoad {
                messages: 3,
                payload_bytes: 30,
                min_timestamp: Some(Timestamp(90_000_000)),
            },
        );
        let uploads = Uploads::default();
        uploads.record(&station("orders"), 5, 5, Timestamp(95_000_000));
        uploads.record(&station("orders"), 2, 7, Timestamp(97_500_000));
        uploads.record(&station("web"), 1, 1, Timestamp(99_000_000));
        let mut identity = BTreeMap::new();
        identity.insert(
            "orders".to_string(),
            IdentityFigures {
                incarnations: 1,
                gap_messages: 4,
                restore_echoes: 2,
                expel_risk: 0.5,
            },
        );
        Inputs {
            now,
            owner: "host:7".to_string(),
            wal: WalStats {
                disk_bytes: 1000,
                segments: 2,
                sealed_segments: 1,
                ..WalStats::default()
            },
            loads,
            uploads: uploads.snapshot(),
            nats: vec![station("orders"), station("quiet")],
            oldest_unuploaded_age_seconds: 10.0,
            identity,
            ingested: [("orders".to_string(), 10), ("web".to_string(), 1)]
                .into_iter()
                .collect(),
            cluster: None,
        }
    }

    #[test]
    fn every_station_this_process_knows_is_reported_once() {
        let status = build(&inputs());
        let names: Vec<&str> = status.stations.iter().map(|s| s.station.as_str()).collect();
        assert_eq!(names, ["orders", "quiet", "web"]);
        let orders = &status.stations[0];
        assert_eq!(orders.source, "nats");
        assert_eq!((orders.wal_messages, orders.wal_bytes), (3, 30));
        assert_eq!(orders.archive_lag_seconds, 10.0);
        assert_eq!(
            orders.last_upload.as_deref(),
            Some("1970-01-01T00:01:37.500000Z")
        );
        assert_eq!(orders.last_upload_age_seconds, Some(2.5));
        assert_eq!(orders.archived_messages, 7);
        assert_eq!(orders.ingested_messages, 10);
        assert_eq!(
            (
                orders.gap_messages,
                orders.stream_incarnations,
                orders.restore_echoes
            ),
            (4, 1, 2)
        );
        assert_eq!(orders.expel_risk, Some(0.5));
        assert_eq!(orders.owner, "host:7");
        let quiet = &status.stations[1];
        assert_eq!((quiet.wal_messages, quiet.archive_lag_seconds), (0, 0.0));
        assert_eq!(quiet.last_upload, None);
        assert_eq!(quiet.expel_risk, Some(0.0));
        let web = &status.stations[2];
        assert_eq!((web.source, web.expel_risk), ("http", None));
        assert_eq!(status.wal.bytes, 1000);
        assert!(status.wal.per_station_complete);
    }

    #[test]
    fn json_field_names_are_the_documented_ones() {
        let json = serde_json::to_value(build(&inputs())).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(keys(&json), ["owner", "generated_at", "wal", "stations"]);
        assert_eq!(
            keys(&json["wal"]),
            [
                "bytes",
                "segments",
                "sealed_segments",
                "oldest_unuploaded_age_seconds",
                "per_station_complete"
            ]
        );
        assert_eq!(
            keys(&json["stations"][0]),
            [
                "station",
                "source",
                "owner",
                "wal_messages",
                "wal_bytes",
                "archive_lag_seconds",
                "last_upload",
                "last_upload_age_seconds",
                "archived_messages",
                "ingested_messages",
                "gap_messages",
                "stream_incarnations",
                "restore_echoes",
                "expel_risk"
            ]
        );
        assert!(json["stations"][2]["expel_risk"].is_null());
    }

    #[test]
    fn the_page_shows_every_station_and_escapes_text() {
        let mut status = build(&inputs());
        status.owner = "<host>&\"".to_string();
        let html = render_html(&status);
        assert!(html.contains("<tr data-station=\"orders\">"));
        assert!(html.contains("data-field=\"gap_messages\" data-value=\"4\" class=\"warn\">4<"));
        assert!(html.contains("data-field=\"wal_bytes\" data-value=\"30\">30<"));
        assert!(html.contains("&lt;host&gt;&amp;&quot;"));
        assert!(!html.contains("<host>"));
        assert!(html.contains("http-equiv=\"refresh\""));
        let empty = Status {
            stations: Vec::new(),
            ..status
        };
        assert!(render_html(&empty).contains("No station yet."));
    }
}
