//! The messages tests publish ([`test_message`]) and the NDJSON lines they
//! expect back ([`Expected`], [`parse_ndjson`], [`ndjson_line`]).

use base64::Engine as _;
use serde_json::Value;

use super::python::Row;

/// One line of the NDJSON interchange format, as the tests expect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Station.
    pub station: String,
    /// Sequence.
    pub seq: i64,
    /// Microseconds since the epoch (UTC).
    pub timestamp_us: i64,
    /// Id.
    pub id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Parses an RFC 3339 timestamp into microseconds.
pub fn micros(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("bad timestamp {ts}: {e}"))
        .timestamp_micros()
}

/// Parses NDJSON lines written by the tests or by `strata restore --output`.
pub fn parse_ndjson(text: &str) -> Vec<Expected> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let payload = if let Some(b) = v.get("payload_base64").and_then(Value::as_str) {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("base64")
            } else {
                v["payload"].as_str().unwrap_or("").as_bytes().to_vec()
            };
            Expected {
                station: v["station"].as_str().unwrap_or("").to_string(),
                seq: v["seq"].as_i64().unwrap_or(-1),
                timestamp_us: micros(v["timestamp"].as_str().expect("timestamp")),
                id: v["id"].as_str().map(str::to_string),
                subject: v["subject"].as_str().map(str::to_string),
                headers: v["headers"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().expect("name").to_string(),
                                    h[1].as_str().expect("value").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                payload,
            }
        })
        .collect()
}

/// An NDJSON line for a message (binary payloads as `payload_base64`).
pub fn ndjson_line(m: &Expected, with_station: bool, with_seq: bool) -> String {
    let mut o = serde_json::Map::new();
    if with_station {
        o.insert("station".into(), m.station.clone().into());
    }
    if with_seq {
        o.insert("seq".into(), m.seq.into());
    }
    let ts = chrono::DateTime::from_timestamp_micros(m.timestamp_us)
        .expect("timestamp in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    o.insert("timestamp".into(), ts.into());
    if let Some(id) = &m.id {
        o.insert("id".into(), id.clone().into());
    }
    if let Some(s) = &m.subject {
        o.insert("subject".into(), s.clone().into());
    }
    o.insert(
        "headers".into(),
        Value::Array(
            m.headers
                .iter()
                .map(|(n, v)| serde_json::json!([n, v]))
                .collect(),
        ),
    );
    match std::str::from_utf8(&m.payload) {
        Ok(s) => o.insert("payload".into(), s.into()),
        Err(_) => o.insert(
            "payload_base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&m.payload)
                .into(),
        ),
    };
    Value::Object(o).to_string()
}

/// Asserts that archived rows are exactly `expected` (same order by seq), field by field.
#[track_caller]
pub fn assert_rows_match(rows: &[&Row], expected: &[Expected]) {
    assert_eq!(
        rows.len(),
        expected.len(),
        "archive holds {} rows, expected {}",
        rows.len(),
        expected.len()
    );
    for (r, e) in rows.iter().zip(expected) {
        assert_eq!(r.station, e.station, "station of seq {}", e.seq);
        assert_eq!(r.seq, e.seq, "seq order");
        assert_eq!(r.timestamp_us, e.timestamp_us, "timestamp of seq {}", e.seq);
        assert_eq!(r.id, e.id, "id of seq {}", e.seq);
        assert_eq!(r.subject, e.subject, "subject of seq {}", e.seq);
        assert_eq!(r.headers, e.headers, "headers of seq {}", e.seq);
        assert_eq!(r.payload(), e.payload, "payload of seq {}", e.seq);
        let t = chrono::DateTime::from_timestamp_micros(e.timestamp_us).expect("in range");
        assert_eq!(
            r.date,
            t.format("%Y-%m-%d").to_string(),
            "date of seq {}",
            e.seq
        );
        assert_eq!(r.hour, t.format("%H").to_string(), "hour of seq {}", e.seq);
    }
}

/// A message the tests publish: subject, ordered headers, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    /// Subject.
    pub subject: String,
    /// Headers (including `Nats-Msg-Id` when the message has an id).
    pub headers: Vec<(String, String)>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Pub {
    /// The `Nats-Msg-Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == "Nats-Msg-Id")
            .map(|(_, v)| v.as_str())
    }
}

/// The `i`-th (1-based) test message of `stream`: JSON or binary payloads,
/// repeated and mixed-case header names, an id on most.
pub fn test_message(stream: &str, i: u64) -> Pub {
    let kinds = ["created", "updated", "shipped"];
    let subject = format!("{stream}.{}", kinds[(i % 3) as usize]);
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if i % 3 == 0 {
        headers.push(("X-Tag".into(), format!("a-{i}")));
        headers.push(("X-Tag".into(), format!("b-{i}")));
        headers.push(("x-tag".into(), format!("lower-{i}")));
    }
    if i % 5 != 0 {
        headers.push(("Nats-Msg-Id".into(), format!("{stream}-msg-{i}")));
    }
    if i % 11 == 0 {
        headers.push(("X-Unicode".into(), format!("café-{i}")));
    }
    let payload = if i % 7 == 0 {
        let mut p = vec![0u8, 0xff, 0xfe];
        p.extend_from_slice(&i.to_le_bytes());
        p.extend_from_slice(&[0x80, 0x00]);
        p
    } else {
        format!(
            "{{\"n\":{i},\"text\":\"order {i} ✓\",\"pad\":\"{}\"}}",
            "x".repeat((i % 50) as usize)
        )
        .into_bytes()
    };
    Pub {
        subject,
        headers,
        payload,
    }
}
