//! What a JetStream delivery says about itself: its reply (acknowledgement)
//! subject, parsed without allocating.
//!
//! A durable pull consumer delivers each message with the reply subject
//! nats-server acknowledgements go to, and that subject carries the
//! delivery's metadata. Two forms exist (after the `$JS.ACK.` prefix, tokens
//! separated by `.`):
//!
//! ```text
//! <stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<published ns>.<pending>
//! <domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<published ns>.<pending>[.<token>...]
//! ```
//!
//! The second form (nats-server 2.10 and later, `_` for no domain) has nine
//! or more tokens; the first, seven. Numbers are unsigned decimal; the
//! publish time is Unix nanoseconds.

/// The prefix of every JetStream acknowledgement subject.
const PREFIX: &str = "$JS.ACK.";

/// The metadata of one delivery of a JetStream consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryInfo {
    /// How many times this message has been delivered (1 the first time).
    pub delivered: u64,
    /// The message's sequence in the stream.
    pub stream_sequence: u64,
    /// The consumer's delivery sequence (counts redeliveries too).
    pub consumer_sequence: u64,
    /// When the message was published to the stream, Unix nanoseconds.
    pub published_nanos: i128,
    /// Messages of the stream still to be delivered to the consumer.
    pub pending: u64,
}

/// Why a delivery carries no JetStream metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// The message has no reply subject: not a JetStream delivery.
    #[error("the message has no reply subject; it is not a JetStream delivery")]
    NoReply,
    /// The reply subject is not a JetStream acknowledgement subject.
    #[error("reply subject {0:?} is not a JetStream acknowledgement subject")]
    Malformed(String),
}

/// The metadata of the delivery whose reply subject is `reply`.
///
/// # Errors
/// [`DeliveryError::NoReply`] without a reply subject,
/// [`DeliveryError::Malformed`] when it is not an acknowledgement subject.
pub(crate) fn info(reply: Option<&str>) -> Result<DeliveryInfo, DeliveryError> {
    let reply = reply.ok_or(DeliveryError::NoReply)?;
    parse(reply).ok_or_else(|| DeliveryError::Malformed(reply.to_owned()))
}

/// Parses an acknowledgement subject; `None` when it is not one.
fn parse(reply: &str) -> Option<DeliveryInfo> {
    let rest = reply.strip_prefix(PREFIX)?;
    // Split as bytes: `.` is ASCII, and a byte split is a plain scan where a
    // `char` pattern searches and compares per token.
    let mut tokens: [&[u8]; 9] = [&[]; 9];
    let mut n = 0;
    for token in rest.as_bytes().split(|&b| b == b'.') {
        if n < tokens.len() {
            tokens[n] = token;
        }
        n += 1;
    }
    // The numbers start after stream and consumer (seven tokens), or after
    // domain, account hash, stream and consumer (nine or more).
    let numbers = match n {
        7 => &tokens[2..7],
        n if n >= 9 => &tokens[4..9],
        _ => return None,
    };
    Some(DeliveryInfo {
        delivered: number(numbers[0])?,
        stream_sequence: number(numbers[1])?,
        consumer_sequence: number(numbers[2])?,
        published_nanos: i128::from(number(numbers[3])?),
        pending: number(numbers[4])?,
    })
}

/// An unsigned decimal number of at most 19 digits (fits a `u64`).
fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_subject_are_read() {
        let want = DeliveryInfo {
            delivered: 2,
            stream_sequence: 1234,
            consumer_sequence: 1300,
            published_nanos: 1_764_000_000_123_456_789,
            pending: 17,
        };
        let old = "$JS.ACK.ORDERS.strata.2.1234.1300.1764000000123456789.17";
        assert_eq!(info(Some(old)), Ok(want));
        let new = "$JS.ACK._.ACCHASH.ORDERS.strata.2.1234.1300.1764000000123456789.17.tok";
        assert_eq!(info(Some(new)), Ok(want));
        let no_token = "$JS.ACK.hub.ACCHASH.ORDERS.strata.2.1234.1300.1764000000123456789.17";
        assert_eq!(info(Some(no_token)), Ok(want));
        let more = "$JS.ACK._.ACCHASH.ORDERS.strata.2.1234.1300.1764000000123456789.17.tok.x.y";
        assert_eq!(info(Some(more)), Ok(want));
    }

    #[tokio::test]
    async fn what_agrees_with_async_nats() {
        // The same subject read by async-nats' own parser (the client never
        // connects: it only carries the message).
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .unwrap();
        let reply = "$JS.ACK.S.c.1.42.42.1764000000000000001.0";
        let theirs = async_nats::jetstream::Message {
            message: async_nats::Message {
                subject: "s".into(),
                reply: Some(reply.into()),
                payload: bytes::Bytes::new(),
                headers: None,
                status: None,
                description: None,
                length: 0,
            },
            context: async_nats::jetstream::new(client),
        };
        let theirs = theirs.info().unwrap();
        let ours = info(Some(reply)).unwrap();
        assert_eq!(ours.delivered, theirs.delivered as u64);
        assert_eq!(ours.stream_sequence, theirs.stream_sequence);
        assert_eq!(ours.consumer_sequence, theirs.consumer_sequence);
        assert_eq!(
            ours.published_nanos,
            theirs.published.unix_timestamp_nanos()
        );
        assert_eq!(ours.pending, theirs.pending);
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(info(None), Err(DeliveryError::NoReply));
        for bad in [
            "",
            "_INBOX.abc",
            "$JS.ACK.S.c.1.2.3.4",
            "$JS.ACK.S.c.1.2.3.4.5.6",
            "$JS.ACK.S.c.x.2.3.4.5",
            "$JS.ACK.S.c.1.2.3.-4.5",
            "$JS.ACK.S.c.1..3.4.5",
            "$JS.ACK.S.c.1.2.3.4.99999999999999999999",
            "$JS.ACK.S.c.1.2.3.4.+5",
        ] {
            assert!(
                matches!(info(Some(bad)), Err(DeliveryError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_up_to_nineteen_digits() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(
            number(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(number(b"18446744073709551615"), None);
        assert_eq!(number(b""), None);
    }
}
