//! One station's consumer loop: fetch a batch from the durable pull consumer,
//! append it to the WAL, acknowledge it, with the next batch's fetch
//! overlapping the current batch's append and acks (one batch ahead at most);
//! wait (without acknowledging or fetching further) while the WAL is full;
//! back off and retry on every transient error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::RetentionPolicy;
use async_nats::jetstream::{self, Message};
use futures::StreamExt as _;
use tokio::sync::watch;

use super::convert::{find, header_list, micros_from_nanos, to_draft};
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

/// How long a pull request waits on an idle stream before it is renewed.
const FETCH_EXPIRY: Duration = Duration::from_secs(2);

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
#[async_trait::async_trait]
pub(crate) trait Archive: Send + Sync + 'static {
    /// Makes the drafts durable (see [`Wal::append`]).
    async fn append(&self, drafts: Vec<Draft>) -> Result<Appended, WalError>;
    /// Whether `(station, seq)` is already stored (see [`Wal::holds`]).
    fn holds(&self, station: &StationName, seq: u64) -> bool;
    /// The highest seq stored for `station` (see [`Wal::highest_seq`]).
    fn highest_seq(&self, station: &StationName) -> Option<u64>;
}

#[async_trait::async_trait]
impl Archive for Wal {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        Wal::append(self, drafts).await
    }
    fn holds(&self, station: &StationName, seq: u64) -> bool {
        Wal::holds(self, station, seq)
    }
    fn highest_seq(&self, station: &StationName) -> Option<u64> {
        Wal::highest_seq(self, station)
    }
}

pub(crate) use crate::backoff::Backoff;

/// Resolves once shutdown is requested: the value turns `true` or the sender is gone.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Why a batch was not archived.
enum Stop {
    /// Shutdown was requested, the WAL closed, or the station's lease
    /// ended: the worker ends.
    Shutdown,
}

/// Settings shared by every worker of a source.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) consumer: String,
    pub(crate) fetch_batch: usize,
    /// The ack wait of a consumer this worker creates.
    pub(crate) ack_wait: Duration,
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
    /// Indexes of the messages to acknowledge once the drafts are durable.
    acks: Vec<usize>,
    /// Restored copies of archived messages: acknowledged, not archived.
    echoes: usize,
    /// Stream sequences skipped by the stream (expelled before read).
    gaps: Vec<(u64, u64)>,
}

/// The consumer state of one station. Everything a station's archiving needs
/// lives here, so that one station's trouble never touches another.
pub(crate) struct StationWorker {
    station: StationName,
    js: jetstream::Context,
    config: WorkerConfig,
    archive: Arc<dyn Archive>,
    identity: Arc<Identity>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    consumer: Option<PullConsumer>,
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
        js: jetstream::Context,
        config: WorkerConfig,
        archive: Arc<dyn Archive>,
        identity: Arc<Identity>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            station,
            js,
            config,
            archive,
            identity,
            metrics,
            shutdown,
            consumer: None,
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
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| SetupError::Nats(e.into()))?;
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
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// Archives batches until shutdown or a NATS error, keeping the next
    /// fetch in flight while the current batch is appended and acknowledged,
    /// so a batch costs the longer of the two instead of their sum.
    ///
    /// Bounds: besides the batch being stored, at most one batch is fetched
    /// ahead, and the next request is only sent once that one is taken for
    /// storing. So while the WAL is full (the batch's append is retried) the
    /// worker holds at most one extra unacknowledged batch and leaves no pull
    /// request outstanding: every request is read to its end (a no-wait
    /// fetch, or a 1-message request that expires after [`FETCH_EXPIRY`]),
    /// since deliveries to a request nobody reads would sit in the broker
    /// until redelivered after [`ACK_WAIT`]. At shutdown the batch being
    /// stored is finished (appended and acknowledged) and a prefetched one is
    /// given back unstored (negatively acknowledged): the broker redelivers
    /// it at once, to whoever fetches the station next.
    async fn pull(&mut self, consumer: &PullConsumer) -> Result<(), PullError> {
        let batch = self.config.fetch_batch;
        let mut chunk = Vec::new();
        loop {
            if self.stopping() {
                release(&chunk).await;
                return Err(PullError::Stop(Stop::Shutdown));
            }
            let mut shutdown = self.shutdown.clone();
            if chunk.is_empty() {
                chunk = next_chunk(consumer, batch, &mut shutdown).await?;
                continue;
            }
            let prefetch = next_chunk(consumer, batch, &mut shutdown);
            let (stored, fetched) = tokio::join!(self.store(std::mem::take(&mut chunk)), prefetch);
            if let Err(stop) = stored {
                if let Ok(fetched) = &fetched {
                    release(fetched).await;
                }
                return Err(PullError::Stop(stop));
            }
            self.errors.reset();
            chunk = fetched?;
        }
    }

    /// Appends a chunk to the WAL, retrying until it is durable, then
    /// acknowledges every message of it. Gaps the chunk reveals are recorded
    /// in the archive first, so a crash cannot forget them.
    async fn store(&mut self, chunk: Vec<Message>) -> Result<(), Stop> {
        let prepared = self.prepare(&chunk).await;
        for &(first, last) in &prepared.gaps {
            if let Some((first, last)) = self.expelled(first, last).await? {
                self.record_gap(first, last).await?;
            }
        }
        if prepared.echoes > 0 {
            self.metrics
                .inc_restore_echoes(self.station.as_str(), prepared.echoes as u64);
        }
        let Prepared { drafts, acks, .. } = prepared;
        if drafts.is_empty() {
            self.ack(&chunk, &acks).await;
            return Ok(());
        }
        self.append_all(drafts).await?;
        self.ack(&chunk, &acks).await;
        Ok(())
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
            match self.archive.append(part).await {
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
            ..Prepared::default()
        };
        let Some(inc) = self.incarnation.clone() else {
            return out;
        };
        for (i, m) in chunk.iter().enumerate() {
            let info = match m.info() {
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
            let published = micros_from_nanos(info.published.unix_timestamp_nanos());
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

    async fn ack(&self, chunk: &[Message], acks: &[usize]) {
        for &i in acks {
            if let Err(e) = chunk[i].ack().await {
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
async fn release(chunk: &[Message]) {
    for m in chunk {
        let _ = m.ack_with(jetstream::AckKind::Nak(None)).await;
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

/// Takes what the stream has now (a no-wait fetch of up to `batch`), or, when
/// it has nothing, waits up to [`FETCH_EXPIRY`] for one message. Empty when
/// the stream stayed idle.
async fn next_chunk(
    consumer: &PullConsumer,
    batch: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, PullError> {
    let chunk = fetch(consumer, batch, false, shutdown).await?;
    if !chunk.is_empty() {
        return Ok(chunk);
    }
    fetch(consumer, batch, true, shutdown).await
}

/// Sends one pull request and reads it to its end.
async fn fetch(
    consumer: &PullConsumer,
    batch: usize,
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
        consumer.fetch().max_messages(batch).messages().await
    };
    let request = request.map_err(|e| PullError::Nats(e.into()))?;
    let read = async {
        let mut chunk = Vec::new();
        let mut request = request;
        while let Some(m) = request.next().await {
            chunk.push(m?);
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

/// Why the consumer could not be set up.
enum SetupError {
    /// The stream is a work queue: an acknowledgement removes the message.
    WorkQueue,
    Nats(async_nats::Error),
}

enum PullError {
    Stop(Stop),
    Nats(async_nats::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

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
