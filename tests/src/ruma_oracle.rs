//! ruma-state-res 0.18 as an oracle: a `ruma::state_res::Event` implementation over our generated PDUs,
//! and the inputs ruma expects from its caller (auth chains per state set, the conflicted state subgraph),
//! computed independently of roomgraph with plain hash sets. Shared by the differential suites and the
//! benchmarks (`bench-harness/benches/`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ruma::events::room::power_levels::UserPowerLevel;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::events::{RoomCreateEvent, RoomPowerLevelsEvent};
use ruma::state_res::utils::event_id_map::EventIdMap;
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::state_res::{
    Event, StateMap, auth_types_for_event, check_state_dependent_auth_rules,
    reverse_topological_power_sort,
};
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId,
    RoomVersionId, UserId,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::pdu::Pdu;
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::GeneratedRoom;

/// An event as ruma-state-res sees it (its `Event` trait), deserialised from a PDU or converted from
/// one of roomgraph's events (`auth_support::ruma_adaptor::convert`). The one adapter of the test suites
/// and benchmarks.
#[derive(Debug, Clone, Deserialize)]
pub struct RumaPdu {
    pub event_id: OwnedEventId,
    #[serde(default)]
    pub room_id: Option<OwnedRoomId>,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    pub redacts: Option<OwnedEventId>,
    #[serde(skip)]
    pub rejected: bool,
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

pub type Named = BTreeMap<(String, String), String>;

fn named(state: StateMap<OwnedEventId>) -> Named {
    state
        .into_iter()
        .map(|((t, s), id)| ((t.to_string(), s), id.to_string()))
        .collect()
}

pub struct RumaRoom {
    pub events: HashMap<OwnedEventId, Arc<RumaPdu>>,
    pub rules: RoomVersionRules,
}

impl RumaRoom {
    pub fn new(room: &GeneratedRoom) -> RumaRoom {
        RumaRoom::from_pdus(room.version, &room.events, &[])
    }

    /// From any PDUs; `rejected` lists the event ids to flag as rejected.
    pub fn from_pdus(version: &RoomVersion, pdus: &[Pdu<'_>], rejected: &[&str]) -> RumaRoom {
        let mut events = HashMap::new();
        for pdu in pdus {
            let text = to_canonical_string(&JsonValue::Object(pdu.json.clone()));
            let mut value: serde_json::Value =
                serde_json::from_str(&text).expect("canonical JSON parses");
            value["event_id"] = serde_json::Value::String(pdu.event_id.to_string());
            let mut ev: RumaPdu = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("ruma reads {}: {e}", pdu.event_id));
            ev.rejected = rejected.contains(&&*pdu.event_id);
            events.insert(ev.event_id.clone(), Arc::new(ev));
        }
        let id = RoomVersionId::try_from(version.id).expect("ruma knows the version");
        RumaRoom {
            events,
            rules: id.rules().expect("rules for a stable version"),
        }
    }

    pub fn id(&self, s: &str) -> OwnedEventId {
        OwnedEventId::try_from(s).expect("valid event id")
    }

    /// Auth chain of a state set, the set's own events included (Synapse's convention).
    pub fn closure(&self, set: &[OwnedEventId]) -> HashSet<OwnedEventId> {
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut stack: Vec<OwnedEventId> = set.to_vec();
        while let Some(e) = stack.pop() {
            if seen.insert(e.clone()) {
                stack.extend(self.events[&e].auth_events.iter().cloned());
            }
        }
        seen
    }

    /// The conflicted state subgraph, naively: ancestors-or-self of some conflicted event that have some
    /// conflicted event among their ancestors-or-self.
    /// The conflicted state subgraph: ancestors-or-self of some conflicted event that have some conflicted
    /// event among their ancestors-or-self (memoised depth-first search over hash maps).
    pub fn subgraph(&self, conflicted: &HashSet<OwnedEventId>) -> EventIdSet<OwnedEventId> {
        let list: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
        let back = self.closure(&list);
        let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
        for x in &back {
            let mut stack = vec![(x.clone(), false)];
            while let Some((e, expanded)) = stack.pop() {
                if reaches.contains_key(&e) {
                    continue;
                }
                let auth = &self.events[&e].auth_events;
                if expanded {
                    let r = auth
                        .iter()
                        .any(|a| conflicted.contains(a) || reaches.get(a) == Some(&true));
                    reaches.insert(e, r);
                } else {
                    stack.push((e.clone(), true));
                    stack.extend(
                        auth.iter()
                            .filter(|a| !reaches.contains_key(*a))
                            .map(|a| (a.clone(), false)),
                    );
                }
            }
        }
        back.into_iter()
            .filter(|x| conflicted.contains(x) || reaches.get(x) == Some(&true))
            .collect()
    }

    /// Everything `ruma::state_res::resolve` needs besides the events: the state maps and the auth chains.
    pub fn inputs(
        &self,
        sets: &[Vec<String>],
    ) -> (Vec<StateMap<OwnedEventId>>, Vec<EventIdSet<OwnedEventId>>) {
        let sets: Vec<Vec<OwnedEventId>> = sets
            .iter()
            .map(|s| s.iter().map(|id| self.id(id)).collect())
            .collect();
        let maps = sets
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
        let chains = sets
            .iter()
            .map(|s| self.closure(s).into_iter().collect())
            .collect();
        (maps, chains)
    }

    /// Runs ruma's resolution on prepared inputs.
    pub fn run(
        &self,
        maps: &[StateMap<OwnedEventId>],
        chains: Vec<EventIdSet<OwnedEventId>>,
    ) -> StateMap<OwnedEventId> {
        let v2_rules = *self.rules.state_res.v2_rules().expect("v2 rules");
        ruma::state_res::resolve(
            &self.rules.authorization,
            &v2_rules,
            maps,
            chains,
            |id: &EventId| self.events.get(id).cloned(),
            |conflicted: &StateMap<Vec<OwnedEventId>>| {
                let c: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
                Some(self.subgraph(&c))
            },
        )
        .expect("ruma resolves")
    }

    pub fn resolve(&self, sets: &[Vec<String>]) -> Named {
        let (maps, chains) = self.inputs(sets);
        let result = self.run(&maps, chains);
        named(result)
    }

    /// ruma 0.18's `resolve`, replayed step by step from its public pieces (`auth_types_for_event`,
    /// `check_state_dependent_auth_rules`, `reverse_topological_power_sort`) so that one auth decision can
    /// be changed. With `missing_join_rules_as_invite`, a membership event whose auth state has no
    /// `m.room.join_rules` is checked as if the join rule were `invite` — Synapse's reading
    /// (`event_auth._is_membership_change_allowed`), where ruma fails with "no `m.room.join_rules` event
    /// in current state" (docs/auth-rules.md, choice 3). Without it the result must equal [`Self::resolve`].
    pub fn resolve_stepwise(
        &self,
        sets: &[Vec<String>],
        missing_join_rules_as_invite: bool,
    ) -> Named {
        let (maps, chains) = self.inputs(sets);
        let auth_rules = &self.rules.authorization;
        let v2_rules = *self.rules.state_res.v2_rules().expect("v2 rules");

        // Split.
        let mut occurrences: HashMap<(StateEventType, String), HashMap<OwnedEventId, usize>> =
            HashMap::new();
        for map in &maps {
            for (k, v) in map {
                *occurrences
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += 1;
            }
        }
        let mut unconflicted: StateMap<OwnedEventId> = StateMap::new();
        let mut conflicted: HashSet<OwnedEventId> = HashSet::new();
        for (k, values) in occurrences {
            for (id, n) in values {
                if n == maps.len() {
                    unconflicted.insert(k.clone(), id);
                } else {
                    conflicted.insert(id);
                }
            }
        }
        if conflicted.is_empty() {
            return named(unconflicted);
        }

        // Full conflicted set.
        let mut counts: HashMap<OwnedEventId, usize> = HashMap::new();
        for chain in &chains {
            for id in chain.iter() {
                *counts.entry(id.clone()).or_default() += 1;
            }
        }
        let mut fcs: HashSet<OwnedEventId> = counts
            .into_iter()
            .filter(|(_, n)| *n < chains.len())
            .map(|(id, _)| id)
            .collect();
        fcs.extend(conflicted.iter().cloned());
        if v2_rules.consider_conflicted_state_subgraph {
            fcs.extend(self.subgraph(&conflicted).iter().cloned());
        }

        // Power events and their auth ancestors through edges inside the full conflicted set.
        let is_power = |e: &RumaPdu| match e.kind.to_string().as_str() {
            "m.room.power_levels" | "m.room.join_rules" | "m.room.create" => {
                e.state_key.as_deref() == Some("")
            }
            "m.room.member" => {
                let membership = serde_json::from_str::<serde_json::Value>(e.content.get())
                    .ok()
                    .and_then(|c| {
                        c.get("membership")
                            .and_then(|m| m.as_str())
                            .map(str::to_owned)
                    });
                matches!(membership.as_deref(), Some("leave" | "ban"))
                    && e.state_key.as_deref() != Some(e.sender.as_str())
            }
            _ => false,
        };
        let mut graph: EventIdMap<OwnedEventId, EventIdSet<OwnedEventId>> = EventIdMap::new();
        let mut stack: Vec<OwnedEventId> = fcs
            .iter()
            .filter(|id| is_power(&self.events[*id]))
            .cloned()
            .collect();
        while let Some(id) = stack.pop() {
            if graph.contains_event_id(&id) {
                continue;
            }
            let edges: EventIdSet<OwnedEventId> = self.events[&id]
                .auth_events
                .iter()
                .filter(|a| fcs.contains(*a))
                .cloned()
                .collect();
            stack.extend(edges.iter().cloned());
            graph.insert(id, edges);
        }
        let create = self.create_event();
        let creators = RoomCreateEvent::new(create.clone())
            .creators(auth_rules)
            .expect("valid create event");
        let sorted_power = reverse_topological_power_sort(&graph, |id| {
            let e = &self.events[id];
            let pl = e.auth_events.iter().map(|a| &self.events[a]).find(|a| {
                a.kind.to_string() == "m.room.power_levels" && a.state_key.as_deref() == Some("")
            });
            let level =
                if auth_rules.explicitly_privilege_room_creators && creators.contains(&e.sender) {
                    UserPowerLevel::Infinite
                } else if let Some(pl) = pl {
                    RoomPowerLevelsEvent::new(pl.clone())
                        .user_power_level(&e.sender, auth_rules)
                        .map(Into::into)
                        .unwrap_or(UserPowerLevel::Int(0.into()))
                } else if creators.contains(&e.sender) {
                    UserPowerLevel::Int(100.into())
                } else {
                    UserPowerLevel::Int(0.into())
                };
            Ok((level, e.origin_server_ts))
        })
        .expect("sortable");

        // Iterative auth checks, mainline order, iterative auth checks, unconflicted on top.
        let start = if v2_rules.begin_iterative_auth_checks_with_empty_state_map {
            StateMap::new()
        } else {
            unconflicted.clone()
        };
        let partial =
            self.iterative_auth_checks(&sorted_power, start, missing_join_rules_as_invite);
        let mut mainline: Vec<OwnedEventId> = Vec::new();
        let mut p = partial
            .get(&(StateEventType::RoomPowerLevels, String::new()))
            .cloned();
        while let Some(x) = p {
            p = self.pl_auth_event(&x);
            mainline.push(x);
        }
        let position = |id: &OwnedEventId| {
            let mut x = Some(id.clone());
            while let Some(y) = x {
                if let Some(i) = mainline.iter().position(|m| *m == y) {
                    return mainline.len() - i;
                }
                x = self.pl_auth_event(&y);
            }
            0
        };
        let mut rest: Vec<(usize, MilliSecondsSinceUnixEpoch, OwnedEventId)> = fcs
            .iter()
            .filter(|id| !graph.contains_event_id(id))
            .map(|id| (position(id), self.events[id].origin_server_ts, id.clone()))
            .collect();
        rest.sort();
        let rest: Vec<OwnedEventId> = rest.into_iter().map(|(_, _, id)| id).collect();
        let mut resolved = self.iterative_auth_checks(&rest, partial, missing_join_rules_as_invite);
        resolved.extend(unconflicted);
        named(resolved)
    }

    fn create_event(&self) -> Arc<RumaPdu> {
        self.events
            .values()
            .find(|e| e.kind.to_string() == "m.room.create")
            .expect("a create event")
            .clone()
    }

    fn pl_auth_event(&self, id: &OwnedEventId) -> Option<OwnedEventId> {
        self.events[id]
            .auth_events
            .iter()
            .find(|a| {
                let e = &self.events[*a];
                e.kind.to_string() == "m.room.power_levels" && e.state_key.as_deref() == Some("")
            })
            .cloned()
    }

    fn iterative_auth_checks(
        &self,
        events: &[OwnedEventId],
        mut state: StateMap<OwnedEventId>,
        missing_join_rules_as_invite: bool,
    ) -> StateMap<OwnedEventId> {
        let rules = &self.rules.authorization;
        let create = self.create_event();
        for id in events {
            let event = self.events[id].clone();
            let state_key = event.state_key.clone().expect("state event");
            let mut auth: StateMap<Arc<RumaPdu>> = StateMap::new();
            for a in &event.auth_events {
                let a = &self.events[a];
                if !a.rejected {
                    let key = (
                        a.kind.to_string().into(),
                        a.state_key.clone().expect("state"),
                    );
                    auth.insert(key, a.clone());
                }
            }
            if rules.room_create_event_id_as_room_id && event.kind.to_string() != "m.room.create" {
                auth.insert((StateEventType::RoomCreate, String::new()), create.clone());
            }
            let Ok(types) = auth_types_for_event(
                &event.kind,
                &event.sender,
                Some(&state_key),
                &event.content,
                rules,
            ) else {
                continue;
            };
            for key in types {
                if let Some(current) = state.get(&key) {
                    let current = &self.events[current];
                    if !current.rejected {
                        auth.insert(key, current.clone());
                    }
                }
            }
            let join_rules_key = (StateEventType::RoomJoinRules, String::new());
            if missing_join_rules_as_invite
                && event.kind.to_string() == "m.room.member"
                && !auth.contains_key(&join_rules_key)
            {
                auth.insert(join_rules_key, Arc::new(self.invite_join_rules(&event)));
            }
            if check_state_dependent_auth_rules(rules, &*event, |t: &StateEventType, k: &str| {
                auth.get(&(t.clone(), k.to_owned())).cloned()
            })
            .is_ok()
            {
                state.insert((event.kind.to_string().into(), state_key), id.clone());
            }
        }
        state
    }

    /// A stand-in `m.room.join_rules` event with `join_rule: invite`, for Synapse's default.
    fn invite_join_rules(&self, event: &RumaPdu) -> RumaPdu {
        let mut value = serde_json::json!({
            "event_id": "$synapse-default-join-rules",
            "sender": event.sender,
            "origin_server_ts": 0,
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {"join_rule": "invite"},
            "prev_events": [],
            "auth_events": [],
        });
        if let Some(room_id) = &event.room_id {
            value["room_id"] = serde_json::json!(room_id);
        }
        serde_json::from_value(value).expect("stand-in join rules")
    }
}
