//! What a restore is asked to do, as typed values: which station, which range
//! (time bounds kept as given, resolved against one "now" when the run
//! starts), where the messages go and how fast. [`Request::validate`] checks
//! what the types cannot. Pure: no I/O besides the clock the caller hands in.
//!
//! The `strata restore` command line builds a [`Request`] from its flags; the
//! messages below name those flags, since that is where a person fixes them.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::columnar::Selection;
use crate::config::Secret;
use crate::message::{Seq, StationName, Timestamp};
use crate::nats::NatsUrl;

use super::pace::MIN_RATE;

/// The default number of JetStream publish acknowledgements outstanding at once.
pub const DEFAULT_MAX_INFLIGHT: usize = 256;

/// The largest `--max-inflight` accepted.
pub const MAX_INFLIGHT: usize = 1_000_000;

/// Why a [`Request`] cannot run. Each message names the flag and what to give.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A time bound is not a time, or lies outside the calendar once resolved.
    #[error("{flag}: {source}")]
    Time {
        /// `--from` or `--to`.
        flag: &'static str,
        /// What is wrong with it.
        source: BadTime,
    },
    /// `--from` resolves to an instant after `--to`.
    #[error("--from {from} is after --to {to}: swap them or widen the range")]
    TimesReversed {
        /// The resolved lower bound.
        from: Timestamp,
        /// The resolved upper bound.
        to: Timestamp,
    },
    /// `--from-seq` is above `--to-seq`.
    #[error("--from-seq {from} is above --to-seq {to}: swap them or widen the range")]
    SeqsReversed {
        /// The lower bound.
        from: Seq,
        /// The upper bound.
        to: Seq,
    },
    /// `--rate` is not a usable number of messages per second.
    #[error(
        "--rate {rate:?} is out of range: give messages per second, at least {MIN_RATE} \
         (one message every {} s), e.g. 5000", 1.0 / MIN_RATE
    )]
    Rate {
        /// The value given.
        rate: f64,
    },
    /// `--max-inflight` is outside `1..=MAX_INFLIGHT`.
    #[error(
        "--max-inflight {n} is out of range: give 1 to {MAX_INFLIGHT} \
         unacknowledged publishes (default {DEFAULT_MAX_INFLIGHT})"
    )]
    MaxInflight {
        /// The value given.
        n: usize,
    },
    /// `--subject` is not a subject NATS publishes on.
    #[error(
        "--subject {subject:?} is not a publish subject: use dot-separated tokens \
         without spaces or wildcards, e.g. orders.restored"
    )]
    Subject {
        /// The subject given.
        subject: String,
    },
}

/// A text that is not a time bound (see [`TimeBound::parse`] for the forms).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: use RFC 3339 (2026-11-24T10:00:00Z), `now`, \
     or a time before now like -30m, -2h, -7d (units s m h d w)"
)]
pub struct BadTime(String);

/// A time bound as given: an instant, `now`, or a span before now. It keeps
/// its text, which a checkpoint records so that a resumed run is compared
/// with the words of the run that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBound {
    text: String,
    when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    At(Timestamp),
    Now,
    Ago(ChronoDuration),
}

impl TimeBound {
    /// Parses RFC 3339, `now`, or `-<n><unit>` (units `s`, `m`, `h`, `d`, `w`)
    /// meaning that long before now. Surrounding spaces are ignored.
    ///
    /// # Errors
    /// [`BadTime`] showing the accepted forms.
    pub fn parse(text: &str) -> Result<Self, BadTime> {
        let s = text.trim();
        let bad = || BadTime(s.to_string());
        let when = if s.eq_ignore_ascii_case("now") {
            When::Now
        } else if let Some(rel) = s.strip_prefix('-') {
            let unit_at = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
            let (digits, unit) = rel.split_at(unit_at);
            let n: i64 = digits.parse().map_err(|_| bad())?;
            let span = match unit {
                "s" => ChronoDuration::try_seconds(n),
                "m" => ChronoDuration::try_minutes(n),
                "h" => ChronoDuration::try_hours(n),
                "d" => ChronoDuration::try_days(n),
                "w" => ChronoDuration::try_weeks(n),
                _ => None,
            }
            .ok_or_else(bad)?;
            When::Ago(span)
        } else {
            When::At(Timestamp::parse_rfc3339(s).map_err(|_| bad())?)
        };
        Ok(Self {
            text: text.to_string(),
            when,
        })
    }

    /// The bound at a fixed instant (its text is the RFC 3339 form).
    pub fn at(ts: Timestamp) -> Self {
        Self {
            text: ts.to_rfc3339(),
            when: When::At(ts),
        }
    }

    /// The instant this bound means when the run starts at `now`.
    ///
    /// # Errors
    /// [`BadTime`] when a span before `now` leaves the calendar.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Timestamp, BadTime> {
        match self.when {
            When::At(ts) => Ok(ts),
            When::Now => Ok(Timestamp(now.timestamp_micros())),
            When::Ago(span) => now
                .checked_sub_signed(span)
                .map(|at| Timestamp(at.timestamp_micros()))
                .ok_or_else(|| BadTime(self.text.trim().to_string())),
        }
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which messages: every bound inclusive, all of them together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Oldest message timestamp (`--from`).
    pub from: Option<TimeBound>,
    /// Newest message timestamp (`--to`).
    pub to: Option<TimeBound>,
    /// Lowest seq (`--from-seq`).
    pub from_seq: Option<Seq>,
    /// Highest seq (`--to-seq`).
    pub to_seq: Option<Seq>,
}

impl Range {
    /// The range with its times resolved against `now`.
    ///
    /// # Errors
    /// [`RequestError`] for a bound outside the calendar or bounds in the wrong order.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Selection, RequestError> {
        let resolve = |flag: &'static str, bound: &Option<TimeBound>| {
            bound
                .as_ref()
                .map(|b| {
                    b.resolve(now)
                        .map_err(|source| RequestError::Time { flag, source })
                })
                .transpose()
        };
        let from_ts = resolve("--from", &self.from)?;
        let to_ts = resolve("--to", &self.to)?;
        if let (Some(from), Some(to)) = (from_ts, to_ts) {
            if from > to {
                return Err(RequestError::TimesReversed { from, to });
            }
        }
        if let (Some(from), Some(to)) = (self.from_seq, self.to_seq) {
            if from > to {
                return Err(RequestError::SeqsReversed { from, to });
            }
        }
        Ok(Selection {
            from_seq: self.from_seq.map(Seq::get),
            to_seq: self.to_seq.map(Seq::get),
            from_ts,
            to_ts,
        })
    }
}

/// Where restored messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Publish to JetStream.
    Nats(NatsTarget),
    /// NDJSON into a file (created; appended on resume).
    File {
        /// The file.
        path: PathBuf,
        /// Replace the file when it exists (`--force`) instead of refusing.
        overwrite: bool,
    },
    /// NDJSON on standard output.
    Stdout,
}

impl Target {
    /// NDJSON into `path`, refusing to replace an existing file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File {
            path: path.into(),
            overwrite: false,
        }
    }
}

/// Connection and publishing settings for a JetStream target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTarget {
    /// The server URL.
    pub url: NatsUrl,
    /// Subject override for every message.
    pub subject: Option<String>,
    /// Token authentication.
    pub token: Option<Secret>,
    /// User and password authentication.
    pub user_password: Option<(String, Secret)>,
    /// Credentials file.
    pub creds: Option<PathBuf>,
    /// Most acknowledgements outstanding.
    pub max_inflight: usize,
}

impl NatsTarget {
    /// The server at `url`, no authentication besides the URL's, each message
    /// on its archived subject, [`DEFAULT_MAX_INFLIGHT`] acknowledgements.
    pub fn new(url: NatsUrl) -> Self {
        Self {
            url,
            subject: None,
            token: None,
            user_password: None,
            creds: None,
            max_inflight: DEFAULT_MAX_INFLIGHT,
        }
    }
}

/// A restore: everything [`super::run`] needs besides the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The station to read.
    pub station: StationName,
    /// Which messages.
    pub range: Range,
    /// Where they go.
    pub target: Target,
    /// Messages per second, if limited (at least [`MIN_RATE`]).
    pub rate: Option<f64>,
    /// Record progress in this file and resume after it when it exists.
    pub checkpoint: Option<PathBuf>,
}

impl Request {
    /// Every archived message of `station` into `target`, unpaced, without a checkpoint.
    pub fn new(station: StationName, target: Target) -> Self {
        Self {
            station,
            range: Range::default(),
            target,
            rate: None,
            checkpoint: None,
        }
    }

    /// Checks every value and resolves the range against `now` (the instant
    /// the run starts), returning the messages to select.
    ///
    /// # Errors
    /// [`RequestError`] naming the value that is wrong and what to give.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<Selection, RequestError> {
        let selection = self.range.resolve(now)?;
        if let Some(rate) = self.rate {
            check_rate(rate)?;
        }
        if let Target::Nats(t) = &self.target {
            check_max_inflight(t.max_inflight)?;
            if let Some(subject) = &t.subject {
                check_subject(subject)?;
            }
        }
        Ok(selection)
    }
}

/// Checks `--rate`: a finite number of messages per second, at least
/// [`MIN_RATE`] (anything slower would wait longer than a clock can count).
///
/// # Errors
/// [`RequestError::Rate`] naming the value and the accepted range.
pub fn check_rate(rate: f64) -> Result<f64, RequestError> {
    if rate.is_finite() && rate >= MIN_RATE {
        Ok(rate)
    } else {
        Err(RequestError::Rate { rate })
    }
}

/// Checks `--max-inflight`: from 1 to [`MAX_INFLIGHT`].
///
/// # Errors
/// [`RequestError::MaxInflight`] naming the value and the accepted range.
pub fn check_max_inflight(n: usize) -> Result<usize, RequestError> {
    if (1..=MAX_INFLIGHT).contains(&n) {
        Ok(n)
    } else {
        Err(RequestError::MaxInflight { n })
    }
}

/// Refuses a publish subject NATS would reject: empty tokens, wildcards, whitespace.
///
/// # Errors
/// [`RequestError::Subject`] naming the subject and the rule.
pub fn check_subject(subject: &str) -> Result<(), RequestError> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">")
        || subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(RequestError::Subject {
            subject: subject.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn seq(n: u64) -> Option<Seq> {
        Some(Seq::new(n).unwrap())
    }

    fn bound(s: &str) -> Option<TimeBound> {
        Some(TimeBound::parse(s).unwrap())
    }

    fn request(target: Target) -> Request {
        Request::new(StationName::new("orders").unwrap(), target)
    }

    fn nats() -> NatsTarget {
        NatsTarget::new(NatsUrl::new("nats://u:hunter2@h:4222"))
    }

    #[test]
    fn relative_and_absolute_times() {
        let at = |s| {
            TimeBound::parse(s)
                .unwrap()
                .resolve(now())
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(at("-2h"), "2026-11-24T10:00:00.000000Z");
        assert_eq!(at("-30m"), "2026-11-24T11:30:00.000000Z");
        assert_eq!(at("-7d"), "2026-11-17T12:00:00.000000Z");
        assert_eq!(at("-1w"), "2026-11-17T12:00:00.000000Z");
        assert_eq!(at("-15s"), "2026-11-24T11:59:45.000000Z");
        assert_eq!(at("now"), "2026-11-24T12:00:00.000000Z");
        assert_eq!(
            at("2026-11-24T10:00:00.5+01:00"),
            "2026-11-24T09:00:00.500000Z"
        );
        for bad in ["-2x", "-h", "2h", "yesterday", "-", "-99999999999999999d"] {
            let e = TimeBound::parse(bad).unwrap_err().to_string();
            assert!(e.contains("RFC 3339") && e.contains("-2h"), "{bad}: {e}");
        }
        // A span the clock can hold but the calendar cannot is refused when resolved.
        let far = TimeBound::parse("-1000000000w").unwrap();
        let e = far.resolve(now()).unwrap_err().to_string();
        assert!(e.contains("-1000000000w") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn a_bound_keeps_its_text_for_the_checkpoint() {
        assert_eq!(TimeBound::parse(" -2h").unwrap().as_str(), " -2h");
        assert_eq!(TimeBound::parse("now").unwrap().to_string(), "now");
        let ts = Timestamp::parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(TimeBound::at(ts).as_str(), "2026-11-24T10:00:00.000000Z");
    }

    #[test]
    fn validate_resolves_relative_bounds_against_one_now() {
        let mut r = request(Target::Stdout);
        r.range.from = bound("-2h");
        r.range.to = bound("-1h");
        r.range.from_seq = seq(3);
        let sel = r.validate(now()).unwrap();
        assert_eq!(
            sel.from_ts.unwrap().to_rfc3339(),
            "2026-11-24T10:00:00.000000Z"
        );
        assert_eq!(
            sel.to_ts.unwrap().to_rfc3339(),
            "2026-11-24T11:00:00.000000Z"
        );
        assert_eq!((sel.from_seq, sel.to_seq), (Some(3), None));
    }

    #[test]
    fn reversed_bounds_are_refused_with_guidance() {
        let mut r = request(Target::Stdout);
        r.range.from_seq = seq(9);
        r.range.to_seq = seq(3);
        let e = r.validate(now()).unwrap_err().to_string();
        assert!(e.contains("swap"), "{e}");
        assert!(e.contains("--from-seq 9 is above --to-seq 3"), "{e}");

        let mut r = request(Target::Stdout);
        r.range.from = bound("-1h");
        r.range.to = bound("-2h");
        let e = r.validate(now()).unwrap_err().to_string();
        assert!(e.contains("after --to"), "{e}");
    }

    #[test]
    fn subjects_rates_and_inflight_are_checked_in_code_built_requests() {
        let mut t = nats();
        t.subject = Some("a.*".into());
        let e = request(Target::Nats(t)).validate(now()).unwrap_err();
        assert!(e.to_string().contains("wildcards"), "{e}");
        for bad in ["", "a..b", "a.>", "a b", "a.\u{7}"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        assert!(check_subject("orders.restored").is_ok());

        // 1e-300 used to reach Duration::from_secs_f64 and panic.
        for bad in [1e-300, 0.0001, 0.0, f64::NAN, f64::INFINITY, -1.0] {
            let mut r = request(Target::Stdout);
            r.rate = Some(bad);
            let e = r.validate(now()).unwrap_err().to_string();
            assert!(
                e.contains("--rate") && e.contains("at least 0.001") && e.contains("5000"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            RequestError::Rate { rate: 1e-300 }.to_string(),
            "--rate 1e-300 is out of range: give messages per second, at least 0.001 \
             (one message every 1000 s), e.g. 5000"
        );
        for ok in [0.001, 0.5, 5000.0, 1e12] {
            let mut r = request(Target::Stdout);
            r.rate = Some(ok);
            assert!(r.validate(now()).is_ok(), "{ok}");
        }

        for bad in [0, MAX_INFLIGHT + 1] {
            let mut t = nats();
            t.max_inflight = bad;
            let e = request(Target::Nats(t))
                .validate(now())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("--max-inflight {bad}")) && e.contains("1000000"),
                "{e}"
            );
        }
        assert_eq!(nats().max_inflight, DEFAULT_MAX_INFLIGHT);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut t = nats();
        t.token = Some(Secret::new("tok-secret"));
        t.user_password = Some(("u".into(), Secret::new("pw-secret")));
        let dbg = format!("{:?}", request(Target::Nats(t)));
        for secret in ["tok-secret", "pw-secret", "hunter2"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }
}
