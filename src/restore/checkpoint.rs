//! The restore checkpoint: how far a restore got, so a run that was stopped
//! resumes after the last message its target confirmed.
//!
//! A checkpoint is one JSON object (format version 1), replaced atomically
//! (write `FILE.tmp`, fsync, rename over `FILE`, fsync the directory), so it is
//! always either the previous or the next state, never a torn mix:
//!
//! ```json
//! {"version":1,"station":"orders",
//!  "range":{"from":"-2h","to":null,"from_seq":null,"to_seq":null},
//!  "resolved_from":"2026-11-24T10:00:00.000000Z","resolved_to":null,
//!  "target":{"kind":"nats","subject":null},
//!  "last_seq":1234,"messages":1234,
//!  "output_bytes":null,"streams":{"ORDERS":5678},
//!  "updated_at":"2026-11-24T12:00:01.000000Z"}
//! ```
//!
//! - `last_seq`: every selected message up to it was delivered (NATS: acked;
//!   file: written and fsynced); only ever a contiguous prefix of the run.
//! - `resolved_from`/`resolved_to`: relative times (`-2h`) are resolved once,
//!   when the checkpoint is first written; a resumed run uses the same instants.
//! - `output_bytes` (NDJSON file): the file's length at `last_seq`; a resumed
//!   run cuts the file back to it before appending.
//! - `streams` (NATS): per JetStream stream, the stream sequence after which
//!   this restore may have published messages not yet covered by `last_seq`;
//!   a resumed run looks there for messages it already put in (see
//!   [`super::sink_nats`]) so a kill between an ack and a checkpoint write adds
//!   no duplicate, whatever the stream's duplicate window.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::message::{StationName, Timestamp};

use super::request::{Range, Target};
use super::RestoreError;

/// The checkpoint format version this code writes and reads.
pub const VERSION: u32 = 1;

/// Where a checkpoint's messages went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSpec {
    /// JetStream, with the subject override if any (the URL is not kept: it may hold credentials).
    Nats {
        /// `--subject`.
        subject: Option<String>,
    },
    /// An NDJSON file.
    File {
        /// The path as given.
        path: PathBuf,
    },
    /// Standard output.
    Stdout,
}

impl TargetSpec {
    /// The spec of a request's target.
    pub fn of(target: &Target) -> Self {
        match target {
            Target::Nats(n) => Self::Nats {
                subject: n.subject.clone(),
            },
            Target::File { path, .. } => Self::File { path: path.clone() },
            Target::Stdout => Self::Stdout,
        }
    }
}

/// The range as typed, kept verbatim in a checkpoint so that a resumed run can
/// be checked against the run that wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSpec {
    /// `--from` as given.
    pub from: Option<String>,
    /// `--to` as given.
    pub to: Option<String>,
    /// `--from-seq`.
    pub from_seq: Option<u64>,
    /// `--to-seq`.
    pub to_seq: Option<u64>,
}

impl RangeSpec {
    /// The spec of a request's range: time bounds in the words they were given.
    pub fn of(range: &Range) -> Self {
        Self {
            from: range.from.as_ref().map(|b| b.as_str().to_string()),
            to: range.to.as_ref().map(|b| b.as_str().to_string()),
            from_seq: range.from_seq.map(u64::from),
            to_seq: range.to_seq.map(u64::from),
        }
    }
}

/// One checkpoint (see the module doc for the JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version, [`VERSION`].
    pub version: u32,
    /// The station restored.
    pub station: String,
    /// The range as typed.
    pub range: RangeSpec,
    /// `--from` resolved, RFC 3339.
    pub resolved_from: Option<String>,
    /// `--to` resolved, RFC 3339.
    pub resolved_to: Option<String>,
    /// The target.
    pub target: TargetSpec,
    /// The last seq delivered, with everything selected before it.
    pub last_seq: Option<u64>,
    /// Messages delivered by every run so far.
    pub messages: u64,
    /// NDJSON file length at `last_seq`.
    pub output_bytes: Option<u64>,
    /// JetStream stream name → stream sequence before any unconfirmed publish.
    #[serde(default)]
    pub streams: BTreeMap<String, u64>,
    /// When it was written, RFC 3339.
    pub updated_at: String,
}

impl Checkpoint {
    /// A fresh checkpoint for a run that has delivered nothing yet.
    pub fn start(
        station: &StationName,
        range: &RangeSpec,
        from_ts: Option<Timestamp>,
        to_ts: Option<Timestamp>,
        target: TargetSpec,
    ) -> Self {
        Self {
            version: VERSION,
            station: station.to_string(),
            range: range.clone(),
            resolved_from: from_ts.map(Timestamp::to_rfc3339),
            resolved_to: to_ts.map(Timestamp::to_rfc3339),
            target,
            last_seq: None,
            messages: 0,
            output_bytes: None,
            streams: BTreeMap::new(),
            updated_at: Timestamp::now().to_rfc3339(),
        }
    }

    /// Reads `path`; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// [`RestoreError::Checkpoint`] when it cannot be read or is not a checkpoint.
    pub fn load(path: &Path) -> Result<Option<Self>, RestoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cp_err(path, format!("cannot read it: {e}"))),
        };
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
            cp_err(
                path,
                format!(
                    "it is not a restore checkpoint ({e}); pass another --checkpoint file \
                     or remove this one to start over"
                ),
            )
        })?;
        if cp.version != VERSION {
            return Err(cp_err(
                path,
                format!(
                    "it has format version {} and this strata reads version {VERSION}; \
                     use the strata version that wrote it",
                    cp.version
                ),
            ));
        }
        Ok(Some(cp))
    }

    /// Checks that a run of `station` over `range` into `target` may resume
    /// from this checkpoint: same station, same lower bounds and time bounds
    /// (so every selected message up to `last_seq` was delivered), same
    /// target. `--to-seq` may differ.
    ///
    /// # Errors
    /// [`RestoreError::CheckpointMismatch`] saying what differs.
    pub fn check_matches(
        &self,
        path: &Path,
        station: &StationName,
        range: &RangeSpec,
        target: &TargetSpec,
    ) -> Result<(), RestoreError> {
        let mut diffs = Vec::new();
        if self.station != station.as_str() {
            diffs.push(format!(
                "station {:?} (this run: {:?})",
                self.station,
                station.as_str()
            ));
        }
        let mut cmp = |flag: &str, was: String, now: String| {
            if was != now {
                diffs.push(format!("{flag} {was} (this run: {now})"));
            }
        };
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
        let opt_n = |v: Option<u64>| v.map_or_else(|| "unset".into(), |n| n.to_string());
        cmp("--from", opt(&self.range.from), opt(&range.from));
        cmp("--to", opt(&self.range.to), opt(&range.to));
        cmp(
            "--from-seq",
            opt_n(self.range.from_seq),
            opt_n(range.from_seq),
        );
        if &self.target != target {
            diffs.push(format!("target {:?} (this run: {target:?})", self.target));
        }
        if diffs.is_empty() {
            return Ok(());
        }
        Err(RestoreError::CheckpointMismatch {
            path: path.to_path_buf(),
            detail: diffs.join(", "),
        })
    }

    /// The time bounds the first run resolved.
    ///
    /// # Errors
    /// [`RestoreError::Checkpoint`] when a stored time does not parse.
    pub fn resolved_times(
        &self,
        path: &Path,
    ) -> Result<(Option<Timestamp>, Option<Timestamp>), RestoreError> {
        let parse = |v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    Timestamp::parse_rfc3339(s).map_err(|e| {
                        cp_err(path, format!("{e}; remove the checkpoint to start over"))
                    })
                })
                .transpose()
        };
        Ok((parse(&self.resolved_from)?, parse(&self.resolved_to)?))
    }

    /// Replaces the checkpoint at `path` atomically (module doc).
    ///
    /// # Errors
    /// [`RestoreError::Checkpoint`] with the I/O error.
    pub fn write(&mut self, path: &Path) -> Result<(), RestoreError> {
        self.updated_at = Timestamp::now().to_rfc3339();
        let mut body =
            serde_json::to_vec(self).map_err(|e| cp_err(path, format!("cannot encode it: {e}")))?;
        body.push(b'\n');
        crate::fsio::write_atomic(path, &body).map_err(|e| {
            cp_err(
                path,
                format!("cannot write it: {e}; check the directory exists and is writable"),
            )
        })
    }
}

fn cp_err(path: &Path, reason: String) -> RestoreError {
    RestoreError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station() -> StationName {
        StationName::new("orders").unwrap()
    }

    fn range() -> RangeSpec {
        RangeSpec {
            from: Some("-2h".into()),
            to: None,
            from_seq: None,
            to_seq: Some(100),
        }
    }

    #[test]
    fn round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let from = Timestamp::parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        let mut cp = Checkpoint::start(
            &station(),
            &range(),
            Some(from),
            None,
            TargetSpec::Nats { subject: None },
        );
        cp.last_seq = Some(42);
        cp.messages = 40;
        cp.streams.insert("ORDERS".into(), 7);
        cp.write(&path).unwrap();
        assert!(!dir.path().join("cp.json.tmp").exists());
        let back = Checkpoint::load(&path).unwrap().unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.resolved_times(&path).unwrap(), (Some(from), None));
        cp.last_seq = Some(43);
        cp.write(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().unwrap().last_seq, Some(43));
    }

    #[test]
    fn refuses_garbage_and_other_versions_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        fs::write(&path, "not json").unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a restore checkpoint"), "{e}");
        let mut cp = Checkpoint::start(&station(), &range(), None, None, TargetSpec::Stdout);
        cp.version = 9;
        fs::write(&path, serde_json::to_vec(&cp).unwrap()).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
    }

    #[test]
    fn matching_allows_a_new_to_seq_only() {
        let p = Path::new("cp.json");
        let target = TargetSpec::Nats { subject: None };
        let cp = Checkpoint::start(&station(), &range(), None, None, target.clone());
        cp.check_matches(p, &station(), &range(), &target).unwrap();
        let wider = RangeSpec {
            to_seq: None,
            ..range()
        };
        cp.check_matches(p, &station(), &wider, &target).unwrap();

        let other = StationName::new("billing").unwrap();
        let e = cp
            .check_matches(p, &other, &range(), &target)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"orders\"") && e.contains("billing"), "{e}");
        let moved = RangeSpec {
            from: Some("-3h".into()),
            ..range()
        };
        let e = cp
            .check_matches(p, &station(), &moved, &target)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--from -2h (this run: -3h)"), "{e}");
        let e = cp
            .check_matches(p, &station(), &range(), &TargetSpec::Stdout)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target"), "{e}");
    }
}
