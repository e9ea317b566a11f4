//! State supplied by the host for events at a gap in the DAG.
//!
//! A homeserver never has the whole DAG: when an event's prev events are missing (or only known as
//! outliers), Synapse asks the sending server for the state at them (`/state_ids`) and derives the state
//! before the event from that (`_compute_event_context_with_maybe_missing_prevs`). roomgraph cannot ask
//! anyone, so the host hands it the same facts as hints, in either of two forms:
//!
//! - [`StateHint::After`]: the state after a missing or outlier prev event `P`, as the host got it from
//!   `/state_ids` (the state before `P`, plus `P` itself when it is a state event). The state before a
//!   child is then the resolution of these states with the states after its other prev events.
//! - [`StateHint::Before`]: the state before an event, as the host already determined it.
//!
//! Hints are used only for events some of whose prev events are missing or outliers; an event whose
//! prev events are all in the timeline gets its state from them.

use std::fmt;

use serde::Deserialize;

use crate::fast_hash::FastMap;

/// One hint: which event it is about and the event ids of the state (one per `(type, state_key)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateHint {
    /// The state after the (missing or outlier) event `event_id`.
    After {
        event_id: String,
        state: Vec<String>,
    },
    /// The state before the event `event_id`.
    Before {
        event_id: String,
        state: Vec<String>,
    },
}

/// A hint line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HintError {
    #[error("state hint: {0}")]
    Json(String),
    #[error("state hint: give exactly one of `state_after` and `state_before`")]
    Form,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HintJson {
    event_id: String,
    #[serde(default)]
    state_after: Option<Vec<String>>,
    #[serde(default)]
    state_before: Option<Vec<String>>,
}

impl StateHint {
    /// Parses one hint: `{"event_id": P, "state_after": ["$id", ...]}` or
    /// `{"event_id": E, "state_before": [...]}`.
    pub fn from_json(bytes: &[u8]) -> Result<StateHint, HintError> {
        let h: HintJson =
            serde_json::from_slice(bytes).map_err(|e| HintError::Json(e.to_string()))?;
        match (h.state_after, h.state_before) {
            (Some(state), None) => Ok(StateHint::After {
                event_id: h.event_id,
                state,
            }),
            (None, Some(state)) => Ok(StateHint::Before {
                event_id: h.event_id,
                state,
            }),
            _ => Err(HintError::Form),
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            StateHint::After { event_id, .. } | StateHint::Before { event_id, .. } => event_id,
        }
    }
}

/// The hints an engine holds, by event id (a later hint for the same event and form replaces an
/// earlier one).
#[derive(Default)]
pub struct StateHints {
    after: FastMap<Box<str>, Box<[Box<str>]>>,
    before: FastMap<Box<str>, Box<[Box<str>]>>,
}

impl fmt::Debug for StateHints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateHints")
            .field("after", &self.after.len())
            .field("before", &self.before.len())
            .finish()
    }
}

impl StateHints {
    pub fn insert(&mut self, hint: StateHint) {
        let (map, event_id, state) = match hint {
            StateHint::After { event_id, state } => (&mut self.after, event_id, state),
            StateHint::Before { event_id, state } => (&mut self.before, event_id, state),
        };
        let state: Box<[Box<str>]> = state.into_iter().map(String::into_boxed_str).collect();
        map.insert(event_id.into_boxed_str(), state);
    }

    /// The state after `event_id`, if a hint gives it.
    pub fn after(&self, event_id: &str) -> Option<&[Box<str>]> {
        self.after.get(event_id).map(|s| &**s)
    }

    /// The state before `event_id`, if a hint gives it.
    pub fn before(&self, event_id: &str) -> Option<&[Box<str>]> {
        self.before.get(event_id).map(|s| &**s)
    }

    pub fn is_empty(&self) -> bool {
        self.after.is_empty() && self.before.is_empty()
    }

    pub fn len(&self) -> usize {
        self.after.len() + self.before.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_bad_ones_say_why() {
        let h = StateHint::from_json(br#"{"event_id":"$p","state_after":["$a","$b"]}"#);
        assert_eq!(
            h,
            Ok(StateHint::After {
                event_id: "$p".into(),
                state: vec!["$a".into(), "$b".into()]
            })
        );
        let h = StateHint::from_json(br#"{"event_id":"$e","state_before":[]}"#);
        assert!(matches!(h, Ok(StateHint::Before { .. })));
        assert_eq!(
            StateHint::from_json(br#"{"event_id":"$e"}"#),
            Err(HintError::Form)
        );
        assert_eq!(
            StateHint::from_json(br#"{"event_id":"$e","state_after":[],"state_before":[]}"#),
            Err(HintError::Form)
        );
        let e = StateHint::from_json(br#"{"event_id":"$e","state":[]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `state`"), "{e}");
        let e = StateHint::from_json(b"[1]").unwrap_err();
        assert!(e.to_string().starts_with("state hint: "), "{e}");
    }

    #[test]
    fn a_later_hint_replaces_an_earlier_one() {
        let mut hints = StateHints::default();
        hints.insert(StateHint::After {
            event_id: "$p".into(),
            state: vec!["$a".into()],
        });
        hints.insert(StateHint::After {
            event_id: "$p".into(),
            state: vec!["$b".into()],
        });
        hints.insert(StateHint::Before {
            event_id: "$p".into(),
            state: vec![],
        });
        assert_eq!(hints.after("$p").map(|s| s.len()), Some(1));
        assert_eq!(hints.after("$p").map(|s| &*s[0]), Some("$b"));
        assert_eq!(hints.before("$p").map(|s| s.len()), Some(0));
        assert_eq!(hints.after("$q"), None);
        assert_eq!(hints.len(), 2);
    }
}
