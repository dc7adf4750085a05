//! NDJSON output: one [`crate::ndjson::write_line`] line per message, to a file or
//! standard output. A file is confirmed (for checkpoints) only after a flush and
//! an fsync, and a resumed run first cuts the file back to the confirmed
//! length, so the file ends up with every message exactly once. Standard
//! output cannot be cut back: a run resumed into `-` repeats the lines written
//! after the last checkpoint (at most a second's worth).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::message::Message;
use crate::ndjson;

use super::sink::{Delivered, Prepared, Sink};
use super::RestoreError;

/// Output buffer size: large writes keep the export fast.
const BUFFER: usize = 1 << 20;

enum Out {
    /// A regular file: fsynced at checkpoints and cut back on resume.
    File { w: BufWriter<File>, path: PathBuf },
    /// Standard output, a pipe or a device: only flushed.
    Stream {
        w: BufWriter<Box<dyn Write + Send>>,
        path: PathBuf,
    },
}

/// Counts the bytes passed through to `inner`.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes NDJSON (see the module doc).
pub struct NdjsonSink {
    out: Out,
    /// Bytes in the output so far (including a resumed file's kept part).
    bytes: u64,
    written_last: Option<u64>,
    written: u64,
    confirmed: Delivered,
}

impl std::fmt::Debug for NdjsonSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonSink")
            .field("bytes", &self.bytes)
            .field("written", &self.written)
            .finish()
    }
}

impl NdjsonSink {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::new(
            Out::Stream {
                w: BufWriter::with_capacity(BUFFER, Box::new(std::io::stdout())),
                path: PathBuf::from("-"),
            },
            0,
        )
    }

    /// Writes to `path`: created (an existing file is truncated only with
    /// `overwrite`), or, when `resume_at` is given (a checkpoint's confirmed
    /// length), cut back to that length and appended to. A path that exists and
    /// is not a regular file (a pipe, `/dev/null`) is written like standard output.
    ///
    /// # Errors
    /// [`RestoreError::OutputExists`] when the file exists and neither
    /// `overwrite` nor `resume_at` is given; [`RestoreError::Output`] when the
    /// file cannot be opened; [`RestoreError::OutputChanged`] when it is shorter
    /// than the checkpoint says (it was changed since).
    pub fn file(
        path: &Path,
        resume_at: Option<u64>,
        overwrite: bool,
    ) -> Result<Self, RestoreError> {
        let err = |source| RestoreError::Output {
            path: path.to_path_buf(),
            source,
        };
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            let f = OpenOptions::new().write(true).open(path).map_err(err)?;
            return Ok(Self::new(
                Out::Stream {
                    w: BufWriter::with_capacity(BUFFER, Box::new(f)),
                    path: path.to_path_buf(),
                },
                0,
            ));
        }
        let file = match resume_at {
            None if overwrite => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(err)?,
            // create_new: the check and the creation are one step, so a file
            // that appears in between is not overwritten either.
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::AlreadyExists => RestoreError::OutputExists {
                        path: path.to_path_buf(),
                    },
                    _ => err(source),
                })?,
            Some(len) => {
                let mut f = OpenOptions::new().write(true).open(path).map_err(err)?;
                let actual = f.metadata().map_err(err)?.len();
                if actual < len {
                    return Err(RestoreError::OutputChanged {
                        path: path.to_path_buf(),
                        expected: len,
                        actual,
                    });
                }
                // Lines written after the last checkpoint are written again.
                f.set_len(len).map_err(err)?;
                f.seek(SeekFrom::Start(len)).map_err(err)?;
                f
            }
        };
        let start = resume_at.unwrap_or(0);
        Ok(Self::new(
            Out::File {
                w: BufWriter::with_capacity(BUFFER, file),
                path: path.to_path_buf(),
            },
            start,
        ))
    }

    fn new(out: Out, bytes: u64) -> Self {
        let is_file = matches!(out, Out::File { .. });
        Self {
            out,
            bytes,
            written_last: None,
            written: 0,
            confirmed: Delivered {
                output_bytes: is_file.then_some(bytes),
                ..Delivered::default()
            },
        }
    }

    fn io_err(&self, source: std::io::Error) -> RestoreError {
        let (Out::File { path, .. } | Out::Stream { path, .. }) = &self.out;
        RestoreError::Output {
            path: path.clone(),
            source,
        }
    }

    fn flush_and_confirm(&mut self) -> Result<Delivered, RestoreError> {
        let r = match &mut self.out {
            Out::File { w, .. } => w.flush().and_then(|()| w.get_ref().sync_data()),
            Out::Stream { w, .. } => w.flush(),
        };
        r.map_err(|e| self.io_err(e))?;
        self.confirmed.last_seq = self.written_last.or(self.confirmed.last_seq);
        self.confirmed.messages = self.written;
        if self.confirmed.output_bytes.is_some() {
            self.confirmed.output_bytes = Some(self.bytes);
        }
        Ok(self.confirmed.clone())
    }
}

#[async_trait]
impl Sink for NdjsonSink {
    async fn deliver(&mut self, m: Message, _prepared: Prepared) -> Result<(), RestoreError> {
        let mut counted = CountingWriter {
            inner: match &mut self.out {
                Out::File { w, .. } => w as &mut dyn Write,
                Out::Stream { w, .. } => w,
            },
            bytes: 0,
        };
        let r = ndjson::write_line(&m, &mut counted);
        let written = counted.bytes;
        r.map_err(|e| self.io_err(e))?;
        self.bytes += written;
        self.written += 1;
        self.written_last = Some(m.seq);
        Ok(())
    }

    async fn sync(&mut self) -> Result<Delivered, RestoreError> {
        self.flush_and_confirm()
    }

    async fn finish(&mut self) -> Result<Delivered, RestoreError> {
        self.flush_and_confirm()
    }

    fn confirmed(&self) -> Delivered {
        self.confirmed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(seq: u64) -> Message {
        Message::for_test(seq, Bytes::from_static(b"\xff\x00"))
    }

    #[tokio::test]
    async fn confirms_lengths_and_cuts_back_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonSink::file(&path, None, false).unwrap();
        sink.deliver(msg(1), Prepared::default()).await.unwrap();
        sink.deliver(msg(2), Prepared::default()).await.unwrap();
        let at = sink.sync().await.unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(at.output_bytes, Some(len));
        assert_eq!((at.last_seq, at.messages), (Some(2), 2));
        sink.deliver(msg(3), Prepared::default()).await.unwrap();
        assert_eq!(sink.confirmed().last_seq, Some(2));
        sink.finish().await.unwrap();
        drop(sink);

        let mut resumed = NdjsonSink::file(&path, Some(len), false).unwrap();
        resumed.deliver(msg(3), Prepared::default()).await.unwrap();
        resumed.finish().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: String = (1..=3).map(|s| ndjson::to_line(&msg(s)) + "\n").collect();
        assert_eq!(text, expected);

        let e = NdjsonSink::file(&path, Some(1 << 20), false).unwrap_err();
        assert!(matches!(e, RestoreError::OutputChanged { .. }), "{e}");
    }

    #[tokio::test]
    async fn an_existing_file_is_overwritten_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, b"keep me\n").unwrap();
        let e = NdjsonSink::file(&path, None, false).unwrap_err();
        assert!(matches!(e, RestoreError::OutputExists { .. }), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me\n");

        let mut sink = NdjsonSink::file(&path, None, true).unwrap();
        sink.deliver(msg(1), Prepared::default()).await.unwrap();
        sink.finish().await.unwrap();
        drop(sink);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            ndjson::to_line(&msg(1)) + "\n"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn writes_to_devices_without_fsync() {
        let mut sink = NdjsonSink::file(Path::new("/dev/null"), None, false).unwrap();
        sink.deliver(msg(1), Prepared::default()).await.unwrap();
        let at = sink.sync().await.unwrap();
        assert_eq!((at.last_seq, at.output_bytes), (Some(1), None));
    }
}
