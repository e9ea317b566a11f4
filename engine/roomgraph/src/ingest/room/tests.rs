//! The per-room apply step against what Synapse concludes on the same traffic: forward extremities
//! (`_calculate_new_extremities`), soft-failure at arrival whatever the batching, outliers and state
//! at gaps (`_compute_event_context_with_maybe_missing_prevs`), and what pending events wait for.

use std::collections::{BTreeMap, BTreeSet};

use crate::ingest::{Engine, EngineOptions, EventOutcome, Outcome, Position, StateHint, StateMap};
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;
use roomgraph_store::{EventStatus, StoreOptions, SyncPolicy};
use roomgraph_testkit::builder::EventBuilder;
use roomgraph_testkit::trace::{TraceSpec, generate};

const ROOM: &str = "!room:a.org";
const ALICE: &str = "@alice:a.org";
const BOB: &str = "@bob:b.org";

/// A hand-built v10 room: named events as NDJSON lines.
struct Fixture {
    version: &'static RoomVersion,
    room: &'static str,
    lines: BTreeMap<&'static str, String>,
    ids: BTreeMap<&'static str, String>,
    depths: BTreeMap<&'static str, i64>,
}

impl Fixture {
    /// create, alice's join, power levels (alice 100), public join rules, bob's join.
    fn new() -> Fixture {
        Fixture::in_room(ROOM)
    }

    /// The same five events in room `room`.
    fn in_room(room: &'static str) -> Fixture {
        let mut f = Fixture {
            version: RoomVersion::from_id("10").expect("v10"),
            room,
            lines: BTreeMap::new(),
            ids: BTreeMap::new(),
            depths: BTreeMap::new(),
        };
        f.state(
            "create",
            "m.room.create",
            ALICE,
            "",
            r#"{"creator":"@alice:a.org","room_version":"10"}"#,
            &[],
            &[],
        );
        f.member("alice", ALICE, "join", &["create"], &["create"]);
        f.state(
            "power",
            "m.room.power_levels",
            ALICE,
            "",
            r#"{"users":{"@alice:a.org":100},"ban":50,"kick":50}"#,
            &["alice"],
            &["create", "alice"],
        );
        f.state(
            "rules",
            "m.room.join_rules",
            ALICE,
            "",
            r#"{"join_rule":"public"}"#,
            &["power"],
            &["create", "alice", "power"],
        );
        f.member(
            "bob",
            BOB,
            "join",
            &["rules"],
            &["create", "power", "rules"],
        );
        f
    }

    #[allow(clippy::too_many_arguments)]
    fn state(
        &mut self,
        name: &'static str,
        event_type: &str,
        sender: &str,
        state_key: &str,
        content: &str,
        prev: &[&str],
        auth: &[&str],
    ) -> String {
        let b = EventBuilder::with_json_content(self.version, event_type, sender, content)
            .state_key(state_key);
        self.add(name, b, prev, auth)
    }

    fn member(
        &mut self,
        name: &'static str,
        user: &str,
        membership: &str,
        prev: &[&str],
        auth: &[&str],
    ) -> String {
        let content = format!(r#"{{"membership":"{membership}"}}"#);
        let sender = if membership == "ban" { ALICE } else { user };
        let mut auth = auth.to_vec();
        if sender == ALICE && !auth.contains(&"alice") && name != "alice" {
            auth.push("alice");
        }
        self.state(name, "m.room.member", sender, user, &content, prev, &auth)
    }

    fn message(&mut self, name: &'static str, sender: &str, prev: &[&str]) -> String {
        let member = if sender == ALICE { "alice" } else { "bob" };
        let b = EventBuilder::with_json_content(
            self.version,
            "m.room.message",
            sender,
            &format!(r#"{{"body":"{name}"}}"#),
        );
        self.add(name, b, prev, &["create", "power", member])
    }

    fn add(&mut self, name: &'static str, b: EventBuilder, prev: &[&str], auth: &[&str]) -> String {
        let depth = prev.iter().map(|p| self.depths[p]).max().unwrap_or(0) + 1;
        let prev: Vec<String> = prev.iter().map(|p| self.ids[p].clone()).collect();
        self.add_with_prev_ids(name, b, depth, &prev, auth)
    }

    /// Like `add`, with prev events given by id (events of another room, or unknown ones).
    fn add_with_prev_ids(
        &mut self,
        name: &'static str,
        b: EventBuilder,
        depth: i64,
        prev: &[String],
        auth: &[&str],
    ) -> String {
        let prev: Vec<&str> = prev.iter().map(String::as_str).collect();
        let auth: Vec<&str> = auth.iter().map(|a| self.ids[a].as_str()).collect();
        let line = b
            .room_id(self.room)
            .depth(depth)
            .prev_events(&prev)
            .auth_events(&auth)
            .build_json_line();
        let id = Pdu::parse(line.as_bytes(), self.version)
            .expect("fixture parses")
            .event_id
            .to_string();
        self.lines.insert(name, line);
        self.ids.insert(name, id.clone());
        self.depths.insert(name, depth);
        id
    }

    /// Carol's join (after `prev`) and her message citing it as auth and prev event.
    fn carol(&mut self, prev: &'static str) {
        self.member(
            "carol",
            "@carol:c.org",
            "join",
            &[prev],
            &["create", "power", "rules"],
        );
        let b = EventBuilder::with_json_content(
            self.version,
            "m.room.message",
            "@carol:c.org",
            r#"{"body":"hi"}"#,
        );
        self.add("carol_msg", b, &["carol"], &["create", "power", "carol"]);
    }

    fn lines(&self, names: &[&str]) -> Vec<String> {
        names.iter().map(|n| self.lines[n].clone()).collect()
    }

    fn id(&self, name: &str) -> String {
        self.ids[name].clone()
    }

    /// The names of events in `ids`.
    fn names(&self, ids: &[String]) -> BTreeSet<String> {
        ids.iter()
            .map(|id| {
                self.ids
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map_or_else(|| id.clone(), |(k, _)| (*k).to_owned())
            })
            .collect()
    }
}

const SETUP: [&str; 5] = ["create", "alice", "power", "rules", "bob"];

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::open_with(
        dir,
        EngineOptions {
            store: StoreOptions {
                sync: SyncPolicy::Never,
                ..StoreOptions::default()
            },
            check_resolutions: true,
            ..EngineOptions::default()
        },
    )
    .expect("open")
}

/// Ingests `lines` in batches of `batch` lines (numbered from 1 across batches), then finishes.
fn ingest_batched(engine: &mut Engine, lines: &[String], batch: usize) -> Vec<EventOutcome> {
    let numbered: Vec<(u64, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.clone().into_bytes()))
        .collect();
    let batches: Vec<Vec<(u64, Vec<u8>)>> = numbered.chunks(batch).map(<[_]>::to_vec).collect();
    let mut out = Vec::new();
    engine
        .ingest_stream(batches, |o| {
            out.extend(o);
            Ok(())
        })
        .expect("ingest");
    out.extend(engine.finish().expect("finish"));
    out
}

fn outcome_of<'a>(outcomes: &'a [EventOutcome], id: &str) -> Vec<&'a EventOutcome> {
    outcomes
        .iter()
        .filter(|o| o.event_id.as_deref() == Some(id))
        .collect()
}

fn last_outcome(outcomes: &[EventOutcome], id: &str) -> Outcome {
    outcome_of(outcomes, id)
        .last()
        .map(|o| o.outcome)
        .unwrap_or_else(|| panic!("no outcome for {id}"))
}

fn state_names(f: &Fixture, map: &StateMap) -> BTreeMap<(String, String), String> {
    map.iter()
        .map(|(k, v)| {
            let name = f
                .names(std::slice::from_ref(v))
                .into_iter()
                .next()
                .unwrap_or_default();
            (k.clone(), name)
        })
        .collect()
}

/// Synapse's example in `_calculate_new_extremities`: F ← SF ← N, where SF is soft-failed and N
/// accepted. N replaces F as a forward extremity although it cites F only through SF.
#[test]
fn an_extremity_reached_only_through_a_soft_failed_event_is_dropped() {
    let mut f = Fixture::new();
    f.member("ban", BOB, "ban", &["bob"], &["create", "power", "bob"]);
    f.message("fork", ALICE, &["bob"]);
    f.message("sf", BOB, &["fork"]);
    f.message("n", ALICE, &["sf"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut order: Vec<&str> = SETUP.to_vec();
    order.extend(["ban", "fork", "sf", "n"]);
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 1);
    assert_eq!(last_outcome(&outcomes, &f.id("ban")), Outcome::Accepted);
    assert_eq!(last_outcome(&outcomes, &f.id("fork")), Outcome::Accepted);
    assert_eq!(last_outcome(&outcomes, &f.id("sf")), Outcome::SoftFailed);
    assert_eq!(last_outcome(&outcomes, &f.id("n")), Outcome::Accepted);
    let ext = engine.extremities(ROOM).expect("extremities");
    assert_eq!(f.names(&ext), names(&["ban", "n"]));
    // The current state still holds the ban (resolved from the ban and N's fork).
    let current = state_names(&f, &engine.current_state(ROOM).expect("state"));
    assert_eq!(
        current.get(&("m.room.member".to_owned(), BOB.to_owned())),
        Some(&"ban".to_owned())
    );
}

/// A soft-failed or rejected event is never an extremity, and an accepted event citing a rejected
/// one drops what the rejected event cited.
#[test]
fn rejected_events_are_never_extremities_and_pass_their_prevs_on() {
    let mut f = Fixture::new();
    // Bob cannot change the power levels: rejected against its auth events.
    f.state(
        "bad_power",
        "m.room.power_levels",
        BOB,
        "",
        r#"{"users":{"@bob:b.org":100}}"#,
        &["bob"],
        &["create", "power", "bob"],
    );
    f.message("fork", ALICE, &["bob"]);
    f.message("after_bad", ALICE, &["bad_power"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut order: Vec<&str> = SETUP.to_vec();
    order.extend(["fork", "bad_power"]);
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 64);
    assert_eq!(
        last_outcome(&outcomes, &f.id("bad_power")),
        Outcome::Rejected
    );
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["fork"])
    );
    let outcomes = ingest_batched(&mut engine, &f.lines(&["after_bad"]), 64);
    assert_eq!(
        last_outcome(&outcomes, &f.id("after_bad")),
        Outcome::Accepted
    );
    // `bob` (cited through the rejected event) was not an extremity anyway; `fork` stays.
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["fork", "after_bad"])
    );
}

/// A ban that arrives before a message of the banned user's fork soft-fails it; arriving after it,
/// the message is accepted. However the input is batched.
#[test]
fn soft_failure_follows_arrival_order_in_every_batching() {
    let mut f = Fixture::new();
    f.member("ban", BOB, "ban", &["bob"], &["create", "power", "bob"]);
    f.message("msg", BOB, &["bob"]);
    for (order, expected) in [
        (["ban", "msg"], Outcome::SoftFailed),
        (["msg", "ban"], Outcome::Accepted),
    ] {
        let mut all: Vec<&str> = SETUP.to_vec();
        all.extend(order);
        let lines = f.lines(&all);
        let mut seen = Vec::new();
        for batch in [1, 2, 3, 64] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut engine = open(dir.path());
            let outcomes = ingest_batched(&mut engine, &lines, batch);
            assert_eq!(
                last_outcome(&outcomes, &f.id("msg")),
                expected,
                "order {order:?}, batches of {batch}"
            );
            let ext = f.names(&engine.extremities(ROOM).expect("ext"));
            let current = engine.current_state(ROOM).expect("current");
            seen.push((outcomes, ext, current));
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "order {order:?}");
    }
}

/// The same generated trace (forks, rejected events, several rooms and versions) in batches of 1, 64
/// and 8 192 lines: identical outcomes, states and extremities.
#[test]
fn a_generated_trace_gives_identical_results_in_every_batching() {
    let trace = generate(&TraceSpec {
        rooms: 3,
        events: 600,
        big_room_members: 40,
        fork_every: 5,
        bad_every: 9,
        versions: ["10", "12", "3"]
            .iter()
            .map(|v| RoomVersion::from_id(v).expect("version"))
            .collect(),
        seed: 7,
        ..TraceSpec::default()
    });
    // Shuffled within windows of 12 lines: events arrive before their parents, wait, become outliers
    // and are de-outliered.
    let mut lines = trace.lines.clone();
    let mut rng = roomgraph_testkit::rng::Rng::new(11);
    for window in lines.chunks_mut(12) {
        rng.shuffle(window);
    }
    let mut results = Vec::new();
    for batch in [1, 64, 8192] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = open(dir.path());
        let mut outcomes = ingest_batched(&mut engine, &lines, batch);
        // Each batch reports in line order, so where an event is reported depends on the batching;
        // what is reported does not.
        outcomes.sort_by_key(|o| (o.line, o.deoutliered));
        assert!(outcomes.iter().any(|o| o.outcome == Outcome::Outlier));
        assert!(outcomes.iter().any(|o| o.deoutliered));
        assert!(outcomes.iter().all(|o| o.outcome != Outcome::Pending));
        let mut rooms = BTreeMap::new();
        for room in trace.rooms.iter() {
            let current = engine.current_state(room).expect("current");
            let ext = engine.extremities(room).expect("ext");
            rooms.insert(room.clone(), (current, ext));
        }
        let mut states = Vec::new();
        for id in &trace.ids {
            states.push(engine.state_at(id, Position::After).ok());
        }
        results.push((outcomes, rooms, states));
    }
    for w in results.windows(2) {
        for (a, b) in w[0].0.iter().zip(&w[1].0) {
            assert_eq!(a, b, "outcomes");
        }
        assert_eq!(w[0].0.len(), w[1].0.len());
        assert_eq!(w[0].1, w[1].1, "rooms");
        assert_eq!(w[0].2, w[1].2, "states");
    }
}

/// An event whose prev event is missing, without a hint, is an outlier: checked against its auth
/// events only, no state, not an extremity. When the prev event arrives it is de-outliered.
#[test]
fn an_outlier_is_stored_without_state_and_de_outliered_when_its_prev_arrives() {
    let mut f = Fixture::new();
    f.message("gap", ALICE, &["bob"]);
    f.message("child", BOB, &["gap"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut order: Vec<&str> = SETUP.to_vec();
    order.push("child");
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 64);
    assert_eq!(last_outcome(&outcomes, &f.id("child")), Outcome::Outlier);
    let stored = engine.event(&f.id("child")).expect("read").expect("stored");
    assert_eq!(stored.status, EventStatus::Outlier);
    assert!(engine.state_at(&f.id("child"), Position::Before).is_err());
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["bob"])
    );

    // A second engine session: the outlier's wait is persisted.
    drop(engine);
    let mut engine = open(dir.path());
    let outcomes = ingest_batched(&mut engine, &f.lines(&["gap"]), 64);
    assert_eq!(last_outcome(&outcomes, &f.id("gap")), Outcome::Accepted);
    let child = outcome_of(&outcomes, &f.id("child"));
    assert_eq!(child.len(), 1);
    assert_eq!(child[0].outcome, Outcome::Accepted);
    assert!(child[0].deoutliered);
    let stored = engine.event(&f.id("child")).expect("read").expect("stored");
    assert_eq!(stored.status, EventStatus::Accepted);
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["child"])
    );
    let before = state_names(
        &f,
        &engine
            .state_at(&f.id("child"), Position::Before)
            .expect("state"),
    );
    assert_eq!(before.len(), 5);
}

/// An outlier can be cited as an auth event and as a prev event; a rejected outlier stays rejected.
#[test]
fn outliers_serve_as_auth_events_and_a_chain_of_them_de_outliers_in_order() {
    let mut f = Fixture::new();
    f.message("m1", ALICE, &["bob"]);
    // Carol's message cites her outlier join as an auth event and as its prev event.
    f.carol("m1");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut order: Vec<&str> = SETUP.to_vec();
    order.extend(["carol", "carol_msg", "m1"]);
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 2);
    let by_name = |n: &str| {
        outcome_of(&outcomes, &f.id(n))
            .iter()
            .map(|o| (o.outcome, o.deoutliered))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_name("carol"),
        [(Outcome::Outlier, false), (Outcome::Accepted, true)]
    );
    assert_eq!(
        by_name("carol_msg"),
        [(Outcome::Outlier, false), (Outcome::Accepted, true)]
    );
    assert_eq!(by_name("m1"), [(Outcome::Accepted, false)]);
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["carol_msg"])
    );
    let current = state_names(&f, &engine.current_state(ROOM).expect("state"));
    assert_eq!(
        current.get(&("m.room.member".to_owned(), "@carol:c.org".to_owned())),
        Some(&"carol".to_owned())
    );
}

/// A timeline event whose prev event is missing, with the state after that prev event as a hint, is
/// checked against the hinted state and stored as a timeline event: a new forward extremity beside the
/// current ones, as in Synapse. The missing prev event, arriving later, is not an extremity (Synapse's
/// `_get_events_which_are_prevs`), and it replaces its own prev events.
#[test]
fn a_state_after_hint_places_an_event_at_a_gap() {
    let mut f = Fixture::new();
    f.state(
        "topic",
        "m.room.topic",
        ALICE,
        "",
        r#"{"topic":"t"}"#,
        &["bob"],
        &["create", "power", "alice"],
    );
    f.message("p", ALICE, &["topic"]);
    f.message("e", BOB, &["p"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut state_after_p: Vec<String> = SETUP.iter().map(|n| f.id(n)).collect();
    state_after_p.push(f.id("topic"));
    engine.add_state_hints([StateHint::After {
        event_id: f.id("p"),
        state: state_after_p,
    }]);
    let mut order: Vec<&str> = SETUP.to_vec();
    order.extend(["topic", "e"]);
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 64);
    let e = outcome_of(&outcomes, &f.id("e"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].outcome, Outcome::Accepted);
    let before = state_names(
        &f,
        &engine
            .state_at(&f.id("e"), Position::Before)
            .expect("state"),
    );
    assert_eq!(
        before.get(&("m.room.topic".to_owned(), String::new())),
        Some(&"topic".to_owned())
    );
    assert_eq!(before.len(), 6);
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["topic", "e"])
    );
    // The missing prev arrives: a timeline event, cited by `e`, so not an extremity; `topic` leaves.
    let outcomes = ingest_batched(&mut engine, &f.lines(&["p"]), 64);
    assert_eq!(last_outcome(&outcomes, &f.id("p")), Outcome::Accepted);
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["e"])
    );
    // The citation is persisted: a reopened engine knows it too.
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["e"])
    );
}

/// A `state_before` hint gives the state before the event directly; a hint naming an event not
/// stored yet makes the event wait for it; two events for one key make it invalid.
#[test]
fn state_before_hints_wait_for_their_events_and_must_be_one_per_key() {
    let mut f = Fixture::new();
    f.member("ban", BOB, "ban", &["bob"], &["create", "power", "bob"]);
    f.message("lost", ALICE, &["ban"]);
    f.message("after_gap", BOB, &["lost"]);
    f.message("after_gap2", BOB, &["lost", "bob"]);
    f.state(
        "power2",
        "m.room.power_levels",
        ALICE,
        "",
        r#"{"users":{"@alice:a.org":100},"ban":60}"#,
        &["bob"],
        &["create", "power", "alice"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let with_ban: Vec<String> = ["create", "alice", "power", "rules", "ban"]
        .iter()
        .map(|n| f.id(n))
        .collect();
    engine.add_state_hints([StateHint::Before {
        event_id: f.id("after_gap"),
        state: with_ban,
    }]);
    let two_power: Vec<String> = ["create", "alice", "power", "rules", "bob", "power2"]
        .iter()
        .map(|n| f.id(n))
        .collect();
    engine.add_state_hints([StateHint::Before {
        event_id: f.id("after_gap2"),
        state: two_power,
    }]);
    let mut order: Vec<&str> = SETUP.to_vec();
    order.extend(["power2", "after_gap", "after_gap2"]);
    let outcomes = ingest_batched(&mut engine, &f.lines(&order), 64);
    // `after_gap` waits for the ban, named by its hint.
    let pending = outcome_of(&outcomes, &f.id("after_gap"));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].outcome, Outcome::Pending);
    assert_eq!(
        pending[0].reason_text().as_deref(),
        Some(format!("waiting for {}", f.id("ban")).as_str())
    );
    let bad = outcome_of(&outcomes, &f.id("after_gap2"));
    assert_eq!(bad[0].outcome, Outcome::Invalid);
    assert!(
        bad[0]
            .reason_text()
            .as_deref()
            .unwrap_or_default()
            .contains("both given for one")
    );
    assert!(engine.event(&f.id("after_gap2")).expect("read").is_none());

    let outcomes = ingest_batched(&mut engine, &f.lines(&["ban"]), 64);
    // Bob is banned in the hinted state: rejected against the state before it.
    let o = outcome_of(&outcomes, &f.id("after_gap"));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].outcome, Outcome::Rejected);
    assert!(
        o[0].reason_text()
            .as_deref()
            .unwrap_or_default()
            .contains("state before")
    );
}

/// Pending events name the root missing events they wait for, not only their first missing parent.
#[test]
fn pending_events_name_their_root_missing_ancestors() {
    let mut f = Fixture::new();
    f.carol("bob");
    // `power` is withheld: carol's join waits for it, her message for her join.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let outcomes = ingest_batched(
        &mut engine,
        &f.lines(&["create", "alice", "rules", "carol", "carol_msg"]),
        64,
    );
    let power = f.id("power");
    for n in ["carol", "carol_msg"] {
        let o = outcome_of(&outcomes, &f.id(n));
        assert_eq!(o.last().map(|o| o.outcome), Some(Outcome::Pending), "{n}");
        let reason = o.last().and_then(|o| o.reason_text()).unwrap_or_default();
        assert!(reason.contains(&power), "{n}: {reason}");
        assert!(!reason.contains(&f.id("carol")), "{n}: {reason}");
    }
}

/// Synapse validates an outlier's signatures (`validate_event_for_room_version`) before its auth
/// events, as a timeline event's: an outlier its sender's server did not sign is a rejected outlier,
/// and stays rejected when its gap closes (the check runs again on de-outliering).
#[test]
fn an_outlier_missing_its_senders_signature_is_rejected_and_stays_rejected() {
    let mut f = Fixture::new();
    f.message("gap", ALICE, &["bob"]);
    f.message("child", BOB, &["gap"]);
    let mut child: serde_json::Value = serde_json::from_str(&f.lines["child"]).expect("json");
    let sigs = child["signatures"].as_object_mut().expect("signatures");
    assert!(
        sigs.remove("b.org").is_some(),
        "the fixture signs for bob's server"
    );
    let unsigned_child = serde_json::to_string(&child).expect("json");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut lines = f.lines(&SETUP);
    lines.push(unsigned_child);
    let outcomes = ingest_batched(&mut engine, &lines, 64);
    let first = outcome_of(&outcomes, &f.id("child"));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].outcome, Outcome::Rejected);
    let reason = first[0].reason_text().unwrap_or_default();
    assert!(
        reason.starts_with("outlier: signature check on receipt:") && reason.contains("b.org"),
        "{reason}"
    );
    let stored = engine.event(&f.id("child")).expect("read").expect("stored");
    assert_eq!(stored.status, EventStatus::RejectedOutlier);

    let outcomes = ingest_batched(&mut engine, &f.lines(&["gap"]), 64);
    assert_eq!(last_outcome(&outcomes, &f.id("gap")), Outcome::Accepted);
    let stored = engine.event(&f.id("child")).expect("read").expect("stored");
    assert!(stored.status.is_rejected(), "{:?}", stored.status);
    assert_eq!(
        f.names(&engine.extremities(ROOM).expect("ext")),
        names(&["gap"])
    );
}

/// An outlier whose missing prev event turns up in another room is rejected once: its wait row is
/// deleted with that outcome, so a later session neither settles it again nor reports it.
#[test]
fn an_outlier_whose_prev_event_is_stored_in_another_room_is_settled_once() {
    let mut a = Fixture::new();
    let b = Fixture::in_room("!other:a.org");
    let foreign = b.id("bob");
    let msg = EventBuilder::with_json_content(a.version, "m.room.message", BOB, r#"{"body":"x"}"#);
    a.add_with_prev_ids("child", msg, 9, &[foreign], &["create", "power", "bob"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut order: Vec<&str> = SETUP.to_vec();
    order.push("child");
    let outcomes = ingest_batched(&mut engine, &a.lines(&order), 64);
    assert_eq!(last_outcome(&outcomes, &a.id("child")), Outcome::Outlier);

    // Room B arrives: the outlier's gap is closed by an event of another room.
    let outcomes = ingest_batched(&mut engine, &b.lines(&SETUP), 64);
    let settled = outcome_of(&outcomes, &a.id("child"));
    assert_eq!(settled.len(), 1, "{outcomes:?}");
    assert_eq!(settled[0].outcome, Outcome::Rejected);
    let status = engine
        .event(&a.id("child"))
        .expect("read")
        .expect("stored")
        .status;

    // A later session: nothing left to settle.
    drop(engine);
    let mut engine = open(dir.path());
    let outcomes = ingest_batched(&mut engine, &[], 64);
    assert!(
        outcome_of(&outcomes, &a.id("child")).is_empty(),
        "{outcomes:?}"
    );
    let again = engine
        .event(&a.id("child"))
        .expect("read")
        .expect("stored")
        .status;
    assert_eq!(again, status);
}
