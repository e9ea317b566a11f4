//! The `roomgraph resolve` request: `{"room_version": "11", "events": [PDU, ...],
//! "state_sets": [["$id", ...], ...], "rejected": ["$id", ...]}`.
//!
//! `events` holds every event the state sets name plus all their auth ancestors (federation format);
//! each state set lists one event per `(type, state_key)`; `rejected` lists events known to be rejected.
//! Parsing (JSON, PDU checks, event-id hashing) is separate from [`ResolveRequest::prepare`] (interning and
//! graph building) and [`Resolver::resolve`](super::Resolver::resolve), so callers can time the latter two.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::AuthEvent;
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;

use super::{EventGraph, EventIdx, ResolveError, ResolvedState, Resolver};

#[derive(Deserialize)]
struct RawRequest<'a> {
    room_version: String,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    state_sets: Vec<Vec<String>>,
    #[serde(default)]
    rejected: Vec<String>,
}

/// A parsed resolution request.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub version: &'static RoomVersion,
    pub events: Vec<AuthEvent>,
    pub state_sets: Vec<Vec<String>>,
    pub rejected: Vec<String>,
}

/// A request turned into integers: the event graph and the state sets as indices.
#[derive(Debug)]
pub struct PreparedRequest {
    pub graph: EventGraph,
    pub state_sets: Vec<Vec<EventIdx>>,
}

impl PreparedRequest {
    pub fn resolve(&self, resolver: &mut Resolver) -> Result<ResolvedState, ResolveError> {
        let sets: Vec<&[EventIdx]> = self.state_sets.iter().map(Vec::as_slice).collect();
        resolver.resolve(&self.graph, &sets)
    }
}

impl ResolveRequest {
    /// Parses the request document and every PDU in it (computing event ids).
    pub fn parse(input: &[u8]) -> Result<ResolveRequest, ResolveError> {
        let raw: RawRequest<'_> = serde_json::from_slice(input)
            .map_err(|e| ResolveError::Request(format!("not a resolve request: {e}")))?;
        let version = RoomVersion::from_id(&raw.room_version)
            .map_err(|e| ResolveError::Request(e.to_string()))?;
        let events: Vec<AuthEvent> = raw
            .events
            .par_iter()
            .enumerate()
            .map(|(i, ev)| {
                Pdu::parse(ev.get().as_bytes(), version)
                    .map(|pdu| AuthEvent::new(pdu.into_owned()))
                    .map_err(|e| ResolveError::Request(format!("events[{i}]: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(ResolveRequest {
            version,
            events,
            state_sets: raw.state_sets,
            rejected: raw.rejected,
        })
    }

    /// Interns `events` (normally a clone of `self.events`) and the state sets.
    pub fn prepare_with(&self, events: Vec<AuthEvent>) -> Result<PreparedRequest, ResolveError> {
        let rejected: HashSet<&str> = self.rejected.iter().map(String::as_str).collect();
        let graph = EventGraph::build(self.version, events, &|id| rejected.contains(id))?;
        for id in &self.rejected {
            if graph.idx(id).is_none() {
                return Err(ResolveError::UnknownEvent {
                    event_id: id.clone(),
                    context: "`rejected`".into(),
                });
            }
        }
        let mut state_sets = Vec::with_capacity(self.state_sets.len());
        for (i, set) in self.state_sets.iter().enumerate() {
            let mut ids = Vec::with_capacity(set.len());
            for id in set {
                let e = graph.idx(id).ok_or_else(|| ResolveError::UnknownEvent {
                    event_id: id.clone(),
                    context: format!("state set {i}"),
                })?;
                ids.push(e);
            }
            state_sets.push(ids);
        }
        Ok(PreparedRequest { graph, state_sets })
    }

    pub fn prepare(&self) -> Result<PreparedRequest, ResolveError> {
        self.prepare_with(self.events.clone())
    }

    /// Prepares and resolves; returns the graph (to name the result) and the resolved state.
    pub fn resolve(&self) -> Result<(PreparedRequest, ResolvedState), ResolveError> {
        let prepared = self.prepare()?;
        let state = prepared.resolve(&mut Resolver::new())?;
        Ok((prepared, state))
    }
}
