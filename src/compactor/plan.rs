//! Pure planning of one segment's compaction: which Parquet files it becomes and
//! which messages each holds. No I/O, so every rule here is unit-tested.
//!
//! The rules, in order:
//! 1. a `(station, seq)` seen twice keeps its first occurrence in log order;
//! 2. messages are grouped by `(station, UTC hour of the timestamp)`;
//! 3. each group is sorted by seq and becomes one file whose [`DataKey`] is
//!    derived only from what the file holds (station, hour, first and last seq),
//!    so planning the same segment again after a crash names the same objects;
//! 4. in a cluster ([`subtract_stored`]), rows another process already
//!    archived are dropped, given the stored files of the same partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use std::sync::Arc;

use crate::layout::{DataKey, Hour};
use crate::message::{Message, StationName, Timestamp};
use crate::wal::reader::IndexedMessage;

/// What planning reads of a message: a whole [`Message`], or an
/// [`IndexedMessage`] whose bytes stay in the segment file.
pub trait PlanRow {
    /// Its station.
    fn station(&self) -> &StationName;
    /// Its sequence.
    fn seq(&self) -> u64;
    /// Its timestamp.
    fn timestamp(&self) -> Timestamp;
}

impl PlanRow for Message {
    fn station(&self) -> &StationName {
        &self.station
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}

impl PlanRow for IndexedMessage {
    fn station(&self) -> &StationName {
        Arc::as_ref(&self.station)
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}

/// One file to write: its key and the rows of [`SegmentPlan::messages`] it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    /// The object key, derived from the rows.
    pub key: DataKey,
    /// The file's rows, a range of [`SegmentPlan::messages`] (ascending seq).
    pub rows: Range<usize>,
}

impl FilePlan {
    /// Number of messages in the file.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file holds no message (never true for a planned file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The plan of one segment: its messages in file order and the files they form.
#[derive(Debug, Clone, Default)]
pub struct SegmentPlan<M = Message> {
    /// Deduplicated messages ordered by (station, hour, seq): every file's rows
    /// are one contiguous range of this vector.
    pub messages: Vec<M>,
    /// The files, in the order of their rows.
    pub files: Vec<FilePlan>,
    /// Messages dropped because their `(station, seq)` appeared earlier in the segment.
    pub duplicates: usize,
}

/// Plans the files of a segment given its messages in log order.
///
/// The messages are sorted and deduplicated in place: planning holds no second
/// copy of a segment's messages.
pub fn plan_segment<M: PlanRow>(mut messages: Vec<M>) -> SegmentPlan<M> {
    let total = messages.len();

    // A stable sort keeps log order among equal (station, seq), so `dedup_by`
    // (which keeps the first of each run) keeps the first occurrence.
    messages.sort_by(|a, b| (&a.station(), a.seq()).cmp(&(&b.station(), b.seq())));
    messages
        .dedup_by(|later, first| later.station() == first.station() && later.seq() == first.seq());
    let duplicates = total - messages.len();

    // (station, seq) is now unique, so this order is total. Messages usually
    // come in seq order within an hour, so few comparisons are made.
    messages.sort_by(|a, b| {
        a.station()
            .cmp(b.station())
            .then(hour_number(a).cmp(&hour_number(b)))
            .then(a.seq().cmp(&b.seq()))
    });

    let mut files: Vec<FilePlan> = Vec::new();
    let mut start = 0;
    while start < messages.len() {
        let first = &messages[start];
        let hour = hour_number(first);
        let end = start
            + messages[start..]
                .iter()
                .position(|m| m.station() != first.station() || hour_number(m) != hour)
                .unwrap_or(messages.len() - start);
        files.push(FilePlan {
            key: DataKey {
                station: first.station().clone(),
                hour: Hour::of(first.timestamp()),
                first_seq: first.seq(),
                last_seq: messages[end - 1].seq(),
            },
            rows: start..end,
        });
        start = end;
    }

    SegmentPlan {
        messages,
        files,
        duplicates,
    }
}

/// Microseconds in an hour.
const HOUR_MICROS: i64 = 3_600_000_000;

/// The UTC hour of a message's timestamp, counted from the epoch: two messages
/// have the same [`Hour`] exactly when they have the same number, and the
/// numbers are in the same order (UTC hours are whole multiples of an hour
/// since the epoch).
fn hour_number(m: &impl PlanRow) -> i64 {
    m.timestamp().micros().div_euclid(HOUR_MICROS)
}

/// A data file already in the archive, in the hour partition of a planned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// First seq of its key.
    pub first_seq: u64,
    /// Last seq of its key.
    pub last_seq: u64,
    /// Every seq it holds, ascending, when its key range meets a planned
    /// file's range (what the subtraction looks at); may be empty otherwise.
    pub seqs: Vec<u64>,
}

impl StoredFile {
    fn meets(&self, first: u64, last: u64) -> bool {
        self.first_seq <= last && first <= self.last_seq
    }
}

/// The stored files of each (station, hour) partition a plan writes into.
pub type Stored = HashMap<(StationName, Hour), Vec<StoredFile>>;

/// Rows [`subtract_stored`] dropped, per station.
pub type Dropped = BTreeMap<StationName, u64>;

/// Removes from `plan` every row whose `(station, seq)` a stored file already
/// holds (another process archived it: a takeover redelivered what an old
/// owner had made durable without acknowledging), and splits what remains
/// of each file into runs whose key ranges hold no stored row, so new keys
/// never equal stored ones. (Key ranges may still interleave: a stored
/// file's range can span rows it lacks, which stay here.)
///
/// A planned file whose key *and* seqs equal a stored file's is this
/// segment's own earlier attempt (or identical content): it stays as
/// planned, and the upload rewrites the same object.
pub fn subtract_stored<M: PlanRow>(
    mut plan: SegmentPlan<M>,
    stored: &Stored,
) -> (SegmentPlan<M>, Dropped) {
    let mut dropped = Dropped::new();
    let mut files = Vec::with_capacity(plan.files.len());
    for file in std::mem::take(&mut plan.files) {
        let key = &file.key;
        let Some(partition) = stored.get(&(key.station.clone(), key.hour)) else {
            files.push(file);
            continue;
        };
        let rows = &plan.messages[file.rows.clone()];
        let meeting: Vec<&StoredFile> = partition
            .iter()
            .filter(|f| f.meets(key.first_seq, key.last_seq))
            .collect();
        let redo = meeting.iter().any(|f| {
            f.first_seq == key.first_seq
                && f.last_seq == key.last_seq
                && f.seqs.iter().copied().eq(rows.iter().map(|m| m.seq()))
        });
        if meeting.is_empty() || redo {
            files.push(file);
            continue;
        }
        let present: BTreeSet<u64> = meeting
            .iter()
            .flat_map(|f| f.seqs.iter().copied())
            .collect();
        // A stored row between two kept rows splits them: a new key's range
        // then holds no stored row, and so never equals a stored key (whose
        // first seq is a stored row).
        let between = |after: u64, before: u64| present.range(after + 1..before).next().is_some();
        let mut run: Option<(usize, usize)> = None;
        let close = |run: (usize, usize), files: &mut Vec<FilePlan>| {
            let (start, end) = run;
            let at = file.rows.start;
            files.push(FilePlan {
                key: DataKey {
                    station: key.station.clone(),
                    hour: key.hour,
                    first_seq: plan.messages[at + start].seq(),
                    last_seq: plan.messages[at + end - 1].seq(),
                },
                rows: at + start..at + end,
            });
        };
        for (i, m) in rows.iter().enumerate() {
            if present.contains(&m.seq()) {
                *dropped.entry(key.station.clone()).or_default() += 1;
                if let Some(r) = run.take() {
                    close(r, &mut files);
                }
                continue;
            }
            run = match run {
                Some((start, end)) if !between(rows[end - 1].seq(), m.seq()) => {
                    Some((start, i + 1))
                }
                Some(r) => {
                    close(r, &mut files);
                    Some((i, i + 1))
                }
                None => Some((i, i + 1)),
            };
        }
        if let Some(r) = run {
            close(r, &mut files);
        }
    }
    plan.files = files;
    (plan, dropped)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::NaiveDate;

    use super::*;
    use crate::message::Timestamp;

    const HOUR_MICROS: i64 = 3_600_000_000;
    /// 2026-11-24T00:00:00Z in microseconds.
    const DAY: i64 = 1_795_478_400_000_000;

    fn msg(station: &str, seq: u64, micros: i64, payload: &str) -> Message {
        Message {
            station: StationName::new(station).expect("valid test station"),
            seq,
            timestamp: Timestamp(micros),
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: Bytes::from(payload.to_string()),
        }
    }

    fn hour(h: u8) -> Hour {
        Hour {
            date: NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date"),
            hour: h,
        }
    }

    fn seqs(plan: &SegmentPlan, f: &FilePlan) -> Vec<u64> {
        plan.messages[f.rows.clone()]
            .iter()
            .map(|m| m.seq)
            .collect()
    }

    #[test]
    fn the_test_day_constant_is_midnight_utc() {
        assert_eq!(Hour::of(Timestamp(DAY)), hour(0));
        assert_eq!(Hour::of(Timestamp(DAY + 5 * HOUR_MICROS + 1)), hour(5));
    }

    #[test]
    fn empty_segment_plans_no_file() {
        let plan = plan_segment(Vec::<Message>::new());
        assert!(plan.files.is_empty());
        assert!(plan.messages.is_empty());
        assert_eq!(plan.duplicates, 0);
    }

    #[test]
    fn groups_by_station_and_hour_and_sorts_by_seq() {
        let t0 = DAY + 10 * HOUR_MICROS;
        let t1 = DAY + 11 * HOUR_MICROS;
        let plan = plan_segment(vec![
            msg("orders", 3, t0 + 5, "c"),
            msg("billing", 7, t0, "x"),
            msg("orders", 1, t0 + 1, "a"),
            msg("orders", 4, t1, "d"),
            msg("orders", 2, t0 + 9, "b"),
        ]);
        let keys: Vec<(&str, Hour, u64, u64)> = plan
            .files
            .iter()
            .map(|f| {
                (
                    f.key.station.as_str(),
                    f.key.hour,
                    f.key.first_seq,
                    f.key.last_seq,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("billing", hour(10), 7, 7),
                ("orders", hour(10), 1, 3),
                ("orders", hour(11), 4, 4),
            ]
        );
        assert_eq!(seqs(&plan, &plan.files[1]), vec![1, 2, 3]);
        assert_eq!(plan.messages.len(), 5);
        assert_eq!(plan.duplicates, 0);
        // Every message lands in exactly one file, and the ranges tile the vector.
        let covered: usize = plan.files.iter().map(FilePlan::len).sum();
        assert_eq!(covered, plan.messages.len());
        for pair in plan.files.windows(2) {
            assert_eq!(pair[0].rows.end, pair[1].rows.start);
        }
    }

    #[test]
    fn duplicates_keep_the_first_occurrence_in_log_order() {
        let t = DAY;
        let plan = plan_segment(vec![
            msg("s", 1, t, "first"),
            msg("s", 2, t, "two"),
            msg("s", 1, t + HOUR_MICROS, "second copy"),
            msg("other", 1, t, "not a duplicate: another station"),
            msg("s", 2, t, "two again"),
        ]);
        assert_eq!(plan.duplicates, 2);
        assert_eq!(plan.files.len(), 2, "{:?}", plan.files);
        let s = plan
            .files
            .iter()
            .find(|f| f.key.station.as_str() == "s")
            .expect("file of s");
        assert_eq!(
            s.key.hour,
            hour(0),
            "the second copy's later hour is ignored"
        );
        let payloads: Vec<&[u8]> = plan.messages[s.rows.clone()]
            .iter()
            .map(|m| m.payload.as_ref())
            .collect();
        assert_eq!(payloads, vec![b"first".as_ref(), b"two".as_ref()]);
    }

    #[test]
    fn out_of_order_timestamps_split_a_seq_range_across_hours() {
        // seq 6 was published in the previous hour: its file is 6-6 and the
        // hour-10 file keeps the key 5-7 although it holds only 5 and 7.
        let plan = plan_segment(vec![
            msg("s", 5, DAY + 10 * HOUR_MICROS, ""),
            msg("s", 6, DAY + 9 * HOUR_MICROS + 59, ""),
            msg("s", 7, DAY + 10 * HOUR_MICROS + 1, ""),
        ]);
        let keys: Vec<(Hour, u64, u64)> = plan
            .files
            .iter()
            .map(|f| (f.key.hour, f.key.first_seq, f.key.last_seq))
            .collect();
        assert_eq!(keys, vec![(hour(9), 6, 6), (hour(10), 5, 7)]);
        assert_eq!(seqs(&plan, &plan.files[1]), vec![5, 7]);
    }

    #[test]
    fn planning_is_deterministic_whatever_the_log_order() {
        let mut msgs: Vec<Message> = (0..200u64)
            .map(|i| {
                let station = ["a", "b", "c"][(i % 3) as usize];
                msg(
                    station,
                    i / 3,
                    DAY + ((i * 7919) % 5) as i64 * HOUR_MICROS,
                    "",
                )
            })
            .collect();
        let first = plan_segment(msgs.clone());
        msgs.reverse();
        let second = plan_segment(msgs);
        assert_eq!(first.files, second.files);
        assert_eq!(first.messages, second.messages);
    }

    #[test]
    fn hour_numbers_group_and_order_like_hours() {
        let stamps = [
            i64::MIN / 2,
            -HOUR_MICROS - 1,
            -HOUR_MICROS,
            -1,
            0,
            1,
            HOUR_MICROS - 1,
            HOUR_MICROS,
            DAY - 1,
            DAY,
            DAY + 23 * HOUR_MICROS + 59,
        ];
        for a in stamps {
            for b in stamps {
                let (ma, mb) = (msg("s", 1, a, ""), msg("s", 2, b, ""));
                assert_eq!(
                    hour_number(&ma).cmp(&hour_number(&mb)),
                    Hour::of(Timestamp(a)).cmp(&Hour::of(Timestamp(b))),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn a_midnight_boundary_changes_the_date() {
        let plan = plan_segment(vec![msg("s", 1, DAY - 1, ""), msg("s", 2, DAY, "")]);
        let dates: Vec<(NaiveDate, u8)> = plan
            .files
            .iter()
            .map(|f| (f.key.hour.date, f.key.hour.hour))
            .collect();
        assert_eq!(
            dates,
            vec![
                (NaiveDate::from_ymd_opt(2026, 11, 23).expect("date"), 23),
                (NaiveDate::from_ymd_opt(2026, 11, 24).expect("date"), 0),
            ]
        );
    }

    fn stored(first: u64, last: u64, seqs: &[u64]) -> StoredFile {
        StoredFile {
            first_seq: first,
            last_seq: last,
            seqs: seqs.to_vec(),
        }
    }

    fn keys(plan: &SegmentPlan) -> Vec<(u64, u64)> {
        plan.files
            .iter()
            .map(|f| (f.key.first_seq, f.key.last_seq))
            .collect()
    }

    #[test]
    fn rows_another_process_archived_are_dropped_and_the_rest_split_around_them() {
        let t = DAY;
        let plan = plan_segment((1..=10).map(|s| msg("s", s, t, "")).collect());
        let station = StationName::new("s").expect("valid");
        let mut st = Stored::new();
        st.insert((station.clone(), hour(0)), vec![stored(4, 6, &[4, 5, 6])]);
        let (out, dropped) = subtract_stored(plan, &st);
        assert_eq!(keys(&out), vec![(1, 3), (7, 10)]);
        assert_eq!(dropped.get(&station), Some(&3));
        assert_eq!(seqs(&out, &out.files[1]), vec![7, 8, 9, 10]);
    }

    #[test]
    fn a_stored_range_with_a_hole_keeps_the_rows_it_lacks() {
        // A stored 1-5 that lacks 3 (redelivered later, to this process).
        let plan = plan_segment(vec![msg("s", 3, DAY, "")]);
        let station = StationName::new("s").expect("valid");
        let mut st = Stored::new();
        st.insert((station, hour(0)), vec![stored(1, 5, &[1, 2, 4, 5])]);
        let (out, dropped) = subtract_stored(plan, &st);
        assert_eq!(keys(&out), vec![(3, 3)]);
        assert!(dropped.is_empty());
    }

    #[test]
    fn an_earlier_attempt_of_the_same_file_is_redone_as_planned() {
        let plan = plan_segment((1..=3).map(|s| msg("s", s, DAY, "")).collect());
        let station = StationName::new("s").expect("valid");
        let mut st = Stored::new();
        st.insert((station, hour(0)), vec![stored(1, 3, &[1, 2, 3])]);
        let (out, dropped) = subtract_stored(plan.clone(), &st);
        assert_eq!(out.files, plan.files);
        assert!(dropped.is_empty());
    }

    #[test]
    fn other_partitions_and_ranges_that_do_not_meet_change_nothing() {
        let plan = plan_segment((5..=7).map(|s| msg("s", s, DAY, "")).collect());
        let station = StationName::new("s").expect("valid");
        let mut st = Stored::new();
        st.insert((station.clone(), hour(0)), vec![stored(1, 4, &[])]);
        st.insert((station, hour(1)), vec![stored(5, 7, &[5, 6, 7])]);
        let (out, dropped) = subtract_stored(plan.clone(), &st);
        assert_eq!(out.files, plan.files);
        assert!(dropped.is_empty());
    }

    proptest::proptest! {
        /// Whatever is stored: no row is lost (kept, or held by a stored
        /// file), none is kept that a stored file holds, runs tile subsets
        /// of their file, and no new key equals a stored key.
        #[test]
        fn subtraction_loses_nothing_and_doubles_nothing(
            planned in proptest::collection::btree_set(0u64..60, 1..30),
            owners in proptest::collection::vec(0u8..4, 60),
        ) {
            // Seq n is held by stored file owners[n] (1..=3), or by none (0);
            // planned seqs may be held too (another process archived them).
            let mut by_file: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
            for (seq, &o) in owners.iter().enumerate() {
                if o > 0 {
                    by_file.entry(o).or_default().push(seq as u64);
                }
            }
            let files: Vec<StoredFile> = by_file
                .values()
                .filter(|v| !v.is_empty())
                .map(|v| stored(v[0], v[v.len() - 1], v))
                .collect();
            let held: BTreeSet<u64> = files.iter().flat_map(|f| f.seqs.iter().copied()).collect();
            let station = StationName::new("s").expect("valid");
            let mut st = Stored::new();
            st.insert((station, hour(0)), files.clone());
            let plan = plan_segment(planned.iter().map(|&s| msg("s", s, DAY, "")).collect());
            let original = plan.files[0].clone();
            let (out, dropped) = subtract_stored(plan, &st);
            let kept: Vec<u64> = out.files.iter().flat_map(|f| seqs(&out, f)).collect();
            for s in &planned {
                proptest::prop_assert!(kept.contains(s) || held.contains(s), "seq {} lost", s);
            }
            let is_redo = files.iter().any(|f| f.first_seq == original.key.first_seq && f.last_seq == original.key.last_seq && f.seqs.iter().eq(planned.iter()));
            if !is_redo {
                for s in &kept {
                    proptest::prop_assert!(!held.contains(s), "seq {} archived twice", s);
                }
                for f in &out.files {
                    proptest::prop_assert!(!files.iter().any(|g| g.first_seq == f.key.first_seq && g.last_seq == f.key.last_seq));
                    proptest::prop_assert!(held.range(f.key.first_seq..=f.key.last_seq).next().is_none(), "a stored row inside new key {:?}", f.key);
                }
            }
            let total: u64 = dropped.values().sum();
            proptest::prop_assert_eq!(kept.len() as u64 + total, planned.len() as u64);
            for w in out.files.windows(2) {
                proptest::prop_assert!(w[0].rows.end <= w[1].rows.start);
                proptest::prop_assert!(w[0].key.last_seq < w[1].key.first_seq);
            }
            for f in &out.files {
                proptest::prop_assert!(original.rows.start <= f.rows.start && f.rows.end <= original.rows.end);
                let s = seqs(&out, f);
                proptest::prop_assert_eq!((s[0], s[s.len() - 1]), (f.key.first_seq, f.key.last_seq));
            }
        }
    }
}
