//! `[http]`: the ingest endpoint's address, token and body limits.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::values::{de_optional_secret, de_positive_size_usize, Secret, MIB};

/// `[http]`: the HTTP ingest and control endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on (default `127.0.0.1:8080`).
    #[serde(deserialize_with = "de_listen")]
    pub listen: String,
    /// Bearer token required from clients; none: no authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub token: Option<Secret>,
    /// Largest accepted request body (default 64 MiB).
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub max_body_bytes: usize,
    /// Most request body bytes held by all requests together (default 256 MiB);
    /// past it requests get `503` with `Retry-After`. At least `max_body_bytes`.
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub max_inflight_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            token: None,
            max_body_bytes: 64 * MIB as usize,
            max_inflight_bytes: 256 * MIB as usize,
        }
    }
}

impl HttpConfig {
    /// Checks the rules that involve more than one key of this table.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_inflight_bytes < self.max_body_bytes {
            return Err(format!(
                "[http] max_inflight_bytes ({}) is smaller than max_body_bytes ({}): one \
                 request of the largest size could never be taken; raise max_inflight_bytes \
                 or lower max_body_bytes",
                self.max_inflight_bytes, self.max_body_bytes
            ));
        }
        Ok(())
    }
}

fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        return Err(de::Error::custom(format!(
            "{s:?} is not host:port: expected e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\""
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse_err;

    #[test]
    fn bad_values_name_key_and_form() {
        let e = parse_err("[http]\nlisten = \"8080\"\n");
        assert!(e.contains("[http] listen"), "{e}");
        assert!(e.contains("host:port"), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let e = parse_err("[http]\nmax_body_bytes = \"2MiB\"\nmax_inflight_bytes = \"1MiB\"\n");
        assert!(
            e.contains("max_inflight_bytes") && e.contains("max_body_bytes"),
            "{e}"
        );
    }
}
