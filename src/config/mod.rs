//! `strata.toml`: the `[wal]`, `[storage]`, `[compaction]`, `[http]`, `[nats]`,
//! `[cluster]`, `[tier2]` and `[iceberg]` tables, with defaults that make `strata run` work with no file at all.
//!
//! Parsing is pure: [`Config::from_toml`] turns text into a validated [`Config`]
//! and [`Config::load_with_env`] adds secrets from an injectable environment.
//! Every key is optional; unknown tables and keys are errors that name them, and a
//! bad value names its key, its line and the form that is expected. Secret values
//! ([`Secret`]) never appear in `Debug` output or in error messages.
//!
//! Value forms:
//! - durations: `"60s"`, `"500ms"`, `"2m"`, `"1h"`, `"1d"`, combinations such as
//!   `"1h30m"`, or an integer number of seconds;
//! - sizes: an integer number of bytes, or a string with a unit: `B`; decimal
//!   `KB` `MB` `GB` `TB` (powers of 1000); binary `KiB` `MiB` `GiB` `TiB` (powers
//!   of 1024). Units are case-insensitive; `"64MiB"` is 67108864 bytes, `"64MB"` is
//!   64000000.
//!
//! Each table lives in its own file (`wal`, `storage`, `compaction`, `http`,
//! `nats`, `cluster`, `tier2`, `iceberg`) with its keys, defaults, value checks and the rules between its keys;
//! the value forms they share are in `values`. This module reads the file,
//! rewrites TOML errors to name the line, table and key, runs each table's rules,
//! and applies the environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cluster;
mod compaction;
mod http;
mod iceberg;
mod nats;
mod storage;
mod tier2;
mod values;
mod wal;

pub use cluster::ClusterConfig;
pub use compaction::{CompactionConfig, MIN_PART_SIZE};
pub use http::HttpConfig;
pub use iceberg::{Catalog as IcebergCatalog, IcebergConfig};
pub use nats::NatsConfig;
pub use storage::StorageConfig;
pub use tier2::Tier2Config;
pub use values::{parse_duration, parse_size, Secret};
pub use wal::WalConfig;

/// The file [`Config::load`] reads from the working directory when no path is given.
pub const DEFAULT_CONFIG_FILE: &str = "strata.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[wal]`
    pub wal: WalConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[compaction]`
    pub compaction: CompactionConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[nats]`
    pub nats: NatsConfig,
    /// `[cluster]`
    pub cluster: ClusterConfig,
    /// `[tier2]`
    pub tier2: Tier2Config,
    /// `[iceberg]`
    pub iceberg: IcebergConfig,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source} (check the --config path)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is wrong.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where (line, table, key) and what is wrong, and the expected form.
        message: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("invalid environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Loads `path`, or `strata.toml` in the working directory when `path` is
    /// `None` and that file exists, or the defaults. Environment secrets
    /// (`STRATA_ACCESS_KEY_ID`, `AWS_*`…) fill what the file leaves empty.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line, key and expected form.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] with an injectable environment lookup (`env("AWS_REGION")`).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let default_file = Path::new(DEFAULT_CONFIG_FILE);
        let file = match path {
            Some(p) => Some(p),
            None if default_file.is_file() => Some(default_file),
            None => None,
        };
        let mut config = match file {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                    path: file.to_path_buf(),
                    source,
                })?;
                let config = Self::from_toml(&text, file)?;
                tracing::info!(file = %file.display(), "configuration loaded");
                config
            }
            None => {
                tracing::info!("no {DEFAULT_CONFIG_FILE}: using the built-in defaults");
                Config::default()
            }
        };
        config.storage.apply_env(&env)?;
        Ok(config)
    }

    /// Parses TOML text (no environment). `path` is only used in messages.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the line, table and key and what is expected.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks the rules that involve more than one key, table by table.
    fn validate(&self) -> Result<(), String> {
        self.wal.validate()?;
        self.http.validate()?;
        self.nats.validate()?;
        self.cluster.validate()?;
        self.iceberg.validate()
    }
}

// ---------------------------------------------------------------------------
// Error messages: where in the file, which table and key.

/// Where a TOML error points: the chain of keys down to the key or value at fault.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    keys: Vec<String>,
    /// The value under the last key is a table.
    is_table: bool,
}

/// Finds the innermost key or value whose span holds `pos`.
fn locate(table: &toml::de::DeTable<'_>, pos: usize, keys: &mut Vec<String>) -> Option<Location> {
    for (k, v) in table.iter() {
        keys.push(k.get_ref().to_string());
        if k.span().contains(&pos) {
            let found = Location {
                keys: keys.clone(),
                is_table: v.get_ref().is_table(),
            };
            keys.pop();
            return Some(found);
        }
        let inner = match v.get_ref() {
            toml::de::DeValue::Table(t) => locate(t, pos, keys),
            toml::de::DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                toml::de::DeValue::Table(t) => locate(t, pos, keys),
                _ => None,
            }),
            _ => None,
        };
        if inner.is_some() {
            keys.pop();
            return inner;
        }
        if !v.get_ref().is_table() && v.span().contains(&pos) {
            let found = Location {
                keys: keys.clone(),
                is_table: false,
            };
            keys.pop();
            return Some(found);
        }
        keys.pop();
    }
    None
}

/// Rewrites a TOML/serde error as "line N: [table] key: what is wrong". Never
/// quotes the source line (it may hold a secret).
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let msg = err.message().trim_end();
    let Some(span) = err.span() else {
        return msg.to_string();
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let location = toml::de::DeTable::parse(text)
        .ok()
        .and_then(|doc| locate(doc.get_ref(), span.start, &mut Vec::new()));
    let Some(Location { keys, is_table }) = location else {
        return format!("line {line}: {msg}");
    };
    let (key, tables) = keys.split_last().expect("locate returns at least one key");
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        // serde: "unknown field `k`, expected one of `a`, `b`" (or "there are no fields").
        let expected = rest.split_once(", ").map_or("", |(_, e)| e);
        return match (tables.is_empty(), is_table) {
            (true, true) => format!("line {line}: unknown table [{key}]: {expected}"),
            (true, false) => format!(
                "line {line}: unknown key `{key}` outside any table: keys go under one of \
                 the tables {}",
                expected.trim_start_matches("expected one of ")
            ),
            (false, _) => format!(
                "line {line}: unknown key `{key}` in [{}]: {expected}",
                tables.join(".")
            ),
        };
    }
    // serde names our types ("expected struct WalConfig"): readers know tables.
    let msg = match msg.find("expected struct ") {
        Some(i) => format!("{}expected a table", &msg[..i]),
        None => msg.to_string(),
    };
    if tables.is_empty() {
        format!("line {line}: {key}: {msg}")
    } else {
        format!("line {line}: [{}] {key}: {msg}", tables.join("."))
    }
}

#[cfg(test)]
mod test_support {
    use std::collections::HashMap;
    use std::path::Path;

    use super::Config;

    /// Parses `text` as if read from `strata.toml`; errors as the user sees them.
    pub(super) fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("strata.toml")).map_err(|e| e.to_string())
    }

    /// The error for `text`, which must not parse.
    pub(super) fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
            Err(e) => e,
        }
    }

    /// An environment holding exactly `vars`.
    pub(super) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::test_support::{env_of, parse, parse_err};
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.wal.dir, PathBuf::from("./data/wal"));
        assert_eq!(c.wal.segment_max_bytes, 64 << 20);
        assert_eq!(c.wal.segment_max_age, Duration::from_secs(60));
        assert_eq!(c.wal.max_disk_bytes, 10 << 30);
        assert_eq!(c.storage.url, "file://./data/archive");
        assert_eq!(c.storage.region, "");
        assert!(!c.storage.path_style);
        assert_eq!(c.storage.max_retries, 10);
        assert_eq!(c.storage.retry_timeout, Duration::from_secs(180));
        assert_eq!(c.compaction.zstd_level, 3);
        assert_eq!(c.compaction.multipart_threshold, 16 << 20);
        assert_eq!(c.compaction.part_size, 8 << 20);
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert!(c.http.token.is_none());
        assert_eq!(c.http.max_body_bytes, 64 << 20);
        assert!(c.nats.url.is_empty());
        assert_eq!(c.nats.consumer, "strata");
        assert_eq!(c.nats.fetch_batch, 1000);
        // The same values as the types' defaults.
        let d = Config::default();
        assert_eq!(d.wal.dir, c.wal.dir);
        assert_eq!(d.nats.consumer, c.nats.consumer);
        assert_eq!(d.compaction.row_group_rows, c.compaction.row_group_rows);
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            r#"
            [wal]
            dir = "/var/lib/strata/wal"
            segment_max_bytes = "32MiB"
            segment_max_age = "2m"
            max_disk_bytes = 5000000000

            [storage]
            url = "s3://archive/strata"
            region = "eu-west-1"
            endpoint = "http://localhost:9000/"
            path_style = true
            access_key_id = "AKIA_FILE"
            secret_access_key = "file-secret"
            max_retries = 3
            retry_timeout = 30
            connect_timeout = "2s"
            request_timeout = "1m"

            [compaction]
            zstd_level = 9
            row_group_rows = 5000
            row_group_bytes = "8MiB"
            multipart_threshold = "32MiB"
            part_size = "10MiB"
            upload_concurrency = 2
            unhealthy_after = "90s"
            defer_while_busy = "30s"

            [http]
            listen = "0.0.0.0:9090"
            token = "http-token"
            max_body_bytes = "1MiB"
            max_inflight_bytes = "8MiB"

            [nats]
            url = "nats://127.0.0.1:4222"
            stations = ["orders", "payments.eu"]
            consumer = "archiver"
            user = "strata"
            password = "nats-password"
            fetch_batch = 100
            "#,
        )
        .unwrap();
        assert_eq!(c.wal.dir, PathBuf::from("/var/lib/strata/wal"));
        assert_eq!(c.wal.segment_max_bytes, 32 << 20);
        assert_eq!(c.wal.segment_max_age, Duration::from_secs(120));
        assert_eq!(c.wal.max_disk_bytes, 5_000_000_000);
        assert_eq!(c.storage.url, "s3://archive/strata");
        assert_eq!(c.storage.region, "eu-west-1");
        assert_eq!(c.storage.endpoint, "http://localhost:9000");
        assert!(c.storage.path_style);
        assert_eq!(c.storage.access_key_id.expose(), "AKIA_FILE");
        assert_eq!(c.storage.secret_access_key.expose(), "file-secret");
        assert_eq!(c.storage.max_retries, 3);
        assert_eq!(c.storage.retry_timeout, Duration::from_secs(30));
        assert_eq!(c.storage.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.storage.request_timeout, Duration::from_secs(60));
        assert_eq!(c.compaction.zstd_level, 9);
        assert_eq!(c.compaction.row_group_rows, 5000);
        assert_eq!(c.compaction.row_group_bytes, 8 << 20);
        assert_eq!(c.compaction.multipart_threshold, 32 << 20);
        assert_eq!(c.compaction.part_size, 10 << 20);
        assert_eq!(c.compaction.upload_concurrency, 2);
        assert_eq!(c.compaction.unhealthy_after, Duration::from_secs(90));
        assert_eq!(c.compaction.defer_while_busy, Duration::from_secs(30));
        assert_eq!(c.http.listen, "0.0.0.0:9090");
        assert_eq!(
            c.http.token.as_ref().map(Secret::expose),
            Some("http-token")
        );
        assert_eq!(c.http.max_body_bytes, 1 << 20);
        assert_eq!(c.http.max_inflight_bytes, 8 << 20);
        assert_eq!(c.nats.url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(c.nats.stations, ["orders", "payments.eu"]);
        assert_eq!(c.nats.consumer, "archiver");
        assert_eq!(c.nats.user.as_deref(), Some("strata"));
        assert_eq!(
            c.nats.password.as_ref().map(Secret::expose),
            Some("nats-password")
        );
        assert_eq!(c.nats.fetch_batch, 100);
        let opts = c.wal.options();
        assert_eq!(opts.segment_max_bytes, 32 << 20);
        assert_eq!(c.compaction.parquet_options().zstd_level, 9);
    }

    #[test]
    fn empty_optional_values_mean_none() {
        let c = parse("[http]\ntoken = \"\"\n[nats]\ncreds_file = \"\"\nuser = \"\"").unwrap();
        assert!(c.http.token.is_none());
        assert!(c.nats.creds_file.is_none());
        assert!(c.nats.user.is_none());
    }

    #[test]
    fn unknown_key_names_key_table_and_line() {
        let e = parse_err("[wal]\ndir = \"x\"\nsegment_max_byte = 5\n");
        assert!(e.contains("strata.toml"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("unknown key `segment_max_byte` in [wal]"), "{e}");
        assert!(
            e.contains("`segment_max_bytes`"),
            "lists the known keys: {e}"
        );

        let e = parse_err("[storage]\nurl = \"s3://b\"\nsecret_acess_key = \"hunter2\"\n");
        assert!(
            e.contains("unknown key `secret_acess_key` in [storage]"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        // Inline tables and dotted keys name the table just as well.
        let e = parse_err("nats = { url = \"nats://x:4222\", stream = [\"a\"] }\n");
        assert!(e.contains("unknown key `stream` in [nats]"), "{e}");
        let e = parse_err("http.listn = \"127.0.0.1:1\"\n");
        assert!(e.contains("unknown key `listn` in [http]"), "{e}");
    }

    #[test]
    fn unknown_table_is_named() {
        let e = parse_err("[wal]\n[storgae]\nurl = \"file:///x\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("unknown table [storgae]"), "{e}");
        assert!(e.contains("`storage`"), "lists the known tables: {e}");
    }

    #[test]
    fn misplaced_values_name_where_they_are() {
        let e = parse_err("wal = 5\n");
        assert!(
            e.contains("line 1: wal: invalid type: integer `5`, expected a table"),
            "{e}"
        );

        let e = parse_err("dir = \"x\"\n[wal]\n");
        assert!(e.contains("unknown key `dir` outside any table"), "{e}");
    }

    #[test]
    fn syntax_errors_give_the_line_but_not_the_text() {
        let e = parse_err("[storage]\nsecret_access_key = \"hunter2\nurl = 1\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn load_reads_the_file_given_and_applies_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        std::fs::write(&path, "[storage]\nurl = \"s3://bkt/p\"\n").unwrap();
        let c = Config::load_with_env(Some(&path), env_of(&[("AWS_ACCESS_KEY_ID", "id")])).unwrap();
        assert_eq!(c.storage.url, "s3://bkt/p");
        assert_eq!(c.storage.access_key_id.expose(), "id");

        let missing = dir.path().join("missing.toml");
        let e = Config::load_with_env(Some(&missing), |_| None).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("missing.toml"), "{e}");

        std::fs::write(&path, "[storage]\nurl = 5\n").unwrap();
        let e = Config::load_with_env(Some(&path), |_| None).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }));
        assert!(e.to_string().contains("custom.toml"), "{e}");
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config")
            .join(name)
    }

    /// Every ```toml block of README.md is a valid configuration.
    #[test]
    fn readme_examples_parse() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let mut blocks = 0;
        let mut rest = readme.as_str();
        while let Some(start) = rest.find("```toml\n") {
            let body = &rest[start + 8..];
            let end = body
                .find("```")
                .expect("README has an unterminated ```toml block");
            if let Err(e) = parse(&body[..end]) {
                panic!("README block #{} does not parse: {e}", blocks + 1);
            }
            blocks += 1;
            rest = &body[end + 3..];
        }
        assert!(
            blocks >= 4,
            "expected the full example and 3 storage blocks, found {blocks}"
        );
        let full = std::fs::read_to_string(fixture("full.toml")).unwrap();
        assert!(
            readme.contains(&full),
            "README.md must show fixtures/config/full.toml verbatim"
        );
    }

    #[test]
    fn sample_configs_parse() {
        let c = Config::load_with_env(Some(&fixture("minimal.toml")), |_| None).unwrap();
        assert_eq!(c.storage.url, "file://./data/archive");

        let c = Config::load_with_env(Some(&fixture("minio.toml")), |_| None).unwrap();
        assert_eq!(c.storage.endpoint, "http://localhost:9000");
        assert!(c.storage.path_style);
        assert_eq!(c.storage.region, "my-region-1");
        assert_eq!(c.storage.access_key_id.expose(), "minioadmin");

        let c = Config::load_with_env(Some(&fixture("full.toml")), |_| None).unwrap();
        assert!(c.storage.url.starts_with("s3://"));
        assert_eq!(c.nats.stations, ["*"]);
        // full.toml spells out every default: it must match the built-in values.
        let d = Config::default();
        assert_eq!(c.wal.segment_max_bytes, d.wal.segment_max_bytes);
        assert_eq!(c.wal.segment_max_age, d.wal.segment_max_age);
        assert_eq!(c.wal.max_disk_bytes, d.wal.max_disk_bytes);
        assert_eq!(c.storage.max_retries, d.storage.max_retries);
        assert_eq!(c.storage.retry_timeout, d.storage.retry_timeout);
        assert_eq!(c.storage.connect_timeout, d.storage.connect_timeout);
        assert_eq!(c.storage.request_timeout, d.storage.request_timeout);
        assert_eq!(c.compaction.zstd_level, d.compaction.zstd_level);
        assert_eq!(c.compaction.row_group_rows, d.compaction.row_group_rows);
        assert_eq!(c.compaction.row_group_bytes, d.compaction.row_group_bytes);
        assert_eq!(
            c.compaction.multipart_threshold,
            d.compaction.multipart_threshold
        );
        assert_eq!(c.compaction.part_size, d.compaction.part_size);
        assert_eq!(
            c.compaction.upload_concurrency,
            d.compaction.upload_concurrency
        );
        assert_eq!(c.http.max_body_bytes, d.http.max_body_bytes);
        assert_eq!(c.http.max_inflight_bytes, d.http.max_inflight_bytes);
        assert_eq!(c.compaction.unhealthy_after, d.compaction.unhealthy_after);
        assert_eq!(c.compaction.defer_while_busy, d.compaction.defer_while_busy);
        assert_eq!(c.nats.fetch_batch, d.nats.fetch_batch);
        assert_eq!(c.cluster.lease, d.cluster.lease);
        assert_eq!(c.tier2.enabled, d.tier2.enabled);
        assert_eq!(c.tier2.target_file_bytes, d.tier2.target_file_bytes);
        assert_eq!(c.tier2.grace, d.tier2.grace);
        assert_eq!(c.tier2.interval, d.tier2.interval);
        assert_eq!(c.iceberg.enabled, d.iceberg.enabled);
        assert_eq!(c.iceberg.catalog, d.iceberg.catalog);
        assert_eq!(c.iceberg.namespace, d.iceberg.namespace);
        assert_eq!(c.iceberg.table, d.iceberg.table);
    }
}
