//! The source's side of the identity rule ([`crate::identity`]): which
//! incarnation of a stream a consumer reads, and the offset its sequences
//! are archived under.

use tokio::sync::OnceCell;

use crate::identity::cache::LocalCache;
use crate::identity::ledger::{Ledger, LedgerError};
use crate::identity::mac::RestoreKey;
use crate::identity::{IncarnationRecord, RECORD_VERSION};
use crate::message::{StationName, Timestamp};
use crate::metrics::Metrics;

use super::worker::Archive;

/// What every station worker shares: the archive's ledger and restore key,
/// with a local copy in the WAL directory when there is one.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) ledger: Ledger,
    cache: Option<LocalCache>,
    key: OnceCell<RestoreKey>,
}

impl Identity {
    pub(crate) fn new(ledger: Ledger, cache: Option<LocalCache>) -> Self {
        Self {
            ledger,
            cache,
            key: OnceCell::new(),
        }
    }

    /// The restore key: cached locally, else read (or created) in the
    /// archive and cached.
    pub(crate) async fn key(&self) -> Result<&RestoreKey, LedgerError> {
        self.key
            .get_or_try_init(|| async {
                if let Some(key) = self.cache.as_ref().and_then(LocalCache::restore_key) {
                    return Ok(key);
                }
                let key = self.ledger.restore_key().await?;
                if let Some(cache) = &self.cache {
                    if let Err(e) = cache.save_restore_key(&key) {
                        tracing::warn!(error = %e, "cannot keep a local copy of the restore key");
                    }
                }
                Ok(key)
            })
            .await
    }

    /// The key once [`Identity::key`] has loaded it.
    pub(crate) fn loaded_key(&self) -> Option<&RestoreKey> {
        self.key.get()
    }

    fn cache_incarnations(&self, station: &StationName, records: &[IncarnationRecord]) {
        if let Some(cache) = &self.cache {
            if let Err(e) = cache.save_incarnations(station, records) {
                tracing::warn!(station = %station, error = %e, "cannot keep a local copy of the incarnation records");
            }
        }
    }

    /// The incarnation of `station` whose stream was created at `created`:
    /// the recorded one, or a new one recorded now.
    ///
    /// A first incarnation gets offset 0 (seq = stream sequence) unless the
    /// station already holds seqs from elsewhere and the consumer is new
    /// (then its seqs start above them). A stream whose creation time differs
    /// from the last recorded one is a new incarnation, archived above every
    /// seq the station holds in the WAL or the archive.
    pub(crate) async fn bind(
        &self,
        station: &StationName,
        created: &str,
        consumer_existed: bool,
        wal: &dyn Archive,
        metrics: &Metrics,
    ) -> Result<IncarnationRecord, LedgerError> {
        if let Some(cache) = &self.cache {
            let local = cache.incarnations(station);
            if let Some(known) = local.iter().rev().find(|r| r.stream_created == created) {
                return Ok(known.clone());
            }
        }
        let mut records = self.ledger.incarnations(station).await?;
        if let Some(known) = records.iter().rev().find(|r| r.stream_created == created) {
            let known = known.clone();
            self.cache_incarnations(station, &records);
            return Ok(known);
        }
        let now = Timestamp::now().to_rfc3339();
        let record = match records.last() {
            None => {
                // Strata archived this stream before it kept records (its
                // consumer exists): the seqs it archived are stream sequences.
                let offset = if consumer_existed {
                    0
                } else {
                    let archived = self.ledger.highest_archived_seq(station).await?;
                    wal.highest_seq(station).max(archived).unwrap_or(0)
                };
                if offset > 0 {
                    tracing::warn!(
                        station = %station, seq_offset = offset,
                        "the station already holds seqs up to {offset} that did not come from this \
                         stream: its messages are archived as seq = {offset} + stream sequence",
                    );
                }
                IncarnationRecord {
                    version: RECORD_VERSION,
                    station: station.clone(),
                    incarnation: 0,
                    stream_created: created.to_string(),
                    seq_offset: offset,
                    detected_at: now,
                    previous_stream_created: None,
                }
            }
            Some(last) => {
                let archived = self.ledger.highest_archived_seq(station).await?;
                let offset = [Some(last.seq_offset), wal.highest_seq(station), archived]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(0);
                let record = IncarnationRecord {
                    version: RECORD_VERSION,
                    station: station.clone(),
                    incarnation: last.incarnation + 1,
                    stream_created: created.to_string(),
                    seq_offset: offset,
                    detected_at: now,
                    previous_stream_created: Some(last.stream_created.clone()),
                };
                tracing::warn!(
                    station = %station,
                    previous_incarnation = last.incarnation,
                    previous_stream_created = %last.stream_created,
                    incarnation = record.incarnation,
                    stream_created = %created,
                    seq_offset = offset,
                    "the stream was deleted and created again: its messages are archived as \
                     seq = {offset} + stream sequence, above every seq archived before",
                );
                metrics.inc_incarnation(station.as_str());
                record
            }
        };
        self.ledger.record_incarnation(&record).await?;
        records.push(record.clone());
        self.cache_incarnations(station, &records);
        Ok(record)
    }
}
