//! [`WalOptions`]: the `[wal]` settings a WAL runs with.

use std::path::PathBuf;
use std::time::Duration;

/// Options for [`super::Wal::open`], usually from the `[wal]` config table.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory of segment files (default `./data/wal`).
    pub dir: PathBuf,
    /// Roll the active segment once it reaches this size (default 64 MiB).
    pub segment_max_bytes: u64,
    /// Roll the active segment once its first entry is this old (default 60 s).
    pub segment_max_age: Duration,
    /// Refuse appends that would take the WAL's segment files past this size.
    pub max_disk_bytes: u64,
}

impl WalOptions {
    /// Defaults for a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(60),
            max_disk_bytes: 10 << 30,
        }
    }
}
