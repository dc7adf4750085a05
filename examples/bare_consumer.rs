//! The baseline the NATS source of `strata run` is measured against: the
//! fastest bare consumer async-nats 0.42 allows, storing nothing.
//!
//! A durable pull consumer with `AckPolicy::All`, read as one continuous pull
//! stream (`consumer.stream().max_messages_per_batch(--batch).messages()`:
//! the client sends the next pull request when half of the current one is
//! delivered, so requests overlap and the server never waits for the client),
//! and one acknowledgement per `--batch` messages (the last one; under
//! `AckPolicy::All` it acknowledges everything before it), until `--count`
//! messages are acknowledged. No WAL, no fsync, no conversion.
//!
//! ```text
//! cargo run --release --example bare_consumer -- \
//!     --url nats://127.0.0.1:14335 --stream BENCH --consumer bare --count 200000 consume
//! cargo run --release --example bare_consumer -- \
//!     --url nats://127.0.0.1:14335 --stream BENCH --consumer strata --count 200000 watch
//! ```
//! `consume` exits once the server reports the consumer's ack floor at
//! `--count` (the same end point `watch` waits for), and prints
//! `{"messages":..,"bytes":..,"seconds":..,"rate":..}`, timed from the
//! consumer's creation (the process start is timed from outside).
//! `watch` polls another process's consumer (e.g. Strata's) every
//! `--poll-ms` until its ack floor reaches `--count` with nothing pending, and
//! prints `{"seconds":..,"seconds_from_first_ack":..}`: seconds since `watch`
//! started, and since the first acknowledgement it saw.
//! `consume --core` reads the same consumer on the core connection instead:
//! one reply inbox subscribed once, raw pull requests of `--batch` (two
//! outstanding, the next sent as each is fulfilled), deliveries as plain
//! messages and the acknowledgement published to the last one's reply
//! subject: no JetStream context per message, for context beside the
//! pull-stream figure.
//! `delete` removes the consumer (between benchmark rounds);
//! `create-explicit` creates it with ack policy explicit, as Strata did before.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::PullConsumer};
use clap::{Parser, Subcommand};
use futures::StreamExt;

#[derive(Parser, Debug)]
struct Args {
    /// NATS server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Stream to consume.
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// Durable consumer name.
    #[arg(long, default_value = "bare")]
    consumer: String,
    /// Messages to wait for.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Consume and acknowledge `--count` messages.
    Consume {
        /// Messages per pull request, and per acknowledgement.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Read on the core connection (module doc).
        #[arg(long)]
        core: bool,
    },
    /// Wait until the consumer `--consumer` has acknowledged `--count` messages.
    Watch {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Milliseconds between two looks at the consumer.
        #[arg(long, default_value_t = 10)]
        poll_ms: u64,
    },
    /// Delete the consumer `--consumer` (no error if it does not exist).
    Delete,
    /// Create the durable consumer `--consumer` the way Strata versions
    /// before ack policy all did (ack policy explicit), to measure that path.
    CreateExplicit,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url).await?;
    let js = jetstream::new(client.clone());
    match args.mode {
        Mode::Consume { batch, core } => {
            consume(
                &client,
                &js,
                &args.stream,
                &args.consumer,
                args.count,
                batch,
                core,
            )
            .await
        }
        Mode::Watch { timeout, poll_ms } => {
            watch(
                &js,
                &args.stream,
                &args.consumer,
                args.count,
                timeout,
                poll_ms,
            )
            .await
        }
        Mode::CreateExplicit => {
            let stream = js.get_stream(&args.stream).await?;
            stream
                .create_consumer(pull::Config {
                    durable_name: Some(args.consumer.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    max_ack_pending: 100_000,
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
        Mode::Delete => {
            let stream = js.get_stream(&args.stream).await?;
            let _ = stream.delete_consumer(&args.consumer).await;
            Ok(())
        }
    }
}

async fn consume(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream_name: &str,
    name: &str,
    count: u64,
    batch: usize,
    core: bool,
) -> Result<(), Error> {
    let stream = js.get_stream(stream_name).await?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: AckPolicy::All,
                max_ack_pending: 100_000,
                ..Default::default()
            },
        )
        .await?;
    let started = Instant::now();
    let (received, bytes) = if core {
        read_core(client, stream_name, name, count, batch).await?
    } else {
        read_stream(&consumer, count, batch).await?
    };
    // An ack is a plain publish: flush it, then wait until the server counts it.
    client.flush().await?;
    wait_for_floor(js, stream_name, name, count, Duration::from_secs(60), 1).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{received},\"bytes\":{bytes},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        received as f64 / seconds
    );
    Ok(())
}

/// Reads `count` messages through async-nats' continuous pull stream.
async fn read_stream(
    consumer: &PullConsumer,
    count: u64,
    batch: usize,
) -> Result<(u64, u64), Error> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await?;
    let mut received = 0u64;
    let mut bytes = 0u64;
    while received < count {
        let Some(m) = messages.next().await else {
            return Err("the pull stream ended early".into());
        };
        let m = m?;
        received += 1;
        bytes += m.payload.len() as u64;
        // One acknowledgement per batch: under AckPolicy::All the last one
        // acknowledges every message before it.
        if received % batch as u64 == 0 || received == count {
            m.ack().await?;
        }
    }
    Ok((received, bytes))
}

/// Reads `count` messages on the core connection (module doc).
async fn read_core(
    client: &async_nats::Client,
    stream_name: &str,
    name: &str,
    count: u64,
    batch: usize,
) -> Result<(u64, u64), Error> {
    let inbox: async_nats::Subject = client.new_inbox().into();
    let mut deliveries = client.subscribe(inbox.clone()).await?;
    let next: async_nats::Subject =
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream_name}.{name}").into();
    let request = bytes::Bytes::from(format!("{{\"batch\":{batch},\"expires\":30000000000}}"));
    let ask = || client.publish_with_reply(next.clone(), inbox.clone(), request.clone());
    ask().await?;
    ask().await?;
    let mut received = 0u64;
    let mut bytes = 0u64;
    while received < count {
        let m = deliveries
            .next()
            .await
            .ok_or("the inbox subscription ended early")?;
        if let Some(status) = m.status {
            // A request that expired: ask again; anything else is an error.
            if status == async_nats::StatusCode::TIMEOUT {
                ask().await?;
                continue;
            }
            return Err(format!("pull request refused: {status} {:?}", m.description).into());
        }
        received += 1;
        bytes += m.payload.len() as u64;
        if received % batch as u64 == 0 || received == count {
            let reply = m.reply.ok_or("a delivery without reply subject")?;
            client
                .publish(reply, bytes::Bytes::from_static(b"+ACK"))
                .await?;
            if received < count {
                ask().await?;
            }
        }
    }
    Ok((received, bytes))
}

/// Polls the consumer every `poll_ms` until its ack floor reaches `count`
/// with nothing pending; returns when it saw the first acknowledgement.
async fn wait_for_floor(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    count: u64,
    timeout: Duration,
    poll_ms: u64,
) -> Result<Option<Instant>, Error> {
    let started = Instant::now();
    let mut first_ack: Option<Instant> = None;
    // Looked up once (it may not exist yet), then one consumer-info request
    // per poll: the watcher loads the server it measures as little as it can.
    let mut consumer: Option<PullConsumer> = None;
    loop {
        if started.elapsed() > timeout {
            return Err(format!(
                "consumer {name} did not acknowledge {count} messages in {} s",
                timeout.as_secs()
            )
            .into());
        }
        if consumer.is_none() {
            if let Ok(s) = js.get_stream(stream).await {
                consumer = s.get_consumer::<pull::Config>(name).await.ok();
            }
        }
        if let Some(c) = consumer.as_mut() {
            let info = c.info().await?;
            let floor = info.ack_floor.stream_sequence;
            if floor > 0 && first_ack.is_none() {
                first_ack = Some(Instant::now());
            }
            if floor >= count && info.num_ack_pending == 0 {
                return Ok(first_ack);
            }
        }
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
}

async fn watch(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    count: u64,
    timeout: u64,
    poll_ms: u64,
) -> Result<(), Error> {
    let started = Instant::now();
    let first_ack = wait_for_floor(
        js,
        stream,
        name,
        count,
        Duration::from_secs(timeout),
        poll_ms,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let from_first = first_ack.map_or(seconds, |t| t.elapsed().as_secs_f64());
    println!("{{\"seconds\":{seconds:.3},\"seconds_from_first_ack\":{from_first:.3}}}");
    Ok(())
}
