//! End-to-end tests of `roomgraph auth-check [FILE|-]`: the output contract, each stage, and exit code 2
//! for malformed input only.

use roomgraph_tests::auth_support;

use std::io::Write;
use std::process::{Command, Stdio};

use auth_support::*;
use serde_json::Value;

/// Runs `roomgraph auth-check -` on `input`: (exit code, stdout, stderr).
fn run(input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .args(["auth-check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run roomgraph");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verdict(input: &str) -> Value {
    let (code, stdout, stderr) = run(input);
    assert_eq!(code, 0, "stderr: {stderr}");
    serde_json::from_str(stdout.trim()).expect("JSON verdict")
}

fn rejected(v: &Value, stage: &str, rule: &str) {
    assert_eq!(v["allowed"], false, "{v}");
    assert_eq!(v["stage"], stage, "{v}");
    assert_eq!(v["rule"], rule, "{v}");
    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
}

#[test]
fn allowed_and_rejected_events() {
    for v in ["1", "6", "11", "12"] {
        let mut room = Room::standard(v, "invite", "{}");
        let join = room.build(member(BOB, BOB, "join"));
        let m = if matches!(v, "1" | "12") { 5 } else { 4 };
        let j = if version(v).restricted_join { 3 } else { 2 };
        let reject = if version(v).restricted_join { 7 } else { 6 };
        rejected(
            &verdict(&room.request(&join)),
            "dependent",
            &format!("{m}.{j}.{reject}"),
        );
        room.send(member(ALICE, BOB, "invite"));
        let join = room.build(member(BOB, BOB, "join"));
        assert_eq!(
            verdict(&room.request(&join)),
            serde_json::json!({"allowed": true}),
            "v{v}"
        );
    }
}

#[test]
fn reads_a_file_argument() {
    let room = Room::standard("11", "public", "{}");
    let mut r = room.clone();
    let join = r.build(member(BOB, BOB, "join"));
    let path =
        std::env::temp_dir().join(format!("roomgraph-auth-check-{}.json", std::process::id()));
    std::fs::write(&path, room.request(&join)).expect("write request");
    let out = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .args(["auth-check", path.to_str().expect("utf-8 path")])
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"allowed":true}"#
    );
}

#[test]
fn the_state_before_the_event_is_checked_too() {
    // The join passes against its own auth events (bob was invited) but bob is banned in the state
    // before it.
    let mut room = Room::standard("11", "invite", "{}");
    room.send(member(ALICE, BOB, "invite"));
    let join = room.build(member(BOB, BOB, "join"));
    room.send(member(ALICE, BOB, "ban"));
    let v = verdict(&room.request(&join));
    rejected(&v, "dependent", "4.3.3");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("state before"),
        "{v}"
    );
}

#[test]
fn auth_event_problems_are_independent_failures() {
    let mut room = Room::standard("11", "public", "{}");
    // A rejected auth event.
    let rules = room
        .state_id("m.room.join_rules", "")
        .expect("rules")
        .to_owned();
    room.rejected.push(rules);
    let join = room.build(member(BOB, BOB, "join"));
    rejected(&verdict(&room.request(&join)), "independent", "2.3");
    room.rejected.clear();
    // A missing auth event.
    let mut doc: Value = serde_json::from_str(&room.request(&join)).expect("json");
    let pl = room
        .state_id("m.room.power_levels", "")
        .expect("pl")
        .to_owned();
    doc["events"].as_array_mut().expect("events").retain(|e| {
        let id = roomgraph::event_id::event_id(
            &roomgraph::canonical_json::parse_object(
                e.to_string().as_bytes(),
                roomgraph::NumberPolicy::Strict,
            )
            .expect("event"),
            version("11"),
        )
        .expect("id");
        id != pl
    });
    doc["state"]
        .as_array_mut()
        .expect("state")
        .retain(|id| id != &Value::String(pl.clone()));
    rejected(&verdict(&doc.to_string()), "independent", "2");
    // An event from another room among the auth events is rule 2.5; v12 a missing create is rule 2.
    let mut v12 = Room::standard("12", "public", "{}");
    let msg = v12.build(message(ALICE));
    let mut doc: Value = serde_json::from_str(&v12.request(&msg)).expect("json");
    let create_id = v12.create_id.clone();
    doc["events"]
        .as_array_mut()
        .expect("events")
        .retain(|e| e["type"] != "m.room.create");
    doc["state"]
        .as_array_mut()
        .expect("state")
        .retain(|id| id != &Value::String(create_id.clone()));
    rejected(&verdict(&doc.to_string()), "independent", "2");
}

#[test]
fn cycles_in_the_auth_chain_are_rejected() {
    // v1 ids are chosen by the sender, so an event can cite itself.
    let mut room = Room::standard("1", "public", "{}");
    let join = room.build(member(BOB, BOB, "join"));
    let mut doc: Value = serde_json::from_str(&room.request(&join)).expect("json");
    let id = join.event_id().to_owned();
    for e in doc["events"].as_array_mut().expect("events") {
        if e["event_id"] == id.as_str() {
            e["auth_events"]
                .as_array_mut()
                .expect("auth")
                .push(serde_json::json!([id, {"sha256": ""}]));
        }
    }
    let v = verdict(&doc.to_string());
    rejected(&v, "independent", "2");
    assert!(v["reason"].as_str().unwrap_or("").contains("cycle"), "{v}");
}

#[test]
fn an_invalid_pdu_is_a_format_failure() {
    let mut room = Room::standard("1", "public", "{}");
    let join = room.build(member(BOB, BOB, "join"));
    let mut doc: Value = serde_json::from_str(&room.request(&join)).expect("json");
    for e in doc["events"].as_array_mut().expect("events") {
        if e["event_id"] == join.event_id() {
            e["depth"] = serde_json::json!(-1);
        }
    }
    rejected(&verdict(&doc.to_string()), "format", "format");
}

#[test]
fn malformed_power_levels_are_named() {
    let mut room = Room::standard("11", "public", "{}");
    let pl = room.build(state(
        "m.room.power_levels",
        ALICE,
        r#"{"users":{"@alice:a.org":"100"}}"#,
    ));
    let v = verdict(&room.request(&pl));
    rejected(&v, "dependent", "9.3");
}

#[test]
fn malformed_input_exits_2() {
    let room = Room::standard("11", "public", "{}");
    let mut r = room.clone();
    let join = r.build(member(BOB, BOB, "join"));
    let good: Value = serde_json::from_str(&room.request(&join)).expect("json");
    let mut unknown_version = good.clone();
    unknown_version["room_version"] = "99".into();
    let mut unknown_event = good.clone();
    unknown_event["event"] = "$nope".into();
    let mut unknown_state = good.clone();
    unknown_state["state"]
        .as_array_mut()
        .expect("state")
        .push("$nope".into());
    let mut no_state = good.clone();
    no_state.as_object_mut().expect("object").remove("state");
    let mut bad_event = good.clone();
    bad_event["events"]
        .as_array_mut()
        .expect("events")
        .push(serde_json::json!([1, 2]));
    for (name, input) in [
        ("not json", "{".to_owned()),
        ("not an object", "[]".to_owned()),
        ("unknown version", unknown_version.to_string()),
        ("unknown event", unknown_event.to_string()),
        ("unknown state id", unknown_state.to_string()),
        ("missing state", no_state.to_string()),
        ("event that is not an object", bad_event.to_string()),
    ] {
        let (code, stdout, stderr) = run(&input);
        assert_eq!(code, 2, "{name}: {stdout}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(stderr.starts_with("roomgraph: "), "{name}: {stderr}");
    }
}

/// Synapse's `validate_event_for_room_version`: a restricted join its authorising server did not sign,
/// and an event its sender's server did not sign, fail on receipt — stage `format`, before the rules.
#[test]
fn missing_required_signatures_fail_on_receipt() {
    for (v, m) in [("8", 4), ("11", 4), ("12", 5)] {
        let pl = r#"{"invite":0,"users":{"@carol:b.org":50}}"#;
        let mut room = Room::standard(v, "restricted", pl);
        room.send(member(ALICE, CAROL, "invite"));
        room.send(member(CAROL, CAROL, "join"));
        let via_carol = || {
            spec(
                "m.room.member",
                BOB,
                Some(BOB),
                &format!(r#"{{"membership":"join","join_authorised_via_users_server":"{CAROL}"}}"#),
            )
        };
        let unsigned = room.build(via_carol());
        let verdict_unsigned = verdict(&room.request(&unsigned));
        rejected(&verdict_unsigned, "format", &format!("{m}.2"));
        assert!(
            verdict_unsigned["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not signed by b.org")),
            "{verdict_unsigned}"
        );
        let signed = room.build(via_carol().signed_by("b.org"));
        assert_eq!(
            verdict(&room.request(&signed)),
            serde_json::json!({"allowed": true}),
            "v{v}"
        );
    }
    // The sender's server, in any version.
    let mut room = Room::standard("11", "public", "{}");
    let join = room.build(member(BOB, BOB, "join"));
    let mut json = join.pdu.json.clone();
    json.insert(
        "signatures".into(),
        roomgraph::JsonValue::Object(roomgraph::JsonObject::new()),
    );
    let stripped = roomgraph::auth::AuthEvent::new(
        roomgraph::Pdu::from_json(json, join.pdu.version)
            .expect("valid")
            .into_owned(),
    );
    rejected(
        &verdict(&room.request(&stripped)),
        "format",
        "signatures.sender",
    );
}
