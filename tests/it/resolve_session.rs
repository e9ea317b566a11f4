//! Host-driven resolution (`resolve::Session`) against the stateless resolver: on generated rooms of
//! every room version (forks, power changes, rejected events), a host that ships nothing up front and
//! answers each `Need` from its own events gets exactly the state `ResolveRequest` gives for all the
//! events at once; it is asked for every id at most once, in batches, and a host that withholds an
//! event gets an error naming it. A host with its own auth-chain index (`Session::begin_conflicted`)
//! gets the same state while being asked only for what the conflict reads.

use std::collections::{BTreeMap, HashMap, HashSet};

use roomgraph::auth::AuthEvent;
use roomgraph::resolve::{ConflictedSet, ResolveError, ResolveRequest, Session, Step};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};

type Named = BTreeMap<String, BTreeMap<String, String>>;

fn rooms() -> Vec<GeneratedRoom> {
    let mut out = Vec::new();
    for version in RoomVersion::all() {
        for seed in 0..3 {
            out.push(generate(&RoomConfig::small(version, seed)));
        }
    }
    for version in ["10", "12"] {
        let version = RoomVersion::from_id(version).expect("known");
        out.push(generate(&RoomConfig::state_heavy(version, 14, 400)));
    }
    out
}

fn rejected_ids(room: &GeneratedRoom) -> Vec<String> {
    room.events
        .iter()
        .zip(&room.rejected)
        .filter(|(_, r)| **r)
        .map(|(p, _)| p.event_id.to_string())
        .collect()
}

fn stateless(room: &GeneratedRoom) -> Result<Named, ResolveError> {
    let request = ResolveRequest {
        version: room.version,
        events: room.events.iter().cloned().map(AuthEvent::new).collect(),
        state_sets: room.fork_states.clone(),
        rejected: rejected_ids(room),
    };
    let (prepared, state) = request.resolve()?;
    Ok(state.to_named(&prepared.graph))
}

/// Drives a session as a host holding `room`'s events would; returns the state and the rounds.
fn hosted(room: &GeneratedRoom, up_front: usize) -> Result<(Named, usize), ResolveError> {
    let by_id: HashMap<&str, usize> = room
        .events
        .iter()
        .enumerate()
        .map(|(i, p)| (&*p.event_id, i))
        .collect();
    let rejected: HashSet<String> = rejected_ids(room).into_iter().collect();
    let ship = |ids: &[String]| -> (Vec<AuthEvent>, Vec<String>) {
        let events = ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()))
            .map(|&i| AuthEvent::new(room.events[i].clone()))
            .collect();
        let flagged = ids
            .iter()
            .filter(|id| rejected.contains(*id))
            .cloned()
            .collect();
        (events, flagged)
    };
    let first: Vec<String> = room
        .events
        .iter()
        .take(up_front)
        .map(|p| p.event_id.to_string())
        .collect();
    let (events, flagged) = ship(&first);
    let (mut session, mut step) =
        Session::begin(room.version, room.fork_states.clone(), events, &flagged)?;
    let mut asked: HashSet<String> = HashSet::new();
    loop {
        match step {
            Step::Need(ids) => {
                assert!(!ids.is_empty(), "a Need names something");
                for id in &ids {
                    assert!(asked.insert(id.clone()), "{id} asked twice");
                    assert!(!first.contains(id), "{id} was shipped up front");
                }
                let (events, flagged) = ship(&ids);
                step = session.supply(events, &flagged)?;
            }
            Step::Done(done) => {
                return Ok((done.to_named(), session.rounds()));
            }
            _ => unreachable!("no other steps today"),
        }
    }
}

#[test]
fn a_host_driven_session_resolves_as_the_stateless_resolver() {
    let mut sessions = 0;
    for room in rooms() {
        let expected = stateless(&room);
        for up_front in [0, room.events.len() / 2, room.events.len()] {
            let got = hosted(&room, up_front).map(|(state, rounds)| {
                if up_front == room.events.len() {
                    assert_eq!(rounds, 0, "everything was shipped: nothing to ask");
                }
                state
            });
            assert_eq!(
                got, expected,
                "v{} {} with {up_front} events up front",
                room.version.id, room.room_id
            );
            sessions += 1;
        }
    }
    assert!(sessions >= 100);
}

/// Each round asks for a whole level of the auth DAG: the number of rounds is bounded by the depth
/// of the auth chains plus one (the state sets' own events), not by the number of events.
#[test]
fn rounds_follow_auth_depth_not_event_count() {
    let room = generate(&RoomConfig::small(
        RoomVersion::from_id("11").expect("known"),
        5,
    ));
    let index: HashMap<&str, usize> = room
        .events
        .iter()
        .enumerate()
        .map(|(i, p)| (&*p.event_id, i))
        .collect();
    // Auth depth of every event (events come auth-first).
    let mut depth = vec![0usize; room.events.len()];
    for (i, p) in room.events.iter().enumerate() {
        depth[i] = p
            .auth_events
            .iter()
            .filter_map(|a| index.get(&**a))
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let (_, rounds) = hosted(&room, 0).expect("resolves");
    assert!(rounds >= 1);
    assert!(
        rounds <= max_depth + 1,
        "{rounds} rounds for an auth depth of {max_depth}"
    );
    assert!(
        rounds < room.events.len() / 4,
        "batches, not one event at a time"
    );
}

#[test]
fn a_withheld_event_is_an_error_naming_it() {
    let room = generate(&RoomConfig::small(
        RoomVersion::from_id("12").expect("known"),
        1,
    ));
    let (mut session, step) =
        Session::begin(room.version, room.fork_states.clone(), Vec::new(), &[]).expect("begins");
    let Step::Need(ids) = step else {
        panic!("nothing shipped: the session must ask")
    };
    let withheld = ids[0].clone();
    let events: Vec<AuthEvent> = room
        .events
        .iter()
        .filter(|p| ids[1..].iter().any(|id| *id == *p.event_id))
        .cloned()
        .map(AuthEvent::new)
        .collect();
    match session.supply(events, &[]) {
        Err(ResolveError::UnknownEvent { event_id, .. }) => assert_eq!(event_id, withheld),
        other => panic!("expected an error naming {withheld}, got {other:?}"),
    }
}

#[test]
fn rejected_must_name_a_supplied_event_and_a_finished_session_refuses_more() {
    let room = generate(&RoomConfig::small(
        RoomVersion::from_id("10").expect("known"),
        2,
    ));
    let err = Session::begin(
        room.version,
        room.fork_states.clone(),
        Vec::new(),
        &["$nowhere:example.org".to_owned()],
    )
    .map(|_| ())
    .expect_err("an unknown rejected id");
    assert!(err.to_string().contains("$nowhere:example.org"), "{err}");

    let all: Vec<AuthEvent> = room.events.iter().cloned().map(AuthEvent::new).collect();
    let (mut session, step) =
        Session::begin(room.version, room.fork_states.clone(), all, &[]).expect("begins");
    assert!(matches!(step, Step::Done(_)));
    let again = session
        .supply(Vec::new(), &[])
        .map(|_| ())
        .expect_err("finished");
    assert!(again.to_string().contains("finished"), "{again}");
}

#[test]
fn a_host_with_its_own_auth_index_is_asked_only_for_what_the_conflict_reads() {
    let mut sessions = 0;
    let mut asked_total = 0;
    let mut events_total = 0;
    for room in rooms() {
        if room.version.id == "1" {
            continue;
        }
        let expected = stateless(&room).expect("the stateless resolver resolves");
        let (unconflicted, full) = room.conflicted_set();
        let by_id: HashMap<&str, &roomgraph::Pdu<'static>> =
            room.events.iter().map(|p| (&*p.event_id, p)).collect();
        let rejected: HashSet<String> = rejected_ids(&room).into_iter().collect();
        // What the second half may read: the full conflicted set, its auth events, the base
        // state, power-levels chains (a power-levels event's auth events), the create event.
        let mut allowed: HashSet<&str> = full.iter().map(String::as_str).collect();
        for id in &full {
            allowed.extend(by_id[id.as_str()].auth_events.iter().map(|a| &**a));
        }
        allowed.extend(unconflicted.iter().map(|(_, _, id)| id.as_str()));
        for p in &room.events {
            if p.event_type == "m.room.power_levels" || p.event_type == "m.room.create" {
                allowed.insert(&p.event_id);
                allowed.extend(p.auth_events.iter().map(|a| &**a));
            }
        }
        // Begun from the full conflicted set and the unconflicted state, or from the state sets
        // and their auth difference (the sets' events are then asked for too).
        for with_sets in [false, true] {
            let (mut session, mut step) = if with_sets {
                allowed.extend(room.fork_states.iter().flatten().map(String::as_str));
                Session::begin_with_difference(
                    room.version,
                    room.fork_states.clone(),
                    full.clone(),
                    Vec::new(),
                    &[],
                )
            } else {
                let conflicted = ConflictedSet {
                    events: full.clone(),
                    base_state: unconflicted.clone(),
                };
                Session::begin_conflicted(room.version, conflicted, Vec::new(), &[])
            }
            .expect("begins");
            let mut asked: HashSet<String> = HashSet::new();
            let got = loop {
                match step {
                    Step::Need(ids) => {
                        let mut events = Vec::new();
                        let mut flagged = Vec::new();
                        for id in &ids {
                            assert!(asked.insert(id.clone()), "{id} asked twice");
                            assert!(
                                allowed.contains(id.as_str()),
                                "v{}: {id} is not read by the conflict",
                                room.version.id
                            );
                            events.push(AuthEvent::new(by_id[id.as_str()].clone()));
                            if rejected.contains(id) {
                                flagged.push(id.clone());
                            }
                        }
                        step = session.supply(events, &flagged).expect("supplied");
                    }
                    Step::Done(done) => break done.to_named(),
                    _ => unreachable!("no other steps today"),
                }
            };
            assert_eq!(
                got,
                expected,
                "v{} {}: begun from {}",
                room.version.id,
                room.room_id,
                if with_sets {
                    "the state sets and their auth difference"
                } else {
                    "the conflicted set"
                }
            );
            sessions += 1;
            asked_total += asked.len();
            events_total += room.events.len();
        }
    }
    assert!(sessions >= 60, "{sessions} sessions");
    assert!(
        asked_total < events_total,
        "asked for {asked_total} of {events_total} events"
    );
}

#[test]
fn a_conflicted_session_refuses_room_version_1_and_a_base_state_with_two_events_per_key() {
    let v1 = RoomVersion::from_id("1").expect("known");
    let err = Session::begin_conflicted(v1, ConflictedSet::default(), Vec::new(), &[])
        .map(|_| ())
        .expect_err("room version 1");
    assert!(err.to_string().contains("room version 1"), "{err}");
    let v11 = RoomVersion::from_id("11").expect("known");
    let twice = ConflictedSet {
        events: vec!["$a".into()],
        base_state: vec![
            ("m.room.topic".into(), String::new(), "$x".into()),
            ("m.room.topic".into(), String::new(), "$y".into()),
        ],
    };
    let err = Session::begin_conflicted(v11, twice, Vec::new(), &[])
        .map(|_| ())
        .expect_err("two events for one key");
    assert!(err.to_string().contains("two events for one key"), "{err}");
}
