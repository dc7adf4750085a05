//! Strata: the second storage tier of a message broker.
//!
//! Messages a station would expel are appended to a durable write-ahead log
//! ([`wal`]), compacted into zstd Parquet ([`columnar`]) under a Hive-partitioned
//! layout ([`layout`]) and uploaded to S3-compatible storage ([`store`],
//! [`compactor`]). [`restore`] replays them back into a station.
//! `ARCHITECTURE.md` (in the repository's docs) describes the data flow.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod backoff;
pub mod catalog;
pub mod cluster;
pub mod columnar;
pub mod compactor;
pub mod config;
pub mod display;
pub mod fsio;
pub mod health;
pub mod iceberg;
pub mod identity;
pub mod layout;
pub mod message;
pub mod metrics;
pub mod nats;
pub mod ndjson;
pub mod replacements;
pub mod restore;
pub mod source;
pub mod status;
pub mod store;
pub mod tier2;
pub mod wal;

pub use message::{Draft, Header, Message, StationName, Timestamp};
