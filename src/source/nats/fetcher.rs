//! A station worker's fetcher: the task that sends the durable pull consumer's
//! requests and reads each to its end, one request at a time, handing every
//! batch over to the worker through a channel of one.
//!
//! The next request goes out as soon as the previous batch is handed over, on
//! the fetcher's own task, so the server does not wait while the worker
//! converts and appends a batch (before, the worker sent it between its own
//! steps). Bounds: one batch in the channel and one in the fetcher's hand at
//! most; while the worker takes nothing (the WAL is full) the fetcher waits
//! with its batch in hand and sends no request, so no delivery waits in the
//! broker for a request nobody reads. After a batch shorter than asked (the
//! stream has no more now) the next request waits up to [`FETCH_EXPIRY`] for
//! one message, so an idle stream costs one request every 2 s. When the
//! worker stops, every batch fetched and not taken is given back (a negative
//! acknowledgement: redelivered at once, to whoever reads the station next).

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message;
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::worker::{release, shutdown_requested, PullError, Stop};

/// How nats-server says a pull request reached its byte cap.
const BYTE_CAP_REACHED: &str = "Message Size Exceeds MaxBytes";

/// How long a pull request waits on an idle stream before it is renewed.
pub(super) const FETCH_EXPIRY: Duration = Duration::from_secs(2);

/// A running fetcher and the batches it hands over.
pub(super) struct Fetcher {
    batches: mpsc::Receiver<Result<Vec<Message>, PullError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fetcher {
    /// Starts fetching batches of up to `batch` messages and `max_bytes`
    /// bytes from `consumer` until [`Fetcher::close`], an error or shutdown.
    pub(super) fn start(
        consumer: &PullConsumer,
        batch: usize,
        max_bytes: usize,
        shutdown: &watch::Receiver<bool>,
    ) -> Self {
        let (tx, batches) = mpsc::channel(1);
        let (consumer, mut shutdown) = (consumer.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let mut full = true;
            // Closed by the worker: no further request.
            while !tx.is_closed() {
                let fetched = if full {
                    fetch(&consumer, batch, max_bytes, false, &mut shutdown).await
                } else {
                    next_chunk(&consumer, batch, max_bytes, &mut shutdown).await
                };
                let ended = fetched.is_err();
                if let Ok(chunk) = &fetched {
                    full = chunk.len() >= batch;
                    if chunk.is_empty() {
                        continue;
                    }
                }
                // The worker stopped taking batches: this one goes back.
                if let Err(mpsc::error::SendError(Ok(chunk))) = tx.send(fetched).await {
                    release(&chunk).await;
                    return;
                }
                if ended {
                    return;
                }
            }
        });
        Self { batches, task }
    }

    /// A batch fetched already, if any; `None` when none is waiting.
    pub(super) fn ready(&mut self) -> Option<Result<Vec<Message>, PullError>> {
        match self.batches.try_recv() {
            Ok(batch) => Some(batch),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(ended())),
        }
    }

    /// The next batch, waiting at most `patience`; `None` if none came.
    pub(super) async fn within(
        &mut self,
        patience: Duration,
    ) -> Option<Result<Vec<Message>, PullError>> {
        match tokio::time::timeout(patience, self.batches.recv()).await {
            Ok(Some(batch)) => Some(batch),
            Ok(None) => Some(Err(ended())),
            Err(_) => None,
        }
    }

    /// Stops fetching and gives back every batch fetched and not taken,
    /// once the request being read (if any) has ended.
    pub(super) async fn close(mut self) {
        self.batches.close();
        while let Some(batch) = self.batches.recv().await {
            if let Ok(chunk) = batch {
                release(&chunk).await;
            }
        }
        let _ = self.task.await;
    }
}

/// The fetcher ended without saying why (it panicked).
fn ended() -> PullError {
    PullError::Nats("the fetch task ended".into())
}

/// Takes what the stream has now (a no-wait fetch of up to `batch`), or, when
/// it has nothing, waits up to [`FETCH_EXPIRY`] for one message. Empty when
/// the stream stayed idle.
async fn next_chunk(
    consumer: &PullConsumer,
    batch: usize,
    max_bytes: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, PullError> {
    let chunk = fetch(consumer, batch, max_bytes, false, shutdown).await?;
    if !chunk.is_empty() {
        return Ok(chunk);
    }
    fetch(consumer, batch, max_bytes, true, shutdown).await
}

/// Sends one pull request (up to `batch` messages and `max_bytes` bytes, or
/// with `wait` one message within [`FETCH_EXPIRY`]) and reads it to its end.
pub(super) async fn fetch(
    consumer: &PullConsumer,
    batch: usize,
    max_bytes: usize,
    wait: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, PullError> {
    let request = if wait {
        consumer
            .batch()
            .max_messages(1)
            .expires(FETCH_EXPIRY)
            .messages()
            .await
    } else {
        consumer
            .fetch()
            .max_messages(batch)
            .max_bytes(max_bytes)
            .messages()
            .await
    };
    let request = request.map_err(|e| PullError::Nats(e.into()))?;
    let read = async {
        let mut chunk = Vec::with_capacity(if wait { 1 } else { batch });
        let mut request = request;
        while let Some(m) = request.next().await {
            match m {
                Ok(m) => chunk.push(m),
                // nats-server ends a request whose next message would pass its
                // byte cap with status 409 "Message Size Exceeds MaxBytes",
                // which async-nats hands over as an error: a full batch.
                Err(e) if e.to_string().contains(BYTE_CAP_REACHED) => break,
                Err(e) => return Err(e),
            }
        }
        Ok::<_, async_nats::Error>(chunk)
    };
    // A request whose end was lost (server restart) must not hang the worker.
    let limit = FETCH_EXPIRY + Duration::from_secs(10);
    let read = tokio::time::timeout(limit, read);
    tokio::pin!(read);
    tokio::select! {
        r = &mut read => match r {
            Ok(r) => r.map_err(PullError::Nats),
            Err(_) => Err(PullError::Nats("pull request got no answer in time".into())),
        },
        () = shutdown_requested(shutdown) => {
            // Read the request to its end (it expires within FETCH_EXPIRY)
            // and give its messages back: redelivered at once, not after the
            // ack wait, to whoever fetches the station next.
            let rest = FETCH_EXPIRY + Duration::from_secs(1);
            if let Ok(Ok(Ok(chunk))) = tokio::time::timeout(rest, read).await {
                release(&chunk).await;
            }
            Err(PullError::Stop(Stop::Shutdown))
        }
    }
}
