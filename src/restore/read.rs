//! Reading one planned file: a task streams its kept row groups as record
//! batches, turns them into messages, keeps exactly the selected ones and hands
//! them over a small channel. Decoding thus runs beside publishing, and a file
//! never holds more than [`CHANNEL_CHUNKS`] chunks of [`BATCH_ROWS`] rows in memory.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use tokio::sync::mpsc;

use crate::columnar::{from_record_batch, Selection};
use crate::message::Message;
use crate::store::Archive;

use super::scan::{load_footer, PlannedFile};
use super::RestoreError;

/// Rows per decoded record batch.
pub const BATCH_ROWS: usize = 1024;

/// Decoded chunks a file may have waiting for the merge.
pub const CHANNEL_CHUNKS: usize = 2;

/// Messages of one file, ascending seq, in chunks.
pub type Chunks = BoxStream<'static, Result<Vec<Message>, RestoreError>>;

/// Starts reading `file` on its own task and returns its chunks. Dropping the
/// stream stops the task at its next send.
pub fn spawn_file_reader(archive: Archive, file: PlannedFile, sel: Selection) -> Chunks {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        if let Err(e) = read_file(archive, file, sel, &tx).await {
            // The receiver may be gone (restore stopped); nothing left to tell.
            let _ = tx.send(Err(e)).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

async fn read_file(
    archive: Archive,
    file: PlannedFile,
    sel: Selection,
    tx: &mpsc::Sender<Result<Vec<Message>, RestoreError>>,
) -> Result<(), RestoreError> {
    let path = archive.key(&file.path).to_string();
    let decode_err = |source| RestoreError::Decode {
        path: path.clone(),
        source: Box::new(source),
    };
    let metadata = match file.metadata {
        Some(m) => m,
        None => load_footer(&archive, &file.path, file.size, &file.key.station).await?,
    };
    let reader = ParquetObjectReader::new(Arc::clone(archive.store()), file.path.clone())
        .with_file_size(file.size);
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
        .with_row_groups(file.row_groups)
        .with_batch_size(BATCH_ROWS);
    if let Some(rows) = file.row_selection {
        builder = builder.with_row_selection(rows);
    }
    let mut batches = builder.build().map_err(|e| decode_err(e.into()))?;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| decode_err(e.into()))?;
        let mut msgs = from_record_batch(&file.key.station, &batch).map_err(decode_err)?;
        msgs.retain(|m| sel.contains(m));
        if msgs.is_empty() {
            continue;
        }
        if tx.send(Ok(msgs)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
