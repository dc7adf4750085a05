//! Durable append throughput of the WAL next to the disk's own limit.
//!
//! `cargo bench --bench wal_append`. Every append returns only once its batch
//! is fsynced, so these figures are durable throughput. `disk/dsync_1MiB`
//! is the equivalent of `dd if=/dev/zero bs=1M oflag=dsync` (write 1 MiB,
//! fdatasync, repeat), measured in the same run on the same file system.
//! Results and the goals they are held to: `docs/bench/wal.md`.

use std::fs::File;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::wal::{Wal, WalOptions};
use strata::{Draft, StationName, Timestamp};

const MESSAGE_BYTES: usize = 1024;
const DISK_BLOCKS: usize = 64;

fn disk_limit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let block = vec![0u8; 1 << 20];
    let mut g = c.benchmark_group("disk");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes((DISK_BLOCKS * block.len()) as u64));
    g.bench_function("dsync_1MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let path = dir.path().join(format!("dd-{i}"));
                let mut f = File::create(&path).expect("create");
                let start = Instant::now();
                for _ in 0..DISK_BLOCKS {
                    f.write_all(&block).expect("write");
                    f.sync_data().expect("fdatasync");
                }
                total += start.elapsed();
                drop(f);
                std::fs::remove_file(&path).expect("remove");
            }
            total
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

fn appends(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = WalOptions::new(dir.path());
    opts.max_disk_bytes = 64 << 30;
    let wal = Wal::open(opts).expect("open WAL");
    let payload = Bytes::from(vec![b'x'; MESSAGE_BYTES]);
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for appenders in [1usize, 8] {
        for size in [1usize, 64, 1024] {
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
                        // Stand in for the compactor so the WAL does not grow without bound.
                        for s in wal.sealed() {
                            wal.remove_sealed(s.id).expect("remove sealed");
                        }
                    }
                    total
                })
            });
        }
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

criterion_group!(benches, disk_limit, appends);
criterion_main!(benches);
