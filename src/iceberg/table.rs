//! The table in the archive: load the current metadata, commit a new version.
//!
//! A commit reads the current version (`version-hint.text`, then forward
//! while `v<N+1>.metadata.json` exists), writes the new manifest(s) and the
//! manifest list under fresh names, then creates `v<N+1>.metadata.json` with
//! `put_if_absent`: the one atomic step. When another process got there first
//! the commit starts over from the newer version (its files of the lost
//! attempt stay, unreferenced). Last, `version-hint.text` is rewritten; a
//! crash before that only leaves the hint behind, which loading corrects.
//!
//! Every snapshot names the record it came from ([`spec::RECORD_PROPERTY`]),
//! so a redo after a crash finds it and commits nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use object_store::path::Path;
use object_store::PutPayload;

use super::manifest::{self, ManifestEntry, ManifestFile, Status};
use super::plan;
use super::records;
use super::spec::{self, DataFile, Snapshot, TableMetadata};
use super::IcebergError;
use crate::config::{IcebergCatalog, IcebergConfig};
use crate::layout::{self, CommitRecord, CommittedFile, DataKey, ReplacementRecord};
use crate::message::Timestamp;
use crate::store::Archive;

/// Metadata versions kept: older ones are deleted after each commit (the
/// metadata log of the current version names at most this many).
const KEEP_VERSIONS: u64 = spec::MAX_METADATA_LOG as u64;
/// Clocks of the processes writing the table may differ by this much.
const CLOCK_SKEW_MS: i64 = 60_000;
/// Commits attempted before giving up when other processes keep winning.
const MAX_ATTEMPTS: usize = 25;

/// A step of a commit where crash tests stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// The new manifests and manifest list are stored; no new metadata version.
    AfterManifest,
    /// The new metadata version is stored; `version-hint.text` not yet updated.
    AfterMetadata,
}

/// Called at each [`CommitStep`]; returning `false` stops the commit there
/// with [`IcebergError::Stopped`] (crash tests abort the process instead).
pub type StepHook = Arc<dyn Fn(CommitStep) -> bool + Send + Sync>;

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new snapshot is current in metadata version `version`.
    Committed {
        /// The metadata version written.
        version: u64,
        /// The new snapshot.
        snapshot_id: i64,
    },
    /// The record's snapshot was already in the table (a redo), or there was
    /// nothing to change; no version was written.
    AlreadyDone,
}

/// The current metadata and its version.
#[derive(Debug, Clone)]
pub struct Current {
    /// `N` of `vN.metadata.json`.
    pub version: u64,
    /// The metadata.
    pub metadata: TableMetadata,
}

/// What a change adds and deletes.
#[derive(Debug, Clone)]
struct Change {
    operation: &'static str,
    record: String,
    added: Vec<DataFile>,
    deleted: Vec<DataFile>,
    /// Leave out added files the table already lists (a redo, a rebuild).
    skip_live: bool,
    /// When the record was stored (ms since the epoch): a rebuild snapshot
    /// taken after it may already list its files, so they are checked.
    stored_ms: Option<i64>,
    /// Replace every file the table lists (a rebuild).
    replace_all: bool,
}

/// The archive's Iceberg table (catalog `file`): see the module doc.
#[derive(Clone)]
pub struct IcebergTable {
    archive: Archive,
    hook: Option<StepHook>,
}

impl fmt::Debug for IcebergTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergTable")
            .field("location", &self.location())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl IcebergTable {
    /// The table of `archive`, as `[iceberg]` says; `None` when disabled.
    ///
    /// # Errors
    /// [`IcebergError::RestCatalog`] for `catalog = "rest"`, not yet supported.
    pub fn open(
        archive: &Archive,
        cfg: &IcebergConfig,
    ) -> Result<Option<IcebergTable>, IcebergError> {
        if !cfg.enabled {
            return Ok(None);
        }
        if cfg.catalog == IcebergCatalog::Rest {
            return Err(IcebergError::RestCatalog {
                uri: cfg.uri.clone(),
            });
        }
        Ok(Some(IcebergTable::new(archive.clone())))
    }

    /// The table under `archive`'s `_strata/iceberg/`.
    pub fn new(archive: Archive) -> IcebergTable {
        IcebergTable {
            archive,
            hook: None,
        }
    }

    /// Calls `hook` at each [`CommitStep`] (crash tests).
    pub fn with_hook(mut self, hook: StepHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The table's location, an absolute URL (`s3://…/_strata/iceberg`).
    pub fn location(&self) -> String {
        self.archive.object_url(&layout::iceberg_prefix())
    }

    /// The absolute URL of metadata version `version`.
    pub fn metadata_url(&self, version: u64) -> String {
        self.archive
            .object_url(&layout::iceberg_metadata_path(version))
    }

    fn store_err(&self) -> impl Fn(crate::store::StoreError) -> IcebergError {
        |e| IcebergError::Store(Box::new(e))
    }

    /// The current version, or `None` when the table was never written.
    ///
    /// # Errors
    /// [`IcebergError::Store`], or [`IcebergError::Metadata`] when the file
    /// does not read as table metadata.
    pub async fn current(&self) -> Result<Option<Current>, IcebergError> {
        let hint_path = layout::iceberg_version_hint_path();
        let hint = self
            .archive
            .get_if_exists(&hint_path)
            .await
            .map_err(self.store_err())?;
        let mut version = hint
            .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // The hint may be behind: a crash before it was updated, or a slower
        // writer overwriting a newer hint.
        loop {
            match self
                .archive
                .head(&layout::iceberg_metadata_path(version + 1))
                .await
            {
                Ok(_) => version += 1,
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(self.store_err()(e)),
            }
        }
        if version == 0 {
            // No hint, or one naming a version since expired: the listing knows.
            version = self.latest_listed_version().await?;
            if version == 0 {
                return Ok(None);
            }
        }
        let mut path = layout::iceberg_metadata_path(version);
        let bytes = match self
            .archive
            .get_if_exists(&path)
            .await
            .map_err(self.store_err())?
        {
            Some(bytes) => bytes,
            None => {
                // The hint named an expired version (a writer far behind wrote it).
                version = self.latest_listed_version().await?;
                path = layout::iceberg_metadata_path(version);
                self.archive.get(&path).await.map_err(self.store_err())?
            }
        };
        let metadata =
            TableMetadata::from_json(&bytes).map_err(|reason| IcebergError::Metadata {
                url: self.archive.object_url(&path),
                reason,
            })?;
        Ok(Some(Current { version, metadata }))
    }

    /// The highest `v<N>.metadata.json` in a listing of `metadata/` (0: none).
    async fn latest_listed_version(&self) -> Result<u64, IcebergError> {
        let listed = self
            .archive
            .list_all(Some(&layout::iceberg_metadata_prefix()))
            .await
            .map_err(self.store_err())?;
        Ok(listed
            .iter()
            .filter_map(|m| layout::parse_iceberg_metadata_path(&m.location))
            .max()
            .unwrap_or(0))
    }

    /// Deletes what version `version` (just committed, `next`) no longer
    /// needs: metadata version `version - KEEP_VERSIONS` and the manifest
    /// lists of the snapshots `previous` kept and `next` dropped. Best effort:
    /// a failure leaves a file behind and is logged.
    async fn expire(&self, version: u64, previous: &TableMetadata, next: &TableMetadata) {
        let kept: BTreeSet<i64> = next.snapshots.iter().map(|s| s.snapshot_id).collect();
        let mut doomed: Vec<Path> = previous
            .snapshots
            .iter()
            .filter(|s| !kept.contains(&s.snapshot_id))
            .filter_map(|s| self.rel_of_url(&s.manifest_list).ok())
            .collect();
        if let Some(old) = version.checked_sub(KEEP_VERSIONS).filter(|v| *v > 0) {
            doomed.push(layout::iceberg_metadata_path(old));
        }
        for path in doomed {
            match self.archive.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete an expired Iceberg metadata file; it stays, unreferenced")
                }
            }
        }
    }

    /// The URL of the current metadata file, or `None` when there is no table.
    ///
    /// # Errors
    /// As [`IcebergTable::current`].
    pub async fn current_metadata_url(&self) -> Result<Option<String>, IcebergError> {
        Ok(self.current().await?.map(|c| self.metadata_url(c.version)))
    }

    /// The data file entry of `file` (a committed file, key with the prefix).
    fn data_file(&self, file: &CommittedFile) -> Result<DataFile, IcebergError> {
        let full = Path::from(file.key.as_str());
        let rel = self
            .archive
            .relative(&full)
            .ok_or_else(|| IcebergError::OutsideArchive {
                key: file.key.clone(),
            })?;
        Ok(DataFile::from_committed(
            file,
            self.archive.object_url(&rel),
        )?)
    }

    /// Appends the files of `record` (a commit record stored at `record_path`)
    /// as one `append` snapshot, leaving out files a replacement record already
    /// replaced. Idempotent: when a snapshot of the record is in the table,
    /// nothing is written. `redo` (the record was stored by an earlier run)
    /// also leaves out files the table already lists.
    ///
    /// When there is no table yet and the archive holds other files (written
    /// before the table existed, or with `[iceberg] enabled = false`), the
    /// table is first built from every record ([`IcebergTable::rebuild`]),
    /// so it starts complete.
    ///
    /// # Errors
    /// [`IcebergError`]; the caller retries (the record stays the proof).
    pub async fn append_commit(
        &self,
        record: &CommitRecord,
        record_path: &Path,
        redo: bool,
    ) -> Result<CommitOutcome, IcebergError> {
        let mut skip_live = redo;
        if self.current().await?.is_none() {
            let live = records::live_files(&self.archive).await?;
            let own: BTreeSet<&str> = record.files.iter().map(|f| f.key.as_str()).collect();
            if live.iter().any(|f| !own.contains(f.key.as_str())) {
                tracing::info!(
                    files = live.len(),
                    "no Iceberg table yet: its first snapshot lists every file the archive's records name"
                );
                // Lists the records again, after reading the current version:
                // a commit landing meanwhile is then seen (see `rebuild`).
                self.rebuild().await?;
                skip_live = true;
            }
        }
        let replaced = records::replaced_keys(&self.archive, &record.files).await?;
        let added = record
            .files
            .iter()
            .filter(|f| !replaced.contains(&f.key))
            .map(|f| self.data_file(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit(Change {
            operation: plan::APPEND,
            record: self.archive.key(record_path).to_string(),
            added,
            deleted: Vec::new(),
            skip_live,
            stored_ms: Timestamp::parse_rfc3339(&record.committed_at)
                .ok()
                .map(|t| t.micros() / 1000),
            replace_all: false,
        })
        .await
    }

    /// Commits one `replace` snapshot for a tier-2 merge: `record.merged`
    /// added, the files of `record.replaced` deleted. Idempotent like
    /// [`IcebergTable::append_commit`]; files the table does not list are
    /// left alone, and the merged file is not added twice.
    ///
    /// # Errors
    /// [`IcebergError`]; call again (the replacement record stays the proof).
    pub async fn replace(&self, record: &ReplacementRecord) -> Result<CommitOutcome, IcebergError> {
        let rel = self
            .archive
            .relative(&Path::from(record.merged.key.as_str()))
            .ok_or_else(|| IcebergError::OutsideArchive {
                key: record.merged.key.clone(),
            })?;
        let merged = DataKey::parse(&rel).ok_or_else(|| IcebergError::OutsideArchive {
            key: record.merged.key.clone(),
        })?;
        let deleted = record
            .replaced
            .iter()
            .map(|f| self.data_file(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit(Change {
            operation: plan::REPLACE,
            record: self
                .archive
                .key(&layout::replacement_record_path(&merged))
                .to_string(),
            added: vec![self.data_file(&record.merged)?],
            deleted,
            skip_live: true,
            stored_ms: None,
            replace_all: false,
        })
        .await
    }

    /// Rebuilds the table from the archive's commit and replacement records:
    /// one snapshot whose files are the committed and merged files less the
    /// replaced ones ([`plan::live_files`]), replacing whatever the table
    /// listed. Returns the outcome and the number of live files.
    ///
    /// # Errors
    /// [`IcebergError`]; a record that does not parse is an error, not skipped.
    pub async fn rebuild(&self) -> Result<(CommitOutcome, usize), IcebergError> {
        let record = uuid::Uuid::new_v4().to_string();
        for attempt in 1..=MAX_ATTEMPTS {
            // Read before the records: a commit that lands after this read
            // makes the conditional create fail, and the records are read again.
            let current = self.current().await?;
            let live = records::live_files(&self.archive).await?;
            let added = live
                .iter()
                .map(|f| self.data_file(f))
                .collect::<Result<Vec<_>, _>>()?;
            let count = added.len();
            let change = Change {
                operation: "overwrite",
                record: format!("{}{record}", plan::REBUILD_PREFIX),
                added,
                deleted: Vec::new(),
                skip_live: false,
                stored_ms: None,
                replace_all: true,
            };
            if let Some(outcome) = self.try_commit(current, &change).await? {
                return Ok((outcome, count));
            }
            tracing::debug!(
                attempt,
                "another process committed during the rebuild: reading the records again"
            );
        }
        Err(IcebergError::Conflict {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Commits `change`, retrying from the newer version when another process
    /// commits first.
    async fn commit(&self, change: Change) -> Result<CommitOutcome, IcebergError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let current = self.current().await?;
            if let Some(c) = &current {
                if c.metadata.has_record(&change.record) {
                    return Ok(CommitOutcome::AlreadyDone);
                }
            }
            let rebuilt_since = |c: &Current| {
                change.stored_ms.is_some_and(|stored| {
                    c.metadata
                        .snapshots
                        .iter()
                        .any(|s| plan::is_rebuild(s) && s.timestamp_ms >= stored - CLOCK_SKEW_MS)
                })
            };
            let change = match &current {
                Some(c) if !change.skip_live && rebuilt_since(c) => Change {
                    skip_live: true,
                    ..change.clone()
                },
                _ => change.clone(),
            };
            match self.try_commit(current, &change).await? {
                Some(outcome) => return Ok(outcome),
                None => {
                    tracing::debug!(attempt, record = %change.record, "another process committed to the Iceberg table first: retrying");
                    tokio::time::sleep(crate::backoff::nth(
                        std::time::Duration::from_millis(20),
                        std::time::Duration::from_secs(1),
                        attempt as u32,
                    ))
                    .await;
                }
            }
        }
        Err(IcebergError::Conflict {
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn get_bytes(&self, url: &str) -> Result<bytes::Bytes, IcebergError> {
        let rel = self.rel_of_url(url)?;
        self.archive.get(&rel).await.map_err(self.store_err())
    }

    /// The archive path of an absolute URL this table wrote.
    fn rel_of_url(&self, url: &str) -> Result<Path, IcebergError> {
        let root = self.archive.object_url(&Path::default());
        let rest = url
            .strip_prefix(root.trim_end_matches('/'))
            .map(|r| r.trim_start_matches('/'))
            .ok_or_else(|| IcebergError::Metadata {
                url: url.to_string(),
                reason: format!("not under the archive {root}"),
            })?;
        Path::parse(rest).map_err(|e| IcebergError::Metadata {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// The entries of manifest `m` (sequence numbers and snapshot inherited
    /// from its list entry where null).
    async fn read_manifest(&self, m: &ManifestFile) -> Result<Vec<ManifestEntry>, IcebergError> {
        let bytes = self.get_bytes(&m.path).await?;
        manifest::read_manifest(&bytes, m.sequence_number, m.added_snapshot_id)
            .map_err(|e| self.manifest_err(&m.path, e))
    }

    async fn put_avro(&self, path: &Path, bytes: Vec<u8>) -> Result<(), IcebergError> {
        self.archive
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(self.store_err())
    }

    fn step(&self, step: CommitStep) -> Result<(), IcebergError> {
        match &self.hook {
            Some(hook) if !hook(step) => Err(IcebergError::Stopped(step)),
            _ => Ok(()),
        }
    }

    /// One attempt; `None` when another process wrote the version first.
    async fn try_commit(
        &self,
        current: Option<Current>,
        change: &Change,
    ) -> Result<Option<CommitOutcome>, IcebergError> {
        let now_ms = Timestamp::now().micros() / 1000;
        let (version, metadata, previous) = match current {
            Some(c) => {
                let url = self.metadata_url(c.version);
                (c.version, c.metadata, Some(url))
            }
            None => {
                let m =
                    TableMetadata::new(self.location(), uuid::Uuid::new_v4().to_string(), now_ms)?;
                (0, m, None)
            }
        };
        let parent = metadata.current_snapshot().cloned();
        let sequence_number = metadata.last_sequence_number + 1;
        let snapshot_id = new_snapshot_id(&metadata);
        let commit_uuid = uuid::Uuid::new_v4().to_string();

        let list: Vec<ManifestFile> = match &parent {
            Some(s) if !change.replace_all => {
                manifest::read_manifest_list(&self.get_bytes(&s.manifest_list).await?)
                    .map_err(|e| self.manifest_err(&s.manifest_list, e))?
            }
            _ => Vec::new(),
        };

        // Manifests that may list an added or deleted file are read: to leave
        // out files already listed, and to rewrite those that delete.
        let deleted: BTreeSet<String> = change.deleted.iter().map(|f| f.path.clone()).collect();
        let mut live_paths = BTreeSet::new();
        let mut new_list = Vec::new();
        let mut written = Vec::new();
        let mut deleted_files = Vec::new();
        for m in list.into_iter().filter(plan::has_live_files) {
            if !plan::must_read(&m, &change.added, &change.deleted, change.skip_live) {
                new_list.push(m);
                continue;
            }
            let entries = self.read_manifest(&m).await?;
            live_paths.extend(
                entries
                    .iter()
                    .filter(|e| e.status != Status::Deleted)
                    .map(|e| e.file.path.clone()),
            );
            let (rewritten, gone) = plan::rewrite_for_delete(&entries, &deleted, snapshot_id);
            if gone.is_empty() {
                new_list.push(m);
            } else {
                deleted_files.extend(gone);
                written.push(rewritten);
            }
        }
        let added: Vec<DataFile> = change
            .added
            .iter()
            .filter(|f| !(change.skip_live && live_paths.contains(&f.path)))
            .cloned()
            .collect();
        if added.is_empty() && deleted_files.is_empty() && !change.replace_all {
            return Ok(Some(CommitOutcome::AlreadyDone));
        }
        let merge = plan::manifests_to_merge(&new_list);
        if !merge.is_empty() {
            let mut parts = Vec::with_capacity(merge.len());
            for &i in &merge {
                parts.push(self.read_manifest(&new_list[i]).await?);
            }
            let merged: BTreeSet<usize> = merge.into_iter().collect();
            new_list = new_list
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !merged.contains(i))
                .map(|(_, m)| m)
                .collect();
            written.push(plan::merge_entries(parts));
        }
        if !added.is_empty() {
            written.push(
                added
                    .iter()
                    .map(|f| ManifestEntry {
                        status: Status::Added,
                        snapshot_id,
                        sequence_number,
                        file_sequence_number: sequence_number,
                        file: f.clone(),
                    })
                    .collect(),
            );
        }
        for (i, entries) in written.iter().enumerate() {
            let path = layout::iceberg_manifest_path(&commit_uuid, i);
            let bytes =
                manifest::write_manifest(entries).map_err(|e| self.manifest_err("(new)", e))?;
            let length = bytes.len() as i64;
            self.put_avro(&path, bytes).await?;
            new_list.push(manifest::summarize(
                self.archive.object_url(&path),
                length,
                entries,
                snapshot_id,
                sequence_number,
            ));
        }
        let list_path = layout::iceberg_manifest_list_path(snapshot_id, &commit_uuid);
        let parent_id = parent.as_ref().map(|s| s.snapshot_id);
        let list_bytes =
            manifest::write_manifest_list(&new_list, snapshot_id, parent_id, sequence_number)
                .map_err(|e| self.manifest_err("(new list)", e))?;
        self.put_avro(&list_path, list_bytes).await?;
        self.step(CommitStep::AfterManifest)?;

        let snapshot = Snapshot {
            snapshot_id,
            parent_snapshot_id: parent_id,
            sequence_number,
            timestamp_ms: now_ms.max(metadata.last_updated_ms),
            manifest_list: self.archive.object_url(&list_path),
            summary: plan::summary(
                change.operation,
                &added,
                &deleted_files,
                &new_list,
                &change.record,
            ),
            schema_id: spec::SCHEMA_ID,
        };
        let next = metadata.with_snapshot(snapshot, previous);
        let next_version = version + 1;
        let path = layout::iceberg_metadata_path(next_version);
        // The commit: exactly one writer creates version N+1.
        let created = self
            .archive
            .put_if_absent(&path, PutPayload::from(next.to_json()))
            .await
            .map_err(self.store_err())?;
        if !created {
            return Ok(None);
        }
        self.step(CommitStep::AfterMetadata)?;
        self.archive
            .put(
                &layout::iceberg_version_hint_path(),
                PutPayload::from(next_version.to_string().into_bytes()),
            )
            .await
            .map_err(self.store_err())?;
        tracing::debug!(version = next_version, snapshot_id, operation = change.operation, record = %change.record, "Iceberg snapshot committed");
        self.expire(next_version, &metadata, &next).await;
        Ok(Some(CommitOutcome::Committed {
            version: next_version,
            snapshot_id,
        }))
    }

    fn manifest_err(&self, url: &str, source: manifest::ManifestError) -> IcebergError {
        IcebergError::Manifest {
            url: url.to_string(),
            source,
        }
    }
}

/// A positive snapshot id no kept snapshot has.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    let taken: BTreeMap<i64, ()> = metadata
        .snapshots
        .iter()
        .map(|s| (s.snapshot_id, ()))
        .collect();
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() as u64 & (i64::MAX as u64)) as i64;
        if id != 0 && !taken.contains_key(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::COMMIT_RECORD_VERSION;
    use object_store::memory::InMemory;

    fn record(segment: u64) -> CommitRecord {
        let ts = Timestamp(1_796_000_400_000_000 + segment as i64);
        let key = DataKey {
            station: crate::message::StationName::new("orders").unwrap(),
            hour: layout::Hour::of(ts),
            first_seq: segment + 1,
            last_seq: segment + 1,
        };
        CommitRecord {
            version: COMMIT_RECORD_VERSION,
            wal_id: "w".into(),
            segment,
            files: vec![CommittedFile {
                key: key.path().to_string(),
                station: "orders".into(),
                rows: 1,
                first_seq: key.first_seq,
                last_seq: key.last_seq,
                min_timestamp: ts.to_rfc3339(),
                max_timestamp: ts.to_rfc3339(),
                bytes: 10,
                sha256: String::new(),
            }],
            committed_at: String::new(),
            strata_version: String::new(),
        }
    }

    #[tokio::test]
    async fn many_appends_keep_the_manifest_list_short_and_every_file() {
        let archive = Archive::from_store(Arc::new(InMemory::new()), Path::default(), "memory://");
        let table = IcebergTable::new(archive.clone());
        let n = plan::MERGE_AFTER as u64 + 30;
        for seg in 0..n {
            let r = record(seg);
            let path = layout::commit_record_path("w", seg);
            table.append_commit(&r, &path, false).await.unwrap();
            // A redo of the same record adds nothing.
            assert_eq!(
                table.append_commit(&r, &path, true).await.unwrap(),
                CommitOutcome::AlreadyDone
            );
        }
        let current = table.current().await.unwrap().unwrap();
        assert_eq!(current.version, n);
        let snap = current.metadata.current_snapshot().unwrap();
        assert_eq!(snap.summary["total-records"], n.to_string());
        let list =
            manifest::read_manifest_list(&table.get_bytes(&snap.manifest_list).await.unwrap())
                .unwrap();
        assert!(
            list.len() <= plan::MERGE_AFTER + 1,
            "{} manifests",
            list.len()
        );
        let mut paths = BTreeSet::new();
        for m in &list {
            let entries = manifest::read_manifest(
                &table.get_bytes(&m.path).await.unwrap(),
                m.sequence_number,
                m.added_snapshot_id,
            )
            .unwrap();
            for e in entries.into_iter().filter(|e| e.status != Status::Deleted) {
                assert!(paths.insert(e.file.path), "a file listed twice");
            }
        }
        assert_eq!(paths.len() as u64, n);
        assert_eq!(current.metadata.snapshots.len(), spec::MAX_SNAPSHOTS);

        // Expired: metadata versions older than the last KEEP_VERSIONS, and
        // the manifest lists of the snapshots no longer kept.
        let files = archive
            .list_all(Some(&layout::iceberg_metadata_prefix()))
            .await
            .unwrap();
        let versions: Vec<u64> = files
            .iter()
            .filter_map(|m| layout::parse_iceberg_metadata_path(&m.location))
            .collect();
        assert_eq!(versions.len() as u64, KEEP_VERSIONS);
        assert_eq!(versions.iter().min(), Some(&(n - KEEP_VERSIONS + 1)));
        let lists = files
            .iter()
            .filter(|m| {
                m.location
                    .filename()
                    .is_some_and(|f| f.starts_with("snap-"))
            })
            .count();
        assert_eq!(lists, spec::MAX_SNAPSHOTS);

        // A hint naming an expired version (or nonsense) still finds the latest.
        for hint in ["3", "not a number"] {
            archive
                .put(
                    &layout::iceberg_version_hint_path(),
                    PutPayload::from(hint.as_bytes().to_vec()),
                )
                .await
                .unwrap();
            assert_eq!(table.current().await.unwrap().unwrap().version, n);
        }
    }

    #[tokio::test]
    async fn an_append_racing_a_rebuild_lists_its_files_once() {
        let archive = Archive::from_store(Arc::new(InMemory::new()), Path::default(), "memory://");
        let table = IcebergTable::new(archive.clone());
        let mut r = record(1);
        r.committed_at = Timestamp::now().to_rfc3339();
        let path = layout::commit_record_path("w", 1);
        archive
            .put(&path, PutPayload::from(r.to_json()))
            .await
            .unwrap();
        // The rebuild lists the record before the compactor appends it.
        let (outcome, files) = table.rebuild().await.unwrap();
        assert!(matches!(
            outcome,
            CommitOutcome::Committed { version: 1, .. }
        ));
        assert_eq!(files, 1);
        assert_eq!(
            table.append_commit(&r, &path, false).await.unwrap(),
            CommitOutcome::AlreadyDone,
            "the rebuild already lists the record's files"
        );
        // A record stored after the rebuild is appended as usual.
        let mut later = record(2);
        later.committed_at = Timestamp(Timestamp::now().micros() + 120_000_000).to_rfc3339();
        let outcome = table
            .append_commit(&later, &layout::commit_record_path("w", 2), false)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            CommitOutcome::Committed { version: 2, .. }
        ));
        let current = table.current().await.unwrap().unwrap();
        let summary = &current.metadata.current_snapshot().unwrap().summary;
        assert_eq!(summary["total-data-files"], "2");
        assert!(plan::is_rebuild(&current.metadata.snapshots[0]));
    }
}
