//! In a cluster, what the compactor does before uploading a segment's rows
//! (the claim itself is [`crate::cluster::claims`]; this is the compactor's
//! side of it):
//!
//! 1. claim every station of the segment ([`UploadClaims`]), so no other
//!    process lists or uploads those stations meanwhile;
//! 2. list the stored data files of the partitions the plan writes into, and
//!    read the seqs of those whose key range meets a planned file's
//!    ([`stored_files`]);
//! 3. the pure [`super::plan::subtract_stored`] drops rows already stored;
//! 4. upload, checking before each file that the claims are still held;
//!    release them once the files are stored.
//!
//! A lone process without `[nats]` (HTTP only) has no claims: no other
//! process can archive its stations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::plan::{Stored, StoredFile};
use crate::layout::{self, DataKey, Hour};
use crate::message::StationName;
use crate::store::Archive;

/// Hands out upload claims on stations.
#[async_trait::async_trait]
pub trait UploadClaims: Send + Sync + fmt::Debug {
    /// Claims every station of `stations` (sorted, each once), waiting while
    /// another process holds one.
    ///
    /// # Errors
    /// A sentence saying why no claim could be had (NATS unreachable, or
    /// another process held a station too long); the segment is retried.
    async fn claim(&self, stations: &[StationName]) -> Result<Box<dyn HeldClaims>, String>;
}

/// Claims held on some stations.
#[async_trait::async_trait]
pub trait HeldClaims: Send + Sync {
    /// Whether every claim is still held: checked before each upload.
    fn held(&self) -> bool;
    /// Gives the claims back.
    async fn release(self: Box<Self>);
}

/// A planned file's partition and key range, as the segment thread reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRange {
    pub(crate) station: StationName,
    pub(crate) hour: Hour,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
}

/// The stored files of the partitions `planned` writes into, with the seqs
/// of every file whose key range meets a planned range of its partition.
///
/// # Errors
/// The failed store operation or an unreadable data file, as a sentence.
pub(crate) async fn stored_files(
    archive: &Archive,
    planned: &[PlannedRange],
) -> Result<Stored, String> {
    let mut ranges: BTreeMap<(StationName, Hour), Vec<(u64, u64)>> = BTreeMap::new();
    for p in planned {
        ranges
            .entry((p.station.clone(), p.hour))
            .or_default()
            .push((p.first_seq, p.last_seq));
    }
    let mut stored = Stored::new();
    for ((station, hour), wanted) in ranges {
        let dir = layout::hour_prefix(&station, hour);
        let metas = archive
            .list_all(Some(&dir))
            .await
            .map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        for meta in metas {
            let Some(key) = DataKey::parse(&meta.location) else {
                continue;
            };
            let meets = wanted
                .iter()
                .any(|&(a, b)| key.first_seq <= b && a <= key.last_seq);
            let seqs = if meets {
                let bytes = archive
                    .get(&meta.location)
                    .await
                    .map_err(|e| e.to_string())?;
                crate::columnar::file_seqs(bytes).map_err(|e| {
                    format!(
                        "reading the seqs of {} failed: {e}",
                        archive.key(&meta.location)
                    )
                })?
            } else {
                Vec::new()
            };
            files.push(StoredFile {
                first_seq: key.first_seq,
                last_seq: key.last_seq,
                seqs,
            });
        }
        if !files.is_empty() {
            stored.insert((station, hour), files);
        }
    }
    Ok(stored)
}

/// The stations of `planned`, sorted, each once: the claim order, the same
/// in every process, so two never wait for each other.
pub(crate) fn stations_of(planned: &[PlannedRange]) -> Vec<StationName> {
    let set: BTreeSet<&StationName> = planned.iter().map(|p| &p.station).collect();
    set.into_iter().cloned().collect()
}
