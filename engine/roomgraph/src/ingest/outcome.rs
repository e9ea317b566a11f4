//! What ingest tells its caller: the outcome of each event, the summary of a run, the errors that stop
//! a run, and the shapes the queries answer in.

use std::collections::BTreeMap;

use roomgraph_store::{EventStatus, StoreError};

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
    pub reason: Option<String>,
    pub deoutliered: bool,
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
    #[error("resolve: {0}")]
    Resolve(String),
    /// The caller's outcome handler of [`Engine::ingest_stream`] failed. Its batch is committed; when
    /// the next batch had been applied beside that commit (it is not written), the engine is poisoned:
    /// reopen it to go on.
    #[error("{0}")]
    Caller(String),
}
