//! `strata run`: the archiver process. Wiring only: the WAL, the background
//! compactor (and, with `[tier2] enabled`, the tier-2 pass), HTTP ingest with the admin endpoints, the NATS source (as a
//! member of the cluster of processes sharing its consumer), metrics, and a
//! clean stop on SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use strata::cluster::Cluster;
use strata::compactor::{
    CompactionError, CompactionObserver, Compactor, FailPoint, FailPointAction,
};
use strata::config::Config;
use strata::health::Health;
use strata::iceberg::IcebergTable;
use strata::identity::ledger::Ledger;
use strata::metrics::Metrics;
use strata::source::http::{self, FlushHandle, HttpState};
use strata::source::nats::NatsSource;
use strata::source::owners::NatsStations;
use strata::status::Uploads;
use strata::store::Archive;
use strata::tier2::{replace_hook, Tier2, Tier2Error, Tier2Options};
use strata::wal::Wal;
use tokio::sync::watch;

use super::failpoint::CrashAt;
use super::overrides::{ArchiveArg, WalDirArg};
use super::CliError;

/// How often the WAL and health gauges are refreshed (and health problems logged).
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `strata run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Upload everything before exiting on SIGINT/SIGTERM.
    #[arg(long)]
    flush_on_exit: bool,
    #[command(flatten)]
    wal_dir: WalDirArg,
    #[command(flatten)]
    archive: ArchiveArg,
}

/// The HTTP flush endpoint's view of the compactor.
struct CompactorFlush(Arc<Compactor>);

#[async_trait::async_trait]
impl FlushHandle for CompactorFlush {
    async fn flush(&self) -> Result<serde_json::Value, String> {
        let report = self.0.flush().await.map_err(|e| e.to_string())?;
        serde_json::to_value(&report).map_err(|e| e.to_string())
    }
}

pub(crate) async fn run(mut config: Config, args: RunArgs) -> Result<ExitCode, CliError> {
    args.wal_dir.apply(&mut config);
    args.archive.apply(&mut config);
    let wal = Wal::open(config.wal.options())?;
    let archive = Archive::open(&config.storage)?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(config.compaction.unhealthy_after).with_wal(wal.clone()));
    let uploads = Arc::new(Uploads::default());
    // With [nats], this process is a member of the cluster sharing the
    // consumer (a lone process is a cluster of one).
    let cluster = if config.nats.url.is_empty() {
        None
    } else {
        Some(
            Cluster::join(
                &config.nats,
                &config.cluster,
                wal.wal_id(),
                Some(config.http.listen.clone()),
            )
            .await?,
        )
    };
    let iceberg = IcebergTable::open(&archive, &config.iceberg)?;
    let mut compactor = Compactor::new(
        wal.clone(),
        archive.clone(),
        &config.compaction,
        Arc::new(MetricsObserver {
            metrics: metrics.clone(),
            health: health.clone(),
            uploads: uploads.clone(),
            crash_at: CrashAt::from_env(),
        }),
    )
    .with_iceberg(iceberg.clone());
    if let Some(c) = &cluster {
        compactor = compactor.with_upload_claims(c.upload_claims());
    }
    let compactor = Arc::new(compactor);
    let (stop_tx, stop_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} ([http] listen): {e}; choose a free address",
                config.http.listen
            )
        })?;
    let nats_stations = NatsStations::default();
    let state = HttpState::new(wal.clone(), metrics.clone(), &config.http)
        .with_health(health.clone())
        .with_flush(Arc::new(CompactorFlush(compactor.clone())))
        .with_nats_stations(nats_stations.clone())
        .with_uploads(uploads);
    let state = match &cluster {
        Some(c) => state.with_cluster(c.status()),
        None => state,
    };
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(http::serve(listener, state, async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));

    let nats_task = match &cluster {
        None => None,
        Some(cluster) => {
            // What the WAL holds from an earlier run goes up (under upload
            // claims) before this process takes any station.
            if !flush_before_leases(&compactor, stop_rx.clone()).await {
                None
            } else {
                Some(
                    NatsSource::start_cluster(
                        &config.nats,
                        wal.clone(),
                        Ledger::new(archive.clone()),
                        nats_stations,
                        metrics.clone(),
                        cluster,
                        stop_rx.clone(),
                    )
                    .await?,
                )
            }
        }
    };
    let compactor_rt =
        compactor_runtime().map_err(|e| format!("cannot start the compactor's runtime: {e}"))?;
    let compactor_task = compactor_rt.spawn(compactor.clone().run(stop_rx.clone()));
    let tier2_task = config.tier2.enabled.then(|| {
        let tier2 = Tier2::new(
            archive.clone(),
            Tier2Options::from(&config.tier2),
            &config.compaction,
            replace_hook(iceberg.clone()),
            Arc::new(CrashAt::from_env()),
        );
        compactor_rt.spawn(tier2_loop(tier2, config.tier2.interval, stop_rx.clone()))
    });
    let gauges_task = tokio::spawn(refresh_gauges(
        wal.clone(),
        metrics.clone(),
        health.clone(),
        stop_rx.clone(),
    ));

    tracing::info!(
        wal = %config.wal.dir.display(),
        archive = %archive.url(),
        http = %config.http.listen,
        nats = %if config.nats.url.is_empty() { "off".to_string() } else { config.nats.url.to_string() },
        "strata is running"
    );
    let signal = wait_for_signal().await;
    tracing::info!(%signal, "stopping: no new input; finishing in-flight appends");
    let _ = stop_tx.send(true);

    // Sources first: every request or batch in flight finishes its append (and
    // its acknowledgement) before the WAL closes.
    if let Err(e) = http_task.await {
        tracing::error!("HTTP ingest stopped abnormally: {e}");
    }
    if let Some(task) = nats_task {
        if let Err(e) = task.await {
            tracing::error!("NATS source stopped abnormally: {e}");
        }
    }
    let _ = compactor_task.await;
    if let Some(task) = tier2_task {
        let _ = task.await;
    }
    compactor_rt.shutdown_background();
    let _ = gauges_task.await;
    let mut code = ExitCode::SUCCESS;
    if args.flush_on_exit {
        match compactor.flush().await {
            Ok(report) => tracing::info!("flushed on exit: {report}"),
            Err(e) => {
                tracing::error!(
                    "flush on exit failed: {e}; the WAL keeps the data for the next start"
                );
                code = ExitCode::FAILURE;
            }
        }
    }
    wal.close()?;
    tracing::info!("stopped cleanly");
    Ok(code)
}

/// How much lower than the rest of the process the compactor's threads run
/// (a nice value added to the process's own, at most 19).
const COMPACTOR_NICENESS: i32 = 10;

/// The background compactor's own runtime: one worker thread whose CPU
/// priority is [`COMPACTOR_NICENESS`] below the process's, which every thread
/// it starts (segment encoding, blocking file I/O) inherits. While the sources
/// are busy, compaction yields the cores to them (ingest is what producers
/// wait for; the archive's own latency goal is minutes); whenever they are
/// idle it gets the cores back. A backlog stays bounded: once the WAL is full
/// the sources stop and compaction has the machine.
fn compactor_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("strata-compactor")
        .on_thread_start(lower_thread_priority)
        .enable_all()
        .build()
}

/// Lowers the calling thread's CPU priority by [`COMPACTOR_NICENESS`].
#[cfg(target_os = "linux")]
fn lower_thread_priority() {
    // On Linux the nice value belongs to each thread: `who = 0` with
    // PRIO_PROCESS is the calling thread, and threads it starts inherit it.
    // SAFETY: getpriority and setpriority take plain integers and touch no
    // memory of ours.
    unsafe {
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if now == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, (now + COMPACTOR_NICENESS).min(19));
    }
}

/// Elsewhere the compactor runs at the process's priority.
#[cfg(not(target_os = "linux"))]
fn lower_thread_priority() {}

/// Uploads what the WAL holds before the process takes station leases,
/// retrying with backoff while the archive fails. Returns false when a stop
/// was asked for first.
async fn flush_before_leases(compactor: &Compactor, mut stop: watch::Receiver<bool>) -> bool {
    let wal = compactor.wal();
    let holds = !wal.sealed().is_empty()
        || wal
            .station_loads()
            .stations
            .values()
            .any(|l| l.messages > 0);
    if !holds {
        return true;
    }
    tracing::info!(
        "the WAL holds messages from an earlier run: uploading them before taking stations"
    );
    let mut failures = 0;
    loop {
        match compactor.flush().await {
            Ok(report) => {
                tracing::info!(
                    files = report.files().count(),
                    rows = report.rows(),
                    "uploaded the WAL of the earlier run"
                );
                return true;
            }
            Err(e) => {
                failures += 1;
                let pause = strata::compactor::backoff(failures);
                tracing::warn!(error = %e, retry_in = ?pause,
                    "cannot upload the earlier run's WAL yet; no station is taken until it is");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => return false,
                }
            }
        }
    }
}

/// The background tier-2 pass: one every `interval`, the first one
/// `interval` after the start. A pass cut short by the stop is safe: the next
/// one goes on from where it stopped.
async fn tier2_loop(tier2: Tier2, interval: Duration, mut stop: watch::Receiver<bool>) {
    tracing::info!(every = ?interval, "tier-2 compaction is on");
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let pass = tokio::select! {
            r = tier2.pass() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match pass {
            Ok(report) => {
                if !report.merges.is_empty() || report.files_deleted() > 0 {
                    tracing::info!(
                        merges = report.merges.len(),
                        files_merged = report.merges.iter().map(|m| m.replaced_files).sum::<u64>(),
                        files_deleted = report.files_deleted(),
                        "tier-2 pass done"
                    );
                }
            }
            Err(e @ Tier2Error::Locked { .. }) => tracing::info!("tier-2 pass skipped: {e}"),
            Err(e) => tracing::warn!("tier-2 pass failed: {e}"),
        }
    }
}

/// Feeds compaction events into the process metrics, health and status.
#[derive(Debug)]
struct MetricsObserver {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    uploads: Arc<Uploads>,
    crash_at: CrashAt,
}

impl CompactionObserver for MetricsObserver {
    fn at_fail_point(&self, point: FailPoint, segment: u64) -> FailPointAction {
        self.crash_at.at(point, segment)
    }
    fn inc_upload_error(&self) {
        self.metrics.inc_upload_error();
    }
    fn duplicates_dropped(&self, station: &strata::StationName, rows: u64) {
        self.metrics
            .inc_cluster_duplicates_dropped(station.as_str(), rows);
    }
    fn inc_upload_retry(&self) {
        self.metrics.inc_upload_retry();
    }
    fn observe_compaction(&self, duration: Duration, bytes: u64, rows: u64) {
        self.metrics.observe_compaction(duration, bytes, rows);
    }
    fn set_oldest_unuploaded_age(&self, secs: f64) {
        self.metrics.set_oldest_unuploaded_age(secs);
    }
    fn station_archived(&self, station: &strata::StationName, rows: u64, last_seq: u64) {
        self.uploads
            .record(station, rows, last_seq, strata::Timestamp::now());
    }
    fn compaction_failed(&self, error: &CompactionError) {
        self.health.compaction_failed(error, error.is_permanent());
    }
    fn compaction_succeeded(&self) {
        self.health.compaction_succeeded();
    }
}

/// Keeps the WAL and health gauges current; checking health here is what logs
/// a problem (once) even when nobody asks `/healthz`.
async fn refresh_gauges(
    wal: Wal,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let stats = wal.stats();
        metrics.set_wal(stats.disk_bytes, stats.segments);
        metrics.set_health(&health.check());
        let oldest = wal
            .oldest_unuploaded()
            .map_or(0.0, |ts| strata::Timestamp::now().seconds_since(ts));
        metrics.set_oldest_unuploaded_age(oldest);
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
