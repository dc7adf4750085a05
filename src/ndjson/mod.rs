//! The NDJSON interchange format: one JSON object per line, one message per
//! object. `strata ingest`, HTTP ingest (`POST /v1/stations/{station}/messages`)
//! read it and `strata restore --output` writes it.
//!
//! ```text
//! {"station":"orders","seq":42,"timestamp":"2026-11-24T10:00:00.123456Z","id":"m-42","subject":"orders.created","headers":[["Content-Type","application/json"]],"payload":"{\"n\":42}"}
//! ```
//!
//! | field | type | when absent |
//! | --- | --- | --- |
//! | `station` | station name | the station the input is for (error if there is none) |
//! | `seq` | integer, 0 ..= 2^63-1 | the WAL assigns the station's next sequence |
//! | `timestamp` | RFC 3339 string, any offset (stored UTC, microseconds) | the time the input was read |
//! | `id` | string or `null` | no id |
//! | `subject` | string or `null` | no subject |
//! | `headers` | `[[name, value], …]` or `{"name": "value", …}` | no headers |
//! | `payload` | UTF-8 text | see `payload_base64` |
//! | `payload_base64` | standard base64 (with padding) of any bytes | empty payload when both are absent |
//!
//! Rules: a station given by the caller binds every line (a line naming another
//! station is an error, so a request for `orders` can never write to `billing`);
//! `payload` and `payload_base64` exclude each other; unknown fields are errors
//! (a typo must not silently drop data); headers keep their order and repeated
//! names. A body whose first non-blank byte is `[` is a JSON array of the same
//! objects instead of lines. Errors name the line (array element) and field.
//!
//! [`to_line`] writes `station`, `seq`, `timestamp` with six fractional digits,
//! `id` and `subject` when present, headers as a list of pairs, and `payload`
//! when the bytes are UTF-8, else `payload_base64`.

mod parse;

use std::io;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

use crate::message::{Draft, Message, StationName, Timestamp};

/// A line that could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: field `{field}`: {reason}")]
pub struct LineError {
    /// 1-based line number (or array index + 1 for a JSON array).
    pub line: usize,
    /// The offending field (`json` when the line is not a JSON object).
    pub field: String,
    /// What is wrong and what is expected instead.
    pub reason: String,
}

/// Parses one NDJSON line (`line_no` is used in errors). When `station` is
/// given, a line without `station` belongs to it and a line naming another
/// station is an error; without it, every line must name its station.
///
/// # Errors
/// [`LineError`] naming `line_no` and the offending field.
pub fn parse_line(
    line: &str,
    line_no: usize,
    station: Option<&StationName>,
) -> Result<Draft, LineError> {
    parse::Context::new(station, Timestamp::now(), None).line(line.as_bytes(), line_no)
}

/// Parses a whole body: NDJSON (blank lines skipped, `\r\n` accepted), or a
/// JSON array of the same objects. Nothing is returned unless every line parses.
///
/// # Errors
/// The first [`LineError`].
pub fn parse_body(body: &[u8], station: Option<&StationName>) -> Result<Vec<Draft>, LineError> {
    parse::Context::new(station, Timestamp::now(), None).body(body)
}

/// [`parse_body`] over a shared buffer: payloads given as plain `payload`
/// text without escapes are slices of `body` instead of copies.
///
/// # Errors
/// The first [`LineError`].
pub fn parse_body_bytes(
    body: &Bytes,
    station: Option<&StationName>,
) -> Result<Vec<Draft>, LineError> {
    parse::Context::new(station, Timestamp::now(), Some(body)).body(body)
}

/// One message as an NDJSON line (no trailing newline).
pub fn to_line(m: &Message) -> String {
    let mut out = Vec::with_capacity(128 + m.payload.len());
    write_json(m, &mut out).expect("writing JSON into a Vec cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes one message as an NDJSON line, newline included.
///
/// # Errors
/// The writer's I/O error.
pub fn write_line<W: io::Write>(m: &Message, mut w: W) -> io::Result<()> {
    write_json(m, &mut w)?;
    w.write_all(b"\n")
}

fn write_json<W: io::Write>(m: &Message, w: W) -> io::Result<()> {
    let (payload, payload_base64) = match std::str::from_utf8(&m.payload) {
        Ok(text) => (Some(text), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(&m.payload)),
        ),
    };
    let line = OutLine {
        station: m.station.as_str(),
        seq: m.seq,
        timestamp: m.timestamp.to_rfc3339(),
        id: m.id.as_deref(),
        subject: m.subject.as_deref(),
        headers: OutHeaders(&m.headers),
        payload,
        payload_base64,
    };
    serde_json::to_writer(w, &line).map_err(io::Error::from)
}

/// The written form; field order is the documented order.
#[derive(Serialize)]
struct OutLine<'a> {
    station: &'a str,
    seq: u64,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    headers: OutHeaders<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// Headers as a list of `[name, value]` pairs.
struct OutHeaders<'a>(&'a [crate::message::Header]);

impl Serialize for OutHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|h| [h.name.as_str(), h.value.as_str()]))
    }
}

#[cfg(test)]
mod tests;
