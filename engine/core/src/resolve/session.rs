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
//! A requested event the host does not supply is an error naming it, as a `resolve` request
//! missing an auth event is.

use crate::auth::AuthEvent;
use crate::fast_hash::{FastMap, FastSet};
use crate::room_version::RoomVersion;

use super::error::ResolveError;
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
}

/// One host-driven resolution in progress.
#[derive(Debug)]
pub struct Session {
    version: &'static RoomVersion,
    state_sets: Vec<Vec<String>>,
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
        let mut session = Session {
            version,
            state_sets,
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
        let mut need: Vec<String> = Vec::new();
        let mut named = FastSet::default();
        let mut want = |id: &str, need: &mut Vec<String>| {
            if !self.by_id.contains_key(id)
                && !self.asked.contains(id)
                && named.insert(id.to_owned())
            {
                need.push(id.to_owned());
            }
        };
        for set in &self.state_sets {
            for id in set {
                want(id, &mut need);
            }
        }
        // Auth events of every event held: the chains are complete once this finds nothing.
        for event in &self.events {
            for id in &event.pdu.auth_events {
                want(id, &mut need);
            }
        }
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
        let request = ResolveRequest {
            version: self.version,
            events: Vec::new(),
            state_sets: std::mem::take(&mut self.state_sets),
            rejected,
        };
        let prepared = request.prepare_with(events)?;
        let state = prepared.resolve(&mut Resolver::new())?;
        Ok(Resolution { prepared, state })
    }
}
