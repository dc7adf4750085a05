//! Memory and throughput of compacting a WAL backlog: appends about 1 GiB of
//! 1 KiB messages to a fresh WAL (64 MiB segments), then compacts every sealed
//! segment into a local-folder archive while sampling the process's resident
//! memory. The peak (VmHWM) is reset between the two phases, so it measures
//! compaction alone.
//!
//! ```text
//! cargo run --release --example compact_backlog -- [--gib 1.0] [--stations 2] [--dir DIR] [--row-group-mib N]
//!     [--upload-concurrency N]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use strata::compactor::{Compactor, NoopObserver};
use strata::config::CompactionConfig;
use strata::store::Archive;
use strata::wal::{Wal, WalOptions};
use strata::{Draft, StationName, Timestamp};

/// The system allocator, counting live heap bytes and their peak, so the
/// report tells live data apart from allocator overhead in the RSS.
struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now =
                LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed) + layout.size() as u64;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = (new_size - layout.size()) as u64;
                let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub((layout.size() - new_size) as u64, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PAYLOAD: usize = 1024;
const BATCH: usize = 1000;

struct Args {
    gib: f64,
    stations: usize,
    dir: Option<std::path::PathBuf>,
    row_group_mib: Option<usize>,
    upload_concurrency: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        gib: 1.0,
        stations: 2,
        dir: None,
        row_group_mib: None,
        upload_concurrency: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--gib" => a.gib = value.parse().expect("--gib takes a number"),
            "--stations" => a.stations = value.parse().expect("--stations takes a number"),
            "--dir" => a.dir = Some(value.into()),
            "--row-group-mib" => {
                a.row_group_mib = Some(value.parse().expect("--row-group-mib takes a number"))
            }
            "--upload-concurrency" => {
                a.upload_concurrency =
                    Some(value.parse().expect("--upload-concurrency takes a number"))
            }
            other => panic!(
                "unknown flag {other}: use --gib, --stations, --dir, --row-group-mib, --upload-concurrency"
            ),
        }
    }
    a
}

/// A field of `/proc/self/status` in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A JSON-ish payload of exactly [`PAYLOAD`] bytes: some structure, some noise.
fn payload(seq: u64, rng: &mut u64) -> Bytes {
    let mut s = format!(
        "{{\"order\":{seq},\"customer\":\"c-{}\",\"amount\":{}.{:02},\"note\":\"",
        *rng % 100_000,
        *rng % 10_000,
        *rng % 100
    );
    while s.len() < PAYLOAD - 2 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        s.push_str(&format!("{:016x}", *rng));
    }
    s.truncate(PAYLOAD - 2);
    s.push_str("\"}");
    Bytes::from(s)
}

#[tokio::main]
async fn main() {
    let a = args();
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let root = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let wal_dir = root.join("wal");
    let archive_dir = root.join("archive");
    std::fs::create_dir_all(&archive_dir).expect("archive dir");

    let mut opts = WalOptions::new(&wal_dir);
    opts.segment_max_bytes = 64 << 20;
    opts.segment_max_age = Duration::from_secs(24 * 3600);
    opts.max_disk_bytes = 64 << 30;
    let wal = Wal::open(opts).expect("open WAL");

    let stations: Vec<StationName> = (0..a.stations)
        .map(|i| StationName::new(format!("bench-{i}")).expect("station"))
        .collect();
    let target = (a.gib * (1u64 << 30) as f64) as u64;
    let messages = target / PAYLOAD as u64;
    // 10 ms apart: a 1 GiB backlog covers about three hours.
    let start = Timestamp::now().micros() - messages as i64 * 10_000;
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let fill = Instant::now();
    let mut n = 0u64;
    while n < messages {
        let batch: Vec<Draft> = (0..BATCH as u64)
            .map(|i| {
                let k = n + i;
                let st = &stations[(k % stations.len() as u64) as usize];
                Draft {
                    station: st.clone(),
                    seq: Some(k / stations.len() as u64 + 1),
                    timestamp: Timestamp(start + k as i64 * 10_000),
                    id: None,
                    subject: Some(format!("{st}.created")),
                    headers: Vec::new(),
                    payload: payload(k, &mut rng),
                }
            })
            .collect();
        wal.append(batch).await.expect("append");
        n += BATCH as u64;
    }
    wal.seal().expect("seal");
    let sealed = wal.sealed();
    let wal_bytes: u64 = sealed.iter().map(|s| s.bytes).sum();
    println!(
        "filled WAL: {} messages of {PAYLOAD} B, {} segments, {:.1} MiB in {:.1} s (peak RSS {} MiB)",
        n,
        sealed.len(),
        wal_bytes as f64 / (1 << 20) as f64,
        fill.elapsed().as_secs_f64(),
        status_kib("VmHWM:") / 1024
    );

    // Reset the peak so it measures compaction alone (Linux >= 4.0).
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        println!("cannot reset VmHWM ({e}): the peak below includes the fill phase");
    }
    let rss_before = status_kib("VmRSS:");
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
    let max_rss = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_rss, done) = (Arc::clone(&max_rss), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                max_rss.fetch_max(status_kib("VmRSS:"), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let archive = Archive::from_store(
        Arc::new(LocalFileSystem::new_with_prefix(&archive_dir).expect("local store")),
        Path::from("archive"),
        format!("file://{}/archive", archive_dir.display()),
    );
    // The [compaction] defaults, unless --row-group-mib says otherwise.
    let mut cfg = CompactionConfig::default();
    if let Some(mib) = a.row_group_mib {
        cfg.row_group_bytes = mib << 20;
    }
    if let Some(n) = a.upload_concurrency {
        cfg.upload_concurrency = n;
    }
    println!(
        "compaction settings: zstd level {}, row groups of at most {} rows / {} MiB, multipart above {} MiB in {} MiB parts, {} in flight",
        cfg.zstd_level,
        cfg.row_group_rows,
        cfg.row_group_bytes >> 20,
        cfg.multipart_threshold >> 20,
        cfg.part_size >> 20,
        cfg.upload_concurrency
    );
    let compactor = Compactor::new(wal.clone(), archive, &cfg, Arc::new(NoopObserver));
    let t = Instant::now();
    let report = compactor.compact_sealed().await.expect("compaction");
    let secs = t.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");

    let multipart = report
        .files()
        .filter(|f| f.bytes > cfg.multipart_threshold as u64)
        .count();
    println!(
        "compacted {} segments into {} files ({} multipart): {} rows, {:.1} MiB of Parquet in {:.1} s",
        report.segments.len(),
        report.files().count(),
        multipart,
        report.rows(),
        report.bytes() as f64 / (1 << 20) as f64,
        secs
    );
    println!(
        "throughput: {:.1} MiB/s of WAL, {:.0} messages/s",
        wal_bytes as f64 / (1 << 20) as f64 / secs,
        report.rows() as f64 / secs
    );
    println!(
        "resident memory during compaction: peak VmHWM {} MiB, sampled max VmRSS {} MiB (VmRSS before {} MiB); peak live heap {} MiB",
        status_kib("VmHWM:") / 1024,
        max_rss.load(Ordering::SeqCst) / 1024,
        rss_before / 1024,
        PEAK.load(Ordering::SeqCst) >> 20
    );
    assert!(wal.sealed().is_empty(), "every segment was compacted");
}
