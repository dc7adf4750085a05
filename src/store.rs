//! The object store behind the archive, built from `[storage]`: a local folder
//! (`file://`) or any S3-compatible service (AWS S3, MinIO, Backblaze B2).
//! (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::config::StorageConfig;

/// An opened archive: the store and the key prefix everything lives under.
#[derive(Debug, Clone)]
pub struct Archive {
    pub store: Arc<dyn ObjectStore>,
    /// Prefix inside the store (may be empty).
    pub prefix: Path,
    /// The URL for messages (never holds secrets).
    pub url: String,
}

/// Errors opening or using the store, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid [storage] url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot configure storage {url}: {source}")]
    Build {
        url: String,
        source: object_store::Error,
    },
    #[error("{op} {path} failed: {hint} ({source})")]
    Op {
        op: &'static str,
        path: String,
        hint: String,
        source: object_store::Error,
    },
}

impl Archive {
    /// Opens the archive that `cfg` describes.
    pub fn open(cfg: &StorageConfig) -> Result<Archive, StoreError> {
        todo!()
    }
    /// Wraps an existing store (tests: `InMemory`, fault injection).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        url: impl Into<String>,
    ) -> Archive {
        Archive {
            store,
            prefix,
            url: url.into(),
        }
    }
}

/// Turns an object-store error into a [`StoreError::Op`] that says whether it is
/// permanent (403, no such bucket, wrong region) and what to check.
pub fn op_error(op: &'static str, path: &Path, source: object_store::Error) -> StoreError {
    todo!()
}
