//! State resolution for every room version: v1 (room version 1), v2 (room versions 2–11) and v2.1 (room
//! version 12, MSC4297). Pure: the caller hands over the events (an [`EventGraph`]) and the state sets and
//! gets the resolved state map back.
//!
//! Data flow: PDUs → [`AuthEvent`](crate::auth::AuthEvent) → [`EventGraph`] (dense [`EventIdx`] /
//! [`StateKeyIdx`], auth edges in topological order) → [`Resolver::resolve`] → [`ResolvedState`].
//! Where the spec is ambiguous the engine follows Synapse; every such choice is listed in
//! `docs/state-resolution.md`.
//!
//! Modules: [`intern`] (the graph), [`auth_chain`] (auth difference and conflicted subgraph by linear passes), [`chain_cover`] (the index of long-lived graphs),
//! [`topo`] (Kahn's algorithm with a heap), [`mainline`] (memoised mainline ordering), [`v2`] (v2 and
//! v2.1), [`v1`], [`request`] (the `roomgraph resolve` input format).

pub mod auth_chain;
pub mod chain_cover;
pub mod intern;
pub mod mainline;
pub mod request;
pub mod topo;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;

pub use chain_cover::ChainCover;
pub use intern::{EventGraph, EventIdx, NameIdx, StateKeyIdx};
pub use request::ResolveRequest;

use crate::room_version::StateResAlgorithm;

/// Why a resolution request cannot be carried out. Each variant names the event or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("resolve: event {0} is listed twice")]
    DuplicateEvent(String),
    #[error("resolve: event {event_id} belongs to room {room_id}, not {expected}")]
    WrongRoom {
        event_id: String,
        room_id: String,
        expected: String,
    },
    #[error("resolve: auth event {auth_event_id} of event {event_id} is missing from `events`")]
    MissingAuthEvent {
        event_id: String,
        auth_event_id: String,
    },
    #[error("resolve: the auth events form a cycle through event {0}")]
    AuthCycle(String),
    #[error("resolve: {context} names event {event_id}, which is not in `events`")]
    UnknownEvent { event_id: String, context: String },
    #[error("resolve: state set {set} lists event {event_id}, which is not a state event")]
    NotStateEvent { set: usize, event_id: String },
    #[error("resolve: state set {set} has two events for ({event_type}, {state_key:?})")]
    DuplicateKey {
        set: usize,
        event_type: String,
        state_key: String,
    },
    #[error("resolve: the room's m.room.create event is not among the events")]
    MissingCreate,
    #[error("resolve: invalid request: {0}")]
    Request(String),
}

/// A resolved state map: one event per `(type, state_key)`, sorted by key index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedState {
    entries: Vec<(StateKeyIdx, EventIdx)>,
}

impl ResolvedState {
    pub fn from_entries(mut entries: Vec<(StateKeyIdx, EventIdx)>) -> ResolvedState {
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        ResolvedState { entries }
    }

    /// From entries already sorted by key with distinct keys (checked in debug builds).
    pub(crate) fn from_sorted(entries: Vec<(StateKeyIdx, EventIdx)>) -> ResolvedState {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        ResolvedState { entries }
    }

    pub fn get(&self, key: StateKeyIdx) -> Option<EventIdx> {
        self.entries
            .binary_search_by_key(&key, |e| e.0)
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// The event for `(event_type, state_key)`, looked up through the graph's key interner.
    pub fn get_by_name(
        &self,
        graph: &EventGraph,
        event_type: &str,
        state_key: &str,
    ) -> Option<EventIdx> {
        self.get(graph.keys().get(event_type, state_key)?)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (StateKeyIdx, EventIdx)> + '_ {
        self.entries.iter().copied()
    }

    /// The event indices, in key order (usable as a state set of a later resolution).
    pub fn events(&self) -> Vec<EventIdx> {
        self.entries.iter().map(|e| e.1).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `{type: {state_key: event_id}}` with strings from `graph`, sorted (the CLI output shape).
    pub fn to_named(&self, graph: &EventGraph) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (k, e) in self.iter() {
            let (t, s) = graph.keys().resolve(k);
            out.entry(t.to_owned())
                .or_default()
                .insert(s.to_owned(), graph.event_id(e).to_owned());
        }
        out
    }
}

/// Options for one resolution.
#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions {
    /// Run independent sub-steps on the current rayon pool. Results are identical either way.
    pub parallel: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions { parallel: true }
    }
}

/// A state resolver with scratch buffers reused across resolutions (allocation per resolution, not per
/// event). Not shared between threads; create one per worker.
#[derive(Debug, Default)]
pub struct Resolver {
    pub(crate) options: ResolveOptions,
    pub(crate) scratch: v2::Scratch,
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver::default()
    }

    pub fn with_options(options: ResolveOptions) -> Resolver {
        Resolver {
            options,
            scratch: v2::Scratch::default(),
        }
    }

    /// Resolves `state_sets` (each one event per `(type, state_key)`) with the algorithm of the graph's
    /// room version.
    pub fn resolve(
        &mut self,
        graph: &EventGraph,
        state_sets: &[&[EventIdx]],
    ) -> Result<ResolvedState, ResolveError> {
        match graph.version().state_res {
            StateResAlgorithm::V1 => v1::resolve(graph, state_sets),
            StateResAlgorithm::V2 => v2::resolve(self, graph, state_sets, false, None),
            StateResAlgorithm::V2_1 => v2::resolve(self, graph, state_sets, true, None),
        }
    }

    /// [`Resolver::resolve`] with the auth difference supplied by the caller instead of computed from
    /// `state_sets`. For callers that know more about the sets than the sets show: the store's ingest
    /// path passes only the conflicted entries plus the unconflicted entries the auth checks can read,
    /// and computes the difference of the *full* sets from its persisted auth-chain index. The result is
    /// that of [`Resolver::resolve`] on the full sets, at the conflicted keys, provided `auth_difference`
    /// is the full sets' difference. Room version 1 (no auth difference in its algorithm) ignores it.
    pub fn resolve_with_auth_difference(
        &mut self,
        graph: &EventGraph,
        state_sets: &[&[EventIdx]],
        auth_difference: &[EventIdx],
    ) -> Result<ResolvedState, ResolveError> {
        match graph.version().state_res {
            StateResAlgorithm::V1 => v1::resolve(graph, state_sets),
            StateResAlgorithm::V2 => {
                v2::resolve(self, graph, state_sets, false, Some(auth_difference))
            }
            StateResAlgorithm::V2_1 => {
                v2::resolve(self, graph, state_sets, true, Some(auth_difference))
            }
        }
    }
}

/// Resolves many independent requests on the same graph in parallel (one [`Resolver`] per rayon worker).
/// Each result is the one a single-threaded [`Resolver::resolve`] gives.
pub fn resolve_many(
    graph: &EventGraph,
    batches: &[Vec<Vec<EventIdx>>],
) -> Vec<Result<ResolvedState, ResolveError>> {
    use rayon::prelude::*;
    batches
        .par_iter()
        .map_init(
            || Resolver::with_options(ResolveOptions { parallel: false }),
            |resolver, sets| {
                let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
                resolver.resolve(graph, &refs)
            },
        )
        .collect()
}

/// Resolves `state_sets` with a fresh [`Resolver`].
pub fn resolve(
    graph: &EventGraph,
    state_sets: &[&[EventIdx]],
) -> Result<ResolvedState, ResolveError> {
    Resolver::new().resolve(graph, state_sets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_generator::{RoomConfig, generate};
    use crate::room_version::RoomVersion;

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
