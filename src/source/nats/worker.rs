//! One station's consumer loop: fetch a batch from the durable pull consumer,
//! append it to the WAL, acknowledge it (one acknowledgement per batch under
//! `AckPolicy::All`, see [`super::acks`]), as a pipeline: while one batch's
//! append is in flight the next is prepared and its append queued, and the
//! ones after it fetched; batches are appended and acknowledged in arrival
//! order. Wait (without acknowledging or fetching further) while the WAL is
//! full; back off and retry on every transient error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::RetentionPolicy;
use async_nats::{Client, Message};
use futures::StreamExt as _;
use tokio::sync::watch;

use super::acks::{cumulative_ack, AckMode, Deliveries};
use super::convert::{find, header_list, micros_from_nanos, to_draft};
use super::delivery;
use super::fetcher::{Fetcher, FETCH_EXPIRY};
use super::identity::Identity;
use crate::cluster::lease::Lease;
use crate::identity::{expel_risk, ExpelInputs, GapRecord, GapTracker, IncarnationRecord};
use crate::layout::Hour;
use crate::message::{Draft, StationName, Timestamp};
use crate::metrics::Metrics;
use crate::nats::Provenance;
use crate::wal::{Appended, Wal, WalError};

/// The metrics `source` label of this source.
pub(crate) const SOURCE: &str = "nats";

/// How often a worker waiting on an idle stream looks up whether to stop.
const IDLE_CHECK: Duration = FETCH_EXPIRY;

/// Redelivery delay for a message delivered but not acknowledged (a
/// cluster member uses [`crate::cluster::lease::LeaseTiming::ack_wait`]).
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(60);

/// Messages delivered and not yet acknowledged, per consumer.
const MAX_ACK_PENDING: i64 = 100_000;

/// How often appends are retried while the WAL is poisoned.
const POISONED_RETRY: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(30)
};

/// How often the expel-risk gauge is refreshed.
const RISK_INTERVAL: Duration = Duration::from_secs(2);

/// Where a worker puts what it fetched: the WAL, or a test double.
pub(crate) trait Archive: Send + Sync + 'static {
    /// Takes the drafts into the log now, in call order, and returns the wait
    /// for their durability (see [`Wal::submit`]).
    fn submit(&self, drafts: Vec<Draft>) -> Submitted;
    /// Whether `(station, seq)` is already stored (see [`Wal::holds`]).
    fn holds(&self, station: &StationName, seq: u64) -> bool;
    /// The highest seq stored for `station` (see [`Wal::highest_seq`]).
    fn highest_seq(&self, station: &StationName) -> Option<u64>;
}

impl Archive for Wal {
    fn submit(&self, drafts: Vec<Draft>) -> Submitted {
        Box::pin(Wal::submit(self, drafts))
    }
    fn holds(&self, station: &StationName, seq: u64) -> bool {
        Wal::holds(self, station, seq)
    }
    fn highest_seq(&self, station: &StationName) -> Option<u64> {
        Wal::highest_seq(self, station)
    }
}

pub(crate) use crate::backoff::Backoff;

/// An append that has been handed to the archive and resolves once durable.
pub(crate) type Submitted =
    std::pin::Pin<Box<dyn Future<Output = Result<Appended, WalError>> + Send>>;

/// Resolves once shutdown is requested: the value turns `true` or the sender is gone.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Why a batch was not archived.
pub(super) enum Stop {
    /// Shutdown was requested, the WAL closed, or the station's lease
    /// ended: the worker ends.
    Shutdown,
}

/// Settings shared by every worker of a source.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) consumer: String,
    pub(crate) fetch_batch: usize,
    /// Most bytes one pull request asks for ([`fetch_max_bytes`]).
    pub(crate) fetch_max_bytes: usize,
    /// The ack wait of a consumer this worker creates.
    pub(crate) ack_wait: Duration,
}

/// Bytes one pull request asks for at most, besides `fetch_batch` messages:
/// four batches may be in the pipeline, and `fetch_batch` messages of up to
/// the server's maximum payload (1 MiB by default) would otherwise hold
/// gigabytes. Never below twice the server's maximum payload, since a request
/// too small for the next message would get nothing at all.
pub(crate) fn fetch_max_bytes(server_max_payload: usize) -> usize {
    const FETCH_MAX_BYTES: usize = 16 << 20;
    FETCH_MAX_BYTES.max(server_max_payload.saturating_mul(2))
}

/// What a delivery's `Strata-*` headers amount to.
enum Claim {
    /// No valid signed claim on this station: a new message.
    None,
    /// A signed copy of a `(station, seq)` this WAL stored.
    Stored,
    /// A signed copy of a seq this WAL never stored: the archive decides.
    NotInWal(Provenance),
}

/// A chunk turned into what to store and what to acknowledge.
#[derive(Default)]
struct Prepared {
    drafts: Vec<Draft>,
    /// Indexes of the messages to acknowledge once the drafts are durable:
    /// every message decided (stored, or a restored copy already archived).
    acks: Vec<usize>,
    /// `(stream sequence, consumer sequence)` of each message with
    /// JetStream metadata, in delivery order.
    delivered: Vec<(u64, u64)>,
    /// Restored copies of archived messages: acknowledged, not archived.
    echoes: usize,
    /// Stream sequences skipped by the stream (expelled before read).
    gaps: Vec<(u64, u64)>,
}

/// A chunk whose append is in flight, waiting to be acknowledged.
struct InFlight {
    chunk: Vec<Message>,
    /// What to acknowledge once the drafts are durable (drafts taken).
    prepared: Prepared,
    /// The first attempt to append the drafts (already queued in the log);
    /// `None` when there were none.
    append: Option<Submitted>,
}

/// The consumer state of one station. Everything a station's archiving needs
/// lives here, so that one station's trouble never touches another.
pub(crate) struct StationWorker {
    station: StationName,
    /// The connection deliveries arrive on and acknowledgements leave by.
    client: Client,
    js: jetstream::Context,
    config: WorkerConfig,
    archive: Arc<dyn Archive>,
    identity: Arc<Identity>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    consumer: Option<PullConsumer>,
    /// How the consumer's deliveries are acknowledged (its ack policy).
    ack_mode: AckMode,
    /// The current session's deliveries (for [`AckMode::Cumulative`]).
    deliveries: Deliveries,
    /// Stream sequences `(after, through]` delivered before this session
    /// and not acknowledged: read from the stream and stored before the
    /// session's first acknowledgement.
    catch_up: Option<(u64, u64)>,
    /// Whether the per-message-ack migration note was logged.
    warned_explicit: bool,
    /// The stream incarnation the consumer belongs to.
    incarnation: Option<IncarnationRecord>,
    gaps: GapTracker,
    errors: Backoff,
    /// In a cluster: the station's lease, checked before every fetch and append.
    lease: Option<Lease>,
}

impl StationWorker {
    pub(crate) fn new(
        station: StationName,
        client: Client,
        config: WorkerConfig,
        archive: Arc<dyn Archive>,
        identity: Arc<Identity>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            station,
            js: jetstream::new(client.clone()),
            client,
            config,
            archive,
            identity,
            metrics,
            shutdown,
            consumer: None,
            ack_mode: AckMode::Cumulative,
            deliveries: Deliveries::new(0),
            catch_up: None,
            warned_explicit: false,
            incarnation: None,
            gaps: GapTracker::new(None),
            errors: Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
            lease: None,
        }
    }

    /// Archives only while `lease` is held (a cluster member).
    pub(crate) fn with_lease(mut self, lease: Option<Lease>) -> Self {
        self.lease = lease;
        self
    }

    /// Whether the station's lease (if any) has ended.
    fn lease_lost(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| !l.held())
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err() || self.lease_lost()
    }

    /// Sleeps `d` unless shutdown comes first; returns whether to go on.
    async fn pause(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !self.stopping(),
            () = shutdown_requested(&mut self.shutdown) => false,
        }
    }

    /// Logs a transient error and waits before the next attempt.
    async fn transient(&mut self, what: &str, error: &(dyn std::fmt::Display + Sync)) -> bool {
        self.metrics.inc_source_error(SOURCE);
        let delay = self.errors.delay();
        tracing::warn!(
            station = %self.station,
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            "NATS {what} failed; retrying",
        );
        self.pause(delay).await
    }

    /// Runs until shutdown (or until the WAL is closed).
    pub(crate) async fn run(mut self) {
        tracing::info!(station = %self.station, consumer = %self.config.consumer, "archiving station");
        let risk = tokio::spawn(watch_expel_risk(
            self.station.clone(),
            self.js.clone(),
            self.config.consumer.clone(),
            Arc::clone(&self.metrics),
            self.shutdown.clone(),
        ));
        while !self.stopping() {
            let consumer = match self.consumer().await {
                Ok(c) => c,
                Err(SetupError::WorkQueue) => {
                    tracing::error!(
                        station = %self.station,
                        "stream uses work-queue retention: acknowledging its messages would take \
                         them away from its consumers, so Strata does not archive it",
                    );
                    break;
                }
                Err(SetupError::AckNone) => {
                    tracing::error!(
                        station = %self.station,
                        consumer = %self.config.consumer,
                        "the durable consumer has ack policy none: the server forgets a message as \
                         soon as it is sent, so Strata cannot archive through it without risking \
                         loss; delete the consumer (Strata creates its own) or set [nats] consumer \
                         to another name",
                    );
                    break;
                }
                Err(SetupError::Nats(e)) => {
                    if self.transient("consumer setup", &e).await {
                        continue;
                    }
                    break;
                }
            };
            match self.pull(&consumer).await {
                Ok(()) => {}
                Err(PullError::Stop(Stop::Shutdown)) => break,
                Err(PullError::Nats(e)) => {
                    // The consumer may be gone (deleted, stream recreated): look it up again.
                    self.consumer = None;
                    if !self.transient("fetch", &e).await {
                        break;
                    }
                }
                Err(PullError::Resync(why)) => {
                    // A new session: set up again, which first stores what
                    // the server still counts as delivered and unacknowledged.
                    self.consumer = None;
                    if !self.transient("delivery tracking", &why).await {
                        break;
                    }
                }
            }
        }
        risk.abort();
        tracing::info!(station = %self.station, "station worker stopped");
    }

    /// The durable pull consumer, created on first use, and the stream
    /// incarnation it belongs to. A new consumer starts at the first message
    /// the stream still holds; an existing one resumes after the last
    /// acknowledged message.
    async fn consumer(&mut self) -> Result<PullConsumer, SetupError> {
        if let Some(c) = &self.consumer {
            return Ok(c.clone());
        }
        let nats = |what: &str, e: &dyn std::fmt::Display| {
            SetupError::Nats(format!("{what} failed ({e})").into())
        };
        // Needed to tell restored copies from new messages.
        self.identity.key().await.map_err(|e| {
            nats(
                "reading the archive's restore key (NATS messages wait in the stream)",
                &e,
            )
        })?;
        let mut stream = self
            .js
            .get_stream(self.station.as_str())
            .await
            .map_err(|e| nats("looking up the stream (does it exist?)", &e))?;
        let info = stream.cached_info().clone();
        if info.config.retention == RetentionPolicy::WorkQueue {
            return Err(SetupError::WorkQueue);
        }
        let existed = stream.consumer_info(&self.config.consumer).await.is_ok();
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &self.config.consumer,
                pull::Config {
                    durable_name: Some(self.config.consumer.clone()),
                    description: Some("Strata archive (second storage tier)".to_string()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    ack_wait: self.config.ack_wait,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| SetupError::Nats(e.into()))?;
        // An existing consumer keeps the policy it was created with (JetStream
        // cannot change it): earlier versions created `AckPolicy::Explicit` ones.
        let session = consumer.cached_info().clone();
        let mode = AckMode::of(session.config.ack_policy).ok_or(SetupError::AckNone)?;
        if mode == AckMode::PerMessage && !self.warned_explicit {
            self.warned_explicit = true;
            tracing::warn!(
                station = %self.station,
                consumer = %self.config.consumer,
                "this durable consumer was created by an earlier Strata with ack policy explicit, \
                 which JetStream cannot change: Strata keeps acknowledging each message for it \
                 (slower). To switch to one acknowledgement per batch, see README, \
                 \"Migrating a consumer to ack policy all\"",
            );
        }
        // The consumer belongs to the incarnation that existed before and
        // after it was created; a stream recreated meanwhile is retried.
        let again = stream
            .info()
            .await
            .map_err(|e| nats("reading the stream", &e))?
            .created;
        if again != info.created {
            return Err(SetupError::Nats(
                "the stream was deleted and created again during setup".into(),
            ));
        }
        let created = rfc3339_nanos(info.created.unix_timestamp_nanos());
        let inc = self
            .identity
            .bind(
                &self.station,
                &created,
                existed,
                self.archive.as_ref(),
                &self.metrics,
            )
            .await
            .map_err(|e| SetupError::Nats(e.into()))?;
        let floor = consumer.cached_info().ack_floor.stream_sequence;
        self.gaps = GapTracker::new(if existed {
            Some(floor + 1)
        } else if inc.incarnation > 0 {
            // A new life of a stream Strata archived before: it starts at 1.
            Some(1)
        } else {
            None
        });
        if !existed {
            if let Some(first) = (info.state.first_sequence > 1 && inc.incarnation == 0)
                .then_some(info.state.first_sequence)
            {
                tracing::info!(
                    station = %self.station,
                    first_stream_seq = first,
                    "first archiving of this stream starts at the oldest message it still holds",
                );
            }
        }
        self.incarnation = Some(inc);
        self.ack_mode = mode;
        self.deliveries = Deliveries::new(session.delivered.consumer_sequence);
        // Deliveries of earlier sessions still unacknowledged lie between the
        // ack floor and the last delivered stream sequence.
        self.catch_up = (mode == AckMode::Cumulative && session.num_ack_pending > 0).then_some((
            session.ack_floor.stream_sequence,
            session.delivered.stream_sequence,
        ));
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// Archives batches until shutdown or a NATS error, as a pipeline: while
    /// one batch's append (write + fsync) is in flight, the next batch is
    /// prepared and its append queued, and the ones after it fetched by the
    /// station's [`Fetcher`], which sends each request as soon as the batch
    /// before it is handed over, so the server does not wait for the worker
    /// between batches. A batch is acknowledged once it is durable, strictly
    /// in the order batches arrived, so a batch costs the longest stage
    /// instead of their sum, and consecutive appends can share an fsync.
    ///
    /// Bounds: besides the batch whose append is in flight, one batch is
    /// being prepared, and the fetcher holds at most two more (one handed
    /// over, one in hand) and sends no request while it cannot hand a batch
    /// over. So while the WAL is full (the oldest batch's append is retried)
    /// the worker holds at most three extra unacknowledged batches and leaves
    /// no pull request outstanding: every request is read to its end, since
    /// deliveries to a request nobody reads would sit in the broker until
    /// redelivered after [`ACK_WAIT`]. At shutdown the batches being stored
    /// are finished (made durable and acknowledged) and fetched ones are given
    /// back unstored (negatively acknowledged): the broker redelivers them at
    /// once, to whoever fetches the station next.
    async fn pull(&mut self, consumer: &PullConsumer) -> Result<(), PullError> {
        if let Some((after, through)) = self.catch_up.take() {
            self.catch_up(after, through).await?;
        }
        let (batch, max_bytes) = (self.config.fetch_batch, self.config.fetch_max_bytes);
        let mut fetcher = Fetcher::start(&self.client, consumer, batch, max_bytes, &self.shutdown);
        let result = self.pull_from(&mut fetcher).await;
        fetcher.close().await;
        result
    }

    /// The pipeline of [`StationWorker::pull`] on a running fetcher.
    async fn pull_from(&mut self, fetcher: &mut Fetcher) -> Result<(), PullError> {
        let mut inflight: Option<InFlight> = None;
        loop {
            if self.stopping() {
                if let Some(f) = inflight.take() {
                    self.finish(f).await?;
                }
                return Err(PullError::Stop(Stop::Shutdown));
            }
            let fetched = match fetcher.ready() {
                Some(fetched) => fetched,
                None => {
                    // Nothing new right now: finish what is in flight before
                    // waiting for more, so its acknowledgement is not held back.
                    if let Some(f) = inflight.take() {
                        self.finish(f).await?;
                        continue;
                    }
                    // Wait, looking up now and then whether to stop (shutdown,
                    // or in a cluster the lease).
                    let mut shutdown = self.shutdown.clone();
                    let waited = tokio::select! {
                        fetched = fetcher.within(IDLE_CHECK) => fetched,
                        () = shutdown_requested(&mut shutdown) => None,
                    };
                    match waited {
                        Some(fetched) => fetched,
                        None => continue,
                    }
                }
            };
            let chunk = match fetched {
                Ok(chunk) => chunk,
                Err(e) => {
                    if let Some(f) = inflight.take() {
                        self.finish(f).await?;
                    }
                    return Err(e);
                }
            };
            let previous = inflight.take();
            inflight = Some(self.advance(chunk, previous).await?);
            self.errors.reset();
        }
    }

    /// Starts storing `chunk`, then finishes `previous` (the batch before it).
    async fn advance(
        &mut self,
        chunk: Vec<Message>,
        previous: Option<InFlight>,
    ) -> Result<InFlight, PullError> {
        let started = self.start_store(chunk).await;
        if let Some(previous) = previous {
            self.finish(previous).await?;
        }
        started.map_err(PullError::Stop)
    }

    /// Makes a batch the durable consumer delivered durable, then
    /// acknowledges it as the consumer's ack policy says.
    async fn finish(&mut self, mut f: InFlight) -> Result<(), PullError> {
        self.make_durable(&mut f).await.map_err(PullError::Stop)?;
        let (chunk, prepared) = (f.chunk, f.prepared);
        match self.ack_mode {
            AckMode::PerMessage => {
                self.ack_each(&chunk, &prepared.acks).await;
                Ok(())
            }
            AckMode::Cumulative => {
                let whole = self
                    .deliveries
                    .observe(prepared.delivered.iter().map(|&(_, consumer)| consumer))
                    && prepared.delivered.len() == chunk.len();
                if !whole {
                    return Err(PullError::Resync(
                        "a delivery of the consumer did not arrive (connection lost, or another \
                         client reads the same durable consumer); starting a new session"
                            .into(),
                    ));
                }
                if prepared.acks.len() != chunk.len() {
                    return Err(PullError::Resync(
                        "a message could not be decided on (see the error above); it stays \
                         unacknowledged and is read again"
                            .into(),
                    ));
                }
                // Why one acknowledgement covers the chunk. Under AckPolicy::All,
                // acknowledging stream sequence S acknowledges every message of the
                // stream up to S, so it must not cover a message the server counts as
                // delivered that is not durable here:
                // - Every delivery of this session up to this chunk is durable or
                //   decided: chunks are finished one at a time in the order they
                //   arrived (a later chunk's append may already be in flight, but it
                //   is acknowledged only after this one), this one is durable (its
                //   append returned after fsync), and a chunk with an undecided
                //   message is never acknowledged (the session ends above instead).
                // - The session has seen every delivery since it began: the server
                //   numbers deliveries (first ones and redeliveries) one apart, and
                //   `deliveries` checked the numbers follow on from the consumer's
                //   count when the session began; a missed one ends the session above.
                // - Deliveries of earlier sessions (processes, connections) still
                //   unacknowledged lie between the ack floor and the last delivered
                //   stream sequence at the session's start: `catch_up` read and stored
                //   them from the stream before the first fetch.
                // - Chunks fetched after this one: first deliveries go in stream
                //   order, so their messages at or below S are redeliveries of
                //   messages already stored.
                // Acknowledgements leave in storage order: each chunk is acknowledged
                // only after every chunk before it, on the same connection.
                let top = cumulative_ack(prepared.delivered.iter().map(|&(stream, _)| stream));
                if let Some(i) = top {
                    self.ack_each(&chunk, &[i]).await;
                }
                Ok(())
            }
        }
    }

    /// Reads the stream's messages in `(after, through]` (delivered by an
    /// earlier session and not acknowledged) through a temporary ordered
    /// consumer and stores them, so that acknowledgements of this session,
    /// which cover every stream sequence below theirs, cover only durable
    /// messages. What the WAL already holds is dropped as a duplicate.
    async fn catch_up(&mut self, after: u64, through: u64) -> Result<(), PullError> {
        if through <= after {
            return Ok(());
        }
        tracing::info!(
            station = %self.station,
            first_stream_seq = after + 1,
            last_stream_seq = through,
            "storing what an earlier session was delivered and did not acknowledge, \
             before acknowledging anything above it",
        );
        let nats = |e: &dyn std::fmt::Display| PullError::Nats(e.to_string().into());
        let stream = self
            .js
            .get_stream(self.station.as_str())
            .await
            .map_err(|e| nats(&e))?;
        let reader = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| nats(&e))?;
        if reader.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = reader.messages().await.map_err(|e| nats(&e))?;
        let limit = FETCH_EXPIRY + Duration::from_secs(10);
        let mut chunk = Vec::new();
        loop {
            if self.stopping() {
                release(&self.client, &chunk).await;
                return Err(PullError::Stop(Stop::Shutdown));
            }
            let next = tokio::time::timeout(limit, messages.next())
                .await
                .map_err(|_| nats(&"reading unacknowledged messages back timed out"))?;
            let last = match next {
                None => true,
                Some(m) => {
                    let m = m.map_err(|e| nats(&e))?.message;
                    let info = delivery::info(m.reply.as_deref()).map_err(|e| nats(&e))?;
                    let (seq, pending) = (info.stream_sequence, info.pending);
                    if seq <= through {
                        chunk.push(m);
                    }
                    pending == 0 || seq >= through
                }
            };
            if !chunk.is_empty() && (chunk.len() >= self.config.fetch_batch || last) {
                self.store(std::mem::take(&mut chunk)).await?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Stores a chunk without acknowledging it (what `catch_up` reads).
    async fn store(&mut self, chunk: Vec<Message>) -> Result<(), PullError> {
        let mut f = self.start_store(chunk).await.map_err(PullError::Stop)?;
        self.make_durable(&mut f).await.map_err(PullError::Stop)?;
        if f.prepared.acks.len() != f.prepared.delivered.len() {
            return Err(PullError::Resync(
                "a message delivered before could not be decided on; retrying".into(),
            ));
        }
        Ok(())
    }

    /// Prepares a chunk and starts its append. Gaps the chunk reveals are
    /// recorded in the archive first, so a crash cannot forget them.
    async fn start_store(&mut self, chunk: Vec<Message>) -> Result<InFlight, Stop> {
        let mut prepared = self.prepare(&chunk).await;
        for &(first, last) in &prepared.gaps {
            if let Some((first, last)) = self.expelled(first, last).await? {
                self.record_gap(first, last).await?;
            }
        }
        if prepared.echoes > 0 {
            self.metrics
                .inc_restore_echoes(self.station.as_str(), prepared.echoes as u64);
        }
        // Right before the append: past the lease's deadline another process
        // may own the station; the chunk is given back unstored.
        if self.lease_lost() {
            release(&self.client, &chunk).await;
            return Err(Stop::Shutdown);
        }
        let drafts = std::mem::take(&mut prepared.drafts);
        // Queued in the log here, so appends reach the WAL in the order the
        // chunks arrived; only the wait for their fsync overlaps.
        let append = (!drafts.is_empty()).then(|| self.archive.submit(drafts));
        Ok(InFlight {
            chunk,
            prepared,
            append,
        })
    }

    /// Waits until a chunk is durable: its first append, or when that failed
    /// (the WAL full, an I/O error) the retrying path. The chunk is then
    /// prepared again, since its drafts went to the first attempt, and what
    /// that attempt did store is dropped as a duplicate.
    async fn make_durable(&mut self, f: &mut InFlight) -> Result<(), Stop> {
        let Some(first) = f.append.take() else {
            return Ok(());
        };
        match first.await {
            Ok(appended) => {
                self.metrics
                    .inc_appended(self.station.as_str(), SOURCE, &appended);
                return Ok(());
            }
            Err(WalError::Closed) => return Err(Stop::Shutdown),
            Err(WalError::Full { .. }) => self.metrics.inc_wal_full(SOURCE),
            Err(_) => {}
        }
        let mut again = self.prepare(&f.chunk).await;
        let drafts = std::mem::take(&mut again.drafts);
        // What to acknowledge follows this preparation, whose drafts are stored.
        f.prepared = again;
        self.append_all(drafts).await
    }

    /// Appends `drafts`, retrying until they are durable. While the WAL is
    /// full the worker waits (the messages stay in the broker); a chunk
    /// larger than a quarter of the WAL's budget goes in parts, so that one
    /// chunk of large messages can never be too big to fit at all.
    async fn append_all(&mut self, drafts: Vec<Draft>) -> Result<(), Stop> {
        let mut full = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut warned_full = false;
        let mut part_limit: Option<u64> = None;
        let mut failing = false;
        let mut rest = drafts;
        while !rest.is_empty() {
            let take = match part_limit {
                None => rest.len(),
                Some(limit) => {
                    let mut bytes = 0;
                    rest.iter()
                        .take_while(|d| {
                            bytes += d.payload.len() as u64 + 256;
                            bytes <= limit
                        })
                        .count()
                        .max(1)
                }
            };
            let part: Vec<Draft> = rest[..take].to_vec();
            // Right before the append: past the lease's deadline another
            // process may own the station; the batch stays unacknowledged.
            if self.lease_lost() {
                return Err(Stop::Shutdown);
            }
            match self.archive.submit(part).await {
                Ok(appended) => {
                    self.metrics
                        .inc_appended(self.station.as_str(), SOURCE, &appended);
                    if warned_full {
                        tracing::info!(station = %self.station, "WAL has room again; archiving resumed");
                        warned_full = false;
                    }
                    rest.drain(..take);
                }
                Err(WalError::Full { used, max }) => {
                    // Backpressure: the messages stay unacknowledged in the broker.
                    self.metrics.inc_wal_full(SOURCE);
                    part_limit.get_or_insert((max / 4).max(1));
                    if !warned_full {
                        tracing::warn!(
                            station = %self.station, used, max,
                            "WAL is full; holding NATS messages in the broker until uploads make room",
                        );
                        warned_full = true;
                    }
                    if !self.pause(full.delay()).await {
                        return Err(Stop::Shutdown);
                    }
                }
                Err(WalError::Closed) => return Err(Stop::Shutdown),
                Err(e) => {
                    // Logged once per episode (a poisoned WAL stays poisoned
                    // until a restart; /healthz says so meanwhile).
                    if !failing {
                        tracing::error!(
                            station = %self.station, error = %e,
                            "cannot append NATS messages to the WAL; they stay in the broker, retrying",
                        );
                        failing = true;
                    }
                    let delay = if matches!(e, WalError::Poisoned) {
                        POISONED_RETRY
                    } else {
                        self.errors.delay()
                    };
                    if !self.pause(delay).await {
                        return Err(Stop::Shutdown);
                    }
                }
            }
        }
        if failing {
            tracing::info!(station = %self.station, "appending NATS messages to the WAL works again");
        }
        Ok(())
    }

    /// The part of a skipped range `first..=last` that the stream no longer
    /// holds: only that part is a gap. Sequences it still holds were handed
    /// to an earlier run that died before acknowledging them (`kill -9`);
    /// the broker redelivers them after the ack wait, so they are late, not
    /// lost.
    async fn expelled(&mut self, first: u64, last: u64) -> Result<Option<(u64, u64)>, Stop> {
        loop {
            let held = async {
                let mut stream = self.js.get_stream(self.station.as_str()).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    stream.info().await?.state.first_sequence,
                )
            }
            .await;
            match held {
                Ok(first_held) => {
                    return Ok((first < first_held).then(|| (first, last.min(first_held - 1))))
                }
                Err(e) => {
                    if !self
                        .transient("reading the stream's first sequence", &e)
                        .await
                    {
                        return Err(Stop::Shutdown);
                    }
                }
            }
        }
    }

    /// Records a gap in the archive (retrying while the store fails: the
    /// chunk stays unacknowledged meanwhile), logs it and counts it.
    async fn record_gap(&mut self, first: u64, last: u64) -> Result<(), Stop> {
        let Some(inc) = self.incarnation.clone() else {
            return Ok(());
        };
        let gap = GapRecord::new(&inc, first, last, Timestamp::now());
        tracing::error!(
            station = %self.station,
            incarnation = inc.incarnation,
            stream_created = %inc.stream_created,
            first_stream_seq = first,
            last_stream_seq = last,
            first_seq = gap.first_seq,
            last_seq = gap.last_seq,
            messages = gap.messages,
            "GAP: the stream expelled these messages before Strata read them; they are not in the archive",
        );
        self.metrics
            .inc_gap_messages(self.station.as_str(), gap.messages);
        loop {
            match self.identity.ledger.record_gap(&gap).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if !self.transient("recording a gap in the archive", &e).await {
                        return Err(Stop::Shutdown);
                    }
                }
            }
        }
    }

    /// Sorts a chunk into drafts to store, restored copies to acknowledge
    /// only, and gaps; messages without JetStream metadata are left
    /// unacknowledged (no identity).
    async fn prepare(&mut self, chunk: &[Message]) -> Prepared {
        // Archive listings of the hours restored copies name, for this chunk.
        let mut hours: HashMap<Hour, Vec<(u64, u64)>> = HashMap::new();
        let mut out = Prepared {
            drafts: Vec::with_capacity(chunk.len()),
            acks: Vec::with_capacity(chunk.len()),
            delivered: Vec::with_capacity(chunk.len()),
            ..Prepared::default()
        };
        let Some(inc) = self.incarnation.clone() else {
            return out;
        };
        for (i, m) in chunk.iter().enumerate() {
            let info = match delivery::info(m.reply.as_deref()) {
                Ok(info) => info,
                Err(e) => {
                    tracing::error!(
                        station = %self.station, subject = %m.subject, error = %e,
                        "NATS delivery without JetStream metadata; not archived",
                    );
                    continue;
                }
            };
            let stream_seq = info.stream_sequence;
            out.delivered.push((stream_seq, info.consumer_sequence));
            let published = micros_from_nanos(info.published_nanos);
            if let Some(gap) = self.gaps.observe(stream_seq) {
                out.gaps.push(gap);
            }
            let headers = header_list(m.headers.as_ref());
            let echo = match self.restore_claim(&headers, &m.payload) {
                Claim::None => false,
                Claim::Stored => true,
                Claim::NotInWal(claim) => {
                    match self
                        .archived_in(&mut hours, claim.timestamp, claim.seq.get())
                        .await
                    {
                        Ok(archived) => archived,
                        Err(e) => {
                            // Unknown: leave it in the stream for a later redelivery
                            // rather than risk a second copy.
                            tracing::warn!(
                                station = %self.station, seq = claim.seq.get(), error = %e,
                                "cannot check the archive for a restored copy; it stays in the stream",
                            );
                            continue;
                        }
                    }
                }
            };
            if echo {
                out.echoes += 1;
                out.acks.push(i);
                continue;
            }
            let seq = match inc.seq_of(stream_seq) {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::error!(
                        station = %self.station, stream_seq, error = %e,
                        "NATS message cannot be given an archive seq; left in the stream",
                    );
                    continue;
                }
            };
            out.drafts.push(to_draft(
                &self.station,
                seq,
                published,
                m.subject.as_str(),
                headers,
                m.payload.clone(),
            ));
            out.acks.push(i);
        }
        out
    }

    /// What a delivery's provenance headers amount to: a restored copy is
    /// signed by `strata restore` with the archive's key and names a
    /// `(station, seq)` of this station that is stored; anything else is new.
    fn restore_claim(&self, headers: &[crate::message::Header], payload: &[u8]) -> Claim {
        let Some(claim) = Provenance::from_headers(|name| find(headers, name)) else {
            return Claim::None;
        };
        let Some(key) = self.identity.loaded_key() else {
            return Claim::None;
        };
        if claim.station != self.station || !claim.verify(key, payload) {
            return Claim::None;
        }
        if self.archive.holds(&self.station, claim.seq.get()) {
            Claim::Stored
        } else {
            Claim::NotInWal(claim)
        }
    }

    /// Whether the archive holds `seq` in the hour partition of `timestamp`
    /// (a file whose seq range covers it), for a signed restored copy this
    /// WAL never stored (e.g. a new machine's WAL). One listing per hour and
    /// chunk.
    async fn archived_in(
        &self,
        hours: &mut HashMap<Hour, Vec<(u64, u64)>>,
        timestamp: Timestamp,
        seq: u64,
    ) -> Result<bool, crate::identity::ledger::LedgerError> {
        let hour = Hour::of(timestamp);
        let ranges = match hours.entry(hour) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                self.identity
                    .ledger
                    .file_ranges(&self.station, hour)
                    .await?,
            ),
        };
        Ok(ranges
            .iter()
            .any(|&(first, last)| first <= seq && seq <= last))
    }

    /// Acknowledges the messages `acks` of `chunk`, one by one.
    async fn ack_each(&self, chunk: &[Message], acks: &[usize]) {
        for &i in acks {
            if let Err(e) = reply(&self.client, &chunk[i], ACK).await {
                // Harmless: the broker redelivers it and the WAL drops the duplicate.
                self.metrics.inc_source_error(SOURCE);
                tracing::warn!(station = %self.station, error = %e, "NATS ack failed; the message will be redelivered");
            }
        }
    }
}

/// Gives a fetched batch that was never stored back to the server (a
/// negative acknowledgement): it is redelivered at once, e.g. to the
/// process that takes the station over, instead of after the ack wait.
pub(super) async fn release(client: &Client, chunk: &[Message]) {
    for m in chunk {
        let _ = reply(client, m, NAK).await;
    }
}

/// A positive acknowledgement of a JetStream delivery.
const ACK: &[u8] = b"+ACK";
/// A negative acknowledgement: redeliver now.
const NAK: &[u8] = b"-NAK";

/// Sends `answer` to a delivery's reply subject (nothing without one).
async fn reply(
    client: &Client,
    m: &Message,
    answer: &'static [u8],
) -> Result<(), async_nats::PublishError> {
    match &m.reply {
        Some(subject) => {
            client
                .publish(subject.clone(), bytes::Bytes::from_static(answer))
                .await
        }
        None => Ok(()),
    }
}

/// A server time (Unix nanoseconds) as RFC 3339 with nanoseconds, UTC.
pub(crate) fn rfc3339_nanos(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, sub)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| format!("{nanos}ns"))
}

/// Keeps `strata_expel_risk{station}` current, independently of archiving
/// (so it rises while archiving is stuck), until shutdown.
async fn watch_expel_risk(
    station: StationName,
    js: jetstream::Context,
    consumer: String,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match expel_inputs(&js, &station, &consumer).await {
            Ok(inputs) => metrics.set_expel_risk(station.as_str(), expel_risk(&inputs)),
            Err(e) => tracing::debug!(station = %station, error = %e, "expel risk not updated"),
        }
        tokio::select! {
            () = tokio::time::sleep(RISK_INTERVAL) => {}
            () = shutdown_requested(&mut shutdown) => return,
        }
    }
}

/// Reads the stream's limits and state and the consumer's position.
async fn expel_inputs(
    js: &jetstream::Context,
    station: &StationName,
    consumer: &str,
) -> Result<ExpelInputs, async_nats::Error> {
    let mut stream = js.get_stream(station.as_str()).await?;
    let info = stream.info().await?.clone();
    let c = stream.consumer_info(consumer).await?.clone();
    let unarchived = c.num_pending + c.num_ack_pending as u64;
    let oldest = (c.ack_floor.stream_sequence + 1).max(info.state.first_sequence);
    let now = Timestamp::now().micros() as f64 / 1e6;
    let age = if unarchived == 0 || info.config.max_age.is_zero() {
        0.0
    } else if oldest <= info.state.first_sequence {
        now - info.state.first_timestamp.unix_timestamp_nanos() as f64 / 1e9
    } else {
        match stream.get_raw_message(oldest).await {
            Ok(m) => now - m.time.unix_timestamp_nanos() as f64 / 1e9,
            Err(_) => 0.0,
        }
    };
    Ok(ExpelInputs {
        unarchived,
        stream_messages: info.state.messages,
        stream_bytes: info.state.bytes,
        max_msgs: info.config.max_messages,
        max_bytes: info.config.max_bytes,
        max_age_secs: info.config.max_age.as_secs_f64(),
        oldest_unarchived_age_secs: age.max(0.0),
    })
}

/// Why the consumer could not be set up.
enum SetupError {
    /// The stream is a work queue: an acknowledgement removes the message.
    WorkQueue,
    /// The durable consumer exists with `AckPolicy::None`.
    AckNone,
    Nats(async_nats::Error),
}

pub(super) enum PullError {
    Stop(Stop),
    Nats(async_nats::Error),
    /// The session cannot acknowledge safely any more: set up a new one.
    Resync(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_request_is_capped_in_bytes_but_never_below_two_messages() {
        assert_eq!(fetch_max_bytes(1 << 20), 16 << 20);
        assert_eq!(fetch_max_bytes(64 << 20), 128 << 20);
    }

    fn draft(seq: u64) -> Draft {
        Draft {
            station: StationName::new("orders").unwrap(),
            seq: Some(seq),
            timestamp: Timestamp(seq as i64),
            id: None,
            subject: Some("orders.created".to_string()),
            headers: Vec::new(),
            payload: bytes::Bytes::from_static(b"x"),
        }
    }

    #[tokio::test]
    async fn a_submitted_append_is_in_the_log_before_anyone_waits_for_it() {
        // The ordering of pipelined appends rests on this: `submit` returns
        // with the drafts queued in the WAL, in call order.
        let dir = tempfile::tempdir().unwrap();
        let wal: Arc<dyn Archive> =
            Arc::new(Wal::open(crate::wal::WalOptions::new(dir.path())).unwrap());
        let station = StationName::new("orders").unwrap();
        let first = wal.submit(vec![draft(1), draft(2)]);
        let second = wal.submit(vec![draft(3)]);
        assert!(wal.holds(&station, 2) && wal.holds(&station, 3));
        assert_eq!(wal.highest_seq(&station), Some(3));
        assert_eq!(second.await.unwrap().accepted, 1);
        assert_eq!(first.await.unwrap().accepted, 2);
        // A duplicate is dropped whoever waits for it.
        assert_eq!(wal.submit(vec![draft(3)]).await.unwrap().duplicates, 1);
    }

    #[tokio::test]
    async fn only_true_or_a_dropped_sender_means_shutdown() {
        let (tx, mut rx) = watch::channel(false);
        tx.send(false).unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(50), shutdown_requested(&mut rx));
        assert!(pending.await.is_err(), "a repeated false is no shutdown");
        tx.send(true).unwrap();
        shutdown_requested(&mut rx).await;
        let (tx, mut rx) = watch::channel(false);
        drop(tx);
        shutdown_requested(&mut rx).await;
    }
}
