//! The identity rule: how a station's archive identity `(station, seq)` is
//! assigned, so that it stays unique for the life of the archive.
//!
//! **One authority per station.** A station archived by the NATS source gets
//! its seqs from the stream; HTTP ingest into such a station is refused
//! (`409 Conflict`). A station fed only by HTTP or `strata ingest` gets its
//! seqs from the WAL (the given `seq`, else the station's next one).
//!
//! **Incarnations.** A JetStream stream deleted and created again under the
//! same name starts its sequences at 1 again: each life of the stream is an
//! *incarnation*, told apart by the stream's creation time. Incarnation `k` of
//! a station has a *seq offset* `offset_k`, and its messages are archived as
//!
//! ```text
//! seq = offset_k + stream_seq
//! ```
//!
//! The first incarnation of a station whose archive is empty has offset 0, so
//! `seq` equals the stream sequence (`nats stream get` finds the row). A later
//! incarnation's offset is the highest seq the station holds when it is
//! detected (in the WAL or in the archive), so its seqs start above every seq
//! archived before and no `(station, seq)` is ever reused. Each incarnation is
//! recorded in the archive (see [`IncarnationRecord`] and
//! [`crate::layout::incarnation_path`]) *before* any of its messages is
//! acknowledged, so a restart, `strata ls` and another machine see it. For a
//! row, the incarnation is the one with the greatest offset below its seq and
//! `stream_seq = seq - offset` (a DuckDB `ASOF JOIN`, see the README).
//!
//! **Gaps.** A stream sequence the source never saw (expelled by the stream's
//! limits before Strata read it, or deleted) is a gap: logged at `error`,
//! counted, and recorded in the archive ([`GapRecord`]).
//!
//! **Restore echoes.** `strata restore` signs every message it publishes
//! (`identity::mac`). A message arriving with a valid signature for a
//! `(station, seq)` that is already archived is that very message coming back:
//! it is acknowledged and not archived again. Anything else — an unsigned or
//! forged `Strata-*` header, a restore from another archive — is a new message
//! archived under the rule above, its headers as they came.

pub mod cache;
pub mod ledger;
pub mod mac;

use serde::{Deserialize, Serialize};

use crate::message::{Seq, SeqError, StationName, Timestamp};

/// Record format version written in every ledger record.
pub const RECORD_VERSION: u32 = 1;

/// One incarnation of a station's stream, as recorded in the archive
/// (`_strata/stations/<station>/incarnations/<index>.json`, written once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncarnationRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The station.
    pub station: StationName,
    /// 0 for the first incarnation Strata archived, then 1, 2, …
    pub incarnation: u32,
    /// The stream's creation time as the server reports it (RFC 3339).
    pub stream_created: String,
    /// `seq = seq_offset + stream_seq` for this incarnation's messages.
    pub seq_offset: u64,
    /// When Strata first saw this incarnation (RFC 3339, UTC).
    pub detected_at: String,
    /// The previous incarnation's creation time, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stream_created: Option<String>,
}

impl IncarnationRecord {
    /// The archive seq of stream sequence `stream_seq` in this incarnation.
    ///
    /// # Errors
    /// [`SeqError::OutOfRange`] past the largest seq.
    pub fn seq_of(&self, stream_seq: u64) -> Result<Seq, SeqError> {
        Seq::new(self.seq_offset)?.checked_add(stream_seq)
    }
}

/// Stream sequences the source never saw, as recorded in the archive
/// (`_strata/stations/<station>/gaps/<first_seq>-<last_seq>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The station.
    pub station: StationName,
    /// The incarnation the gap is in.
    pub incarnation: u32,
    /// First missing stream sequence.
    pub first_stream_seq: u64,
    /// Last missing stream sequence (inclusive).
    pub last_stream_seq: u64,
    /// The archive seqs those would have had.
    pub first_seq: u64,
    /// Inclusive.
    pub last_seq: u64,
    /// How many messages are missing.
    pub messages: u64,
    /// When Strata detected the gap (RFC 3339, UTC).
    pub detected_at: String,
}

impl GapRecord {
    /// The gap `first..=last` (stream sequences) in `inc`.
    pub fn new(inc: &IncarnationRecord, first: u64, last: u64, now: Timestamp) -> Self {
        Self {
            version: RECORD_VERSION,
            station: inc.station.clone(),
            incarnation: inc.incarnation,
            first_stream_seq: first,
            last_stream_seq: last,
            first_seq: inc.seq_offset.saturating_add(first),
            last_seq: inc.seq_offset.saturating_add(last),
            messages: last - first + 1,
            detected_at: now.to_rfc3339(),
        }
    }
}

/// Follows the stream sequences a consumer delivers, in order, and reports
/// the ones it skipped. Redeliveries (at or below what was seen) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapTracker {
    /// The next stream sequence expected; `None` until the first delivery
    /// when the start is unknown.
    next: Option<u64>,
}

impl GapTracker {
    /// Expects `next` first (the consumer's acknowledged floor + 1), or
    /// learns the start from the first delivery when `None`.
    pub fn new(next: Option<u64>) -> Self {
        Self { next }
    }

    /// Sees `stream_seq` delivered; returns the skipped range, if any.
    pub fn observe(&mut self, stream_seq: u64) -> Option<(u64, u64)> {
        let gap = match self.next {
            Some(next) if stream_seq > next => Some((next, stream_seq - 1)),
            _ => None,
        };
        if self.next.is_none_or(|n| stream_seq >= n) {
            self.next = Some(stream_seq.saturating_add(1));
        }
        gap
    }

    /// The next stream sequence expected.
    pub fn next(&self) -> Option<u64> {
        self.next
    }
}

/// What a stream's limits and state say about its oldest unarchived message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExpelInputs {
    /// Messages not yet archived (the consumer's pending count plus those
    /// delivered and not yet acknowledged).
    pub unarchived: u64,
    /// Messages in the stream.
    pub stream_messages: u64,
    /// Bytes in the stream.
    pub stream_bytes: u64,
    /// `max_msgs`, or ≤ 0 for none.
    pub max_msgs: i64,
    /// `max_bytes`, or ≤ 0 for none.
    pub max_bytes: i64,
    /// `max_age` in seconds, or 0 for none.
    pub max_age_secs: f64,
    /// Age of the oldest unarchived message, seconds.
    pub oldest_unarchived_age_secs: f64,
}

/// How close the oldest unarchived message is to being expelled by the
/// stream's limits: 0 (nothing at risk) to 1 (the next message or second
/// expels it). The largest of the three limits' ratios:
/// unarchived / `max_msgs`, unarchived bytes (at the stream's average size) /
/// `max_bytes`, oldest unarchived age / `max_age`.
pub fn expel_risk(i: &ExpelInputs) -> f64 {
    if i.unarchived == 0 {
        return 0.0;
    }
    let mut risk: f64 = 0.0;
    if i.max_msgs > 0 {
        risk = risk.max(i.unarchived as f64 / i.max_msgs as f64);
    }
    if i.max_bytes > 0 && i.stream_messages > 0 {
        let avg = i.stream_bytes as f64 / i.stream_messages as f64;
        risk = risk.max(i.unarchived as f64 * avg / i.max_bytes as f64);
    }
    if i.max_age_secs > 0.0 {
        risk = risk.max(i.oldest_unarchived_age_secs / i.max_age_secs);
    }
    risk.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(offset: u64) -> IncarnationRecord {
        IncarnationRecord {
            version: RECORD_VERSION,
            station: StationName::new("orders").unwrap(),
            incarnation: 1,
            stream_created: "2026-11-30T10:00:00.000000001Z".into(),
            seq_offset: offset,
            detected_at: "2026-11-30T10:00:01.000000Z".into(),
            previous_stream_created: None,
        }
    }

    #[test]
    fn seqs_are_offset_stream_sequences() {
        assert_eq!(inc(0).seq_of(17).unwrap().get(), 17);
        assert_eq!(inc(5000).seq_of(1).unwrap().get(), 5001);
        assert!(inc(crate::message::MAX_SEQ).seq_of(1).is_err());
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = inc(5000);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"seq_offset\":5000"), "{json}");
        assert_eq!(serde_json::from_str::<IncarnationRecord>(&json).unwrap(), r);
        let g = GapRecord::new(&r, 10, 19, Timestamp(0));
        assert_eq!((g.first_seq, g.last_seq, g.messages), (5010, 5019, 10));
        let back: GapRecord = serde_json::from_slice(&serde_json::to_vec(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn the_tracker_reports_skipped_sequences_once() {
        let mut t = GapTracker::new(Some(1));
        assert_eq!(t.observe(1), None);
        assert_eq!(t.observe(2), None);
        assert_eq!(t.observe(6), Some((3, 5)));
        assert_eq!(t.observe(4), None, "a redelivery is no gap");
        assert_eq!(t.observe(7), None);
        assert_eq!(t.next(), Some(8));
        let mut fresh = GapTracker::new(None);
        assert_eq!(fresh.observe(500), None);
        assert_eq!(fresh.observe(502), Some((501, 501)));
    }

    #[test]
    fn expel_risk_is_the_tightest_limit() {
        let base = ExpelInputs {
            unarchived: 900,
            stream_messages: 1000,
            stream_bytes: 100_000,
            max_msgs: 1000,
            ..Default::default()
        };
        assert!((expel_risk(&base) - 0.9).abs() < 1e-9);
        let bytes = ExpelInputs {
            max_msgs: -1,
            max_bytes: 90_000,
            ..base
        };
        assert!((expel_risk(&bytes) - 1.0).abs() < 1e-9, "clamped");
        let age = ExpelInputs {
            max_msgs: 0,
            max_age_secs: 100.0,
            oldest_unarchived_age_secs: 25.0,
            ..base
        };
        assert!((expel_risk(&age) - 0.25).abs() < 1e-9);
        assert_eq!(
            expel_risk(&ExpelInputs {
                unarchived: 0,
                ..base
            }),
            0.0
        );
        assert_eq!(
            expel_risk(&ExpelInputs {
                max_msgs: 0,
                ..base
            }),
            0.0
        );
    }
}
