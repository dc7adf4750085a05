//! One archive behaviour suite run over every kind of store Strata opens from
//! `[storage]`: a local folder (`file://`) and the real S3 protocol against the
//! S3-compatible test server (`s3://`, path style), plus the failures a user
//! meets first: a wrong bucket and an endpoint where nothing listens.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{PutPayload, WriteMultipart};
use strata::config::StorageConfig;
use strata::store::{check, Archive, Cause};

/// Bigger than the 16 MiB multipart threshold, not a multiple of the part size.
const MULTIPART_BYTES: usize = 17 * 1024 * 1024 + 12_345;
const PART_BYTES: usize = 5 * 1024 * 1024;

fn pattern(len: usize, seed: u32) -> Bytes {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            // xorshift: cheap bytes that do not compress to nothing.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn list(archive: &Archive, under: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = archive
        .list_all(Some(under))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    found.sort();
    found
}

/// The behaviour every archive store must have (keys relative to the archive
/// root: the prefix, when there is one, is the store's business).
async fn suite(archive: &Archive) {
    let root = Path::from("suite");
    let a = root.child("station=orders").child("a.parquet");
    let b = root.child("station=orders").child("b.parquet");

    // put / get
    for (path, seed) in [(&a, 1), (&b, 2)] {
        archive
            .put(path, PutPayload::from_bytes(pattern(1000, seed)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(archive.get(&a).await.unwrap(), pattern(1000, 1));

    // list
    assert_eq!(
        list(archive, &root).await,
        vec![(a.to_string(), 1000), (b.to_string(), 1000)]
    );

    // overwrite with the same key replaces (deterministic keys rely on it)
    archive
        .put(&a, PutPayload::from_bytes(pattern(10, 3)))
        .await
        .unwrap();
    assert_eq!(archive.get(&a).await.unwrap(), pattern(10, 3));

    // put_if_absent stores once (the ledger's records rely on it)
    let once = root.child("once.json");
    assert!(archive
        .put_if_absent(&once, b"1".to_vec().into())
        .await
        .unwrap());
    assert!(!archive
        .put_if_absent(&once, b"2".to_vec().into())
        .await
        .unwrap());
    assert_eq!(archive.get(&once).await.unwrap().as_ref(), b"1");
    archive.delete(&once).await.unwrap();

    // delete; a missing object is a permanent NotFound that names the full key
    archive.delete(&a).await.unwrap();
    let err = archive.get(&a).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.is_permanent());
    assert!(
        err.to_string()
            .starts_with(&format!("get {} failed", archive.key(&a))),
        "{err}"
    );
    assert_eq!(archive.get_if_exists(&a).await.unwrap(), None);
    assert_eq!(list(archive, &root).await, vec![(b.to_string(), 1000)]);
    archive.delete(&b).await.unwrap();
    assert!(list(archive, &root).await.is_empty());

    // multipart upload above the threshold
    let big = root.child("big.parquet");
    let data = pattern(MULTIPART_BYTES, 4);
    let upload = archive.put_multipart(&big).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    for chunk in data.chunks(1024 * 1024 + 7) {
        writer.write(chunk);
    }
    writer
        .finish()
        .await
        .unwrap_or_else(|e| panic!("{}", archive.error("multipart put", &big, e)));
    let meta = archive.head(&big).await.unwrap();
    assert_eq!(meta.size, MULTIPART_BYTES as u64);
    assert_eq!(
        meta.location, big,
        "listed and described relative to the root"
    );
    let got = archive.get(&big).await.unwrap();
    assert!(got == data, "multipart content differs");
    archive.delete(&big).await.unwrap();

    // an aborted multipart upload leaves nothing behind
    let aborted = root.child("aborted.parquet");
    let mut upload = archive.put_multipart(&aborted).await.unwrap();
    upload
        .put_part(PutPayload::from_bytes(pattern(PART_BYTES, 5)))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    assert!(list(archive, &root).await.is_empty());
    assert!(archive.get(&aborted).await.unwrap_err().is_not_found());

    // the storage check passes and cleans up after itself
    let report = check(archive).await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.to_string().lines().count(), 4, "{report}");
    assert!(list(archive, &Path::from("_strata")).await.is_empty());
}

#[tokio::test]
async fn file_archive_suite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        url: format!("file://{}", dir.path().join("archive").display()),
        ..StorageConfig::default()
    };
    let archive = Archive::open(&cfg).unwrap();
    suite(&archive).await;
}

#[tokio::test]
async fn s3_archive_suite_with_prefix() {
    let endpoint = need!(support::s3::endpoint());
    let bucket = support::s3::unique_bucket("strata-suite");
    support::s3::create_bucket(&endpoint, &bucket);
    let archive = Archive::open(&support::s3::storage(&endpoint, &bucket, "tier2/prod")).unwrap();
    assert_eq!(archive.key(&Path::from("x")).as_ref(), "tier2/prod/x");
    suite(&archive).await;
    // The check report shows full keys, as they are in the bucket.
    let report = check(&archive).await;
    assert!(
        report.probe.starts_with("tier2/prod/_strata/probe-"),
        "{report:?}"
    );
    assert!(
        report.to_string().contains("to tier2/prod/_strata/probe-"),
        "{report}"
    );
}

#[tokio::test]
async fn s3_archive_suite_at_bucket_root() {
    let endpoint = need!(support::s3::endpoint());
    let bucket = support::s3::unique_bucket("strata-root");
    support::s3::create_bucket(&endpoint, &bucket);
    let archive = Archive::open(&support::s3::storage(&endpoint, &bucket, "")).unwrap();
    suite(&archive).await;
}

#[tokio::test]
async fn s3_keys_land_under_the_prefix() {
    let endpoint = need!(support::s3::endpoint());
    let bucket = support::s3::unique_bucket("strata-prefix");
    support::s3::create_bucket(&endpoint, &bucket);
    let archive = Archive::open(&support::s3::storage(&endpoint, &bucket, "p/q")).unwrap();
    let key = Path::from("station=s/x.parquet");
    archive.put(&key, b"x".to_vec().into()).await.unwrap();
    // Seen from the bucket root, the object is under p/q/.
    let root = Archive::open(&support::s3::storage(&endpoint, &bucket, "")).unwrap();
    assert_eq!(
        list(&root, &Path::default()).await,
        vec![("p/q/station=s/x.parquet".to_string(), 1)]
    );
}

#[tokio::test]
async fn wrong_bucket_names_the_bucket() {
    let endpoint = need!(support::s3::endpoint());
    let bucket = support::s3::unique_bucket("strata-missing");
    let archive = Archive::open(&support::s3::storage(&endpoint, &bucket, "p")).unwrap();

    let path = Path::from("x");
    let err = archive.put(&path, b"x".to_vec().into()).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::NoSuchBucket), "{err}");
    assert!(err.to_string().starts_with("put p/x failed"), "{err}");
    // A listing's error is `Generic` in object_store: the same diagnosis.
    let err = archive.list_all(None).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::NoSuchBucket), "{err}");
    assert!(err.to_string().contains(&bucket), "{err}");
    // A missing bucket is not a missing object.
    let err = archive.get_if_exists(&path).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::NoSuchBucket), "{err}");
    assert!(err.is_permanent());
    let text = err.to_string();
    assert!(text.contains(&bucket), "{text}");
    assert!(text.contains("[storage] url"), "{text}");

    let report = check(&archive).await;
    eprintln!("{err}\n{report}");
    assert!(!report.ok());
    let text = report.to_string();
    assert!(
        text.contains("put    FAILED") && text.contains(&bucket),
        "{text}"
    );
    assert!(text.contains("get    skipped"), "{text}");
}

#[tokio::test]
async fn closed_endpoint_fails_fast_and_names_the_endpoint() {
    // No server needed: nothing listens on this port.
    let endpoint = format!("http://127.0.0.1:{}", support::free_port());
    let mut cfg = support::s3::storage(&endpoint, "bucket", "p");
    cfg.max_retries = 1;
    cfg.retry_timeout = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(1);
    let archive = Archive::open(&cfg).unwrap();

    let start = Instant::now();
    let report = check(&archive).await;
    let elapsed = start.elapsed();
    eprintln!("{report}\n(in {elapsed:?})");
    assert!(!report.ok());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let text = report.to_string();
    assert!(text.contains(&endpoint), "{text}");
    assert!(text.contains("[storage] endpoint"), "{text}");
    assert!(
        !text.contains(support::s3::TEST_SECRET_ACCESS_KEY),
        "{text}"
    );
    assert!(!text.contains(support::s3::TEST_ACCESS_KEY_ID), "{text}");

    let path = Path::from("x");
    let err = archive.put(&path, b"x".to_vec().into()).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::Unreachable), "{err}");
    let err = archive.list_all(None).await.unwrap_err();
    assert_eq!(err.cause(), Some(Cause::Unreachable), "{err}");
    assert!(!err.is_permanent(), "a service that is down may come back");
}

/// Another S3 client (boto3) sees what Strata wrote: the key under the prefix,
/// the size, and an ETag of the `<md5>-<parts>` form that only a real multipart
/// upload produces.
#[tokio::test]
async fn boto3_sees_a_real_multipart_upload() {
    let endpoint = need!(support::s3::endpoint());
    need!(support::python::python());
    let bucket = support::s3::unique_bucket("strata-boto3");
    support::s3::create_bucket(&endpoint, &bucket);
    let archive = Archive::open(&support::s3::storage(&endpoint, &bucket, "pfx")).unwrap();
    let key = Path::from("station=s/date=2024-01-01/hour=00/big.parquet");
    let upload = archive.put_multipart(&key).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    writer.put(pattern(MULTIPART_BYTES, 9));
    writer.finish().await.unwrap();

    let out = support::python::run_python(
        r#"
import sys, boto3
endpoint, bucket, key_id, secret = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key_id, aws_secret_access_key=secret)
for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]:
    print(obj["Key"], obj["Size"], obj["ETag"].strip('"'))
"#,
        &[
            &endpoint,
            &bucket,
            support::s3::TEST_ACCESS_KEY_ID,
            support::s3::TEST_SECRET_ACCESS_KEY,
        ],
    );
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "one object expected: {out}");
    assert_eq!(
        fields[0],
        "pfx/station=s/date=2024-01-01/hour=00/big.parquet"
    );
    assert_eq!(fields[1], MULTIPART_BYTES.to_string());
    let parts = MULTIPART_BYTES.div_ceil(PART_BYTES);
    assert!(
        fields[2].ends_with(&format!("-{parts}")),
        "ETag {} is not a {parts}-part multipart ETag",
        fields[2]
    );
}
