//! The baseline `strata restore` is measured against: a bare async-nats
//! JetStream publisher with pipelined acknowledgements (at most `--max-inflight`
//! outstanding), publishing `--count` messages of `--size` bytes to one subject.
//!
//! ```text
//! cargo run --release --example bare_publisher -- \
//!     --url nats://127.0.0.1:14333 --stream BENCH --subject bench.bare \
//!     --count 200000 --size 1024 [--msg-id] [--create]
//! ```
//! Prints one JSON line: `{"messages":..,"seconds":..,"rate":..}`.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::Publish, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use clap::Parser;
use futures::stream::FuturesOrdered;
use futures::StreamExt;

#[derive(Parser, Debug)]
struct Args {
    /// NATS server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Stream to publish into (created with `--create`).
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// Subject to publish on.
    #[arg(long, default_value = "bench.bare")]
    subject: String,
    /// Messages to publish.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Most acknowledgements outstanding.
    #[arg(long, default_value_t = 256)]
    max_inflight: usize,
    /// Add a `Nats-Msg-Id` header to every message (as restore does).
    #[arg(long)]
    msg_id: bool,
    /// Add the headers a restored message carries (`Nats-Msg-Id`, `Strata-*`,
    /// one archived header), to separate the server's header cost from restore's own.
    #[arg(long)]
    strata_headers: bool,
    /// Create the stream (capturing `--subject`) if it does not exist.
    #[arg(long)]
    create: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(30));
    if args.create {
        js.get_or_create_stream(stream::Config {
            name: args.stream.clone(),
            subjects: vec![args.subject.clone()],
            ..Default::default()
        })
        .await?;
    }
    let payload = Bytes::from((0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut inflight = FuturesOrdered::new();
    let started = Instant::now();
    for i in 0..args.count {
        while inflight.len() >= args.max_inflight.max(1) {
            if let Some(r) = inflight.next().await {
                r?;
            }
        }
        let mut publish = Publish::build().payload(payload.clone());
        if args.msg_id || args.strata_headers {
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("bare:{i}").as_str());
            if args.strata_headers {
                h.insert("X-Bench", "1");
                h.insert("Strata-Station", "bench");
                h.insert("Strata-Seq", i.to_string().as_str());
                h.insert("Strata-Timestamp", "2026-11-24T08:00:00.144000Z");
            }
            publish = publish.headers(h);
        }
        let ack = js.send_publish(args.subject.clone(), publish).await?;
        inflight.push_back(ack.into_future());
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        args.count,
        args.count as f64 / seconds
    );
    Ok(())
}
