//! The restore key and the signature `strata restore` puts on every message
//! it publishes (header `Strata-Mac`), so the NATS source can tell a message
//! coming back from a restore from one that merely claims to.
//!
//! The key is 32 random bytes stored in the archive at `_strata/restore.key`
//! (JSON: `{"version":1,"algorithm":"HMAC-SHA256","key":"<64 hex digits>"}`),
//! created by the first `strata run` or `strata restore` that needs it. Only
//! those who can read the archive's `_strata/` can sign, which is exactly who
//! can restore from it. The signature is HMAC-SHA256 over
//!
//! ```text
//! "strata-restore-v1" 0x00 station 0x00 seq (8 bytes BE) timestamp micros (8 bytes BE) SHA-256(payload)
//! ```
//!
//! written as 64 lowercase hex digits. It binds the message's identity and
//! payload: a header copied onto another payload, or a seq changed, fails.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::message::{StationName, Timestamp};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation for version 1 signatures.
const DOMAIN: &[u8] = b"strata-restore-v1";

/// Why a stored restore key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The object is not the JSON Strata writes.
    #[error(
        "the archive's restore key (_strata/restore.key) is not valid: {0}; \
         restore it from a backup, or delete it to make a new one (then messages restored \
         earlier are no longer recognised as restored copies)"
    )]
    Malformed(String),
}

/// The archive's restore key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RestoreKey([u8; 32]);

impl fmt::Debug for RestoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RestoreKey(<redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    version: u32,
    algorithm: String,
    key: String,
}

impl RestoreKey {
    /// A new random key.
    ///
    /// # Panics
    /// When the operating system has no randomness to give.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random number generator failed");
        Self(key)
    }

    /// A key from fixed bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The key as stored in the archive.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&StoredKey {
            version: 1,
            algorithm: "HMAC-SHA256".into(),
            key: hex::encode(self.0),
        })
        .expect("a key serialises")
    }

    /// Reads a stored key.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] for anything but what [`RestoreKey::to_json`] writes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let stored: StoredKey = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::Malformed(format!("not the expected JSON ({e})")))?;
        if stored.version != 1 || stored.algorithm != "HMAC-SHA256" {
            return Err(KeyError::Malformed(format!(
                "version {} / algorithm {:?} is not one this Strata knows",
                stored.version, stored.algorithm
            )));
        }
        let bytes = hex::decode(&stored.key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| KeyError::Malformed("the key is not 64 hex digits".into()))?;
        Ok(Self(bytes))
    }

    /// A signer for the messages of `station`: the keyed HMAC state with the
    /// station's part of the signed text already absorbed, so each message
    /// pays only for its own seq, timestamp and payload.
    pub fn signer(&self, station: &StationName) -> Signer {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(&[0]);
        mac.update(station.as_str().as_bytes());
        mac.update(&[0]);
        Signer {
            station: station.clone(),
            prefix: mac,
        }
    }

    /// The signature of a restored message (64 hex digits).
    pub fn sign(
        &self,
        station: &StationName,
        seq: u64,
        timestamp: Timestamp,
        payload: &[u8],
    ) -> String {
        self.signer(station).sign(seq, timestamp, payload)
    }

    /// Whether `signature` is this key's signature of the message (constant time).
    pub fn verify(
        &self,
        station: &StationName,
        seq: u64,
        timestamp: Timestamp,
        payload: &[u8],
        signature: &str,
    ) -> bool {
        let Ok(bytes) = hex::decode(signature.trim()) else {
            return false;
        };
        self.signer(station)
            .mac(seq, timestamp, payload)
            .verify_slice(&bytes)
            .is_ok()
    }
}

/// Signs the messages of one station with one key ([`RestoreKey::signer`]).
#[derive(Clone)]
pub struct Signer {
    station: StationName,
    prefix: HmacSha256,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The station this signer signs for.
    pub fn station(&self) -> &StationName {
        &self.station
    }

    fn mac(&self, seq: u64, timestamp: Timestamp, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.prefix.clone();
        mac.update(&seq.to_be_bytes());
        mac.update(&timestamp.micros().to_be_bytes());
        mac.update(&Sha256::digest(payload));
        mac
    }

    /// The signature of message `seq` of the station (64 hex digits).
    pub fn sign(&self, seq: u64, timestamp: Timestamp, payload: &[u8]) -> String {
        String::from_utf8_lossy(&self.sign_hex(seq, timestamp, payload)).into_owned()
    }

    /// The signature of message `seq` of the station: 64 lowercase hex
    /// digits, as ASCII bytes (no allocation).
    pub fn sign_hex(&self, seq: u64, timestamp: Timestamp, payload: &[u8]) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let tag = self.mac(seq, timestamp, payload).finalize().into_bytes();
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(tag.iter()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> StationName {
        StationName::new(s).unwrap()
    }

    #[test]
    fn a_signature_binds_station_seq_time_and_payload() {
        let key = RestoreKey::from_bytes([7; 32]);
        let sig = key.sign(&st("orders"), 42, Timestamp(1000), b"hello");
        assert_eq!(sig.len(), 64);
        assert!(key.verify(&st("orders"), 42, Timestamp(1000), b"hello", &sig));
        assert!(!key.verify(&st("orders"), 43, Timestamp(1000), b"hello", &sig));
        assert!(!key.verify(&st("billing"), 42, Timestamp(1000), b"hello", &sig));
        assert!(!key.verify(&st("orders"), 42, Timestamp(1001), b"hello", &sig));
        assert!(!key.verify(&st("orders"), 42, Timestamp(1000), b"hellO", &sig));
        assert!(!key.verify(&st("orders"), 42, Timestamp(1000), b"hello", "zz"));
        let other = RestoreKey::from_bytes([8; 32]);
        assert!(!other.verify(&st("orders"), 42, Timestamp(1000), b"hello", &sig));
    }

    #[test]
    fn a_signer_signs_what_the_key_signs() {
        let key = RestoreKey::from_bytes([9; 32]);
        let signer = key.signer(&st("orders"));
        for (seq, ts, payload) in [
            (1u64, 0i64, &b""[..]),
            (42, 1_764_000_000_123_456, b"hello"),
            (u64::MAX, -5, &[0xffu8; 300][..]),
        ] {
            let hex = signer.sign_hex(seq, Timestamp(ts), payload);
            let sig = key.sign(&st("orders"), seq, Timestamp(ts), payload);
            assert_eq!(std::str::from_utf8(&hex).unwrap(), sig);
            assert!(key.verify(&st("orders"), seq, Timestamp(ts), payload, &sig));
        }
        // The signed text is the documented one.
        let mut mac = HmacSha256::new_from_slice(&[9; 32]).unwrap();
        mac.update(b"strata-restore-v1\0orders\0");
        mac.update(&42u64.to_be_bytes());
        mac.update(&7i64.to_be_bytes());
        mac.update(&Sha256::digest(b"p"));
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(key.sign(&st("orders"), 42, Timestamp(7), b"p"), want);
    }

    #[test]
    fn keys_are_stored_as_json_and_never_printed() {
        let key = RestoreKey::generate();
        assert_ne!(key, RestoreKey::generate());
        assert_eq!(RestoreKey::from_json(&key.to_json()).unwrap(), key);
        assert!(!format!("{key:?}").contains(&hex::encode(key.0)));
        assert!(RestoreKey::from_json(b"{}").is_err());
        assert!(
            RestoreKey::from_json(br#"{"version":1,"algorithm":"HMAC-SHA256","key":"abcd"}"#)
                .is_err()
        );
    }
}
