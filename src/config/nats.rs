//! `[nats]`: the JetStream source: server URL, streams, durable consumer and
//! one authentication method.

use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::values::{
    de_optional_path, de_optional_secret, de_optional_string, de_positive_count, Secret,
};
use crate::message::StationName;

/// `[nats]`: the JetStream source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Empty: no NATS source. May embed `user:password@` (never shown).
    pub url: crate::nats::NatsUrl,
    /// Stream names; `"*"` means every stream.
    #[serde(deserialize_with = "de_stations")]
    pub stations: Vec<String>,
    /// Durable consumer name Strata creates on each stream (default `strata`).
    pub consumer: String,
    /// Token authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub token: Option<Secret>,
    /// User for user/password authentication.
    #[serde(deserialize_with = "de_optional_string")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(deserialize_with = "de_optional_secret")]
    pub password: Option<Secret>,
    /// A `.creds` file (JWT + NKey).
    #[serde(deserialize_with = "de_optional_path")]
    pub creds_file: Option<PathBuf>,
    /// Messages asked for in one pull (default 1000).
    #[serde(deserialize_with = "de_positive_count")]
    pub fetch_batch: usize,
}

impl NatsConfig {
    /// How to connect: the URL and whichever credentials are set.
    pub fn auth(&self) -> crate::nats::NatsAuth {
        crate::nats::NatsAuth {
            url: self.url.clone(),
            token: self.token.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            creds_file: self.creds_file.clone(),
        }
    }

    /// Checks the rules that involve more than one key of this table.
    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.url.is_empty() && self.stations.is_empty() {
            return Err(
                "[nats] url is set but stations is empty: list the streams to \
                        archive, e.g. stations = [\"orders\"], or [\"*\"] for every stream"
                    .to_string(),
            );
        }
        if !self.url.is_empty() && self.consumer.trim().is_empty() {
            return Err(
                "[nats] consumer is empty: name the durable consumer, e.g. \"strata\"".into(),
            );
        }
        let methods = [
            self.token.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "[nats] use one authentication method: token, user + password, \
                        or creds_file"
                    .to_string(),
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("[nats] user and password go together: set both or neither".into());
        }
        Ok(())
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: crate::nats::NatsUrl::default(),
            stations: Vec::new(),
            consumer: "strata".to_string(),
            token: None,
            user: None,
            password: None,
            creds_file: None,
            fetch_batch: 1000,
        }
    }
}

fn de_stations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let all = names.iter().any(|n| n == "*");
    if all && names.len() > 1 {
        return Err(de::Error::custom(
            "\"*\" already means every stream: use [\"*\"] alone or list names",
        ));
    }
    if !all {
        for name in &names {
            StationName::new(name.as_str()).map_err(de::Error::custom)?;
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse_err;

    #[test]
    fn bad_values_name_key_and_form() {
        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\nstations = [\"a/b\"]\n");
        assert!(e.contains("[nats] stations"), "{e}");
        assert!(e.contains("'/'"), "{e}");

        let e = parse_err("[nats]\nstations = [\"*\", \"orders\"]\n");
        assert!(e.contains("alone"), "{e}");

        let e = parse_err("[nats]\nfetch_batch = 0\n");
        assert!(e.contains("[nats] fetch_batch"), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\n");
        assert!(e.contains("stations is empty"), "{e}");
        let e = parse_err("[nats]\nurl = \"nats://x:4222\"\nstations=[\"*\"]\ntoken=\"a\"\nuser=\"u\"\npassword=\"p\"\n");
        assert!(e.contains("one authentication method"), "{e}");
        let e = parse_err("[nats]\nuser = \"u\"\n");
        assert!(e.contains("user and password"), "{e}");
    }
}
