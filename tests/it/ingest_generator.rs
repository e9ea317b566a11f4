//! Ingest of rooms from the resolution work's random-DAG generator (`roomgraph_testkit::room_generator`):
//! shuffled order in one batch and in several give identical outcomes and states, DAG order the same
//! states before every event (soft-failure follows arrival order), and the current
//! state (the resolution of the states after the forward extremities) equals a direct resolution of the
//! same events with the `resolve` library.

use std::collections::{BTreeMap, HashSet};

use roomgraph::auth::AuthEvent;
use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::ingest::{Engine, EngineOptions, EventOutcome, Outcome, Position, StateMap};
use roomgraph::resolve::{EventGraph, EventIdx, resolve};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::rng::Rng;
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};

/// Every fork is also resolved from the full state sets and compared (the engine's self-check).
fn checked() -> EngineOptions {
    EngineOptions {
        check_resolutions: true,
        ..EngineOptions::default()
    }
}

fn lines(room: &GeneratedRoom) -> Vec<String> {
    room.events
        .iter()
        .map(|p| to_canonical_string(&JsonValue::Object(p.json.clone())))
        .collect()
}

fn ingest(lines: &[String], batch: usize) -> (tempfile::TempDir, Engine, Vec<EventOutcome>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open_with(dir.path(), checked()).expect("open");
    let mut out = Vec::new();
    for chunk in lines.chunks(batch) {
        out.extend(engine.ingest(chunk).expect("ingest"));
    }
    out.extend(engine.finish().expect("finish"));
    (dir, engine, out)
}

fn final_outcomes(outcomes: &[EventOutcome]) -> BTreeMap<String, Outcome> {
    outcomes
        .iter()
        .filter_map(|o| o.event_id.clone().map(|id| (id, o.outcome)))
        .collect()
}

fn states(engine: &Engine, room: &GeneratedRoom) -> Vec<String> {
    let mut out = vec![format!(
        "{:?}",
        engine.current_state(&room.room_id).expect("current")
    )];
    for p in &room.events {
        out.push(format!(
            "{:?}",
            engine
                .state_at(&p.event_id, Position::Before)
                .expect("before")
        ));
        out.push(format!(
            "{:?}",
            engine
                .state_at(&p.event_id, Position::After)
                .expect("after")
        ));
    }
    out
}

fn direct(room: &GeneratedRoom, rejected: &HashSet<String>, sets: &[StateMap]) -> StateMap {
    let events: Vec<AuthEvent> = room.events.iter().cloned().map(AuthEvent::new).collect();
    let graph =
        EventGraph::build(room.version, events, &|id| rejected.contains(id)).expect("graph");
    let idx: Vec<Vec<EventIdx>> = sets
        .iter()
        .map(|s| {
            s.values()
                .map(|id| graph.idx(id).expect("in graph"))
                .collect()
        })
        .collect();
    let refs: Vec<&[EventIdx]> = idx.iter().map(Vec::as_slice).collect();
    let named = resolve(&graph, &refs).expect("resolves").to_named(&graph);
    named
        .into_iter()
        .flat_map(|(t, m)| m.into_iter().map(move |(s, e)| ((t.clone(), s), e)))
        .collect()
}

#[test]
fn generated_rooms_agree_across_orders_and_with_direct_resolution() {
    let mut checked = 0;
    for (seed, v) in [
        (1u64, "11"),
        (2, "12"),
        (3, "10"),
        (4, "6"),
        (5, "11"),
        (6, "12"),
    ] {
        let version = RoomVersion::from_id(v).expect("version");
        let cfg = RoomConfig {
            malicious_servers: 0,
            ..RoomConfig::small(version, seed)
        };
        let room = generate(&cfg);
        let dag = lines(&room);
        let (_da, mut a, oa) = ingest(&dag, 10_000);
        let mut shuffled = dag.clone();
        Rng::new(seed).shuffle(&mut shuffled);
        let (_db, b, ob) = ingest(&shuffled, 10_000);
        let (_dc, c, oc) = ingest(&shuffled, 7);
        let (fa, fb, fc) = (
            final_outcomes(&oa),
            final_outcomes(&ob),
            final_outcomes(&oc),
        );
        assert_eq!(fa.len(), dag.len(), "v{v} seed {seed}");
        // The generator's servers keep only events that pass auth on their own fork: nothing is rejected.
        // Step 6 may soft-fail some (e.g. a user banned on another fork keeps talking on its own).
        assert!(
            fa.values()
                .all(|o| matches!(o, Outcome::Accepted | Outcome::SoftFailed)),
            "v{v} seed {seed}: {oa:?}"
        );
        // The same input in one batch or in batches of 7 lines: identical outcomes and states (events are
        // applied in arrival order, whatever the batching).
        assert_eq!(
            fb, fc,
            "v{v} seed {seed}: shuffled, one batch vs batches of 7"
        );
        let sb = states(&b, &room);
        assert_eq!(
            sb,
            states(&c, &room),
            "v{v} seed {seed}: states, one batch vs batches"
        );
        // DAG order vs shuffled: the states before every event are identical; soft-fail (and so the
        // current state) depends on what had arrived before, as the spec's step 6 implies.
        let sa = states(&a, &room);
        let norm = |m: &BTreeMap<String, Outcome>| -> BTreeMap<String, Outcome> {
            m.iter()
                .map(|(k, o)| {
                    (
                        k.clone(),
                        if *o == Outcome::SoftFailed {
                            Outcome::Accepted
                        } else {
                            *o
                        },
                    )
                })
                .collect()
        };
        assert_eq!(norm(&fa), norm(&fb), "v{v} seed {seed}: DAG vs shuffled");
        assert_eq!(sa[1..], sb[1..], "v{v} seed {seed}: states DAG vs shuffled");

        // Current state = direct resolution of the states after the forward extremities.
        let rejected = HashSet::new();
        let tips = a.extremities(&room.room_id).expect("extremities");
        let sets: Vec<StateMap> = tips
            .iter()
            .map(|t| a.state_at(t, Position::After).expect("after"))
            .collect();
        assert_eq!(
            a.current_state(&room.room_id).expect("current"),
            direct(&room, &rejected, &sets),
            "v{v} seed {seed}"
        );
        // Each server's view (its tips) resolved by the engine equals the direct resolution.
        for server_tips in &room.tips {
            let sets: Vec<StateMap> = server_tips
                .iter()
                .map(|t| a.state_at(t, Position::After).expect("after"))
                .collect();
            assert_eq!(
                a.resolve(&room.room_id, &sets).expect("resolve"),
                direct(&room, &rejected, &sets)
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// `Engine::resolve` on arbitrary state sets of a stored room — the generator's fork states of a
/// contested room: a power-levels history, three servers forking with display names, leaves, kicks and
/// power changes, one of them keeping events that fail auth — equals a direct resolution of the same
/// events, on the first call (the room's graph grows) and on a repeated call (the graph is reused), and
/// with the sets in another order. The resolutions take the conflict-only path.
#[test]
fn engine_resolve_of_fork_states_matches_direct_resolution() {
    let small = |seed, version| RoomConfig {
        version,
        seed,
        servers: 3,
        users_per_server: 4,
        bootstrap_members: 120,
        bootstrap_pl_changes: 40,
        steps: 150,
        merge_probability: 0.02,
        malicious_servers: 1,
        force_probability: 0.5,
        quarantine: false,
        honest_admins: false,
        message_ratio: 0.0,
        power_ratio: 0.0,
        member_activity: 0.6,
    };
    for (config, v) in [
        (small(11u64, RoomVersion::from_id("10").expect("v10")), "10"),
        (small(12, RoomVersion::from_id("11").expect("v11")), "11"),
        (small(13, RoomVersion::from_id("12").expect("v12")), "12"),
        (small(14, RoomVersion::from_id("1").expect("v1")), "1"),
        // The criterion `resolve_store` rooms: long power history, a server keeping failed events.
        (
            RoomConfig::contested(RoomVersion::from_id("11").expect("v11"), 1_000),
            "11",
        ),
        (
            RoomConfig::contested(RoomVersion::from_id("12").expect("v12"), 1_000),
            "12",
        ),
    ] {
        let room = generate(&config);
        assert!(room.fork_states.len() >= 2, "v{v}: the servers forked");
        let (_dir, mut engine, outcomes) = ingest(&lines(&room), 10_000);
        let rejected: HashSet<String> = outcomes
            .iter()
            .filter(|o| o.outcome == Outcome::Rejected)
            .filter_map(|o| o.event_id.clone())
            .collect();
        let mut sets: Vec<StateMap> = room.named_fork_states();
        let want = direct(&room, &rejected, &sets);
        let before = engine.resolution_stats();
        assert_eq!(
            engine.resolve(&room.room_id, &sets).expect("resolve"),
            want,
            "v{v}"
        );
        assert_eq!(
            engine.resolve(&room.room_id, &sets).expect("again"),
            want,
            "v{v} again"
        );
        sets.reverse();
        assert_eq!(
            engine.resolve(&room.room_id, &sets).expect("reversed"),
            direct(&room, &rejected, &sets),
            "v{v} reversed"
        );
        let after = engine.resolution_stats();
        if v != "1" {
            assert!(
                after.partial >= before.partial + 3,
                "v{v}: {before:?} → {after:?}"
            );
        }
        // A set naming an event under another key is refused with the key and the id.
        let mut wrong = sets[0].clone();
        let (key, id) = wrong.pop_first().expect("non-empty");
        wrong.insert((key.0.clone(), format!("{}-other", key.1)), id.clone());
        let err = engine
            .resolve(&room.room_id, &[wrong, sets[1].clone()])
            .expect_err("wrong key");
        assert!(err.to_string().contains(&id), "{err}");
    }
}

/// The state-heavy room of `roomgraph-bench heavy`, scaled down: ingest in generation order rejects
/// every event the generator rejects (events that fail the auth rules on a malicious server's view, and
/// events citing them), and hardly any other (at most 1 %: a server's view and ingest's state before
/// an event can differ where forks merged; none on these seeds).
#[test]
fn state_heavy_room_rejections_match_the_generator() {
    let version = RoomVersion::from_id("12").expect("version");
    for seed in [14u64, 1] {
        let room = generate(&RoomConfig::state_heavy(version, seed, 600));
        let (_d, _engine, outcomes) = ingest(&lines(&room), 10_000);
        let outcomes = final_outcomes(&outcomes);
        assert_eq!(outcomes.len(), room.events.len(), "seed {seed}");
        let mut extra = Vec::new();
        for (pdu, &expected) in room.events.iter().zip(&room.rejected) {
            let got = outcomes.get(&*pdu.event_id).copied();
            if expected {
                assert_eq!(
                    got,
                    Some(Outcome::Rejected),
                    "seed {seed}: {}",
                    pdu.event_id
                );
            } else if got == Some(Outcome::Rejected) {
                extra.push(pdu.event_id.to_string());
            }
        }
        let expected = room.rejected.iter().filter(|&&r| r).count();
        assert!(
            expected * 100 >= room.events.len() * 20,
            "seed {seed}: {expected} rejected of {}",
            room.events.len()
        );
        assert!(
            extra.len() * 100 <= room.events.len(),
            "seed {seed}: ingest rejects {} more events than the generator: {extra:?}",
            extra.len()
        );
    }
}
