//! End to end, through the real binary and a real nats-server: `GET /v1/status`
//! reports every station `strata run` archives (WAL, uploads, identity figures,
//! owner) behind the token; the status page, loaded by a real headless
//! Chromium, shows the same numbers; and the Grafana dashboard and alert rules
//! in `deploy/` name only metrics `/metrics` exports.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{conf::*, msg::*, nats::*, python::*, strata::*, *};

const CATCH_UP: Duration = Duration::from_secs(120);
const TOKEN: &str = "status-e2e-token";

/// `GET base + path` with the bearer token when given: (status, body).
async fn get(http: &HttpConf, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http_client().get(format!("{}{path}", http.base()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn status(http: &HttpConf) -> Value {
    let (code, body) = get(http, "/v1/status", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn station<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .find(|s| s["station"] == name)
        .unwrap_or_else(|| panic!("no station {name} in {status}"))
}

/// A running archiver of a fresh stream holding `n` archived test messages
/// (flushed, so the WAL is empty and the figures stay put).
async fn archiver_with_messages(dir: &Path, url: &str, n: u64) -> (StrataRun, HttpConf, String) {
    let stream = unique("e2e_status");
    let js = jetstream(url).await;
    create_stream(&js, &stream, None).await;
    let (conf, config) = archiver_config(dir, url, &stream, TOKEN);
    let mut run = start_archiver(dir, &conf, &config, &js, &stream).await;
    let msgs: Vec<Pub> = (1..=n).map(|i| test_message(&stream, i)).collect();
    publish(&js, &msgs).await;
    wait_consumer_caught_up(&js, &stream, ARCHIVER_CONSUMER, n, CATCH_UP, Some(&mut run)).await;
    let http = conf.http.clone().expect("[http]");
    (run, http, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_station_with_its_wal_uploads_and_identity() {
    let url = need!(nats::url());
    let _serial = serial_async().await;
    let dir = tempdir();
    let (mut run, http, stream) = archiver_with_messages(dir.path(), &url, 40).await;

    // The token is required, as a header or a query parameter.
    assert_eq!(get(&http, "/v1/status", None).await.0, 401);
    assert_eq!(get(&http, "/v1/status", Some("wrong")).await.0, 401);
    assert_eq!(get(&http, "/v1/status?token=wrong", None).await.0, 401);
    let (code, body) = get(&http, &format!("/v1/status?token={TOKEN}"), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(&http, "/", None).await.0, 401);

    // Before any upload: the messages are in the WAL.
    let web = post_messages(
        &http_client(),
        &http,
        "web",
        "{\"payload\":\"abc\"}\n{\"payload\":\"de\"}\n".to_string(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(web.status, 200, "{}", web.body);
    let before = status(&http).await;
    let s = station(&before, &stream);
    assert_eq!(s["source"], "nats");
    assert_eq!(s["ingested_messages"], 40);
    assert_eq!(
        s["wal_messages"].as_u64().unwrap() + s["archived_messages"].as_u64().unwrap(),
        40,
        "every message is in the WAL or archived: {s}"
    );
    let w = station(&before, "web");
    assert_eq!(w["source"], "http");
    // Unless the segment rolled and was uploaded in between (60 s after the first write).
    if w["archived_messages"] == 0 {
        assert_eq!(
            (w["wal_messages"].as_u64(), w["wal_bytes"].as_u64()),
            (Some(2), Some(5)),
            "{w}"
        );
    }
    assert!(w["archive_lag_seconds"].as_f64().unwrap() >= 0.0);
    assert!(w["expel_risk"].is_null(), "{w}");
    let owner = before["owner"].as_str().unwrap();
    assert!(
        owner.ends_with(&format!(":{}", run.pid())),
        "owner {owner} names this process"
    );
    assert_eq!(s["owner"], owner);
    assert!(before["wal"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(before["wal"]["per_station_complete"], true);

    // After a flush: nothing in the WAL, everything archived, an upload time.
    let (code, body) = {
        let resp = http_client()
            .post(format!("{}/v1/flush", http.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("flush");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    };
    assert_eq!(code, 200, "{body}");
    let after = status(&http).await;
    let s = station(&after, &stream);
    assert_eq!(s["wal_messages"], 0, "{s}");
    assert_eq!(s["wal_bytes"], 0);
    assert_eq!(s["archive_lag_seconds"], 0.0);
    assert_eq!(s["archived_messages"], 40);
    let last = s["last_upload"].as_str().expect("last_upload");
    assert!(last.ends_with('Z'), "{last}");
    assert!(s["last_upload_age_seconds"].as_f64().unwrap() < 60.0);
    // The identity figures are those of /metrics, once the NATS source has
    // reported on the station (its expel risk, every 2 s).
    let risk = format!("strata_expel_risk{{station=\"{stream}\"}} ");
    let mut metrics = run.metrics().await;
    for _ in 0..100 {
        if metrics.contains(&risk) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = run.metrics().await;
    }
    let after = status(&http).await;
    let s = station(&after, &stream);
    for (field, metric) in [
        ("gap_messages", "strata_gap_messages_total"),
        ("stream_incarnations", "strata_stream_incarnations_total"),
        ("restore_echoes", "strata_restore_echoes_total"),
    ] {
        let want = format!("{metric}{{station=\"{stream}\"}} ");
        let v: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&want))
            .unwrap_or_else(|| panic!("no {want} in /metrics"))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(s[field].as_f64(), Some(v), "{field}");
    }
    assert!((0.0..=1.0).contains(&s["expel_risk"].as_f64().expect("expel_risk")));
    assert_eq!(station(&after, "web")["archived_messages"], 2);
    run.terminate().await;
}

/// Chromium from `$STRATA_TEST_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STRATA_TEST_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser"] {
        if let Ok(path) = which(name) {
            return Ok(path);
        }
    }
    Err("no chromium (scripts/test.sh installs Debian's chromium)".to_string())
}

/// The page as a headless Chromium renders it. The virtual time budget (5 s)
/// stays below the page's refresh (10 s): a dump taken while the refresh
/// navigates is empty. Tried three times all the same, as a busy machine can
/// still get an empty dump.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let mut last = None;
    for _ in 0..3 {
        let profile = tempdir();
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url]);
        let out = run_command(cmd, None, Duration::from_secs(120));
        if out.status.success() && out.stdout.contains("</html>") {
            return out.stdout;
        }
        last = Some(out);
    }
    panic!("chromium rendered no page:\n{}", last.expect("tried"));
}

/// `data-value` of the cell `data-field="field"` in the row of `station`.
fn cell(dom: &str, station: &str, field: &str) -> String {
    let row_start = dom
        .find(&format!("<tr data-station=\"{station}\">"))
        .unwrap_or_else(|| panic!("no row for {station} in the page:\n{dom}"));
    let row = &dom[row_start..];
    let row = &row[..row.find("</tr>").expect("row end")];
    let at = row
        .find(&format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} cell in {row}"));
    let rest = &row[at..];
    let v = &rest[rest.find("data-value=\"").expect("data-value") + 12..];
    v[..v.find('"').expect("quote")].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_shows_what_v1_status_reports() {
    let url = need!(nats::url());
    let chromium = need!(chromium());
    let _serial = serial_async().await;
    let dir = tempdir();
    let (mut run, http, stream) = archiver_with_messages(dir.path(), &url, 25).await;
    let resp = http_client()
        .post(format!("{}/v1/flush", http.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("flush");
    assert_eq!(resp.status().as_u16(), 200);

    let page_url = format!("{}/?token={TOKEN}", http.base());
    let dom = {
        let (c, u) = (chromium.clone(), page_url.clone());
        blocking(move || dump_dom(&c, &u)).await
    };
    let json = status(&http).await;
    assert!(dom.contains("<title>Strata status</title>"), "{dom}");
    assert!(!dom.contains(TOKEN), "the page never contains the token");
    let s = station(&json, &stream);
    for field in [
        "wal_messages",
        "wal_bytes",
        "archive_lag_seconds",
        "archived_messages",
        "gap_messages",
        "stream_incarnations",
        "restore_echoes",
        "expel_risk",
    ] {
        let shown: f64 = cell(&dom, &stream, field).parse().expect("a number");
        assert_eq!(
            Some(shown),
            s[field].as_f64(),
            "{field} on the page and in /v1/status"
        );
    }
    assert_eq!(s["archived_messages"], 25);
    assert_eq!(
        cell(&dom, &stream, "last_upload"),
        s["last_upload"].as_str().expect("an upload")
    );
    assert!(dom.contains(&format!(
        "<td data-field=\"owner\">{}</td>",
        s["owner"].as_str().unwrap()
    )));
    // Without the token the page is refused.
    let dom = {
        let (c, u) = (chromium.clone(), format!("{}/", http.base()));
        blocking(move || dump_dom(&c, &u)).await
    };
    assert!(!dom.contains("data-station"), "{dom}");
    assert!(dom.contains("?token=&lt;token&gt;"), "{dom}");
    run.terminate().await;
}

/// Every `strata_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("strata_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // Skip words that merely contain it (e.g. a file name `deploy/strata_x`).
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_name_only_exported_metrics() {
    let url = need!(nats::url());
    let py = need!(python());
    let _serial = serial_async().await;

    // The rules file parses, and the README shows it as it is.
    let rules = repo_file("deploy/strata-rules.yml");
    let parsed = run_command(
        {
            let mut cmd = Command::new(&py);
            cmd.args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/strata-rules.yml"));
            cmd
        },
        None,
        Duration::from_secs(60),
    );
    assert!(parsed.status.success(), "{}", parsed.text());
    let parsed: Value = serde_json::from_str(&parsed.stdout).expect("YAML as JSON");
    let mut exprs = Vec::new();
    for group in parsed["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert!(rule["alert"].is_string(), "{rule}");
            assert!(rule["annotations"]["summary"].is_string(), "{rule}");
            exprs.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() >= 3);
    let readme = repo_file("README.md");
    let body = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        readme.contains(&format!("```yaml\n{body}\n```")),
        "the README's alert rules are deploy/strata-rules.yml without its comments"
    );
    let promtool = need!(promtool());
    let out = run_command(
        {
            let mut cmd = Command::new(&promtool);
            cmd.args(["check", "rules"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/strata-rules.yml"));
            cmd
        },
        None,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "promtool check rules: {out}");
    assert!(out.text().contains("SUCCESS"), "{out}");

    // The dashboard is JSON whose panels query Prometheus.
    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana-dashboard.json")).expect("dashboard JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(q) = var["definition"].as_str() {
            queries.push(q.to_string());
        }
    }

    // What a running archiver with a NATS station exports.
    let dir = tempdir();
    let (mut run, _http, _stream) = archiver_with_messages(dir.path(), &url, 5).await;
    let metrics = run.metrics().await;
    // promtool parses and lints what a Prometheus scrape gets (its exit code
    // says whether it parsed; lint findings are printed, and there must be none).
    let checked = run_command(
        {
            let mut cmd = Command::new(&promtool);
            cmd.args(["check", "metrics"]);
            cmd
        },
        Some(metrics.as_bytes()),
        Duration::from_secs(60),
    );
    assert!(
        checked.status.success(),
        "promtool check metrics: {checked}"
    );
    assert_eq!(
        checked.text().trim(),
        "",
        "promtool check metrics: {checked}"
    );
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            exported.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            exported.insert(line.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    let named: BTreeSet<String> = exprs
        .iter()
        .chain(&queries)
        .flat_map(|q| metric_names(q))
        .collect();
    let needed = [
        "strata_ingested_messages_total",
        "strata_compacted_rows_total",
        "strata_wal_bytes",
        "strata_oldest_unuploaded_age_seconds",
        "strata_upload_errors_total",
        "strata_upload_retries_total",
        "strata_expel_risk",
        "strata_gap_messages_total",
    ];
    for n in needed {
        assert!(named.contains(n), "the dashboard or rules show {n}");
    }
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported by /metrics: {missing:?}\n{metrics}"
    );
    run.terminate().await;
}

/// promtool from `$STRATA_TEST_PROMTOOL` (scripts/test.sh extracts it from
/// Debian's prometheus package), else on the PATH.
fn promtool() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STRATA_TEST_PROMTOOL") {
        return Ok(PathBuf::from(p));
    }
    which("promtool").map_err(|_| {
        "no promtool (scripts/test.sh extracts it from Debian's prometheus package)".to_string()
    })
}
