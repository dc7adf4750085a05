//! Which partitions and files can hold a selection, decided from names alone:
//! `date=`/`hour=` directory names bound message timestamps (a file sits in the
//! UTC hour of its messages' timestamps), and a data file's name bounds its seqs.
//! Pure: the listing itself happens in [`super::scan`].

use chrono::{NaiveDate, NaiveTime};

use crate::columnar::Selection;
use crate::layout::{DataKey, Hour};

const MICROS_PER_HOUR: i64 = 3_600 * 1_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Whether `[start, start + len)` (microseconds) meets the selection's time bounds.
fn span_meets(sel: &Selection, start: i64, len: i64) -> bool {
    let last = start.saturating_add(len - 1);
    sel.from_ts.is_none_or(|f| last >= f.micros()) && sel.to_ts.is_none_or(|t| start <= t.micros())
}

/// Whether a whole UTC day may hold selected messages (by time only).
pub fn day_may_hold(sel: &Selection, date: NaiveDate) -> bool {
    let start = date.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
    span_meets(sel, start, MICROS_PER_DAY)
}

/// The first microsecond of an hour partition.
fn hour_start(hour: Hour) -> Option<i64> {
    let time = NaiveTime::from_hms_opt(u32::from(hour.hour), 0, 0)?;
    Some(hour.date.and_time(time).and_utc().timestamp_micros())
}

/// Whether an hour partition may hold selected messages (by time only).
pub fn hour_may_hold(sel: &Selection, hour: Hour) -> bool {
    hour_start(hour).is_none_or(|start| span_meets(sel, start, MICROS_PER_HOUR))
}

/// Whether a data file may hold selected messages, from its key alone: the seq
/// range in its name and its hour.
pub fn key_may_hold(sel: &Selection, key: &DataKey) -> bool {
    sel.from_seq.is_none_or(|f| key.last_seq >= f)
        && sel.to_seq.is_none_or(|t| key.first_seq <= t)
        && key.first_seq <= key.last_seq
        && hour_may_hold(sel, key.hour)
}

/// Whether the selection can hold anything at all.
pub fn is_empty(sel: &Selection) -> bool {
    matches!((sel.from_seq, sel.to_seq), (Some(f), Some(t)) if f > t)
        || matches!((sel.from_ts, sel.to_ts), (Some(f), Some(t)) if f > t)
}

/// Sorts keys into reading order: by first seq, then last seq, then hour, so
/// that files whose seq ranges do not overlap are read one after another.
pub fn order_keys<T>(items: &mut [T], key: impl Fn(&T) -> &DataKey) {
    items.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        (a.first_seq, a.last_seq, a.hour).cmp(&(b.first_seq, b.last_seq, b.hour))
    });
}

/// The most files whose seq ranges overlap at one point, for keys already in
/// [`order_keys`] order: how many files a merged read holds open at worst.
pub fn max_overlap(keys: &[&DataKey]) -> usize {
    // Ends of the ranges still open, as a min-heap.
    let mut open = std::collections::BinaryHeap::new();
    let mut worst = 0;
    for k in keys {
        while open
            .peek()
            .is_some_and(|std::cmp::Reverse(end)| *end < k.first_seq)
        {
            open.pop();
        }
        open.push(std::cmp::Reverse(k.last_seq));
        worst = worst.max(open.len());
    }
    worst
}

/// Tightens `sel` so it starts after `last_done`, the last seq a previous run
/// delivered (checkpoint resume).
pub fn resume_after(sel: Selection, last_done: Option<u64>) -> Selection {
    match last_done {
        None => sel,
        Some(last) => Selection {
            from_seq: Some(
                sel.from_seq
                    .map_or(last.saturating_add(1), |f| f.max(last.saturating_add(1))),
            ),
            ..sel
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{StationName, Timestamp};

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn hour(d: &str, h: u8) -> Hour {
        Hour {
            date: NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(),
            hour: h,
        }
    }

    fn key(h: u8, first: u64, last: u64) -> DataKey {
        DataKey {
            station: StationName::new("s").unwrap(),
            hour: hour("2026-11-24", h),
            first_seq: first,
            last_seq: last,
        }
    }

    #[test]
    fn prunes_days_and_hours_by_time() {
        let sel = Selection {
            from_ts: Some(ts("2026-11-24T10:30:00Z")),
            to_ts: Some(ts("2026-11-24T12:00:00Z")),
            ..Selection::default()
        };
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(!day_may_hold(&sel, d("2026-11-23")));
        assert!(day_may_hold(&sel, d("2026-11-24")));
        assert!(!day_may_hold(&sel, d("2026-11-25")));
        assert!(!hour_may_hold(&sel, hour("2026-11-24", 9)));
        assert!(hour_may_hold(&sel, hour("2026-11-24", 10)));
        assert!(hour_may_hold(&sel, hour("2026-11-24", 11)));
        // Inclusive upper bound: 12:00:00.000000 is in hour 12.
        assert!(hour_may_hold(&sel, hour("2026-11-24", 12)));
        assert!(!hour_may_hold(&sel, hour("2026-11-24", 13)));
        // The last microsecond of hour 9 is just before the range.
        let edge = Selection {
            from_ts: Some(ts("2026-11-24T09:59:59.999999Z")),
            ..Selection::default()
        };
        assert!(hour_may_hold(&edge, hour("2026-11-24", 9)));
        assert!(hour_may_hold(&Selection::default(), hour("2026-11-24", 0)));
    }

    #[test]
    fn prunes_keys_by_seq_and_hour() {
        let sel = Selection {
            from_seq: Some(100),
            to_seq: Some(200),
            ..Selection::default()
        };
        assert!(!key_may_hold(&sel, &key(1, 1, 99)));
        assert!(key_may_hold(&sel, &key(1, 1, 100)));
        assert!(key_may_hold(&sel, &key(1, 150, 160)));
        assert!(key_may_hold(&sel, &key(1, 200, 300)));
        assert!(!key_may_hold(&sel, &key(1, 201, 300)));
        let timed = Selection {
            to_ts: Some(ts("2026-11-24T01:00:00Z")),
            ..sel
        };
        assert!(!key_may_hold(&timed, &key(2, 150, 160)));
    }

    #[test]
    fn orders_and_measures_overlap() {
        let mut keys = vec![
            key(3, 50, 50),
            key(1, 1, 100),
            key(2, 101, 200),
            key(1, 201, 300),
        ];
        order_keys(&mut keys, |k| k);
        let firsts: Vec<u64> = keys.iter().map(|k| k.first_seq).collect();
        assert_eq!(firsts, [1, 50, 101, 201]);
        let refs: Vec<&DataKey> = keys.iter().collect();
        assert_eq!(max_overlap(&refs), 2);
        let disjoint = [key(1, 1, 10), key(1, 11, 20)];
        assert_eq!(max_overlap(&disjoint.iter().collect::<Vec<_>>()), 1);
        assert_eq!(max_overlap(&[]), 0);
    }

    #[test]
    fn resume_moves_the_lower_bound_past_the_checkpoint() {
        let sel = Selection {
            from_seq: Some(10),
            ..Selection::default()
        };
        assert_eq!(resume_after(sel, None), sel);
        assert_eq!(resume_after(sel, Some(41)).from_seq, Some(42));
        assert_eq!(resume_after(sel, Some(3)).from_seq, Some(10));
        assert_eq!(
            resume_after(Selection::default(), Some(0)).from_seq,
            Some(1)
        );
        assert!(is_empty(&resume_after(
            Selection {
                to_seq: Some(5),
                ..Selection::default()
            },
            Some(5)
        )));
    }
}
