//! Strata's side of the NATS contract, shared by the source (`strata run`)
//! and `strata restore`: one way to connect (credentials from the config or
//! the URL, never shown), the headers Strata reads and writes, and the
//! provenance a restored message carries.
//!
//! Headers `strata restore` puts on every message it publishes:
//!
//! | header | value |
//! | --- | --- |
//! | `Nats-Msg-Id` | `strata:<station>:<seq>`: unique per archived message, so JetStream's de-duplication drops a repeated restore and nothing else |
//! | `Strata-Original-Msg-Id` | the message's own id (`Nats-Msg-Id` when it was archived), when it had one |
//! | `Strata-Station` | the station it was archived from |
//! | `Strata-Seq` | its seq there |
//! | `Strata-Timestamp` | its archived timestamp, RFC 3339 with microseconds |
//! | `Strata-Mac` | the restore signature over station, seq, timestamp and payload ([`crate::identity::mac`]) |

mod connect;
pub mod text;
pub mod url;

pub use connect::{check_jetstream, connect, connect_jetstream, NatsAuth, NatsConnectError};
pub use url::{redact_url, NatsUrl, UrlCredentials};

use crate::identity::mac::{RestoreKey, Signer};
use crate::message::{Seq, StationName, Timestamp};

/// The JetStream de-duplication id header.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The station a restored message was archived from.
pub const STRATA_STATION: &str = "Strata-Station";
/// A restored message's archived seq.
pub const STRATA_SEQ: &str = "Strata-Seq";
/// A restored message's archived timestamp (RFC 3339, microseconds).
pub const STRATA_TIMESTAMP: &str = "Strata-Timestamp";
/// The restore signature (64 hex digits).
pub const STRATA_MAC: &str = "Strata-Mac";
/// A restored message's own id, which `Nats-Msg-Id` no longer carries.
pub const STRATA_ORIGINAL_MSG_ID: &str = "Strata-Original-Msg-Id";

/// Headers `strata restore` sets (and replaces when an archived message
/// already has them).
pub const RESTORE_HEADERS: [&str; 6] = [
    NATS_MSG_ID,
    STRATA_STATION,
    STRATA_SEQ,
    STRATA_TIMESTAMP,
    STRATA_MAC,
    STRATA_ORIGINAL_MSG_ID,
];

/// The de-duplication id of a restored message: unique per archived message.
pub fn restore_msg_id(station: &StationName, seq: u64) -> String {
    let seq = text::Decimal::new(seq);
    let mut id = String::with_capacity(8 + station.as_str().len() + seq.as_str().len());
    id.push_str("strata:");
    id.push_str(station.as_str());
    id.push(':');
    id.push_str(seq.as_str());
    id
}

/// What a message's `Strata-*` headers claim about where it came from. A
/// claim, not proof: see [`Provenance::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `Strata-Station`.
    pub station: StationName,
    /// `Strata-Seq`.
    pub seq: Seq,
    /// `Strata-Timestamp`.
    pub timestamp: Timestamp,
    /// `Strata-Mac`.
    pub mac: String,
}

impl Provenance {
    /// Reads the claim from headers (`find` returns a header's first value);
    /// `None` unless all four headers are present and well-formed.
    pub fn from_headers<'a>(find: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let station = StationName::new(find(STRATA_STATION)?.trim()).ok()?;
        let seq = Seq::parse(find(STRATA_SEQ)?).ok()?;
        let timestamp = parse_timestamp(find(STRATA_TIMESTAMP)?)?;
        let mac = find(STRATA_MAC)?.trim().to_string();
        Some(Self {
            station,
            seq,
            timestamp,
            mac,
        })
    }

    /// The headers of a restored message, signed with `key` (values for
    /// [`STRATA_STATION`], [`STRATA_SEQ`], [`STRATA_TIMESTAMP`], [`STRATA_MAC`]).
    pub fn sign(
        key: &RestoreKey,
        station: &StationName,
        seq: u64,
        timestamp: Timestamp,
        payload: &[u8],
    ) -> [(&'static str, String); 4] {
        Self::sign_with(&key.signer(station), seq, timestamp, payload)
    }

    /// [`Provenance::sign`] with a station's [`Signer`] made once for many
    /// messages.
    pub fn sign_with(
        signer: &Signer,
        seq: u64,
        timestamp: Timestamp,
        payload: &[u8],
    ) -> [(&'static str, String); 4] {
        let [station, seq_header, time] = Self::labels(signer.station(), seq, timestamp);
        [
            station,
            seq_header,
            time,
            (STRATA_MAC, signer.sign(seq, timestamp, payload)),
        ]
    }

    /// The unsigned headers of a restored message (values for
    /// [`STRATA_STATION`], [`STRATA_SEQ`], [`STRATA_TIMESTAMP`]): what is
    /// published when the archive has no restore key, and the first three
    /// of [`Provenance::sign`].
    pub fn labels(
        station: &StationName,
        seq: u64,
        timestamp: Timestamp,
    ) -> [(&'static str, String); 3] {
        [
            (STRATA_STATION, station.as_str().to_string()),
            (STRATA_SEQ, text::Decimal::new(seq).as_str().to_string()),
            (STRATA_TIMESTAMP, text::rfc3339(timestamp)),
        ]
    }

    /// Whether `key` signed this claim for `payload`: only then is the
    /// message what `strata restore` published from the archive.
    pub fn verify(&self, key: &RestoreKey, payload: &[u8]) -> bool {
        key.verify(
            &self.station,
            self.seq.get(),
            self.timestamp,
            payload,
            &self.mac,
        )
    }
}

/// `Strata-Timestamp`: RFC 3339 (what restore writes), or integer
/// microseconds; only instants in years 1–9999.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let ts = match text.parse::<i64>() {
        Ok(micros) => Timestamp(micros),
        Err(_) => Timestamp::parse_rfc3339(text).ok()?,
    };
    Timestamp::checked(ts.micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_restore_signs_the_source_verifies() {
        let key = RestoreKey::from_bytes([1; 32]);
        let station = StationName::new("orders").unwrap();
        let ts = Timestamp::parse_rfc3339("2026-11-24T10:00:00.123456Z").unwrap();
        let headers = Provenance::sign(&key, &station, 42, ts, b"payload");
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let p = Provenance::from_headers(find).unwrap();
        assert_eq!((p.seq.get(), p.timestamp), (42, ts));
        assert!(p.verify(&key, b"payload"));
        assert!(!p.verify(&key, b"other payload"));
        assert!(!p.verify(&RestoreKey::from_bytes([2; 32]), b"payload"));
    }

    #[test]
    fn incomplete_or_malformed_claims_are_no_claims() {
        let full = [
            (STRATA_STATION, "orders"),
            (STRATA_SEQ, "5"),
            (STRATA_TIMESTAMP, "2026-11-24T10:00:00Z"),
            (STRATA_MAC, "00"),
        ];
        let with = |skip: &str, replace: Option<(&str, &'static str)>| {
            let h: Vec<(&str, &str)> = full
                .iter()
                .filter(|(n, _)| *n != skip)
                .map(|&(n, v)| match replace {
                    Some((r, nv)) if r == n => (n, nv),
                    _ => (n, v),
                })
                .collect();
            Provenance::from_headers(move |name| {
                h.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
            })
        };
        assert!(with("", None).is_some());
        for name in [STRATA_STATION, STRATA_SEQ, STRATA_TIMESTAMP, STRATA_MAC] {
            assert!(with(name, None).is_none(), "{name}");
        }
        assert!(with("", Some((STRATA_SEQ, "9223372036854775808"))).is_none());
        assert!(with("", Some((STRATA_STATION, "../x"))).is_none());
        assert!(with("", Some((STRATA_TIMESTAMP, "9223372036854775807"))).is_none());
        assert!(with("", Some((STRATA_TIMESTAMP, "yesterday"))).is_none());
    }

    #[test]
    fn restore_ids_are_unique_per_archived_message() {
        let s = StationName::new("orders").unwrap();
        assert_eq!(restore_msg_id(&s, 7), "strata:orders:7");
    }
}
