//! Pure conversion of a JetStream delivery into a [`Draft`]: identity, time,
//! subject, headers and payload, including the identity of restored messages.

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::message::{Draft, Header, StationName, Timestamp, MAX_SEQ};

/// Header `strata restore` sets to the station a restored message came from.
pub const STRATA_STATION: &str = "Strata-Station";
/// Header `strata restore` sets to the restored message's archived seq.
pub const STRATA_SEQ: &str = "Strata-Seq";
/// Header `strata restore` sets to the restored message's archived timestamp.
pub const STRATA_TIMESTAMP: &str = "Strata-Timestamp";
/// The JetStream de-duplication id header, archived as the message id.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// What JetStream says about one delivery, taken from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The stream sequence.
    pub(crate) stream_seq: u64,
    /// When the stream stored the message (JetStream's publish time).
    pub(crate) published: Timestamp,
}

/// Converts a JetStream publish time (Unix nanoseconds) to UTC microseconds,
/// truncating like [`Timestamp::parse_rfc3339`] does.
pub(crate) fn micros_from_nanos(nanos: i128) -> Timestamp {
    let micros = nanos.div_euclid(1000);
    Timestamp(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

/// Builds the draft of one delivery on `station`.
///
/// Headers: `async_nats::HeaderMap` keeps every value of a repeated name in
/// arrival order but not the order *between* names (it is a hash map), so
/// names are written in byte order (stable across redeliveries and runs),
/// each with all its values in the order they came.
///
/// A message restored into this very station (`Strata-Station` equal to
/// `station` and a valid `Strata-Seq`) keeps its archived identity: seq =
/// `Strata-Seq`, timestamp = `Strata-Timestamp` when it parses (RFC 3339 or
/// integer microseconds), and the three `Strata-*` headers are dropped, so the
/// draft equals the archived original and the WAL's (station, seq)
/// de-duplication drops it instead of archiving a second copy.
pub(crate) fn to_draft(
    station: &StationName,
    delivery: Delivery,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Draft {
    let mut list: Vec<Header> = Vec::new();
    if let Some(map) = headers {
        let mut names: Vec<_> = map.iter().collect();
        names.sort_unstable_by(|a, b| AsRef::<str>::as_ref(a.0).cmp(AsRef::<str>::as_ref(b.0)));
        list.reserve(names.iter().map(|(_, values)| values.len()).sum());
        for (name, values) in names {
            let name: &str = name.as_ref();
            for value in values {
                list.push(Header::new(name, value.as_str()));
            }
        }
    }
    let find = |name: &str| {
        list.iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    };
    let id = find(NATS_MSG_ID).map(str::to_owned);
    let restored = restored_identity(station, find(STRATA_STATION), find(STRATA_SEQ));
    let (seq, timestamp) = match restored {
        Some(seq) => {
            let ts = find(STRATA_TIMESTAMP)
                .and_then(parse_timestamp)
                .unwrap_or(delivery.published);
            list.retain(|h| {
                !matches!(
                    h.name.as_str(),
                    STRATA_STATION | STRATA_SEQ | STRATA_TIMESTAMP
                )
            });
            (seq, ts)
        }
        None => (delivery.stream_seq, delivery.published),
    };
    Draft {
        station: station.clone(),
        seq: Some(seq),
        timestamp,
        id,
        subject: Some(subject.to_owned()),
        headers: list,
        payload,
    }
}

/// The archived seq of a message restored into `station`, if it is one.
fn restored_identity(
    station: &StationName,
    strata_station: Option<&str>,
    strata_seq: Option<&str>,
) -> Option<u64> {
    if strata_station? != station.as_str() {
        return None;
    }
    strata_seq?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= MAX_SEQ)
}

/// `Strata-Timestamp`: RFC 3339, or integer microseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .map(Timestamp)
        .or_else(|| Timestamp::parse_rfc3339(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(s: &str) -> StationName {
        StationName::new(s).unwrap()
    }

    const DELIVERY: Delivery = Delivery {
        stream_seq: 17,
        published: Timestamp(1_764_000_000_123_456),
    };

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, *v);
        }
        m
    }

    #[test]
    fn plain_messages_use_stream_identity() {
        let headers = map(&[
            ("Nats-Msg-Id", "m-1"),
            ("b-name", "1"),
            ("A-Name", "x"),
            ("b-name", "2"),
        ]);
        let d = to_draft(
            &station("orders"),
            DELIVERY,
            "orders.created",
            Some(&headers),
            Bytes::from_static(b"hi"),
        );
        assert_eq!(d.seq, Some(17));
        assert_eq!(d.timestamp, DELIVERY.published);
        assert_eq!(d.id.as_deref(), Some("m-1"));
        assert_eq!(d.subject.as_deref(), Some("orders.created"));
        assert_eq!(
            d.headers,
            vec![
                Header::new("A-Name", "x"),
                Header::new("Nats-Msg-Id", "m-1"),
                Header::new("b-name", "1"),
                Header::new("b-name", "2"),
            ]
        );
        assert_eq!(&d.payload[..], b"hi");
        let bare = to_draft(&station("orders"), DELIVERY, "s", None, Bytes::new());
        assert!(bare.headers.is_empty() && bare.id.is_none());
    }

    #[test]
    fn messages_restored_into_their_own_station_keep_their_identity() {
        let headers = map(&[
            ("Strata-Station", "orders"),
            ("Strata-Seq", "5"),
            ("Strata-Timestamp", "2026-11-24T10:00:00.123456Z"),
            ("X-Kept", "yes"),
        ]);
        let d = to_draft(
            &station("orders"),
            DELIVERY,
            "s",
            Some(&headers),
            Bytes::new(),
        );
        assert_eq!(d.seq, Some(5));
        assert_eq!(d.timestamp.to_rfc3339(), "2026-11-24T10:00:00.123456Z");
        assert_eq!(d.headers, vec![Header::new("X-Kept", "yes")]);

        let micros = map(&[
            ("Strata-Station", "orders"),
            ("Strata-Seq", "6"),
            ("Strata-Timestamp", "1000"),
        ]);
        let d = to_draft(
            &station("orders"),
            DELIVERY,
            "s",
            Some(&micros),
            Bytes::new(),
        );
        assert_eq!((d.seq, d.timestamp), (Some(6), Timestamp(1000)));
    }

    #[test]
    fn restore_headers_of_other_stations_or_bad_values_are_ordinary_headers() {
        for pairs in [
            &[("Strata-Station", "billing"), ("Strata-Seq", "5")][..],
            &[("Strata-Station", "orders"), ("Strata-Seq", "five")][..],
            &[
                ("Strata-Station", "orders"),
                ("Strata-Seq", "9223372036854775808"),
            ][..],
            &[("Strata-Seq", "5")][..],
        ] {
            let headers = map(pairs);
            let d = to_draft(
                &station("orders"),
                DELIVERY,
                "s",
                Some(&headers),
                Bytes::new(),
            );
            assert_eq!(d.seq, Some(17), "{pairs:?}");
            assert_eq!(d.timestamp, DELIVERY.published, "{pairs:?}");
            assert_eq!(d.headers.len(), pairs.len(), "{pairs:?}");
        }
        let headers = map(&[
            ("Strata-Station", "orders"),
            ("Strata-Seq", "5"),
            ("Strata-Timestamp", "yesterday"),
        ]);
        let d = to_draft(
            &station("orders"),
            DELIVERY,
            "s",
            Some(&headers),
            Bytes::new(),
        );
        assert_eq!((d.seq, d.timestamp), (Some(5), DELIVERY.published));
    }

    #[test]
    fn publish_times_become_micros() {
        assert_eq!(micros_from_nanos(1_500), Timestamp(1));
        assert_eq!(micros_from_nanos(-1), Timestamp(-1));
        assert_eq!(micros_from_nanos(i128::MAX), Timestamp(i64::MAX));
    }
}
