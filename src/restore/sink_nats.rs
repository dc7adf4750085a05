//! Publishing to NATS JetStream (servers 2.9 and later): pipelined publishes
//! with at most `--max-inflight` acknowledgements outstanding, acks consumed in
//! publish order so the confirmed position is always a contiguous prefix.
//!
//! Each message keeps its payload bytes, its headers (values of one name in
//! their order; see the limit below), and gets the restore headers of
//! [`crate::nats`]: `Nats-Msg-Id: strata:<station>:<seq>` (unique per
//! archived message, so two distinct messages that shared an id both come
//! back, while a rerun inside the stream's duplicate window adds nothing),
//! the original id in `Strata-Original-Msg-Id`, and `Strata-Station`,
//! `Strata-Seq`, `Strata-Timestamp` and `Strata-Mac` (the archive's restore
//! signature, so `strata run` recognises the copy). Those headers already in
//! the archived message are replaced, so a message restored twice names its
//! latest origin.
//!
//! Limit: async-nats 0.42 keeps headers in a hash map, so the relative order of
//! *different* header names is not kept on the wire (repeated values of one
//! name are). NDJSON output keeps the full order.
//!
//! Resuming (`--checkpoint`): before publishing to a stream, a resumed run reads
//! the headers of that stream's messages after the position the checkpoint
//! recorded and skips every message this station's restore already put there.
//! A kill between an ack and the next checkpoint write therefore adds no
//! duplicate even after the duplicate window has passed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::{self, Context as JetStream};
use async_nats::{HeaderMap, HeaderName, HeaderValue, Subject};
use async_trait::async_trait;
use futures::StreamExt;

use crate::identity::mac::{RestoreKey, Signer};
use crate::message::{Message, StationName};
use crate::nats::{
    restore_msg_id, NatsAuth, NatsUrl, Provenance, NATS_MSG_ID, RESTORE_HEADERS,
    STRATA_ORIGINAL_MSG_ID, STRATA_SEQ, STRATA_STATION,
};

use super::ack_window::{AckError, AckWindow, Outcome};
use super::request::NatsTarget;
use super::sink::{Delivered, Prepare, Prepared, Sink};
use super::RestoreError;

/// How long one acknowledgement may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Subjects whose stream is remembered; beyond it the memory starts over.
const SUBJECT_CACHE: usize = 4096;
/// How long a resumed run waits for the next message while reading a stream back.
const SCAN_IDLE: Duration = Duration::from_secs(10);

/// The headers a message is published with (module doc); signed when the
/// archive's restore key is known. One message; for many, a
/// [`HeaderBuilder`] keeps what they share.
///
/// # Errors
/// [`RestoreError::BadHeader`] when an archived header cannot travel over NATS
/// (a name with `:`, spaces or control characters, a value with CR or LF).
pub fn publish_headers(m: &Message, key: Option<&RestoreKey>) -> Result<HeaderMap, RestoreError> {
    HeaderBuilder::new(key.cloned()).build(m)
}

/// Archived header names remembered by a [`HeaderBuilder`].
const NAME_CACHE: usize = 32;

/// Builds the headers of message after message ([`publish_headers`]),
/// keeping the station's signer and the archived header names already seen.
#[derive(Debug)]
pub struct HeaderBuilder {
    key: Option<RestoreKey>,
    signer: Option<Signer>,
    names: Vec<(String, HeaderName)>,
}

impl HeaderBuilder {
    /// A builder signing with `key` (unsigned without).
    pub fn new(key: Option<RestoreKey>) -> Self {
        Self {
            key,
            signer: None,
            names: Vec::new(),
        }
    }

    /// The signer of `station` (made on first use, again when the station changes).
    fn signer(&mut self, station: &StationName) -> Option<&Signer> {
        let key = self.key.as_ref()?;
        if self.signer.as_ref().is_none_or(|s| s.station() != station) {
            self.signer = Some(key.signer(station));
        }
        self.signer.as_ref()
    }

    /// An archived header name as NATS takes it; `None` when it cannot be one.
    fn name(&mut self, name: &str) -> Option<HeaderName> {
        if let Some((_, known)) = self.names.iter().find(|(n, _)| n == name) {
            return Some(known.clone());
        }
        let parsed = HeaderName::from_str(name).ok()?;
        if self.names.len() < NAME_CACHE {
            self.names.push((name.to_string(), parsed.clone()));
        }
        Some(parsed)
    }

    /// The headers `m` is published with.
    ///
    /// # Errors
    /// As [`publish_headers`].
    pub fn build(&mut self, m: &Message) -> Result<HeaderMap, RestoreError> {
        let archived = m
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()));
        self.assemble(m, archived, m.id.as_deref())
    }

    /// [`HeaderBuilder::build`], moving the archived headers and id out of `m`
    /// into the header map instead of copying them (`m` keeps neither).
    ///
    /// # Errors
    /// As [`publish_headers`]; `m` has lost its headers and id then too.
    pub fn build_taking(&mut self, m: &mut Message) -> Result<HeaderMap, RestoreError> {
        let headers = std::mem::take(&mut m.headers);
        let id = m.id.take();
        let archived = headers.into_iter().map(|h| (h.name, h.value));
        self.assemble(m, archived, id)
    }

    /// The header map of `m` with the archived headers and id given apart
    /// (borrowed or owned values).
    fn assemble<N, V>(
        &mut self,
        m: &Message,
        archived: impl Iterator<Item = (N, V)>,
        id: Option<V>,
    ) -> Result<HeaderMap, RestoreError>
    where
        N: AsRef<str>,
        V: AsRef<str> + Into<HeaderValue>,
    {
        let mut map = HeaderMap::new();
        let mut original_id: Option<V> = None;
        let bad = |name: &str, reason: &str| RestoreError::BadHeader {
            seq: m.seq,
            name: name.to_string(),
            reason: reason.to_string(),
        };
        // What `HeaderValue::from_str` refuses.
        let value_of = |name: &str, value: V| -> Result<HeaderValue, RestoreError> {
            if value.as_ref().contains(['\r', '\n']) {
                Err(bad(name, "header values cannot contain CR or LF"))
            } else {
                Ok(value.into())
            }
        };
        for (name, value) in archived {
            let name = name.as_ref();
            if name == NATS_MSG_ID {
                if original_id.is_none() {
                    original_id = Some(value);
                }
                continue;
            }
            if RESTORE_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                continue;
            }
            let header = self.name(name).ok_or_else(|| {
                bad(
                    name,
                    "header names must be printable ASCII without ':' or spaces",
                )
            })?;
            map.append(header, value_of(name, value)?);
        }
        let original_id = original_id.or(id.filter(|id| !id.as_ref().is_empty()));
        if let Some(id) = original_id {
            map.insert(
                HeaderName::from_static(STRATA_ORIGINAL_MSG_ID),
                value_of(NATS_MSG_ID, id)?,
            );
        }
        map.insert(
            HeaderName::from_static(NATS_MSG_ID),
            restore_msg_id(&m.station, m.seq),
        );
        match self.signer(&m.station) {
            Some(signer) => {
                for (name, value) in Provenance::sign_with(signer, m.seq, m.timestamp, &m.payload) {
                    map.insert(HeaderName::from_static(name), value);
                }
            }
            None => {
                for (name, value) in Provenance::labels(&m.station, m.seq, m.timestamp) {
                    map.insert(HeaderName::from_static(name), value);
                }
            }
        }
        Ok(map)
    }
}

/// The subject a message is published on: the override, else its own.
///
/// # Errors
/// [`RestoreError::NoSubject`] when there is neither.
pub fn subject_for<'a>(m: &'a Message, over: Option<&'a str>) -> Result<&'a str, RestoreError> {
    match (over, m.subject.as_deref()) {
        (Some(s), _) => Ok(s),
        (None, Some(s)) if !s.is_empty() => Ok(s),
        _ => Err(RestoreError::NoSubject { seq: m.seq }),
    }
}

/// The restore error for a message without acknowledgement.
fn failure(e: AckError) -> RestoreError {
    match e {
        AckError::NoStream { subject } => RestoreError::NoStream { subject },
        AckError::TimedOut { seq } => RestoreError::AckTimeout {
            seq,
            secs: ACK_TIMEOUT.as_secs(),
        },
        AckError::Refused {
            seq,
            subject,
            reason,
        } => RestoreError::Publish {
            seq,
            subject,
            reason,
        },
    }
}

/// The subject and stream of the previous message, which the next one
/// most likely shares.
#[derive(Debug)]
struct Route {
    subject: Subject,
    stream: String,
}

/// What a resumed run knows about the previous one.
#[derive(Debug, Clone)]
struct Resume {
    /// Messages up to this seq were confirmed.
    after: Option<u64>,
    /// Stream → stream sequence after which unconfirmed messages may sit.
    baselines: BTreeMap<String, u64>,
    /// Stream → seqs already in it (filled on first use of the stream).
    present: HashMap<String, HashSet<u64>>,
}

/// Publishes to JetStream (module doc).
pub struct NatsSink {
    js: JetStream,
    url: NatsUrl,
    key: Option<RestoreKey>,
    subject: Option<String>,
    stream_of: HashMap<String, String>,
    /// Publishes awaiting acknowledgement, in publish order.
    inflight: AckWindow,
    route: Option<Route>,
    max_inflight: usize,
    confirmed: Delivered,
    resume: Option<Resume>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.url)
            .field("subject", &self.subject)
            .field("inflight", &self.inflight.len())
            .field("confirmed", &self.confirmed)
            .finish()
    }
}

impl NatsSink {
    /// Connects to the target server.
    ///
    /// # Errors
    /// [`RestoreError::NatsConnect`] saying what to check.
    pub async fn connect(
        target: &NatsTarget,
        key: Option<RestoreKey>,
    ) -> Result<Self, RestoreError> {
        let url = target.url.clone();
        let (user, password) = match &target.user_password {
            Some((user, password)) => (Some(user.clone()), Some(password.clone())),
            None => (None, None),
        };
        let auth = NatsAuth {
            url: url.clone(),
            token: target.token.clone(),
            user,
            password,
            creds_file: target.creds.clone(),
        };
        let (client, _) = crate::nats::connect_jetstream(&auth, "strata-restore")
            .await
            .map_err(|e| RestoreError::NatsConnect {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let inflight =
            AckWindow::open(&client, ACK_TIMEOUT)
                .await
                .map_err(|e| RestoreError::Nats {
                    what: "subscribing the acknowledgement inbox".into(),
                    reason: e.to_string(),
                })?;
        let mut js = jetstream::new(client);
        js.set_timeout(ACK_TIMEOUT);
        let mut sink = Self {
            js,
            url,
            key,
            subject: target.subject.clone(),
            stream_of: HashMap::new(),
            inflight,
            route: None,
            max_inflight: target.max_inflight.max(1),
            confirmed: Delivered::default(),
            resume: None,
        };
        if let Some(subject) = target.subject.clone() {
            // Refuse before reading the archive when the override goes nowhere.
            sink.stream_for(&subject).await?;
        }
        Ok(sink)
    }

    /// Every stream's last sequence now: where a fresh checkpoint starts, so a
    /// later resume knows where to look for what this run published.
    ///
    /// # Errors
    /// [`RestoreError::Nats`] when the stream list cannot be read.
    pub async fn stream_positions(&self) -> Result<BTreeMap<String, u64>, RestoreError> {
        let mut out = BTreeMap::new();
        let mut streams = self.js.streams();
        while let Some(info) = streams.next().await {
            let info = info.map_err(|e| RestoreError::Nats {
                what: "listing the JetStream streams".into(),
                reason: e.to_string(),
            })?;
            out.insert(info.config.name.clone(), info.state.last_sequence);
        }
        Ok(out)
    }

    /// Starts recording stream positions from `positions` (a checkpoint's).
    pub fn set_positions(&mut self, positions: BTreeMap<String, u64>) {
        self.confirmed.streams = positions;
    }

    /// Resumes after a previous run that confirmed everything up to `after`,
    /// with the stream positions its checkpoint recorded (streams missing
    /// there are read from their start).
    pub fn resume_after(&mut self, after: Option<u64>, positions: BTreeMap<String, u64>) {
        self.confirmed.streams = positions.clone();
        self.resume = Some(Resume {
            after,
            baselines: positions,
            present: HashMap::new(),
        });
    }

    /// The stream that captures `subject` (cached).
    async fn stream_for(&mut self, subject: &str) -> Result<String, RestoreError> {
        if let Some(s) = self.stream_of.get(subject) {
            return Ok(s.clone());
        }
        let name = self
            .js
            .stream_by_subject(subject)
            .await
            .map_err(|e| match e.kind() {
                GetStreamByNameErrorKind::NotFound => RestoreError::NoStream {
                    subject: subject.to_string(),
                },
                GetStreamByNameErrorKind::InvalidSubject => RestoreError::BadSubject {
                    subject: subject.to_string(),
                },
                _ => RestoreError::Nats {
                    what: format!("looking up the stream for subject {subject:?}"),
                    reason: e.to_string(),
                },
            })?;
        if self.stream_of.len() >= SUBJECT_CACHE {
            self.stream_of.clear();
        }
        self.stream_of.insert(subject.to_string(), name.clone());
        Ok(name)
    }

    /// Whether a resumed run finds `seq` already in `stream`.
    async fn already_in(
        &mut self,
        stream: &str,
        station: &StationName,
        seq: u64,
    ) -> Result<bool, RestoreError> {
        let Some(resume) = &self.resume else {
            return Ok(false);
        };
        if let Some(set) = resume.present.get(stream) {
            return Ok(set.contains(&seq));
        }
        let after_stream_seq = resume.baselines.get(stream).copied().unwrap_or(0);
        let after = resume.after;
        let set = scan_stream(
            &self.js,
            stream,
            after_stream_seq,
            self.subject.as_deref(),
            station,
            after,
            self.key.as_ref(),
        )
        .await?;
        let found = set.contains(&seq);
        if let Some(resume) = &mut self.resume {
            resume.present.insert(stream.to_string(), set);
        }
        Ok(found)
    }

    fn settle(&mut self, outcome: Result<Outcome, AckError>) -> Result<(), RestoreError> {
        match outcome {
            Ok(Outcome::Present(seq)) => {
                self.confirmed.last_seq = Some(seq);
                self.confirmed.messages += 1;
                self.confirmed.already_present += 1;
            }
            Ok(Outcome::Acked(seq, ack)) => {
                self.confirmed.last_seq = Some(seq);
                self.confirmed.messages += 1;
                if ack.duplicate {
                    self.confirmed.already_present += 1;
                }
                let at = self.confirmed.streams.entry(ack.stream).or_insert(0);
                *at = (*at).max(ack.sequence);
            }
            Err(e) => return Err(failure(e)),
        }
        Ok(())
    }

    /// Settles the acknowledgements that have already arrived, in order.
    fn settle_ready(&mut self) -> Result<(), RestoreError> {
        while let Some(outcome) = self.inflight.ready() {
            self.settle(outcome)?;
        }
        Ok(())
    }
}

impl Prepare for HeaderBuilder {
    /// Builds the headers, moving the archived headers and id out of `m`:
    /// delivery needs only its station, seq, subject and payload then.
    fn prepare(&mut self, m: &mut Message) -> Result<Prepared, RestoreError> {
        Ok(Prepared {
            headers: Some(self.build_taking(m)?),
        })
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn preparer(&self) -> Option<Box<dyn Prepare>> {
        Some(Box::new(HeaderBuilder::new(self.key.clone())))
    }

    async fn deliver(&mut self, m: Message, prepared: Prepared) -> Result<(), RestoreError> {
        let subject = subject_for(&m, self.subject.as_deref())?;
        let same = self
            .route
            .as_ref()
            .is_some_and(|r| r.subject.as_str() == subject);
        let route = match self.route.take() {
            Some(r) if same => r,
            _ => {
                let subject = subject.to_string();
                Route {
                    stream: self.stream_for(&subject).await?,
                    subject: Subject::from(subject),
                }
            }
        };
        let present = self.already_in(&route.stream, &m.station, m.seq).await;
        let subject = route.subject.clone();
        self.route = Some(route);
        if present? {
            self.inflight.present(m.seq);
            return Ok(());
        }
        let headers = match prepared.headers {
            Some(headers) => headers,
            None => publish_headers(&m, self.key.as_ref())?,
        };
        while self.inflight.len() >= self.max_inflight {
            if let Some(outcome) = self.inflight.next().await {
                self.settle(outcome)?;
            }
        }
        // Acknowledgements are settled when the window is full, at `sync`
        // and at `finish`: not read after every publish.
        self.inflight
            .publish(m.seq, subject, headers, m.payload)
            .await
            .map_err(failure)
    }

    async fn sync(&mut self) -> Result<Delivered, RestoreError> {
        self.settle_ready()?;
        Ok(self.confirmed.clone())
    }

    async fn finish(&mut self) -> Result<Delivered, RestoreError> {
        while let Some(outcome) = self.inflight.next().await {
            self.settle(outcome)?;
        }
        Ok(self.confirmed.clone())
    }

    fn confirmed(&self) -> Delivered {
        self.confirmed.clone()
    }
}

/// The seqs above `after` of `station` that `stream` holds after stream
/// sequence `after_stream_seq`, read from message headers only.
async fn scan_stream(
    js: &JetStream,
    stream: &str,
    after_stream_seq: u64,
    subject: Option<&str>,
    station: &StationName,
    after: Option<u64>,
    key: Option<&RestoreKey>,
) -> Result<HashSet<u64>, RestoreError> {
    let err = |reason: String| RestoreError::Nats {
        what: format!("reading back stream {stream:?} to resume"),
        reason,
    };
    let mut found = HashSet::new();
    let mut handle = js
        .get_stream(stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let last = handle
        .info()
        .await
        .map_err(|e| err(e.to_string()))?
        .state
        .last_sequence;
    if last <= after_stream_seq {
        return Ok(found);
    }
    let consumer = handle
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after_stream_seq + 1,
            },
            filter_subject: subject.unwrap_or_default().to_string(),
            // Whole messages: a signature covers the payload.
            headers_only: key.is_none(),
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| err(e.to_string()))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(found);
    }
    let mut messages = consumer.messages().await.map_err(|e| err(e.to_string()))?;
    loop {
        let next = tokio::time::timeout(SCAN_IDLE, messages.next())
            .await
            .map_err(|_| err(format!("no message for {}s", SCAN_IDLE.as_secs())))?;
        let Some(msg) = next else { break };
        let msg = msg.map_err(|e| err(e.to_string()))?;
        if let Some(h) = &msg.headers {
            let find = |name: &str| h.get(name).map(|v| v.as_str());
            let claim = match key {
                // Only this archive's signed copies count as already restored.
                Some(key) => Provenance::from_headers(find)
                    .filter(|p| &p.station == station && p.verify(key, &msg.payload))
                    .map(|p| p.seq.get()),
                None => find(STRATA_STATION)
                    .filter(|s| *s == station.as_str())
                    .and_then(|_| find(STRATA_SEQ))
                    .and_then(|s| s.parse::<u64>().ok()),
            };
            if let Some(seq) = claim {
                if after.is_none_or(|a| seq > a) {
                    found.insert(seq);
                }
            }
        }
        let info = msg.info().map_err(|e| err(e.to_string()))?;
        if info.pending == 0 || info.stream_sequence >= last {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Header, Timestamp};
    use bytes::Bytes;

    fn message(headers: Vec<Header>, id: Option<&str>) -> Message {
        Message {
            station: StationName::new("orders").unwrap(),
            seq: 42,
            timestamp: Timestamp::parse_rfc3339("2026-11-24T10:00:00.123456Z").unwrap(),
            id: id.map(str::to_string),
            subject: Some("orders.created".into()),
            headers,
            payload: Bytes::from_static(b"\x00\xffpayload"),
        }
    }

    fn values(map: &HeaderMap, name: &str) -> Vec<String> {
        map.iter()
            .filter(|(k, _)| k.to_string() == name)
            .flat_map(|(_, vs)| vs.iter().map(|v| v.as_str().to_string()))
            .collect()
    }

    #[test]
    fn adds_identity_headers_and_keeps_repeats_in_order() {
        let m = message(
            vec![
                Header::new("X-Trace", "a"),
                Header::new("x-trace", "lower"),
                Header::new("X-Trace", "b"),
                Header::new("Strata-Seq", "7"),
            ],
            None,
        );
        let h = publish_headers(&m, None).unwrap();
        assert_eq!(values(&h, "X-Trace"), ["a", "b"]);
        assert_eq!(values(&h, "x-trace"), ["lower"]);
        assert_eq!(values(&h, "Strata-Seq"), ["42"]);
        assert_eq!(values(&h, "Strata-Station"), ["orders"]);
        assert_eq!(
            values(&h, "Strata-Timestamp"),
            ["2026-11-24T10:00:00.123456Z"]
        );
        assert_eq!(values(&h, "Nats-Msg-Id"), ["strata:orders:42"]);
    }

    #[test]
    fn the_dedup_id_is_per_archived_message_and_the_original_id_is_kept() {
        let h = publish_headers(&message(vec![], Some("order-7")), None).unwrap();
        assert_eq!(values(&h, "Nats-Msg-Id"), ["strata:orders:42"]);
        assert_eq!(values(&h, "Strata-Original-Msg-Id"), ["order-7"]);
        let h = publish_headers(
            &message(
                vec![Header::new("Nats-Msg-Id", "from-header")],
                Some("order-7"),
            ),
            None,
        )
        .unwrap();
        assert_eq!(values(&h, "Nats-Msg-Id"), ["strata:orders:42"]);
        assert_eq!(values(&h, "Strata-Original-Msg-Id"), ["from-header"]);
        let h = publish_headers(&message(vec![], None), None).unwrap();
        assert!(values(&h, "Strata-Original-Msg-Id").is_empty());
    }

    #[test]
    fn signed_headers_verify_against_the_payload() {
        let key = RestoreKey::from_bytes([3; 32]);
        let m = message(vec![Header::new("Strata-Mac", "forged")], None);
        let h = publish_headers(&m, Some(&key)).unwrap();
        let claim = Provenance::from_headers(|n| h.get(n).map(|v| v.as_str())).unwrap();
        assert_eq!(claim.seq.get(), 42);
        assert!(claim.verify(&key, &m.payload));
        assert_eq!(
            values(&h, "Strata-Mac").len(),
            1,
            "the archived one is replaced"
        );
    }

    #[test]
    fn taking_builds_the_same_headers_as_borrowing() {
        let key = RestoreKey::from_bytes([5; 32]);
        let headers = vec![
            Header::new("X-Trace", "a"),
            Header::new("Nats-Msg-Id", "from-header"),
            Header::new("X-Trace", "b"),
            Header::new("strata-mac", "forged"),
            Header::new("Other", ""),
        ];
        for id in [None, Some("order-7")] {
            for key in [None, Some(key.clone())] {
                let mut m = message(headers.clone(), id);
                let mut builder = HeaderBuilder::new(key);
                let borrowed = builder.build(&m).unwrap();
                let taken = builder.build_taking(&mut m).unwrap();
                assert_eq!(borrowed, taken);
                assert!(m.headers.is_empty() && m.id.is_none());
            }
        }
        let mut bad = message(vec![Header::new("a", "v\nb")], None);
        let e = HeaderBuilder::new(None).build_taking(&mut bad).unwrap_err();
        assert!(matches!(e, RestoreError::BadHeader { seq: 42, .. }), "{e}");
    }

    #[test]
    fn refuses_headers_nats_cannot_carry() {
        let e = publish_headers(&message(vec![Header::new("a:b", "v")], None), None).unwrap_err();
        assert!(matches!(e, RestoreError::BadHeader { seq: 42, .. }));
        let e =
            publish_headers(&message(vec![Header::new("a", "v\r\nb")], None), None).unwrap_err();
        assert!(e.to_string().contains("--output"), "{e}");
    }

    #[test]
    fn subject_is_the_override_else_the_archived_one() {
        let m = message(vec![], None);
        assert_eq!(subject_for(&m, None).unwrap(), "orders.created");
        assert_eq!(subject_for(&m, Some("x.y")).unwrap(), "x.y");
        let none = Message { subject: None, ..m };
        let e = subject_for(&none, None).unwrap_err().to_string();
        assert!(e.contains("--subject"), "{e}");
    }
}
