//! ruma-state-res 0.18 as an oracle: a `ruma::state_res::Event` implementation over our generated PDUs,
//! and the inputs ruma expects from its caller (auth chains per state set, the conflicted state subgraph),
//! computed independently of roomgraph with plain hash sets. Shared by `resolve_vs_ruma.rs` and
//! `benches/resolve.rs`.
#![allow(dead_code)]

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
use roomgraph::pdu::Pdu;
use roomgraph::room_generator::GeneratedRoom;
use roomgraph::room_version::RoomVersion;

#[derive(Debug, Deserialize)]
pub struct RumaPdu {
    event_id: OwnedEventId,
    #[serde(default)]
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    content: Box<RawValue>,
    pub state_key: Option<String>,
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

pub type Named = BTreeMap<(String, String), String>;

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
        result
            .into_iter()
            .map(|((t, s), id)| ((t.to_string(), s), id.to_string()))
            .collect()
    }
}
