//! Which files a tier-2 pass merges, decided without I/O.
//!
//! Per station and hour partition, the committed files below the target size
//! are taken in seq order and cut into groups whose sizes add up to at most
//! the target; a group of two or more files becomes one merged file whose key
//! spans the group's first to last seq. A file that may not be merged (too
//! large, a merged file whose own replaced files are still stored) ends the
//! group before it, so a merged file's span never holds a file it does not
//! replace.
//!
//! A merged file uploaded by a pass that stopped before its record is
//! *uncommitted*; when such a file spans two or more mergeable files exactly,
//! that group is planned first, so the rerun rewrites the same object instead
//! of leaving it behind (even when new files arrived in between).

use std::collections::{BTreeMap, BTreeSet};

use crate::layout::{DataKey, Hour};
use crate::message::StationName;

/// What a stored data file is to the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Named by a commit record or as the merged file of a replacement record,
    /// and not replaced: may be merged when small.
    Committed,
    /// Committed, but not to be merged in this pass: a merged file whose own
    /// replaced files are still stored.
    Held,
    /// Replaced by a stored merged file (a pending delete).
    Replaced,
    /// In no record: an upload whose commit has not happened (yet).
    Uncommitted,
}

/// One stored data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its key.
    pub key: DataKey,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it is.
    pub state: FileState,
}

/// One merge: `files` (two or more, seq order) become `merged`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The merged file's key: the group's station, hour, first and last seq.
    pub merged: DataKey,
    /// The files merged, in seq order.
    pub files: Vec<DataKey>,
    /// Their sizes added up.
    pub bytes: u64,
}

/// The groups to merge among `files` (any partitions), files of at most
/// `target` bytes in total each; see the module doc.
pub fn plan(files: &[StoredFile], target: u64) -> Vec<Group> {
    let mut partitions: BTreeMap<(&StationName, Hour), Vec<&StoredFile>> = BTreeMap::new();
    for f in files {
        partitions
            .entry((&f.key.station, f.key.hour))
            .or_default()
            .push(f);
    }
    partitions
        .into_values()
        .flat_map(|mut files| {
            files.sort_by_key(|f| (f.key.first_seq, f.key.last_seq));
            plan_partition(&files, target)
        })
        .collect()
}

/// Whether `f` may be merged.
fn mergeable(f: &StoredFile, target: u64) -> bool {
    f.state == FileState::Committed && f.bytes < target
}

/// One partition's groups; `files` sorted by seq.
fn plan_partition(files: &[&StoredFile], target: u64) -> Vec<Group> {
    // Keys a merged file must never take: a file it does not replace would be
    // overwritten (an uncommitted file may be: it is what a rerun rewrites).
    let taken: BTreeSet<&DataKey> = files
        .iter()
        .filter(|f| f.state != FileState::Uncommitted)
        .map(|f| &f.key)
        .collect();
    let live: Vec<&StoredFile> = files
        .iter()
        .copied()
        .filter(|f| f.state != FileState::Replaced)
        .collect();
    let mut used: BTreeSet<&DataKey> = BTreeSet::new();
    let mut groups = Vec::new();

    // An interrupted merge first, so its object is rewritten with its record.
    for orphan in live.iter().filter(|f| f.state == FileState::Uncommitted) {
        let inside: Vec<&StoredFile> = live
            .iter()
            .copied()
            .filter(|f| f.key != orphan.key && within(&orphan.key, &f.key))
            .collect();
        let exact = inside.first().map(|f| f.key.first_seq) == Some(orphan.key.first_seq)
            && inside.iter().map(|f| f.key.last_seq).max() == Some(orphan.key.last_seq);
        let all_mergeable = inside
            .iter()
            .all(|f| mergeable(f, target) && !used.contains(&f.key));
        if inside.len() >= 2 && exact && all_mergeable && !taken.contains(&orphan.key) {
            used.extend(inside.iter().map(|f| &f.key));
            groups.push(group(&inside));
        }
    }

    let mut current: Vec<&StoredFile> = Vec::new();
    let mut bytes = 0u64;
    for f in live.iter().copied() {
        if f.state == FileState::Uncommitted {
            continue;
        }
        let free = mergeable(f, target) && !used.contains(&f.key);
        if free && bytes.saturating_add(f.bytes) <= target {
            bytes += f.bytes;
            current.push(f);
            continue;
        }
        close(&mut current, &taken, &mut groups);
        bytes = 0;
        if free {
            bytes = f.bytes;
            current.push(f);
        }
    }
    close(&mut current, &taken, &mut groups);
    groups
}

/// Ends the group being built: kept when it has two or more files and its
/// key is free, else shortened from the end until it is (or too short).
fn close(current: &mut Vec<&StoredFile>, taken: &BTreeSet<&DataKey>, out: &mut Vec<Group>) {
    while current.len() >= 2 {
        let g = group(current);
        if !taken.contains(&g.merged) {
            out.push(g);
            break;
        }
        current.pop();
    }
    current.clear();
}

fn group(files: &[&StoredFile]) -> Group {
    let first = &files[0].key;
    Group {
        merged: DataKey {
            station: first.station.clone(),
            hour: first.hour,
            first_seq: files.iter().map(|f| f.key.first_seq).min().unwrap_or(0),
            last_seq: files.iter().map(|f| f.key.last_seq).max().unwrap_or(0),
        },
        files: files.iter().map(|f| f.key.clone()).collect(),
        bytes: files.iter().map(|f| f.bytes).sum(),
    }
}

/// Whether `inner`'s seq span lies inside `outer`'s (same partition assumed).
fn within(outer: &DataKey, inner: &DataKey) -> bool {
    outer.first_seq <= inner.first_seq && inner.last_seq <= outer.last_seq
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;

    fn key(station: &str, hour: u8, first: u64, last: u64) -> DataKey {
        DataKey {
            station: StationName::new(station).unwrap(),
            hour: Hour {
                date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                hour,
            },
            first_seq: first,
            last_seq: last,
        }
    }

    fn file(first: u64, last: u64, bytes: u64, state: FileState) -> StoredFile {
        StoredFile {
            key: key("s", 9, first, last),
            bytes,
            state,
        }
    }

    use FileState::*;

    #[test]
    fn small_committed_files_are_grouped_in_seq_order_up_to_the_target() {
        let files = [
            file(11, 20, 40, Committed),
            file(1, 10, 40, Committed),
            file(21, 30, 40, Committed),
            file(31, 40, 40, Committed),
        ];
        let groups = plan(&files, 100);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].merged, key("s", 9, 1, 20));
        assert_eq!(
            groups[0].files,
            vec![key("s", 9, 1, 10), key("s", 9, 11, 20)]
        );
        assert_eq!(groups[0].bytes, 80);
        assert_eq!(groups[1].merged, key("s", 9, 21, 40));
    }

    #[test]
    fn large_held_replaced_and_uncommitted_files_are_not_merged() {
        let files = [
            file(1, 10, 10, Committed),
            file(11, 20, 500, Committed),
            file(21, 30, 10, Committed),
            file(31, 40, 10, Held),
            file(41, 50, 10, Committed),
            file(51, 60, 10, Replaced),
            file(61, 70, 10, Uncommitted),
            file(71, 80, 10, Committed),
        ];
        let groups = plan(&files, 100);
        // 1-10 alone (the large file follows), 21-30 alone (held follows);
        // 41-50 and 71-80: replaced and uncommitted files do not break a run.
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(
            groups[0].files,
            vec![key("s", 9, 41, 50), key("s", 9, 71, 80)]
        );
    }

    #[test]
    fn partitions_and_stations_are_planned_apart() {
        let files = [
            StoredFile {
                key: key("s", 9, 1, 1),
                bytes: 1,
                state: Committed,
            },
            StoredFile {
                key: key("s", 10, 2, 2),
                bytes: 1,
                state: Committed,
            },
            StoredFile {
                key: key("t", 9, 1, 1),
                bytes: 1,
                state: Committed,
            },
        ];
        assert!(plan(&files, 100).is_empty());
    }

    #[test]
    fn an_interrupted_merge_is_planned_again_with_the_same_key() {
        // 1-20 was uploaded from 1-10 and 11-20, then the pass stopped; 21-30
        // arrived since. The rerun rewrites 1-20, then may merge the rest.
        let files = [
            file(1, 10, 10, Committed),
            file(1, 20, 18, Uncommitted),
            file(11, 20, 10, Committed),
            file(21, 30, 10, Committed),
            file(31, 40, 10, Committed),
        ];
        let groups = plan(&files, 100);
        assert_eq!(groups[0].merged, key("s", 9, 1, 20));
        assert_eq!(groups[1].merged, key("s", 9, 21, 40));
    }

    #[test]
    fn a_merged_key_never_takes_the_key_of_a_file_it_does_not_replace() {
        // 1-10 and 5-6 (a duplicate) would merge into 1-10: the key of one of them.
        let files = [file(1, 10, 10, Committed), file(5, 6, 10, Committed)];
        assert!(plan(&files, 100).is_empty());
    }

    fn any_state() -> impl Strategy<Value = FileState> {
        prop_oneof![
            6 => Just(Committed),
            1 => Just(Held),
            1 => Just(Replaced),
            1 => Just(Uncommitted),
        ]
    }

    fn any_files() -> impl Strategy<Value = Vec<StoredFile>> {
        prop::collection::vec((0u8..3, 0u64..60, 0u64..5, 1u64..80, any_state()), 0..40).prop_map(
            |v| {
                let mut seen = BTreeSet::new();
                v.into_iter()
                    .map(|(hour, first, len, bytes, state)| StoredFile {
                        key: key("s", hour, first, first + len),
                        bytes,
                        state,
                    })
                    .filter(|f| seen.insert(f.key.clone()))
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn groups_respect_every_rule(files in any_files(), target in 1u64..200) {
            let groups = plan(&files, target);
            let by_key: BTreeMap<&DataKey, &StoredFile> = files.iter().map(|f| (&f.key, f)).collect();
            let mut used = BTreeSet::new();
            for g in &groups {
                prop_assert!(g.files.len() >= 2);
                for k in &g.files {
                    let f = by_key[k];
                    prop_assert_eq!(f.state, Committed);
                    prop_assert!(f.bytes < target);
                    prop_assert!(used.insert(k.clone()), "{:?} in two groups", k);
                    prop_assert_eq!((&k.station, k.hour), (&g.merged.station, g.merged.hour));
                    prop_assert!(within(&g.merged, k));
                    prop_assert!(k != &g.merged);
                }
                prop_assert!(g.files.windows(2).all(|w| (w[0].first_seq, w[0].last_seq) <= (w[1].first_seq, w[1].last_seq)));
                prop_assert_eq!(g.merged.first_seq, g.files.iter().map(|k| k.first_seq).min().unwrap());
                prop_assert_eq!(g.merged.last_seq, g.files.iter().map(|k| k.last_seq).max().unwrap());
                // Never the key of a committed file it does not replace.
                if let Some(other) = by_key.get(&g.merged) {
                    prop_assert_eq!(other.state, Uncommitted);
                }
            }
        }

        #[test]
        fn small_committed_files_leave_at_most_one_per_partition(
            sizes in prop::collection::vec(1u64..50, 2..60),
        ) {
            let files: Vec<StoredFile> = sizes
                .iter()
                .enumerate()
                .map(|(i, &b)| file(i as u64 * 10, i as u64 * 10 + 9, b, Committed))
                .collect();
            let groups = plan(&files, 100);
            let merged: usize = groups.iter().map(|g| g.files.len()).sum();
            prop_assert!(files.len() - merged <= 1, "{} of {} left", files.len() - merged, files.len());
            for g in &groups {
                prop_assert!(g.bytes <= 100);
            }
        }
    }
}
