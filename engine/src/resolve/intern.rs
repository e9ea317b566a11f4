//! Interning: event ids and `(type, state_key)` pairs become dense integers.
//!
//! An [`EventGraph`] holds the events of one room (or of one resolution request) with their auth edges in
//! compressed form. Events are numbered in a topological order of the auth graph — every auth event has a
//! smaller [`EventIdx`] than the events citing it — so reachability questions become single linear passes
//! over index ranges (see [`super::auth_chain`]). The graph is append-only: [`EventGraph::insert`] needs the
//! event's auth events to be present already, which is how the order is kept and why cycles cannot occur.

use std::collections::HashMap;

use crate::auth::AuthEvent;
use crate::event_id::create_event_id_from_room_id;
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;

use super::ResolveError;

/// A dense event number, valid within one [`EventGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventIdx(pub u32);

/// A dense `(type, state_key)` number, valid within one [`EventGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKeyIdx(pub u32);

impl EventIdx {
    #[inline]
    pub fn ix(self) -> usize {
        self.0 as usize
    }
}

impl StateKeyIdx {
    #[inline]
    pub fn ix(self) -> usize {
        self.0 as usize
    }
}

/// `(type, state_key)` ↔ [`StateKeyIdx`], looked up with borrowed strings.
#[derive(Debug, Default, Clone)]
pub struct StateKeyInterner {
    by_type: HashMap<Box<str>, HashMap<Box<str>, StateKeyIdx>>,
    keys: Vec<(Box<str>, Box<str>)>,
}

impl StateKeyInterner {
    pub fn intern(&mut self, event_type: &str, state_key: &str) -> StateKeyIdx {
        if let Some(k) = self.get(event_type, state_key) {
            return k;
        }
        let k = StateKeyIdx(self.keys.len() as u32);
        self.keys.push((event_type.into(), state_key.into()));
        match self.by_type.get_mut(event_type) {
            Some(by_key) => {
                by_key.insert(state_key.into(), k);
            }
            None => {
                let mut by_key = HashMap::new();
                by_key.insert(state_key.into(), k);
                self.by_type.insert(event_type.into(), by_key);
            }
        }
        k
    }

    pub fn get(&self, event_type: &str, state_key: &str) -> Option<StateKeyIdx> {
        self.by_type.get(event_type)?.get(state_key).copied()
    }

    /// The `(type, state_key)` of an interned key.
    pub fn resolve(&self, key: StateKeyIdx) -> (&str, &str) {
        let (t, s) = &self.keys[key.ix()];
        (t, s)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Facts about one event that the resolution loops read, as plain integers.
#[derive(Debug, Clone)]
pub struct EventNode {
    pub event: AuthEvent,
    /// The state key, `None` for non-state events.
    pub key: Option<StateKeyIdx>,
    pub origin_server_ts: i64,
    pub depth: i64,
    /// Known to be rejected: never used as an auth event and never admitted into resolved state.
    pub rejected: bool,
    /// A power event in the sense of state resolution v2 (power levels, join rules, create, kicks/bans).
    pub power: bool,
    /// The first `m.room.power_levels` event among `auth_events` (for mainline and sender power).
    pub pl_auth: Option<EventIdx>,
    /// The `m.room.create` event among `auth_events` (v1–v11).
    pub create_auth: Option<EventIdx>,
}

/// The events of one room with interned ids, keys and auth edges.
#[derive(Debug, Clone)]
pub struct EventGraph {
    version: &'static RoomVersion,
    room_id: Box<str>,
    ids: HashMap<Box<str>, EventIdx>,
    nodes: Vec<EventNode>,
    /// Auth edges in CSR form: the auth events of event `i` are `auth_edges[auth_start[i]..auth_start[i+1]]`,
    /// deduplicated, in the order the event lists them.
    auth_start: Vec<u32>,
    auth_edges: Vec<EventIdx>,
    keys: StateKeyInterner,
    pub(crate) pl_key: Option<StateKeyIdx>,
    create: Option<EventIdx>,
}

impl EventGraph {
    /// An empty graph for `room_id`.
    pub fn new(version: &'static RoomVersion, room_id: &str) -> EventGraph {
        EventGraph {
            version,
            room_id: room_id.into(),
            ids: HashMap::new(),
            nodes: Vec::new(),
            auth_start: vec![0],
            auth_edges: Vec::new(),
            keys: StateKeyInterner::default(),
            pl_key: None,
            create: None,
        }
    }

    /// Builds a graph from events in any order: they are sorted topologically along `auth_events` first.
    /// Fails on duplicate ids, events of another room, missing auth events and auth cycles.
    pub fn build(
        version: &'static RoomVersion,
        events: Vec<AuthEvent>,
        rejected: &dyn Fn(&str) -> bool,
    ) -> Result<EventGraph, ResolveError> {
        let Some(first) = events.first() else {
            return Ok(EventGraph::new(version, ""));
        };
        let room_id = first.pdu.room_id.to_string();
        let mut position: HashMap<&str, u32> = HashMap::with_capacity(events.len());
        for (i, ev) in events.iter().enumerate() {
            if position.insert(ev.event_id(), i as u32).is_some() {
                return Err(ResolveError::DuplicateEvent(ev.event_id().to_owned()));
            }
        }
        // Kahn's algorithm over auth edges, ties broken by input position, so the order is deterministic.
        let n = events.len();
        let mut pending = vec![0u32; n];
        let mut citing_start = vec![0u32; n + 1];
        for ev in &events {
            if ev.pdu.room_id != room_id {
                return Err(ResolveError::WrongRoom {
                    event_id: ev.event_id().to_owned(),
                    room_id: ev.pdu.room_id.to_string(),
                    expected: room_id.clone(),
                });
            }
            for a in dedup_refs(&ev.pdu.auth_events) {
                let Some(&p) = position.get(a) else {
                    return Err(ResolveError::MissingAuthEvent {
                        event_id: ev.event_id().to_owned(),
                        auth_event_id: a.to_owned(),
                    });
                };
                citing_start[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            citing_start[i + 1] += citing_start[i];
        }
        let mut fill = citing_start.clone();
        let mut citing = vec![0u32; citing_start[n] as usize];
        for (i, ev) in events.iter().enumerate() {
            for a in dedup_refs(&ev.pdu.auth_events) {
                let p = position[a] as usize;
                citing[fill[p] as usize] = i as u32;
                fill[p] += 1;
                pending[i] += 1;
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<u32>> = (0..n as u32)
            .filter(|&i| pending[i as usize] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &c in
                &citing[citing_start[i as usize] as usize..citing_start[i as usize + 1] as usize]
            {
                pending[c as usize] -= 1;
                if pending[c as usize] == 0 {
                    ready.push(std::cmp::Reverse(c));
                }
            }
        }
        if order.len() < n {
            let stuck = (0..n)
                .find(|&i| pending[i] > 0)
                .map(|i| events[i].event_id().to_owned());
            return Err(ResolveError::AuthCycle(stuck.unwrap_or_default()));
        }
        drop(position);
        let mut slots: Vec<Option<AuthEvent>> = events.into_iter().map(Some).collect();
        let mut graph = EventGraph::new(version, &room_id);
        graph.nodes.reserve(n);
        graph.ids.reserve(n);
        for i in order {
            if let Some(ev) = slots[i as usize].take() {
                let rej = rejected(ev.event_id());
                graph.insert(ev, rej)?;
            }
        }
        Ok(graph)
    }

    /// Appends one event whose auth events are all in the graph already. Cost: O(#auth events).
    pub fn insert(&mut self, event: AuthEvent, rejected: bool) -> Result<EventIdx, ResolveError> {
        let pdu = &event.pdu;
        if self.nodes.is_empty() && self.room_id.is_empty() {
            self.room_id = pdu.room_id.as_ref().into();
        }
        if *pdu.room_id != *self.room_id {
            return Err(ResolveError::WrongRoom {
                event_id: pdu.event_id.to_string(),
                room_id: pdu.room_id.to_string(),
                expected: self.room_id.to_string(),
            });
        }
        if self.ids.contains_key(pdu.event_id.as_ref()) {
            return Err(ResolveError::DuplicateEvent(pdu.event_id.to_string()));
        }
        let idx = EventIdx(self.nodes.len() as u32);
        let mut pl_auth = None;
        let mut create_auth = None;
        for a in dedup_refs(&pdu.auth_events) {
            let Some(&ai) = self.ids.get(a) else {
                return Err(ResolveError::MissingAuthEvent {
                    event_id: pdu.event_id.to_string(),
                    auth_event_id: a.to_owned(),
                });
            };
            self.auth_edges.push(ai);
            let an = &self.nodes[ai.ix()].event.pdu;
            if an.state_key.as_deref() == Some("") {
                if pl_auth.is_none() && an.event_type == "m.room.power_levels" {
                    pl_auth = Some(ai);
                } else if create_auth.is_none() && an.event_type == "m.room.create" {
                    create_auth = Some(ai);
                }
            }
        }
        self.auth_start.push(self.auth_edges.len() as u32);
        let key = pdu
            .state_key
            .as_deref()
            .map(|sk| self.keys.intern(&pdu.event_type, sk));
        if pdu.event_type == "m.room.power_levels" && pdu.state_key.as_deref() == Some("") {
            self.pl_key = key;
        }
        if pdu.event_type == "m.room.create" && pdu.state_key.as_deref() == Some("") {
            let is_room_create = if self.version.room_id_from_create {
                create_event_id_from_room_id(&self.room_id) == *pdu.event_id
            } else {
                self.create.is_none()
            };
            if is_room_create {
                self.create = Some(idx);
            }
        }
        let node = EventNode {
            key,
            origin_server_ts: pdu.origin_server_ts,
            depth: pdu.depth,
            rejected,
            power: is_power_event(pdu),
            pl_auth,
            create_auth,
            event,
        };
        self.ids.insert(node.event.event_id().into(), idx);
        self.nodes.push(node);
        Ok(idx)
    }

    pub fn version(&self) -> &'static RoomVersion {
        self.version
    }

    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index of an event id.
    pub fn idx(&self, event_id: &str) -> Option<EventIdx> {
        self.ids.get(event_id).copied()
    }

    pub fn node(&self, e: EventIdx) -> &EventNode {
        &self.nodes[e.ix()]
    }

    pub fn event(&self, e: EventIdx) -> &AuthEvent {
        &self.nodes[e.ix()].event
    }

    pub fn event_id(&self, e: EventIdx) -> &str {
        self.nodes[e.ix()].event.event_id()
    }

    /// The deduplicated auth events of `e`, all with smaller indices.
    #[inline]
    pub fn auth_events(&self, e: EventIdx) -> &[EventIdx] {
        &self.auth_edges[self.auth_start[e.ix()] as usize..self.auth_start[e.ix() + 1] as usize]
    }

    pub fn keys(&self) -> &StateKeyInterner {
        &self.keys
    }

    /// The room's create event: the one whose id the room id names (v12), else the `m.room.create` event.
    pub fn create(&self) -> Option<EventIdx> {
        self.create
    }

    /// Marks an event as rejected (e.g. after the ingest pipeline's checks).
    pub fn set_rejected(&mut self, e: EventIdx, rejected: bool) {
        self.nodes[e.ix()].rejected = rejected;
    }
}

/// Synapse's `_is_power_event` (and ruma's): power levels, join rules and create with an empty state key,
/// and memberships `leave`/`ban` whose sender is not the target. Counting create follows Synapse (the spec
/// lists only the others).
pub fn is_power_event(pdu: &Pdu<'_>) -> bool {
    let Some(state_key) = pdu.state_key.as_deref() else {
        return false;
    };
    match &*pdu.event_type {
        "m.room.power_levels" | "m.room.join_rules" | "m.room.create" => state_key.is_empty(),
        "m.room.member" => {
            let membership = pdu.content().get("membership").and_then(|m| m.as_str());
            matches!(membership, Some("leave" | "ban")) && *pdu.sender != *state_key
        }
        _ => false,
    }
}

/// The distinct entries of an id list, in first-occurrence order (auth lists have at most 10 entries).
fn dedup_refs<'s>(refs: &'s [std::borrow::Cow<'_, str>]) -> impl Iterator<Item = &'s str> {
    refs.iter()
        .enumerate()
        .filter_map(move |(i, r)| (!refs[..i].contains(r)).then_some(&**r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::EventBuilder;

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
}
