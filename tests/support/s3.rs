//! The S3-compatible test server (`STRATA_TEST_S3_ENDPOINT`, moto). Buckets
//! are created and read with boto3, a real S3 client (`tests/py/s3.py`, run by
//! the test virtualenv's Python); [`storage`] is the `[storage]` Strata uses
//! for one.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use strata::config::{Secret, StorageConfig};

use super::env_var;
use super::python::python_json;

/// Access key id the tests give the S3 test server (moto accepts any).
pub const TEST_ACCESS_KEY_ID: &str = "strata-test-key";
/// Secret access key the tests give the S3 test server.
pub const TEST_SECRET_ACCESS_KEY: &str = "strata-test-secret";
/// Region the tests use.
pub const TEST_REGION: &str = "us-east-1";

/// The S3-compatible test server, e.g. `http://127.0.0.1:PORT`.
pub fn endpoint() -> Result<String, String> {
    env_var("STRATA_TEST_S3_ENDPOINT", "an S3-compatible server, moto")
}

/// A bucket name no other test used: `<prefix>-<12 hex digits>`, lower case.
pub fn unique_bucket(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", prefix.to_ascii_lowercase(), &id[..12])
}

/// Creates `bucket` on the S3 test server at `endpoint` with boto3 (so it
/// needs `STRATA_TEST_PYTHON` as well).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    python_json(
        "s3.py",
        &[
            OsStr::new("create-bucket"),
            OsStr::new(endpoint),
            OsStr::new(bucket),
        ],
    );
}

/// A new bucket (named from `bucket_prefix`, see [`unique_bucket`]) on the S3
/// test server at `endpoint`, as `[storage]` for `s3://<bucket>/<prefix>`.
pub fn fresh_storage(endpoint: &str, bucket_prefix: &str, prefix: &str) -> super::conf::Storage {
    let bucket = unique_bucket(bucket_prefix);
    create_bucket(endpoint, &bucket);
    super::conf::Storage::S3 {
        endpoint: endpoint.to_string(),
        bucket,
        prefix: prefix.to_string(),
    }
}

/// Downloads every object under `prefix` into `dest` (keys relative to the prefix).
pub fn download(endpoint: &str, bucket: &str, prefix: &str, dest: &Path) -> Vec<String> {
    let v = python_json(
        "s3.py",
        &[
            OsStr::new("download"),
            OsStr::new(endpoint),
            OsStr::new(bucket),
            OsStr::new(prefix),
            dest.as_os_str(),
        ],
    );
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect()
}

/// `[storage]` for `s3://bucket/prefix` on the S3 test server: path style,
/// test credentials, and few retries so failures show quickly.
pub fn storage(endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    StorageConfig {
        url,
        region: TEST_REGION.to_string(),
        endpoint: endpoint.to_string(),
        path_style: true,
        access_key_id: Secret::new(TEST_ACCESS_KEY_ID),
        secret_access_key: Secret::new(TEST_SECRET_ACCESS_KEY),
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..StorageConfig::default()
    }
}

/// Multipart uploads the S3 test server holds for `bucket`: started, neither
/// completed nor aborted (object_store cannot list them; moto answers an
/// unsigned `GET /bucket?uploads`).
pub async fn incomplete_uploads(endpoint: &str, bucket: &str) -> Result<usize, String> {
    let body = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
        .await
        .map_err(|e| format!("list multipart uploads of {bucket}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("list multipart uploads of {bucket}: {e}"))?;
    Ok(body.matches("<Upload>").count())
}
