//! `roomgraph_engine`: a store opened for ingest and queries.

use std::sync::Mutex;

use roomgraph::documents::{self, event_json, state_json};
use roomgraph::ingest::{Engine, IngestError, Position};

use crate::error::{Failure, guarded, input, input_str, roomgraph_result};
use crate::json::{out_buffer, roomgraph_buffer};

use roomgraph_result::*;

/// A RocksDB store opened by [`roomgraph_engine_open`]: ingest and queries. Opaque. Not to be used by
/// two threads at once (it may move between threads).
pub struct roomgraph_engine {
    engine: Engine,
    /// Input positions continue across ingest calls, so an outcome names its call's PDU.
    next_line: u64,
    last_error: Mutex<String>,
}

fn store_failure(e: IngestError) -> Failure {
    let code = match &e {
        IngestError::UnknownEvent(_) | IngestError::UnknownRoom(_) => ROOMGRAPH_NOT_FOUND,
        IngestError::Outlier(_) => ROOMGRAPH_OUTLIER,
        IngestError::NotState(_) => ROOMGRAPH_INVALID_REQUEST,
        _ => ROOMGRAPH_STORE_ERROR,
    };
    Failure::new(code, e.to_string())
}

/// Runs `f` on the engine behind the panic boundary, recording a failure's detail in the engine.
unsafe fn with_engine(
    engine: *mut roomgraph_engine,
    f: impl FnOnce(&mut roomgraph_engine) -> Result<(), Failure>,
) -> roomgraph_result {
    if engine.is_null() {
        return guarded(|| Err(Failure::null("engine")), |_| {});
    }
    // SAFETY: a non-null engine came from `roomgraph_engine_open` and is not used concurrently.
    let handle = unsafe { &mut *engine };
    let mut detail: Option<String> = None;
    let code = guarded(|| f(&mut *handle), |d| detail = Some(d.to_owned()));
    if let Some(d) = detail {
        *handle.last_error.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }
    code
}

/// The query entry points: one string argument (`what`) in, one JSON document out.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `arg` valid for reads of `arg_len` bytes; `out` valid for
/// a write.
unsafe fn query(
    engine: *mut roomgraph_engine,
    arg: *const u8,
    arg_len: usize,
    what: &str,
    out: *mut roomgraph_buffer,
    answer: impl FnOnce(&Engine, &str) -> Result<serde_json::Value, Failure>,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_engine(engine, |h| {
            let arg = input_str(arg, arg_len, what)?;
            out_buffer(out)?;
            let json = answer(&h.engine, arg)?;
            roomgraph_buffer::give(out, json.to_string().into_bytes());
            Ok(())
        })
    }
}

/// Opens (creating if needed) the store in the directory `path` and writes the engine to `*out`.
///
/// # Safety
/// `path` valid for reads of `path_len` bytes (UTF-8); `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_open(
    path: *const u8,
    path_len: usize,
    out: *mut *mut roomgraph_engine,
) -> roomgraph_result {
    guarded(
        || {
            // SAFETY: forwarded caller contract.
            let path = unsafe { input_str(path, path_len, "path") }?;
            if out.is_null() {
                return Err(Failure::null("out"));
            }
            let engine = Engine::open(path)
                .map_err(|e| Failure::new(ROOMGRAPH_STORE_ERROR, format!("{path}: {e}")))?;
            let handle = Box::new(roomgraph_engine {
                engine,
                next_line: 1,
                last_error: Mutex::new(String::new()),
            });
            // SAFETY: `out` is non-null and valid for a write per the caller's contract.
            unsafe { *out = Box::into_raw(handle) };
            Ok(())
        },
        |_| {},
    )
}

/// Closes the store (everything acknowledged is durable already) and frees the engine. Null is fine.
///
/// # Safety
/// `engine` null or from [`roomgraph_engine_open`], not used again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_close(engine: *mut roomgraph_engine) {
    if engine.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: from `roomgraph_engine_open` (`Box::into_raw`), freed once per the contract.
        drop(unsafe { Box::from_raw(engine) });
    }));
}

/// Writes the detail of the engine's last failed call (empty if none) into `buf`.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `buf` valid for writes of `cap` bytes (or null with
/// `cap` 0); `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_last_error(
    engine: *const roomgraph_engine,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    if engine.is_null() {
        return guarded(|| Err(Failure::null("engine")), |_| {});
    }
    // SAFETY: a non-null engine came from `roomgraph_engine_open`.
    let detail = unsafe { &*engine }
        .last_error
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: forwarded caller contract.
        unsafe { crate::error::emit(detail.as_bytes(), buf, cap, out_len) }
    }))
    .map_or(ROOMGRAPH_PANIC, |r| {
        r.map_or_else(|f| f.code, |()| ROOMGRAPH_OK)
    })
}

/// Ingests PDUs as `roomgraph ingest` does, durably (answered once committed): the socket's
/// `ingest` document `{"pdus": [PDU, ...]}` in, `{"summary", "outcomes"}` out. Each outcome's
/// `line` is its PDU's 1-based position in `pdus`.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `request` valid for reads of `request_len` bytes; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_ingest_json(
    engine: *mut roomgraph_engine,
    request: *const u8,
    request_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IngestDocument<'a> {
        #[serde(borrow)]
        pdus: Vec<&'a serde_json::value::RawValue>,
    }
    // SAFETY: forwarded caller contract.
    unsafe {
        with_engine(engine, |h| {
            let bytes = input(request, request_len, "request")?;
            out_buffer(out)?;
            let doc: IngestDocument<'_> = serde_json::from_slice(bytes).map_err(|e| {
                Failure::new(
                    ROOMGRAPH_INVALID_REQUEST,
                    format!("not an ingest document: {e}"),
                )
            })?;
            let pdus: Vec<&[u8]> = doc.pdus.iter().map(|p| p.get().as_bytes()).collect();
            let json = documents::ingest_json(&mut h.engine, &mut h.next_line, &pdus)
                .map_err(store_failure)?;
            roomgraph_buffer::give(out, json.into_bytes());
            Ok(())
        })
    }
}

/// The current state of a room: `{"<type>": {"<state_key>": "<event_id>"}}`.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `room_id` valid for reads of `room_id_len` bytes; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_state_json(
    engine: *mut roomgraph_engine,
    room_id: *const u8,
    room_id_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(engine, room_id, room_id_len, "room_id", out, |e, room| {
            Ok(state_json(&e.current_state(room).map_err(store_failure)?))
        })
    }
}

/// The state after an event (`before` 0) or before it (`before` non-zero), as
/// [`roomgraph_engine_state_json`] writes it.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `event_id` valid for reads of `event_id_len` bytes;
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_state_at_json(
    engine: *mut roomgraph_engine,
    event_id: *const u8,
    event_id_len: usize,
    before: i32,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    let position = if before != 0 {
        Position::Before
    } else {
        Position::After
    };
    // SAFETY: forwarded caller contract.
    unsafe {
        query(
            engine,
            event_id,
            event_id_len,
            "event_id",
            out,
            |e, event| {
                Ok(state_json(
                    &e.state_at(event, position).map_err(store_failure)?,
                ))
            },
        )
    }
}

/// A stored event as `roomgraph event` prints it: `{"event_id", "room_id", "room_version",
/// "outcome", "reason", "redacted", "pdu"}`.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `event_id` valid for reads of `event_id_len` bytes;
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_event_json(
    engine: *mut roomgraph_engine,
    event_id: *const u8,
    event_id_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(
            engine,
            event_id,
            event_id_len,
            "event_id",
            out,
            |e, event| {
                event_json(&e.reader(), event)
                    .map_err(store_failure)?
                    .ok_or_else(|| {
                        Failure::new(ROOMGRAPH_NOT_FOUND, format!("unknown event {event}"))
                    })
            },
        )
    }
}

/// The forward extremities of a room: a JSON array of event ids, sorted.
///
/// # Safety
/// `engine` from [`roomgraph_engine_open`]; `room_id` valid for reads of `room_id_len` bytes; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_engine_extremities_json(
    engine: *mut roomgraph_engine,
    room_id: *const u8,
    room_id_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(engine, room_id, room_id_len, "room_id", out, |e, room| {
            Ok(serde_json::json!(
                e.extremities(room).map_err(store_failure)?
            ))
        })
    }
}
