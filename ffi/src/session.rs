//! `roomgraph_resolve_session`: host-driven resolution (`roomgraph::resolve::Session`) for hosts that
//! keep their own events.

use roomgraph::documents::{self, SupplyDocument};
use roomgraph::resolve::{Session, Step};

use crate::error::{Failure, guarded, input, roomgraph_result};
use crate::json::{out_buffer, roomgraph_buffer};

use roomgraph_result::*;

/// One resolution in progress. Opaque; free with [`roomgraph_resolve_free`]. Not to be used by two
/// threads at once.
pub struct roomgraph_resolve_session {
    /// `None` once finished or failed.
    session: Option<Session>,
}

fn refused(e: roomgraph::resolve::ResolveError) -> Failure {
    Failure::new(ROOMGRAPH_INVALID_REQUEST, e.to_string())
}

/// Writes the step's document and says whether the session goes on.
///
/// # Safety
/// `out` non-null and valid for a write.
unsafe fn answer(step: &Step, out: *mut roomgraph_buffer) -> bool {
    // SAFETY: forwarded caller contract.
    unsafe { roomgraph_buffer::give(out, documents::step_json(step).to_string().into_bytes()) };
    matches!(step, Step::Need(_))
}

/// Starts a resolution: the socket's `resolve_begin` document (`{"room_version", "state_sets":
/// [[id, ...], ...], "events"?: [PDU, ...], "rejected"?: [id, ...]}`, or, for a host that computes the
/// auth difference itself, `"full_conflicted_set": [id, ...], "base_state": state map` in place of
/// `state_sets`; docs/protocol.md) in; `*session` receives the
/// session and `*out` `{"need": {"events": [id, ...]}}` or `{"done": state map}`. A done session
/// needs only [`roomgraph_resolve_free`].
///
/// # Safety
/// `request` valid for reads of `request_len` bytes; `session` and `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_resolve_begin(
    request: *const u8,
    request_len: usize,
    session: *mut *mut roomgraph_resolve_session,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    guarded(
        || {
            // SAFETY: forwarded caller contract.
            let bytes = unsafe { input(request, request_len, "request") }?;
            if session.is_null() {
                return Err(Failure::null("session"));
            }
            out_buffer(out)?;
            let (s, step) = documents::resolve_begin(bytes).map_err(refused)?;
            // SAFETY: `out` checked non-null; valid per the caller's contract.
            let goes_on = unsafe { answer(&step, out) };
            let handle = Box::new(roomgraph_resolve_session {
                session: goes_on.then_some(s),
            });
            // SAFETY: `session` non-null and valid for a write per the caller's contract.
            unsafe { *session = Box::into_raw(handle) };
            Ok(())
        },
        |_| {},
    )
}

/// Answers the session's last `need`: `{"events": [PDU, ...], "rejected"?: [id, ...]}` in, the next
/// step out (as [`roomgraph_resolve_begin`]). An event asked for and not supplied is
/// `ROOMGRAPH_INVALID_REQUEST` and ends the session; a finished session is
/// `ROOMGRAPH_SESSION_FINISHED`.
///
/// # Safety
/// `session` from [`roomgraph_resolve_begin`]; `supply` valid for reads of `supply_len` bytes; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_resolve_supply(
    session: *mut roomgraph_resolve_session,
    supply: *const u8,
    supply_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    guarded(
        || {
            if session.is_null() {
                return Err(Failure::null("session"));
            }
            // SAFETY: forwarded caller contract.
            let bytes = unsafe { input(supply, supply_len, "supply") }?;
            out_buffer(out)?;
            // SAFETY: a non-null session came from `roomgraph_resolve_begin`, used by one thread.
            let handle = unsafe { &mut *session };
            let Some(mut s) = handle.session.take() else {
                return Err(Failure::new(
                    ROOMGRAPH_SESSION_FINISHED,
                    "the session is finished (done or failed): begin another",
                ));
            };
            let doc = SupplyDocument::parse(bytes).map_err(refused)?;
            let step = documents::resolve_supply(&mut s, &doc).map_err(refused)?;
            // SAFETY: `out` checked non-null; valid per the caller's contract.
            if unsafe { answer(&step, out) } {
                handle.session = Some(s);
            }
            Ok(())
        },
        |_| {},
    )
}

/// Frees a session (finished or not). Null is fine.
///
/// # Safety
/// `session` null or from [`roomgraph_resolve_begin`], not used again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_resolve_free(session: *mut roomgraph_resolve_session) {
    if session.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: from `roomgraph_resolve_begin` (`Box::into_raw`), freed once per the contract.
        drop(unsafe { Box::from_raw(session) });
    }));
}
