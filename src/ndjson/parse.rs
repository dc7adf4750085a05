//! The NDJSON reader: a hand-written serde visitor over borrowed input, so that
//! a line is parsed in one pass, strings without escapes are not copied, and an
//! error can name the field it happened in (serde's derive cannot).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::LineError;
use crate::message::{Draft, Header, StationName, Timestamp, MAX_SEQ};

/// The fields of a line, in documentation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Not inside a known field: the JSON structure itself.
    Json,
    Station,
    Seq,
    Timestamp,
    Id,
    Subject,
    Headers,
    Payload,
    PayloadBase64,
}

const FIELD_LIST: &str = "station, seq, timestamp, id, subject, headers, payload, payload_base64";

impl Field {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "station" => Self::Station,
            "seq" => Self::Seq,
            "timestamp" => Self::Timestamp,
            "id" => Self::Id,
            "subject" => Self::Subject,
            "headers" => Self::Headers,
            "payload" => Self::Payload,
            "payload_base64" => Self::PayloadBase64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Station => "station",
            Self::Seq => "seq",
            Self::Timestamp => "timestamp",
            Self::Id => "id",
            Self::Subject => "subject",
            Self::Headers => "headers",
            Self::Payload => "payload",
            Self::PayloadBase64 => "payload_base64",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// One parse run: the caller's station and clock, the shared buffer payloads
/// may be sliced from, and where the parser is (for error messages).
pub(super) struct Context<'c> {
    station: Option<&'c StationName>,
    now: Timestamp,
    source: Option<&'c Bytes>,
    line: Cell<usize>,
    field: Cell<Field>,
    unknown: RefCell<Option<String>>,
    failure: RefCell<Option<LineError>>,
}

impl<'c> Context<'c> {
    pub(super) fn new(
        station: Option<&'c StationName>,
        now: Timestamp,
        source: Option<&'c Bytes>,
    ) -> Self {
        Self {
            station,
            now,
            source,
            line: Cell::new(0),
            field: Cell::new(Field::Json),
            unknown: RefCell::new(None),
            failure: RefCell::new(None),
        }
    }

    /// Parses a body: a JSON array when its first non-blank byte is `[`, else NDJSON.
    pub(super) fn body(&self, body: &[u8]) -> Result<Vec<Draft>, LineError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => Ok(Vec::new()),
            Some(b'[') => self.array(body),
            Some(_) => self.lines(body),
        }
    }

    fn lines(&self, body: &[u8]) -> Result<Vec<Draft>, LineError> {
        // A cheap lower bound on the line count keeps the Vec from regrowing much.
        let mut drafts = Vec::with_capacity(body.len() / 256 + 1);
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            drafts.push(self.line(line, i + 1)?);
        }
        Ok(drafts)
    }

    /// Parses one line (a trailing `\r` is ignored).
    pub(super) fn line(&self, line: &[u8], line_no: usize) -> Result<Draft, LineError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.line.set(line_no);
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = LineSeed { ctx: self }
            .deserialize(&mut de)
            .and_then(|draft| de.end().map(|()| draft));
        parsed.map_err(|e| self.error(&e, false))
    }

    fn array(&self, body: &[u8]) -> Result<Vec<Draft>, LineError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = (&mut de)
            .deserialize_seq(ArrayVisitor { ctx: self })
            .and_then(|drafts| de.end().map(|()| drafts));
        parsed.map_err(|e| self.error(&e, true))
    }

    /// Turns a parser error into a [`LineError`] naming the line and field.
    fn error(&self, e: &serde_json::Error, array: bool) -> LineError {
        if let Some(failure) = self.failure.borrow_mut().take() {
            return failure;
        }
        let full = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let msg = full.strip_suffix(&position).unwrap_or(&full);
        let msg = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("invalid JSON: {msg}")
            }
            _ => msg.to_string(),
        };
        let reason = match (e.line(), array) {
            (0, _) => msg,
            (_, false) => format!("{msg} (column {})", e.column()),
            (l, true) => format!("{msg} (body line {l}, column {})", e.column()),
        };
        let field = match self.unknown.borrow_mut().take() {
            Some(name) => name,
            None => self.field.get().name().to_string(),
        };
        LineError {
            line: self.line.get(),
            field,
            reason,
        }
    }

    /// Records a validation failure and returns the error that aborts parsing.
    fn fail<E: de::Error>(&self, field: Field, reason: String) -> E {
        *self.failure.borrow_mut() = Some(LineError {
            line: self.line.get(),
            field: field.name().to_string(),
            reason,
        });
        E::custom("invalid line")
    }

    /// Validates a parsed line and builds the draft.
    fn finish<E: de::Error>(&self, raw: RawLine<'_>) -> Result<Draft, E> {
        let station = match (raw.station, self.station) {
            (Some(named), Some(given)) if named.0 == given.as_str() => given.clone(),
            (Some(named), Some(given)) => {
                return Err(self.fail(
                    Field::Station,
                    format!(
                        "the line names station {:?} but this input is for station {:?}: \
                         remove the field or send the line to its own station",
                        named.0,
                        given.as_str()
                    ),
                ))
            }
            (Some(named), None) => StationName::new(named.0.into_owned())
                .map_err(|e| self.fail(Field::Station, e.to_string()))?,
            (None, Some(given)) => given.clone(),
            (None, None) => {
                return Err(self.fail(
                    Field::Station,
                    "missing: every line must name its station when the input has no \
                     default station"
                        .to_string(),
                ))
            }
        };
        let timestamp = match raw.timestamp {
            Some(text) => Timestamp::parse_rfc3339(&text.0)
                .map_err(|reason| self.fail(Field::Timestamp, reason))?,
            None => self.now,
        };
        let payload = match (raw.payload, raw.payload_base64) {
            (Some(_), Some(_)) => {
                return Err(self.fail(
                    Field::PayloadBase64,
                    "give either payload (UTF-8 text) or payload_base64 (binary), not both"
                        .to_string(),
                ))
            }
            (Some(text), None) => self.bytes(text.0),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.0.as_bytes())
                .map(Bytes::from)
                .map_err(|e| {
                    self.fail(
                        Field::PayloadBase64,
                        format!("not standard base64 with padding ({e})"),
                    )
                })?,
            (None, None) => Bytes::new(),
        };
        Ok(Draft {
            station,
            seq: raw.seq,
            timestamp,
            id: raw.id.map(|s| s.0.into_owned()),
            subject: raw.subject.map(|s| s.0.into_owned()),
            headers: raw.headers.unwrap_or_default(),
            payload,
        })
    }

    /// Payload bytes: a slice of the shared buffer when the text was borrowed
    /// from it, else the string's own allocation (never a second copy).
    fn bytes(&self, text: Cow<'_, str>) -> Bytes {
        match text {
            Cow::Borrowed(s) => match self.source {
                Some(source) if contains(source, s.as_bytes()) => source.slice_ref(s.as_bytes()),
                _ => Bytes::copy_from_slice(s.as_bytes()),
            },
            Cow::Owned(s) => Bytes::from(s.into_bytes()),
        }
    }
}

/// Whether `part` lies inside `whole`'s memory (so `Bytes::slice_ref` accepts it).
fn contains(whole: &Bytes, part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + whole.len()
}

/// A line's fields as found, before validation.
#[derive(Default)]
struct RawLine<'de> {
    station: Option<Str<'de>>,
    seq: Option<u64>,
    timestamp: Option<Str<'de>>,
    id: Option<Str<'de>>,
    subject: Option<Str<'de>>,
    headers: Option<Vec<Header>>,
    payload: Option<Str<'de>>,
    payload_base64: Option<Str<'de>>,
}

/// Deserializes one line object into a validated [`Draft`].
struct LineSeed<'a, 'c> {
    ctx: &'a Context<'c>,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_, '_> {
    type Value = Draft;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Draft, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_, '_> {
    type Value = Draft;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with the fields ")?;
        f.write_str(FIELD_LIST)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Draft, A::Error> {
        let ctx = self.ctx;
        let mut raw = RawLine::default();
        let mut seen = 0u16;
        ctx.field.set(Field::Json);
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let Some(field) = Field::from_key(&key.0) else {
                *ctx.unknown.borrow_mut() = Some(key.0.into_owned());
                return Err(de::Error::custom(format_args!(
                    "unknown field; the fields are {FIELD_LIST}"
                )));
            };
            ctx.field.set(field);
            if seen & field.bit() != 0 {
                return Err(de::Error::custom("the field appears twice"));
            }
            seen |= field.bit();
            match field {
                Field::Json => unreachable!("from_key never yields Json"),
                Field::Station => raw.station = map.next_value()?,
                Field::Seq => raw.seq = map.next_value::<Option<SeqValue>>()?.map(|s| s.0),
                Field::Timestamp => raw.timestamp = map.next_value()?,
                Field::Id => raw.id = map.next_value()?,
                Field::Subject => raw.subject = map.next_value()?,
                Field::Headers => raw.headers = map.next_value::<Option<Headers>>()?.map(|h| h.0),
                Field::Payload => raw.payload = map.next_value()?,
                Field::PayloadBase64 => raw.payload_base64 = map.next_value()?,
            }
            ctx.field.set(Field::Json);
        }
        ctx.finish(raw)
    }
}

/// Deserializes a JSON array of line objects; element `i` is line `i + 1`.
struct ArrayVisitor<'a, 'c> {
    ctx: &'a Context<'c>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = Vec<Draft>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of message objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Draft>, A::Error> {
        let mut drafts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            self.ctx.line.set(drafts.len() + 1);
            match seq.next_element_seed(LineSeed { ctx: self.ctx })? {
                Some(draft) => drafts.push(draft),
                None => return Ok(drafts),
            }
        }
    }
}

/// What `seq` must be, in the words of the format's documentation.
pub(super) const SEQ_FORM: &str = "seq must be an integer from 0 to 9223372036854775807";

/// A `seq` value: a JSON integer from 0 to [`MAX_SEQ`]. Anything else (a
/// negative or fractional number, a string) is refused with [`SEQ_FORM`]
/// rather than serde's "expected u64".
struct SeqValue(u64);

impl<'de> Deserialize<'de> for SeqValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeqVisitor)
    }
}

struct SeqVisitor;

impl SeqVisitor {
    fn refuse<E: de::Error>(got: fmt::Arguments<'_>) -> E {
        E::custom(format_args!("{SEQ_FORM}, not {got}"))
    }
}

impl<'de> Visitor<'de> for SeqVisitor {
    type Value = SeqValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SEQ_FORM)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SeqValue, E> {
        if v > MAX_SEQ {
            return Err(Self::refuse(format_args!("{v}")));
        }
        Ok(SeqValue(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SeqValue, E> {
        u64::try_from(v)
            .map_err(|_| Self::refuse(format_args!("{v}")))
            .and_then(|v| self.visit_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<SeqValue, E> {
        Err(Self::refuse(format_args!("{v:?}")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SeqValue, E> {
        Err(Self::refuse(format_args!(
            "the string {v:?} (write the number without quotes)"
        )))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<SeqValue, E> {
        Err(Self::refuse(format_args!("{v}")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SeqValue, A::Error> {
        Err(Self::refuse(format_args!("a list")))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SeqValue, A::Error> {
        Err(Self::refuse(format_args!("an object")))
    }
}

/// A string, borrowed from the input when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

/// Headers: a list of `[name, value]` pairs, or an object of string values
/// (document order kept).
struct Headers(Vec<Header>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeadersVisitor)
    }
}

struct HeadersVisitor;

const HEADERS_SHAPE: &str = "a list of [name, value] string pairs or an object of string values";

fn header<E: de::Error>(name: Str<'_>, value: Str<'_>) -> Result<Header, E> {
    if name.0.is_empty() {
        return Err(E::custom("a header name is empty"));
    }
    Ok(Header {
        name: name.0.into_owned(),
        value: value.0.into_owned(),
    })
}

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HEADERS_SHAPE)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
        let mut headers = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Pair(name, value)) = seq.next_element()? {
            headers.push(header(name, value)?);
        }
        Ok(Headers(headers))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        let mut headers = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((name, value)) = map.next_entry::<Str<'de>, Str<'de>>()? {
            headers.push(header(name, value)?);
        }
        Ok(Headers(headers))
    }
}

/// One `[name, value]` header pair.
struct Pair<'de>(Str<'de>, Str<'de>);

impl<'de> Deserialize<'de> for Pair<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(PairVisitor)
    }
}

struct PairVisitor;

impl<'de> Visitor<'de> for PairVisitor {
    type Value = Pair<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [name, value] pair of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair<'de>, A::Error> {
        let name = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(Pair(name, value))
    }
}
