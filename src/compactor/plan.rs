//! Pure planning of one segment's compaction: which Parquet files it becomes and
//! which messages each holds. No I/O, so every rule here is unit-tested.
//!
//! The rules, in order:
//! 1. a `(station, seq)` seen twice keeps its first occurrence in log order;
//! 2. messages are grouped by `(station, UTC hour of the timestamp)`;
//! 3. each group is sorted by seq and becomes one file whose [`DataKey`] is
//!    derived only from what the file holds (station, hour, first and last seq),
//!    so planning the same segment again after a crash names the same objects.

use std::ops::Range;

use crate::layout::{DataKey, Hour};
use crate::message::Message;

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
pub struct SegmentPlan {
    /// Deduplicated messages ordered by (station, hour, seq): every file's rows
    /// are one contiguous range of this vector.
    pub messages: Vec<Message>,
    /// The files, in the order of their rows.
    pub files: Vec<FilePlan>,
    /// Messages dropped because their `(station, seq)` appeared earlier in the segment.
    pub duplicates: usize,
}

/// Plans the files of a segment given its messages in log order.
///
/// The messages are sorted and deduplicated in place: planning holds no second
/// copy of a segment's messages.
pub fn plan_segment(mut messages: Vec<Message>) -> SegmentPlan {
    let total = messages.len();

    // A stable sort keeps log order among equal (station, seq), so `dedup_by`
    // (which keeps the first of each run) keeps the first occurrence.
    messages.sort_by(|a, b| (&a.station, a.seq).cmp(&(&b.station, b.seq)));
    messages.dedup_by(|later, first| later.station == first.station && later.seq == first.seq);
    let duplicates = total - messages.len();

    // (station, seq) is now unique, so this order is total. Messages usually
    // come in seq order within an hour, so few comparisons are made.
    messages.sort_by(|a, b| {
        a.station
            .cmp(&b.station)
            .then(hour_number(a).cmp(&hour_number(b)))
            .then(a.seq.cmp(&b.seq))
    });

    let mut files: Vec<FilePlan> = Vec::new();
    let mut start = 0;
    while start < messages.len() {
        let first = &messages[start];
        let hour = hour_number(first);
        let end = start
            + messages[start..]
                .iter()
                .position(|m| m.station != first.station || hour_number(m) != hour)
                .unwrap_or(messages.len() - start);
        files.push(FilePlan {
            key: DataKey {
                station: first.station.clone(),
                hour: Hour::of(first.timestamp),
                first_seq: first.seq,
                last_seq: messages[end - 1].seq,
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
fn hour_number(m: &Message) -> i64 {
    m.timestamp.micros().div_euclid(HOUR_MICROS)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::NaiveDate;

    use super::*;
    use crate::message::{StationName, Timestamp};

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
        let plan = plan_segment(Vec::new());
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
}
