//! `strata ls`: the archive's partitions and files.

use std::process::ExitCode;

use strata::config::Config;
use strata::message::StationName;
use strata::store::Archive;

use super::overrides::ArchiveArg;
use super::CliError;

/// Arguments of `strata ls`.
#[derive(Debug, clap::Args)]
pub(crate) struct LsArgs {
    /// Only this station.
    #[arg(long, value_name = "S")]
    station: Option<String>,
    #[command(flatten)]
    archive: ArchiveArg,
}

pub(crate) async fn ls(mut config: Config, args: LsArgs) -> Result<ExitCode, CliError> {
    args.archive.apply(&mut config);
    let station = args.station.map(StationName::new).transpose()?;
    let archive = Archive::open(&config.storage)?;
    let listing = strata::catalog::list(&archive, station.as_ref()).await?;
    println!("{listing}");
    Ok(ExitCode::SUCCESS)
}
