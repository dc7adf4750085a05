//! Strata's own records as the table needs them, read through the archive:
//! the live files of the whole archive (commit records plus merged files less
//! replaced ones, for a rebuild) and the files replaced in some partitions
//! (so an append leaves them out).

use std::collections::BTreeSet;

use object_store::path::Path;

use super::{plan, IcebergError};
use crate::layout::{self, CommitRecord, CommittedFile, DataKey, ReplacementRecord};
use crate::store::{Archive, StoreError};

fn store_err(e: StoreError) -> IcebergError {
    IcebergError::Store(Box::new(e))
}

/// The keys (with the prefix) of files replaced by the replacement records
/// of the partitions of `files`.
pub(super) async fn replaced_keys(
    archive: &Archive,
    files: &[CommittedFile],
) -> Result<BTreeSet<String>, IcebergError> {
    let mut partitions = BTreeSet::new();
    for f in files {
        let rel = archive.relative(&Path::from(f.key.as_str()));
        if let Some(key) = rel.as_ref().and_then(DataKey::parse) {
            partitions.insert((key.station, key.hour));
        }
    }
    let mut replaced = BTreeSet::new();
    for (station, hour) in partitions {
        let dir = layout::replacements_hour_prefix(&station, hour);
        for meta in archive.list_all(Some(&dir)).await.map_err(store_err)? {
            if let Some(r) = replacement(archive, &meta.location).await? {
                replaced.extend(r.replaced.into_iter().map(|f| f.key));
            }
        }
    }
    Ok(replaced)
}

async fn replacement(
    archive: &Archive,
    path: &Path,
) -> Result<Option<ReplacementRecord>, IcebergError> {
    let Some(bytes) = archive.get_if_exists(path).await.map_err(store_err)? else {
        return Ok(None);
    };
    match ReplacementRecord::from_json(&bytes) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::warn!(path = %archive.key(path), error = %e, "unreadable replacement record: ignored by the Iceberg table");
            Ok(None)
        }
    }
}

/// Every live file of the archive according to its records.
pub(super) async fn live_files(archive: &Archive) -> Result<Vec<CommittedFile>, IcebergError> {
    let mut commits = Vec::new();
    let listed = archive
        .list_all(Some(&layout::commits_prefix()))
        .await
        .map_err(store_err)?;
    for meta in listed {
        if layout::parse_commit_record_path(&meta.location).is_none() {
            continue;
        }
        let bytes = archive.get(&meta.location).await.map_err(store_err)?;
        let record = CommitRecord::from_json(&bytes).map_err(|e| IcebergError::Record {
            key: archive.key(&meta.location).to_string(),
            reason: e.to_string(),
        })?;
        commits.push(record);
    }
    let mut replacements = Vec::new();
    let listed = archive
        .list_all(Some(&layout::replacements_prefix()))
        .await
        .map_err(store_err)?;
    for meta in listed {
        if layout::parse_replacement_record_path(&meta.location).is_none() {
            continue;
        }
        let bytes = archive.get(&meta.location).await.map_err(store_err)?;
        let record = ReplacementRecord::from_json(&bytes).map_err(|e| IcebergError::Record {
            key: archive.key(&meta.location).to_string(),
            reason: e.to_string(),
        })?;
        replacements.push(record);
    }
    Ok(plan::live_files(&commits, &replacements))
}
