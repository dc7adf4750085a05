//! The NATS JetStream source (`[nats]`): one durable pull consumer per station.
//!
//! Each station (stream) gets a [`worker::StationWorker`] that owns all of the
//! station's consumer state. It gets or creates the durable pull consumer
//! `[nats] consumer` (default `strata`; deliver all, ack policy all), so a first
//! run starts at the first message the stream still holds and later runs resume
//! after the last acknowledged one. Each round takes what the stream holds, up
//! to `fetch_batch` messages and 16 MiB (a no-wait pull request); when the stream has
//! nothing, one waiting request for the next message (expiring after 2 s, so
//! an idle stream costs one request every 2 s). The batch is appended to the
//! WAL and acknowledged only after the append returned, i.e. after fsync, by
//! one acknowledgement of its newest message ([`acks`]; a consumer an earlier
//! version created with ack policy explicit keeps one acknowledgement per
//! message). Batches go through a pipeline: while one batch's append is in
//! flight, the next is prepared and its append queued (appends reach the WAL
//! in arrival order), and the ones after it fetched by the station's fetcher
//! task ([`fetcher`]), which sends the next request as soon as it has handed
//! the previous batch over (one request at a time, every request read to its
//! end, none sent while the worker takes nothing); batches are acknowledged
//! in the order they arrived. Redeliveries are dropped by
//! the WAL's (station, seq) de-duplication and acknowledged again. A session
//! that misses a delivery ends, and every session starts by storing what the
//! consumer delivered earlier and never saw acknowledged, so an
//! acknowledgement never covers a message that is not durable.
//!
//! A message is archived under the identity rule ([`crate::identity`]):
//! seq = the incarnation's offset + stream sequence (the stream sequence
//! itself for a stream archived in one life), timestamp = JetStream's publish
//! time (UTC microseconds), subject, every header as it came (repeated names
//! with all their values; names in byte order, as `async-nats` does not keep
//! the order between names), id = `Nats-Msg-Id`.
//!
//! **Incarnations, gaps, restored copies.** A stream deleted and created
//! again is detected by its creation time when the consumer is set up again,
//! logged, counted and recorded in the archive; its messages are archived
//! above every earlier seq. Stream sequences the consumer skips (expelled by
//! the stream's limits before Strata read them) are logged at `error`,
//! counted and recorded as gaps in the archive before the messages after them
//! are acknowledged. A message carrying a valid `strata restore` signature
//! for a `(station, seq)` already stored is a restored copy: acknowledged and
//! not archived again. The expel-risk gauge is refreshed every 2 s.
//!
//! **Backpressure and failures.** While the WAL is full the worker stops
//! fetching (beyond the batches already in the pipeline), keeps the batches
//! unacknowledged (the messages wait in the broker) and retries the same
//! batch with backoff. At shutdown the batch being appended is finished and
//! acknowledged; batches fetched ahead are given back (a negative
//! acknowledgement, so it is redelivered at once, to this process's next run
//! or to the member that takes the station over). Fetch, ack and connection
//! errors are logged and retried with backoff; `async-nats` reconnects by
//! itself after a server restart. A worker only ends at shutdown (or, in a
//! cluster, when its station's lease ends).
//!
//! Streams with work-queue retention are not archived (an acknowledgement
//! removes the message, so archiving would take it away from the stream's
//! consumers): the worker logs an error and stops.
//!
//! Uses only what nats-server 2.9 offers: streams and durable pull consumers.
//! `stations = ["*"]` archives every stream on the server, rediscovered every
//! 30 s.
//!
//! **Cluster.** `strata run` starts the source with
//! [`NatsSource::start_cluster`]: a [`crate::cluster`] member decides which
//! stations this process archives; each worker runs under its station's
//! lease, checked before every fetch and append, and is stopped on its own
//! when the lease is released or lost.

mod acks;
mod convert;
mod delivery;
mod fetcher;
mod identity;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::coordinator::{StationList, StationRunner};
use crate::cluster::lease::Lease;
use crate::cluster::Cluster;
use crate::config::NatsConfig;
use crate::identity::cache::LocalCache;
use crate::identity::ledger::Ledger;
use crate::message::{StationName, StationNameError};
use crate::metrics::Metrics;
use crate::nats::NatsConnectError;
use crate::source::owners::NatsStations;
use crate::wal::Wal;
use identity::Identity;
use worker::{Archive, StationWorker, WorkerConfig};

/// Consumer name used when `[nats] consumer` is empty.
pub const DEFAULT_CONSUMER: &str = "strata";

/// Messages per pull request when `[nats] fetch_batch` is 0.
pub const DEFAULT_FETCH_BATCH: usize = 1000;

/// How often `stations = ["*"]` looks for new streams.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Why the NATS source could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// `[nats] url` is empty.
    #[error("[nats] url is empty: set it to the server, e.g. nats://127.0.0.1:4222")]
    NoUrl,
    /// `[nats] stations` is empty.
    #[error("[nats] stations is empty: list the streams to archive, or \"*\" for every stream")]
    NoStations,
    /// A station in `[nats] stations` is not a valid station name.
    #[error("[nats] stations: {0}")]
    BadStation(#[from] StationNameError),
    /// Connecting failed, or the server has no JetStream.
    #[error(transparent)]
    Connect(#[from] NatsConnectError),
}

/// The running NATS source.
#[derive(Debug)]
pub struct NatsSource;

impl NatsSource {
    /// Connects, checks that JetStream is available, and starts one worker
    /// per station (for `"*"`,
    /// per stream found now and every 30 s), registering each in `stations`
    /// (HTTP ingest refuses those). The returned task ends once `shutdown`
    /// turns `true` (or its sender is dropped) and every worker has stopped.
    ///
    /// # Errors
    /// [`NatsError`] saying which setting or server to check.
    pub async fn start(
        cfg: &NatsConfig,
        wal: Wal,
        ledger: Ledger,
        stations: NatsStations,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, NatsError> {
        let identity = Identity::new(ledger, Some(LocalCache::new(wal.dir())));
        Self::start_with(cfg, Arc::new(wal), identity, stations, metrics, shutdown).await
    }

    pub(crate) async fn start_with(
        cfg: &NatsConfig,
        archive: Arc<dyn Archive>,
        identity: Identity,
        registry: NatsStations,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, NatsError> {
        let stations = Stations::from_config(cfg)?;
        let (client, js) = crate::nats::connect_jetstream(&cfg.auth(), "strata").await?;
        let identity = Arc::new(identity);
        let config = worker_config(cfg, worker::ACK_WAIT, &client);
        let supervisor = Supervisor {
            client: client.clone(),
            js,
            config,
            archive,
            identity,
            registry,
            metrics,
            shutdown,
            workers: JoinSet::new(),
            running: HashSet::new(),
        };
        Ok(tokio::spawn(async move {
            supervisor.run(stations).await;
            close_connection(&client).await;
        }))
    }
}

impl NatsSource {
    /// Starts the source as a member of `cluster`: the member takes and
    /// releases stations, and this source archives exactly the ones it holds
    /// (see [`crate::cluster`]). The returned task ends once `shutdown` turns
    /// `true` and every worker has stopped and every lease is given back.
    ///
    /// # Errors
    /// [`NatsError`] saying which setting or server to check.
    pub async fn start_cluster(
        cfg: &NatsConfig,
        wal: Wal,
        ledger: Ledger,
        registry: NatsStations,
        metrics: Arc<Metrics>,
        cluster: &Cluster,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, NatsError> {
        let list = match Stations::from_config(cfg)? {
            Stations::Listed(names) => {
                for name in &names {
                    registry.insert(name.clone());
                }
                StationList::Listed(names)
            }
            Stations::All => StationList::All,
        };
        let (client, _js) = crate::nats::connect_jetstream(&cfg.auth(), "strata").await?;
        let identity = Identity::new(ledger, Some(LocalCache::new(wal.dir())));
        let mut workers = Workers {
            client: client.clone(),
            config: worker_config(cfg, cluster.timing().ack_wait(), &client),
            archive: Arc::new(wal),
            identity: Arc::new(identity),
            registry,
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
            running: HashMap::new(),
        };
        let coordinator = cluster.coordinator(list, metrics);
        Ok(tokio::spawn(async move {
            coordinator.run(&mut workers, shutdown).await;
            close_connection(&client).await;
        }))
    }
}

/// Longest wait for each step of closing the connection at shutdown: a server
/// that went away (or came back in a state the client did not follow) must
/// not keep the process from stopping.
const CLOSE_STEP: Duration = Duration::from_secs(5);

/// Sends the last acknowledgements, then closes the connection so the server
/// forgets the pull requests at once: a request left waiting would take a
/// message the next run then gets only after the ack wait. Each step is
/// bounded by [`CLOSE_STEP`] (an acknowledgement not sent is redelivered after
/// the ack wait, and dropped then as a duplicate).
async fn close_connection(client: &async_nats::Client) {
    match tokio::time::timeout(CLOSE_STEP, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "flushing NATS acknowledgements at shutdown failed");
        }
        Err(_) => tracing::warn!(
            "flushing NATS acknowledgements at shutdown took over {CLOSE_STEP:?}; stopping anyway"
        ),
    }
    if let Ok(Ok(())) = tokio::time::timeout(CLOSE_STEP, client.drain()).await {
        // async-nats finishes a drain the next time its connection task wakes
        // (a message from the server, a ping, a command), and its connection
        // state does not say when it has: a flush is such a command, and fails
        // once the connection task has ended.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Err(_)) =
                tokio::time::timeout(Duration::from_millis(10), client.flush()).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn worker_config(
    cfg: &NatsConfig,
    ack_wait: Duration,
    client: &async_nats::Client,
) -> WorkerConfig {
    WorkerConfig {
        consumer: if cfg.consumer.is_empty() {
            DEFAULT_CONSUMER.to_string()
        } else {
            cfg.consumer.clone()
        },
        fetch_batch: if cfg.fetch_batch == 0 {
            DEFAULT_FETCH_BATCH
        } else {
            cfg.fetch_batch
        },
        fetch_max_bytes: worker::fetch_max_bytes(client.server_info().max_payload),
        ack_wait,
    }
}

/// The workers of a cluster member, each with a stop signal of its own.
struct Workers {
    client: async_nats::Client,
    config: WorkerConfig,
    archive: Arc<dyn Archive>,
    identity: Arc<Identity>,
    registry: NatsStations,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    running: HashMap<StationName, (Arc<watch::Sender<bool>>, JoinHandle<()>)>,
}

#[async_trait::async_trait]
impl StationRunner for Workers {
    fn start(&mut self, station: StationName, lease: Lease) {
        self.registry.insert(station.clone());
        let (tx, rx) = watch::channel(false);
        let tx = Arc::new(tx);
        // Shutdown of the process reaches the worker through its own signal.
        let (forward, mut global) = (Arc::clone(&tx), self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = worker::shutdown_requested(&mut global) => { forward.send_replace(true); }
                () = forward.closed() => {}
            }
        });
        let worker = StationWorker::new(
            station.clone(),
            self.client.clone(),
            self.config.clone(),
            Arc::clone(&self.archive),
            Arc::clone(&self.identity),
            Arc::clone(&self.metrics),
            rx,
        )
        .with_lease(Some(lease));
        self.running
            .insert(station, (tx, tokio::spawn(worker.run())));
    }

    async fn stop(&mut self, station: &StationName) {
        if let Some((tx, handle)) = self.running.remove(station) {
            tx.send_replace(true);
            if let Err(e) = handle.await {
                tracing::error!(station = %station, error = %e, "a NATS station worker panicked");
            }
        }
    }

    async fn stop_all(&mut self) {
        for (tx, _) in self.running.values() {
            tx.send_replace(true);
        }
        for (station, (_, handle)) in self.running.drain() {
            if let Err(e) = handle.await {
                tracing::error!(station = %station, error = %e, "a NATS station worker panicked");
            }
        }
    }
}

/// Which stations to archive.
enum Stations {
    Listed(Vec<StationName>),
    All,
}

impl Stations {
    fn from_config(cfg: &NatsConfig) -> Result<Self, NatsError> {
        if cfg.url.is_empty() {
            return Err(NatsError::NoUrl);
        }
        if cfg.stations.is_empty() {
            return Err(NatsError::NoStations);
        }
        if cfg.stations.iter().any(|s| s == "*") {
            return Ok(Self::All);
        }
        let mut names = Vec::new();
        for s in &cfg.stations {
            let name = StationName::new(s.as_str())?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(Self::Listed(names))
    }
}

/// Owns the workers: starts them, discovers streams for `"*"`, waits for them.
struct Supervisor {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    config: WorkerConfig,
    archive: Arc<dyn Archive>,
    identity: Arc<Identity>,
    registry: NatsStations,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    workers: JoinSet<()>,
    running: HashSet<StationName>,
}

impl Supervisor {
    async fn run(mut self, stations: Stations) {
        match stations {
            Stations::Listed(names) => {
                for name in names {
                    self.spawn(name);
                }
            }
            Stations::All => {
                let mut skipped = HashSet::new();
                loop {
                    self.discover(&mut skipped).await;
                    tokio::select! {
                        () = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
                        () = worker::shutdown_requested(&mut self.shutdown) => break,
                    }
                }
            }
        }
        while let Some(joined) = self.workers.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "a NATS station worker panicked");
            }
        }
    }

    /// Starts a worker for every stream not yet archived.
    async fn discover(&mut self, skipped: &mut HashSet<String>) {
        let mut names = self.js.stream_names();
        let mut found = Vec::new();
        while let Some(name) = names.next().await {
            match name {
                Ok(name) => found.push(name),
                Err(e) => {
                    self.metrics.inc_source_error(worker::SOURCE);
                    tracing::warn!(error = %e, "listing NATS streams failed; retrying in 30 s");
                    break;
                }
            }
        }
        for name in found {
            match StationName::new(name.as_str()) {
                Ok(station) if !self.running.contains(&station) => self.spawn(station),
                Ok(_) => {}
                Err(e) => {
                    if skipped.insert(name) {
                        tracing::warn!(error = %e, "stream cannot be archived under its name; skipped");
                    }
                }
            }
        }
    }

    fn spawn(&mut self, station: StationName) {
        self.running.insert(station.clone());
        self.registry.insert(station.clone());
        let worker = StationWorker::new(
            station,
            self.client.clone(),
            self.config.clone(),
            Arc::clone(&self.archive),
            Arc::clone(&self.identity),
            Arc::clone(&self.metrics),
            self.shutdown.clone(),
        );
        self.workers.spawn(worker.run());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, stations: &[&str]) -> NatsConfig {
        NatsConfig {
            url: crate::nats::NatsUrl::new(url),
            stations: stations.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn station_lists_are_checked() {
        assert!(matches!(
            Stations::from_config(&cfg("", &["a"])),
            Err(NatsError::NoUrl)
        ));
        assert!(matches!(
            Stations::from_config(&cfg("nats://x", &[])),
            Err(NatsError::NoStations)
        ));
        assert!(matches!(
            Stations::from_config(&cfg("nats://x", &["a/b"])),
            Err(NatsError::BadStation(_))
        ));
        assert!(matches!(
            Stations::from_config(&cfg("nats://x", &["a", "*"])),
            Ok(Stations::All)
        ));
        match Stations::from_config(&cfg("nats://x", &["a", "b", "a"])) {
            Ok(Stations::Listed(names)) => assert_eq!(names.len(), 2),
            _ => panic!("expected a list"),
        }
    }

    #[tokio::test]
    async fn connect_errors_name_the_url_and_what_to_check() {
        // Port 1 on loopback: nothing listens there.
        let mut c = cfg("nats://user:hunter2@127.0.0.1:1", &["a"]);
        c.password = Some(crate::config::Secret::new("pw-secret"));
        let (_tx, rx) = watch::channel(false);
        let archive: Arc<dyn Archive> = Arc::new(NullArchive);
        let e = NatsSource::start_with(
            &c,
            archive,
            Identity::new(tests_server::memory_ledger(), None),
            NatsStations::default(),
            Arc::new(Metrics::new()),
            rx,
        )
        .await
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(text.contains("running and reachable"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("pw-secret"),
            "{text}"
        );
    }

    struct NullArchive;

    impl Archive for NullArchive {
        fn submit(&self, _: Vec<crate::message::Draft>) -> super::worker::Submitted {
            Box::pin(std::future::ready(Err(crate::wal::WalError::Closed)))
        }
        fn holds(&self, _: &StationName, _: u64) -> bool {
            false
        }
        fn highest_seq(&self, _: &StationName) -> Option<u64> {
            None
        }
    }
}

#[cfg(test)]
mod tests_server;
