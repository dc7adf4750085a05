//! An [`ObjectStore`] wrapper that counts what a restore reads: list requests,
//! get requests, bytes fetched and distinct objects touched. It adds one
//! behaviour and forwards everything else, so the figures in the summary are
//! what the store really served, whichever reader asked.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, Result};

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

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
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
        forward: [put_opts, put_multipart_opts, head, delete, copy, copy_if_not_exists];

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            let head = options.head;
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
            self.listed();
            self.inner.list(prefix)
        }

        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, Result<ObjectMeta>> {
            self.listed();
            self.inner.list_with_offset(prefix, offset)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.listed();
            self.inner.list_with_delimiter(prefix).await
        }
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
}
