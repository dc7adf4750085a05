//! WAL entries: one append call becomes one CRC32-checked entry, so a batch is
//! either wholly durable or wholly absent after a crash. Pure code over bytes
//! (no I/O), so it is tested and fuzzed in memory.
//!
//! # Entry format, version 1
//!
//! All integers are little endian. An entry is a 16-byte header and a body:
//!
//! ```text
//!  0      4       5          8          12         16              16 + body_len
//!  +------+-------+----------+----------+----------+---------------+
//!  |magic |version| reserved | body_len |  crc32   |     body      |
//!  |"STRE"|  u8=1 | 3 × 0x00 |   u32    |   u32    | body_len bytes|
//!  +------+-------+----------+----------+----------+---------------+
//!          \___________ covered by the CRC __________/ (+ the body)
//! ```
//!
//! `crc32` is CRC-32/ISO-HDLC (the zlib/`crc32fast` polynomial) over bytes 4..12
//! of the header (version, reserved, body_len) followed by the whole body. The
//! magic is checked by equality rather than by the CRC; it lets recovery and
//! `strata wal inspect` find the next entry after a damaged one. A length that is
//! damaged therefore shows up as a CRC mismatch (or as an entry running past the
//! end of the file), never as a silently shorter batch.
//!
//! The body is a message count followed by that many messages:
//!
//! ```text
//! body    = count:u32  message*count
//! message = station_len:u8  station:[u8; station_len]   (1..=128 ASCII, StationName rules)
//!           seq:u64                                      (<= MAX_SEQ)
//!           timestamp:i64                                (UTC microseconds since the epoch)
//!           presence:u8                                  (bit 0: id, bit 1: subject; others 0)
//!           [id_len:u32  id:[u8; id_len]]                (UTF-8, only when bit 0 is set)
//!           [subject_len:u32  subject:[u8; subject_len]] (UTF-8, only when bit 1 is set)
//!           header_count:u32  header*header_count       (in their original order)
//!           payload_len:u32  payload:[u8; payload_len]
//! header  = name_len:u32  name:[u8; name_len]  value_len:u32  value:[u8; value_len]  (UTF-8)
//! ```
//!
//! The body must be consumed exactly; trailing bytes make the entry malformed.
//! A new format gets a new version number; decoders refuse versions they do not
//! know instead of guessing.

use bytes::Bytes;
use thiserror::Error;

use crate::message::{Header, Message, MessageView, Seq, StationName, Timestamp, MAX_STATION_LEN};

/// The four bytes every entry starts with.
pub const MAGIC: [u8; 4] = *b"STRE";
/// The entry format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Length of the entry header in bytes.
pub const HEADER_LEN: usize = 16;
/// The largest body an entry can hold (its length is a `u32`).
pub const MAX_BODY_LEN: usize = u32::MAX as usize;

const PRESENCE_ID: u8 = 0b01;
/// The fewest bytes a message takes: a one-character station, seq, timestamp,
/// presence, header count and payload length.
const MIN_MESSAGE_LEN: usize = 1 + 1 + 8 + 8 + 1 + 4 + 4;
const PRESENCE_SUBJECT: u8 = 0b10;

/// Why bytes are not a valid entry. Recovery tells a torn tail
/// ([`DecodeError::Truncated`]) from damage (everything else).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end before the entry does (a partial header or body).
    #[error("entry is incomplete: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the entry needs from its start.
        needed: u64,
        /// Bytes there are from its start.
        available: u64,
    },
    /// The entry does not start with [`MAGIC`].
    #[error("no entry magic here (found {0:02x?})")]
    BadMagic([u8; 4]),
    /// The entry was written by a format version this code does not know.
    #[error("entry format version {0} is not supported (this Strata reads version 1)")]
    UnsupportedVersion(u8),
    /// Reserved header bytes are not zero.
    #[error("reserved entry header bytes are not zero")]
    ReservedNotZero,
    /// The CRC stored in the header does not match the bytes.
    #[error("entry CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the bytes as read.
        computed: u32,
    },
    /// The CRC matched but the body does not follow the format.
    #[error("malformed entry body at body byte {offset}: {reason}")]
    Malformed {
        /// Byte offset within the body.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
}

/// The fixed-size entry header, as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Length of the body that follows the header.
    pub body_len: u32,
    /// The stored CRC.
    pub crc: u32,
}

impl EntryHeader {
    /// Total length of the entry, header included.
    pub fn entry_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// Parses a header from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is shorter than a header, otherwise
    /// a bad magic, version or reserved byte.
    pub fn parse(buf: &[u8]) -> Result<EntryHeader, DecodeError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN as u64,
                available: buf.len() as u64,
            });
        };
        let magic = [h[0], h[1], h[2], h[3]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        if h[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(h[4]));
        }
        if h[5..8] != [0, 0, 0] {
            return Err(DecodeError::ReservedNotZero);
        }
        Ok(EntryHeader {
            body_len: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            crc: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        })
    }
}

/// Why a batch cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The body would exceed [`MAX_BODY_LEN`].
    #[error(
        "batch is {0} bytes encoded: one entry holds at most 4294967295 bytes; split the batch"
    )]
    TooLarge(u64),
    /// A message's sequence is above [`crate::message::MAX_SEQ`].
    #[error("sequence {0} is above the largest archivable sequence")]
    SeqOutOfRange(u64),
}

/// The exact encoded length (header included) of an entry holding `messages`.
pub fn encoded_len(messages: &[Message]) -> u64 {
    HEADER_LEN as u64 + 4 + messages.iter().map(message_len).sum::<u64>()
}

fn message_len(m: &Message) -> u64 {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| 4 + s.len() as u64);
    1 + m.station.as_str().len() as u64
        + 8
        + 8
        + 1
        + opt(&m.id)
        + opt(&m.subject)
        + 4
        + m.headers_len() as u64
        + 4
        + m.payload.len() as u64
}

/// Payloads at least this long are not copied by [`encode_chunks`]: they are
/// written straight from the message's buffer. Shorter ones are copied, which
/// keeps the number of `writev` pieces down for small messages.
pub const INLINE_PAYLOAD_MAX: usize = 511;

/// An encoded entry as a list of pieces whose concatenation is the entry's
/// bytes: framing in one buffer, large payloads shared with the messages
/// (no copy). Written with one vectored write.
#[derive(Debug, Clone)]
pub struct EncodedEntry {
    /// The pieces, in order.
    pub chunks: Vec<Bytes>,
    /// Total length (the sum of the pieces' lengths).
    pub len: u64,
}

impl EncodedEntry {
    /// The entry as one contiguous buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

/// Encodes `messages` as one entry (header, body and CRC) into a new buffer of
/// exactly [`encoded_len`] bytes.
///
/// # Errors
/// As [`encode_chunks`].
pub fn encode(messages: &[Message]) -> Result<Vec<u8>, EncodeError> {
    encode_chunks(messages).map(|e| e.to_vec())
}

/// Encodes `messages` as one entry without copying payloads longer than
/// [`INLINE_PAYLOAD_MAX`]; the bytes are the same as [`encode`]'s.
///
/// # Errors
/// [`EncodeError::TooLarge`] when the body would not fit the `u32` length (every
/// string and payload is then also below 4 GiB), [`EncodeError::SeqOutOfRange`]
/// for a sequence above [`crate::message::MAX_SEQ`].
pub fn encode_chunks(messages: &[Message]) -> Result<EncodedEntry, EncodeError> {
    let total = encoded_len(messages);
    let body_len = total - HEADER_LEN as u64;
    if body_len > MAX_BODY_LEN as u64 {
        return Err(EncodeError::TooLarge(total));
    }
    if let Some(m) = messages.iter().find(|m| Seq::new(m.seq).is_err()) {
        return Err(EncodeError::SeqOutOfRange(m.seq));
    }
    let shared = |m: &Message| m.payload.len() > INLINE_PAYLOAD_MAX;
    let shared_bytes: usize = messages
        .iter()
        .filter(|m| shared(m))
        .map(|m| m.payload.len())
        .sum();
    let mut out = Vec::with_capacity(total as usize - shared_bytes);
    // Where a shared payload goes: (offset in `out`, message index).
    let mut splits: Vec<(usize, usize)> = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    // Lengths below fit in u32: each is part of a body already checked to fit.
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    put_u32(&mut out, messages.len() as u32);
    for (i, m) in messages.iter().enumerate() {
        let station = m.station.as_str().as_bytes();
        out.push(station.len() as u8);
        out.extend_from_slice(station);
        out.extend_from_slice(&m.seq.to_le_bytes());
        out.extend_from_slice(&m.timestamp.micros().to_le_bytes());
        let presence = if m.id.is_some() { PRESENCE_ID } else { 0 }
            | if m.subject.is_some() {
                PRESENCE_SUBJECT
            } else {
                0
            };
        out.push(presence);
        for s in [&m.id, &m.subject].into_iter().flatten() {
            put_bytes(&mut out, s.as_bytes());
        }
        put_u32(&mut out, m.headers.len() as u32);
        for h in &m.headers {
            put_bytes(&mut out, h.name.as_bytes());
            put_bytes(&mut out, h.value.as_bytes());
        }
        if shared(m) {
            put_u32(&mut out, m.payload.len() as u32);
            splits.push((out.len(), i));
        } else {
            put_bytes(&mut out, &m.payload);
        }
    }
    // The CRC over the pieces in entry order, as if they were contiguous.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[4..12]);
    let mut from = HEADER_LEN;
    for &(at, i) in &splits {
        crc.update(&out[from..at]);
        crc.update(&messages[i].payload);
        from = at;
    }
    crc.update(&out[from..]);
    out[12..16].copy_from_slice(&crc.finalize().to_le_bytes());

    let framing = Bytes::from(out);
    let mut chunks = Vec::with_capacity(2 * splits.len() + 1);
    let mut from = 0;
    for &(at, i) in &splits {
        chunks.push(framing.slice(from..at));
        chunks.push(messages[i].payload.clone());
        from = at;
    }
    if from < framing.len() {
        chunks.push(framing.slice(from..));
    }
    debug_assert_eq!(chunks.iter().map(|c| c.len() as u64).sum::<u64>(), total);
    Ok(EncodedEntry { chunks, len: total })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn crc_of(header_part: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header_part);
    h.update(body);
    h.finalize()
}

/// Checks the entry at the start of `buf` (header and CRC) without decoding
/// its messages; returns its header.
///
/// # Errors
/// Any [`DecodeError`] but [`DecodeError::Malformed`].
pub fn check(buf: &[u8]) -> Result<EntryHeader, DecodeError> {
    let header = EntryHeader::parse(buf)?;
    let len = header.entry_len();
    let Some(entry) = buf.get(..len as usize).filter(|_| len <= buf.len() as u64) else {
        return Err(DecodeError::Truncated {
            needed: len,
            available: buf.len() as u64,
        });
    };
    let computed = crc_of(&entry[4..12], &entry[HEADER_LEN..]);
    if computed != header.crc {
        return Err(DecodeError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Decodes the entry at the start of `buf`: its messages in order, and the
/// entry's total length. Payloads are slices of `buf` (no copy).
///
/// # Errors
/// A [`DecodeError`] saying what is wrong; never panics, whatever the bytes.
pub fn decode(buf: &Bytes) -> Result<(Vec<Message>, u64), DecodeError> {
    let header = check(buf)?;
    let len = header.entry_len();
    let body = buf.slice(HEADER_LEN..len as usize);
    let messages = decode_body(&body)?;
    Ok((messages, len))
}

/// One message of an entry body, checked against the format, its text
/// borrowed from the body (nothing allocated).
///
/// Its id, subject and headers are the bytes stored: checked as UTF-8 when
/// the message was read by [`walk_body`], left to the reader's user when read
/// by [`MessagesIn`] (the encoder checks a column at a time;
/// [`RawMessage::into_message`] checks each).
#[derive(Debug, Clone)]
pub struct RawMessage<'a> {
    /// The station name (follows the station name rules).
    pub station: &'a str,
    /// The sequence (at most [`crate::message::MAX_SEQ`]).
    pub seq: u64,
    /// The timestamp.
    pub timestamp: Timestamp,
    /// The id, when present.
    pub id: Option<&'a [u8]>,
    /// The subject, when present.
    pub subject: Option<&'a [u8]>,
    /// The encoded headers (`header*header_count`).
    headers: &'a [u8],
    header_count: usize,
    /// The payload, in the buffer the message was read from.
    payload: &'a [u8],
}

impl RawMessage<'_> {
    /// The message, its payload a slice of `buf` (the buffer it was read from).
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] (offset 0: the message's start) when its
    /// text is not UTF-8, which only a message read with [`MessagesIn`] can be.
    pub(crate) fn into_message(
        self,
        station: StationName,
        buf: &Bytes,
    ) -> Result<Message, DecodeError> {
        let text = |bytes: &[u8], what: &str| utf8(bytes, what, 0).map(str::to_owned);
        let mut headers = Vec::with_capacity(self.header_count);
        let mut bad = None;
        self.for_each_header(|name, value| {
            match (text(name, "header name"), text(value, "header value")) {
                (Ok(name), Ok(value)) => headers.push(Header { name, value }),
                (Err(e), _) | (_, Err(e)) => {
                    bad.get_or_insert(e);
                }
            }
        });
        if let Some(e) = bad {
            return Err(e);
        }
        Ok(Message {
            station,
            seq: self.seq,
            timestamp: self.timestamp,
            id: self.id.map(|id| text(id, "id")).transpose()?,
            subject: self.subject.map(|s| text(s, "subject")).transpose()?,
            headers,
            payload: buf.slice_ref(self.payload),
        })
    }
}

impl MessageView for RawMessage<'_> {
    fn station(&self) -> &str {
        self.station
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    fn id(&self) -> Option<&[u8]> {
        self.id
    }
    fn subject(&self) -> Option<&[u8]> {
        self.subject
    }
    fn payload(&self) -> &[u8] {
        self.payload
    }
    fn header_count(&self) -> usize {
        self.header_count
    }
    fn for_each_header(&self, mut each: impl FnMut(&[u8], &[u8])) {
        let mut r = Reader::new(self.headers, false);
        for _ in 0..self.header_count {
            // Their lengths were checked when the message was read: these cannot fail.
            let (Ok(name), Ok(value)) = (r.text("header name"), r.text("header value")) else {
                break;
            };
            each(name, value);
        }
    }
    fn headers_len(&self) -> usize {
        self.headers.len()
    }
}

/// Reads back messages of checked entries that were copied, each whole, into
/// one buffer: a station name met again is not checked again.
#[derive(Debug)]
pub struct MessagesIn<'a> {
    r: Reader<'a>,
}

impl<'a> MessagesIn<'a> {
    /// Messages copied into `buf`, read as [`walk_body`] reads them except
    /// that their text (id, subject, headers) is not checked as UTF-8: the
    /// encoder checks it a column at a time, [`RawMessage::into_message`]
    /// string by string.
    pub fn new(buf: &'a [u8]) -> Self {
        MessagesIn {
            r: Reader::new(buf, false),
        }
    }

    /// The message that fills `at` of the buffer exactly, read as
    /// [`walk_body`] reads it from an entry body.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] when those bytes are not exactly one valid
    /// message (offsets relative to `at.start`).
    pub fn at(&mut self, at: std::ops::Range<usize>) -> Result<RawMessage<'a>, DecodeError> {
        let relative = |e: DecodeError| match e {
            DecodeError::Malformed { offset, reason } => DecodeError::Malformed {
                offset: offset.saturating_sub(at.start),
                reason,
            },
            other => other,
        };
        self.r.pos = at.start;
        let m = self.r.message().map_err(relative)?;
        if self.r.pos != at.end {
            return Err(DecodeError::Malformed {
                offset: self.r.pos.min(at.end) - at.start,
                reason: "the message does not fill its bytes".into(),
            });
        }
        Ok(m)
    }
}

/// Calls `each` with every message of an entry body whose CRC has been
/// checked, and the byte range it takes in `body`, without allocating. Finds
/// exactly the damage [`decode`] finds.
///
/// # Errors
/// [`DecodeError::Malformed`] for a body that does not follow the format; the
/// first error of `each`.
pub fn walk_body<'a>(
    body: &'a [u8],
    mut each: impl FnMut(RawMessage<'a>, std::ops::Range<usize>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body, true);
    let count = r.u32()?;
    // A count larger than the body can hold is malformed; checking first
    // keeps a bad count from reserving huge memory.
    if count as usize > body.len() / MIN_MESSAGE_LEN {
        return Err(r.malformed(format!("message count {count} cannot fit the body")));
    }
    for _ in 0..count {
        let start = r.pos;
        let m = r.message()?;
        each(m, start..r.pos)?;
    }
    if r.pos != body.len() {
        return Err(r.malformed(format!(
            "{} trailing bytes after the last message",
            body.len() - r.pos
        )));
    }
    Ok(())
}

/// Decodes a body whose CRC has been checked.
fn decode_body(body: &Bytes) -> Result<Vec<Message>, DecodeError> {
    // Sized by the stated count, bounded by what the body can hold (a message
    // takes at least MIN_MESSAGE_LEN bytes); `walk_body` refuses a count above
    // that bound.
    let count = body
        .get(..4)
        .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
    let mut messages = Vec::with_capacity(count.min(body.len() / MIN_MESSAGE_LEN));
    // Consecutive messages of one station share the check of its name.
    let mut last: Option<StationName> = None;
    walk_body(body, |m, _| {
        let station = station_of(m.station, &mut last);
        messages.push(m.into_message(station, body)?);
        Ok(())
    })?;
    Ok(messages)
}

/// The station names met while reading entries, each shared by its messages
/// (one allocation per station, not per message).
#[derive(Debug, Default)]
pub struct SharedStations(Vec<std::sync::Arc<StationName>>);

impl SharedStations {
    /// `name` (already checked by [`walk_body`]) as a shared station name.
    pub fn get(&mut self, name: &str) -> std::sync::Arc<StationName> {
        match self.0.iter().find(|s| s.as_str() == name) {
            Some(s) => s.clone(),
            None => {
                let s = std::sync::Arc::new(StationName::trusted(name));
                self.0.push(s.clone());
                s
            }
        }
    }
}

/// `name` as a station name (already checked), reusing `last` when equal.
fn station_of(name: &str, last: &mut Option<StationName>) -> StationName {
    match last {
        Some(s) if s.as_str() == name => s.clone(),
        _ => {
            let s = StationName::trusted(name);
            *last = Some(s.clone());
            s
        }
    }
}

/// `bytes` as text; [`DecodeError::Malformed`] naming `what` at `offset`
/// when they are not UTF-8.
fn utf8<'b>(bytes: &'b [u8], what: &str, offset: usize) -> Result<&'b str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| DecodeError::Malformed {
        offset,
        reason: format!("{what} is not UTF-8: {e}"),
    })
}

/// A bounds-checked cursor over a body.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The last station name that passed the station name rules.
    checked_station: &'a str,
    /// Whether text (id, subject, headers) is checked as UTF-8.
    check_text: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], check_text: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            checked_station: "",
            check_text,
        }
    }

    fn malformed(&self, reason: String) -> DecodeError {
        DecodeError::Malformed {
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.malformed(format!(
                    "{n} bytes needed, {} left",
                    self.buf.len() - self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed string's bytes, checked as UTF-8 when the reader checks text.
    fn text(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        let start = self.pos;
        let bytes = self.take(len)?;
        if self.check_text {
            utf8(bytes, what, start)?;
        }
        Ok(bytes)
    }

    fn message(&mut self) -> Result<RawMessage<'a>, DecodeError> {
        let start = self.pos;
        let station_len = self.u8()? as usize;
        if station_len == 0 || station_len > MAX_STATION_LEN {
            return Err(self.malformed(format!("station name length {station_len}")));
        }
        let name = self.take(station_len)?;
        let bad_station = || DecodeError::Malformed {
            offset: start,
            reason: "station name breaks the station name rules".into(),
        };
        // Messages of one station follow each other: its name is checked once.
        let station = if name == self.checked_station.as_bytes() {
            self.checked_station
        } else {
            let station = std::str::from_utf8(name).map_err(|_| bad_station())?;
            StationName::check(station).map_err(|_| bad_station())?;
            self.checked_station = station;
            station
        };
        let seq = self.u64()?;
        if let Err(e) = Seq::new(seq) {
            return Err(self.malformed(e.to_string()));
        }
        let timestamp = Timestamp(i64::from_le_bytes(self.array()?));
        let presence = self.u8()?;
        if presence & !(PRESENCE_ID | PRESENCE_SUBJECT) != 0 {
            return Err(self.malformed(format!("unknown presence bits {presence:#04x}")));
        }
        let id = if presence & PRESENCE_ID != 0 {
            Some(self.text("id")?)
        } else {
            None
        };
        let subject = if presence & PRESENCE_SUBJECT != 0 {
            Some(self.text("subject")?)
        } else {
            None
        };
        let header_count = self.u32()? as usize;
        // Each header takes at least 8 bytes: refuse counts the body cannot hold.
        if header_count > (self.buf.len() - self.pos) / 8 {
            return Err(self.malformed(format!("header count {header_count} cannot fit")));
        }
        let headers_start = self.pos;
        for _ in 0..header_count {
            self.text("header name")?;
            self.text("header value")?;
        }
        let headers = &self.buf[headers_start..self.pos];
        let payload_len = self.u32()? as usize;
        let payload = self.take(payload_len)?;
        Ok(RawMessage {
            station,
            seq,
            timestamp,
            id,
            subject,
            headers,
            header_count,
            payload,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::MAX_SEQ;
    use proptest::prelude::*;

    /// Arbitrary messages, for this module's and the WAL's property tests.
    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        let station = "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,20}"
            .prop_map(|s| StationName::new(s).expect("generated from the allowed alphabet"));
        let header = (".{0,8}", ".{0,12}").prop_map(|(n, v)| Header::new(n, v));
        (
            station,
            0..=MAX_SEQ,
            any::<i64>(),
            proptest::option::of(".{0,10}"),
            proptest::option::of("[a-z.>*]{0,16}"),
            proptest::collection::vec(header, 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(station, seq, ts, id, subject, headers, payload)| Message {
                    station,
                    seq,
                    timestamp: Timestamp(ts),
                    id,
                    subject,
                    headers,
                    payload: Bytes::from(payload),
                },
            )
    }

    fn sample() -> Message {
        Message {
            station: StationName::new("orders").unwrap(),
            seq: 7,
            timestamp: Timestamp(1_700_000_000_000_000),
            id: Some("m-7".into()),
            subject: None,
            headers: vec![Header::new("K", "v"), Header::new("k", "v2")],
            payload: Bytes::from_static(b"hello"),
        }
    }

    fn large(seq: u64, len: usize) -> Message {
        Message {
            seq,
            payload: Bytes::from(vec![seq as u8; len]),
            ..sample()
        }
    }

    #[test]
    fn chunked_encoding_shares_large_payloads_and_round_trips() {
        let batch = vec![large(1, 10), large(2, 4000), large(3, 511), large(4, 512)];
        let e = encode_chunks(&batch).unwrap();
        // framing, payload 2, framing, payload 4 (no trailing framing)
        assert_eq!(e.chunks.len(), 4);
        assert_eq!(
            e.chunks[1].as_ptr(),
            batch[1].payload.as_ptr(),
            "not copied"
        );
        assert_eq!(e.len, encoded_len(&batch));
        let (back, _) = decode(&Bytes::from(e.to_vec())).unwrap();
        assert_eq!(back, batch);
    }

    proptest! {
        #[test]
        fn chunked_and_contiguous_encodings_are_identical(
            batch in proptest::collection::vec(arb_message(), 0..6),
            big in proptest::collection::vec(0usize..2000, 0..6),
        ) {
            let batch: Vec<Message> = batch.into_iter().zip(big.into_iter().chain(std::iter::repeat(0)))
                .map(|(mut m, n)| { if n > 0 { m.payload = Bytes::from(vec![7u8; n]); } m })
                .collect();
            let chunks = encode_chunks(&batch).unwrap();
            let bytes = chunks.to_vec();
            prop_assert_eq!(bytes.len() as u64, chunks.len);
            prop_assert_eq!(decode(&Bytes::from(bytes)).unwrap().0, batch);
        }

        #[test]
        fn round_trips_any_batch(batch in proptest::collection::vec(arb_message(), 0..8)) {
            let bytes = encode(&batch).unwrap();
            prop_assert_eq!(bytes.len() as u64, encoded_len(&batch));
            let (back, len) = decode(&Bytes::from(bytes.clone())).unwrap();
            prop_assert_eq!(len, bytes.len() as u64);
            prop_assert_eq!(back, batch);
        }

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&Bytes::from(bytes));
        }

        #[test]
        fn a_single_flipped_bit_is_always_caught(
            batch in proptest::collection::vec(arb_message(), 1..4),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = encode(&batch).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            // Caught by the magic/version/reserved checks, the length or the CRC.
            prop_assert!(decode(&Bytes::from(bytes)).is_err());
        }

        #[test]
        fn decoder_never_panics_on_damaged_entries(
            batch in proptest::collection::vec(arb_message(), 1..4),
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode(&batch).unwrap();
            for (i, b) in damage {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let cut = cut.index(bytes.len() + 1);
            let _ = decode(&Bytes::copy_from_slice(&bytes[..cut]));
        }

        #[test]
        fn decoder_survives_bodies_with_a_forged_crc(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Valid header and CRC around arbitrary bytes: only the body parser is exercised.
            let mut bytes = MAGIC.to_vec();
            bytes.push(VERSION);
            bytes.extend_from_slice(&[0, 0, 0]);
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            let crc = crc_of(&bytes[4..12], &body);
            bytes.extend_from_slice(&crc.to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = decode(&Bytes::from(bytes));
        }
    }

    #[test]
    fn every_prefix_of_an_entry_is_truncated() {
        let bytes = encode(&[sample(), sample()]).unwrap();
        for cut in 0..bytes.len() {
            let r = decode(&Bytes::copy_from_slice(&bytes[..cut]));
            assert!(
                matches!(r, Err(DecodeError::Truncated { .. })),
                "cut {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn a_flipped_body_bit_is_a_crc_mismatch() {
        let mut bytes = encode(&[sample()]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        assert!(matches!(
            decode(&Bytes::from(bytes)),
            Err(DecodeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = encode(&[sample()]).unwrap();
        assert_eq!(&bytes[..4], b"STRE");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[5..8], &[0, 0, 0]);
        let body_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        assert_eq!(body_len as usize, bytes.len() - HEADER_LEN);
        // count = 1, then the station length and name.
        assert_eq!(&bytes[16..20], &1u32.to_le_bytes());
        assert_eq!(bytes[20], 6);
        assert_eq!(&bytes[21..27], b"orders");
        assert_eq!(&bytes[27..35], &7u64.to_le_bytes());
    }

    #[test]
    fn unknown_versions_and_seqs_are_refused() {
        let mut bytes = encode(&[sample()]).unwrap();
        bytes[4] = 2;
        assert_eq!(
            decode(&Bytes::from(bytes)),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut m = sample();
        m.seq = MAX_SEQ + 1;
        assert_eq!(encode(&[m]), Err(EncodeError::SeqOutOfRange(MAX_SEQ + 1)));
    }

    #[test]
    fn an_empty_batch_round_trips() {
        let bytes = encode(&[]).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        assert_eq!(decode(&Bytes::from(bytes)).unwrap().0, vec![]);
    }
}
