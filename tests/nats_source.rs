//! The NATS JetStream source against a real nats-server (`STRATA_TEST_NATS_URL`,
//! started by scripts/test.sh) with a real WAL: everything the station ever
//! held is archived exactly once, even though the stream keeps only 10,000.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use strata::config::NatsConfig;
use strata::identity::ledger::Ledger;
use strata::message::{Message, StationName};
use strata::metrics::Metrics;
use strata::nats::Provenance;
use strata::source::nats::NatsSource;
use strata::source::owners::NatsStations;
use strata::wal::{Wal, WalOptions};
use tokio::sync::watch;

const TOTAL: u64 = 20_000;
const KEEP: i64 = 10_000;

/// The archive's identity ledger, in memory.
fn ledger() -> Ledger {
    Ledger::new(strata::store::Archive::from_store(
        Arc::new(object_store::memory::InMemory::new()),
        object_store::path::Path::default(),
        "memory://",
    ))
}

fn config(url: &str, station: &str) -> NatsConfig {
    NatsConfig {
        url: strata::nats::NatsUrl::new(url),
        stations: vec![station.to_string()],
        fetch_batch: 256,
        ..NatsConfig::default()
    }
}

async fn ack_floor(js: &jetstream::Context, stream: &str) -> u64 {
    match js
        .get_stream(stream)
        .await
        .unwrap()
        .consumer_info("strata")
        .await
    {
        Ok(info) => info.ack_floor.stream_sequence,
        Err(_) => 0,
    }
}

async fn publish(
    js: &jetstream::Context,
    stream: &str,
    i: u64,
) -> jetstream::context::PublishAckFuture {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("msg-{i}").as_str());
    headers.insert("X-Index", i.to_string().as_str());
    headers.append("X-Rep", "first");
    headers.append("X-Rep", "second");
    js.publish_with_headers(
        format!("{stream}.k{}", i % 7),
        headers,
        format!("payload {i}").into(),
    )
    .await
    .unwrap()
}

/// Every message of `station` the WAL holds, in log order.
fn archived(wal: &Wal, station: &str) -> Vec<Message> {
    wal.seal().unwrap();
    let mut out = Vec::new();
    for seg in wal.sealed() {
        out.extend(
            wal.read_segment(seg.id)
                .unwrap()
                .into_iter()
                .filter(|m| m.station.as_str() == station),
        );
    }
    out
}

async fn wait_until(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_twice_what_the_stream_keeps_exactly_once_and_in_order() {
    let url = need!(support::nats::url());
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = support::unique("src");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        max_messages: KEEP,
        ..Default::default()
    })
    .await
    .unwrap();
    let station = StationName::new(name.as_str()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = watch::channel(false);
    let ledger = ledger();
    let task = NatsSource::start(
        &config(&url, &name),
        wal.clone(),
        ledger.clone(),
        NatsStations::default(),
        metrics.clone(),
        rx,
    )
    .await
    .unwrap();

    // Publish while the source runs, never letting the stream expel a message
    // the source has not acknowledged yet (that would be a gap upstream).
    let mut pending = Vec::new();
    for i in 1..=TOTAL {
        pending.push(publish(&js, &name, i).await);
        if i % 1000 == 0 {
            for ack in pending.drain(..) {
                ack.await.unwrap();
            }
            let must_reach = i.saturating_sub(KEEP as u64 - 2000);
            wait_until("the source to keep up", 60, async || {
                ack_floor(&js, &name).await >= must_reach
            })
            .await;
        }
    }
    wait_until("every message archived", 60, async || {
        wal.last_seq(&station) == Some(TOTAL)
    })
    .await;

    // A copy `strata restore` signed, of an archived message, is recognised
    // and acknowledged without being archived again.
    let key = ledger.restore_key().await.unwrap();
    let fifth = archived(&wal, &name)
        .into_iter()
        .find(|m| m.seq == 5)
        .expect("seq 5 archived");
    let mut headers = async_nats::HeaderMap::new();
    for (n, v) in Provenance::sign(&key, &station, 5, fifth.timestamp, &fifth.payload) {
        headers.insert(n, v.as_str());
    }
    headers.insert("X-Index", "5");
    js.publish_with_headers(format!("{name}.k5"), headers, fifth.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    // The same claim without a valid signature is a new message.
    let mut forged = async_nats::HeaderMap::new();
    forged.insert("Strata-Station", name.as_str());
    forged.insert("Strata-Seq", "6");
    forged.insert("Strata-Timestamp", "2026-11-24T10:00:00.000006Z");
    forged.insert("Strata-Mac", "00".repeat(32).as_str());
    js.publish_with_headers(format!("{name}.k6"), forged, "not really 6".into())
        .await
        .unwrap()
        .await
        .unwrap();
    wait_until(
        "the copy and the forged claim to be acknowledged",
        30,
        async || ack_floor(&js, &name).await == TOTAL + 2,
    )
    .await;

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the source stops at shutdown")
        .unwrap();

    let info = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        info.state.messages, KEEP as u64,
        "the stream itself kept only the newest"
    );

    let mut msgs = archived(&wal, &name);
    assert_eq!(
        msgs.len() as u64,
        TOTAL + 1,
        "exactly once, plus the forged claim"
    );
    let claim = msgs.pop().unwrap();
    assert_eq!(claim.seq, TOTAL + 2, "the forged claim is a new message");
    assert_eq!(&claim.payload[..], b"not really 6");
    assert!(claim
        .headers
        .iter()
        .any(|h| h.name == "Strata-Seq" && h.value == "6"));
    for (m, i) in msgs.iter().zip(1..) {
        assert_eq!(m.seq, i, "in stream order");
        assert_eq!(&m.payload[..], format!("payload {i}").as_bytes());
        assert_eq!(m.id.as_deref(), Some(format!("msg-{i}").as_str()));
        assert_eq!(
            m.subject.as_deref(),
            Some(format!("{name}.k{}", i % 7).as_str())
        );
        let header = |n: &str| {
            m.headers
                .iter()
                .filter(|h| h.name == n)
                .map(|h| h.value.as_str())
                .collect::<Vec<_>>()
        };
        let index = i.to_string();
        assert_eq!(header("X-Index"), [index.as_str()]);
        assert_eq!(header("X-Rep"), ["first", "second"]);
        assert_eq!(header("Nats-Msg-Id").len(), 1);
        assert!(
            m.timestamp.micros() > 1_700_000_000_000_000,
            "JetStream publish time"
        );
    }
    let text = metrics.render();
    assert!(
        text.contains(&format!(
            "strata_restore_echoes_total{{station=\"{name}\"}} 1"
        )),
        "{text}"
    );
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_second_run_resumes_where_the_first_stopped() {
    let url = need!(support::nats::url());
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = support::unique("resume");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        max_messages: KEEP,
        ..Default::default()
    })
    .await
    .unwrap();
    let station = StationName::new(name.as_str()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let ledger = ledger();

    for round in 0..2u64 {
        let mut acks = Vec::new();
        for i in round * 500 + 1..=round * 500 + 500 {
            acks.push(publish(&js, &name, i).await);
        }
        for ack in acks {
            ack.await.unwrap();
        }
        let (tx, rx) = watch::channel(false);
        let task = NatsSource::start(
            &config(&url, &name),
            wal.clone(),
            ledger.clone(),
            NatsStations::default(),
            Arc::new(Metrics::new()),
            rx,
        )
        .await
        .unwrap();
        let want = (round + 1) * 500;
        wait_until("the round's messages", 30, async || {
            wal.last_seq(&station) == Some(want) && ack_floor(&js, &name).await == want
        })
        .await;
        tx.send(true).unwrap();
        task.await.unwrap();
    }
    let seqs: Vec<u64> = archived(&wal, &name).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn start_fails_clearly_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalOptions::new(dir.path())).unwrap();
    let url = format!("nats://127.0.0.1:{}", support::free_port());
    let (_tx, rx) = watch::channel(false);
    let err = NatsSource::start(
        &config(&url, "orders"),
        wal,
        ledger(),
        NatsStations::default(),
        Arc::new(Metrics::new()),
        rx,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("nats-server is running"), "{err}");
}
