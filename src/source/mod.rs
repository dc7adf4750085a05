//! Sources: where messages come from before the WAL makes them durable.

pub mod budget;
pub mod http;
pub mod nats;
pub mod owners;
