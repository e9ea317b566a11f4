//! C FFI for roomgraph (`include/roomgraph.h`).
//!
//! Conventions: every entry point returns a [`RgResult`] and catches panics; output buffers are written
//! only on success and the written length is always reported through `out_len` (on
//! [`RgResult::BufferTooSmall`], `out_len` holds the size needed). Inputs are byte buffers with lengths,
//! never NUL-terminated strings.

use std::panic::{AssertUnwindSafe, catch_unwind};

use roomgraph::canonical_json::{JsonValue, to_canonical_vec};
use roomgraph::pdu::Pdu;
use roomgraph::redaction::redact;
use roomgraph::room_version::RoomVersion;

/// Result codes of the C API.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RgResult {
    Ok = 0,
    /// A pointer argument was null.
    NullArgument = 1,
    /// The room version is not one of 1–12.
    UnknownRoomVersion = 2,
    /// The PDU is not valid for its room version (JSON, schema or size limits).
    InvalidPdu = 3,
    /// The output buffer is too small; `out_len` holds the size needed.
    BufferTooSmall = 4,
    /// An internal error (a caught panic). Never expected; please report it.
    Internal = 255,
}

/// # Safety
/// `ptr` must be valid for reads of `len` bytes (or null, which is reported).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Copies `data` to the caller's buffer if it fits; always reports the length.
///
/// # Safety
/// `out` must be valid for writes of `out_cap` bytes; `out_len` must be valid for a write.
unsafe fn emit(data: &[u8], out: *mut u8, out_cap: usize, out_len: *mut usize) -> RgResult {
    // SAFETY: checked non-null by the callers; valid per the caller's contract.
    unsafe { *out_len = data.len() };
    if data.len() > out_cap {
        return RgResult::BufferTooSmall;
    }
    // SAFETY: `out` is valid for `out_cap >= data.len()` bytes and does not overlap `data`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len()) };
    RgResult::Ok
}

fn guarded(f: impl FnOnce() -> RgResult) -> RgResult {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(RgResult::Internal)
}

/// What to compute from one PDU.
enum PduOutput {
    EventId,
    ContentHash,
    Redacted,
}

/// A caller's output buffer: `ptr` for `cap` bytes, and where to write the length.
struct OutBuf {
    ptr: *mut u8,
    cap: usize,
    len: *mut usize,
}

unsafe fn pdu_op(
    op: PduOutput,
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
    out: OutBuf,
) -> RgResult {
    let OutBuf {
        ptr: out,
        cap: out_cap,
        len: out_len,
    } = out;
    guarded(|| {
        // SAFETY: forwarded caller contract.
        let (Some(version), Some(pdu)) = (unsafe { bytes(version, version_len) }, unsafe {
            bytes(pdu, pdu_len)
        }) else {
            return RgResult::NullArgument;
        };
        if out_len.is_null() || (out.is_null() && out_cap > 0) {
            return RgResult::NullArgument;
        }
        let Ok(version) = std::str::from_utf8(version)
            .map_err(|_| ())
            .and_then(|v| RoomVersion::from_id(v).map_err(|_| ()))
        else {
            return RgResult::UnknownRoomVersion;
        };
        let Ok(pdu) = Pdu::parse(pdu, version) else {
            return RgResult::InvalidPdu;
        };
        let data = match op {
            PduOutput::EventId => pdu.event_id.as_bytes().to_vec(),
            PduOutput::ContentHash => pdu.content_hash_base64().into_bytes(),
            PduOutput::Redacted => {
                to_canonical_vec(&JsonValue::Object(redact(&pdu.json, version.redaction)))
            }
        };
        // SAFETY: `out`/`out_len` checked above; validity per caller contract.
        unsafe { emit(&data, out, out_cap, out_len) }
    })
}

/// Defines one exported PDU entry point: `(version, pdu) -> out` computing `$output`.
macro_rules! pdu_entry_point {
    ($(#[$doc:meta])* $name:ident => $output:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `version`/`pdu` valid for reads of their lengths; `out` valid for writes of `out_cap`
        /// bytes; `out_len` valid for a write.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            version: *const u8,
            version_len: usize,
            pdu: *const u8,
            pdu_len: usize,
            out: *mut u8,
            out_cap: usize,
            out_len: *mut usize,
        ) -> RgResult {
            let out = OutBuf { ptr: out, cap: out_cap, len: out_len };
            // SAFETY: forwarded caller contract.
            unsafe { pdu_op($output, version, version_len, pdu, pdu_len, out) }
        }
    };
}

pdu_entry_point!(
    /// Computes the event id of a federation-format PDU of room version `version` (e.g. `"11"`).
    roomgraph_event_id => PduOutput::EventId
);
pdu_entry_point!(
    /// Computes the unpadded base64 SHA-256 content hash of a PDU.
    roomgraph_content_hash => PduOutput::ContentHash
);
pdu_entry_point!(
    /// Writes the redacted PDU as canonical JSON.
    roomgraph_redact => PduOutput::Redacted
);

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = include_str!("../../datasets/sample-room-v11.ndjson");

    fn call(
        f: unsafe extern "C" fn(
            *const u8,
            usize,
            *const u8,
            usize,
            *mut u8,
            usize,
            *mut usize,
        ) -> RgResult,
        version: &str,
        pdu: &[u8],
        cap: usize,
    ) -> (RgResult, Vec<u8>, usize) {
        let mut out = vec![0u8; cap];
        let mut len = 0usize;
        // SAFETY: all buffers are valid for their stated lengths.
        let r = unsafe {
            f(
                version.as_ptr(),
                version.len(),
                pdu.as_ptr(),
                pdu.len(),
                out.as_mut_ptr(),
                cap,
                &mut len,
            )
        };
        (r, out, len)
    }

    #[test]
    fn event_id_round_trip_and_buffer_sizes() {
        let line = CREATE.lines().next().expect("line").as_bytes();
        let expected = include_str!("../../datasets/sample-room-v11.ids")
            .lines()
            .next()
            .expect("id");
        let (r, out, len) = call(roomgraph_event_id, "11", line, 128);
        assert_eq!(r, RgResult::Ok);
        assert_eq!(&out[..len], expected.as_bytes());
        let (r, out, len) = call(roomgraph_event_id, "11", line, 10);
        assert_eq!((r, len), (RgResult::BufferTooSmall, expected.len()));
        assert!(out.iter().all(|&b| b == 0), "nothing written on failure");
    }

    #[test]
    fn errors_are_codes() {
        let line = CREATE.lines().next().expect("line").as_bytes();
        assert_eq!(
            call(roomgraph_event_id, "99", line, 64).0,
            RgResult::UnknownRoomVersion
        );
        assert_eq!(
            call(roomgraph_event_id, "11", b"{", 64).0,
            RgResult::InvalidPdu
        );
        assert_eq!(call(roomgraph_content_hash, "11", line, 64).0, RgResult::Ok);
        assert_eq!(call(roomgraph_redact, "11", line, 4096).0, RgResult::Ok);
        let mut len = 0;
        // SAFETY: null pointers are the thing under test; they are never dereferenced.
        let r = unsafe {
            roomgraph_event_id(
                std::ptr::null(),
                0,
                line.as_ptr(),
                line.len(),
                std::ptr::null_mut(),
                0,
                &mut len,
            )
        };
        assert_eq!(r, RgResult::NullArgument);
    }
}
