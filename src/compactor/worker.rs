//! Carries out a [`SegmentPlan`]: encodes each planned file on a blocking thread
//! and streams its bytes, row group by row group, into an [`ObjectUpload`] on
//! the async side. A bounded channel between the two keeps memory bounded: the
//! encoder waits while the store is slow, and at most a few row groups plus the
//! upload's buffer are held besides the segment's messages.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::sync::mpsc;

use super::plan::{FilePlan, SegmentPlan};
use super::upload::{ObjectUpload, UploadError, UploadOptions};
use crate::columnar::{ColumnarError, FileEncoder, FileSummary, ParquetOptions};
use crate::layout::DataKey;
use crate::message::Message;

/// Rows handed to the encoder per call: small enough that one Arrow batch
/// stays a few MiB, large enough to amortise the call.
const WRITE_ROWS: usize = 4096;
/// Payload bytes handed to the encoder per call.
const WRITE_BYTES: usize = 4 << 20;
/// Encoded pieces waiting between the encoder thread and the uploader.
const CHANNEL_PIECES: usize = 2;

/// A file written and uploaded.
#[derive(Debug, Clone)]
pub(crate) struct WrittenFile {
    pub(crate) key: DataKey,
    pub(crate) summary: FileSummary,
    pub(crate) bytes: u64,
    pub(crate) sha256: [u8; 32],
}

/// Why writing a segment's files failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    Encode(ColumnarError),
    Upload(UploadError),
    /// The encoder produced something that contradicts the plan, or panicked.
    Internal(String),
}

/// One message from the encoder thread to the uploader.
enum Piece {
    /// The next bytes of the current file.
    Bytes(Bytes),
    /// The current file is complete.
    End(FileSummary),
}

/// Encodes and uploads every file of `plan` under `prefix`, in plan order.
pub(crate) async fn write_files(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    plan: SegmentPlan,
    parquet: &ParquetOptions,
    upload: UploadOptions,
) -> Result<Vec<WrittenFile>, WriteError> {
    let SegmentPlan {
        messages, files, ..
    } = plan;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let (tx, mut rx) = mpsc::channel(CHANNEL_PIECES);
    let encoder = {
        let files = files.clone();
        let parquet = parquet.clone();
        tokio::task::spawn_blocking(move || encode_all(&messages, &files, &parquet, &tx))
    };

    let mut written = Vec::with_capacity(files.len());
    let mut current: Option<ObjectUpload> = None;
    let mut failure: Option<WriteError> = None;
    while let Some(piece) = rx.recv().await {
        let Some(file) = files.get(written.len()) else {
            failure = Some(WriteError::Internal(
                "the encoder produced more files than planned".into(),
            ));
            break;
        };
        let up = current.get_or_insert_with(|| {
            ObjectUpload::new(Arc::clone(store), file.key.path(prefix), upload)
        });
        match piece {
            Piece::Bytes(b) => {
                if let Err(e) = up.write(b).await {
                    failure = Some(WriteError::Upload(e));
                    break;
                }
            }
            Piece::End(summary) => {
                if let Some(why) = contradiction(file, &summary) {
                    failure = Some(WriteError::Internal(why));
                    break;
                }
                let Some(up) = current.take() else { continue };
                match up.finish().await {
                    Ok(done) => written.push(WrittenFile {
                        key: file.key.clone(),
                        summary,
                        bytes: done.bytes,
                        sha256: done.sha256,
                    }),
                    Err(e) => {
                        failure = Some(WriteError::Upload(e));
                        break;
                    }
                }
            }
        }
    }
    // Closing the channel makes a still-running encoder stop at its next send.
    drop(rx);
    if let Some(up) = current.take() {
        up.abort().await;
    }
    let encoded = encoder
        .await
        .map_err(|e| WriteError::Internal(format!("the Parquet encoder thread failed: {e}")));
    if let Some(f) = failure {
        return Err(f);
    }
    match encoded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(WriteError::Encode(e)),
        Err(e) => return Err(e),
    }
    if written.len() != files.len() {
        return Err(WriteError::Internal(format!(
            "{} of {} planned files were written",
            written.len(),
            files.len()
        )));
    }
    Ok(written)
}

/// Why an encoded file's summary does not match its plan, if it does not.
fn contradiction(file: &FilePlan, s: &FileSummary) -> Option<String> {
    let k = &file.key;
    (s.rows != file.len() as u64 || s.first_seq != k.first_seq || s.last_seq != k.last_seq).then(
        || {
            format!(
                "file {}-{} of {} was planned with {} rows but encoded {} rows, seqs {}-{}",
                k.first_seq,
                k.last_seq,
                k.station,
                file.len(),
                s.rows,
                s.first_seq,
                s.last_seq
            )
        },
    )
}

/// The encoder thread: every file in order, its bytes as row groups complete.
/// Returns early (Ok) when the uploader hung up, which only happens after the
/// uploader has recorded its own failure.
fn encode_all(
    messages: &[Message],
    files: &[FilePlan],
    opts: &ParquetOptions,
    tx: &mpsc::Sender<Piece>,
) -> Result<(), ColumnarError> {
    for file in files {
        let rows = &messages[file.rows.clone()];
        let mut enc = FileEncoder::new(
            &file.key.station,
            file.key.first_seq,
            file.key.last_seq,
            opts,
        )?;
        let mut start = 0;
        while start < rows.len() {
            let end = chunk_end(rows, start);
            enc.write(&rows[start..end])?;
            start = end;
            let bytes = enc.take_bytes();
            if !bytes.is_empty() && tx.blocking_send(Piece::Bytes(bytes)).is_err() {
                return Ok(());
            }
        }
        let (rest, summary) = enc.finish()?;
        if !rest.is_empty() && tx.blocking_send(Piece::Bytes(rest)).is_err() {
            return Ok(());
        }
        if tx.blocking_send(Piece::End(summary)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// End of the next write chunk starting at `start`: at most [`WRITE_ROWS`] rows
/// and about [`WRITE_BYTES`] of payload, at least one row.
fn chunk_end(rows: &[Message], start: usize) -> usize {
    let mut bytes = 0;
    let mut end = start;
    while end < rows.len() && end - start < WRITE_ROWS && (end == start || bytes < WRITE_BYTES) {
        bytes += rows[end].payload.len();
        end += 1;
    }
    end
}
