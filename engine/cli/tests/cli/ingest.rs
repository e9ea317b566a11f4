//! End-to-end tests of `roomgraph ingest`, `roomgraph state` and `roomgraph event` (the stable command
//! line contract), including crash safety under SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use roomgraph::ingest::{Engine, Position};
use roomgraph::room_version::RoomVersion;
use roomgraph_store::{Store, test_support};
use roomgraph_testkit::builder::EventBuilder;
use roomgraph_testkit::rng::Rng;
use roomgraph_testkit::trace::{Trace, TraceSpec, generate};

/// The binary under test; `ROOMGRAPH_BIN` overrides it (useful when a shared target directory may hold a
/// build without the `store` feature).
fn bin() -> String {
    std::env::var("ROOMGRAPH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomgraph").to_owned())
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn roomgraph")
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&p, text).expect("write input");
    p
}

fn summary(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `roomgraph ingest`; returns the summary and the outcome lines.
fn ingest(db: &Path, input: &Path, extra: &[&str]) -> (serde_json::Value, Vec<serde_json::Value>) {
    let outcomes = db.with_extension("outcomes");
    let mut args = vec![
        "ingest",
        "--db",
        db.to_str().expect("utf8"),
        input.to_str().expect("utf8"),
        "--outcomes",
        outcomes.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let s = summary(&run(&args));
    let lines = std::fs::read_to_string(&outcomes).expect("outcomes file");
    let parsed = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("outcome line is JSON"))
        .collect();
    (s, parsed)
}

/// event id → outcome, the last report winning (events first reported pending may be decided later).
fn final_outcomes(runs: &[Vec<serde_json::Value>]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for run in runs {
        for o in run {
            if let Some(id) = o["event_id"].as_str() {
                let outcome = o["outcome"].as_str().unwrap_or_default().to_owned();
                if outcome == "duplicate" && m.contains_key(id) {
                    continue;
                }
                m.insert(id.to_owned(), outcome);
            }
        }
    }
    m
}

fn state_cli(db: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["state", "--db", db.to_str().expect("utf8")];
    a.extend_from_slice(args);
    let out = run(&a);
    assert!(
        out.status.success(),
        "state {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("state is JSON")
}

/// Every state the store holds for the trace: current state per room, before/after every event.
fn all_states(db: &Path, trace: &Trace) -> BTreeMap<String, String> {
    let engine = Engine::open(db).expect("open store");
    let mut out = BTreeMap::new();
    for room in &trace.rooms {
        out.insert(
            format!("current {room}"),
            format!("{:?}", engine.current_state(room).expect("current")),
        );
    }
    for id in &trace.ids {
        let id = id.clone();
        for (pos, name) in [(Position::Before, "before"), (Position::After, "after")] {
            let s = engine
                .state_at(&id, pos)
                .map(|m| format!("{m:?}"))
                .unwrap_or_else(|e| format!("error {e}"));
            out.insert(format!("{name} {id}"), s);
        }
    }
    out
}

fn event_id(line: &str) -> String {
    let v = RoomVersion::from_id("11").expect("v11");
    roomgraph::pdu::Pdu::parse(line.as_bytes(), v)
        .expect("trace line parses")
        .event_id
        .to_string()
}

fn small_trace(seed: u64) -> Trace {
    generate(&TraceSpec {
        rooms: 3,
        events: 240,
        big_room_members: 40,
        fork_every: 9,
        bad_every: 20,
        seed,
        ..TraceSpec::default()
    })
}

#[test]
fn sample_room_ingests_and_answers_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample-room-v11.ndjson");
    let (s, outcomes) = ingest(&db, &sample, &[]);
    assert_eq!(
        s,
        serde_json::json!({"accepted": 13, "rejected": 0, "soft_failed": 0, "pending": 0, "duplicates": 0, "invalid": 0, "outliers": 0, "deoutliered": 0, "signatures": "not_checked"})
    );
    assert_eq!(outcomes.len(), 13);
    let ids = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample-room-v11.ids"),
    )
    .expect("ids");
    let ids: Vec<&str> = ids.lines().collect();
    // The outcome lines, byte for byte: the input line first, then the fields as before.
    let text = std::fs::read_to_string(db.with_extension("outcomes")).expect("outcomes");
    let want: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                r#"{{"line":{},"event_id":"{id}","outcome":"accepted","reason":""}}"#,
                i + 1
            )
        })
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
    let state = state_cli(&db, &["--room", "!sample:example.org"]);
    assert_eq!(state["m.room.create"][""], ids[0]);
    assert!(state["m.room.member"]["@alice:example.org"].is_string());
    // Before/after around a state event.
    let topic = ids
        .iter()
        .copied()
        .find(|id| state["m.room.topic"][""] == *id)
        .expect("topic in state");
    let after = state_cli(&db, &["--event", topic]);
    let before = state_cli(&db, &["--event", topic, "--before"]);
    assert_eq!(after["m.room.topic"][""], topic);
    assert!(before.get("m.room.topic").is_none());
    let ev = run(&["event", "--db", db.to_str().expect("utf8"), ids[0]]);
    assert!(ev.status.success());
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).expect("event JSON");
    assert_eq!(ev["outcome"], "accepted");
    assert_eq!(ev["pdu"]["type"], "m.room.create");
    let db_s = db.to_str().expect("utf8");
    let ext = run(&["extremities", "--db", db_s, "--room", "!sample:example.org"]);
    assert!(
        ext.status.success(),
        "{}",
        String::from_utf8_lossy(&ext.stderr)
    );
    let last = *ids.last().expect("ids");
    assert_eq!(
        String::from_utf8_lossy(&ext.stdout),
        format!("[\"{last}\"]\n")
    );
    let nowhere = run(&[
        "extremities",
        "--db",
        db_s,
        "--room",
        "!nowhere:example.org",
    ]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("unknown room !nowhere:example.org"));
    // Re-ingesting is idempotent.
    let (s, _) = ingest(&db, &sample, &[]);
    assert_eq!(s["duplicates"], 13);
    assert_eq!(s["accepted"], 0);
    // Unknown ids are clear errors.
    let missing = run(&["event", "--db", db.to_str().expect("utf8"), "$nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unknown event $nope"));
}

#[test]
fn dag_order_shuffled_order_and_batches_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = small_trace(7);
    let dag = write_lines(dir.path(), "dag.ndjson", &trace.lines);
    let mut shuffled = trace.lines.clone();
    Rng::new(99).shuffle(&mut shuffled);
    let shuf = write_lines(dir.path(), "shuffled.ndjson", &shuffled);

    let db_a = dir.path().join("a");
    let (sa, oa) = ingest(&db_a, &dag, &[]);
    assert_eq!(sa["pending"], 0);
    assert_eq!(sa["invalid"], 0);
    assert_eq!(
        sa["rejected"].as_u64(),
        Some(trace.bad.len() as u64),
        "{sa}"
    );

    let db_b = dir.path().join("b");
    let (sb, ob) = ingest(&db_b, &shuf, &["--batch-lines", "50"]);
    assert_eq!(sb["pending"], 0, "{sb}");

    // Several batches: thirds of the shuffled file, one `roomgraph ingest` each.
    let db_c = dir.path().join("c");
    let mut runs = Vec::new();
    for (i, chunk) in shuffled.chunks(shuffled.len().div_ceil(3)).enumerate() {
        let f = write_lines(dir.path(), &format!("part{i}.ndjson"), chunk);
        let (_, o) = ingest(&db_c, &f, &[]);
        runs.push(o);
    }

    let fa = final_outcomes(&[oa]);
    let fb = final_outcomes(&[ob]);
    let fc = final_outcomes(&runs);
    assert_eq!(fa.len(), trace.lines.len());
    assert_eq!(fa, fb, "DAG order vs shuffled");
    assert_eq!(fa, fc, "DAG order vs batches");
    let (a, b, c) = (
        all_states(&db_a, &trace),
        all_states(&db_b, &trace),
        all_states(&db_c, &trace),
    );
    assert_eq!(a, b, "states: DAG order vs shuffled");
    assert_eq!(a, c, "states: DAG order vs batches");
}

#[test]
fn crash_safety_under_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = generate(&TraceSpec {
        rooms: 4,
        events: 1500,
        big_room_members: 150,
        fork_every: 12,
        bad_every: 30,
        seed: 3,
        ..TraceSpec::default()
    });
    let input = write_lines(dir.path(), "trace.ndjson", &trace.lines);

    let reference = dir.path().join("reference");
    let t0 = Instant::now();
    let (s, _) = ingest(&reference, &input, &["--batch-lines", "40"]);
    let full = t0.elapsed();
    assert_eq!(s["pending"], 0);
    let want = all_states(&reference, &trace);

    let mut rng = Rng::new(2024);
    let mut killed_mid_run = 0;
    for round in 0..4 {
        let db = dir.path().join(format!("crash{round}"));
        let outcomes = dir.path().join(format!("crash{round}.outcomes"));
        let mut child = Command::new(bin())
            .args([
                "ingest",
                "--db",
                db.to_str().expect("utf8"),
                input.to_str().expect("utf8"),
                "--outcomes",
                outcomes.to_str().expect("utf8"),
                "--batch-lines",
                "40",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ingest");
        let wait = full.mul_f64(0.15 + 0.7 * (rng.below(1000) as f64 / 1000.0));
        std::thread::sleep(wait);
        if child.try_wait().expect("try_wait").is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL on Unix
        child.wait().expect("reap");

        // Every event reported as stored is there, with its outcome and its state.
        let reported = std::fs::read_to_string(&outcomes).unwrap_or_default();
        {
            let engine = Engine::open(&db).expect("reopen after SIGKILL");
            for line in reported.lines() {
                // The last line may be torn by the kill.
                let Ok(o) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let (Some(id), Some(outcome)) = (o["event_id"].as_str(), o["outcome"].as_str())
                else {
                    continue;
                };
                if !matches!(outcome, "accepted" | "rejected" | "soft_failed") {
                    continue;
                }
                let ev = engine.event(id).expect("read").unwrap_or_else(|| {
                    panic!("round {round}: reported {outcome} event {id} is missing")
                });
                assert_eq!(ev.status.as_str(), outcome, "round {round}: {id}");
                engine.state_at(id, Position::Before).expect("state before");
                engine.state_at(id, Position::After).expect("state after");
            }
            // Store consistency: every stored event of the trace has its states and they load.
            for id in &trace.ids {
                if engine.event(id).expect("read").is_some() {
                    engine
                        .state_at(id, Position::After)
                        .unwrap_or_else(|e| panic!("round {round}: {id}: {e}"));
                }
            }
        }
        // Finishing the ingest gives the states of an uninterrupted run.
        let (s, _) = ingest(&db, &input, &["--batch-lines", "40"]);
        assert_eq!(s["pending"], 0, "round {round}: {s}");
        assert_eq!(
            all_states(&db, &trace),
            want,
            "round {round}: states differ from the uninterrupted run"
        );
    }
    eprintln!("crash test: {killed_mid_run}/4 rounds killed mid-run (full run {full:?})");
}

#[test]
fn bad_input_is_reported_and_changes_nothing_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = generate(&TraceSpec {
        rooms: 2,
        events: 60,
        big_room_members: 5,
        fork_every: 0,
        bad_every: 0,
        open_fork_at_end: false,
        seed: 5,
        ..TraceSpec::default()
    });
    let v11 = RoomVersion::from_id("11").expect("v11");
    let db = dir.path().join("db");
    let good = write_lines(dir.path(), "good.ndjson", &trace.lines);
    let (s, _) = ingest(&db, &good, &[]);
    assert_eq!(
        s["accepted"].as_u64(),
        Some(trace.lines.len() as u64),
        "{s}"
    );
    let before_states = all_states(&db, &trace);

    let room0 = trace.rooms[0].clone();
    let room1 = trace.rooms[1].clone();
    let engine = Engine::open(&db).expect("open");
    let ext1 = engine.extremities(&room1).expect("extremities");
    let st0 = engine.current_state(&room0).expect("state");
    let st1 = engine.current_state(&room1).expect("state");
    drop(engine);
    let key = |t: &str, s: &str| (t.to_owned(), s.to_owned());
    let admin1 = st1
        .keys()
        .find(|(t, s)| t == "m.room.member" && s.starts_with("@admin"))
        .map(|k| k.1.clone())
        .expect("admin");
    let admin0 = st0
        .keys()
        .find(|(t, s)| t == "m.room.member" && s.starts_with("@admin"))
        .map(|k| k.1.clone())
        .expect("admin");

    // Forged auth_events: an event of room 1 citing room 0's create, power levels and membership.
    let forged =
        EventBuilder::with_json_content(v11, "m.room.topic", &admin0, r#"{"topic":"hijack"}"#)
            .state_key("")
            .room_id(&room1)
            .depth(100)
            .prev_events(&ext1)
            .auth_events(&[
                st0[&key("m.room.create", "")].clone(),
                st0[&key("m.room.power_levels", "")].clone(),
                st0[&key("m.room.member", &admin0)].clone(),
            ])
            .build_json_line();
    // A hash mismatch: a message whose body changed after hashing.
    let msg = EventBuilder::with_json_content(
        v11,
        "m.room.message",
        &admin1,
        r#"{"msgtype":"m.text","body":"original"}"#,
    )
    .room_id(&room1)
    .depth(100)
    .prev_events(&ext1)
    .auth_events(&[
        st1[&key("m.room.create", "")].clone(),
        st1[&key("m.room.power_levels", "")].clone(),
        st1[&key("m.room.member", &admin1)].clone(),
    ])
    .build_json_line()
    .replace("original", "tampered");
    // An event of a room nobody has seen.
    let unknown =
        EventBuilder::with_json_content(v11, "m.room.message", "@x:elsewhere", r#"{"body":"hi"}"#)
            .room_id("!ghost:elsewhere")
            .prev_events(&["$a"])
            .auth_events(&["$b"])
            .build_json_line();
    let truncated = trace.lines[5][..trace.lines[5].len() / 2].to_owned();
    let lines = vec![
        truncated,
        "{not json".to_owned(),
        "[1,2,3]".to_owned(),
        forged.clone(),
        msg.clone(),
        unknown.clone(),
        r#"{"type":"m.room.message","room_id":"!r:x"}"#.to_owned(),
    ];
    let bad = write_lines(dir.path(), "bad.ndjson", &lines);
    let outcomes_path = db.with_extension("outcomes");
    let out = run(&[
        "ingest",
        "--db",
        db.to_str().expect("utf8"),
        bad.to_str().expect("utf8"),
        "--outcomes",
        outcomes_path.to_str().expect("utf8"),
    ]);
    let s = summary(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in [1, 2, 3] {
        assert!(
            stderr.contains(&format!("line {n}:")),
            "stderr names line {n}: {stderr}"
        );
    }
    assert_eq!(s["invalid"], 3, "{s}; stderr: {stderr}");
    assert_eq!(s["rejected"], 1, "{s}");
    assert_eq!(s["accepted"], 1, "{s}");
    assert_eq!(s["pending"], 2, "{s}");
    let outcomes: Vec<serde_json::Value> = std::fs::read_to_string(&outcomes_path)
        .expect("outcomes")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let forged_id = event_id(&forged);
    let forged_o = outcomes
        .iter()
        .find(|o| o["event_id"] == forged_id.as_str())
        .expect("forged outcome");
    assert_eq!(forged_o["outcome"], "rejected");
    let msg_id = event_id(&msg);
    let msg_o = outcomes
        .iter()
        .find(|o| o["event_id"] == msg_id.as_str())
        .expect("hash mismatch outcome");
    assert!(
        msg_o["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("content hash mismatch"),
        "{msg_o}"
    );
    let ev: serde_json::Value = serde_json::from_slice(
        &run(&["event", "--db", db.to_str().expect("utf8"), &msg_id]).stdout,
    )
    .expect("event");
    assert_eq!(ev["redacted"], true);
    assert!(
        ev["pdu"]["content"].get("body").is_none(),
        "stored redacted: {ev}"
    );
    // Nothing stored before changed (the forged topic did not enter room 1's state).
    let after_states = all_states(&db, &trace);
    assert_eq!(before_states, after_states);
    let now1 = Engine::open(&db)
        .expect("open")
        .current_state(&room1)
        .expect("state");
    assert_eq!(
        now1.get(&key("m.room.topic", "")),
        st1.get(&key("m.room.topic", ""))
    );
}

#[test]
fn foreign_directory_and_schema_mismatch_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample-room-v11.ndjson");
    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("cat.jpg"), b"meow").expect("write");
    let out = run(&[
        "ingest",
        "--db",
        foreign.to_str().expect("utf8"),
        sample.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a roomgraph store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(foreign.join("cat.jpg")).expect("untouched"),
        b"meow"
    );
    assert_eq!(std::fs::read_dir(&foreign).expect("ls").count(), 1);

    let db = dir.path().join("db");
    let (s, _) = ingest(&db, &sample, &[]);
    assert_eq!(s["accepted"], 13);
    {
        let store = Store::open(&db).expect("open");
        test_support::set_schema_version(&store, "0").expect("commit");
    }
    let out = run(&[
        "state",
        "--db",
        db.to_str().expect("utf8"),
        "--room",
        "!sample:example.org",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 0") && err.contains("reads schema version"),
        "{err}"
    );
}

#[test]
fn waits_for_parents_across_runs_and_reports_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = small_trace(11);
    let db = dir.path().join("db");
    // The second half first: everything waits (rooms unknown or parents missing), nothing is lost.
    let half = trace.lines.len() / 2;
    let second = write_lines(dir.path(), "second.ndjson", &trace.lines[half..]);
    let (s, o) = ingest(&db, &second, &[]);
    assert_eq!(
        s["pending"].as_u64(),
        Some((trace.lines.len() - half) as u64),
        "{s}"
    );
    assert!(o.iter().all(|o| o["outcome"] == "pending"));
    let numbers: Vec<u64> = o.iter().filter_map(|o| o["line"].as_u64()).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert_eq!(numbers.len(), trace.lines.len() - half);
    let first = write_lines(dir.path(), "first.ndjson", &trace.lines[..half]);
    let (s, o) = ingest(&db, &first, &[]);
    assert_eq!(s["pending"], 0, "{s}");
    // The events replayed from the pending set have no input line in this run.
    // (An outlier that joined the timeline has a second, `deoutliered` line.)
    let first_lines = || o.iter().filter(|o| o["deoutliered"] != true);
    let replayed = first_lines().filter(|o| o["line"].is_null()).count();
    assert_eq!(replayed, trace.lines.len() - half);
    let numbers: Vec<u64> = first_lines().filter_map(|o| o["line"].as_u64()).collect();
    assert_eq!(numbers, (1..=half as u64).collect::<Vec<_>>());
    // Every event decided once, counting an outlier that joined the timeline once.
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let total = n("accepted") + n("rejected") + n("soft_failed") + n("outliers") - n("deoutliered");
    assert_eq!(total, trace.lines.len() as u64, "{s}");
    let _ = Duration::from_secs(0);
}

/// An event whose prev event is missing becomes an outlier (and everything after it, which cites an
/// outlier); the missing event de-outliers them. With the state after the missing event as a hint,
/// the same input is placed in the timeline at once, with the states a full ingest gives.
#[test]
fn state_hints_and_outliers_through_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample-room-v11.ndjson");
    let sample: Vec<String> = std::fs::read_to_string(&sample_path)
        .expect("sample")
        .lines()
        .map(str::to_owned)
        .collect();
    let ids: Vec<String> = sample.iter().map(|l| event_id(l)).collect();
    let room = "!sample:example.org";
    // Line 8 (index 7) is a message; every later event descends from it.
    let mut gapped = sample.clone();
    let missing = gapped.remove(7);
    let gapped_path = write_lines(dir.path(), "gapped.ndjson", &gapped);

    let reference = dir.path().join("reference");
    let (s, _) = ingest(&reference, &sample_path, &[]);
    assert_eq!(s["accepted"], 13, "{s}");
    let full_state = state_cli(&reference, &["--room", room]);
    let after_missing = state_cli(&reference, &["--event", &ids[7]]);

    // Without a hint: outliers, then de-outliered by the missing event.
    let db = dir.path().join("a");
    let (s, o) = ingest(&db, &gapped_path, &[]);
    assert_eq!(s["accepted"], 7, "{s}");
    assert_eq!(s["outliers"], 5, "{s}");
    assert_eq!(s["pending"], 0, "{s}");
    assert!(o.iter().skip(7).all(|o| o["outcome"] == "outlier"), "{o:?}");
    let ev = run(&["event", "--db", db.to_str().expect("utf8"), &ids[8]]);
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).expect("event JSON");
    assert_eq!(ev["outcome"], "outlier");
    let no_state = run(&[
        "state",
        "--db",
        db.to_str().expect("utf8"),
        "--event",
        &ids[8],
    ]);
    assert_eq!(no_state.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_state.stderr).contains("is an outlier"));
    // `state --events`: the outlier's line says so, the other ids are answered, exit code 2.
    let some = write_lines(dir.path(), "some.txt", &[ids[6].clone(), ids[8].clone()]);
    let lines = run(&[
        "state",
        "--db",
        db.to_str().expect("utf8"),
        "--events",
        some.to_str().expect("utf8"),
    ]);
    assert_eq!(lines.status.code(), Some(2));
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&lines.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(answers.len(), 2);
    assert!(answers[0]["state"].is_object(), "{answers:?}");
    assert!(
        answers[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is an outlier")),
        "{answers:?}"
    );
    let missing_path = write_lines(dir.path(), "missing.ndjson", &[missing]);
    let (s, o) = ingest(&db, &missing_path, &[]);
    assert_eq!(s["accepted"], 6, "{s}");
    assert_eq!(s["deoutliered"], 5, "{s}");
    assert_eq!(
        o.iter().filter(|o| o["deoutliered"] == true).count(),
        5,
        "{o:?}"
    );
    assert_eq!(state_cli(&db, &["--room", room]), full_state);
    assert_eq!(
        Engine::open(&db)
            .expect("open")
            .extremities(room)
            .expect("ext"),
        vec![ids[12].clone()]
    );

    // With the state after the missing event as a hint: timeline events at once.
    let mut state_ids: Vec<String> = Vec::new();
    for keys in after_missing.as_object().expect("state map").values() {
        for id in keys.as_object().expect("keys").values() {
            state_ids.push(id.as_str().expect("id").to_owned());
        }
    }
    let hint = serde_json::json!({"event_id": ids[7], "state_after": state_ids}).to_string();
    let hints = write_lines(dir.path(), "hints.ndjson", &[hint]);
    let db = dir.path().join("b");
    let (s, _) = ingest(
        &db,
        &gapped_path,
        &["--state-hints", hints.to_str().expect("utf8")],
    );
    assert_eq!(s["accepted"], 12, "{s}");
    assert_eq!(s["outliers"], 0, "{s}");
    assert_eq!(state_cli(&db, &["--room", room]), full_state);
    for (i, id) in ids.iter().enumerate().skip(8) {
        assert_eq!(
            state_cli(&db, &["--event", id, "--before"]),
            state_cli(&reference, &["--event", id, "--before"]),
            "state before line {}",
            i + 1
        );
    }

    // A malformed hints file is refused before the store is touched.
    let bad = write_lines(
        dir.path(),
        "bad.ndjson",
        &["{\"event_id\":\"$x\"}".to_owned()],
    );
    let db = dir.path().join("c");
    let out = run(&[
        "ingest",
        "--db",
        db.to_str().expect("utf8"),
        gapped_path.to_str().expect("utf8"),
        "--state-hints",
        bad.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.ndjson line 1"));
    assert!(!db.exists());
}

/// One room's events under construction for the signature tests: each built event is recorded with
/// its id, and its line is returned.
struct Chain {
    version: &'static RoomVersion,
    room_id: String,
    ts: i64,
    ids: BTreeMap<&'static str, String>,
}

impl Chain {
    fn new(version: &str, room_id: &str) -> Chain {
        Chain {
            version: RoomVersion::from_id(version).expect("known"),
            room_id: room_id.to_owned(),
            ts: 1_000,
            ids: BTreeMap::new(),
        }
    }

    /// An event named `name` citing the named `auth` and `prev` events; `finish` signs it.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        name: &'static str,
        event_type: &str,
        sender: &str,
        state_key: Option<&str>,
        content: &str,
        auth: &[&str],
        prev: &[&str],
        finish: impl FnOnce(EventBuilder) -> EventBuilder,
    ) -> String {
        self.ts += 1;
        let ids =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| self.ids[n].clone()).collect() };
        let mut b = EventBuilder::with_json_content(self.version, event_type, sender, content)
            .room_id(&self.room_id)
            .origin_server_ts(self.ts)
            .depth(self.ts - 1_000)
            .auth_events(&ids(auth))
            .prev_events(&ids(prev));
        if let Some(k) = state_key {
            b = b.state_key(k);
        }
        let line = finish(b).build_json_line();
        let id = roomgraph::pdu::Pdu::parse(line.as_bytes(), self.version)
            .expect("valid PDU")
            .event_id
            .to_string();
        self.ids.insert(name, id);
        line
    }
}

/// A test key: the secret is derived from a label.
fn test_seed(label: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, b) in label.bytes().enumerate() {
        seed[i % 32] ^= b.wrapping_mul(31).wrapping_add(i as u8);
    }
    seed
}

fn b64(bytes: &[u8]) -> String {
    roomgraph::hashes::base64_standard(bytes)
}

/// `roomgraph ingest --keys FILE`: each signature failure is `invalid` with the server and key id, and
/// nothing is stored; without `--keys` only presence is checked (a restricted join its authorising
/// server did not sign is rejected, as Synapse's `validate_event_for_room_version` rejects it).
#[test]
fn signatures_are_verified_with_keys_and_their_presence_without() {
    use roomgraph::signatures::public_key;
    const ALICE: &str = "@alice:a.org";
    const BOB: &str = "@bob:a.org";
    const DAVE: &str = "@dave:a.org";
    const CAROL: &str = "@carol:b.org";
    const EVE: &str = "@eve:c.org";
    let (a, b, c) = (test_seed("a.org"), test_seed("b.org"), test_seed("c.org"));
    let wrong = test_seed("not a.org");
    let by_a = |e: EventBuilder| e.sign("a.org", "ed25519:1", &a);

    let mut r = Chain::new("11", "!r:a.org");
    let mut lines = vec![
        r.event(
            "CREATE",
            "m.room.create",
            ALICE,
            Some(""),
            r#"{"room_version":"11"}"#,
            &[],
            &[],
            by_a,
        ),
        r.event(
            "MA",
            "m.room.member",
            ALICE,
            Some(ALICE),
            r#"{"membership":"join"}"#,
            &["CREATE"],
            &["CREATE"],
            by_a,
        ),
        r.event(
            "PL",
            "m.room.power_levels",
            ALICE,
            Some(""),
            r#"{"invite":0,"users":{"@alice:a.org":100,"@carol:b.org":50}}"#,
            &["CREATE", "MA"],
            &["MA"],
            by_a,
        ),
        r.event(
            "JR",
            "m.room.join_rules",
            ALICE,
            Some(""),
            r#"{"allow":[],"join_rule":"restricted"}"#,
            &["CREATE", "PL", "MA"],
            &["PL"],
            by_a,
        ),
        r.event(
            "IC",
            "m.room.member",
            ALICE,
            Some(CAROL),
            r#"{"membership":"invite"}"#,
            &["CREATE", "PL", "MA", "JR"],
            &["JR"],
            by_a,
        ),
        r.event(
            "MC",
            "m.room.member",
            CAROL,
            Some(CAROL),
            r#"{"membership":"join"}"#,
            &["CREATE", "PL", "JR", "IC"],
            &["IC"],
            |e| e.sign("b.org", "ed25519:1", &b),
        ),
    ];
    let via_carol = r#"{"join_authorised_via_users_server":"@carol:b.org","membership":"join"}"#;
    let join_auth = ["CREATE", "PL", "JR", "MC"];
    // Valid: signed by the sender's server and the authorising server.
    lines.push(r.event(
        "MB",
        "m.room.member",
        BOB,
        Some(BOB),
        via_carol,
        &join_auth,
        &["MC"],
        |e| by_a(e).sign("b.org", "ed25519:1", &b),
    ));
    // The authorising server's signature is missing.
    lines.push(r.event(
        "MD",
        "m.room.member",
        DAVE,
        Some(DAVE),
        via_carol,
        &join_auth,
        &["MB"],
        by_a,
    ));
    let msg_auth = ["CREATE", "PL", "MA"];
    // Signed with a key that is not a.org's.
    lines.push(r.event(
        "WRONG",
        "m.room.message",
        ALICE,
        None,
        r#"{"body":"w"}"#,
        &msg_auth,
        &["MB"],
        |e| e.sign("a.org", "ed25519:1", &wrong),
    ));
    // Content changed after signing: in a key the signature does not cover (stored redacted)…
    let renamed = r
        .event(
            "BODY",
            "m.room.message",
            ALICE,
            None,
            r#"{"body":"original"}"#,
            &msg_auth,
            &["MB"],
            by_a,
        )
        .replace("original", "tampered");
    r.ids.insert("BODY", event_id(&renamed));
    lines.push(renamed);
    // …and in one it covers.
    let opened = r
        .event(
            "JR2",
            "m.room.join_rules",
            ALICE,
            Some(""),
            r#"{"join_rule":"restricted"}"#,
            &msg_auth,
            &["MB"],
            by_a,
        )
        .replace("restricted", "public");
    r.ids.insert("JR2", event_id(&opened));
    lines.push(opened);
    // Key validity: c.org's key expired before these events were sent; v5 enforces it, v4 does not.
    let mut five = Chain::new("5", "!five:c.org");
    lines.push(five.event(
        "CREATE",
        "m.room.create",
        EVE,
        Some(""),
        r#"{"creator":"@eve:c.org","room_version":"5"}"#,
        &[],
        &[],
        |e| e.sign("c.org", "ed25519:1", &c),
    ));
    let mut four = Chain::new("4", "!four:c.org");
    lines.push(four.event(
        "CREATE",
        "m.room.create",
        EVE,
        Some(""),
        r#"{"creator":"@eve:c.org","room_version":"4"}"#,
        &[],
        &[],
        |e| e.sign("c.org", "ed25519:1", &c),
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_lines(dir.path(), "signed.ndjson", &lines);
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        serde_json::json!({
            "a.org": {"ed25519:1": {"key": b64(&public_key(&a))}},
            "b.org": {"ed25519:1": {"key": b64(&public_key(&b)), "valid_until_ts": 9_999_999}},
            "c.org": {"ed25519:1": {"key": b64(&public_key(&c)), "valid_until_ts": 500}},
        })
        .to_string(),
    )
    .expect("write keys");
    let by_id = |outcomes: &[serde_json::Value]| -> BTreeMap<String, (String, String)> {
        outcomes
            .iter()
            .filter_map(|o| {
                let reason = o["reason"].as_str().unwrap_or_default().to_owned();
                let outcome = o["outcome"].as_str().unwrap_or_default().to_owned();
                o["event_id"]
                    .as_str()
                    .map(|id| (id.to_owned(), (outcome, reason)))
            })
            .collect()
    };

    // With keys.
    let db = dir.path().join("checked");
    let out = run(&[
        "ingest",
        "--db",
        db.to_str().expect("utf8"),
        input.to_str().expect("utf8"),
        "--outcomes",
        db.with_extension("outcomes").to_str().expect("utf8"),
        "--keys",
        keys.to_str().expect("utf8"),
    ]);
    let s = summary(&out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"accepted":9,"deoutliered":0,"duplicates":0,"invalid":4,"outliers":0,"pending":0,"rejected":0,"soft_failed":0,"signatures":"checked"}"#,
        "{s}; stderr: {stderr}"
    );
    let outcomes = std::fs::read_to_string(db.with_extension("outcomes")).expect("outcomes");
    let lines_out: Vec<serde_json::Value> = outcomes
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let decided = by_id(&lines_out);
    for name in ["CREATE", "MA", "PL", "JR", "IC", "MC", "MB"] {
        assert_eq!(decided[&r.ids[name]].0, "accepted", "{name}: {decided:?}");
    }
    let body = &decided[&r.ids["BODY"]];
    assert_eq!(body.0, "accepted");
    assert!(body.1.contains("content hash mismatch"), "{body:?}");
    assert_eq!(
        decided[&four.ids["CREATE"]].0, "accepted",
        "v4 does not enforce key validity"
    );
    // Invalid lines carry no event id; stderr names each with its line, server and key id.
    for (line, needle) in [
        (
            8,
            "line 8: signature check: not signed by b.org (the server of join_authorised_via_users_server)",
        ),
        (
            9,
            "line 9: signature check: signature of a.org (the sender's server) with key ed25519:1 does not verify",
        ),
        (
            11,
            "line 11: signature check: signature of a.org (the sender's server) with key ed25519:1 does not verify",
        ),
        (
            12,
            "line 12: signature check: key ed25519:1 of c.org (the sender's server) is valid until 500, before the event's origin_server_ts 1001",
        ),
    ] {
        assert!(stderr.contains(needle), "line {line}: {stderr}");
    }
    // Nothing of them is stored.
    for id in [
        &r.ids["MD"],
        &r.ids["WRONG"],
        &r.ids["JR2"],
        &five.ids["CREATE"],
    ] {
        let out = run(&["event", "--db", db.to_str().expect("utf8"), id]);
        assert!(!out.status.success(), "{id} is not stored");
    }

    // Without keys: presence only.
    let db = dir.path().join("unchecked");
    let (s, outcomes) = ingest(&db, &input, &[]);
    assert_eq!(s["signatures"], "not_checked", "{s}");
    assert_eq!(
        (
            s["accepted"].as_u64(),
            s["rejected"].as_u64(),
            s["invalid"].as_u64()
        ),
        (Some(12), Some(1), Some(0)),
        "{s}"
    );
    let decided = by_id(&outcomes);
    let (outcome, reason) = &decided[&r.ids["MD"]];
    assert_eq!(outcome, "rejected");
    assert_eq!(
        reason,
        "signature check on receipt: rule 4.2 (v11): not signed by b.org (the server of join_authorised_via_users_server)"
    );
    let ev: serde_json::Value = serde_json::from_slice(
        &run(&["event", "--db", db.to_str().expect("utf8"), &r.ids["MD"]]).stdout,
    )
    .expect("event");
    assert_eq!(ev["outcome"], "rejected", "{ev}");
}

// ----- queries: read-only, concurrent, leaving the store as it is -----

/// Every file under `dir` (relative path → bytes): the store as the file system sees it.
fn store_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read store dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read store file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `name size` per file, for messages.
fn listing(files: &BTreeMap<PathBuf, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(p, b)| format!("{} {}", p.display(), b.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{"<type>": {"<state_key>": "<event_id>"}}`, as `roomgraph state` prints it.
fn nested(map: &roomgraph::ingest::StateMap) -> serde_json::Value {
    let mut out: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for ((t, s), e) in map {
        out.entry(t).or_default().insert(s, e);
    }
    serde_json::json!(out)
}

/// A store holding the small trace (ingested in batches, so it has tables and a WAL), with the trace.
fn queried_store(dir: &Path) -> (PathBuf, Trace) {
    let trace = small_trace(21);
    let input = write_lines(dir, "trace.ndjson", &trace.lines);
    let db = dir.join("db");
    let (s, _) = ingest(&db, &input, &["--batch-lines", "60"]);
    assert_eq!(s["pending"], 0, "{s}");
    (db, trace)
}

/// The query commands the tests run, each with what it must print.
fn query_commands(db: &Path, trace: &Trace, ids_file: &Path) -> Vec<(Vec<String>, String)> {
    let reader = roomgraph::ingest::Reader::open(db).expect("open read-only");
    let db = db.to_str().expect("utf8").to_owned();
    let line = |v: serde_json::Value| format!("{v}\n");
    let mut cmds = Vec::new();
    for room in &trace.rooms {
        let current = reader.current_state(room).expect("current state");
        cmds.push((
            vec![
                "state".into(),
                "--db".into(),
                db.clone(),
                "--room".into(),
                room.clone(),
            ],
            line(nested(&current)),
        ));
        let ext = reader.extremities(room).expect("extremities");
        cmds.push((
            vec![
                "extremities".into(),
                "--db".into(),
                db.clone(),
                "--room".into(),
                room.clone(),
            ],
            line(serde_json::json!(ext)),
        ));
    }
    let id = &trace.ids[trace.ids.len() / 2];
    let before = reader.state_at(id, Position::Before).expect("before");
    cmds.push((
        vec![
            "state".into(),
            "--db".into(),
            db.clone(),
            "--event".into(),
            id.clone(),
            "--before".into(),
        ],
        line(nested(&before)),
    ));
    let ev = reader.event(id).expect("read").expect("stored");
    let event_out = run(&["event", "--db", &db, id]);
    assert!(event_out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&event_out.stdout).expect("event JSON");
    assert_eq!(printed["outcome"], ev.status.as_str());
    cmds.push((
        vec!["event".into(), "--db".into(), db.clone(), id.clone()],
        String::from_utf8(event_out.stdout).expect("utf8"),
    ));
    let ids = std::fs::read_to_string(ids_file).expect("ids file");
    let mut many = String::new();
    for id in ids.lines() {
        let state = reader.state_at(id, Position::After).expect("after");
        many.push_str(&line(
            serde_json::json!({"event_id": id, "state": nested(&state)}),
        ));
    }
    cmds.push((
        vec![
            "state".into(),
            "--db".into(),
            db.clone(),
            "--events".into(),
            ids_file.to_str().expect("utf8").into(),
        ],
        many,
    ));
    cmds
}

/// Several `roomgraph state`, `event` and `extremities` processes at once on one store all succeed
/// and print what a lone query prints — also while another process holds the store open for writing.
#[test]
fn concurrent_queries_share_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, trace) = queried_store(dir.path());
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, trace.ids[..40].join("\n")).expect("write ids");
    let cmds = query_commands(&db, &trace, &ids_file);
    for writer_open in [false, true] {
        // A read-write open holds RocksDB's `LOCK` on the store: queries must not need it.
        let writer = writer_open.then(|| Engine::open(&db).expect("open for writing"));
        let children: Vec<_> = (0..3)
            .flat_map(|_| cmds.iter())
            .map(|(args, want)| {
                let child = Command::new(bin())
                    .args(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn query");
                (child, args, want)
            })
            .collect();
        assert!(children.len() >= 12, "{} processes", children.len());
        for (child, args, want) in children {
            let out = child.wait_with_output().expect("wait for query");
            assert!(
                out.status.success(),
                "{args:?} (writer open: {writer_open}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), *want, "{args:?}");
        }
        drop(writer);
    }
}

/// A hundred queries leave every file of the store as it was: same names, same bytes.
#[test]
fn a_hundred_queries_change_no_file_of_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, trace) = queried_store(dir.path());
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, trace.ids[..10].join("\n")).expect("write ids");
    let cmds = query_commands(&db, &trace, &ids_file);
    let before = store_files(&db);
    for (args, want) in cmds.iter().cycle().take(100) {
        let out = Command::new(bin()).args(args).output().expect("spawn");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), *want, "{args:?}");
    }
    let after = store_files(&db);
    eprintln!(
        "store before 100 queries: {} bytes: {}",
        before.values().map(Vec::len).sum::<usize>(),
        listing(&before)
    );
    assert_eq!(
        listing(&before),
        listing(&after),
        "file list and sizes after 100 queries"
    );
    assert!(before == after, "file contents changed by 100 queries");
}

/// A query never creates a store: a missing directory is refused and stays missing.
#[test]
fn a_query_of_a_missing_store_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("nothing-here");
    for args in [
        vec![
            "state",
            "--db",
            db.to_str().expect("utf8"),
            "--room",
            "!r:x",
        ],
        vec!["event", "--db", db.to_str().expect("utf8"), "$e"],
        vec![
            "extremities",
            "--db",
            db.to_str().expect("utf8"),
            "--room",
            "!r:x",
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no roomgraph store there"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

/// `state --events`: one line per id, in input order (blank lines skipped); an unknown id gets an
/// `error` line in its place, every other id is still answered, and the exit code is 2.
#[test]
fn state_events_answers_every_id_in_input_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, trace) = queried_store(dir.path());
    let reader = roomgraph::ingest::Reader::open(&db).expect("open read-only");
    let mut ids = trace.ids.clone();
    Rng::new(5).shuffle(&mut ids);
    ids.truncate(50);
    let mut input = ids.clone();
    input.insert(17, "$unknown:example.org".to_owned());
    input.insert(30, String::new());
    let file = write_lines(dir.path(), "ids.txt", &input);
    let db_s = db.to_str().expect("utf8");
    let file_s = file.to_str().expect("utf8");
    for (pos, extra) in [
        (Position::After, None),
        (Position::Before, Some("--before")),
    ] {
        let mut args = vec!["state", "--db", db_s, "--events", file_s];
        args.extend(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("line 18: unknown event $unknown:example.org")
                && stderr.contains("1 of 51 event ids unknown"),
            "{stderr}"
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("line is JSON"))
            .collect();
        let expected: Vec<&String> = input.iter().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), expected.len());
        for (line, id) in lines.iter().zip(expected) {
            assert_eq!(line["event_id"], id.as_str());
            if id.starts_with("$unknown") {
                assert_eq!(
                    *line,
                    serde_json::json!({"event_id": id, "error": format!("unknown event {id}")})
                );
            } else {
                let state = reader.state_at(id, pos).expect("state");
                assert_eq!(
                    *line,
                    serde_json::json!({"event_id": id, "state": nested(&state)})
                );
            }
        }
    }
    // Standard input, every id known: exit 0, same lines as the file gives.
    let known = write_lines(dir.path(), "known.txt", &ids);
    let from_file = run(&[
        "state",
        "--db",
        db_s,
        "--events",
        known.to_str().expect("utf8"),
    ]);
    assert!(from_file.status.success());
    let mut child = Command::new(bin())
        .args(["state", "--db", db_s, "--events", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(ids.join("\n").as_bytes())
            .expect("write ids");
    }
    let from_stdin = child.wait_with_output().expect("wait");
    assert!(from_stdin.status.success());
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert_eq!(
        String::from_utf8_lossy(&from_file.stdout).lines().count(),
        ids.len()
    );
}

/// `--outcomes` lines start with their 1-based input line and come in input order, though a shuffled
/// input in small batches has most events decided batches after their line was read (waiting for
/// parents); blank lines have none, invalid lines have theirs.
#[test]
fn outcome_lines_carry_their_input_line_in_input_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = small_trace(13);
    let mut lines = trace.lines.clone();
    Rng::new(77).shuffle(&mut lines);
    lines.insert(10, String::new());
    lines.insert(20, "{not json".to_owned());
    let input = write_lines(dir.path(), "shuffled.ndjson", &lines);
    let db = dir.path().join("db");
    let outcomes_path = db.with_extension("outcomes");
    let (s, _) = ingest(&db, &input, &["--batch-lines", "25"]);
    assert_eq!(s["pending"], 0, "{s}");
    let text = std::fs::read_to_string(&outcomes_path).expect("outcomes");
    let mut numbers = Vec::new();
    let mut deoutliered = 0;
    for raw in text.lines() {
        assert!(raw.starts_with(r#"{"line":"#), "{raw}");
        let o: serde_json::Value = serde_json::from_str(raw).expect("JSON");
        let n = o["line"].as_u64().expect("a line number");
        if o["deoutliered"] == true {
            // The second line of an outlier that joined the timeline: after its first line.
            assert!(
                numbers.contains(&n),
                "line {n} de-outliered before its first outcome"
            );
            assert_eq!(o["event_id"], event_id(&lines[n as usize - 1]).as_str());
            deoutliered += 1;
            continue;
        }
        let line = &lines[n as usize - 1];
        if o["outcome"] == "invalid" {
            assert_eq!(line, "{not json");
            assert!(o["event_id"].is_null());
        } else {
            assert_eq!(o["event_id"], event_id(line).as_str(), "line {n}");
        }
        numbers.push(n);
    }
    let expected: Vec<u64> = (1..=lines.len() as u64).filter(|n| *n != 11).collect();
    assert_eq!(
        numbers, expected,
        "one outcome per non-blank line, in input order"
    );
    assert_eq!(deoutliered, s["deoutliered"].as_u64().unwrap_or(0), "{s}");
    assert!(deoutliered > 0, "a shuffled input has outliers: {s}");
}
