//! Seeded tests (a replayable PRNG and its seed) and the reliability figures
//! tests record under `target/reliability/`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// schedule of faults, so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Shuffles `v` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The seed of a seeded test: `env_var` when set (to replay a failure),
/// otherwise one from the clock. Printed either way with the command that
/// replays it.
pub fn test_seed(env_var: &str, test: &str) -> u64 {
    let seed = match std::env::var(env_var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{env_var}={v:?} is not a u64: {e}")),
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            SplitMix64::new(nanos ^ u64::from(std::process::id())).next_u64()
        }
    };
    eprintln!(
        "{test}: seed {seed} (replay: {env_var}={seed} scripts/test.sh -- {test} --nocapture)"
    );
    seed
}

/// Where the reliability figures go: `target/reliability/` (or under
/// `CARGO_TARGET_DIR`).
pub fn figures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("reliability")
}

/// Records the figures of one test as a JSON line in
/// `target/reliability/<test>.json` (replacing those of an earlier run);
/// `tests/py/figures.py` prints them as a table. `figures` is an object of
/// counts, e.g. `{"crashes": 30, "messages_checked": 9000, "lost": 0,
/// "duplicated": 0}`.
pub fn record_figures(test: &str, figures: Value) {
    let mut line = serde_json::Map::new();
    line.insert("test".into(), test.into());
    line.insert(
        "at".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    if let Value::Object(map) = figures {
        line.extend(map);
    }
    let dir = figures_dir();
    fs::create_dir_all(&dir).expect("create target/reliability");
    fs::write(
        dir.join(format!("{test}.json")),
        format!("{}\n", Value::Object(line)),
    )
    .expect("write figures");
}

/// The peak resident set (`VmHWM`, bytes) of a running process, from `/proc`.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
