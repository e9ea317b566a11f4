//! A federation-format PDU, parsed once, checked against its room version's schema and size limits.
//!
//! Spec: server-server API "PDUs" and `pdu_v1`…`pdu_v12` schemas; client-server API "Size limits".
//! The JSON tree borrows from the input buffer; the typed fields below are borrowed views into it
//! (copied only when the JSON string contained escapes). Unknown keys are kept: they are covered by the
//! content hash and removed by redaction.

use std::borrow::Cow;
use std::cell::RefCell;

use smallvec::SmallVec;

use crate::canonical_json::{
    CountingSink, EntrySpans, InputForm, JsonError, JsonObject, JsonValue, NumberPolicy,
    parse_with_spans, sha256_of, write_object, write_without_whitespace,
};
use crate::event_id::{
    EventIdError, MAX_ID_BYTES, check_server_chosen_id, create_event_id_from_room_id, event_id_raw,
    room_id_from_create_event_id, truncate,
};
use crate::hashes::{Sha256Digest, base64_standard, content_hash, decode_base64_standard};
use crate::limits::{MAX_AUTH_EVENTS, MAX_PDU_BYTES, MAX_PREV_EVENTS};
use crate::redaction::RawEntries;
use crate::room_version::RoomVersion;

/// Why a PDU is not well-formed for its room version. Each variant names the key and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PduError {
    #[error("pdu: {0}")]
    Json(#[from] JsonError),
    #[error("pdu: key `{field}` is required")]
    Missing { field: &'static str },
    #[error("pdu: key `{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("pdu: key `{field}` is {len} bytes, limit {max}")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("pdu: key `{field}` has {len} entries, limit {max}")]
    TooMany {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("pdu: event is {size} bytes as canonical JSON, limit {max}")]
    TooLarge { size: usize, max: usize },
    #[error("pdu: key `depth` is {depth}, allowed range 0..={max} in room version {version}")]
    DepthOutOfRange {
        depth: i64,
        max: i64,
        version: &'static str,
    },
    #[error("pdu: key `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("pdu: key `room_id` must be absent on an m.room.create event in room version {0}")]
    CreateHasRoomId(&'static str),
    #[error("{0}")]
    EventId(#[from] EventIdError),
}

/// A well-formed PDU of a known room version with its event id.
#[derive(Debug, Clone)]
pub struct Pdu<'a> {
    pub version: &'static RoomVersion,
    /// The whole event, as received (federation format).
    pub json: JsonObject<'a>,
    pub event_id: Cow<'a, str>,
    /// The room id; for a v12 create event, derived from its event id.
    pub room_id: Cow<'a, str>,
    pub sender: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub state_key: Option<Cow<'a, str>>,
    pub origin_server_ts: i64,
    pub depth: i64,
    /// Inline up to 2 (most events have one): no allocation.
    pub prev_events: SmallVec<[Cow<'a, str>; 2]>,
    /// Inline up to 4 (create, power levels, sender, and a target or the join rules).
    pub auth_events: SmallVec<[Cow<'a, str>; 4]>,
    /// The redaction target: top-level `redacts` (v1–v10) or `content.redacts` (v11+).
    pub redacts: Option<Cow<'a, str>>,
    /// The input bytes, when they are the canonical JSON of `json` (the usual case for PDUs received over
    /// federation) or that with whitespace; lets [`Pdu::canonical_json`] skip serialising.
    input: Input<'a>,
}

/// The byte ranges, in canonical input, of the top-level entries (`"key":value`) the content hash leaves
/// out (`hashes`, `signatures`, `unsigned`: at most one each, duplicate keys being refused), in input
/// order.
#[derive(Debug, Clone, Copy, Default)]
struct HashSkips {
    ranges: [(usize, usize); 3],
    len: usize,
}

impl HashSkips {
    fn of(input: &[u8], top: &[std::ops::Range<usize>]) -> HashSkips {
        let mut skips = HashSkips::default();
        for r in top {
            let entry = input.get(r.clone()).unwrap_or_default();
            let left_out = [&b"\"hashes\":"[..], b"\"signatures\":", b"\"unsigned\":"]
                .iter()
                .any(|k| entry.starts_with(k));
            if left_out && skips.len < skips.ranges.len() {
                skips.ranges[skips.len] = (r.start, r.end);
                skips.len += 1;
            }
        }
        skips
    }

    /// Writes the canonical JSON object `input` without the skipped entries: the pieces between them,
    /// each less the one separating comma it keeps at either end, joined by commas.
    fn write_kept(&self, input: &[u8], out: &mut Vec<u8>) {
        let inner_end = input.len().saturating_sub(1);
        out.push(b'{');
        let mut first = true;
        let mut from = 1usize.min(inner_end);
        let ends = self.ranges[..self.len]
            .iter()
            .copied()
            .chain(std::iter::once((inner_end, inner_end)));
        for (start, end) in ends {
            let mut piece = input.get(from..start).unwrap_or_default();
            piece = piece.strip_prefix(b",").unwrap_or(piece);
            piece = piece.strip_suffix(b",").unwrap_or(piece);
            if !piece.is_empty() {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(piece);
                first = false;
            }
            from = end;
        }
        out.push(b'}');
    }
}

/// The input bytes of a [`Pdu`], as far as they can stand for its canonical JSON.
#[derive(Debug, Clone, Copy)]
enum Input<'a> {
    /// The canonical JSON itself, and where in it the top-level entries the content hash leaves out are.
    Canonical(&'a [u8], HashSkips),
    /// The canonical JSON with whitespace between tokens (pretty-printed).
    CanonicalButWhitespace(&'a [u8]),
    /// Not known to be either (built from a tree, owned copy, or keys out of order, optional escapes…).
    Other,
    /// A [`Pdu::detached`] header: `json` holds only some of the event's entries.
    Detached,
}

impl<'a> Pdu<'a> {
    /// Parses and checks `input` as a PDU of `version`, computing its event id.
    pub fn parse(input: &'a [u8], version: &'static RoomVersion) -> Result<Pdu<'a>, PduError> {
        let policy = if version.strict_canonical_json {
            NumberPolicy::Strict
        } else {
            NumberPolicy::Lenient
        };
        thread_local! {
            static SPANS: RefCell<EntrySpans> = RefCell::new(EntrySpans::default());
        }
        SPANS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut spans) => {
                let result = Pdu::parse_with(input, version, policy, &mut spans);
                // Input is measured against the size limit only after reading, so an oversized one
                // can leave large buffers behind; do not keep them for the thread's lifetime.
                spans.shrink_if_large();
                result
            }
            // Re-entrant use (never expected): fresh buffers.
            Err(_) => Pdu::parse_with(input, version, policy, &mut EntrySpans::default()),
        })
    }

    fn parse_with(
        input: &'a [u8],
        version: &'static RoomVersion,
        policy: NumberPolicy,
        spans: &mut EntrySpans,
    ) -> Result<Pdu<'a>, PduError> {
        let (json, form) = match parse_with_spans(input, policy, Some(spans))? {
            (JsonValue::Object(o), form) => (o, form),
            _ => return Err(JsonError::NotAnObject { path: "$".into() }.into()),
        };

        // Canonical input is its own canonical size (less its whitespace); in strict mode canonical JSON
        // is never longer than its input (numbers are plain integers, escapes only shrink). Either way
        // short inputs need no second pass to check the size limit.
        let size_known_ok = (form != InputForm::Other || version.strict_canonical_json)
            && input.len() <= MAX_PDU_BYTES;
        // Canonical input (with or without whitespace): the reference hash copies the kept entries
        // from it.
        let raw = (form != InputForm::Other).then_some(RawEntries {
            input,
            form,
            top: &spans.top,
            content: &spans.content,
        });
        let mut pdu = Pdu::from_json_inner(json, version, size_known_ok, raw)?;
        pdu.input = match form {
            InputForm::Canonical => Input::Canonical(input, HashSkips::of(input, &spans.top)),
            InputForm::CanonicalButWhitespace => Input::CanonicalButWhitespace(input),
            InputForm::Other => Input::Other,
        };
        Ok(pdu)
    }

    /// Checks an already parsed object as a PDU of `version`.
    pub fn from_json(
        json: JsonObject<'a>,
        version: &'static RoomVersion,
    ) -> Result<Pdu<'a>, PduError> {
        Pdu::from_json_inner(json, version, false, None)
    }

    fn from_json_inner(
        json: JsonObject<'a>,
        version: &'static RoomVersion,
        size_known_ok: bool,
        raw: Option<RawEntries<'_>>,
    ) -> Result<Pdu<'a>, PduError> {
        if !size_known_ok {
            let mut counter = CountingSink::default();
            write_object(&json, &mut counter);
            if counter.0 > MAX_PDU_BYTES {
                return Err(PduError::TooLarge {
                    size: counter.0,
                    max: MAX_PDU_BYTES,
                });
            }
        }
        let top = TopLevel::of(&json);
        let event_type = required_str(top.event_type, "type")?;
        let sender = required_str(top.sender, "sender")?;
        check_user_id("sender", &sender)?;
        let state_key = optional_str(top.state_key, "state_key")?;
        if let Some(sk) = &state_key {
            check_len("state_key", sk)?;
        }
        let origin_server_ts = required_int(top.origin_server_ts, "origin_server_ts")?;
        let depth = required_int(top.depth, "depth")?;
        if !(0..=version.max_depth).contains(&depth) {
            return Err(PduError::DepthOutOfRange {
                depth,
                max: version.max_depth,
                version: version.id,
            });
        }
        let content = match top.content {
            Some(JsonValue::Object(c)) => c,
            Some(other) => return Err(wrong_type("content", "an object", other)),
            None => return Err(PduError::Missing { field: "content" }),
        };
        match top.hashes {
            Some(JsonValue::Object(h)) => match h.get("sha256") {
                Some(JsonValue::String(_)) => {}
                Some(other) => return Err(wrong_type("hashes.sha256", "a string", other)),
                None => {
                    return Err(PduError::Missing {
                        field: "hashes.sha256",
                    });
                }
            },
            Some(other) => return Err(wrong_type("hashes", "an object", other)),
            None => return Err(PduError::Missing { field: "hashes" }),
        }
        match top.signatures {
            Some(JsonValue::Object(_)) => {}
            Some(other) => return Err(wrong_type("signatures", "an object", other)),
            None => {
                return Err(PduError::Missing {
                    field: "signatures",
                });
            }
        }
        if let Some(unsigned) = top.unsigned
            && !matches!(unsigned, JsonValue::Object(_))
        {
            return Err(wrong_type("unsigned", "an object", unsigned));
        }
        let prev_events = event_refs(top.prev_events, "prev_events", version, MAX_PREV_EVENTS)?;
        let auth_events = event_refs(top.auth_events, "auth_events", version, MAX_AUTH_EVENTS)?;

        let redacts = if version.redacts_in_content {
            match content.get("redacts") {
                Some(JsonValue::String(s)) => Some(s.clone()),
                _ => None,
            }
        } else {
            optional_str(top.redacts, "redacts")?
        };

        let is_create = event_type == "m.room.create" && state_key.as_deref() == Some("");
        let event_id: Cow<'a, str> = Cow::Owned(event_id_raw(&json, version, raw)?);
        check_len("event_id", &event_id)?;
        let room_id = if version.room_id_from_create && is_create {
            if top.room_id.is_some() {
                return Err(PduError::CreateHasRoomId(version.id));
            }
            Cow::Owned(room_id_from_create_event_id(&event_id))
        } else {
            let room_id = required_str(top.room_id, "room_id")?;
            if !room_id.starts_with('!') {
                return Err(PduError::Invalid {
                    field: "room_id".into(),
                    reason: format!("`{}` does not start with `!`", truncate(&room_id)),
                });
            }
            room_id
        };
        check_len("room_id", &room_id)?;
        check_len("type", &event_type)?;

        Ok(Pdu {
            version,
            json,
            event_id,
            room_id,
            sender,
            event_type,
            state_key,
            origin_server_ts,
            depth,
            prev_events,
            auth_events,
            redacts,
            input: Input::Other,
        })
    }

    /// The whole PDU as canonical JSON: the input bytes themselves when they were canonical already, the
    /// input without its whitespace when it was canonical but for whitespace, else a serialisation.
    ///
    /// For a [`Pdu::detached`] header this is the canonical JSON of the entries it kept, not of the event.
    pub fn canonical_json(&self) -> Cow<'_, [u8]> {
        debug_assert!(
            !self.is_detached(),
            "canonical JSON of a detached PDU header"
        );
        match self.input {
            Input::Canonical(bytes, _) => Cow::Borrowed(bytes),
            Input::CanonicalButWhitespace(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                write_without_whitespace(bytes, &mut out);
                Cow::Owned(out)
            }
            Input::Other | Input::Detached => {
                let mut out = Vec::with_capacity(1024);
                write_object(&self.json, &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// The event's `content` object (presence and type were checked at parse time).
    pub fn content(&self) -> &JsonObject<'a> {
        static EMPTY: JsonObject<'static> = JsonObject::EMPTY;
        match self.json.get("content") {
            Some(JsonValue::Object(c)) => c,
            _ => &EMPTY,
        }
    }

    /// Whether this is a state event (it has a `state_key`, possibly empty).
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The id of the create event of this event's room, when the room version derives it from the room
    /// id (v12); `None` for earlier versions, where the create event is found among `auth_events`.
    pub fn implied_create_event_id(&self) -> Option<String> {
        self.version
            .room_id_from_create
            .then(|| create_event_id_from_room_id(&self.room_id))
    }

    /// The content hash this event should carry.
    pub fn computed_content_hash(&self) -> Sha256Digest {
        match self.input {
            // Canonical input: hash its bytes less the left-out entries, instead of serialising again.
            Input::Canonical(bytes, skips) => sha256_of(|out| skips.write_kept(bytes, out)),
            _ => content_hash(&self.json),
        }
    }

    /// Whether `hashes.sha256` matches the content (spec "Checks performed on receipt of a PDU", step 3).
    pub fn content_hash_matches(&self) -> bool {
        let claimed = self
            .json
            .get("hashes")
            .and_then(JsonValue::as_object)
            .and_then(|h| h.get("sha256"))
            .and_then(JsonValue::as_str)
            .and_then(decode_base64_standard);
        claimed.as_deref() == Some(&self.computed_content_hash()[..])
    }

    /// The content hash as the unpadded standard base64 found in `hashes.sha256`.
    pub fn content_hash_base64(&self) -> String {
        base64_standard(&self.computed_content_hash())
    }

    /// An owned copy of the header fields (ids, sender, type, state key, depth, timestamps, references)
    /// that keeps of `json` only the top-level entries `keep` selects: for holders that need the header
    /// and facts extracted from the content (ingest's [`crate::auth::AuthEvent::detached`]), not the
    /// event's JSON tree. Its [`Pdu::canonical_json`] and content hash are not the event's.
    pub fn detached(&self, mut keep: impl FnMut(&str) -> bool) -> Pdu<'static> {
        let own = |c: &Cow<'a, str>| -> Cow<'static, str> { Cow::Owned(c.to_string()) };
        let mut json = JsonObject::new();
        for (key, value) in self.json.iter() {
            if keep(key) {
                json.insert(Cow::Owned(key.to_owned()), value.clone().into_owned());
            }
        }
        Pdu {
            version: self.version,
            json,
            event_id: own(&self.event_id),
            room_id: own(&self.room_id),
            sender: own(&self.sender),
            event_type: detached_type(&self.event_type),
            state_key: self.state_key.as_ref().map(own),
            origin_server_ts: self.origin_server_ts,
            depth: self.depth,
            prev_events: self.prev_events.iter().map(own).collect(),
            auth_events: self.auth_events.iter().map(own).collect(),
            redacts: self.redacts.as_ref().map(own),
            input: Input::Detached,
        }
    }

    /// Whether this is a [`Pdu::detached`] header.
    pub fn is_detached(&self) -> bool {
        matches!(self.input, Input::Detached)
    }

    /// Copies every borrowed string, detaching the PDU from the input buffer (the whole JSON kept).
    pub fn into_owned(self) -> Pdu<'static> {
        Pdu {
            input: Input::Other,
            ..self.detached(|_| true)
        }
    }
}

/// Event types common enough that a detached header borrows the name instead of copying it (one
/// allocation less per event held by ingest).
const COMMON_TYPES: [&str; 16] = [
    "m.room.member",
    "m.room.message",
    "m.room.encrypted",
    "m.reaction",
    "m.room.redaction",
    "m.room.create",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.third_party_invite",
];

fn detached_type(event_type: &str) -> Cow<'static, str> {
    match COMMON_TYPES.iter().find(|t| **t == event_type) {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Owned(event_type.to_owned()),
    }
}

fn wrong_type(field: &str, expected: &'static str, found: &JsonValue<'_>) -> PduError {
    PduError::WrongType {
        field: field.to_owned(),
        expected,
        found: found.type_name(),
    }
}

/// The top-level values [`Pdu`] reads, found in one pass over the (sorted) entries instead of one
/// binary search per key.
#[derive(Default)]
struct TopLevel<'v, 'a> {
    auth_events: Option<&'v JsonValue<'a>>,
    content: Option<&'v JsonValue<'a>>,
    depth: Option<&'v JsonValue<'a>>,
    hashes: Option<&'v JsonValue<'a>>,
    origin_server_ts: Option<&'v JsonValue<'a>>,
    prev_events: Option<&'v JsonValue<'a>>,
    redacts: Option<&'v JsonValue<'a>>,
    room_id: Option<&'v JsonValue<'a>>,
    sender: Option<&'v JsonValue<'a>>,
    signatures: Option<&'v JsonValue<'a>>,
    state_key: Option<&'v JsonValue<'a>>,
    event_type: Option<&'v JsonValue<'a>>,
    unsigned: Option<&'v JsonValue<'a>>,
}

impl<'v, 'a> TopLevel<'v, 'a> {
    fn of(json: &'v JsonObject<'a>) -> Self {
        let mut top = TopLevel::default();
        for (key, value) in json.iter() {
            let slot = match key {
                "auth_events" => &mut top.auth_events,
                "content" => &mut top.content,
                "depth" => &mut top.depth,
                "hashes" => &mut top.hashes,
                "origin_server_ts" => &mut top.origin_server_ts,
                "prev_events" => &mut top.prev_events,
                "redacts" => &mut top.redacts,
                "room_id" => &mut top.room_id,
                "sender" => &mut top.sender,
                "signatures" => &mut top.signatures,
                "state_key" => &mut top.state_key,
                "type" => &mut top.event_type,
                "unsigned" => &mut top.unsigned,
                _ => continue,
            };
            *slot = Some(value);
        }
        top
    }
}

fn required_str<'a>(
    value: Option<&JsonValue<'a>>,
    field: &'static str,
) -> Result<Cow<'a, str>, PduError> {
    optional_str(value, field)?.ok_or(PduError::Missing { field })
}

fn optional_str<'a>(
    value: Option<&JsonValue<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, PduError> {
    match value {
        Some(JsonValue::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(field, "a string", other)),
        None => Ok(None),
    }
}

fn required_int(value: Option<&JsonValue<'_>>, field: &'static str) -> Result<i64, PduError> {
    match value {
        Some(JsonValue::Int(i)) => Ok(*i),
        Some(other) => Err(wrong_type(field, "an integer", other)),
        None => Err(PduError::Missing { field }),
    }
}

fn check_len(field: &str, value: &str) -> Result<(), PduError> {
    if value.len() > MAX_ID_BYTES {
        return Err(PduError::TooLong {
            field: field.to_owned(),
            len: value.len(),
            max: MAX_ID_BYTES,
        });
    }
    Ok(())
}

/// User-id grammar as far as events must respect it: `@localpart:server`, ≤ 255 bytes. Historical
/// localparts (any character but `:`) are accepted, as the spec requires inside events.
pub fn check_user_id(field: &str, user_id: &str) -> Result<(), PduError> {
    check_len(field, user_id)?;
    let valid = user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(_, server)| !server.is_empty());
    if valid {
        Ok(())
    } else {
        Err(PduError::Invalid {
            field: field.to_owned(),
            reason: format!(
                "`{}` is not a user id of the form `@localpart:server`",
                truncate(user_id)
            ),
        })
    }
}

/// The server name of a user id (`@a:example.org` → `example.org`).
pub fn server_name(user_id: &str) -> &str {
    user_id.split_once(':').map_or("", |(_, s)| s)
}

/// Parses `prev_events` / `auth_events`: ids (v3+) or `[id, {"sha256": …}]` pairs (v1/v2).
fn event_refs<'a, A: smallvec::Array<Item = Cow<'a, str>>>(
    value: Option<&JsonValue<'a>>,
    field: &'static str,
    version: &RoomVersion,
    max: usize,
) -> Result<SmallVec<A>, PduError> {
    let items = match value {
        Some(JsonValue::Array(items)) => items,
        Some(other) => return Err(wrong_type(field, "an array", other)),
        None => return Err(PduError::Missing { field }),
    };
    if items.len() > max {
        return Err(PduError::TooMany {
            field,
            len: items.len(),
            max,
        });
    }
    let mut ids = SmallVec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = if version.reference_pairs {
            match item.as_array() {
                Some([JsonValue::String(id), JsonValue::Object(_)]) => {
                    check_server_chosen_id(id).map_err(|reason| PduError::Invalid {
                        field: format!("{field}[{i}]"),
                        reason,
                    })?;
                    id
                }
                _ => {
                    return Err(PduError::WrongType {
                        field: format!("{field}[{i}]"),
                        expected: "an [event_id, {\"sha256\": …}] pair",
                        found: item.type_name(),
                    });
                }
            }
        } else {
            match item {
                JsonValue::String(id) if id.starts_with('$') => id,
                JsonValue::String(id) => {
                    return Err(PduError::Invalid {
                        field: format!("{field}[{i}]"),
                        reason: format!("`{}` does not start with `$`", truncate(id)),
                    });
                }
                other => {
                    return Err(wrong_type(
                        &format!("{field}[{i}]"),
                        "an event id string",
                        other,
                    ));
                }
            }
        };
        if id.len() > MAX_ID_BYTES {
            return Err(PduError::TooLong {
                field: format!("{field}[{i}]"),
                len: id.len(),
                max: MAX_ID_BYTES,
            });
        }
        ids.push(id.clone());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(id: &str) -> &'static RoomVersion {
        RoomVersion::from_id(id).expect("known")
    }

    proptest! {
        /// The content hash of canonical input, hashed from its bytes less the left-out entries, equals
        /// the hash of the serialised tree — whichever of `hashes`, `signatures` and `unsigned` are
        /// present, first, last or alone, and whatever commas and braces the values hold.
        #[test]
        fn content_hash_from_canonical_bytes_matches_the_tree(
            entries in proptest::collection::btree_map(
                proptest::sample::select(vec!["a", "content", "hashes", "m", "signatures", "unsigned", "z", ",", "}"]),
                prop_oneof![
                    proptest::string::string_regex("[a-z,{}\\[\\]:\"]{0,6}").expect("regex").prop_map(|s| format!("{s:?}")),
                    (0i64..1000).prop_map(|n| n.to_string()),
                    proptest::string::string_regex("[a-z,}]{0,4}").expect("regex").prop_map(|s| format!("{{\"k,\":{s:?}}}")),
                ],
                0..9,
            )
        ) {
            let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            let text = format!("{{{}}}", body.join(","));
            let mut spans = EntrySpans::default();
            let (value, form) = parse_with_spans(text.as_bytes(), NumberPolicy::Strict, Some(&mut spans))
                .expect("valid JSON");
            prop_assume!(form == InputForm::Canonical);
            let JsonValue::Object(tree) = value else { panic!("an object") };
            let skips = HashSkips::of(text.as_bytes(), &spans.top);
            let from_bytes = sha256_of(|out| skips.write_kept(text.as_bytes(), out));
            prop_assert_eq!(from_bytes, content_hash(&tree), "{}", text);
        }
    }

    const MEMBER_V11: &str = r#"{"auth_events":["$a","$b"],"content":{"membership":"join"},"depth":5,"hashes":{"sha256":"x"},"origin_server_ts":10,"prev_events":["$c"],"room_id":"!r:x","sender":"@u:x","signatures":{},"state_key":"@u:x","type":"m.room.member"}"#;

    #[test]
    fn parses_typed_fields() {
        let pdu = Pdu::parse(MEMBER_V11.as_bytes(), v("11")).expect("valid");
        assert_eq!(pdu.event_type, "m.room.member");
        assert_eq!(pdu.state_key.as_deref(), Some("@u:x"));
        assert_eq!(pdu.auth_events[..], ["$a", "$b"]);
        assert_eq!(pdu.prev_events[..], ["$c"]);
        assert_eq!(pdu.depth, 5);
        assert!(pdu.event_id.starts_with('$') && pdu.event_id.len() == 44);
        assert!(
            matches!(pdu.sender, Cow::Borrowed(_)),
            "strings without escapes are borrowed"
        );
    }

    #[test]
    fn v1_reference_pairs() {
        let json = r#"{"auth_events":[["$a:x",{"sha256":"h"}]],"content":{},"depth":1,"event_id":"$e:x","hashes":{"sha256":"x"},"origin_server_ts":1,"prev_events":[],"room_id":"!r:x","sender":"@u:x","signatures":{},"type":"m.room.message","redacts":"$z:x"}"#;
        let pdu = Pdu::parse(json.as_bytes(), v("1")).expect("valid");
        assert_eq!(pdu.event_id, "$e:x");
        assert_eq!(pdu.auth_events[..], ["$a:x"]);
        assert_eq!(pdu.redacts.as_deref(), Some("$z:x"));
        let plain = json.replace(r#"[["$a:x",{"sha256":"h"}]]"#, r#"["$a:x"]"#);
        assert!(matches!(
            Pdu::parse(plain.as_bytes(), v("1")),
            Err(PduError::WrongType { .. })
        ));
    }

    #[test]
    fn v12_create_derives_room_id() {
        let create = r#"{"auth_events":[],"content":{"room_version":"12"},"depth":1,"hashes":{"sha256":"x"},"origin_server_ts":1,"prev_events":[],"sender":"@u:x","signatures":{},"state_key":"","type":"m.room.create"}"#;
        let pdu = Pdu::parse(create.as_bytes(), v("12")).expect("valid");
        assert_eq!(pdu.room_id[1..], pdu.event_id[1..]);
        assert!(pdu.room_id.starts_with('!'));
        let with_room = create.replace(
            r#""prev_events":[]"#,
            r#""prev_events":[],"room_id":"!r:x""#,
        );
        assert_eq!(
            Pdu::parse(with_room.as_bytes(), v("12")).err(),
            Some(PduError::CreateHasRoomId("12"))
        );
        // A v12 non-create event still needs a room id.
        let msg = create.replace("m.room.create", "m.room.topic");
        assert_eq!(
            Pdu::parse(msg.as_bytes(), v("12")).err(),
            Some(PduError::Missing { field: "room_id" })
        );
    }

    #[test]
    fn detached_types_borrow_common_names_and_copy_others() {
        assert!(matches!(
            detached_type("m.room.member"),
            Cow::Borrowed("m.room.member")
        ));
        assert!(matches!(detached_type("m.room.membe"), Cow::Owned(t) if t == "m.room.membe"));
        assert!(matches!(detached_type("org.example.x"), Cow::Owned(t) if t == "org.example.x"));
    }

    #[test]
    fn into_owned_is_the_same_event() {
        let pdu = Pdu::parse(MEMBER_V11.as_bytes(), v("11")).expect("valid");
        let canonical = pdu.canonical_json().into_owned();
        let hash = pdu.computed_content_hash();
        let (id, sender, t, key, prev, auth) = (
            pdu.event_id.to_string(),
            pdu.sender.to_string(),
            pdu.event_type.to_string(),
            pdu.state_key.as_ref().map(|k| k.to_string()),
            pdu.prev_events.to_vec(),
            pdu.auth_events.to_vec(),
        );
        let owned = pdu.into_owned();
        assert!(!owned.is_detached());
        assert_eq!(owned.canonical_json().as_ref(), canonical.as_slice());
        assert_eq!(owned.computed_content_hash(), hash);
        assert_eq!(
            (&*owned.event_id, &*owned.sender, &*owned.event_type),
            (id.as_str(), sender.as_str(), t.as_str())
        );
        assert_eq!(owned.state_key.as_deref(), key.as_deref());
        assert_eq!(
            (owned.prev_events.to_vec(), owned.auth_events.to_vec()),
            (prev, auth)
        );
    }

    #[test]
    fn detached_keeps_the_header_and_the_chosen_entries() {
        let pdu = Pdu::parse(MEMBER_V11.as_bytes(), v("11")).expect("valid");
        let d = pdu.detached(|key| key == "signatures");
        assert!(d.is_detached() && !pdu.is_detached());
        assert_eq!(
            (
                &d.event_id,
                &d.room_id,
                &d.sender,
                &d.event_type,
                &d.state_key
            ),
            (
                &pdu.event_id,
                &pdu.room_id,
                &pdu.sender,
                &pdu.event_type,
                &pdu.state_key
            )
        );
        assert_eq!(
            (d.depth, d.origin_server_ts),
            (pdu.depth, pdu.origin_server_ts)
        );
        assert_eq!(
            (&d.prev_events, &d.auth_events),
            (&pdu.prev_events, &pdu.auth_events)
        );
        assert_eq!(d.json.len(), 1);
        assert_eq!(d.json.get("signatures"), pdu.json.get("signatures"));
        assert!(d.content().is_empty());
    }

    #[test]
    fn format_errors_name_the_field_and_limit() {
        let cases: Vec<(String, &str)> = vec![
            (
                MEMBER_V11.replace(r#""depth":5"#, r#""depth":"5""#),
                "key `depth` must be an integer, found string",
            ),
            (
                MEMBER_V11.replace(r#""depth":5"#, r#""depth":-1"#),
                "key `depth` is -1",
            ),
            (
                MEMBER_V11.replace(r#""depth":5"#, r#""depth":5.5"#),
                "float 5.5 at `$.depth`",
            ),
            (
                MEMBER_V11.replace(r#""sender":"@u:x""#, r#""sender":"u""#),
                "key `sender`: `u` is not a user id",
            ),
            (
                MEMBER_V11.replace(
                    r#""type":"m.room.member""#,
                    &format!(r#""type":"{}""#, "t".repeat(256)),
                ),
                "key `type` is 256 bytes, limit 255",
            ),
            (
                MEMBER_V11.replace(
                    r#""state_key":"@u:x""#,
                    &format!(r#""state_key":"{}""#, "s".repeat(300)),
                ),
                "key `state_key` is 300 bytes, limit 255",
            ),
            (
                MEMBER_V11.replace(
                    r#""prev_events":["$c"]"#,
                    &format!(r#""prev_events":[{}]"#, [r#""$p""#; 21].join(",")),
                ),
                "key `prev_events` has 21 entries, limit 20",
            ),
            (
                MEMBER_V11.replace(
                    r#""auth_events":["$a","$b"]"#,
                    &format!(r#""auth_events":[{}]"#, [r#""$p""#; 11].join(",")),
                ),
                "key `auth_events` has 11 entries, limit 10",
            ),
            (
                MEMBER_V11.replace(r#""hashes":{"sha256":"x"},"#, ""),
                "key `hashes` is required",
            ),
            (
                MEMBER_V11.replace(r#""content":{"membership":"join"}"#, r#""content":[]"#),
                "key `content` must be an object",
            ),
            (
                MEMBER_V11.replace(r#""auth_events":["$a","$b"]"#, r#""auth_events":["a"]"#),
                "key `auth_events[0]`",
            ),
            (
                MEMBER_V11.replace(r#""room_id":"!r:x""#, r#""room_id":"r""#),
                "key `room_id`",
            ),
            (
                MEMBER_V11.replace(r#""depth":5"#, r#""depth":5,"depth":6"#),
                "duplicate key `depth`",
            ),
            (
                MEMBER_V11.replace(r#""depth":5"#, r#""depth":9007199254740992"#),
                "outside the canonical JSON range",
            ),
            (
                MEMBER_V11.replace(
                    r#""content":{"membership":"join"}"#,
                    &format!(
                        r#""content":{{"membership":"join","pad":"{}"}}"#,
                        "p".repeat(70_000)
                    ),
                ),
                "limit 65536",
            ),
            ("[1]".to_owned(), "not an object"),
            ("{".to_owned(), "invalid JSON"),
        ];
        for (input, expected) in cases {
            let err = Pdu::parse(input.as_bytes(), v("11")).expect_err(expected);
            assert!(
                err.to_string().contains(expected),
                "expected `{expected}` in `{err}`"
            );
        }
    }

    #[test]
    fn canonical_input_is_reused_and_other_input_is_serialised() {
        let canonical = Pdu::parse(MEMBER_V11.as_bytes(), v("11")).expect("valid");
        assert!(matches!(canonical.canonical_json(), Cow::Borrowed(_)));
        assert_eq!(&*canonical.canonical_json(), MEMBER_V11.as_bytes());
        let spaced = MEMBER_V11.replace(",", ", ");
        let pdu = Pdu::parse(spaced.as_bytes(), v("11")).expect("valid");
        assert!(matches!(pdu.canonical_json(), Cow::Owned(_)));
        assert_eq!(&*pdu.canonical_json(), MEMBER_V11.as_bytes());
        assert_eq!(pdu.event_id, canonical.event_id);
    }

    #[test]
    fn lenient_versions_accept_floats_in_content() {
        let json = MEMBER_V11.replace(
            r#""content":{"membership":"join"}"#,
            r#""content":{"membership":"join","x":1.5}"#,
        );
        assert!(Pdu::parse(json.as_bytes(), v("5")).is_ok());
        assert!(Pdu::parse(json.as_bytes(), v("6")).is_err());
    }
}
