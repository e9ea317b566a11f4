//! `resolve_begin` / `resolve_supply`: host-driven resolution ([`roomgraph::resolve::Session`]) over
//! the socket. A session lives in the server between the calls; it expires when idle for
//! [`IDLE`], and at most [`MAX_SESSIONS`] are open at once (beyond: `busy`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use roomgraph::auth::AuthEvent;
use roomgraph::pdu::Pdu;
use roomgraph::resolve::{Session, Step};
use roomgraph::room_version::RoomVersion;

use super::error::ApiError;

/// How long a session may wait for its next `resolve_supply`.
pub const IDLE: Duration = Duration::from_secs(300);
/// Open sessions at most.
pub const MAX_SESSIONS: usize = 1024;

/// The open sessions of a server.
#[derive(Default)]
pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Session, Instant)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BeginParams<'a> {
    room_version: String,
    state_sets: Vec<Vec<String>>,
    #[serde(default, borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    rejected: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupplyParams<'a> {
    session: u64,
    #[serde(default, borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    rejected: Vec<String>,
}

impl Sessions {
    /// `resolve_begin`: `{"session", "need": {"events": [ids]}}` or `{"session", "done": state}`.
    pub fn begin(&self, bytes: &[u8]) -> Result<String, ApiError> {
        let p: BeginParams<'_> = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::params(format!("resolve_begin params: {e}")))?;
        let version = RoomVersion::from_id(&p.room_version).map_err(ApiError::params)?;
        let events = parse_events(&p.events, version)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // Room for the session is checked before the work.
        if self.count() >= MAX_SESSIONS {
            return Err(ApiError::new(
                "busy",
                format!("{MAX_SESSIONS} resolution sessions are open; finish or let some expire"),
            ));
        }
        let (session, step) =
            Session::begin(version, p.state_sets, events, &p.rejected).map_err(ApiError::params)?;
        self.answer(id, session, step)
    }

    /// `resolve_supply`: the same shapes as [`Sessions::begin`].
    pub fn supply(&self, bytes: &[u8]) -> Result<String, ApiError> {
        let p: SupplyParams<'_> = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::params(format!("resolve_supply params: {e}")))?;
        // Taken out while it works: a concurrent call on the same session finds none.
        let (mut session, _) = self.take(p.session).ok_or_else(|| {
            ApiError::new(
                "unknown_session",
                format!(
                    "no open session {} (finished, expired, failed or in use)",
                    p.session
                ),
            )
        })?;
        let events = parse_events(&p.events, session.version())?;
        let step = session
            .supply(events, &p.rejected)
            .map_err(ApiError::params)?;
        self.answer(p.session, session, step)
    }

    fn answer(&self, id: u64, session: Session, step: Step) -> Result<String, ApiError> {
        match step {
            Step::Need(ids) => {
                self.put(id, session);
                Ok(serde_json::json!({ "session": id, "need": { "events": ids } }).to_string())
            }
            Step::Done(done) => {
                let state = done.state.to_named(&done.prepared.graph);
                Ok(serde_json::json!({ "session": id, "done": state }).to_string())
            }
            _ => Err(ApiError::internal(
                "a resolution step this server does not know",
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Session, Instant)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expire(open: &mut HashMap<u64, (Session, Instant)>) {
        let now = Instant::now();
        open.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
    }

    fn count(&self) -> usize {
        let mut open = self.lock();
        Self::expire(&mut open);
        open.len()
    }

    fn take(&self, id: u64) -> Option<(Session, Instant)> {
        let mut open = self.lock();
        Self::expire(&mut open);
        open.remove(&id)
    }

    fn put(&self, id: u64, session: Session) {
        self.lock().insert(id, (session, Instant::now()));
    }

    /// Open sessions (for `stats`).
    pub fn len(&self) -> usize {
        self.count()
    }
}

/// The PDUs of a call, parsed in the session's room version from the bytes as received.
fn parse_events(
    events: &[&RawValue],
    version: &'static RoomVersion,
) -> Result<Vec<AuthEvent>, ApiError> {
    events
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            Pdu::parse(raw.get().as_bytes(), version)
                .map(|pdu| AuthEvent::new(pdu.into_owned()))
                .map_err(|e| ApiError::params(format!("events[{i}]: {e}")))
        })
        .collect()
}
