//! Host-driven resolution: state resolution for a host that keeps its own events (sans-I/O).
//!
//! A homeserver should not have to copy a room into roomgraph before asking a question. A
//! [`Session`] starts from the state sets (event ids) and whatever events the host ships at once,
//! and says which events it needs next ([`Step::Need`]); the host answers with those it has
//! ([`Session::supply`]), rejected ones flagged, until the session is [`Step::Done`]. The session
//! never does I/O: the C API, the socket server and the Python binding drive this same machine.
//!
//! What it asks for: the events of the state sets, then, level by level, the auth events of
//! everything received that it does not have yet — every id it can name at that step in one
//! batch, never one at a time, and never an id twice. When the auth chains are complete it runs
//! the stateless resolver ([`ResolveRequest`]) on what it holds, so the answer is the one
//! `roomgraph resolve` gives for the same events.
//!
//! A host with its own auth-chain index (Synapse's `get_auth_chain_difference`, Dendrite's and
//! conduwuit's equivalents) starts with [`Session::begin_conflicted`] instead: it hands over the full
//! conflicted set (conflicted events, auth difference and, for room version 12, the conflicted
//! subgraph) and the unconflicted state by key, and the session asks only for what the second half of
//! the algorithm reads — the full conflicted set, one level of its auth events, the unconflicted events
//! at the keys its auth rules look up, and the power-levels chains (for the sender powers and the
//! mainline). Its cost follows the conflict, not the room's history or size.
//!
//! A requested event the host does not supply is an error naming it, as a `resolve` request
//! missing an auth event is.

use crate::auth::AuthEvent;
use crate::fast_hash::{FastMap, FastSet};
use crate::room_version::RoomVersion;

use std::collections::BTreeMap;

use crate::event_id::create_event_id_from_room_id;
use crate::room_version::StateResAlgorithm;

use super::error::ResolveError;
use super::graph::EventGraph;
use super::request::ResolveRequest;
use super::resolved::ResolvedState;
use super::{PreparedRequest, Resolver};

/// What a [`Session`] wants next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// These events (by id), each with its rejection status. Supply them with [`Session::supply`].
    Need(Vec<String>),
    /// The resolved state, with the graph that names it ([`ResolvedState::to_named`]).
    Done(Box<Resolution>),
}

/// A finished resolution: the events interned and the resolved state.
#[derive(Debug)]
pub struct Resolution {
    pub prepared: PreparedRequest,
    pub state: ResolvedState,
    /// Entries of a [`ConflictedSet`]'s base state that no rule read (never fetched, so not in the
    /// graph): they stand over `state` as they are. Empty for a session begun from state sets.
    pub unread_base: Vec<(String, String, String)>,
}

impl Resolution {
    /// `{type: {state_key: event_id}}`: the resolved state with the unread base entries over it.
    pub fn to_named(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut named = self.state.to_named(&self.prepared.graph);
        for (t, k, id) in &self.unread_base {
            named
                .entry(t.clone())
                .or_default()
                .insert(k.clone(), id.clone());
        }
        named
    }
}

/// The input of [`Session::begin_conflicted`]: what a host that indexes its rooms' auth chains
/// computes before the expensive half of state resolution v2 (Synapse's `resolve_events_with_store`
/// up to `_resolve_conflicted_set`).
#[derive(Debug, Clone, Default)]
pub struct ConflictedSet {
    /// The full conflicted set: every event of a conflicted key, the auth difference of the state
    /// sets and, for state resolution v2.1 (room version 12), the conflicted subgraph.
    pub events: Vec<String>,
    /// The unconflicted state as `(type, state_key, event_id)`: all of it, or at least the keys the
    /// auth rules of the full conflicted set look up and `(m.room.power_levels, "")`. Only the entries
    /// at those keys are asked for; the others pass to the answer as given.
    pub base_state: Vec<(String, String, String)>,
}

/// What a session resolves from.
#[derive(Debug)]
enum Goal {
    /// The state sets: their events and whole auth chains are needed.
    StateSets(Vec<Vec<String>>),
    /// The state sets and their auth difference: the sets' events are needed to split them by key,
    /// then the session goes on as [`Goal::Conflicted`].
    Split {
        state_sets: Vec<Vec<String>>,
        auth_difference: Vec<String>,
    },
    /// A full conflicted set and base state the host computed.
    Conflicted(Box<ConflictedGoal>),
}

/// The bookkeeping of a [`Session::begin_conflicted`] session.
#[derive(Debug, Default)]
struct ConflictedGoal {
    full: Vec<String>,
    in_full: FastSet<String>,
    /// The base state by type, then state key.
    base: FastMap<String, FastMap<String, String>>,
    /// Base events the rules read (asked for; in the graph at the end).
    base_read: FastSet<String>,
    /// Held or asked-for events whose auth events are wanted once they are held.
    expand: Vec<String>,
    expanded: FastSet<String>,
    /// Events on a power-levels chain whose power-levels auth event is not known yet.
    chain_pending: Vec<String>,
    chain: FastSet<String>,
    started: bool,
    create_asked: bool,
}

/// One host-driven resolution in progress.
#[derive(Debug)]
pub struct Session {
    version: &'static RoomVersion,
    goal: Goal,
    /// Every event received, in arrival order, and where each id is.
    events: Vec<AuthEvent>,
    by_id: FastMap<String, usize>,
    rejected: FastSet<String>,
    /// The ids of the last [`Step::Need`], not all supplied yet.
    wanted: Vec<String>,
    /// Every id ever asked for.
    asked: FastSet<String>,
    rounds: usize,
    done: bool,
}

impl Session {
    /// Starts a resolution of `state_sets` (each one event per `(type, state_key)`) in a room of
    /// `version`. `events` are any events the host ships up front (all of them, Dendrite-style, or
    /// none); `rejected` names those of `events` that were rejected.
    pub fn begin(
        version: &'static RoomVersion,
        state_sets: Vec<Vec<String>>,
        events: Vec<AuthEvent>,
        rejected: &[String],
    ) -> Result<(Session, Step), ResolveError> {
        Session::start(version, Goal::StateSets(state_sets), events, rejected)
    }

    /// Starts the second half of a v2 or v2.1 resolution from a full conflicted set and base state
    /// the host computed ([`ConflictedSet`]); the answer ([`Resolution::to_named`]) is the base state
    /// over the conflicted events that pass — with the whole unconflicted state as base, the resolved
    /// state. `events` and `rejected` as in [`Session::begin`]. Room version 1 has no such split.
    pub fn begin_conflicted(
        version: &'static RoomVersion,
        conflicted: ConflictedSet,
        events: Vec<AuthEvent>,
        rejected: &[String],
    ) -> Result<(Session, Step), ResolveError> {
        if version.state_res == StateResAlgorithm::V1 {
            return Err(ResolveError::Request(
                "room version 1 resolves from the state sets: begin with them".into(),
            ));
        }
        let goal = ConflictedGoal::new(conflicted)?;
        Session::start(version, Goal::Conflicted(Box::new(goal)), events, rejected)
    }

    /// Starts a v2 or v2.1 resolution of `state_sets` (event ids) with their auth difference as the
    /// host's auth-chain index computed it (for room version 12 with the conflicted subgraph, as
    /// Synapse's `get_auth_chain_difference` returns it when given the conflicted events). The
    /// session asks for the state sets' events (to split them by key), then only for what
    /// [`Session::begin_conflicted`] asks for: the cost follows the state's size and the conflict,
    /// never the auth chains. The answer is the resolved state. Room version 1 has no auth difference.
    pub fn begin_with_difference(
        version: &'static RoomVersion,
        state_sets: Vec<Vec<String>>,
        auth_difference: Vec<String>,
        events: Vec<AuthEvent>,
        rejected: &[String],
    ) -> Result<(Session, Step), ResolveError> {
        if version.state_res == StateResAlgorithm::V1 {
            return Err(ResolveError::Request(
                "room version 1 has no auth difference: begin with the state sets alone".into(),
            ));
        }
        let goal = Goal::Split {
            state_sets,
            auth_difference,
        };
        Session::start(version, goal, events, rejected)
    }

    fn start(
        version: &'static RoomVersion,
        goal: Goal,
        events: Vec<AuthEvent>,
        rejected: &[String],
    ) -> Result<(Session, Step), ResolveError> {
        let mut session = Session {
            version,
            goal,
            events: Vec::new(),
            by_id: FastMap::default(),
            rejected: FastSet::default(),
            wanted: Vec::new(),
            asked: FastSet::default(),
            rounds: 0,
            done: false,
        };
        session.take(events, rejected)?;
        let step = session.next_step()?;
        Ok((session, step))
    }

    /// Hands over events the last [`Step::Need`] asked for (more are accepted), `rejected` naming
    /// those of `events` that were rejected. Every event asked for must be among them.
    pub fn supply(
        &mut self,
        events: Vec<AuthEvent>,
        rejected: &[String],
    ) -> Result<Step, ResolveError> {
        self.take(events, rejected)?;
        if let Some(missing) = self.wanted.iter().find(|id| !self.by_id.contains_key(*id)) {
            return Err(ResolveError::UnknownEvent {
                event_id: missing.clone(),
                context: format!("the events asked for in round {}", self.rounds),
            });
        }
        self.next_step()
    }

    /// How many [`Step::Need`]s this session has asked.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The room version the session resolves in.
    pub fn version(&self) -> &'static RoomVersion {
        self.version
    }

    fn take(&mut self, events: Vec<AuthEvent>, rejected: &[String]) -> Result<(), ResolveError> {
        if self.done {
            return Err(ResolveError::Request(
                "the session is finished: begin another".into(),
            ));
        }
        for event in events {
            let id = event.event_id().to_owned();
            if self.by_id.contains_key(&id) {
                // Supplied twice (or up front and again): the first copy stands.
                continue;
            }
            self.by_id.insert(id, self.events.len());
            self.events.push(event);
        }
        for id in rejected {
            if !self.by_id.contains_key(id) {
                return Err(ResolveError::UnknownEvent {
                    event_id: id.clone(),
                    context: "`rejected` (it must name an event supplied)".into(),
                });
            }
            self.rejected.insert(id.clone());
        }
        Ok(())
    }

    /// The next batch of ids, or the resolution when nothing is missing.
    fn next_step(&mut self) -> Result<Step, ResolveError> {
        let mut need = Wanted {
            held: &self.by_id,
            asked: &self.asked,
            named: FastSet::default(),
            ids: Vec::new(),
        };
        match &mut self.goal {
            Goal::StateSets(state_sets) => {
                for set in state_sets.iter() {
                    for id in set {
                        need.want(id);
                    }
                }
                // Auth events of every event held: the chains are complete once this finds nothing.
                for event in &self.events {
                    for id in &event.pdu.auth_events {
                        need.want(id);
                    }
                }
            }
            Goal::Split {
                state_sets,
                auth_difference,
            } => {
                for set in state_sets.iter() {
                    for id in set {
                        need.want(id);
                    }
                }
                if need.ids.is_empty() {
                    // Every event of the sets is held: split them, then go on from the conflict.
                    let conflicted = split_by_key(
                        state_sets,
                        std::mem::take(auth_difference),
                        &self.events,
                        need.held,
                    )?;
                    let mut goal = Box::new(ConflictedGoal::new(conflicted)?);
                    goal.next(self.version, &self.events, &mut need);
                    self.goal = Goal::Conflicted(goal);
                }
            }
            Goal::Conflicted(goal) => goal.next(self.version, &self.events, &mut need),
        }
        let mut need = need.ids;
        if need.is_empty() {
            return self.finish().map(|r| Step::Done(Box::new(r)));
        }
        need.sort_unstable();
        self.asked.extend(need.iter().cloned());
        self.wanted.clone_from(&need);
        self.rounds += 1;
        Ok(Step::Need(need))
    }

    fn finish(&mut self) -> Result<Resolution, ResolveError> {
        self.done = true;
        let events = std::mem::take(&mut self.events);
        self.by_id.clear();
        let mut rejected: Vec<String> = self.rejected.iter().cloned().collect();
        rejected.sort_unstable();
        let goal = std::mem::replace(&mut self.goal, Goal::StateSets(Vec::new()));
        match goal {
            Goal::StateSets(state_sets) => {
                let request = ResolveRequest {
                    version: self.version,
                    events: Vec::new(),
                    state_sets,
                    rejected,
                };
                let prepared = request.prepare_with(events)?;
                let state = prepared.resolve(&mut Resolver::new())?;
                Ok(Resolution {
                    prepared,
                    state,
                    unread_base: Vec::new(),
                })
            }
            Goal::Conflicted(goal) => goal.finish(self.version, events, &self.rejected),
            Goal::Split { .. } => Err(ResolveError::Request(
                "internal: the state sets were never split".into(),
            )),
        }
    }
}

/// Splits state sets whose events are all held into the unconflicted state and the conflicted
/// events (spec v2 "Unconflicted state map": a key missing from a set is conflicted), and adds the
/// auth difference to the latter.
fn split_by_key(
    state_sets: &[Vec<String>],
    auth_difference: Vec<String>,
    events: &[AuthEvent],
    held: &FastMap<String, usize>,
) -> Result<ConflictedSet, ResolveError> {
    let mut by_key: BTreeMap<(&str, &str), Vec<Option<&str>>> = BTreeMap::new();
    for (i, set) in state_sets.iter().enumerate() {
        for id in set {
            let pdu = &events[held[id.as_str()]].pdu;
            let Some(state_key) = pdu.state_key.as_deref() else {
                return Err(ResolveError::NotStateEvent {
                    set: i,
                    event_id: id.clone(),
                });
            };
            let slots = by_key
                .entry((&pdu.event_type, state_key))
                .or_insert_with(|| vec![None; state_sets.len()]);
            if slots[i].is_some() {
                return Err(ResolveError::DuplicateKey {
                    set: i,
                    event_type: pdu.event_type.to_string(),
                    state_key: state_key.to_owned(),
                });
            }
            slots[i] = Some(id);
        }
    }
    let mut conflicted = ConflictedSet {
        events: auth_difference,
        base_state: Vec::new(),
    };
    for ((t, k), ids) in by_key {
        match ids[0] {
            Some(first) if ids.iter().all(|id| *id == Some(first)) => {
                conflicted
                    .base_state
                    .push((t.to_owned(), k.to_owned(), first.to_owned()));
            }
            _ => conflicted
                .events
                .extend(ids.iter().flatten().map(|id| (*id).to_owned())),
        }
    }
    Ok(conflicted)
}

/// One step's ids: those neither held, nor asked before, nor named already in this step.
struct Wanted<'s> {
    held: &'s FastMap<String, usize>,
    asked: &'s FastSet<String>,
    named: FastSet<String>,
    ids: Vec<String>,
}

impl Wanted<'_> {
    fn want(&mut self, id: &str) {
        if !self.held.contains_key(id) && !self.asked.contains(id) && self.named.insert(id.into()) {
            self.ids.push(id.to_owned());
        }
    }
}

impl ConflictedGoal {
    fn new(conflicted: ConflictedSet) -> Result<ConflictedGoal, ResolveError> {
        let mut goal = ConflictedGoal::default();
        for (t, k, id) in conflicted.base_state {
            let keys = goal.base.entry(t).or_default();
            if let Some(other) = keys.get(&k)
                && *other != id
            {
                return Err(ResolveError::Request(format!(
                    "`base_state` has two events for one key: {other} and {id}"
                )));
            }
            keys.insert(k, id);
        }
        for id in conflicted.events {
            if goal.in_full.insert(id.clone()) {
                goal.full.push(id);
            }
        }
        Ok(goal)
    }

    /// The ids the second half of the algorithm reads and the session does not hold, as far as the
    /// events held tell: the full conflicted set and the base power levels first; then, as events
    /// arrive, the auth events of the full conflicted set, the base events at the keys its auth rules
    /// look up, and each power-levels chain one level further.
    fn next(&mut self, version: &'static RoomVersion, events: &[AuthEvent], need: &mut Wanted<'_>) {
        let v2_1 = version.state_res == StateResAlgorithm::V2_1;
        if !self.started {
            self.started = true;
            for id in &self.full {
                need.want(id);
                self.expand.push(id.clone());
                if self.chain.insert(id.clone()) {
                    self.chain_pending.push(id.clone());
                }
            }
            // v2's checks start from the base state and its mainline may be the base power levels';
            // v2.1 starts from nothing and reads no base event.
            if !v2_1 && let Some(pl) = self.base_id("m.room.power_levels", "") {
                let pl = pl.to_owned();
                need.want(&pl);
                self.base_read.insert(pl.clone());
                if self.chain.insert(pl.clone()) {
                    self.chain_pending.push(pl);
                }
            }
        }
        let held = need.held;
        let get = |id: &str| held.get(id).map(|&i| &events[i]);
        // Room version 12 cites no create event: it is named by the room id.
        if version.room_id_from_create
            && !self.create_asked
            && let Some(any) = events.first()
        {
            self.create_asked = true;
            need.want(&create_event_id_from_room_id(&any.pdu.room_id));
        }
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for id in std::mem::take(&mut self.expand) {
                let Some(event) = get(&id) else {
                    still.push(id);
                    continue;
                };
                progressed = true;
                if !self.expanded.insert(id.clone()) {
                    continue;
                }
                for a in &event.pdu.auth_events {
                    need.want(a);
                }
                if !v2_1 && self.in_full.contains(&id) {
                    let mut read = Vec::new();
                    crate::auth::for_each_auth_type(event, |t, k| {
                        if let Some(b) = self.base_id(t, k) {
                            read.push(b.to_owned());
                        }
                    });
                    for b in read {
                        need.want(&b);
                        self.base_read.insert(b);
                    }
                }
            }
            self.expand = still;
            let mut still = Vec::new();
            for id in std::mem::take(&mut self.chain_pending) {
                let Some(event) = get(&id) else {
                    still.push(id);
                    continue;
                };
                let auth: Vec<&AuthEvent> = event
                    .pdu
                    .auth_events
                    .iter()
                    .filter_map(|a| get(a))
                    .collect();
                if auth.len() < event.pdu.auth_events.len() {
                    // Its auth events are asked for; the chain goes on once they are here.
                    if self.expanded.insert(id.clone()) {
                        for a in &event.pdu.auth_events {
                            need.want(a);
                        }
                    }
                    still.push(id);
                    continue;
                }
                progressed = true;
                let parent = auth.iter().find(|a| {
                    a.pdu.event_type == "m.room.power_levels"
                        && a.pdu.state_key.as_deref() == Some("")
                });
                if let Some(parent) = parent {
                    let p = parent.event_id().to_owned();
                    if self.chain.insert(p.clone()) {
                        self.chain_pending.push(p);
                    }
                }
            }
            self.chain_pending.extend(still);
            if !progressed {
                break;
            }
        }
    }

    fn base_id(&self, event_type: &str, state_key: &str) -> Option<&str> {
        self.base
            .get(event_type)?
            .get(state_key)
            .map(String::as_str)
    }

    fn finish(
        self,
        version: &'static RoomVersion,
        events: Vec<AuthEvent>,
        rejected: &FastSet<String>,
    ) -> Result<Resolution, ResolveError> {
        let graph = EventGraph::build_partial(version, events, &|id| rejected.contains(id))?;
        let mut full = Vec::with_capacity(self.full.len());
        for id in &self.full {
            full.push(graph.idx(id).ok_or_else(|| ResolveError::UnknownEvent {
                event_id: id.clone(),
                context: "the full conflicted set".into(),
            })?);
        }
        let mut base = Vec::new();
        let mut unread_base = Vec::new();
        for (t, keys) in self.base {
            for (k, id) in keys {
                let read = match graph.idx(&id) {
                    Some(e) if self.base_read.contains(&id) => e,
                    _ => {
                        unread_base.push((t.clone(), k, id));
                        continue;
                    }
                };
                let key = graph
                    .key_of(read)
                    .filter(|&key| graph.keys().resolve(key) == (&*t, &*k));
                let Some(key) = key else {
                    return Err(ResolveError::Request(format!(
                        "`base_state` names {id} at ({t}, {k}), which is not that event's state key"
                    )));
                };
                base.push((key, read));
            }
        }
        base.sort_unstable();
        unread_base.sort_unstable();
        let state = Resolver::new().resolve_conflicted(&graph, &full, &base)?;
        Ok(Resolution {
            prepared: PreparedRequest {
                graph,
                state_sets: Vec::new(),
            },
            state,
            unread_base,
        })
    }
}
