//! `strata restore` end to end: archives built with the real Parquet encoder
//! and key layout in a local folder (several hours, several files per hour,
//! files whose seq ranges interleave, small row groups, binary payloads,
//! repeated headers), restored to NDJSON and, with a NATS server
//! (`STRATA_TEST_NATS_URL`), into JetStream streams. The archive tests run
//! over a local folder and, with `STRATA_TEST_S3_ENDPOINT`, an S3 bucket.

mod support;

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use strata::columnar::{encode_file, ParquetOptions};
use strata::layout::{DataKey, Hour};
use strata::message::{Header, Message, Seq, StationName, Timestamp};
use strata::ndjson;
use strata::restore::{
    self, NoProgress, Range, Request, RestoreError, RestoreSummary, Target, TimeBound,
};
use strata::store::Archive;

/// A seq bound.
fn seq(n: u64) -> Option<Seq> {
    Some(Seq::new(n).expect("a seq in range"))
}

/// A time bound as `--from`/`--to` would give it.
fn at(text: &str) -> Option<TimeBound> {
    Some(TimeBound::parse(text).expect("a time bound"))
}

/// Lets an NDJSON restore replace its output file (`--force`).
fn force(r: &mut Request) {
    if let Target::File { overwrite, .. } = &mut r.target {
        *overwrite = true;
    }
}

/// Runs `req` against `a`'s archive, showing nothing.
async fn run(a: &TestArchive, req: Request) -> Result<RestoreSummary, RestoreError> {
    restore::run(req, a.archive.clone(), &NoProgress).await
}

const STATION: &str = "orders";
/// Messages in the standard archive.
const N: u64 = 600;
/// Seqs per compacted segment; each segment becomes one file per hour.
const SEGMENT: u64 = 150;

fn station() -> StationName {
    StationName::new(STATION).unwrap()
}

fn base_time() -> i64 {
    Timestamp::parse_rfc3339("2026-11-24T09:00:00Z")
        .unwrap()
        .micros()
}

/// Message `seq` of the standard archive: 15 s apart from 09:00 (four messages
/// a minute, three hours), except every 17th whose timestamp is an hour
/// later, so files of later hours hold seqs that interleave earlier files.
fn message(seq: u64, subject_prefix: &str) -> Message {
    let mut micros = base_time() + seq as i64 * 15_000_000;
    if seq % 17 == 0 {
        micros += 3_600_000_000;
    }
    let payload: Vec<u8> = (0..(seq % 97) as usize + 3)
        .map(|i| ((seq as usize * 31 + i * 7) % 256) as u8)
        .collect();
    let mut headers = vec![
        Header::new("X-Trace", format!("t-{seq}")),
        Header::new("X-Tag", "first"),
        Header::new("Content-Type", "application/octet-stream"),
        Header::new("X-Tag", "second"),
    ];
    if seq % 5 == 0 {
        headers.push(Header::new("x-tag", "lower-case name"));
    }
    Message {
        station: station(),
        seq,
        timestamp: Timestamp(micros),
        id: (seq % 3 == 0).then(|| format!("order-{seq}")),
        subject: Some(format!(
            "{subject_prefix}.{}",
            if seq % 2 == 0 { "created" } else { "paid" }
        )),
        headers,
        payload: Bytes::from(payload),
    }
}

fn all_messages(subject_prefix: &str) -> Vec<Message> {
    (1..=N).map(|s| message(s, subject_prefix)).collect()
}

/// An archive and a temporary directory for outputs and checkpoints.
struct TestArchive {
    _dir: tempfile::TempDir,
    root: PathBuf,
    archive: Archive,
    files: usize,
}

/// Where a test archive lives.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Local,
    S3,
}

/// The backends available: the local folder always, S3 when its test server is.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Local];
    if support::or_skip(support::s3::endpoint()).is_some() {
        v.push(Backend::S3);
    }
    v
}

/// Writes `msgs` into a local-folder archive.
async fn write_archive(msgs: &[Message]) -> TestArchive {
    write_archive_on(Backend::Local, msgs).await
}

/// Writes `msgs` as the compactor does: per segment of [`SEGMENT`] seqs, one
/// file per UTC hour, sorted by seq, with 16-row row groups.
async fn write_archive_on(backend: Backend, msgs: &[Message]) -> TestArchive {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let archive = match backend {
        Backend::Local => {
            let store: Arc<dyn ObjectStore> =
                Arc::new(LocalFileSystem::new_with_prefix(&root).unwrap());
            Archive::from_store(
                store,
                Path::from("archive"),
                format!("file://{}", root.display()),
            )
        }
        Backend::S3 => {
            let endpoint = support::s3::endpoint().expect("S3 backend without an endpoint");
            let bucket = support::s3::unique_bucket("restore");
            support::s3::create_bucket(&endpoint, &bucket);
            Archive::open(&support::s3::storage(&endpoint, &bucket, "archive")).unwrap()
        }
    };
    let opts = ParquetOptions {
        zstd_level: 3,
        row_group_rows: 16,
        row_group_bytes: 1 << 20,
    };
    let mut groups: BTreeMap<(u64, Hour), Vec<Message>> = BTreeMap::new();
    for m in msgs {
        let segment = (m.seq - 1) / SEGMENT;
        groups
            .entry((segment, Hour::of(m.timestamp)))
            .or_default()
            .push(m.clone());
    }
    let files = groups.len();
    for ((_, hour), mut group) in groups {
        group.sort_by_key(|m| m.seq);
        let (bytes, summary) = encode_file(&group[0].station, &group, &opts).unwrap();
        assert_eq!(summary.rows, group.len() as u64);
        let key = DataKey {
            station: group[0].station.clone(),
            hour,
            first_seq: summary.first_seq,
            last_seq: summary.last_seq,
        };
        archive.put(&key.path(), bytes.into()).await.unwrap();
    }
    TestArchive {
        _dir: dir,
        root,
        archive,
        files,
    }
}

fn lines_of(msgs: &[&Message]) -> Vec<String> {
    msgs.iter().map(|m| ndjson::to_line(m)).collect()
}

fn read_lines(path: &FsPath) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Restores the standard station to an NDJSON file, with `edit` applied to
/// the request; returns the summary and the lines.
async fn to_ndjson(
    a: &TestArchive,
    out: &FsPath,
    edit: impl FnOnce(&mut Request),
) -> Result<(RestoreSummary, Vec<String>), RestoreError> {
    let mut req = Request::new(station(), Target::file(out));
    edit(&mut req);
    let summary = run(a, req).await?;
    Ok((summary, read_lines(out)))
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

#[tokio::test]
async fn full_restore_writes_every_message_once_in_seq_order() {
    let msgs = all_messages("orders");
    for backend in backends() {
        let a = write_archive_on(backend, &msgs).await;
        assert!(a.files > 8, "the archive should have many files");
        let out = a.root.join("all.ndjson");
        let (summary, lines) = to_ndjson(&a, &out, |_| ()).await.unwrap();
        assert_eq!(
            lines,
            lines_of(&msgs.iter().collect::<Vec<_>>()),
            "{backend:?}"
        );
        assert_eq!(summary.messages, N);
        assert_eq!(summary.first_seq, Some(1));
        assert_eq!(summary.last_seq, Some(N));
        assert_eq!(summary.objects_read, a.files as u64, "{backend:?}");
        assert!(summary.bytes_read > 0);
        assert!(summary.note.is_none());
    }
}

#[tokio::test]
async fn time_seq_and_combined_ranges_select_exactly() {
    let msgs = all_messages("orders");
    let a = write_archive(&msgs).await;
    let from = ts("2026-11-24T10:10:00Z");
    let to = ts("2026-11-24T10:40:00.5Z");
    type Want = Box<dyn Fn(&Message) -> bool>;
    let cases: Vec<(Range, Want)> = vec![
        (
            Range {
                from: at("2026-11-24T10:10:00Z"),
                to: at("2026-11-24T10:40:00.5Z"),
                ..Range::default()
            },
            Box::new(move |m: &Message| m.timestamp >= from && m.timestamp <= to),
        ),
        (
            Range {
                from_seq: seq(140),
                to_seq: seq(170),
                ..Range::default()
            },
            Box::new(|m: &Message| (140..=170).contains(&m.seq)),
        ),
        (
            Range {
                from: at("2026-11-24T10:10:00Z"),
                to: at("2026-11-24T10:40:00.5Z"),
                from_seq: seq(200),
                ..Range::default()
            },
            Box::new(move |m: &Message| m.timestamp >= from && m.timestamp <= to && m.seq >= 200),
        ),
        (
            // Only messages whose timestamps moved to a later hour live here.
            Range {
                from: at("2026-11-24T11:00:00Z"),
                to_seq: seq(300),
                ..Range::default()
            },
            Box::new(|m: &Message| m.timestamp >= ts("2026-11-24T11:00:00Z") && m.seq <= 300),
        ),
    ];
    for (i, (range, want)) in cases.into_iter().enumerate() {
        let out = a.root.join(format!("case-{i}.ndjson"));
        let (summary, lines) = to_ndjson(&a, &out, |r| r.range = range.clone())
            .await
            .unwrap();
        let expected: Vec<&Message> = msgs.iter().filter(|m| want(m)).collect();
        assert!(!expected.is_empty(), "case {i} selects nothing");
        assert_eq!(lines, lines_of(&expected), "case {i}: {range:?}");
        assert_eq!(summary.messages, expected.len() as u64, "case {i}");
    }
}

#[tokio::test]
async fn an_empty_range_says_so_and_succeeds() {
    let msgs = all_messages("orders");
    let a = write_archive(&msgs).await;
    for range in [
        Range {
            from_seq: seq(5000),
            ..Range::default()
        },
        Range {
            from: at("2027-01-01T00:00:00Z"),
            ..Range::default()
        },
        Range {
            to: at("2026-11-24T09:00:10Z"),
            ..Range::default()
        },
    ] {
        let out = a.root.join("empty.ndjson");
        let (summary, lines) = to_ndjson(&a, &out, |r| {
            r.range = range.clone();
            force(r);
        })
        .await
        .unwrap();
        assert!(lines.is_empty(), "{range:?}");
        assert_eq!(summary.messages, 0);
        let note = summary.note.clone().unwrap_or_default();
        assert!(note.contains("nothing to restore"), "{note}");
        assert!(summary.to_json_line().contains("nothing to restore"));
    }
    // A station with no archive at all is just as empty.
    let out = a.root.join("none.ndjson");
    let billing = StationName::new("billing").unwrap();
    let s = run(&a, Request::new(billing, Target::file(&out)))
        .await
        .unwrap();
    assert_eq!((s.messages, s.objects_read), (0, 0));
}

#[tokio::test]
async fn narrow_ranges_read_fewer_objects_and_row_groups() {
    let msgs = all_messages("orders");
    for backend in backends() {
        narrow_ranges_on(backend, &msgs).await;
    }
}

async fn narrow_ranges_on(backend: Backend, msgs: &[Message]) {
    let a = write_archive_on(backend, msgs).await;
    let (full, _) = to_ndjson(&a, &a.root.join("full.ndjson"), |_| ())
        .await
        .unwrap();
    let (narrow, lines) = to_ndjson(&a, &a.root.join("narrow.ndjson"), |r| {
        r.range.from_seq = seq(160);
        r.range.to_seq = seq(165);
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 6);
    assert!(
        narrow.objects_read < full.objects_read,
        "narrow {} vs full {} objects",
        narrow.objects_read,
        full.objects_read
    );
    assert!(narrow.bytes_read * 4 < full.bytes_read);
    assert!(narrow.row_groups_read < full.row_groups_read);
    // Row-group statistics cut inside the files that were opened.
    assert!(narrow.row_groups_read < narrow.row_groups_total);

    // A time range lists only the hours it meets: the 09:xx hour files stay unread.
    let (timed, _) = to_ndjson(&a, &a.root.join("timed.ndjson"), |r| {
        r.range.from = at("2026-11-24T11:00:00Z");
    })
    .await
    .unwrap();
    assert!(timed.files_listed < full.files_listed);
    // Without time bounds the station is listed in one go; with them, by
    // partition: the station's days, one day's hours, then each kept hour.
    assert_eq!(full.list_requests, 1);
    assert_eq!(timed.list_requests, 1 + 1 + 2);
}

#[tokio::test]
async fn ndjson_checkpoint_resumes_without_gap_or_duplicate() {
    let msgs = all_messages("orders");
    let a = write_archive(&msgs).await;
    let out = a.root.join("resumed.ndjson");
    let cp = a.root.join("cp.json");
    let (first, _) = to_ndjson(&a, &out, |r| {
        r.checkpoint = Some(cp.clone());
        r.range.to_seq = seq(300);
    })
    .await
    .unwrap();
    assert_eq!(first.last_seq, Some(300));
    // Lines written after the last checkpoint of a killed run: cut on resume.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        f.write_all(b"{\"seq\":301, torn").unwrap();
    }
    let (second, lines) = to_ndjson(&a, &out, |r| r.checkpoint = Some(cp.clone()))
        .await
        .unwrap();
    assert_eq!(second.resumed_after, Some(300));
    assert_eq!(second.first_seq, Some(301));
    assert_eq!(second.messages, N - 300);
    assert_eq!(lines, lines_of(&msgs.iter().collect::<Vec<_>>()));
    // Done: a third run has nothing left.
    let (third, lines) = to_ndjson(&a, &out, |r| r.checkpoint = Some(cp.clone()))
        .await
        .unwrap();
    assert_eq!(third.messages, 0);
    assert!(third.note.unwrap().contains("after seq 600"));
    assert_eq!(lines.len() as u64, N);
}

#[tokio::test]
async fn a_checkpoint_of_another_restore_is_refused() {
    let msgs = all_messages("orders");
    let a = write_archive(&msgs).await;
    let out = a.root.join("x.ndjson");
    let cp = a.root.join("cp.json");
    to_ndjson(&a, &out, |r| {
        r.checkpoint = Some(cp.clone());
        r.range.from_seq = seq(10);
        r.range.to_seq = seq(20);
    })
    .await
    .unwrap();
    let e = to_ndjson(&a, &out, |r| {
        r.checkpoint = Some(cp.clone());
        r.range.from_seq = seq(5);
    })
    .await
    .unwrap_err();
    assert!(matches!(e, RestoreError::CheckpointMismatch { .. }), "{e}");
    assert!(e.to_string().contains("--from-seq 10 (this run: 5)"), "{e}");
    let other = a.root.join("y.ndjson");
    let e = to_ndjson(&a, &other, |r| {
        r.checkpoint = Some(cp.clone());
        r.range.from_seq = seq(10);
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("target"), "{e}");
}

// ---------------------------------------------------------------- NATS ---

mod nats {
    use super::*;
    use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream};
    use strata::nats::NatsUrl;
    use strata::restore::NatsTarget;

    /// The test server's URL, or `None` (with a note) when tests should skip.
    fn server() -> Option<String> {
        support::or_skip(support::nats::url())
    }

    async fn context(url: &str) -> jetstream::Context {
        jetstream::new(async_nats::connect(url).await.unwrap())
    }

    async fn make_stream(js: &jetstream::Context, name: &str, subjects: &str, window: Duration) {
        js.create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![subjects.to_string()],
            duplicate_window: window,
            ..Default::default()
        })
        .await
        .unwrap();
    }

    struct Received {
        subject: String,
        headers: BTreeMap<String, Vec<String>>,
        payload: Bytes,
    }

    /// Every message of `stream`, in stream order.
    async fn read_back(js: &jetstream::Context, stream: &str) -> Vec<Received> {
        let mut s = js.get_stream(stream).await.unwrap();
        let count = s.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        if count == 0 {
            return out;
        }
        let consumer = s.create_consumer(OrderedConfig::default()).await.unwrap();
        let mut msgs = consumer.messages().await.unwrap();
        while (out.len() as u64) < count {
            let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
                .await
                .expect("stream read back in time")
                .unwrap()
                .unwrap();
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if let Some(h) = &m.headers {
                for (k, vs) in h.iter() {
                    headers
                        .entry(k.to_string())
                        .or_default()
                        .extend(vs.iter().map(|v| v.as_str().to_string()));
                }
            }
            out.push(Received {
                subject: m.subject.to_string(),
                headers,
                payload: m.payload.clone(),
            });
        }
        out
    }

    fn one(r: &Received, name: &str) -> String {
        let v = r
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"));
        assert_eq!(v.len(), 1, "{name}: {v:?}");
        v[0].clone()
    }

    /// Checks `got` is exactly `want`, in order, with full fidelity.
    fn assert_restored(got: &[Received], want: &[&Message]) {
        let got_seqs: Vec<u64> = got
            .iter()
            .map(|r| one(r, "Strata-Seq").parse().unwrap())
            .collect();
        let want_seqs: Vec<u64> = want.iter().map(|m| m.seq).collect();
        assert_eq!(got_seqs, want_seqs, "seqs in stream order");
        for (r, m) in got.iter().zip(want) {
            assert_eq!(&r.subject, m.subject.as_ref().unwrap());
            assert_eq!(r.payload, m.payload, "payload of seq {}", m.seq);
            assert_eq!(one(r, "Strata-Station"), STATION);
            assert_eq!(one(r, "Strata-Timestamp"), m.timestamp.to_rfc3339());
            assert_eq!(one(r, "Nats-Msg-Id"), format!("strata:{STATION}:{}", m.seq));
            match &m.id {
                Some(id) => assert_eq!(&one(r, "Strata-Original-Msg-Id"), id),
                None => assert!(!r.headers.contains_key("Strata-Original-Msg-Id")),
            }
            assert_eq!(one(r, "Strata-Mac").len(), 64);
            let mut want_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for h in &m.headers {
                want_headers
                    .entry(h.name.clone())
                    .or_default()
                    .push(h.value.clone());
            }
            for (name, values) in &want_headers {
                assert_eq!(
                    r.headers.get(name),
                    Some(values),
                    "header {name} of seq {}",
                    m.seq
                );
            }
        }
    }

    /// Restores the standard station into JetStream at `url`, with `edit`
    /// applied to the request and to its NATS target.
    async fn restore_nats(
        a: &TestArchive,
        url: &str,
        edit: impl FnOnce(&mut Request, &mut NatsTarget),
    ) -> Result<RestoreSummary, RestoreError> {
        let mut target = NatsTarget::new(NatsUrl::new(url));
        let mut req = Request::new(station(), Target::Stdout);
        edit(&mut req, &mut target);
        req.target = Target::Nats(target);
        run(a, req).await
    }

    #[tokio::test]
    async fn restores_into_a_stream_with_full_fidelity_and_reruns_add_nothing() {
        let Some(url) = server() else { return };
        let js = context(&url).await;
        let prefix = support::unique("rt");
        let name = prefix.to_uppercase();
        make_stream(&js, &name, &format!("{prefix}.>"), Duration::from_secs(120)).await;
        let msgs = all_messages(&prefix);
        let a = write_archive(&msgs).await;

        let s = restore_nats(&a, &url, |_, t| t.max_inflight = 64)
            .await
            .unwrap();
        assert_eq!(s.messages, N);
        assert_eq!(s.already_present, 0);
        assert_restored(
            &read_back(&js, &name).await,
            &msgs.iter().collect::<Vec<_>>(),
        );

        // Inside the duplicate window a rerun stores nothing new.
        let again = restore_nats(&a, &url, |_, t| t.max_inflight = 1)
            .await
            .unwrap();
        assert_eq!(again.already_present, N);
        let mut s = js.get_stream(&name).await.unwrap();
        assert_eq!(s.info().await.unwrap().state.messages, N);
        js.delete_stream(&name).await.unwrap();
    }

    #[tokio::test]
    async fn subject_override_and_ranges() {
        let Some(url) = server() else { return };
        let js = context(&url).await;
        let prefix = support::unique("ro");
        let name = prefix.to_uppercase();
        let target = format!("{prefix}.restored");
        make_stream(&js, &name, &target, Duration::from_secs(120)).await;
        let msgs = all_messages("elsewhere");
        let a = write_archive(&msgs).await;
        let s = restore_nats(&a, &url, |r, t| {
            t.subject = Some(target.clone());
            r.range.from_seq = seq(100);
            r.range.to_seq = seq(199);
            r.rate = Some(5000.0);
        })
        .await
        .unwrap();
        assert_eq!(s.messages, 100);
        let got = read_back(&js, &name).await;
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|r| r.subject == target));
        let seqs: Vec<u64> = got
            .iter()
            .map(|r| one(r, "Strata-Seq").parse().unwrap())
            .collect();
        assert_eq!(seqs, (100..=199).collect::<Vec<_>>());
        js.delete_stream(&name).await.unwrap();
    }

    #[tokio::test]
    async fn refuses_a_subject_no_stream_captures() {
        let Some(url) = server() else { return };
        let prefix = support::unique("nostream");
        let msgs = all_messages(&prefix);
        let a = write_archive(&msgs).await;
        let e = restore_nats(&a, &url, |_, _| ()).await.unwrap_err();
        assert!(matches!(e, RestoreError::NoStream { .. }), "{e}");
        assert!(e.to_string().contains(&format!("{prefix}.")), "{e}");
        let e = restore_nats(&a, &url, |_, t| t.subject = Some(format!("{prefix}.x")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&format!("{prefix}.x")), "{e}");
    }

    #[tokio::test]
    async fn a_publish_the_stream_refuses_stops_the_restore_at_the_last_confirmed_message() {
        let Some(url) = server() else { return };
        let js = context(&url).await;
        let prefix = support::unique("full");
        let name = prefix.to_uppercase();
        // Room for 10 messages, new ones refused beyond.
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            max_messages: 10,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
        let msgs = all_messages(&prefix);
        let a = write_archive(&msgs).await;
        let e = restore_nats(&a, &url, |_, t| t.max_inflight = 4)
            .await
            .unwrap_err();
        match &e {
            RestoreError::Publish {
                seq,
                subject,
                reason,
            } => {
                assert_eq!(*seq, 11, "{e}");
                assert!(subject.starts_with(&format!("{prefix}.")), "{e}");
                assert!(reason.contains("maximum messages"), "{e}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(read_back(&js, &name).await.len(), 10);
        js.delete_stream(&name).await.unwrap();
    }

    #[tokio::test]
    async fn a_message_without_subject_needs_subject() {
        let Some(url) = server() else { return };
        let mut m = message(1, "x");
        m.subject = None;
        let a = write_archive(&[m]).await;
        let e = restore_nats(&a, &url, |_, _| ()).await.unwrap_err();
        assert!(matches!(e, RestoreError::NoSubject { seq: 1 }), "{e}");
    }

    #[tokio::test]
    async fn checkpoint_resume_adds_no_gap_and_no_duplicate_past_the_window() {
        let Some(url) = server() else { return };
        let js = context(&url).await;
        let prefix = support::unique("rc");
        let name = prefix.to_uppercase();
        make_stream(
            &js,
            &name,
            &format!("{prefix}.>"),
            Duration::from_millis(100),
        )
        .await;
        let msgs = all_messages(&prefix);
        let a = write_archive(&msgs).await;
        let cp = a.root.join("cp.json");

        let first = restore_nats(&a, &url, |r, _| {
            r.checkpoint = Some(cp.clone());
            r.range.to_seq = seq(300);
        })
        .await
        .unwrap();
        assert_eq!(first.last_seq, Some(300));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = restore_nats(&a, &url, |r, _| r.checkpoint = Some(cp.clone()))
            .await
            .unwrap();
        assert_eq!(second.resumed_after, Some(300));
        assert_eq!(second.messages, N - 300);
        assert_restored(
            &read_back(&js, &name).await,
            &msgs.iter().collect::<Vec<_>>(),
        );
        js.delete_stream(&name).await.unwrap();
    }

    #[tokio::test]
    async fn a_kill_after_acks_but_before_the_checkpoint_adds_no_duplicate() {
        let Some(url) = server() else { return };
        let js = context(&url).await;
        let prefix = support::unique("rk");
        let name = prefix.to_uppercase();
        make_stream(
            &js,
            &name,
            &format!("{prefix}.>"),
            Duration::from_millis(100),
        )
        .await;
        let msgs = all_messages(&prefix);
        let a = write_archive(&msgs).await;
        let cp = a.root.join("cp.json");

        restore_nats(&a, &url, |r, _| {
            r.checkpoint = Some(cp.clone());
            r.range.to_seq = seq(200);
        })
        .await
        .unwrap();
        let lagging = std::fs::read(&cp).unwrap();
        restore_nats(&a, &url, |r, _| {
            r.checkpoint = Some(cp.clone());
            r.range.to_seq = seq(400);
        })
        .await
        .unwrap();
        // As if killed after 201..=400 were acked but before any checkpoint
        // recorded them, and resumed after the duplicate window.
        std::fs::write(&cp, lagging).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resumed = restore_nats(&a, &url, |r, _| r.checkpoint = Some(cp.clone()))
            .await
            .unwrap();
        assert_eq!(resumed.resumed_after, Some(200));
        assert_eq!(resumed.already_present, 200);
        assert_restored(
            &read_back(&js, &name).await,
            &msgs.iter().collect::<Vec<_>>(),
        );
        js.delete_stream(&name).await.unwrap();
    }
}

/// A file whose one big row group spans several `seq` pages: a narrow range
/// reads only the pages that can hold it (page index), not the row group.
#[tokio::test]
async fn the_page_index_narrows_reads_inside_a_row_group() {
    let n = 50_000u64;
    let msgs: Vec<Message> = (1..=n)
        .map(|seq| Message {
            station: station(),
            seq,
            timestamp: Timestamp(base_time() + seq as i64 * 10_000),
            id: None,
            subject: Some("orders.big".into()),
            headers: Vec::new(),
            payload: Bytes::from(format!("payload {seq:08} {}", "x".repeat(40))),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let archive = Archive::from_store(store, Path::from("archive"), "file://test");
    let opts = ParquetOptions {
        zstd_level: 1,
        row_group_rows: 1_000_000,
        row_group_bytes: 1 << 30,
    };
    let (bytes, summary) = encode_file(&station(), &msgs, &opts).unwrap();
    let key = DataKey {
        station: station(),
        hour: Hour::of(msgs[0].timestamp),
        first_seq: summary.first_seq,
        last_seq: summary.last_seq,
    };
    archive.put(&key.path(), bytes.into()).await.unwrap();
    let a = TestArchive {
        root: dir.path().to_path_buf(),
        _dir: dir,
        archive,
        files: 1,
    };
    let (full, lines) = to_ndjson(&a, &a.root.join("full.ndjson"), |_| ())
        .await
        .unwrap();
    assert_eq!(lines.len() as u64, n);
    let (narrow, lines) = to_ndjson(&a, &a.root.join("narrow.ndjson"), |r| {
        r.range.from_seq = seq(30000);
        r.range.to_seq = seq(30010);
    })
    .await
    .unwrap();
    let want: Vec<&Message> = msgs[29_999..30_010].iter().collect();
    assert_eq!(lines, lines_of(&want));
    assert_eq!((full.row_groups_read, narrow.row_groups_read), (1, 1));
    assert!(
        narrow.bytes_read * 2 < full.bytes_read,
        "narrow read {} bytes, full {}",
        narrow.bytes_read,
        full.bytes_read
    );
}

/// Objects that are not data files are skipped; a data file of another station
/// under this station's folder is refused, naming the object.
#[tokio::test]
async fn foreign_objects_are_skipped_and_misplaced_files_refused() {
    let msgs = all_messages("orders");
    let a = write_archive(&msgs).await;
    let hour_dir = format!("station={STATION}/date=2026-11-24/hour=10");
    a.archive
        .put(&Path::from(format!("{hour_dir}/notes.txt")), "hello".into())
        .await
        .unwrap();
    let out = a.root.join("all.ndjson");
    let (summary, lines) = to_ndjson(&a, &out, |_| ()).await.unwrap();
    assert_eq!(summary.messages, N);
    assert_eq!(lines.len() as u64, N);

    let billing = StationName::new("billing").unwrap();
    let mut other = message(5000, "billing");
    other.station = billing.clone();
    let opts = ParquetOptions {
        zstd_level: 1,
        row_group_rows: 16,
        row_group_bytes: 1 << 20,
    };
    let (bytes, _) = encode_file(&billing, std::slice::from_ref(&other), &opts).unwrap();
    let misplaced = DataKey {
        station: station(),
        hour: Hour::of(other.timestamp),
        first_seq: 5000,
        last_seq: 5000,
    }
    .path();
    a.archive.put(&misplaced, bytes.into()).await.unwrap();
    let e = match to_ndjson(&a, &out, force).await {
        Ok((s, _)) => panic!("a misplaced file was read: {s:?}"),
        Err(e) => e,
    };
    assert!(matches!(e, RestoreError::Decode { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(misplaced.as_ref()) && text.contains("billing"),
        "{text}"
    );
}
