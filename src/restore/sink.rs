//! Where restored messages go: the [`Sink`] contract shared by the NDJSON
//! writer ([`super::sink_ndjson`]) and the JetStream publisher
//! ([`super::sink_nats`]), and the [`Delivered`] position a checkpoint records.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use async_trait::async_trait;

use crate::message::Message;

use super::RestoreError;

/// How far a sink has delivered: only ever a contiguous prefix of what it was
/// given, so a checkpoint of it never skips a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The last seq delivered (with all before it).
    pub last_seq: Option<u64>,
    /// Messages delivered in this run.
    pub messages: u64,
    /// NDJSON file: its length covering `last_seq`.
    pub output_bytes: Option<u64>,
    /// JetStream: stream name → stream sequence of the last acked message.
    pub streams: BTreeMap<String, u64>,
    /// JetStream: messages the stream already had (same `Nats-Msg-Id` inside its
    /// duplicate window, or found by a resumed run) and so did not store again.
    pub already_present: u64,
}

/// What a sink's [`Prepare`] made of a message ahead of its delivery.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The NATS headers the message is published with (built and signed).
    pub headers: Option<HeaderMap>,
}

/// Work a sink does for each message that does not depend on earlier
/// deliveries (building and signing headers). The restore runs it on another
/// task, ahead of [`Sink::deliver`], so that it overlaps the delivery loop.
pub trait Prepare: Send {
    /// Prepares `m` for delivery; may take out of `m` what the sink's
    /// delivery then no longer needs (the archived headers, once in the
    /// prepared NATS headers).
    ///
    /// # Errors
    /// As [`Sink::deliver`] would for the same message.
    fn prepare(&mut self, m: &mut Message) -> Result<Prepared, RestoreError>;
}

/// A destination for messages in seq order.
#[async_trait]
pub trait Sink: Send {
    /// The work to do ahead of [`Sink::deliver`], if the sink has any.
    fn preparer(&self) -> Option<Box<dyn Prepare>> {
        None
    }
    /// Hands over the next message with what the [`Sink::preparer`] made of it
    /// (or [`Prepared::default`]: the sink then does that work itself); may
    /// wait for room (acks outstanding).
    async fn deliver(&mut self, m: Message, prepared: Prepared) -> Result<(), RestoreError>;
    /// Makes what was delivered durable where the sink can (flush and fsync a
    /// file) and returns the confirmed position, without waiting for
    /// outstanding acknowledgements.
    async fn sync(&mut self) -> Result<Delivered, RestoreError>;
    /// Waits for everything outstanding and returns the final position.
    async fn finish(&mut self) -> Result<Delivered, RestoreError>;
    /// The position confirmed so far, without I/O (used after an error).
    fn confirmed(&self) -> Delivered;
}
