//! The `strata restore` command line and its validation into a [`Request`]:
//! which station, which range (times resolved against one "now"), and where the
//! messages go. Pure: no I/O besides reading the clock the caller hands in.

use std::path::PathBuf;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::columnar::Selection;
use crate::config::Secret;
use crate::message::{Seq, StationName, Timestamp};

use super::pace::MIN_RATE;
use super::RestoreError;
pub use crate::nats::{redact_url, NatsUrl};

/// The default number of JetStream publish acknowledgements outstanding at once.
pub const DEFAULT_MAX_INFLIGHT: usize = 256;

/// The largest `--max-inflight` accepted.
pub const MAX_INFLIGHT: usize = 1_000_000;

/// `strata restore`: replay a station's archived messages for a range, in seq
/// order, into a NATS JetStream stream (`--nats`) or as NDJSON (`--output`).
///
/// `--config` is not part of these arguments: the `strata` command handles it
/// globally and opens the archive it names.
#[derive(clap::Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["nats", "output"])
))]
pub struct RestoreArgs {
    /// The station (stream) whose archive to read.
    #[arg(long, value_name = "STATION", value_parser = parse_station)]
    pub station: StationName,

    /// Oldest message timestamp to restore (inclusive): RFC 3339
    /// (`2026-11-24T10:00:00Z`) or relative to now (`-2h`, `-30m`, `-7d`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,

    /// Newest message timestamp to restore (inclusive): RFC 3339 or relative (`-1h`, `now`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,

    /// Lowest station sequence to restore (inclusive).
    #[arg(long, value_name = "N")]
    pub from_seq: Option<u64>,

    /// Highest station sequence to restore (inclusive).
    #[arg(long, value_name = "N")]
    pub to_seq: Option<u64>,

    /// Publish to this NATS server's JetStream (`nats://host:4222`).
    #[arg(long, value_name = "URL", value_parser = parse_nats_url)]
    pub nats: Option<NatsUrl>,

    /// Publish every message on this subject instead of its archived one.
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,

    /// NATS token (or env `STRATA_NATS_TOKEN`).
    #[arg(long, value_name = "TOKEN", env = "STRATA_NATS_TOKEN", hide_env_values = true,
          value_parser = parse_secret)]
    pub nats_token: Option<Secret>,

    /// NATS user name (with `--nats-password`).
    #[arg(long, value_name = "USER")]
    pub nats_user: Option<String>,

    /// NATS password (or env `STRATA_NATS_PASSWORD`).
    #[arg(long, value_name = "PASSWORD", env = "STRATA_NATS_PASSWORD", hide_env_values = true,
          value_parser = parse_secret)]
    pub nats_password: Option<Secret>,

    /// NATS credentials file (JWT + NKey seed).
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,

    /// Most JetStream publish acknowledgements outstanding at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_INFLIGHT,
          value_parser = parse_max_inflight)]
    pub max_inflight: usize,

    /// Publish at most this many messages per second.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Write NDJSON to FILE, or to standard output with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub output: Option<PathBuf>,

    /// Record progress in FILE and resume after it when it exists.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Overwrite the `--output` FILE when it already exists.
    #[arg(long)]
    pub force: bool,

    /// No progress bar and no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_station(s: &str) -> Result<StationName, String> {
    StationName::new(s).map_err(|e| e.to_string())
}

fn parse_nats_url(s: &str) -> Result<NatsUrl, String> {
    if s.trim().is_empty() {
        return Err("the NATS URL is empty: use e.g. nats://127.0.0.1:4222".to_string());
    }
    Ok(NatsUrl::new(s))
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate = s.trim().parse::<f64>().map_err(|_| {
        format!("{s:?} is not a rate: give messages per second, a number such as 5000 or 0.5")
    })?;
    check_rate(rate)
}

/// Checks `--rate`: a finite number of messages per second, at least
/// [`MIN_RATE`] (anything slower would wait longer than a clock can count).
///
/// # Errors
/// A message naming the value and the accepted range.
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate >= MIN_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "--rate {rate:?} is out of range: give messages per second, at least {MIN_RATE} \
             (one message every {} s), e.g. 5000",
            1.0 / MIN_RATE
        ))
    }
}

/// Checks `--max-inflight`: from 1 to [`MAX_INFLIGHT`].
///
/// # Errors
/// A message naming the value and the accepted range.
pub fn check_max_inflight(n: usize) -> Result<usize, String> {
    if (1..=MAX_INFLIGHT).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "--max-inflight {n} is out of range: give 1 to {MAX_INFLIGHT} \
             unacknowledged publishes (default {DEFAULT_MAX_INFLIGHT})"
        ))
    }
}

fn parse_max_inflight(s: &str) -> Result<usize, String> {
    let n = s.trim().parse::<usize>().map_err(|_| {
        format!("{s:?} is not a count: give 1 to {MAX_INFLIGHT} unacknowledged publishes")
    })?;
    check_max_inflight(n)
}

/// Where restored messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Publish to JetStream.
    Nats(NatsTarget),
    /// NDJSON into a file (created or truncated; appended on resume).
    File(PathBuf),
    /// NDJSON on standard output.
    Stdout,
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

/// The range as typed, kept verbatim in a checkpoint so that a resumed run can
/// be checked against the run that wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeSpec {
    /// `--from` as given.
    pub from: Option<String>,
    /// `--to` as given.
    pub to: Option<String>,
    /// `--from-seq`.
    pub from_seq: Option<u64>,
    /// `--to-seq`.
    pub to_seq: Option<u64>,
}

/// A validated restore: everything [`super::run`] needs besides the archive.
#[derive(Debug, Clone)]
pub struct Request {
    /// The station to read.
    pub station: StationName,
    /// The range as typed.
    pub range: RangeSpec,
    /// The range with times resolved (inclusive bounds).
    pub selection: Selection,
    /// Where messages go.
    pub target: Target,
    /// Messages per second, if limited.
    pub rate: Option<f64>,
    /// Checkpoint file.
    pub checkpoint: Option<PathBuf>,
    /// Overwrite an existing output file (`--force`).
    pub overwrite: bool,
    /// No progress output.
    pub quiet: bool,
}

impl RestoreArgs {
    /// Validates the arguments, resolving relative times against `now`.
    ///
    /// # Errors
    /// [`RestoreError::Args`] saying which argument is wrong and what it should look like.
    pub fn into_request(self, now: DateTime<Utc>) -> Result<Request, RestoreError> {
        let from_ts = self
            .from
            .as_deref()
            .map(|s| parse_time(s, now).map_err(|e| RestoreError::Args(format!("--from: {e}"))))
            .transpose()?;
        let to_ts = self
            .to
            .as_deref()
            .map(|s| parse_time(s, now).map_err(|e| RestoreError::Args(format!("--to: {e}"))))
            .transpose()?;
        if let (Some(f), Some(t)) = (from_ts, to_ts) {
            if f > t {
                return Err(RestoreError::Args(format!(
                    "--from {f} is after --to {t}: swap them or widen the range"
                )));
            }
        }
        if let (Some(f), Some(t)) = (self.from_seq, self.to_seq) {
            if f > t {
                return Err(RestoreError::Args(format!(
                    "--from-seq {f} is above --to-seq {t}: swap them or widen the range"
                )));
            }
        }
        for (flag, v) in [("--from-seq", self.from_seq), ("--to-seq", self.to_seq)] {
            if let Some(Err(e)) = v.map(Seq::new) {
                return Err(RestoreError::Args(format!("{flag}: {e}")));
            }
        }
        // Clap checks both when it parses; a `RestoreArgs` built in code is checked here.
        let rate = self
            .rate
            .map(check_rate)
            .transpose()
            .map_err(RestoreError::Args)?;
        let max_inflight = check_max_inflight(self.max_inflight).map_err(RestoreError::Args)?;
        if self.nats.is_none() {
            let nats_only = [
                ("--subject", self.subject.is_some()),
                ("--nats-user", self.nats_user.is_some()),
                ("--nats-creds", self.nats_creds.is_some()),
            ];
            if let Some((flag, _)) = nats_only.iter().find(|(_, given)| *given) {
                return Err(RestoreError::Args(format!(
                    "{flag} only applies with --nats URL: drop it or publish to NATS"
                )));
            }
        }
        if self.force && self.output.is_none() {
            return Err(RestoreError::Args(
                "--force only applies with --output FILE: drop it or write NDJSON".into(),
            ));
        }
        if self.nats.is_some() && self.nats_user.is_some() != self.nats_password.is_some() {
            return Err(RestoreError::Args(
                "--nats-user and --nats-password (or STRATA_NATS_PASSWORD) go together".into(),
            ));
        }
        let target = match (self.nats, self.output) {
            (Some(url), None) => {
                if let Some(subject) = &self.subject {
                    check_subject(subject)?;
                }
                Target::Nats(NatsTarget {
                    url,
                    subject: self.subject,
                    token: self.nats_token,
                    user_password: self.nats_user.zip(self.nats_password),
                    creds: self.nats_creds,
                    max_inflight,
                })
            }
            (None, Some(path)) if path.as_os_str() == "-" => Target::Stdout,
            (None, Some(path)) => Target::File(path),
            _ => {
                return Err(RestoreError::Args(
                    "give exactly one target: --nats URL or --output FILE (or - for stdout)"
                        .to_string(),
                ))
            }
        };
        Ok(Request {
            station: self.station,
            range: RangeSpec {
                from: self.from,
                to: self.to,
                from_seq: self.from_seq,
                to_seq: self.to_seq,
            },
            selection: Selection {
                from_seq: self.from_seq,
                to_seq: self.to_seq,
                from_ts,
                to_ts,
            },
            target,
            rate,
            checkpoint: self.checkpoint,
            overwrite: self.force,
            quiet: self.quiet,
        })
    }
}

/// Refuses a publish subject NATS would reject: empty tokens, wildcards, whitespace.
///
/// # Errors
/// [`RestoreError::Args`] naming the subject and the rule.
pub fn check_subject(subject: &str) -> Result<(), RestoreError> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">")
        || subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(RestoreError::Args(format!(
            "--subject {subject:?} is not a publish subject: use dot-separated tokens \
             without spaces or wildcards, e.g. orders.restored"
        )));
    }
    Ok(())
}

/// Parses a time bound: RFC 3339, `now`, or `-<n><unit>` (units `s`, `m`, `h`,
/// `d`, `w`) meaning that long before `now`.
///
/// # Errors
/// A message showing the accepted forms.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<Timestamp, String> {
    let s = s.trim();
    let now_ts = Timestamp(now.timestamp_micros());
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ts);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let unit_at = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
        let (digits, unit) = rel.split_at(unit_at);
        let n: i64 = digits.parse().map_err(|_| bad_time(s))?;
        let span = match unit {
            "s" => ChronoDuration::try_seconds(n),
            "m" => ChronoDuration::try_minutes(n),
            "h" => ChronoDuration::try_hours(n),
            "d" => ChronoDuration::try_days(n),
            "w" => ChronoDuration::try_weeks(n),
            _ => None,
        }
        .ok_or_else(|| bad_time(s))?;
        let at = now.checked_sub_signed(span).ok_or_else(|| bad_time(s))?;
        return Ok(Timestamp(at.timestamp_micros()));
    }
    Timestamp::parse_rfc3339(s).map_err(|_| bad_time(s))
}

fn bad_time(s: &str) -> String {
    format!(
        "{s:?} is not a time: use RFC 3339 (2026-11-24T10:00:00Z), `now`, \
         or a time before now like -30m, -2h, -7d (units s m h d w)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: RestoreArgs,
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn parse(args: &[&str]) -> Result<RestoreArgs, clap::Error> {
        let mut v = vec!["restore"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.args)
    }

    #[test]
    fn relative_and_absolute_times() {
        let at = |s| parse_time(s, now()).unwrap().to_rfc3339();
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
            let e = parse_time(bad, now()).unwrap_err();
            assert!(e.contains("RFC 3339") && e.contains("-2h"), "{bad}: {e}");
        }
    }

    #[test]
    fn relative_from_is_accepted_by_the_parser() {
        let a = parse(&[
            "--station",
            "orders",
            "--from",
            "-2h",
            "--to",
            "-1h",
            "--output",
            "-",
        ])
        .unwrap();
        let r = a.into_request(now()).unwrap();
        assert_eq!(r.target, Target::Stdout);
        assert_eq!(r.range.from.as_deref(), Some("-2h"));
        assert_eq!(
            r.selection.from_ts.unwrap().to_rfc3339(),
            "2026-11-24T10:00:00.000000Z"
        );
        assert_eq!(
            r.selection.to_ts.unwrap().to_rfc3339(),
            "2026-11-24T11:00:00.000000Z"
        );
    }

    #[test]
    fn exactly_one_target() {
        assert!(parse(&["--station", "s"]).is_err());
        assert!(parse(&["--station", "s", "--nats", "nats://x", "--output", "-"]).is_err());
        let a = parse(&["--station", "s", "--nats", "nats://x"]).unwrap();
        assert_eq!(a.max_inflight, DEFAULT_MAX_INFLIGHT);
        assert!(matches!(
            a.into_request(now()).unwrap().target,
            Target::Nats(NatsTarget {
                max_inflight: 256,
                ..
            })
        ));
        assert!(matches!(
            parse(&["--station", "s", "--output", "out.ndjson"])
                .unwrap()
                .into_request(now())
                .unwrap()
                .target,
            Target::File(_)
        ));
        // --subject only means something for NATS.
        let e = parse(&["--station", "s", "--output", "-", "--subject", "a"])
            .unwrap()
            .into_request(now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--subject only applies with --nats"), "{e}");
        let e = parse(&["--station", "s", "--nats", "n", "--nats-user", "u"])
            .unwrap()
            .into_request(now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("go together"), "{e}");
        // --force only means something for a file.
        let e = parse(&["--station", "s", "--nats", "n", "--force"])
            .unwrap()
            .into_request(now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--force only applies with --output"), "{e}");
        let r = parse(&["--station", "s", "--output", "f", "--force"])
            .unwrap()
            .into_request(now())
            .unwrap();
        assert!(r.overwrite);
    }

    #[test]
    fn refuses_bad_values_with_guidance() {
        assert!(parse(&["--station", "a/b", "--output", "-"]).is_err());
        assert!(parse(&["--station", "s", "--output", "-", "--rate", "0"]).is_err());
        assert!(parse(&["--station", "s", "--nats", "n", "--max-inflight", "0"]).is_err());
        let e = parse(&[
            "--station",
            "s",
            "--output",
            "-",
            "--from-seq",
            "9",
            "--to-seq",
            "3",
        ])
        .unwrap()
        .into_request(now())
        .unwrap_err()
        .to_string();
        assert!(e.contains("swap"), "{e}");
        let e = parse(&[
            "--station",
            "s",
            "--output",
            "-",
            "--from",
            "-1h",
            "--to",
            "-2h",
        ])
        .unwrap()
        .into_request(now())
        .unwrap_err()
        .to_string();
        assert!(e.contains("after --to"), "{e}");
        let e = parse(&["--station", "s", "--nats", "n", "--subject", "a.*"])
            .unwrap()
            .into_request(now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("wildcards"), "{e}");
    }

    #[test]
    fn rates_and_inflight_out_of_range_are_refused_with_the_range() {
        // 1e-300 used to reach Duration::from_secs_f64 and panic.
        for bad in ["1e-300", "0.0001", "0", "NaN", "inf", "fast", ""] {
            let e = parse(&["--station", "s", "--output", "-", "--rate", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("--rate") || e.contains("rate"), "{bad}: {e}");
            assert!(e.contains("5000"), "{bad}: {e}");
        }
        let e = parse(&["--station", "s", "--output", "-", "--rate", "1e-300"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--rate 1e-300") && e.contains("at least 0.001"),
            "{e}"
        );
        for ok in ["0.001", "0.5", "5000", "1e12"] {
            let r = parse(&["--station", "s", "--output", "-", "--rate", ok])
                .unwrap()
                .into_request(now())
                .unwrap();
            assert_eq!(r.rate, Some(ok.parse().unwrap()));
        }
        for bad in ["0", "1000001", "x"] {
            let e = parse(&["--station", "s", "--nats", "n", "--max-inflight", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("1000000"), "{bad}: {e}");
        }

        // Arguments built in code get the same checks.
        let mut a = parse(&["--station", "s", "--nats", "n"]).unwrap();
        a.rate = Some(1e-300);
        let e = a.clone().into_request(now()).unwrap_err().to_string();
        assert!(e.contains("--rate") && e.contains("at least"), "{e}");
        a.rate = None;
        a.max_inflight = 0;
        let e = a.into_request(now()).unwrap_err().to_string();
        assert!(e.contains("--max-inflight 0"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let a = parse(&[
            "--station",
            "s",
            "--nats",
            "nats://u:hunter2@h:4222",
            "--nats-token",
            "tok-secret",
        ])
        .unwrap();
        let dbg = format!("{a:?}");
        assert!(
            !dbg.contains("tok-secret") && !dbg.contains("hunter2"),
            "{dbg}"
        );
        let dbg = format!("{:?}", a.into_request(now()).unwrap());
        assert!(
            !dbg.contains("tok-secret") && !dbg.contains("hunter2"),
            "{dbg}"
        );
        assert_eq!(
            redact_url("nats://u:hunter2@h:4222"),
            "nats://<credentials>@h:4222"
        );
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("tok@h:4222"), "<credentials>@h:4222");
        assert_eq!(
            redact_url("nats://a:b@h1:1,nats://c:d@h2:2"),
            "nats://<credentials>@h1:1,nats://<credentials>@h2:2"
        );
    }
}
