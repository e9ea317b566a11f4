//! State-resolution scenarios as our own fixtures: Synapse `tests/state/test_v2.py` (ban vs PL, join-rule
//! evasion, off-topic PL, topics, mainline sort, event_map_none), `tests/state/test_v21.py` (MSC4297
//! Problems A and B, under v2 and v2.1), the auth-difference tables of Synapse's chain-cover tests, the
//! MSC1442 worked examples, and the adversarial cases (state-reset attempt, ban evasion, auth-chain bomb).
//! Every prev-graph scenario is resolved one event at a time and again all at once (see
//! `resolve_support::check_all_at_once`).

use roomgraph_tests::resolve_support;

use std::collections::BTreeMap;

use resolve_support::*;
use roomgraph::auth::AuthEvent;
use roomgraph::resolve::{EventGraph, EventIdx, Reachability, ResolveOptions, Resolver};

fn pl(users: &[(&str, i64)]) -> String {
    let body: Vec<String> = users.iter().map(|(u, l)| format!(r#""{u}":{l}"#)).collect();
    format!(r#"{{"users":{{{}}}}}"#, body.join(","))
}

/// A power-levels event (state key "") giving `users` their levels.
fn power(id: &'static str, sender: &'static str, users: &[(&str, i64)]) -> Node {
    node(id, sender, "m.room.power_levels", Some(""), &pl(users))
}

/// A join-rules event setting `join_rule`.
fn join_rule(id: &'static str, sender: &'static str, join_rule: &str) -> Node {
    let content = format!(r#"{{"join_rule":"{join_rule}"}}"#);
    node(id, sender, "m.room.join_rules", Some(""), &content)
}

/// The prev-graph scenarios run under v2 exactly as Synapse does (ids `$NODE:example.com`), and under v10
/// (hash ids) where the outcome does not depend on id tie-breaks.
const HARNESS_VERSIONS: &[&str] = &["2", "10"];

/// [`do_check`] under each of [`HARNESS_VERSIONS`].
fn check_harness_versions(events: &[Node], edges: &[&[&str]], expected: &[&str]) {
    for v in HARNESS_VERSIONS {
        do_check(version(v), events, edges, expected);
    }
}

#[test]
fn ban_vs_pl() {
    let events = vec![
        power("PA", ALICE, &[(ALICE, 100), (BOB, 50)]),
        member("MA", ALICE, ALICE, "join"),
        member("MB", ALICE, BOB, "ban"),
        power("PB", BOB, &[(ALICE, 100), (BOB, 50)]),
    ];
    let edges: &[&[&str]] = &[&["END", "MB", "MA", "PA", "START"], &["END", "PB", "PA"]];
    check_harness_versions(&events, edges, &["PA", "MA", "MB"]);
}

#[test]
fn join_rule_evasion() {
    let events = vec![
        // Synapse's fixture has the key typo `join_rules`, so `join_rule` is absent.
        node(
            "JR",
            ALICE,
            "m.room.join_rules",
            Some(""),
            r#"{"join_rules":"private"}"#,
        ),
        member("ME", EVELYN, EVELYN, "join"),
    ];
    let edges: &[&[&str]] = &[&["END", "JR", "START"], &["END", "ME", "START"]];
    check_harness_versions(&events, edges, &["JR"]);
}

#[test]
fn offtopic_pl() {
    let events = vec![
        power("PA", ALICE, &[(ALICE, 100), (BOB, 50)]),
        power("PB", BOB, &[(ALICE, 100), (BOB, 50), (CHARLIE, 50)]),
        power("PC", CHARLIE, &[(ALICE, 100), (BOB, 50), (CHARLIE, 0)]),
    ];
    let edges: &[&[&str]] = &[&["END", "PC", "PB", "PA", "START"], &["END", "PA"]];
    check_harness_versions(&events, edges, &["PC"]);
}

fn topic(id: &'static str, sender: &'static str) -> Node {
    node(id, sender, "m.room.topic", Some(""), "{}")
}

#[test]
fn topic_basic() {
    let events = vec![
        topic("T1", ALICE),
        power("PA1", ALICE, &[(ALICE, 100), (BOB, 50)]),
        topic("T2", ALICE),
        power("PA2", ALICE, &[(ALICE, 100), (BOB, 0)]),
        power("PB", BOB, &[(ALICE, 100), (BOB, 50)]),
        topic("T3", BOB),
    ];
    let edges: &[&[&str]] = &[
        &["END", "PA2", "T2", "PA1", "T1", "START"],
        &["END", "T3", "PB", "PA1"],
    ];
    check_harness_versions(&events, edges, &["PA2", "T2"]);
}

#[test]
fn topic_reset() {
    let events = vec![
        topic("T1", ALICE),
        power("PA", ALICE, &[(ALICE, 100), (BOB, 50)]),
        topic("T2", BOB),
        member("MB", ALICE, BOB, "ban"),
    ];
    let edges: &[&[&str]] = &[&["END", "MB", "T2", "PA", "T1", "START"], &["END", "T1"]];
    check_harness_versions(&events, edges, &["T1", "MB", "PA"]);
}

#[test]
fn topic_with_later_merge() {
    let events = vec![
        topic("T1", ALICE),
        power("PA1", ALICE, &[(ALICE, 100), (BOB, 50)]),
        topic("T2", ALICE),
        power("PA2", ALICE, &[(ALICE, 100), (BOB, 0)]),
        power("PB", BOB, &[(ALICE, 100), (BOB, 50)]),
        topic("T3", BOB),
        node("MZ1", ZARA, "m.room.message", None, "{}"),
        topic("T4", ALICE),
    ];
    let edges: &[&[&str]] = &[
        &["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
        &["END", "MZ1", "T3", "PB", "PA1"],
    ];
    check_harness_versions(&events, edges, &["T4", "PA2"]);
}

#[test]
fn mainline_sort() {
    let events = vec![
        topic("T1", ALICE),
        power("PA1", ALICE, &[(ALICE, 100), (BOB, 50)]),
        topic("T2", ALICE),
        node(
            "PA2",
            ALICE,
            "m.room.power_levels",
            Some(""),
            &format!(
                r#"{{"users":{{"{ALICE}":100,"{BOB}":50}},"events":{{"m.room.power_levels":100}}}}"#
            ),
        ),
        power("PB", BOB, &[(ALICE, 100), (BOB, 50)]),
        topic("T3", BOB),
        topic("T4", ALICE),
    ];
    let edges: &[&[&str]] = &[
        &["END", "T3", "PA2", "T2", "PA1", "T1", "START"],
        &["END", "T4", "PB", "PA1"],
    ];
    check_harness_versions(&events, edges, &["T3", "PA2"]);
}

/// Synapse `SimpleParamStateTestCase.test_event_map_none`: concurrent joins of Bob and Charlie.
#[test]
fn concurrent_joins() {
    let v = version("2");
    let nodes = [
        (create_by_alice(), &[][..]),
        (member("IMA", ALICE, ALICE, "join"), &["CREATE"][..]),
        (join_rule("IJR", ALICE, "public"), &["CREATE", "IMA"][..]),
        (member("IMB", BOB, BOB, "join"), &["CREATE", "IJR"][..]),
        (
            member("IMC", CHARLIE, CHARLIE, "join"),
            &["CREATE", "IJR"][..],
        ),
    ];
    let (graph, ids, _) = build_explicit(v, &nodes);
    let set = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>();
    let got = resolve_named(
        &graph,
        &[
            set(&["CREATE", "IMA", "IJR", "IMB"]),
            set(&["CREATE", "IMA", "IJR", "IMC"]),
        ],
        ResolveOptions::default(),
    );
    let mut got_ids: Vec<String> = got.into_values().collect();
    got_ids.sort();
    let mut want = set(&["CREATE", "IMA", "IJR", "IMB", "IMC"]);
    want.sort();
    assert_eq!(got_ids, want);
}

// ---------------------------------------------------------------------------------------------------
// MSC4297 (Synapse tests/state/test_v21.py), under v2 (room v11) and v2.1 (room v12).

/// Problem B: Eve's rename cites the old PL1; the "dodgy" state holds PL1.
fn problem_b(
    v: &'static roomgraph::room_version::RoomVersion,
) -> BTreeMap<(String, String), String> {
    let v12 = v.privileged_creators;
    let c = |names: &'static [&'static str]| -> Vec<&'static str> {
        let mut out = names.to_vec();
        if !v12 {
            out.insert(0, "CREATE");
        }
        out
    };
    // Pre-v12 the creator has no implicit power once a PL event exists, so she is listed.
    let pl1 = if v12 { pl(&[]) } else { pl(&[(ALICE, 100)]) };
    let pl2 = if v12 {
        pl(&[(BOB, 50)])
    } else {
        pl(&[(ALICE, 100), (BOB, 50)])
    };
    let pl3 = if v12 {
        pl(&[(BOB, 50), (CHARLIE, 50)])
    } else {
        pl(&[(ALICE, 100), (BOB, 50), (CHARLIE, 50)])
    };
    let nodes: Vec<(Node, Vec<&str>)> = vec![
        (create_by_alice(), vec![]),
        (member("MA", ALICE, ALICE, "join"), c(&[])),
        (
            node("PL1", ALICE, "m.room.power_levels", Some(""), &pl1),
            c(&["MA"]),
        ),
        (join_rule("JR", ALICE, "public"), c(&["MA", "PL1"])),
        (member("MB", BOB, BOB, "join"), c(&["PL1", "JR"])),
        (member("MC", CHARLIE, CHARLIE, "join"), c(&["PL1", "JR"])),
        (
            node("PL2", ALICE, "m.room.power_levels", Some(""), &pl2),
            c(&["MA", "PL1"]),
        ),
        (
            node("PL3", BOB, "m.room.power_levels", Some(""), &pl3),
            c(&["MB", "PL2"]),
        ),
        (member("ME1", EVELYN, EVELYN, "join"), c(&["PL3", "JR"])),
        (
            node(
                "ME2",
                EVELYN,
                "m.room.member",
                Some(EVELYN),
                r#"{"membership":"join","displayname":"Eve"}"#,
            ),
            c(&["PL1", "JR", "ME1"]),
        ),
        (member("MZ", ZARA, ZARA, "join"), c(&["PL3", "JR"])),
    ];
    let refs: Vec<(Node, &[&str])> = nodes
        .iter()
        .map(|(n, a)| (n.clone(), a.as_slice()))
        .collect();
    let (graph, ids, _) = build_explicit(v, &refs);
    let set = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>();
    let dodgy = set(&["CREATE", "MA", "MB", "MC", "ME2", "PL1", "JR"]);
    let sensible = set(&["CREATE", "MA", "MB", "MC", "MZ", "PL3", "JR"]);
    let result = resolve_named(
        &graph,
        &[dodgy.clone(), sensible.clone()],
        ResolveOptions::default(),
    );
    // The create event is never part of the auth difference plus the conflicted subgraph.
    let idx = |names: &[String]| {
        names
            .iter()
            .map(|n| graph.idx(n).expect("known"))
            .collect::<Vec<_>>()
    };
    let (d, s) = (idx(&dodgy), idx(&sensible));
    let mut diff = Vec::new();
    Reachability::default().auth_difference(&graph, &[&d, &s], &mut diff);
    let create = graph.idx(&ids["CREATE"]).expect("known");
    assert!(!diff.contains(&create));
    let expect_name =
        |key: (&str, &str)| result.get(&(key.0.to_owned(), key.1.to_owned())).cloned();
    let name_of = |id: Option<String>| {
        id.and_then(|id| {
            ids.iter()
                .find(|(_, v)| **v == id)
                .map(|(k, _)| (*k).to_owned())
        })
    };
    let mut out = BTreeMap::new();
    for key in [
        ("m.room.power_levels", ""),
        ("m.room.member", EVELYN),
        ("m.room.member", ZARA),
        ("m.room.join_rules", ""),
    ] {
        out.insert(
            (key.0.to_owned(), key.1.to_owned()),
            name_of(expect_name(key)).unwrap_or_default(),
        );
    }
    out
}

fn key(t: &str, s: &str) -> (String, String) {
    (t.to_owned(), s.to_owned())
}

#[test]
fn msc4297_problem_b_v2_1_replays_the_subgraph() {
    let got = problem_b(version("12"));
    assert_eq!(got[&key("m.room.power_levels", "")], "PL3");
    assert_eq!(
        got[&key("m.room.member", EVELYN)],
        "ME1",
        "ME2 is replayed in the PL1 epoch, ME1 after it"
    );
    assert_eq!(got[&key("m.room.member", ZARA)], "MZ");
    assert_eq!(got[&key("m.room.join_rules", "")], "JR");
}

#[test]
fn msc4297_problem_b_v2_resets_power_levels() {
    let got = problem_b(version("11"));
    assert_eq!(
        got[&key("m.room.power_levels", "")],
        "PL1",
        "v2 has no conflicted subgraph: PL2 is not replayed"
    );
    assert_eq!(got[&key("m.room.member", ZARA)], "MZ");
}

/// Problem A: a stale fork holds the old join rules; Alice (who set both) has left.
fn problem_a(v: &'static roomgraph::room_version::RoomVersion) -> Option<String> {
    let v12 = v.privileged_creators;
    let c = |names: &'static [&'static str]| -> Vec<&'static str> {
        let mut out = names.to_vec();
        if !v12 {
            out.insert(0, "CREATE");
        }
        out
    };
    let power = if v12 {
        pl(&[(BOB, 100)])
    } else {
        pl(&[(ALICE, 100), (BOB, 100)])
    };
    let nodes: Vec<(Node, Vec<&str>)> = vec![
        (create_by_alice(), vec![]),
        (member("MA1", ALICE, ALICE, "join"), c(&[])),
        (
            node("PL", ALICE, "m.room.power_levels", Some(""), &power),
            c(&["MA1"]),
        ),
        (join_rule("JR1", ALICE, "public"), c(&["MA1", "PL"])),
        (member("MB", BOB, BOB, "join"), c(&["PL", "JR1"])),
        (join_rule("JR2", ALICE, "invite"), c(&["MA1", "PL"])),
        (member("MA2", ALICE, ALICE, "leave"), c(&["PL", "MA1"])),
    ];
    let refs: Vec<(Node, &[&str])> = nodes
        .iter()
        .map(|(n, a)| (n.clone(), a.as_slice()))
        .collect();
    let (graph, ids, _) = build_explicit(v, &refs);
    let set = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>();
    let correct = set(&["CREATE", "MA2", "MB", "PL", "JR2"]);
    let incorrect = set(&["CREATE", "MA2", "MB", "PL", "JR1"]);
    let result = resolve_named(&graph, &[correct, incorrect], ResolveOptions::default());
    result.get(&key("m.room.join_rules", "")).and_then(|id| {
        ids.iter()
            .find(|(_, v)| *v == id)
            .map(|(k, _)| (*k).to_owned())
    })
}

#[test]
fn msc4297_problem_a_v2_1_starts_from_empty_state() {
    assert_eq!(problem_a(version("12")).as_deref(), Some("JR2"));
}

#[test]
fn msc4297_problem_a_v2_loses_the_join_rules() {
    assert_eq!(
        problem_a(version("11")),
        None,
        "under v2 both join rules fail against Alice's leave"
    );
}

// ---------------------------------------------------------------------------------------------------
// Auth difference tables (Synapse tests/storage/test_event_federation.py and test_v2.py).

fn abstract_graph(
    edges: &[(&'static str, &[&'static str])],
) -> (EventGraph, BTreeMap<&'static str, EventIdx>) {
    let v = version("11");
    let mut graph = EventGraph::new(v, ROOM_ID);
    let mut idx: BTreeMap<&'static str, EventIdx> = BTreeMap::new();
    let mut pending: Vec<(&'static str, &[&'static str])> = edges.to_vec();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|(name, deps)| {
            if !deps.iter().all(|d| idx.contains_key(d)) {
                return true;
            }
            let auth: Vec<String> = deps
                .iter()
                .map(|d| graph.event_id(idx[d]).to_owned())
                .collect();
            let pdu = build_pdu(
                v,
                &node(name, ALICE, "x.test", Some(name), "{}"),
                Some(ROOM_ID),
                &auth,
                &[],
                1,
                1,
            );
            let e = graph
                .insert(AuthEvent::new(pdu), false)
                .expect("deps present");
            idx.insert(name, e);
            false
        });
        assert!(pending.len() < before, "acyclic fixture");
    }
    (graph, idx)
}

fn check_auth_difference(
    edges: &[(&'static str, &[&'static str])],
    cases: &[(&[&[&str]], &[&str])],
) {
    let (graph, idx) = abstract_graph(edges);
    let mut index = roomgraph::resolve::ChainCover::new();
    for e in 0..graph.len() as u32 {
        let auth: Vec<u64> = graph
            .auth_events(EventIdx(e))
            .iter()
            .map(|a| u64::from(a.0))
            .collect();
        index
            .insert(u64::from(e), e, &auth)
            .expect("auth events first");
    }
    let mut reach = Reachability::default();
    for (sets, want) in cases {
        let sets: Vec<Vec<EventIdx>> = sets
            .iter()
            .map(|s| s.iter().map(|n| idx[n]).collect())
            .collect();
        let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
        let mut got = Vec::new();
        reach.auth_difference(&graph, &refs, &mut got);
        let name = |e: &EventIdx| {
            *idx.iter()
                .find(|(_, v)| *v == e)
                .map(|(k, _)| k)
                .expect("known")
        };
        let mut got_names: Vec<&str> = got.iter().map(name).collect();
        got_names.sort();
        let mut want_sorted = want.to_vec();
        want_sorted.sort();
        assert_eq!(got_names, want_sorted, "linear pass, sets {sets:?}");
        let from_index: Vec<&str> = {
            let nums: Vec<Vec<u64>> = sets
                .iter()
                .map(|s| s.iter().map(|e| u64::from(e.0)).collect())
                .collect();
            let num_refs: Vec<&[u64]> = nums.iter().map(Vec::as_slice).collect();
            let mut v: Vec<&str> = index
                .auth_difference(&num_refs)
                .expect("indexed")
                .iter()
                .map(|&i| name(&EventIdx(i as u32)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(from_index, want_sorted, "chain cover index, sets {sets:?}");
    }
}

#[test]
fn auth_difference_chain_cover_table() {
    // AUTH_GRAPH: a→e, b→e, c→{g,i}, d→f, e→f, f→g, g→{h,i}, h→k, i→j.
    let edges: &[(&str, &[&str])] = &[
        ("a", &["e"]),
        ("b", &["e"]),
        ("c", &["g", "i"]),
        ("d", &["f"]),
        ("e", &["f"]),
        ("f", &["g"]),
        ("g", &["h", "i"]),
        ("h", &["k"]),
        ("i", &["j"]),
        ("j", &[]),
        ("k", &[]),
    ];
    check_auth_difference(
        edges,
        &[
            (&[&["a"], &["b"]], &["a", "b"]),
            (&[&["a"], &["b"], &["c"]], &["a", "b", "c", "e", "f"]),
            (&[&["a", "c"], &["b"]], &["a", "b", "c"]),
            (&[&["a", "c"], &["b", "c"]], &["a", "b"]),
            (&[&["a"], &["b"], &["d"]], &["a", "b", "d", "e"]),
            (
                &[&["a"], &["b"], &["c"], &["d"]],
                &["a", "b", "c", "d", "e", "f"],
            ),
            (&[&["a"], &["b"], &["e"]], &["a", "b"]),
            (&[&["a"]], &[]),
        ],
    );
}

#[test]
fn auth_difference_includes_the_state_events_themselves() {
    // Synapse AuthChainDifferenceTestCase: C→B→A; D→C; E→{C,B}.
    let edges: &[(&str, &[&str])] = &[
        ("A", &[]),
        ("B", &["A"]),
        ("C", &["B"]),
        ("D", &["C"]),
        ("E", &["C", "B"]),
    ];
    check_auth_difference(
        edges,
        &[
            (&[&["A", "B"], &["C"]], &["C"]),
            (&[&["A", "B"], &["C", "D"]], &["C", "D"]),
            (&[&["A", "B", "E"], &["C", "D"]], &["D", "E"]),
        ],
    );
}

#[test]
fn conflicted_subgraph_chain_cover_cases() {
    // Synapse test_conflicted_subgraph's chains (X3→X2→X1) and links B1→A2, C1→B2, D1→C1, E1→D2,
    // F1→E1, G1→D3.
    let edges: &[(&str, &[&str])] = &[
        ("A1", &[]),
        ("A2", &["A1"]),
        ("A3", &["A2"]),
        ("B1", &["A2"]),
        ("B2", &["B1"]),
        ("B3", &["B2"]),
        ("C1", &["B2"]),
        ("C2", &["C1"]),
        ("C3", &["C2"]),
        ("D1", &["C1"]),
        ("D2", &["D1"]),
        ("D3", &["D2"]),
        ("E1", &["D2"]),
        ("F1", &["E1"]),
        ("F2", &["F1"]),
        ("G1", &["D3"]),
        ("G2", &["G1"]),
    ];
    let (graph, idx) = abstract_graph(edges);
    let mut index = roomgraph::resolve::ChainCover::new();
    for e in 0..graph.len() as u32 {
        let auth: Vec<u64> = graph
            .auth_events(EventIdx(e))
            .iter()
            .map(|a| u64::from(a.0))
            .collect();
        index
            .insert(u64::from(e), e, &auth)
            .expect("auth events first");
    }
    let mut reach = Reachability::default();
    let cases: &[(&[&str], &[&str])] = &[
        (&["B1", "B3"], &["B1", "B2", "B3"]),
        (&["B1", "F1"], &["B1", "B2", "C1", "D1", "D2", "E1", "F1"]),
        (&["B3", "C3"], &["B3", "C3"]),
        (&["D1", "F1"], &["D1", "D2", "E1", "F1"]),
        (&["D1", "F1", "G1"], &["D1", "D2", "D3", "E1", "F1", "G1"]),
    ];
    let name = |e: u32| {
        *idx.iter()
            .find(|(_, v)| v.0 == e)
            .map(|(k, _)| k)
            .expect("known")
    };
    for (conflicted, want) in cases {
        let c: Vec<EventIdx> = conflicted.iter().map(|n| idx[n]).collect();
        let mut got = Vec::new();
        reach.conflicted_subgraph(&graph, &c, &mut got);
        let mut got_names: Vec<&str> = got.iter().map(|e| name(e.0)).collect();
        got_names.sort();
        assert_eq!(got_names, *want, "linear passes for {conflicted:?}");
        let nums: Vec<u64> = c.iter().map(|e| u64::from(e.0)).collect();
        let mut from_index: Vec<&str> = index
            .conflicted_subgraph(&nums)
            .expect("indexed")
            .iter()
            .map(|&e| name(e as u32))
            .collect();
        from_index.sort();
        assert_eq!(from_index, *want, "chain cover index for {conflicted:?}");
    }
}

// ---------------------------------------------------------------------------------------------------
// MSC1442 worked examples.

/// Example 1: mainline ordering decides between the topics of two forks.
#[test]
fn msc1442_mainline_example() {
    let events = vec![
        node("M1", ALICE, "m.room.message", None, "{}"),
        topic("TOPIC1", ALICE),
        power("P1", ALICE, &[(ALICE, 100), (BOB, 50)]),
        topic("TOPIC2", ALICE),
        power("P2", ALICE, &[(ALICE, 100), (BOB, 0)]),
        power("P3", BOB, &[(ALICE, 100), (BOB, 50), (CHARLIE, 50)]),
        topic("TOPIC3", BOB),
        node("M2", ALICE, "m.room.message", None, "{}"),
        topic("TOPIC4", ALICE),
    ];
    let edges: &[&[&str]] = &[
        &[
            "END", "TOPIC4", "M2", "P2", "TOPIC2", "P1", "TOPIC1", "M1", "START",
        ],
        &["M2", "TOPIC3", "P3", "P1"],
        &["END", "M2"],
    ];
    for v in HARNESS_VERSIONS {
        let built = do_check(version(v), &events, edges, &["TOPIC4", "P2"]);
        // State at Message 2: P2 and Topic 2 (P3 and Topic 3 fail after Bob is deopped).
        let at_m2 = &built.state_after["M2"];
        assert_eq!(at_m2[&key("m.room.power_levels", "")], built.ids["P2"]);
        assert_eq!(at_m2[&key("m.room.topic", "")], built.ids["TOPIC2"]);
    }
}

/// Example 2 (rejected events), the Synapse way: an event known to be rejected never enters resolved
/// state, even when it passes the iterative auth checks (known-divergences.md, point 1; ruma differs).
#[test]
fn rejected_event_never_enters_resolved_state() {
    let v = version("11");
    let nodes = [
        (
            node("CREATE", ALICE, "m.room.create", Some(""), "{}"),
            &[][..],
        ),
        (member("MA", ALICE, ALICE, "join"), &["CREATE"][..]),
        (
            power("PA", ALICE, &[(ALICE, 100), (BOB, 50)]),
            &["CREATE", "MA"][..],
        ),
        (
            join_rule("JR", ALICE, "public"),
            &["CREATE", "MA", "PA"][..],
        ),
        (member("MB", BOB, BOB, "join"), &["CREATE", "PA", "JR"][..]),
        (topic("T1", ALICE), &["CREATE", "MA", "PA"][..]),
        (topic("TB", BOB), &["CREATE", "MB", "PA"][..]),
    ];
    let (mut graph, ids, _) = build_explicit(v, &nodes);
    let set = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>();
    let sets = [
        set(&["CREATE", "MA", "PA", "JR", "MB", "T1"]),
        set(&["CREATE", "MA", "PA", "JR", "MB", "TB"]),
    ];
    let accepted = resolve_named(&graph, &sets, ResolveOptions::default());
    assert_eq!(
        accepted[&key("m.room.topic", "")],
        ids["TB"],
        "TB passes auth and sorts last"
    );
    let tb = graph.idx(&ids["TB"]).expect("known");
    graph.set_rejected(tb, true);
    let resolved = resolve_named(&graph, &sets, ResolveOptions::default());
    assert_eq!(
        resolved[&key("m.room.topic", "")],
        ids["T1"],
        "a rejected event never comes back"
    );
}

// ---------------------------------------------------------------------------------------------------
// Adversarial cases.

/// Ban evasion: Bob is banned on one fork and concurrently changes the topic and the join rules on his
/// own fork. The ban wins; Bob's events are dropped.
#[test]
fn ban_evasion() {
    let events = vec![
        power("PA", ALICE, &[(ALICE, 100), (BOB, 50)]),
        member("BAN", ALICE, BOB, "ban"),
        topic("TB", BOB),
        join_rule("JRB", BOB, "public"),
        member("MB2", BOB, BOB, "join"),
    ];
    let edges: &[&[&str]] = &[
        &["END", "BAN", "PA", "START"],
        &["END", "MB2", "JRB", "TB", "PA"],
    ];
    for v in HARNESS_VERSIONS {
        let built = do_check(version(v), &events, edges, &["BAN", "PA"]);
        let end = &built.state_after["END"];
        assert_eq!(end.get(&key("m.room.topic", "")), None);
        assert_eq!(end[&key("m.room.join_rules", "")], built.ids["IJR"]);
    }
}

/// A state-reset attempt (Problem B shape, v12): a fork cites the oldest power levels while its
/// auth chain reaches the newest; the newest power levels survive.
#[test]
fn state_reset_attempt_is_resisted() {
    let got = problem_b(version("12"));
    assert_eq!(got[&key("m.room.power_levels", "")], "PL3");
}

/// Auth-chain bomb: a wide and deep auth graph (thousands of member events each citing a long
/// power-levels chain) conflicted between two forks resolves correctly. Not timed.
#[test]
fn auth_chain_bomb() {
    for vid in ["11", "12"] {
        let v = version(vid);
        let v12 = v.privileged_creators;
        let mut nodes: Vec<(Node, Vec<&'static str>)> = Vec::new();
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let c = |mut a: Vec<&'static str>| {
            if !v12 {
                a.insert(0, "CREATE");
            }
            a
        };
        nodes.push((create_by_alice(), vec![]));
        nodes.push((member("MA", ALICE, ALICE, "join"), c(vec![])));
        let alice_pl = if v12 {
            String::new()
        } else {
            format!(r#""{ALICE}":100,"#)
        };
        let mut prev_pl = None;
        for i in 0..200 {
            let name = leak(format!("PL{i}"));
            let content = format!(r#"{{"users":{{{alice_pl}"{BOB}":{}}}}}"#, i % 50);
            let mut auth = vec!["MA"];
            if let Some(p) = prev_pl {
                auth.push(p);
            }
            nodes.push((
                node(name, ALICE, "m.room.power_levels", Some(""), &content),
                c(auth),
            ));
            prev_pl = Some(name);
        }
        let last_pl = prev_pl.expect("some");
        nodes.push((join_rule("JR", ALICE, "public"), c(vec!["MA", last_pl])));
        // 600 users join; each then renames itself citing its previous membership (depth and width).
        for u in 0..600 {
            let user = leak(format!("@u{u}:example.com"));
            let j = leak(format!("J{u}"));
            nodes.push((member(j, user, user, "join"), c(vec![last_pl, "JR"])));
            let r = leak(format!("R{u}"));
            let content = format!(r#"{{"membership":"join","displayname":"u{u}"}}"#);
            nodes.push((
                node(r, user, "m.room.member", Some(user), &content),
                c(vec![last_pl, "JR", j]),
            ));
        }
        let refs: Vec<(Node, &[&str])> = nodes
            .iter()
            .map(|(n, a)| (n.clone(), a.as_slice()))
            .collect();
        let (graph, ids, _) = build_explicit(v, &refs);
        let mut base: Vec<String> =
            vec![ids["CREATE"].clone(), ids["MA"].clone(), ids["JR"].clone()];
        let mut fork_a = base.clone();
        let mut fork_b = std::mem::take(&mut base);
        fork_a.push(ids[last_pl].clone());
        fork_b.push(ids["PL0"].clone());
        for u in 0..600 {
            fork_a.push(ids[format!("R{u}").as_str()].clone());
            fork_b.push(ids[format!("J{u}").as_str()].clone());
        }
        let result = resolve_named(&graph, &[fork_a, fork_b], ResolveOptions::default());
        assert_eq!(
            result[&key("m.room.power_levels", "")],
            ids[last_pl],
            "v{vid}"
        );
        for u in [0, 299, 599] {
            let user = format!("@u{u}:example.com");
            assert_eq!(
                result[&key("m.room.member", &user)],
                ids[format!("R{u}").as_str()],
                "v{vid}"
            );
        }
        // Same answer with a reused resolver, sequential.
        let again = resolve_named(
            &graph,
            &[
                result.values().cloned().collect(),
                result.values().cloned().collect(),
            ],
            ResolveOptions { parallel: false },
        );
        assert_eq!(again, result);
        let _ = Resolver::new();
    }
}
