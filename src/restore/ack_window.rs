//! The acknowledgements of restore's JetStream publishes, in publish order,
//! read from one reply inbox.
//!
//! Every publish asks JetStream to answer on `<inbox>.<token>`, tokens
//! counting up from 0, and one subscription (`<inbox>.*`) receives the
//! answers. The window keeps the messages awaiting an answer in publish
//! order and settles them from the front, so what is confirmed is always a
//! contiguous prefix; answers that arrive out of order wait in their slot.
//! Answers are read when the caller asks for outcomes (the window is full,
//! a checkpoint, the end), not as each one arrives: no task wakes per
//! message, and no timer, oneshot channel or inbox is made per message.
//!
//! An answer is JetStream's publish acknowledgement (`{"stream", "seq",
//! "duplicate"}`), its API error (`{"error": {"code", "err_code",
//! "description"}}`), or status 503 when no stream captures the subject.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, StatusCode, Subject, Subscriber};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::time::Instant;

/// What JetStream said about one published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ack {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in that stream.
    pub sequence: u64,
    /// Whether the stream had it already (a duplicate `Nats-Msg-Id`).
    pub duplicate: bool,
}

/// One message's outcome, in publish order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Published and acknowledged.
    Acked(u64, Ack),
    /// Already in the stream (a resumed run); not published again.
    Present(u64),
}

/// Why a message has no acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AckError {
    /// No stream captures the subject (status 503, no responders).
    NoStream { subject: String },
    /// No answer within the time limit.
    TimedOut { seq: u64 },
    /// JetStream refused the message, or the connection failed.
    Refused {
        seq: u64,
        subject: String,
        reason: String,
    },
}

/// JetStream's answer to a publish, as JSON: the acknowledgement's fields,
/// or an error (read in one pass: an untagged enum would buffer it first).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// Reads one answer (pure): `Ok` with the acknowledgement, or why not.
fn read_answer(
    status: Option<StatusCode>,
    payload: &[u8],
    seq: u64,
    subject: &Subject,
) -> Result<Ack, AckError> {
    if status == Some(StatusCode::NO_RESPONDERS) {
        return Err(AckError::NoStream {
            subject: subject.to_string(),
        });
    }
    let refused = |reason: String| AckError::Refused {
        seq,
        subject: subject.to_string(),
        reason,
    };
    let unreadable = |why: &dyn std::fmt::Display| {
        refused(format!(
            "unreadable acknowledgement{}: {why}",
            status.map(|s| format!(" (status {s})")).unwrap_or_default()
        ))
    };
    match serde_json::from_slice::<Answer>(payload) {
        Ok(Answer {
            error: Some(error), ..
        }) => Err(refused(format!(
            "{} (code {}, error code {})",
            error.description, error.code, error.err_code
        ))),
        Ok(Answer {
            stream: Some(stream),
            seq: Some(sequence),
            duplicate,
            ..
        }) => Ok(Ack {
            stream,
            sequence,
            duplicate,
        }),
        Ok(_) => Err(unreadable(&"no stream and sequence")),
        Err(e) => Err(unreadable(&e)),
    }
}

/// A message awaiting its outcome.
struct Entry {
    seq: u64,
    /// `None` for a message found present (nothing published).
    token: Option<u64>,
    subject: Subject,
    deadline: Instant,
}

/// The publishes awaiting acknowledgement (module doc).
pub(super) struct AckWindow {
    client: Client,
    /// `<inbox>.`: a reply subject is this and a token.
    prefix: String,
    answers: Subscriber,
    timeout: Duration,
    entries: VecDeque<Entry>,
    /// The answer of token `base + i`, once arrived.
    slots: VecDeque<Option<Message>>,
    base: u64,
    next_token: u64,
}

impl AckWindow {
    /// Subscribes a reply inbox on `client`; every answer may take `timeout`.
    pub(super) async fn open(
        client: &Client,
        timeout: Duration,
    ) -> Result<Self, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let answers = client.subscribe(format!("{inbox}.*")).await?;
        Ok(Self {
            client: client.clone(),
            prefix: format!("{inbox}."),
            answers,
            timeout,
            entries: VecDeque::new(),
            slots: VecDeque::new(),
            base: 0,
            next_token: 0,
        })
    }

    /// Messages awaiting their outcome.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Publishes message `seq` on `subject`, its answer to come to this window.
    pub(super) async fn publish(
        &mut self,
        seq: u64,
        subject: Subject,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), AckError> {
        let token = self.next_token;
        let reply = Subject::from(format!("{}{token}", self.prefix));
        self.client
            .publish_with_reply_and_headers(subject.clone(), reply, headers, payload)
            .await
            .map_err(|e| AckError::Refused {
                seq,
                subject: subject.to_string(),
                reason: e.to_string(),
            })?;
        self.next_token += 1;
        self.slots.push_back(None);
        self.entries.push_back(Entry {
            seq,
            token: Some(token),
            subject,
            deadline: Instant::now() + self.timeout,
        });
        Ok(())
    }

    /// Records message `seq` as already in the stream, in its place.
    pub(super) fn present(&mut self, seq: u64) {
        self.entries.push_back(Entry {
            seq,
            token: None,
            subject: Subject::from_static(""),
            deadline: Instant::now(),
        });
    }

    /// The oldest message's outcome if it is known now (answers that have
    /// arrived are taken in first); `None` if it is still awaited or the
    /// window is empty.
    pub(super) fn ready(&mut self) -> Option<Result<Outcome, AckError>> {
        while let Some(Some(answer)) = self.answers.next().now_or_never() {
            self.file(answer);
        }
        self.settle_front()
    }

    /// The oldest message's outcome, waiting for its answer up to its
    /// deadline; `None` when the window is empty.
    pub(super) async fn next(&mut self) -> Option<Result<Outcome, AckError>> {
        loop {
            if let Some(outcome) = self.ready() {
                return Some(outcome);
            }
            let deadline = self.entries.front()?.deadline;
            match tokio::time::timeout_at(deadline, self.answers.next()).await {
                Ok(Some(answer)) => self.file(answer),
                Ok(None) => {
                    let (front, _) = self.pop_front()?;
                    return Some(Err(AckError::Refused {
                        seq: front.seq,
                        subject: front.subject.to_string(),
                        reason: "the connection closed before JetStream answered".into(),
                    }));
                }
                Err(_) => {
                    let (front, _) = self.pop_front()?;
                    return Some(Err(AckError::TimedOut { seq: front.seq }));
                }
            }
        }
    }

    /// Puts an answer in its token's slot (answers to no awaited token, e.g.
    /// late ones, are dropped).
    fn file(&mut self, answer: Message) {
        let token = answer
            .subject
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(slot) = token
            .and_then(|t| t.checked_sub(self.base))
            .and_then(|i| self.slots.get_mut(usize::try_from(i).ok()?))
        {
            *slot = Some(answer);
        }
    }

    /// Settles the oldest message if its outcome is known.
    fn settle_front(&mut self) -> Option<Result<Outcome, AckError>> {
        let front = self.entries.front()?;
        if front.token.is_some() && self.slots.front()?.is_none() {
            return None;
        }
        match self.pop_front()? {
            (front, None) => Some(Ok(Outcome::Present(front.seq))),
            (front, Some(answer)) => Some(
                read_answer(answer.status, &answer.payload, front.seq, &front.subject)
                    .map(|ack| Outcome::Acked(front.seq, ack)),
            ),
        }
    }

    /// Takes the oldest message out of the window, with its token's slot (and
    /// the answer in it, if one came), so slots stay in step with messages
    /// whatever the outcome.
    fn pop_front(&mut self) -> Option<(Entry, Option<Message>)> {
        let front = self.entries.pop_front()?;
        let Some(token) = front.token else {
            return Some((front, None));
        };
        debug_assert_eq!(token, self.base);
        self.base += 1;
        let answer = self.slots.pop_front().flatten();
        Some((front, answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject::from_static("orders.created")
    }

    #[test]
    fn acknowledgements_are_read() {
        let ack = read_answer(None, br#"{"stream":"ORDERS","seq":42}"#, 7, &subject());
        assert_eq!(
            ack,
            Ok(Ack {
                stream: "ORDERS".into(),
                sequence: 42,
                duplicate: false
            })
        );
        let dup = read_answer(
            None,
            br#"{"stream":"ORDERS","seq":41,"duplicate":true,"domain":"hub"}"#,
            7,
            &subject(),
        );
        assert!(matches!(
            dup,
            Ok(Ack {
                duplicate: true,
                sequence: 41,
                ..
            })
        ));
    }

    #[test]
    fn refusals_say_why() {
        let no_stream = read_answer(Some(StatusCode::NO_RESPONDERS), b"", 7, &subject());
        assert_eq!(
            no_stream,
            Err(AckError::NoStream {
                subject: "orders.created".into()
            })
        );
        let refused = read_answer(
            None,
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
            7,
            &subject(),
        );
        match refused {
            Err(AckError::Refused {
                seq: 7,
                subject,
                reason,
            }) => {
                assert_eq!(subject, "orders.created");
                assert!(reason.contains("maximum messages exceeded"), "{reason}");
                assert!(reason.contains("10077"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        for garbage in [&b"not json"[..], b"{}", br#"{"stream":"S"}"#] {
            let e = read_answer(None, garbage, 7, &subject());
            assert!(matches!(e, Err(AckError::Refused { .. })), "{e:?}");
        }
    }
}
