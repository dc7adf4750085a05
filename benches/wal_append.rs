//! Durable append throughput of the WAL next to the disk's own limit.
//!
//! `cargo bench --bench wal_append`. Every append returns only once its batch
//! is fsynced, so these figures are durable throughput. `disk/dsync_1MiB`
//! is the equivalent of `dd if=/dev/zero bs=1M oflag=dsync` (write 1 MiB,
//! fdatasync, repeat), measured in the same run on the same file system.
//! After the criterion groups, a *paired* run alternates one second of the
//! disk figure with one second of each headline WAL case, five times, and
//! prints each ratio and their median: on a shared machine the disk's fsync
//! latency swings by 10x within seconds, so only figures taken back to back
//! compare. `cargo bench --bench wal_append -- <filter>` skips the paired run.
//! Results and the goals they are held to: `docs/bench/wal.md`.

use std::fs::File;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use strata::wal::{Wal, WalOptions};
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
                    total += run(&wal, &payload, appenders, size);
                    drain(&wal);
                }
                total
            })
        });
    }
    g.finish();
}

/// `appenders` threads each make `rounds(size)` durable appends of `size` messages.
fn run(wal: &Wal, payload: &Bytes, appenders: usize, size: usize) -> Duration {
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
                for b in batches {
                    wal.append_blocking(b).expect("append");
                }
            });
        }
        start_line.wait();
        // Leaving the scope joins every appender.
        Instant::now()
    })
    .elapsed()
}

/// Disk and WAL figures taken back to back, five times; prints the ratios.
fn paired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = open_wal(&dir.path().join("wal"));
    let payload = Bytes::from(vec![b'x'; MESSAGE_BYTES]);
    let block = vec![0u8; 1 << 20];
    let second = Duration::from_secs(1);
    let mut ratios = Vec::new();
    let mut singles = Vec::new();
    let mut ceiling = Vec::new();
    println!("\npaired run (1 s each, back to back):");
    for round in 1..=5 {
        let (mut bytes, mut took) = (0u64, Duration::ZERO);
        while took < second {
            took += dd(dir.path(), &block, 16);
            bytes += 16 << 20;
        }
        let disk = bytes as f64 / took.as_secs_f64() / 1048576.0;
        // The most 8 appenders of 64 KiB batches can put on one fsync.
        let half = vec![0u8; 512 << 10];
        let (mut hbytes, mut htook) = (0u64, Duration::ZERO);
        while htook < second {
            htook += dd(dir.path(), &half, 32);
            hbytes += 16 << 20;
        }
        let disk_half = hbytes as f64 / htook.as_secs_f64() / 1048576.0;
        let rate = |appenders: usize, size: usize| {
            let (mut n, mut took) = (0usize, Duration::ZERO);
            while took < second {
                took += run(&wal, &payload, appenders, size);
                drain(&wal);
                n += appenders * rounds(size);
            }
            n as f64 / took.as_secs_f64()
        };
        let mib = rate(8, 64) * (64 * MESSAGE_BYTES) as f64 / 1048576.0;
        let single = rate(8, 1);
        let single_alone = rate(1, 1);
        println!(
            "  round {round}: disk 1 MiB {disk:5.0} MiB/s, 512 KiB {disk_half:5.0} MiB/s | \
             8 x 64 msgs {mib:5.0} MiB/s = {:3.0}% of 1 MiB, {:3.0}% of 512 KiB | \
             8 x 1 msg {single:6.0}/s | 1 x 1 msg {single_alone:5.0}/s",
            mib / disk * 100.0,
            mib / disk_half * 100.0,
        );
        ratios.push(mib / disk);
        ceiling.push(disk_half / disk);
        singles.push(single);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  median: 8 x 64 msgs at {:.0}% of the 1 MiB disk figure (goal >= 75%; 512 KiB per \
         fsync, the most 8 x 64 KiB in flight allow, is {:.0}% of it), 8 x 1 msg {:.0} \
         appends/s (goal >= 5000)",
        median(&mut ratios) * 100.0,
        median(&mut ceiling) * 100.0,
        median(&mut singles)
    );
}

fn main() {
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    let mut c = Criterion::default().configure_from_args();
    // The headline case right after the disk figure, so both see the same disk.
    disk_limit(&mut c, "dsync_1MiB");
    appends(
        &mut c,
        &[(8, 64), (8, 1), (8, 1024), (1, 1), (1, 64), (1, 1024)],
    );
    disk_limit(&mut c, "dsync_1MiB_again");
    c.final_summary();
    if !filtered {
        paired();
    }
}
