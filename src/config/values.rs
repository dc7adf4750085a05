//! The value forms shared by every table: [`Secret`] strings that never show,
//! sizes (`"64MiB"`, `"512KB"`, integer bytes), durations (`"500ms"`, `"1h30m"`,
//! integer seconds; read by `humantime` within the documented units), and the
//! serde deserialisers that read them from TOML with messages naming the
//! expected form.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

pub(super) const KIB: u64 = 1024;
pub(super) const MIB: u64 = 1024 * KIB;
pub(super) const GIB: u64 = 1024 * MIB;

/// A secret string (access keys, tokens): never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; only for handing to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor: serde's default "invalid type" message would
        // quote the offending value, which here may be a secret.
        struct SecretVisitor;
        impl<'v> Visitor<'v> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(not_a_string())
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }
            fn visit_map<A: de::MapAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_a_string())
            }
        }
        fn not_a_string<E: de::Error>() -> E {
            E::custom("expected a quoted string (the value is not shown: it is a secret)")
        }
        d.deserialize_any(SecretVisitor)
    }
}

const SIZE_FORM: &str = "expected a size: an integer number of bytes, or a string such as \
                         \"512KB\" (1000-based: KB MB GB TB) or \"64MiB\" (1024-based: KiB MiB GiB TiB)";
const DURATION_FORM: &str = "expected a duration: a string such as \"500ms\", \"60s\", \"2m\", \
                             \"1h\", \"1d\" or \"1h30m\", or an integer number of seconds";

/// Parses a size: `"64MiB"`, `"512KB"`, `"1GiB"`, `"100"` (bytes). `KB`/`MB`/`GB`/`TB`
/// are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` powers of 1024; units are
/// case-insensitive.
///
/// Written here rather than with `bytesize`: that crate parses through `f64`, so it
/// reads `"1.5GiB"`, saturates instead of reporting a size that is too large, takes
/// `"64M"` as 64 MB where Strata refuses the ambiguous unit, and adds PB/PiB. A
/// wrapper keeping the documented forms would redo this whole grammar.
///
/// # Errors
/// A message saying what was wrong and which form is expected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("invalid size {s:?}: {SIZE_FORM}"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {s:?} is too large"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "tib" => 1024 * GIB,
        "k" | "m" | "g" | "t" => {
            return Err(format!(
                "size {s:?} has an ambiguous unit: write KiB/MiB/GiB/TiB (1024-based) \
                 or KB/MB/GB/TB (1000-based)"
            ))
        }
        _ => return Err(format!("invalid size {s:?}: {SIZE_FORM}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: `"500ms"`, `"60s"`, `"2m"`, `"1h"`, `"1d"`, `"1h30m"` (parts
/// may be apart: `"1m 30s"`), or a bare integer number of seconds (`"60"`).
///
/// `humantime` does the arithmetic. This wrapper keeps Strata's documented forms,
/// which are narrower than humantime's: it takes a bare integer as seconds, and
/// refuses what humantime would also read (`"60 seconds"`, `"60 s"`, `"1.5s"`,
/// `"2w"`, `"1M"` for a month, `"1y"`), so a file means the same thing everywhere.
///
/// # Errors
/// A message saying what was wrong and which form is expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: {DURATION_FORM}");
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if t.is_empty() || !t.split_whitespace().all(is_documented_duration) {
        return Err(bad());
    }
    humantime::parse_duration(t).map_err(|_| bad())
}

/// Whether `word` is one or more `<digits><unit>` with a documented unit
/// (`ms` `s` `m` `h` `d`), such as `"90s"` or `"1h30m"`.
fn is_documented_duration(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_digit())
        && !word.ends_with(|c: char| c.is_ascii_digit())
        && word
            .split(|c: char| c.is_ascii_digit())
            .filter(|unit| !unit.is_empty())
            .all(|unit| matches!(unit, "ms" | "s" | "m" | "h" | "d"))
}

/// A size or duration as written in TOML: an integer or a string.
enum Scalar {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Int(n) => u64::try_from(n)
            .map_err(|_| de::Error::custom(format!("size {n} is negative: {SIZE_FORM}"))),
        Scalar::Str(s) => parse_size(&s).map_err(de::Error::custom),
    }
}

pub(super) fn de_positive_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match de_size(d)? {
        0 => Err(de::Error::custom("must be larger than 0")),
        n => Ok(n),
    }
}

pub(super) fn de_positive_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = de_positive_size(d)?;
    usize::try_from(n).map_err(|_| de::Error::custom(format!("size {n} is too large")))
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Int(n) => u64::try_from(n)
            .map(Duration::from_secs)
            .map_err(|_| de::Error::custom(format!("duration {n} is negative: {DURATION_FORM}"))),
        Scalar::Str(s) => parse_duration(&s).map_err(de::Error::custom),
    }
}

pub(super) fn de_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = de_duration(d)?;
    if v.is_zero() {
        return Err(de::Error::custom("must be longer than 0"));
    }
    Ok(v)
}

pub(super) fn de_positive_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = i64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(de::Error::custom(format!(
            "{n} is not allowed: expected a positive integer"
        ))),
    }
}

pub(super) fn de_optional_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Secret>, D::Error> {
    Ok(Some(Secret::deserialize(d)?).filter(|s| !s.is_empty()))
}

pub(super) fn de_optional_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(Some(String::deserialize(d)?).filter(|s| !s.is_empty()))
}

pub(super) fn de_optional_path<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<PathBuf>, D::Error> {
    Ok(Some(PathBuf::deserialize(d)?).filter(|p| !p.as_os_str().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, parse_err};
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("3TiB"), Ok(3 << 40));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert!(parse_size("64M").unwrap_err().contains("ambiguous"));
        assert!(parse_size("1.5GiB")
            .unwrap_err()
            .contains("expected a size"));
        assert!(parse_size("MiB").unwrap_err().contains("expected a size"));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        // Not documented forms, among them some that humantime alone would read
        // ("60 seconds", "60 s", "1.5s", "2w", "1M", "1y", "5us").
        for bad in [
            "",
            "s",
            "60 seconds",
            "60 s",
            "1.5s",
            "-1s",
            "5x",
            "1h30",
            "2w",
            "1M",
            "1y",
            "5us",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("expected a duration"), "{bad:?}: {e}");
        }
        assert!(parse_duration("999999999999999999d").is_err());
        // Past u64 nanoseconds (about 584 years) humantime refuses milliseconds.
        assert!(parse_duration("99999999999999ms").is_err());
    }

    #[test]
    fn secrets_never_show() {
        let e = parse_err("[storage]\nsecret_access_key = 123456789\n");
        assert!(e.contains("[storage] secret_access_key"), "{e}");
        assert!(!e.contains("123456789"), "{e}");
        let e = parse_err("[http]\ntoken = 987654321\n");
        assert!(!e.contains("987654321"), "{e}");

        let c = parse(
            "[storage]\naccess_key_id = \"AKIA_SHOWN\"\nsecret_access_key = \"s3cr3t\"\n\
             [http]\ntoken = \"t0ken\"\n[nats]\nurl=\"nats://h:1\"\nstations=[\"*\"]\n\
             token = \"n4ts\"\n",
        )
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["AKIA_SHOWN", "s3cr3t", "t0ken", "n4ts"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("<redacted>"));
    }
}
