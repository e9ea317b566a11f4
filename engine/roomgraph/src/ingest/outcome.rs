//! What ingest tells its caller: the outcome of each event, the summary of a run, the errors that stop
//! a run, and the shapes the queries answer in.

use std::collections::BTreeMap;

use roomgraph_store::{EventStatus, StoreError};

use crate::auth::AuthFailure;
use crate::resolve::{ChainError, ResolveError};

/// What happened to one input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Accepted,
    Rejected,
    SoftFailed,
    Pending,
    Duplicate,
    Invalid,
    /// Stored outside the timeline: its auth events are known but some prev events are not (and no
    /// state was supplied for them). See `docs/ingest.md`.
    Outlier,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::SoftFailed => "soft_failed",
            Outcome::Pending => "pending",
            Outcome::Duplicate => "duplicate",
            Outcome::Invalid => "invalid",
            Outcome::Outlier => "outlier",
        }
    }

    /// Whether the event is now in the store.
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            Outcome::Accepted | Outcome::Rejected | Outcome::SoftFailed | Outcome::Outlier
        )
    }
}

/// Why an event got its outcome: the check that decided it and, for the authorization rules, the rule
/// that failed ([`AuthFailure`] names it in the numbering of the event's room version). `Display`
/// gives the sentence `roomgraph ingest --outcomes` prints (`docs/ingest.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The input is not a PDU of its room's version (receipt check 1: JSON, schema, sizes, the room
    /// version of a create event), or its signatures do not verify with the engine's keys (check 2).
    /// `line` is the input's position (`None`: an event replayed from the persisted pending set).
    #[error("{}{detail}", line_prefix(*line))]
    Invalid { line: Option<u64>, detail: String },
    /// A state hint for the event cannot be used (two events for one key).
    #[error("{0}")]
    BadHint(String),
    /// A server that must sign the event did not (Synapse's receipt-time presence check).
    #[error("signature check on receipt: {0}")]
    Signature(Box<AuthFailure>),
    /// The event breaks the rules against its own `auth_events` (receipt check 4).
    #[error("auth against its auth_events: {0}")]
    AuthEvents(Box<AuthFailure>),
    /// The event breaks the rules against the state before it (receipt check 5).
    #[error("auth against the state before the event: {0}")]
    StateBefore(Box<AuthFailure>),
    /// The event breaks the rules against the room's current state (receipt check 6: soft failure).
    #[error("auth against the current state: {0}")]
    CurrentState(Box<AuthFailure>),
    /// A second create event for the room (the id of the first).
    #[error("the room already has a create event ({0})")]
    SecondCreate(String),
    /// The room has no accepted create event to check against.
    #[error("the room has no accepted create event")]
    NoCreate,
    /// An event other than the create event lists no `prev_events`.
    #[error("an event other than the create event has no prev_events")]
    NoPrevEvents,
    /// A `prev_event` of the event belongs to another room.
    #[error("prev_event {0} belongs to another room")]
    ForeignPrevEvent(String),
    /// The states after the event's prev events cannot be resolved.
    #[error("the state before the event cannot be resolved: {0}")]
    StateBeforeUnresolved(String),
    /// The current state, with the state before an event at a gap, cannot be resolved.
    #[error("the current state cannot be resolved: {0}")]
    CurrentStateUnresolved(String),
    /// The accepted event's new current state cannot be resolved (an internal failure: the event
    /// is rejected rather than stored with a state nobody can compute).
    #[error("internal: the new current state cannot be resolved: {0}")]
    NewCurrentStateUnresolved(String),
    /// The event waits for these events, its missing ancestors.
    #[error("waiting for {}", .0.join(", "))]
    Waiting(Vec<String>),
    /// The pending set is full: the event is not kept (`waiting_for` says what it needed).
    #[error(
        "pending set full ({limit} events): not kept; waiting for {waiting_for}, submit it again later"
    )]
    PendingSetFull { limit: usize, waiting_for: String },
    /// The event's room is not in the store.
    #[error("unknown room {0}")]
    UnknownRoom(String),
    /// The event's room is not in the store because its create event is not (yet).
    #[error("unknown room {0}: its create event has not been stored")]
    CreateNotStored(String),
    /// The event's room is unknown and the pending set is full: it is not kept.
    #[error("pending set full ({limit} events): not kept; unknown room {room_id}")]
    UnknownRoomPendingSetFull { limit: usize, room_id: String },
    /// Stored as an outlier, rejected for this reason.
    #[error("outlier: {0}")]
    Outlier(Box<Reason>),
    /// The content hash did not match: the event is stored redacted (receipt check 3), with the
    /// reason of its outcome, if it has one.
    #[error("content hash mismatch: stored redacted{}", .0.as_ref().map(|r| format!("; {r}")).unwrap_or_default())]
    Redacted(Option<Box<Reason>>),
}

/// `line N: ` before the reason an input line is invalid (`pending event: ` for a replayed event).
fn line_prefix(line: Option<u64>) -> String {
    match line {
        Some(n) => format!("line {n}: "),
        None => "pending event: ".to_owned(),
    }
}

/// The outcome of one input event. `line` is the 1-based input line (None for events replayed from the
/// persisted pending set); `event_id` is None when the line could not be parsed.
///
/// An event stored as an outlier has a second outcome when it is later processed as a timeline event
/// (its prev events arrived): that one has `deoutliered` set, and its line if this engine still knows
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    pub line: Option<u64>,
    pub event_id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub deoutliered: bool,
}

impl EventOutcome {
    /// The reason as the sentence `roomgraph ingest --outcomes` prints.
    pub fn reason_text(&self) -> Option<String> {
        self.reason.as_ref().map(ToString::to_string)
    }
}

/// Counts of outcomes. A de-outliered event counts twice: as an outlier when it was stored, and under
/// its timeline outcome (and in `deoutliered`) when its prev events arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub rejected: u64,
    pub soft_failed: u64,
    pub pending: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub outliers: u64,
    pub deoutliered: u64,
}

impl Summary {
    pub fn add(&mut self, outcomes: &[EventOutcome]) {
        for o in outcomes {
            if o.deoutliered {
                self.deoutliered += 1;
            }
            match o.outcome {
                Outcome::Accepted => self.accepted += 1,
                Outcome::Rejected => self.rejected += 1,
                Outcome::SoftFailed => self.soft_failed += 1,
                Outcome::Pending => self.pending += 1,
                Outcome::Duplicate => self.duplicates += 1,
                Outcome::Invalid => self.invalid += 1,
                Outcome::Outlier => self.outliers += 1,
            }
        }
    }
}

/// Before or after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Before,
    After,
}

/// A named state map: `(type, state_key) → event id`.
pub type StateMap = BTreeMap<(String, String), String>;

/// A stored event with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: String,
    pub room_id: String,
    pub room_version: String,
    /// The stored PDU (the redacted form if the content hash did not match).
    pub pdu: Vec<u8>,
    pub status: EventStatus,
    pub reason: String,
    pub redacted: bool,
}

/// Errors that stop an ingest call or a query. A failed ingest call commits nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ingest: the engine is unusable after an earlier failed commit; reopen the store")]
    Poisoned,
    #[error("unknown room {0}")]
    UnknownRoom(String),
    #[error("unknown event {0}")]
    UnknownEvent(String),
    /// The event is not a state event: it has no auth chain in the index.
    #[error("event {0} is not a state event: the auth-chain index holds state events only")]
    NotState(String),
    /// The store was upgraded from schema 2–4 and its auth-chain index is not rebuilt yet.
    #[error(
        "the store's auth-chain index predates schema 5 and is rebuilt by the next read-write open (any `roomgraph ingest`)"
    )]
    ChainIndexOutdated,
    /// The event is stored as an outlier (its prev events are missing): it has no state.
    #[error("event {0} is an outlier: it has no state before or after it")]
    Outlier(String),
    /// Resolving state sets over the stored graph failed ([`Engine::resolve`]).
    #[error("resolve: {0}")]
    Resolve(#[from] StoredResolveError),
    /// The caller's outcome handler of [`Engine::ingest_stream`] failed. Its batch is committed; when
    /// the next batch had been applied beside that commit (it is not written), the engine is poisoned:
    /// reopen it to go on.
    #[error("{0}")]
    Caller(String),
}

/// Why a resolution over the stored event graph failed: a fork during ingest (its text becomes the
/// event's `CurrentStateUnresolved` reason) or an [`Engine::resolve`] request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The auth-chain index could not place an event.
    #[error("auth-chain index: {0}")]
    Chain(#[from] ChainError),
    /// The resolution algorithm refused its input.
    #[error(transparent)]
    Algorithm(#[from] ResolveError),
    /// A state set names two events for one `(type, state_key)`.
    #[error("a state set holds two events for one key ({first} and {second})")]
    TwoEventsForKey { first: String, second: String },
    /// A state set names an event that is not a state event.
    #[error("{0} is not a state event")]
    NotState(String),
    /// A state set names an event that is not the room's event at the key it is listed under.
    #[error(
        "state set {set}: ({event_type:?}, {state_key:?}) names {event_id}, which is not that room's event for that key"
    )]
    WrongKey {
        set: usize,
        event_type: String,
        state_key: String,
        event_id: String,
    },
    /// An event of a state set could not enter the room's event graph (its auth events are not all
    /// stored).
    #[error("event {0} cannot be placed in the room's event graph")]
    NotInGraph(String),
    /// `roomgraph-bench --check-resolutions`: the partial-set resolution disagrees with the full one.
    #[error(
        "self-check: the partial-set resolution gives {partial} at state key {key}, the full one {full}"
    )]
    SelfCheck {
        key: u32,
        partial: String,
        full: String,
    },
    /// An invariant of the engine's own bookkeeping failed (a bug, not bad input).
    #[error("internal: {0}")]
    Internal(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sentences are the command line's output contract (`--outcomes`, stderr for invalid lines).
    #[test]
    fn reasons_read_as_the_command_line_prints_them() {
        let failure = AuthFailure {
            rule: "4.7.2".to_owned(),
            version: "11",
            reason: "sender is not joined".to_owned(),
        };
        let cases = [
            (
                Reason::Invalid {
                    line: Some(3),
                    detail: "pdu: key `type` is required".to_owned(),
                },
                "line 3: pdu: key `type` is required",
            ),
            (
                Reason::Invalid {
                    line: None,
                    detail: "x".to_owned(),
                },
                "pending event: x",
            ),
            (
                Reason::StateBefore(Box::new(failure.clone())),
                "auth against the state before the event: rule 4.7.2 (v11): sender is not joined",
            ),
            (
                Reason::Waiting(vec!["$a".to_owned(), "$b".to_owned()]),
                "waiting for $a, $b",
            ),
            (
                Reason::Redacted(None),
                "content hash mismatch: stored redacted",
            ),
            (
                Reason::Redacted(Some(Box::new(Reason::Outlier(Box::new(
                    Reason::AuthEvents(Box::new(failure)),
                ))))),
                "content hash mismatch: stored redacted; outlier: auth against its auth_events: rule 4.7.2 (v11): sender is not joined",
            ),
            (
                Reason::PendingSetFull {
                    limit: 5,
                    waiting_for: "$p".to_owned(),
                },
                "pending set full (5 events): not kept; waiting for $p, submit it again later",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
