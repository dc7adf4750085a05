//! Store errors that say what went wrong, whether retrying can help, and what
//! to check in `[storage]`. Classification is pure: it reads the object_store
//! error's variant and the typed errors in its source chain first, and only
//! where object_store keeps nothing typed, the S3 error code and HTTP status in
//! its text (see `diagnose`).

use std::error::Error as StdError;

use object_store::path::Path;

/// Errors opening or using the store, with what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `[storage] url` is not one of the supported forms.
    #[error("invalid [storage] url {url:?}: {reason}")]
    BadUrl {
        /// The url, with any credentials in it redacted.
        url: String,
        /// What is wrong and what is supported.
        reason: String,
    },
    /// `[storage]` settings that cannot work together.
    #[error("invalid [storage] settings: {reason}")]
    Config {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The archive folder of a `file://` url could not be created.
    #[error("cannot create the archive folder {path}: {source} (check the path in [storage] url and the folder's permissions)")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// object_store refused the configuration.
    #[error("cannot configure storage {url}: {source}")]
    Build {
        /// The archive url.
        url: String,
        /// The builder's error.
        source: object_store::Error,
    },
    /// An operation on the store failed.
    #[error("{op} {path} failed: {hint} ({detail})")]
    Op {
        /// The operation (`put`, `get`, `list`, `delete`, …).
        op: &'static str,
        /// The object or prefix.
        path: String,
        /// Why, as far as Strata can tell.
        cause: Cause,
        /// What to check.
        hint: String,
        /// The store's own message, with S3 error bodies reduced to code and
        /// message (they can quote the access key id).
        detail: String,
        /// The original error, for code that matches on its variant. Not a
        /// `source()`: its text may hold what `detail` leaves out.
        error: Box<object_store::Error>,
    },
}

impl StoreError {
    /// Whether retrying the same operation cannot help (wrong credentials, bucket,
    /// region or url; a missing object): the configuration or the caller must change.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Op { cause, .. } => cause.is_permanent(),
            StoreError::BadUrl { .. }
            | StoreError::Config { .. }
            | StoreError::Folder { .. }
            | StoreError::Build { .. } => true,
        }
    }

    /// The cause of a failed operation.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            StoreError::Op { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// The object_store error behind a failed operation.
    pub fn object_store_error(&self) -> Option<&object_store::Error> {
        match self {
            StoreError::Op { error, .. } => Some(error.as_ref()),
            StoreError::Build { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.cause() == Some(Cause::NotFound)
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// 401/403, `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `AccessDenied`.
    Credentials,
    /// `NoSuchBucket`.
    NoSuchBucket,
    /// The bucket is in another region (301, `PermanentRedirect`,
    /// `AuthorizationHeaderMalformed`).
    WrongRegion,
    /// Connection refused, DNS failure, TLS failure: the endpoint is unreachable.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// The object does not exist.
    NotFound,
    /// The object already exists (conditional create).
    AlreadyExists,
    /// A precondition (ETag, version) did not hold.
    Precondition,
    /// The service asks to slow down (429, `SlowDown`).
    Throttled,
    /// The service failed (5xx).
    ServerError,
    /// A local file system error (the `file://` archive).
    LocalIo {
        /// Whether it is a permission problem (permanent) rather than e.g. a full disk.
        permission: bool,
    },
    /// The store does not support the operation.
    Unsupported,
    /// Anything else.
    Other,
}

impl Cause {
    /// Whether retrying cannot help.
    pub fn is_permanent(self) -> bool {
        match self {
            Cause::Credentials
            | Cause::NoSuchBucket
            | Cause::WrongRegion
            | Cause::NotFound
            | Cause::AlreadyExists
            | Cause::Precondition
            | Cause::Unsupported => true,
            Cause::LocalIo { permission } => permission,
            Cause::Unreachable
            | Cause::Timeout
            | Cause::Throttled
            | Cause::ServerError
            | Cause::Other => false,
        }
    }
}

/// Turns an object-store error of `op` on `path` (the full key) into a
/// [`StoreError::Op`] that says whether it is permanent and what to check.
pub(crate) fn op_error(op: &'static str, path: &Path, source: object_store::Error) -> StoreError {
    let (cause, hint, detail) = match super::credentials::find_no_credentials(&source) {
        // Already says what is missing and where Strata looked; no request was sent.
        Some(none) => (
            Cause::Credentials,
            none.to_string(),
            "no request to the bucket was sent".to_string(),
        ),
        None => {
            let chain = chain_text(&source);
            let (cause, hint) = diagnose(&source, &chain);
            (cause, hint, sanitize(&chain))
        }
    };
    StoreError::Op {
        op,
        path: path.to_string(),
        cause,
        hint,
        detail,
        error: Box::new(source),
    }
}

/// The error's text followed by every source's text that adds something.
fn chain_text(err: &object_store::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let t = e.to_string();
        if !t.is_empty() && !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        next = e.source();
    }
    text
}

/// The parts of an S3 XML error body that matter.
#[derive(Debug, Default, PartialEq, Eq)]
struct S3Body {
    code: String,
    message: String,
    bucket: Option<String>,
    region: Option<String>,
}

impl S3Body {
    fn find(text: &str) -> Option<S3Body> {
        let code = tag(text, "Code")?;
        Some(S3Body {
            code: code.to_string(),
            message: tag(text, "Message").unwrap_or_default().to_string(),
            bucket: tag(text, "BucketName").map(str::to_string),
            region: tag(text, "Region").map(str::to_string),
        })
    }
}

/// The text of the first `<name>…</name>` element.
fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&close)?;
    Some(text[start..start + len].trim())
}

/// Replaces S3 XML error bodies by `S3 <Code>: <Message>` (the bodies can quote
/// the access key id, the string to sign and the canonical request) and bounds
/// the length.
fn sanitize(text: &str) -> String {
    const MAX: usize = 600;
    let mut out = match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(start) => {
            let end = text[start..]
                .find("</Error>")
                .map_or(text.len(), |i| start + i + "</Error>".len());
            let summary = match S3Body::find(&text[start..end]) {
                Some(b) if b.message.is_empty() => format!("S3 {}", b.code),
                Some(b) => format!("S3 {}: {}", b.code, b.message),
                None => "S3 error body omitted".to_string(),
            };
            format!("{}{}{}", &text[..start], summary, &text[end..])
        }
        None => text.to_string(),
    };
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// What the source chain holds as typed values.
#[derive(Debug, Default)]
struct Typed {
    /// The first I/O error's kind (connection refused, permission denied, …).
    io: Option<std::io::ErrorKind>,
    /// The HTTP client's error said it could not connect (refused, DNS, TLS).
    connect: bool,
    /// The HTTP client's error said the request timed out.
    timeout: bool,
    /// `scheme://host[:port]` of the request the HTTP client's error names.
    origin: Option<String>,
}

impl Typed {
    fn of(err: &object_store::Error) -> Typed {
        let mut found = Typed::default();
        let mut next: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                found.io.get_or_insert(io.kind());
            }
            // object_store's S3 client is built on reqwest (the same version as
            // Strata's, one entry in Cargo.lock), and its error is in the chain.
            if let Some(r) = e.downcast_ref::<reqwest::Error>() {
                found.connect |= r.is_connect();
                found.timeout |= r.is_timeout();
                if found.origin.is_none() {
                    found.origin = r.url().map(|u| u.origin().ascii_serialization());
                }
            }
            next = e.source();
        }
        found
    }
}

/// `scheme://host[:port]` of the first http(s) URL in `text` (the request URL
/// object_store puts in its messages), for errors whose chain names no request.
fn origin(text: &str) -> Option<&str> {
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    let rest = &text[start..];
    let scheme_end = rest.find("://")? + 3;
    let end = rest[scheme_end..]
        .find(|c: char| c == '/' || c.is_whitespace())
        .map_or(rest.len(), |i| scheme_end + i);
    Some(&rest[..end])
}

/// The HTTP status of a failed request, read from object_store's message.
///
/// Last resort, for `Generic` errors only: object_store maps 401, 403, 404, 409,
/// 412 and 304 of object requests to typed variants, but a listing's error is
/// `Generic`, and so are other statuses (301, 429, 5xx). The value that holds
/// the status (`client::retry::RetryError`, whose `status()` would give it) sits
/// in a crate-private module in object_store 0.12, so it cannot be downcast to;
/// its `Display` writes `Server returned non-2xx status code: <status>`.
fn status(text: &str) -> Option<u16> {
    let i = text.find("status code: ")? + "status code: ".len();
    text[i..].get(..3)?.parse().ok()
}

const CREDENTIALS: &str = "check [storage] access_key_id and secret_access_key (or \
                           STRATA_ACCESS_KEY_ID / STRATA_SECRET_ACCESS_KEY)";

/// The hint for a refused request, finer when the S3 error code says why.
fn credentials(code: &str) -> (Cause, String) {
    let hint = match code {
        "InvalidAccessKeyId" => {
            format!("the storage service does not know this access key id: {CREDENTIALS}")
        }
        "SignatureDoesNotMatch" => format!(
            "the request signature does not match (wrong secret access key?): {CREDENTIALS}"
        ),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => {
            format!("access denied: {CREDENTIALS}, and that this key may read and write the bucket")
        }
        _ => format!("the storage service refused the request: {CREDENTIALS}"),
    };
    (Cause::Credentials, hint)
}

fn no_such_bucket(s3: Option<&S3Body>) -> (Cause, String) {
    let bucket = s3
        .and_then(|b| b.bucket.as_deref())
        .map(|b| format!("bucket {b:?}"))
        .unwrap_or_else(|| "the bucket".to_string());
    (
        Cause::NoSuchBucket,
        format!(
            "{bucket} does not exist: check the bucket name in [storage] url (and the endpoint)"
        ),
    )
}

/// Classifies `err` (whose chain reads `chain`), typed values first:
///
/// 1. object_store's variant: `NotFound`, `AlreadyExists`, `Precondition` /
///    `NotModified`, `PermissionDenied` / `Unauthenticated`, `NotSupported` /
///    `NotImplemented`, and `Generic` from `LocalFileSystem`;
/// 2. for other `Generic` errors, the typed transport errors in the source chain
///    (reqwest's connect / timeout, the I/O error kind);
/// 3. only then what object_store keeps as text: the S3 error code of the
///    response body and the HTTP status ([`status`]).
///
/// S3 error codes are read from the body (`<Code>…</Code>`) because object_store
/// passes the body on as text only. They refine a typed variant (a 404 is a
/// missing bucket, not a missing object, when the code is `NoSuchBucket`; a 403
/// says which credential is wrong) and classify `Generic` errors (a listing's
/// 404 or 403, a 301 or 400 for the wrong region, 503 `SlowDown`).
fn diagnose(err: &object_store::Error, chain: &str) -> (Cause, String) {
    use object_store::Error as E;

    let s3 = S3Body::find(chain);
    let code = s3.as_ref().map_or("", |b| b.code.as_str());
    let typed = Typed::of(err);

    match err {
        E::NotFound { .. } if code == "NoSuchBucket" => return no_such_bucket(s3.as_ref()),
        E::NotFound { .. } => return (Cause::NotFound, "the object does not exist".to_string()),
        E::AlreadyExists { .. } => {
            return (
                Cause::AlreadyExists,
                "the object already exists".to_string(),
            )
        }
        E::Precondition { .. } | E::NotModified { .. } => {
            return (
                Cause::Precondition,
                "the object changed since it was read (precondition failed)".to_string(),
            )
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => return credentials(code),
        E::NotSupported { .. } | E::NotImplemented => {
            return (
                Cause::Unsupported,
                "this store does not support the operation".to_string(),
            )
        }
        E::Generic {
            store: "LocalFileSystem",
            ..
        } => {
            let permission = typed.io == Some(std::io::ErrorKind::PermissionDenied);
            let hint = if permission {
                "permission denied: check that Strata may write the archive folder"
            } else {
                "local file error: check the archive folder in [storage] url and free disk space"
            };
            return (Cause::LocalIo { permission }, hint.to_string());
        }
        _ => {}
    }

    use std::io::ErrorKind as Io;
    let refused = matches!(
        typed.io,
        Some(Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted)
    );
    if typed.connect || refused {
        let endpoint = match typed.origin.as_deref().or_else(|| origin(chain)) {
            Some(o) => format!("cannot reach {o}"),
            None => "cannot reach the storage service".to_string(),
        };
        return (
            Cause::Unreachable,
            format!(
                "{endpoint}: check [storage] endpoint (and region) and that the service is running"
            ),
        );
    }
    if typed.timeout || typed.io == Some(Io::TimedOut) {
        return (
            Cause::Timeout,
            "the storage service did not answer in time: check the network, the endpoint and \
             [storage] request_timeout"
                .to_string(),
        );
    }

    let status = status(chain);
    match code {
        "NoSuchBucket" => return no_such_bucket(s3.as_ref()),
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "AccessDenied"
        | "AllAccessDisabled"
        | "AccountProblem" => return credentials(code),
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => {
            let expected = s3
                .as_ref()
                .and_then(|b| b.region.as_deref())
                .map(|r| format!(" (the bucket is in {r:?})"))
                .unwrap_or_default();
            return (
                Cause::WrongRegion,
                format!("the bucket is in another region: check [storage] region{expected}"),
            );
        }
        "SlowDown" | "RequestLimitExceeded" | "TooManyRequests" => {
            return (
                Cause::Throttled,
                "the storage service asks to slow down; retry later or lower \
                 [compaction] upload_concurrency"
                    .to_string(),
            )
        }
        _ => {}
    }
    // object_store's `BareRedirect` ("… incorrectly configured region") has no
    // status and no body.
    if status == Some(301) || chain.contains("incorrectly configured region") {
        return (
            Cause::WrongRegion,
            "the service redirected the request: check [storage] region (and endpoint)".to_string(),
        );
    }
    match status {
        Some(401 | 403) => credentials(code),
        Some(404) => (Cause::NotFound, "not found".to_string()),
        Some(429) => (
            Cause::Throttled,
            "the storage service asks to slow down; retry later".to_string(),
        ),
        Some(500..=599) => (
            Cause::ServerError,
            "the storage service failed; retry later".to_string(),
        ),
        _ => (
            Cause::Other,
            "unexpected storage error: see the details".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use object_store::aws::AmazonS3Builder;
    use object_store::{ClientOptions, ObjectStore, RetryConfig};

    use super::*;

    fn boxed(s: &str) -> Box<dyn StdError + Send + Sync> {
        s.to_string().into()
    }

    /// A `Generic` error of the S3 client: what a listing's failure, and any
    /// status object_store does not map to a variant, looks like.
    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: boxed(text),
        }
    }

    fn classify(e: object_store::Error) -> (Cause, String, String) {
        match op_error("put", &Path::from("a/b"), e) {
            StoreError::Op {
                cause,
                hint,
                detail,
                ..
            } => (cause, hint, detail),
            other => panic!("not an Op error: {other:?}"),
        }
    }

    const SIG: &str = "Error performing PUT http://127.0.0.1:9000/bkt/a/b in 3ms - Server \
        returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated \
        does not match the signature you provided.</Message><AWSAccessKeyId>AKIASECRETID\
        </AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 xyz</StringToSign></Error>";

    #[test]
    fn typed_variants_decide_before_any_text() {
        // The text says 503 and SlowDown; the variant says what object_store
        // made of the status, and wins.
        let noisy = "status code: 503: <Error><Code>SlowDown</Code></Error>";
        let cases = [
            (
                object_store::Error::NotFound {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::NotFound,
            ),
            (
                object_store::Error::AlreadyExists {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::AlreadyExists,
            ),
            (
                object_store::Error::Precondition {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::Precondition,
            ),
            (
                object_store::Error::NotModified {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::Precondition,
            ),
            (
                object_store::Error::Unauthenticated {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::Credentials,
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "a".into(),
                    source: boxed(noisy),
                },
                Cause::Credentials,
            ),
            (
                object_store::Error::NotSupported {
                    source: boxed(noisy),
                },
                Cause::Unsupported,
            ),
            (object_store::Error::NotImplemented, Cause::Unsupported),
        ];
        for (e, want) in cases {
            let shown = e.to_string();
            assert_eq!(classify(e).0, want, "{shown}");
        }
    }

    #[test]
    fn credentials() {
        let (cause, hint, detail) = classify(object_store::Error::PermissionDenied {
            path: "a/b".into(),
            source: boxed(SIG),
        });
        assert_eq!(cause, Cause::Credentials);
        assert!(cause.is_permanent());
        assert!(hint.contains("secret_access_key"), "{hint}");
        assert!(hint.contains("wrong secret access key"), "{hint}");
        assert!(detail.contains("SignatureDoesNotMatch"), "{detail}");
        assert!(!detail.contains("AKIASECRETID"), "{detail}");
        assert!(!detail.contains("StringToSign"), "{detail}");

        // A listing's 403 is `Generic`: the body code says which credential.
        let (cause, hint, _) = classify(generic(
            "status code: 403 Forbidden: <Error><Code>InvalidAccessKeyId</Code>\
             <Message>nope</Message></Error>",
        ));
        assert_eq!(cause, Cause::Credentials);
        assert!(hint.contains("does not know this access key id"), "{hint}");

        let (cause, hint, _) = classify(generic(
            "Server returned non-2xx status code: 403 Forbidden: ",
        ));
        assert_eq!(cause, Cause::Credentials);
        assert!(hint.contains("refused the request"), "{hint}");
    }

    #[test]
    fn bucket_and_region() {
        let (cause, hint, _) = classify(object_store::Error::NotFound {
            path: "a/b".into(),
            source: boxed(
                "status code: 404 Not Found: <Error><Code>NoSuchBucket</Code><Message>The \
                 specified bucket does not exist</Message><BucketName>typo-bkt</BucketName></Error>",
            ),
        });
        assert_eq!(cause, Cause::NoSuchBucket);
        assert!(
            hint.contains("\"typo-bkt\"") && hint.contains("[storage] url"),
            "{hint}"
        );

        // A listing of a missing bucket is `Generic`.
        let (cause, _, _) = classify(generic(
            "Error performing list request: status code: 404 Not Found: \
             <Error><Code>NoSuchBucket</Code></Error>",
        ));
        assert_eq!(cause, Cause::NoSuchBucket);

        let (cause, hint, _) = classify(object_store::Error::NotFound {
            path: "a/b".into(),
            source: boxed("status code: 404: <Error><Code>NoSuchKey</Code></Error>"),
        });
        assert_eq!(cause, Cause::NotFound);
        assert!(hint.contains("does not exist"), "{hint}");

        let (cause, hint, _) = classify(generic(
            "status code: 301 Moved Permanently: <Error><Code>PermanentRedirect</Code>\
             <Message>use the right endpoint</Message><Region>eu-west-1</Region></Error>",
        ));
        assert_eq!(cause, Cause::WrongRegion);
        assert!(
            hint.contains("[storage] region") && hint.contains("eu-west-1"),
            "{hint}"
        );

        let (cause, _, _) = classify(generic(
            "Received redirect without LOCATION, this normally indicates an incorrectly \
             configured region",
        ));
        assert_eq!(cause, Cause::WrongRegion);
    }

    #[test]
    fn statuses_object_store_leaves_generic() {
        let (cause, _, _) = classify(generic(
            "Server returned non-2xx status code: 503 Service Unavailable: ",
        ));
        assert_eq!(cause, Cause::ServerError);
        assert!(!cause.is_permanent());

        let (cause, _, _) = classify(generic(
            "status code: 503: <Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>",
        ));
        assert_eq!(cause, Cause::Throttled);

        let (cause, _, _) = classify(generic("Server returned non-2xx status code: 429 Too Many"));
        assert_eq!(cause, Cause::Throttled);

        let (cause, _, _) = classify(generic("something else"));
        assert_eq!(cause, Cause::Other);
    }

    #[test]
    fn io_kinds_in_the_chain() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
        ] {
            let (cause, hint, _) = classify(object_store::Error::Generic {
                store: "S3",
                source: Box::new(std::io::Error::new(kind, "x")),
            });
            assert_eq!(cause, Cause::Unreachable, "{kind:?}");
            assert!(hint.contains("the storage service"), "{hint}");
        }
        let (cause, _, _) = classify(object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "x")),
        });
        assert_eq!(cause, Cause::Timeout);
        // The words alone decide nothing: no typed transport error, no status.
        let (cause, _, _) = classify(generic("tcp connect error: Connection refused"));
        assert_eq!(cause, Cause::Other);
    }

    /// An S3 client against `endpoint`, failing fast.
    fn s3(endpoint: &str, timeout: Duration) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name("bkt")
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_access_key_id("AKIA_UNIT_TEST")
            .with_secret_access_key("unit-test-secret")
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(timeout),
            )
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: timeout,
                ..RetryConfig::default()
            })
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_from_the_http_clients_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = s3(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
        let list = store
            .list_with_delimiter(Some(&Path::from("p")))
            .await
            .unwrap_err();
        let put = store
            .put(&Path::from("p/x"), b"x".to_vec().into())
            .await
            .unwrap_err();
        for e in [list, put] {
            assert!(matches!(e, object_store::Error::Generic { .. }), "{e}");
            let typed = Typed::of(&e);
            assert!(typed.connect, "{e}");
            let (cause, hint, detail) = classify(e);
            assert_eq!(cause, Cause::Unreachable);
            assert!(
                hint.contains(&format!("cannot reach http://127.0.0.1:{port}:")),
                "{hint}"
            );
            assert!(!detail.contains("unit-test-secret"), "{detail}");
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        // Accepts connections (the kernel does, from the backlog) and never replies.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let store = s3(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(300),
        );
        let e = store.get(&Path::from("x")).await.unwrap_err();
        drop(listener);
        assert!(Typed::of(&e).timeout, "{e}");
        assert_eq!(classify(e).0, Cause::Timeout);
    }

    #[test]
    fn local_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let (cause, hint, _) = classify(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(io),
        });
        assert_eq!(cause, Cause::LocalIo { permission: true });
        assert!(cause.is_permanent());
        assert!(hint.contains("permission"), "{hint}");

        let io = std::io::Error::other("No space left on device");
        let (cause, _, _) = classify(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(io),
        });
        assert_eq!(cause, Cause::LocalIo { permission: false });
        assert!(!cause.is_permanent());
    }

    #[test]
    fn display_has_op_path_hint_and_detail_but_no_source_chain() {
        let e = op_error(
            "put",
            &Path::from("a/b"),
            object_store::Error::PermissionDenied {
                path: "a/b".into(),
                source: boxed(SIG),
            },
        );
        let text = e.to_string();
        assert!(text.starts_with("put a/b failed: "), "{text}");
        assert!(!text.contains("AKIASECRETID"), "{text}");
        assert!(e.source().is_none());
        assert!(e.is_permanent());
        assert!(matches!(
            e.object_store_error(),
            Some(object_store::Error::PermissionDenied { .. })
        ));
    }

    #[test]
    fn sanitize_bounds_length() {
        let long = "x".repeat(2000);
        let s = sanitize(&long);
        assert!(s.len() <= 600 + '…'.len_utf8());
        assert_eq!(sanitize("<Error>oops"), "S3 error body omitted");
    }
}
