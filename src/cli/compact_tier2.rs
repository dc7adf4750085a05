//! `strata compact-tier2`: one tier-2 pass now over the archive of the
//! config (or `--archive`): merges small files, deletes replaced files whose
//! grace has passed, and prints what it did.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use strata::config::Config;
use strata::iceberg::IcebergTable;
use strata::store::Archive;
use strata::tier2::{replace_hook, Tier2, Tier2Options};

use super::failpoint::CrashAt;
use super::overrides::ArchiveArg;
use super::CliError;

/// Arguments of `strata compact-tier2`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompactTier2Args {
    #[command(flatten)]
    archive: ArchiveArg,
    /// Print the report as one JSON object (the default when standard output
    /// is not a terminal, as `strata flush` does).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn compact_tier2(
    mut config: Config,
    args: CompactTier2Args,
) -> Result<ExitCode, CliError> {
    args.archive.apply(&mut config);
    let archive = Archive::open(&config.storage)?;
    let iceberg = IcebergTable::open(&archive, &config.iceberg)?;
    let tier2 = Tier2::new(
        archive,
        Tier2Options::from(&config.tier2),
        &config.compaction,
        replace_hook(iceberg),
        Arc::new(CrashAt::from_env()),
    );
    let report = tier2.pass().await?;
    if args.json || !std::io::stdout().is_terminal() {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
