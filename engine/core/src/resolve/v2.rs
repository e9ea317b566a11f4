//! State resolution v2 (room versions 2–11, spec `rooms/fragments/v2-state-res.md`) and v2.1 (room
//! version 12, `rooms/v12.md` "State resolution", MSC4297).
//!
//! Steps: split the state sets into unconflicted state and the conflicted set; full conflicted set =
//! conflicted ∪ auth difference (∪ conflicted state subgraph in v2.1); power events and their auth
//! ancestors inside the full conflicted set, in reverse topological power order; iterative auth checks
//! from the unconflicted state (v2) or the empty state (v2.1); the rest in mainline order, checked on top;
//! finally the unconflicted state overrides.

use std::cmp::Reverse;

use rayon::prelude::*;

use crate::auth::{self, AuthEvent, AuthState, PowerLevel};

use super::auth_chain::Reachability;
use super::error::ResolveError;
use super::graph::{EventGraph, EventIdx, TypeStateKeyIdx, name_hash};
use super::mainline::MainlineSorter;
use super::resolved::ResolvedState;
use super::topo::kahn_sort;

const NONE: u32 = u32::MAX;
/// Below this many events the reachability passes take microseconds: running them on two threads costs
/// more than it saves.
const PARALLEL_MIN_EVENTS: usize = 4096;

/// Per-resolution buffers, kept by the [`Resolver`] between resolutions.
#[derive(Debug, Default)]
pub struct Scratch {
    tally: Vec<KeyTally>,
    event_mark: Vec<u8>,
    local: Vec<u32>,
    reach_diff: Reachability,
    reach_sub: Reachability,
    diff: Vec<EventIdx>,
    subgraph: Vec<EventIdx>,
    mainline: MainlineSorter,
    state: DenseState,
}

// Bits of `Scratch::event_mark`.
const SEEN: u8 = 1;
const FCS: u8 = 2;
const POWER_SET: u8 = 4;

/// The unconflicted state and the conflicted events of some state sets.
pub(crate) struct Split {
    pub unconflicted: Vec<(TypeStateKeyIdx, EventIdx)>,
    pub conflicted: Vec<EventIdx>,
}

/// Per key, while splitting: the first event seen, in how many sets that event is the key's event, and
/// the last set that had the key (to catch duplicates). One record per key keeps the pass to one cache
/// line per key.
#[derive(Debug, Clone, Copy)]
struct KeyTally {
    value: u32,
    agree: u32,
    last_set: u32,
}

const FRESH: KeyTally = KeyTally {
    value: NONE,
    agree: 0,
    last_set: NONE,
};

/// Splits state sets: a key whose event is the same in every set is unconflicted; every event of any other
/// key is conflicted (a key missing from one set is conflicted, spec v2 "Unconflicted state map").
/// Unconflicted entries come out in key order; the conflicted events in no particular order (every
/// later step treats them as a set).
pub(crate) fn split(
    scratch: &mut Scratch,
    graph: &EventGraph,
    state_sets: &[&[EventIdx]],
) -> Result<Split, ResolveError> {
    let nkeys = graph.keys().len();
    scratch.tally.clear();
    scratch.tally.resize(nkeys, FRESH);
    reset_marks(&mut scratch.event_mark, graph.len());
    let tally = &mut scratch.tally;
    let marks = &mut scratch.event_mark;
    // Events that differ from their key's first-seen event are conflicted as soon as they are seen; the
    // first-seen events of keys without full agreement are added by the pass over the tallies below, so
    // the sets are read once.
    let mut conflicted: Vec<EventIdx> = Vec::new();
    for (i, set) in state_sets.iter().enumerate() {
        for &e in set.iter() {
            let Some(k) = graph.key_of(e) else {
                for &c in &conflicted {
                    marks[c.ix()] = 0;
                }
                return Err(ResolveError::NotStateEvent {
                    set: i,
                    event_id: graph.event_id(e).to_owned(),
                });
            };
            let t = &mut tally[k.ix()];
            if t.last_set == i as u32 {
                let (t, s) = graph.keys().resolve(k);
                for &c in &conflicted {
                    marks[c.ix()] = 0;
                }
                return Err(ResolveError::DuplicateKey {
                    set: i,
                    event_type: t.to_owned(),
                    state_key: s.to_owned(),
                });
            }
            t.last_set = i as u32;
            if t.value == NONE {
                t.value = e.0;
            }
            if t.value == e.0 {
                t.agree += 1;
            } else if marks[e.ix()] & SEEN == 0 {
                marks[e.ix()] |= SEEN;
                conflicted.push(e);
            }
        }
    }
    let nsets = state_sets.len() as u32;
    let mut unconflicted = Vec::new();
    for (k, t) in tally.iter().enumerate() {
        if t.value == NONE {
            continue;
        }
        if t.agree == nsets {
            unconflicted.push((TypeStateKeyIdx(k as u32), EventIdx(t.value)));
        } else if marks[t.value as usize] & SEEN == 0 {
            marks[t.value as usize] |= SEEN;
            conflicted.push(EventIdx(t.value));
        }
    }
    for &e in &conflicted {
        marks[e.ix()] = 0;
    }
    Ok(Split {
        unconflicted,
        conflicted,
    })
}

fn reset_marks(marks: &mut Vec<u8>, n: usize) {
    if marks.len() < n {
        marks.resize(n, 0);
    }
}

/// A state map over dense keys, with the list of keys set (for cheap reset and iteration).
#[derive(Debug, Default)]
pub(crate) struct DenseState {
    value: Vec<u32>,
    set_keys: Vec<TypeStateKeyIdx>,
}

impl DenseState {
    pub(crate) fn reset(&mut self, nkeys: usize) {
        for k in self.set_keys.drain(..) {
            self.value[k.ix()] = NONE;
        }
        if self.value.len() < nkeys {
            self.value.resize(nkeys, NONE);
        }
    }

    pub(crate) fn get(&self, k: TypeStateKeyIdx) -> Option<EventIdx> {
        match self.value.get(k.ix()) {
            Some(&v) if v != NONE => Some(EventIdx(v)),
            _ => None,
        }
    }

    pub(crate) fn set(&mut self, k: TypeStateKeyIdx, e: EventIdx) {
        if self.value[k.ix()] == NONE {
            self.set_keys.push(k);
        }
        self.value[k.ix()] = e.0;
    }

    /// The entries in key order: a scan of the value array when most keys are set (the usual case for a
    /// room's full state), else a sort of the set keys.
    pub(crate) fn sorted_entries(&self) -> Vec<(TypeStateKeyIdx, EventIdx)> {
        let mut out = Vec::with_capacity(self.set_keys.len());
        if self.set_keys.len() * 8 >= self.value.len() {
            for (k, &v) in self.value.iter().enumerate() {
                if v != NONE {
                    out.push((TypeStateKeyIdx(k as u32), EventIdx(v)));
                }
            }
        } else {
            out.extend(
                self.set_keys
                    .iter()
                    .map(|&k| (k, EventIdx(self.value[k.ix()]))),
            );
            out.sort_unstable();
        }
        out
    }
}

/// The state an event is checked against during iterative auth checks: its own non-rejected auth events,
/// overridden, for the keys its auth rules look at, by the non-rejected events of the partial state.
///
/// Filled with integers; the auth rules' string lookups compare a hash of the asked-for key against the
/// entries' precomputed [`name_hash`]es first, so a lookup costs one short hash and no map probe.
pub(crate) struct CheckState<'g> {
    graph: &'g EventGraph,
    entries: Vec<(TypeStateKeyIdx, EventIdx, u64)>,
}

impl<'g> CheckState<'g> {
    pub(crate) fn new(graph: &'g EventGraph) -> Self {
        CheckState {
            graph,
            entries: Vec::with_capacity(12),
        }
    }

    pub(crate) fn put(&mut self, k: TypeStateKeyIdx, e: EventIdx) {
        match self.entries.iter_mut().find(|(key, _, _)| *key == k) {
            Some(slot) => slot.1 = e,
            None => self.entries.push((k, e, self.graph.keys().key_hash(k))),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl AuthState for CheckState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        let h = name_hash(event_type, state_key);
        let keys = self.graph.keys();
        self.entries
            .iter()
            .find(|&&(k, _, kh)| kh == h && keys.resolve(k) == (event_type, state_key))
            .map(|&(_, e, _)| self.graph.event(e))
    }
}

/// The room's create event, needed by every auth check.
pub(crate) fn create_event(graph: &EventGraph) -> Result<&AuthEvent, ResolveError> {
    graph
        .create()
        .map(|c| graph.event(c))
        .ok_or(ResolveError::MissingCreate)
}

/// Iterative auth checks (spec v2 "Iterative auth checks"), following Synapse: events known to be rejected
/// are never admitted, and rejected events are never used as auth events.
fn iterative_auth_checks(
    graph: &EventGraph,
    events: &[EventIdx],
    state: &mut DenseState,
    create: &AuthEvent,
) {
    let mut check = CheckState::new(graph);
    for &e in events {
        let node = graph.node(e);
        let Some(key) = node.key else { continue };
        if node.rejected {
            continue;
        }
        let is_create = Some(e) == graph.create();
        if !is_create {
            check.clear();
            for &a in graph.auth_events(e) {
                let an = graph.node(a);
                if let (false, Some(k)) = (an.rejected, an.key) {
                    check.put(k, a);
                }
            }
            graph.for_each_auth_key(e, |k| {
                if let Some(cur) = state.get(k)
                    && !graph.node(cur).rejected
                {
                    check.put(k, cur);
                }
            });
            if auth::check_state_dependent(&node.event, &check, create).is_err() {
                continue;
            }
        }
        state.set(key, e);
    }
}

/// Sender power for the reverse topological power ordering: from the power-levels event among the event's
/// own auth events (Synapse `_get_power_level_for_sender`, ruma `power_level_for_sender`).
fn sender_power(graph: &EventGraph, e: EventIdx, create: &AuthEvent) -> PowerLevel {
    let node = graph.node(e);
    auth::sender_power_level(&node.event, node.pl_auth.map(|p| graph.event(p)), create)
}

pub(crate) fn resolve(
    s: &mut Scratch,
    parallel: bool,
    graph: &EventGraph,
    state_sets: &[&[EventIdx]],
    v2_1: bool,
    given_difference: Option<&[EventIdx]>,
) -> Result<ResolvedState, ResolveError> {
    let Split {
        unconflicted,
        conflicted,
    } = split(s, graph, state_sets)?;
    if conflicted.is_empty() {
        return Ok(ResolvedState::from_entries(unconflicted));
    }
    // Checked before the reachability passes, which are the expensive part.
    create_event(graph)?;

    // Full conflicted set: conflicted ∪ auth difference (∪ conflicted state subgraph in v2.1).
    {
        let Scratch {
            reach_diff,
            reach_sub,
            diff,
            subgraph,
            ..
        } = &mut *s;
        let mut do_diff = || match given_difference {
            Some(given) => {
                diff.clear();
                diff.extend_from_slice(given);
                diff.sort_unstable();
                diff.dedup();
            }
            None => reach_diff.auth_difference(graph, state_sets, diff),
        };
        let mut do_sub = || {
            if v2_1 {
                reach_sub.conflicted_subgraph(graph, &conflicted, subgraph);
            } else {
                subgraph.clear();
            }
        };
        if parallel && v2_1 && graph.len() >= PARALLEL_MIN_EVENTS {
            rayon::join(do_diff, do_sub);
        } else {
            do_diff();
            do_sub();
        }
    }
    let mut full: Vec<EventIdx> =
        Vec::with_capacity(conflicted.len() + s.diff.len() + s.subgraph.len());
    full.extend_from_slice(&conflicted);
    full.extend_from_slice(&s.diff);
    full.extend_from_slice(&s.subgraph);
    resolve_full_conflicted_set(s, parallel, graph, &full, &unconflicted, v2_1)
}

/// The second half of v2 and v2.1, from the full conflicted set (`full`: conflicted events, auth
/// difference and, in v2.1, the conflicted subgraph; duplicates allowed) and the base state `base`
/// (the unconflicted state, or the part of it the auth checks and the mainline read): the power events
/// sorted and checked, the rest in mainline order, then `base` over the result. This is Synapse's
/// `_resolve_conflicted_set` followed by its overlay of the unconflicted state; for v2.1 the checks
/// start from the empty state. `base` holds one event per key.
pub(crate) fn resolve_full_conflicted_set(
    s: &mut Scratch,
    parallel: bool,
    graph: &EventGraph,
    full: &[EventIdx],
    base: &[(TypeStateKeyIdx, EventIdx)],
    v2_1: bool,
) -> Result<ResolvedState, ResolveError> {
    let create = create_event(graph)?;
    reset_marks(&mut s.event_mark, graph.len());
    let mut fcs: Vec<EventIdx> = Vec::with_capacity(full.len());
    for &e in full {
        if s.event_mark[e.ix()] & FCS == 0 {
            s.event_mark[e.ix()] |= FCS;
            fcs.push(e);
        }
    }

    // Power events and their auth ancestors reachable through edges inside the full conflicted set.
    let mut power: Vec<EventIdx> = Vec::new();
    let mut stack: Vec<EventIdx> = fcs
        .iter()
        .copied()
        .filter(|&e| graph.node(e).power)
        .collect();
    while let Some(e) = stack.pop() {
        if s.event_mark[e.ix()] & POWER_SET != 0 {
            continue;
        }
        s.event_mark[e.ix()] |= POWER_SET;
        power.push(e);
        for &a in graph.auth_events(e) {
            if s.event_mark[a.ix()] & (FCS | POWER_SET) == FCS {
                stack.push(a);
            }
        }
    }
    power.sort_unstable();

    // Reverse topological power ordering: Kahn with key (higher sender power, lower ts, smaller id).
    let pls: Vec<PowerLevel> = if parallel && power.len() >= 512 {
        power
            .par_iter()
            .map(|&e| sender_power(graph, e, create))
            .collect()
    } else {
        power
            .iter()
            .map(|&e| sender_power(graph, e, create))
            .collect()
    };
    let mut by_id: Vec<u32> = (0..power.len() as u32).collect();
    by_id.sort_unstable_by(|&a, &b| {
        graph
            .event_id(power[a as usize])
            .cmp(graph.event_id(power[b as usize]))
    });
    let mut id_rank = vec![0u32; power.len()];
    for (rank, &i) in by_id.iter().enumerate() {
        id_rank[i as usize] = rank as u32;
    }
    if s.local.len() < graph.len() {
        s.local.resize(graph.len(), NONE);
    }
    for (i, &e) in power.iter().enumerate() {
        s.local[e.ix()] = i as u32;
    }
    let local = &s.local;
    let marks = &s.event_mark;
    let order = kahn_sort(
        power.len(),
        |i, out| {
            for &a in graph.auth_events(power[i]) {
                if marks[a.ix()] & POWER_SET != 0 {
                    out.push(local[a.ix()]);
                }
            }
        },
        |i| {
            (
                Reverse(pls[i]),
                graph.node(power[i]).origin_server_ts,
                id_rank[i],
            )
        },
    );
    let sorted_power: Vec<EventIdx> = order.iter().map(|&i| power[i as usize]).collect();

    // Iterative auth checks over the power events.
    let nkeys = graph.keys().len();
    s.state.reset(nkeys);
    if !v2_1 {
        for &(k, e) in base {
            s.state.set(k, e);
        }
    }
    iterative_auth_checks(graph, &sorted_power, &mut s.state, create);

    // The rest in mainline order against the resolved power levels.
    let mut rest: Vec<EventIdx> = fcs
        .iter()
        .copied()
        .filter(|e| s.event_mark[e.ix()] & POWER_SET == 0)
        .collect();
    let resolved_pl = graph.pl_key.and_then(|k| s.state.get(k));
    s.mainline.sort(graph, resolved_pl, &mut rest);
    iterative_auth_checks(graph, &rest, &mut s.state, create);

    for &(k, e) in base {
        s.state.set(k, e);
    }
    for &e in &fcs {
        s.event_mark[e.ix()] = 0;
        s.local[e.ix()] = NONE;
    }
    for &e in &power {
        s.event_mark[e.ix()] = 0;
        s.local[e.ix()] = NONE;
    }
    Ok(ResolvedState::from_sorted(s.state.sorted_entries()))
}
