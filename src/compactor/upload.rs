//! Streaming upload of one object whose size is unknown until it ends.
//!
//! Bytes are buffered until they pass the multipart threshold: an object that
//! ends at or below it goes up with one `put`; a larger one becomes a multipart
//! upload fed in fixed-size parts (every part but the last the same size, which
//! S3, MinIO, B2 and R2 all accept), with a bounded number of parts in flight so
//! memory stays bounded whatever the object's size. A multipart upload that fails
//! (a part, the completion, or the producer giving up) is aborted, never left
//! behind to be billed. The SHA-256 of the bytes is computed on the way.
//!
//! object_store's `BufWriter` and `WriteMultipart` do most of this, but not
//! all: `BufWriter` starts the multipart upload at its part size (Strata's
//! `multipart_threshold` and `part_size` are two settings), and both abort at
//! most once and keep the upload to themselves, so a failed abort could not be
//! retried in the background (see [`ABORT_RETRY_FOR`]).

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutPayloadMut};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::store::{Archive, StoreError};

/// The smallest part S3-compatible stores accept (all but the last part).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// How an [`ObjectUpload`] splits its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Objects up to this size go up with one `put`; larger ones as multipart.
    pub multipart_threshold: usize,
    /// Size of every multipart part but the last (at least [`MIN_PART_SIZE`] for S3).
    pub part_size: usize,
    /// Parts uploaded at the same time.
    pub max_concurrency: usize,
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The object's path (relative to the archive root).
    pub path: Path,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Whether it went up as a multipart upload.
    pub multipart: bool,
}

/// An in-progress multipart upload and its parts in flight.
#[derive(Debug)]
struct Multipart {
    upload: Box<dyn MultipartUpload>,
    parts: JoinSet<object_store::Result<()>>,
}

/// How long a failed abort is retried in the background: the outage that
/// failed the upload usually fails its abort too, and an upload never
/// aborted stays on the server (and is billed) until a lifecycle rule
/// removes it.
const ABORT_RETRY_FOR: Duration = Duration::from_secs(300);
/// The longest pause between two abort attempts.
const ABORT_MAX_PAUSE: Duration = Duration::from_secs(5);

impl Multipart {
    /// Aborts the upload of `path` (the full key, for the log).
    async fn abort(mut self, path: &Path) {
        // Parts still in flight are cancelled before the abort, so none can be
        // stored after the store forgot the upload.
        self.parts.shutdown().await;
        let Err(e) = self.upload.abort().await else {
            return;
        };
        tracing::warn!(path = %path, error = %e,
            "cannot abort multipart upload yet; retrying in the background");
        let mut upload = self.upload;
        let path = path.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut pause = Duration::from_millis(250);
            loop {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ABORT_MAX_PAUSE);
                match upload.abort().await {
                    // Not found: an earlier attempt the store carried out
                    // without its answer reaching us already aborted it.
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        tracing::info!(path = %path, "multipart upload aborted after retries");
                        return;
                    }
                    Err(e) if start.elapsed() >= ABORT_RETRY_FOR => {
                        tracing::warn!(path = %path, error = %e,
                            "cannot abort multipart upload; a lifecycle rule on the bucket should remove incomplete uploads");
                        return;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

/// One object being uploaded; see the module doc.
///
/// On any error (a [`StoreError`] whose op is `put`, `put_multipart`,
/// `put_part` or `complete_multipart`) the multipart upload, if one was
/// started, is aborted before the error is returned, and further calls fail.
/// Dropping an unfinished upload aborts it in the background.
#[derive(Debug)]
pub struct ObjectUpload {
    archive: Archive,
    path: Path,
    opts: UploadOptions,
    /// Bytes not yet sent (all of them until the threshold is passed).
    pending: PutPayloadMut,
    multipart: Option<Multipart>,
    hasher: Sha256,
    total: u64,
    failed: bool,
}

impl ObjectUpload {
    /// Starts an upload of `path` (relative to the archive root); nothing is
    /// sent before the threshold is passed.
    pub fn new(archive: Archive, path: Path, opts: UploadOptions) -> Self {
        Self {
            archive,
            path,
            opts: UploadOptions {
                part_size: opts.part_size.max(1),
                max_concurrency: opts.max_concurrency.max(1),
                ..opts
            },
            pending: PutPayloadMut::new(),
            multipart: None,
            hasher: Sha256::new(),
            total: 0,
            failed: false,
        }
    }

    /// The object's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the next bytes of the object; may start the multipart upload and
    /// send parts, waiting while `max_concurrency` parts are in flight.
    ///
    /// # Errors
    /// The failed store operation; the multipart upload has been aborted.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        self.check_usable()?;
        self.hasher.update(&bytes);
        self.total += bytes.len() as u64;
        self.pending.push(bytes);
        let result = self.send_full_parts().await;
        self.fail_on_error(result).await
    }

    /// Sends what is left and completes the object.
    ///
    /// # Errors
    /// The failed store operation; the multipart upload has been aborted.
    pub async fn finish(mut self) -> Result<Uploaded, StoreError> {
        self.check_usable()?;
        let result = self.finish_inner().await;
        let multipart = self.multipart.is_some();
        match self.fail_on_error(result).await {
            Ok(()) => {
                // Completed: nothing left for Drop to abort.
                self.multipart = None;
                Ok(Uploaded {
                    path: self.path.clone(),
                    bytes: self.total,
                    sha256: std::mem::take(&mut self.hasher).finalize().into(),
                    multipart,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Gives up: aborts the multipart upload if one was started.
    pub async fn abort(mut self) {
        if let Some(mp) = self.multipart.take() {
            mp.abort(&self.archive.key(&self.path)).await;
        }
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.failed {
            let source = object_store::Error::Generic {
                store: "strata",
                source: "the upload already failed and was aborted; start a new one".into(),
            };
            return Err(self.archive.error("write", &self.path, source));
        }
        Ok(())
    }

    async fn fail_on_error(&mut self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        if result.is_err() {
            self.failed = true;
            self.pending = PutPayloadMut::new();
            if let Some(mp) = self.multipart.take() {
                mp.abort(&self.archive.key(&self.path)).await;
            }
        }
        result
    }

    async fn send_full_parts(&mut self) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            if self.pending.content_length() <= self.opts.multipart_threshold {
                return Ok(());
            }
            let upload = self.archive.put_multipart(&self.path).await?;
            self.multipart = Some(Multipart {
                upload,
                parts: JoinSet::new(),
            });
        }
        while self.pending.content_length() >= self.opts.part_size {
            let part = split_part(&mut self.pending, self.opts.part_size);
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: PutPayload) -> Result<(), StoreError> {
        let max = self.opts.max_concurrency;
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        while mp.parts.len() >= max {
            join_one(&mut mp.parts, &self.archive, &self.path).await?;
        }
        let fut = mp.upload.put_part(part);
        mp.parts.spawn(fut);
        Ok(())
    }

    async fn finish_inner(&mut self) -> Result<(), StoreError> {
        let rest = std::mem::take(&mut self.pending).freeze();
        if self.multipart.is_none() {
            return self.archive.put(&self.path, rest).await;
        }
        if rest.content_length() > 0 {
            self.send_part(rest).await?;
        }
        if let Some(mp) = self.multipart.as_mut() {
            while !mp.parts.is_empty() {
                join_one(&mut mp.parts, &self.archive, &self.path).await?;
            }
            mp.upload
                .complete()
                .await
                .map_err(|e| self.archive.error("complete_multipart", &self.path, e))?;
        }
        Ok(())
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        if let Some(mp) = self.multipart.take() {
            let path = self.archive.key(&self.path);
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move { mp.abort(&path).await });
                }
                Err(_) => tracing::warn!(path = %path,
                    "multipart upload dropped outside a runtime: cannot abort it"),
            }
        }
    }
}

/// Waits for one part in flight.
async fn join_one(
    parts: &mut JoinSet<object_store::Result<()>>,
    archive: &Archive,
    path: &Path,
) -> Result<(), StoreError> {
    let err = |source| archive.error("put_part", path, source);
    match parts.join_next().await {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(err(e)),
        Some(Err(join)) => Err(err(object_store::Error::JoinError { source: join })),
    }
}

/// Takes exactly `size` bytes off the front of `pending` without copying.
fn split_part(pending: &mut PutPayloadMut, size: usize) -> PutPayload {
    let all = std::mem::take(pending).freeze();
    let mut part = PutPayloadMut::new();
    let mut need = size;
    for mut chunk in all {
        if need == 0 {
            pending.push(chunk);
        } else if chunk.len() <= need {
            need -= chunk.len();
            part.push(chunk);
        } else {
            let rest = chunk.split_off(need);
            need = 0;
            part.push(chunk);
            pending.push(rest);
        }
    }
    part.freeze()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    use super::*;

    fn opts(threshold: usize, part: usize) -> UploadOptions {
        UploadOptions {
            multipart_threshold: threshold,
            part_size: part,
            max_concurrency: 2,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn archive(store: &Arc<InMemory>) -> Archive {
        Archive::from_store(store.clone(), Path::default(), "memory://")
    }

    async fn upload(
        store: &Arc<InMemory>,
        bytes: &[u8],
        chunk: usize,
        o: UploadOptions,
    ) -> Uploaded {
        let mut up = ObjectUpload::new(archive(store), Path::from("a/b.parquet"), o);
        for c in bytes.chunks(chunk) {
            up.write(Bytes::copy_from_slice(c)).await.expect("write");
        }
        up.finish().await.expect("finish")
    }

    #[tokio::test]
    async fn small_objects_go_up_in_one_put() {
        let store = Arc::new(InMemory::new());
        let bytes = data(1000);
        let done = upload(&store, &bytes, 7, opts(1000, 100)).await;
        assert!(!done.multipart);
        assert_eq!(done.bytes, 1000);
        let expect: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(done.sha256, expect);
        let got = store.get(&Path::from("a/b.parquet")).await.expect("get");
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    }

    #[tokio::test]
    async fn large_objects_go_up_as_multipart_in_order() {
        let store = Arc::new(InMemory::new());
        let bytes = data(10_007);
        let done = upload(&store, &bytes, 333, opts(1000, 1024)).await;
        assert!(done.multipart);
        assert_eq!(done.bytes, 10_007);
        let got = store.get(&Path::from("a/b.parquet")).await.expect("get");
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    }

    #[tokio::test]
    async fn an_empty_object_is_one_put() {
        let store = Arc::new(InMemory::new());
        let up = ObjectUpload::new(archive(&store), Path::from("e"), opts(10, 10));
        let done = up.finish().await.expect("finish");
        assert_eq!(done.bytes, 0);
        assert!(!done.multipart);
    }

    #[test]
    fn split_part_takes_exact_sizes_without_losing_bytes() {
        let mut pending = PutPayloadMut::new();
        for piece in [&b"abc"[..], b"defgh", b"ij"] {
            pending.push(Bytes::copy_from_slice(piece));
        }
        let part = split_part(&mut pending, 4);
        let part: Bytes = part.into();
        assert_eq!(part.as_ref(), b"abcd");
        assert_eq!(pending.content_length(), 6);
        let rest: Bytes = std::mem::take(&mut pending).freeze().into();
        assert_eq!(rest.as_ref(), b"efghij");
    }
}
