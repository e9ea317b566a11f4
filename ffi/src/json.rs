//! Buffers roomgraph allocates, and the stateless document functions: resolution and auth checks.

use roomgraph::auth::request::evaluate;

use crate::error::{Failure, guarded, input, roomgraph_result};

/// Bytes roomgraph allocated for the caller (a JSON document, UTF-8). Free with
/// [`roomgraph_buffer_free`]. An empty buffer has a null `ptr`.
#[repr(C)]
#[derive(Debug)]
pub struct roomgraph_buffer {
    pub ptr: *mut u8,
    pub len: usize,
}

impl roomgraph_buffer {
    /// Hands `data` to the caller through `out`.
    ///
    /// # Safety
    /// `out` valid for a write (checked non-null by the callers).
    pub(crate) unsafe fn give(out: *mut roomgraph_buffer, data: Vec<u8>) {
        let boxed: Box<[u8]> = data.into_boxed_slice();
        let len = boxed.len();
        let ptr = if len == 0 {
            std::ptr::null_mut()
        } else {
            Box::into_raw(boxed).cast::<u8>()
        };
        // SAFETY: `out` is valid for a write per the caller's contract.
        unsafe { *out = roomgraph_buffer { ptr, len } };
    }
}

/// Checks that `out` can receive a buffer.
pub(crate) fn out_buffer(out: *mut roomgraph_buffer) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    Ok(())
}

/// Frees what roomgraph allocated in `buf` and resets it to empty. A null `buf` or an empty buffer is
/// fine.
///
/// # Safety
/// `buf` null, or valid for reads and writes and holding a buffer roomgraph gave (or an empty one).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_buffer_free(buf: *mut roomgraph_buffer) {
    if buf.is_null() {
        return;
    }
    // SAFETY: `buf` is valid per the caller's contract.
    let b = unsafe { &mut *buf };
    if !b.ptr.is_null() && b.len > 0 {
        // SAFETY: `ptr`/`len` came from `Box::<[u8]>::into_raw` in `give`, and are freed once: they
        // are reset below.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(b.ptr, b.len)) });
    }
    b.ptr = std::ptr::null_mut();
    b.len = 0;
}

/// Resolves a `roomgraph resolve` document (`{"room_version", "events", "state_sets", "rejected"?}`)
/// into `*out`: the state map `{"<type>": {"<state_key>": "<event_id>"}}`, as the command line prints
/// it.
///
/// # Safety
/// `request` valid for reads of `request_len` bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_resolve_json(
    request: *const u8,
    request_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    guarded(
        || {
            // SAFETY: forwarded caller contract.
            let bytes = unsafe { input(request, request_len, "request") }?;
            out_buffer(out)?;
            let json = roomgraph::documents::resolve_json(bytes).map_err(|e| {
                Failure::new(roomgraph_result::ROOMGRAPH_INVALID_REQUEST, e.to_string())
            })?;
            // SAFETY: `out` checked non-null; valid per the caller's contract.
            unsafe { roomgraph_buffer::give(out, json.into_bytes()) };
            Ok(())
        },
        |_| {},
    )
}

/// Checks an event against the authorization rules: a `roomgraph auth-check` document in, the
/// verdict out (`{"allowed": true}` or `{"allowed": false, "stage", "rule", "reason"}`).
///
/// # Safety
/// `request` valid for reads of `request_len` bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_auth_check_json(
    request: *const u8,
    request_len: usize,
    out: *mut roomgraph_buffer,
) -> roomgraph_result {
    guarded(
        || {
            // SAFETY: forwarded caller contract.
            let bytes = unsafe { input(request, request_len, "request") }?;
            out_buffer(out)?;
            let verdict = evaluate(bytes).map_err(|e| {
                Failure::new(roomgraph_result::ROOMGRAPH_INVALID_REQUEST, e.to_string())
            })?;
            // SAFETY: `out` checked non-null; valid per the caller's contract.
            unsafe { roomgraph_buffer::give(out, verdict.to_json().into_bytes()) };
            Ok(())
        },
        |_| {},
    )
}
