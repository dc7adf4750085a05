//! One way to connect to NATS for every part of Strata: credentials from the
//! config keys or embedded in the URL (the keys win), errors that say what to
//! check, and the server URL never shown with its credentials.

use std::path::PathBuf;
use std::time::Duration;

use super::url::{NatsUrl, UrlCredentials};
use crate::config::Secret;

/// How to reach and authenticate to a NATS server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// The server URL(s); may embed `user:password@` or `token@`.
    pub url: NatsUrl,
    /// Token authentication.
    pub token: Option<Secret>,
    /// User for user/password authentication.
    pub user: Option<String>,
    /// Password for user/password authentication.
    pub password: Option<Secret>,
    /// A `.creds` file (JWT + NKey).
    pub creds_file: Option<PathBuf>,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsConnectError {
    /// The credentials file could not be read.
    #[error("cannot read the NATS credentials file {path}: {source}")]
    CredsFile {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting to the server failed.
    #[error("cannot connect to NATS at {url}: {source}; {hint}")]
    Connect {
        /// The server URL (credentials hidden).
        url: NatsUrl,
        /// The client's error.
        source: async_nats::ConnectError,
        /// What to check.
        hint: &'static str,
    },
    /// The server answered, but JetStream is not available on it.
    #[error(
        "NATS at {url} does not offer JetStream ({answer}): the server runs without JetStream; \
         start nats-server with -js (or enable JetStream for this account)"
    )]
    NoJetStream {
        /// The server URL (credentials hidden).
        url: NatsUrl,
        /// The server's answer.
        answer: String,
    },
}

/// Connects as `name` (shown in the server's connection list).
///
/// # Errors
/// [`NatsConnectError`] saying what to check.
pub async fn connect(auth: &NatsAuth, name: &str) -> Result<async_nats::Client, NatsConnectError> {
    let mut options = match &auth.creds_file {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| NatsConnectError::CredsFile {
                path: path.clone(),
                source,
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    let token = auth.token.as_ref().filter(|t| !t.is_empty());
    let user = auth.user.as_ref().filter(|u| !u.is_empty());
    if let Some(token) = token {
        options = options.token(token.expose().to_string());
    } else if let Some(user) = user {
        let password = auth
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        options = options.user_and_password(user.clone(), password);
    } else if auth.creds_file.is_none() {
        match auth.url.credentials() {
            Some(UrlCredentials::UserPassword(user, password)) => {
                options = options.user_and_password(user, password.expose().to_string());
            }
            Some(UrlCredentials::Token(token)) => {
                options = options.token(token.expose().to_string());
            }
            None => {}
        }
    }
    let options = options
        .name(name)
        .connection_timeout(Duration::from_secs(10))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connection (re)established"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS connection lost; reconnecting")
                }
                other => tracing::debug!(event = %other, "NATS client event"),
            }
        });
    options
        .connect(auth.url.without_credentials())
        .await
        .map_err(|source| NatsConnectError::Connect {
            url: auth.url.clone(),
            hint: connect_hint(source.kind()),
            source,
        })
}

/// Connects and checks that JetStream answers.
///
/// # Errors
/// [`NatsConnectError`] saying what to check.
pub async fn connect_jetstream(
    auth: &NatsAuth,
    name: &str,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), NatsConnectError> {
    let client = connect(auth, name).await?;
    let js = async_nats::jetstream::new(client.clone());
    check_jetstream(&js)
        .await
        .map_err(|answer| NatsConnectError::NoJetStream {
            url: auth.url.clone(),
            answer,
        })?;
    Ok((client, js))
}

/// Asks the JetStream API for account information (`$JS.API.INFO`), in a way
/// that does not depend on the fields a server version returns.
///
/// # Errors
/// The server's answer when JetStream is not available.
pub async fn check_jetstream(js: &async_nats::jetstream::Context) -> Result<(), String> {
    let answer: serde_json::Value = js
        .request("INFO", &serde_json::json!({}))
        .await
        .map_err(|e| e.to_string())?;
    match answer.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(()),
    }
}

fn connect_hint(kind: async_nats::ConnectErrorKind) -> &'static str {
    use async_nats::ConnectErrorKind as K;
    match kind {
        K::ServerParse => "check the NATS url, e.g. nats://127.0.0.1:4222",
        K::Dns => "check the host name in the NATS url",
        K::Authentication | K::AuthorizationViolation => {
            "check the token, user/password (in the config or the url) or creds file against the server's authorization"
        }
        K::Tls => "check the server's TLS setup and the tls:// scheme in the NATS url",
        K::TimedOut | K::Io | K::MaxReconnects => {
            "check that nats-server is running and reachable at that address (host, port, firewall)"
        }
    }
}
