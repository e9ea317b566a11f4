//! Two ready-made [`AuthState`]s: an event's own auth events, and a state map by `(type, state_key)`.

use std::collections::HashMap;

use super::event::{AuthEvent, AuthState};
use crate::fast_hash::FastHash;

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
///
/// The keys the auth rules read are laid out for them: the three singletons (create, power levels,
/// join rules) sit in fixed slots, member events in a map keyed by user id alone, everything else in a
/// general map. Keys are hashed with a keyed hash ([`FastHash`]): the user ids come from remote
/// servers.
#[derive(Debug, Clone, Default)]
pub struct StateLookup<'e> {
    create: Option<&'e AuthEvent>,
    power_levels: Option<&'e AuthEvent>,
    join_rules: Option<&'e AuthEvent>,
    members: HashMap<&'e str, &'e AuthEvent, FastHash>,
    others: HashMap<(&'e str, &'e str), &'e AuthEvent, FastHash>,
}

impl<'e> StateLookup<'e> {
    pub fn new() -> Self {
        StateLookup::default()
    }

    /// Adds a state event (events without a `state_key` are ignored); a later event for the same key
    /// replaces the earlier one.
    pub fn insert(&mut self, event: &'e AuthEvent) {
        let Some(state_key) = event.pdu.state_key.as_deref() else {
            return;
        };
        let event_type: &'e str = &event.pdu.event_type;
        match (event_type, state_key) {
            ("m.room.member", user) => {
                self.members.insert(user, event);
            }
            ("m.room.create", "") => self.create = Some(event),
            ("m.room.power_levels", "") => self.power_levels = Some(event),
            ("m.room.join_rules", "") => self.join_rules = Some(event),
            key => {
                self.others.insert(key, event);
            }
        }
    }

    pub fn len(&self) -> usize {
        [self.create, self.power_levels, self.join_rules]
            .iter()
            .flatten()
            .count()
            + self.members.len()
            + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'e> FromIterator<&'e AuthEvent> for StateLookup<'e> {
    fn from_iter<I: IntoIterator<Item = &'e AuthEvent>>(iter: I) -> Self {
        let mut state = StateLookup::new();
        for event in iter {
            state.insert(event);
        }
        state
    }
}

impl AuthState for StateLookup<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        match (event_type, state_key) {
            ("m.room.member", user) => self.members.get(user).copied(),
            ("m.room.create", "") => self.create,
            ("m.room.power_levels", "") => self.power_levels,
            ("m.room.join_rules", "") => self.join_rules,
            key => self.others.get(&key).copied(),
        }
    }
}
