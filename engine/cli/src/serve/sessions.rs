//! `resolve_begin` / `resolve_supply`: host-driven resolution ([`roomgraph::resolve::Session`]) over
//! the socket, with the documents of [`roomgraph::documents`]. A session lives in the server between
//! the calls; it expires when idle for [`IDLE`], and at most [`MAX_SESSIONS`] are open at once
//! (beyond: `busy`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roomgraph::documents::{self, SupplyDocument};
use roomgraph::resolve::{Session, Step};

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

impl Sessions {
    /// `resolve_begin`: `{"session", "need": {"events": [ids]}}` or `{"session", "done": state}`.
    pub fn begin(&self, bytes: &[u8]) -> Result<String, ApiError> {
        // Room for the session is checked before the work.
        if self.count() >= MAX_SESSIONS {
            return Err(ApiError::new(
                "busy",
                format!("{MAX_SESSIONS} resolution sessions are open; finish or let some expire"),
            ));
        }
        let (session, step) = documents::resolve_begin(bytes).map_err(ApiError::params)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(self.answer(id, session, step))
    }

    /// `resolve_supply`: the same shapes as [`Sessions::begin`].
    pub fn supply(&self, bytes: &[u8]) -> Result<String, ApiError> {
        let doc = SupplyDocument::parse(bytes).map_err(ApiError::params)?;
        let Some(id) = doc.session else {
            return Err(ApiError::params(
                "resolve_supply params: `session` is required",
            ));
        };
        // Taken out while it works: a concurrent call on the same session finds none.
        let (mut session, _) = self.take(id).ok_or_else(|| {
            ApiError::new(
                "unknown_session",
                format!("no open session {id} (finished, expired, failed or in use)"),
            )
        })?;
        let step = documents::resolve_supply(&mut session, &doc).map_err(ApiError::params)?;
        Ok(self.answer(id, session, step))
    }

    fn answer(&self, id: u64, session: Session, step: Step) -> String {
        let mut json = documents::step_json(&step);
        json["session"] = serde_json::json!(id);
        if matches!(step, Step::Need(_)) {
            self.put(id, session);
        }
        json.to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Session, Instant)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open sessions, those idle for longer than [`IDLE`] dropped first.
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Session, Instant)>> {
        let mut open = self.lock();
        let now = Instant::now();
        open.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        open
    }

    fn count(&self) -> usize {
        self.live().len()
    }

    fn take(&self, id: u64) -> Option<(Session, Instant)> {
        self.live().remove(&id)
    }

    fn put(&self, id: u64, session: Session) {
        self.lock().insert(id, (session, Instant::now()));
    }

    /// Open sessions (for `stats`).
    pub fn len(&self) -> usize {
        self.count()
    }
}
