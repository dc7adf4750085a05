//! Durable append throughput of the WAL next to the disk's own limit.
//!
//! `cargo bench --bench wal_append`. Every append returns only once its batch
//! is fsynced, so these figures are durable throughput. `disk/dsync_1MiB`
//! is the equivalent of `dd if=/dev/zero bs=1M oflag=dsync` (write 1 MiB,
//! fdatasync, repeat), measured in the same run on the same file system.
//! After the criterion groups, a *paired* run alternates one second of 8
//! appenders × 64 messages with `dd oflag=dsync` writing, per fsync, the bytes
//! the WAL's groups carried in that second, five times, and prints each ratio,
//! the group size reached and their medians: on a shared machine the disk's
//! fsync latency swings by 10x within seconds, so only figures taken back to
//! back compare. `cargo bench --bench wal_append -- <filter>` skips the paired
//! run; `cargo bench --bench wal_append -- paired` runs only the paired run.
//! Results and the goals they are held to: `docs/bench/wal.md`.

use std::fs::File;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use strata::wal::{Appended, Wal, WalError, WalOptions};
use strata::{Draft, StationName, Timestamp};

const MESSAGE_BYTES: usize = 1024;
const DISK_BLOCKS: usize = 64;

/// `dd if=/dev/zero of=FILE bs=1M count=64 oflag=dsync`: returns the time
/// the writes and fdatasyncs took.
fn dd(dir: &std::path::Path, block: &[u8], blocks: usize) -> Duration {
    let path = dir.join("dd");
    let mut f = File::create(&path).expect("create");
    let start = Instant::now();
    for _ in 0..blocks {
        f.write_all(block).expect("write");
        f.sync_data().expect("fdatasync");
    }
    let took = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).expect("remove");
    took
}

fn disk_limit(c: &mut Criterion, name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let block = vec![0u8; 1 << 20];
    let mut g = c.benchmark_group("disk");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes((DISK_BLOCKS * block.len()) as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| dd(dir.path(), &block, DISK_BLOCKS))
                .sum()
        })
    });
    g.finish();
}

fn batch(station: &StationName, payload: &Bytes, n: usize) -> Vec<Draft> {
    (0..n)
        .map(|_| Draft {
            station: station.clone(),
            seq: None,
            timestamp: Timestamp(1_700_000_000_000_000),
            id: None,
            subject: None,
            headers: vec![],
            payload: payload.clone(),
        })
        .collect()
}

/// Appends per appender per iteration, so one iteration moves a few MiB.
fn rounds(batch: usize) -> usize {
    match batch {
        1 => 400,
        64 => 32,
        _ => 4,
    }
}

fn open_wal(dir: &std::path::Path) -> Wal {
    let mut opts = WalOptions::new(dir);
    opts.max_disk_bytes = 64 << 30;
    Wal::open(opts).expect("open WAL")
}

/// Stand in for the compactor so the WAL does not grow without bound.
fn drain(wal: &Wal) {
    for s in wal.sealed() {
        wal.remove_sealed(s.id).expect("remove sealed");
    }
}

fn appends(c: &mut Criterion, cases: &[(usize, usize)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = open_wal(dir.path());
    let payload = Bytes::from(vec![b'x'; MESSAGE_BYTES]);
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for &(appenders, size) in cases {
        let appends = (appenders * rounds(size)) as u64;
        g.throughput(if size == 1 {
            Throughput::Elements(appends)
        } else {
            Throughput::Bytes(appends * (size * MESSAGE_BYTES) as u64)
        });
        let id = BenchmarkId::new(format!("{appenders}_appenders"), format!("batch_{size}"));
        g.bench_with_input(id, &(appenders, size), |b, &(appenders, size)| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run(&wal, &payload, appenders, size, 1);
                    drain(&wal);
                }
                total
            })
        });
    }
    g.finish();
}

/// `appenders` threads each make `rounds(size)` durable appends of `size`
/// messages, each with up to `in_flight` batches submitted and not yet durable
/// (1: each waits for its append before the next; the NATS source submits its
/// next batch while the previous one is being made durable).
fn run(wal: &Wal, payload: &Bytes, appenders: usize, size: usize, in_flight: usize) -> Duration {
    let start_line = Barrier::new(appenders + 1);
    std::thread::scope(|s| {
        for t in 0..appenders {
            let (wal, start_line) = (wal.clone(), &start_line);
            s.spawn(move || {
                let station = StationName::new(format!("bench-{t}")).expect("valid name");
                let batches: Vec<Vec<Draft>> = (0..rounds(size))
                    .map(|_| batch(&station, payload, size))
                    .collect();
                start_line.wait();
                let mut waiting = std::collections::VecDeque::new();
                for b in batches {
                    if waiting.len() == in_flight {
                        if let Some(oldest) = waiting.pop_front() {
                            durable(oldest);
                        }
                    }
                    waiting.push_back(Box::pin(wal.submit(b)));
                }
                for w in waiting {
                    durable(w);
                }
            });
        }
        start_line.wait();
        // Leaving the scope joins every appender.
        Instant::now()
    })
    .elapsed()
}

/// Waits for a submitted append to be durable.
fn durable(append: impl std::future::Future<Output = Result<Appended, WalError>>) {
    futures::executor::block_on(append).expect("append");
}

/// What one second (at least) of `appenders` × `size`-message appends came to.
struct Rate {
    /// Appends per second.
    appends: f64,
    /// Payload MiB per second.
    payload_mib: f64,
    /// Bytes the WAL wrote (framing included) per fsync.
    bytes_per_fsync: f64,
    /// Appends per fsync: the group size reached.
    appends_per_fsync: f64,
}

fn rate(wal: &Wal, payload: &Bytes, appenders: usize, size: usize, in_flight: usize) -> Rate {
    let before = wal.stats();
    let (mut n, mut took, mut written) = (0usize, Duration::ZERO, 0u64);
    while took < Duration::from_secs(1) {
        let start = wal.stats().disk_bytes;
        took += run(wal, payload, appenders, size, in_flight);
        written += wal.stats().disk_bytes - start;
        drain(wal);
        n += appenders * rounds(size);
    }
    let after = wal.stats();
    let fsyncs = (after.fsyncs - before.fsyncs).max(1) as f64;
    Rate {
        appends: n as f64 / took.as_secs_f64(),
        payload_mib: (n * size * MESSAGE_BYTES) as f64 / took.as_secs_f64() / 1048576.0,
        bytes_per_fsync: written as f64 / fsyncs,
        appends_per_fsync: (after.appends - before.appends) as f64 / fsyncs,
    }
}

/// Runs `dd if=/dev/zero of=DIR/dd bs=BLOCK count=COUNT oflag=dsync` and returns
/// its own figure in MiB/s (bytes over the seconds dd reports).
fn dd_process(dir: &std::path::Path, block: usize, count: usize) -> f64 {
    let out = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dir.join("dd").display()))
        .arg(format!("bs={block}"))
        .arg(format!("count={count}"))
        .arg("oflag=dsync")
        .output()
        .expect("run dd (coreutils)");
    assert!(out.status.success(), "dd failed: {out:?}");
    std::fs::remove_file(dir.join("dd")).expect("remove dd's file");
    // "… bytes (…) copied, 1.23 s, 456 MB/s"
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().last().unwrap_or_default();
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("unreadable dd output: {text}"));
    let secs: f64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" s").and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("unreadable dd output: {text}"));
    bytes / secs / 1048576.0
}

/// The WAL's 8 × 64 figure and `dd oflag=dsync` with the bytes per fsync the
/// WAL's groups carried, back to back, five times, once with one batch in
/// flight per appender and once with two; then 8 × 1 and 1 × 1.
fn paired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = open_wal(&dir.path().join("wal"));
    let payload = Bytes::from(vec![b'x'; MESSAGE_BYTES]);
    let (mut ratios, mut groups) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut singles = Vec::new();
    println!("\npaired run (WAL for 1 s, then dd oflag=dsync with the bytes per fsync its groups carried):");
    for round in 1..=5 {
        for in_flight in [1, 2] {
            let wal_rate = rate(&wal, &payload, 8, 64, in_flight);
            let block = wal_rate.bytes_per_fsync.round().max(4096.0) as usize;
            // About as many bytes as the WAL wrote in its second.
            let count = ((wal_rate.payload_mib * 1048576.0 / block as f64) as usize).max(16);
            let disk = dd_process(dir.path(), block, count);
            println!(
                "  round {round}: 8 x 64 msgs, {in_flight} in flight each: {:5.0} MiB/s of payload, \
                 {:.1} appends = {:.0} KiB per fsync | dd bs={block} oflag=dsync {disk:5.0} MiB/s | {:.2}x",
                wal_rate.payload_mib,
                wal_rate.appends_per_fsync,
                wal_rate.bytes_per_fsync / 1024.0,
                wal_rate.payload_mib / disk,
            );
            ratios[in_flight - 1].push(wal_rate.payload_mib / disk);
            groups[in_flight - 1].push(wal_rate.appends_per_fsync);
        }
        let single = rate(&wal, &payload, 8, 1, 1).appends;
        let single_alone = rate(&wal, &payload, 1, 1, 1).appends;
        println!("  round {round}: 8 x 1 msg {single:6.0}/s | 1 x 1 msg {single_alone:5.0}/s");
        singles.push(single);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for in_flight in [1, 2] {
        println!(
            "  median: 8 x 64 msgs, {in_flight} in flight each, at {:.2}x dd with the same bytes per \
             fsync (goal >= 0.9x), {:.1} appends per fsync",
            median(&mut ratios[in_flight - 1]),
            median(&mut groups[in_flight - 1]),
        );
    }
    println!(
        "  median: 8 x 1 msg {:.0} appends/s (goal >= 5000)",
        median(&mut singles)
    );
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.iter().any(|f| f == "paired") {
        paired();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    // The headline case right after the disk figure, so both see the same disk.
    disk_limit(&mut c, "dsync_1MiB");
    appends(
        &mut c,
        &[(8, 64), (8, 1), (8, 1024), (1, 1), (1, 64), (1, 1024)],
    );
    disk_limit(&mut c, "dsync_1MiB_again");
    c.final_summary();
    if filters.is_empty() {
        paired();
    }
}
