//! The NATS server URL as configured (`[nats] url`, `strata restore --nats`):
//! one URL or a comma-separated list, which may embed credentials the way the
//! `nats` CLI accepts them (`nats://user:password@host:4222`, or
//! `nats://token@host:4222`). [`NatsUrl`] never shows those credentials: its
//! `Display` and `Debug` replace them with `<credentials>`.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::config::Secret;

/// Credentials embedded in a NATS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlCredentials {
    /// `user:password@`.
    UserPassword(String, Secret),
    /// `token@` (a user part with no password).
    Token(Secret),
}

/// A NATS server URL (or comma-separated list), credentials hidden from
/// `Display` and `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NatsUrl(String);

impl NatsUrl {
    /// Wraps a URL as given.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into().trim().to_string())
    }

    /// Whether no URL was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL as given, credentials included: only for the NATS client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every credential part removed: what the client connects to
    /// (credentials travel in the connect options instead).
    pub fn without_credentials(&self) -> String {
        self.map_each(|_, host| host.to_string())
    }

    /// The credentials of the first server that has some, percent-decoded.
    pub fn credentials(&self) -> Option<UrlCredentials> {
        self.0.split(',').find_map(|one| {
            let rest = one.trim().split_once("://").map_or(one.trim(), |(_, r)| r);
            let (userinfo, _) = rest.rsplit_once('@')?;
            Some(match userinfo.split_once(':') {
                Some((user, password)) => {
                    UrlCredentials::UserPassword(decode(user), Secret::new(decode(password)))
                }
                None => UrlCredentials::Token(Secret::new(decode(userinfo))),
            })
        })
    }

    /// Rebuilds each comma-separated URL with `f(userinfo, host_and_rest)`.
    fn map_each(&self, f: impl Fn(Option<&str>, &str) -> String) -> String {
        self.0
            .split(',')
            .map(|one| {
                let one = one.trim();
                let (scheme, rest) = match one.split_once("://") {
                    Some((scheme, rest)) => (Some(scheme), rest),
                    None => (None, one),
                };
                let shown = match rest.rsplit_once('@') {
                    Some((userinfo, host)) => f(Some(userinfo), host),
                    None => f(None, rest),
                };
                match scheme {
                    Some(scheme) => format!("{scheme}://{shown}"),
                    None => shown,
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `url` (or a comma-separated list of URLs) with any user, password or token
/// replaced by `<credentials>`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    NatsUrl(url.to_string()).to_string()
}

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.map_each(|userinfo, host| match userinfo {
            Some(_) => format!("<credentials>@{host}"),
            None => host.to_string(),
        }))
    }
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl<'de> Deserialize<'de> for NatsUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through `Secret`, whose visitor never quotes the value in an error.
        Secret::deserialize(d).map(|s| NatsUrl::new(s.expose()))
    }
}

/// Percent-decoding of a URL's user or password part (`%40` → `@`); invalid
/// escapes are kept as they are.
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_everywhere() {
        let url = NatsUrl::new("nats://u:hunter2@h:4222");
        assert_eq!(url.to_string(), "nats://<credentials>@h:4222");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("tok@h:4222"), "<credentials>@h:4222");
        assert_eq!(
            redact_url("nats://a:b@h1:1,nats://c:d@h2:2"),
            "nats://<credentials>@h1:1,nats://<credentials>@h2:2"
        );
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        let url = NatsUrl::new("nats://alice:p%40ss@h:4222");
        assert_eq!(
            url.credentials(),
            Some(UrlCredentials::UserPassword(
                "alice".into(),
                Secret::new("p@ss")
            ))
        );
        assert_eq!(url.without_credentials(), "nats://h:4222");
        assert_eq!(
            NatsUrl::new("nats://s3cr3t@h:4222").credentials(),
            Some(UrlCredentials::Token(Secret::new("s3cr3t")))
        );
        assert_eq!(NatsUrl::new("nats://h:4222").credentials(), None);
        assert_eq!(
            NatsUrl::new("nats://h1:1, nats://a:b@h2:2").without_credentials(),
            "nats://h1:1,nats://h2:2"
        );
    }

    #[test]
    fn bad_escapes_are_kept() {
        assert_eq!(decode("a%zz%4"), "a%zz%4");
        assert_eq!(decode("%41b"), "Ab");
        assert_eq!(decode("é%"), "é%");
    }
}
