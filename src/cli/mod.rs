//! Command-line definitions and dispatch. Each subcommand lives in its own
//! module; this one only parses arguments and wires configuration.

mod flush;
mod ingest;
mod inspect;
mod ls;
mod run;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strata::config::Config;

/// Boxed error for the command layer: every library error already says what to do.
pub(crate) type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Strata: archive broker stations to Parquet on S3-compatible storage, query
/// them with DuckDB or Spark, and restore them.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub(crate) struct Cli {
    /// Configuration file (default: `strata.toml` in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More logging (`-v` debug, `-vv` trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the archiver: HTTP ingest, the NATS source and the background compactor.
    Run(run::RunArgs),
    /// Append NDJSON messages from a file (or `-` for stdin) to the WAL.
    Ingest(ingest::IngestArgs),
    /// Seal the WAL and upload everything to the archive now.
    Flush,
    /// List the archive's partitions and files.
    Ls(ls::LsArgs),
    /// Replay archived messages into a NATS station or to NDJSON.
    Restore(Box<strata::restore::RestoreArgs>),
    /// Inspect the write-ahead log.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Check the object storage configuration.
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Debug, Subcommand)]
enum WalCommand {
    /// Segments, entries, messages and bytes per station, with a CRC check of everything.
    Inspect {
        /// WAL directory (overrides `[wal] dir`).
        #[arg(long, value_name = "DIR")]
        wal_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Put, get, list and delete a probe object, printing each step.
    Check,
}

/// Sets up `tracing` on stderr.
pub(crate) fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the parsed command.
pub(crate) async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => run::run(config, args).await,
        Command::Ingest(args) => ingest::ingest(config, args).await,
        Command::Flush => flush::flush(config).await,
        Command::Ls(args) => ls::ls(config, args).await,
        Command::Restore(args) => {
            let archive = strata::store::Archive::open(&config.storage)?;
            strata::restore::run(*args, archive).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wal(WalCommand::Inspect { wal_dir }) => {
            inspect::inspect(wal_dir.unwrap_or(config.wal.dir))
        }
        Command::Storage(StorageCommand::Check) => storage::check(config).await,
    }
}
