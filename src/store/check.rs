//! `strata storage check`: proves the configured store works by writing,
//! reading, listing and deleting one probe object under
//! `<prefix>/_strata/probe-<uuid>/`, timing each step.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::PutPayload;

use super::Archive;

/// The steps, in order.
pub const STEPS: [&str; 4] = ["put", "get", "list", "delete"];

/// One step of a check.
#[derive(Debug)]
pub struct CheckStep {
    /// `put`, `get`, `list` or `delete`.
    pub name: &'static str,
    /// How long the step took.
    pub elapsed: Duration,
    /// What the step saw, or why it failed (with what to check).
    pub result: Result<String, String>,
}

/// The outcome of [`check`]: the steps that ran; it stops at the first failure.
#[derive(Debug)]
pub struct CheckReport {
    /// The archive url.
    pub url: String,
    /// The probe object's key.
    pub probe: String,
    /// The steps that ran, in order.
    pub steps: Vec<CheckStep>,
}

impl CheckReport {
    /// Whether every step ran and passed.
    pub fn ok(&self) -> bool {
        self.steps.len() == STEPS.len() && self.steps.iter().all(|s| s.result.is_ok())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in STEPS.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match self.steps.get(i) {
                Some(step) => {
                    let ms = step.elapsed.as_secs_f64() * 1000.0;
                    match &step.result {
                        Ok(what) => write!(f, "{name:<6} ok     {ms:>8.1} ms  {what}")?,
                        Err(why) => write!(f, "{name:<6} FAILED {ms:>8.1} ms  {why}")?,
                    }
                }
                None => write!(f, "{name:<6} skipped (an earlier step failed)")?,
            }
        }
        Ok(())
    }
}

/// Runs put, get (comparing bytes), list and delete of a probe object. Never
/// panics and never returns early with an error: every outcome is in the report.
pub async fn check(archive: &Archive) -> CheckReport {
    let id = uuid::Uuid::new_v4();
    let dir = Path::from_iter(["_strata".to_string(), format!("probe-{id}")]);
    let probe = dir.child("probe");
    let body = probe_body(&id);
    let mut report = CheckReport {
        url: archive.url().to_string(),
        probe: archive.key(&probe).to_string(),
        steps: Vec::new(),
    };

    if !step(&mut report, "put", put_probe(archive, &probe, &body)).await {
        return report;
    }
    let read_back = step(&mut report, "get", get_probe(archive, &probe, &body)).await
        && step(
            &mut report,
            "list",
            list_probe(archive, &dir, &probe, &body),
        )
        .await;
    if !read_back {
        // Best effort: do not leave the probe behind; the failure is already reported.
        let _ = archive.delete(&probe).await;
        return report;
    }
    step(&mut report, "delete", delete_probe(archive, &probe)).await;
    report
}

async fn put_probe(archive: &Archive, probe: &Path, body: &Bytes) -> Result<String, String> {
    archive
        .put(probe, PutPayload::from_bytes(body.clone()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote {} bytes to {}",
        body.len(),
        archive.key(probe)
    ))
}

async fn get_probe(archive: &Archive, probe: &Path, body: &Bytes) -> Result<String, String> {
    let got = archive.get(probe).await.map_err(|e| e.to_string())?;
    if got != *body {
        return Err(format!(
            "read {} bytes but wrote {}: the store returned different content",
            got.len(),
            body.len()
        ));
    }
    Ok(format!("read {} bytes back, identical", got.len()))
}

async fn list_probe(
    archive: &Archive,
    dir: &Path,
    probe: &Path,
    body: &Bytes,
) -> Result<String, String> {
    let listed = archive
        .list_all(Some(dir))
        .await
        .map_err(|e| e.to_string())?;
    let shown = archive.key(dir);
    match listed.iter().find(|m| &m.location == probe) {
        Some(m) if m.size == body.len() as u64 => {
            Ok(format!("listed {} object(s) under {shown}", listed.len()))
        }
        Some(m) => Err(format!(
            "the listing shows {} bytes for the probe, {} were written",
            m.size,
            body.len()
        )),
        None => Err(format!(
            "the probe is missing from the listing of {shown} ({} object(s) listed)",
            listed.len()
        )),
    }
}

async fn delete_probe(archive: &Archive, probe: &Path) -> Result<String, String> {
    archive.delete(probe).await.map_err(|e| e.to_string())?;
    match archive.head(probe).await {
        Err(e) if e.is_not_found() => Ok(format!("deleted {}", archive.key(probe))),
        Ok(_) => Err("the probe is still there after delete".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one step, records it, and says whether it passed.
async fn step(
    report: &mut CheckReport,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<String, String>>,
) -> bool {
    let start = Instant::now();
    let result = fut.await;
    let ok = result.is_ok();
    report.steps.push(CheckStep {
        name,
        elapsed: start.elapsed(),
        result,
    });
    ok
}

/// A body that is unique to this probe and not trivially compressible.
fn probe_body(id: &uuid::Uuid) -> Bytes {
    let mut body = format!("strata storage check {id}\n").into_bytes();
    body.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    use super::*;

    #[tokio::test]
    async fn passes_on_a_working_store_and_leaves_nothing() {
        let store = Arc::new(InMemory::new());
        let archive = Archive::from_store(store.clone(), Path::from("pfx"), "memory://");
        let report = check(&archive).await;
        assert!(report.ok(), "{report}");
        assert_eq!(report.steps.len(), 4);
        assert!(
            report.probe.starts_with("pfx/_strata/probe-"),
            "{}",
            report.probe
        );
        let text = report.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        for name in STEPS {
            assert!(text.contains(&format!("{name:<6} ok")), "{text}");
        }
        let left: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn stops_at_the_first_failure() {
        // A store whose writes fail: put fails, the rest is skipped.
        let archive =
            Archive::from_store(Arc::new(ReadOnly(InMemory::new())), Path::from(""), "ro://");
        let report = check(&archive).await;
        assert!(!report.ok());
        assert_eq!(report.steps.len(), 1);
        let text = report.to_string();
        assert!(text.contains("put    FAILED"), "{text}");
        assert!(text.contains("get    skipped"), "{text}");
        assert!(text.contains("delete skipped"), "{text}");
        assert!(
            text.contains("secret_access_key"),
            "the hint is shown: {text}"
        );
    }

    /// An in-memory store that refuses writes as a 403 would.
    #[derive(Debug)]
    struct ReadOnly(InMemory);

    impl fmt::Display for ReadOnly {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ReadOnly")
        }
    }

    crate::forward_object_store! {
        impl ObjectStore for ReadOnly => 0 {
            forward: [
                put_multipart_opts, get_opts, delete, list, list_with_delimiter,
                copy, copy_if_not_exists,
            ];

            async fn put_opts(
                &self,
                location: &Path,
                _: PutPayload,
                _: object_store::PutOptions,
            ) -> object_store::Result<object_store::PutResult> {
                Err(object_store::Error::PermissionDenied {
                    path: location.to_string(),
                    source: "403 Forbidden".into(),
                })
            }
        }
    }
}
