//! Shared helpers for the state-resolution integration tests: building fixture events by node name, the
//! Synapse `test_v2.py` harness (state at each node from its prev events), and the ruma adapter.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use roomgraph::auth::{self, AuthEvent};
use roomgraph::pdu::Pdu;
use roomgraph::resolve::{EventGraph, EventIdx, ResolveOptions, ResolvedState, Resolver};
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::builder::EventBuilder;

pub const ALICE: &str = "@alice:example.com";
pub const BOB: &str = "@bob:example.com";
pub const CHARLIE: &str = "@charlie:example.com";
pub const EVELYN: &str = "@evelyn:example.com";
pub const ZARA: &str = "@zara:example.com";
pub const ROOM_ID: &str = "!test:example.com";

pub fn version(id: &str) -> &'static RoomVersion {
    RoomVersion::from_id(id).expect("known room version")
}

/// A state map by `(type, state_key)`.
pub type NamedState = BTreeMap<(String, String), String>;

/// One fixture event, named by its node id.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: &'static str,
    pub sender: &'static str,
    pub event_type: &'static str,
    pub state_key: Option<&'static str>,
    pub content: String,
}

pub fn node(
    id: &'static str,
    sender: &'static str,
    event_type: &'static str,
    state_key: Option<&'static str>,
    content: &str,
) -> Node {
    Node {
        id,
        sender,
        event_type,
        state_key,
        content: content.to_owned(),
    }
}

pub fn member(
    id: &'static str,
    sender: &'static str,
    target: &'static str,
    membership: &str,
) -> Node {
    node(
        id,
        sender,
        "m.room.member",
        Some(target),
        &format!(r#"{{"membership":"{membership}"}}"#),
    )
}

/// Builds a PDU for `n` in `version` (ids `$NODE:example.com` for v1/v2, hashes after).
pub fn build_pdu(
    version: &'static RoomVersion,
    n: &Node,
    room_id: Option<&str>,
    auth: &[String],
    prev: &[String],
    ts: i64,
    depth: i64,
) -> Pdu<'static> {
    let mut b = EventBuilder::with_json_content(version, n.event_type, n.sender, &n.content)
        .auth_events(auth)
        .prev_events(prev)
        .origin_server_ts(ts)
        .depth(depth)
        .local_id(&format!("${}:example.com", n.id));
    if let Some(k) = n.state_key {
        b = b.state_key(k);
    }
    if let Some(r) = room_id {
        b = b.room_id(r);
    }
    b.build()
        .unwrap_or_else(|e| panic!("fixture {} is a valid PDU: {e}", n.id))
}

/// The create event `CREATE` of a room created by Alice.
pub fn create_by_alice() -> Node {
    node(
        "CREATE",
        ALICE,
        "m.room.create",
        Some(""),
        &format!(r#"{{"creator":"{ALICE}"}}"#),
    )
}

/// Synapse `test_v2.py`'s initial events and chain.
pub fn initial_events() -> Vec<Node> {
    vec![
        create_by_alice(),
        member("IMA", ALICE, ALICE, "join"),
        node(
            "IPOWER",
            ALICE,
            "m.room.power_levels",
            Some(""),
            &format!(r#"{{"users":{{"{ALICE}":100}}}}"#),
        ),
        node(
            "IJR",
            ALICE,
            "m.room.join_rules",
            Some(""),
            r#"{"join_rule":"public"}"#,
        ),
        member("IMB", BOB, BOB, "join"),
        member("IMC", CHARLIE, CHARLIE, "join"),
        member("IMZ", ZARA, ZARA, "join"),
        node("START", ZARA, "m.room.message", None, "{}"),
        node("END", ZARA, "m.room.message", None, "{}"),
    ]
}

pub const INITIAL_EDGES: &[&str] = &[
    "START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE",
];

/// The outcome of building a prev-graph scenario one event at a time.
pub struct Built {
    pub version: &'static RoomVersion,
    pub graph: EventGraph,
    pub pdus: Vec<Pdu<'static>>,
    pub ids: HashMap<&'static str, String>,
    /// State after each node, as `(type, state_key) → event id`.
    pub state_after: HashMap<&'static str, BTreeMap<(String, String), String>>,
    /// Every resolution done on the way: the prev states and the result.
    pub merges: Vec<(Vec<Vec<String>>, NamedState)>,
}

fn named(graph: &EventGraph, state: &ResolvedState) -> BTreeMap<(String, String), String> {
    state
        .iter()
        .map(|(k, e)| {
            let (t, s) = graph.keys().resolve(k);
            ((t.to_owned(), s.to_owned()), graph.event_id(e).to_owned())
        })
        .collect()
}

pub fn resolve_named(
    graph: &EventGraph,
    sets: &[Vec<String>],
    options: ResolveOptions,
) -> BTreeMap<(String, String), String> {
    let idx: Vec<Vec<EventIdx>> = sets
        .iter()
        .map(|s| {
            s.iter()
                .map(|id| graph.idx(id).expect("known id"))
                .collect()
        })
        .collect();
    let refs: Vec<&[EventIdx]> = idx.iter().map(Vec::as_slice).collect();
    let state = Resolver::with_options(options)
        .resolve(graph, &refs)
        .expect("resolution succeeds");
    named(graph, &state)
}

/// Synapse `build_event_graph`: nodes in lexicographic topological order of the prev graph; the state
/// before a node is the resolution of its prevs' states; auth events are chosen from it.
pub fn build_prev_graph(
    version: &'static RoomVersion,
    events: &[Node],
    edges: &[&[&str]],
) -> Built {
    let mut all = initial_events();
    all.extend(events.iter().cloned());
    let by_id: HashMap<&str, &Node> = all.iter().map(|n| (n.id, n)).collect();
    let mut prevs: BTreeMap<&str, BTreeSet<&str>> =
        all.iter().map(|n| (n.id, BTreeSet::new())).collect();
    for chain in std::iter::once(INITIAL_EDGES).chain(edges.iter().copied()) {
        for w in chain.windows(2) {
            prevs
                .get_mut(w[0])
                .expect("edge from a known node")
                .insert(w[1]);
        }
    }
    // Lexicographic topological order (parents first, smallest name among the ready ones).
    let mut order = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while order.len() < all.len() {
        let next = prevs
            .iter()
            .filter(|(n, ps)| !done.contains(*n) && ps.iter().all(|p| done.contains(p)))
            .map(|(n, _)| *n)
            .next()
            .expect("acyclic prev graph");
        done.insert(next);
        order.push(next);
    }
    let mut graph = EventGraph::new(version, ROOM_ID);
    let mut pdus = Vec::new();
    let mut ids: HashMap<&'static str, String> = HashMap::new();
    let mut state_after: HashMap<&'static str, BTreeMap<(String, String), String>> = HashMap::new();
    let mut depth_of: HashMap<&str, i64> = HashMap::new();
    let mut merges = Vec::new();
    for (ts, name) in order.iter().enumerate() {
        let n = by_id[name];
        let prev_names: Vec<&str> = prevs[name].iter().copied().collect();
        let state_before: BTreeMap<(String, String), String> = match prev_names.len() {
            0 => BTreeMap::new(),
            1 => state_after[prev_names[0]].clone(),
            _ => {
                let sets: Vec<Vec<String>> = prev_names
                    .iter()
                    .map(|p| state_after[p].values().cloned().collect())
                    .collect();
                let resolved = resolve_named(&graph, &sets, ResolveOptions { parallel: false });
                merges.push((sets, resolved.clone()));
                resolved
            }
        };
        // Auth events: the state-before entries for the event's auth types (built once without auth
        // events to ask the auth rules which keys they need).
        let probe = AuthEvent::new(build_pdu(version, n, Some(ROOM_ID), &[], &[], 0, 1));
        let mut auth_ids: Vec<String> = Vec::new();
        for (t, s) in auth::auth_types_for_event(&probe) {
            if let Some(id) = state_before.get(&(t.to_owned(), s.clone()))
                && !auth_ids.contains(id)
            {
                auth_ids.push(id.clone());
            }
        }
        if version.privileged_creators {
            let create = ids.get("CREATE").cloned();
            auth_ids.retain(|a| Some(a) != create.as_ref());
        }
        let prev_ids: Vec<String> = prev_names.iter().map(|p| ids[p].clone()).collect();
        let depth = prev_names.iter().map(|p| depth_of[p]).max().unwrap_or(0) + 1;
        let room = if version.room_id_from_create && n.event_type == "m.room.create" {
            None
        } else {
            Some(ROOM_ID)
        };
        let pdu = build_pdu(version, n, room, &auth_ids, &prev_ids, ts as i64 + 1, depth);
        let id = pdu.event_id.to_string();
        graph
            .insert(AuthEvent::new(pdu.clone()), false)
            .expect("auth events present");
        pdus.push(pdu);
        let mut after = state_before;
        if let Some(k) = n.state_key {
            after.insert((n.event_type.to_owned(), k.to_owned()), id.clone());
        }
        ids.insert(n.id, id);
        depth_of.insert(name, depth);
        state_after.insert(n.id, after);
    }
    Built {
        version,
        graph,
        pdus,
        ids,
        state_after,
        merges,
    }
}

/// Synapse `do_check`: the state at END restricted to keys changed since START plus the expected keys.
pub fn do_check(
    version: &'static RoomVersion,
    events: &[Node],
    edges: &[&[&str]],
    expected: &[&str],
) -> Built {
    let built = build_prev_graph(version, events, edges);
    let mut want: BTreeMap<(String, String), String> = BTreeMap::new();
    let all: Vec<Node> = initial_events()
        .into_iter()
        .chain(events.iter().cloned())
        .collect();
    for name in expected {
        let n = all
            .iter()
            .find(|n| n.id == *name)
            .expect("expected node exists");
        want.insert(
            (
                n.event_type.to_owned(),
                n.state_key.unwrap_or("").to_owned(),
            ),
            built.ids[name].clone(),
        );
    }
    let start = &built.state_after["START"];
    let end: BTreeMap<(String, String), String> = built.state_after["END"]
        .iter()
        .filter(|(k, v)| want.contains_key(*k) || start.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(end, want, "state at END (v{})", version.id);
    check_all_at_once(&built);
    built
}

/// Every resolution made one event at a time is repeated on a graph built from all events at once (in
/// reverse order, so every index differs), single- and multi-threaded: results must be identical.
pub fn check_all_at_once(built: &Built) {
    let mut events: Vec<AuthEvent> = built.pdus.iter().cloned().map(AuthEvent::new).collect();
    events.reverse();
    let graph = EventGraph::build(built.version, events, &|_| false).expect("well-formed");
    for (sets, incremental) in &built.merges {
        for parallel in [false, true] {
            let again = resolve_named(&graph, sets, ResolveOptions { parallel });
            assert_eq!(
                &again, incremental,
                "all-at-once resolution differs (parallel: {parallel})"
            );
        }
    }
}

/// Builds explicit-auth fixtures in order: `(node, auth event names)`.
pub fn build_explicit(
    version: &'static RoomVersion,
    nodes: &[(Node, &[&str])],
) -> (EventGraph, HashMap<&'static str, String>, Vec<Pdu<'static>>) {
    let mut ids: HashMap<&'static str, String> = HashMap::new();
    let mut pdus = Vec::new();
    let mut room_id = ROOM_ID.to_owned();
    let mut graph: Option<EventGraph> = None;
    let mut prev: Vec<String> = Vec::new();
    for (i, (n, auth)) in nodes.iter().enumerate() {
        let auth_ids: Vec<String> = auth.iter().map(|a| ids[a].clone()).collect();
        let is_v12_create = version.room_id_from_create && n.event_type == "m.room.create";
        let pdu = build_pdu(
            version,
            n,
            (!is_v12_create).then_some(room_id.as_str()),
            &auth_ids,
            &prev,
            i as i64 + 1,
            i as i64 + 1,
        );
        if is_v12_create {
            room_id = pdu.room_id.to_string();
        }
        let g = graph.get_or_insert_with(|| EventGraph::new(version, &room_id));
        g.insert(AuthEvent::new(pdu.clone()), false)
            .expect("auth events present");
        prev = vec![pdu.event_id.to_string()];
        ids.insert(n.id, pdu.event_id.to_string());
        pdus.push(pdu);
    }
    (graph.expect("at least one event"), ids, pdus)
}
