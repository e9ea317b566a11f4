//! Interning: event ids and `(type, state_key)` pairs become dense integers.
//!
//! An [`EventGraph`] holds the events of one room (or of one resolution request) with their auth edges in
//! compressed form. Events are numbered in a topological order of the auth graph — every auth event has a
//! smaller [`EventIdx`] than the events citing it — so reachability questions become single linear passes
//! over index ranges (see [`super::auth_chain`]). The graph is append-only: [`EventGraph::insert`] needs the
//! event's auth events to be present already, which is how the order is kept and why cycles cannot occur.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use crate::auth::{self, AuthEvent, Membership};
use crate::event_id::create_event_id_from_room_id;
use crate::fast_hash::FastHash;
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;

use super::error::ResolveError;

const NONE: u32 = u32::MAX;

/// A dense event number, valid within one [`EventGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventIdx(pub u32);

/// A dense `(type, state_key)` number, valid within one [`EventGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeStateKeyIdx(pub u32);

/// A dense number for any `(type, state_key)` pair the graph has seen — a state key of some event, or a
/// key some event's auth rules look up (which may have no event yet). Valid within one [`EventGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameIdx(pub u32);

impl EventIdx {
    #[inline]
    pub fn ix(self) -> usize {
        self.0 as usize
    }
}

impl TypeStateKeyIdx {
    #[inline]
    pub fn ix(self) -> usize {
        self.0 as usize
    }
}

/// The process's key for [`name_hash`] and the id table's hash, random at start: state keys and (in
/// rooms before v3) event ids are chosen by remote servers, and an unkeyed hash would let a crafted room
/// collide them on purpose.
static KEYED: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);

/// The hash [`StateKeyInterner::name_hash`] keeps per name: keyed, over the type and the key.
#[inline]
pub(crate) fn name_hash(event_type: &str, state_key: &str) -> u64 {
    KEYED.hash_one((event_type, state_key))
}

/// `(type, state_key)` ↔ [`TypeStateKeyIdx`], looked up with borrowed strings.
///
/// Two number spaces: every pair seen gets a [`NameIdx`]; pairs that are the state key of some event also
/// get a [`TypeStateKeyIdx`] (dense over state keys only, so per-key arrays stay small). Events record the
/// names their auth rules look up when they enter the graph; whether such a name has become a state key
/// since is one array read ([`StateKeyInterner::key_of_name`]).
///
/// One open-addressed table over [`name_hash`] finds a pair with one keyed hash of both strings (the hash
/// each name keeps anyway); the strings are compared only on a full hash match.
#[derive(Debug, Default, Clone)]
pub struct StateKeyInterner {
    /// [`name_hash`] → name.
    table: IdTable,
    /// The distinct types, so that names of one type share its string.
    types: HashSet<Arc<str>, FastHash>,
    /// Per name: `(type, state_key)`.
    names: Vec<(Arc<str>, Arc<str>)>,
    /// Per name: [`name_hash`], for hash-first comparisons in small state maps.
    hashes: Vec<u64>,
    /// Per name: its state key number, or `NONE`.
    name_key: Vec<u32>,
    /// Per state key: its name.
    key_name: Vec<u32>,
}

impl StateKeyInterner {
    pub fn intern(&mut self, event_type: &str, state_key: &str) -> TypeStateKeyIdx {
        let n = self.intern_name(event_type, state_key);
        match self.name_key[n.0 as usize] {
            NONE => {
                let k = TypeStateKeyIdx(self.key_name.len() as u32);
                self.key_name.push(n.0);
                self.name_key[n.0 as usize] = k.0;
                k
            }
            k => TypeStateKeyIdx(k),
        }
    }

    pub fn get(&self, event_type: &str, state_key: &str) -> Option<TypeStateKeyIdx> {
        self.key_of_name(self.get_name(event_type, state_key)?)
    }

    /// The `(type, state_key)` of an interned key.
    pub fn resolve(&self, key: TypeStateKeyIdx) -> (&str, &str) {
        self.name(NameIdx(self.key_name[key.ix()]))
    }

    /// The number of state keys.
    pub fn len(&self) -> usize {
        self.key_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_name.is_empty()
    }

    #[inline]
    fn find(&self, hash: u64, event_type: &str, state_key: &str) -> Option<u32> {
        self.table.find(hash, |n| {
            let (t, s) = &self.names[n as usize];
            **s == *state_key && **t == *event_type
        })
    }

    /// Numbers `(type, state_key)` as a name, without making it a state key.
    pub fn intern_name(&mut self, event_type: &str, state_key: &str) -> NameIdx {
        let h = name_hash(event_type, state_key);
        if let Some(n) = self.find(h, event_type, state_key) {
            return NameIdx(n);
        }
        let t = match self.types.get(event_type) {
            Some(t) => Arc::clone(t),
            None => {
                let t: Arc<str> = Arc::from(event_type);
                self.types.insert(Arc::clone(&t));
                t
            }
        };
        let next = self.names.len() as u32;
        self.table.insert(h, next);
        self.names.push((t, Arc::from(state_key)));
        self.hashes.push(h);
        self.name_key.push(NONE);
        NameIdx(next)
    }

    pub fn get_name(&self, event_type: &str, state_key: &str) -> Option<NameIdx> {
        self.find(name_hash(event_type, state_key), event_type, state_key)
            .map(NameIdx)
    }

    /// The state key number of a name, if some event has that state key.
    #[inline]
    pub fn key_of_name(&self, name: NameIdx) -> Option<TypeStateKeyIdx> {
        match self.name_key[name.0 as usize] {
            NONE => None,
            k => Some(TypeStateKeyIdx(k)),
        }
    }

    pub fn name(&self, name: NameIdx) -> (&str, &str) {
        let (t, s) = &self.names[name.0 as usize];
        (t, s)
    }

    /// The [`name_hash`] of a state key's `(type, state_key)`.
    #[inline]
    pub(crate) fn key_hash(&self, key: TypeStateKeyIdx) -> u64 {
        self.hashes[self.key_name[key.ix()] as usize]
    }
}

/// Facts about one event that the resolution loops read, as plain integers.
#[derive(Debug, Clone)]
pub struct EventNode {
    /// The event, shared: the graph never copies or re-parses it, and a caller that keeps its own
    /// reference pays nothing when the graph is dropped.
    pub event: Arc<AuthEvent>,
    /// The state key, `None` for non-state events.
    pub key: Option<TypeStateKeyIdx>,
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

/// Event id → [`EventIdx`] (and name hash → [`NameIdx`]): open addressing with linear probing over
/// `(hash, value)` slots, kept at most half full. The strings live elsewhere ([`EventGraph`]'s id arena,
/// [`StateKeyInterner`]'s names), so the table stores none and a lookup touches the slot and the
/// candidate's bytes only (a `HashMap<String, _>` would add a pointer chase per probe and an allocation
/// per entry).
///
/// The hash is keyed ([`KEYED`]): ids and state keys come from remote servers, and ids chosen to
/// collide could otherwise cluster probes, degrading lookups to linear time (never changing results).
#[derive(Debug, Clone, Default)]
struct IdTable {
    /// `(hash, value)`; `value == NONE` marks an empty slot.
    slots: Vec<(u64, u32)>,
    len: usize,
}

impl IdTable {
    fn with_capacity(n: usize) -> IdTable {
        IdTable {
            slots: vec![(0, NONE); (n.max(4) * 2).next_power_of_two()],
            len: 0,
        }
    }

    fn hash(id: &str) -> u64 {
        KEYED.hash_one(id)
    }

    /// The value whose slot hash is `hash` and for which `is_match` holds.
    #[inline]
    fn find(&self, hash: u64, is_match: impl Fn(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (h, v) = self.slots[i];
            if v == NONE {
                return None;
            }
            if h == hash && is_match(v) {
                return Some(v);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `value` under `hash` (the caller has checked that its id is absent).
    fn insert(&mut self, hash: u64, value: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::replace(
                &mut self.slots,
                vec![(0, NONE); ((self.len + 1) * 2).max(8).next_power_of_two() * 2],
            );
            for (h, v) in old {
                if v != NONE {
                    self.place(h, v);
                }
            }
        }
        self.place(hash, value);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, value: u32) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i].1 != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = (hash, value);
    }
}

/// What [`EventGraph::build_with`] does with an auth event that is not in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MissingAuth {
    Refuse,
    Skip,
}

/// The events of one room with interned ids, keys and auth edges.
#[derive(Debug, Clone)]
pub struct EventGraph {
    version: &'static RoomVersion,
    room_id: Box<str>,
    ids: IdTable,
    /// The event ids back to back, in [`EventIdx`] order; id `i` is `id_bytes[id_end[i-1]..id_end[i]]`.
    id_bytes: String,
    id_end: Vec<u32>,
    nodes: Vec<EventNode>,
    /// Per event: its state key number, or `NONE` (the hot field of [`EventNode`], dense for the split).
    node_keys: Vec<u32>,
    /// Auth edges in CSR form: the auth events of event `i` are `auth_edges[auth_start[i]..auth_start[i+1]]`,
    /// deduplicated, in the order the event lists them.
    auth_start: Vec<u32>,
    auth_edges: Vec<EventIdx>,
    /// The names event `i`'s auth rules look up ([`auth::for_each_auth_type`]), in CSR form like the
    /// auth edges: interned once on insert, so iterative auth checks do no string work.
    lookup_start: Vec<u32>,
    lookups: Vec<NameIdx>,
    /// Whether `lookups` is kept. A graph built for one resolution ([`EventGraph::build`]) leaves it
    /// empty: only the events the iterative auth checks visit need their lookups, and those are found
    /// from the event when asked ([`EventGraph::for_each_auth_key`]). A long-lived graph
    /// ([`EventGraph::new`] + [`EventGraph::insert`], resolved many times) interns them once per event.
    eager_lookups: bool,
    keys: StateKeyInterner,
    /// The state key `(m.room.power_levels, "")`, once an event has it.
    pub(crate) pl_key: Option<TypeStateKeyIdx>,
    /// The state key `(m.room.create, "")`, once an event has it.
    create_key: Option<TypeStateKeyIdx>,
    create: Option<EventIdx>,
}

impl EventGraph {
    /// An empty graph for `room_id`.
    pub fn new(version: &'static RoomVersion, room_id: &str) -> EventGraph {
        EventGraph {
            version,
            room_id: room_id.into(),
            ids: IdTable::default(),
            id_bytes: String::new(),
            id_end: Vec::new(),
            nodes: Vec::new(),
            node_keys: Vec::new(),
            auth_start: vec![0],
            auth_edges: Vec::new(),
            lookup_start: vec![0],
            lookups: Vec::new(),
            eager_lookups: true,
            keys: StateKeyInterner::default(),
            pl_key: None,
            create_key: None,
            create: None,
        }
    }

    /// Builds a graph from events in any order: they are sorted topologically along `auth_events` first.
    /// Fails on duplicate ids, events of another room, missing auth events and auth cycles. Events may be
    /// given owned (`AuthEvent`) or shared (`Arc<AuthEvent>`, then nothing is copied).
    ///
    /// Each id is hashed once: the table that numbers the input positions becomes the graph's id table
    /// after the sort, and auth references are resolved once, to positions.
    pub fn build<E: Into<Arc<AuthEvent>>>(
        version: &'static RoomVersion,
        events: Vec<E>,
        rejected: &dyn Fn(&str) -> bool,
    ) -> Result<EventGraph, ResolveError> {
        EventGraph::build_with(version, events, rejected, MissingAuth::Refuse)
    }

    /// [`EventGraph::build`] for a part of a room: an auth event that is not among `events` is left
    /// out (its edge dropped) instead of refused. For resolutions that hold only the events they read
    /// ([`Session::begin_conflicted`](super::Session::begin_conflicted)): reachability over such a graph
    /// is that of the part, not of the room.
    pub fn build_partial<E: Into<Arc<AuthEvent>>>(
        version: &'static RoomVersion,
        events: Vec<E>,
        rejected: &dyn Fn(&str) -> bool,
    ) -> Result<EventGraph, ResolveError> {
        EventGraph::build_with(version, events, rejected, MissingAuth::Skip)
    }

    fn build_with<E: Into<Arc<AuthEvent>>>(
        version: &'static RoomVersion,
        events: Vec<E>,
        rejected: &dyn Fn(&str) -> bool,
        missing: MissingAuth,
    ) -> Result<EventGraph, ResolveError> {
        let events: Vec<Arc<AuthEvent>> = events.into_iter().map(Into::into).collect();
        let Some(first) = events.first() else {
            return Ok(EventGraph::new(version, ""));
        };
        let room_id: &str = &first.pdu.room_id;
        let n = events.len();
        // The ids in input order, back to back: comparisons read this arena instead of chasing each
        // event's id through its `Arc` and `Cow`.
        let mut in_bytes = String::with_capacity(n * 48);
        let mut in_end: Vec<u32> = Vec::with_capacity(n + 1);
        in_end.push(0);
        for ev in &events {
            in_bytes.push_str(ev.event_id());
            in_end.push(in_bytes.len() as u32);
        }
        let input_id =
            |p: u32| &in_bytes[in_end[p as usize] as usize..in_end[p as usize + 1] as usize];
        let mut table = IdTable::with_capacity(n);
        for i in 0..n as u32 {
            let id = input_id(i);
            let h = IdTable::hash(id);
            if table.find(h, |p| input_id(p) == id).is_some() {
                return Err(ResolveError::DuplicateEvent(id.to_owned()));
            }
            table.insert(h, i);
        }
        // Auth references as input positions (CSR), then Kahn's algorithm over them, ties broken by input
        // position, so the order is deterministic.
        let mut pending = vec![0u32; n];
        let mut citing_start = vec![0u32; n + 1];
        let mut ref_start = Vec::with_capacity(n + 1);
        ref_start.push(0u32);
        let mut refs: Vec<u32> = Vec::with_capacity(n * 4);
        // Whether every event cites only events before it: then the input order is the graph's order
        // (homeservers usually ship events auth-first) and the sort is skipped.
        let mut in_order = true;
        for (i, ev) in events.iter().enumerate() {
            if *ev.pdu.room_id != *room_id {
                return Err(ResolveError::WrongRoom {
                    event_id: ev.event_id().to_owned(),
                    room_id: ev.pdu.room_id.to_string(),
                    expected: room_id.to_owned(),
                });
            }
            for a in dedup_refs(&ev.pdu.auth_events) {
                let Some(p) = table.find(IdTable::hash(a), |p| input_id(p) == a) else {
                    if missing == MissingAuth::Skip {
                        continue;
                    }
                    return Err(ResolveError::MissingAuthEvent {
                        event_id: ev.event_id().to_owned(),
                        auth_event_id: a.to_owned(),
                    });
                };
                citing_start[p as usize + 1] += 1;
                pending[i] += 1;
                in_order &= (p as usize) < i;
                refs.push(p);
            }
            ref_start.push(refs.len() as u32);
        }
        let mut graph = EventGraph::new(version, room_id);
        graph.eager_lookups = false;
        graph.nodes.reserve(n);
        graph.node_keys.reserve(n);
        graph.auth_start.reserve(n);
        if in_order {
            graph.ids = table;
            graph.auth_edges = refs.iter().map(|&p| EventIdx(p)).collect();
            graph.id_end = in_end.split_off(1);
            graph.id_bytes = in_bytes;
            for (p, event) in events.into_iter().enumerate() {
                let rej = rejected(graph.id_at(p as u32));
                graph.push_node(event, rej, ref_start[p + 1]);
            }
            return Ok(graph);
        }
        for i in 0..n {
            citing_start[i + 1] += citing_start[i];
        }
        let mut fill = citing_start.clone();
        let mut citing = vec![0u32; refs.len()];
        for i in 0..n {
            for &p in &refs[ref_start[i] as usize..ref_start[i + 1] as usize] {
                citing[fill[p as usize] as usize] = i as u32;
                fill[p as usize] += 1;
            }
        }
        drop(fill);
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
        let mut idx_of = vec![NONE; n];
        for (idx, &p) in order.iter().enumerate() {
            idx_of[p as usize] = idx as u32;
        }
        for slot in &mut table.slots {
            if slot.1 != NONE {
                slot.1 = idx_of[slot.1 as usize];
            }
        }
        graph.ids = table;
        graph.id_bytes.reserve(in_bytes.len());
        graph.id_end.reserve(n);
        graph.auth_edges.reserve(refs.len());
        for &p in &order {
            let p = p as usize;
            for &a in &refs[ref_start[p] as usize..ref_start[p + 1] as usize] {
                graph.auth_edges.push(EventIdx(idx_of[a as usize]));
            }
            let id = input_id(p as u32);
            graph.id_bytes.push_str(id);
            graph.id_end.push(graph.id_bytes.len() as u32);
            let rej = rejected(id);
            graph.push_node(Arc::clone(&events[p]), rej, graph.auth_edges.len() as u32);
        }
        Ok(graph)
    }

    /// Appends one event whose auth events are all in the graph already. Cost: O(#auth events). The
    /// event may be given owned (`AuthEvent`) or shared (`Arc<AuthEvent>`).
    pub fn insert(
        &mut self,
        event: impl Into<Arc<AuthEvent>>,
        rejected: bool,
    ) -> Result<EventIdx, ResolveError> {
        let event: Arc<AuthEvent> = event.into();
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
        let id = event.event_id();
        let h = IdTable::hash(id);
        if self.ids.find(h, |e| self.id_at(e) == id).is_some() {
            return Err(ResolveError::DuplicateEvent(id.to_owned()));
        }
        let edges_before = self.auth_edges.len();
        for a in dedup_refs(&pdu.auth_events) {
            let Some(ai) = self.idx(a) else {
                self.auth_edges.truncate(edges_before);
                return Err(ResolveError::MissingAuthEvent {
                    event_id: id.to_owned(),
                    auth_event_id: a.to_owned(),
                });
            };
            self.auth_edges.push(ai);
        }
        let idx = EventIdx(self.nodes.len() as u32);
        self.ids.insert(h, idx.0);
        self.id_bytes.push_str(id);
        self.id_end.push(self.id_bytes.len() as u32);
        self.push_node(event, rejected, self.auth_edges.len() as u32);
        Ok(idx)
    }

    /// Appends a node whose auth edges have just been pushed onto `auth_edges` and whose id is in the id
    /// table and the arena already: the state key, lookup names and the integer facts.
    fn push_node(&mut self, event: Arc<AuthEvent>, rejected: bool, edges_end: u32) -> EventIdx {
        let idx = EventIdx(self.nodes.len() as u32);
        let pdu = &event.pdu;
        // An auth event is the power-levels (create) event iff its state key is (type, "") — compared as
        // key numbers, without touching the auth event.
        let pl = self.pl_key.map_or(NONE, |k| k.0);
        let cr = self.create_key.map_or(NONE, |k| k.0);
        let mut pl_auth = None;
        let mut create_auth = None;
        let edges_start = *self.auth_start.last().unwrap_or(&0) as usize;
        for &ai in &self.auth_edges[edges_start..edges_end as usize] {
            let k = self.node_keys[ai.ix()];
            if k == NONE {
                continue;
            }
            if pl_auth.is_none() && k == pl {
                pl_auth = Some(ai);
            } else if create_auth.is_none() && k == cr {
                create_auth = Some(ai);
            }
        }
        self.auth_start.push(edges_end);
        let key = pdu
            .state_key
            .as_deref()
            .map(|sk| self.keys.intern(&pdu.event_type, sk));
        if self.eager_lookups {
            let lookups_before = self.lookups.len();
            let (keys, lookups) = (&mut self.keys, &mut self.lookups);
            // A member event's sender is usually its target: skip the second lookup of the same strings.
            let mut last: (&str, &str) = ("", "");
            auth::for_each_auth_type(&event, |t, s| {
                if (t, s) == last {
                    return;
                }
                last = (t, s);
                let name = keys.intern_name(t, s);
                if !lookups[lookups_before..].contains(&name) {
                    lookups.push(name);
                }
            });
            self.lookup_start.push(self.lookups.len() as u32);
        }
        if pdu.event_type == "m.room.power_levels" && pdu.state_key.as_deref() == Some("") {
            self.pl_key = key;
        }
        if pdu.event_type == "m.room.create" && pdu.state_key.as_deref() == Some("") {
            self.create_key = key;
            let is_room_create = if self.version.room_id_from_create {
                create_event_id_from_room_id(&self.room_id) == *pdu.event_id
            } else {
                self.create.is_none()
            };
            if is_room_create {
                self.create = Some(idx);
            }
        }
        self.node_keys.push(key.map_or(NONE, |k| k.0));
        self.nodes.push(EventNode {
            key,
            origin_server_ts: pdu.origin_server_ts,
            depth: pdu.depth,
            rejected,
            power: is_power(&event),
            pl_auth,
            create_auth,
            event,
        });
        idx
    }

    /// The id of event number `e` (a raw index from the id table), from the arena.
    #[inline]
    fn id_at(&self, e: u32) -> &str {
        let e = e as usize;
        let start = if e == 0 {
            0
        } else {
            self.id_end[e - 1] as usize
        };
        &self.id_bytes[start..self.id_end[e] as usize]
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
        self.ids
            .find(IdTable::hash(event_id), |e| self.id_at(e) == event_id)
            .map(EventIdx)
    }

    pub fn node(&self, e: EventIdx) -> &EventNode {
        &self.nodes[e.ix()]
    }

    /// The state key of `e` (`None` for non-state events); the same as `node(e).key`, from a dense array.
    #[inline]
    pub fn key_of(&self, e: EventIdx) -> Option<TypeStateKeyIdx> {
        match self.node_keys[e.ix()] {
            NONE => None,
            k => Some(TypeStateKeyIdx(k)),
        }
    }

    pub fn event(&self, e: EventIdx) -> &AuthEvent {
        &self.nodes[e.ix()].event
    }

    /// The event, shared (cloning the `Arc` is cheap).
    pub fn shared_event(&self, e: EventIdx) -> &Arc<AuthEvent> {
        &self.nodes[e.ix()].event
    }

    pub fn event_id(&self, e: EventIdx) -> &str {
        self.id_at(e.0)
    }

    /// The deduplicated auth events of `e`, all with smaller indices.
    #[inline]
    pub fn auth_events(&self, e: EventIdx) -> &[EventIdx] {
        &self.auth_edges[self.auth_start[e.ix()] as usize..self.auth_start[e.ix() + 1] as usize]
    }

    /// Calls `f` with each state key `e`'s auth rules look up (server-server API "Auth events
    /// selection") that is the state key of some event of the graph, in selection order. Keys no event
    /// has are skipped: no state can hold them. A key may come twice when the graph finds them from the
    /// event ([`EventGraph::build`]); callers treat them as a set.
    #[inline]
    pub fn for_each_auth_key(&self, e: EventIdx, mut f: impl FnMut(TypeStateKeyIdx)) {
        if self.eager_lookups {
            let names = &self.lookups
                [self.lookup_start[e.ix()] as usize..self.lookup_start[e.ix() + 1] as usize];
            for &name in names {
                if let Some(k) = self.keys.key_of_name(name) {
                    f(k);
                }
            }
        } else {
            let mut last: (&str, &str) = ("", "");
            auth::for_each_auth_type(&self.nodes[e.ix()].event, |t, s| {
                if (t, s) == last {
                    return;
                }
                last = (t, s);
                if let Some(k) = self.keys.get(t, s) {
                    f(k);
                }
            });
        }
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

/// [`is_power_event`] from the facts extracted once (`membership`) instead of the content JSON.
fn is_power(event: &AuthEvent) -> bool {
    let pdu = &event.pdu;
    let Some(state_key) = pdu.state_key.as_deref() else {
        return false;
    };
    match &*pdu.event_type {
        "m.room.power_levels" | "m.room.join_rules" | "m.room.create" => state_key.is_empty(),
        "m.room.member" => {
            matches!(event.membership, Some(Membership::Leave | Membership::Ban))
                && *pdu.sender != *state_key
        }
        _ => false,
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
