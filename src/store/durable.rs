//! `file://` archives that survive a power loss: a wrapper around object_store's
//! `LocalFileSystem` (which never fsyncs) in the shape of object_store's own
//! wrappers (`limit.rs`, `throttle.rs`): it forwards every call, and once a
//! put, a multipart upload's completion, a copy or a rename has succeeded, it
//! fsyncs the file and every directory from the file's up to the archive root.
//!
//! Why: the compactor deletes a WAL segment as soon as the segment's commit
//! record is stored. Without the fsyncs, the data files and the commit record
//! could still be only in the page cache (and their directory entries too)
//! when the WAL copy is gone: a power cut would lose acknowledged messages.
//! With them, "stored" means "on disk", as it does on S3.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    MultipartUpload, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// The store name errors carry, so that they are classified as local file
/// errors ([`super::Cause::LocalIo`]) like `LocalFileSystem`'s own.
const STORE: &str = "LocalFileSystem";

/// How the wrapper makes a file or directory durable.
trait Syncer: Send + Sync + fmt::Debug + 'static {
    /// Makes the file's data and metadata durable.
    fn sync_file(&self, path: &FsPath) -> std::io::Result<()>;
    /// Makes the directory's entries durable.
    fn sync_dir(&self, path: &FsPath) -> std::io::Result<()>;
}

/// `fsync(2)` through `std::fs`.
#[derive(Debug)]
struct FsSyncer;

impl Syncer for FsSyncer {
    fn sync_file(&self, path: &FsPath) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
    fn sync_dir(&self, path: &FsPath) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
}

/// An fsync that failed: the object may not be durable.
#[derive(Debug, thiserror::Error)]
#[error("cannot fsync {path} after writing it, so it may not survive a power loss: {source}")]
struct SyncError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What syncing needs: the root it stops at and how to sync.
#[derive(Debug)]
struct Durability {
    root: PathBuf,
    syncer: Box<dyn Syncer>,
}

impl Durability {
    /// Fsyncs `file`, then each directory from its parent up to the root.
    fn sync(&self, file: &FsPath) -> Result<()> {
        let failed = |path: &FsPath, source| object_store::Error::Generic {
            store: STORE,
            source: Box::new(SyncError {
                path: path.to_path_buf(),
                source,
            }),
        };
        self.syncer.sync_file(file).map_err(|e| failed(file, e))?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root)) {
            self.syncer.sync_dir(d).map_err(|e| failed(d, e))?;
            dir = d.parent();
        }
        Ok(())
    }
}

/// A `LocalFileSystem` whose writes are durable once they return; see the module doc.
#[derive(Debug)]
pub struct DurableFolder {
    inner: Arc<LocalFileSystem>,
    durability: Arc<Durability>,
}

impl DurableFolder {
    /// Wraps `inner`, whose root folder is `root` (an absolute, canonical path).
    pub fn new(inner: LocalFileSystem, root: PathBuf) -> Self {
        Self::with_syncer(inner, root, Box::new(FsSyncer))
    }

    fn with_syncer(inner: LocalFileSystem, root: PathBuf, syncer: Box<dyn Syncer>) -> Self {
        Self {
            inner: Arc::new(inner),
            durability: Arc::new(Durability { root, syncer }),
        }
    }

    /// Fsyncs the file behind `location` and its directories, off the async workers.
    async fn sync(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let durability = Arc::clone(&self.durability);
        sync_blocking(durability, file).await
    }
}

async fn sync_blocking(durability: Arc<Durability>, file: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || durability.sync(&file))
        .await
        .map_err(|e| object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        })?
}

impl fmt::Display for DurableFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableFolder({})", self.inner)
    }
}

crate::forward_object_store! {
    impl ObjectStore for DurableFolder => inner {
        forward: [
            get_opts, get_range, get_ranges, head, delete,
            list, list_with_offset, list_with_delimiter,
        ];

        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            let done = self.inner.put_opts(location, payload, opts).await?;
            self.sync(location).await?;
            Ok(done)
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            let file = self.inner.path_to_filesystem(location)?;
            let upload = self.inner.put_multipart_opts(location, opts).await?;
            Ok(Box::new(DurableUpload {
                upload,
                file,
                durability: Arc::clone(&self.durability),
            }))
        }

        async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
            self.inner.copy(from, to).await?;
            self.sync(to).await
        }

        async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
            self.inner.copy_if_not_exists(from, to).await?;
            self.sync(to).await
        }

        async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
            self.inner.rename(from, to).await?;
            self.sync(to).await
        }

        async fn rename_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
            self.inner.rename_if_not_exists(from, to).await?;
            self.sync(to).await
        }
    }
}

/// A multipart upload whose completion is durable.
#[derive(Debug)]
struct DurableUpload {
    upload: Box<dyn MultipartUpload>,
    file: PathBuf,
    durability: Arc<Durability>,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let done = self.upload.complete().await?;
        sync_blocking(Arc::clone(&self.durability), self.file.clone()).await?;
        Ok(done)
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use object_store::ObjectStore;

    use super::*;

    use crate::store::error::op_error;
    use crate::store::Cause;

    /// What was synced, in order; fails syncs of paths containing `fail`.
    #[derive(Debug, Default)]
    struct Recorder {
        log: Mutex<Vec<(&'static str, PathBuf)>>,
        fail: Option<&'static str>,
    }

    impl Recorder {
        fn record(&self, kind: &'static str, path: &FsPath) -> std::io::Result<()> {
            if self
                .fail
                .is_some_and(|f| path.to_string_lossy().contains(f))
            {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            self.log.lock().unwrap().push((kind, path.to_path_buf()));
            Ok(())
        }
    }

    impl Syncer for Arc<Recorder> {
        fn sync_file(&self, path: &FsPath) -> std::io::Result<()> {
            // The data must be in place when it is synced.
            assert!(path.is_file(), "{} synced before it exists", path.display());
            self.record("file", path)
        }
        fn sync_dir(&self, path: &FsPath) -> std::io::Result<()> {
            assert!(path.is_dir(), "{}", path.display());
            self.record("dir", path)
        }
    }

    fn store(
        fail: Option<&'static str>,
    ) -> (tempfile::TempDir, PathBuf, DurableFolder, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let recorder = Arc::new(Recorder {
            fail,
            ..Recorder::default()
        });
        let store = DurableFolder::with_syncer(
            LocalFileSystem::new_with_prefix(&root).unwrap(),
            root.clone(),
            Box::new(Arc::clone(&recorder)),
        );
        (dir, root, store, recorder)
    }

    fn synced(rec: &Recorder) -> Vec<(&'static str, PathBuf)> {
        std::mem::take(&mut *rec.log.lock().unwrap())
    }

    fn file_then_dirs_to_root(root: &FsPath, key: &str) -> Vec<(&'static str, PathBuf)> {
        let file = root.join(key);
        let mut want = vec![("file", file.clone())];
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root)) {
            want.push(("dir", d.to_path_buf()));
            dir = d.parent();
        }
        want
    }

    #[tokio::test]
    async fn a_put_syncs_the_file_and_every_directory_up_to_the_root() {
        let (_dir, root, store, rec) = store(None);
        let key = "station=s/date=2026-11-24/hour=10/1-2.parquet";
        store
            .put(&Path::from(key), Bytes::from_static(b"abc").into())
            .await
            .unwrap();
        let want = file_then_dirs_to_root(&root, key);
        assert_eq!(
            want.len(),
            5,
            "the file, three partition folders and the root"
        );
        assert_eq!(synced(&rec), want);
        assert_eq!(std::fs::read(root.join(key)).unwrap(), b"abc");

        // Reads, lists and deletes sync nothing.
        let got = store
            .get(&Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"abc");
        store.head(&Path::from(key)).await.unwrap();
        store.delete(&Path::from(key)).await.unwrap();
        assert!(synced(&rec).is_empty());
    }

    #[tokio::test]
    async fn a_multipart_upload_is_synced_when_it_completes_never_before() {
        let (_dir, root, store, rec) = store(None);
        let key = "_strata/commits/w-1.json";
        let mut up = store.put_multipart(&Path::from(key)).await.unwrap();
        up.put_part(Bytes::from_static(b"ab").into()).await.unwrap();
        up.put_part(Bytes::from_static(b"cd").into()).await.unwrap();
        assert!(synced(&rec).is_empty());
        up.complete().await.unwrap();
        assert_eq!(synced(&rec), file_then_dirs_to_root(&root, key));
        assert_eq!(std::fs::read(root.join(key)).unwrap(), b"abcd");

        let mut aborted = store.put_multipart(&Path::from("x/y")).await.unwrap();
        aborted
            .put_part(Bytes::from_static(b"z").into())
            .await
            .unwrap();
        aborted.abort().await.unwrap();
        assert!(synced(&rec).is_empty());
    }

    #[tokio::test]
    async fn copies_and_renames_sync_their_target() {
        let (_dir, root, store, rec) = store(None);
        store
            .put(&Path::from("a/1"), Bytes::from_static(b"1").into())
            .await
            .unwrap();
        synced(&rec);
        store
            .copy(&Path::from("a/1"), &Path::from("b/2"))
            .await
            .unwrap();
        assert_eq!(synced(&rec), file_then_dirs_to_root(&root, "b/2"));
        store
            .rename(&Path::from("b/2"), &Path::from("c/3"))
            .await
            .unwrap();
        assert_eq!(synced(&rec), file_then_dirs_to_root(&root, "c/3"));
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_the_put_as_a_local_file_error() {
        let (_dir, _root, store, _rec) = store(Some("hour=10"));
        let key = Path::from("station=s/date=2026-11-24/hour=10/1-2.parquet");
        let e = store
            .put(&key, Bytes::from_static(b"abc").into())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("cannot fsync"), "{text}");
        let classified = op_error("put", &key, e);
        assert_eq!(
            classified.cause(),
            Some(Cause::LocalIo { permission: false })
        );
        assert!(!classified.is_permanent(), "a disk error may pass: retried");
    }

    #[test]
    fn display_names_the_wrapper_and_the_folder() {
        let (_dir, root, store, _rec) = store(None);
        let shown = store.to_string();
        assert!(
            shown.starts_with("DurableFolder(LocalFileSystem("),
            "{shown}"
        );
        assert!(shown.contains(&root.display().to_string()), "{shown}");
    }
}
