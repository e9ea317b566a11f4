//! Receipt-time PDU computations: the event id, the content hash, the redacted form.

use roomgraph::canonical_json::{JsonValue, to_canonical_vec};
use roomgraph::pdu::Pdu;
use roomgraph::redaction::redact;
use roomgraph::room_version::RoomVersion;

use crate::error::{Failure, emit, guarded, input, input_str, roomgraph_result};

/// What to compute from one PDU.
enum PduOutput {
    EventId,
    ContentHash,
    Redacted,
}

/// The PDU's version and bytes, read and parsed.
unsafe fn parsed<'a>(
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
) -> Result<(Pdu<'a>, &'static RoomVersion), Failure> {
    // SAFETY: forwarded caller contract.
    let version_id = unsafe { input_str(version, version_len, "version") }?;
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { input(pdu, pdu_len, "pdu") }?;
    let version = RoomVersion::from_id(version_id).map_err(|e| {
        Failure::new(
            roomgraph_result::ROOMGRAPH_UNKNOWN_ROOM_VERSION,
            e.to_string(),
        )
    })?;
    let pdu = Pdu::parse(bytes, version)
        .map_err(|e| Failure::new(roomgraph_result::ROOMGRAPH_INVALID_PDU, e.to_string()))?;
    Ok((pdu, version))
}

#[allow(clippy::too_many_arguments)]
unsafe fn pdu_op(
    op: PduOutput,
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    guarded(
        || {
            // SAFETY: forwarded caller contract.
            let (pdu, version) = unsafe { parsed(version, version_len, pdu, pdu_len) }?;
            let data = match op {
                PduOutput::EventId => pdu.event_id.as_bytes().to_vec(),
                PduOutput::ContentHash => pdu.content_hash_base64().into_bytes(),
                PduOutput::Redacted => {
                    to_canonical_vec(&JsonValue::Object(redact(&pdu.json, version.redaction)))
                }
            };
            // SAFETY: forwarded caller contract.
            unsafe { emit(&data, out, out_cap, out_len) }
        },
        |_| {},
    )
}

/// Computes the event id of a federation-format PDU of room version `version` (e.g. `"11"`).
///
/// # Safety
/// `version`/`pdu` valid for reads of their lengths; `out` valid for writes of `out_cap` bytes;
/// `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_event_id(
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        pdu_op(
            PduOutput::EventId,
            version,
            version_len,
            pdu,
            pdu_len,
            out,
            out_cap,
            out_len,
        )
    }
}

/// Computes the unpadded base64 SHA-256 content hash of a PDU.
///
/// # Safety
/// `version`/`pdu` valid for reads of their lengths; `out` valid for writes of `out_cap` bytes;
/// `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_content_hash(
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        pdu_op(
            PduOutput::ContentHash,
            version,
            version_len,
            pdu,
            pdu_len,
            out,
            out_cap,
            out_len,
        )
    }
}

/// Writes the redacted PDU as canonical JSON.
///
/// # Safety
/// `version`/`pdu` valid for reads of their lengths; `out` valid for writes of `out_cap` bytes;
/// `out_len` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn roomgraph_redact(
    version: *const u8,
    version_len: usize,
    pdu: *const u8,
    pdu_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> roomgraph_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        pdu_op(
            PduOutput::Redacted,
            version,
            version_len,
            pdu,
            pdu_len,
            out,
            out_cap,
            out_len,
        )
    }
}
