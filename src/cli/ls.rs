//! `strata ls`: the archive's partitions and files (and, with `--iceberg`,
//! the Iceberg table's current metadata file).

use std::process::ExitCode;

use strata::config::Config;
use strata::iceberg::IcebergTable;
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
    /// Also print the Iceberg table's current metadata file, as a line
    /// `iceberg metadata: <url>` (the URL readers open).
    #[arg(long)]
    iceberg: bool,
    #[command(flatten)]
    archive: ArchiveArg,
}

pub(crate) async fn ls(mut config: Config, args: LsArgs) -> Result<ExitCode, CliError> {
    args.archive.apply(&mut config);
    let station = args.station.map(StationName::new).transpose()?;
    let archive = Archive::open(&config.storage)?;
    let listing = strata::catalog::list(&archive, station.as_ref()).await?;
    println!("{listing}");
    if args.iceberg {
        match IcebergTable::new(archive).current_metadata_url().await? {
            Some(url) => println!("iceberg metadata: {url}"),
            None => println!(
                "iceberg metadata: none (no table yet; `strata iceberg rebuild` writes one)"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
