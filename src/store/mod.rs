//! The object store behind the archive, built from `[storage]`: a local folder
//! (`file://`) or any S3-compatible service (AWS S3, MinIO, Backblaze B2).
//!
//! [`Archive::open`] turns the config into an [`Archive`]: one
//! `Arc<dyn ObjectStore>` under the configured prefix (a `file://` folder through
//! [`DurableFolder`], so that what is stored is on disk before the WAL lets go of
//! it) with a typed API whose errors ([`StoreError`]) say what to check;
//! [`check`] probes a store step by step. Credentials go to the S3 client and
//! nowhere else: `Archive`'s `Debug` shows the url and the store's name only.

mod archive;
mod check;
mod credentials;
mod durable;
mod error;
mod forward;
mod url;

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::config::StorageConfig;

pub use archive::Archive;
pub use check::{check, CheckReport, CheckStep, STEPS};
pub use credentials::NoCredentials;
pub use durable::DurableFolder;
pub use error::{Cause, StoreError};
pub use url::StorageUrl;

/// Region used when `[storage] region` and the environment leave it empty.
pub const DEFAULT_REGION: &str = "us-east-1";

impl Archive {
    /// Opens the archive that `cfg` describes. Does no network I/O: a wrong
    /// bucket, key or endpoint shows on the first operation (see [`check`]).
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for an unsupported url, [`StoreError::Config`] for
    /// half-set credentials, [`StoreError::Folder`] when a `file://` folder cannot
    /// be created, [`StoreError::Build`] when object_store refuses the settings.
    pub fn open(cfg: &StorageConfig) -> Result<Archive, StoreError> {
        match StorageUrl::parse(&cfg.url)? {
            StorageUrl::File { path } => open_folder(&path),
            StorageUrl::S3 { bucket, prefix } => open_s3(cfg, &bucket, prefix),
        }
    }
}

/// `file://`: the folder is created if missing (durably); keys are relative to
/// it, so the archive prefix is empty. Writes are fsynced ([`DurableFolder`]).
fn open_folder(path: &std::path::Path) -> Result<Archive, StoreError> {
    let folder_err = |source| StoreError::Folder {
        path: path.to_path_buf(),
        source,
    };
    // `path` and its ancestors, nearest first ("" is the working directory).
    let dirs: Vec<&std::path::Path> = path
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                a
            }
        })
        .collect();
    // The folders below the nearest existing one are about to be created;
    // their names are durable only once their parents are fsynced.
    let existing = dirs.iter().position(|d| d.is_dir());
    std::fs::create_dir_all(path).map_err(folder_err)?;
    if let Some(nearest) = existing {
        for dir in dirs.iter().take(nearest + 1).skip(1) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(folder_err)?;
        }
    }
    let absolute = std::fs::canonicalize(path).map_err(folder_err)?;
    let url = format!("file://{}", absolute.display());
    let store = LocalFileSystem::new_with_prefix(&absolute)
        .map_err(|source| StoreError::Build {
            url: url.clone(),
            source,
        })?
        // Deleting the last object of a folder removes the folder, as on S3
        // where a prefix exists only while objects do.
        .with_automatic_cleanup(true);
    let store = DurableFolder::new(store, absolute);
    Ok(Archive::from_store(Arc::new(store), Path::default(), url))
}

/// `s3://bucket/prefix` with region, endpoint, path style, credentials and a
/// bounded retry policy from `cfg`.
fn open_s3(cfg: &StorageConfig, bucket: &str, prefix: Path) -> Result<Archive, StoreError> {
    let url = if prefix.as_ref().is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let region = if cfg.region.trim().is_empty() {
        DEFAULT_REGION
    } else {
        cfg.region.trim()
    };
    let endpoint = cfg.endpoint.trim().trim_end_matches('/');
    let options = ClientOptions::new()
        .with_connect_timeout(cfg.connect_timeout)
        .with_timeout(cfg.request_timeout)
        .with_allow_http(endpoint.starts_with("http://"));
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: cfg.max_retries,
        retry_timeout: cfg.retry_timeout,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_virtual_hosted_style_request(!cfg.path_style)
        .with_client_options(options)
        .with_retry(retry);
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(if cfg.path_style {
            endpoint.to_string()
        } else {
            url::virtual_hosted_endpoint(endpoint, bucket)
        });
    }
    match (
        cfg.access_key_id.is_empty(),
        cfg.secret_access_key.is_empty(),
    ) {
        (false, false) => {
            builder = builder
                .with_access_key_id(cfg.access_key_id.expose())
                .with_secret_access_key(cfg.secret_access_key.expose());
        }
        // Neither: the machine's instance profile, or a quick "no credentials".
        (true, true) => {
            let profile = credentials::InstanceProfile::new(credentials::METADATA_ENDPOINT, region)
                .map_err(|source| StoreError::Build {
                    url: url.clone(),
                    source,
                })?;
            builder = builder.with_credentials(Arc::new(profile));
        }
        (false, true) => {
            return Err(StoreError::Config {
                reason: "access_key_id is set but secret_access_key is empty: set both (in \
                         the file or as STRATA_SECRET_ACCESS_KEY / AWS_SECRET_ACCESS_KEY), or \
                         neither to use the machine's role"
                    .to_string(),
            })
        }
        (true, false) => {
            return Err(StoreError::Config {
                reason: "secret_access_key is set but access_key_id is empty: set both (in \
                         the file or as STRATA_ACCESS_KEY_ID / AWS_ACCESS_KEY_ID), or \
                         neither to use the machine's role"
                    .to_string(),
            })
        }
    }
    let store = builder.build().map_err(|source| StoreError::Build {
        url: url.clone(),
        source,
    })?;
    tracing::debug!(%url, region, endpoint, path_style = cfg.path_style, "S3 archive configured");
    Ok(Archive::from_store(Arc::new(store), prefix, url))
}

#[cfg(test)]
mod tests {
    use crate::config::Secret;

    use super::*;

    fn s3(url: &str) -> StorageConfig {
        StorageConfig {
            url: url.to_string(),
            endpoint: "http://127.0.0.1:9".to_string(),
            path_style: true,
            access_key_id: Secret::new("AKIA_DEBUG_ID"),
            secret_access_key: Secret::new("debug-secret-key"),
            ..StorageConfig::default()
        }
    }

    #[test]
    fn s3_archive_debug_shows_no_credentials() {
        let a = Archive::open(&s3("s3://bkt/some/prefix")).unwrap();
        assert_eq!(a.url(), "s3://bkt/some/prefix");
        assert_eq!(a.key(&Path::from("x")).as_ref(), "some/prefix/x");
        let debug = format!("{a:?}");
        assert!(!debug.contains("AKIA_DEBUG_ID"), "{debug}");
        assert!(!debug.contains("debug-secret-key"), "{debug}");
        assert!(debug.contains("bkt"), "{debug}");
        // object_store's own Debug does show the key id: that is why Archive wraps it.
        assert!(format!("{:?}", a.store()).contains("AKIA_DEBUG_ID"));
    }

    #[test]
    fn half_set_credentials_are_refused() {
        let mut cfg = s3("s3://bkt");
        cfg.secret_access_key = Secret::default();
        let e = Archive::open(&cfg).unwrap_err();
        assert!(matches!(e, StoreError::Config { .. }));
        assert!(e.to_string().contains("secret_access_key is empty"), "{e}");
        assert!(!e.to_string().contains("AKIA_DEBUG_ID"), "{e}");
    }

    #[test]
    fn bad_url_lists_the_supported_forms() {
        let cfg = StorageConfig {
            url: "gs://bucket".into(),
            ..StorageConfig::default()
        };
        let e = Archive::open(&cfg).unwrap_err();
        assert!(matches!(e, StoreError::BadUrl { .. }));
        assert!(e.is_permanent());
        let text = e.to_string();
        assert!(text.contains("file://") && text.contains("s3://"), "{text}");
    }

    #[test]
    fn file_archive_creates_the_folder_and_keeps_keys_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested/archive");
        let cfg = StorageConfig {
            url: format!("file://{}", root.display()),
            ..StorageConfig::default()
        };
        let a = Archive::open(&cfg).unwrap();
        assert!(root.is_dir());
        assert_eq!(a.key(&Path::from("x")).as_ref(), "x");
        assert!(a.url().starts_with("file:///"), "{}", a.url());
        // Writes are fsynced before they count as stored (see store::durable).
        let shown = a.store().to_string();
        assert!(shown.starts_with("DurableFolder("), "{shown}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            a.put(&Path::from("station=s/x.parquet"), b"abc".to_vec().into())
                .await
                .unwrap();
        });
        assert_eq!(
            std::fs::read(root.join("station=s/x.parquet")).unwrap(),
            b"abc"
        );
    }

    #[test]
    fn file_folder_that_cannot_be_created_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let cfg = StorageConfig {
            url: format!("file://{}/sub", file.display()),
            ..StorageConfig::default()
        };
        let e = Archive::open(&cfg).unwrap_err();
        assert!(matches!(e, StoreError::Folder { .. }));
        assert!(e.to_string().contains("[storage] url"), "{e}");
    }
}
