//! The `[storage] url` forms, parsed without I/O: `file:///abs`, `file://./rel`
//! (or `file://rel`) and `s3://bucket[/prefix]`.

use std::path::PathBuf;

use object_store::path::Path;

use super::StoreError;

/// What the forms are, for error messages.
pub(crate) const SUPPORTED: &str = "use file:///absolute/path, file://./relative/path \
                                    or s3://bucket/optional/prefix";

/// A parsed `[storage] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// A local folder; relative paths are relative to the working directory.
    File {
        /// The folder as written (absolute or relative).
        path: PathBuf,
    },
    /// An S3-compatible bucket and the key prefix inside it (may be empty).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`.
        prefix: Path,
    },
}

impl StorageUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] saying what is wrong and which forms are supported.
    /// The message never repeats credentials written into the URL.
    pub fn parse(url: &str) -> Result<StorageUrl, StoreError> {
        let bad = |reason: String| StoreError::BadUrl {
            url: redact_userinfo(url),
            reason,
        };
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad(format!("the path is empty: {SUPPORTED}")));
            }
            if rest.contains(['?', '#']) {
                return Err(bad(format!(
                    "'?' and '#' are not allowed in a file url: {SUPPORTED}"
                )));
            }
            return Ok(StorageUrl::File {
                path: PathBuf::from(rest),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') {
                return Err(bad(
                    "credentials do not belong in the url: set [storage] access_key_id and \
                     secret_access_key, or STRATA_ACCESS_KEY_ID / STRATA_SECRET_ACCESS_KEY"
                        .to_string(),
                ));
            }
            if bucket.is_empty() {
                return Err(bad(format!("the bucket name is missing: {SUPPORTED}")));
            }
            if let Some(c) = bucket
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
            {
                return Err(bad(format!(
                    "bucket name {bucket:?} contains {c:?}: bucket names use a-z 0-9 . - \
                     (the endpoint goes in [storage] endpoint, not in the url)"
                )));
            }
            if bucket.len() > 63 {
                return Err(bad(format!(
                    "bucket name {bucket:?} is longer than 63 characters"
                )));
            }
            if prefix.contains(['?', '#']) {
                return Err(bad(format!(
                    "'?' and '#' are not allowed in the prefix: {SUPPORTED}"
                )));
            }
            let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| {
                bad(format!(
                    "the prefix is not a valid object path ({e}): use segments separated \
                     by single '/', without '.' or '..'"
                ))
            })?;
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        let scheme = url.split_once("://").map(|(s, _)| s);
        let reason = match scheme {
            Some(s) => format!("scheme {s}:// is not supported: {SUPPORTED}"),
            None => format!("no scheme: {SUPPORTED}"),
        };
        Err(bad(reason))
    }
}

/// `scheme://user:pass@host/...` → `scheme://<redacted>@host/...`.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// The endpoint for virtual-hosted-style requests: object_store sends them to
/// the endpoint as given, so the bucket must be the first label of its host
/// (`https://s3.example.com` → `https://bucket.s3.example.com`).
pub(crate) fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    let Some((scheme, host)) = endpoint.split_once("://") else {
        return endpoint.to_string();
    };
    if host.starts_with(&format!("{bucket}.")) {
        endpoint.to_string()
    } else {
        format!("{scheme}://{bucket}.{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        StorageUrl::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            StorageUrl::parse("file:///var/lib/strata").unwrap(),
            StorageUrl::File {
                path: PathBuf::from("/var/lib/strata")
            }
        );
        assert_eq!(
            StorageUrl::parse("file://./data/archive").unwrap(),
            StorageUrl::File {
                path: PathBuf::from("./data/archive")
            }
        );
        assert_eq!(
            StorageUrl::parse("file://data").unwrap(),
            StorageUrl::File {
                path: PathBuf::from("data")
            }
        );
        assert!(err("file://").contains("path is empty"));
    }

    #[test]
    fn s3_urls() {
        assert_eq!(
            StorageUrl::parse("s3://bucket").unwrap(),
            StorageUrl::S3 {
                bucket: "bucket".into(),
                prefix: Path::from("")
            }
        );
        assert_eq!(
            StorageUrl::parse("s3://my-bucket.eu/a/b/").unwrap(),
            StorageUrl::S3 {
                bucket: "my-bucket.eu".into(),
                prefix: Path::from("a/b")
            }
        );
        assert!(err("s3://").contains("bucket name is missing"));
        assert!(err("s3:///prefix").contains("bucket name is missing"));
        assert!(err("s3://a/x//b").contains("prefix"));
        assert!(err("s3://a/../b").contains("prefix"));
        assert!(err("s3://host:9000/bucket").contains("[storage] endpoint"));
        assert!(err(&format!("s3://{}", "b".repeat(64))).contains("63"));
    }

    #[test]
    fn other_schemes_list_the_supported_ones() {
        for url in [
            "gs://bucket",
            "https://s3.amazonaws.com/b",
            "/tmp/archive",
            "",
        ] {
            let e = err(url);
            assert!(e.contains("file://") && e.contains("s3://"), "{url}: {e}");
        }
        assert!(err("gs://bucket").contains("gs:// is not supported"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_not_repeated() {
        let e = err("s3://AKIAXXX:topsecret@bucket/p");
        assert!(!e.contains("topsecret") && !e.contains("AKIAXXX"), "{e}");
        assert!(e.contains("access_key_id"), "{e}");
        assert_eq!(
            redact_userinfo("s3://u:p@b/x@y"),
            "s3://<redacted>@b/x@y".to_string()
        );
        assert_eq!(redact_userinfo("s3://b/x@y"), "s3://b/x@y");
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(
            virtual_hosted_endpoint("https://s3.us-east-005.backblazeb2.com", "b1"),
            "https://b1.s3.us-east-005.backblazeb2.com"
        );
        assert_eq!(
            virtual_hosted_endpoint("https://b1.s3.example.com", "b1"),
            "https://b1.s3.example.com"
        );
    }
}
