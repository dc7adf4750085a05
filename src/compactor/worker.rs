//! Turns one segment into uploaded files: a thread of its own checks and
//! indexes the segment (no payload held), plans it ([`plan_segment`]) and
//! encodes each planned file, its row groups on one thread per core, each
//! thread reading back only its row group's messages from the segment file.
//! The file's bytes stream, row group by row group, into an [`ObjectUpload`]
//! on the async side. A bounded channel between the two keeps memory bounded:
//! the encoder waits while the store is slow, and at most one row group's
//! messages and pages per encoding thread, a few encoded row groups and the
//! upload's buffer are held, besides the segment's index.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::claims::{stations_of, stored_files, HeldClaims, PlannedRange, UploadClaims};
use super::plan::{plan_segment, subtract_stored, Dropped, FilePlan, SegmentPlan, Stored};
use super::upload::{ObjectUpload, UploadOptions, Uploaded};
use crate::columnar::{
    encode_each_in_order, even_row_group_ends_by_size, ColumnarError, FileEncoder, FileSummary,
    ParquetOptions, RowGroupEncoder,
};
use crate::layout::DataKey;
use crate::message::StationName;
use crate::store::{Archive, StoreError};
use crate::wal::reader::{GroupBuffer, IndexedMessage, SegmentFile};
use crate::wal::{SegmentId, Wal, WalError};

/// Most threads encoding one segment's row groups: each holds one row group's
/// encoded pages, so this also bounds the encoder's memory.
const MAX_ENCODE_THREADS: usize = 4;
/// Encoded pieces waiting between the encoder thread and the uploader.
const CHANNEL_PIECES: usize = 2;
/// Files of a segment whose uploads complete in the background at once (each
/// holds at most `multipart_threshold` bytes, or its parts in flight).
const MAX_FINISHING: usize = 2;

/// A file written and uploaded.
#[derive(Debug, Clone)]
pub(crate) struct WrittenFile {
    pub(crate) key: DataKey,
    pub(crate) summary: FileSummary,
    pub(crate) bytes: u64,
    pub(crate) sha256: [u8; 32],
}

/// What compacting a segment's messages into files came to.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    /// Messages read from the segment.
    pub(crate) read: u64,
    /// Of which dropped as duplicates.
    pub(crate) duplicates: u64,
    /// Rows dropped because another process had already archived them (cluster).
    pub(crate) dropped: Dropped,
    /// The files stored so far, in plan order.
    files: Vec<WrittenFile>,
    /// The files after those: every byte handed to the store, the uploads
    /// completing (the single `put`, or the last parts and the multipart
    /// completion) in the background, in plan order.
    finishing: VecDeque<Finishing>,
}

/// A file whose upload completes in the background.
#[derive(Debug)]
struct Finishing {
    key: DataKey,
    summary: FileSummary,
    upload: tokio::task::JoinHandle<Result<Uploaded, StoreError>>,
}

impl Finishing {
    /// Waits for the upload to complete.
    async fn stored(self) -> Result<WrittenFile, WriteError> {
        let done = self
            .upload
            .await
            .map_err(|e| WriteError::Internal(format!("an upload task failed: {e}")))?
            .map_err(WriteError::Upload)?;
        Ok(WrittenFile {
            key: self.key,
            summary: self.summary,
            bytes: done.bytes,
            sha256: done.sha256,
        })
    }
}

impl SegmentFiles {
    /// Waits until every file of the segment is stored.
    ///
    /// # Errors
    /// The first upload that failed ([`WriteError::Upload`]).
    pub(crate) async fn stored(&mut self) -> Result<(), WriteError> {
        while let Some(f) = self.finishing.pop_front() {
            self.files.push(f.stored().await?);
        }
        Ok(())
    }

    /// The files stored so far (every one after [`SegmentFiles::stored`]),
    /// in plan order.
    pub(crate) fn files(&self) -> &[WrittenFile] {
        &self.files
    }
}

/// Why writing a segment's files failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    Read(WalError),
    Encode(ColumnarError),
    Upload(StoreError),
    /// An upload claim could not be had or was lost (cluster).
    Claim(String),
    /// The encoder produced something that contradicts the plan, or panicked.
    Internal(String),
}

/// One message from the segment thread to the uploader.
enum Piece {
    /// Cluster only: the segment is planned into these ranges; the thread
    /// waits for the stored files of their partitions.
    Planned(Vec<PlannedRange>),
    /// The segment is read and planned: these files follow, in this order.
    Plan {
        files: Vec<FilePlan>,
        read: u64,
        duplicates: u64,
        dropped: Dropped,
    },
    /// The next bytes of the current file.
    Bytes(Bytes),
    /// The current file is complete.
    End(FileSummary),
}

/// Why the segment thread stopped early.
enum ThreadError {
    Read(WalError),
    Encode(ColumnarError),
}

/// Gives the memory the allocator holds free back to the kernel, once a
/// segment is encoded: glibc's per-thread arenas otherwise keep what the
/// encoding threads freed (Arrow chunks, pages) resident, and compacting a
/// backlog would hold tens of MiB more than it uses.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim takes a plain integer (the bytes to leave at the top
    // of the heap) and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere the allocator keeps its own counsel.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// How a segment is read: its index when it was indexed ahead, and the read
/// buffers of the pass.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    /// The segment's index, being made ahead of its turn.
    pub(crate) ahead: Option<IndexAhead>,
    /// The encoding threads' read buffers.
    pub(crate) buffers: ReadBuffers,
}

/// The encoding threads' read buffers (one per thread, see
/// [`SegmentFile::read_into`]), shared by the segments of a compaction pass:
/// the next segment reuses the memory the previous one touched instead of
/// mapping and faulting in fresh buffers. Dropped with the pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadBuffers(Arc<Mutex<Vec<GroupBuffer>>>);

impl ReadBuffers {
    /// A buffer to read a row group into.
    fn take(&self) -> GroupBuffer {
        self.0
            .lock()
            .map(|mut b| b.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Gives `buf` back for the next row group.
    fn put(&self, buf: GroupBuffer) {
        if let Ok(mut b) = self.0.lock() {
            b.push(buf);
        }
    }
}

/// A segment being indexed ahead, on a thread of its own, while the segment
/// before it is encoded: [`Wal::index_segment`]'s result, once it is there.
#[derive(Debug)]
pub(crate) struct IndexAhead {
    id: SegmentId,
    dir: std::path::PathBuf,
    thread: std::thread::JoinHandle<Indexed>,
}

type Indexed = Result<(SegmentFile, Vec<IndexedMessage>), WalError>;

impl IndexAhead {
    /// Starts indexing segment `id` of `wal`.
    pub(crate) fn start(wal: &Wal, id: SegmentId) -> Option<IndexAhead> {
        let reader = wal.clone();
        let thread = std::thread::Builder::new()
            .name(format!("strata-index-{}", id.0))
            .spawn(move || reader.index_segment(id))
            // Without a thread the segment is indexed when its turn comes.
            .ok()?;
        Some(IndexAhead {
            id,
            dir: wal.dir().to_path_buf(),
            thread,
        })
    }

    /// The segment it indexes.
    pub(crate) fn id(&self) -> SegmentId {
        self.id
    }

    /// Waits for the index.
    fn wait(self) -> Indexed {
        self.thread.join().unwrap_or_else(|_| {
            Err(WalError::Io {
                path: self.dir,
                source: std::io::Error::other("the indexing thread panicked"),
            })
        })
    }
}

/// Reads segment `id`, plans it, and encodes and uploads every planned file
/// to `archive`, in plan order. With `claims` (a cluster), the segment's
/// stations are claimed first and rows already stored are left out (see
/// [`super::claims`]); the claims are released once the files are stored.
///
/// Indexing and planning run on one thread of their own, which also hands out
/// the encoded bytes. The encoding threads read a row group's messages back
/// one Arrow chunk at a time into a buffer each keeps for the pass
/// ([`ReadBuffers`]) and allocate its Arrow chunks and pages.
pub(crate) async fn compact_files(
    wal: Wal,
    id: SegmentId,
    reading: Reading,
    archive: &Archive,
    parquet: &ParquetOptions,
    upload: UploadOptions,
    claims: Option<&dyn UploadClaims>,
) -> Result<SegmentFiles, WriteError> {
    let (tx, mut rx) = mpsc::channel(CHANNEL_PIECES);
    let (stored_tx, stored_rx) = match claims {
        Some(_) => {
            let (t, r) = std::sync::mpsc::sync_channel(1);
            (Some(t), Some(r))
        }
        None => (None, None),
    };
    let thread = {
        let parquet = parquet.clone();
        std::thread::Builder::new()
            .name(format!("strata-compact-{}", id.0))
            .spawn(move || segment_thread(&wal, id, reading, &parquet, &tx, stored_rx))
            .map_err(|e| WriteError::Internal(format!("cannot start a compaction thread: {e}")))?
    };
    let mut held: Option<Box<dyn HeldClaims>> = None;
    let uploaded = match (claims, stored_tx) {
        (Some(claims), Some(stored_tx)) => {
            match claim_and_list(&mut rx, claims, archive, &mut held).await {
                Ok(Some(stored)) => {
                    // The thread waits for this; a closed channel means it stopped.
                    let _ = stored_tx.send(stored);
                    upload_pieces(&mut rx, archive, upload, held.as_deref()).await
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        }
        _ => upload_pieces(&mut rx, archive, upload, None).await,
    };
    let uploaded = match (uploaded, &held) {
        // Claims are released only once their files are stored.
        (Ok(Some(mut files)), Some(_)) => files.stored().await.map(|()| Some(files)),
        (other, _) => other,
    };
    // Closing the channel makes a still-running thread stop at its next send;
    // waiting for it keeps two segments from being in memory at once.
    drop(rx);
    if let Some(held) = held {
        held.release().await;
    }
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| WriteError::Internal(format!("cannot wait for the compaction thread: {e}")))?;
    let finished = match joined {
        Ok(result) => result,
        Err(_) => {
            return Err(WriteError::Internal(
                "the compaction thread panicked".into(),
            ))
        }
    };
    // The uploader's failure comes first: the thread only stops early because of it.
    let out = uploaded?;
    match finished {
        Err(ThreadError::Read(e)) => Err(WriteError::Read(e)),
        Err(ThreadError::Encode(e)) => Err(WriteError::Encode(e)),
        Ok(()) => out.ok_or_else(|| {
            WriteError::Internal(
                "the compaction thread stopped before every planned file was written".into(),
            )
        }),
    }
}

/// Cluster only: takes the claims on the planned stations, then lists what
/// their partitions already hold. `Ok(None)` when the thread stopped first.
async fn claim_and_list(
    rx: &mut mpsc::Receiver<Piece>,
    claims: &dyn UploadClaims,
    archive: &Archive,
    held: &mut Option<Box<dyn HeldClaims>>,
) -> Result<Option<Stored>, WriteError> {
    let Some(Piece::Planned(planned)) = rx.recv().await else {
        return Ok(None);
    };
    if planned.is_empty() {
        return Ok(Some(Stored::new()));
    }
    let got = claims
        .claim(&stations_of(&planned))
        .await
        .map_err(WriteError::Claim)?;
    let got = held.insert(got);
    // Listed while the claims are held: no other process can be uploading
    // these stations' rows now, so what is listed is all there is.
    let stored = stored_files(archive, &planned)
        .await
        .map_err(WriteError::Claim)?;
    if !got.held() {
        return Err(WriteError::Claim(
            "the upload claim lapsed while the archive was listed".into(),
        ));
    }
    Ok(Some(stored))
}

/// The async side: uploads each file as its pieces arrive. `Ok(None)` when the
/// thread stopped before every planned file was complete (its result says why).
async fn upload_pieces(
    rx: &mut mpsc::Receiver<Piece>,
    archive: &Archive,
    upload: UploadOptions,
    claims: Option<&dyn HeldClaims>,
) -> Result<Option<SegmentFiles>, WriteError> {
    let Some(Piece::Plan {
        files,
        read,
        duplicates,
        dropped,
    }) = rx.recv().await
    else {
        return Ok(None);
    };
    let lapsed = || {
        claims.is_some_and(|c| !c.held()).then(|| {
            WriteError::Claim(
                "the upload claim lapsed (NATS unreachable or this process stalled); \
                 the segment is compacted again"
                    .into(),
            )
        })
    };
    let mut written = Vec::with_capacity(files.len());
    let mut finishing = VecDeque::new();
    let mut current: Option<ObjectUpload> = None;
    let result = async {
        while let Some(piece) = rx.recv().await {
            let Some(file) = files.get(written.len() + finishing.len()) else {
                return Err(WriteError::Internal(
                    "the encoder produced more files than planned".into(),
                ));
            };
            if current.is_none() {
                if let Some(e) = lapsed() {
                    return Err(e);
                }
            }
            let up = current
                .get_or_insert_with(|| ObjectUpload::new(archive.clone(), file.key.path(), upload));
            match piece {
                Piece::Plan { .. } | Piece::Planned(_) => {
                    return Err(WriteError::Internal("the segment was planned twice".into()))
                }
                Piece::Bytes(b) => up.write(b).await.map_err(WriteError::Upload)?,
                Piece::End(summary) => {
                    if let Some(why) = contradiction(file, &summary) {
                        return Err(WriteError::Internal(why));
                    }
                    if let Some(e) = lapsed() {
                        return Err(e);
                    }
                    if let Some(up) = current.take() {
                        // The upload completes (the single put, or the last
                        // parts and the multipart completion) while the next
                        // file, or segment, is encoded; a few at most.
                        if finishing.len() == MAX_FINISHING {
                            if let Some(oldest) = finishing.pop_front() {
                                written.push(Finishing::stored(oldest).await?);
                            }
                        }
                        finishing.push_back(Finishing {
                            key: file.key.clone(),
                            summary,
                            upload: tokio::spawn(up.finish()),
                        });
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    if let Some(up) = current.take() {
        // A file cut short (failure, or the thread stopped): never leave a
        // multipart upload behind.
        up.abort().await;
    }
    result?;
    if written.len() + finishing.len() != files.len() {
        // The thread stopped early; its own result says why.
        return Ok(None);
    }
    Ok(Some(SegmentFiles {
        read,
        duplicates,
        dropped,
        files: written,
        finishing,
    }))
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

/// The segment thread: reads and plans the segment (in a cluster, then
/// drops what `stored` says is archived already), then encodes every file
/// in order, handing out its bytes as row groups complete. Returns early (Ok)
/// when the uploader hung up, which it only does after a failure of its own.
fn segment_thread(
    wal: &Wal,
    id: SegmentId,
    reading: Reading,
    opts: &ParquetOptions,
    tx: &mpsc::Sender<Piece>,
    stored: Option<std::sync::mpsc::Receiver<Stored>>,
) -> Result<(), ThreadError> {
    // The segment is checked and indexed here; its messages are read back
    // one row group at a time by the encoding threads.
    let (file, index) = match reading.ahead {
        Some(ahead) => ahead.wait(),
        None => wal.index_segment(id),
    }
    .map_err(ThreadError::Read)?;
    let read = index.len() as u64;
    let mut plan = plan_segment(index);
    let mut dropped = Dropped::new();
    if let Some(stored) = stored {
        let ranges = plan
            .files
            .iter()
            .map(|f| PlannedRange {
                station: f.key.station.clone(),
                hour: f.key.hour,
                first_seq: f.key.first_seq,
                last_seq: f.key.last_seq,
            })
            .collect();
        if tx.blocking_send(Piece::Planned(ranges)).is_err() {
            return Ok(());
        }
        let Ok(stored) = stored.recv() else {
            return Ok(());
        };
        (plan, dropped) = subtract_stored(plan, &stored);
    }
    let planned = Piece::Plan {
        files: plan.files.clone(),
        read,
        duplicates: plan.duplicates as u64,
        dropped,
    };
    if tx.blocking_send(planned).is_err() {
        return Ok(());
    }
    let encoded = encode_all(&plan, &file, opts, &reading.buffers, tx);
    clean_up_beside(plan, file);
    encoded
}

/// Drops a finished segment's plan and file and gives the memory the
/// allocator holds free back to the kernel on a thread of its own, so the
/// next segment starts meanwhile (both take a few milliseconds: a reference
/// count per message, and the allocator's walk over its arenas).
fn clean_up_beside(plan: SegmentPlan<IndexedMessage>, file: SegmentFile) {
    let cleanup = move || {
        drop(plan);
        drop(file);
        release_free_memory();
    };
    // Without a thread the plan and file are dropped here, and the free
    // memory stays with the allocator until the next segment's clean-up.
    if let Err(e) = std::thread::Builder::new()
        .name("strata-release".into())
        .spawn(cleanup)
    {
        tracing::debug!(error = %e, "no thread for the clean-up: done in turn");
    }
}

/// One row group to read back and encode: rows of one file of `station`.
struct Job<'a> {
    station: &'a StationName,
    rows: &'a [IndexedMessage],
}

/// Encodes every file of `plan`, its row groups on up to [`encode_threads`]
/// threads (each reads its row group's messages from `file`, encodes them and
/// drops them), and hands out each file's bytes in order as its row groups
/// complete; see [`segment_thread`]. The bytes do not depend on the number of
/// threads.
fn encode_all(
    plan: &SegmentPlan<IndexedMessage>,
    file: &SegmentFile,
    opts: &ParquetOptions,
    buffers: &ReadBuffers,
    tx: &mpsc::Sender<Piece>,
) -> Result<(), ThreadError> {
    let encoder = RowGroupEncoder::new(opts).map_err(ThreadError::Encode)?;
    // Every row group of every file, in file order, and the file each belongs to.
    let mut jobs = Vec::new();
    let mut owner = Vec::new();
    for (f, planned) in plan.files.iter().enumerate() {
        let rows = &plan.messages[planned.rows.clone()];
        let mut start = 0;
        for end in even_row_group_ends_by_size(rows.iter().map(|r| r.data_len as usize), opts) {
            jobs.push(Job {
                station: &planned.key.station,
                rows: &rows[start..end],
            });
            owner.push(f);
            start = end;
        }
    }
    // A row group is read back and converted to Arrow one chunk at a time,
    // into a buffer of a chunk's size.
    let encode_in_chunks = |job: &Job<'_>, buf: &mut GroupBuffer| {
        let mut group = encoder.start(job.station)?;
        let mut start = 0;
        for end in encoder.chunk_ends(job.rows.iter().map(|r| r.data_len as usize)) {
            let rows = &job.rows[start..end];
            let msgs = file.read_into(rows, buf).map_err(ThreadError::Read)?;
            // Text is checked here, a column at a time (`SegmentFile::read_into`):
            // text that is not UTF-8 is damage to the segment, as the read reports it.
            group.write(&msgs).map_err(|e| match e {
                ColumnarError::NotUtf8 { .. } => ThreadError::Read(file.changed(
                    &rows[0],
                    format!(
                        "{e} (one of the {} messages from this offset on)",
                        rows.len()
                    ),
                )),
                e => ThreadError::Encode(e),
            })?;
            start = end;
        }
        Ok(group.finish()?)
    };
    let encode = |job: &Job<'_>| {
        let mut buf = buffers.take();
        let encoded = encode_in_chunks(job, &mut buf);
        buffers.put(buf);
        encoded
    };
    let mut current: Option<FileEncoder> = None;
    encode_each_in_order(&jobs, encode_threads(), encode, |i, group| {
        let file = &plan.files[owner[i]].key;
        let enc = match current.as_mut() {
            Some(enc) => enc,
            None => current.insert(FileEncoder::new(
                &file.station,
                file.first_seq,
                file.last_seq,
                opts,
            )?),
        };
        enc.append(group)?;
        let bytes = enc.take_bytes();
        if !bytes.is_empty() && tx.blocking_send(Piece::Bytes(bytes)).is_err() {
            return Ok(ControlFlow::Break(()));
        }
        if owner.get(i + 1) == Some(&owner[i]) {
            return Ok(ControlFlow::Continue(()));
        }
        // The file's last row group.
        let Some(enc) = current.take() else {
            return Ok(ControlFlow::Continue(()));
        };
        let (rest, summary) = enc.finish()?;
        if !rest.is_empty() && tx.blocking_send(Piece::Bytes(rest)).is_err() {
            return Ok(ControlFlow::Break(()));
        }
        if tx.blocking_send(Piece::End(summary)).is_err() {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })
}

impl From<ColumnarError> for ThreadError {
    fn from(e: ColumnarError) -> Self {
        ThreadError::Encode(e)
    }
}

/// Threads that encode a segment's row groups: one per core, at most
/// [`MAX_ENCODE_THREADS`].
fn encode_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_ENCODE_THREADS)
}
