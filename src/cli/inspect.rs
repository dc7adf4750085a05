//! `strata wal inspect`: a read-only report over the WAL directory.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;

pub(crate) fn inspect(dir: PathBuf) -> Result<ExitCode, CliError> {
    let report = strata::wal::inspect(&dir)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
