//! State-resolution benchmarks: roomgraph vs ruma-state-res 0.18 on identical inputs, and roomgraph on 1
//! vs 2 rayon threads.
//!
//! - `resolve_small`: a room of at most 20 events, two forks.
//! - `resolve_large`: a generated room with ≥ 20 000 members, ≥ 10 000 state events, a deep power-levels
//!   history and 4 forks whose state sets conflict on ≥ 1 000 events (v11 and v12).
//!
//! What is timed: roomgraph — interning the parsed events (shared `Arc<AuthEvent>`s, as ingest's event
//! cache holds them and as ruma's event map holds its events) into an [`EventGraph`], mapping the state
//! sets' ids to indices, the resolution, and dropping the graph (`graph+resolve`); and the resolution
//! alone on a prebuilt graph (`resolve`, the long-lived-room case);
//! ruma — `ruma::state_res::resolve` with the auth chains precomputed outside the timing (its most
//! favourable setting) and the conflicted subgraph computed by the oracle's memoised DFS inside it.
//! Both sides are checked to agree before timing. Run: `cargo bench -p roomgraph --no-default-features
//! --bench resolve`.

use roomgraph_tests::ruma_oracle;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use roomgraph::auth::AuthEvent;
use roomgraph::resolve::{EventGraph, EventIdx, ResolveOptions, Resolver};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};
use ruma_oracle::RumaRoom;

struct Case {
    room: GeneratedRoom,
    events: Vec<Arc<AuthEvent>>,
    graph: EventGraph,
    sets: Vec<Vec<EventIdx>>,
    ruma: RumaRoom,
}

impl Case {
    fn new(room: GeneratedRoom) -> Case {
        let events: Vec<Arc<AuthEvent>> = room
            .events
            .iter()
            .cloned()
            .map(|p| Arc::new(AuthEvent::new(p)))
            .collect();
        let (graph, sets) = room.graph();
        let ruma = RumaRoom::new(&room);
        let case = Case {
            room,
            events,
            graph,
            sets,
            ruma,
        };
        let state = Resolver::new()
            .resolve(&case.graph, &case.refs())
            .expect("roomgraph resolves");
        let ours: ruma_oracle::Named = state
            .iter()
            .map(|(k, e)| {
                let (t, s) = case.graph.keys().resolve(k);
                (
                    (t.to_owned(), s.to_owned()),
                    case.graph.event_id(e).to_owned(),
                )
            })
            .collect();
        let theirs = case.ruma.resolve(&case.room.fork_states);
        assert!(ours == theirs, "roomgraph and ruma agree before timing");
        if std::env::var_os("ROOMGRAPH_BUILD_TIMING").is_some() {
            case.build_timing();
        }
        case
    }

    /// With `ROOMGRAPH_BUILD_TIMING`: the fastest of 15 rounds of building (from owned and from shared
    /// events), dropping, and graph+resolve — minima are steadier than medians on a loaded machine.
    fn build_timing(&self) {
        let (mut owned_build, mut owned_drop) = (Duration::MAX, Duration::MAX);
        let (mut shared_build, mut shared_drop, mut all) =
            (Duration::MAX, Duration::MAX, Duration::MAX);
        let mut resolver = Resolver::new();
        for _ in 0..15 {
            let owned: Vec<AuthEvent> = self.events.iter().map(|e| (**e).clone()).collect();
            settle_allocator();
            let t = std::time::Instant::now();
            let graph = EventGraph::build(self.room.version, owned, &|_| false);
            owned_build = owned_build.min(t.elapsed());
            let t = std::time::Instant::now();
            drop(graph);
            owned_drop = owned_drop.min(t.elapsed());
            let shared = fresh_events(self);
            let t = std::time::Instant::now();
            let graph = EventGraph::build(self.room.version, shared, &|_| false);
            shared_build = shared_build.min(t.elapsed());
            let t = std::time::Instant::now();
            drop(graph);
            shared_drop = shared_drop.min(t.elapsed());
            let shared = fresh_events(self);
            let t = std::time::Instant::now();
            std::hint::black_box(self.build_and_resolve(shared, &mut resolver));
            all = all.min(t.elapsed());
        }
        eprintln!(
            "fastest of 15: owned events build {owned_build:?} drop {owned_drop:?}; shared events build \
             {shared_build:?} drop {shared_drop:?}; graph+resolve {all:?}"
        );
    }

    fn refs(&self) -> Vec<&[EventIdx]> {
        self.sets.iter().map(Vec::as_slice).collect()
    }

    fn resolve_prebuilt(&self, resolver: &mut Resolver) -> usize {
        resolver
            .resolve(&self.graph, &self.refs())
            .map(|s| s.len())
            .unwrap_or(0)
    }

    fn build_and_resolve(&self, events: Vec<Arc<AuthEvent>>, resolver: &mut Resolver) -> usize {
        let Ok(graph) = EventGraph::build(self.room.version, events, &|_| false) else {
            return 0;
        };
        let sets: Vec<Vec<EventIdx>> = self
            .room
            .fork_states
            .iter()
            .map(|s| s.iter().filter_map(|id| graph.idx(id)).collect())
            .collect();
        let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
        resolver
            .resolve(&graph, &refs)
            .map(|s| s.len())
            .unwrap_or(0)
    }

    fn describe(&self, name: &str) {
        let state_events = self
            .room
            .events
            .iter()
            .filter(|p| p.state_key.is_some())
            .count();
        let members = self.room.fork_states[0]
            .iter()
            .filter(|id| {
                self.graph
                    .idx(id)
                    .is_some_and(|e| self.graph.event(e).pdu.event_type == "m.room.member")
            })
            .count();
        let pls = self
            .room
            .events
            .iter()
            .filter(|p| p.event_type == "m.room.power_levels")
            .count();
        let mut all: Vec<&String> = self.room.fork_states.iter().flatten().collect();
        all.sort();
        all.dedup();
        let everywhere = all
            .iter()
            .filter(|id| self.room.fork_states.iter().all(|s| s.contains(id)))
            .count();
        let mut difference = Vec::new();
        roomgraph::resolve::Reachability::default().auth_difference(
            &self.graph,
            &self.refs(),
            &mut difference,
        );
        let difference = difference.len();
        eprintln!(
            "{name}: v{}, {} events, {state_events} state events, {members} member keys, {pls} power-levels \
             events, {} forks, {} conflicted events, auth difference {difference} events",
            self.room.version.id,
            self.room.events.len(),
            self.room.fork_states.len(),
            all.len() - everywhere
        );
    }
}

/// Frees a large block so that glibc consolidates the small chunks freed by dropping the previous
/// iteration's graph here, in the untimed setup, instead of inside the next timed routine.
fn settle_allocator() {
    let block = std::hint::black_box(vec![1u8; 4 << 20]);
    drop(block);
}

fn fresh_events(case: &Case) -> Vec<Arc<AuthEvent>> {
    settle_allocator();
    case.events.clone()
}

fn bench_case(c: &mut Criterion, group_name: &str, case: &Case, slow: bool) {
    case.describe(group_name);
    let mut group = c.benchmark_group(group_name);
    if slow {
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20))
            .warm_up_time(Duration::from_secs(2));
    }
    let mut resolver = Resolver::new();
    group.bench_function("roomgraph graph+resolve", |b| {
        b.iter_batched(
            || fresh_events(case),
            |ev| case.build_and_resolve(ev, &mut resolver),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("roomgraph resolve", |b| {
        b.iter(|| case.resolve_prebuilt(&mut resolver))
    });
    for threads in [1, 2] {
        let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() else {
            continue;
        };
        let mut r = Resolver::with_options(ResolveOptions { parallel: true });
        group.bench_function(
            format!("roomgraph graph+resolve {threads} thread(s)"),
            |b| {
                b.iter_batched(
                    || fresh_events(case),
                    |ev| pool.install(|| case.build_and_resolve(ev, &mut r)),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    let (maps, chains) = case.ruma.inputs(&case.room.fork_states);
    group.bench_function("ruma", |b| {
        b.iter_batched(
            || chains.clone(),
            |ch| case.ruma.run(&maps, ch),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn small_room(version: &str) -> GeneratedRoom {
    let v = RoomVersion::from_id(version).expect("known");
    // Two servers, one user each, a handful of actions: at most 20 events with a real conflict.
    for seed in 0.. {
        let cfg = RoomConfig {
            version: v,
            seed,
            servers: 2,
            users_per_server: 1,
            bootstrap_members: 0,
            bootstrap_pl_changes: 1,
            steps: 9,
            merge_probability: 0.0,
            malicious_servers: 0,
            force_probability: 0.5,
            quarantine: false,
            honest_admins: false,
            message_ratio: 0.0,
            power_ratio: 0.0,
            member_activity: 0.0,
        };
        let room = generate(&cfg);
        if room.events.len() <= 20 && room.fork_states.len() == 2 {
            return room;
        }
    }
    unreachable!("some seed gives a small forked room")
}

fn resolve_small(c: &mut Criterion) {
    for version in ["11", "12"] {
        let case = Case::new(small_room(version));
        bench_case(c, &format!("resolve_small/v{version}"), &case, false);
    }
}

fn resolve_large(c: &mut Criterion) {
    for version in ["11", "12"] {
        let v = RoomVersion::from_id(version).expect("known");
        let room = generate(&RoomConfig::large(v, 42, 20_000, 300, 4, 500));
        let case = Case::new(room);
        if version == "12"
            && let Ok(path) = std::env::var("ROOMGRAPH_FLAMEGRAPH")
        {
            flamegraph(&case, &path);
        }
        bench_case(c, &format!("resolve_large/v{version}"), &case, true);
    }
}

/// With `ROOMGRAPH_FLAMEGRAPH=<file.svg>`: profiles 100 rounds of graph building plus resolution of the
/// large v12 case with pprof and writes a flamegraph.
fn flamegraph(case: &Case, path: &str) {
    let rounds = 100;
    let inputs: Vec<Vec<Arc<AuthEvent>>> = (0..rounds).map(|_| case.events.clone()).collect();
    let mut outputs = Vec::with_capacity(rounds);
    let mut resolver = Resolver::with_options(ResolveOptions { parallel: false });
    let Ok(guard) = pprof::ProfilerGuardBuilder::default()
        .frequency(2000)
        .build()
    else {
        return;
    };
    for events in inputs {
        outputs.push(case.build_and_resolve(events, &mut resolver));
    }
    if let Ok(report) = guard.report().build()
        && let Ok(file) = std::fs::File::create(path)
    {
        let _ = report.flamegraph(file);
        eprintln!("flamegraph written to {path}");
    }
    drop(outputs);
}

/// `resolve_request`: request documents of 1 000 – 3 000 events shaped like contested rooms (long power
/// histories, three state sets, auth differences of hundreds of events), from parsed events to the resolved
/// map, against ruma-state-res's `resolve` with the auth chains prepared outside its timer.
fn resolve_request(c: &mut Criterion) {
    for version in ["11", "12"] {
        for events in [1_000, 3_000] {
            let v = RoomVersion::from_id(version).expect("known");
            let case = Case::new(generate(&RoomConfig::contested(v, events)));
            bench_case(
                c,
                &format!("resolve_request/v{version}/{events}"),
                &case,
                false,
            );
        }
    }
}

criterion_group!(benches, resolve_small, resolve_large, resolve_request);
criterion_main!(benches);
