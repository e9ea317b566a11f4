//! State resolution for every room version: v1 (room version 1), v2 (room versions 2–11) and v2.1 (room
//! version 12, MSC4297). Pure: the caller hands over the events (an [`EventGraph`]) and the state sets and
//! gets the resolved state map back.
//!
//! Data flow: PDUs → [`AuthEvent`](crate::auth::AuthEvent) → [`EventGraph`] (dense [`EventIdx`] /
//! [`TypeStateKeyIdx`], auth edges in topological order) → [`Resolver::resolve`] → [`ResolvedState`].
//! Where the spec is ambiguous the engine follows Synapse; every such choice is listed in
//! `docs/state-resolution.md`.
//!
//! Modules: `graph` (the event graph and its interners), `auth_chain` (auth difference and conflicted subgraph by linear
//! passes), `chain_cover` (the index of long-lived graphs), `topo` (Kahn's algorithm with a heap),
//! `mainline` (memoised mainline ordering), `v2` (v2 and v2.1), `v1`, `request` (the `roomgraph
//! resolve` input format). Their public items are re-exported here.

mod auth_chain;
mod chain_cover;
mod error;
mod graph;
mod mainline;
mod request;
mod resolved;
mod session;
mod topo;
mod v1;
mod v2;

pub use auth_chain::Reachability;
pub use chain_cover::{ChainCover, ChainError, ChainPos, Closure, Inserted, Reach};
pub use error::ResolveError;
pub use graph::{
    EventGraph, EventIdx, EventNode, NameIdx, StateKeyInterner, TypeStateKeyIdx, is_power_event,
};
pub use request::{PreparedRequest, ResolveRequest};
pub use resolved::ResolvedState;
pub use session::{ConflictedSet, Resolution, Session, Step};

use crate::room_version::StateResAlgorithm;

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
            StateResAlgorithm::V2 => v2::resolve(
                &mut self.scratch,
                self.options.parallel,
                graph,
                state_sets,
                false,
                None,
            ),
            StateResAlgorithm::V2_1 => v2::resolve(
                &mut self.scratch,
                self.options.parallel,
                graph,
                state_sets,
                true,
                None,
            ),
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
            StateResAlgorithm::V2 => v2::resolve(
                &mut self.scratch,
                self.options.parallel,
                graph,
                state_sets,
                false,
                Some(auth_difference),
            ),
            StateResAlgorithm::V2_1 => v2::resolve(
                &mut self.scratch,
                self.options.parallel,
                graph,
                state_sets,
                true,
                Some(auth_difference),
            ),
        }
    }

    /// The second half of v2 and v2.1 on a full conflicted set the caller computed: `full_conflicted_set`
    /// is the conflicted events, the auth difference of the state sets and, in v2.1, the conflicted
    /// subgraph; `base` is the unconflicted state (one event per key), of which only the keys the auth
    /// rules of the full conflicted set read and the power levels are used. The result is `base` over
    /// the conflicted events that pass, Synapse's `_resolve_conflicted_set` with its overlay; laid
    /// under the whole unconflicted state it is [`Resolver::resolve`]'s answer on the sets. Needs only
    /// the events of the full conflicted set, their auth events, the base events at the keys read and
    /// the power-levels chains of all these, so its cost follows the conflict, not the room. Room
    /// version 1 has no such split: [`ResolveError::Request`].
    pub fn resolve_conflicted(
        &mut self,
        graph: &EventGraph,
        full_conflicted_set: &[EventIdx],
        base: &[(TypeStateKeyIdx, EventIdx)],
    ) -> Result<ResolvedState, ResolveError> {
        let v2_1 = match graph.version().state_res {
            StateResAlgorithm::V1 => {
                return Err(ResolveError::Request(
                    "room version 1 resolves from the state sets, not from a conflicted set".into(),
                ));
            }
            StateResAlgorithm::V2 => false,
            StateResAlgorithm::V2_1 => true,
        };
        if full_conflicted_set.is_empty() {
            return Ok(ResolvedState::from_entries(base.to_vec()));
        }
        v2::resolve_full_conflicted_set(
            &mut self.scratch,
            self.options.parallel,
            graph,
            full_conflicted_set,
            base,
            v2_1,
        )
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
