//! Host-driven resolution (`resolve::Session`) against the stateless resolver: on generated rooms of
//! every room version (forks, power changes, rejected events), a host that ships nothing up front and
//! answers each `Need` from its own events gets exactly the state `ResolveRequest` gives for all the
//! events at once; it is asked for every id at most once, in batches, and a host that withholds an
//! event gets an error naming it.

use std::collections::{BTreeMap, HashMap, HashSet};

use roomgraph::auth::AuthEvent;
use roomgraph::resolve::{ResolveError, ResolveRequest, Session, Step};
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
                return Ok((done.state.to_named(&done.prepared.graph), session.rounds()));
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
