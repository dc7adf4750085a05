//! Hostile input through the real `strata run`, sent as raw bytes over TCP
//! (so that paths like `../x`, invalid UTF-8 and broken framing reach the
//! server as written): malformed and deeply nested JSON, wrong types, seqs
//! above the maximum, invalid UTF-8, bad base64, hostile station names
//! (`../x`, `a%2Fb`, `station=x`, empty, 10 KB, unicode look-alikes), 10,000
//! headers, broken framing, concurrent huge bodies and slow (slowloris)
//! connections. Each gets its documented 4xx or 503, the server stays up
//! and answers others meanwhile, its peak RSS stays bounded, and neither the
//! WAL nor the archive holds anything of a rejected request.
//!
//! `tests/http_ingest.rs` checks the same rules in process, field by field;
//! this test is about the running binary under a barrage.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{conf::*, figures::*, python::*, strata::*, *};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "hostile-token";
const MAX_BODY: usize = 2 << 20;
const MAX_INFLIGHT: usize = 8 << 20;
/// The bound on the peak resident set under this barrage: bodies in flight
/// are capped at 8 MiB, so the process must stay far below what 24 × 2 MiB
/// bodies buffered and parsed at once would take (well over 100 MiB).
const RSS_BOUND: u64 = 96 << 20;

/// Sends `raw` (a whole request) and reads the answer until the server
/// closes; the status, or 0 when the connection closed without one.
async fn raw(listen: &str, request: Vec<u8>) -> (u16, String) {
    send(listen, request, false).await
}

/// [`raw`], closing our side once the request is written when `half_close`
/// (for requests cut short: the server sees the end of the stream).
async fn send(listen: &str, request: Vec<u8>, half_close: bool) -> (u16, String) {
    let mut s = TcpStream::connect(listen).await.expect("connect");
    // The server may answer (and close) before it has read everything.
    let _ = s.write_all(&request).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// `POST <path>` with `body`, the token, `Content-Length` and extra header lines.
fn post(path: &[u8], extra_headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"POST ");
    r.extend_from_slice(path);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: strata\r\nConnection: close\r\n");
    r.extend_from_slice(format!("Authorization: Bearer {TOKEN}\r\n").as_bytes());
    r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    r.extend_from_slice(extra_headers);
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn to_hostile(body: &[u8]) -> Vec<u8> {
    post(b"/v1/stations/hostile/messages", b"", body)
}

fn station_path(name: &str) -> Vec<u8> {
    format!("/v1/stations/{name}/messages").into_bytes()
}

/// One hostile request and the statuses it may get.
struct Case {
    name: String,
    request: Vec<u8>,
    allowed: &'static [u16],
    /// The request is cut short: close our side after it.
    cut: bool,
}

fn case(name: impl Into<String>, request: Vec<u8>, allowed: &'static [u16]) -> Case {
    Case {
        name: name.into(),
        request,
        allowed,
        cut: false,
    }
}

const BAD: &[u16] = &[400];
/// Rejected by the router or by the station rule.
const BAD_PATH: &[u16] = &[400, 404];
/// Rejected by the HTTP layer before routing (hyper closes some without an
/// answer: 0).
const BAD_FRAMING: &[u16] = &[0, 400, 413, 431];

fn cases() -> Vec<Case> {
    let ok_line = b"{\"payload\":\"fine\"}\n".to_vec();
    let with_ok = |bad: &[u8]| {
        let mut b = ok_line.clone();
        b.extend_from_slice(bad);
        b.push(b'\n');
        b
    };
    let mut c = Vec::new();
    // Malformed JSON and wrong types; each after a good line, which must not
    // be stored either (all or nothing).
    for (name, bad) in [
        ("truncated object", &b"{\"payload\":"[..]),
        ("not an object: number", b"42"),
        ("not an object: string", b"\"text\""),
        ("not an object: null", b"null"),
        ("array of numbers", b"[1,2,3]"),
        ("trailing garbage", b"{\"payload\":\"x\"} trailing"),
        ("seq as string", b"{\"seq\":\"1\",\"payload\":\"x\"}"),
        ("negative seq", b"{\"seq\":-1,\"payload\":\"x\"}"),
        ("fractional seq", b"{\"seq\":1.5,\"payload\":\"x\"}"),
        (
            "seq 2^63",
            b"{\"seq\":9223372036854775808,\"payload\":\"x\"}",
        ),
        (
            "seq 2^64",
            b"{\"seq\":18446744073709551616,\"payload\":\"x\"}",
        ),
        ("seq 1e30", b"{\"seq\":1e30,\"payload\":\"x\"}"),
        ("payload as number", b"{\"payload\":5}"),
        (
            "payload and payload_base64",
            b"{\"payload\":\"a\",\"payload_base64\":\"YQ==\"}",
        ),
        (
            "headers as string",
            b"{\"headers\":\"x\",\"payload\":\"x\"}",
        ),
        (
            "header pair of one",
            b"{\"headers\":[[\"a\"]],\"payload\":\"x\"}",
        ),
        (
            "header pair of numbers",
            b"{\"headers\":[[1,2]],\"payload\":\"x\"}",
        ),
        ("id as number", b"{\"id\":5,\"payload\":\"x\"}"),
        (
            "timestamp as number",
            b"{\"timestamp\":12345,\"payload\":\"x\"}",
        ),
        (
            "timestamp year 99999",
            b"{\"timestamp\":\"99999-01-01T00:00:00Z\",\"payload\":\"x\"}",
        ),
        (
            "timestamp without zone",
            b"{\"timestamp\":\"2026-11-24T10:00:00\",\"payload\":\"x\"}",
        ),
        ("unknown field", b"{\"payload\":\"x\",\"extra\":1}"),
        (
            "other station in line",
            b"{\"station\":\"good\",\"payload\":\"x\"}",
        ),
        ("bad base64 characters", b"{\"payload_base64\":\"!!!!\"}"),
        ("base64 without padding", b"{\"payload_base64\":\"YQ\"}"),
        ("base64 url alphabet", b"{\"payload_base64\":\"-_-_\"}"),
        (
            "invalid UTF-8 in a string",
            b"{\"payload\":\"\xff\xfe\xfd\"}",
        ),
        (
            "invalid UTF-8 outside strings",
            b"{\"payload\":\"x\"}\xc3\x28",
        ),
        ("lone surrogate escape", b"{\"payload\":\"\\ud800\"}"),
        ("NUL byte in JSON", b"{\"payload\":\"x\"\x00}"),
    ] {
        c.push(case(
            format!("body: {name}"),
            to_hostile(&with_ok(bad)),
            BAD,
        ));
    }
    let deep = "[".repeat(100_000);
    c.push(case(
        "body: 100,000 nested arrays",
        to_hostile(deep.as_bytes()),
        BAD,
    ));
    let deep_obj = "{\"payload\":".repeat(50_000);
    c.push(case(
        "body: 50,000 nested objects",
        to_hostile(deep_obj.as_bytes()),
        BAD,
    ));
    // A huge line just under the limit, bad at its very end.
    let mut huge = b"{\"payload\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', MAX_BODY - 64));
    huge.extend_from_slice(b"\",\"seq\":\"no\"}");
    c.push(case(
        "body: one 2 MiB line, bad at the end",
        to_hostile(&huge),
        BAD,
    ));
    // Over the limit, announced.
    let mut over = b"{\"payload\":\"".to_vec();
    over.extend(std::iter::repeat_n(b'y', MAX_BODY + 1024));
    over.extend_from_slice(b"\"}");
    c.push(case(
        "body: one line over max_body_bytes",
        to_hostile(&over),
        &[413],
    ));

    // Hostile station names.
    for (name, path, allowed) in [
        ("../x", "../x", BAD_PATH),
        ("..%2Fx", "..%2Fx", BAD_PATH),
        ("a%2Fb", "a%2Fb", BAD_PATH),
        ("a/b", "a/b", BAD_PATH),
        ("station=x", "station=x", BAD_PATH),
        ("station%3Dx", "station%3Dx", BAD_PATH),
        ("empty", "", BAD_PATH),
        ("dot", ".", BAD_PATH),
        ("dot-dot", "..", BAD_PATH),
        (".hidden", ".hidden", BAD_PATH),
        ("NUL", "a%00b", BAD_PATH),
        ("newline", "a%0Ab", BAD_PATH),
        ("space", "a%20b", BAD_PATH),
        ("cyrillic o look-alike", "%D0%BErders", BAD_PATH),
        ("fullwidth o look-alike", "%EF%BD%8Frders", BAD_PATH),
        ("zero-width space", "orders%E2%80%8B", BAD_PATH),
        ("right-to-left override", "%E2%80%AEorders", BAD_PATH),
        ("invalid UTF-8 escape", "%FF%FE", BAD_PATH),
        ("bad escape", "%zz", BAD_PATH),
        ("129 characters", &"a".repeat(129), BAD_PATH),
    ] {
        c.push(case(
            format!("station: {name}"),
            post(&station_path(path), b"", &ok_line),
            allowed,
        ));
    }
    c.push(case(
        "station: 10 KB",
        post(&station_path(&"s".repeat(10 * 1024)), b"", &ok_line),
        &[0, 400, 404, 414, 431],
    ));
    c.push(case(
        "station: raw space in the request line",
        post(b"/v1/stations/a b/messages", b"", &ok_line),
        BAD_FRAMING,
    ));

    // Headers and framing.
    let many: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    c.push(case(
        "10,000 headers",
        post(&station_path("hostile"), &many, &ok_line),
        BAD_FRAMING,
    ));
    let long = format!("X-Long: {}\r\n", "v".repeat(1 << 20)).into_bytes();
    c.push(case(
        "one 1 MiB header",
        post(&station_path("hostile"), &long, &ok_line),
        BAD_FRAMING,
    ));
    let mut r =
        b"POST /v1/stations/hostile/messages HTTP/1.1\r\nHost: s\r\nConnection: close\r\n".to_vec();
    r.extend_from_slice(
        format!("Authorization: Bearer {TOKEN}\r\nContent-Length: abc\r\n\r\n").as_bytes(),
    );
    r.extend_from_slice(&ok_line);
    c.push(case("Content-Length: abc", r, BAD_FRAMING));
    let mut r =
        b"POST /v1/stations/hostile/messages HTTP/1.1\r\nHost: s\r\nConnection: close\r\n".to_vec();
    r.extend_from_slice(
        format!("Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n").as_bytes(),
    );
    r.extend_from_slice(&ok_line);
    c.push(Case {
        cut: true,
        ..case("body shorter than Content-Length", r, BAD_FRAMING)
    });
    let mut r =
        b"POST /v1/stations/hostile/messages HTTP/1.1\r\nHost: s\r\nConnection: close\r\n".to_vec();
    r.extend_from_slice(
        format!("Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .as_bytes(),
    );
    r.extend_from_slice(&ok_line);
    c.push(case("bad chunk size", r, BAD_FRAMING));
    let mut r =
        b"POST /v1/stations/hostile/messages HTTP/1.1\r\nHost: s\r\nConnection: close\r\n".to_vec();
    r.extend_from_slice(
        format!("Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    );
    r.extend_from_slice(b"12\r\n{\"payload\":\"fine\"}\r\n");
    c.push(Case {
        cut: true,
        ..case("chunked body cut short", r, BAD_FRAMING)
    });
    c.push(case(
        "garbage request",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello?\r\n\r\n".to_vec(),
        BAD_FRAMING,
    ));
    c
}

/// Good messages to station `good`: `n` lines tagged `tag`.
fn good_body(tag: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"payload\":\"{tag}-{i}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_4xx_and_store_nothing_while_the_server_stays_up() {
    need!(python());
    let _serial = serial_async().await;
    let dir = tempdir();
    let mut conf = Conf::local(dir.path());
    let mut http = HttpConf::free(Some(TOKEN));
    http.max_body_bytes = Some(MAX_BODY);
    conf.http = Some(http.clone());
    let config = dir.path().join("strata.toml");
    let toml = conf.toml().replace(
        "[http]\n",
        &format!("[http]\nmax_inflight_bytes = {MAX_INFLIGHT}\n"),
    );
    std::fs::write(&config, toml).expect("write config");
    let mut run = StrataRun::spawn(&config, &http, &[], dir.path());
    run.ready().await;
    let listen = http.listen.clone();
    let pid = run.pid();
    let rss_start = peak_rss_bytes(pid).expect("VmHWM");

    let (status, text) = raw(
        &listen,
        post(&station_path("good"), b"", &good_body("before", 3)),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // Slow clients hold connections open the whole time: headers sent, a
    // few body bytes, then nothing.
    let mut slow = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(&listen).await.expect("connect");
        s.write_all(
            format!(
                "POST /v1/stations/hostile/messages HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n{{\"pay"
            )
            .as_bytes(),
        )
        .await
        .expect("slow write");
        slow.push(s);
    }

    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    let cases = cases();
    let tried = cases.len() as u64;
    for c in cases {
        let (status, text) = send(&listen, c.request, c.cut).await;
        *by_status.entry(status).or_default() += 1;
        if !c.allowed.contains(&status) {
            wrong.push(format!(
                "{}: {status}, expected one of {:?}: {}",
                c.name,
                c.allowed,
                text.chars().take(300).collect::<String>()
            ));
        }
        if status >= 400 && status != 431 {
            // Errors are JSON (hyper's own framing errors have no body).
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            if !body.is_empty() {
                assert!(
                    serde_json::from_str::<serde_json::Value>(body).is_ok(),
                    "{}: the {status} body is not JSON: {body}",
                    c.name
                );
            }
        }
        run.assert_running();
    }

    // Transfer-Encoding and Content-Length together: HTTP/1.1 says the
    // chunked framing wins (RFC 9112 6.3), which the server follows; the
    // message is well framed, so it may be stored, to the station it names.
    let te_cl = format!(
        "POST /v1/stations/good/messages HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n\
         13\r\n{{\"payload\":\"te-cl\"}}\r\n0\r\n\r\n"
    );
    let (te_cl_status, text) = raw(&listen, te_cl.into_bytes()).await;
    assert!(
        [200, 400].contains(&te_cl_status),
        "chunked and Content-Length: {text}"
    );

    // Concurrent huge bodies: 24 clients, each 2 MiB, bad at the end, over
    // an 8 MiB budget of bytes in flight.
    let mut huge = b"{\"payload\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'h', MAX_BODY - 64));
    huge.extend_from_slice(b"\",\"seq\":-5}");
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let req = to_hostile(&huge);
            let listen = listen.clone();
            tokio::spawn(async move { raw(&listen, req).await })
        })
        .collect();
    let mut concurrent: BTreeMap<u16, u64> = BTreeMap::new();
    for t in tasks {
        let (status, text) = t.await.expect("client");
        *concurrent.entry(status).or_default() += 1;
        assert!(
            [400, 503].contains(&status),
            "concurrent huge body: {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        if status == 503 {
            assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}");
        }
    }
    let tried = tried + 24;
    for (s, n) in &concurrent {
        *by_status.entry(*s).or_default() += n;
    }

    // Still up, still answering, with the slow clients still connected.
    let (status, text) = raw(
        &listen,
        post(&station_path("good"), b"", &good_body("after", 2)),
    )
    .await;
    assert_eq!(status, 200, "a good request after the barrage: {text}");
    let health = raw(
        &listen,
        b"GET /healthz HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(health.0, 200, "{}", health.1);
    run.assert_running();
    let peak = peak_rss_bytes(pid).expect("VmHWM");
    drop(slow);

    // Nothing of a rejected request is in the WAL, and the archive holds
    // exactly the good messages.
    let wal = dir.path().join("wal");
    let inspect = blocking(move || strata(args!["wal", "inspect", "--wal-dir", wal]).ok()).await;
    let c = config.clone();
    blocking(move || strata(args!["flush", "--config", c]).ok()).await;
    let archive = dir.path().join("archive");
    let read = blocking(move || read_archive_checked(&archive)).await;
    let stored: Vec<String> = read
        .rows
        .iter()
        .map(|r| format!("{}:{}", r.station, String::from_utf8_lossy(&r.payload())))
        .collect();
    let expected: Vec<String> = ["before-0", "before-1", "before-2", "after-0", "after-1"]
        .iter()
        .map(|p| format!("good:{p}"))
        .collect();
    let mut expected = expected;
    if te_cl_status == 200 {
        expected.insert(3, "good:te-cl".to_string());
    }
    let from_rejected = stored.iter().filter(|s| !expected.contains(s)).count();
    record_figures(
        "hostile_http",
        serde_json::json!({
            "bad_inputs_tried": tried,
            "answers_by_status": by_status,
            "concurrent_huge_bodies": concurrent,
            "slow_connections": 32,
            "wrong_answers": wrong.len(),
            "stored_from_rejected": from_rejected,
            "rss_start_bytes": rss_start,
            "peak_rss_bytes": peak,
        }),
    );
    eprintln!(
        "hostile HTTP: {tried} bad requests, answers {by_status:?}, concurrent {concurrent:?}, peak RSS {} MiB (start {} MiB)",
        peak >> 20,
        rss_start >> 20
    );
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert!(
        concurrent.get(&503).copied().unwrap_or(0) >= 1,
        "24 bodies of 2 MiB over an 8 MiB budget: some must get 503: {concurrent:?}"
    );
    assert!(
        !inspect.stdout.contains("hostile"),
        "the WAL holds a rejected station:\n{}",
        inspect.stdout
    );
    assert_eq!(stored, expected, "the archive holds only the good messages");
    assert!(
        peak < RSS_BOUND,
        "peak RSS {} MiB under hostile load (bound {} MiB)",
        peak >> 20,
        RSS_BOUND >> 20
    );
    let status = run.terminate().await;
    assert!(status.success(), "{}", run.logs());
}
