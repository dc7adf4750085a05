//! `strata flush`: seal the WAL and upload everything now. When `strata run`
//! owns the WAL, the running process is asked to do it (`POST /v1/flush`), so
//! the two never fight over the WAL lock.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use strata::compactor::{
    CompactionObserver, CompactionReport, Compactor, FailPoint, FailPointAction,
};
use strata::config::Config;
use strata::iceberg::IcebergTable;
use strata::store::Archive;
use strata::wal::{Wal, WalError};

use super::failpoint::CrashAt;
use super::overrides::{ArchiveArg, WalDirArg};
use super::CliError;

/// Arguments of `strata flush`.
#[derive(Debug, clap::Args)]
pub(crate) struct FlushArgs {
    #[command(flatten)]
    wal_dir: WalDirArg,
    #[command(flatten)]
    archive: ArchiveArg,
    /// Print the report as one JSON object (the default when standard output
    /// is not a terminal, as `strata restore` does with its summary).
    #[arg(long)]
    json: bool,
}

/// How the report is printed: the same fields either way, whoever flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Lines for a person.
    Text,
    /// One JSON object, the body `POST /v1/flush` answers with.
    Json,
}

impl Format {
    fn detect(json: bool, stdout_is_terminal: bool) -> Self {
        if json || !stdout_is_terminal {
            Format::Json
        } else {
            Format::Text
        }
    }

    fn render(self, report: &CompactionReport) -> Result<String, CliError> {
        Ok(match self {
            Format::Text => report.to_string(),
            Format::Json => serde_json::to_string(report)? + "\n",
        })
    }
}

pub(crate) async fn flush(mut config: Config, args: FlushArgs) -> Result<ExitCode, CliError> {
    args.wal_dir.apply(&mut config);
    args.archive.apply(&mut config);
    let format = Format::detect(args.json, std::io::stdout().is_terminal());
    let report = match Wal::open(config.wal.options()) {
        Ok(wal) => flush_here(&config, wal).await?,
        Err(WalError::Locked { pid, .. }) => {
            if args.archive.archive.is_some() {
                tracing::warn!(
                    "--archive is ignored: the running strata uploads to the archive it was \
                     started with"
                );
            }
            flush_remote(&config, &pid).await?
        }
        Err(e) => return Err(e.into()),
    };
    print!("{}", format.render(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// What a flush in this process reports to: only crash injection.
#[derive(Debug)]
struct FlushObserver(CrashAt);

impl CompactionObserver for FlushObserver {
    fn at_fail_point(&self, point: FailPoint, segment: u64) -> FailPointAction {
        self.0.at(point, segment)
    }
}

/// Flushes in this process: no `strata run` owns the WAL. With `[nats]`,
/// under the cluster's upload claims (this WAL may hold messages another
/// member archived after a takeover).
async fn flush_here(config: &Config, wal: Wal) -> Result<CompactionReport, CliError> {
    let archive = Archive::open(&config.storage)?;
    let iceberg = IcebergTable::open(&archive, &config.iceberg)?;
    let mut compactor = Compactor::new(
        wal.clone(),
        archive,
        &config.compaction,
        Arc::new(FlushObserver(CrashAt::from_env())),
    )
    .with_iceberg(iceberg);
    if !config.nats.url.is_empty() {
        let cluster =
            strata::cluster::Cluster::join(&config.nats, &config.cluster, wal.wal_id(), None)
                .await
                .map_err(|e| {
                    format!(
                        "{e}; with [nats] set, flush uploads under the cluster's upload claims \
                         so no message is archived twice: start NATS, or (only if no other \
                         strata run archives these stations) flush with a config without [nats]"
                    )
                })?;
        compactor = compactor.with_upload_claims(cluster.upload_claims());
    }
    let report = compactor.flush().await;
    wal.close()?;
    Ok(report?)
}

/// Asks the process that owns the WAL to flush, through its admin endpoint.
async fn flush_remote(config: &Config, pid: &str) -> Result<CompactionReport, CliError> {
    let url = format!("http://{}/v1/flush", connect_address(&config.http.listen));
    tracing::info!("the WAL is owned by a running strata (pid {pid}); asking it to flush at {url}");
    let mut request = reqwest::Client::new().post(&url);
    if let Some(token) = &config.http.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "the WAL is owned by a running strata (pid {pid}), but it cannot be reached at \
             {url}: {e}; check [http] listen in the config it was started with"
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        serde_json::from_str(&body).map_err(|e| {
            format!("the running strata flushed, but its report is not readable ({e}): {body}")
                .into()
        })
    } else if status == reqwest::StatusCode::UNAUTHORIZED {
        Err("the running strata refused the flush (401): set [http] token in the config to its token".into())
    } else {
        Err(format!("the running strata could not flush ({status}): {body}").into())
    }
}

/// The address to connect to for a listen address: a wildcard listener is
/// reached through loopback.
pub(crate) fn connect_address(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_string()
    }
}

#[cfg(test)]
mod tests {
    use strata::compactor::{FileReport, SegmentReport};

    use super::*;

    #[test]
    fn json_on_request_or_when_piped_text_on_a_terminal() {
        assert_eq!(Format::detect(false, true), Format::Text);
        assert_eq!(Format::detect(true, true), Format::Json);
        assert_eq!(Format::detect(false, false), Format::Json);
    }

    #[test]
    fn a_report_read_back_from_json_prints_the_same() {
        let report = CompactionReport {
            segments: vec![SegmentReport {
                segment: 3,
                messages: 10,
                duplicates: 1,
                files: vec![FileReport {
                    key: "station=s/date=2026-11-24/hour=10/a.parquet".into(),
                    rows: 9,
                    bytes: 2048,
                }],
                commit_record: "_strata/commits/x-3.json".into(),
                already_committed: false,
            }],
            set_aside: Vec::new(),
        };
        // What `strata run` answers to POST /v1/flush is what `strata flush` prints.
        let json = Format::Json.render(&report).unwrap();
        assert_eq!(json.lines().count(), 1);
        let remote: CompactionReport = serde_json::from_str(&json).unwrap();
        assert_eq!(remote, report);
        assert_eq!(
            Format::Text.render(&remote).unwrap(),
            Format::Text.render(&report).unwrap()
        );
        assert!(Format::Text
            .render(&report)
            .unwrap()
            .contains("1 segment(s) into 1 file(s): 9 rows"));
    }

    #[test]
    fn wildcard_listeners_are_reached_through_loopback() {
        assert_eq!(connect_address("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(connect_address("[::]:9"), "[::1]:9");
        assert_eq!(connect_address("127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
