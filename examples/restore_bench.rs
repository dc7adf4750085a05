//! Helper for `benches/restore_vs_bare.sh`: writes a local-folder archive the
//! way the compactor does (Parquet through `columnar`, keys through `layout`),
//! and restores from such a folder without a config file, through the
//! library call behind `strata restore` (`strata::restore::run`), printing its
//! JSON summary line on standard output.
//!
//! ```text
//! restore_bench write --dir /tmp/arch --station bench --subject bench.restore \
//!     --count 200000 --size 1024
//! restore_bench restore --dir /tmp/arch --station bench --nats nats://127.0.0.1:14333
//! restore_bench headers --count 100000 --size 1024 --rounds 5
//! ```
//!
//! `headers` times, in this process and on one thread, building the NATS
//! headers of in-memory messages two ways: restore's `HeaderBuilder` and the
//! way restore built them before (a `format!`/chrono/`hex::encode` and
//! per-message HMAC key version, kept here), after checking that both give
//! the same header map for every message. The last line compares the
//! fastest round of each, the least disturbed on a shared machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use async_nats::{HeaderMap, HeaderName, HeaderValue};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use strata::columnar::{encode_file, ParquetOptions};
use strata::identity::mac::RestoreKey;
use strata::layout::{DataKey, Hour};
use strata::message::{Header, Message, StationName, Timestamp};
use strata::nats::NatsUrl;
use strata::restore::sink_nats::HeaderBuilder;
use strata::restore::{NatsTarget, NoProgress, Request, Target};
use strata::store::Archive;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an archive of `count` messages of `size` bytes.
    Write {
        /// Archive folder (the object store root).
        #[arg(long)]
        dir: PathBuf,
        /// Station name.
        #[arg(long, default_value = "bench")]
        station: String,
        /// Subject every message carries.
        #[arg(long, default_value = "bench.restore")]
        subject: String,
        /// Messages.
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Payload bytes per message.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Messages per file (one compacted segment's share of an hour).
        #[arg(long, default_value_t = 50_000)]
        per_file: usize,
        /// Rows per row group.
        #[arg(long, default_value_t = 10_000)]
        row_group_rows: usize,
    },
    /// Restore the whole station from the folder, to NATS or to NDJSON.
    Restore {
        /// Archive folder.
        #[arg(long)]
        dir: PathBuf,
        /// Station name.
        #[arg(long, default_value = "bench")]
        station: String,
        /// Publish to this NATS server's JetStream.
        #[arg(long, conflicts_with = "output", required_unless_present = "output")]
        nats: Option<String>,
        /// Most JetStream publish acknowledgements outstanding at once.
        #[arg(long, default_value_t = strata::restore::request::DEFAULT_MAX_INFLIGHT)]
        max_inflight: usize,
        /// Write NDJSON to this file (which must not exist yet, unless --force).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Replace the --output file when it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Time building the headers of `count` messages, old way and new.
    Headers {
        /// Messages.
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Payload bytes per message.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Rounds (old and new alternate).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match Cli::parse().command {
        Command::Write {
            dir,
            station,
            subject,
            count,
            size,
            per_file,
            row_group_rows,
        } => write(dir, station, subject, count, size, per_file, row_group_rows).await,
        Command::Headers {
            count,
            size,
            rounds,
        } => headers(count, size, rounds),
        Command::Restore {
            dir,
            station,
            nats,
            max_inflight,
            output,
            force,
        } => {
            let target = match (nats, output) {
                (Some(url), _) => Target::Nats(NatsTarget {
                    max_inflight,
                    ..NatsTarget::new(NatsUrl::new(url))
                }),
                (None, Some(path)) => Target::File {
                    path,
                    overwrite: force,
                },
                (None, None) => return Err("give --nats URL or --output FILE".into()),
            };
            let request = Request::new(StationName::new(station)?, target);
            let summary = strata::restore::run(request, open(&dir)?, &NoProgress).await?;
            println!("{}", summary.to_json_line());
            Ok(())
        }
    }
}

fn open(dir: &std::path::Path) -> Result<Archive, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(dir)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
    Ok(Archive::from_store(
        store,
        Path::from("archive"),
        format!("file://{}", dir.display()),
    ))
}

async fn write(
    dir: PathBuf,
    station: String,
    subject: String,
    count: u64,
    size: usize,
    per_file: usize,
    row_group_rows: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let archive = open(&dir)?;
    let station = StationName::new(station)?;
    let opts = ParquetOptions {
        zstd_level: 3,
        row_group_rows,
        row_group_bytes: 64 << 20,
    };
    // Four hours' worth of timestamps, whatever the count.
    let start = Timestamp::parse_rfc3339("2026-11-24T08:00:00Z")?.micros();
    let step = (4 * 3_600_000_000i64 / count.max(1) as i64).max(1);
    let mut groups: BTreeMap<Hour, Vec<Message>> = BTreeMap::new();
    let mut files = 0usize;
    let mut bytes_total = 0u64;
    for seq in 1..=count {
        // Pseudo-random bytes (xorshift): real payloads rarely compress much.
        let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let payload: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let m = Message {
            station: station.clone(),
            seq,
            timestamp: Timestamp(start + seq as i64 * step),
            id: None,
            subject: Some(subject.clone()),
            headers: vec![Header::new("X-Bench", "1")],
            payload: Bytes::from(payload),
        };
        let hour = Hour::of(m.timestamp);
        let group = groups.entry(hour).or_default();
        group.push(m);
        if group.len() >= per_file {
            let full = std::mem::take(group);
            bytes_total += put(&archive, &station, hour, &full, &opts).await?;
            files += 1;
        }
    }
    for (hour, group) in groups {
        if !group.is_empty() {
            bytes_total += put(&archive, &station, hour, &group, &opts).await?;
            files += 1;
        }
    }
    println!("{{\"messages\":{count},\"files\":{files},\"bytes\":{bytes_total}}}");
    Ok(())
}

async fn put(
    archive: &Archive,
    station: &StationName,
    hour: Hour,
    msgs: &[Message],
    opts: &ParquetOptions,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let (bytes, summary) = encode_file(station, msgs, opts)?;
    let key = DataKey {
        station: station.clone(),
        hour,
        first_seq: summary.first_seq,
        last_seq: summary.last_seq,
    };
    let n = bytes.len() as u64;
    archive.put(&key.path(), bytes.into()).await?;
    Ok(n)
}

/// Headers as restore built them before `HeaderBuilder` (archived headers
/// without `Nats-Msg-Id` or `Strata-*` names, no message id), signed with `key`.
fn old_headers(m: &Message, key: &[u8; 32]) -> HeaderMap {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut map = HeaderMap::new();
    for h in &m.headers {
        let name = HeaderName::from_str(&h.name).expect("bench header names are valid");
        let value = HeaderValue::from_str(&h.value).expect("bench header values are valid");
        map.append(name, value);
    }
    map.insert(
        HeaderName::from_static("Nats-Msg-Id"),
        format!("strata:{}:{}", m.station, m.seq).as_str(),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"strata-restore-v1");
    mac.update(&[0]);
    mac.update(m.station.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(&m.seq.to_be_bytes());
    mac.update(&m.timestamp.micros().to_be_bytes());
    mac.update(&Sha256::digest(&m.payload));
    let signature = hex::encode(mac.finalize().into_bytes());
    for (name, value) in [
        ("Strata-Station", m.station.to_string()),
        ("Strata-Seq", m.seq.to_string()),
        ("Strata-Timestamp", m.timestamp.to_rfc3339()),
        ("Strata-Mac", signature),
    ] {
        map.insert(HeaderName::from_static(name), value.as_str());
    }
    map
}

fn headers(
    count: u64,
    size: usize,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let station = StationName::new("bench")?;
    let start = Timestamp::parse_rfc3339("2026-11-24T08:00:00Z")?.micros();
    let messages: Vec<Message> = (1..=count)
        .map(|seq| Message {
            station: station.clone(),
            seq,
            timestamp: Timestamp(start + seq as i64 * 144_000),
            id: None,
            subject: Some("bench.restore".into()),
            headers: vec![Header::new("X-Bench", "1")],
            payload: Bytes::from(vec![(seq % 251) as u8; size]),
        })
        .collect();
    let key = [7u8; 32];
    let mut builder = HeaderBuilder::new(Some(RestoreKey::from_bytes(key)));
    for m in &messages {
        if builder.build(m)? != old_headers(m, &key) {
            return Err(format!("seq {}: the two ways disagree", m.seq).into());
        }
    }
    let (mut olds, mut news) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t = Instant::now();
        for m in &messages {
            std::hint::black_box(old_headers(m, &key));
        }
        let old = t.elapsed().as_nanos() as f64 / count as f64;
        let t = Instant::now();
        for m in &messages {
            std::hint::black_box(builder.build(m)?);
        }
        let new = t.elapsed().as_nanos() as f64 / count as f64;
        println!(
            "{{\"round\":{round},\"old_ns\":{old:.0},\"new_ns\":{new:.0},\"new_over_old\":{:.3}}}",
            new / old
        );
        olds.push(old);
        news.push(new);
    }
    // The fastest round of each: the least disturbed by other processes.
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (old, new) = (min(&olds), min(&news));
    println!(
        "{{\"fastest_old_ns\":{old:.0},\"fastest_new_ns\":{new:.0},\"new_over_old\":{:.3}}}",
        new / old
    );
    Ok(())
}
