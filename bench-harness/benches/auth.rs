//! Auth-rule throughput: the state-dependent check of a join, a message and a power-levels change in a
//! room whose power-levels `users` map holds 10 000 entries, roomgraph and ruma-state-res side by side.
//!
//! Both sides get their events in their native form, prepared once: roomgraph an `AuthEvent` (facts
//! extracted when the event entered the engine), ruma an `Event` holding the raw JSON content (ruma
//! parses content inside the check). `extract/power_levels_10k` measures roomgraph's one-off extraction.
//!
//! Run: `cargo bench -p roomgraph-bench --bench auth`.

use roomgraph_tests::auth_support;

use std::collections::HashMap;
use std::hint::black_box;

use auth_support::ruma_adaptor::{RumaPdu, convert, rules};
use auth_support::*;
use criterion::{Criterion, criterion_group, criterion_main};
use roomgraph::auth::{AuthEvent, StateLookup, check_state_dependent};
use ruma::events::StateEventType;

const USERS: usize = 10_000;

struct Fixture {
    room: Room,
    join: AuthEvent,
    message: AuthEvent,
    power_levels: AuthEvent,
}

fn users_map(changed: Option<usize>) -> String {
    let mut users = vec![format!(r#""{ALICE}":100"#), format!(r#""{BOB}":50"#)];
    for i in 0..USERS {
        let level = if Some(i) == changed {
            10
        } else {
            (i % 50) as i64
        };
        users.push(format!(r#""@user{i}:example.org":{level}"#));
    }
    format!(
        r#"{{"users":{{{}}},"events":{{"m.room.power_levels":100}}}}"#,
        users.join(",")
    )
}

/// `event` with its content replaced. A 10 000-entry `users` map is far above the 64 KiB PDU limit, so
/// such an event can only be built in memory, bypassing `Pdu::parse`'s size check.
fn with_content(event: &AuthEvent, content: &str) -> AuthEvent {
    let mut pdu = event.pdu.clone();
    let content =
        roomgraph::canonical_json::parse(content.as_bytes(), roomgraph::NumberPolicy::Strict)
            .expect("content")
            .into_owned();
    pdu.json.insert("content".into(), content);
    AuthEvent::new(pdu)
}

fn fixture() -> Fixture {
    let small = |changed: Option<usize>| {
        let bob = if changed.is_some() { 51 } else { 50 };
        format!(
            r#"{{"users":{{"{ALICE}":100,"{BOB}":{bob}}},"events":{{"m.room.power_levels":100}}}}"#
        )
    };
    let mut room = Room::standard("11", "public", &small(None));
    let pl_id = room
        .state_id("m.room.power_levels", "")
        .expect("pl")
        .to_owned();
    let big = with_content(room.get(&pl_id), &users_map(None));
    room.events.insert(pl_id, big);
    room.send(member(BOB, BOB, "join"));
    let join = room.build(member(CAROL, CAROL, "join"));
    let message = room.build(message(BOB));
    let power_levels = room.build(state("m.room.power_levels", ALICE, &small(Some(0))));
    let power_levels = with_content(&power_levels, &users_map(Some(4_321)));
    for event in [&join, &message, &power_levels] {
        room.check_full(event)
            .expect("benchmark events are allowed");
    }
    Fixture {
        room,
        join,
        message,
        power_levels,
    }
}

fn bench_auth(c: &mut Criterion) {
    let f = fixture();
    let state: StateLookup<'_> = f.room.current_state();
    let create = f.room.create();

    let ruma_rules = rules(f.room.version);
    let ruma_state: HashMap<(StateEventType, String), RumaPdu> = f
        .room
        .state
        .iter()
        .map(|((t, k), id)| {
            let event = convert(f.room.get(id), false).expect("ruma event");
            ((StateEventType::from(t.as_str()), k.clone()), event)
        })
        .collect();
    let fetch = |t: &StateEventType, k: &str| ruma_state.get(&(t.clone(), k.to_owned()));

    let mut group = c.benchmark_group("auth");
    for (name, event) in [
        ("join", &f.join),
        ("message", &f.message),
        ("power_levels_change", &f.power_levels),
    ] {
        let ruma_event = convert(event, false).expect("ruma event");
        assert!(
            ruma::state_res::check_state_dependent_auth_rules(&ruma_rules, &ruma_event, fetch)
                .is_ok()
        );
        group.bench_function(format!("{name}/roomgraph"), |b| {
            b.iter(|| check_state_dependent(black_box(event), &state, create).is_ok())
        });
        group.bench_function(format!("{name}/ruma"), |b| {
            b.iter(|| {
                ruma::state_res::check_state_dependent_auth_rules(
                    &ruma_rules,
                    black_box(&ruma_event),
                    fetch,
                )
                .is_ok()
            })
        });
    }
    group.bench_function("extract/power_levels_10k_incl_pdu_clone", |b| {
        b.iter(|| AuthEvent::new(black_box(f.power_levels.pdu.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
