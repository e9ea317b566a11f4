//! The PDU commands of the `roomgraph` binary: stable output forms and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn roomgraph(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roomgraph starts");
    // The command may exit before reading its input (e.g. an unknown room version): ignore a broken pipe.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child.wait_with_output().expect("roomgraph runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf8 stderr")
}

const SAMPLE: &str = include_str!("../../../../datasets/sample-room-v11.ndjson");
const SAMPLE_IDS: &str = include_str!("../../../../datasets/sample-room-v11.ids");

#[test]
fn event_id_prints_one_line() {
    for (line, id) in SAMPLE.lines().zip(SAMPLE_IDS.lines()) {
        let out = roomgraph(&["event-id", "--room-version", "11"], line.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{id}\n"));
    }
}

#[test]
fn event_id_reads_a_file_argument() {
    let dir = std::env::temp_dir().join(format!("roomgraph-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("create.json");
    std::fs::write(&path, SAMPLE.lines().next().expect("line")).expect("write");
    let out = roomgraph(
        &[
            "event-id",
            "--room-version",
            "11",
            path.to_str().expect("utf8 path"),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), SAMPLE_IDS.lines().next().expect("id"));
    let missing = roomgraph(
        &["event-id", "--room-version", "11", "/nonexistent/x.json"],
        b"",
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/x.json"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn v1_event_id_is_the_validated_field() {
    let pdu = r#"{"auth_events":[],"content":{},"depth":1,"event_id":"$abc:example.org","hashes":{"sha256":"x"},"origin_server_ts":1,"prev_events":[],"room_id":"!r:example.org","sender":"@u:example.org","signatures":{},"type":"m.room.message"}"#;
    let out = roomgraph(&["event-id", "--room-version", "1"], pdu.as_bytes());
    assert_eq!(stdout(&out), "$abc:example.org\n");
    let bad = pdu.replace("$abc:example.org", "abc");
    let out = roomgraph(&["event-id", "--room-version", "1"], bad.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("event_id"), "{}", stderr(&out));
}

#[test]
fn content_hash_matches_the_stored_hash() {
    let line = SAMPLE.lines().nth(7).expect("message line");
    let expected = line
        .split(r#""sha256":""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("hash in line");
    let out = roomgraph(&["content-hash", "--room-version", "11"], line.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{expected}\n"));
}

#[test]
fn redact_prints_canonical_redacted_json() {
    let line = SAMPLE.lines().nth(1).expect("join line");
    let out = roomgraph(&["redact", "--room-version", "11"], line.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(r#""content":{"membership":"join"}"#),
        "{text}"
    );
    assert!(!text.contains("displayname"));
    assert!(text.ends_with("}\n") && !text.contains(": "));
}

#[test]
fn canonical_json_with_and_without_room_version() {
    let out = roomgraph(
        &["canonical-json"],
        br#"{"b": 1e10, "a": -0, "c": "\u65E5"}"#,
    );
    assert_eq!(stdout(&out), "{\"a\":0,\"b\":10000000000,\"c\":\"日\"}\n");
    let out = roomgraph(
        &["canonical-json", "--room-version", "11"],
        br#"{"a": 1.5}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("float"), "{}", stderr(&out));
    let out = roomgraph(&["canonical-json", "--room-version", "1"], br#"{"a": 1.5}"#);
    assert_eq!(stdout(&out), "{\"a\":1.5}\n");
}

#[test]
fn bad_input_exits_2_with_a_message_and_no_panic() {
    let cases: &[(&[&str], &[u8], &str)] = &[
        (
            &["event-id", "--room-version", "11"],
            b"{not json",
            "invalid JSON",
        ),
        (
            &["event-id", "--room-version", "11"],
            b"[]",
            "not an object",
        ),
        (
            &["event-id", "--room-version", "99"],
            b"{}",
            "unknown room version `99`",
        ),
        (
            &["event-id", "--room-version", "11"],
            b"{\"type\":1}",
            "key `type` must be a string",
        ),
        (
            &["content-hash", "--room-version", "11"],
            b"{\"a\":1,\"a\":2}",
            "duplicate key `a`",
        ),
        (
            &["redact", "--room-version", "11"],
            &[0xff, 0xfe],
            "invalid JSON",
        ),
        (&["canonical-json"], b"{\"a\":1e400}", "invalid JSON"),
    ];
    for (args, input, expected) in cases {
        let out = roomgraph(args, input);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stdout(&out).is_empty());
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in `{err}`"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn inspect_runs_on_the_embedded_sample() {
    let out = roomgraph(&["inspect"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), SAMPLE.lines().count());
    assert!(text.lines().all(|l| l.ends_with("hash-ok")), "{text}");
}
