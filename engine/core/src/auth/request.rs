//! One `auth-check` request: the events of a room fragment, the event to check, the state before it and
//! the ids known to be rejected. Decides whether the event passes the spec's receipt checks 1, 4 and 5
//! (server-server API "Checks performed on receipt of a PDU"): a valid PDU whose required signatures
//! are present (Synapse's `validate_event_for_room_version`; signatures are not verified here), the auth
//! rules against its own `auth_events`, then the state-dependent rules against the state before it.
//!
//! Input errors (bad JSON, unknown room version, ids that name no given event, state that is not one
//! event per key) are [`RequestError`]s; everything about the checked event itself, including a
//! malformed PDU or missing auth events, is a [`Verdict`].

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::canonical_json::{NumberPolicy, parse_object};
use crate::event_id::{create_event_id_from_room_id, event_id};
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;

use super::numbering::Rules;
use super::{AuthEvent, AuthEventsState, AuthFailure, StateLookup, auth_types_for_event};

/// Where the checked event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not a valid PDU of the room version (receipt check 1), or a server that must sign it has not
    /// (Synapse's `validate_event_for_room_version`, before the auth rules).
    Format,
    /// Create, room-id and auth-events rules (receipt check 4, first half).
    Independent,
    /// The remaining rules against the auth events (check 4) or the state before the event (check 5).
    Dependent,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Format => "format",
            Stage::Independent => "independent",
            Stage::Dependent => "dependent",
        }
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Rejected {
        stage: Stage,
        rule: String,
        reason: String,
    },
}

impl Verdict {
    /// The response document: `{"allowed": true}` or `{"allowed": false, "stage", "rule", "reason"}`.
    pub fn to_json(&self) -> String {
        match self {
            Verdict::Allowed => serde_json::json!({ "allowed": true }).to_string(),
            Verdict::Rejected {
                stage,
                rule,
                reason,
            } => serde_json::json!({
                "allowed": false,
                "stage": stage.as_str(),
                "rule": rule,
                "reason": reason,
            })
            .to_string(),
        }
    }

    fn failed(stage: Stage, failure: AuthFailure, context: &str) -> Verdict {
        Verdict::Rejected {
            stage,
            rule: failure.rule,
            reason: format!(
                "{context}{} (room version {})",
                failure.reason, failure.version
            ),
        }
    }
}

/// Malformed input: the request cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth-check: {0}")]
pub struct RequestError(pub String);

#[derive(Deserialize)]
struct RawRequest<'a> {
    room_version: String,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    event: String,
    state: Vec<String>,
    #[serde(default)]
    rejected: Vec<String>,
}

/// Evaluates one request document.
pub fn evaluate(input: &[u8]) -> Result<Verdict, RequestError> {
    let raw: RawRequest<'_> =
        serde_json::from_slice(input).map_err(|e| RequestError(format!("invalid request: {e}")))?;
    let version =
        RoomVersion::from_id(&raw.room_version).map_err(|e| RequestError(e.to_string()))?;

    let mut events: HashMap<String, AuthEvent> = HashMap::with_capacity(raw.events.len());
    let mut malformed: HashMap<String, String> = HashMap::new();
    for (i, raw_event) in raw.events.iter().enumerate() {
        let bytes = raw_event.get().as_bytes();
        match Pdu::parse(bytes, version) {
            Ok(pdu) => {
                let event = AuthEvent::new(pdu.into_owned());
                let id = event.event_id().to_owned();
                if let Some(previous) = events.get(&id)
                    && previous.pdu.json != event.pdu.json
                {
                    return Err(RequestError(format!(
                        "events[{i}]: two different events have id {id}"
                    )));
                }
                events.insert(id, event);
            }
            Err(error) => {
                // Keep the id of an invalid PDU if it can be computed, so the checked event can be
                // reported as a format failure and an auth event as unusable.
                let id = parse_object(bytes, NumberPolicy::Lenient)
                    .ok()
                    .and_then(|json| event_id(&json, version).ok())
                    .ok_or_else(|| RequestError(format!("events[{i}]: {error}")))?;
                malformed.insert(id, error.to_string());
            }
        }
    }

    if let Some(error) = malformed.get(&raw.event) {
        return Ok(Verdict::Rejected {
            stage: Stage::Format,
            rule: "format".into(),
            reason: error.clone(),
        });
    }
    let event = events
        .get(&raw.event)
        .ok_or_else(|| RequestError(format!("event {} is not among the events", raw.event)))?;
    let rejected: HashSet<&str> = raw.rejected.iter().map(String::as_str).collect();

    let mut state = StateLookup::new();
    let mut state_keys = HashSet::new();
    for id in &raw.state {
        let state_event = events.get(id).ok_or_else(|| match malformed.get(id) {
            Some(error) => RequestError(format!("state event {id} is not a valid PDU: {error}")),
            None => RequestError(format!("state event {id} is not among the events")),
        })?;
        let Some(state_key) = state_event.pdu.state_key.as_deref() else {
            return Err(RequestError(format!("state event {id} has no state_key")));
        };
        if !state_keys.insert((&*state_event.pdu.event_type, state_key)) {
            return Err(RequestError(format!(
                "state holds two events for ({}, {state_key:?})",
                state_event.pdu.event_type
            )));
        }
        // Rejected events never count as state (Synapse).
        if !rejected.contains(id.as_str()) {
            state.insert(state_event);
        }
    }

    Ok(check(event, &events, &malformed, &state, &rejected))
}

/// Receipt checks 4 and 5 for `event`.
fn check(
    event: &AuthEvent,
    events: &HashMap<String, AuthEvent>,
    malformed: &HashMap<String, String>,
    state: &StateLookup<'_>,
    rejected: &HashSet<&str>,
) -> Verdict {
    if let Err(failure) = super::check_signature_presence(&event.pdu) {
        return Verdict::failed(Stage::Format, failure, "on receipt: ");
    }
    let version = event.pdu.version;
    let auth_rule = Rules::of(version).auth_events.to_string();
    let mut auth_events = Vec::with_capacity(event.pdu.auth_events.len());
    for id in &event.pdu.auth_events {
        match events.get(&**id) {
            Some(auth) => auth_events.push(auth),
            None => {
                let reason = match malformed.get(&**id) {
                    Some(error) => format!("auth event {id} is not a valid PDU: {error}"),
                    None => format!("auth event {id} is not among the given events"),
                };
                return Verdict::Rejected {
                    stage: Stage::Independent,
                    rule: auth_rule,
                    reason,
                };
            }
        }
    }
    if reaches_itself(event, events) {
        return Verdict::Rejected {
            stage: Stage::Independent,
            rule: auth_rule,
            reason: format!(
                "the auth chain of {} leads back to it (cycle)",
                event.event_id()
            ),
        };
    }

    let create = if event.is_create() {
        Some(event)
    } else if version.room_id_from_create {
        events.get(&create_event_id_from_room_id(&event.pdu.room_id))
    } else {
        auth_events.iter().copied().find(|e| e.is_create())
    };
    let is_rejected = |id: &str| rejected.contains(id);
    let independent_create = if event.is_create() { None } else { create };
    if let Err(failure) =
        super::check_state_independent(event, &auth_events, independent_create, &is_rejected)
    {
        return Verdict::failed(Stage::Independent, failure, "");
    }
    let Some(create) = create else {
        // Unreachable after the independent rules (they demand a create event); stay total anyway.
        return Verdict::Rejected {
            stage: Stage::Independent,
            rule: auth_rule,
            reason: "no create event".into(),
        };
    };

    let own = AuthEventsState::new(&auth_events);
    if let Err(failure) = super::check_state_dependent(event, &own, create) {
        return Verdict::failed(Stage::Dependent, failure, "against its auth events: ");
    }

    // The state before the event, narrowed to the keys the rules may read.
    let mut selected = StateLookup::new();
    for (event_type, state_key) in auth_types_for_event(event) {
        if let Some(e) = super::AuthState::get(state, event_type, &state_key) {
            selected.insert(e);
        }
    }
    let state_create = super::AuthState::get(state, "m.room.create", "").unwrap_or(create);
    if let Err(failure) = super::check_state_dependent(event, &selected, state_create) {
        return Verdict::failed(Stage::Dependent, failure, "against the state before it: ");
    }
    Verdict::Allowed
}

/// Whether following `auth_events` from `event` through `events` comes back to `event`.
fn reaches_itself(event: &AuthEvent, events: &HashMap<String, AuthEvent>) -> bool {
    let target = event.event_id();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = event.pdu.auth_events.iter().map(|id| &**id).collect();
    while let Some(id) = stack.pop() {
        if id == target {
            return true;
        }
        if !seen.insert(id) {
            continue;
        }
        if let Some(e) = events.get(id) {
            stack.extend(e.pdu.auth_events.iter().map(|a| &**a));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_errors() {
        for input in [
            "",
            "{}",
            r#"{"room_version":"11","events":[],"event":"$x","state":[]}"#,
            r#"{"room_version":"zz","events":[],"event":"$x","state":[]}"#,
            r#"{"room_version":"11","events":[1],"event":"$x","state":[]}"#,
            r#"{"room_version":"11","events":{},"event":"$x","state":[]}"#,
        ] {
            assert!(evaluate(input.as_bytes()).is_err(), "{input:?}");
        }
    }

    #[test]
    fn verdicts_render_the_contract() {
        assert_eq!(Verdict::Allowed.to_json(), r#"{"allowed":true}"#);
        let v = Verdict::Rejected {
            stage: Stage::Dependent,
            rule: "4.3.7".into(),
            reason: "r".into(),
        };
        assert_eq!(
            v.to_json(),
            r#"{"allowed":false,"reason":"r","rule":"4.3.7","stage":"dependent"}"#
        );
    }
}
