//! The baseline `strata restore` is measured against: a bare async-nats
//! JetStream publisher with pipelined acknowledgements (at most
//! `--max-inflight` outstanding, acks read in publish order, like restore).
//!
//! Two sources of messages:
//! - synthetic: `--count` payloads of `--size` bytes on `--subject`, no
//!   headers (`--msg-id` adds a `Nats-Msg-Id`); also used to pre-fill streams;
//! - `--archive DIR --station S`: the very messages `strata restore` sends
//!   for that archive folder (written by `restore_bench write`): the same
//!   payloads, subjects and headers (`Nats-Msg-Id`, `Strata-*` with the
//!   archive's `Strata-Mac`, the archived headers), built with restore's own
//!   [`strata::restore::sink_nats::publish_headers`] and the archive's
//!   restore key. `--no-headers` sends the same payloads without headers.
//!
//! Every message is built before the clock starts: the figure is the rate of
//! publishing alone, from the first publish to the last acknowledgement.
//!
//! `--ack-inbox` publishes on the core connection instead of async-nats'
//! `send_publish`: each message asks for its acknowledgement on
//! `<inbox>.<n>` (reply subjects built before the clock too), one
//! subscription `<inbox>.*` receives them, and they are counted as they come
//! (no order kept, any error fails the run): the leanest pattern a client
//! can write, for context beside the `send_publish` figure.
//!
//! ```text
//! cargo run --release --example bare_publisher -- \
//!     --url nats://127.0.0.1:14333 --stream BENCH --subject bench.bare \
//!     --count 200000 --size 1024 [--msg-id] [--create | --recreate]
//! cargo run --release --example bare_publisher -- --url nats://127.0.0.1:14333 \
//!     --stream BARE --subject bench.restore --recreate \
//!     --archive /tmp/arch --station bench [--no-headers]
//! ```
//! Prints one JSON line: `{"messages":..,"seconds":..,"rate":..}`.

use std::future::IntoFuture;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::Publish, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use clap::Parser;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

use strata::columnar::{decode_file, Selection};
use strata::identity::ledger::Ledger;
use strata::message::StationName;
use strata::restore::sink_nats::{publish_headers, subject_for};
use strata::store::Archive;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
struct Args {
    /// NATS server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Stream to publish into (created with `--create` / `--recreate`).
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// Subject the stream captures (and synthetic messages go to).
    #[arg(long, default_value = "bench.bare")]
    subject: String,
    /// Synthetic messages to publish.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Payload bytes per synthetic message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Most acknowledgements outstanding.
    #[arg(long, default_value_t = 256)]
    max_inflight: usize,
    /// Add a `Nats-Msg-Id` header to every synthetic message.
    #[arg(long)]
    msg_id: bool,
    /// Publish the messages restore sends for this archive folder.
    #[arg(long, requires = "station")]
    archive: Option<PathBuf>,
    /// The station to read from `--archive`.
    #[arg(long)]
    station: Option<String>,
    /// With `--archive`: the same payloads and subjects, without headers.
    #[arg(long)]
    no_headers: bool,
    /// Create the stream (capturing `--subject`) if it does not exist.
    #[arg(long)]
    create: bool,
    /// Delete the stream if it exists, then create it empty.
    #[arg(long)]
    recreate: bool,
    /// Acknowledgements on one reply inbox instead of `send_publish` (module doc).
    #[arg(long)]
    ack_inbox: bool,
}

/// One message ready to go.
struct Outgoing {
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url).await?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(30));
    if args.recreate {
        let _ = js.delete_stream(&args.stream).await;
    }
    if args.create || args.recreate {
        js.get_or_create_stream(stream::Config {
            name: args.stream.clone(),
            subjects: vec![args.subject.clone()],
            ..Default::default()
        })
        .await?;
    }
    let messages = match (&args.archive, &args.station) {
        (Some(dir), Some(station)) => from_archive(dir, station, !args.no_headers).await?,
        _ => synthetic(&args),
    };
    if args.ack_inbox {
        return publish_on_inbox(&client, messages, args.max_inflight.max(1)).await;
    }
    let started = Instant::now();
    let mut inflight = FuturesOrdered::new();
    let n = messages.len();
    for m in messages {
        while inflight.len() >= args.max_inflight.max(1) {
            if let Some(r) = inflight.next().await {
                r?;
            }
        }
        let mut publish = Publish::build().payload(m.payload);
        if let Some(h) = m.headers {
            publish = publish.headers(h);
        }
        let ack = js.send_publish(m.subject, publish).await?;
        inflight.push_back(ack.into_future());
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{n},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        n as f64 / seconds
    );
    Ok(())
}

/// Publishes `messages` on the core connection with their acknowledgements
/// on one inbox, at most `window` outstanding, counted as they come.
async fn publish_on_inbox(
    client: &async_nats::Client,
    messages: Vec<Outgoing>,
    window: usize,
) -> Result<(), Error> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.*")).await?;
    let replies: Vec<async_nats::Subject> = (0..messages.len())
        .map(|i| format!("{inbox}.{i}").into())
        .collect();
    let n = messages.len();
    let check = |m: Option<async_nats::Message>| -> Result<(), Error> {
        let m = m.ok_or("the acknowledgement inbox closed")?;
        if m.status.is_some() || m.payload.windows(8).any(|w| w == b"\"error\"") {
            return Err(format!("publish refused: {:?}", m.payload).into());
        }
        Ok(())
    };
    let started = Instant::now();
    let mut outstanding = 0;
    for (m, reply) in messages.into_iter().zip(replies) {
        while outstanding >= window {
            check(answers.next().await)?;
            outstanding -= 1;
        }
        let subject: async_nats::Subject = m.subject.into();
        match m.headers {
            Some(h) => {
                client
                    .publish_with_reply_and_headers(subject, reply, h, m.payload)
                    .await?
            }
            None => client.publish_with_reply(subject, reply, m.payload).await?,
        }
        outstanding += 1;
    }
    while outstanding > 0 {
        check(answers.next().await)?;
        outstanding -= 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{n},\"seconds\":{seconds:.3},\"rate\":{:.1}}}",
        n as f64 / seconds
    );
    Ok(())
}

fn synthetic(args: &Args) -> Vec<Outgoing> {
    let payload = Bytes::from((0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    (0..args.count)
        .map(|i| Outgoing {
            subject: args.subject.clone(),
            headers: args.msg_id.then(|| {
                let mut h = HeaderMap::new();
                h.insert("Nats-Msg-Id", format!("bare:{i}").as_str());
                h
            }),
            payload: payload.clone(),
        })
        .collect()
}

/// Every message of `station` in the archive folder, in seq order, as
/// `strata restore` publishes it (headers signed with the archive's key).
async fn from_archive(dir: &FsPath, station: &str, headers: bool) -> Result<Vec<Outgoing>, Error> {
    let station = StationName::new(station)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
    let archive = Archive::from_store(
        store,
        object_store::path::Path::from("archive"),
        format!("file://{}", dir.display()),
    );
    let key = Ledger::new(archive).restore_key().await?;
    let mut files = Vec::new();
    parquet_files(&dir.join("archive"), &mut files)?;
    let mut all = Vec::new();
    for f in files {
        let bytes = Bytes::from(std::fs::read(&f)?);
        all.extend(decode_file(&station, bytes, &Selection::all())?);
    }
    all.sort_by_key(|m| m.seq);
    all.into_iter()
        .map(|m| {
            Ok(Outgoing {
                subject: subject_for(&m, None)?.to_string(),
                headers: if headers {
                    Some(publish_headers(&m, Some(&key))?)
                } else {
                    None
                },
                payload: m.payload,
            })
        })
        .collect()
}

fn parquet_files(dir: &FsPath, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}
