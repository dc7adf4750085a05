//! Pure conversion of a JetStream delivery into a [`Draft`]: time, subject,
//! headers and payload, under the archive seq the identity rule gives it.

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::message::{Draft, Header, Seq, StationName, Timestamp};
use crate::nats::NATS_MSG_ID;

/// Converts a JetStream publish time (Unix nanoseconds) to UTC microseconds,
/// truncating like [`Timestamp::parse_rfc3339`] does.
pub(crate) fn micros_from_nanos(nanos: i128) -> Timestamp {
    let micros = nanos.div_euclid(1000);
    Timestamp(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

/// The headers of a delivery as a list.
///
/// `async_nats::HeaderMap` keeps every value of a repeated name in arrival
/// order but not the order *between* names (it is a hash map), so names are
/// written in byte order (stable across redeliveries and runs), each with all
/// its values in the order they came.
pub(crate) fn header_list(headers: Option<&HeaderMap>) -> Vec<Header> {
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
    list
}

/// The first value of header `name` in `list`.
pub(crate) fn find<'a>(list: &'a [Header], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_str())
}

/// Builds the draft of one delivery on `station`, archived as `seq` with
/// JetStream's publish time, its subject, every header as it came and
/// id = `Nats-Msg-Id`.
pub(crate) fn to_draft(
    station: &StationName,
    seq: Seq,
    published: Timestamp,
    subject: &str,
    headers: Vec<Header>,
    payload: Bytes,
) -> Draft {
    let id = find(&headers, NATS_MSG_ID).map(str::to_owned);
    Draft {
        station: station.clone(),
        seq: Some(seq.get()),
        timestamp: published,
        id,
        subject: Some(subject.to_owned()),
        headers,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(s: &str) -> StationName {
        StationName::new(s).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, *v);
        }
        m
    }

    #[test]
    fn deliveries_keep_subject_headers_and_payload() {
        let headers = map(&[
            ("Nats-Msg-Id", "m-1"),
            ("b-name", "1"),
            ("A-Name", "x"),
            ("b-name", "2"),
        ]);
        let published = Timestamp(1_764_000_000_123_456);
        let d = to_draft(
            &station("orders"),
            Seq::new(17).unwrap(),
            published,
            "orders.created",
            header_list(Some(&headers)),
            Bytes::from_static(b"hi"),
        );
        assert_eq!(d.seq, Some(17));
        assert_eq!(d.timestamp, published);
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
        assert!(header_list(None).is_empty());
    }

    #[test]
    fn strata_headers_are_kept_as_they_came() {
        // A claim of provenance is not an identity: the draft keeps the
        // seq it is given and every header.
        let headers = header_list(Some(&map(&[
            ("Strata-Station", "orders"),
            ("Strata-Seq", "5"),
            ("Strata-Timestamp", "2026-11-24T10:00:00.123456Z"),
        ])));
        let d = to_draft(
            &station("orders"),
            Seq::new(99).unwrap(),
            Timestamp(7),
            "s",
            headers,
            Bytes::new(),
        );
        assert_eq!((d.seq, d.timestamp), (Some(99), Timestamp(7)));
        assert_eq!(d.headers.len(), 3);
    }

    #[test]
    fn publish_times_become_micros() {
        assert_eq!(micros_from_nanos(1_500), Timestamp(1));
        assert_eq!(micros_from_nanos(-1), Timestamp(-1));
        assert_eq!(micros_from_nanos(i128::MAX), Timestamp(i64::MAX));
    }
}
