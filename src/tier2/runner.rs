//! The tier-2 pass: the I/O around [`super::plan`] and [`super::merge`]; the
//! steps and their crash safety are in the module doc of [`super`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::PutPayload;
use tokio::sync::Mutex;

use crate::columnar::ParquetOptions;
use crate::compactor::upload::UploadOptions;
use crate::compactor::FailPointAction;
use crate::config::{CompactionConfig, Tier2Config};
use crate::layout::{self, CommitRecord, DataKey, ReplacementRecord, REPLACEMENT_RECORD_VERSION};
use crate::message::Timestamp;
use crate::replacements::{self, Fetch, Replacement, Replacements};
use crate::store::{Archive, StoreError};

use super::lock::{Tier2Lock, LOCK_TTL};
use super::merge::merge_group;
use super::plan::{plan, FileState, StoredFile};
use super::{
    DeleteReport, MergeReport, ReplaceHook, Tier2Error, Tier2FailPoint, Tier2Observer, Tier2Report,
};

/// Commit records read at once.
const CONCURRENCY: usize = 16;

/// What a pass aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier2Options {
    /// Files below this size are merged into files of at most this size.
    pub target_file_bytes: u64,
    /// How long replaced files stay after their merge.
    pub grace: Duration,
}

impl From<&Tier2Config> for Tier2Options {
    fn from(c: &Tier2Config) -> Self {
        Self {
            target_file_bytes: c.target_file_bytes,
            grace: c.grace,
        }
    }
}

/// Runs tier-2 passes over one archive; see the module doc of [`super`].
#[derive(Debug)]
pub struct Tier2 {
    archive: Archive,
    opts: Tier2Options,
    parquet: ParquetOptions,
    upload: UploadOptions,
    hook: Arc<dyn ReplaceHook>,
    observer: Arc<dyn Tier2Observer>,
    /// Data files named by each commit record read so far: records do not
    /// change once stored, so a long-running process reads each once.
    commits: Mutex<HashMap<Path, Vec<DataKey>>>,
}

impl Tier2 {
    /// Passes over `archive` that encode and upload as `compaction` says.
    pub fn new(
        archive: Archive,
        opts: Tier2Options,
        compaction: &CompactionConfig,
        hook: Arc<dyn ReplaceHook>,
        observer: Arc<dyn Tier2Observer>,
    ) -> Self {
        Self {
            archive,
            opts,
            parquet: compaction.parquet_options(),
            upload: UploadOptions {
                multipart_threshold: compaction.multipart_threshold,
                part_size: compaction.part_size,
                max_concurrency: compaction.upload_concurrency,
            },
            hook,
            observer,
            commits: Mutex::new(HashMap::new()),
        }
    }

    /// One pass: deletes what is due, then merges; see the module doc of [`super`].
    ///
    /// # Errors
    /// [`Tier2Error::Locked`] when another pass runs; otherwise the first
    /// failure, after which the pass stops (what it did stays valid).
    pub async fn pass(&self) -> Result<Tier2Report, Tier2Error> {
        let lock = match Tier2Lock::acquire(&self.archive)
            .await
            .map_err(Tier2Error::store)?
        {
            Ok(lock) => lock,
            Err(held) => {
                return Err(Tier2Error::Locked {
                    owner: held.owner,
                    expires_at: held.expires_at,
                })
            }
        };
        let lock = Arc::new(Mutex::new(lock));
        let renewer = Renewer(tokio::spawn(renew(lock.clone())));
        let result = self.locked_pass(&renewer).await;
        drop(renewer);
        let lock = lock.lock().await.clone();
        lock.release().await;
        result
    }

    async fn locked_pass(&self, renewer: &Renewer) -> Result<Tier2Report, Tier2Error> {
        let lost = || {
            if renewer.0.is_finished() {
                Err(Tier2Error::LockLost)
            } else {
                Ok(())
            }
        };
        let mut report = Tier2Report {
            grace: self.opts.grace,
            ..Tier2Report::default()
        };
        let mut stored = self.stored_files().await?;
        let keys: BTreeSet<DataKey> = stored.keys().cloned().collect();
        let index = replacements::load(&self.archive, None, &keys, Fetch::Relevant)
            .await
            .map_err(Tier2Error::store)?;

        // 1. Replaced files of earlier merges: the hook again (idempotent), then
        //    the deletes whose grace has passed.
        let now = Timestamp::now();
        let pending: Vec<(Replacement, Vec<DataKey>)> = index
            .pending(|k| stored.contains_key(k))
            .into_iter()
            .map(|(r, files)| (r.clone(), files))
            .collect();
        for (r, files) in pending {
            lost()?;
            self.call_hook(&r.record, &r.merged).await?;
            let shown = DeleteReport {
                merged: self.full(&r.merged),
                files: files.iter().map(|k| self.full(k)).collect(),
                delete_after: r.record.delete_after.clone(),
            };
            if r.due(now) {
                self.delete(&files).await?;
                for k in &files {
                    stored.remove(k);
                }
                report.deleted.push(shown);
            } else {
                report.pending.push(shown);
            }
        }

        // 2. Plan from what is stored now.
        let committed = self.committed().await?;
        let files: Vec<StoredFile> = stored
            .iter()
            .map(|(k, &bytes)| StoredFile {
                key: k.clone(),
                bytes,
                state: state(k, &committed, &index, &stored),
            })
            .collect();
        let groups = plan(&files, self.opts.target_file_bytes);

        // 3. Each merge, step by step.
        for group in groups {
            lost()?;
            let merged = merge_group(&self.archive, &group, &self.parquet, self.upload).await?;
            self.failpoint(Tier2FailPoint::AfterUpload)?;

            let committed_at = Timestamp::now();
            let grace = i64::try_from(self.opts.grace.as_micros()).unwrap_or(i64::MAX);
            let record = ReplacementRecord {
                version: REPLACEMENT_RECORD_VERSION,
                merged: merged.merged.clone(),
                replaced: merged.replaced.clone(),
                committed_at: committed_at.to_rfc3339(),
                delete_after: Timestamp(committed_at.micros().saturating_add(grace)).to_rfc3339(),
                strata_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            lost()?;
            // From here on readers read the merged file and skip the replaced ones.
            self.archive
                .put(
                    &layout::replacement_record_path(&group.merged),
                    PutPayload::from(record.to_json()),
                )
                .await
                .map_err(Tier2Error::store)?;
            self.failpoint(Tier2FailPoint::AfterRecord)?;

            // Before any delete: the Iceberg table moves to the merged file.
            self.call_hook(&record, &group.merged).await?;
            self.failpoint(Tier2FailPoint::AfterHook)?;

            let delete_now = self.opts.grace.is_zero();
            if delete_now {
                lost()?;
                self.delete(&group.files).await?;
                self.failpoint(Tier2FailPoint::AfterDelete)?;
            }
            tracing::info!(merged = %merged.merged.key, files = group.files.len(),
                rows = merged.merged.rows, bytes = merged.merged.bytes, "tier-2 merge committed");
            report.merges.push(MergeReport {
                merged: merged.merged.key.clone(),
                rows: merged.merged.rows,
                bytes: merged.merged.bytes,
                replaced_files: group.files.len() as u64,
                replaced_bytes: group.bytes,
                duplicates: merged.duplicates,
                delete_after: record.delete_after.clone(),
                deleted: delete_now,
            });
        }
        Ok(report)
    }

    /// Every data file of the archive with its size.
    async fn stored_files(&self) -> Result<BTreeMap<DataKey, u64>, Tier2Error> {
        // The data files live under `station=…/`; listing from the root also
        // walks `_strata/`, so list each station's directory instead.
        let top = self
            .archive
            .list_with_delimiter(&Path::default())
            .await
            .map_err(Tier2Error::store)?;
        let stations: Vec<Path> = top
            .common_prefixes
            .into_iter()
            .filter(|p| p.as_ref().starts_with("station="))
            .collect();
        let archive = self.archive.clone();
        let listed: Vec<Vec<object_store::ObjectMeta>> = futures::stream::iter(stations)
            .map(move |dir| {
                let archive = archive.clone();
                async move { archive.list_all(Some(&dir)).await }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
            .map_err(Tier2Error::store)?;
        Ok(listed
            .into_iter()
            .flatten()
            .filter_map(|m| DataKey::parse(&m.location).map(|k| (k, m.size)))
            .collect())
    }

    /// Data files named by commit records (each record read once per process).
    async fn committed(&self) -> Result<BTreeSet<DataKey>, Tier2Error> {
        let records = self
            .archive
            .list_all(Some(&layout::commits_prefix()))
            .await
            .map_err(Tier2Error::store)?;
        let mut cache = self.commits.lock().await;
        let new: Vec<Path> = records
            .into_iter()
            .map(|m| m.location)
            .filter(|p| layout::parse_commit_record_path(p).is_some() && !cache.contains_key(p))
            .collect();
        let archive = self.archive.clone();
        let read: Vec<(Path, Vec<DataKey>)> = futures::stream::iter(new)
            .map(move |path| read_commit(archive.clone(), path))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
            .map_err(Tier2Error::store)?;
        cache.extend(read);
        Ok(cache.values().flatten().cloned().collect())
    }

    async fn call_hook(
        &self,
        record: &ReplacementRecord,
        merged: &DataKey,
    ) -> Result<(), Tier2Error> {
        self.hook
            .replace(record)
            .await
            .map_err(|e| Tier2Error::Hook {
                merged: self.full(merged),
                reason: e.to_string(),
            })
    }

    /// Deletes replaced files; one already gone is not an error.
    async fn delete(&self, files: &[DataKey]) -> Result<(), Tier2Error> {
        let archive = self.archive.clone();
        futures::stream::iter(files.to_vec())
            .map(move |k| {
                let archive = archive.clone();
                async move {
                    match archive.delete(&k.path()).await {
                        Err(e) if !e.is_not_found() => Err(e),
                        _ => Ok(()),
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map_err(Tier2Error::store)?;
        Ok(())
    }

    fn failpoint(&self, point: Tier2FailPoint) -> Result<(), Tier2Error> {
        match self.observer.at_fail_point(point) {
            FailPointAction::Continue => Ok(()),
            FailPointAction::Stop => Err(Tier2Error::FailPoint(point)),
        }
    }

    fn full(&self, key: &DataKey) -> String {
        self.archive.key(&key.path()).to_string()
    }
}

/// The data files a commit record names (none when it is unreadable).
async fn read_commit(archive: Archive, path: Path) -> Result<(Path, Vec<DataKey>), StoreError> {
    let bytes = archive.get(&path).await?;
    let files = match CommitRecord::from_json(&bytes) {
        Ok(r) => r
            .files
            .iter()
            .filter_map(|f| {
                let rel = archive.relative(&Path::from(f.key.as_str()))?;
                DataKey::parse(&rel)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(key = %archive.key(&path), error = %e,
                "unreadable commit record: its files are not merged");
            Vec::new()
        }
    };
    Ok((path, files))
}

/// What a stored file is to the planner.
fn state(
    key: &DataKey,
    committed: &BTreeSet<DataKey>,
    index: &Replacements,
    stored: &BTreeMap<DataKey, u64>,
) -> FileState {
    let is_stored = |k: &DataKey| stored.contains_key(k);
    if index.covering(key, is_stored).is_some() {
        return FileState::Replaced;
    }
    if index.is_merged(key) {
        let waiting = index
            .record(key)
            .is_some_and(|r| r.replaced.iter().any(|k| k != key && is_stored(k)));
        return if waiting {
            FileState::Held
        } else {
            FileState::Committed
        };
    }
    if committed.contains(key) {
        FileState::Committed
    } else {
        FileState::Uncommitted
    }
}

/// The task renewing the lock; stopped when the pass ends, also when the
/// pass is dropped half-way (a stopping `strata run`).
struct Renewer(tokio::task::JoinHandle<()>);

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lock every third of its life; returns (ending the pass at its
/// next step) when the lock is lost or cannot be renewed in time.
async fn renew(lock: Arc<Mutex<Tier2Lock>>) {
    let every = LOCK_TTL / 3;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let renewed = lock.lock().await.renew().await;
        match renewed {
            Ok(true) => failing_since = None,
            Ok(false) => {
                tracing::warn!("the tier-2 lock was taken by another pass; stopping");
                return;
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                tracing::warn!(error = %e, "cannot renew the tier-2 lock");
                if since.elapsed() >= every {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use object_store::memory::InMemory;

    use super::*;
    use crate::columnar::encode_file;
    use crate::layout::{CommittedFile, Hour, COMMIT_RECORD_VERSION};
    use crate::message::{Message, StationName};
    use crate::tier2::NoopTier2Observer;

    /// An archive of `files` committed files of 3 messages each, one hour.
    async fn archive_of(files: u64) -> (Archive, Vec<DataKey>) {
        let archive = Archive::from_store(Arc::new(InMemory::new()), Path::default(), "memory://");
        let station = StationName::new("s").unwrap();
        let mut keys = Vec::new();
        for f in 0..files {
            let msgs: Vec<Message> = (f * 3 + 1..=f * 3 + 3)
                .map(|seq| Message {
                    station: station.clone(),
                    seq,
                    timestamp: Timestamp(seq as i64),
                    id: None,
                    subject: None,
                    headers: Vec::new(),
                    payload: Bytes::from(format!("m{seq}")),
                })
                .collect();
            let (bytes, summary) =
                encode_file(&station, &msgs, &ParquetOptions::default()).unwrap();
            let key = DataKey {
                station: station.clone(),
                hour: Hour::of(Timestamp(0)),
                first_seq: summary.first_seq,
                last_seq: summary.last_seq,
            };
            let size = bytes.len() as u64;
            archive.put(&key.path(), bytes.into()).await.unwrap();
            let record = CommitRecord {
                version: COMMIT_RECORD_VERSION,
                wal_id: "w".into(),
                segment: f,
                files: vec![CommittedFile::new(
                    &key.path(),
                    &key,
                    &summary,
                    size,
                    "00".into(),
                )],
                committed_at: Timestamp(0).to_rfc3339(),
                strata_version: "test".into(),
            };
            archive
                .put(&layout::commit_record_path("w", f), record.to_json().into())
                .await
                .unwrap();
            keys.push(key);
        }
        (archive, keys)
    }

    /// Fails its first `fail` calls; checks at every call that no replaced
    /// file is deleted yet.
    #[derive(Debug)]
    struct Hook {
        archive: Archive,
        calls: AtomicUsize,
        fail: usize,
    }

    #[async_trait::async_trait]
    impl ReplaceHook for Hook {
        async fn replace(
            &self,
            record: &ReplacementRecord,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            for f in &record.replaced {
                let still = self.archive.head(&Path::from(f.key.as_str())).await;
                assert!(still.is_ok(), "{} deleted before the hook ran", f.key);
            }
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                return Err("the table is not reachable".into());
            }
            Ok(())
        }
    }

    fn tier2(archive: &Archive, hook: Arc<Hook>) -> Tier2 {
        Tier2::new(
            archive.clone(),
            Tier2Options {
                target_file_bytes: 1 << 20,
                grace: Duration::ZERO,
            },
            &CompactionConfig::default(),
            hook,
            Arc::new(NoopTier2Observer),
        )
    }

    #[tokio::test]
    async fn the_hook_runs_before_any_delete_and_again_after_it_failed() {
        let (archive, keys) = archive_of(4).await;
        let hook = Arc::new(Hook {
            archive: archive.clone(),
            calls: AtomicUsize::new(0),
            fail: 1,
        });
        let err = tier2(&archive, hook.clone()).pass().await.unwrap_err();
        assert!(matches!(err, Tier2Error::Hook { .. }), "{err}");
        for k in &keys {
            archive.head(&k.path()).await.expect("nothing deleted");
        }
        let merged = DataKey {
            first_seq: 1,
            last_seq: 12,
            ..keys[0].clone()
        };
        let record = archive
            .get(&layout::replacement_record_path(&merged))
            .await
            .expect("the record is stored before the hook");
        assert_eq!(
            ReplacementRecord::from_json(&record)
                .unwrap()
                .replaced
                .len(),
            4
        );
        assert!(
            archive
                .get_if_exists(&crate::layout::tier2_lock_path())
                .await
                .unwrap()
                .is_none(),
            "the lock is released after a failed pass"
        );

        // The next pass calls the hook for the pending record, then deletes.
        let report = tier2(&archive, hook.clone()).pass().await.unwrap();
        assert_eq!(hook.calls.load(Ordering::SeqCst), 2);
        assert_eq!(report.deleted[0].files.len(), 4, "{report}");
        assert!(report.merges.is_empty(), "{report}");
        for k in &keys {
            assert!(archive.head(&k.path()).await.unwrap_err().is_not_found());
        }
        archive
            .head(&merged.path())
            .await
            .expect("the merged file stays");

        // Nothing left to do: no merge, no delete, no hook call.
        let report = tier2(&archive, hook.clone()).pass().await.unwrap();
        assert!(
            report.merges.is_empty() && report.deleted.is_empty(),
            "{report}"
        );
        assert_eq!(hook.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pass_refuses_to_run_beside_another() {
        let (archive, _) = archive_of(2).await;
        let held = crate::tier2::lock::Tier2Lock::acquire(&archive)
            .await
            .unwrap()
            .unwrap();
        let hook = Arc::new(Hook {
            archive: archive.clone(),
            calls: AtomicUsize::new(0),
            fail: 0,
        });
        let err = tier2(&archive, hook).pass().await.unwrap_err();
        assert!(matches!(err, Tier2Error::Locked { .. }), "{err}");
        held.release().await;
    }
}
