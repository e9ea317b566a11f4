//! Two ready-made [`AuthState`]s: an event's own auth events, and a state map by `(type, state_key)`.

use std::collections::HashMap;

use super::{AuthEvent, AuthState};

/// The state formed by a handful of events (an event's `auth_events`): a linear scan beats hashing
/// for the ≤ 10 entries the spec allows.
#[derive(Debug, Clone, Copy)]
pub struct AuthEventsState<'e> {
    events: &'e [&'e AuthEvent],
}

impl<'e> AuthEventsState<'e> {
    pub fn new(events: &'e [&'e AuthEvent]) -> Self {
        AuthEventsState { events }
    }
}

impl AuthState for AuthEventsState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        self.events
            .iter()
            .find(|e| {
                e.pdu.event_type == event_type && e.pdu.state_key.as_deref() == Some(state_key)
            })
            .copied()
    }
}

/// A state map `(type, state_key) → event`; the caller leaves rejected events out.
#[derive(Debug, Clone, Default)]
pub struct StateMap<'e> {
    map: HashMap<(&'e str, &'e str), &'e AuthEvent>,
}

impl<'e> StateMap<'e> {
    pub fn new() -> Self {
        StateMap {
            map: HashMap::new(),
        }
    }

    /// Adds a state event (events without a `state_key` are ignored); a later event for the same key
    /// replaces the earlier one.
    pub fn insert(&mut self, event: &'e AuthEvent) {
        if let Some(state_key) = event.pdu.state_key.as_deref() {
            self.map.insert((&event.pdu.event_type, state_key), event);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<'e> FromIterator<&'e AuthEvent> for StateMap<'e> {
    fn from_iter<I: IntoIterator<Item = &'e AuthEvent>>(iter: I) -> Self {
        let mut state = StateMap::new();
        for event in iter {
            state.insert(event);
        }
        state
    }
}

impl AuthState for StateMap<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        self.map.get(&(event_type, state_key)).copied()
    }
}
