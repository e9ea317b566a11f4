//! Store-backed resolution: `Engine::resolve(room, state_sets)` on a stored room's persistent event graph
//! and chain cover index, against ruma-state-res 0.18's `resolve` on the same sets in the same run.
//!
//! - `resolve_store/v{11,12}/{1000,3000,large}`: the contested rooms of the `resolve_request` benchmark
//!   (`RoomConfig::contested`: a long power-levels history, three servers forking; one keeps events that
//!   fail auth, which ingest rejects and both sides are told about), ingested into a fresh store; the
//!   state sets are the three servers' states; `large` is the `resolve_large` room of `benches/resolve.rs`
//!   (20 000 members, 300 power-levels changes, four servers forking with 500 state events each).
//!
//! What is timed: roomgraph — `Engine::resolve` from named state sets (`StateMap`s, built outside the
//! timer) to the named resolved state: id → number lookups, the split by key, the auth difference from
//! the chain cover, the resolution on the room's graph (which persists across calls: after the first call
//! nothing is added to it) and naming the full state; ruma — `ruma::state_res::resolve` with the auth
//! chains precomputed outside the timer. Engine::resolve is checked against the stateless resolver and
//! ruma's differences against its known divergence before timing. Run:
//! `cargo bench -p roomgraph-bench --bench resolve_store`.

use roomgraph_tests::ruma_oracle;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use roomgraph::auth::AuthEvent;
use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::ingest::{Engine, Outcome, StateMap};
use roomgraph::resolve::{EventGraph, EventIdx, resolve};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};
use ruma_oracle::RumaRoom;

fn resolve_store(c: &mut Criterion) {
    let mut cases: Vec<(&str, String, RoomConfig)> = Vec::new();
    for version in ["11", "12"] {
        let v = RoomVersion::from_id(version).expect("known");
        for events in [1_000, 3_000] {
            cases.push((
                version,
                events.to_string(),
                RoomConfig::contested(v, events),
            ));
        }
        // The `resolve_large` room of `benches/resolve.rs`: 20 000 members, 4 forks of 500 events.
        cases.push((
            version,
            "large".into(),
            RoomConfig::large(v, 42, 20_000, 300, 4, 500),
        ));
    }
    for (version, events, config) in cases {
        {
            let v = config.version;
            let room = generate(&config);
            let dir = tempfile::tempdir().expect("tempdir");
            let mut engine = Engine::open(dir.path()).expect("open");
            let lines: Vec<String> = room
                .events
                .iter()
                .map(|p| to_canonical_string(&JsonValue::Object(p.json.clone())))
                .collect();
            let mut outcomes = engine.ingest(&lines).expect("ingest");
            outcomes.extend(engine.finish().expect("finish"));
            let rejected: HashSet<String> = outcomes
                .iter()
                .filter(|o| o.outcome == Outcome::Rejected)
                .filter_map(|o| o.event_id.clone())
                .collect();
            let sets: Vec<StateMap> = room.named_fork_states();
            let rejected_refs: Vec<&str> = rejected.iter().map(String::as_str).collect();
            let ruma = RumaRoom::from_pdus(v, &room.events, &rejected_refs);
            let ours: ruma_oracle::Named = engine
                .resolve(&room.room_id, &sets)
                .expect("roomgraph resolves")
                .into_iter()
                .collect();
            // Checked before timing: the same answer as the stateless resolver given the same
            // rejected flags (itself checked against Synapse's verdicts and ruma in the test suite).
            let direct = direct_resolution(&room, &rejected, &sets);
            assert!(
                ours == direct,
                "Engine::resolve and resolve agree on v{version}/{events}"
            );
            // ruma lets a rejected conflicted event win when it passes the iterative auth checks;
            // Synapse (and roomgraph) never admit a rejected event (docs/state-resolution.md). Every
            // key ruma decides differently must trace back to that.
            let theirs = ruma.resolve(&room.fork_states);
            let differing: Vec<_> = ours
                .keys()
                .chain(theirs.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| ours.get(*k) != theirs.get(*k))
                .collect();
            let ruma_admits_rejected = theirs.values().filter(|id| rejected.contains(*id)).count();
            assert!(
                differing.is_empty() || ruma_admits_rejected > 0,
                "v{version}/{events}: ruma differs on {differing:?} without admitting a rejected event"
            );
            eprintln!(
                "resolve_store/v{version}/{events}: ruma decides {} keys differently, admitting {} \
                 rejected events (a known ruma divergence from Synapse)",
                differing.len(),
                ruma_admits_rejected
            );
            let name = format!("resolve_store/v{version}/{events}");
            eprintln!(
                "{name}: {} events, {} rejected by ingest, {} state sets of {} entries",
                room.events.len(),
                rejected.len(),
                sets.len(),
                sets.iter().map(BTreeMap::len).max().unwrap_or(0)
            );
            let mut group = c.benchmark_group(name);
            group
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
            group.bench_function("roomgraph Engine::resolve", |b| {
                b.iter(|| engine.resolve(&room.room_id, &sets).map(|s| s.len()))
            });
            let (maps, chains) = ruma.inputs(&room.fork_states);
            group.bench_function("ruma", |b| {
                b.iter_batched(
                    || chains.clone(),
                    |ch| ruma.run(&maps, ch),
                    BatchSize::LargeInput,
                )
            });
            group.finish();
        }
    }
}

/// The stateless resolver on every event of the room, told which events ingest rejected.
fn direct_resolution(
    room: &GeneratedRoom,
    rejected: &HashSet<String>,
    sets: &[StateMap],
) -> ruma_oracle::Named {
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
    resolve(&graph, &refs)
        .expect("resolves")
        .to_named(&graph)
        .into_iter()
        .flat_map(|(t, m)| m.into_iter().map(move |(s, e)| ((t.clone(), s), e)))
        .collect()
}

criterion_group!(benches, resolve_store);
criterion_main!(benches);
