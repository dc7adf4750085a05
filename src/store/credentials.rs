//! Credentials of an `s3://` archive when neither `[storage]` nor the
//! environment gives keys: the machine's instance profile, read from the EC2
//! instance metadata service. Off EC2 that service does not exist, and asking
//! it with the store's retry policy would spend minutes before failing with a
//! metadata URL that says nothing about credentials. So Strata first checks
//! with one short TCP connect that the service is there, and when it is not (or
//! it has no credentials to give) it fails at once with [`NoCredentials`]:
//! which credentials were missing and everywhere Strata looked.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AwsCredential, AwsCredentialProvider};
use object_store::{ClientOptions, CredentialProvider, RetryConfig};

/// The EC2 instance metadata service.
pub(crate) const METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// How long the TCP connect to the metadata service may take. It answers in
/// well under a millisecond on EC2 (it is on the host), so this only bounds
/// the wait where it does not exist.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Time for one request to the metadata service, once it is known to be there.
const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// No credentials for an `s3://` archive anywhere Strata looks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no S3 credentials found: Strata looked in [storage] access_key_id and secret_access_key, \
     the environment variables STRATA_ACCESS_KEY_ID / STRATA_SECRET_ACCESS_KEY and \
     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and the machine's instance profile \
     (EC2 instance metadata at {endpoint}: {metadata}); AWS CLI profiles (~/.aws) are not read. \
     Set both keys in [storage] or in the environment"
)]
pub struct NoCredentials {
    /// The metadata service asked.
    pub endpoint: String,
    /// What the metadata service did: unreachable, or its error.
    pub metadata: String,
}

/// The instance profile's credentials, behind a quick check that the metadata
/// service exists (see the module doc).
#[derive(Debug)]
pub(crate) struct InstanceProfile {
    endpoint: String,
    /// `host:port` of the endpoint, for the probe.
    addr: Option<SocketAddr>,
    /// Set after the first credentials came back: the service exists, so
    /// later calls (served from object_store's cache until expiry) skip the probe.
    reached: AtomicBool,
    inner: AwsCredentialProvider,
}

impl InstanceProfile {
    /// Credentials from the metadata service at `endpoint` (`http://host[:port]`).
    ///
    /// # Errors
    /// The object_store builder's error (it does not happen with a valid region).
    pub(crate) fn new(endpoint: &str, region: &str) -> Result<Self, object_store::Error> {
        // A store built only for its credential provider: object_store's own
        // instance-metadata client, with timeouts and retries fit for a local
        // service rather than the archive's minutes-long retry policy.
        let inner = AmazonS3Builder::new()
            .with_bucket_name("strata-credentials")
            .with_region(region)
            .with_metadata_endpoint(endpoint)
            .with_client_options(ClientOptions::new().with_timeout(METADATA_REQUEST_TIMEOUT))
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .build()?
            .credentials()
            .clone();
        Ok(Self {
            endpoint: endpoint.to_string(),
            addr: socket_addr(endpoint),
            reached: AtomicBool::new(false),
            inner,
        })
    }

    fn no_credentials(&self, metadata: String) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(NoCredentials {
                endpoint: self.endpoint.clone(),
                metadata,
            }),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for InstanceProfile {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if !self.reached.load(Ordering::Relaxed) {
            let Some(addr) = self.addr else {
                return Err(self.no_credentials("not a host:port address".into()));
            };
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.no_credentials(format!("unreachable ({e})"))),
                Err(_) => {
                    return Err(self.no_credentials(format!(
                        "unreachable (no answer within {} ms)",
                        PROBE_TIMEOUT.as_millis()
                    )))
                }
            }
        }
        match self.inner.get_credential().await {
            Ok(credential) => {
                self.reached.store(true, Ordering::Relaxed);
                Ok(credential)
            }
            Err(e) => Err(self.no_credentials(format!("it gave none: {}", short(&e)))),
        }
    }
}

/// The socket address of `http://host[:port]` when host is an IP address.
fn socket_addr(endpoint: &str) -> Option<SocketAddr> {
    let authority = endpoint
        .strip_prefix("http://")?
        .split('/')
        .next()
        .unwrap_or_default();
    authority
        .parse()
        .ok()
        .or_else(|| format!("{authority}:80").parse().ok())
}

/// object_store's message without its "Generic S3 error: " prefix.
fn short(e: &object_store::Error) -> String {
    let text = e.to_string();
    match text.split_once("error: ") {
        Some((_, rest)) if text.starts_with("Generic") => rest.to_string(),
        _ => text,
    }
}

/// The [`NoCredentials`] somewhere in `err`'s source chain.
pub(crate) fn find_no_credentials<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> Option<&'e NoCredentials> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<NoCredentials>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A fake metadata service answering every request with `answer(path)`.
    async fn fake_metadata(answer: fn(&str) -> (u16, String)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = 0;
                    loop {
                        let Ok(n) = conn.read(&mut buf[got..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got += n;
                        let head = String::from_utf8_lossy(&buf[..got]).to_string();
                        if !head.contains("\r\n\r\n") {
                            continue;
                        }
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        let (status, body) = answer(&path);
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        got = 0;
                    }
                });
            }
        });
        endpoint
    }

    fn no_credentials(e: &object_store::Error) -> NoCredentials {
        find_no_credentials(e)
            .unwrap_or_else(|| panic!("not NoCredentials: {e}"))
            .clone()
    }

    #[tokio::test]
    async fn an_absent_metadata_service_fails_at_once_saying_where_strata_looked() {
        // A port nothing listens on: refused at once, no retries.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let provider = InstanceProfile::new(&endpoint, "us-east-1").unwrap();
        let started = Instant::now();
        let e = provider.get_credential().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let found = no_credentials(&e);
        assert!(found.metadata.starts_with("unreachable"), "{found:?}");
        let text = found.to_string();
        for place in [
            "[storage] access_key_id",
            "STRATA_ACCESS_KEY_ID",
            "AWS_ACCESS_KEY_ID",
            "instance profile",
            &endpoint,
            "~/.aws",
        ] {
            assert!(text.contains(place), "{place} missing from: {text}");
        }
        // What a store operation reports: a permanent credentials problem, in those words.
        let op = crate::store::error::op_error("put", &object_store::path::Path::from("a/b"), e);
        assert_eq!(op.cause(), Some(crate::store::Cause::Credentials));
        assert!(op.is_permanent());
        assert!(
            op.to_string()
                .starts_with("put a/b failed: no S3 credentials found"),
            "{op}"
        );
    }

    #[tokio::test]
    async fn a_metadata_service_without_a_role_is_no_credentials_too() {
        let endpoint = fake_metadata(|_| (403, "Forbidden".into())).await;
        let provider = InstanceProfile::new(&endpoint, "us-east-1").unwrap();
        let started = Instant::now();
        let e = provider.get_credential().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let found = no_credentials(&e);
        assert!(found.metadata.contains("403"), "{found:?}");
    }

    #[tokio::test]
    async fn an_instance_profile_gives_its_credentials() {
        let endpoint = fake_metadata(|path| match path {
            "/latest/api/token" => (200, "a-token".into()),
            "/latest/meta-data/iam/security-credentials/" => (200, "the-role".into()),
            "/latest/meta-data/iam/security-credentials/the-role" => (
                200,
                r#"{"AccessKeyId":"ASIAFAKE","SecretAccessKey":"s","Token":"t","Expiration":"2999-01-01T00:00:00Z"}"#
                    .into(),
            ),
            _ => (404, String::new()),
        })
        .await;
        let provider = InstanceProfile::new(&endpoint, "us-east-1").unwrap();
        let credential = provider.get_credential().await.unwrap();
        assert_eq!(credential.key_id, "ASIAFAKE");
        assert!(provider.reached.load(Ordering::Relaxed));
    }

    #[test]
    fn probe_addresses() {
        assert_eq!(
            socket_addr("http://169.254.169.254"),
            Some("169.254.169.254:80".parse().unwrap())
        );
        assert_eq!(
            socket_addr("http://127.0.0.1:9/"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(socket_addr("https://x"), None);
    }
}
