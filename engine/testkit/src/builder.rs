//! Building well-formed PDUs: for tests, fixtures, the room generator and the benchmark harness.
//!
//! [`EventBuilder`] fills in the federation-format fields of a room version, computes the content hash,
//! signs and yields the event's JSON and id. The sender's server and, for v1/v2, the event id's server
//! always sign, so the signature-presence check on receipt passes: with the key given to
//! [`EventBuilder::sign`], else with a placeholder (64 zero bytes, which verifies against no key).
//! v1/v2 ids are chosen as `$<n>:<server>` from a caller-given counter.

use std::borrow::Cow;

use roomgraph_core::canonical_json::{JsonObject, JsonValue, to_canonical_string};
use roomgraph_core::hashes::{base64_standard, content_hash};
use roomgraph_core::pdu::{Pdu, PduError, server_name};
use roomgraph_core::room_version::RoomVersion;

/// A PDU under construction.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    version: &'static RoomVersion,
    json: JsonObject<'static>,
    local_id: Option<String>,
    /// `(server, key id, secret key)` to sign with.
    keys: Vec<(String, String, [u8; 32])>,
}

impl EventBuilder {
    /// Starts an event of `event_type` sent by `sender` with the given `content`.
    pub fn new(
        version: &'static RoomVersion,
        event_type: &str,
        sender: &str,
        content: JsonValue<'static>,
    ) -> Self {
        let mut json = JsonObject::new();
        json.insert("type".into(), str_value(event_type));
        json.insert("sender".into(), str_value(sender));
        json.insert("content".into(), content);
        json.insert("depth".into(), JsonValue::Int(1));
        json.insert("origin_server_ts".into(), JsonValue::Int(0));
        json.insert("prev_events".into(), JsonValue::Array(Vec::new()));
        json.insert("auth_events".into(), JsonValue::Array(Vec::new()));
        EventBuilder {
            version,
            json,
            local_id: None,
            keys: Vec::new(),
        }
    }

    /// Starts an event whose content is given as JSON text (panics on invalid JSON: for fixtures).
    pub fn with_json_content(
        version: &'static RoomVersion,
        event_type: &str,
        sender: &str,
        content: &str,
    ) -> Self {
        let parsed = roomgraph_core::canonical_json::parse(
            content.as_bytes(),
            roomgraph_core::NumberPolicy::Lenient,
        )
        .unwrap_or_else(|e| panic!("fixture content is not JSON: {e}"))
        .into_owned();
        EventBuilder::new(version, event_type, sender, parsed)
    }

    pub fn state_key(mut self, state_key: &str) -> Self {
        self.json.insert("state_key".into(), str_value(state_key));
        self
    }

    pub fn room_id(mut self, room_id: &str) -> Self {
        self.json.insert("room_id".into(), str_value(room_id));
        self
    }

    pub fn depth(mut self, depth: i64) -> Self {
        self.json.insert("depth".into(), JsonValue::Int(depth));
        self
    }

    pub fn origin_server_ts(mut self, ts: i64) -> Self {
        self.json
            .insert("origin_server_ts".into(), JsonValue::Int(ts));
        self
    }

    pub fn prev_events<S: AsRef<str>>(mut self, ids: &[S]) -> Self {
        let refs = self.refs(ids);
        self.json.insert("prev_events".into(), refs);
        self
    }

    pub fn auth_events<S: AsRef<str>>(mut self, ids: &[S]) -> Self {
        let refs = self.refs(ids);
        self.json.insert("auth_events".into(), refs);
        self
    }

    /// Sets the redaction target where the room version keeps it (top level, or `content` from v11).
    pub fn redacts(mut self, target: &str) -> Self {
        if self.version.redacts_in_content {
            if let Some(JsonValue::Object(content)) = self.json.get_mut("content") {
                content.insert("redacts".into(), str_value(target));
            }
        } else {
            self.json.insert("redacts".into(), str_value(target));
        }
        self
    }

    /// Sets any other top-level key.
    pub fn field(mut self, key: &str, value: JsonValue<'static>) -> Self {
        self.json.insert(Cow::Owned(key.to_owned()), value);
        self
    }

    /// The v1/v2 event id to use (`$opaque:domain`); ignored for later versions, whose ids are hashes.
    pub fn local_id(mut self, id: &str) -> Self {
        self.local_id = Some(id.to_owned());
        self
    }

    /// Signs the event as `server` under `key_id` with the ed25519 key whose secret is `seed` (see
    /// [`roomgraph_core::signatures::public_key`]); may be given for several servers.
    pub fn sign(mut self, server: &str, key_id: &str, seed: &[u8; 32]) -> Self {
        self.keys
            .push((server.to_owned(), key_id.to_owned(), *seed));
        self
    }

    /// Finishes the event: event id (v1/v2), content hash and signatures.
    pub fn build(self) -> Result<Pdu<'static>, PduError> {
        let version = self.version;
        Pdu::from_json(self.finish_json(), version)
    }

    /// Finishes the event and returns its JSON text (one NDJSON line).
    pub fn build_json_line(self) -> String {
        to_canonical_string(&JsonValue::Object(self.finish_json()))
    }

    fn finish_json(self) -> JsonObject<'static> {
        let EventBuilder {
            version,
            mut json,
            local_id,
            keys,
        } = self;
        let sender = json
            .get("sender")
            .and_then(JsonValue::as_str)
            .unwrap_or("")
            .to_owned();
        let origin = server_name(&sender).to_owned();
        let is_v12_create = version.room_id_from_create
            && json.get("type").and_then(JsonValue::as_str) == Some("m.room.create");
        if !is_v12_create && !json.contains_key("room_id") {
            json.insert("room_id".into(), str_value(&format!("!room:{origin}")));
        }
        if version.reference_pairs {
            let id = local_id.unwrap_or_else(|| format!("${}:{origin}", json_digest_hint(&json)));
            json.insert("event_id".into(), str_value(&id));
        }
        json.remove("hashes");
        json.remove("signatures");
        let hash = base64_standard(&content_hash(&json));
        let mut hashes = JsonObject::new();
        hashes.insert("sha256".into(), str_value(&hash));
        json.insert("hashes".into(), JsonValue::Object(hashes));
        let mut placeholders = vec![origin];
        if let Some(domain) = json
            .get("event_id")
            .and_then(JsonValue::as_str)
            .and_then(|id| id.split_once(':'))
            .map(|(_, domain)| domain.to_owned())
        {
            placeholders.push(domain);
        }
        let mut sigs = JsonObject::new();
        for server in placeholders {
            if keys.iter().any(|(s, _, _)| *s == server) {
                continue;
            }
            let mut key = JsonObject::new();
            key.insert("ed25519:1".into(), str_value(&base64_standard(&[0u8; 64])));
            sigs.insert(Cow::Owned(server), JsonValue::Object(key));
        }
        json.insert("signatures".into(), JsonValue::Object(sigs));
        for (server, key_id, seed) in &keys {
            roomgraph_core::signatures::sign_event(&mut json, version, server, key_id, seed);
        }
        json
    }

    fn refs<S: AsRef<str>>(&self, ids: &[S]) -> JsonValue<'static> {
        JsonValue::Array(
            ids.iter()
                .map(|id| {
                    if self.version.reference_pairs {
                        let mut h = JsonObject::new();
                        h.insert("sha256".into(), str_value(""));
                        JsonValue::Array(vec![str_value(id.as_ref()), JsonValue::Object(h)])
                    } else {
                        str_value(id.as_ref())
                    }
                })
                .collect(),
        )
    }
}

/// A short, deterministic opaque part for generated v1/v2 ids.
fn json_digest_hint(json: &JsonObject<'_>) -> String {
    let digest = content_hash(json);
    base64_standard(&digest[..9]).replace(['+', '/'], "x")
}

fn str_value(s: &str) -> JsonValue<'static> {
    JsonValue::String(Cow::Owned(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_events_are_valid_with_matching_hashes() {
        for version in RoomVersion::all() {
            let topic = || {
                EventBuilder::with_json_content(version, "m.room.topic", "@a:x", r#"{"topic":"t"}"#)
                    .state_key("")
                    .room_id("!r:x")
            };
            let pdu = topic()
                .prev_events(&["$p:x"])
                .auth_events(&["$a:x"])
                .depth(2)
                .build()
                .unwrap_or_else(|e| panic!("v{}: {e}", version.id));
            assert!(pdu.content_hash_matches(), "v{}", version.id);
            assert_eq!(pdu.prev_events[..], ["$p:x"]);
            let line = topic().build_json_line();
            let reparsed = Pdu::parse(line.as_bytes(), version).expect("line parses");
            assert!(reparsed.content_hash_matches());
        }
    }
}
