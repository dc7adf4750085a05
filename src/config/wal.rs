//! `[wal]`: where the write-ahead log lives and when a segment is sealed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{de_positive_duration, de_positive_size, GIB, MIB};

/// `[wal]`: the local write-ahead log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Directory of segment files (default `./data/wal`, relative to the working directory).
    pub dir: PathBuf,
    /// Roll the active segment at this size (default 64 MiB).
    #[serde(deserialize_with = "de_positive_size")]
    pub segment_max_bytes: u64,
    /// Roll the active segment at this age (default 60 s).
    #[serde(deserialize_with = "de_positive_duration")]
    pub segment_max_age: Duration,
    /// Refuse appends past this much disk (default 10 GiB): the back-pressure
    /// limit when the object store is unreachable for a long time.
    #[serde(deserialize_with = "de_positive_size")]
    pub max_disk_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/wal"),
            segment_max_bytes: 64 * MIB,
            segment_max_age: Duration::from_secs(60),
            max_disk_bytes: 10 * GIB,
        }
    }
}

impl WalConfig {
    /// As options for [`crate::wal::Wal::open`].
    pub fn options(&self) -> crate::wal::WalOptions {
        crate::wal::WalOptions {
            dir: self.dir.clone(),
            segment_max_bytes: self.segment_max_bytes,
            segment_max_age: self.segment_max_age,
            max_disk_bytes: self.max_disk_bytes,
        }
    }

    /// Checks the rules that involve more than one key of this table.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.segment_max_bytes > self.max_disk_bytes {
            return Err(format!(
                "[wal] segment_max_bytes ({}) is larger than max_disk_bytes ({}): \
                 raise max_disk_bytes or lower segment_max_bytes",
                self.segment_max_bytes, self.max_disk_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse_err;

    #[test]
    fn bad_values_name_key_and_form() {
        let e = parse_err("[wal]\nsegment_max_age = \"60 seconds\"\n");
        assert!(e.contains("line 2: [wal] segment_max_age"), "{e}");
        assert!(e.contains("expected a duration"), "{e}");

        let e = parse_err("[wal]\nsegment_max_bytes = \"64M\"\n");
        assert!(e.contains("[wal] segment_max_bytes"), "{e}");
        assert!(e.contains("KiB"), "{e}");

        let e = parse_err("[wal]\nmax_disk_bytes = -5\n");
        assert!(e.contains("[wal] max_disk_bytes"), "{e}");
        assert!(e.contains("negative"), "{e}");

        let e = parse_err("[wal]\nsegment_max_bytes = 0\n");
        assert!(e.contains("larger than 0"), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let e = parse_err("[wal]\nsegment_max_bytes = \"2GiB\"\nmax_disk_bytes = \"1GiB\"\n");
        assert!(e.contains("max_disk_bytes"), "{e}");
    }
}
