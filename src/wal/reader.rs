//! Reading a sealed segment without holding it in memory.
//!
//! [`index`] reads the file in chunks and checks every entry (header, CRC and
//! format: the damage [`super::segment::scan`] finds, reported at the same
//! offset with the same reason) but keeps, per message, only what planning
//! needs and where its bytes lie ([`IndexedMessage`]). [`SegmentFile::read`]
//! then reads back the messages of one group (a row group) with a few large
//! reads, so the compactor holds one row group's messages at a time instead of
//! the whole segment.
//!
//! The second read is not CRC-checked again: a sealed segment does not change
//! while the WAL owns its directory, and the first pass checked the bytes the
//! second one reads (from the page cache, as a rule). It still decodes each
//! message by the format's rules and compares its station, seq and timestamp
//! with the index, so a file replaced or damaged in between is reported as
//! corrupt rather than archived; its text is left as bytes for the encoder,
//! which checks it as UTF-8 a column at a time.
//!
//! Recovery checks the segments it must read in full with the same chunked
//! pass ([`walk`]), keeping only sums of their messages.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::entry::{self, EntryHeader, RawMessage};
use super::error::io_at;
use super::segment::{check_header, Expect, StationLoad, HEADER_LEN};
use super::WalError;
use crate::message::{Message, MessageView, StationName, Timestamp};

/// Bytes read at once while indexing and reading back (an entry larger than
/// this is read whole).
const CHUNK: usize = 1 << 20;

/// Back-to-back rows of at least this many bytes are read straight into
/// their buffer; shorter runs are copied out of reads of this size.
const DIRECT_RUN: usize = 64 << 10;

/// Where one message of a sealed segment lies, and what planning needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedMessage {
    /// Its station (one shared name per station of the segment).
    pub station: Arc<StationName>,
    /// Its sequence.
    pub seq: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Byte offset of its encoding in the file.
    pub offset: u64,
    /// Length of its encoding.
    pub len: u32,
    /// Bytes of payload, id, subject and headers (8 more per header): what
    /// cuts row groups by size.
    pub data_len: u32,
}

/// A sealed segment's file, open for reading back indexed messages.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    file: File,
}

/// Indexes the sealed segment at `path`: every message in log order. With
/// `loads`, also adds every message to the per-station loads (for a segment
/// whose breakdown is not known yet: sealed at a clean close, or covered by
/// the snapshot at open).
///
/// # Errors
/// [`WalError::Corrupt`] at the first damage (as [`super::Wal::read_segment`]
/// reports it), [`WalError::Io`].
pub(crate) fn index(
    path: &Path,
    expect: Expect,
    mut loads: Option<&mut BTreeMap<StationName, StationLoad>>,
) -> Result<(SegmentFile, Vec<IndexedMessage>), WalError> {
    let mut messages: Vec<IndexedMessage> = Vec::new();
    let mut stations = entry::SharedStations::default();
    let walked = walk(path, expect, |body_at, m, at| {
        let station = stations.get(m.station);
        if let Some(loads) = loads.as_deref_mut() {
            StationLoad::count(loads, &station, m.payload().len() as u64, m.timestamp);
        }
        messages.push(IndexedMessage {
            station,
            seq: m.seq,
            timestamp: m.timestamp,
            offset: body_at + at.start as u64,
            // Below 4 GiB: parts of a body whose length is a u32.
            len: at.len() as u32,
            data_len: m.data_len() as u32,
        });
    })?;
    Ok((
        SegmentFile {
            path: path.to_path_buf(),
            file: walked.file,
        },
        messages,
    ))
}

/// What [`walk`] went through: a segment with no damage.
#[derive(Debug)]
pub(crate) struct Walked {
    /// The segment's file, open for reading.
    pub(crate) file: File,
    /// Its length in bytes.
    pub(crate) len: u64,
    /// Entries in it.
    pub(crate) entries: u64,
}

/// Reads the segment at `path` in chunks of [`CHUNK`] bytes, checking its
/// header and every entry (header, CRC and format, as
/// [`super::segment::scan`] does), and calls `each` with every message in log
/// order: the byte offset of its entry's body in the file, the message, and
/// its byte range in that body.
///
/// `each` sees an entry's first messages before the rest of that entry is
/// checked: when the walk fails, what it gathered may include messages of the
/// damaged entry.
///
/// # Errors
/// [`WalError::Corrupt`] at the first damage, at the offset and with the
/// reason [`super::segment::scan`] gives; [`WalError::Io`].
pub(crate) fn walk(
    path: &Path,
    expect: Expect,
    mut each: impl FnMut(u64, &entry::RawMessage<'_>, Range<usize>),
) -> Result<Walked, WalError> {
    let file = File::open(path).map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    let corrupt = |offset: u64, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let mut window = Window::new(&file, len, CHUNK);
    let head = window
        .get(0, HEADER_LEN.min(len as usize))
        .map_err(io_at(path))?;
    check_header(head, expect).map_err(|e| corrupt(0, e.to_string()))?;

    let mut entries = 0u64;
    let mut pos = HEADER_LEN as u64;
    while pos < len {
        let left = len - pos;
        let head = window
            .get(pos, entry::HEADER_LEN.min(left as usize))
            .map_err(io_at(path))?;
        let header = EntryHeader::parse(head).map_err(|e| corrupt(pos, e.to_string()))?;
        let elen = header.entry_len();
        if elen > left {
            // What `entry::check` says of an entry running past the end.
            let e = entry::DecodeError::Truncated {
                needed: elen,
                available: left,
            };
            return Err(corrupt(pos, e.to_string()));
        }
        let bytes = window.get(pos, elen as usize).map_err(io_at(path))?;
        entry::check(bytes).map_err(|e| corrupt(pos, e.to_string()))?;
        let body_at = pos + entry::HEADER_LEN as u64;
        entry::walk_body(&bytes[entry::HEADER_LEN..], |m, at| {
            each(body_at, &m, at);
            Ok(())
        })
        .map_err(|e| corrupt(pos, e.to_string()))?;
        entries += 1;
        pos += elen;
    }
    drop(window);
    Ok(Walked { file, len, entries })
}

impl SegmentFile {
    /// The messages `rows` index, in that order, decoded from the file:
    /// their bytes are read in file order, in reads of about a megabyte, into
    /// one buffer that their payloads share.
    ///
    /// # Errors
    /// [`WalError::Corrupt`] when a message no longer decodes as indexed (the
    /// file changed since), [`WalError::Io`].
    pub fn read(&self, rows: &[IndexedMessage]) -> Result<Vec<Message>, WalError> {
        let (at, total) = places(rows);
        let mut buf = Buffer::zeroed(total).map_err(io_at(&self.path))?;
        self.copy(rows, &at, buf.as_mut())?;
        let buf = buf.into_bytes();
        // Their text is checked as each becomes a `Message`.
        let views = self.check(rows, &at, &buf)?;
        views
            .into_iter()
            .zip(rows)
            .map(|(m, r)| {
                m.into_message((*r.station).clone(), &buf)
                    .map_err(|e| self.changed(r, e.to_string()))
            })
            .collect()
    }

    /// The messages `rows` index, in that order, read in place into `buf`
    /// (one buffer kept from group to group) and checked as [`Self::read`]
    /// checks them, without building a [`Message`] of each, and except for
    /// their text: the encoder checks it as UTF-8 a column at a time
    /// ([`entry::MessagesIn::new`]).
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn read_into<'b>(
        &self,
        rows: &[IndexedMessage],
        buf: &'b mut GroupBuffer,
    ) -> Result<Vec<RawMessage<'b>>, WalError> {
        let (at, total) = places(rows);
        let bytes = buf.take(total).map_err(io_at(&self.path))?;
        self.copy(rows, &at, bytes)?;
        self.check(rows, &at, bytes)
    }

    /// The messages `rows` index, each read from its place `at` in `bytes`
    /// by the format's rules (text left unchecked) and compared with the index.
    fn check<'b>(
        &self,
        rows: &[IndexedMessage],
        at: &[usize],
        bytes: &'b [u8],
    ) -> Result<Vec<RawMessage<'b>>, WalError> {
        let mut reader = entry::MessagesIn::new(bytes);
        let mut messages = Vec::with_capacity(rows.len());
        for (r, &start) in rows.iter().zip(at) {
            let m = reader
                .at(start..start + r.len as usize)
                .map_err(|e| self.changed(r, e.to_string()))?;
            if m.seq != r.seq || m.timestamp != r.timestamp || m.station != r.station.as_str() {
                return Err(self.changed(
                    r,
                    "the message changed since the segment was checked".into(),
                ));
            }
            messages.push(m);
        }
        Ok(messages)
    }

    /// The error for the message `r` indexes, whose bytes no longer read as
    /// indexed: [`WalError::Corrupt`] at its offset.
    pub fn changed(&self, r: &IndexedMessage, reason: String) -> WalError {
        WalError::Corrupt {
            path: self.path.clone(),
            offset: r.offset,
            reason,
        }
    }

    /// Copies the bytes of `rows` from the file to `dest`, each at its place
    /// `at`, reading the file in order. Rows that lie back to back both in the
    /// file and in `dest` (the messages of one entry, in the usual case) are
    /// one run: a run of [`DIRECT_RUN`] bytes or more is read straight into
    /// `dest`; shorter ones are copied out of reads of [`DIRECT_RUN`] bytes.
    fn copy(&self, rows: &[IndexedMessage], at: &[usize], dest: &mut [u8]) -> Result<(), WalError> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_unstable_by_key(|&i| rows[i].offset);
        let len = self.file.metadata().map_err(io_at(&self.path))?.len();
        // Runs shorter than DIRECT_RUN come here: reads of that size serve
        // several close together, and an isolated one reads little more than it needs.
        let mut window = Window::new(&self.file, len, DIRECT_RUN);
        let mut k = 0;
        while k < order.len() {
            let first = order[k];
            let (offset, start) = (rows[first].offset, at[first]);
            let mut end = start + rows[first].len as usize;
            k += 1;
            while let Some(&i) = order.get(k) {
                if at[i] != end || rows[i].offset != offset + (end - start) as u64 {
                    break;
                }
                end += rows[i].len as usize;
                k += 1;
            }
            let dest = &mut dest[start..end];
            if dest.len() >= DIRECT_RUN {
                self.file
                    .read_exact_at(dest, offset)
                    .map_err(io_at(&self.path))?;
            } else {
                let src = window.get(offset, dest.len()).map_err(io_at(&self.path))?;
                dest.copy_from_slice(src);
            }
        }
        Ok(())
    }
}

/// Where each of `rows` goes in a buffer that holds them one after another,
/// and the buffer's length.
fn places(rows: &[IndexedMessage]) -> (Vec<usize>, usize) {
    let mut at = Vec::with_capacity(rows.len());
    let mut total = 0usize;
    for r in rows {
        at.push(total);
        total += r.len as usize;
    }
    (at, total)
}

/// A buffer that group after group of messages is read into by
/// [`SegmentFile::read_into`]: kept between groups, so its memory is touched
/// once, not for every group; grown when a group needs more. From [`CHUNK`]
/// up it is an anonymous mapping (see [`Buffer`]), returned to the kernel
/// when the `GroupBuffer` is dropped.
#[derive(Debug, Default)]
pub struct GroupBuffer {
    buf: Option<Buffer>,
}

impl GroupBuffer {
    /// The first `len` bytes of the buffer (contents unspecified), grown to
    /// a whole number of [`CHUNK`]s first when it is shorter.
    fn take(&mut self, len: usize) -> std::io::Result<&mut [u8]> {
        let short = self.buf.as_mut().is_none_or(|b| b.as_mut().len() < len);
        if short {
            self.buf = None;
            self.buf = Some(Buffer::zeroed(len.div_ceil(CHUNK).max(1) * CHUNK)?);
        }
        match self.buf.as_mut() {
            Some(b) => Ok(&mut b.as_mut()[..len]),
            None => Ok(&mut []),
        }
    }
}

/// The buffer a group's messages are read into ([`SegmentFile::read`]: their
/// payloads share it; [`GroupBuffer`]: kept from group to group).
///
/// Buffers of several MiB allocated and freed on many threads come, in
/// glibc's allocator, from each thread's arena once its dynamic mmap
/// threshold has risen past them, and the arenas keep the freed memory
/// resident: compacting a backlog with a fresh row-group buffer per row group
/// held ~100 MiB more resident than live. From [`CHUNK`] up, a buffer is
/// therefore an anonymous mapping of its own, returned to the kernel when it
/// (or the last payload slicing it) is dropped.
#[derive(Debug)]
enum Buffer {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// `len` zero bytes: mapped straight from the kernel from [`CHUNK`] up.
    fn zeroed(len: usize) -> std::io::Result<Buffer> {
        if len >= CHUNK {
            return memmap2::MmapMut::map_anon(len).map(Buffer::Mapped);
        }
        Ok(Buffer::Heap(vec![0; len]))
    }

    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Mapped(m) => m,
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Buffer::Heap(v) => Bytes::from(v),
            Buffer::Mapped(m) => Bytes::from_owner(m),
        }
    }
}

/// A forward-moving window over a file: the bytes last read, and where they start.
///
/// Each refill reads `read` bytes (more for a larger request) into a buffer
/// the window keeps: it is zeroed once, when it grows, not at every read.
struct Window<'a> {
    file: &'a File,
    len: u64,
    read: usize,
    start: u64,
    filled: usize,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    /// A window over the `len` bytes of `file` that reads `read` bytes at a time.
    fn new(file: &'a File, len: u64, read: usize) -> Self {
        Window {
            file,
            len,
            read,
            start: 0,
            filled: 0,
            buf: Vec::new(),
        }
    }

    /// Bytes `at..at + n` of the file (the caller keeps them inside the file).
    fn get(&mut self, at: u64, n: usize) -> std::io::Result<&[u8]> {
        let end = at + n as u64;
        if at < self.start || end > self.start + self.filled as u64 {
            let want = n.max(self.read).min((self.len - at) as usize).max(n);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.filled = 0;
            self.file.read_exact_at(&mut self.buf[..want], at)?;
            self.start = at;
            self.filled = want;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::{scan, SegmentHeader, SegmentId};

    const WAL: [u8; 16] = [7; 16];

    fn msg(station: &str, seq: u64, payload_len: usize) -> Message {
        Message {
            station: StationName::new(station).unwrap(),
            seq,
            timestamp: Timestamp(seq as i64 * 10),
            id: (seq % 2 == 0).then(|| format!("id-{seq}")),
            subject: Some("orders.created".into()),
            headers: vec![crate::message::Header::new("Content-Type", "json")],
            payload: Bytes::from(vec![seq as u8; payload_len]),
        }
    }

    /// A segment file of `entries` entries of 3 messages (one large), in `dir`.
    fn write_segment(dir: &Path, entries: u64) -> (PathBuf, Vec<Message>) {
        segment_of(
            dir,
            (0..entries)
                .map(|e| {
                    vec![
                        msg("a", e * 3 + 1, 10),
                        msg("b", e * 3 + 2, 700),
                        msg("a", e * 3 + 3, if e == 2 { CHUNK + 5 } else { 0 }),
                    ]
                })
                .collect(),
        )
    }

    /// A segment file of one entry per batch, in `dir`, and its messages in
    /// log order.
    fn segment_of(dir: &Path, batches: Vec<Vec<Message>>) -> (PathBuf, Vec<Message>) {
        let mut bytes = SegmentHeader {
            wal_id: WAL,
            id: SegmentId(3),
        }
        .encode()
        .to_vec();
        let mut all = Vec::new();
        for batch in batches {
            bytes.extend(entry::encode(&batch).unwrap());
            all.extend(batch);
        }
        let path = dir.join("seg");
        std::fs::write(&path, &bytes).unwrap();
        (path, all)
    }

    fn expect() -> Expect {
        Expect {
            wal_id: Some(WAL),
            id: SegmentId(3),
        }
    }

    #[test]
    fn indexed_messages_read_back_as_written_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, all) = write_segment(dir.path(), 5);
        let (file, index) = index(&path, expect(), None).unwrap();
        assert_eq!(index.len(), all.len());
        for (i, m) in index.iter().zip(&all) {
            assert_eq!((i.station.as_str(), i.seq), (m.station.as_str(), m.seq));
            // Row groups cut from the index are the ones cut from the messages.
            assert_eq!(
                i.data_len as usize,
                crate::columnar::message_data_len(m),
                "{m:?}"
            );
        }
        assert_eq!(file.read(&index).unwrap(), all);
        // Reversed, and a subset: each row as indexed.
        let mut rev = index.clone();
        rev.reverse();
        let mut want = all.clone();
        want.reverse();
        assert_eq!(file.read(&rev).unwrap(), want);
        assert_eq!(file.read(&index[4..7]).unwrap(), all[4..7].to_vec());
        assert!(file.read(&[]).unwrap().is_empty());

        // Read in place, one buffer for every read: small, then large (the
        // buffer grows), then small again (stale bytes after the group).
        let mut buf = GroupBuffer::default();
        for (rows, want) in [
            (&index[..2], &all[..2]),
            (&index[..], &all[..]),
            (&rev[..], &want[..]),
            (&index[4..7], &all[4..7]),
            (&index[..0], &all[..0]),
        ] {
            let views = file.read_into(rows, &mut buf).unwrap();
            let owned: Vec<Message> = views.iter().map(owned).collect();
            assert_eq!(owned, want);
        }
    }

    #[test]
    fn back_to_back_rows_are_read_as_runs() {
        let dir = tempfile::tempdir().unwrap();
        // Two entries of 300 messages of 400 bytes: runs of ~130 KB each,
        // above DIRECT_RUN.
        let (path, all) = segment_of(
            dir.path(),
            (0..2u64)
                .map(|e| (1..=300).map(|i| msg("a", e * 300 + i, 400)).collect())
                .collect(),
        );
        let (file, index) = index(&path, expect(), None).unwrap();
        let (at, _) = places(&index);
        assert!(
            at[300] - at[0] >= DIRECT_RUN,
            "the test needs a run read directly"
        );

        let mut buf = GroupBuffer::default();
        let mut check = |rows: &[IndexedMessage], want: Vec<Message>| {
            assert_eq!(file.read(rows).unwrap(), want);
            let views = file.read_into(rows, &mut buf).unwrap();
            assert_eq!(views.iter().map(owned).collect::<Vec<_>>(), want);
        };
        // Both entries whole (two direct runs), across the entry boundary.
        check(&index, all.clone());
        check(&index[250..350], all[250..350].to_vec());
        // A gap splits a run; a short tail is copied out of a chunk read.
        let gapped: Vec<IndexedMessage> = index[..200]
            .iter()
            .chain(&index[201..230])
            .cloned()
            .collect();
        let want: Vec<Message> = all[..200].iter().chain(&all[201..230]).cloned().collect();
        check(&gapped, want);
        // Out of file order: every row is a run of its own.
        let mut rev = index.clone();
        rev.reverse();
        let mut want = all.clone();
        want.reverse();
        check(&rev, want);
    }

    /// The message a view shows.
    fn owned(v: &RawMessage<'_>) -> Message {
        use crate::message::MessageView;
        let mut headers = Vec::new();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        v.for_each_header(|n, val| headers.push(crate::message::Header::new(text(n), text(val))));
        assert_eq!(v.header_count(), headers.len());
        Message {
            station: StationName::new(v.station()).unwrap(),
            seq: v.seq(),
            timestamp: v.timestamp(),
            id: v.id().map(text),
            subject: v.subject().map(text),
            headers,
            payload: Bytes::copy_from_slice(v.payload()),
        }
    }

    #[test]
    fn damage_is_reported_where_and_as_a_whole_scan_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        // Two entries: no message larger than a read chunk, a small file.
        let (path, _) = write_segment(dir.path(), 2);
        let clean = std::fs::read(&path).unwrap();
        // Every 7th byte flipped, and every 5th cut of the file.
        let mut cases: Vec<Vec<u8>> = (0..clean.len())
            .step_by(7)
            .map(|i| {
                let mut b = clean.clone();
                b[i] ^= 0x10;
                b
            })
            .collect();
        cases.extend((0..clean.len()).step_by(5).map(|n| clean[..n].to_vec()));
        for bytes in cases {
            std::fs::write(&path, &bytes).unwrap();
            let whole = scan(&Bytes::from(bytes.clone()), expect());
            let Some(damage) = whole.damage else {
                // A cut between entries: what is left indexes whole.
                let (_, index) = index(&path, expect(), None).unwrap();
                assert_eq!(index.len() as u64, whole.messages());
                continue;
            };
            match index(&path, expect(), None) {
                Err(WalError::Corrupt { offset, reason, .. }) => {
                    assert_eq!((offset, reason), (damage.offset, damage.reason));
                }
                other => panic!("{other:?} where scan found {damage:?}"),
            }
        }
    }

    #[test]
    fn text_changed_after_indexing_is_caught_by_the_encoder_or_by_read() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_segment(dir.path(), 1);
        let (file, index) = index(&path, expect(), None).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The first message's header value "json", its first byte made 0xff.
        let m = &index[0];
        let range = m.offset as usize..(m.offset + u64::from(m.len)) as usize;
        let at = range.start
            + bytes[range]
                .windows(4)
                .position(|w| w == b"json")
                .expect("header value");
        bytes[at] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = file.read(&index[..1]).unwrap_err();
        assert!(
            matches!(&e, WalError::Corrupt { offset, reason, .. }
                if *offset == m.offset && reason.contains("header value is not UTF-8")),
            "{e}"
        );
        // Read in place, text is left to the encoder, which refuses it.
        let mut buf = GroupBuffer::default();
        let views = file.read_into(&index[..2], &mut buf).unwrap();
        let e = crate::columnar::to_record_batch(&views).unwrap_err();
        assert!(
            matches!(
                &e,
                crate::columnar::ColumnarError::NotUtf8 {
                    what: "header value",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_file_changed_after_indexing_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_segment(dir.path(), 2);
        let (file, index) = index(&path, expect(), None).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The first message's seq.
        let at = index[0].offset as usize + 2;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = file.read(&index[..1]).unwrap_err();
        assert!(
            matches!(&e, WalError::Corrupt { offset, .. } if *offset == index[0].offset),
            "{e}"
        );
        let mut buf = GroupBuffer::default();
        let e = file.read_into(&index[..2], &mut buf).unwrap_err();
        assert!(
            matches!(&e, WalError::Corrupt { offset, .. } if *offset == index[0].offset),
            "{e}"
        );
        // The second message's payload length, made one byte longer: the
        // message would run into the next one's bytes.
        let m = &index[1];
        let at = (m.offset + u64::from(m.len)) as usize - 704;
        bytes[at..at + 4].copy_from_slice(&701u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = file.read_into(&index[1..3], &mut buf).unwrap_err();
        assert!(
            matches!(&e, WalError::Corrupt { offset, reason, .. }
                if *offset == m.offset && reason.contains("does not fill")),
            "{e}"
        );
    }
}
