//! The `strata restore` command line and its conversion into a library
//! [`Request`]: the flags, what clap checks while parsing, and the rules that
//! only exist because of how the flags are spelled (`--subject` needs
//! `--nats`, `--force` needs `--output`, `-` means standard output). The
//! checks a request needs wherever it comes from are [`Request::validate`]'s.

use std::path::PathBuf;

use strata::config::Secret;
use strata::message::{Seq, SeqError, StationName};
use strata::nats::NatsUrl;
use strata::restore::request::{
    check_max_inflight, check_rate, DEFAULT_MAX_INFLIGHT, MAX_INFLIGHT,
};
use strata::restore::{NatsTarget, Range, Request, RequestError, Target, TimeBound};

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
pub(crate) struct RestoreArgs {
    /// The station (stream) whose archive to read.
    #[arg(long, value_name = "STATION", value_parser = parse_station)]
    pub(crate) station: StationName,

    /// Oldest message timestamp to restore (inclusive): RFC 3339
    /// (`2026-11-24T10:00:00Z`) or relative to now (`-2h`, `-30m`, `-7d`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub(crate) from: Option<String>,

    /// Newest message timestamp to restore (inclusive): RFC 3339 or relative (`-1h`, `now`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub(crate) to: Option<String>,

    /// Lowest station sequence to restore (inclusive).
    #[arg(long, value_name = "N")]
    pub(crate) from_seq: Option<u64>,

    /// Highest station sequence to restore (inclusive).
    #[arg(long, value_name = "N")]
    pub(crate) to_seq: Option<u64>,

    /// Publish to this NATS server's JetStream (`nats://host:4222`).
    #[arg(long, value_name = "URL", value_parser = parse_nats_url)]
    pub(crate) nats: Option<NatsUrl>,

    /// Publish every message on this subject instead of its archived one.
    #[arg(long, value_name = "SUBJECT")]
    pub(crate) subject: Option<String>,

    /// NATS token (or env `STRATA_NATS_TOKEN`).
    #[arg(long, value_name = "TOKEN", env = "STRATA_NATS_TOKEN", hide_env_values = true,
          value_parser = parse_secret)]
    pub(crate) nats_token: Option<Secret>,

    /// NATS user name (with `--nats-password`).
    #[arg(long, value_name = "USER")]
    pub(crate) nats_user: Option<String>,

    /// NATS password (or env `STRATA_NATS_PASSWORD`).
    #[arg(long, value_name = "PASSWORD", env = "STRATA_NATS_PASSWORD", hide_env_values = true,
          value_parser = parse_secret)]
    pub(crate) nats_password: Option<Secret>,

    /// NATS credentials file (JWT + NKey seed).
    #[arg(long, value_name = "FILE")]
    pub(crate) nats_creds: Option<PathBuf>,

    /// Most JetStream publish acknowledgements outstanding at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_INFLIGHT,
          value_parser = parse_max_inflight)]
    pub(crate) max_inflight: usize,

    /// Publish at most this many messages per second.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,

    /// Write NDJSON to FILE, or to standard output with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub(crate) output: Option<PathBuf>,

    /// Record progress in FILE and resume after it when it exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) checkpoint: Option<PathBuf>,

    /// Overwrite the `--output` FILE when it already exists.
    #[arg(long)]
    pub(crate) force: bool,

    /// No progress bar and no summary.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// Why the flags do not make a request. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArgsError {
    /// A value the library refuses (a time flag that is not a time).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A seq flag is out of range.
    #[error("{flag}: {source}")]
    Seq {
        /// `--from-seq` or `--to-seq`.
        flag: &'static str,
        /// What is wrong with it.
        source: SeqError,
    },
    /// A NATS flag without `--nats`.
    #[error("{flag} only applies with --nats URL: drop it or publish to NATS")]
    NatsOnly {
        /// The flag.
        flag: &'static str,
    },
    /// `--force` without `--output`.
    #[error("--force only applies with --output FILE: drop it or write NDJSON")]
    ForceWithoutOutput,
    /// One of `--nats-user` and `--nats-password` without the other.
    #[error("--nats-user and --nats-password (or STRATA_NATS_PASSWORD) go together")]
    UserWithoutPassword,
    /// Neither or both of `--nats` and `--output` (clap's group prevents it).
    #[error("give exactly one target: --nats URL or --output FILE (or - for stdout)")]
    OneTarget,
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
    check_rate(rate).map_err(|e| e.to_string())
}

fn parse_max_inflight(s: &str) -> Result<usize, String> {
    let n = s.trim().parse::<usize>().map_err(|_| {
        format!("{s:?} is not a count: give 1 to {MAX_INFLIGHT} unacknowledged publishes")
    })?;
    check_max_inflight(n).map_err(|e| e.to_string())
}

fn time(flag: &'static str, text: Option<&str>) -> Result<Option<TimeBound>, ArgsError> {
    text.map(|t| TimeBound::parse(t).map_err(|source| RequestError::Time { flag, source }))
        .transpose()
        .map_err(ArgsError::from)
}

fn seq(flag: &'static str, n: Option<u64>) -> Result<Option<Seq>, ArgsError> {
    n.map(|n| Seq::new(n).map_err(|source| ArgsError::Seq { flag, source }))
        .transpose()
}

impl RestoreArgs {
    /// The request these flags ask for. The values clap cannot check alone
    /// (bounds in order, the subject) are checked by [`Request::validate`]
    /// when the restore runs.
    ///
    /// # Errors
    /// [`ArgsError`] saying which flag is wrong and what it should look like.
    pub(crate) fn into_request(self) -> Result<Request, ArgsError> {
        let range = Range {
            from: time("--from", self.from.as_deref())?,
            to: time("--to", self.to.as_deref())?,
            from_seq: seq("--from-seq", self.from_seq)?,
            to_seq: seq("--to-seq", self.to_seq)?,
        };
        if self.nats.is_none() {
            let nats_only = [
                ("--subject", self.subject.is_some()),
                ("--nats-user", self.nats_user.is_some()),
                ("--nats-creds", self.nats_creds.is_some()),
            ];
            if let Some((flag, _)) = nats_only.iter().find(|(_, given)| *given) {
                return Err(ArgsError::NatsOnly { flag });
            }
        }
        if self.force && self.output.is_none() {
            return Err(ArgsError::ForceWithoutOutput);
        }
        if self.nats.is_some() && self.nats_user.is_some() != self.nats_password.is_some() {
            return Err(ArgsError::UserWithoutPassword);
        }
        let target = match (self.nats, self.output) {
            (Some(url), None) => Target::Nats(NatsTarget {
                url,
                subject: self.subject,
                token: self.nats_token,
                user_password: self.nats_user.zip(self.nats_password),
                creds: self.nats_creds,
                max_inflight: self.max_inflight,
            }),
            (None, Some(path)) if path.as_os_str() == "-" => Target::Stdout,
            (None, Some(path)) => Target::File {
                path,
                overwrite: self.force,
            },
            _ => return Err(ArgsError::OneTarget),
        };
        Ok(Request {
            station: self.station,
            range,
            target,
            rate: self.rate,
            checkpoint: self.checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
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

    /// The flags' request, or the message `strata restore` would stop with.
    fn request(args: &[&str]) -> Result<Request, String> {
        parse(args)
            .unwrap()
            .into_request()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn relative_from_is_accepted_by_the_parser() {
        let r = request(&[
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
        assert_eq!(r.target, Target::Stdout);
        assert_eq!(r.range.from.as_ref().map(TimeBound::as_str), Some("-2h"));
        let sel = r.validate(now()).unwrap();
        assert_eq!(
            sel.from_ts.unwrap().to_rfc3339(),
            "2026-11-24T10:00:00.000000Z"
        );
        assert_eq!(
            sel.to_ts.unwrap().to_rfc3339(),
            "2026-11-24T11:00:00.000000Z"
        );
    }

    #[test]
    fn bad_times_and_seqs_name_their_flag() {
        let e = request(&["--station", "s", "--output", "-", "--from", "yesterday"]).unwrap_err();
        assert!(e.starts_with("--from: \"yesterday\" is not a time"), "{e}");
        let e = request(&["--station", "s", "--output", "-", "--to", "-2x"]).unwrap_err();
        assert!(e.starts_with("--to: ") && e.contains("-2h"), "{e}");
        let e = request(&[
            "--station",
            "s",
            "--output",
            "-",
            "--to-seq",
            "9223372036854775808",
        ])
        .unwrap_err();
        assert!(e.starts_with("--to-seq: "), "{e}");
    }

    #[test]
    fn exactly_one_target() {
        assert!(parse(&["--station", "s"]).is_err());
        assert!(parse(&["--station", "s", "--nats", "nats://x", "--output", "-"]).is_err());
        let a = parse(&["--station", "s", "--nats", "nats://x"]).unwrap();
        assert_eq!(a.max_inflight, DEFAULT_MAX_INFLIGHT);
        assert!(matches!(
            a.into_request().unwrap().target,
            Target::Nats(NatsTarget {
                max_inflight: 256,
                ..
            })
        ));
        assert!(matches!(
            request(&["--station", "s", "--output", "out.ndjson"])
                .unwrap()
                .target,
            Target::File {
                overwrite: false,
                ..
            }
        ));
        // --subject only means something for NATS.
        let e = request(&["--station", "s", "--output", "-", "--subject", "a"]).unwrap_err();
        assert!(e.contains("--subject only applies with --nats"), "{e}");
        let e = request(&["--station", "s", "--nats", "n", "--nats-user", "u"]).unwrap_err();
        assert!(e.contains("go together"), "{e}");
        // --force only means something for a file.
        let e = request(&["--station", "s", "--nats", "n", "--force"]).unwrap_err();
        assert!(e.contains("--force only applies with --output"), "{e}");
        let r = request(&["--station", "s", "--output", "f", "--force"]).unwrap();
        assert_eq!(
            r.target,
            Target::File {
                path: "f".into(),
                overwrite: true
            }
        );
    }

    #[test]
    fn refuses_bad_values_with_guidance() {
        assert!(parse(&["--station", "a/b", "--output", "-"]).is_err());
        assert!(parse(&["--station", "s", "--output", "-", "--rate", "0"]).is_err());
        assert!(parse(&["--station", "s", "--nats", "n", "--max-inflight", "0"]).is_err());
        let validate = |args: &[&str]| {
            request(args)
                .unwrap()
                .validate(now())
                .unwrap_err()
                .to_string()
        };
        let e = validate(&[
            "--station",
            "s",
            "--output",
            "-",
            "--from-seq",
            "9",
            "--to-seq",
            "3",
        ]);
        assert!(e.contains("swap"), "{e}");
        let e = validate(&[
            "--station",
            "s",
            "--output",
            "-",
            "--from",
            "-1h",
            "--to",
            "-2h",
        ]);
        assert!(e.contains("after --to"), "{e}");
        let e = validate(&["--station", "s", "--nats", "n", "--subject", "a.*"]);
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
            let r = request(&["--station", "s", "--output", "-", "--rate", ok]).unwrap();
            assert_eq!(r.rate, Some(ok.parse().unwrap()));
        }
        for bad in ["0", "1000001", "x"] {
            let e = parse(&["--station", "s", "--nats", "n", "--max-inflight", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains("1000000"), "{bad}: {e}");
        }
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
        let dbg = format!("{:?}", a.into_request().unwrap());
        assert!(
            !dbg.contains("tok-secret") && !dbg.contains("hunter2"),
            "{dbg}"
        );
    }
}
