//! `strata restore`: the flags become a [`strata::restore::Request`], the
//! library runs it with a progress bar from here, and the summary is printed
//! as the flags and the terminal say.

mod args;
mod progress;

use std::process::ExitCode;

use strata::config::Config;
use strata::restore::Target;
use strata::store::Archive;

use super::overrides::ArchiveArg;
use super::CliError;
pub(crate) use args::RestoreArgs;
use progress::{Bar, Mode};

/// `strata restore`: the archive flag, then the restore's own arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreCmd {
    #[command(flatten)]
    archive: ArchiveArg,
    #[command(flatten)]
    args: Box<RestoreArgs>,
}

/// Runs `strata restore` against the archive the configuration (and
/// `--archive`) names.
pub(crate) async fn restore(mut config: Config, cmd: RestoreCmd) -> Result<ExitCode, CliError> {
    let RestoreCmd { archive, args } = cmd;
    archive.apply(&mut config);
    let archive = Archive::open(&config.storage)?;
    let quiet = args.quiet;
    let request = args.into_request()?;
    let mode = Mode::detect(quiet, matches!(request.target, Target::Stdout));
    let summary = strata::restore::run(request, archive, &Bar::new(mode)).await?;
    mode.print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}
