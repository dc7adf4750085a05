use proptest::prelude::*;

use super::*;
use crate::message::{Header, MAX_SEQ};

fn station(s: &str) -> StationName {
    StationName::new(s).unwrap()
}

const EXAMPLE: &str = r#"{"station":"orders","seq":42,"timestamp":"2026-11-24T10:00:00.123456Z","id":"m-42","subject":"orders.created","headers":[["Content-Type","application/json"]],"payload":"{\"n\":42}"}"#;

#[test]
fn parses_the_documented_example() {
    let d = parse_line(EXAMPLE, 1, None).unwrap();
    assert_eq!(d.station.as_str(), "orders");
    assert_eq!(d.seq, Some(42));
    assert_eq!(d.timestamp.to_rfc3339(), "2026-11-24T10:00:00.123456Z");
    assert_eq!(d.id.as_deref(), Some("m-42"));
    assert_eq!(d.subject.as_deref(), Some("orders.created"));
    assert_eq!(
        d.headers,
        vec![Header::new("Content-Type", "application/json")]
    );
    assert_eq!(&d.payload[..], br#"{"n":42}"#);
}

#[test]
fn writes_the_documented_example() {
    let m = parse_line(EXAMPLE, 1, None).unwrap().into_message(42);
    assert_eq!(to_line(&m), EXAMPLE);
    let mut out = Vec::new();
    write_line(&m, &mut out).unwrap();
    assert_eq!(out, format!("{EXAMPLE}\n").into_bytes());
}

#[test]
fn optional_fields_take_their_defaults() {
    let before = Timestamp::now();
    let d = parse_line("{}", 1, Some(&station("s"))).unwrap();
    assert_eq!(d.station.as_str(), "s");
    assert_eq!(d.seq, None);
    assert!(d.timestamp >= before && d.timestamp <= Timestamp::now());
    assert_eq!(d.id, None);
    assert_eq!(d.subject, None);
    assert!(d.headers.is_empty());
    assert!(
        d.payload.is_empty(),
        "no payload field means an empty payload"
    );
    let nulls = r#"{"id":null,"subject":null,"headers":null,"seq":null,"payload":"x"}"#;
    let d = parse_line(nulls, 1, Some(&station("s"))).unwrap();
    assert_eq!((d.id, d.subject, d.seq), (None, None, None));
    assert_eq!(&d.payload[..], b"x");
}

#[test]
fn headers_as_object_keep_document_order_and_pairs_keep_repeats() {
    let d = parse_line(
        r#"{"headers":{"z":"1","a":"2","m":"3"}}"#,
        1,
        Some(&station("s")),
    )
    .unwrap();
    let names: Vec<_> = d.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["z", "a", "m"]);
    let d = parse_line(
        r#"{"headers":[["X","1"],["x","2"],["X","3"]]}"#,
        1,
        Some(&station("s")),
    )
    .unwrap();
    assert_eq!(
        d.headers,
        vec![
            Header::new("X", "1"),
            Header::new("x", "2"),
            Header::new("X", "3")
        ]
    );
}

#[test]
fn binary_payloads_travel_as_base64() {
    let m = Message {
        station: station("bin"),
        seq: 7,
        timestamp: Timestamp(1_700_000_000_000_001),
        id: None,
        subject: None,
        headers: vec![],
        payload: Bytes::from_static(&[0xff, 0x00, 0xfe]),
    };
    let line = to_line(&m);
    assert!(line.contains(r#""payload_base64":"/wD+""#), "{line}");
    assert!(!line.contains(r#""payload":"#), "{line}");
    assert_eq!(parse_line(&line, 1, None).unwrap(), Draft::from(m));
}

fn err(line: &str, station: Option<&StationName>) -> LineError {
    parse_line(line, 3, station).unwrap_err()
}

#[test]
fn errors_name_the_line_and_field() {
    let s = station("orders");
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"nope":1}"#, "nope", "unknown field"),
        (
            r#"{"seq":-1}"#,
            "seq",
            "integer from 0 to 9223372036854775807, not -1",
        ),
        (
            r#"{"seq":1.5}"#,
            "seq",
            "integer from 0 to 9223372036854775807, not 1.5",
        ),
        (
            r#"{"seq":1e3}"#,
            "seq",
            "integer from 0 to 9223372036854775807",
        ),
        (r#"{"seq":"1"}"#, "seq", "without quotes"),
        (
            r#"{"seq":true}"#,
            "seq",
            "integer from 0 to 9223372036854775807",
        ),
        (
            r#"{"seq":[1]}"#,
            "seq",
            "integer from 0 to 9223372036854775807",
        ),
        (
            r#"{"seq":9223372036854775808}"#,
            "seq",
            "integer from 0 to 9223372036854775807, not 9223372036854775808",
        ),
        (
            r#"{"seq":99999999999999999999}"#,
            "seq",
            "integer from 0 to 9223372036854775807",
        ),
        (r#"{"timestamp":"yesterday"}"#, "timestamp", "RFC 3339"),
        (r#"{"timestamp":5}"#, "timestamp", "invalid type"),
        (r#"{"headers":[["a"]]}"#, "headers", "pair"),
        (r#"{"headers":[["a","b","c"]]}"#, "headers", "pair"),
        (r#"{"headers":{"a":1}}"#, "headers", "invalid type"),
        (r#"{"headers":"a: b"}"#, "headers", "pairs"),
        (r#"{"headers":[["","v"]]}"#, "headers", "empty"),
        (
            r#"{"payload":"a","payload_base64":"YQ=="}"#,
            "payload_base64",
            "not both",
        ),
        (r#"{"payload_base64":"***"}"#, "payload_base64", "base64"),
        (r#"{"payload":1}"#, "payload", "invalid type"),
        (r#"{"id":1}"#, "id", "invalid type"),
        (r#"{"subject":[]}"#, "subject", "invalid type"),
        (r#"{"seq":1,"seq":2}"#, "seq", "twice"),
        (r#"{"station":"billing"}"#, "station", "\"billing\""),
        (r#"[1]"#, "json", "JSON object"),
        (r#"{"seq":1"#, "json", "EOF"),
        (r#"{"seq":1} x"#, "json", "trailing"),
        ("not json", "json", "expected"),
    ];
    for (line, field, reason) in cases {
        let e = err(line, Some(&s));
        assert_eq!(e.line, 3, "{line}: {e}");
        assert_eq!(e.field, *field, "{line}: {e}");
        assert!(e.reason.contains(reason), "{line}: {e}");
    }
}

#[test]
fn station_rules() {
    let e = err("{}", None);
    assert_eq!(e.field, "station");
    assert!(e.reason.contains("missing"), "{e}");
    let e = err(r#"{"station":"a/b"}"#, None);
    assert_eq!(e.field, "station");
    assert!(e.reason.contains("A-Z a-z 0-9 _ - ."), "{e}");
    let d = parse_line(r#"{"station":"orders"}"#, 1, Some(&station("orders"))).unwrap();
    assert_eq!(d.station.as_str(), "orders");
}

#[test]
fn bodies_skip_blank_lines_and_count_them() {
    let body = b"\xEF\xBB\xBF{\"payload\":\"a\"}\r\n\n  \n{\"payload\":\"b\"}\n{\"x\":1}\n";
    let e = parse_body(body, Some(&station("s"))).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (5, "x"));
    let drafts = parse_body(&body[..body.len() - 8], Some(&station("s"))).unwrap();
    let payloads: Vec<_> = drafts.iter().map(|d| &d.payload[..]).collect();
    assert_eq!(payloads, [b"a", b"b"]);
    assert!(parse_body(b"", None).unwrap().is_empty());
    assert!(parse_body(b" \n\n", None).unwrap().is_empty());
}

#[test]
fn arrays_number_elements_from_one() {
    let s = station("s");
    let body = br#" [ {"payload":"a"}, {"payload":"b","seq":5} ] "#;
    let drafts = parse_body(body, Some(&s)).unwrap();
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[1].seq, Some(5));
    let e = parse_body(br#"[{"payload":"a"},{"seq":"x"}]"#, Some(&s)).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (2, "seq"));
    let e = parse_body(b"[{},\n{},\n{\"station\":\"t\"}]", Some(&s)).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "station"));
    let e = parse_body(b"[{}, {}", Some(&s)).unwrap_err();
    assert_eq!(e.field, "json");
    assert!(e.reason.contains("body line 1"), "{e}");
    assert!(parse_body(b"[]", Some(&s)).unwrap().is_empty());
    assert!(parse_body(b"[] []", Some(&s)).is_err());
}

#[test]
fn shared_bodies_lend_unescaped_payloads_without_copying() {
    let body = Bytes::from_static(
        br#"{"payload":"plain"}
{"payload":"esc\"aped"}"#,
    );
    let drafts = parse_body_bytes(&body, Some(&station("s"))).unwrap();
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    assert!(range.contains(&(drafts[0].payload.as_ptr() as usize)));
    assert_eq!(&drafts[0].payload[..], b"plain");
    assert_eq!(&drafts[1].payload[..], b"esc\"aped");
}

#[test]
fn one_clock_reading_per_body() {
    let drafts = parse_body(b"{}\n{}\n{}", Some(&station("s"))).unwrap();
    assert!(drafts.iter().all(|d| d.timestamp == drafts[0].timestamp));
}

fn arb_message() -> impl Strategy<Value = Message> {
    let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "\\PC{0,16}").prop_map(|(n, v)| Header::new(n, v));
    let payload = prop_oneof![
        "\\PC{0,64}".prop_map(|s| Bytes::from(s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    ];
    (
        "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,20}",
        0..=MAX_SEQ,
        // Years 0001 to 9999: the range RFC 3339 can write.
        -62_135_596_800_000_000i64..253_402_300_799_999_999,
        proptest::option::of("\\PC{0,16}"),
        proptest::option::of("[a-z.>*]{1,16}"),
        prop::collection::vec(header, 0..4),
        payload,
    )
        .prop_map(
            |(station, seq, ts, id, subject, headers, payload)| Message {
                station: StationName::new(station).unwrap(),
                seq,
                timestamp: Timestamp(ts),
                id,
                subject,
                headers,
                payload,
            },
        )
}

proptest! {
    #[test]
    fn to_line_then_parse_line_is_identity(m in arb_message()) {
        let line = to_line(&m);
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(parse_line(&line, 1, None).unwrap(), Draft::from(m.clone()));
        let given = m.station.clone();
        prop_assert_eq!(parse_line(&line, 1, Some(&given)).unwrap(), Draft::from(m));
    }

    #[test]
    fn bodies_of_lines_and_arrays_agree(ms in prop::collection::vec(arb_message(), 0..8)) {
        let ndjson: String = ms.iter().map(|m| to_line(m) + "\n").collect();
        let array = format!("[{}]", ms.iter().map(to_line).collect::<Vec<_>>().join(","));
        let want: Vec<Draft> = ms.into_iter().map(Draft::from).collect();
        prop_assert_eq!(&parse_body(ndjson.as_bytes(), None).unwrap(), &want);
        prop_assert_eq!(&parse_body_bytes(&Bytes::from(array), None).unwrap(), &want);
    }

    #[test]
    fn arbitrary_input_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_body(&body, Some(&StationName::new("s").unwrap()));
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ndjson/").to_string() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn good_fixture_parses_the_same_as_lines_and_as_an_array() {
    let s = station("orders");
    let lines = parse_body(&fixture("good.ndjson"), Some(&s)).unwrap();
    let array = parse_body(&fixture("good-array.json"), Some(&s)).unwrap();
    assert_eq!(lines.len(), 5);
    // Lines without a timestamp get the time of reading: compare the rest.
    let strip = |d: &Draft| Draft {
        timestamp: Timestamp(0),
        ..d.clone()
    };
    assert_eq!(
        lines.iter().map(strip).collect::<Vec<_>>(),
        array.iter().map(strip).collect::<Vec<_>>()
    );
    assert_eq!(lines[0].headers.len(), 3);
    assert_eq!(
        lines[1].timestamp.to_rfc3339(),
        "2026-11-24T10:00:00.500000Z"
    );
    assert_eq!(lines[1].headers[1], Header::new("X-Trace", "t-2"));
    assert_eq!(&lines[2].payload[..], &[0xff, 0x00, 0xfe, 0x01]);
    assert!(lines[3].payload.is_empty());
    assert_eq!(&lines[4].payload[..], b"crlf");
}

#[test]
fn bad_fixtures_name_their_line_and_field() {
    let s = station("orders");
    for (name, line, field) in [
        ("bad-timestamp-line-3.ndjson", 3, "timestamp"),
        ("bad-unknown-field-line-2.ndjson", 2, "paylaod"),
        ("bad-other-station-line-3.ndjson", 3, "station"),
        ("bad-both-payloads-line-1.ndjson", 1, "payload_base64"),
        ("bad-truncated-line-2.ndjson", 2, "payload"),
    ] {
        let e = parse_body(&fixture(name), Some(&s)).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (line, field), "{name}: {e}");
    }
}

#[test]
fn the_seq_rule_names_the_real_bound() {
    assert!(super::parse::SEQ_FORM.ends_with(&format!(" 0 to {MAX_SEQ}")));
    let d = parse_line(&format!(r#"{{"seq":{MAX_SEQ}}}"#), 1, Some(&station("s"))).unwrap();
    assert_eq!(d.seq, Some(MAX_SEQ));
    let d = parse_line(r#"{"seq":0}"#, 1, Some(&station("s"))).unwrap();
    assert_eq!(d.seq, Some(0));
}

#[test]
fn nanoseconds_are_truncated_to_microseconds() {
    let s = station("s");
    for (given, stored) in [
        (
            "2026-11-24T10:00:00.123456789Z",
            "2026-11-24T10:00:00.123456Z",
        ),
        (
            "2026-11-24T10:00:00.123456999Z",
            "2026-11-24T10:00:00.123456Z",
        ),
        (
            "2026-11-24T12:00:00.000000999+02:00",
            "2026-11-24T10:00:00.000000Z",
        ),
        (
            "2026-11-24T10:00:00.1234567Z",
            "2026-11-24T10:00:00.123456Z",
        ),
        // Before 1970 too: the instant is cut to the microsecond at or before it.
        (
            "1969-12-31T23:59:59.999999999Z",
            "1969-12-31T23:59:59.999999Z",
        ),
    ] {
        let line = format!(r#"{{"seq":1,"timestamp":"{given}"}}"#);
        let draft = parse_line(&line, 1, Some(&s)).unwrap();
        assert_eq!(draft.timestamp.to_rfc3339(), stored, "{given}");
        // What Strata writes reads back as the same instant: microseconds round-trip exactly.
        let m = Message {
            station: s.clone(),
            seq: 1,
            timestamp: draft.timestamp,
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: Bytes::new(),
        };
        let again = parse_line(&to_line(&m), 1, None).unwrap();
        assert_eq!(again.timestamp, draft.timestamp, "{given}");
    }
}
