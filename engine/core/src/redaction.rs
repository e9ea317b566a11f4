//! The redaction algorithm of every room version (spec "Redactions": v1, v6, v8, v9 and v11 fragments).
//!
//! Redaction keeps an allow-list of top-level keys and, inside `content`, an allow-list per event type.
//! The same decision functions drive [`redact`] (which builds the redacted object) and the streaming
//! writer used for reference hashes, so the two can never disagree.

use std::borrow::Cow;
use std::ops::Range;

use crate::canonical_json::{
    InputForm, JsonObject, JsonValue, Sink, write_string, write_value, write_without_whitespace,
};
use crate::room_version::RedactionRules;

/// What redaction does with one key of `content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentKey {
    Keep,
    Drop,
    /// v11 `m.room.member` `third_party_invite`: only its `signed` member survives (MSC3821).
    SignedOnly,
}

/// Whether a top-level key survives redaction.
fn keeps_top_level(rules: RedactionRules, key: &str) -> bool {
    match key {
        "event_id" | "type" | "room_id" | "sender" | "state_key" | "content" | "hashes"
        | "signatures" | "depth" | "prev_events" | "auth_events" | "origin_server_ts" => true,
        // MSC2176 (v11) drops `origin`, `membership` and `prev_state`.
        "origin" | "membership" | "prev_state" => rules < RedactionRules::R11,
        _ => false,
    }
}

fn content_key(rules: RedactionRules, event_type: &str, key: &str) -> ContentKey {
    use RedactionRules::*;
    let keep = match (event_type, key) {
        ("m.room.member", "membership") => true,
        ("m.room.member", "join_authorised_via_users_server") => rules >= R9,
        ("m.room.member", "third_party_invite") if rules >= R11 => return ContentKey::SignedOnly,
        ("m.room.create", "creator") => true,
        ("m.room.create", _) => rules >= R11,
        ("m.room.join_rules", "join_rule") => true,
        ("m.room.join_rules", "allow") => rules >= R8,
        (
            "m.room.power_levels",
            "ban" | "events" | "events_default" | "kick" | "redact" | "state_default" | "users"
            | "users_default",
        ) => true,
        ("m.room.power_levels", "invite") => rules >= R11,
        ("m.room.aliases", "aliases") => rules == R1,
        ("m.room.history_visibility", "history_visibility") => true,
        ("m.room.redaction", "redacts") => rules >= R11,
        _ => false,
    };
    if keep {
        ContentKey::Keep
    } else {
        ContentKey::Drop
    }
}

fn event_type<'o>(event: &'o JsonObject<'_>) -> &'o str {
    event.get("type").and_then(JsonValue::as_str).unwrap_or("")
}

/// What survives of a v11 `third_party_invite`: when it is an object, an object holding only its
/// `signed` member (if any) — `Some(None)` is the empty object; when it is not an object, nothing.
fn signed_only<'v, 'a>(value: &'v JsonValue<'a>) -> Option<Option<&'v JsonValue<'a>>> {
    value.as_object().map(|o| o.get("signed"))
}

/// Returns the redacted copy of a PDU (keys outside the allow-lists removed, `content` pruned).
pub fn redact<'a>(event: &JsonObject<'a>, rules: RedactionRules) -> JsonObject<'a> {
    let ty = event_type(event);
    let mut out = JsonObject::new();
    for (key, value) in event.iter() {
        if !keeps_top_level(rules, key) {
            continue;
        }
        let value = match (key, value) {
            ("content", JsonValue::Object(content)) => {
                JsonValue::Object(redact_content(content, rules, ty))
            }
            _ => value.clone(),
        };
        out.insert(Cow::Owned(key.to_owned()), value);
    }
    out
}

/// Redacts a `content` object of an event of type `event_type`.
pub fn redact_content<'a>(
    content: &JsonObject<'a>,
    rules: RedactionRules,
    event_type: &str,
) -> JsonObject<'a> {
    let mut out = JsonObject::new();
    for (key, value) in content.iter() {
        match content_key(rules, event_type, key) {
            ContentKey::Keep => {
                out.insert(Cow::Owned(key.to_owned()), value.clone());
            }
            ContentKey::Drop => {}
            ContentKey::SignedOnly => {
                if let Some(signed) = signed_only(value) {
                    let mut tpi = JsonObject::new();
                    if let Some(signed) = signed {
                        tpi.insert(Cow::Borrowed("signed"), signed.clone());
                    }
                    out.insert(Cow::Owned(key.to_owned()), JsonValue::Object(tpi));
                }
            }
        }
    }
    out
}

/// The canonical bytes of an event's entries, taken from the input it was parsed from: `top[i]` is the
/// `"key":value` text of the event's `i`-th entry and `content[i]` that of its `content`'s `i`-th entry.
/// Only valid when that input was canonical JSON, or canonical but for whitespace (the reader says
/// so); then copying a range (without its whitespace) gives exactly the bytes the canonical writer
/// would produce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEntries<'i> {
    pub input: &'i [u8],
    /// `Canonical` or `CanonicalButWhitespace`; with `Other` nothing is copied.
    pub form: InputForm,
    pub top: &'i [Range<usize>],
    pub content: &'i [Range<usize>],
}

/// Writes the `i`-th entry as `"key":value`: copied from the input when its range is known, else
/// serialised.
#[inline]
fn write_entry(
    raw: Option<&[Range<usize>]>,
    input: &[u8],
    form: InputForm,
    i: usize,
    key: &str,
    value: &JsonValue<'_>,
    out: &mut impl Sink,
) {
    let bytes = raw
        .and_then(|ranges| ranges.get(i))
        .and_then(|range| input.get(range.clone()));
    if let (Some(bytes), InputForm::Canonical) = (bytes, form) {
        out.put(bytes);
    } else if let (Some(bytes), InputForm::CanonicalButWhitespace) = (bytes, form) {
        write_without_whitespace(bytes, out);
    } else {
        write_string(key, out);
        out.put(b":");
        write_value(value, out);
    }
}

/// Streams the canonical JSON of the redacted event, without `signatures`, `unsigned` and any key in
/// `also_drop`, into `out` — the input of the reference hash — without building the redacted copy.
/// With `raw` (the event was parsed from canonical input), kept entries are copied from the input
/// instead of serialised; the decisions are the same either way.
pub(crate) fn write_redacted_for_hash(
    event: &JsonObject<'_>,
    rules: RedactionRules,
    also_drop: &[&str],
    raw: Option<RawEntries<'_>>,
    out: &mut impl Sink,
) {
    let ty = event_type(event);
    let input = raw.map_or(&[][..], |r| r.input);
    let form = raw.map_or(InputForm::Other, |r| r.form);
    let raw_top = raw.map(|r| r.top).filter(|t| t.len() == event.len());
    out.put(b"{");
    let mut first = true;
    for (i, (key, value)) in event.iter().enumerate() {
        if key == "signatures" || !keeps_top_level(rules, key) || also_drop.contains(&key) {
            continue;
        }
        if !first {
            out.put(b",");
        }
        first = false;
        match (key, value) {
            ("content", JsonValue::Object(content)) => {
                write_string(key, out);
                out.put(b":");
                let raw_content = raw.map(|r| r.content).filter(|c| c.len() == content.len());
                write_redacted_content(content, rules, ty, raw_content, input, form, out)
            }
            _ => write_entry(raw_top, input, form, i, key, value, out),
        }
    }
    out.put(b"}");
}

fn write_redacted_content(
    content: &JsonObject<'_>,
    rules: RedactionRules,
    ty: &str,
    raw: Option<&[Range<usize>]>,
    input: &[u8],
    form: InputForm,
    out: &mut impl Sink,
) {
    out.put(b"{");
    let mut first = true;
    for (i, (key, value)) in content.iter().enumerate() {
        let action = content_key(rules, ty, key);
        let signed = match action {
            ContentKey::Drop => continue,
            ContentKey::Keep => None,
            ContentKey::SignedOnly => match signed_only(value) {
                Some(s) => Some(s),
                None => continue,
            },
        };
        if !first {
            out.put(b",");
        }
        first = false;
        match signed {
            Some(Some(s)) => {
                write_string(key, out);
                out.put(b":{\"signed\":");
                write_value(s, out);
                out.put(b"}");
            }
            Some(None) => {
                write_string(key, out);
                out.put(b":{}");
            }
            None => write_entry(raw, input, form, i, key, value, out),
        }
    }
    out.put(b"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::{
        EntrySpans, NumberPolicy, parse_object, parse_with_spans, to_canonical_string,
    };
    use crate::room_version::RoomVersion;

    fn redacted(version: &str, json: &str) -> String {
        let obj = parse_object(json.as_bytes(), NumberPolicy::Lenient).expect("valid json");
        let rules = RoomVersion::from_id(version).expect("known").redaction;
        let out = redact(&obj, rules);
        let mut streamed = Vec::new();
        write_redacted_for_hash(&obj, rules, &[], None, &mut streamed);
        // The streaming writer must agree with the tree builder (minus signatures).
        let mut without_sigs = out.clone();
        without_sigs.remove("signatures");
        assert_eq!(
            String::from_utf8(streamed.clone()).expect("utf8"),
            to_canonical_string(&JsonValue::Object(without_sigs))
        );
        // And so must the copy from canonical input, and from canonical input pretty-printed.
        let canonical = to_canonical_string(&JsonValue::Object(obj.clone()));
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&canonical).expect("json"),
        )
        .expect("serialises");
        let mut spans = EntrySpans::default();
        for (text, form) in [
            (&canonical, InputForm::Canonical),
            (&pretty, InputForm::CanonicalButWhitespace),
        ] {
            let (reparsed, found) =
                parse_with_spans(text.as_bytes(), NumberPolicy::Lenient, Some(&mut spans))
                    .expect("canonical JSON parses");
            assert_eq!(found, form, "{text}");
            let JsonValue::Object(reparsed) = reparsed else {
                panic!("not an object")
            };
            let raw = RawEntries {
                input: text.as_bytes(),
                form,
                top: &spans.top,
                content: &spans.content,
            };
            let mut copied = Vec::new();
            write_redacted_for_hash(&reparsed, rules, &[], Some(raw), &mut copied);
            assert_eq!(
                String::from_utf8(copied).expect("utf8"),
                String::from_utf8(streamed.clone()).expect("utf8")
            );
        }
        to_canonical_string(&JsonValue::Object(out))
    }

    #[test]
    fn member_event_per_version() {
        let ev = r#"{"type":"m.room.member","state_key":"@a:x","origin":"x","membership":"join","unsigned":{"age":1},
            "signatures":{"x":{"ed25519:1":"s"}},"extra":1,
            "content":{"membership":"join","displayname":"A","join_authorised_via_users_server":"@b:x",
            "third_party_invite":{"display_name":"d","signed":{"mxid":"@a:x","token":"t"}}}}"#;
        assert_eq!(
            redacted("1", ev),
            r#"{"content":{"membership":"join"},"membership":"join","origin":"x","signatures":{"x":{"ed25519:1":"s"}},"state_key":"@a:x","type":"m.room.member"}"#
        );
        assert_eq!(
            redacted("9", ev),
            r#"{"content":{"join_authorised_via_users_server":"@b:x","membership":"join"},"membership":"join","origin":"x","signatures":{"x":{"ed25519:1":"s"}},"state_key":"@a:x","type":"m.room.member"}"#
        );
        assert_eq!(
            redacted("11", ev),
            r#"{"content":{"join_authorised_via_users_server":"@b:x","membership":"join","third_party_invite":{"signed":{"mxid":"@a:x","token":"t"}}},"signatures":{"x":{"ed25519:1":"s"}},"state_key":"@a:x","type":"m.room.member"}"#
        );
    }

    #[test]
    fn create_join_rules_power_levels_aliases() {
        let create = r#"{"type":"m.room.create","content":{"creator":"@a:x","room_version":"11","m.federate":false}}"#;
        assert_eq!(
            redacted("10", create),
            r#"{"content":{"creator":"@a:x"},"type":"m.room.create"}"#
        );
        assert_eq!(
            redacted("11", create),
            r#"{"content":{"creator":"@a:x","m.federate":false,"room_version":"11"},"type":"m.room.create"}"#
        );
        let jr =
            r#"{"type":"m.room.join_rules","content":{"join_rule":"restricted","allow":[],"x":1}}"#;
        assert_eq!(
            redacted("7", jr),
            r#"{"content":{"join_rule":"restricted"},"type":"m.room.join_rules"}"#
        );
        assert_eq!(
            redacted("8", jr),
            r#"{"content":{"allow":[],"join_rule":"restricted"},"type":"m.room.join_rules"}"#
        );
        let pl = r#"{"type":"m.room.power_levels","content":{"invite":0,"ban":50,"notifications":{"room":50}}}"#;
        assert_eq!(
            redacted("10", pl),
            r#"{"content":{"ban":50},"type":"m.room.power_levels"}"#
        );
        assert_eq!(
            redacted("11", pl),
            r#"{"content":{"ban":50,"invite":0},"type":"m.room.power_levels"}"#
        );
        let aliases = r##"{"type":"m.room.aliases","content":{"aliases":["#a:x"]}}"##;
        assert_eq!(
            redacted("5", aliases),
            r##"{"content":{"aliases":["#a:x"]},"type":"m.room.aliases"}"##
        );
        assert_eq!(
            redacted("6", aliases),
            r#"{"content":{},"type":"m.room.aliases"}"#
        );
    }

    /// Synapse keeps `third_party_invite` only when it is an object (then as `{}` or `{"signed": …}`);
    /// ruma 0.17 keeps a non-object value whole. We follow Synapse (docs/event-format.md).
    #[test]
    fn v11_third_party_invite_follows_synapse() {
        let ev = |tpi: &str| {
            format!(
                r#"{{"type":"m.room.member","content":{{"membership":"invite","third_party_invite":{tpi}}}}}"#
            )
        };
        assert_eq!(
            redacted("11", &ev("[1]")),
            r#"{"content":{"membership":"invite"},"type":"m.room.member"}"#
        );
        assert_eq!(
            redacted("11", &ev(r#"{"display_name":"x"}"#)),
            r#"{"content":{"membership":"invite","third_party_invite":{}},"type":"m.room.member"}"#
        );
        assert_eq!(
            redacted("10", &ev(r#"{"signed":{}}"#)),
            r#"{"content":{"membership":"invite"},"type":"m.room.member"}"#
        );
    }

    #[test]
    fn redaction_event_keeps_redacts_in_v11() {
        let ev =
            r#"{"type":"m.room.redaction","redacts":"$a","content":{"redacts":"$a","reason":"r"}}"#;
        assert_eq!(
            redacted("10", ev),
            r#"{"content":{},"type":"m.room.redaction"}"#
        );
        assert_eq!(
            redacted("11", ev),
            r#"{"content":{"redacts":"$a"},"type":"m.room.redaction"}"#
        );
    }
}
