//! The request budget: how many object-store requests of each billed class
//! (PUT, GET, LIST, HEAD, DELETE) Strata makes per GiB archived (tier-1
//! flushes of WAL segments) and per GiB restored, before and after a tier-2
//! pass, counted by `strata::restore::counting::CountingStore` around a
//! local-folder store.
//!
//! Two stations' steady states:
//! - *quiet*: a segment rolls by age (`[wal] segment_max_age`, 60 s) holding
//!   little, so each flush writes one small file per station-hour (here
//!   `--quiet-segments` segments of `--quiet-kib` KiB, one a minute);
//! - *busy*: segments roll by size (`--busy-segments` of `--busy-mib` MiB).
//!
//! ```text
//! cargo run --example request_budget -- [--quiet-segments 240] [--quiet-kib 64]
//!     [--busy-segments 2] [--busy-mib 64] [--part-mib 8] [--no-iceberg]
//! ```
//!
//! The Iceberg table is kept, as `strata run` does by default (`[iceberg]
//! enabled = true`): each flush appends a snapshot, each tier-2 merge commits a
//! `replace` snapshot. `--no-iceberg` leaves it out.
//!
//! `--part-mib` is `[compaction] part_size` (default 8 MiB): files above
//! `multipart_threshold` (16 MiB) go up in parts of that size, one request each.
//!
//! Payloads are pseudo-random bytes (1 KiB messages), so stored bytes are
//! close to message bytes and "per GiB" means either.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use strata::compactor::{Compactor, NoopObserver};
use strata::config::CompactionConfig;
use strata::iceberg::IcebergTable;
use strata::restore::counting::{CountingStore, RequestCounts};
use strata::restore::{NoProgress, Request, Target};
use strata::store::Archive;
use strata::tier2::{replace_hook, NoopTier2Observer, Tier2, Tier2Options};
use strata::wal::{Wal, WalOptions};
use strata::{Draft, StationName, Timestamp};

type Error = Box<dyn std::error::Error + Send + Sync>;

const MESSAGE_BYTES: usize = 1024;
const GIB: f64 = (1u64 << 30) as f64;
/// 2026-11-30T00:00:00Z.
const START: i64 = 1_796_083_200_000_000 - 24 * 3_600_000_000;

struct Scenario {
    name: &'static str,
    segments: u64,
    segment_bytes: u64,
    /// Time between two segments' messages.
    spacing: Duration,
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let scenarios = [
        Scenario {
            name: "quiet",
            segments: arg("--quiet-segments", 240),
            segment_bytes: arg("--quiet-kib", 64) << 10,
            spacing: Duration::from_secs(60),
        },
        Scenario {
            name: "busy",
            segments: arg("--busy-segments", 2),
            segment_bytes: arg("--busy-mib", 64) << 20,
            spacing: Duration::from_secs(1),
        },
    ];
    println!("| station | phase | GiB | PUT | GET | LIST | HEAD | DELETE | PUT per 8 MB |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for s in &scenarios {
        run(s).await?;
    }
    Ok(())
}

async fn run(s: &Scenario) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("archive"))?;
    let local = LocalFileSystem::new_with_prefix(dir.path().join("archive"))?;
    let counting = CountingStore::new(Arc::new(local));
    let archive = Archive::from_store(Arc::new(counting.clone()), Path::default(), "file://");
    let cfg = CompactionConfig {
        part_size: (arg("--part-mib", 8) << 20) as usize,
        ..CompactionConfig::default()
    };

    // Tier 1: one flush per segment.
    let mut opts = WalOptions::new(dir.path().join("wal"));
    opts.segment_max_bytes = 4 * s.segment_bytes + (1 << 20);
    opts.segment_max_age = Duration::from_secs(24 * 3600);
    let wal = Wal::open(opts)?;
    let iceberg = (!std::env::args().any(|a| a == "--no-iceberg"))
        .then(|| IcebergTable::new(archive.clone()));
    let compactor = Compactor::new(wal.clone(), archive.clone(), &cfg, Arc::new(NoopObserver))
        .with_iceberg(iceberg.clone());
    let station = StationName::new(s.name)?;
    let per_segment = (s.segment_bytes as usize / MESSAGE_BYTES).max(1) as u64;
    let mut seq = 0u64;
    let mut archived = 0u64;
    for segment in 0..s.segments {
        let base = START + (segment as i64) * s.spacing.as_micros() as i64;
        let drafts: Vec<Draft> = (0..per_segment)
            .map(|i| {
                seq += 1;
                archived += MESSAGE_BYTES as u64;
                Draft {
                    station: station.clone(),
                    seq: Some(seq),
                    timestamp: Timestamp(base + i as i64),
                    id: None,
                    subject: None,
                    headers: Vec::new(),
                    payload: payload(seq),
                }
            })
            .collect();
        for chunk in drafts.chunks(4096) {
            wal.append(chunk.to_vec()).await?;
        }
        compactor.flush().await?;
    }
    wal.close()?;
    let flushed = counting.requests();
    row(
        s.name,
        "tier-1 flush (per GiB archived)",
        archived,
        &flushed,
    );

    let before = counting.requests();
    restore(&archive, &station, dir.path()).await?;
    let restored = counting.requests().since(&before);
    row(
        s.name,
        "restore before tier-2 (per GiB restored)",
        archived,
        &restored,
    );

    let before = counting.requests();
    let tier2 = Tier2::new(
        archive.clone(),
        Tier2Options {
            target_file_bytes: 128 << 20,
            grace: Duration::ZERO,
        },
        &cfg,
        replace_hook(iceberg),
        Arc::new(NoopTier2Observer),
    );
    let report = tier2.pass().await?;
    let merged = counting.requests().since(&before);
    row(s.name, "tier-2 pass (per GiB archived)", archived, &merged);
    let total = RequestCounts {
        puts: flushed.puts + merged.puts,
        gets: flushed.gets + merged.gets,
        lists: flushed.lists + merged.lists,
        heads: flushed.heads + merged.heads,
        deletes: flushed.deletes + merged.deletes,
    };
    row(
        s.name,
        "tier-1 + tier-2 (per GiB archived)",
        archived,
        &total,
    );

    let before = counting.requests();
    restore(&archive, &station, dir.path()).await?;
    let restored = counting.requests().since(&before);
    row(
        s.name,
        "restore after tier-2 (per GiB restored)",
        archived,
        &restored,
    );
    eprintln!(
        "{}: {} messages, {} segments; tier-2 merged {} file(s) into {}",
        s.name,
        seq,
        s.segments,
        report.merges.iter().map(|m| m.replaced_files).sum::<u64>(),
        report.merges.len()
    );
    Ok(())
}

/// Restores the whole station as NDJSON into a file.
async fn restore(
    archive: &Archive,
    station: &StationName,
    dir: &std::path::Path,
) -> Result<(), Error> {
    let target = Target::File {
        path: dir.join("restored.ndjson"),
        overwrite: true,
    };
    let summary = strata::restore::run(
        Request::new(station.clone(), target),
        archive.clone(),
        &NoProgress,
    )
    .await?;
    eprintln!("restored {} messages of {station}", summary.messages);
    Ok(())
}

fn row(station: &str, phase: &str, bytes: u64, c: &RequestCounts) {
    let gib = bytes as f64 / GIB;
    let per = |n: u64| n as f64 / gib;
    let per_8mb = c.puts as f64 / (bytes as f64 / 8e6);
    println!(
        "| {station} | {phase} | {gib:.3} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {per_8mb:.2} |",
        per(c.puts),
        per(c.gets),
        per(c.lists),
        per(c.heads),
        per(c.deletes)
    );
}

/// 1 KiB of pseudo-random bytes (xorshift): real payloads rarely compress much.
fn payload(seq: u64) -> Bytes {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..MESSAGE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}
