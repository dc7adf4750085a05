//! `[storage]`: the archive's URL, the S3 client settings, and the credentials,
//! region and endpoint that the environment fills in where the file leaves
//! them empty.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::values::{de_duration, de_positive_duration, Secret};
use super::ConfigError;

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

#[cfg(test)]
mod tests {
    use super::super::test_support::{env_of, parse, parse_err};
    use super::*;

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
        let e = parse_err("[storage]\nendpoint = \"localhost:9000\"\n");
        assert!(e.contains("[storage] endpoint"), "{e}");
        assert!(e.contains("http://"), "{e}");

        let e = parse_err("[storage]\npath_style = \"yes\"\n");
        assert!(e.contains("[storage] path_style"), "{e}");
        assert!(e.contains("bool"), "{e}");
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
}
