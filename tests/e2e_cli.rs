//! End to end: what a newcomer meets on the command line. A session with no
//! config file, driven by `--wal-dir` and `--archive`; one-shot commands that
//! print only their result; `strata flush` printing the same report whether it
//! flushes itself or asks a running `strata run`; `restore --output` refusing to
//! overwrite; `storage check` without S3 credentials; and nanosecond timestamps
//! kept to the microsecond through the archive and back.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{conf::*, python::*, strata::*, *};

/// Lines with nanosecond timestamps (one line repeats seq 2).
const LINES: &str = concat!(
    r#"{"seq":1,"timestamp":"2026-11-24T10:00:00.123456789Z","payload":"a"}"#,
    "\n",
    r#"{"seq":2,"timestamp":"2026-11-24T12:00:00.000000999+02:00","payload":"b"}"#,
    "\n",
    r#"{"seq":2,"timestamp":"2026-11-24T10:00:00.5Z","payload":"b again"}"#,
    "\n",
    r#"{"seq":3,"timestamp":"2026-11-24T10:59:59.9999999Z","payload":"c"}"#,
    "\n",
);

/// The timestamps Strata stores for [`LINES`]: cut to the microsecond.
const STORED: [&str; 3] = [
    "2026-11-24T10:00:00.123456Z",
    "2026-11-24T10:00:00.000000Z",
    "2026-11-24T10:59:59.999999Z",
];

/// Runs `strata ARGS` in `dir` with the default logging (no `RUST_LOG`) and
/// without S3 credentials in the environment.
fn strata_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).env_remove("RUST_LOG");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "STRATA_ACCESS_KEY_ID",
        "STRATA_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ] {
        cmd.env_remove(var);
    }
    run_command(cmd, stdin, Duration::from_secs(120))
}

/// The one JSON object a command printed.
#[track_caller]
fn one_json(out: &Out) -> Value {
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one JSON line:\n{out}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn report_rows(report: &Value) -> u64 {
    report["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .flat_map(|s| s["files"].as_array().expect("files"))
        .map(|f| f["rows"].as_u64().expect("rows"))
        .sum()
}

/// Every key path of a JSON value (`segments[].files[].rows`), to compare shapes.
fn shape(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = format!("{at}.{k}");
                out.insert(path.clone());
                shape(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn a_session_without_a_config_file_driven_by_flags() {
    let dir = tempdir();
    let cwd = dir.path();

    // ingest --wal-dir, then flush --wal-dir: the same WAL, no strata.toml anywhere.
    let out = strata_in(
        cwd,
        &["ingest", "--station", "orders", "--wal-dir", "./w", "-"],
        Some(LINES.as_bytes()),
    )
    .ok();
    assert!(
        out.stdout.contains("appended 3 messages") && out.stdout.contains("1 duplicates"),
        "{out}"
    );
    // Quiet by default: no "using the built-in defaults" line, nothing on stderr.
    assert_eq!(out.stderr, "", "a one-shot command logged:\n{out}");

    let out = strata_in(
        cwd,
        &["flush", "--wal-dir", "./w", "--archive", "file://./a"],
        None,
    )
    .ok();
    assert_eq!(out.stderr, "", "{out}");
    // Not a terminal: one JSON object, the report of POST /v1/flush.
    let report = one_json(&out);
    assert_eq!(report_rows(&report), 3, "{out}");
    assert!(cwd.join("a/station=orders").is_dir(), "{out}");
    assert!(
        !cwd.join("data").exists(),
        "the built-in ./data paths were used"
    );

    let again = strata_in(cwd, &["flush", "--wal-dir", "./w", "--json"], None).ok();
    assert_eq!(report_rows(&one_json(&again)), 0, "{again}");

    let ls = strata_in(cwd, &["ls", "--archive", "file://./a"], None).ok();
    assert!(ls.stdout.contains("orders"), "{ls}");
    let inspect = strata_in(cwd, &["wal", "inspect", "--wal-dir", "./w"], None).ok();
    assert_eq!(inspect.stderr, "", "{inspect}");

    // -v brings the informational lines back.
    let verbose = strata_in(cwd, &["ls", "-v", "--archive", "file://./a"], None).ok();
    assert!(
        verbose.stderr.contains("built-in defaults"),
        "-v should log the configuration source:\n{verbose}"
    );

    // restore --output FILE writes microseconds, and will not overwrite without --force.
    let restore = [
        "restore",
        "--archive",
        "file://./a",
        "--station",
        "orders",
        "--output",
        "out.ndjson",
        "--quiet",
    ];
    strata_in(cwd, &restore, None).ok();
    let written = std::fs::read_to_string(cwd.join("out.ndjson")).expect("output");
    let stamps: Vec<String> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["timestamp"].to_string())
        .collect();
    let want: Vec<String> = STORED.iter().map(|s| format!("{s:?}")).collect();
    assert_eq!(stamps, want, "{written}");

    std::fs::write(cwd.join("out.ndjson"), "precious\n").expect("write");
    let refused = strata_in(cwd, &restore, None).failed();
    assert!(
        refused.stderr.contains("already exists") && refused.stderr.contains("--force"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(cwd.join("out.ndjson")).expect("read"),
        "precious\n"
    );
    let mut forced = restore.to_vec();
    forced.push("--force");
    strata_in(cwd, &forced, None).ok();
    assert_eq!(
        std::fs::read_to_string(cwd.join("out.ndjson")).expect("read"),
        written
    );

    // A bad --archive is the flag's error, naming the forms.
    let bad = strata_in(cwd, &["ls", "--archive", "gs://b"], None).failed();
    assert!(
        bad.stderr.contains("--archive") && bad.stderr.contains("s3://"),
        "{bad}"
    );
}

#[tokio::test]
async fn flush_prints_the_same_report_whether_it_runs_alone_or_asks_strata_run() {
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    conf.http = Some(HttpConf::free(Some("t0ken")));
    let config = conf.write(&dir.path().join("strata.toml"));
    let config_arg = config.display().to_string();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");

    // Alone: nobody owns the WAL.
    let cwd = dir.path().to_path_buf();
    let c = config_arg.clone();
    blocking(move || {
        strata_in(
            &cwd,
            &["ingest", "--station", "s", "--config", &c, "-"],
            Some(LINES.as_bytes()),
        )
        .ok()
    })
    .await;
    let cwd = dir.path().to_path_buf();
    let c = config_arg.clone();
    let alone = blocking(move || strata_in(&cwd, &["flush", "--config", &c], None).ok()).await;
    let alone_report = one_json(&alone);
    assert_eq!(report_rows(&alone_report), 3, "{alone}");

    // Through the running process: it owns the WAL, flush asks it over HTTP.
    let http = conf.http.clone().expect("http");
    let mut run = StrataRun::spawn(&config, &http, &[], &logs);
    run.ready().await;
    // New sequences (11, 12, 12, 13): the first ones are archived already.
    let body = LINES.replace("\"seq\":", "\"seq\":1");
    let resp = post_messages(&http_client(), &http, "s", body, Some("t0ken")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let cwd = dir.path().to_path_buf();
    let c = config_arg.clone();
    let remote = blocking(move || strata_in(&cwd, &["flush", "--config", &c], None).ok()).await;
    let remote_report = one_json(&remote);
    assert_eq!(report_rows(&remote_report), 3, "{remote}\n{}", run.logs());
    // Quiet here too: that a running process did it is an info line (-v).
    assert_eq!(remote.stderr, "", "{remote}");

    let (mut a, mut r) = (BTreeSet::new(), BTreeSet::new());
    shape(&alone_report, "", &mut a);
    shape(&remote_report, "", &mut r);
    assert_eq!(a, r, "the two reports differ in shape");
    assert!(a.contains(".segments[].files[].rows"), "{a:?}");
    run.terminate().await;
}

#[test]
fn storage_check_without_s3_credentials_says_so_at_once() {
    let dir = tempdir();
    let started = Instant::now();
    let out = strata_in(
        dir.path(),
        &[
            "storage",
            "check",
            "--archive",
            "s3://strata-no-credentials/p",
        ],
        None,
    )
    .failed();
    let took = started.elapsed();
    let text = out.text();
    for words in [
        "no S3 credentials found",
        "[storage] access_key_id",
        "STRATA_ACCESS_KEY_ID",
        "AWS_ACCESS_KEY_ID",
        "instance profile",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{out}");
    }
    // Not minutes of retries against an instance metadata service that is not there.
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{out}");
}

#[test]
fn nanosecond_timestamps_are_archived_as_microseconds() {
    need!(python());
    let dir = tempdir();
    let cwd = dir.path();
    strata_in(
        cwd,
        &["ingest", "--station", "t", "--wal-dir", "w", "-"],
        Some(LINES.as_bytes()),
    )
    .ok();
    strata_in(
        cwd,
        &["flush", "--wal-dir", "w", "--archive", "file://./a"],
        None,
    )
    .ok();
    // DuckDB and pyarrow read Timestamp(microsecond, UTC) and agree on every row.
    let read = read_archive_checked(&cwd.join("a"));
    let got: Vec<i64> = read.station("t").iter().map(|r| r.timestamp_us).collect();
    let want: Vec<i64> = STORED
        .iter()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("RFC 3339")
                .timestamp_micros()
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_systemd_unit_is_valid_and_runs_strata_with_real_flags() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/strata.service");
    let unit = std::fs::read_to_string(&unit_path).expect("deploy/strata.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/strata"), "{exec}");
    let args: Vec<&str> = words.collect();
    assert_eq!(args.first(), Some(&"run"), "{exec}");
    // `--help` after the unit's arguments: clap parses them all first, so a
    // flag strata does not have fails here.
    let mut with_help = args.clone();
    with_help.push("--help");
    strata(&with_help).ok();
    for key in [
        "Restart=on-failure",
        "StateDirectory=strata",
        "User=strata",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == key), "{key} missing");
    }

    // systemd's own check, with the unit pointed at the binary under test.
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
        return;
    };
    let dir = tempdir();
    let copy = dir.path().join("strata.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/strata", BIN)).expect("write unit");
    let mut cmd = Command::new(analyze);
    cmd.arg("verify").arg(&copy);
    let out = run_command(cmd, None, Duration::from_secs(60));
    let text = out.text();
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("strata.service"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze verify:\n{out}");
}
