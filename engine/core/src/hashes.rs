//! Content hash and reference hash of a PDU (spec server-server API, "Calculating the content hash for an
//! event" and "Calculating the reference hash for an event").

use crate::canonical_json::{JsonObject, Sink, sha256_of, write_object_filtered};
use crate::redaction::{RawEntries, write_redacted_for_hash};
use crate::room_version::{EventIdFormat, RoomVersion};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// SHA-256 over the canonical JSON of the full event without `unsigned`, `signatures` and `hashes`.
pub fn content_hash(event: &JsonObject<'_>) -> Sha256Digest {
    sha256_of(|out| {
        write_object_filtered(event, out, |k, v| match k {
            "unsigned" | "signatures" | "hashes" => None,
            _ => Some(v),
        })
    })
}

/// SHA-256 over the canonical JSON of the redacted event without `signatures` and `unsigned`.
///
/// From room version 3 the federation format has no `event_id`; a stray one (added by a client-side
/// copy) is ignored rather than silently changing the hash. The reference hash of a v1/v2 event covers
/// its `event_id`, which is part of the event there.
pub fn reference_hash(event: &JsonObject<'_>, version: &RoomVersion) -> Sha256Digest {
    reference_hash_raw(event, version, None)
}

/// [`reference_hash`], copying kept entries from the canonical input the event was parsed from.
pub(crate) fn reference_hash_raw(
    event: &JsonObject<'_>,
    version: &RoomVersion,
    raw: Option<RawEntries<'_>>,
) -> Sha256Digest {
    sha256_of(|out| write_reference_input(event, version, raw, out))
}

/// The canonical JSON the reference hash covers — the redacted event without `signatures`, `unsigned`
/// and (from v3) a stray `event_id` — which is also what a server signs (spec appendix "Signing events").
pub(crate) fn write_reference_input(
    event: &JsonObject<'_>,
    version: &RoomVersion,
    raw: Option<RawEntries<'_>>,
    out: &mut impl Sink,
) {
    let also_drop: &[&str] = match version.event_id_format {
        EventIdFormat::ServerChosen => &[],
        _ => &["event_id"],
    };
    write_redacted_for_hash(event, version.redaction, also_drop, raw, out)
}

/// Unpadded standard base64, the encoding of `hashes.sha256` and of v3 event ids.
pub fn base64_standard(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Unpadded URL-safe base64, the encoding of v4+ event ids.
pub fn base64_url_safe(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded (or padded) standard base64, as found in `hashes.sha256`.
pub fn decode_base64_standard(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    STANDARD_NO_PAD.decode(trimmed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::{NumberPolicy, parse_object};

    /// Spec appendix "Cryptographic test vectors": the minimal event and the message event.
    #[test]
    fn spec_content_hash_vectors() {
        let minimal = r#"{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},"origin":"domain","origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain","sender":"@a:domain","signatures":{"domain":{"ed25519:1":"KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},"type":"X","unsigned":{"age_ts":1000000}}"#;
        let obj = parse_object(minimal.as_bytes(), NumberPolicy::Strict).expect("valid");
        assert_eq!(
            base64_standard(&content_hash(&obj)),
            "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
        );

        let message = r#"{"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain","origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain","signatures":{},"unsigned":{"age_ts":1000000}}"#;
        let obj = parse_object(message.as_bytes(), NumberPolicy::Strict).expect("valid");
        assert_eq!(
            base64_standard(&content_hash(&obj)),
            "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
        );
    }

    /// The reference-hash id of the spec's minimal signed event (derived in the digest, §5.1 item 5).
    #[test]
    fn reference_hash_of_spec_minimal_event() {
        let minimal = r#"{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},"origin":"domain","origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain","sender":"@a:domain","signatures":{"domain":{"ed25519:1":"KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},"type":"X","unsigned":{"age_ts":1000000}}"#;
        let obj = parse_object(minimal.as_bytes(), NumberPolicy::Strict).expect("valid");
        let v4 = RoomVersion::from_id("4").expect("known");
        assert_eq!(
            base64_url_safe(&reference_hash(&obj, v4)),
            "8yif6p8EqgoSten2BLje9ntKm720NyFLWQv9tn8memc"
        );
    }
}
