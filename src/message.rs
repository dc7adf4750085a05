//! The message model every part of Strata shares: a station name that is safe to
//! use as an object-store path segment, and the message itself.
//!
//! A message's identity in the archive is `(station, seq)`. Timestamps are UTC
//! microseconds since the Unix epoch: Spark and DuckDB read microseconds, and
//! nanoseconds would overflow their timestamp types.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use thiserror::Error;

/// The longest station name accepted, in characters (all ASCII).
pub const MAX_STATION_LEN: usize = 128;

/// The largest sequence number Strata archives: Parquet stores `seq` as Int64,
/// because Spark, Trino and Iceberg have no unsigned 64-bit type.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Why a sequence number was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SeqError {
    /// Above [`MAX_SEQ`].
    #[error(
        "seq {0} is too large: seq must be an integer from 0 to 9223372036854775807 \
         (Parquet stores it as Int64)"
    )]
    OutOfRange(u64),
    /// Not a decimal integer.
    #[error("seq {0:?} is not an integer from 0 to 9223372036854775807")]
    NotAnInteger(String),
}

/// A validated sequence number: `0..=`[`MAX_SEQ`]. A message's identity in the
/// archive is `(station, seq)`; every place that takes a seq from outside
/// (NDJSON, HTTP, NATS headers, incarnation offsets) goes through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(u64);

impl Seq {
    /// Validates `seq`.
    ///
    /// # Errors
    /// [`SeqError::OutOfRange`] above [`MAX_SEQ`].
    pub fn new(seq: u64) -> Result<Self, SeqError> {
        if seq > MAX_SEQ {
            Err(SeqError::OutOfRange(seq))
        } else {
            Ok(Self(seq))
        }
    }

    /// Parses a decimal seq (surrounding spaces allowed).
    ///
    /// # Errors
    /// [`SeqError`] for anything but an integer in range.
    pub fn parse(text: &str) -> Result<Self, SeqError> {
        let t = text.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SeqError::NotAnInteger(text.to_string()));
        }
        match t.parse::<u64>() {
            Ok(n) => Self::new(n),
            Err(_) => Err(SeqError::NotAnInteger(text.to_string())),
        }
    }

    /// `self + n`, when it stays in range.
    ///
    /// # Errors
    /// [`SeqError::OutOfRange`] past [`MAX_SEQ`].
    pub fn checked_add(self, n: u64) -> Result<Self, SeqError> {
        Self::new(self.0.saturating_add(n))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<Seq> for u64 {
    fn from(s: Seq) -> u64 {
        s.0
    }
}

/// Why a station name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StationNameError {
    /// The name was empty.
    #[error("station name is empty: use 1 to 128 characters of A-Z a-z 0-9 _ - .")]
    Empty,
    /// The name was longer than [`MAX_STATION_LEN`].
    #[error("station name is {0} characters long: at most 128 are allowed")]
    TooLong(usize),
    /// The name started with a dot (which would allow `.`/`..` path segments).
    #[error("station name {0:?} starts with '.': names may contain '.' but not start with it")]
    LeadingDot(String),
    /// The name held a character outside the allowed set.
    #[error(
        "station name {name:?} contains {ch:?}: only A-Z a-z 0-9 _ - . are allowed \
         (no '/', '=', spaces or control characters)"
    )]
    BadChar {
        /// The refused name.
        name: String,
        /// The first character outside the allowed set.
        ch: char,
    },
}

/// A validated station name: 1 to 128 characters of `A-Z a-z 0-9 _ - .`, not
/// starting with `.`. It is used verbatim as the `station=<name>` path segment,
/// so a value of this type can never escape the archive prefix.
///
/// Shared, not copied: every message of a station carries its name, so a
/// clone is a reference count, not an allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StationName(Arc<str>);

impl StationName {
    /// Validates `name` against the station name rules.
    ///
    /// # Errors
    /// [`StationNameError`] naming the rule that `name` breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, StationNameError> {
        let name = name.into();
        Self::check(&name)?;
        Ok(Self(name.into()))
    }

    /// Checks `name` against the station name rules without building a name.
    ///
    /// # Errors
    /// [`StationNameError`] naming the rule that `name` breaks.
    pub fn check(name: &str) -> Result<(), StationNameError> {
        if name.is_empty() {
            return Err(StationNameError::Empty);
        }
        let chars = name.chars().count();
        if chars > MAX_STATION_LEN {
            return Err(StationNameError::TooLong(chars));
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(StationNameError::BadChar {
                name: name.to_string(),
                ch,
            });
        }
        if name.starts_with('.') {
            return Err(StationNameError::LeadingDot(name.to_string()));
        }
        Ok(())
    }

    /// A name that has already passed [`StationName::check`] (the WAL's
    /// decoder checks each name once, then reuses the result).
    pub(crate) fn trusted(name: &str) -> Self {
        debug_assert!(Self::check(name).is_ok(), "{name:?} was not checked");
        Self(name.into())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for StationName {
    type Err = StationNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl serde::Serialize for StationName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StationName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for StationName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A UTC instant with microsecond precision, as microseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// The earliest instant Strata stores: 0001-01-01T00:00:00Z (RFC 3339
    /// has four-digit years, so nothing earlier can be written back out).
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000_000);
    /// The latest instant Strata stores: 9999-12-31T23:59:59.999999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// `micros` as a timestamp when it lies in [`Timestamp::MIN`]..=[`Timestamp::MAX`].
    pub fn checked(micros: i64) -> Option<Self> {
        (Self::MIN.0..=Self::MAX.0)
            .contains(&micros)
            .then_some(Self(micros))
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Seconds from `earlier` to `self`, never negative (for age gauges).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        self.0.saturating_sub(earlier.0).max(0) as f64 / 1e6
    }

    /// The instant as a chrono value, or `None` when it is outside chrono's range.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }

    /// Parses an RFC 3339 timestamp (any offset; stored as UTC, sub-microsecond
    /// digits are truncated).
    ///
    /// # Errors
    /// A message saying what an RFC 3339 timestamp looks like.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Self(dt.with_timezone(&Utc).timestamp_micros()))
            .map_err(|e| {
                format!("{s:?} is not an RFC 3339 timestamp like 2026-11-24T10:00:00.123456Z ({e})")
            })
    }

    /// Formats as RFC 3339 in UTC with exactly six fractional digits
    /// (`2026-11-24T10:00:00.123456Z`).
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("{}us", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

/// One header: a name and a value, both text. Order, case and repeated names
/// are kept exactly as given, so headers are a list, never a map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name, case kept.
    pub name: String,
    /// The header value.
    pub value: String,
}

impl Header {
    /// Builds a header from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A message as archived: identity `(station, seq)`, plus timestamp, optional
/// id and subject, ordered headers and payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The station (broker stream) the message belongs to.
    pub station: StationName,
    /// The sequence within the station (the broker's stream sequence when the
    /// source has one); at most [`MAX_SEQ`].
    pub seq: u64,
    /// When the message was published, UTC microseconds.
    pub timestamp: Timestamp,
    /// The message id, e.g. `Nats-Msg-Id`.
    pub id: Option<String>,
    /// The subject it was published on.
    pub subject: Option<String>,
    /// Headers in their original order.
    pub headers: Vec<Header>,
    /// The payload bytes.
    pub payload: Bytes,
}

/// What the Parquet encoder reads of a message: a [`Message`], or a message
/// read in place from a WAL segment's bytes, without owning its strings.
///
/// Text (id, subject, header names and values) is given as bytes: UTF-8 in a
/// [`Message`]; as stored for a message read back from a segment, whose text
/// the encoder checks a column at a time rather than string by string.
pub trait MessageView {
    /// Its station's name.
    fn station(&self) -> &str;
    /// Its sequence.
    fn seq(&self) -> u64;
    /// Its timestamp.
    fn timestamp(&self) -> Timestamp;
    /// Its id, when present.
    fn id(&self) -> Option<&[u8]>;
    /// Its subject, when present.
    fn subject(&self) -> Option<&[u8]>;
    /// Its payload.
    fn payload(&self) -> &[u8];
    /// How many headers it has.
    fn header_count(&self) -> usize;
    /// Calls `each` with every header's name and value, in order.
    fn for_each_header(&self, each: impl FnMut(&[u8], &[u8]));
    /// Bytes of its headers: per header its name, its value and 8.
    fn headers_len(&self) -> usize;

    /// The bytes that count towards a row group's size: payload, id,
    /// subject and headers (see [`MessageView::headers_len`]).
    fn data_len(&self) -> usize {
        self.payload().len()
            + self.id().map_or(0, <[u8]>::len)
            + self.subject().map_or(0, <[u8]>::len)
            + self.headers_len()
    }
}

impl MessageView for Message {
    fn station(&self) -> &str {
        self.station.as_str()
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    fn id(&self) -> Option<&[u8]> {
        self.id.as_deref().map(str::as_bytes)
    }
    fn subject(&self) -> Option<&[u8]> {
        self.subject.as_deref().map(str::as_bytes)
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
    fn header_count(&self) -> usize {
        self.headers.len()
    }
    fn for_each_header(&self, mut each: impl FnMut(&[u8], &[u8])) {
        for h in &self.headers {
            each(h.name.as_bytes(), h.value.as_bytes());
        }
    }
    fn headers_len(&self) -> usize {
        self.headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 8)
            .sum()
    }
}

/// A message on its way in, before the WAL has given it a sequence: `seq` is
/// `None` when the source has none (HTTP, NDJSON without `seq`), and the WAL
/// then assigns the station's next sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The station it belongs to.
    pub station: StationName,
    /// The sequence, if the source has one.
    pub seq: Option<u64>,
    /// When the message was published.
    pub timestamp: Timestamp,
    /// The message id.
    pub id: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// Headers in their original order.
    pub headers: Vec<Header>,
    /// The payload bytes.
    pub payload: Bytes,
}

impl Draft {
    /// Completes the draft with a sequence number.
    pub fn into_message(self, seq: u64) -> Message {
        Message {
            station: self.station,
            seq,
            timestamp: self.timestamp,
            id: self.id,
            subject: self.subject,
            headers: self.headers,
            payload: self.payload,
        }
    }
}

impl From<Message> for Draft {
    fn from(m: Message) -> Self {
        Self {
            station: m.station,
            seq: Some(m.seq),
            timestamp: m.timestamp,
            id: m.id,
            subject: m.subject,
            headers: m.headers,
            payload: m.payload,
        }
    }
}

#[cfg(test)]
impl Message {
    /// A bare message for unit tests: station `s`, the given seq, timestamp =
    /// seq microseconds, no id, subject or headers.
    pub(crate) fn for_test(seq: u64, payload: impl Into<Bytes>) -> Message {
        Message {
            station: StationName::new("s").expect("a valid name"),
            seq,
            timestamp: Timestamp(seq as i64),
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: payload.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["orders", "a", "A-Z_0.9", "x.y.z", &"s".repeat(128)] {
            assert!(StationName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_a_path() {
        assert_eq!(StationName::new(""), Err(StationNameError::Empty));
        assert!(matches!(
            StationName::new(".."),
            Err(StationNameError::LeadingDot(_))
        ));
        assert!(matches!(
            StationName::new(".hidden"),
            Err(StationNameError::LeadingDot(_))
        ));
        assert!(matches!(
            StationName::new("s".repeat(129)),
            Err(StationNameError::TooLong(129))
        ));
        for (bad, ch) in [
            ("a/b", '/'),
            ("../x", '/'),
            ("k=v", '='),
            ("a b", ' '),
            ("a\nb", '\n'),
            ("a\0", '\0'),
            ("é", 'é'),
        ] {
            assert_eq!(
                StationName::new(bad),
                Err(StationNameError::BadChar {
                    name: bad.to_string(),
                    ch
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_rule() {
        let e = StationName::new("a/b").unwrap_err().to_string();
        assert!(e.contains("A-Z a-z 0-9 _ - ."), "{e}");
    }

    #[test]
    fn seqs_are_checked_once() {
        assert_eq!(Seq::new(MAX_SEQ).unwrap().get(), MAX_SEQ);
        assert_eq!(
            Seq::new(MAX_SEQ + 1),
            Err(SeqError::OutOfRange(MAX_SEQ + 1))
        );
        assert_eq!(Seq::parse(" 42 ").unwrap().get(), 42);
        for bad in ["", "-1", "+1", "1.0", "x", "99999999999999999999999"] {
            assert!(Seq::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Seq::parse("9223372036854775808")
            .unwrap_err()
            .to_string()
            .contains("0 to 9223372036854775807"));
        assert!(Seq::new(MAX_SEQ - 1).unwrap().checked_add(2).is_err());
        assert_eq!(Seq::new(5).unwrap().checked_add(3).unwrap().get(), 8);
    }

    #[test]
    fn timestamps_outside_four_digit_years_are_refused() {
        assert_eq!(Timestamp::MIN.to_rfc3339(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
        assert!(Timestamp::checked(Timestamp::MAX.micros() + 1).is_none());
        assert!(Timestamp::checked(Timestamp::MIN.micros() - 1).is_none());
        assert!(Timestamp::checked(i64::MAX).is_none());
        assert_eq!(Timestamp::checked(0), Some(Timestamp(0)));
    }

    #[test]
    fn timestamps_round_trip_rfc3339_with_micros() {
        let t = Timestamp::parse_rfc3339("2026-11-24T10:00:00.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T10:00:00.123456Z");
        let offset = Timestamp::parse_rfc3339("2026-11-24T12:00:00.5+02:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-24T10:00:00.500000Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
