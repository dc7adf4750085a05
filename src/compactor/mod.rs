//! Compaction: sealed WAL segments become Parquet files in the archive, then a
//! commit record, then the segment is deleted.
//!
//! For each sealed segment, oldest first:
//! 1. read it from the WAL (a corrupt segment is set aside, reported, never deleted);
//! 2. plan its files ([`plan`]: duplicates dropped, one file per station and UTC hour);
//! 3. encode and upload each file under a key derived only from its content
//!    ([`worker`], [`upload`]: one `put`, or a multipart upload above the threshold);
//! 4. store the commit record `_strata/commits/<wal_id>-<segment>.json`;
//! 5. append the record's files to the Iceberg table as one snapshot
//!    ([`crate::iceberg`], when `[iceberg] enabled`);
//! 6. delete the segment from the WAL.
//!
//! A crash between any two steps leaves the segment in the WAL; the rerun
//! rewrites the same keys (never a second copy) or, when the commit record is
//! already stored, appends it to the Iceberg table (a snapshot of the record
//! already there is found and nothing is added) and deletes the segment. So
//! every message ends up in the archive, and in the table, exactly once.
//!
//! In a cluster ([`Compactor::with_upload_claims`]) step 3 first claims the
//! segment's stations and leaves out rows another process already archived
//! ([`claims`]): after a takeover two WALs may hold the same `(station, seq)`.

pub mod claims;
pub mod pace;
pub mod plan;
pub mod upload;
mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use crate::columnar::{ColumnarError, ParquetOptions};
use crate::config::CompactionConfig;
use crate::health::PERMANENT_RETRY;
use crate::iceberg::{CommitStep, IcebergError, IcebergTable};
use crate::layout::{self, CommitRecord, CommittedFile, DataKey, COMMIT_RECORD_VERSION};
use crate::message::{StationName, Timestamp};
use crate::replacements;
use crate::store::{Archive, StoreError};
use crate::wal::{SealedSegment, SegmentId, Wal, WalError};

use self::claims::UploadClaims;
use self::upload::UploadOptions;
use self::worker::{IndexAhead, ReadBuffers, Reading, WriteError, WrittenFile};

/// How often the background loop looks for sealed segments.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// First pause after a failed pass; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between attempts while the store keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Receives the compactor's figures; the process wires it to its metrics.
/// Every method has a no-op default.
pub trait CompactionObserver: Send + Sync + fmt::Debug {
    /// A segment's compaction failed (usually a store error); it stays in the WAL.
    fn inc_upload_error(&self) {}
    /// The background loop tries again after a failed pass.
    fn inc_upload_retry(&self) {}
    /// A segment was compacted: how long it took, bytes uploaded, rows written.
    fn observe_compaction(&self, duration: Duration, bytes: u64, rows: u64) {
        let _ = (duration, bytes, rows);
    }
    /// Age in seconds of the oldest message in a sealed segment not yet
    /// uploaded (0 when none waits).
    fn set_oldest_unuploaded_age(&self, secs: f64) {
        let _ = secs;
    }
    /// A file of `rows` messages of `station`, up to `last_seq`, is archived
    /// (its segment committed and removed from the WAL).
    fn station_archived(&self, station: &StationName, rows: u64, last_seq: u64) {
        let _ = (station, rows, last_seq);
    }
    /// A corrupt segment was set aside instead of compacted.
    fn inc_segment_set_aside(&self) {}
    /// `rows` rows of `station` were left out of a segment's files because
    /// another process had already archived them (cluster).
    fn duplicates_dropped(&self, station: &StationName, rows: u64) {
        let _ = (station, rows);
    }
    /// A compaction pass failed (see [`CompactionError::is_permanent`]).
    fn compaction_failed(&self, error: &CompactionError) {
        let _ = error;
    }
    /// A compaction pass succeeded: every segment sealed when it started is
    /// archived or set aside.
    fn compaction_succeeded(&self) {}
    /// Segment `segment`'s compaction reached `point`. Crash tests install an
    /// observer that stops (or aborts the process) here; the default goes on.
    fn at_fail_point(&self, point: FailPoint, segment: u64) -> FailPointAction {
        let _ = (point, segment);
        FailPointAction::Continue
    }
}

/// What a [`CompactionObserver`] decides at a [`FailPoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPointAction {
    /// Go on compacting.
    Continue,
    /// Stop with [`CompactionError::FailPoint`]; the segment stays in the WAL.
    Stop,
}

/// A [`CompactionObserver`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl CompactionObserver for NoopObserver {}

/// A point in a segment's compaction where crash tests stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailPoint {
    /// Every file of the segment is uploaded; no commit record yet.
    AfterUpload,
    /// The commit record is stored; the segment is not yet deleted.
    AfterCommit,
    /// The Iceberg snapshot's manifests are stored; no new metadata version.
    IcebergAfterManifest,
    /// The Iceberg metadata version is stored; `version-hint.text` is not updated.
    IcebergAfterMetadata,
}

impl FailPoint {
    /// The point's name (`after-upload`, `after-commit`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailPoint::AfterUpload => "after-upload",
            FailPoint::AfterCommit => "after-commit",
            FailPoint::IcebergAfterManifest => "iceberg-after-manifest",
            FailPoint::IcebergAfterMetadata => "iceberg-after-metadata",
        }
    }
}

impl From<CommitStep> for FailPoint {
    fn from(step: CommitStep) -> Self {
        match step {
            CommitStep::AfterManifest => FailPoint::IcebergAfterManifest,
            CommitStep::AfterMetadata => FailPoint::IcebergAfterMetadata,
        }
    }
}

impl fmt::Display for FailPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "after-upload" => Ok(FailPoint::AfterUpload),
            "after-commit" => Ok(FailPoint::AfterCommit),
            "iceberg-after-manifest" => Ok(FailPoint::IcebergAfterManifest),
            "iceberg-after-metadata" => Ok(FailPoint::IcebergAfterMetadata),
            other => Err(format!(
                "unknown failpoint {other:?}: use after-upload, after-commit, \
                 iceberg-after-manifest or iceberg-after-metadata"
            )),
        }
    }
}

/// Errors of a compaction; the segment concerned stays in the WAL and is retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactionError {
    /// The WAL could not seal its active segment (flush).
    #[error("cannot seal the active WAL segment: {0}; nothing was compacted")]
    Seal(#[source] WalError),
    /// The WAL could not read or delete a segment.
    #[error(
        "WAL segment {segment}: {source}; the segment stays in the WAL and compaction retries it"
    )]
    Wal {
        /// The segment.
        segment: u64,
        /// What the WAL said.
        source: WalError,
    },
    /// Encoding Parquet failed.
    #[error("cannot encode segment {segment} as Parquet: {source}; the segment stays in the WAL (please report this as a bug)")]
    Encode {
        /// The segment.
        segment: u64,
        /// What the encoder said.
        source: ColumnarError,
    },
    /// The object store refused or failed an operation.
    #[error("segment {segment}: {source}; the segment stays in the WAL and compaction retries it")]
    Store {
        /// The segment.
        segment: u64,
        /// The failed operation, with what to check.
        source: Box<StoreError>,
    },
    /// An armed failpoint stopped the compaction (tests only).
    #[error(
        "compaction of segment {segment} stopped at failpoint {point} (crash injection for tests)"
    )]
    FailPoint {
        /// The segment.
        segment: u64,
        /// Where it stopped.
        point: FailPoint,
    },
    /// In a cluster: the segment's stations could not be claimed for upload,
    /// or a claim lapsed before the files were stored.
    #[error("segment {segment}: {reason}; the segment stays in the WAL and compaction retries it")]
    Claim {
        /// The segment.
        segment: u64,
        /// What happened.
        reason: String,
    },
    /// The Iceberg table could not take the segment's snapshot; the commit
    /// record is stored, and the next pass appends it.
    #[error("segment {segment}: {source}; the segment stays in the WAL and compaction retries the Iceberg commit")]
    Iceberg {
        /// The segment.
        segment: u64,
        /// What the table said.
        source: Box<IcebergError>,
    },
    /// Something that should not happen; the segment stays in the WAL.
    #[error("compaction of segment {segment} failed: {reason} (please report this as a bug)")]
    Internal {
        /// The segment.
        segment: u64,
        /// What went wrong.
        reason: String,
    },
}

/// One file written by a compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The object key.
    pub key: String,
    /// Messages in the file.
    pub rows: u64,
    /// Object size.
    pub bytes: u64,
}

/// One segment compacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentReport {
    /// The segment number.
    pub segment: u64,
    /// Messages read from the segment (before dropping duplicates).
    pub messages: u64,
    /// Messages dropped because their (station, seq) appeared earlier in the segment.
    pub duplicates: u64,
    /// The segment's files.
    pub files: Vec<FileReport>,
    /// The commit record's key.
    pub commit_record: String,
    /// True when an earlier run had already stored the commit record, so this
    /// run only deleted the segment (then `messages` counts the committed rows
    /// and `duplicates` is 0).
    pub already_committed: bool,
}

/// A corrupt segment left on disk instead of compacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAsideReport {
    /// The segment number.
    pub segment: u64,
    /// Why it was set aside.
    pub reason: String,
}

/// What a compaction did; printed by `strata flush`, returned as JSON by the
/// HTTP flush endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionReport {
    /// Segments compacted (and deleted from the WAL), oldest first.
    pub segments: Vec<SegmentReport>,
    /// Corrupt segments set aside.
    pub set_aside: Vec<SetAsideReport>,
}

impl CompactionReport {
    /// Files written, over all segments.
    pub fn files(&self) -> impl Iterator<Item = &FileReport> {
        self.segments.iter().flat_map(|s| s.files.iter())
    }

    /// Rows written, over all files.
    pub fn rows(&self) -> u64 {
        self.files().map(|f| f.rows).sum()
    }

    /// Bytes uploaded, over all files.
    pub fn bytes(&self) -> u64 {
        self.files().map(|f| f.bytes).sum()
    }
}

impl fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() && self.set_aside.is_empty() {
            return writeln!(f, "nothing to compact: no sealed segment is waiting");
        }
        writeln!(
            f,
            "compacted {} segment(s) into {} file(s): {} rows, {}",
            self.segments.len(),
            self.files().count(),
            self.rows(),
            human_bytes(self.bytes())
        )?;
        for s in &self.segments {
            let note = if s.already_committed {
                " (already committed by an earlier run)"
            } else {
                ""
            };
            writeln!(
                f,
                "  segment {}: {} messages, {} duplicates dropped{note}",
                s.segment, s.messages, s.duplicates
            )?;
            for file in &s.files {
                writeln!(
                    f,
                    "    {}  {} rows  {}",
                    file.key,
                    file.rows,
                    human_bytes(file.bytes)
                )?;
            }
        }
        for s in &self.set_aside {
            writeln!(
                f,
                "  segment {} SET ASIDE (not deleted, not archived): {}",
                s.segment, s.reason
            )?;
        }
        Ok(())
    }
}

pub(crate) use crate::display::human_bytes;

/// State shared by [`Compactor::flush`] and the background loop; holding its
/// lock is what keeps two compactions of one segment from running at once.
#[derive(Debug, Default)]
struct State {
    /// Corrupt segments the WAL could not move aside: skipped so they are
    /// not read again on every pass.
    set_aside: BTreeMap<SegmentId, String>,
}

impl CompactionError {
    /// Whether retrying cannot help until the configuration or the store
    /// changes: the store refused the credentials, has no such bucket, is in
    /// another region, or a `file://` folder may not be written.
    pub fn is_permanent(&self) -> bool {
        match self {
            CompactionError::Store { source, .. } => source.is_permanent(),
            CompactionError::Iceberg { source, .. } => match source.as_ref() {
                IcebergError::Store(e) => e.is_permanent(),
                IcebergError::RestCatalog { .. } => true,
                _ => false,
            },
            _ => false,
        }
    }
}

/// Turns sealed WAL segments into committed archive files; see the module doc.
#[derive(Debug)]
pub struct Compactor {
    wal: Wal,
    archive: Archive,
    parquet: ParquetOptions,
    upload: UploadOptions,
    observer: Arc<dyn CompactionObserver>,
    failpoint: Option<FailPoint>,
    claims: Option<Arc<dyn UploadClaims>>,
    iceberg: Option<IcebergTable>,
    /// `[compaction] defer_while_busy` (see [`pace`]).
    defer_while_busy: Duration,
    state: Mutex<State>,
}

impl Compactor {
    /// A compactor of `wal`'s sealed segments into `archive`, reporting to
    /// `observer`.
    pub fn new(
        wal: Wal,
        archive: Archive,
        cfg: &CompactionConfig,
        observer: Arc<dyn CompactionObserver>,
    ) -> Compactor {
        Compactor {
            wal,
            archive,
            parquet: ParquetOptions {
                zstd_level: cfg.zstd_level,
                row_group_rows: cfg.row_group_rows,
                row_group_bytes: cfg.row_group_bytes,
            },
            upload: UploadOptions {
                multipart_threshold: cfg.multipart_threshold,
                part_size: cfg.part_size,
                max_concurrency: cfg.upload_concurrency,
            },
            observer,
            failpoint: None,
            claims: None,
            iceberg: None,
            defer_while_busy: cfg.defer_while_busy,
            state: Mutex::new(State::default()),
        }
    }

    /// Arms `point` (or disarms with `None`) so that compaction stops there
    /// with [`CompactionError::FailPoint`]: for in-process tests.
    pub fn with_failpoint(mut self, point: Option<FailPoint>) -> Self {
        self.failpoint = point;
        self
    }

    /// Cluster mode: claim each segment's stations before uploading and
    /// leave out rows another process already archived (see [`claims`]).
    pub fn with_upload_claims(mut self, claims: Arc<dyn UploadClaims>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Appends every committed segment to `table` (`[iceberg] enabled`).
    pub fn with_iceberg(mut self, table: Option<IcebergTable>) -> Self {
        self.iceberg = table;
        self
    }

    /// Overrides how uploads are split (part size, parts in flight).
    pub fn with_upload_options(mut self, opts: UploadOptions) -> Self {
        self.upload = opts;
        self
    }

    /// The WAL compacted.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// The archive written.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Compacts every segment sealed now, oldest first.
    ///
    /// # Errors
    /// The first segment that could not be compacted; it and every younger
    /// segment stay in the WAL. Corrupt segments are not errors: they are set
    /// aside and listed in the report.
    pub async fn compact_sealed(&self) -> Result<CompactionReport, CompactionError> {
        self.compact_pass(None).await
    }

    /// Seals the active segment, then compacts everything sealed.
    ///
    /// # Errors
    /// [`CompactionError::Seal`] when the WAL cannot seal, else as
    /// [`Compactor::compact_sealed`].
    pub async fn flush(&self) -> Result<CompactionReport, CompactionError> {
        let wal = self.wal.clone();
        let sealed = tokio::task::spawn_blocking(move || wal.seal())
            .await
            .unwrap_or_else(|e| {
                Err(WalError::Io {
                    path: self.wal.dir().to_path_buf(),
                    source: std::io::Error::other(format!("the sealing thread failed: {e}")),
                })
            });
        sealed.map_err(CompactionError::Seal)?;
        self.compact_sealed().await
    }

    /// The background loop: compacts whenever segments are sealed (polling
    /// every 500 ms; while messages keep arriving, a few sealed segments wait
    /// a while, see [`pace`]), backing off exponentially up to 30 s while
    /// compaction fails, so the WAL grows and its `max_disk_bytes` pushes back
    /// on sources.
    /// An error retrying cannot fix ([`CompactionError::is_permanent`]: bad
    /// credentials, no such bucket) is retried only every
    /// [`PERMANENT_RETRY`], not hammered.
    /// Returns once `shutdown` turns true (or its sender is gone), after
    /// finishing the segment in progress.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut pace = pace::Pace::new(self.defer_while_busy);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let pause = if failures == 0 && pace.wait(Instant::now(), self.wal_look()) {
                POLL_INTERVAL
            } else {
                self.attempt(&shutdown, &mut failures).await
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::debug!("compactor stopped");
    }

    /// One pass of the background loop, logged; returns how long to wait
    /// before the next one (longer while passes fail, counted in `failures`).
    async fn attempt(&self, shutdown: &watch::Receiver<bool>, failures: &mut u32) -> Duration {
        if *failures > 0 {
            self.observer.inc_upload_retry();
        }
        match self.compact_pass(Some(shutdown)).await {
            Ok(report) => {
                if *failures > 0 {
                    tracing::info!(failures = *failures, "compaction recovered");
                }
                if !report.segments.is_empty() {
                    tracing::info!(
                        segments = report.segments.len(),
                        files = report.files().count(),
                        rows = report.rows(),
                        bytes = report.bytes(),
                        "compacted"
                    );
                }
                *failures = 0;
                POLL_INTERVAL
            }
            Err(e) => {
                *failures = failures.saturating_add(1);
                let pause = if e.is_permanent() {
                    PERMANENT_RETRY
                } else {
                    backoff(*failures)
                };
                tracing::warn!(error = %e, retry_in = ?pause, permanent = e.is_permanent(), "compaction failed");
                pause
            }
        }
    }

    /// What [`pace::Pace`] looks at.
    fn wal_look(&self) -> pace::WalLook {
        let stats = self.wal.stats();
        pace::WalLook {
            appends: stats.appends,
            disk_bytes: stats.disk_bytes,
            max_disk_bytes: self.wal.max_disk_bytes(),
            sealed_segments: stats.sealed_segments,
        }
    }

    /// One pass over the sealed segments; stops early when `stop` turns true.
    ///
    /// Two segments are in flight at once: while one is committed (commit
    /// record, Iceberg append, deletion from the WAL: mostly waiting on the
    /// store and on fsync), the next one is read, encoded and stored. Commits
    /// still happen one segment after the other, in segment order, and a
    /// segment is deleted only after its own commit record is durable.
    async fn compact_pass(
        &self,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<CompactionReport, CompactionError> {
        let mut state = self.state.lock().await;
        let mut report = CompactionReport::default();
        let result = async {
            // A segment whose files are stored, waiting for its commit.
            let mut stored: Option<(SealedSegment, Stored)> = None;
            let buffers = ReadBuffers::default();
            let todo: Vec<SealedSegment> = self
                .wal
                .sealed()
                .into_iter()
                .filter(|s| !state.set_aside.contains_key(&s.id))
                .collect();
            // The pass's first two segments are indexed at once, side by side
            // (one core each, nothing encoding yet), the first while its
            // commit record is looked up. Later ones are indexed in their
            // turn: ahead of time they would only take cores from the
            // encoding and add to its peak memory.
            let mut ahead: Vec<IndexAhead> = todo
                .iter()
                .take(2)
                .filter_map(|seg| IndexAhead::start(&self.wal, seg.id))
                .collect();
            for seg in &todo {
                if stop.is_some_and(|s| *s.borrow()) {
                    break;
                }
                let indexed = ahead
                    .iter()
                    .position(|a| a.id() == seg.id)
                    .map(|at| ahead.swap_remove(at));
                let seg = seg.clone();
                let prepared = match stored.take() {
                    None => self.store_segment(&seg, indexed, &buffers).await,
                    Some((prev, files)) => {
                        let (committed, prepared) = tokio::join!(
                            self.commit_segment(&prev, files),
                            self.store_segment(&seg, indexed, &buffers)
                        );
                        report.segments.push(committed?);
                        prepared
                    }
                };
                match prepared? {
                    Prepared::Stored(files) => stored = Some((seg, files)),
                    Prepared::Corrupt(reason) => {
                        if !self.set_aside(seg.id, &reason).await {
                            state.set_aside.insert(seg.id, reason.clone());
                        }
                        report.set_aside.push(SetAsideReport {
                            segment: seg.id.0,
                            reason,
                        });
                    }
                }
            }
            if let Some((seg, files)) = stored {
                report
                    .segments
                    .push(self.commit_segment(&seg, files).await?);
            }
            Ok(())
        }
        .await;
        self.report_oldest();
        match &result {
            Ok(()) => self.observer.compaction_succeeded(),
            Err(CompactionError::FailPoint { .. }) => {}
            Err(e) => {
                self.observer.inc_upload_error();
                self.observer.compaction_failed(e);
            }
        }
        result.map(|()| report)
    }

    /// Reports the age of the oldest message waiting in a sealed segment.
    fn report_oldest(&self) {
        let age = self
            .wal
            .oldest_unuploaded()
            .map_or(0.0, |t| Timestamp::now().seconds_since(t));
        self.observer.set_oldest_unuploaded_age(age);
    }

    /// Moves a corrupt segment out of compaction's way, never deleting it,
    /// and says so. Returns whether the WAL took it off its sealed list.
    async fn set_aside(&self, id: SegmentId, reason: &str) -> bool {
        self.observer.inc_segment_set_aside();
        let wal = self.wal.clone();
        let why = reason.to_string();
        let moved = tokio::task::spawn_blocking(move || wal.set_aside(id, &why)).await;
        match moved {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                // The file stays where it is; this process skips it from now on.
                tracing::error!(segment = id.0, wal = %self.wal.dir().display(), reason, error = %e,
                    "corrupt WAL segment could not be moved aside: it stays in place, is skipped \
                     by compaction and is not deleted; inspect it with `strata wal inspect`");
                false
            }
            Err(e) => {
                tracing::error!(segment = id.0, error = %e, "setting a corrupt segment aside failed");
                false
            }
        }
    }

    /// Stops at `point` when it is armed or the observer says so.
    fn failpoint(&self, point: FailPoint, segment: u64) -> Result<(), CompactionError> {
        let armed = self.failpoint == Some(point);
        if armed || self.observer.at_fail_point(point, segment) == FailPointAction::Stop {
            return Err(CompactionError::FailPoint { segment, point });
        }
        Ok(())
    }

    /// Reads, encodes and stores segment `seg`'s files, unless an earlier run
    /// committed it already; a corrupt segment is reported, not stored.
    async fn store_segment(
        &self,
        seg: &SealedSegment,
        indexed: Option<IndexAhead>,
        buffers: &ReadBuffers,
    ) -> Result<Prepared, CompactionError> {
        let started = Instant::now();
        let segment = seg.id.0;
        let commit_path = layout::commit_record_path(self.wal.wal_id(), segment);
        // A commit record means an earlier run got as far as committing and
        // crashed before deleting: uploading again would only rewrite the same
        // objects, so just finish the job.
        if let Some(record) = self.stored_commit(&commit_path, segment).await? {
            return Ok(Prepared::Stored(Stored::Committed(record)));
        }

        let done = worker::compact_files(
            self.wal.clone(),
            seg.id,
            Reading {
                ahead: indexed,
                buffers: buffers.clone(),
            },
            &self.archive,
            &self.parquet,
            self.upload,
            self.claims.as_deref(),
        )
        .await;
        let done = match done {
            Ok(done) => done,
            Err(WriteError::Read(e @ WalError::Corrupt { .. })) => {
                return Ok(Prepared::Corrupt(e.to_string()))
            }
            Err(e) => return Err(write_failed(segment, e)),
        };
        for (station, rows) in &done.dropped {
            tracing::info!(
                segment, station = %station, rows,
                "left out rows another Strata process already archived (redelivered after a takeover)"
            );
            self.observer.duplicates_dropped(station, *rows);
        }
        if done.duplicates > 0 {
            tracing::info!(
                segment,
                duplicates = done.duplicates,
                "dropped duplicate (station, seq) messages"
            );
        }
        Ok(Prepared::Stored(Stored::Uploaded { started, done }))
    }

    /// Commits segment `seg` whose files are stored: its commit record, the
    /// Iceberg append, then its deletion from the WAL.
    async fn commit_segment(
        &self,
        seg: &SealedSegment,
        stored: Stored,
    ) -> Result<SegmentReport, CompactionError> {
        let segment = seg.id.0;
        let archive = &self.archive;
        let commit_path = layout::commit_record_path(self.wal.wal_id(), segment);
        let (started, done) = match stored {
            Stored::Committed(record) => {
                self.append_to_table(&record, &commit_path, segment, true)
                    .await?;
                self.remove_segment(seg.id).await?;
                return Ok(SegmentReport {
                    segment,
                    messages: record.files.iter().map(|f| f.rows).sum(),
                    duplicates: 0,
                    files: record
                        .files
                        .iter()
                        .map(|f| FileReport {
                            key: f.key.clone(),
                            rows: f.rows,
                            bytes: f.bytes,
                        })
                        .collect(),
                    commit_record: archive.key(&commit_path).to_string(),
                    already_committed: true,
                });
            }
            Stored::Uploaded { started, mut done } => {
                // The last uploads may still be completing.
                done.stored().await.map_err(|e| write_failed(segment, e))?;
                (started, done)
            }
        };
        let written = done.files();
        self.failpoint(FailPoint::AfterUpload, segment)?;

        let record = commit_record(archive, self.wal.wal_id(), segment, written);
        let json = record.to_json();
        // The commit record is the proof that every file of the segment is
        // stored; only after it is durable may the segment go.
        archive
            .put(&commit_path, PutPayload::from(json))
            .await
            .map_err(|e| CompactionError::Store {
                segment,
                source: Box::new(e),
            })?;
        self.failpoint(FailPoint::AfterCommit, segment)?;

        self.append_to_table(&record, &commit_path, segment, false)
            .await?;
        self.remove_segment(seg.id).await?;

        let rows: u64 = written.iter().map(|f| f.summary.rows).sum();
        let bytes: u64 = written.iter().map(|f| f.bytes).sum();
        self.observer
            .observe_compaction(started.elapsed(), bytes, rows);
        for f in written {
            self.observer
                .station_archived(&f.key.station, f.summary.rows, f.summary.last_seq);
        }
        tracing::debug!(segment, files = written.len(), rows, bytes, elapsed = ?started.elapsed(), "segment compacted");
        Ok(SegmentReport {
            segment,
            messages: done.read,
            duplicates: done.duplicates,
            files: written
                .iter()
                .map(|f| FileReport {
                    key: archive.key(&f.key.path()).to_string(),
                    rows: f.summary.rows,
                    bytes: f.bytes,
                })
                .collect(),
            commit_record: archive.key(&commit_path).to_string(),
            already_committed: false,
        })
    }

    /// The segment's commit record, when it is stored and every file it lists
    /// is present with its recorded size, or was replaced by a stored tier-2
    /// merged file. Anything less means the segment must be compacted (again).
    async fn stored_commit(
        &self,
        path: &Path,
        segment: u64,
    ) -> Result<Option<CommitRecord>, CompactionError> {
        let archive = &self.archive;
        let store_err = |e| CompactionError::Store {
            segment,
            source: Box::new(e),
        };
        let Some(bytes) = archive.get_if_exists(path).await.map_err(store_err)? else {
            return Ok(None);
        };
        let shown = archive.key(path);
        let record = match CommitRecord::from_json(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %shown, error = %e, "unreadable commit record: compacting the segment again, which rewrites it");
                return Ok(None);
            }
        };
        if record.segment != segment || record.wal_id != self.wal.wal_id() {
            tracing::warn!(path = %shown, "commit record names another segment: compacting again");
            return Ok(None);
        }
        for file in &record.files {
            // Recorded with the prefix (the full key); the archive names it without.
            let full = Path::from(file.key.as_str());
            let Some(key) = archive.relative(&full) else {
                tracing::warn!(key = %full, "committed file is outside the archive's prefix: compacting the segment again");
                return Ok(None);
            };
            match archive.head(&key).await {
                Ok(meta) if meta.size == file.bytes => {}
                Ok(meta) => {
                    tracing::warn!(key = %full, recorded = file.bytes, stored = meta.size,
                        "committed file changed size: compacting the segment again");
                    return Ok(None);
                }
                Err(e) if e.is_not_found() => {
                    // Tier-2 compaction may have merged it and deleted it: then
                    // the merged file holds its rows and uploading it again would
                    // store them twice.
                    let merged = match DataKey::parse(&key) {
                        Some(k) => replacements::covering_in_store(archive, &k)
                            .await
                            .map_err(store_err)?,
                        None => None,
                    };
                    if let Some(m) = merged {
                        tracing::debug!(key = %full, merged = %archive.key(&m.path()),
                            "committed file was replaced by a tier-2 merge");
                        continue;
                    }
                    tracing::warn!(key = %full, "committed file is missing: compacting the segment again");
                    return Ok(None);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(Some(record))
    }

    /// Appends a stored commit record to the Iceberg table, if there is one:
    /// after the record (the proof) and before the segment goes, so a crash
    /// in between leaves the append to the redo. `redo`: an earlier run
    /// stored the record, and may have appended some of it.
    async fn append_to_table(
        &self,
        record: &CommitRecord,
        path: &Path,
        segment: u64,
        redo: bool,
    ) -> Result<(), CompactionError> {
        let Some(table) = &self.iceberg else {
            return Ok(());
        };
        let armed = self.failpoint;
        let observer = Arc::clone(&self.observer);
        let table = table.clone().with_hook(Arc::new(move |step| {
            let point = FailPoint::from(step);
            armed != Some(point)
                && observer.at_fail_point(point, segment) == FailPointAction::Continue
        }));
        match table.append_commit(record, path, redo).await {
            Ok(outcome) => {
                tracing::debug!(segment, ?outcome, "segment appended to the Iceberg table");
                Ok(())
            }
            Err(IcebergError::Stopped(step)) => Err(CompactionError::FailPoint {
                segment,
                point: step.into(),
            }),
            Err(e) => Err(CompactionError::Iceberg {
                segment,
                source: Box::new(e),
            }),
        }
    }

    async fn remove_segment(&self, id: SegmentId) -> Result<(), CompactionError> {
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || wal.remove_sealed(id))
            .await
            .map_err(|e| CompactionError::Internal {
                segment: id.0,
                reason: format!("segment removal thread failed: {e}"),
            })?
            .map_err(|source| CompactionError::Wal {
                segment: id.0,
                source,
            })
    }
}

/// The compaction error for a failure to write segment `segment`'s files.
fn write_failed(segment: u64, e: WriteError) -> CompactionError {
    match e {
        WriteError::Read(source) => CompactionError::Wal { segment, source },
        WriteError::Encode(source) => CompactionError::Encode { segment, source },
        WriteError::Upload(e) => CompactionError::Store {
            segment,
            source: Box::new(e),
        },
        WriteError::Claim(reason) => CompactionError::Claim { segment, reason },
        WriteError::Internal(reason) => CompactionError::Internal { segment, reason },
    }
}

/// What reading and storing one segment came to.
enum Prepared {
    /// Its files are stored; its commit is next.
    Stored(Stored),
    /// It is damaged: it goes aside, untouched.
    Corrupt(String),
}

/// A segment whose files are all stored.
enum Stored {
    /// By this pass, started at `started`.
    Uploaded {
        started: Instant,
        done: worker::SegmentFiles,
    },
    /// By an earlier run, which also stored this commit record.
    Committed(CommitRecord),
}

/// The commit record of a segment whose files are all stored in `archive`.
fn commit_record(
    archive: &Archive,
    wal_id: &str,
    segment: u64,
    files: &[WrittenFile],
) -> CommitRecord {
    CommitRecord {
        version: COMMIT_RECORD_VERSION,
        wal_id: wal_id.to_string(),
        segment,
        files: files
            .iter()
            .map(|f| {
                let object = archive.key(&f.key.path());
                CommittedFile::new(&object, &f.key, &f.summary, f.bytes, hex::encode(f.sha256))
            })
            .collect(),
        committed_at: Timestamp::now().to_rfc3339(),
        strata_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Pause before attempt `failures + 1` of a failed compaction (a pass, or a
/// flush retried by its caller): 0.5 s, 1 s, 2 s, … up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    crate::backoff::nth(FIRST_BACKOFF, MAX_BACKOFF, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn only_store_errors_retrying_cannot_fix_are_permanent() {
        let archive = Archive::from_store(
            Arc::new(object_store::memory::InMemory::new()),
            Path::default(),
            "memory://",
        );
        let store = |e: object_store::Error| CompactionError::Store {
            segment: 1,
            source: Box::new(archive.error("put", &Path::from("a"), e)),
        };
        let denied = store(object_store::Error::PermissionDenied {
            path: "a".into(),
            source: "403 Forbidden".into(),
        });
        assert!(denied.is_permanent(), "{denied}");
        let down = store(object_store::Error::Generic {
            store: "S3",
            source: "tcp connect error: Connection refused (os error 111)".into(),
        });
        assert!(!down.is_permanent(), "{down}");
        let wal = CompactionError::Seal(WalError::Poisoned);
        assert!(
            !wal.is_permanent(),
            "the WAL's problems are reported by the WAL"
        );
    }

    #[test]
    fn failpoints_parse_their_names() {
        for p in [
            FailPoint::AfterUpload,
            FailPoint::AfterCommit,
            FailPoint::IcebergAfterManifest,
            FailPoint::IcebergAfterMetadata,
        ] {
            assert_eq!(p.as_str().parse::<FailPoint>(), Ok(p));
        }
        let e = "after-lunch".parse::<FailPoint>().unwrap_err();
        assert!(e.contains("after-upload"), "{e}");
    }

    #[test]
    fn report_display_lists_segments_files_and_set_aside() {
        let report = CompactionReport {
            segments: vec![SegmentReport {
                segment: 7,
                messages: 3,
                duplicates: 1,
                files: vec![FileReport {
                    key: "station=s/date=2026-11-24/hour=10/1-2.parquet".into(),
                    rows: 2,
                    bytes: 2048,
                }],
                commit_record: "_strata/commits/w-00000000000000000007.json".into(),
                already_committed: false,
            }],
            set_aside: vec![SetAsideReport {
                segment: 9,
                reason: "bad crc".into(),
            }],
        };
        let text = report.to_string();
        assert!(
            text.contains("compacted 1 segment(s) into 1 file(s): 2 rows, 2.0 KiB"),
            "{text}"
        );
        assert!(
            text.contains("segment 7: 3 messages, 1 duplicates dropped"),
            "{text}"
        );
        assert!(
            text.contains("hour=10/1-2.parquet  2 rows  2.0 KiB"),
            "{text}"
        );
        assert!(text.contains("segment 9 SET ASIDE"), "{text}");
        let json = serde_json::to_value(&report).expect("serialize");
        assert_eq!(json["segments"][0]["files"][0]["rows"], 2);
        assert_eq!(json["set_aside"][0]["segment"], 9);
        assert_eq!(
            CompactionReport::default().to_string(),
            "nothing to compact: no sealed segment is waiting\n"
        );
    }
}
