//! The worker against a real nats-server (`STRATA_TEST_NATS_URL`) with an
//! in-memory archive, so consumer, backpressure and restart behaviour are
//! checked apart from the WAL. Skipped without a server unless
//! `STRATA_TEST_REQUIRE_SERVERS=1`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream;

use super::*;
use crate::message::Draft;
use crate::wal::{Appended, WalError};

fn server() -> Option<String> {
    match std::env::var("STRATA_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("STRATA_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "STRATA_TEST_NATS_URL is unset but STRATA_TEST_REQUIRE_SERVERS=1"
            );
            eprintln!("skipped: set STRATA_TEST_NATS_URL to a nats-server -js to run this test");
            None
        }
    }
}

/// An archive in memory with the WAL's de-duplication; refuses appends as
/// full while `full_calls` is above zero.
#[derive(Default)]
struct MemArchive {
    messages: Mutex<BTreeMap<(String, u64), Draft>>,
    order: Mutex<Vec<u64>>,
    full_calls: AtomicUsize,
    /// Appends refused as if the WAL were poisoned, counted down.
    poisoned_calls: AtomicUsize,
    appends: AtomicUsize,
    /// Every draft handed over, duplicates included.
    drafts: AtomicUsize,
}

impl Archive for MemArchive {
    fn submit(&self, drafts: Vec<Draft>) -> super::worker::Submitted {
        Box::pin(std::future::ready(self.store(drafts)))
    }

    fn holds(&self, station: &StationName, seq: u64) -> bool {
        self.messages
            .lock()
            .unwrap()
            .contains_key(&(station.as_str().to_string(), seq))
    }

    fn highest_seq(&self, station: &StationName) -> Option<u64> {
        self.messages
            .lock()
            .unwrap()
            .keys()
            .filter(|(s, _)| s == station.as_str())
            .map(|(_, q)| *q)
            .max()
    }
}

impl MemArchive {
    /// Stores the drafts at once, or fails as the test asked.
    fn store(&self, drafts: Vec<Draft>) -> Result<Appended, WalError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        if self
            .full_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(WalError::Full { used: 2, max: 1 });
        }
        if self
            .poisoned_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(WalError::Poisoned);
        }
        self.drafts.fetch_add(drafts.len(), Ordering::SeqCst);
        let mut map = self.messages.lock().unwrap();
        let mut order = self.order.lock().unwrap();
        let mut out = Appended::default();
        for d in drafts {
            let seq = d.seq.expect("NATS drafts carry a seq");
            let key = (d.station.as_str().to_string(), seq);
            match map.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => out.duplicates += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(d);
                    order.push(seq);
                    out.accepted += 1;
                }
            }
        }
        Ok(out)
    }
}

/// A ledger over an in-memory object store.
pub(super) fn memory_ledger() -> Ledger {
    Ledger::new(crate::store::Archive::from_store(
        Arc::new(object_store::memory::InMemory::new()),
        object_store::path::Path::default(),
        "memory://",
    ))
}

/// A source a test started on a [`MemArchive`]; [`Running::stop`] ends it.
struct Running {
    tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Asks the source to stop and waits (at most 10 s) until it has.
    async fn stop(self) {
        self.tx.send(true).unwrap();
        self.ended().await;
    }

    /// Waits (at most 10 s) until the source has ended.
    async fn ended(self) {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Starts the source on `archive` with fresh metrics and ledger.
async fn run(cfg: &NatsConfig, archive: &Arc<MemArchive>) -> Running {
    let (tx, rx) = watch::channel(false);
    let task = start(cfg, archive.clone(), Arc::new(Metrics::new()), rx).await;
    Running { tx, task }
}

/// Starts the source on `archive` with a fresh in-memory ledger.
async fn start(
    cfg: &NatsConfig,
    archive: Arc<MemArchive>,
    metrics: Arc<Metrics>,
    rx: watch::Receiver<bool>,
) -> JoinHandle<()> {
    start_on(cfg, archive, memory_ledger(), metrics, rx).await
}

async fn start_on(
    cfg: &NatsConfig,
    archive: Arc<MemArchive>,
    ledger: Ledger,
    metrics: Arc<Metrics>,
    rx: watch::Receiver<bool>,
) -> JoinHandle<()> {
    NatsSource::start_with(
        cfg,
        archive,
        identity::Identity::new(ledger, None),
        NatsStations::default(),
        metrics,
        rx,
    )
    .await
    .unwrap()
}

impl MemArchive {
    fn len(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A new stream named after `base` on the server at `url`, holding the
/// messages `range` (see [`publish`]).
async fn filled_stream(
    url: &str,
    base: &str,
    range: std::ops::Range<u32>,
) -> (async_nats::jetstream::Context, String) {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let name = unique(base);
    make_stream(&js, &name).await;
    publish(&js, &name, range).await;
    (js, name)
}

async fn make_stream(js: &async_nats::jetstream::Context, name: &str) {
    js.create_stream(stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        max_messages: 10_000,
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn publish(js: &async_nats::jetstream::Context, stream: &str, range: std::ops::Range<u32>) {
    let mut acks = Vec::new();
    for i in range {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("id-{i}").as_str());
        headers.append("X-Rep", "1");
        headers.append("X-Rep", "2");
        let ack = js
            .publish_with_headers(format!("{stream}.n{i}"), headers, format!("p{i}").into())
            .await
            .unwrap();
        acks.push(ack);
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the consumer's acknowledged floor reaches `seq`.
async fn wait_for_ack_floor(
    js: &async_nats::jetstream::Context,
    stream: &str,
    consumer: &str,
    seq: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let floor = js
            .get_stream(stream)
            .await
            .unwrap()
            .consumer_info(consumer)
            .await
            .unwrap()
            .ack_floor
            .stream_sequence;
        if floor >= seq {
            assert_eq!(floor, seq, "acknowledged past the last message");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ack floor {floor}, expected {seq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(url: &str, stations: &[&str]) -> NatsConfig {
    NatsConfig {
        url: crate::nats::NatsUrl::new(url),
        stations: stations.iter().map(|s| s.to_string()).collect(),
        consumer: String::new(),
        fetch_batch: 64,
        ..Default::default()
    }
}

#[tokio::test]
async fn archives_every_message_once_and_resumes_after_restart() {
    let Some(url) = server() else { return };
    let (js, name) = filled_stream(&url, "conv", 0..300).await;

    let archive = Arc::new(MemArchive::default());
    let running = run(&config(&url, &[&name]), &archive).await;
    wait_for("300 messages", 20, || archive.len() == 300).await;
    running.stop().await;

    {
        let map = archive.messages.lock().unwrap();
        for (i, ((station, seq), d)) in map.iter().enumerate() {
            assert_eq!((station.as_str(), *seq), (name.as_str(), i as u64 + 1));
            assert_eq!(d.id.as_deref(), Some(format!("id-{i}").as_str()));
            assert_eq!(d.subject.as_deref(), Some(format!("{name}.n{i}").as_str()));
            assert_eq!(&d.payload[..], format!("p{i}").as_bytes());
            let reps: Vec<_> = d
                .headers
                .iter()
                .filter(|h| h.name == "X-Rep")
                .map(|h| h.value.as_str())
                .collect();
            assert_eq!(reps, ["1", "2"]);
            assert!(d.timestamp.micros() > 1_600_000_000_000_000);
        }
    }
    assert_eq!(
        *archive.order.lock().unwrap(),
        (1..=300).collect::<Vec<_>>()
    );

    // Everything was acknowledged: a second run gets only what came after.
    publish(&js, &name, 300..350).await;
    let appends_before = archive.appends.load(Ordering::SeqCst);
    let running = run(&config(&url, &[&name]), &archive).await;
    wait_for("350 messages", 20, || archive.len() == 350).await;
    wait_for_ack_floor(&js, &name, DEFAULT_CONSUMER, 350).await;
    running.stop().await;
    assert_eq!(
        archive.drafts.load(Ordering::SeqCst),
        350,
        "no message handed to the archive twice (the second run got only the new ones)"
    );
    assert!(archive.appends.load(Ordering::SeqCst) > appends_before);
    js.delete_stream(&name).await.unwrap();
}

/// The durable consumer as Strata creates it, with `policy`.
async fn make_consumer(
    js: &async_nats::jetstream::Context,
    stream: &str,
    policy: AckPolicy,
) -> PullConsumer {
    js.get_stream(stream)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some(DEFAULT_CONSUMER.to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: policy,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn ack_policy(js: &async_nats::jetstream::Context, stream: &str) -> AckPolicy {
    js.get_stream(stream)
        .await
        .unwrap()
        .consumer_info(DEFAULT_CONSUMER)
        .await
        .unwrap()
        .config
        .ack_policy
}

#[tokio::test]
async fn new_consumers_acknowledge_by_batch_and_old_explicit_ones_keep_per_message_acks() {
    let Some(url) = server() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let fresh = unique("ackall");
    let old = unique("ackexplicit");
    for name in [&fresh, &old] {
        make_stream(&js, name).await;
        publish(&js, name, 0..200).await;
    }
    // As a Strata version before ack policy all left it: 50 acknowledged.
    let legacy = make_consumer(&js, &old, AckPolicy::Explicit).await;
    let mut first = legacy.fetch().max_messages(50).messages().await.unwrap();
    while let Some(m) = first.next().await {
        m.unwrap().ack().await.unwrap();
    }
    js.get_stream(&old).await.unwrap(); // a round trip: the acks have arrived
    wait_for_ack_floor(&js, &old, DEFAULT_CONSUMER, 50).await;

    let archive = Arc::new(MemArchive::default());
    let running = run(&config(&url, &[&fresh, &old]), &archive).await;
    wait_for("350 messages", 20, || archive.len() == 350).await;
    // Per-message acks move the explicit consumer's floor to the end; under
    // ack policy all they would leave it with 1-message holes pending.
    wait_for_ack_floor(&js, &old, DEFAULT_CONSUMER, 200).await;
    wait_for_ack_floor(&js, &fresh, DEFAULT_CONSUMER, 200).await;
    running.stop().await;
    assert_eq!(ack_policy(&js, &fresh).await, AckPolicy::All);
    assert_eq!(
        ack_policy(&js, &old).await,
        AckPolicy::Explicit,
        "an existing consumer is used as it is"
    );
    let seqs: Vec<u64> = archive
        .messages
        .lock()
        .unwrap()
        .keys()
        .filter(|(s, _)| *s == old)
        .map(|(_, q)| *q)
        .collect();
    assert_eq!(seqs, (51..=200).collect::<Vec<_>>());
    assert_eq!(archive.drafts.load(Ordering::SeqCst), 350);
    for name in [&fresh, &old] {
        js.delete_stream(name).await.unwrap();
    }
}

#[tokio::test]
async fn what_an_earlier_run_left_unacknowledged_is_stored_before_an_ack_covers_it() {
    let Some(url) = server() else { return };
    let (js, name) = filled_stream(&url, "catchup", 0..100).await;
    // A run that was delivered 1..=40 and died before storing them: the
    // server redelivers them only after the ack wait (60 s).
    let consumer = make_consumer(&js, &name, AckPolicy::All).await;
    let mut taken = consumer.fetch().max_messages(40).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = taken.next().await {
        m.unwrap();
        n += 1;
    }
    assert_eq!(n, 40);

    let archive = Arc::new(MemArchive::default());
    let running = run(&config(&url, &[&name]), &archive).await;
    // The acknowledgement of 100 covers 1..=40 too: they must be stored by then.
    wait_for_ack_floor(&js, &name, DEFAULT_CONSUMER, 100).await;
    assert_eq!(
        archive.len(),
        100,
        "an acknowledgement covered messages that are not stored"
    );
    running.stop().await;
    assert_eq!(
        *archive.order.lock().unwrap(),
        (1..=100).collect::<Vec<_>>()
    );
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_pull_request_stops_at_its_byte_cap() {
    let Some(url) = server() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let name = unique("bytecap");
    make_stream(&js, &name).await;
    for i in 0..5 {
        js.publish(format!("{name}.big"), vec![i as u8; 10_000].into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let consumer = make_consumer(&js, &name, AckPolicy::All).await;
    let (_tx, mut rx) = watch::channel(false);
    let Ok(mut pull) = fetcher::Pull::open(&client, &consumer).await else {
        panic!("subscribing the inbox failed");
    };
    let chunk = match pull.fetch(100, 25_000, false, &mut rx).await {
        Ok(chunk) => chunk,
        Err(worker::PullError::Nats(e)) => panic!("the fetch failed: {e}"),
        Err(_) => panic!("the fetch failed"),
    };
    assert_eq!(
        chunk.len(),
        2,
        "two 10 kB messages fit in 25,000 bytes, three do not"
    );
    js.delete_stream(&name).await.unwrap();
}

/// The consumer's figures: last delivered stream sequence, pull requests waiting.
async fn delivered_and_waiting(js: &async_nats::jetstream::Context, stream: &str) -> (u64, usize) {
    let info = js
        .get_stream(stream)
        .await
        .unwrap()
        .consumer_info(DEFAULT_CONSUMER)
        .await
        .unwrap()
        .clone();
    (info.delivered.stream_sequence, info.num_waiting)
}

/// Waits until the consumer has delivered stream sequence `seq`.
async fn wait_for_delivered(js: &async_nats::jetstream::Context, stream: &str, seq: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while delivered_and_waiting(js, stream).await.0 < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for delivery {seq}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_fetcher_holds_two_batches_sends_nothing_more_and_gives_them_back() {
    let Some(url) = server() else { return };
    let (js, name) = filled_stream(&url, "fetcher", 0..100).await;
    let consumer = make_consumer(&js, &name, AckPolicy::All).await;
    let client = async_nats::connect(&url).await.unwrap();
    let (_tx, rx) = watch::channel(false);
    let mut fetcher = fetcher::Fetcher::start(&client, &consumer, 10, 1 << 20, &rx);
    // Nothing taken: one batch handed over, one in hand, no request after them.
    wait_for_delivered(&js, &name, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivered_and_waiting(&js, &name).await, (20, 0));
    let info = |m: &async_nats::Message| delivery::info(m.reply.as_deref()).unwrap();
    let seqs = |chunk: &[async_nats::Message]| -> Vec<u64> {
        chunk.iter().map(|m| info(m).stream_sequence).collect()
    };
    let first = match fetcher.within(Duration::from_secs(5)).await {
        Some(Ok(chunk)) => chunk,
        _ => panic!("a batch was waiting"),
    };
    assert_eq!(seqs(&first), (1..=10).collect::<Vec<_>>());
    // Taking one lets the next request go out.
    wait_for_delivered(&js, &name, 30).await;
    // Closing gives back what was fetched and not taken: redelivered at once.
    fetcher.close().await;
    // The server takes acknowledgements in on its own time, so new messages
    // may come first; the given-back ones come well before the 60 s ack wait.
    let (_tx, mut rx) = watch::channel(false);
    let Ok(mut pull) = fetcher::Pull::open(&client, &consumer).await else {
        panic!("subscribing the inbox failed");
    };
    let mut redelivered = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redelivered.len() < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "given back, redelivered at once: {redelivered:?}"
        );
        let Ok(chunk) = pull.fetch(100, 1 << 20, false, &mut rx).await else {
            panic!("the fetch failed");
        };
        redelivered.extend(
            chunk
                .iter()
                .map(info)
                .filter(|i| i.delivered == 2)
                .map(|i| i.stream_sequence),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redelivered.sort_unstable();
    assert_eq!(redelivered, (11..=30).collect::<Vec<_>>());
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn closing_the_fetcher_of_an_idle_stream_ends_it() {
    let Some(url) = server() else { return };
    let (js, name) = filled_stream(&url, "idle", 0..0).await;
    let consumer = make_consumer(&js, &name, AckPolicy::All).await;
    let client = async_nats::connect(&url).await.unwrap();
    let (_tx, rx) = watch::channel(false);
    let mut fetcher = fetcher::Fetcher::start(&client, &consumer, 10, 1 << 20, &rx);
    assert!(fetcher.within(Duration::from_millis(300)).await.is_none());
    // Not a shutdown (a lease ended, say): the fetcher ends once its waiting
    // request expires, instead of asking again.
    tokio::time::timeout(fetcher::FETCH_EXPIRY * 3, fetcher.close())
        .await
        .expect("the fetcher ends when closed");
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_full_wal_holds_messages_in_the_broker_until_there_is_room() {
    let Some(url) = server() else { return };
    let (js, name) = filled_stream(&url, "full", 0..100).await;

    let archive = Arc::new(MemArchive::default());
    archive.full_calls.store(6, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = watch::channel(false);
    let task = start(
        &config(&url, &[&name]),
        archive.clone(),
        metrics.clone(),
        rx,
    )
    .await;
    // While the archive refuses, nothing is acknowledged.
    wait_for("refusals", 20, || {
        archive.full_calls.load(Ordering::SeqCst) <= 3
    })
    .await;
    let info = js
        .get_stream(&name)
        .await
        .unwrap()
        .consumer_info(DEFAULT_CONSUMER)
        .await
        .unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 0);
    assert_eq!(archive.len(), 0);
    wait_for("100 messages", 30, || archive.len() == 100).await;
    let acked = async {
        loop {
            let info = js
                .get_stream(&name)
                .await
                .unwrap()
                .consumer_info(DEFAULT_CONSUMER)
                .await
                .unwrap();
            if info.ack_floor.stream_sequence == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), acked)
        .await
        .expect("every message acknowledged once archived");
    tx.send(true).unwrap();
    task.await.unwrap();
    assert!(metrics
        .render()
        .contains(r#"strata_wal_full_total{source="nats"} 6"#));
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn star_archives_streams_created_before_start() {
    let Some(url) = server() else { return };
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let a = unique("stara");
    let b = unique("starb");
    make_stream(&js, &a).await;
    make_stream(&js, &b).await;
    publish(&js, &a, 0..10).await;
    publish(&js, &b, 0..20).await;
    let archive = Arc::new(MemArchive::default());
    let (tx, rx) = watch::channel(false);
    // "*" reaches other tests' streams too: a consumer of its own leaves theirs alone.
    let mut cfg = config(&url, &["*"]);
    cfg.consumer = unique("star");
    let task = start(&cfg, archive.clone(), Arc::new(Metrics::new()), rx).await;
    let count = |s: &str| {
        archive
            .messages
            .lock()
            .unwrap()
            .keys()
            .filter(|(st, _)| st == s)
            .count()
    };
    wait_for("both streams", 20, || count(&a) == 10 && count(&b) == 20).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    for s in [&a, &b] {
        let consumer = js
            .get_stream(s)
            .await
            .unwrap()
            .consumer_info(&cfg.consumer)
            .await
            .unwrap()
            .clone();
        assert_eq!(
            consumer.ack_floor.stream_sequence,
            if s == &a { 10 } else { 20 }
        );
    }
    js.delete_stream(&a).await.unwrap();
    js.delete_stream(&b).await.unwrap();
    // Leave no durable consumer behind on other tests' streams.
    let mut names = js.stream_names();
    while let Some(Ok(stream)) = names.next().await {
        if let Ok(stream) = js.get_stream(&stream).await {
            let _ = stream.delete_consumer(&cfg.consumer).await;
        }
    }
}

#[tokio::test]
async fn work_queue_streams_are_left_alone() {
    let Some(url) = server() else { return };
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = unique("wq");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .unwrap();
    publish(&js, &name, 0..5).await;
    let archive = Arc::new(MemArchive::default());
    let running = run(&config(&url, &[&name]), &archive).await;
    // Its only worker refuses the stream, so the source ends by itself.
    running.ended().await;
    assert_eq!(archive.len(), 0);
    let mut stream = js.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
    assert!(
        stream.consumer_info(DEFAULT_CONSUMER).await.is_err(),
        "no consumer created"
    );
    js.delete_stream(&name).await.unwrap();
}

/// A nats-server of this test's own (from `PATH`), so it can be restarted.
struct OwnServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnServer {
    fn start(port: u16, dir: tempfile::TempDir) -> Option<Self> {
        Self::start_with(port, dir, &[])
    }

    fn start_with(port: u16, dir: tempfile::TempDir, extra: &[&str]) -> Option<Self> {
        let port_arg = port.to_string();
        let dir_arg = dir.path().to_string_lossy().into_owned();
        let mut args = vec!["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd", &dir_arg];
        args.extend_from_slice(extra);
        let child = spawn_nats_server(&args)?;
        Some(Self { child, port, dir })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(mut self) -> Self {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (port, dir) = (
            self.port,
            std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
        );
        Self::start(port, dir).expect("nats-server starts again")
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the nats-server binary (from `PATH`, or Debian's /usr/sbin) with `args`.
fn spawn_nats_server(args: &[&str]) -> Option<std::process::Child> {
    ["nats-server", "/usr/sbin/nats-server"]
        .iter()
        .find_map(|bin| {
            std::process::Command::new(bin)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        })
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects through Strata's own connect path (which uses credentials in
/// the URL; async-nats alone ignores them), retrying while the server starts.
async fn connect_retrying(url: &str) -> async_nats::Client {
    let auth = crate::nats::NatsAuth {
        url: crate::nats::NatsUrl::new(url),
        ..Default::default()
    };
    for _ in 0..100 {
        if let Ok(c) = crate::nats::connect(&auth, "test").await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nats-server at {} did not come up", auth.url);
}

#[tokio::test]
async fn survives_a_server_restart() {
    // Needs a server it can restart: the nats-server binary, next to STRATA_TEST_NATS_URL.
    if server().is_none() {
        return;
    }
    let port = free_port();
    let Some(own) = OwnServer::start(port, tempfile::tempdir().unwrap()) else {
        eprintln!("skipped: no nats-server binary on PATH");
        return;
    };
    let url = own.url();
    let js = async_nats::jetstream::new(connect_retrying(&url).await);
    make_stream(&js, "restart").await;
    publish(&js, "restart", 0..200).await;
    let archive = Arc::new(MemArchive::default());
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = watch::channel(false);
    let task = start(
        &config(&url, &["restart"]),
        archive.clone(),
        metrics.clone(),
        rx,
    )
    .await;
    wait_for("200 messages", 20, || archive.len() == 200).await;

    let own = own.restart();
    let js = async_nats::jetstream::new(connect_retrying(&own.url()).await);
    publish(&js, "restart", 200..400).await;
    wait_for("400 messages after the restart", 60, || {
        archive.len() == 400
    })
    .await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = archive
        .messages
        .lock()
        .unwrap()
        .keys()
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
}

#[tokio::test]
async fn credentials_in_the_url_are_used_and_never_shown() {
    if server().is_none() {
        return;
    }
    let port = free_port();
    let Some(_own) = OwnServer::start_with(
        port,
        tempfile::tempdir().unwrap(),
        &["--user", "alice", "--pass", "s3cr3t-pw"],
    ) else {
        eprintln!("skipped: no nats-server binary on PATH");
        return;
    };
    let url = format!("nats://alice:s3cr3t-pw@127.0.0.1:{port}");
    let admin = connect_retrying(&url).await;
    let js = async_nats::jetstream::new(admin);
    make_stream(&js, "authed").await;
    publish(&js, "authed", 0..10).await;

    // The URL's credentials are what lets the source in.
    let archive = Arc::new(MemArchive::default());
    let (tx, rx) = watch::channel(false);
    let cfg = config(&url, &["authed"]);
    assert!(!format!("{cfg:?}").contains("s3cr3t-pw"), "{cfg:?}");
    let task = start(&cfg, archive.clone(), Arc::new(Metrics::new()), rx).await;
    wait_for("10 messages", 20, || archive.len() == 10).await;
    tx.send(true).unwrap();
    task.await.unwrap();

    // A wrong password in the URL is refused, and the error does not show it.
    let mut bad = config(
        &format!("nats://alice:wrong-pw@127.0.0.1:{port}"),
        &["authed"],
    );
    let (_tx, rx) = watch::channel(false);
    let e = NatsSource::start_with(
        &bad,
        Arc::new(MemArchive::default()),
        identity::Identity::new(memory_ledger(), None),
        NatsStations::default(),
        Arc::new(Metrics::new()),
        rx,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("<credentials>@127.0.0.1"), "{e}");
    assert!(!e.contains("wrong-pw"), "{e}");
    // The [nats] user / password keys win over the URL's.
    bad.user = Some("alice".into());
    bad.password = Some(crate::config::Secret::new("s3cr3t-pw"));
    let (tx, rx) = watch::channel(false);
    let task = start(
        &bad,
        Arc::new(MemArchive::default()),
        Arc::new(Metrics::new()),
        rx,
    )
    .await;
    tx.send(true).unwrap();
    task.await.unwrap();
}

/// Log lines written while a test runs (a `tracing` writer).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_wal_is_logged_once_not_in_a_loop() {
    let Some(url) = server() else { return };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = unique("poison");
    make_stream(&js, &name).await;
    publish(&js, &name, 0..20).await;
    let archive = Arc::new(MemArchive::default());
    archive.poisoned_calls.store(5, Ordering::SeqCst);
    let running = run(&config(&url, &[&name]), &archive).await;
    wait_for("20 messages", 30, || archive.len() == 20).await;
    running.stop().await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let failures = text
        .matches("cannot append NATS messages to the WAL")
        .count();
    assert_eq!(
        failures, 1,
        "one error per episode, not one per retry:\n{text}"
    );
    assert_eq!(text.matches("works again").count(), 1, "{text}");
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_server_without_jetstream_says_to_start_it_with_js() {
    if server().is_none() {
        return;
    }
    let port = free_port();
    let Some(mut child) = spawn_nats_server(&["-a", "127.0.0.1", "-p", &port.to_string()]) else {
        eprintln!("skipped: no nats-server binary on PATH");
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    drop(connect_retrying(&url).await);
    let auth = crate::nats::NatsAuth {
        url: crate::nats::NatsUrl::new(&url),
        ..Default::default()
    };
    let e = crate::nats::connect_jetstream(&auth, "test")
        .await
        .expect_err("no JetStream")
        .to_string();
    let _ = child.kill();
    let _ = child.wait();
    assert!(e.contains("without JetStream") && e.contains("-js"), "{e}");
}
