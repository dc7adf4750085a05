//! How a station worker acknowledges what it stored (pure).
//!
//! Consumers Strata creates use `AckPolicy::All`: one acknowledgement per
//! stored chunk, on the message with the chunk's highest stream sequence,
//! acknowledges every message of the stream up to it. That is only correct
//! when nothing at or below that sequence is still owed: delivered (in the
//! server's books) but not durable here. [`Deliveries`] is how the worker
//! knows: the server numbers every delivery of a consumer (first ones and
//! redeliveries alike) with a consumer sequence, one apart, so a session that
//! has seen every number since it started has seen every delivery; see the
//! argument at the ack in `worker.rs`.
//!
//! Durable consumers made by earlier versions use `AckPolicy::Explicit`, which
//! JetStream does not let a client change: they keep one acknowledgement per
//! message ([`AckMode::PerMessage`]) until the operator recreates them.

use async_nats::jetstream::consumer::AckPolicy;

/// How the deliveries of one consumer are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMode {
    /// `AckPolicy::All`: one acknowledgement per stored chunk.
    Cumulative,
    /// `AckPolicy::Explicit`: one acknowledgement per message.
    PerMessage,
}

impl AckMode {
    /// The mode for a consumer's ack policy; `None` for a policy Strata cannot
    /// archive under (`AckPolicy::None`: the server forgets a message as soon as
    /// it is sent, so a crash would lose it).
    pub(crate) fn of(policy: AckPolicy) -> Option<Self> {
        match policy {
            AckPolicy::All => Some(Self::Cumulative),
            AckPolicy::Explicit => Some(Self::PerMessage),
            AckPolicy::None => None,
        }
    }
}

/// Follows the consumer sequences of one session's deliveries: whether the
/// session has seen every delivery the server made since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deliveries {
    /// The consumer sequence the next delivery must carry.
    next: u64,
    /// No delivery was missed so far.
    whole: bool,
}

impl Deliveries {
    /// A session that starts after `delivered` deliveries (the consumer's
    /// `delivered.consumer_seq` when the session began).
    pub(crate) fn new(delivered: u64) -> Self {
        Self {
            next: delivered.saturating_add(1),
            whole: true,
        }
    }

    /// Sees the consumer sequences of a chunk, in the order they arrived;
    /// returns whether every delivery so far, this chunk's included, was seen.
    /// Once one is missed the session stays broken: the worker starts a new one.
    pub(crate) fn observe(&mut self, consumer_seqs: impl IntoIterator<Item = u64>) -> bool {
        for seq in consumer_seqs {
            if seq != self.next {
                self.whole = false;
            }
            self.next = seq.saturating_add(1);
        }
        self.whole
    }
}

/// The index of the message to acknowledge for a whole stored chunk under
/// [`AckMode::Cumulative`]: the one with the highest stream sequence (a
/// redelivery in the chunk may come after it). `None` for an empty chunk.
pub(crate) fn cumulative_ack(stream_seqs: impl IntoIterator<Item = u64>) -> Option<usize> {
    stream_seqs
        .into_iter()
        .enumerate()
        .max_by_key(|&(_, seq)| seq)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_follow_the_consumer_policy() {
        assert_eq!(AckMode::of(AckPolicy::All), Some(AckMode::Cumulative));
        assert_eq!(AckMode::of(AckPolicy::Explicit), Some(AckMode::PerMessage));
        assert_eq!(AckMode::of(AckPolicy::None), None);
    }

    #[test]
    fn a_session_is_whole_while_consumer_sequences_follow_on() {
        let mut d = Deliveries::new(10);
        assert!(d.observe([11, 12, 13]));
        assert!(d.observe([14]));
        assert!(d.observe([]));
        // 15 was delivered to somebody else, or lost on the way.
        assert!(!d.observe([16, 17]));
        // Broken for good, even when later ones follow on.
        assert!(!d.observe([18]));
    }

    #[test]
    fn deliveries_before_the_session_or_repeated_ones_break_it() {
        // The first delivery must follow the consumer's count at the start.
        assert!(!Deliveries::new(10).observe([12]));
        // A repeated or older consumer sequence is no delivery of this session.
        assert!(!Deliveries::new(10).observe([11, 11]));
        assert!(!Deliveries::new(10).observe([11, 12, 9]));
        assert!(Deliveries::new(0).observe([1, 2]));
    }

    #[test]
    fn the_cumulative_ack_is_on_the_highest_stream_sequence() {
        assert_eq!(cumulative_ack([5, 6, 7]), Some(2));
        // A redelivery (3) after the newest message does not lower the ack.
        assert_eq!(cumulative_ack([5, 6, 7, 3]), Some(2));
        assert_eq!(cumulative_ack([]), None);
    }
}
