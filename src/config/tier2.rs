//! `[tier2]`: tier-2 compaction, which merges a partition's small committed
//! files into larger ones (see [`crate::tier2`]): whether `strata run` does it
//! in the background, how often, the size it aims at, and how long replaced
//! files stay for queries already running.

use std::time::Duration;

use serde::Deserialize;

use super::values::{de_duration, de_positive_duration, de_positive_size, MIB};

/// `[tier2]`: merging small files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tier2Config {
    /// Run a tier-2 pass in the background of `strata run` (default false;
    /// `strata compact-tier2` runs one pass whatever this says).
    pub enabled: bool,
    /// Files below this size are merged, into files of at most this size
    /// (default 128 MiB).
    #[serde(deserialize_with = "de_positive_size")]
    pub target_file_bytes: u64,
    /// How long replaced files stay after the merged file is committed, so
    /// that a query already running does not lose them (default 10 min;
    /// `"0s"` deletes them in the same pass).
    #[serde(deserialize_with = "de_duration")]
    pub grace: Duration,
    /// Time between two background passes of `strata run` (default 10 min).
    #[serde(deserialize_with = "de_positive_duration")]
    pub interval: Duration,
}

impl Default for Tier2Config {
    fn default() -> Self {
        Self {
            enabled: false,
            target_file_bytes: 128 * MIB,
            grace: Duration::from_secs(600),
            interval: Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{parse, parse_err};

    #[test]
    fn defaults_and_a_zero_grace() {
        let c = parse("").unwrap().tier2;
        assert!(!c.enabled);
        assert_eq!(c.target_file_bytes, 128 << 20);
        assert_eq!(c.grace, Duration::from_secs(600));
        assert_eq!(c.interval, Duration::from_secs(600));
        let c = parse("[tier2]\nenabled = true\ngrace = \"0s\"\ntarget_file_bytes = \"8MiB\"\n")
            .unwrap()
            .tier2;
        assert!(c.enabled);
        assert_eq!(c.grace, Duration::ZERO);
        assert_eq!(c.target_file_bytes, 8 << 20);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse_err("[tier2]\ninterval = \"0s\"\n");
        assert!(e.contains("[tier2] interval"), "{e}");
        let e = parse_err("[tier2]\ntarget_file_bytes = 0\n");
        assert!(e.contains("[tier2] target_file_bytes"), "{e}");
        let e = parse_err("[tier2]\ngrace = \"soon\"\n");
        assert!(e.contains("[tier2] grace"), "{e}");
    }
}
