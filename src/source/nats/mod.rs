//! The NATS JetStream source (`[nats]`): one durable pull consumer per station.
//!
//! Each station (stream) gets a [`worker::StationWorker`] that owns all of the
//! station's consumer state. It gets or creates the durable pull consumer
//! `[nats] consumer` (default `strata`; deliver all, explicit ack), so a first
//! run starts at the first message the stream still holds and later runs resume
//! after the last acknowledged one. Each round takes what the stream holds, up
//! to `fetch_batch` messages (a no-wait pull request); when the stream has
//! nothing, one waiting request for the next message (expiring after 2 s, so
//! an idle stream costs one request every 2 s). The batch is appended to the
//! WAL and each message acknowledged only after the append returned, i.e.
//! after fsync; meanwhile the next batch is already being fetched (one batch
//! ahead at most, every request read to its end). Redeliveries are dropped by the WAL's (station, seq)
//! de-duplication and acknowledged again.
//!
//! A message is archived as: seq = stream sequence, timestamp = JetStream's
//! publish time (UTC microseconds), subject, every header (repeated names
//! with all their values; names in byte order, as `async-nats` does not keep
//! the order between names), id = `Nats-Msg-Id`.
//!
//! **Restored messages.** `strata restore` publishes archived messages back
//! with the headers `Strata-Station`, `Strata-Seq` and `Strata-Timestamp`. When
//! such a message arrives on the station named by `Strata-Station`, it is
//! archived under its original identity (seq = `Strata-Seq`, timestamp =
//! `Strata-Timestamp`, without the three headers), so the WAL's de-duplication
//! drops it instead of archiving a second copy. Restored into another station,
//! it is an ordinary new message of that station.
//!
//! **Backpressure and failures.** While the WAL is full the worker stops
//! fetching (beyond the one batch fetched ahead), keeps the batches
//! unacknowledged (the messages wait in the broker) and retries the same
//! batch with backoff. At shutdown the batch being appended is finished and
//! acknowledged; a batch fetched ahead is left unacknowledged and redelivered
//! on the next run. Fetch, ack and connection errors
//! are logged and retried with backoff; `async-nats` reconnects by itself
//! after a server restart. A worker only ends at shutdown.
//!
//! Streams with work-queue retention are not archived (an acknowledgement
//! removes the message, so archiving would take it away from the stream's
//! consumers): the worker logs an error and stops.
//!
//! Uses only what nats-server 2.9 offers: streams and durable pull consumers.
//! `stations = ["*"]` archives every stream on the server, rediscovered every
//! 30 s.

mod convert;
mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use convert::{NATS_MSG_ID, STRATA_SEQ, STRATA_STATION, STRATA_TIMESTAMP};

use crate::config::NatsConfig;
use crate::message::{StationName, StationNameError};
use crate::metrics::Metrics;
use crate::wal::Wal;
use worker::{Archive, StationWorker, WorkerConfig};

/// Consumer name used when `[nats] consumer` is empty.
pub const DEFAULT_CONSUMER: &str = "strata";

/// Messages per pull request when `[nats] fetch_batch` is 0.
pub const DEFAULT_FETCH_BATCH: usize = 256;

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
    /// The credentials file could not be read.
    #[error("cannot read [nats] creds_file {path}: {source}")]
    CredsFile {
        /// The configured path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting to the server failed.
    #[error("cannot connect to NATS at {url}: {source}; {hint}")]
    Connect {
        /// The server URL (any password in it hidden).
        url: String,
        /// The client's error.
        source: async_nats::ConnectError,
        /// What to check.
        hint: &'static str,
    },
    /// The server answered, but JetStream is not available on it.
    #[error(
        "NATS at {url} does not offer JetStream ({source}): start nats-server with -js \
         (or enable JetStream for this account)",
        source = answer
    )]
    NoJetStream {
        /// The server URL (any password in it hidden).
        url: String,
        /// The server's answer.
        answer: String,
    },
}

/// The running NATS source.
#[derive(Debug)]
pub struct NatsSource;

impl NatsSource {
    /// Connects, checks that JetStream is available, and starts one worker per
    /// station (for `"*"`, per stream found now and every 30 s). The returned
    /// task ends once `shutdown` turns `true` (or its sender is dropped) and
    /// every worker has stopped.
    ///
    /// # Errors
    /// [`NatsError`] saying which setting or server to check.
    pub async fn start(
        cfg: &NatsConfig,
        wal: Wal,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, NatsError> {
        Self::start_with(cfg, Arc::new(wal), metrics, shutdown).await
    }

    pub(crate) async fn start_with(
        cfg: &NatsConfig,
        archive: Arc<dyn Archive>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, NatsError> {
        let stations = Stations::from_config(cfg)?;
        let client = connect(cfg).await?;
        let js = async_nats::jetstream::new(client.clone());
        check_jetstream(&js)
            .await
            .map_err(|answer| NatsError::NoJetStream {
                url: redact_url(&cfg.url),
                answer,
            })?;
        let config = WorkerConfig {
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
        };
        let supervisor = Supervisor {
            js,
            config,
            archive,
            metrics,
            shutdown,
            workers: JoinSet::new(),
            running: HashSet::new(),
        };
        Ok(tokio::spawn(async move {
            supervisor.run(stations).await;
            // Send the last acknowledgements, then close the connection so the
            // server forgets our pull requests at once: a request left waiting
            // would take a message the next run then gets only after ack_wait.
            if let Err(e) = client.flush().await {
                tracing::warn!(error = %e, "flushing NATS acknowledgements at shutdown failed");
            }
            if client.drain().await.is_ok() {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while client.connection_state() == async_nats::connection::State::Connected
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }))
    }
}

/// Which stations to archive.
enum Stations {
    Listed(Vec<StationName>),
    All,
}

impl Stations {
    fn from_config(cfg: &NatsConfig) -> Result<Self, NatsError> {
        if cfg.url.trim().is_empty() {
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
    js: async_nats::jetstream::Context,
    config: WorkerConfig,
    archive: Arc<dyn Archive>,
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
        let worker = StationWorker::new(
            station,
            self.js.clone(),
            self.config.clone(),
            Arc::clone(&self.archive),
            Arc::clone(&self.metrics),
            self.shutdown.clone(),
        );
        self.workers.spawn(worker.run());
    }
}

async fn connect(cfg: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    let mut options = match &cfg.creds_file {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| NatsError::CredsFile {
                path: path.clone(),
                source,
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(token) = cfg.token.as_ref().filter(|t| !t.is_empty()) {
        options = options.token(token.expose().to_string());
    }
    if let Some(user) = cfg.user.as_ref().filter(|u| !u.is_empty()) {
        let password = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        options = options.user_and_password(user.clone(), password);
    }
    let options = options
        .name("strata")
        .connection_timeout(Duration::from_secs(10))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connection (re)established"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS connection lost; reconnecting")
                }
                other => tracing::debug!(event = %other, "NATS client event"),
            }
        });
    let url = cfg.url.trim();
    options
        .connect(url)
        .await
        .map_err(|source| NatsError::Connect {
            url: redact_url(url),
            hint: connect_hint(source.kind()),
            source,
        })
}

/// Asks the JetStream API for account information (`$JS.API.INFO`), in a way
/// that does not depend on the fields a server version returns.
async fn check_jetstream(js: &async_nats::jetstream::Context) -> Result<(), String> {
    let answer: serde_json::Value = js
        .request("INFO", &serde_json::json!({}))
        .await
        .map_err(|e| e.to_string())?;
    match answer.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(()),
    }
}

fn connect_hint(kind: async_nats::ConnectErrorKind) -> &'static str {
    use async_nats::ConnectErrorKind as K;
    match kind {
        K::ServerParse => "check [nats] url, e.g. nats://127.0.0.1:4222",
        K::Dns => "check the host name in [nats] url",
        K::Authentication | K::AuthorizationViolation => {
            "check [nats] token, user/password or creds_file against the server's authorization"
        }
        K::Tls => "check the server's TLS setup and the tls:// scheme in [nats] url",
        K::TimedOut | K::Io | K::MaxReconnects => {
            "check that nats-server is running and reachable at that address (host, port, firewall)"
        }
    }
}

/// The URL with any `user:password@` part replaced, for messages and logs.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, stations: &[&str]) -> NatsConfig {
        NatsConfig {
            url: url.to_string(),
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

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("tok@h"), "***@h");
    }

    #[tokio::test]
    async fn connect_errors_name_the_url_and_what_to_check() {
        // Port 1 on loopback: nothing listens there.
        let mut c = cfg("nats://user:hunter2@127.0.0.1:1", &["a"]);
        c.password = Some(crate::config::Secret::new("pw-secret"));
        let (_tx, rx) = watch::channel(false);
        let archive: Arc<dyn Archive> = Arc::new(NullArchive);
        let e = NatsSource::start_with(&c, archive, Arc::new(Metrics::new()), rx)
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

    #[async_trait::async_trait]
    impl Archive for NullArchive {
        async fn append(
            &self,
            _: Vec<crate::message::Draft>,
        ) -> Result<crate::wal::Appended, crate::wal::WalError> {
            Err(crate::wal::WalError::Closed)
        }
    }
}

#[cfg(test)]
mod tests_server;
