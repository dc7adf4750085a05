//! Which data files a tier-2 merge replaced: the index over the replacement
//! records (`_strata/replacements/…`, see [`layout::ReplacementRecord`]) that
//! every reader shares, so `strata ls`, `strata restore`, the compactor's redo
//! check and the tier-2 planner agree on what a replaced file is.
//!
//! A stored file is *replaced* when a record names it and that record's merged
//! file is stored, or is itself replaced by a stored file (a merged file can be
//! merged again): following the chain, some stored file holds its rows. A
//! replaced file still stored is a *pending delete*; readers skip it. A record
//! whose merged file is missing (never finished, or replaced and deleted with
//! nothing after it) replaces nothing.
//!
//! [`Replacements`] is pure; [`load`] and [`covering_in_store`] do the I/O. To
//! keep reads cheap, [`Fetch::Relevant`] reads only the records whose merged
//! file's seq span holds another stored file of its partition: once a merge's
//! deletes are done its record is never read again (one list request, no get).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::layout::{self, DataKey, ReplacementRecord};
use crate::message::{StationName, Timestamp};
use crate::store::{Archive, StoreError};

/// Record reads in flight while loading.
const CONCURRENCY: usize = 16;

/// One replacement record, its keys parsed (relative to the archive root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The merged file (from the record's path).
    pub merged: DataKey,
    /// The files it replaces, in seq order.
    pub replaced: Vec<DataKey>,
    /// When the replaced files may be deleted (`None`: unreadable time, which
    /// counts as already passed).
    pub delete_after: Option<Timestamp>,
    /// The record as stored.
    pub record: ReplacementRecord,
}

impl Replacement {
    /// Parses `record`, stored at the path of `merged`; replaced keys are full
    /// keys turned relative by `relative` (the archive's prefix removed).
    /// `None` when a replaced key is not a data key of the archive.
    pub fn new(
        merged: DataKey,
        record: ReplacementRecord,
        relative: impl Fn(&str) -> Option<DataKey>,
    ) -> Option<Self> {
        let replaced = record
            .replaced
            .iter()
            .map(|f| relative(&f.key))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            merged,
            replaced,
            delete_after: Timestamp::parse_rfc3339(&record.delete_after).ok(),
            record,
        })
    }

    /// Whether its replaced files may be deleted at `now`.
    pub fn due(&self, now: Timestamp) -> bool {
        self.delete_after.is_none_or(|t| t <= now)
    }
}

/// The replacement records known to a reader; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct Replacements {
    /// Merged files with a stored record, read or not.
    merged: BTreeSet<DataKey>,
    /// Records read, by merged file.
    read: BTreeMap<DataKey, Replacement>,
    /// Replaced file → the merged files whose records name it.
    by_replaced: BTreeMap<DataKey, Vec<DataKey>>,
}

impl Replacements {
    /// The index of `read` records, among records stored for every file of `merged`.
    pub fn new(merged: BTreeSet<DataKey>, read: impl IntoIterator<Item = Replacement>) -> Self {
        let mut index = Self {
            merged,
            ..Self::default()
        };
        for r in read {
            for k in &r.replaced {
                index
                    .by_replaced
                    .entry(k.clone())
                    .or_default()
                    .push(r.merged.clone());
            }
            index.merged.insert(r.merged.clone());
            index.read.insert(r.merged.clone(), r);
        }
        index
    }

    /// Whether a replacement record names `key` as its merged file: the file
    /// is committed by that record.
    pub fn is_merged(&self, key: &DataKey) -> bool {
        self.merged.contains(key)
    }

    /// The record of merged file `key`, when it was read.
    pub fn record(&self, key: &DataKey) -> Option<&Replacement> {
        self.read.get(key)
    }

    /// Every record read.
    pub fn records(&self) -> impl Iterator<Item = &Replacement> {
        self.read.values()
    }

    /// The stored file that holds `key`'s rows because `key` was replaced:
    /// the merged file of a record naming `key`, followed through merges of
    /// merged files until one is stored. `None` when `key` is not replaced.
    pub fn covering(&self, key: &DataKey, stored: impl Fn(&DataKey) -> bool) -> Option<DataKey> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&DataKey> = vec![key];
        while let Some(k) = todo.pop() {
            for m in self.by_replaced.get(k).into_iter().flatten() {
                // A record naming its own merged file would make the file hide itself.
                if m == key || !seen.insert(m.clone()) {
                    continue;
                }
                if stored(m) {
                    return Some(m.clone());
                }
                todo.push(m);
            }
        }
        None
    }

    /// The records with replaced files still stored (pending deletes) whose
    /// merged file holds their rows, with those files.
    pub fn pending(
        &self,
        stored: impl Fn(&DataKey) -> bool + Copy,
    ) -> Vec<(&Replacement, Vec<DataKey>)> {
        self.read
            .values()
            .filter_map(|r| {
                let still: Vec<DataKey> = r
                    .replaced
                    .iter()
                    .filter(|k| **k != r.merged && stored(k))
                    .filter(|k| self.covering(k, stored).is_some())
                    .cloned()
                    .collect();
                (!still.is_empty()).then_some((r, still))
            })
            .collect()
    }
}

/// Which records [`load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Every record (`strata ls`: rows and times of every merged file).
    All,
    /// Only records whose merged file's span holds another stored file of its
    /// partition: the ones that can replace something stored.
    Relevant,
}

/// Loads the records of `station` (every station for `None`) given the data
/// files `stored` in the same scope; see [`Fetch`].
///
/// # Errors
/// [`StoreError`] of a failed list or get. An unreadable record is skipped
/// with a warning (its files then count as not replaced).
pub async fn load(
    archive: &Archive,
    station: Option<&StationName>,
    stored: &BTreeSet<DataKey>,
    fetch: Fetch,
) -> Result<Replacements, StoreError> {
    let prefix = match station {
        Some(s) => layout::replacements_prefix().child(format!("station={s}")),
        None => layout::replacements_prefix(),
    };
    let merged = list_records(archive, &prefix).await?;
    let want = |m: &DataKey| fetch == Fetch::All || holds_another(m, stored);
    read_records(archive, merged, want).await
}

/// The stored file that holds the rows of `key` (missing from the store)
/// because a tier-2 merge replaced it; `None` when none does. Lists `key`'s
/// partition and its records: for the rare check of a missing file.
///
/// # Errors
/// [`StoreError`] of a failed list or get.
pub async fn covering_in_store(
    archive: &Archive,
    key: &DataKey,
) -> Result<Option<DataKey>, StoreError> {
    let records = list_records(
        archive,
        &layout::replacements_hour_prefix(&key.station, key.hour),
    )
    .await?;
    if records.is_empty() {
        return Ok(None);
    }
    let stored: BTreeSet<DataKey> = archive
        .list_all(Some(&layout::hour_prefix(&key.station, key.hour)))
        .await?
        .iter()
        .filter_map(|m| DataKey::parse(&m.location))
        .collect();
    let index = read_records(archive, records, |m| spans(m, key)).await?;
    Ok(index.covering(key, |k| stored.contains(k)))
}

/// Merged files of the records stored under `prefix`.
async fn list_records(archive: &Archive, prefix: &Path) -> Result<BTreeSet<DataKey>, StoreError> {
    Ok(archive
        .list_all(Some(prefix))
        .await?
        .iter()
        .filter_map(|m| layout::parse_replacement_record_path(&m.location))
        .collect())
}

/// Reads the records of the merged files `want` keeps.
async fn read_records(
    archive: &Archive,
    merged: BTreeSet<DataKey>,
    want: impl Fn(&DataKey) -> bool,
) -> Result<Replacements, StoreError> {
    let wanted: Vec<DataKey> = merged.iter().filter(|m| want(m)).cloned().collect();
    let owned = archive.clone();
    let read: Vec<Option<Replacement>> = futures::stream::iter(wanted)
        .map(move |m| read_record(owned.clone(), m))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Replacements::new(merged, read.into_iter().flatten()))
}

/// The record of merged file `m`; `None` when it is gone or unreadable.
async fn read_record(archive: Archive, m: DataKey) -> Result<Option<Replacement>, StoreError> {
    let path = layout::replacement_record_path(&m);
    let Some(bytes) = archive.get_if_exists(&path).await? else {
        return Ok(None);
    };
    let relative = |full: &str| {
        archive
            .relative(&Path::from(full))
            .and_then(|p| DataKey::parse(&p))
    };
    let parsed = ReplacementRecord::from_json(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            Replacement::new(m, r, relative)
                .ok_or_else(|| "a replaced file is not a data file of this archive".into())
        });
    Ok(match parsed {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(key = %archive.key(&path), error = %e,
                "unreadable replacement record ignored: the files it names count as not replaced");
            None
        }
    })
}

/// Whether a file of `stored` lies in the partition and seq span of another:
/// the only way one can have replaced the other. When none does, a reader
/// skips listing the records (a restore after every delete is done).
pub fn any_nested(stored: &BTreeSet<DataKey>) -> bool {
    let mut prev: Option<&DataKey> = None;
    let mut max_last = 0u64;
    for k in stored {
        match prev {
            Some(p) if p.station == k.station && p.hour == k.hour => {
                // Sorted by (first, last): an earlier file reaching as far
                // contains this one; one with the same first is inside it.
                if max_last >= k.last_seq || p.first_seq == k.first_seq {
                    return true;
                }
                max_last = max_last.max(k.last_seq);
            }
            _ => max_last = k.last_seq,
        }
        prev = Some(k);
    }
    false
}

/// Whether `outer`'s partition and seq span hold `inner`.
fn spans(outer: &DataKey, inner: &DataKey) -> bool {
    outer.station == inner.station
        && outer.hour == inner.hour
        && outer.first_seq <= inner.first_seq
        && inner.last_seq <= outer.last_seq
}

/// Whether a stored file other than `merged` lies in its partition and span.
fn holds_another(merged: &DataKey, stored: &BTreeSet<DataKey>) -> bool {
    let from = DataKey {
        last_seq: 0,
        ..merged.clone()
    };
    let to = DataKey {
        first_seq: merged.last_seq,
        last_seq: u64::MAX,
        ..merged.clone()
    };
    stored
        .range(from..=to)
        .any(|k| k != merged && spans(merged, k))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::layout::{Hour, REPLACEMENT_RECORD_VERSION};

    fn key(first: u64, last: u64) -> DataKey {
        DataKey {
            station: StationName::new("s").unwrap(),
            hour: Hour {
                date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                hour: 9,
            },
            first_seq: first,
            last_seq: last,
        }
    }

    fn replacement(merged: DataKey, replaced: &[DataKey]) -> Replacement {
        Replacement {
            merged,
            replaced: replaced.to_vec(),
            delete_after: Some(Timestamp(0)),
            record: ReplacementRecord {
                version: REPLACEMENT_RECORD_VERSION,
                merged: placeholder(),
                replaced: Vec::new(),
                committed_at: String::new(),
                delete_after: String::new(),
                strata_version: String::new(),
            },
        }
    }

    fn placeholder() -> layout::CommittedFile {
        layout::CommittedFile {
            key: String::new(),
            station: "s".into(),
            rows: 0,
            first_seq: 0,
            last_seq: 0,
            min_timestamp: String::new(),
            max_timestamp: String::new(),
            bytes: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn a_file_is_replaced_only_while_a_stored_file_holds_its_rows() {
        let (a, b, m1, c, m2) = (key(1, 5), key(6, 9), key(1, 9), key(10, 12), key(1, 12));
        let index = Replacements::new(
            BTreeSet::new(),
            [
                replacement(m1.clone(), &[a.clone(), b.clone()]),
                replacement(m2.clone(), &[m1.clone(), c.clone()]),
            ],
        );
        assert!(index.is_merged(&m1) && index.is_merged(&m2) && !index.is_merged(&a));
        // Everything stored: a is covered by m1.
        let all = [&a, &b, &m1, &c, &m2];
        assert_eq!(index.covering(&a, |k| all.contains(&k)), Some(m1.clone()));
        // m1 merged again and deleted, a still pending: m2 holds a's rows.
        let after = [&a, &c, &m2];
        assert_eq!(index.covering(&a, |k| after.contains(&k)), Some(m2.clone()));
        // Nothing merged is stored (a merge that never finished): not replaced.
        let small = [&a, &b, &c];
        assert_eq!(index.covering(&a, |k| small.contains(&k)), None);
        assert_eq!(index.covering(&m2, |k| all.contains(&k)), None);
        let pending = index.pending(|k| after.contains(&k));
        assert_eq!(pending.len(), 2, "{pending:?}");
        assert!(index.pending(|k| k == &m2).is_empty());
    }

    #[test]
    fn nested_files_are_found_in_one_sorted_walk() {
        let set = |keys: &[DataKey]| keys.iter().cloned().collect::<BTreeSet<_>>();
        assert!(!any_nested(&set(&[key(1, 5), key(6, 9), key(10, 10)])));
        assert!(
            !any_nested(&set(&[key(1, 5), key(3, 9)])),
            "overlap is not nesting"
        );
        assert!(any_nested(&set(&[key(1, 9), key(3, 4)])));
        assert!(any_nested(&set(&[key(1, 5), key(1, 9)])));
        assert!(any_nested(&set(&[key(1, 20), key(2, 3), key(25, 30)])));
        let other_hour = DataKey {
            hour: key(0, 0).hour.next(),
            ..key(2, 3)
        };
        assert!(!any_nested(&set(&[key(1, 9), other_hour])));
    }

    proptest::proptest! {
        #[test]
        fn any_nested_agrees_with_pairwise(pairs in proptest::collection::vec((0u64..30, 0u64..6), 0..12)) {
            let stored: BTreeSet<DataKey> = pairs.iter().map(|&(f, l)| key(f, f + l)).collect();
            let pairwise = stored.iter().any(|a| stored.iter().any(|b| a != b && spans(a, b)));
            proptest::prop_assert_eq!(any_nested(&stored), pairwise);
        }
    }

    #[test]
    fn relevant_records_are_those_that_span_another_stored_file() {
        let stored: BTreeSet<DataKey> = [key(1, 9), key(3, 4), key(20, 30)].into();
        assert!(holds_another(&key(1, 9), &stored));
        assert!(!holds_another(&key(20, 30), &stored));
        assert!(holds_another(&key(0, 100), &stored));
        assert!(!holds_another(&key(4, 8), &stored), "3-4 is not inside 4-8");
    }
}
