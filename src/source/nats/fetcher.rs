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
//!
//! Requests go out on the core NATS connection with one reply inbox for the
//! fetcher's life, subscribed once ([`Pull`]): a delivery is a plain
//! [`Message`] whose reply subject carries its JetStream metadata
//! ([`super::delivery`]), so reading one costs no JetStream context per
//! message and a request no subscription of its own. One request at a time
//! on one inbox also keeps deliveries in the consumer's order.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::{Client, Message, StatusCode, Subject, Subscriber};
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::worker::{release, shutdown_requested, PullError, Stop};

/// How nats-server says a pull request reached its byte cap.
const BYTE_CAP_REACHED: &str = "Message Size Exceeds MaxBytes";

/// How long a pull request waits on an idle stream before it is renewed.
pub(super) const FETCH_EXPIRY: Duration = Duration::from_secs(2);

/// A running fetcher and the batches it hands over.
pub(super) struct Fetcher {
    /// The connection the batches came on, to give them back by.
    client: Client,
    batches: mpsc::Receiver<Result<Vec<Message>, PullError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fetcher {
    /// Starts fetching batches of up to `batch` messages and `max_bytes`
    /// bytes from `consumer` over `client` until [`Fetcher::close`], an
    /// error or shutdown.
    pub(super) fn start(
        client: &Client,
        consumer: &PullConsumer,
        batch: usize,
        max_bytes: usize,
        shutdown: &watch::Receiver<bool>,
    ) -> Self {
        let (tx, batches) = mpsc::channel(1);
        let (opener, consumer, mut shutdown) = (client.clone(), consumer.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let mut pull = match Pull::open(&opener, &consumer).await {
                Ok(pull) => pull,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut full = true;
            // Closed by the worker: no further request.
            while !tx.is_closed() {
                let fetched = if full {
                    pull.fetch(batch, max_bytes, false, &mut shutdown).await
                } else {
                    pull.next_chunk(batch, max_bytes, &mut shutdown).await
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
                    release(&pull.client, &chunk).await;
                    return;
                }
                if ended {
                    return;
                }
            }
        });
        Self {
            client: client.clone(),
            batches,
            task,
        }
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
                release(&self.client, &chunk).await;
            }
        }
        let _ = self.task.await;
    }
}

/// The fetcher ended without saying why (it panicked).
fn ended() -> PullError {
    PullError::Nats("the fetch task ended".into())
}

/// The subject of a durable consumer's pull requests (JetStream's API
/// under its default prefix, the one Strata's JetStream contexts use).
fn next_subject(stream: &str, consumer: &str) -> Subject {
    Subject::from(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"))
}

/// One station's pull requests and the inbox their deliveries come to.
///
/// Requests go out on the connection that subscribed the inbox, so the
/// server always knows the inbox before a request names it (a request whose
/// reply subject nobody listens to is dropped, and would only end by the
/// read's time limit).
pub(super) struct Pull {
    client: Client,
    next: Subject,
    inbox: Subject,
    deliveries: Subscriber,
}

impl Pull {
    /// Subscribes an inbox for the requests to `consumer`, on `client`.
    pub(super) async fn open(client: &Client, consumer: &PullConsumer) -> Result<Self, PullError> {
        let inbox = Subject::from(client.new_inbox());
        let deliveries = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| PullError::Nats(e.into()))?;
        let info = consumer.cached_info();
        Ok(Self {
            client: client.clone(),
            next: next_subject(&info.stream_name, &info.name),
            inbox,
            deliveries,
        })
    }

    /// Takes what the stream has now (a no-wait fetch of up to `batch`), or,
    /// when it has nothing, waits up to [`FETCH_EXPIRY`] for one message.
    /// Empty when the stream stayed idle.
    async fn next_chunk(
        &mut self,
        batch: usize,
        max_bytes: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<Message>, PullError> {
        let chunk = self.fetch(batch, max_bytes, false, shutdown).await?;
        if !chunk.is_empty() {
            return Ok(chunk);
        }
        self.fetch(batch, max_bytes, true, shutdown).await
    }

    /// Sends one pull request (up to `batch` messages and `max_bytes` bytes,
    /// or with `wait` one message within [`FETCH_EXPIRY`]) and reads it to
    /// its end.
    pub(super) async fn fetch(
        &mut self,
        batch: usize,
        max_bytes: usize,
        wait: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<Message>, PullError> {
        let request = if wait {
            BatchConfig {
                batch: 1,
                expires: Some(FETCH_EXPIRY),
                ..BatchConfig::default()
            }
        } else {
            BatchConfig {
                batch,
                max_bytes,
                no_wait: true,
                ..BatchConfig::default()
            }
        };
        let want = request.batch;
        let request = serde_json::to_vec(&request).map_err(|e| PullError::Nats(e.into()))?;
        self.client
            .publish_with_reply(self.next.clone(), self.inbox.clone(), request.into())
            .await
            .map_err(|e| PullError::Nats(e.into()))?;
        let deliveries = &mut self.deliveries;
        let read = async move {
            let mut chunk = Vec::with_capacity(want);
            while chunk.len() < want {
                let Some(m) = deliveries.next().await else {
                    return Err(PullError::Nats("the pull subscription ended".into()));
                };
                if m.status == Some(StatusCode::IDLE_HEARTBEAT) {
                    continue;
                }
                match end_of_request(&m) {
                    None => chunk.push(m),
                    Some(Ok(())) => break,
                    Some(Err(e)) => return Err(e),
                }
            }
            Ok(chunk)
        };
        // A request whose end was lost (server restart) must not hang the worker.
        let limit = FETCH_EXPIRY + Duration::from_secs(10);
        let read = tokio::time::timeout(limit, read);
        tokio::pin!(read);
        tokio::select! {
            r = &mut read => match r {
                Ok(r) => r,
                Err(_) => Err(PullError::Nats("pull request got no answer in time".into())),
            },
            () = shutdown_requested(shutdown) => {
                // Read the request to its end (it expires within FETCH_EXPIRY)
                // and give its messages back: redelivered at once, not after the
                // ack wait, to whoever fetches the station next.
                let rest = FETCH_EXPIRY + Duration::from_secs(1);
                if let Ok(Ok(Ok(chunk))) = tokio::time::timeout(rest, read).await {
                    release(&self.client, &chunk).await;
                }
                Err(PullError::Stop(Stop::Shutdown))
            }
        }
    }
}

/// Whether `m` ends the pull request being read: `None` for a delivery,
/// `Some(Ok)` for the server's word that the request is over (nothing more
/// now, expired, or its byte cap reached), `Some(Err)` for any other status.
fn end_of_request(m: &Message) -> Option<Result<(), PullError>> {
    let status = m.status.filter(|&s| s != StatusCode::OK)?;
    let description = m.description.as_deref().unwrap_or("");
    Some(match status {
        // 404 "No Messages" (a no-wait request, nothing now), 408 "Request
        // Timeout" (expired, or a no-wait request that took what there was).
        StatusCode::NOT_FOUND | StatusCode::TIMEOUT => Ok(()),
        // nats-server ends a request whose next message would pass its byte
        // cap with 409 "Message Size Exceeds MaxBytes": a full batch.
        StatusCode::REQUEST_TERMINATED if description.contains(BYTE_CAP_REACHED) => Ok(()),
        status => Err(PullError::Nats(
            format!("the pull request was refused: {status} {description}").into(),
        )),
    })
}
