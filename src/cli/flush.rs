//! `strata flush`: seal the WAL and upload everything now. When `strata run`
//! owns the WAL, the running process is asked to do it (`POST /v1/flush`), so
//! the two never fight over the WAL lock.

use std::process::ExitCode;
use std::sync::Arc;

use strata::compactor::{Compactor, NoopObserver};
use strata::config::Config;
use strata::store::Archive;
use strata::wal::{Wal, WalError};

use super::CliError;

pub(crate) async fn flush(config: Config) -> Result<ExitCode, CliError> {
    let wal = match Wal::open(config.wal.options()) {
        Ok(wal) => wal,
        Err(WalError::Locked { pid, .. }) => return flush_remote(&config, &pid).await,
        Err(e) => return Err(e.into()),
    };
    let archive = Archive::open(&config.storage)?;
    let compactor = Compactor::new(
        wal.clone(),
        archive,
        &config.compaction,
        Arc::new(NoopObserver),
    );
    let report = compactor.flush().await;
    wal.close()?;
    println!("{}", report?);
    Ok(ExitCode::SUCCESS)
}

/// Asks the process that owns the WAL to flush, through its admin endpoint.
async fn flush_remote(config: &Config, pid: &str) -> Result<ExitCode, CliError> {
    let url = format!("http://{}/v1/flush", connect_address(&config.http.listen));
    eprintln!("the WAL is owned by a running strata (pid {pid}); asking it to flush at {url}");
    let mut request = reqwest::Client::new().post(&url);
    if let Some(token) = &config.http.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "cannot reach the running strata at {url}: {e}; check [http] listen in the config \
             it was started with"
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{body}");
        Ok(ExitCode::SUCCESS)
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
    use super::connect_address;

    #[test]
    fn wildcard_listeners_are_reached_through_loopback() {
        assert_eq!(connect_address("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(connect_address("[::]:9"), "[::1]:9");
        assert_eq!(connect_address("127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
