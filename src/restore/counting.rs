//! An [`ObjectStore`] wrapper that counts requests: what a restore reads (list
//! requests, get requests, bytes fetched, distinct objects touched) and, for
//! the request budget (`examples/request_budget.rs`), every request class a
//! bucket bills ([`RequestCounts`]: put, get, list, head, delete). It adds one
//! behaviour and forwards everything else, so the figures are what the store
//! really served, whichever reader or writer asked.
//!
//! A listing counts one request per started page of 1,000 keys (S3's page);
//! a multipart upload counts its start, each part and its completion (or
//! abort) as put requests.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// What a [`CountingStore`] has served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Distinct objects at least one byte range was fetched from.
    pub objects: u64,
    /// Bytes fetched.
    pub bytes: u64,
    /// Get requests (a multi-range fetch counts once per range).
    pub gets: u64,
    /// List requests.
    pub lists: u64,
}

/// Requests of each class a [`CountingStore`] has forwarded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Writes: puts, and a multipart upload's start, parts and completion.
    pub puts: u64,
    /// Reads of object bytes (one per range).
    pub gets: u64,
    /// List requests (one per page of 1,000 keys).
    pub lists: u64,
    /// Metadata reads.
    pub heads: u64,
    /// Deletes.
    pub deletes: u64,
}

impl RequestCounts {
    /// The requests made since `earlier` was taken.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            puts: self.puts - earlier.puts,
            gets: self.gets - earlier.gets,
            lists: self.lists - earlier.lists,
            heads: self.heads - earlier.heads,
            deletes: self.deletes - earlier.deletes,
        }
    }
}

/// Keys in one page of a listing (S3's `max-keys` default).
const LIST_PAGE: u64 = 1000;

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    puts: AtomicU64,
    heads: AtomicU64,
    deletes: AtomicU64,
    objects: Mutex<HashSet<Path>>,
}

/// Counts reads through an inner store (see the module doc).
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// The figures so far.
    pub fn counts(&self) -> ReadCounts {
        let objects = self
            .counters
            .objects
            .lock()
            .map_or(0, |set| set.len() as u64);
        ReadCounts {
            objects,
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            gets: self.counters.gets.load(Ordering::Relaxed),
            lists: self.counters.lists.load(Ordering::Relaxed),
        }
    }

    /// Requests of every class so far.
    pub fn requests(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            heads: c.heads.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
        }
    }

    /// A listing stream that counts one more request per page beyond the first.
    fn paged(
        &self,
        inner: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.listed();
        let counters = Arc::clone(&self.counters);
        let mut seen = 0u64;
        inner
            .inspect(move |_| {
                if seen > 0 && seen % LIST_PAGE == 0 {
                    counters.lists.fetch_add(1, Ordering::Relaxed);
                }
                seen += 1;
            })
            .boxed()
    }

    fn read(&self, location: &Path, requests: u64, bytes: u64) {
        self.counters.gets.fetch_add(requests, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut set) = self.counters.objects.lock() {
            if !set.contains(location) {
                set.insert(location.clone());
            }
        }
    }

    fn listed(&self) {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

crate::forward_object_store! {
    impl ObjectStore for CountingStore => inner {
        forward: [copy, copy_if_not_exists];

        async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
            self.counters.puts.fetch_add(1, Ordering::Relaxed);
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.counters.puts.fetch_add(1, Ordering::Relaxed);
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            Ok(Box::new(CountingUpload {
                inner,
                counters: Arc::clone(&self.counters),
            }))
        }

        async fn head(&self, location: &Path) -> Result<ObjectMeta> {
            self.counters.heads.fetch_add(1, Ordering::Relaxed);
            self.inner.head(location).await
        }

        async fn delete(&self, location: &Path) -> Result<()> {
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
            self.inner.delete(location).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            let head = options.head;
            if head {
                self.counters.heads.fetch_add(1, Ordering::Relaxed);
            }
            let r = self.inner.get_opts(location, options).await?;
            if !head {
                self.read(location, 1, r.range.end.saturating_sub(r.range.start));
            }
            Ok(r)
        }

        async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
            let b = self.inner.get_range(location, range).await?;
            self.read(location, 1, b.len() as u64);
            Ok(b)
        }

        async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            let v = self.inner.get_ranges(location, ranges).await?;
            let bytes = v.iter().map(|b| b.len() as u64).sum();
            self.read(location, v.len() as u64, bytes);
            Ok(v)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.paged(self.inner.list(prefix))
        }

        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, Result<ObjectMeta>> {
            self.paged(self.inner.list_with_offset(prefix, offset))
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.listed();
            self.inner.list_with_delimiter(prefix).await
        }
    }
}

/// A multipart upload that counts its parts and its completion or abort.
#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn counts_objects_bytes_and_requests() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = Path::from("x/a");
        let b = Path::from("x/b");
        inner.put(&a, vec![7u8; 100].into()).await.unwrap();
        inner.put(&b, vec![8u8; 50].into()).await.unwrap();
        let store = CountingStore::new(inner);
        assert_eq!(store.counts(), ReadCounts::default());

        assert_eq!(store.get_range(&a, 10..30).await.unwrap().len(), 20);
        let parts = store.get_ranges(&a, &[0..5, 90..100]).await.unwrap();
        assert_eq!(parts.iter().map(Bytes::len).sum::<usize>(), 15);
        let whole = store.get(&b).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole.len(), 50);
        store.head(&b).await.unwrap();
        store
            .list_with_delimiter(Some(&Path::from("x")))
            .await
            .unwrap();

        assert_eq!(
            store.counts(),
            ReadCounts {
                objects: 2,
                bytes: 85,
                gets: 4,
                lists: 1
            }
        );
    }

    #[tokio::test]
    async fn counts_every_request_class_and_list_pages() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = CountingStore::new(inner);
        for i in 0..1001 {
            store
                .put(&Path::from(format!("p/{i:04}")), vec![1u8].into())
                .await
                .unwrap();
        }
        let mut up = store.put_multipart(&Path::from("big")).await.unwrap();
        up.put_part(vec![0u8; 10].into()).await.unwrap();
        up.put_part(vec![0u8; 10].into()).await.unwrap();
        up.complete().await.unwrap();
        let listed: Vec<_> = store.list(Some(&Path::from("p"))).collect().await;
        assert_eq!(listed.len(), 1001);
        store.head(&Path::from("big")).await.unwrap();
        store.delete(&Path::from("big")).await.unwrap();
        store.get(&Path::from("p/0000")).await.unwrap();
        assert_eq!(
            store.requests(),
            RequestCounts {
                puts: 1001 + 4,
                gets: 1,
                lists: 2,
                heads: 1,
                deletes: 1
            }
        );
        let before = store.requests();
        store.head(&Path::from("p/0001")).await.unwrap();
        assert_eq!(store.requests().since(&before).heads, 1);
    }
}
