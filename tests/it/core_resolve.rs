//! Tests of roomgraph-core that build events with `roomgraph_testkit` (which depends on the core,
//! so they cannot be the core's own unit tests).

/// Moved from `engine/core/src/resolve/auth_chain.rs`.
mod resolve_auth_chain {
    use roomgraph::resolve::EventIdx;

    use roomgraph::resolve::*;
    use roomgraph::room_version::RoomVersion;
    use roomgraph_testkit::room_generator::{RoomConfig, generate};

    /// The linear passes and the chain cover index agree on generated rooms.
    #[test]
    fn passes_and_chain_cover_agree() {
        use roomgraph::resolve::ChainCover;
        for seed in 0..6 {
            let room = generate(&RoomConfig::small(
                RoomVersion::from_id("12").expect("known"),
                seed,
            ));
            let (graph, sets) = room.graph();
            let mut cover = ChainCover::new();
            for e in 0..graph.len() as u32 {
                let e = EventIdx(e);
                let Some(key) = graph.key_of(e) else { continue };
                let auth: Vec<u64> = graph
                    .auth_events(e)
                    .iter()
                    .map(|a| u64::from(a.0))
                    .collect();
                cover
                    .insert(u64::from(e.0), key.0, &auth)
                    .expect("auth events first");
            }
            let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
            let mut reach = Reachability::default();
            let mut diff = Vec::new();
            reach.auth_difference(&graph, &refs, &mut diff);
            let nums: Vec<Vec<u64>> = sets
                .iter()
                .map(|s| s.iter().map(|e| u64::from(e.0)).collect())
                .collect();
            let num_refs: Vec<&[u64]> = nums.iter().map(Vec::as_slice).collect();
            let as_idx = |v: Vec<u64>| -> Vec<EventIdx> {
                v.into_iter().map(|n| EventIdx(n as u32)).collect()
            };
            let from_cover = as_idx(cover.auth_difference(&num_refs).expect("indexed"));
            assert_eq!(diff, from_cover, "seed {seed}");
            let conflicted: Vec<EventIdx> = diff
                .iter()
                .copied()
                .filter(|e| sets.iter().flatten().any(|s| s == e))
                .collect();
            let mut sub = Vec::new();
            reach.conflicted_subgraph(&graph, &conflicted, &mut sub);
            let conflicted_nums: Vec<u64> = conflicted.iter().map(|e| u64::from(e.0)).collect();
            let from_cover = as_idx(
                cover
                    .conflicted_subgraph(&conflicted_nums)
                    .expect("indexed"),
            );
            assert_eq!(sub, from_cover, "seed {seed}");
        }
    }
}

/// Moved from `engine/core/src/resolve/intern.rs`.
mod resolve_intern {

    use roomgraph::auth::AuthEvent;
    use std::sync::Arc;

    use roomgraph::resolve::ResolveError;
    use roomgraph::room_version::RoomVersion;

    use roomgraph::resolve::*;
    use roomgraph_testkit::builder::EventBuilder;

    fn ev(version: &'static RoomVersion, id: &str, auth: &[&str], room: &str) -> AuthEvent {
        let pdu =
            EventBuilder::with_json_content(version, "m.room.topic", "@a:x", r#"{"topic":"t"}"#)
                .state_key("")
                .room_id(room)
                .local_id(id)
                .auth_events(auth)
                .build()
                .expect("valid fixture");
        AuthEvent::new(pdu)
    }

    fn v2() -> &'static RoomVersion {
        RoomVersion::from_id("2").expect("known")
    }

    #[test]
    fn build_numbers_auth_events_first() {
        let events = vec![
            ev(v2(), "$c:x", &["$b:x", "$a:x"], "!r:x"),
            ev(v2(), "$b:x", &["$a:x"], "!r:x"),
            ev(v2(), "$a:x", &[], "!r:x"),
        ];
        let g = EventGraph::build(v2(), events, &|id| id == "$b:x").expect("valid");
        let (a, b, c) = (
            g.idx("$a:x").unwrap(),
            g.idx("$b:x").unwrap(),
            g.idx("$c:x").unwrap(),
        );
        assert!(a < b && b < c);
        assert_eq!(g.auth_events(c), [b, a]);
        assert!(g.node(b).rejected && !g.node(a).rejected);
        assert_eq!(g.keys().len(), 1);
    }

    /// The three ways to make a graph — `build` from auth-ordered input (no sort), `build` from shuffled
    /// input (sorted), `new` + `insert` (lookups interned per event) — agree on every auth edge, state key
    /// and auth lookup, and resolve to the same state.
    #[test]
    fn ordered_shuffled_and_inserted_graphs_agree() {
        use roomgraph_testkit::room_generator::{RoomConfig, generate};
        for version in ["2", "10", "12"] {
            let version = RoomVersion::from_id(version).expect("known");
            let room = generate(&RoomConfig::small(version, 7));
            let events: Vec<AuthEvent> = room.events.iter().cloned().map(AuthEvent::new).collect();
            let ordered = EventGraph::build(version, events.clone(), &|_| false).expect("valid");
            let mut shuffled_events = events.clone();
            let mut rng = roomgraph_testkit::rng::Rng::new(3);
            for i in (1..shuffled_events.len()).rev() {
                shuffled_events.swap(i, rng.below(i + 1));
            }
            let shuffled = EventGraph::build(version, shuffled_events, &|_| false).expect("valid");
            let mut inserted = EventGraph::new(version, "");
            for e in events {
                inserted.insert(e, false).expect("auth-ordered");
            }
            fn named(g: &EventGraph, e: EventIdx) -> String {
                let mut auth: Vec<&str> = g.auth_events(e).iter().map(|&a| g.event_id(a)).collect();
                auth.sort_unstable();
                let key = g.key_of(e).map(|k| g.keys().resolve(k));
                let mut lookups = Vec::new();
                g.for_each_auth_key(e, |k| lookups.push(g.keys().resolve(k)));
                lookups.sort_unstable();
                lookups.dedup();
                let node = g.node(e);
                let pl_auth = node.pl_auth.map(|p| g.event_id(p));
                format!("{auth:?} {key:?} {lookups:?} {} {pl_auth:?}", node.power)
            }
            for pdu in &room.events {
                let (o, s, i) = (
                    ordered.idx(&pdu.event_id).expect("present"),
                    shuffled.idx(&pdu.event_id).expect("present"),
                    inserted.idx(&pdu.event_id).expect("present"),
                );
                assert_eq!(o, i, "auth-ordered input keeps its order");
                assert_eq!(named(&ordered, o), named(&shuffled, s));
                assert_eq!(named(&ordered, o), named(&inserted, i));
            }
            let resolved = |g: &EventGraph| {
                let sets: Vec<Vec<EventIdx>> = room
                    .fork_states
                    .iter()
                    .map(|set| set.iter().filter_map(|id| g.idx(id)).collect())
                    .collect();
                let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
                roomgraph::resolve::resolve(g, &refs)
                    .expect("resolves")
                    .to_named(g)
            };
            assert_eq!(resolved(&ordered), resolved(&shuffled));
            assert_eq!(resolved(&ordered), resolved(&inserted));
        }
    }

    #[test]
    fn build_errors_name_the_event() {
        let dup = vec![ev(v2(), "$a:x", &[], "!r:x"), ev(v2(), "$a:x", &[], "!r:x")];
        assert_eq!(
            EventGraph::build(v2(), dup, &|_| false).err(),
            Some(ResolveError::DuplicateEvent("$a:x".into()))
        );
        let missing = vec![ev(v2(), "$a:x", &["$zz:x"], "!r:x")];
        assert!(
            matches!(EventGraph::build(v2(), missing, &|_| false), Err(ResolveError::MissingAuthEvent { auth_event_id, .. }) if auth_event_id == "$zz:x")
        );
        let cycle = vec![
            ev(v2(), "$a:x", &["$b:x"], "!r:x"),
            ev(v2(), "$b:x", &["$a:x"], "!r:x"),
        ];
        assert!(matches!(
            EventGraph::build(v2(), cycle, &|_| false),
            Err(ResolveError::AuthCycle(_))
        ));
        let rooms = vec![ev(v2(), "$a:x", &[], "!r:x"), ev(v2(), "$b:x", &[], "!s:x")];
        assert!(
            matches!(EventGraph::build(v2(), rooms, &|_| false), Err(ResolveError::WrongRoom { room_id, .. }) if room_id == "!s:x")
        );
    }

    #[test]
    fn insert_requires_auth_events_present() {
        let mut g = EventGraph::new(v2(), "!r:x");
        assert!(
            g.insert(ev(v2(), "$b:x", &["$a:x"], "!r:x"), false)
                .is_err()
        );
        g.insert(ev(v2(), "$a:x", &[], "!r:x"), false)
            .expect("root");
        g.insert(ev(v2(), "$b:x", &["$a:x", "$a:x"], "!r:x"), false)
            .expect("dup auth refs collapse");
        assert_eq!(g.auth_events(EventIdx(1)), [EventIdx(0)]);
    }

    #[test]
    fn ids_survive_table_growth_and_failed_inserts() {
        let mut g = EventGraph::new(v2(), "!r:x");
        let ids: Vec<String> = (0..300).map(|i| format!("$e{i}:x")).collect();
        for (i, id) in ids.iter().enumerate() {
            let auth: Vec<&str> = if i == 0 { vec![] } else { vec![&ids[i - 1]] };
            g.insert(ev(v2(), id, &auth, "!r:x"), false).expect("chain");
            // A failed insert (second auth event missing) must leave nothing behind.
            assert!(
                g.insert(ev(v2(), "$bad:x", &[id, "$nope:x"], "!r:x"), false)
                    .is_err()
            );
        }
        assert!(g.insert(ev(v2(), "$e7:x", &[], "!r:x"), false).is_err());
        for (i, id) in ids.iter().enumerate() {
            let e = g.idx(id).expect("interned");
            assert_eq!((e.ix(), g.event_id(e)), (i, id.as_str()));
            let want: Vec<EventIdx> = if i == 0 {
                vec![]
            } else {
                vec![EventIdx(i as u32 - 1)]
            };
            assert_eq!(g.auth_events(e), want);
        }
        assert_eq!(g.idx("$bad:x"), None);
        let rebuilt = EventGraph::build(
            v2(),
            (0..g.len() as u32)
                .rev()
                .map(|i| Arc::clone(g.shared_event(EventIdx(i))))
                .collect(),
            &|_| false,
        )
        .expect("same events");
        assert_eq!(rebuilt.idx("$e299:x"), Some(EventIdx(299)));
    }
}

/// Moved from `engine/core/src/resolve/mod.rs`.
mod resolve {

    use roomgraph::resolve::*;
    use roomgraph::room_version::RoomVersion;
    use roomgraph_testkit::room_generator::{RoomConfig, generate};

    /// The graph and fork-tip state sets of a small generated v11 room.
    fn small_v11_room() -> (EventGraph, Vec<Vec<EventIdx>>) {
        generate(&RoomConfig::small(
            RoomVersion::from_id("11").expect("known"),
            11,
        ))
        .graph()
    }

    #[test]
    fn resolve_many_matches_one_by_one() {
        let (graph, sets) = small_v11_room();
        let mut batches = vec![sets.clone()];
        for i in 0..sets.len() {
            for j in i + 1..sets.len() {
                batches.push(vec![sets[i].clone(), sets[j].clone()]);
            }
        }
        let many = resolve_many(&graph, &batches);
        for (batch, got) in batches.iter().zip(many) {
            let refs: Vec<&[EventIdx]> = batch.iter().map(Vec::as_slice).collect();
            assert_eq!(got, resolve(&graph, &refs));
        }
    }

    #[test]
    fn a_failed_resolution_leaves_the_resolver_clean() {
        let (graph, sets) = small_v11_room();
        assert!(sets.len() >= 2, "the small room forks");
        let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
        let mut resolver = Resolver::new();
        // The second set lists its events twice: the split fails after it has marked conflicted events.
        let doubled: Vec<EventIdx> = sets[1].iter().chain(&sets[1]).copied().collect();
        let bad: Vec<&[EventIdx]> = vec![&sets[0], &doubled];
        assert!(matches!(
            resolver.resolve(&graph, &bad),
            Err(ResolveError::DuplicateKey { set: 1, .. })
        ));
        assert_eq!(resolver.resolve(&graph, &refs), resolve(&graph, &refs));
    }
}
