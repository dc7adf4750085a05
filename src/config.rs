//! `strata.toml`: the `[wal]`, `[storage]`, `[compaction]`, `[http]` and `[nats]`
//! tables, with defaults that make `strata run` work with no file at all.
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

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::message::StationName;

/// The file [`Config::load`] reads from the working directory when no path is given.
pub const DEFAULT_CONFIG_FILE: &str = "strata.toml";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// S3's smallest allowed part of a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * MIB as usize;

/// A secret string (access keys, tokens): never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; only for handing to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor: serde's default "invalid type" message would
        // quote the offending value, which here may be a secret.
        struct SecretVisitor;
        impl<'v> Visitor<'v> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }
            fn visit_map<A: de::MapAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }
        }
        fn not_a_string<E: de::Error>() -> E {
            E::custom("expected a quoted string (the value is not shown: it is a secret)")
        }
        d.deserialize_any(SecretVisitor)
    }
}

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
}

/// `[wal]`: the local write-ahead log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Directory of segment files (default `./data/wal`, relative to the working directory).
    pub dir: PathBuf,
    /// Roll the active segment at this size (default 64 MiB).
    #[serde(deserialize_with = "de_positive_size")]
    pub segment_max_bytes: u64,
    /// Roll the active segment at this age (default 60 s).
    #[serde(deserialize_with = "de_positive_duration")]
    pub segment_max_age: Duration,
    /// Refuse appends past this much disk (default 10 GiB): the back-pressure
    /// limit when the object store is unreachable for a long time.
    #[serde(deserialize_with = "de_positive_size")]
    pub max_disk_bytes: u64,
}

/// `[storage]`: where the archive lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///path`, `file://./relative` or `s3://bucket/prefix`.
    #[serde(deserialize_with = "de_storage_url")]
    pub url: String,
    /// Region of the bucket; empty means `us-east-1` (any non-empty value for MinIO).
    pub region: String,
    /// Empty for Amazon; `http(s)://host[:port]` for MinIO, B2 and others.
    #[serde(deserialize_with = "de_endpoint")]
    pub endpoint: String,
    /// Path-style requests (`endpoint/bucket/key`); needed by MinIO and B2.
    pub path_style: bool,
    /// Access key id (B2: the app key's `keyID`); empty: from the environment or
    /// the machine's role.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Retries of a failed request, with exponential backoff (default 10).
    pub max_retries: usize,
    /// No retry starts after this long from the first attempt (default 3 min).
    #[serde(deserialize_with = "de_duration")]
    pub retry_timeout: Duration,
    /// Time allowed to open a connection (default 5 s).
    #[serde(deserialize_with = "de_positive_duration")]
    pub connect_timeout: Duration,
    /// Time allowed for one whole request (default 30 s).
    #[serde(deserialize_with = "de_positive_duration")]
    pub request_timeout: Duration,
}

/// `[compaction]`: Parquet settings and uploads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// zstd level, 1 to 22 (default 3).
    #[serde(deserialize_with = "de_zstd_level")]
    pub zstd_level: i32,
    /// Most rows in one row group (default 100 000).
    #[serde(deserialize_with = "de_positive_count")]
    pub row_group_rows: usize,
    /// Close a row group once its data reaches this size (default 64 MiB).
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub row_group_bytes: usize,
    /// Files above this size go up as multipart uploads (default 16 MiB).
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub multipart_threshold: usize,
    /// Size of one part of a multipart upload (default 8 MiB; at least 5 MiB).
    #[serde(deserialize_with = "de_part_size")]
    pub part_size: usize,
    /// Uploads (files or parts) in flight at once (default 4).
    #[serde(deserialize_with = "de_positive_count")]
    pub upload_concurrency: usize,
    /// Compaction failing (the store unreachable, say) for longer than this
    /// makes `/healthz` answer 503 (default 5 min). A store that refuses the
    /// credentials or has no such bucket does so at once.
    #[serde(deserialize_with = "de_positive_duration")]
    pub unhealthy_after: Duration,
}

/// `[http]`: the HTTP ingest and control endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on (default `127.0.0.1:8080`).
    #[serde(deserialize_with = "de_listen")]
    pub listen: String,
    /// Bearer token required from clients; none: no authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub token: Option<Secret>,
    /// Largest accepted request body (default 64 MiB).
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub max_body_bytes: usize,
    /// Most request body bytes held by all requests together (default 256 MiB);
    /// past it requests get `503` with `Retry-After`. At least `max_body_bytes`.
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub max_inflight_bytes: usize,
}

/// `[nats]`: the JetStream source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Empty: no NATS source. May embed `user:password@` (never shown).
    pub url: crate::nats::NatsUrl,
    /// Stream names; `"*"` means every stream.
    #[serde(deserialize_with = "de_stations")]
    pub stations: Vec<String>,
    /// Durable consumer name Strata creates on each stream (default `strata`).
    pub consumer: String,
    /// Token authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub token: Option<Secret>,
    /// User for user/password authentication.
    #[serde(deserialize_with = "de_optional_string")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub password: Option<Secret>,
    /// A `.creds` file (JWT + NKey).
    #[serde(deserialize_with = "de_optional_path")]
    pub creds_file: Option<PathBuf>,
    /// Messages asked for in one pull (default 256).
    #[serde(deserialize_with = "de_positive_count")]
    pub fetch_batch: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/wal"),
            segment_max_bytes: 64 * MIB,
            segment_max_age: Duration::from_secs(60),
            max_disk_bytes: 10 * GIB,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "file://./data/archive".to_string(),
            region: String::new(),
            endpoint: String::new(),
            path_style: false,
            access_key_id: Secret::default(),
            secret_access_key: Secret::default(),
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            row_group_rows: 100_000,
            row_group_bytes: 64 * MIB as usize,
            multipart_threshold: 16 * MIB as usize,
            part_size: 8 * MIB as usize,
            upload_concurrency: 4,
            unhealthy_after: Duration::from_secs(300),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            token: None,
            max_body_bytes: 64 * MIB as usize,
            max_inflight_bytes: 256 * MIB as usize,
        }
    }
}

impl NatsConfig {
    /// How to connect: the URL and whichever credentials are set.
    pub fn auth(&self) -> crate::nats::NatsAuth {
        crate::nats::NatsAuth {
            url: self.url.clone(),
            token: self.token.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            creds_file: self.creds_file.clone(),
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: crate::nats::NatsUrl::default(),
            stations: Vec::new(),
            consumer: "strata".to_string(),
            token: None,
            user: None,
            password: None,
            creds_file: None,
            fetch_batch: 256,
        }
    }
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

    /// Checks rules that involve more than one key.
    fn validate(&self) -> Result<(), String> {
        if self.wal.segment_max_bytes > self.wal.max_disk_bytes {
            return Err(format!(
                "[wal] segment_max_bytes ({}) is larger than max_disk_bytes ({}): \
                 raise max_disk_bytes or lower segment_max_bytes",
                self.wal.segment_max_bytes, self.wal.max_disk_bytes
            ));
        }
        if self.http.max_inflight_bytes < self.http.max_body_bytes {
            return Err(format!(
                "[http] max_inflight_bytes ({}) is smaller than max_body_bytes ({}): one \
                 request of the largest size could never be taken; raise max_inflight_bytes \
                 or lower max_body_bytes",
                self.http.max_inflight_bytes, self.http.max_body_bytes
            ));
        }
        let nats = &self.nats;
        if !nats.url.is_empty() && nats.stations.is_empty() {
            return Err(
                "[nats] url is set but stations is empty: list the streams to \
                        archive, e.g. stations = [\"orders\"], or [\"*\"] for every stream"
                    .to_string(),
            );
        }
        if !nats.url.is_empty() && nats.consumer.trim().is_empty() {
            return Err(
                "[nats] consumer is empty: name the durable consumer, e.g. \"strata\"".into(),
            );
        }
        let methods = [
            nats.token.is_some(),
            nats.user.is_some() || nats.password.is_some(),
            nats.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "[nats] use one authentication method: token, user + password, \
                        or creds_file"
                    .to_string(),
            );
        }
        if nats.user.is_some() != nats.password.is_some() {
            return Err("[nats] user and password go together: set both or neither".into());
        }
        Ok(())
    }
}

impl StorageConfig {
    /// Fills what the file left empty from the environment: `STRATA_ACCESS_KEY_ID`
    /// then `AWS_ACCESS_KEY_ID`, `STRATA_SECRET_ACCESS_KEY` then
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` then `AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL_S3` then `AWS_ENDPOINT_URL`. Empty variables count as unset.
    ///
    /// # Errors
    /// [`ConfigError::Env`] when an endpoint variable is not an http(s) URL.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let first = |vars: &[&'static str]| -> Option<(&'static str, String)> {
            vars.iter().find_map(|v| {
                env(v)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(|s| (*v, s))
            })
        };
        if self.access_key_id.is_empty() {
            if let Some((_, v)) = first(&["STRATA_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]) {
                self.access_key_id = Secret::new(v);
            }
        }
        if self.secret_access_key.is_empty() {
            if let Some((_, v)) = first(&["STRATA_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]) {
                self.secret_access_key = Secret::new(v);
            }
        }
        if self.region.is_empty() {
            if let Some((_, v)) = first(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
                self.region = v;
            }
        }
        if self.endpoint.is_empty() {
            if let Some((var, v)) = first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
                self.endpoint =
                    check_endpoint(&v).map_err(|message| ConfigError::Env { var, message })?;
            }
        }
        Ok(())
    }
}

impl CompactionConfig {
    /// As options for the Parquet encoder.
    pub fn parquet_options(&self) -> crate::columnar::ParquetOptions {
        crate::columnar::ParquetOptions {
            zstd_level: self.zstd_level,
            row_group_rows: self.row_group_rows,
            row_group_bytes: self.row_group_bytes,
        }
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

// ---------------------------------------------------------------------------
// Value forms: sizes and durations.

const SIZE_FORM: &str = "expected a size: an integer number of bytes, or a string such as \
                         \"512KB\" (1000-based: KB MB GB TB) or \"64MiB\" (1024-based: KiB MiB GiB TiB)";
const DURATION_FORM: &str = "expected a duration: a string such as \"500ms\", \"60s\", \"2m\", \
                             \"1h\", \"1d\" or \"1h30m\", or an integer number of seconds";

/// Parses a size: `"64MiB"`, `"512KB"`, `"1GiB"`, `"100"` (bytes). `KB`/`MB`/`GB`/`TB`
/// are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` powers of 1024; units are
/// case-insensitive.
///
/// # Errors
/// A message saying what was wrong and which form is expected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("invalid size {s:?}: {SIZE_FORM}"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {s:?} is too large"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "tib" => 1024 * GIB,
        "k" | "m" | "g" | "t" => {
            return Err(format!(
                "size {s:?} has an ambiguous unit: write KiB/MiB/GiB/TiB (1024-based) \
                 or KB/MB/GB/TB (1000-based)"
            ))
        }
        _ => return Err(format!("invalid size {s:?}: {SIZE_FORM}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: `"500ms"`, `"60s"`, `"2m"`, `"1h"`, `"1d"`, `"1h30m"`, or a
/// bare integer number of seconds (`"60"`).
///
/// # Errors
/// A message saying what was wrong and which form is expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: {DURATION_FORM}");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad)?,
            "h" => n
                .checked_mul(3600)
                .map(Duration::from_secs)
                .ok_or_else(bad)?,
            "d" => n
                .checked_mul(86_400)
                .map(Duration::from_secs)
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// A size or duration as written in TOML: an integer or a string.
enum Scalar {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Int(n) => u64::try_from(n)
            .map_err(|_| de::Error::custom(format!("size {n} is negative: {SIZE_FORM}"))),
        Scalar::Str(s) => parse_size(&s).map_err(de::Error::custom),
    }
}

fn de_positive_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match de_size(d)? {
        0 => Err(de::Error::custom("must be larger than 0")),
        n => Ok(n),
    }
}

fn de_positive_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = de_positive_size(d)?;
    usize::try_from(n).map_err(|_| de::Error::custom(format!("size {n} is too large")))
}

fn de_part_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = de_positive_size_usize(d)?;
    if n < MIN_PART_SIZE {
        return Err(de::Error::custom(format!(
            "{n} bytes is below S3's smallest part size: use at least \"5MiB\""
        )));
    }
    Ok(n)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Int(n) => u64::try_from(n)
            .map(Duration::from_secs)
            .map_err(|_| de::Error::custom(format!("duration {n} is negative: {DURATION_FORM}"))),
        Scalar::Str(s) => parse_duration(&s).map_err(de::Error::custom),
    }
}

fn de_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = de_duration(d)?;
    if v.is_zero() {
        return Err(de::Error::custom("must be longer than 0"));
    }
    Ok(v)
}

fn de_positive_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = i64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(de::Error::custom(format!(
            "{n} is not allowed: expected a positive integer"
        ))),
    }
}

fn de_zstd_level<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n = i64::deserialize(d)?;
    match i32::try_from(n) {
        Ok(n) if (1..=22).contains(&n) => Ok(n),
        _ => Err(de::Error::custom(format!(
            "zstd level {n} is out of range: expected an integer from 1 (fastest) to 22 (smallest)"
        ))),
    }
}

/// Checks an endpoint URL and strips a trailing `/`.
fn check_endpoint(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "endpoint {t:?} must start with http:// or https:// \
                 (e.g. \"http://localhost:9000\"), or be empty for Amazon S3"
            )
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "endpoint {t:?} must be just scheme://host[:port], e.g. \
             \"https://s3.us-east-005.backblazeb2.com\" (the bucket goes in [storage] url)"
        ));
    }
    Ok(t.to_string())
}

fn de_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_endpoint(&String::deserialize(d)?).map_err(de::Error::custom)
}

/// Checks `[storage] url` while the file is read, so a bad one is reported
/// with its line like every other value (opening the store checks it again).
fn de_storage_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    match crate::store::StorageUrl::parse(&url) {
        Ok(_) => Ok(url),
        // The error's url has any credentials written into it redacted.
        Err(crate::store::StoreError::BadUrl { url, reason }) => {
            Err(de::Error::custom(format!("{url:?}: {reason}")))
        }
        Err(e) => Err(de::Error::custom(e)),
    }
}

fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        return Err(de::Error::custom(format!(
            "{s:?} is not host:port: expected e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\""
        )));
    }
    Ok(s)
}

fn de_optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Some(Secret::deserialize(d)?).filter(|s| !s.is_empty()))
}

fn de_optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(String::deserialize(d)?).filter(|s| !s.is_empty()))
}

fn de_optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(Some(PathBuf::deserialize(d)?).filter(|p| !p.as_os_str().is_empty()))
}

fn de_stations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let all = names.iter().any(|n| n == "*");
    if all && names.len() > 1 {
        return Err(de::Error::custom(
            "\"*\" already means every stream: use [\"*\"] alone or list names",
        ));
    }
    if !all {
        for name in &names {
            StationName::new(name.as_str()).map_err(de::Error::custom)?;
        }
    }
    Ok(names)
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
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("strata.toml")).map_err(|e| e.to_string())
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("3TiB"), Ok(3 << 40));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert!(parse_size("64M").unwrap_err().contains("ambiguous"));
        assert!(parse_size("1.5GiB")
            .unwrap_err()
            .contains("expected a size"));
        assert!(parse_size("MiB").unwrap_err().contains("expected a size"));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "s", "60 seconds", "1.5s", "-1s", "5x", "1h30"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("expected a duration"), "{bad:?}: {e}");
        }
        assert!(parse_duration("999999999999999999d").is_err());
    }

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
        assert_eq!(c.nats.fetch_batch, 256);
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
    fn a_bad_storage_url_names_its_line_and_the_forms() {
        let e = parse_err("[wal]\ndir = \"w\"\n\n[storage]\nurl = \"gs://bucket\"\n");
        assert!(e.contains("line 5: [storage] url"), "{e}");
        assert!(
            e.contains("gs://") && e.contains("s3://bucket/optional/prefix"),
            "{e}"
        );
        let e = parse_err("[storage]\nurl = \"s3://AKIA:hunter2@bucket/p\"\n");
        assert!(e.contains("line 2: [storage] url"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("AKIA"), "{e}");
        let e = parse_err("storage = { url = \"/var/lib/strata\" }\n");
        assert!(
            e.contains("line 1: [storage] url") && e.contains("no scheme"),
            "{e}"
        );
        assert!(parse("[storage]\nurl = \"file://./a\"\n").is_ok());
    }

    #[test]
    fn bad_values_name_key_and_form() {
        let e = parse_err("[wal]\nsegment_max_age = \"60 seconds\"\n");
        assert!(e.contains("line 2: [wal] segment_max_age"), "{e}");
        assert!(e.contains("expected a duration"), "{e}");

        let e = parse_err("[wal]\nsegment_max_bytes = \"64M\"\n");
        assert!(e.contains("[wal] segment_max_bytes"), "{e}");
        assert!(e.contains("KiB"), "{e}");

        let e = parse_err("[wal]\nmax_disk_bytes = -5\n");
        assert!(e.contains("[wal] max_disk_bytes"), "{e}");
        assert!(e.contains("negative"), "{e}");

        let e = parse_err("[wal]\nsegment_max_bytes = 0\n");
        assert!(e.contains("larger than 0"), "{e}");

        let e = parse_err("[compaction]\nzstd_level = 40\n");
        assert!(e.contains("[compaction] zstd_level"), "{e}");
        assert!(e.contains("1 (fastest) to 22"), "{e}");

        let e = parse_err("[compaction]\npart_size = \"1MiB\"\n");
        assert!(e.contains("[compaction] part_size"), "{e}");
        assert!(e.contains("5MiB"), "{e}");

        let e = parse_err("[storage]\nendpoint = \"localhost:9000\"\n");
        assert!(e.contains("[storage] endpoint"), "{e}");
        assert!(e.contains("http://"), "{e}");

        let e = parse_err("[storage]\npath_style = \"yes\"\n");
        assert!(e.contains("[storage] path_style"), "{e}");
        assert!(e.contains("bool"), "{e}");

        let e = parse_err("[http]\nlisten = \"8080\"\n");
        assert!(e.contains("[http] listen"), "{e}");
        assert!(e.contains("host:port"), "{e}");

        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\nstations = [\"a/b\"]\n");
        assert!(e.contains("[nats] stations"), "{e}");
        assert!(e.contains("'/'"), "{e}");

        let e = parse_err("[nats]\nstations = [\"*\", \"orders\"]\n");
        assert!(e.contains("alone"), "{e}");

        let e = parse_err("[nats]\nfetch_batch = 0\n");
        assert!(e.contains("[nats] fetch_batch"), "{e}");

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
    fn secrets_never_show() {
        let e = parse_err("[storage]\nsecret_access_key = 123456789\n");
        assert!(e.contains("[storage] secret_access_key"), "{e}");
        assert!(!e.contains("123456789"), "{e}");
        let e = parse_err("[http]\ntoken = 987654321\n");
        assert!(!e.contains("987654321"), "{e}");

        let c = parse(
            "[storage]\naccess_key_id = \"AKIA_SHOWN\"\nsecret_access_key = \"s3cr3t\"\n\
             [http]\ntoken = \"t0ken\"\n[nats]\nurl=\"nats://h:1\"\nstations=[\"*\"]\n\
             token = \"n4ts\"\n",
        )
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["AKIA_SHOWN", "s3cr3t", "t0ken", "n4ts"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn cross_key_rules() {
        let e = parse_err("[wal]\nsegment_max_bytes = \"2GiB\"\nmax_disk_bytes = \"1GiB\"\n");
        assert!(e.contains("max_disk_bytes"), "{e}");
        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\n");
        assert!(e.contains("stations is empty"), "{e}");
        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\nstations=[\"*\"]\ntoken=\"a\"\nuser=\"u\"\npassword=\"p\"\n");
        assert!(e.contains("one authentication method"), "{e}");
        let e = parse_err("[nats]\nuser = \"u\"\n");
        assert!(e.contains("user and password"), "{e}");
        let e = parse_err("[http]\nmax_body_bytes = \"2MiB\"\nmax_inflight_bytes = \"1MiB\"\n");
        assert!(
            e.contains("max_inflight_bytes") && e.contains("max_body_bytes"),
            "{e}"
        );
        let e = parse_err("[compaction]\nunhealthy_after = \"0s\"\n");
        assert!(e.contains("unhealthy_after"), "{e}");
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn storage_with_env(file: &str, vars: &[(&str, &str)]) -> StorageConfig {
        let mut c = parse(file).unwrap();
        c.storage.apply_env(env_of(vars)).unwrap();
        c.storage
    }

    #[test]
    fn env_fills_what_the_file_leaves_empty() {
        let all = [
            ("STRATA_ACCESS_KEY_ID", "strata-id"),
            ("STRATA_SECRET_ACCESS_KEY", "strata-secret"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_REGION", "aws-region"),
            ("AWS_DEFAULT_REGION", "aws-default-region"),
            ("AWS_ENDPOINT_URL", "http://aws-endpoint:9000"),
        ];
        // STRATA_* over AWS_*; AWS_REGION over AWS_DEFAULT_REGION.
        let s = storage_with_env("", &all);
        assert_eq!(s.access_key_id.expose(), "strata-id");
        assert_eq!(s.secret_access_key.expose(), "strata-secret");
        assert_eq!(s.region, "aws-region");
        assert_eq!(s.endpoint, "http://aws-endpoint:9000");

        // AWS_* when no STRATA_*; empty variables count as unset.
        let s = storage_with_env(
            "",
            &[
                ("STRATA_ACCESS_KEY_ID", ""),
                ("AWS_ACCESS_KEY_ID", "aws-id"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                ("AWS_DEFAULT_REGION", "aws-default-region"),
            ],
        );
        assert_eq!(s.access_key_id.expose(), "aws-id");
        assert_eq!(s.secret_access_key.expose(), "aws-secret");
        assert_eq!(s.region, "aws-default-region");
        assert_eq!(s.endpoint, "");

        // The file wins over every variable.
        let s = storage_with_env(
            "[storage]\naccess_key_id = \"file-id\"\nsecret_access_key = \"file-secret\"\n\
             region = \"file-region\"\nendpoint = \"https://file-endpoint\"\n",
            &all,
        );
        assert_eq!(s.access_key_id.expose(), "file-id");
        assert_eq!(s.secret_access_key.expose(), "file-secret");
        assert_eq!(s.region, "file-region");
        assert_eq!(s.endpoint, "https://file-endpoint");

        // A bad endpoint in the environment names the variable.
        let mut s = StorageConfig::default();
        let e = s
            .apply_env(env_of(&[("AWS_ENDPOINT_URL", "minio:9000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ENDPOINT_URL"), "{e}");
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
        assert_eq!(c.nats.fetch_batch, d.nats.fetch_batch);
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
}
