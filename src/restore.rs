//! `strata restore`: read a station's archived messages for a time and/or seq
//! range, in strictly ascending seq, and publish them to NATS JetStream or write
//! them as NDJSON.
//!
//! The work is split by concern:
//! - [`request`]: what to restore, as typed values, and their checks (pure);
//! - [`select`]: which partitions, files and seqs can hold the range (pure);
//! - [`scan`]: listing and footer reading that turn the rules into a plan;
//! - [`read`] and [`merge`]: streaming the planned row groups, merged by seq
//!   with memory bounded by how many files overlap;
//! - [`sink_ndjson`], [`sink_nats`]: the two targets behind [`sink::Sink`];
//! - [`checkpoint`]: resuming a stopped run with no gap and no duplicate;
//! - [`pace`], [`progress`], [`counting`]: `--rate`, progress reports and the
//!   objects/bytes-read figures of the summary.
//!
//! The command line (`strata restore`'s flags, the progress bar, printing the
//! summary) is the binary's: it builds a [`Request`] and calls [`run`].

mod ack_window;
pub mod checkpoint;
pub mod counting;
pub mod merge;
pub mod pace;
pub mod progress;
pub mod read;
pub mod request;
pub mod scan;
pub mod select;
pub mod sink;
pub mod sink_nats;
pub mod sink_ndjson;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::columnar::{ColumnarError, Selection};
use crate::store::{Archive, StoreError};

use crate::display::human_bytes;
use crate::identity::ledger::Ledger;
use crate::identity::mac::RestoreKey;
use crate::message::{Message, StationName};
use checkpoint::{Checkpoint, RangeSpec, TargetSpec};
use counting::CountingStore;
use merge::Merge;
use pace::Pacer;
pub use progress::{NoProgress, Progress};
pub use request::{NatsTarget, Range, Request, RequestError, Target, TimeBound};
use sink::{Delivered, Prepare, Prepared, Sink};
use sink_nats::NatsSink;
use sink_ndjson::NdjsonSink;
use tokio::sync::mpsc;

/// Checkpoint at least this often while messages flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// ... and at least every this many messages.
const CHECKPOINT_EVERY_MESSAGES: u64 = 10_000;

/// Why a restore stopped. Each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The request is not one that can run.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Listing or reading the archive failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A data file's Parquet footer could not be read.
    #[error(
        "cannot read the Parquet footer of {path}: {source}; the object is damaged or not a \
         Strata data file: move it out of the station's folder or restore a narrower range"
    )]
    Footer {
        /// The object.
        path: String,
        /// What the reader said.
        source: Box<parquet::errors::ParquetError>,
    },
    /// A data file's rows could not be decoded.
    #[error(
        "cannot decode {path}: {source}; the object is damaged or was not written by Strata: \
         move it out of the station's folder or restore a narrower range"
    )]
    Decode {
        /// The object.
        path: String,
        /// What decoding said.
        source: Box<ColumnarError>,
    },
    /// A data file's rows are not in ascending seq.
    #[error(
        "archived seq {seq} comes after seq {after}: a data file of this station is not sorted \
         by seq, so restore cannot guarantee order; check the station's files with `strata ls`"
    )]
    OutOfOrder {
        /// The seq found.
        seq: u64,
        /// The seq before it.
        after: u64,
    },
    /// The checkpoint file cannot be used.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint was written by a different restore.
    #[error(
        "checkpoint {path} belongs to a different restore: {detail}; rerun with the same \
         --station, --from, --to, --from-seq and target (only --to-seq may change), \
         or pass a new --checkpoint file"
    )]
    CheckpointMismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The `--output` file exists and `--force` was not given.
    #[error(
        "{path} already exists: pass --force to overwrite it, or choose another --output file"
    )]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
    /// Writing NDJSON failed.
    #[error("cannot write {path}: {source}; check the path and free disk space")]
    Output {
        /// The file (`-` for standard output).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The NDJSON file being resumed is shorter than the checkpoint says.
    #[error(
        "{path} has {actual} bytes but the checkpoint recorded {expected}: it was changed \
         since; restore into a new file without the checkpoint"
    )]
    OutputChanged {
        /// The file.
        path: PathBuf,
        /// Length the checkpoint recorded.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// The NATS server could not be reached.
    #[error(
        "cannot connect to NATS at {url}: {reason}; check that the server runs with \
         JetStream (-js), the URL, and --nats-token / --nats-user / --nats-creds"
    )]
    NatsConnect {
        /// The URL without credentials.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// A JetStream request failed.
    #[error("NATS error while {what}: {reason}")]
    Nats {
        /// What was being done.
        what: String,
        /// What the server or client said.
        reason: String,
    },
    /// No stream captures the subject a message would be published on.
    #[error(
        "no JetStream stream captures subject {subject:?}: create one that does \
         (e.g. `nats stream add --subjects '{subject}'`) or pass --subject for one that exists"
    )]
    NoStream {
        /// The subject.
        subject: String,
    },
    /// The subject is not one NATS accepts.
    #[error("{subject:?} is not a valid NATS subject: pass --subject with a valid one")]
    BadSubject {
        /// The subject.
        subject: String,
    },
    /// A message has no subject and `--subject` was not given.
    #[error("archived message seq {seq} has no subject: pass --subject to publish it on one")]
    NoSubject {
        /// Its seq.
        seq: u64,
    },
    /// A header cannot be carried by NATS.
    #[error(
        "archived message seq {seq} has header {name:?} that NATS cannot carry ({reason}); \
         export it with --output instead"
    )]
    BadHeader {
        /// Its seq.
        seq: u64,
        /// The header name.
        name: String,
        /// Why.
        reason: String,
    },
    /// JetStream refused a message.
    #[error(
        "JetStream did not store seq {seq} (subject {subject:?}): {reason}; check the stream's \
         limits (max message size, max messages, discard policy) and rerun with the same \
         --checkpoint to continue"
    )]
    Publish {
        /// Its seq.
        seq: u64,
        /// Its subject.
        subject: String,
        /// What the server said.
        reason: String,
    },
    /// No acknowledgement came in time.
    #[error(
        "no JetStream acknowledgement for seq {seq} within {secs}s: the server is overloaded \
         or unreachable; lower --max-inflight or set --rate, and rerun with the same \
         --checkpoint to continue"
    )]
    AckTimeout {
        /// Its seq.
        seq: u64,
        /// The timeout.
        secs: u64,
    },
}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

/// What a restore did, printed as one JSON line (or a human line on a terminal).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreSummary {
    /// The station.
    pub station: String,
    /// Messages delivered by this run.
    pub messages: u64,
    /// Objects read (footer or data).
    pub objects_read: u64,
    /// Bytes fetched from the store.
    pub bytes_read: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Messages per second.
    pub rate: f64,
    /// First seq delivered by this run.
    pub first_seq: Option<u64>,
    /// Last seq delivered by this run.
    pub last_seq: Option<u64>,
    /// List requests made (a paginated listing counts once).
    pub list_requests: u64,
    /// Data files under the listed partitions.
    pub files_listed: u64,
    /// Row groups read.
    pub row_groups_read: u64,
    /// Row groups in the files whose footer was read.
    pub row_groups_total: u64,
    /// Messages the stream already had (not stored twice).
    pub already_present: u64,
    /// The checkpoint's last seq this run resumed after.
    pub resumed_after: Option<u64>,
    /// Gaps recorded in the archive inside the restored seq range: messages
    /// the stream expelled before Strata read them, which no restore can return.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_gaps: Vec<KnownGap>,
    /// Set when the range held nothing (left to restore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A recorded gap inside a restored range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownGap {
    /// First missing seq.
    pub first_seq: u64,
    /// Last missing seq (inclusive).
    pub last_seq: u64,
    /// Messages missing.
    pub messages: u64,
}

/// The gaps recorded for `station` that overlap `first..=last`.
async fn known_gaps(
    ledger: &Ledger,
    station: &StationName,
    first: u64,
    last: u64,
) -> Vec<KnownGap> {
    match ledger.gaps(station).await {
        Ok(gaps) => gaps
            .into_iter()
            .filter(|g| g.first_seq <= last && first <= g.last_seq)
            .map(|g| KnownGap {
                first_seq: g.first_seq,
                last_seq: g.last_seq,
                messages: g.messages,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the station's recorded gaps");
            Vec::new()
        }
    }
}

impl RestoreSummary {
    /// The summary as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The summary for a person.
    pub fn human(&self) -> String {
        if let Some(note) = &self.note {
            return note.clone();
        }
        let mut s = format!(
            "restored {} messages of {} (seq {}..{}) in {:.1}s, {:.0} msg/s; read {} objects, {}",
            self.messages,
            self.station,
            self.first_seq.map_or("-".into(), |s| s.to_string()),
            self.last_seq.map_or("-".into(), |s| s.to_string()),
            self.seconds,
            self.rate,
            self.objects_read,
            human_bytes(self.bytes_read),
        );
        if self.already_present > 0 {
            s.push_str(&format!(
                "; {} were already in the stream",
                self.already_present
            ));
        }
        if !self.known_gaps.is_empty() {
            let lost: u64 = self.known_gaps.iter().map(|g| g.messages).sum();
            let ranges: Vec<String> = self
                .known_gaps
                .iter()
                .map(|g| format!("{}-{}", g.first_seq, g.last_seq))
                .collect();
            s.push_str(&format!(
                "; {lost} message(s) in this range were lost upstream before archiving (known gaps: seqs {})",
                ranges.join(", ")
            ));
        }
        s
    }
}

/// Writes the checkpoint as delivery goes on.
struct Checkpointer {
    path: PathBuf,
    cp: Checkpoint,
    /// Messages recorded before this run.
    earlier: u64,
    last_write: Instant,
    since_write: u64,
}

impl Checkpointer {
    fn due(&mut self) -> bool {
        self.since_write += 1;
        self.since_write >= CHECKPOINT_EVERY_MESSAGES
            || self.last_write.elapsed() >= CHECKPOINT_EVERY
    }

    fn record(&mut self, d: &Delivered) -> Result<(), RestoreError> {
        self.since_write = 0;
        self.last_write = Instant::now();
        self.cp.last_seq = d.last_seq.or(self.cp.last_seq);
        self.cp.messages = self.earlier + d.messages;
        if d.output_bytes.is_some() {
            self.cp.output_bytes = d.output_bytes;
        }
        for (stream, at) in &d.streams {
            let e = self.cp.streams.entry(stream.clone()).or_insert(0);
            *e = (*e).max(*at);
        }
        self.cp.write(&self.path)
    }
}

/// Loads the checkpoint (refusing one of another restore) or starts one; a
/// loaded one fixes the range's instants and moves its start past what was
/// delivered. Returns the writer and the loaded checkpoint.
fn open_checkpoint(
    req: &Request,
    target_spec: &TargetSpec,
    sel: &mut Selection,
) -> Result<(Option<Checkpointer>, Option<Checkpoint>), RestoreError> {
    let Some(path) = &req.checkpoint else {
        return Ok((None, None));
    };
    let range = RangeSpec::of(&req.range);
    let (cp, resumed) = match Checkpoint::load(path)? {
        Some(mut cp) => {
            cp.check_matches(path, &req.station, &range, target_spec)?;
            (sel.from_ts, sel.to_ts) = cp.resolved_times(path)?;
            *sel = select::resume_after(*sel, cp.last_seq);
            cp.range.to_seq = range.to_seq;
            (cp.clone(), Some(cp))
        }
        None => (
            Checkpoint::start(
                &req.station,
                &range,
                sel.from_ts,
                sel.to_ts,
                target_spec.clone(),
            ),
            None,
        ),
    };
    let writer = Checkpointer {
        path: path.clone(),
        earlier: cp.messages,
        cp,
        last_write: Instant::now(),
        since_write: 0,
    };
    Ok((Some(writer), resumed))
}

/// Opens the target: connects to NATS (and sets up stream positions for the
/// checkpoint, or the resume), or opens the NDJSON output.
async fn open_sink(
    target: &Target,
    key: Option<RestoreKey>,
    resumed: Option<&Checkpoint>,
    checkpointer: Option<&mut Checkpointer>,
) -> Result<Box<dyn Sink>, RestoreError> {
    Ok(match target {
        Target::Nats(t) => {
            let mut s = NatsSink::connect(t, key).await?;
            match (resumed, checkpointer) {
                (Some(cp), _) => s.resume_after(cp.last_seq, cp.streams.clone()),
                (None, Some(c)) => {
                    let positions = s.stream_positions().await?;
                    c.cp.streams = positions.clone();
                    s.set_positions(positions);
                }
                (None, None) => {}
            }
            Box::new(s)
        }
        Target::File { path, overwrite } => Box::new(NdjsonSink::file(
            path,
            resumed.and_then(|cp| cp.output_bytes),
            *overwrite,
        )?),
        Target::Stdout => Box::new(NdjsonSink::stdout()),
    })
}

/// Messages handed from the staging task to the delivery loop at a time.
const STAGE_BATCH: usize = 256;
/// Batches staged ahead of the delivery loop.
const STAGE_AHEAD: usize = 4;

/// A batch of merged messages with what the sink's [`Prepare`] made of them.
type StagedBatch = Result<Vec<(Message, Prepared)>, RestoreError>;

/// Merges in seq order and prepares each message for the sink (builds and
/// signs the NATS headers) on a task of its own, so that this work overlaps
/// the delivery loop; hands batches over in order. Ends at the end of the
/// merge, at the first error (sent on), or once the receiver is gone.
fn stage<F>(
    mut merge: Merge<F>,
    mut prepare: Option<Box<dyn Prepare>>,
) -> mpsc::Receiver<StagedBatch>
where
    F: FnMut(usize) -> read::Chunks + Send + 'static,
{
    let (tx, rx) = mpsc::channel(STAGE_AHEAD);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(STAGE_BATCH);
        let ended = loop {
            let mut m = match merge.next().await {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let prepared = match &mut prepare {
                Some(p) => match p.prepare(&mut m) {
                    Ok(prepared) => prepared,
                    Err(e) => break Err(e),
                },
                None => Prepared::default(),
            };
            batch.push((m, prepared));
            if batch.len() == STAGE_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(STAGE_BATCH));
                if tx.send(Ok(full)).await.is_err() {
                    return; // the delivery loop has stopped
                }
            }
        };
        // What was staged before the end or the error goes first.
        if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
            return;
        }
        if let Err(e) = ended {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

/// Moves every merged message into the sink, checkpointing as it goes.
async fn pump(
    mut staged: mpsc::Receiver<StagedBatch>,
    sink: &mut dyn Sink,
    pacer: &mut Pacer,
    progress: &dyn Progress,
    checkpointer: &mut Option<Checkpointer>,
    first_seq: &mut Option<u64>,
) -> Result<Delivered, RestoreError> {
    while let Some(batch) = staged.recv().await {
        for (m, prepared) in batch? {
            first_seq.get_or_insert(m.seq);
            pacer.wait().await;
            sink.deliver(m, prepared).await?;
            progress.delivered(1);
            if let Some(c) = checkpointer {
                if c.due() {
                    let d = sink.sync().await?;
                    c.record(&d)?;
                }
            }
        }
    }
    let d = sink.finish().await?;
    if let Some(c) = checkpointer {
        c.record(&d)?;
    }
    Ok(d)
}

/// Restores what `req` asks from `archive`, telling `progress` how it goes,
/// and returns what it did. Relative times resolve against the clock now (or,
/// when resuming, against the instants the checkpoint recorded).
///
/// # Errors
/// [`RestoreError`] saying what failed and what to do ([`RestoreError::Request`]
/// before any work when `req` does not [validate](Request::validate)); with a
/// checkpoint, the checkpoint then holds everything confirmed before the failure.
pub async fn run(
    req: Request,
    archive: Archive,
    progress: &dyn Progress,
) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let mut sel = req.validate(chrono::Utc::now())?;
    let target_spec = TargetSpec::of(&req.target);
    let (mut checkpointer, resumed) = open_checkpoint(&req, &target_spec, &mut sel)?;
    let resumed_after = resumed.as_ref().and_then(|cp| cp.last_seq);
    let ledger = Ledger::new(archive.clone());
    let key = match &req.target {
        Target::Nats(_) => match ledger.restore_key().await {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "restored messages go out unsigned: a station `strata run` archives will take \
                     them for new messages",
                );
                None
            }
        },
        _ => None,
    };
    let mut sink = open_sink(&req.target, key, resumed.as_ref(), checkpointer.as_mut()).await?;
    if let Some(c) = &mut checkpointer {
        // Durable before the first publish: the stream positions a resume needs.
        c.cp.write(&c.path)?;
    }

    let counting = CountingStore::new(Arc::clone(archive.store()));
    let counted = archive.with_store(Arc::new(counting.clone()));
    let plan = scan::plan(&counted, &req.station, &sel).await?;
    tracing::debug!(?plan.stats, files = plan.files.len(), "restore plan");

    progress.planned(plan.stats.rows_planned);
    let files = plan.files;
    let first_seqs: Vec<u64> = files.iter().map(|f| f.key.first_seq).collect();
    let merge = Merge::new(first_seqs, move |i| {
        read::spawn_file_reader(counted.clone(), files[i].clone(), sel)
    });
    let staged = stage(merge, sink.preparer());
    let mut pacer = Pacer::new(req.rate);

    let mut first_seq = None;
    let pumped = pump(
        staged,
        sink.as_mut(),
        &mut pacer,
        progress,
        &mut checkpointer,
        &mut first_seq,
    )
    .await;

    let delivered = match pumped {
        Ok(d) => d,
        Err(e) => {
            progress.ended(false);
            if let Some(c) = &mut checkpointer {
                if let Err(cp_err) = c.record(&sink.confirmed()) {
                    tracing::error!(error = %cp_err, "could not record the checkpoint after the failure");
                }
            }
            return Err(e);
        }
    };

    let reads = counting.counts();
    let known_gaps = match (first_seq, delivered.last_seq) {
        (Some(first), Some(last)) if delivered.messages > 0 => {
            known_gaps(&ledger, &req.station, first, last).await
        }
        _ => Vec::new(),
    };
    let seconds = started.elapsed().as_secs_f64();
    let note = (delivered.messages == 0).then(|| match resumed_after {
        Some(last) => format!(
            "nothing to restore: station {} has no archived message after seq {last} \
             (the checkpoint's position) in the range",
            req.station
        ),
        None => format!(
            "nothing to restore: station {} has no archived message in the range",
            req.station
        ),
    });
    let summary = RestoreSummary {
        station: req.station.to_string(),
        messages: delivered.messages,
        objects_read: reads.objects,
        bytes_read: reads.bytes,
        seconds,
        rate: if seconds > 0.0 {
            delivered.messages as f64 / seconds
        } else {
            0.0
        },
        first_seq: first_seq.filter(|_| delivered.messages > 0),
        last_seq: delivered.last_seq.filter(|_| delivered.messages > 0),
        list_requests: reads.lists,
        files_listed: plan.stats.files_listed,
        row_groups_read: plan.stats.row_groups_selected,
        row_groups_total: plan.stats.row_groups_total,
        already_present: delivered.already_present,
        resumed_after,
        known_gaps,
        note,
    };
    progress.ended(true);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_has_the_contract_fields() {
        let s = RestoreSummary {
            station: "orders".into(),
            messages: 10,
            objects_read: 2,
            bytes_read: 2048,
            seconds: 0.5,
            rate: 20.0,
            first_seq: Some(1),
            last_seq: Some(10),
            list_requests: 1,
            files_listed: 3,
            row_groups_read: 2,
            row_groups_total: 4,
            already_present: 0,
            resumed_after: None,
            known_gaps: Vec::new(),
            note: None,
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json_line()).unwrap();
        for k in [
            "station",
            "messages",
            "objects_read",
            "bytes_read",
            "seconds",
            "rate",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(!s.to_json_line().contains('\n'));
        assert!(s.human().contains("2.0 KiB"), "{}", s.human());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = RestoreError::NoStream {
            subject: "orders.x".into(),
        }
        .to_string();
        assert!(e.contains("orders.x") && e.contains("--subject"), "{e}");
        let e = RestoreError::CheckpointMismatch {
            path: "cp.json".into(),
            detail: "station \"a\" (this run: \"b\")".into(),
        }
        .to_string();
        assert!(e.contains("new --checkpoint"), "{e}");
    }
}
