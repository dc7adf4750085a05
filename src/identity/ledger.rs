//! The identity ledger in the archive: the restore key, each station's
//! incarnation records and gap records (`_strata/…`, see
//! [`crate::layout::restore_key_path`], [`crate::layout::incarnation_path`],
//! [`crate::layout::gap_path`]). Records are small JSON objects written once
//! under keys derived from what they record, so writing one again after a
//! crash is harmless.

use object_store::path::Path;
use object_store::{ObjectMeta, PutPayload};

use super::mac::{KeyError, RestoreKey};
use super::{GapRecord, IncarnationRecord};
use crate::layout::{self, DataKey, Hour};
use crate::message::StationName;
use crate::store::{Archive, StoreError};

/// Errors reading or writing the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    /// The restore key in the archive is damaged.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A record could not be parsed.
    #[error("the identity record {key} is not valid JSON of the expected form ({reason}); it was written by a newer Strata or damaged")]
    Record {
        /// The object.
        key: String,
        /// The parser's message.
        reason: String,
    },
    /// Another writer recorded a different incarnation under the same index.
    #[error(
        "incarnation {index} of station {station} is already recorded differently in the archive \
         ({key}): another Strata process archives this station; run one process per station"
    )]
    Conflict {
        /// The station.
        station: StationName,
        /// The incarnation index.
        index: u32,
        /// The object.
        key: String,
    },
}

/// Reads and writes a station's identity records in the archive.
#[derive(Debug, Clone)]
pub struct Ledger {
    archive: Archive,
}

impl Ledger {
    /// The ledger of `archive`.
    pub fn new(archive: Archive) -> Self {
        Self { archive }
    }

    /// The archive's restore key, created (once, race-free where the store
    /// supports conditional writes) when there is none.
    ///
    /// # Errors
    /// [`LedgerError`] when the store fails or the stored key is damaged.
    pub async fn restore_key(&self) -> Result<RestoreKey, LedgerError> {
        let path = layout::restore_key_path();
        if let Some(bytes) = self.get(&path).await? {
            return Ok(RestoreKey::from_json(&bytes)?);
        }
        let key = RestoreKey::generate();
        if self.create(&path, key.to_json()).await? {
            return Ok(key);
        }
        // Someone else created it first: theirs is the key.
        match self.get(&path).await? {
            Some(bytes) => Ok(RestoreKey::from_json(&bytes)?),
            None => Ok(key),
        }
    }

    /// The station's incarnations, oldest first.
    ///
    /// # Errors
    /// [`LedgerError`] when the store fails or a record is damaged.
    pub async fn incarnations(
        &self,
        station: &StationName,
    ) -> Result<Vec<IncarnationRecord>, LedgerError> {
        let mut records: Vec<IncarnationRecord> = self.records(station, "incarnations").await?;
        records.sort_by_key(|r| r.incarnation);
        Ok(records)
    }

    /// The station's recorded gaps, in seq order.
    ///
    /// # Errors
    /// [`LedgerError`] when the store fails or a record is damaged.
    pub async fn gaps(&self, station: &StationName) -> Result<Vec<GapRecord>, LedgerError> {
        let mut records: Vec<GapRecord> = self.records(station, "gaps").await?;
        records.sort_by_key(|r| (r.first_seq, r.last_seq));
        Ok(records)
    }

    /// Records an incarnation. Writing the same record again is harmless; a
    /// different record under the same index is [`LedgerError::Conflict`].
    ///
    /// # Errors
    /// [`LedgerError`] when the store fails or the index is taken.
    pub async fn record_incarnation(&self, r: &IncarnationRecord) -> Result<(), LedgerError> {
        let path = layout::incarnation_path(&r.station, r.incarnation);
        let json = serde_json::to_vec_pretty(r).expect("records serialise");
        if self.create(&path, json).await? {
            return Ok(());
        }
        let existing: Option<IncarnationRecord> = match self.get(&path).await? {
            Some(bytes) => Some(self.parse(&path, &bytes)?),
            None => None,
        };
        match existing {
            Some(e) if e.stream_created == r.stream_created && e.seq_offset == r.seq_offset => {
                Ok(())
            }
            _ => Err(LedgerError::Conflict {
                station: r.station.clone(),
                index: r.incarnation,
                key: self.archive.key(&path).to_string(),
            }),
        }
    }

    /// Records a gap (a second write of the same gap keeps the first).
    ///
    /// # Errors
    /// [`LedgerError::Store`] when the store fails.
    pub async fn record_gap(&self, g: &GapRecord) -> Result<(), LedgerError> {
        let path = layout::gap_path(&g.station, g.first_seq, g.last_seq);
        let json = serde_json::to_vec_pretty(g).expect("records serialise");
        self.create(&path, json).await?;
        Ok(())
    }

    /// The highest seq of any data file of `station` in the archive (from the
    /// keys: one listing of the station, no file is read).
    ///
    /// # Errors
    /// [`LedgerError::Store`] when the listing fails.
    pub async fn highest_archived_seq(
        &self,
        station: &StationName,
    ) -> Result<Option<u64>, LedgerError> {
        let metas = self.list(&layout::station_prefix(station)).await?;
        Ok(metas
            .iter()
            .filter_map(|m| DataKey::parse(&m.location))
            .map(|k| k.last_seq)
            .max())
    }

    /// The seq ranges of `station`'s data files in one hour partition (from
    /// the keys: one listing, no file is read).
    ///
    /// # Errors
    /// [`LedgerError::Store`] when the listing fails.
    pub async fn file_ranges(
        &self,
        station: &StationName,
        hour: Hour,
    ) -> Result<Vec<(u64, u64)>, LedgerError> {
        let metas = self.list(&layout::hour_prefix(station, hour)).await?;
        Ok(metas
            .iter()
            .filter_map(|m| DataKey::parse(&m.location))
            .map(|k| (k.first_seq, k.last_seq))
            .collect())
    }

    async fn records<T: serde::de::DeserializeOwned>(
        &self,
        station: &StationName,
        kind: &str,
    ) -> Result<Vec<T>, LedgerError> {
        let dir = layout::ledger_prefix(station).child(kind);
        let metas = self.list(&dir).await?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas {
            if !meta.location.as_ref().ends_with(".json") {
                continue;
            }
            if let Some(bytes) = self.get(&meta.location).await? {
                out.push(self.parse(&meta.location, &bytes)?);
            }
        }
        Ok(out)
    }

    async fn list(&self, dir: &Path) -> Result<Vec<ObjectMeta>, LedgerError> {
        Ok(self.archive.list_all(Some(dir)).await.map_err(Box::new)?)
    }

    async fn get(&self, path: &Path) -> Result<Option<bytes::Bytes>, LedgerError> {
        Ok(self.archive.get_if_exists(path).await.map_err(Box::new)?)
    }

    /// Creates `path` unless it exists; whether this call created it.
    async fn create(&self, path: &Path, bytes: Vec<u8>) -> Result<bool, LedgerError> {
        let payload = PutPayload::from(bytes);
        Ok(self
            .archive
            .put_if_absent(path, payload)
            .await
            .map_err(Box::new)?)
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<T, LedgerError> {
        serde_json::from_slice(bytes).map_err(|e| LedgerError::Record {
            key: self.archive.key(path).to_string(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::identity::RECORD_VERSION;
    use crate::message::Timestamp;

    fn ledger() -> Ledger {
        Ledger::new(Archive::from_store(
            Arc::new(InMemory::new()),
            Path::from("pre"),
            "memory://",
        ))
    }

    fn inc(index: u32, created: &str, offset: u64) -> IncarnationRecord {
        IncarnationRecord {
            version: RECORD_VERSION,
            station: StationName::new("orders").unwrap(),
            incarnation: index,
            stream_created: created.into(),
            seq_offset: offset,
            detected_at: Timestamp(0).to_rfc3339(),
            previous_stream_created: None,
        }
    }

    #[tokio::test]
    async fn the_restore_key_is_made_once() {
        let l = ledger();
        let a = l.restore_key().await.unwrap();
        let b = l.restore_key().await.unwrap();
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn incarnations_are_recorded_once_and_listed_in_order() {
        let l = ledger();
        let st = StationName::new("orders").unwrap();
        assert!(l.incarnations(&st).await.unwrap().is_empty());
        l.record_incarnation(&inc(1, "b", 50)).await.unwrap();
        l.record_incarnation(&inc(0, "a", 0)).await.unwrap();
        l.record_incarnation(&inc(1, "b", 50)).await.unwrap();
        let e = l.record_incarnation(&inc(1, "c", 60)).await.unwrap_err();
        assert!(matches!(e, LedgerError::Conflict { index: 1, .. }), "{e}");
        assert!(
            e.to_string()
                .contains("(pre/_strata/stations/orders/incarnations/0000000001.json)"),
            "the full key: {e}"
        );
        let got = l.incarnations(&st).await.unwrap();
        assert_eq!(
            got.iter().map(|r| r.incarnation).collect::<Vec<_>>(),
            [0, 1]
        );
        let g = GapRecord::new(&got[1], 3, 4, Timestamp(0));
        l.record_gap(&g).await.unwrap();
        l.record_gap(&g).await.unwrap();
        assert_eq!(l.gaps(&st).await.unwrap(), vec![g]);
    }
}
