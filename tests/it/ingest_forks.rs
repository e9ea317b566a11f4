//! Library-level end-to-end tests of the ingest pipeline: the state before every merge event and the
//! current state of rooms left forked equal a direct resolution (the `resolve` library on the room's
//! events, independent of the store's snapshots, auth-chain index and memoisation), for several room
//! versions; and applying the same events shuffled and in small batches gives identical results.

use std::collections::{BTreeMap, HashSet};

use roomgraph::auth::AuthEvent;
use roomgraph::ingest::{Engine, EngineOptions, EventOutcome, Outcome, Position, StateMap};
use roomgraph::pdu::Pdu;
use roomgraph::resolve::{EventGraph, EventIdx, resolve};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::rng::Rng;
use roomgraph_testkit::trace::{Trace, TraceSpec, generate};

/// Every fork is also resolved from the full state sets and compared (the engine's self-check).
fn checked() -> EngineOptions {
    EngineOptions {
        check_resolutions: true,
        ..EngineOptions::default()
    }
}

type Named = BTreeMap<String, BTreeMap<String, String>>;

fn nested(map: &StateMap) -> Named {
    let mut out = Named::new();
    for ((t, s), e) in map {
        out.entry(t.clone())
            .or_default()
            .insert(s.clone(), e.clone());
    }
    out
}

fn spec(seed: u64) -> TraceSpec {
    TraceSpec {
        rooms: 3,
        events: 450,
        big_room_members: 60,
        fork_every: 6,
        bad_every: 20,
        versions: ["11", "12", "10"]
            .iter()
            .map(|v| RoomVersion::from_id(v).expect("version"))
            .collect(),
        seed,
        ..TraceSpec::default()
    }
}

/// The room version and parsed events of each room of a trace.
fn rooms_of(
    trace: &Trace,
    engine: &Engine,
) -> BTreeMap<String, (&'static RoomVersion, Vec<AuthEvent>)> {
    let mut out: BTreeMap<String, (&'static RoomVersion, Vec<AuthEvent>)> = BTreeMap::new();
    for (line, version) in trace.lines.iter().zip(&trace.line_versions) {
        let pdu = Pdu::parse(line.as_bytes(), version)
            .expect("parses")
            .into_owned();
        let stored = engine.event(&pdu.event_id).expect("read").expect("stored");
        assert_eq!(stored.room_version, version.id);
        let room = pdu.room_id.to_string();
        out.entry(room)
            .or_insert_with(|| (*version, Vec::new()))
            .1
            .push(AuthEvent::new(pdu));
    }
    out
}

fn direct_resolution(
    version: &'static RoomVersion,
    events: &[AuthEvent],
    rejected: &HashSet<String>,
    sets: &[StateMap],
) -> Named {
    let graph =
        EventGraph::build(version, events.to_vec(), &|id| rejected.contains(id)).expect("graph");
    let idx_sets: Vec<Vec<EventIdx>> = sets
        .iter()
        .map(|s| {
            s.values()
                .map(|id| graph.idx(id).expect("event in graph"))
                .collect()
        })
        .collect();
    let refs: Vec<&[EventIdx]> = idx_sets.iter().map(Vec::as_slice).collect();
    resolve(&graph, &refs).expect("resolves").to_named(&graph)
}

fn ingest_all(engine: &mut Engine, lines: &[String], batch: usize) -> Vec<EventOutcome> {
    let mut outcomes = Vec::new();
    for chunk in lines.chunks(batch) {
        outcomes.extend(engine.ingest(chunk).expect("ingest"));
    }
    outcomes.extend(engine.finish().expect("finish"));
    outcomes
}

#[test]
fn state_at_merges_and_fork_tips_equals_direct_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = generate(&spec(21));
    let mut engine = Engine::open_with(dir.path(), checked()).expect("open");
    let outcomes = ingest_all(&mut engine, &trace.lines, 10_000);
    let rejected: HashSet<String> = outcomes
        .iter()
        .filter(|o| o.outcome == Outcome::Rejected)
        .filter_map(|o| o.event_id.clone())
        .collect();
    for o in &outcomes {
        let id = o.event_id.clone().unwrap_or_default();
        let expected = if trace.bad.contains(&id) {
            Outcome::Rejected
        } else {
            Outcome::Accepted
        };
        assert_eq!(o.outcome, expected, "{o:?}");
    }
    let rooms = rooms_of(&trace, &engine);
    assert!(!trace.merges.is_empty());
    let mut checked = 0;
    for (room, merge, tips) in &trace.merges {
        let (version, events) = &rooms[room];
        let sets: Vec<StateMap> = tips
            .iter()
            .map(|t| {
                engine
                    .state_at(t, Position::After)
                    .expect("state after tip")
            })
            .collect();
        let want = direct_resolution(version, events, &rejected, &sets);
        let got = nested(
            &engine
                .state_at(merge, Position::Before)
                .expect("state before merge"),
        );
        assert_eq!(
            got, want,
            "v{} room {room}: state before merge {merge}",
            version.id
        );
        // The library entry point gives the same answer.
        assert_eq!(
            nested(&engine.resolve(room, &sets).expect("Engine::resolve")),
            want
        );
        checked += 1;
    }
    // Rooms left forked: the current state is the resolution of the states after the tips.
    for room in &trace.rooms {
        let (version, events) = &rooms[room];
        let tips = engine.extremities(room).expect("extremities");
        let sets: Vec<StateMap> = tips
            .iter()
            .map(|t| engine.state_at(t, Position::After).expect("state"))
            .collect();
        let want = direct_resolution(version, events, &rejected, &sets);
        assert_eq!(
            nested(&engine.current_state(room).expect("current")),
            want,
            "v{} room {room}",
            version.id
        );
    }
    assert!(checked >= 10, "only {checked} merges checked");
}

#[test]
fn shuffled_small_batches_and_reopen_give_identical_results() {
    let trace = generate(&spec(5));
    let ids = trace.ids.clone();
    let snapshot = |engine: &Engine| -> Vec<String> {
        let mut out = Vec::new();
        for id in &ids {
            let ev = engine.event(id).expect("read").expect("stored");
            out.push(format!("{id} {:?} {:?}", ev.status, ev.redacted));
            out.push(format!(
                "{:?}",
                engine.state_at(id, Position::Before).expect("before")
            ));
            out.push(format!(
                "{:?}",
                engine.state_at(id, Position::After).expect("after")
            ));
        }
        for room in &trace.rooms {
            out.push(format!(
                "{:?}",
                engine.current_state(room).expect("current")
            ));
            out.push(format!(
                "{:?}",
                engine.extremities(room).expect("extremities")
            ));
        }
        out
    };
    let dir_a = tempfile::tempdir().expect("tempdir");
    let mut a = Engine::open_with(dir_a.path(), checked()).expect("open");
    ingest_all(&mut a, &trace.lines, 10_000);
    let want = snapshot(&a);

    let mut shuffled = trace.lines.clone();
    Rng::new(17).shuffle(&mut shuffled);
    let dir_b = tempfile::tempdir().expect("tempdir");
    // Small batches, and the engine reopened half way (pending events are persisted).
    let half = shuffled.len() / 2;
    {
        let mut b = Engine::open_with(dir_b.path(), checked()).expect("open");
        for chunk in shuffled[..half].chunks(23) {
            b.ingest(chunk).expect("ingest");
        }
    }
    let mut b = Engine::open_with(dir_b.path(), checked()).expect("reopen");
    let rest = ingest_all(&mut b, &shuffled[half..], 23);
    assert!(
        rest.iter().all(|o| o.outcome != Outcome::Pending),
        "nothing left pending"
    );
    assert_eq!(snapshot(&b), want);
}
