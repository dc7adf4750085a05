//! End to end: `strata run` archiving a NATS JetStream stream that keeps only
//! its last 10,000 messages while 50,000 are published. The archive must hold
//! all 50,000, one row per stream sequence, payloads and headers as
//! published — also across a `kill -9` of `strata run` and a restart of the
//! NATS server in the middle of publishing.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{msg::*, nats::*, python::*, strata::*, *};

const CONSUMER: &str = ARCHIVER_CONSUMER;
const TOTAL: u64 = 50_000;
const CHUNK: u64 = 5_000;
const MAX_MSGS: i64 = 10_000;
const CATCH_UP: Duration = Duration::from_secs(180);

fn messages(stream: &str, from: u64, to: u64) -> Vec<Pub> {
    (from..=to).map(|i| test_message(stream, i)).collect()
}

/// Publishes messages `from..=to` and checks the stream gave them seq `from..=to`.
async fn publish_range(js: &async_nats::jetstream::Context, stream: &str, from: u64, to: u64) {
    let seqs = publish(js, &messages(stream, from, to)).await;
    assert_eq!(
        seqs,
        (from..=to).collect::<Vec<_>>(),
        "the stream should number the test's messages 1.. in order"
    );
}

/// Publishes chunks of 5,000 from `from` to `to`, each time waiting until
/// Strata has acknowledged everything, so the stream never expels a message
/// Strata has not read (the test is about losing nothing, not about speed).
async fn publish_chunks(
    js: &async_nats::jetstream::Context,
    stream: &str,
    from: u64,
    to: u64,
    run: &mut StrataRun,
) {
    let mut start = from;
    while start <= to {
        let end = (start + CHUNK - 1).min(to);
        publish_range(js, stream, start, end).await;
        wait_consumer_caught_up(js, stream, CONSUMER, end, CATCH_UP, Some(run)).await;
        start = end + 1;
    }
}

async fn flush_and_verify(config: &Path, archive: PathBuf, stream: &str, t0: i64) {
    let c = config.to_path_buf();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let t1 = now_us() + 1_000_000;
    let s = stream.to_string();
    blocking(move || {
        let read = read_archive_checked(&archive);
        assert_archived_test_messages(&read, &s, TOTAL, t0, t1);
    })
    .await;
}

async fn assert_stream_expelled(js: &async_nats::jetstream::Context, stream: &str) {
    let mut s = js.get_stream(stream).await.expect("stream");
    let state = s.info().await.expect("info").state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (MAX_MSGS as u64, TOTAL - MAX_MSGS as u64 + 1, TOTAL),
        "the stream itself should keep only its last {MAX_MSGS} messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_all_50000_messages_of_a_stream_that_keeps_10000() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let stream = unique("e2e_nats");
    let js = jetstream(&url).await;
    create_stream(&js, &stream, Some(MAX_MSGS)).await;
    let (conf, config) = archiver_config(dir.path(), &url, &stream, "nats-e2e-token");
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    let t0 = now_us() - 1_000_000;

    publish_chunks(&js, &stream, 1, TOTAL, &mut run).await;
    assert_stream_expelled(&js, &stream).await;
    let metrics = run.metrics().await;
    flush_and_verify(&config, dir.path().join("archive"), &stream, t0).await;
    let status = run.terminate().await;
    assert!(status.success(), "SIGTERM: {status}\n{}", run.logs());
    let _ = js.delete_stream(&stream).await;
    assert!(
        metrics.contains("strata_"),
        "/metrics shows no strata_ metric:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_strata_run_mid_publish_loses_and_doubles_nothing() {
    need!(python());
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let stream = unique("e2e_kill");
    let js = jetstream(&url).await;
    create_stream(&js, &stream, Some(MAX_MSGS)).await;
    let (conf, config) = archiver_config(dir.path(), &url, &stream, "nats-e2e-token");
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    let t0 = now_us() - 1_000_000;

    publish_chunks(&js, &stream, 1, 2 * CHUNK, &mut run).await;

    // Chunk 3 is published while Strata is reading it; kill -9 once it is
    // part-way through. The stream keeps 10,000, so nothing unread is expelled.
    let (from, to) = (2 * CHUNK + 1, 3 * CHUNK);
    let publisher = {
        let js = js.clone();
        let stream = stream.clone();
        tokio::spawn(async move { publish_range(&js, &stream, from, to).await })
    };
    let kill_at = from + CHUNK / 3;
    let start = std::time::Instant::now();
    loop {
        let s = js.get_stream(&stream).await.expect("stream");
        let info = s.consumer_info(CONSUMER).await.expect("consumer info");
        if info.delivered.stream_sequence >= kill_at || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.kill9();
    publisher.await.expect("publisher");

    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, to, CATCH_UP, Some(&mut run)).await;
    publish_chunks(&js, &stream, to + 1, TOTAL, &mut run).await;
    assert_stream_expelled(&js, &stream).await;
    flush_and_verify(&config, dir.path().join("archive"), &stream, t0).await;
    let status = run.terminate().await;
    assert!(status.success(), "SIGTERM: {status}\n{}", run.logs());
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restart_mid_publish_loses_and_doubles_nothing() {
    need!(python());
    let dir = tempdir();
    let mut server = need!(NatsServer::start(dir.path()));
    let _serial = serial_async().await;
    let url = server.url();
    let stream = "e2e_restart".to_string();
    let js = jetstream(&url).await;
    create_stream(&js, &stream, Some(MAX_MSGS)).await;
    let (conf, config) = archiver_config(dir.path(), &url, &stream, "nats-e2e-token");
    let mut run = start_archiver(dir.path(), &conf, &config, &js, &stream).await;
    let t0 = now_us() - 1_000_000;

    publish_chunks(&js, &stream, 1, 2 * CHUNK, &mut run).await;
    let mid = 2 * CHUNK + CHUNK / 2;
    publish_range(&js, &stream, 2 * CHUNK + 1, mid).await;

    // Restart the server while Strata is consuming; it must reconnect.
    server = blocking(move || {
        server.restart();
        server
    })
    .await;
    let js = jetstream(&url).await;
    publish_range(&js, &stream, mid + 1, 3 * CHUNK).await;
    wait_consumer_caught_up(&js, &stream, CONSUMER, 3 * CHUNK, CATCH_UP, Some(&mut run)).await;
    publish_chunks(&js, &stream, 3 * CHUNK + 1, TOTAL, &mut run).await;
    assert_stream_expelled(&js, &stream).await;
    flush_and_verify(&config, dir.path().join("archive"), &stream, t0).await;
    let status = run.terminate().await;
    assert!(status.success(), "SIGTERM: {status}\n{}", run.logs());
    drop(server);
}
