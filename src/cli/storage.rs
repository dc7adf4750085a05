//! `strata storage check`: probe the configured object store step by step.

use std::process::ExitCode;

use strata::config::Config;
use strata::store::Archive;

use super::CliError;

pub(crate) async fn check(config: Config) -> Result<ExitCode, CliError> {
    let archive = Archive::open(&config.storage)?;
    println!("checking {}", archive.url());
    let report = strata::store::check(&archive).await;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
