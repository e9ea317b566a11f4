//! Event ids for every room version, and the v12 room id derived from the create event.
//!
//! v1/v2: the id is chosen by the origin server and carried as `event_id` (spec "Event IDs", v1).
//! v3: `$` + standard unpadded base64 of the reference hash; v4+: the URL-safe alphabet (spec v3/v4
//! "Event IDs"). v12: the room id is the create event's id with `!` instead of `$` (MSC4291).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::canonical_json::JsonObject;
use crate::hashes::{Sha256Digest, reference_hash_raw};
use crate::redaction::RawEntries;
use crate::room_version::{EventIdFormat, RoomVersion};

/// Longest identifier the spec allows (event, room and user ids, `type` and `state_key`), in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// Why an event id cannot be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventIdError {
    #[error("pdu: key `event_id` is required in room version {0}")]
    Missing(&'static str),
    #[error("pdu: key `event_id` is not a valid v1/v2 event id ({0})")]
    Invalid(String),
}

/// The event id of `event` under `version`.
pub fn event_id(event: &JsonObject<'_>, version: &RoomVersion) -> Result<String, EventIdError> {
    event_id_raw(event, version, None)
}

/// [`event_id`], hashing entries copied from the canonical input the event was parsed from.
pub(crate) fn event_id_raw(
    event: &JsonObject<'_>,
    version: &RoomVersion,
    raw: Option<RawEntries<'_>>,
) -> Result<String, EventIdError> {
    match version.event_id_format {
        EventIdFormat::ServerChosen => {
            let id = event
                .get("event_id")
                .and_then(|v| v.as_str())
                .ok_or(EventIdError::Missing(version.id))?;
            check_server_chosen_id(id).map_err(EventIdError::Invalid)?;
            Ok(id.to_owned())
        }
        EventIdFormat::ReferenceHashStandard => Ok(dollar_base64(
            &STANDARD_NO_PAD,
            &reference_hash_raw(event, version, raw),
        )),
        EventIdFormat::ReferenceHashUrlSafe => Ok(dollar_base64(
            &URL_SAFE_NO_PAD,
            &reference_hash_raw(event, version, raw),
        )),
    }
}

/// `$` + unpadded base64 of a digest, in one allocation of the exact size (44 bytes).
fn dollar_base64(engine: &impl Engine, digest: &Sha256Digest) -> String {
    let mut id = String::with_capacity(1 + 43);
    id.push('$');
    engine.encode_string(digest, &mut id);
    id
}

/// Checks the grammar of a v1/v2 event id: `$opaque:domain`, at most 255 bytes.
pub fn check_server_chosen_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("{} bytes, limit {MAX_ID_BYTES}", id.len()));
    }
    let Some(rest) = id.strip_prefix('$') else {
        return Err(format!("`{}` does not start with `$`", truncate(id)));
    };
    match rest.split_once(':') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(()),
        _ => Err(format!(
            "`{}` is not of the form `$opaque:domain`",
            truncate(id)
        )),
    }
}

/// The v12 room id of a room whose create event has id `create_event_id` (`$x` → `!x`).
pub fn room_id_from_create_event_id(create_event_id: &str) -> String {
    let opaque = create_event_id.strip_prefix('$').unwrap_or(create_event_id);
    format!("!{opaque}")
}

/// The create event id implied by a v12 room id (`!x` → `$x`).
pub fn create_event_id_from_room_id(room_id: &str) -> String {
    let opaque = room_id.strip_prefix('!').unwrap_or(room_id);
    format!("${opaque}")
}

pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::{NumberPolicy, parse_object};

    #[test]
    fn v1_ids_are_validated() {
        let v1 = RoomVersion::from_id("1").expect("known");
        let ok = parse_object(br#"{"event_id":"$abc:example.org"}"#, NumberPolicy::Lenient)
            .expect("json");
        assert_eq!(event_id(&ok, v1).as_deref(), Ok("$abc:example.org"));
        for bad in [
            r#"{}"#,
            r#"{"event_id":"abc:x"}"#,
            r#"{"event_id":"$abc"}"#,
            r#"{"event_id":5}"#,
        ] {
            let obj = parse_object(bad.as_bytes(), NumberPolicy::Lenient).expect("json");
            assert!(event_id(&obj, v1).is_err(), "{bad}");
        }
    }

    #[test]
    fn v3_and_v4_alphabets_differ_only_in_symbols() {
        let obj = parse_object(br#"{"type":"x","content":{"a":7},"room_id":"!r:x","sender":"@u:x","depth":1,"auth_events":[],"prev_events":[],"origin_server_ts":0,"hashes":{"sha256":""},"signatures":{}}"#, NumberPolicy::Strict).expect("json");
        let v3 = event_id(&obj, RoomVersion::from_id("3").expect("known")).expect("id");
        let v4 = event_id(&obj, RoomVersion::from_id("4").expect("known")).expect("id");
        assert_eq!(v3.len(), 44);
        assert_eq!(v3.replace('+', "-").replace('/', "_"), v4);
    }

    #[test]
    fn room_id_round_trip() {
        assert_eq!(room_id_from_create_event_id("$abc"), "!abc");
        assert_eq!(create_event_id_from_room_id("!abc"), "$abc");
    }
}
