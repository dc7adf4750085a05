//! A fault-injecting `ObjectStore` wrapper for tests, in the shape of
//! object_store's `throttle.rs`/`limit.rs`: it forwards everything to an inner
//! store, fails the Nth call of a chosen operation (or every write during an
//! outage), and keeps books of multipart uploads so a test can prove none was
//! left behind. It can also lose the response of a call that succeeded, and
//! slow every write down.
#![allow(dead_code)] // each test binary uses a part

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{
    MultipartUpload, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    UploadPart,
};

/// An operation whose Nth call can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A single `put` (any path).
    Put,
    /// Starting a multipart upload.
    StartMultipart,
    /// Uploading one part.
    Part,
    /// Completing a multipart upload.
    Complete,
}

const OPS: [Op; 4] = [Op::Put, Op::StartMultipart, Op::Part, Op::Complete];

fn index(op: Op) -> usize {
    OPS.iter()
        .position(|o| *o == op)
        .expect("every Op is in OPS")
}

/// What happened to every multipart upload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MultipartBook {
    /// Paths of uploads started.
    pub started: Vec<Path>,
    /// Paths of uploads completed.
    pub completed: Vec<Path>,
    /// Paths of uploads aborted.
    pub aborted: Vec<Path>,
    /// Parts stored (successfully).
    pub parts: usize,
}

impl MultipartBook {
    /// Uploads neither completed nor aborted.
    pub fn incomplete(&self) -> usize {
        self.started.len() - self.completed.len() - self.aborted.len()
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// Calls so far, per [`Op`].
    calls: [AtomicUsize; 4],
    /// Fail the call with this 1-based number, per [`Op`] (0: never).
    fail_at: [AtomicUsize; 4],
    /// Every write fails while set.
    outage: AtomicBool,
    /// The call with this 1-based number, per [`Op`], is carried out by the
    /// inner store, then reported failed (0: never): the response was lost.
    lose_at: [AtomicUsize; 4],
    /// Every write waits this many milliseconds first (a slow store).
    delay_ms: AtomicUsize,
    /// Faults injected so far (failed calls and lost responses).
    injected: AtomicUsize,
    book: Mutex<MultipartBook>,
}

impl Shared {
    /// Counts a call of `op` and says whether it must fail; its number.
    fn check(&self, op: Op, path: &Path) -> Result<usize> {
        let n = self.calls[index(op)].fetch_add(1, Ordering::SeqCst) + 1;
        let fail_at = self.fail_at[index(op)].load(Ordering::SeqCst);
        if self.outage.load(Ordering::SeqCst) || n == fail_at {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "FaultStore",
                source: format!("injected fault: {op:?} call {n} on {path}").into(),
            });
        }
        Ok(n)
    }

    /// Waits the configured delay, counts a call of `op` and runs `call`,
    /// failing before it ([`Shared::check`]) or, when its response is to be
    /// lost, after it succeeded.
    async fn around<T>(
        &self,
        op: Op,
        path: &Path,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
        }
        let n = self.check(op, path)?;
        let out = call.await?;
        if self.lose_at[index(op)].load(Ordering::SeqCst) == n {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "FaultStore",
                source: format!(
                    "injected fault: {op:?} call {n} on {path} succeeded, its response was lost"
                )
                .into(),
            });
        }
        Ok(out)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, MultipartBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wrapper; clones share counters, faults and books.
#[derive(Debug, Clone)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl FaultStore {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            shared: Arc::default(),
        }
    }

    /// Makes the `n`th call (1-based, counted from now) of `op` fail.
    pub fn fail_nth(&self, op: Op, n: usize) {
        let i = index(op);
        let done = self.shared.calls[i].load(Ordering::SeqCst);
        self.shared.fail_at[i].store(done + n, Ordering::SeqCst);
    }

    /// Makes the `n`th call (1-based, counted from now) of `op` succeed in
    /// the inner store and then fail, as if its response was lost.
    pub fn lose_response_nth(&self, op: Op, n: usize) {
        let i = index(op);
        let done = self.shared.calls[i].load(Ordering::SeqCst);
        self.shared.lose_at[i].store(done + n, Ordering::SeqCst);
    }

    /// Makes every write wait `delay` first (`Duration::ZERO`: no wait).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// Faults injected so far: failed calls and lost responses.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Disarms every fault and ends any outage.
    pub fn heal(&self) {
        for f in &self.shared.fail_at {
            f.store(0, Ordering::SeqCst);
        }
        for f in &self.shared.lose_at {
            f.store(0, Ordering::SeqCst);
        }
        self.shared.delay_ms.store(0, Ordering::SeqCst);
        self.shared.outage.store(false, Ordering::SeqCst);
    }

    /// While `on`, every write (put, multipart start, part, complete) fails.
    pub fn set_outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: Op) -> usize {
        self.shared.calls[index(op)].load(Ordering::SeqCst)
    }

    /// A copy of the multipart books.
    pub fn multipart(&self) -> MultipartBook {
        self.shared.book().clone()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

strata::forward_object_store! {
    impl ObjectStore for FaultStore => inner {
        forward: [
            get_opts, get_ranges, head, delete, list, list_with_delimiter,
            copy, copy_if_not_exists,
        ];

        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            self.shared
                .around(
                    Op::Put,
                    location,
                    self.inner.put_opts(location, payload, opts),
                )
                .await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            let upload = self
                .shared
                .around(
                    Op::StartMultipart,
                    location,
                    self.inner.put_multipart_opts(location, opts),
                )
                .await?;
            self.shared.book().started.push(location.clone());
            Ok(Box::new(FaultUpload {
                path: location.clone(),
                upload,
                shared: Arc::clone(&self.shared),
            }))
        }
    }
}

/// A multipart upload whose parts and completion can fail, booked on its way.
#[derive(Debug)]
struct FaultUpload {
    path: Path,
    upload: Box<dyn MultipartUpload>,
    shared: Arc<Shared>,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if let Err(e) = self.shared.check(Op::Part, &self.path) {
            return Box::pin(async move { Err(e) });
        }
        let part = self.upload.put_part(data);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            part.await?;
            shared.book().parts += 1;
            Ok(())
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let shared = Arc::clone(&self.shared);
        let path = self.path.clone();
        let done = shared
            .around(Op::Complete, &path, async {
                let done = self.upload.complete().await?;
                self.shared.book().completed.push(self.path.clone());
                Ok(done)
            })
            .await?;
        Ok(done)
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await?;
        self.shared.book().aborted.push(self.path.clone());
        Ok(())
    }
}
