//! `roomgraph resolve` end to end: output equals the library's result; malformed input exits 2 with a
//! message naming the problem; `--time` reports `resolve_ns`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::resolve::{EventIdx, Resolver};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::builder::EventBuilder;
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .arg("resolve")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("binary finishes")
}

fn room(version: &str, seed: u64) -> GeneratedRoom {
    generate(&RoomConfig::small(
        RoomVersion::from_id(version).expect("known"),
        seed,
    ))
}

fn library_result(room: &GeneratedRoom) -> serde_json::Value {
    let (graph, sets) = room.graph();
    let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
    let state = Resolver::new().resolve(&graph, &refs).expect("resolves");
    serde_json::to_value(state.to_named(&graph)).expect("serialises")
}

#[test]
fn output_matches_library_for_every_algorithm() {
    for (version, seed) in [("1", 3), ("2", 4), ("11", 5), ("12", 6)] {
        let room = room(version, seed);
        let out = run(&[], &room.to_request_json());
        assert!(
            out.status.success(),
            "v{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        assert_eq!(printed, library_result(&room), "v{version}");
        assert!(
            printed["m.room.create"][""].is_string(),
            "v{version}: create in the resolved state"
        );
    }
}

#[test]
fn reads_a_file_and_reports_time() {
    let room = room("10", 9);
    let path =
        std::env::temp_dir().join(format!("roomgraph-cli-resolve-{}.json", std::process::id()));
    std::fs::write(&path, room.to_request_json()).expect("write temp file");
    let out = run(
        &[
            path.to_str().expect("utf-8 path"),
            "--time",
            "--repeat",
            "3",
        ],
        "",
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("resolve_ns="))
        .expect("resolve_ns line");
    line["resolve_ns=".len()..]
        .parse::<u64>()
        .expect("a number of nanoseconds");
}

fn request_with(
    room: &GeneratedRoom,
    events: Vec<String>,
    state_sets: serde_json::Value,
) -> String {
    format!(
        r#"{{"room_version":"{}","events":[{}],"state_sets":{},"rejected":[]}}"#,
        room.version.id,
        events.join(","),
        state_sets
    )
}

fn event_texts(room: &GeneratedRoom) -> Vec<String> {
    room.events
        .iter()
        .map(|p| to_canonical_string(&JsonValue::Object(p.json.clone())))
        .collect()
}

fn expect_exit_2(input: &str, needle: &str) {
    let out = run(&[], input);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "expected `{needle}` in `{stderr}`");
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_state_set_id_is_rejected() {
    let room = room("11", 1);
    let mut sets = room.fork_states.clone();
    sets[0].push("$doesnotexist".into());
    expect_exit_2(
        &request_with(&room, event_texts(&room), serde_json::json!(sets)),
        "$doesnotexist",
    );
}

#[test]
fn missing_auth_ancestor_is_rejected() {
    let room = room("11", 2);
    // Drop the first power-levels event: later events cite it.
    let pl = room
        .events
        .iter()
        .position(|p| p.event_type == "m.room.power_levels")
        .expect("has PL");
    let missing = room.events[pl].event_id.to_string();
    let mut events = event_texts(&room);
    events.remove(pl);
    let sets: Vec<Vec<String>> = room
        .fork_states
        .iter()
        .map(|s| s.iter().filter(|id| **id != missing).cloned().collect())
        .collect();
    expect_exit_2(
        &request_with(&room, events, serde_json::json!(sets)),
        &missing,
    );
}

#[test]
fn events_of_another_room_are_rejected() {
    let room = room("11", 3);
    let v = RoomVersion::from_id("11").expect("known");
    let stranger =
        EventBuilder::with_json_content(v, "m.room.topic", "@x:elsewhere", r#"{"topic":"t"}"#)
            .state_key("")
            .room_id("!other:elsewhere")
            .build_json_line();
    let mut events = event_texts(&room);
    events.push(stranger);
    expect_exit_2(
        &request_with(&room, events, serde_json::json!(room.fork_states)),
        "!other:elsewhere",
    );
}

#[test]
fn auth_cycles_are_rejected() {
    let v = RoomVersion::from_id("2").expect("known");
    let ev = |id: &str, auth: &str| {
        EventBuilder::with_json_content(v, "m.room.topic", "@a:x", r#"{"topic":"t"}"#)
            .state_key("")
            .room_id("!r:x")
            .local_id(id)
            .auth_events(&[auth])
            .build_json_line()
    };
    let input = format!(
        r#"{{"room_version":"2","events":[{},{}],"state_sets":[["$a:x"],["$b:x"]]}}"#,
        ev("$a:x", "$b:x"),
        ev("$b:x", "$a:x")
    );
    expect_exit_2(&input, "cycle");
}

#[test]
fn malformed_documents_are_rejected() {
    expect_exit_2("{", "not a resolve request");
    expect_exit_2(
        r#"{"room_version":"99","events":[],"state_sets":[]}"#,
        "unknown room version",
    );
    expect_exit_2(
        r#"{"room_version":"11","events":[{"type":1}],"state_sets":[]}"#,
        "events[0]",
    );
    let room = room("11", 4);
    let mut sets = room.fork_states.clone();
    let dup = sets[0][0].clone();
    sets[0].push(dup.clone());
    expect_exit_2(
        &request_with(&room, event_texts(&room), serde_json::json!(sets)),
        "two events",
    );
}
