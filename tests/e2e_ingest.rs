//! End to end: `strata ingest` of an NDJSON file → `wal inspect` → `flush` to a
//! local folder and to an S3-compatible server → DuckDB and pyarrow read the
//! archive back row for row; bad lines, `ls`, `storage check`.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::{conf::*, msg::*, python::*, strata::*, *};

const STATION: &str = "orders";

/// The fixture's messages, sorted by seq.
fn fixture_messages() -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture("orders.ndjson")).expect("read fixture");
    let mut msgs = parse_ndjson(&text);
    msgs.sort_by_key(|m| m.seq);
    msgs
}

/// (date, hour) → rows, from the messages' UTC timestamps.
fn expected_partitions(msgs: &[Expected]) -> BTreeMap<(String, String), u64> {
    let mut parts = BTreeMap::new();
    for m in msgs {
        let t = chrono::DateTime::from_timestamp_micros(m.timestamp_us).expect("in range");
        *parts
            .entry((t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()))
            .or_insert(0) += 1;
    }
    parts
}

#[track_caller]
fn assert_partitions(read: &ArchiveRead, msgs: &[Expected]) {
    let got: BTreeMap<(String, String), u64> = read.summary["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            assert_eq!(p[0], STATION);
            (
                (
                    p[1].as_str().expect("date").to_string(),
                    p[2].as_str().expect("hour").to_string(),
                ),
                p[3].as_u64().expect("rows"),
            )
        })
        .collect();
    assert_eq!(got, expected_partitions(msgs), "partitions");
}

/// `strata ls` names every (date, hour) partition of the station.
#[track_caller]
fn assert_ls_lists_partitions(config: &Path, msgs: &[Expected]) {
    let out = strata(args!["ls", "--station", STATION, "--config", config]).ok();
    let text = out.stdout.clone();
    for (date, hour) in expected_partitions(msgs).keys() {
        let hive = format!("date={date}/hour={hour}");
        let listed = text.contains(&hive)
            || text.lines().any(|l| {
                l.contains(date.as_str())
                    && (l.contains(&format!("hour={hour}"))
                        || l.contains(&format!("{date}T{hour}"))
                        || l.contains(&format!("{date} {hour}"))
                        || l.replace(date.as_str(), "").contains(&format!(" {hour}")))
            });
        assert!(listed, "strata ls does not list partition {hive}:\n{out}");
    }
    let all = strata(args!["ls", "--config", config]).ok();
    assert!(
        all.stdout.contains(STATION),
        "strata ls without --station does not name station {STATION}:\n{all}"
    );
}

#[test]
fn ingest_wal_inspect_flush_local_folder_then_query() {
    need!(python());
    let dir = tempdir();
    let conf = Conf::local(dir.path());
    let config = conf.write(&dir.path().join("strata.toml"));
    let archive = match &conf.storage {
        Storage::File(p) => p.clone(),
        Storage::S3 { .. } => unreachable!("local config"),
    };
    let msgs = fixture_messages();
    assert_eq!(msgs.len(), 200, "fixture size");

    let out = strata(args![
        "ingest",
        "--station",
        STATION,
        "--config",
        config,
        fixture("orders.ndjson")
    ])
    .ok();
    assert!(
        has_number(&out.text(), 200),
        "ingest should report 200 messages:\n{out}"
    );

    let inspect = strata(args!["wal", "inspect", "--config", config]).ok();
    assert!(
        inspect.text().contains(STATION) && has_number(&inspect.text(), 200),
        "wal inspect should show 200 messages of {STATION}:\n{inspect}"
    );

    strata(args!["storage", "check", "--config", config]).ok();
    strata(args!["flush", "--config", config]).ok();

    let read = read_archive_checked(&archive);
    assert_rows_match(&read.station(STATION), &msgs);
    assert_partitions(&read, &msgs);
    assert_eq!(
        read.summary["commits"]["rows"], 200,
        "commit records should account for every row: {}",
        read.summary
    );
    assert_ls_lists_partitions(&config, &msgs);

    // The same file again: every (station, seq) is already archived, so the
    // archive must not grow, whatever the WAL remembers.
    strata(args![
        "ingest",
        "--station",
        STATION,
        "--config",
        config,
        fixture("orders.ndjson")
    ])
    .ok();
    strata(args!["flush", "--config", config]).ok();
    let again = read_archive_checked(&archive);
    assert_eq!(again.count(), 200, "re-ingesting duplicated rows");
    assert_eq!(again.summary["digest"], read.summary["digest"]);
}

#[test]
fn ingest_from_stdin_flush_to_s3_then_query() {
    need!(python());
    let endpoint = need!(s3::endpoint());
    let dir = tempdir();
    let bucket = s3::unique_bucket("strata-e2e");
    s3::create_bucket(&endpoint, &bucket);
    let prefix = "archive/e2e";
    let mut conf = Conf::local(dir.path());
    conf.storage = Storage::S3 {
        endpoint: endpoint.clone(),
        bucket: bucket.clone(),
        prefix: prefix.into(),
    };
    let config = conf.write(&dir.path().join("strata.toml"));
    let msgs = fixture_messages();

    strata(args!["storage", "check", "--config", config]).ok();

    let body = std::fs::read(fixture("orders.ndjson")).expect("fixture");
    let out = strata_with(
        args!["ingest", "--station", STATION, "--config", config, "-"],
        Some(&body),
        std::time::Duration::from_secs(120),
    )
    .ok();
    assert!(
        has_number(&out.text(), 200),
        "ingest should report 200:\n{out}"
    );
    strata(args!["flush", "--config", config]).ok();

    let mirror = dir.path().join("mirror");
    let keys = s3::download(&endpoint, &bucket, prefix, &mirror);
    for k in &keys {
        assert!(
            k.starts_with(&format!("{prefix}/station={STATION}/date="))
                || k.starts_with(&format!("{prefix}/_strata/")),
            "object {k} is outside the documented layout"
        );
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}/_strata/commits/"))),
        "no commit record under {prefix}/_strata/commits/: {keys:?}"
    );
    let read = read_archive_checked(&mirror);
    assert_rows_match(&read.station(STATION), &msgs);
    assert_partitions(&read, &msgs);
    assert_ls_lists_partitions(&config, &msgs);

    // A bucket that does not exist: storage check fails and says which.
    let missing = format!("{bucket}-missing");
    let mut wrong = conf.clone();
    wrong.storage = Storage::S3 {
        endpoint,
        bucket: missing.clone(),
        prefix: prefix.into(),
    };
    let wrong_config = wrong.write(&dir.path().join("wrong.toml"));
    let out = strata(args!["storage", "check", "--config", wrong_config]).failed();
    assert!(
        out.text().contains(&missing),
        "storage check should name the missing bucket {missing}:\n{out}"
    );
    assert!(
        !out.text().contains("strata-test-secret"),
        "storage check printed the secret key:\n{out}"
    );
}

#[test]
fn ingest_wal_dir_flag_without_config() {
    let dir = tempdir();
    let wal = dir.path().join("wal");
    let out = strata(args![
        "ingest",
        "--station",
        STATION,
        "--wal-dir",
        wal,
        fixture("orders.ndjson")
    ])
    .ok();
    assert!(has_number(&out.text(), 200), "{out}");
    let inspect = strata(args!["wal", "inspect", "--wal-dir", wal]).ok();
    assert!(
        inspect.text().contains(STATION) && has_number(&inspect.text(), 200),
        "{inspect}"
    );
}

/// Writes 4 good lines, `bad` as line 5, then 2 more good lines.
fn file_with_bad_line(dir: &Path, bad: &str) -> std::path::PathBuf {
    let msgs = fixture_messages();
    let mut text = String::new();
    for m in &msgs[..4] {
        text += &ndjson_line(m, true, true);
        text.push('\n');
    }
    text += bad;
    text.push('\n');
    for m in &msgs[5..7] {
        text += &ndjson_line(m, true, true);
        text.push('\n');
    }
    let path = dir.join("bad.ndjson");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_bad_line_stops_ingest_naming_line_and_field_and_keeps_earlier_lines() {
    need!(python());
    let cases = [
        (
            "bad station",
            r#"{"station":"bad/station","seq":5,"timestamp":"2026-11-24T21:10:00Z","payload":"x"}"#,
            "station",
        ),
        (
            "bad base64",
            r#"{"station":"orders","seq":5,"timestamp":"2026-11-24T21:10:00Z","payload_base64":"***not base64***"}"#,
            "payload_base64",
        ),
        (
            "bad timestamp",
            r#"{"station":"orders","seq":5,"timestamp":"yesterday","payload":"x"}"#,
            "timestamp",
        ),
        (
            "invalid JSON",
            r#"{"station":"orders","seq":5,"timestamp":"#,
            "json",
        ),
    ];
    let expected: Vec<Expected> = fixture_messages().into_iter().take(4).collect();
    for (what, bad, field) in cases {
        let dir = tempdir();
        let conf = Conf::local(dir.path());
        let config = conf.write(&dir.path().join("strata.toml"));
        let file = file_with_bad_line(dir.path(), bad);
        let out = strata(args![
            "ingest",
            "--station",
            STATION,
            "--config",
            config,
            file
        ])
        .failed();
        let text = out.text().to_lowercase();
        assert!(
            text.contains("line 5"),
            "{what}: the error should name line 5:\n{out}"
        );
        assert!(
            text.contains(field),
            "{what}: the error should name field {field}:\n{out}"
        );
        assert!(
            has_number(&text, 4),
            "{what}: ingest should report the 4 messages appended before the bad line:\n{out}"
        );
        strata(args!["flush", "--config", config]).ok();
        let archive = dir.path().join("archive");
        let read = read_archive_checked(&archive);
        assert_rows_match(&read.station(STATION), &expected);
    }
}
