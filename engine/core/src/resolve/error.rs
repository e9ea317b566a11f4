//! Why a resolution cannot be carried out.

/// Why a resolution request cannot be carried out. Each variant names the event or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
