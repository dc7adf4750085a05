//! The flags that override the configuration file for one command: `--wal-dir`
//! on every command that touches a WAL, `--archive URL` on every command that
//! touches the archive. A flag always wins over `strata.toml`, so
//! `strata ingest --wal-dir ./w` can be followed by `strata flush --wal-dir ./w`.

use std::path::PathBuf;

use strata::config::Config;
use strata::store::{StorageUrl, StoreError};

/// `--wal-dir DIR`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct WalDirArg {
    /// WAL directory (overrides `[wal] dir`).
    #[arg(long, value_name = "DIR")]
    pub(crate) wal_dir: Option<PathBuf>,
}

impl WalDirArg {
    /// Puts the flag, when given, into `config`.
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.wal_dir {
            config.wal.dir = dir.clone();
        }
    }
}

/// `--archive URL`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ArchiveArg {
    /// Archive URL: file:///path, file://./relative or s3://bucket/prefix
    /// (overrides `[storage] url`; the other `[storage]` keys still apply).
    #[arg(long, value_name = "URL", value_parser = parse_archive_url)]
    pub(crate) archive: Option<String>,
}

impl ArchiveArg {
    /// Puts the flag, when given, into `config`.
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(url) = &self.archive {
            config.storage.url = url.clone();
        }
    }
}

/// Checks the URL when the command line is parsed, so a typo is reported as the
/// flag's error, before anything runs.
fn parse_archive_url(s: &str) -> Result<String, String> {
    match StorageUrl::parse(s) {
        Ok(_) => Ok(s.to_string()),
        Err(StoreError::BadUrl { reason, .. }) => Err(reason),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_absent_flags_keep_it() {
        let mut config = Config::default();
        WalDirArg::default().apply(&mut config);
        ArchiveArg::default().apply(&mut config);
        assert_eq!(config.wal.dir, PathBuf::from("./data/wal"));
        assert_eq!(config.storage.url, "file://./data/archive");

        WalDirArg {
            wal_dir: Some("./w".into()),
        }
        .apply(&mut config);
        ArchiveArg {
            archive: Some("s3://bucket/p".into()),
        }
        .apply(&mut config);
        assert_eq!(config.wal.dir, PathBuf::from("./w"));
        assert_eq!(config.storage.url, "s3://bucket/p");
    }

    #[test]
    fn a_bad_archive_url_is_refused_with_the_supported_forms() {
        let e = parse_archive_url("gs://bucket").unwrap_err();
        assert!(e.contains("s3://") && e.contains("file://"), "{e}");
        assert_eq!(parse_archive_url("file://./a").unwrap(), "file://./a");
    }
}
