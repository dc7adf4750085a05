//! `strata ingest`: append NDJSON messages to the WAL in batches.

use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;
use std::time::Instant;

use strata::config::Config;
use strata::message::{Draft, StationName};
use strata::ndjson;
use strata::wal::{Wal, WalError};

use super::overrides::WalDirArg;
use super::CliError;

/// Messages per WAL append: large enough to amortise the fsync, small enough
/// that a bad line late in a file leaves everything before it durable.
const BATCH_MESSAGES: usize = 1024;
/// Input bytes per WAL append.
const BATCH_BYTES: usize = 4 << 20;

/// Arguments of `strata ingest`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// Station for lines that name none.
    #[arg(long, value_name = "S")]
    station: Option<String>,
    #[command(flatten)]
    wal_dir: WalDirArg,
    /// NDJSON file, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: String,
}

/// What an ingest run did so far.
#[derive(Debug, Default)]
struct Tally {
    messages: u64,
    duplicates: u64,
    bytes: u64,
}

pub(crate) async fn ingest(mut config: Config, args: IngestArgs) -> Result<ExitCode, CliError> {
    let station = args.station.map(StationName::new).transpose()?;
    args.wal_dir.apply(&mut config);
    let input: Box<dyn Read + Send> = if args.input == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.input)
                .map_err(|e| format!("cannot open {}: {e}", args.input))?,
        )
    };
    let wal = Wal::open(config.wal.options()).map_err(|e| match e {
        WalError::Locked { .. } => format!(
            "{e}\nhint: while `strata run` owns the WAL, post messages to its HTTP ingest: \
             POST http://{}/v1/stations/<station>/messages",
            config.http.listen
        )
        .into(),
        e => CliError::from(e),
    })?;
    let started = Instant::now();
    let mut tally = Tally::default();
    let result = feed(&wal, station.as_ref(), BufReader::new(input), &mut tally).await;
    let closed = wal.close();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let summary = format!(
        "appended {} messages ({} bytes of NDJSON) in {:.2}s: {:.0} msg/s, {:.1} MB/s; {} duplicates dropped",
        tally.messages,
        tally.bytes,
        secs,
        tally.messages as f64 / secs,
        tally.bytes as f64 / secs / 1e6,
        tally.duplicates
    );
    match result {
        Ok(()) => {
            closed?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{summary} before the error");
            Err(e)
        }
    }
}

/// Parses and appends `input` batch by batch; on a bad line, appends the good
/// lines before it and returns the line's error.
async fn feed(
    wal: &Wal,
    station: Option<&StationName>,
    input: impl BufRead,
    tally: &mut Tally,
) -> Result<(), CliError> {
    let mut batch: Vec<Draft> = Vec::with_capacity(BATCH_MESSAGES);
    let mut batch_bytes = 0usize;
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| format!("line {line_no}: cannot read input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match ndjson::parse_line(&line, line_no, station) {
            Ok(draft) => {
                batch_bytes += line.len() + 1;
                batch.push(draft);
            }
            Err(e) => {
                append(wal, &mut batch, &mut batch_bytes, tally).await?;
                return Err(e.into());
            }
        }
        if batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES {
            append(wal, &mut batch, &mut batch_bytes, tally).await?;
        }
    }
    append(wal, &mut batch, &mut batch_bytes, tally).await
}

async fn append(
    wal: &Wal,
    batch: &mut Vec<Draft>,
    batch_bytes: &mut usize,
    tally: &mut Tally,
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    let appended = wal.append(std::mem::take(batch)).await?;
    tally.messages += appended.accepted as u64;
    tally.duplicates += appended.duplicates as u64;
    tally.bytes += *batch_bytes as u64;
    *batch_bytes = 0;
    Ok(())
}
