//! Differential tests: roomgraph vs ruma-state-res 0.18 (`ruma::state_res::resolve`) on random rooms from
//! `roomgraph::room_generator`, for room versions 6–11 (state resolution v2) and 12 (v2.1).
//!
//! Each generated room yields the fork-tip state sets of its servers; both implementations resolve all of
//! them together and every pair, and must agree exactly. `ROOMGRAPH_DIFF_CASES=<n>` sets the number of
//! rooms per room version (default 40, i.e. 280 rooms in the normal suite).
//!
//! Inputs ruma needs from its caller are computed here independently of roomgraph: the auth chain of each
//! state set (with the state-set events themselves included, Synapse's convention — known-divergences.md
//! point 4 — so both sides compute the same auth difference), and for v2.1 the conflicted state subgraph
//! by a naive quadratic reachability check. No generated event is rejected, so known-divergences.md point
//! 1 (ruma admits a rejected conflicted event) cannot arise here; `resolve_scenarios.rs` pins Synapse's
//! behaviour for it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::state_res::{Event, StateMap};
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId,
    RoomVersionId, UserId,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::resolve::{EventGraph, EventIdx, ResolveOptions, Resolver};
use roomgraph::room_generator::{GeneratedRoom, RoomConfig, generate};
use roomgraph::room_version::RoomVersion;

#[derive(Debug, Deserialize)]
struct RumaPdu {
    event_id: OwnedEventId,
    #[serde(default)]
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    redacts: Option<OwnedEventId>,
    #[serde(skip)]
    rejected: bool,
}

impl Event for RumaPdu {
    type Id = OwnedEventId;
    fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&OwnedEventId> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}

type Named = BTreeMap<(String, String), String>;

struct RumaRoom {
    events: HashMap<OwnedEventId, Arc<RumaPdu>>,
    rules: RoomVersionRules,
}

impl RumaRoom {
    fn new(room: &GeneratedRoom) -> RumaRoom {
        let mut events = HashMap::new();
        for pdu in &room.events {
            let text = to_canonical_string(&JsonValue::Object(pdu.json.clone()));
            let mut value: serde_json::Value =
                serde_json::from_str(&text).expect("canonical JSON parses");
            value["event_id"] = serde_json::Value::String(pdu.event_id.to_string());
            let ev: RumaPdu = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("ruma reads {}: {e}", pdu.event_id));
            events.insert(ev.event_id.clone(), Arc::new(ev));
        }
        let id = RoomVersionId::try_from(room.version.id).expect("ruma knows the version");
        RumaRoom {
            events,
            rules: id.rules().expect("rules for a stable version"),
        }
    }

    fn id(&self, s: &str) -> OwnedEventId {
        OwnedEventId::try_from(s).expect("valid event id")
    }

    /// Auth chain of a state set, the set's own events included (Synapse's convention).
    fn closure(&self, set: &[OwnedEventId]) -> HashSet<OwnedEventId> {
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut stack: Vec<OwnedEventId> = set.to_vec();
        while let Some(e) = stack.pop() {
            if seen.insert(e.clone()) {
                stack.extend(self.events[&e].auth_events.iter().cloned());
            }
        }
        seen
    }

    fn ancestors(&self, e: &OwnedEventId) -> HashSet<OwnedEventId> {
        let mut seen = HashSet::new();
        let mut stack: Vec<OwnedEventId> = self.events[e].auth_events.clone();
        while let Some(x) = stack.pop() {
            if seen.insert(x.clone()) {
                stack.extend(self.events[&x].auth_events.iter().cloned());
            }
        }
        seen
    }

    /// The conflicted state subgraph, naively: ancestors-or-self of some conflicted event that have some
    /// conflicted event among their ancestors-or-self.
    fn subgraph(&self, conflicted: &HashSet<OwnedEventId>) -> EventIdSet<OwnedEventId> {
        let list: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
        let back = self.closure(&list);
        back.into_iter()
            .filter(|x| conflicted.contains(x) || !self.ancestors(x).is_disjoint(conflicted))
            .collect()
    }

    fn resolve(&self, sets: &[Vec<String>]) -> Named {
        let sets: Vec<Vec<OwnedEventId>> = sets
            .iter()
            .map(|s| s.iter().map(|id| self.id(id)).collect())
            .collect();
        let maps: Vec<StateMap<OwnedEventId>> = sets
            .iter()
            .map(|set| {
                set.iter()
                    .map(|id| {
                        let ev = &self.events[id];
                        let key = (
                            StateEventType::from(ev.kind.to_string()),
                            ev.state_key.clone().unwrap_or_default(),
                        );
                        (key, id.clone())
                    })
                    .collect()
            })
            .collect();
        let chains: Vec<EventIdSet<OwnedEventId>> = sets
            .iter()
            .map(|s| self.closure(s).into_iter().collect())
            .collect();
        let v2_rules = *self.rules.state_res.v2_rules().expect("v2 rules");
        let result = ruma::state_res::resolve(
            &self.rules.authorization,
            &v2_rules,
            &maps,
            chains,
            |id: &EventId| self.events.get(id).cloned(),
            |conflicted: &StateMap<Vec<OwnedEventId>>| {
                let c: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
                Some(self.subgraph(&c))
            },
        )
        .expect("ruma resolves");
        result
            .into_iter()
            .map(|((t, s), id)| ((t.to_string(), s), id.to_string()))
            .collect()
    }
}

fn ours(graph: &EventGraph, resolver: &mut Resolver, sets: &[Vec<String>]) -> Named {
    let idx: Vec<Vec<EventIdx>> = sets
        .iter()
        .map(|s| s.iter().map(|id| graph.idx(id).expect("known")).collect())
        .collect();
    let refs: Vec<&[EventIdx]> = idx.iter().map(Vec::as_slice).collect();
    let state = resolver.resolve(graph, &refs).expect("roomgraph resolves");
    state
        .iter()
        .map(|(k, e)| {
            let (t, s) = graph.keys().resolve(k);
            ((t.to_owned(), s.to_owned()), graph.event_id(e).to_owned())
        })
        .collect()
}

/// Keys whose event differs between (or is missing from some of) the sets.
fn conflicted_key_count(room: &RumaRoom, sets: &[Vec<String>]) -> usize {
    let mut values: HashMap<(String, String), HashSet<&str>> = HashMap::new();
    let mut present: HashMap<(String, String), usize> = HashMap::new();
    for set in sets {
        for id in set {
            let ev = &room.events[&room.id(id)];
            let key = (
                ev.kind.to_string(),
                ev.state_key.clone().unwrap_or_default(),
            );
            values.entry(key.clone()).or_default().insert(id);
            *present.entry(key).or_default() += 1;
        }
    }
    values
        .iter()
        .filter(|(k, v)| v.len() > 1 || present[*k] < sets.len())
        .count()
}

fn cases_per_version() -> u64 {
    std::env::var("ROOMGRAPH_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn differential(version_id: &str) {
    let v = RoomVersion::from_id(version_id).expect("known");
    let n = cases_per_version();
    let mut resolver = Resolver::with_options(ResolveOptions { parallel: false });
    let (mut rooms, mut resolutions, mut conflicted_rooms, mut conflicted_keys) = (0, 0, 0, 0);
    for seed in 0..n {
        let room = generate(&RoomConfig::small(v, seed * 7919 + 17));
        let ruma_room = RumaRoom::new(&room);
        let (graph, _) = room.graph();
        let mut batches: Vec<Vec<Vec<String>>> = vec![room.fork_states.clone()];
        for i in 0..room.fork_states.len() {
            for j in i + 1..room.fork_states.len() {
                batches.push(vec![
                    room.fork_states[i].clone(),
                    room.fork_states[j].clone(),
                ]);
            }
        }
        if room.fork_states.len() > 1 {
            conflicted_rooms += 1;
        }
        for sets in &batches {
            conflicted_keys += conflicted_key_count(&ruma_room, sets);
            let mine = ours(&graph, &mut resolver, sets);
            let theirs = ruma_room.resolve(sets);
            assert_eq!(
                mine,
                theirs,
                "v{version_id} seed {seed}: roomgraph and ruma disagree on {} sets",
                sets.len()
            );
            resolutions += 1;
        }
        rooms += 1;
    }
    println!(
        "differential v{version_id}: {rooms} rooms ({conflicted_rooms} with forks), {resolutions} resolutions \
         identical, {conflicted_keys} conflicted keys in total"
    );
}

#[test]
fn v6_matches_ruma() {
    differential("6");
}

#[test]
fn v7_matches_ruma() {
    differential("7");
}

#[test]
fn v8_matches_ruma() {
    differential("8");
}

#[test]
fn v9_matches_ruma() {
    differential("9");
}

#[test]
fn v10_matches_ruma() {
    differential("10");
}

#[test]
fn v11_matches_ruma() {
    differential("11");
}

#[test]
fn v12_matches_ruma() {
    differential("12");
}
