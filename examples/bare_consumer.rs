//! The baseline the NATS source of `strata run` is measured against: a bare
//! async-nats durable pull consumer that fetches batches of `--batch` messages
//! (the size Strata uses, `[nats] fetch_batch`, default 256) and acknowledges
//! each message, until `--count` messages are acknowledged. No WAL, no fsync.
//!
//! ```text
//! cargo run --release --example bare_consumer -- consume \
//!     --url nats://127.0.0.1:14335 --stream BENCH --consumer bare --count 200000
//! cargo run --release --example bare_consumer -- watch \
//!     --url nats://127.0.0.1:14335 --stream BENCH --consumer strata --count 200000
//! ```
//! `consume` prints `{"messages":..,"bytes":..,"seconds":..,"rate":..}`.
//! `watch` polls another process's consumer (e.g. Strata's) every 20 ms until
//! its ack floor reaches `--count`, and prints `{"seconds":..,"seconds_from_first_ack":..}`:
//! seconds since `watch` started, and since the first acknowledgement it saw.

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
        /// Messages per pull request.
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
    /// Wait until the consumer `--consumer` has acknowledged `--count` messages.
    Watch {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url).await?;
    let js = jetstream::new(client.clone());
    match args.mode {
        Mode::Consume { batch } => {
            consume(
                &client,
                &js,
                &args.stream,
                &args.consumer,
                args.count,
                batch,
            )
            .await
        }
        Mode::Watch { timeout } => {
            watch(&js, &args.stream, &args.consumer, args.count, timeout).await
        }
    }
}

async fn consume(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    count: u64,
    batch: usize,
) -> Result<(), Error> {
    let stream = js.get_stream(stream).await?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 100_000,
                ..Default::default()
            },
        )
        .await?;
    let started = Instant::now();
    let mut acked = 0u64;
    let mut bytes = 0u64;
    while acked < count {
        // Same pattern as Strata's worker: a no-wait fetch read to its end,
        // then one ack per message.
        let mut msgs = consumer.fetch().max_messages(batch).messages().await?;
        let mut chunk = Vec::with_capacity(batch);
        while let Some(m) = msgs.next().await {
            chunk.push(m?);
        }
        if chunk.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        for m in &chunk {
            bytes += m.payload.len() as u64;
            m.ack().await?;
        }
        acked += chunk.len() as u64;
    }
    // Every ack is a plain publish: flush so they have all reached the server.
    client.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{acked},\"bytes\":{bytes},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        acked as f64 / seconds
    );
    Ok(())
}

async fn watch(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    count: u64,
    timeout: u64,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut first_ack: Option<Instant> = None;
    loop {
        if started.elapsed() > Duration::from_secs(timeout) {
            return Err(format!(
                "consumer {name} did not acknowledge {count} messages in {timeout} s"
            )
            .into());
        }
        if let Ok(s) = js.get_stream(stream).await {
            if let Ok(mut c) = s.get_consumer::<pull::Config>(name).await {
                let info = c.info().await?;
                let floor = info.ack_floor.stream_sequence;
                if floor > 0 && first_ack.is_none() {
                    first_ack = Some(Instant::now());
                }
                if floor >= count && info.num_ack_pending == 0 {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let from_first = first_ack.map_or(seconds, |t| t.elapsed().as_secs_f64());
    println!("{{\"seconds\":{seconds:.3},\"seconds_from_first_ack\":{from_first:.3}}}");
    Ok(())
}
