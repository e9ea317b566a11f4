//! The `send_join` flow through the engine, on responses from `roomgraph_testkit::join`.

use roomgraph::ingest::{Engine, Outcome, Position, StateHint};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::join::{JoinSpec, generate};

/// The send_join flow through the engine: the shuffled response as outliers (events wait for
/// their auth events), then the join with the response's state as its state before; a reopened
/// store answers the same.
#[test]
fn a_response_stored_as_outliers_gives_the_join_its_state() {
    let v = RoomVersion::from_id("12").expect("known version");
    let r = generate(&JoinSpec::hq(v, 200, 5));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path()).expect("open");
    let lines: Vec<&String> = r.state.iter().chain(&r.auth_chain).collect();
    let mut outcomes = engine.ingest_outliers(&lines).expect("ingest");
    outcomes.extend(engine.finish().expect("finish"));
    assert_eq!(outcomes.len(), lines.len());
    let mut rejected: Vec<String> = outcomes
        .iter()
        .filter(|o| o.outcome == Outcome::Rejected)
        .filter_map(|o| o.event_id.clone())
        .collect();
    rejected.sort();
    assert_eq!(rejected, r.bad);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.outcome, Outcome::Outlier | Outcome::Rejected))
    );
    // Outliers have no state; the room has no current state before the join.
    let some = &r.state_ids[0];
    assert!(engine.state_at(some, Position::After).is_err());
    engine.add_state_hints([StateHint::Before {
        event_id: r.join_event_id.clone(),
        state: r.state_ids.clone(),
    }]);
    let o = engine.ingest(&[&r.join_event]).expect("join");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].outcome, Outcome::Accepted, "{:?}", o[0].reason);
    let after = engine
        .state_at(&r.join_event_id, Position::After)
        .expect("state after the join");
    assert_eq!(after.len(), r.state_ids.len() + 1);
    let mut ids: Vec<&String> = after
        .values()
        .filter(|id| **id != r.join_event_id)
        .collect();
    ids.sort();
    assert_eq!(ids, r.state_ids.iter().collect::<Vec<_>>());
    assert_eq!(engine.current_state(&r.room_id).expect("current"), after);
    drop(engine);
    let engine = Engine::open(dir.path()).expect("reopen");
    assert_eq!(
        engine
            .state_at(&r.join_event_id, Position::After)
            .expect("reopened"),
        after
    );
    // Received again as an outlier, an event is a duplicate.
    let mut engine = engine;
    let again = engine.ingest_outliers(&lines[..1]).expect("again");
    assert_eq!(again[0].outcome, Outcome::Duplicate);
}
