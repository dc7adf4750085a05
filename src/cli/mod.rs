//! Command-line definitions and dispatch. Each subcommand lives in its own
//! module; this one only parses arguments and wires configuration.

mod compact_tier2;
mod failpoint;
mod flush;
mod iceberg;
mod ingest;
mod inspect;
mod ls;
mod overrides;
mod restore;
mod run;
mod status;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strata::config::Config;

use overrides::{ArchiveArg, WalDirArg};

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
    /// More logging: one-shot commands print only their result and errors
    /// unless given `-v` (info), `-vv` (debug) or `-vvv` (trace); `run` logs
    /// info by default, `-v` debug, `-vv` trace. `RUST_LOG` overrides.
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
    Flush(flush::FlushArgs),
    /// List the archive's partitions and files.
    Ls(ls::LsArgs),
    /// Merge small archived files into larger ones now (one tier-2 pass).
    #[command(name = "compact-tier2")]
    CompactTier2(compact_tier2::CompactTier2Args),
    /// Replay archived messages into a NATS station or to NDJSON.
    Restore(restore::RestoreCmd),
    /// Inspect the write-ahead log.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Check the object storage configuration.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Print which process archives which station (the cluster sharing a NATS consumer).
    Status(status::StatusArgs),
    /// The archive's Apache Iceberg table.
    #[command(subcommand)]
    Iceberg(iceberg::IcebergCommand),
}

#[derive(Debug, Subcommand)]
enum WalCommand {
    /// Segments, entries, messages and bytes per station, with a CRC check of everything.
    Inspect(WalDirArg),
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Put, get, list and delete a probe object, printing each step.
    Check(ArchiveArg),
}

impl Cli {
    /// Whether the command is the long-running archiver (informative logging
    /// by default) rather than a one-shot command (quiet by default).
    pub(crate) fn is_long_running(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }
}

/// The `tracing` filter when `RUST_LOG` is not set: `run` reports what it does
/// (info); one-shot commands print only their result, warnings and errors.
fn default_filter(verbose: u8, long_running: bool) -> &'static str {
    const LEVELS: [&str; 5] = ["warn", "info", "debug", "trace", "trace"];
    let level = usize::from(verbose.min(3)) + usize::from(long_running);
    LEVELS[level]
}

/// Sets up `tracing` on stderr.
pub(crate) fn init_logging(verbose: u8, long_running: bool) {
    let default = default_filter(verbose, long_running);
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
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => run::run(config, args).await,
        Command::Ingest(args) => ingest::ingest(config, args).await,
        Command::Flush(args) => flush::flush(config, args).await,
        Command::Ls(args) => ls::ls(config, args).await,
        Command::CompactTier2(args) => compact_tier2::compact_tier2(config, args).await,
        Command::Restore(cmd) => restore::restore(config, cmd).await,
        Command::Wal(WalCommand::Inspect(wal_dir)) => {
            wal_dir.apply(&mut config);
            inspect::inspect(config.wal.dir)
        }
        Command::Storage(StorageCommand::Check(archive)) => {
            archive.apply(&mut config);
            storage::check(config).await
        }
        Command::Status(args) => status::status(config, args).await,
        Command::Iceberg(cmd) => iceberg::iceberg(config, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_commands_are_quiet_unless_asked() {
        assert_eq!(default_filter(0, false), "warn");
        assert_eq!(default_filter(1, false), "info");
        assert_eq!(default_filter(2, false), "debug");
        assert_eq!(default_filter(3, false), "trace");
        assert_eq!(default_filter(9, false), "trace");
        assert_eq!(default_filter(0, true), "info");
        assert_eq!(default_filter(1, true), "debug");
        assert_eq!(default_filter(2, true), "trace");
        assert_eq!(default_filter(9, true), "trace");
    }

    #[test]
    fn wal_and_archive_flags_reach_every_command_that_uses_them() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("strata").chain(args.iter().copied()))
        };
        for ok in [
            &["run", "--wal-dir", "w", "--archive", "file://./a"][..],
            &["ingest", "--wal-dir", "w", "--station", "s", "-"],
            &[
                "flush",
                "--wal-dir",
                "w",
                "--archive",
                "file://./a",
                "--json",
            ],
            &["ls", "--archive", "s3://b/p"],
            &["compact-tier2", "--archive", "s3://b/p", "--json"],
            &[
                "restore",
                "--archive",
                "s3://b",
                "--station",
                "s",
                "--output",
                "-",
            ],
            &["wal", "inspect", "--wal-dir", "w"],
            &["storage", "check", "--archive", "file:///tmp/a"],
            &["iceberg", "rebuild", "--archive", "s3://b/p"],
            &["ls", "--iceberg", "--archive", "file:///tmp/a"],
        ] {
            if let Err(e) = parse(ok) {
                panic!("{ok:?}: {e}");
            }
        }
        // Commands that do not touch the WAL do not pretend to take --wal-dir.
        assert!(parse(&["ls", "--wal-dir", "w"]).is_err());
        assert!(parse(&["compact-tier2", "--wal-dir", "w"]).is_err());
        assert!(parse(&["storage", "check", "--wal-dir", "w"]).is_err());
        let e = parse(&["ls", "--archive", "gs://b"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3://"), "{e}");
        assert!(parse(&["run"]).unwrap().is_long_running());
        assert!(!parse(&["flush"]).unwrap().is_long_running());
    }
}
