//! `strata status --nats URL`: the cluster's ownership table, read from the
//! lease bucket of the consumer (no running Strata needed).

use std::process::ExitCode;

use strata::cluster::bucket::Bucket;
use strata::cluster::table::Table;
use strata::config::Config;
use strata::nats::NatsUrl;

use super::CliError;

/// Arguments of `strata status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The NATS server (default: `[nats] url`); `[nats]` credentials apply.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The durable consumer the processes share (default: `[nats] consumer`).
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn status(mut config: Config, args: StatusArgs) -> Result<ExitCode, CliError> {
    if let Some(url) = args.nats {
        config.nats.url = NatsUrl::new(url);
    }
    if config.nats.url.is_empty() {
        return Err("no NATS server: give --nats URL or set [nats] url".into());
    }
    let consumer = args
        .consumer
        .unwrap_or_else(|| config.nats.consumer.clone());
    let (_client, js) =
        strata::nats::connect_jetstream(&config.nats.auth(), "strata-status").await?;
    let Some(bucket) = Bucket::existing(&js, &consumer).await? else {
        return Err(format!(
            "no cluster for consumer {consumer:?} on {}: no strata run with this [nats] consumer has started there",
            config.nats.url
        )
        .into());
    };
    let table = Table::new(
        bucket.name(),
        bucket.lease().as_secs(),
        &bucket.entries().await?,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
