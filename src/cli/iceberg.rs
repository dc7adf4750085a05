//! `strata iceberg rebuild`: writes the archive's Iceberg table afresh from
//! its commit and replacement records (an archive written before the table
//! existed, or with `[iceberg] enabled = false`, or a damaged table).

use std::process::ExitCode;

use strata::config::{Config, IcebergCatalog};
use strata::iceberg::{CommitOutcome, IcebergError, IcebergTable};
use strata::store::Archive;

use super::overrides::ArchiveArg;
use super::CliError;

/// `strata iceberg …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum IcebergCommand {
    /// Rebuild the Iceberg table from the archive's commit and replacement
    /// records: one snapshot listing every live data file.
    Rebuild(ArchiveArg),
}

pub(crate) async fn iceberg(mut config: Config, cmd: IcebergCommand) -> Result<ExitCode, CliError> {
    match cmd {
        IcebergCommand::Rebuild(archive) => {
            archive.apply(&mut config);
            if config.iceberg.catalog == IcebergCatalog::Rest {
                return Err(IcebergError::RestCatalog {
                    uri: config.iceberg.uri.clone(),
                }
                .into());
            }
            let archive = Archive::open(&config.storage)?;
            // Also when `[iceberg] enabled = false`: rebuilding is how a table
            // is made for an archive written without one.
            let table = IcebergTable::new(archive);
            let (outcome, files) = table.rebuild().await?;
            match outcome {
                CommitOutcome::Committed { version, .. } => {
                    println!("rebuilt the Iceberg table: {files} data file(s), metadata version {version}");
                    println!("iceberg metadata: {}", table.metadata_url(version));
                }
                CommitOutcome::AlreadyDone => println!("the Iceberg table is already current"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
