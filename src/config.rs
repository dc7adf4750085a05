//! `strata.toml`: the `[wal]`, `[storage]`, `[compaction]`, `[http]` and `[nats]`
//! tables, with defaults that make `strata run` work with no file at all.
//! (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret string (access keys, tokens): never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; only for handing to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub wal: WalConfig,
    pub storage: StorageConfig,
    pub compaction: CompactionConfig,
    pub http: HttpConfig,
    pub nats: NatsConfig,
}

/// `[wal]`
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    pub max_disk_bytes: u64,
}

/// `[storage]`
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `file:///path`, `file://./relative` or `s3://bucket/prefix`.
    pub url: String,
    pub region: String,
    /// Empty for Amazon.
    pub endpoint: String,
    pub path_style: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

/// `[compaction]`: Parquet settings.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    pub row_group_bytes: usize,
    /// Files above this size go up as multipart uploads (16 MiB).
    pub multipart_threshold: usize,
}

/// `[http]`
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: String,
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
}

/// `[nats]`
#[derive(Debug, Clone, Default)]
pub struct NatsConfig {
    /// Empty: no NATS source.
    pub url: String,
    /// Stream names; `"*"` means every stream.
    pub stations: Vec<String>,
    pub consumer: String,
    pub token: Option<Secret>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub creds_file: Option<PathBuf>,
    pub fetch_batch: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        todo!()
    }
}
impl Default for StorageConfig {
    fn default() -> Self {
        todo!()
    }
}
impl Default for CompactionConfig {
    fn default() -> Self {
        todo!()
    }
}
impl Default for HttpConfig {
    fn default() -> Self {
        todo!()
    }
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Loads `path`, or `strata.toml` in the working directory when `path` is
    /// `None` and that file exists, or the defaults. Environment secrets
    /// (`STRATA_ACCESS_KEY_ID`, `AWS_*`…) fill what the file leaves empty.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        todo!()
    }
    /// Parses TOML text (no environment).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        todo!()
    }
}

impl WalConfig {
    /// As options for [`crate::wal::Wal::open`].
    pub fn options(&self) -> crate::wal::WalOptions {
        crate::wal::WalOptions {
            dir: self.dir.clone(),
            segment_max_bytes: self.segment_max_bytes,
            segment_max_age: self.segment_max_age,
            max_disk_bytes: self.max_disk_bytes,
        }
    }
}
