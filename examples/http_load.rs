//! HTTP ingest load for `strata run`: `--clients` concurrent clients each post
//! `--batches` NDJSON bodies of `--per-batch` messages with `--size`-byte text
//! payloads to `POST /v1/stations/{station}/messages`, one request at a time
//! per client (each answer means the batch was fsynced).
//!
//! ```text
//! cargo run --release --example http_load -- --url http://127.0.0.1:18080 \
//!     --station http-bench --clients 8 --batches 25 --per-batch 1000 --size 1024
//! ```
//! Prints `{"messages":..,"payload_bytes":..,"body_bytes":..,"seconds":..,"rate":..,"mb_per_s":..,
//! "p50_ms":..,"p99_ms":..}`; MB/s counts payload bytes (10^6 bytes per MB).

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of `strata run`'s HTTP listener.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Station to post to.
    #[arg(long, default_value = "http-bench")]
    station: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 25)]
    batches: usize,
    /// Messages per request.
    #[arg(long, default_value_t = 1000)]
    per_batch: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Bearer token, if `[http] token` is set.
    #[arg(long)]
    token: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One NDJSON body: `per_batch` lines `{"payload":"<size ASCII bytes>"}`.
fn body(per_batch: usize, size: usize) -> bytes::Bytes {
    let payload: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let line = format!("{{\"payload\":\"{payload}\"}}\n");
    bytes::Bytes::from(line.repeat(per_batch))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let body = body(args.per_batch, args.size);
    let url = format!(
        "{}/v1/stations/{}/messages",
        args.url.trim_end_matches('/'),
        args.station
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (http, url, body, token) =
            (http.clone(), url.clone(), body.clone(), args.token.clone());
        let (batches, per_batch) = (args.batches, args.per_batch as u64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            for _ in 0..batches {
                let t = Instant::now();
                let mut req = http
                    .post(&url)
                    .header("Content-Type", "application/x-ndjson")
                    .body(body.clone());
                if let Some(token) = &token {
                    req = req.bearer_auth(token);
                }
                let resp = req.send().await?;
                let status = resp.status();
                let answer: serde_json::Value = resp.json().await?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {answer}").into());
                }
                if answer["accepted"].as_u64() != Some(per_batch) {
                    return Err(format!("expected {per_batch} accepted, got {answer}").into());
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1e3
    };
    let messages = (args.clients * args.batches * args.per_batch) as u64;
    let payload_bytes = messages * args.size as u64;
    let body_bytes = (args.clients * args.batches) as u64 * body.len() as u64;
    println!(
        "{{\"messages\":{messages},\"payload_bytes\":{payload_bytes},\"body_bytes\":{body_bytes},\
         \"seconds\":{seconds:.3},\"rate\":{:.1},\"mb_per_s\":{:.1},\"p50_ms\":{:.1},\"p99_ms\":{:.1}}}",
        messages as f64 / seconds,
        payload_bytes as f64 / seconds / 1e6,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}
