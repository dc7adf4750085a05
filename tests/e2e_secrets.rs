//! Secrets never show: a `strata run` with S3 keys, an HTTP token and a NATS
//! user:password in its URL (against a password-protected nats-server of the
//! test's own) is driven through failures — a bucket that does not exist,
//! requests without or with a wrong token, a wrong NATS password, config
//! files with errors next to the secrets — at debug log level. Every log
//! line, every error a command prints, every HTTP answer, `/metrics` and
//! `/healthz` are collected and searched for each secret (as given and
//! percent-encoded): none may appear.

#[macro_use]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{conf::*, figures::*, msg::*, nats::*, python::*, strata::*, *};

const S3_KEY_ID: &str = "AKIASTRATALEAKCHECK7";
const S3_SECRET: &str = "s3Secret/Key+DoNotLeak0123456789abcdefXYZ";
const HTTP_TOKEN: &str = "http-token-DoNotLeak-5b1f";
const NATS_USER: &str = "archiver";
const NATS_PASS: &str = "nats-pass-DoNotLeak-77c2";
const WRONG_NATS_PASS: &str = "wrong-pass-DoNotLeak-0e9a";

/// Every form a secret could take in a text: as given, percent-encoded (in a
/// URL), and the `user:password` pair.
fn needles() -> Vec<String> {
    let mut out = Vec::new();
    for s in [S3_KEY_ID, S3_SECRET, HTTP_TOKEN, NATS_PASS, WRONG_NATS_PASS] {
        out.push(s.to_string());
        out.push(s.replace('/', "%2F").replace('+', "%2B"));
    }
    out.push(format!("{NATS_USER}:{NATS_PASS}"));
    out.push("DoNotLeak".to_string()); // any part of any of them
    out.sort();
    out.dedup();
    out
}

/// A `nats-server -js --user --pass` of this test; killed when dropped.
struct PasswordNats {
    child: Child,
    port: u16,
}

impl PasswordNats {
    fn start(dir: &Path) -> Result<Self, String> {
        let bin = nats::server_bin()?;
        let port = free_port();
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("nats-store"))
            .args(["--user", NATS_USER, "--pass", NATS_PASS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nats-server: {e}"))?;
        wait_until(Duration::from_secs(30), "nats-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Ok(Self { child, port })
    }

    fn url_with(&self, password: &str) -> String {
        format!("nats://{NATS_USER}:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for PasswordNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Texts to search, each with where it came from.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }
}

/// `strata.toml` for the run: S3 keys, token, NATS URL with credentials.
fn config_text(conf: &Conf, nats_url: Option<&str>, stream: &str) -> String {
    let toml = conf
        .toml()
        .replace("\"strata-test-secret\"", &format!("\"{S3_SECRET}\""))
        .replace("\"strata-test\"", &format!("\"{S3_KEY_ID}\""));
    assert!(toml.contains(S3_SECRET) && toml.contains(S3_KEY_ID));
    let mut toml = toml + "\n[compaction]\nunhealthy_after = \"2s\"\n";
    if let Some(url) = nats_url {
        toml += &format!("\n[nats]\nurl = \"{url}\"\nstations = [\"{stream}\"]\n");
    }
    toml
}

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> (u16, String) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_logs_errors_metrics_or_health_of_a_failing_run() {
    let endpoint = need!(s3::endpoint());
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let nats = need!(PasswordNats::start(dir.path()));
    let stream = "secrets";
    let admin = async_nats::ConnectOptions::with_user_and_password(
        NATS_USER.to_string(),
        NATS_PASS.to_string(),
    )
    .connect(format!("127.0.0.1:{}", nats.port))
    .await
    .expect("connect to the password-protected nats-server");
    let js = async_nats::jetstream::new(admin);
    create_stream(&js, stream, None).await;

    let bucket = s3::unique_bucket("strata-e2e"); // not created yet: the store refuses
    let mut conf = Conf::local(dir.path());
    conf.storage = Storage::S3 {
        endpoint: endpoint.clone(),
        bucket: bucket.clone(),
        prefix: "archive".into(),
    };
    conf.segment_max_age = Some("300ms".into());
    conf.http = Some(HttpConf::free(Some(HTTP_TOKEN)));
    let http = conf.http.clone().expect("http");
    let config = dir.path().join("strata.toml");
    let with_nats = dir.path().join("with-nats.toml");
    std::fs::write(
        &with_nats,
        config_text(&conf, Some(&nats.url_with(NATS_PASS)), stream),
    )
    .expect("write config");
    std::fs::write(&config, config_text(&conf, None, stream)).expect("write config");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let mut seen = Seen::default();
    let mut failures = Vec::new();
    let debug = [("RUST_LOG", "debug")];

    // With NATS and the bucket missing: whatever start-up makes of it
    // (refused, or running on without the archive), it says so without a secret.
    let mut first = StrataRun::spawn_env(&with_nats, &http, &[], &logs, &debug);
    let start = Instant::now();
    while first.exited().is_none() && start.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill9();
    let text = first.stderr() + &first.stdout();
    assert!(
        text.contains(&bucket),
        "the missing bucket is named:\n{text}"
    );
    failures.push("start with NATS and a missing bucket".to_string());
    seen.add("strata run (NATS, missing bucket)", text);

    // Without NATS it runs, and fails to upload.
    let mut run = StrataRun::spawn_env(&config, &http, &[], &logs, &debug);
    run.ready().await;
    let client = http_client();
    let base = http.base();

    // Traffic, which compaction then fails to upload.
    let r = post_messages(
        &client,
        &http,
        "secrets_http",
        "{\"payload\":\"a\"}\n".into(),
        Some(HTTP_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Requests without a token, with a wrong one, with the token's prefix.
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some("wrong")),
        ("token prefix", Some(&HTTP_TOKEN[..10])),
    ] {
        let r = post_messages(
            &client,
            &http,
            "secrets_http",
            "{\"payload\":\"b\"}\n".into(),
            token,
        )
        .await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        seen.add(format!("POST messages ({what})"), format!("{r:?}"));
        failures.push(format!("401 {what}"));
        let resp = client
            .post(format!("{base}/v1/flush"))
            .header("authorization", format!("Bearer {}", token.unwrap_or("")))
            .send()
            .await
            .expect("flush");
        assert_eq!(resp.status().as_u16(), 401, "flush with {what}");
        seen.add(
            format!("POST flush ({what})"),
            resp.text().await.unwrap_or_default(),
        );
    }

    // The bucket does not exist: flush fails, health turns 503.
    let resp = client
        .post(format!("{base}/v1/flush"))
        .bearer_auth(HTTP_TOKEN)
        .send()
        .await
        .expect("flush");
    let status = resp.status().as_u16();
    seen.add(
        "POST flush (no bucket)",
        resp.text().await.unwrap_or_default(),
    );
    assert_eq!(status, 500, "a flush into a missing bucket fails");
    failures.push("flush into a missing bucket".into());
    let start = Instant::now();
    loop {
        let (status, body) = get(&client, format!("{base}/healthz"), None).await;
        seen.add("GET /healthz", body.clone());
        if status == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "healthz stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    failures.push("healthz 503".into());
    seen.add("GET /metrics", run.metrics().await);
    seen.add(
        "GET /nope",
        get(&client, format!("{base}/nope"), Some(HTTP_TOKEN))
            .await
            .1,
    );

    // The CLI against the same config, failing the same way.
    for args in [
        vec!["flush", "--config"],
        vec!["storage", "check", "--config"],
        vec!["ls", "--config"],
        vec!["restore", "--station", stream, "--output", "-", "--config"],
        vec!["-v", "storage", "check", "--config"],
    ] {
        let c = config.clone();
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = blocking(move || {
            let mut cmd = Command::new(BIN);
            cmd.args(&a).arg(&c).env("RUST_LOG", "debug");
            run_command(cmd, None, Duration::from_secs(120))
        })
        .await;
        assert!(!out.status.success(), "{out}");
        failures.push(format!("strata {}", args.join(" ")));
        seen.add(format!("strata {}", args.join(" ")), out.text());
    }
    let w = dir.path().join("wal");
    let out = blocking(move || strata(args!["wal", "inspect", "--wal-dir", w])).await;
    seen.add("strata wal inspect", out.text());

    // Fixed: the bucket exists; everything is uploaded; health comes back.
    let e = endpoint.clone();
    let b = bucket.clone();
    blocking(move || s3::create_bucket(&e, &b)).await;
    let resp = client
        .post(format!("{base}/v1/flush"))
        .bearer_auth(HTTP_TOKEN)
        .send()
        .await
        .expect("flush");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    seen.add("POST flush (fixed)", body);
    seen.add(
        "GET /healthz (fixed)",
        get(&client, format!("{base}/healthz"), None).await.1,
    );
    seen.add("GET /metrics (fixed)", run.metrics().await);
    let status = run.terminate().await;
    assert!(status.success(), "{}", run.logs());
    seen.add("strata run stderr", run.stderr());
    seen.add("strata run stdout", run.stdout());

    // With NATS (the URL's credentials) and the bucket there: messages of
    // both sources are archived.
    let mut run = StrataRun::spawn_env(&with_nats, &http, &[], &logs, &debug);
    run.ready().await;
    wait_consumer_exists(&js, stream, ARCHIVER_CONSUMER, &mut run).await;
    let msgs: Vec<Pub> = (1..=20).map(|i| test_message(stream, i)).collect();
    publish(&js, &msgs).await;
    wait_consumer_caught_up(
        &js,
        stream,
        ARCHIVER_CONSUMER,
        20,
        Duration::from_secs(60),
        Some(&mut run),
    )
    .await;
    let resp = client
        .post(format!("{base}/v1/flush"))
        .bearer_auth(HTTP_TOKEN)
        .send()
        .await
        .expect("flush");
    assert_eq!(resp.status().as_u16(), 200);
    seen.add("POST flush (NATS)", resp.text().await.unwrap_or_default());
    seen.add("GET /metrics (NATS)", run.metrics().await);
    let status = run.terminate().await;
    assert!(status.success(), "{}", run.logs());
    seen.add("strata run stderr (NATS)", run.stderr());
    seen.add("strata run stdout (NATS)", run.stdout());
    let c = config.clone();
    let out = blocking(move || strata(args!["ls", "--config", c]).ok()).await;
    assert!(out.stdout.contains(stream), "{out}");
    seen.add("strata ls", out.text());

    // A wrong NATS password in the URL: start-up fails (or keeps retrying)
    // without showing it.
    let bad = dir.path().join("wrong-pass.toml");
    let bad_pass_config = bad.clone();
    std::fs::write(
        &bad,
        config_text(&conf, Some(&nats.url_with(WRONG_NATS_PASS)), stream),
    )
    .expect("write config");
    let mut wrong = StrataRun::spawn_env(&bad, &http, &[], &logs, &debug);
    let start = Instant::now();
    while wrong.exited().is_none() && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wrong.kill9();
    let text = wrong.stderr() + &wrong.stdout();
    assert!(
        text.to_lowercase().contains("authori"),
        "the wrong password is reported: {text}"
    );
    failures.push("wrong NATS password".into());
    seen.add("strata run (wrong NATS password)", text);

    // Config files with mistakes next to the secrets.
    let base_toml = config_text(&conf, Some(&nats.url_with(NATS_PASS)), stream);
    for (what, edit) in [
        (
            "misspelt secret key",
            base_toml.replace("secret_access_key", "secret_acces_key"),
        ),
        (
            "secret of the wrong type",
            base_toml.replace(&format!("token = \"{HTTP_TOKEN}\""), "token = 5"),
        ),
        (
            "unknown key after the token",
            base_toml.replace(
                &format!("token = \"{HTTP_TOKEN}\""),
                &format!("token = \"{HTTP_TOKEN}\"\ntokn = \"{HTTP_TOKEN}\""),
            ),
        ),
        (
            "half-set S3 credentials",
            base_toml.replace(&format!("access_key_id = \"{S3_KEY_ID}\""), ""),
        ),
        (
            "NATS URL with credentials and a bad port",
            base_toml.replace(&format!(":{}\"", nats.port), ":99999\""),
        ),
        (
            "two NATS auth methods",
            base_toml.clone() + &format!("token = \"{HTTP_TOKEN}\"\n"),
        ),
    ] {
        assert_ne!(edit, base_toml, "{what}: the edit changed nothing");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &edit).expect("write");
        let out = blocking(move || {
            let mut cmd = Command::new(BIN);
            cmd.arg("run").arg("--config").arg(&path);
            run_command(cmd, None, Duration::from_secs(60))
        })
        .await;
        assert!(!out.status.success(), "{what}: {out}");
        failures.push(format!("config: {what}"));
        seen.add(format!("strata run ({what})"), out.text());
    }

    // Search everything; the config files themselves hold every secret, so
    // the search must find them there (it can fail).
    let needles = needles();
    let control = std::fs::read_to_string(&with_nats).expect("config")
        + &std::fs::read_to_string(&bad_pass_config).expect("config");
    for secret in [S3_KEY_ID, S3_SECRET, HTTP_TOKEN, NATS_PASS, WRONG_NATS_PASS] {
        assert!(
            control.contains(secret) && needles.iter().any(|n| n == secret),
            "{secret} is not searched for"
        );
    }
    let mut leaks = Vec::new();
    let mut bytes = 0;
    for (what, text) in &seen.0 {
        bytes += text.len();
        for n in &needles {
            if let Some(at) = text.find(n.as_str()) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let to = (at + n.len() + 40).min(text.len());
                let to = (to..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                leaks.push(format!("{what}: {n:?} in …{}…", &text[from..to]));
            }
        }
    }
    record_figures(
        "secrets",
        serde_json::json!({
            "secrets": 5,
            "failures_provoked": failures.len(),
            "texts_checked": seen.0.len(),
            "bytes_checked": bytes,
            "leaks": leaks.len(),
        }),
    );
    assert!(
        bytes > 10_000,
        "too little output to mean anything ({bytes} bytes)"
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
