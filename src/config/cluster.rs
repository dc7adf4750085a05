//! `[cluster]`: how several `strata run` processes that share a `[nats]`
//! server and consumer divide the stations. Coordination needs no
//! configuration; this table only tunes the lease (see [`crate::cluster`]).

use std::time::Duration;

use serde::Deserialize;

use super::values::de_positive_duration;

/// The shortest lease accepted: renewals go out every third of it and a
/// round trip to NATS must fit well inside that.
pub(super) const MIN_LEASE: Duration = Duration::from_secs(1);

/// `[cluster]`: station leases shared through the NATS server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// How long a station's lease lasts without renewal (default 15 s). A
    /// stopped process's stations move to the others within about
    /// 4/3 of it; an owner renews every third of it.
    #[serde(deserialize_with = "de_positive_duration")]
    pub lease: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
        }
    }
}

impl ClusterConfig {
    /// Checks the rules of this table.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.lease < MIN_LEASE {
            return Err(format!(
                "[cluster] lease is {:?}: use at least \"1s\" (renewals go out every third of it), e.g. \"15s\"",
                self.lease
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse_err;

    #[test]
    fn lease_must_be_a_second_or_more() {
        let e = parse_err("[cluster]\nlease = \"500ms\"\n");
        assert!(e.contains("[cluster] lease"), "{e}");
        let e = parse_err("[cluster]\nlease = 0\n");
        assert!(e.contains("[cluster] lease"), "{e}");
        let e = parse_err("[cluster]\nleases = \"5s\"\n");
        assert!(e.contains("leases"), "{e}");
    }
}
