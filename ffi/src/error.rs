//! Result codes, the panic boundary, and the detail of the last failure.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The result of every roomgraph function.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum roomgraph_result {
    ROOMGRAPH_OK = 0,
    /// A pointer argument was null.
    ROOMGRAPH_NULL_ARGUMENT = 1,
    /// The room version is not one of 1–12.
    ROOMGRAPH_UNKNOWN_ROOM_VERSION = 2,
    /// The PDU is not valid for its room version (JSON, schema or size limits).
    ROOMGRAPH_INVALID_PDU = 3,
    /// The output buffer is too small; `*out_len` holds the size needed.
    ROOMGRAPH_BUFFER_TOO_SMALL = 4,
    /// The request document is refused, as the command line refuses it (malformed JSON, an event
    /// missing from `events`, an unknown id...). The detail says which.
    ROOMGRAPH_INVALID_REQUEST = 5,
    /// An unknown room or event.
    ROOMGRAPH_NOT_FOUND = 6,
    /// The store failed (I/O, corruption, a lock held by another process) or the engine is unusable
    /// after an earlier failed commit.
    ROOMGRAPH_STORE_ERROR = 7,
    /// The event is stored as an outlier: it has no state.
    ROOMGRAPH_OUTLIER = 8,
    /// The session is finished or failed: begin another.
    ROOMGRAPH_SESSION_FINISHED = 9,
    /// A panic inside roomgraph was caught. Never expected; please report it with the detail.
    ROOMGRAPH_PANIC = 255,
}

use roomgraph_result::*;

impl roomgraph_result {
    fn message(self) -> &'static str {
        match self {
            ROOMGRAPH_OK => "ok",
            ROOMGRAPH_NULL_ARGUMENT => "a pointer argument was null",
            ROOMGRAPH_UNKNOWN_ROOM_VERSION => "unknown room version",
            ROOMGRAPH_INVALID_PDU => "the PDU is not valid for its room version",
            ROOMGRAPH_BUFFER_TOO_SMALL => "the output buffer is too small",
            ROOMGRAPH_INVALID_REQUEST => "the request document is refused",
            ROOMGRAPH_NOT_FOUND => "unknown room or event",
            ROOMGRAPH_STORE_ERROR => "the store failed",
            ROOMGRAPH_OUTLIER => "the event is an outlier: it has no state",
            ROOMGRAPH_SESSION_FINISHED => "the resolution session is finished",
            ROOMGRAPH_PANIC => "roomgraph panicked (a bug; the call had no effect on stored data)",
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A failure: its code and what went wrong.
pub(crate) struct Failure {
    pub code: roomgraph_result,
    pub detail: String,
}

impl Failure {
    pub fn new(code: roomgraph_result, detail: impl Into<String>) -> Failure {
        Failure {
            code,
            detail: detail.into(),
        }
    }

    pub fn null(what: &str) -> Failure {
        Failure::new(ROOMGRAPH_NULL_ARGUMENT, format!("`{what}` is null"))
    }
}

/// Runs `f` behind the panic boundary, records the detail of a failure for this thread (and returns
/// it to `on_failure`, for a handle's own record), and returns the code.
pub(crate) fn guarded(
    f: impl FnOnce() -> Result<(), Failure>,
    on_failure: impl FnOnce(&str),
) -> roomgraph_result {
    let (code, detail) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return ROOMGRAPH_OK,
        Ok(Err(failure)) => (failure.code, failure.detail),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            (ROOMGRAPH_PANIC, format!("roomgraph panicked: {what}"))
        }
    };
    on_failure(&detail);
    LAST_ERROR.with(|cell| {
        if let Ok(mut last) = cell.try_borrow_mut() {
            *last = detail;
        }
    });
    code
}

/// # Safety
/// `ptr` must be valid for reads of `len` bytes, or null.
pub(crate) unsafe fn input<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Failure::null(what));
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// As [`input`]; the bytes must also be UTF-8 (else `ROOMGRAPH_INVALID_REQUEST`).
pub(crate) unsafe fn input_str<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a str, Failure> {
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { input(ptr, len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            ROOMGRAPH_INVALID_REQUEST,
            format!("`{what}` is not UTF-8: {e}"),
        )
    })
}

/// Copies `data` into the caller's buffer if it fits; always reports the length.
///
/// # Safety
/// `out` valid for writes of `out_cap` bytes (may be null when `out_cap` is 0); `out_len` valid for
/// a write (checked non-null here).
pub(crate) unsafe fn emit(
    data: &[u8],
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    if out_len.is_null() {
        return Err(Failure::null("out_len"));
    }
    if out.is_null() && out_cap > 0 {
        return Err(Failure::null("out"));
    }
    // SAFETY: `out_len` is non-null and valid per the caller's contract.
    unsafe { *out_len = data.len() };
    if data.len() > out_cap {
        return Err(Failure::new(
            ROOMGRAPH_BUFFER_TOO_SMALL,
            format!("{} bytes needed, {out_cap} given", data.len()),
        ));
    }
    // SAFETY: `out` is valid for `out_cap >= data.len()` bytes and does not overlap `data`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len()) };
    Ok(())
}

/// Writes the description of `code` (e.g. "the store failed") into `buf`.
///
/// # Safety
/// `buf` valid for writes of `cap` bytes (or null with `cap` 0); `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_error_message(
    code: roomgraph_result,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    guarded(
        // SAFETY: forwarded caller contract.
        || unsafe { emit(code.message().as_bytes(), buf, cap, out_len) },
        |_| {},
    )
}

/// Writes the detail of this thread's last failed call (empty if none failed yet) into `buf`: what
/// went wrong, where, and for refused events which rule. A call that succeeds leaves it as it was.
///
/// # Safety
/// `buf` valid for writes of `cap` bytes (or null with `cap` 0); `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_last_error(
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    let detail = LAST_ERROR.with(|cell| cell.try_borrow().map(|s| s.clone()).unwrap_or_default());
    // SAFETY: forwarded caller contract.
    unsafe { emit_detail(&detail, buf, cap, out_len) }
}

/// Writes a recorded failure detail: behind the panic boundary, but not through [`guarded`], since
/// reading the detail must not replace it.
///
/// # Safety
/// As [`emit`].
pub(crate) unsafe fn emit_detail(
    detail: &str,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    match catch_unwind(AssertUnwindSafe(|| unsafe {
        emit(detail.as_bytes(), buf, cap, out_len)
    })) {
        Ok(Ok(())) => ROOMGRAPH_OK,
        Ok(Err(f)) => f.code,
        Err(_) => ROOMGRAPH_PANIC,
    }
}
