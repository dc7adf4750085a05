//! What a snapshot changes, decided without I/O: which manifests a delete
//! must rewrite and how, which manifests are carried over, the snapshot
//! summary, and the live files of an archive from its records (for
//! `strata iceberg rebuild`).

use std::collections::{BTreeMap, BTreeSet};

use super::manifest::{ManifestEntry, ManifestFile, Status};
use super::spec::{self, DataFile};
use crate::layout::{CommitRecord, CommittedFile, ReplacementRecord};

/// Snapshot operation `append` (files added only).
pub const APPEND: &str = "append";
/// Snapshot operation `replace` (files swapped, same rows).
pub const REPLACE: &str = "replace";

/// Prefix of the [`spec::RECORD_PROPERTY`] of a rebuild's snapshot.
pub const REBUILD_PREFIX: &str = "rebuild-";

/// Whether `s` is the snapshot of a `strata iceberg rebuild`.
pub fn is_rebuild(s: &spec::Snapshot) -> bool {
    s.summary
        .get(spec::RECORD_PROPERTY)
        .is_some_and(|r| r.starts_with(REBUILD_PREFIX))
}

/// Whether manifest `m` may list a file of `station` in `hour` (its partition
/// summary says so, or it has none).
pub fn may_hold(m: &ManifestFile, station: &str, hour: i32) -> bool {
    let [(slo, shi), (hlo, hhi)] = match m.partitions.as_slice() {
        [s, h] => [s, h],
        _ => return true,
    };
    let as_int = |b: &[u8]| <[u8; 4]>::try_from(b).map(i32::from_le_bytes).ok();
    let s = station.as_bytes();
    let station_in = slo.as_slice() <= s && s <= shi.as_slice();
    let hour_in = match (as_int(hlo), as_int(hhi)) {
        (Some(lo), Some(hi)) => lo <= hour && hour <= hi,
        _ => true,
    };
    station_in && hour_in
}

/// Whether a commit must read manifest `m`: it may list a file to delete, or
/// (with `skip_live`) a file about to be added that must not be listed twice.
/// Its partition summary decides; the others are carried over unread.
pub fn must_read(
    m: &ManifestFile,
    added: &[DataFile],
    deleted: &[DataFile],
    skip_live: bool,
) -> bool {
    let holds = |files: &[DataFile]| files.iter().any(|f| may_hold(m, &f.station, f.hour));
    holds(deleted) || (skip_live && holds(added))
}

/// The entries of a manifest rewritten for snapshot `snapshot_id`, which
/// deletes the files at `deleted` (paths): those become [`Status::Deleted`],
/// the other live ones [`Status::Existing`] (keeping their snapshot and
/// sequence numbers), and entries deleted earlier are dropped. Also returns
/// the files actually deleted.
pub fn rewrite_for_delete(
    entries: &[ManifestEntry],
    deleted: &BTreeSet<String>,
    snapshot_id: i64,
) -> (Vec<ManifestEntry>, Vec<DataFile>) {
    let mut out = Vec::with_capacity(entries.len());
    let mut gone = Vec::new();
    for e in entries.iter().filter(|e| e.status != Status::Deleted) {
        if deleted.contains(&e.file.path) {
            gone.push(e.file.clone());
            out.push(ManifestEntry {
                status: Status::Deleted,
                snapshot_id,
                ..e.clone()
            });
        } else {
            out.push(ManifestEntry {
                status: Status::Existing,
                ..e.clone()
            });
        }
    }
    (out, gone)
}

/// Manifests a snapshot may carry before the small ones are merged into one.
pub const MERGE_AFTER: usize = 100;
/// A manifest listing fewer live files than this counts as small.
pub const SMALL_MANIFEST_FILES: i64 = 1000;

/// The manifests of `list` to merge into one: every small one, once there are
/// more than [`MERGE_AFTER`] manifests and at least two are small. Each
/// append adds a manifest; merging now and then keeps the manifest list (read
/// by every commit and every reader) short.
pub fn manifests_to_merge(list: &[ManifestFile]) -> Vec<usize> {
    if list.len() <= MERGE_AFTER {
        return Vec::new();
    }
    let small: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            i64::from(m.added_files) + i64::from(m.existing_files) < SMALL_MANIFEST_FILES
        })
        .map(|(i, _)| i)
        .collect();
    if small.len() < 2 {
        return Vec::new();
    }
    small
}

/// The live entries of several manifests as one manifest's entries, each
/// [`Status::Existing`] with its snapshot and sequence numbers kept.
pub fn merge_entries(manifests: Vec<Vec<ManifestEntry>>) -> Vec<ManifestEntry> {
    manifests
        .into_iter()
        .flatten()
        .filter(|e| e.status != Status::Deleted)
        .map(|e| ManifestEntry {
            status: Status::Existing,
            ..e
        })
        .collect()
}

/// Whether a manifest list entry still lists a live file.
pub fn has_live_files(m: &ManifestFile) -> bool {
    m.added_files > 0 || m.existing_files > 0
}

/// The snapshot summary: the operation, what changed, totals over `list`
/// (the new snapshot's manifests) and the record it came from.
pub fn summary(
    operation: &str,
    added: &[DataFile],
    deleted: &[DataFile],
    list: &[ManifestFile],
    record: &str,
) -> BTreeMap<String, String> {
    let rows = |files: &[DataFile]| files.iter().map(|f| f.record_count).sum::<i64>();
    let total_files: i64 = list
        .iter()
        .map(|m| i64::from(m.added_files) + i64::from(m.existing_files))
        .sum();
    let total_rows: i64 = list.iter().map(|m| m.added_rows + m.existing_rows).sum();
    let mut s = BTreeMap::from([
        ("operation".to_string(), operation.to_string()),
        ("total-data-files".to_string(), total_files.to_string()),
        ("total-records".to_string(), total_rows.to_string()),
        ("total-delete-files".to_string(), "0".to_string()),
        ("total-position-deletes".to_string(), "0".to_string()),
        ("total-equality-deletes".to_string(), "0".to_string()),
        (spec::RECORD_PROPERTY.to_string(), record.to_string()),
    ]);
    if !added.is_empty() {
        s.insert("added-data-files".into(), added.len().to_string());
        s.insert("added-records".into(), rows(added).to_string());
        let size: i64 = added.iter().map(|f| f.file_size).sum();
        s.insert("added-files-size".into(), size.to_string());
    }
    if !deleted.is_empty() {
        s.insert("deleted-data-files".into(), deleted.len().to_string());
        s.insert("deleted-records".into(), rows(deleted).to_string());
        let size: i64 = deleted.iter().map(|f| f.file_size).sum();
        s.insert("removed-files-size".into(), size.to_string());
    }
    s
}

/// The files a complete table lists: every committed file and every merged
/// file, less every file a replacement record replaced; one per key, in key
/// order.
pub fn live_files(
    commits: &[CommitRecord],
    replacements: &[ReplacementRecord],
) -> Vec<CommittedFile> {
    let replaced: BTreeSet<&str> = replacements
        .iter()
        .flat_map(|r| r.replaced.iter().map(|f| f.key.as_str()))
        .collect();
    let mut live: BTreeMap<&str, &CommittedFile> = BTreeMap::new();
    let all = commits
        .iter()
        .flat_map(|c| c.files.iter())
        .chain(replacements.iter().map(|r| &r.merged));
    for f in all {
        if !replaced.contains(f.key.as_str()) {
            live.entry(f.key.as_str()).or_insert(f);
        }
    }
    live.into_values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iceberg::manifest::summarize;

    fn file(path: &str, station: &str, hour: i32, rows: i64) -> DataFile {
        DataFile {
            path: path.to_string(),
            station: station.to_string(),
            hour,
            record_count: rows,
            file_size: 10,
            lower_bounds: BTreeMap::new(),
            upper_bounds: BTreeMap::new(),
        }
    }

    fn entry(status: Status, f: DataFile) -> ManifestEntry {
        ManifestEntry {
            status,
            snapshot_id: 1,
            sequence_number: 1,
            file_sequence_number: 1,
            file: f,
        }
    }

    #[test]
    fn delete_rewrites_live_entries_and_drops_old_deletes() {
        let entries = vec![
            entry(Status::Added, file("a", "s", 1, 2)),
            entry(Status::Existing, file("b", "s", 1, 3)),
            entry(Status::Deleted, file("c", "s", 1, 4)),
        ];
        let deleted = BTreeSet::from(["b".to_string(), "zz".to_string()]);
        let (out, gone) = rewrite_for_delete(&entries, &deleted, 9);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status, Status::Existing);
        assert_eq!(
            out[0].snapshot_id, 1,
            "existing entries keep their snapshot"
        );
        assert_eq!(out[1].status, Status::Deleted);
        assert_eq!(out[1].snapshot_id, 9);
        assert_eq!(gone, vec![file("b", "s", 1, 3)]);
    }

    #[test]
    fn partition_summaries_prune_manifests() {
        let entries = vec![
            entry(Status::Added, file("a", "b-station", 10, 1)),
            entry(Status::Added, file("b", "d-station", 12, 1)),
        ];
        let m = summarize("m".into(), 1, &entries, 1, 1);
        assert!(may_hold(&m, "c-station", 11));
        assert!(!may_hold(&m, "e-station", 11));
        assert!(!may_hold(&m, "c-station", 13));
        assert!(may_hold(&summarize("m".into(), 1, &[], 1, 1), "x", 0));
        let elsewhere = [file("x", "e-station", 11, 1)];
        let inside = [file("y", "c-station", 11, 1)];
        assert!(
            must_read(&m, &[], &inside, false),
            "it may list a file to delete"
        );
        assert!(!must_read(&m, &[], &elsewhere, false));
        assert!(
            must_read(&m, &inside, &[], true),
            "it may list a file to add"
        );
        assert!(!must_read(&m, &inside, &[], false), "appends need not look");
    }

    #[test]
    fn small_manifests_merge_once_there_are_many() {
        let small = summarize(
            "m".into(),
            1,
            &[entry(Status::Added, file("a", "s", 1, 1))],
            1,
            1,
        );
        let mut big = small.clone();
        big.existing_files = SMALL_MANIFEST_FILES as i32;
        let mut list = vec![small.clone(); MERGE_AFTER];
        assert!(manifests_to_merge(&list).is_empty(), "not yet");
        list.push(big.clone());
        assert_eq!(
            manifests_to_merge(&list),
            (0..MERGE_AFTER).collect::<Vec<_>>()
        );
        let mostly_big = [vec![big; MERGE_AFTER], vec![small]].concat();
        assert!(
            manifests_to_merge(&mostly_big).is_empty(),
            "one small one stays"
        );

        let merged = merge_entries(vec![
            vec![entry(Status::Added, file("a", "s", 1, 1))],
            vec![
                entry(Status::Deleted, file("b", "s", 1, 1)),
                entry(Status::Existing, file("c", "s", 1, 1)),
            ],
        ]);
        let paths: Vec<&str> = merged.iter().map(|e| e.file.path.as_str()).collect();
        assert_eq!(paths, ["a", "c"]);
        assert!(merged.iter().all(|e| e.status == Status::Existing));
    }

    #[test]
    fn summary_counts_changes_and_totals() {
        let added = [file("a", "s", 1, 5)];
        let list = [summarize(
            "m".into(),
            1,
            &[entry(Status::Added, added[0].clone())],
            1,
            1,
        )];
        let s = summary(APPEND, &added, &[], &list, "k");
        assert_eq!(s["operation"], "append");
        assert_eq!(s["added-records"], "5");
        assert_eq!(s["total-records"], "5");
        assert_eq!(s[spec::RECORD_PROPERTY], "k");
        assert!(!s.contains_key("deleted-data-files"));
    }

    fn committed(key: &str) -> CommittedFile {
        CommittedFile {
            key: key.to_string(),
            station: "s".into(),
            rows: 1,
            first_seq: 1,
            last_seq: 1,
            min_timestamp: String::new(),
            max_timestamp: String::new(),
            bytes: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn live_files_are_committed_plus_merged_minus_replaced() {
        let commit = |files: &[&str]| CommitRecord {
            version: 1,
            wal_id: "w".into(),
            segment: 1,
            files: files.iter().map(|k| committed(k)).collect(),
            committed_at: String::new(),
            strata_version: String::new(),
        };
        let commits = [commit(&["a", "b"]), commit(&["c", "a"])];
        let replacements = [ReplacementRecord {
            version: 1,
            merged: committed("m"),
            replaced: vec![committed("a"), committed("b")],
            committed_at: String::new(),
            delete_after: String::new(),
            strata_version: String::new(),
        }];
        let keys: Vec<String> = live_files(&commits, &replacements)
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, ["c", "m"]);
        let keys: Vec<String> = live_files(&commits, &[])
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }
}
