//! The archive as the rest of Strata sees it: one store whose keys are relative
//! to the archive root, and a small typed API over it whose every failure is a
//! [`StoreError`] naming the operation, the full key and what to check.
//!
//! The configured prefix is applied once, here, by object_store's
//! [`PrefixStore`]: callers name `station=…/…` and `_strata/…` keys and never
//! see the prefix, except in messages, which show the full key ([`Archive::key`])
//! so that it can be found in the bucket.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload,
};

use super::error::{op_error, Cause, StoreError};

/// An opened archive: its store (keys relative to the archive root) and url.
#[derive(Clone)]
pub struct Archive {
    /// The store, already under the prefix.
    store: Arc<dyn ObjectStore>,
    /// The prefix inside the bucket or folder (may be empty), for full keys in messages.
    prefix: Path,
    /// The url for messages (never holds secrets).
    url: String,
    /// The store's `Display` before the prefix was applied (kind and bucket).
    backend: String,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // object_store's AmazonS3 Debug prints its whole config, access key id
        // included: show only its Display (kind and bucket).
        f.debug_struct("Archive")
            .field("store", &self.backend)
            .field("prefix", &self.prefix.as_ref())
            .field("url", &self.url)
            .finish()
    }
}

impl Archive {
    /// An archive over `store` whose objects live under `prefix` (empty: the
    /// whole store). Tests pass `InMemory` or a fault-injecting wrapper here.
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: Path, url: impl Into<String>) -> Self {
        let backend = store.to_string();
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix.clone()))
        };
        Self {
            store,
            prefix,
            url: url.into(),
            backend,
        }
    }

    /// The same archive through `store`, which must name keys relative to this
    /// archive's root: typically a wrapper of [`Archive::store`] (counting reads,
    /// injecting faults in tests).
    pub fn with_store(&self, store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            ..self.clone()
        }
    }

    /// The archive rooted at `dir` inside this one (its keys are `dir/…` here).
    pub fn within(&self, dir: &Path) -> Self {
        Self {
            store: Arc::new(PrefixStore::new(Arc::clone(&self.store), dir.clone())),
            prefix: self.key(dir),
            url: self.url.clone(),
            backend: self.backend.clone(),
        }
    }

    /// The store; keys are relative to the archive root. For readers that take
    /// an `ObjectStore` (Parquet) and for wrappers ([`Archive::with_store`]).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The archive's url, e.g. `s3://bucket/prefix` or `file:///srv/archive`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The absolute URL of `rel` that another program opens: `s3://bucket/<full
    /// key>` or `file:///folder/<full key>` (what Iceberg metadata holds).
    /// Archives over another store (tests) give `<url>/<full key>`.
    pub fn object_url(&self, rel: &Path) -> String {
        let key = self.key(rel);
        match super::StorageUrl::parse(&self.url) {
            Ok(super::StorageUrl::S3 { bucket, .. }) => format!("s3://{bucket}/{key}"),
            // A folder's prefix is empty (`within` adds one), its url absolute.
            _ => format!("{}/{key}", self.url.trim_end_matches('/')),
        }
    }

    /// The full key of `rel` in the bucket or folder: the prefix, then `rel`.
    /// What messages, reports and commit records show.
    pub fn key(&self, rel: &Path) -> Path {
        self.prefix.parts().chain(rel.parts()).collect()
    }

    /// `full` (a key as [`Archive::key`] shows it) relative to the archive
    /// root; `None` when it is not under the prefix.
    pub fn relative(&self, full: &Path) -> Option<Path> {
        full.prefix_match(&self.prefix).map(Iterator::collect)
    }

    /// The [`StoreError`] of `op` on `rel` failing with `source`: for the few
    /// calls that go to object_store directly (a multipart upload's parts).
    pub fn error(&self, op: &'static str, rel: &Path, source: object_store::Error) -> StoreError {
        op_error(op, &self.key(rel), source)
    }

    /// The whole object.
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::is_not_found`] when there is no such object.
    pub async fn get(&self, rel: &Path) -> Result<Bytes, StoreError> {
        let read = async { self.store.get(rel).await?.bytes().await };
        read.await.map_err(|e| self.error("get", rel, e))
    }

    /// The whole object, or `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError`] for anything but a missing object (a missing bucket included).
    pub async fn get_if_exists(&self, rel: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.get(rel).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object's size and modification time (`location` relative to the root).
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::is_not_found`] when there is no such object.
    pub async fn head(&self, rel: &Path) -> Result<ObjectMeta, StoreError> {
        self.store
            .head(rel)
            .await
            .map_err(|e| self.error("head", rel, e))
    }

    /// Stores `payload` at `rel`, replacing any object there.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put(&self, rel: &Path, payload: PutPayload) -> Result<(), StoreError> {
        self.store
            .put(rel, payload)
            .await
            .map(drop)
            .map_err(|e| self.error("put", rel, e))
    }

    /// Stores `payload` at `rel` unless an object is there; whether this call
    /// stored it. Stores without conditional writes (a `file://` folder has
    /// them, S3-compatible services mostly do) fall back to "store unless
    /// present", which two racing writers can both pass.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put_if_absent(&self, rel: &Path, payload: PutPayload) -> Result<bool, StoreError> {
        let create = PutOptions::from(PutMode::Create);
        match self.store.put_opts(rel, payload.clone(), create).await {
            Ok(_) => Ok(true),
            Err(e) => match self.error("put", rel, e) {
                e if e.cause() == Some(Cause::AlreadyExists) => Ok(false),
                e if e.cause() == Some(Cause::Unsupported) => {
                    if self.get_if_exists(rel).await?.is_some() {
                        return Ok(false);
                    }
                    self.put(rel, payload).await.map(|()| true)
                }
                e => Err(e),
            },
        }
    }

    /// Deletes the object at `rel` (deleting a missing object is not an error
    /// on S3; on a folder it is [`StoreError::is_not_found`]).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete(&self, rel: &Path) -> Result<(), StoreError> {
        self.store
            .delete(rel)
            .await
            .map_err(|e| self.error("delete", rel, e))
    }

    /// Every object under `dir` (the whole archive for `None`), page by page,
    /// `location`s relative to the root.
    pub fn list(&self, dir: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta, StoreError>> {
        let this = self.clone();
        let at = dir.cloned().unwrap_or_default();
        self.store
            .list(dir)
            .map_err(move |e| this.error("list", &at, e))
            .boxed()
    }

    /// Every object under `dir`, collected.
    ///
    /// # Errors
    /// [`StoreError`] of the first page that failed.
    pub async fn list_all(&self, dir: Option<&Path>) -> Result<Vec<ObjectMeta>, StoreError> {
        self.list(dir).try_collect().await
    }

    /// The objects directly in `dir` and its subdirectories (`common_prefixes`),
    /// relative to the root.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn list_with_delimiter(&self, dir: &Path) -> Result<ListResult, StoreError> {
        self.store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(|e| self.error("list", dir, e))
    }

    /// Starts a multipart upload of `rel`; its parts and completion report
    /// through [`Archive::error`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put_multipart(&self, rel: &Path) -> Result<Box<dyn MultipartUpload>, StoreError> {
        self.store
            .put_multipart(rel)
            .await
            .map_err(|e| self.error("put_multipart", rel, e))
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn keys_are_relative_to_the_root_and_errors_show_them_whole() {
        let inner = Arc::new(InMemory::new());
        let a = Archive::from_store(inner.clone(), Path::from("p/q"), "memory://");
        let rel = Path::from("station=s/x");
        a.put(&rel, b"abc".to_vec().into()).await.unwrap();
        // Stored under the prefix, listed and read without it.
        inner.head(&Path::from("p/q/station=s/x")).await.unwrap();
        let listed = a.list_all(None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, rel);
        assert_eq!(a.get(&rel).await.unwrap().as_ref(), b"abc");
        assert_eq!(a.key(&rel).as_ref(), "p/q/station=s/x");
        let s3 = Archive::from_store(inner.clone(), Path::from("p/q"), "s3://bkt/p/q");
        assert_eq!(s3.object_url(&rel), "s3://bkt/p/q/station=s/x");
        let folder = Archive::from_store(inner.clone(), Path::default(), "file:///srv/a");
        assert_eq!(
            folder.within(&Path::from("sub")).object_url(&rel),
            "file:///srv/a/sub/station=s/x"
        );
        assert_eq!(a.relative(&a.key(&rel)), Some(rel.clone()));
        assert_eq!(a.relative(&Path::from("other/station=s/x")), None);

        let missing = a.get(&Path::from("nope")).await.unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(
            missing.to_string().starts_with("get p/q/nope failed"),
            "{missing}"
        );
        assert_eq!(a.get_if_exists(&Path::from("nope")).await.unwrap(), None);

        let root = Archive::from_store(inner, Path::default(), "memory://");
        assert_eq!(root.key(&rel).as_ref(), "station=s/x");
        assert_eq!(root.relative(&rel), Some(rel));
    }

    #[tokio::test]
    async fn put_if_absent_creates_once() {
        let a = Archive::from_store(Arc::new(InMemory::new()), Path::from("p"), "memory://");
        let k = Path::from("_strata/restore.key");
        assert!(a.put_if_absent(&k, b"first".to_vec().into()).await.unwrap());
        assert!(!a
            .put_if_absent(&k, b"second".to_vec().into())
            .await
            .unwrap());
        assert_eq!(a.get(&k).await.unwrap().as_ref(), b"first");
    }

    #[tokio::test]
    async fn within_nests_under_the_archive() {
        let inner = Arc::new(InMemory::new());
        let a = Archive::from_store(inner.clone(), Path::from("p"), "memory://");
        let sub = a.within(&Path::from("case-1"));
        sub.put(&Path::from("x"), b"1".to_vec().into())
            .await
            .unwrap();
        inner.head(&Path::from("p/case-1/x")).await.unwrap();
        assert_eq!(sub.key(&Path::from("x")).as_ref(), "p/case-1/x");
        assert_eq!(
            a.list_all(None).await.unwrap()[0].location.as_ref(),
            "case-1/x"
        );
    }

    #[test]
    fn debug_shows_the_backend_url_and_prefix() {
        let a = Archive::from_store(Arc::new(InMemory::new()), Path::from("p"), "memory://x");
        let debug = format!("{a:?}");
        assert!(
            debug.contains("InMemory") && debug.contains("memory://x"),
            "{debug}"
        );
    }
}
