//! Crash recovery, duplicate detection and the disk contracts of the WAL,
//! through its public API and by damaging its files the way crashes and bad
//! disks do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use strata::wal::{
    inspect, Appended, RecoveryMode, SegmentId, SegmentState, Wal, WalError, WalOptions,
};
use strata::{Draft, Header, Message, StationName, Timestamp};

fn st(name: &str) -> StationName {
    StationName::new(name).unwrap()
}

fn draft(station: &str, seq: Option<u64>, payload: &[u8]) -> Draft {
    Draft {
        station: st(station),
        seq,
        timestamp: Timestamp(1_700_000_000_000_000 + seq.unwrap_or(0) as i64),
        id: seq.map(|s| format!("id-{s}")),
        subject: Some(format!("{station}.events")),
        headers: vec![Header::new("h", "v")],
        payload: Bytes::copy_from_slice(payload),
    }
}

fn small(dir: &Path) -> WalOptions {
    let mut o = WalOptions::new(dir);
    o.segment_max_bytes = 2048;
    o
}

/// Files of a directory (not recursive), by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        if name != "wal.lock" {
            fs::write(to.join(name), bytes).unwrap();
        }
    }
}

/// Seals, then every message of every sealed segment in log order.
fn read_all(wal: &Wal) -> Vec<Message> {
    wal.seal().unwrap();
    wal.sealed()
        .iter()
        .flat_map(|s| wal.read_segment(s.id).unwrap())
        .collect()
}

fn flip_bit(path: &Path, offset: u64) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= 0x08;
    fs::write(path, b).unwrap();
}

/// Appends batches and leaves in `dir` what a crash right after them leaves
/// (a clean close would seal the active segment); returns the active
/// segment's path there and the end offset of each entry in it.
fn write_entries(dir: &Path, batches: &[Vec<Draft>]) -> (PathBuf, Vec<u64>) {
    let live = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(live.path())).unwrap();
    let active = segment_files(live.path(), "open").pop().unwrap();
    let mut ends = vec![fs::metadata(&active).unwrap().len()];
    for b in batches {
        wal.append_blocking(b.clone()).unwrap();
        ends.push(fs::metadata(&active).unwrap().len());
    }
    copy_dir(live.path(), dir);
    wal.close().unwrap();
    (dir.join(active.file_name().unwrap()), ends)
}

#[test]
fn every_cut_of_the_last_entry_keeps_every_earlier_entry() {
    let base = tempfile::tempdir().unwrap();
    let original = base.path().join("original");
    let batches = vec![
        vec![draft("a", Some(1), b"one"), draft("b", Some(7), b"seven")],
        vec![draft("a", Some(2), b"two")],
        vec![draft("a", Some(3), b"three"), draft("a", Some(4), b"four")],
    ];
    let (active, ends) = write_entries(&original, &batches);
    let name = active.file_name().unwrap().to_owned();
    let bytes = fs::read(&active).unwrap();
    let expected: Vec<Message> = batches[..2]
        .iter()
        .flatten()
        .cloned()
        .map(|d| {
            let s = d.seq.unwrap();
            d.into_message(s)
        })
        .collect();

    for cut in ends[2]..ends[3] {
        let dir = base.path().join(format!("cut-{cut}"));
        copy_dir(&original, &dir);
        fs::write(dir.join(&name), &bytes[..cut as usize]).unwrap();
        let wal = Wal::open(WalOptions::new(&dir)).unwrap();
        let sealed = wal.sealed();
        assert_eq!(sealed.len(), 1, "cut {cut}");
        assert_eq!(sealed[0].bytes, ends[2], "cut {cut}");
        assert_eq!(
            wal.read_segment(sealed[0].id).unwrap(),
            expected,
            "cut {cut}"
        );
        assert_eq!(
            wal.stats().set_aside,
            0,
            "nothing is set aside for a torn tail"
        );
        // The lost batch was never acknowledged: its sequences are free again.
        assert_eq!(wal.last_seq(&st("a")), Some(2));
        let a = wal
            .append_blocking(vec![draft("a", Some(3), b"again")])
            .unwrap();
        assert_eq!(a.accepted, 1, "cut {cut}");
        drop(wal);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_cut_segment_header_is_rewritten_and_nothing_is_lost() {
    let base = tempfile::tempdir().unwrap();
    let original = base.path().join("original");
    let (active, ends) = write_entries(&original, &[]);
    assert_eq!(ends, vec![40]);
    let name = active.file_name().unwrap().to_owned();
    for cut in 0..40 {
        let dir = base.path().join(format!("cut-{cut}"));
        copy_dir(&original, &dir);
        let b = fs::read(dir.join(&name)).unwrap();
        fs::write(dir.join(&name), &b[..cut]).unwrap();
        let wal = Wal::open(WalOptions::new(&dir)).unwrap();
        assert!(wal.sealed().is_empty());
        wal.append_blocking(vec![draft("a", None, b"x")]).unwrap();
        assert_eq!(read_all(&wal).len(), 1);
    }
}

#[test]
fn a_torn_tail_is_set_aside_instead_when_asked() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("w");
    let (active, ends) = write_entries(
        &dir,
        &[
            vec![draft("a", Some(1), b"x")],
            vec![draft("a", Some(2), b"y")],
        ],
    );
    let b = fs::read(&active).unwrap();
    fs::write(&active, &b[..ends[2] as usize - 3]).unwrap();
    let wal =
        Wal::open_with_recovery(WalOptions::new(&dir), RecoveryMode::SetAsideTornTail).unwrap();
    assert!(wal.sealed().is_empty());
    assert_eq!(wal.stats().set_aside, 1);
    let kept = dir.join("corrupt").join(active.file_name().unwrap());
    assert_eq!(fs::read(kept).unwrap(), &b[..ends[2] as usize - 3]);
    // The readable entry's sequence stays taken.
    assert_eq!(wal.last_seq(&st("a")), Some(1));
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_is_reported_and_set_aside_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    for i in 1..=5 {
        wal.append_blocking(vec![draft("a", Some(i), &[b'p'; 100])])
            .unwrap();
    }
    let id = wal.seal().unwrap().unwrap();
    let seg = wal.sealed()[0].clone();
    assert_eq!(seg.id, id);
    drop(wal);

    flip_bit(&seg.path, seg.bytes - 10);
    let before = fs::read(&seg.path).unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    // Covered by the snapshot: listed after the cheap checks, caught on read.
    let e = wal.read_segment(id).unwrap_err();
    let WalError::Corrupt { path, offset, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(path, &seg.path);
    assert!(*offset > 40 && *offset < seg.bytes, "{offset}");
    assert!(e.to_string().contains("at byte"), "{e}");

    wal.set_aside(id, &e.to_string()).unwrap();
    assert!(wal.sealed().is_empty());
    assert_eq!(wal.stats().set_aside, 1);
    assert!(!seg.path.exists());
    let kept = dir
        .path()
        .join("corrupt")
        .join(seg.path.file_name().unwrap());
    assert_eq!(fs::read(&kept).unwrap(), before, "set aside untouched");
    let reason = fs::read_to_string(format!("{}.reason", kept.display())).unwrap();
    assert!(reason.contains("at byte"), "{reason}");
    assert!(matches!(wal.read_segment(id), Err(WalError::NotSealed(_))));
    // Its sequences stay known: redeliveries are still duplicates.
    let a = wal
        .append_blocking(vec![draft("a", Some(3), b"x")])
        .unwrap();
    assert_eq!(a.duplicates, 1);
    drop(wal);

    // And it stays set aside, listed by inspect, across a restart.
    let wal = Wal::open(small(dir.path())).unwrap();
    assert!(wal.sealed().is_empty());
    assert_eq!(wal.stats().set_aside, 1);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(report.set_aside.len(), 1);
    assert!(report.set_aside[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("at byte"));
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_the_snapshot_does_not_cover_is_set_aside_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let old_snapshot = fs::read(dir.path().join("seqs.snapshot")).unwrap();
    for i in 1..=3 {
        wal.append_blocking(vec![draft("a", Some(i), &[b'p'; 50])])
            .unwrap();
    }
    wal.seal().unwrap();
    let seg = wal.sealed()[0].clone();
    wal.append_blocking(vec![draft("a", Some(4), b"in the next segment")])
        .unwrap();
    drop(wal);
    // As if the process died between sealing and writing the snapshot.
    fs::write(dir.path().join("seqs.snapshot"), old_snapshot).unwrap();
    flip_bit(&seg.path, 60);
    let damaged = fs::read(&seg.path).unwrap();

    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let kept = dir
        .path()
        .join("corrupt")
        .join(seg.path.file_name().unwrap());
    assert_eq!(fs::read(&kept).unwrap(), damaged, "set aside untouched");
    assert!(!seg.path.exists());
    assert_eq!(wal.stats().set_aside, 1);
    // The next segment was recovered; nothing else is listed.
    let sealed = wal.sealed();
    assert_eq!(sealed.len(), 1);
    assert_eq!(wal.read_segment(sealed[0].id).unwrap()[0].seq, 4);
    // Entries 2 and 3 were readable after the damage: their seqs stay taken.
    let a = wal
        .append_blocking(vec![draft("a", Some(2), b"x"), draft("a", Some(3), b"x")])
        .unwrap();
    assert_eq!(a.duplicates, 2);
}

#[test]
fn a_flipped_bit_in_the_middle_of_the_active_segment_sets_it_aside() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("w");
    let (active, ends) = write_entries(
        &dir,
        &[
            vec![draft("a", Some(1), b"first")],
            vec![draft("a", Some(2), b"second")],
            vec![draft("a", Some(3), b"third")],
        ],
    );
    flip_bit(&active, ends[1] + 30);
    let damaged = fs::read(&active).unwrap();
    let before: BTreeSet<String> = files(&dir).into_keys().collect();

    let wal = Wal::open(WalOptions::new(&dir)).unwrap();
    assert!(wal.sealed().is_empty());
    assert_eq!(wal.stats().set_aside, 1);
    let kept = dir.join("corrupt").join(active.file_name().unwrap());
    assert_eq!(fs::read(&kept).unwrap(), damaged);
    // Nothing was deleted: every file is still there (or moved to corrupt/).
    let after: BTreeSet<String> = files(&dir).into_keys().collect();
    for name in before {
        assert!(
            after.contains(&name) || dir.join("corrupt").join(&name).exists(),
            "{name} disappeared"
        );
    }
    // Seqs 1 (before) and 3 (after the damage) are readable and stay taken;
    // seq 2 is unreadable and may be delivered again.
    let a = wal
        .append_blocking(vec![
            draft("a", Some(1), b"x"),
            draft("a", Some(2), b"x"),
            draft("a", Some(3), b"x"),
        ])
        .unwrap();
    assert_eq!((a.accepted, a.duplicates), (1, 2));
}

#[test]
fn every_acknowledged_batch_of_concurrent_appenders_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    let acked: Vec<Vec<Message>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let wal = wal.clone();
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for b in 0..25u64 {
                        let batch: Vec<Draft> = (0..(b % 4 + 1))
                            .map(|i| {
                                draft(
                                    &format!("s{}", t % 3),
                                    None,
                                    format!("{t}-{b}-{i}").as_bytes(),
                                )
                            })
                            .collect();
                        let a = wal.append_blocking(batch.clone()).unwrap();
                        assert_eq!(a.accepted, batch.len());
                        let (_, first, last) = a.ranges[0].clone();
                        assert_eq!(last - first + 1, batch.len() as u64);
                        acked.extend(
                            batch
                                .into_iter()
                                .zip(first..)
                                .map(|(d, s)| d.into_message(s)),
                        );
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(wal);

    let wal = Wal::open(small(dir.path())).unwrap();
    assert!(wal.sealed().len() > 2, "small segments roll");
    let mut got = read_all(&wal);
    let mut want: Vec<Message> = acked.into_iter().flatten().collect();
    let key = |m: &Message| (m.station.clone(), m.seq);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    // Auto-assigned sequences are dense per station.
    for station in ["s0", "s1", "s2"] {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|m| m.station.as_str() == station)
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn duplicates_are_dropped_across_restarts_and_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    let batch: Vec<Draft> = (1..=10).map(|i| draft("a", Some(i), b"x")).collect();
    assert_eq!(wal.append_blocking(batch).unwrap().accepted, 10);
    drop(wal);

    let wal = Wal::open(small(dir.path())).unwrap();
    let again: Vec<Draft> = (5..=12).map(|i| draft("a", Some(i), b"x")).collect();
    let a = wal.append_blocking(again).unwrap();
    assert_eq!((a.accepted, a.duplicates), (2, 6));
    assert_eq!(a.ranges, vec![(st("a"), 11, 12)]);
    // Compact: every sealed segment is archived and deleted.
    wal.seal().unwrap();
    for s in wal.sealed() {
        wal.remove_sealed(s.id).unwrap();
        assert!(!s.path.exists());
    }
    assert!(wal.sealed().is_empty());
    drop(wal);

    let wal = Wal::open(small(dir.path())).unwrap();
    assert!(wal.sealed().is_empty());
    let redelivered: Vec<Draft> = (1..=13).map(|i| draft("a", Some(i), b"x")).collect();
    let a = wal.append_blocking(redelivered).unwrap();
    assert_eq!((a.accepted, a.duplicates), (1, 12));
    assert_eq!(a.ranges, vec![(st("a"), 13, 13)]);
}

#[test]
fn automatic_sequences_continue_across_restarts_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    let a = wal
        .append_blocking(vec![draft("h", None, b"1"), draft("h", None, b"2")])
        .unwrap();
    assert_eq!(a.ranges, vec![(st("h"), 1, 2)]);
    drop(wal);

    let wal = Wal::open(small(dir.path())).unwrap();
    assert_eq!(wal.last_seq(&st("h")), Some(2));
    let a = wal.append_blocking(vec![draft("h", None, b"3")]).unwrap();
    assert_eq!(a.ranges, vec![(st("h"), 3, 3)]);
    wal.seal().unwrap();
    for s in wal.sealed() {
        wal.remove_sealed(s.id).unwrap();
    }
    drop(wal);

    let wal = Wal::open(small(dir.path())).unwrap();
    let a = wal.append_blocking(vec![draft("h", None, b"4")]).unwrap();
    assert_eq!(a.ranges, vec![(st("h"), 4, 4)]);
    // Segment numbers are never reused after deletion either.
    let id = wal.seal().unwrap().unwrap();
    assert!(id > SegmentId(2), "{id:?}");
}

#[test]
fn a_full_wal_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small(dir.path());
    o.max_disk_bytes = 3000;
    let wal = Wal::open(o).unwrap();
    let mut n = 0;
    let err = loop {
        match wal.append_blocking(vec![draft("a", None, &[b'x'; 200])]) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 100);
    };
    let WalError::Full { used, max } = err else {
        panic!("{err}");
    };
    assert_eq!(max, 3000);
    assert!(used <= max);
    let before = files(dir.path());
    let stats = wal.stats();
    assert!(stats.disk_bytes <= 3000, "{stats:?}");
    assert!(matches!(
        wal.append_blocking(vec![draft("a", None, &[b'y'; 200])]),
        Err(WalError::Full { .. })
    ));
    assert_eq!(files(dir.path()), before, "a refused append writes nothing");
    assert_eq!(wal.stats(), stats);
    assert_eq!(wal.last_seq(&st("a")), Some(n));

    // Compaction frees room; the next sequence follows without a hole.
    wal.seal().unwrap();
    for s in wal.sealed() {
        wal.remove_sealed(s.id).unwrap();
    }
    let a = wal
        .append_blocking(vec![draft("a", None, &[b'x'; 200])])
        .unwrap();
    assert_eq!(a.ranges, vec![(st("a"), n + 1, n + 1)]);
}

#[test]
fn a_second_open_is_refused_with_the_owner_pid() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let e = Wal::open(WalOptions::new(dir.path())).unwrap_err();
    let WalError::Locked { dir: d, pid } = &e else {
        panic!("{e}");
    };
    assert_eq!(d, dir.path());
    assert_eq!(pid, &std::process::id().to_string());
    assert!(e.to_string().contains(&pid.to_string()), "{e}");
    // Inspect does not need the lock.
    assert!(inspect(dir.path()).is_ok());
    drop(wal);
    assert!(Wal::open(WalOptions::new(dir.path())).is_ok());
}

#[test]
fn the_wal_id_is_stable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let id = Wal::open(WalOptions::new(dir.path()))
        .unwrap()
        .wal_id()
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    assert_eq!(wal.wal_id(), id);
    assert_eq!(wal.dir(), dir.path());
}

#[test]
fn sequences_above_max_seq_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let before = files(dir.path());
    let e = wal
        .append_blocking(vec![
            draft("a", Some(1), b"x"),
            draft("a", Some(strata::message::MAX_SEQ + 1), b"y"),
        ])
        .unwrap_err();
    assert!(matches!(e, WalError::SeqOutOfRange(_)), "{e}");
    assert_eq!(files(dir.path()), before);
    assert_eq!(wal.last_seq(&st("a")), None);
}

#[test]
fn inspect_reports_segments_stations_and_damage_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small(dir.path())).unwrap();
    for i in 1..=20 {
        wal.append_blocking(vec![draft("orders", Some(i), &[b'o'; 150])])
            .unwrap();
    }
    wal.append_blocking(vec![draft("users", Some(5), b"u")])
        .unwrap();
    let sealed = wal.sealed();
    flip_bit(&sealed[0].path, sealed[0].bytes - 3);
    let before = files(dir.path());

    // While the WAL is open (and locked) by this process.
    let report = inspect(dir.path()).unwrap();
    assert_eq!(files(dir.path()), before, "inspect is read-only");
    assert_eq!(report.wal_id.as_deref(), Some(wal.wal_id()));
    assert_eq!(report.segments.len(), sealed.len() + 1);
    let first = &report.segments[0];
    assert_eq!(first.state, SegmentState::Sealed);
    assert!(first.first_bad_offset.is_some());
    assert!(report.segments[1..]
        .iter()
        .all(|s| s.first_bad_offset.is_none()));
    assert_eq!(report.segments.last().unwrap().state, SegmentState::Active);
    assert_eq!(report.totals.damaged, 1);
    let users = &report.stations[&st("users")];
    assert_eq!((users.messages, users.bytes), (1, 1));
    assert_eq!((users.first_seq, users.last_seq), (Some(5), Some(5)));
    let orders = &report.stations[&st("orders")];
    assert_eq!(orders.last_seq, Some(20));
    assert_eq!(orders.messages, report.totals.messages - 1);

    let text = report.to_string();
    assert!(text.contains("bad at byte"), "{text}");
    assert!(text.contains("orders"), "{text}");
    assert!(text.contains(&first.file), "{text}");
    assert!(text.contains("total:"), "{text}");
}

/// The checked-in fixtures: what this format version writes, byte for byte.
mod fixtures {
    use super::*;

    const WAL_ID: &str = "5d9a3c8e21f04b7d9e6a0c1b2d3e4f50";

    fn fixture_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/wal")
            .join(name)
    }

    fn batches() -> Vec<Vec<Draft>> {
        let ts = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let m = |station: &str, seq, t: &str, payload: &[u8]| Draft {
            station: st(station),
            seq: Some(seq),
            timestamp: ts(t),
            id: Some(format!("{station}-{seq}")),
            subject: Some(format!("{station}.created")),
            headers: vec![
                Header::new("Content-Type", "application/json"),
                Header::new("X-Trace", "abc"),
                Header::new("x-trace", "second, same name"),
            ],
            payload: Bytes::copy_from_slice(payload),
        };
        vec![
            vec![
                m(
                    "orders",
                    1,
                    "2026-11-24T10:00:00.000001Z",
                    br#"{"order":1}"#,
                ),
                m(
                    "orders",
                    2,
                    "2026-11-24T10:59:59.999999Z",
                    br#"{"order":2}"#,
                ),
            ],
            vec![Draft {
                id: None,
                subject: None,
                headers: vec![],
                ..m("users", 41, "2026-11-24T11:00:00Z", b"\x00\xffbinary")
            }],
            vec![m("orders", 3, "2026-11-24T11:30:00Z", br#"{"order":3}"#)],
        ]
    }

    fn expected() -> Vec<Message> {
        batches()
            .into_iter()
            .flatten()
            .map(|d| {
                let s = d.seq.unwrap();
                d.into_message(s)
            })
            .collect()
    }

    /// Writes the good fixture's segment with today's code into `dir`.
    fn write_good(dir: &Path) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("wal.id"), format!("{WAL_ID}\n")).unwrap();
        let wal = Wal::open(WalOptions::new(dir)).unwrap();
        for b in batches() {
            wal.append_blocking(b).unwrap();
        }
        wal.seal().unwrap();
        let seg = wal.sealed()[0].path.clone();
        wal.close().unwrap();
        seg
    }

    /// The second entry starts after the 40-byte header and the first entry.
    fn second_entry_offset(segment: &[u8]) -> usize {
        let body_len = u32::from_le_bytes(segment[48..52].try_into().unwrap()) as usize;
        40 + 16 + body_len
    }

    /// Rewrites `fixtures/wal/`: `cargo test --test wal_recovery -- --ignored regenerate`.
    /// Only for a deliberate format change (which also bumps the version).
    #[test]
    #[ignore]
    fn regenerate() {
        let tmp = tempfile::tempdir().unwrap();
        let seg = write_good(tmp.path());
        let name = seg.file_name().unwrap();
        for which in ["good", "corrupt"] {
            let d = fixture_dir(which);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("wal.id"), format!("{WAL_ID}\n")).unwrap();
            let mut bytes = fs::read(&seg).unwrap();
            if which == "corrupt" {
                // One bit of the second entry's payload area.
                let at = second_entry_offset(&bytes) + 30;
                bytes[at] ^= 0x01;
            }
            fs::write(d.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn todays_code_writes_the_good_fixture_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let seg = write_good(tmp.path());
        let fixture = fixture_dir("good").join(seg.file_name().unwrap());
        assert_eq!(
            fs::read(&seg).unwrap(),
            fs::read(&fixture).unwrap(),
            "the on-disk format changed: bump the version and regenerate the fixtures"
        );
    }

    #[test]
    fn the_good_fixture_reads_back() {
        let report = inspect(&fixture_dir("good")).unwrap();
        assert_eq!(report.wal_id.as_deref(), Some(WAL_ID));
        assert_eq!(report.segments.len(), 1);
        assert_eq!(report.segments[0].entries, 3);
        assert_eq!(report.segments[0].messages, 4);
        assert_eq!(report.segments[0].first_bad_offset, None);
        assert_eq!(report.stations[&st("orders")].last_seq, Some(3));

        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&fixture_dir("good"), tmp.path());
        let wal = Wal::open(WalOptions::new(tmp.path())).unwrap();
        assert_eq!(wal.wal_id(), WAL_ID);
        let sealed = wal.sealed();
        assert_eq!(sealed.len(), 1);
        assert_eq!(
            sealed[0].min_timestamp,
            Some(Timestamp::parse_rfc3339("2026-11-24T10:00:00.000001Z").unwrap())
        );
        assert_eq!(wal.read_segment(sealed[0].id).unwrap(), expected());
    }

    #[test]
    fn the_corrupt_fixture_is_reported_and_set_aside() {
        let dir = fixture_dir("corrupt");
        let seg = segment_files(&dir, "seg").pop().unwrap();
        let bytes = fs::read(&seg).unwrap();
        let report = inspect(&dir).unwrap();
        assert_eq!(
            report.segments[0].first_bad_offset,
            Some(second_entry_offset(&bytes) as u64)
        );
        assert_eq!(report.segments[0].entries, 1);
        assert_eq!(report.totals.damaged, 1);

        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir, tmp.path());
        let wal = Wal::open(WalOptions::new(tmp.path())).unwrap();
        assert!(wal.sealed().is_empty());
        assert_eq!(wal.stats().set_aside, 1);
        let kept = tmp.path().join("corrupt").join(seg.file_name().unwrap());
        assert_eq!(fs::read(kept).unwrap(), bytes);
        // Entries before and after the damage were readable: their seqs stay taken.
        let a = wal
            .append_blocking(vec![
                draft("orders", Some(1), b"x"),
                draft("users", Some(41), b"x"),
                draft("orders", Some(3), b"x"),
            ])
            .unwrap();
        assert_eq!((a.accepted, a.duplicates), (1, 2));
    }
}

/// A model-based test: random appends, seals, compactions and restarts
/// against a plain in-memory model of what the WAL must hold.
mod model {
    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<(usize, Option<u64>)>),
        Seal,
        CompactOldest,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::collection::vec(
                (0usize..3, proptest::option::of(1u64..25)),
                0..6
            )
            .prop_map(Op::Append),
            1 => Just(Op::Seal),
            1 => Just(Op::CompactOldest),
            1 => Just(Op::Reopen),
        ]
    }

    #[derive(Default)]
    struct Model {
        durable: BTreeMap<String, BTreeSet<u64>>,
        /// Messages in the WAL (not yet compacted), in log order.
        live: Vec<Message>,
    }

    impl Model {
        fn append(&mut self, drafts: &[Draft]) -> Appended {
            let mut out = Appended::default();
            let mut taken: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
            let mut order: Vec<String> = Vec::new();
            for d in drafts {
                let name = d.station.as_str().to_string();
                let durable = self.durable.entry(name.clone()).or_default();
                let here = taken.entry(name.clone()).or_default();
                let seq = d.seq.unwrap_or_else(|| {
                    durable.iter().chain(here.iter()).max().map_or(1, |m| m + 1)
                });
                if !order.contains(&name) {
                    order.push(name.clone());
                }
                if durable.contains(&seq) || !here.insert(seq) {
                    out.duplicates += 1;
                    continue;
                }
                out.accepted += 1;
                out.accepted_bytes += d.payload.len() as u64;
                self.live.push(d.clone().into_message(seq));
            }
            for name in order {
                let set = &taken[&name];
                if set.is_empty() {
                    continue;
                }
                out.ranges
                    .push((st(&name), *set.first().unwrap(), *set.last().unwrap()));
                self.durable.get_mut(&name).unwrap().extend(set);
            }
            out
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn the_wal_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let mut o = WalOptions::new(dir.path());
            o.segment_max_bytes = 300;
            let mut wal = Some(Wal::open(o.clone()).unwrap());
            let mut model = Model::default();
            let mut counter = 0u64;
            for op in ops {
                let w = wal.as_ref().unwrap();
                match op {
                    Op::Append(items) => {
                        let drafts: Vec<Draft> = items.iter().map(|&(s, seq)| {
                            counter += 1;
                            draft(&format!("st{s}"), seq, &counter.to_le_bytes())
                        }).collect();
                        let want = model.append(&drafts);
                        prop_assert_eq!(w.append_blocking(drafts).unwrap(), want);
                    }
                    Op::Seal => { w.seal().unwrap(); }
                    Op::CompactOldest => {
                        if let Some(s) = w.sealed().first() {
                            let msgs = w.read_segment(s.id).unwrap();
                            prop_assert_eq!(&model.live[..msgs.len()], &msgs[..]);
                            model.live.drain(..msgs.len());
                            w.remove_sealed(s.id).unwrap();
                        }
                    }
                    Op::Reopen => {
                        drop(wal.take());
                        wal = Some(Wal::open(o.clone()).unwrap());
                    }
                }
            }
            let w = wal.as_ref().unwrap();
            for (name, set) in &model.durable {
                prop_assert_eq!(w.last_seq(&st(name)), set.last().copied());
            }
            prop_assert_eq!(read_all(w), model.live.clone());
            prop_assert_eq!(w.stats().set_aside, 0);
        }
    }
}
