//! Names in the lease bucket: the bucket itself (one per `[nats]` consumer)
//! and its keys, `station.<station>`, `upload.<station>` and
//! `member.<member id>`. Pure.
//!
//! NATS key-value keys allow only `[-/_=.a-zA-Z0-9]` and use `.` as a token
//! separator; station names also allow `.`. So a station is encoded
//! reversibly: `A-Z a-z 0-9 _ -` stay, every other byte becomes `=` and two
//! upper-case hex digits (`payments.eu` → `payments=2Eeu`). Bucket names
//! allow only `[-_a-zA-Z0-9]`: there `_` is the escape (`_` itself is `_5F`).

use crate::message::StationName;

/// Prefix of every lease bucket's name.
pub const BUCKET_PREFIX: &str = "strata_leases_";

/// What a key of the lease bucket names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `station.<station>`: who archives the station.
    Station(StationName),
    /// `upload.<station>`: who is uploading the station's rows right now.
    Upload(StationName),
    /// `member.<id>`: a live process.
    Member(String),
}

impl Key {
    /// The key as stored in the bucket.
    pub fn encode(&self) -> String {
        match self {
            Key::Station(s) => format!("station.{}", escape(s.as_str(), b'=')),
            Key::Upload(s) => format!("upload.{}", escape(s.as_str(), b'=')),
            Key::Member(id) => format!("member.{}", escape(id, b'=')),
        }
    }

    /// Parses a key of the bucket; `None` for a key Strata does not write.
    pub fn parse(key: &str) -> Option<Key> {
        let (kind, rest) = key.split_once('.')?;
        let text = unescape(rest, b'=')?;
        match kind {
            "station" => StationName::new(text).ok().map(Key::Station),
            "upload" => StationName::new(text).ok().map(Key::Upload),
            "member" if !text.is_empty() => Some(Key::Member(text)),
            _ => None,
        }
    }
}

/// The lease bucket of the processes sharing `[nats] consumer`.
pub fn bucket_name(consumer: &str) -> String {
    format!("{BUCKET_PREFIX}{}", escape(consumer, b'_'))
}

/// The JetStream stream that holds bucket `bucket` (`KV_<bucket>`): never a
/// station to archive.
pub fn bucket_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

fn escape(text: &str, esc: u8) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && b != esc {
            out.push(b as char);
        } else {
            out.push(esc as char);
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

fn unescape(text: &str, esc: u8) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == esc {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn valid_kv_key(k: &str) -> bool {
        !k.is_empty()
            && !k.starts_with('.')
            && !k.ends_with('.')
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    }

    #[test]
    fn stations_with_dots_are_encoded_reversibly() {
        let s = StationName::new("payments.eu").expect("valid station");
        let k = Key::Station(s.clone()).encode();
        assert_eq!(k, "station.payments=2Eeu");
        assert_eq!(Key::parse(&k), Some(Key::Station(s.clone())));
        assert_eq!(
            Key::parse(&Key::Upload(s.clone()).encode()),
            Some(Key::Upload(s))
        );
        let m = Key::Member("0f3a".into()).encode();
        assert_eq!(m, "member.0f3a");
        assert_eq!(Key::parse(&m), Some(Key::Member("0f3a".into())));
        assert_eq!(Key::parse("other.x"), None);
        assert_eq!(Key::parse("station.bad=Z1"), None);
        assert_eq!(Key::parse("station"), None);
    }

    #[test]
    fn bucket_names_keep_consumers_apart() {
        assert_eq!(bucket_name("strata"), "strata_leases_strata");
        assert_ne!(bucket_name("a_b"), bucket_name("a.b"));
        assert_eq!(bucket_name("a.b"), "strata_leases_a_2Eb");
        assert_eq!(
            bucket_stream("strata_leases_strata"),
            "KV_strata_leases_strata"
        );
    }

    proptest! {
        #[test]
        fn every_station_key_is_a_valid_kv_key_and_parses_back(name in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}") {
            prop_assume!(!name.contains(".."));
            let Ok(s) = StationName::new(name.as_str()) else { return Ok(()); };
            for key in [Key::Station(s.clone()), Key::Upload(s.clone())] {
                let k = key.encode();
                prop_assert!(valid_kv_key(&k), "{}", k);
                prop_assert_eq!(Key::parse(&k), Some(key));
            }
        }

        #[test]
        fn bucket_names_are_valid_and_injective(a in "[ -~]{1,20}", b in "[ -~]{1,20}") {
            let (na, nb) = (bucket_name(&a), bucket_name(&b));
            prop_assert!(na.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
            prop_assert_eq!(na == nb, a == b);
        }
    }
}
