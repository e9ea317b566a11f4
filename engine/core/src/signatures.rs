//! Event signatures on receipt (server-server API "Checks performed on receipt of a PDU", step 2;
//! "Validating hashes and signatures on received events"; appendix "Signing JSON").
//!
//! Two checks, both before the auth rules and never inside state resolution:
//! - [`check_present`]: the servers that must have signed the event appear in `signatures` — Synapse's
//!   `validate_event_for_room_version` (`synapse/event_auth.py`), which **rejects** a failing event
//!   (it is stored as rejected). Always run; needs no keys.
//! - [`verify_event`]: every required server's signature verifies with a known, valid key of that
//!   server ([`KeyRing`]) — Synapse's `_check_sigs_on_pdu` (`synapse/federation/federation_base.py`),
//!   which **drops** a failing event. Run when the caller has keys.
//!
//! The required servers follow Synapse ([`Signer`]): the sender's server (except for an invite made
//! from a third-party invite), the server of a v1/v2 event id, and the server of
//! `join_authorised_via_users_server` on a restricted join (v8+). The signed bytes are the redacted
//! event without `signatures` and `unsigned`, as canonical JSON — the reference hash's input.
//!
//! ```
//! use roomgraph_core::canonical_json::{JsonValue, NumberPolicy, parse_object, to_canonical_string};
//! use roomgraph_core::signatures::{KeyRing, public_key, sign_event, verify_event};
//! use roomgraph_core::{Pdu, RoomVersion};
//!
//! let v11 = RoomVersion::from_id("11")?;
//! let unsigned = br#"{"type":"m.room.message","sender":"@a:a.org","room_id":"!r:a.org",
//!     "content":{"body":"hi"},"depth":2,"origin_server_ts":5,"prev_events":[],"auth_events":[],
//!     "hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}}"#;
//! let mut event = parse_object(unsigned, NumberPolicy::Strict)?.into_owned();
//! let seed = [7u8; 32];
//! sign_event(&mut event, v11, "a.org", "ed25519:1", &seed);
//! let signed = to_canonical_string(&JsonValue::Object(event));
//!
//! let pdu = Pdu::parse(signed.as_bytes(), v11)?;
//! let mut keys = KeyRing::new();
//! keys.insert("a.org", "ed25519:1", public_key(&seed), None)?;
//! assert_eq!(verify_event(&pdu, &keys), Ok(()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use smallvec::SmallVec;

use crate::canonical_json::{JsonObject, JsonValue, NumberPolicy};
use crate::hashes::write_reference_input;
use crate::pdu::{Pdu, server_name};
use crate::room_version::{EventIdFormat, RoomVersion};

/// Why a server must have signed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    /// The sender's server (not required of an invite made from a third-party invite).
    Sender,
    /// The server named by a v1/v2 event id (the origin server).
    EventIdDomain,
    /// The server of `content.join_authorised_via_users_server` on a join (v8+).
    Authoriser,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signer::Sender => "the sender's server",
            Signer::EventIdDomain => "the server of the event id",
            Signer::Authoriser => "the server of join_authorised_via_users_server",
        })
    }
}

/// Why an event fails a signature check. Each variant names the server and, where one is involved,
/// the key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// `content.join_authorised_via_users_server` of a restricted join names no server (it is not a
    /// string holding a `:`). Synapse fails to process such an event and stores nothing.
    #[error("join_authorised_via_users_server is {found}, not an id with a server name")]
    Authoriser { found: String },
    /// The server has no entry (or an empty one) in `signatures`.
    #[error("not signed by {server} ({signer})")]
    Missing { server: String, signer: Signer },
    /// `signatures.<server>` is not an object of key ids.
    #[error("signatures of {server} ({signer}) are not an object")]
    NotAnObject { server: String, signer: Signer },
    /// None of the server's key ids names a known key.
    #[error("no signature of {server} ({signer}) is by a known key (key ids: {key_ids})")]
    UnknownKey {
        server: String,
        signer: Signer,
        key_ids: String,
    },
    /// The only known keys that signed had expired before the event was sent (v5+).
    #[error(
        "key {key_id} of {server} ({signer}) is valid until {valid_until_ts}, before the event's \
         origin_server_ts {origin_server_ts} (room version {version} enforces key validity)"
    )]
    Expired {
        server: String,
        signer: Signer,
        key_id: String,
        valid_until_ts: i64,
        origin_server_ts: i64,
        version: &'static str,
    },
    /// The signature value is not base64 of 64 bytes.
    #[error("signature of {server} ({signer}) with key {key_id} is not base64 of 64 bytes")]
    Malformed {
        server: String,
        signer: Signer,
        key_id: String,
    },
    /// The signature does not verify: the signed parts of the event were changed, or the key is wrong.
    #[error("signature of {server} ({signer}) with key {key_id} does not verify")]
    Invalid {
        server: String,
        signer: Signer,
        key_id: String,
    },
}

impl SignatureError {
    /// The role of the server the failure is about (`Authoriser` for a malformed authoriser).
    pub fn signer(&self) -> Signer {
        match self {
            SignatureError::Authoriser { .. } => Signer::Authoriser,
            SignatureError::Missing { signer, .. }
            | SignatureError::NotAnObject { signer, .. }
            | SignatureError::UnknownKey { signer, .. }
            | SignatureError::Expired { signer, .. }
            | SignatureError::Malformed { signer, .. }
            | SignatureError::Invalid { signer, .. } => *signer,
        }
    }
}

/// Synapse's `validate_event_for_room_version` signature checks: each required server appears in
/// `signatures` (an entry of any value counts, as there). Only [`SignatureError::Missing`] and
/// [`SignatureError::Authoriser`] are returned.
pub fn check_present(pdu: &Pdu<'_>) -> Result<(), SignatureError> {
    let signatures = pdu.json.get("signatures").and_then(JsonValue::as_object);
    for (signer, server) in required_signers(pdu, false)? {
        if !signatures.is_some_and(|s| s.contains_key(server)) {
            return Err(SignatureError::Missing {
                server: server.to_owned(),
                signer,
            });
        }
    }
    Ok(())
}

/// Verifies the signatures `pdu` must carry with the keys of `keys`, as Synapse's `_check_sigs_on_pdu`
/// and `Keyring.process_request`: for each required server, every signature by a known key that is
/// still valid at the event's `origin_server_ts` (room versions that enforce key validity, v5+) must
/// verify, and at least one must. Signatures by unknown or expired keys are skipped.
///
/// `pdu` must be a whole PDU (not a [`Pdu::detached`] header, which has no `signatures`).
pub fn verify_event(pdu: &Pdu<'_>, keys: &KeyRing) -> Result<(), SignatureError> {
    let signers = required_signers(pdu, true)?;
    if signers.is_empty() {
        return Ok(());
    }
    let signatures = pdu.json.get("signatures").and_then(JsonValue::as_object);
    let mut message: Option<Vec<u8>> = None;
    for (signer, server) in signers {
        let missing = || SignatureError::Missing {
            server: server.to_owned(),
            signer,
        };
        let by_key = match signatures.and_then(|s| s.get(server)) {
            None => return Err(missing()),
            Some(JsonValue::Object(o)) if o.is_empty() => return Err(missing()),
            Some(JsonValue::Object(o)) => o,
            Some(_) => {
                return Err(SignatureError::NotAnObject {
                    server: server.to_owned(),
                    signer,
                });
            }
        };
        let minimum = if pdu.version.enforce_key_validity {
            pdu.origin_server_ts
        } else {
            0
        };
        let mut verified = false;
        let mut expired: Option<SignatureError> = None;
        for (key_id, value) in by_key.iter() {
            let Some(key) = keys.get(server, key_id) else {
                continue;
            };
            if let Some(until) = key.valid_until_ts
                && until < minimum
            {
                expired.get_or_insert_with(|| SignatureError::Expired {
                    server: server.to_owned(),
                    signer,
                    key_id: key_id.to_owned(),
                    valid_until_ts: until,
                    origin_server_ts: pdu.origin_server_ts,
                    version: pdu.version.id,
                });
                continue;
            }
            let Some(signature) = value
                .as_str()
                .and_then(decode_base64_any)
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
            else {
                return Err(SignatureError::Malformed {
                    server: server.to_owned(),
                    signer,
                    key_id: key_id.to_owned(),
                });
            };
            let message = message.get_or_insert_with(|| signing_input(&pdu.json, pdu.version));
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            if key.key.verify_strict(message, &signature).is_err() {
                return Err(SignatureError::Invalid {
                    server: server.to_owned(),
                    signer,
                    key_id: key_id.to_owned(),
                });
            }
            verified = true;
        }
        if !verified {
            return Err(expired.unwrap_or_else(|| SignatureError::UnknownKey {
                server: server.to_owned(),
                signer,
                key_ids: list_key_ids(by_key.iter().map(|(k, _)| k)),
            }));
        }
    }
    Ok(())
}

/// The bytes a server signs: the redacted event without `signatures` and `unsigned`, as canonical JSON
/// (spec appendix "Signing events"; the input of the reference hash).
pub fn signing_input(event: &JsonObject<'_>, version: &RoomVersion) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_reference_input(event, version, None, &mut out);
    out
}

/// Signs `event` as `server` with the ed25519 key whose 32-byte secret is `seed`: adds
/// `signatures.<server>.<key_id>` (keeping other signatures). For tests, fixtures and tools that
/// play a homeserver.
pub fn sign_event(
    event: &mut JsonObject<'static>,
    version: &RoomVersion,
    server: &str,
    key_id: &str,
    seed: &[u8; 32],
) {
    use ed25519_dalek::Signer as _;
    let signature =
        ed25519_dalek::SigningKey::from_bytes(seed).sign(&signing_input(event, version));
    let encoded = crate::hashes::base64_standard(&signature.to_bytes());
    if !matches!(event.get("signatures"), Some(JsonValue::Object(_))) {
        event.insert("signatures".into(), JsonValue::Object(JsonObject::new()));
    }
    if let Some(JsonValue::Object(by_server)) = event.get_mut("signatures") {
        if !matches!(by_server.get(server), Some(JsonValue::Object(_))) {
            by_server.insert(
                Cow::Owned(server.to_owned()),
                JsonValue::Object(JsonObject::new()),
            );
        }
        if let Some(JsonValue::Object(keys)) = by_server.get_mut(server) {
            keys.insert(
                Cow::Owned(key_id.to_owned()),
                JsonValue::String(encoded.into()),
            );
        }
    }
}

/// The ed25519 public key of the secret `seed` (see [`sign_event`]).
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

/// The servers whose signatures [`verify_event`] checks, with why, in Synapse's order (`Err` for an
/// authoriser that names no server).
pub fn servers_to_verify<'p>(
    pdu: &'p Pdu<'_>,
) -> Result<SmallVec<[(Signer, &'p str); 3]>, SignatureError> {
    required_signers(pdu, true)
}

/// The servers that must have signed `pdu`, with why, in Synapse's order. `for_verification` selects
/// `_check_sigs_on_pdu`'s list (the event-id server only when it is not the sender's) over
/// `validate_event_for_room_version`'s (the event-id server always).
fn required_signers<'p>(
    pdu: &'p Pdu<'_>,
    for_verification: bool,
) -> Result<SmallVec<[(Signer, &'p str); 3]>, SignatureError> {
    let mut out = SmallVec::new();
    let content = pdu.content();
    let is_member = pdu.event_type == "m.room.member";
    let membership = content.get("membership").and_then(JsonValue::as_str);
    let sender = server_name(&pdu.sender);
    let invite_via_3pid =
        is_member && membership == Some("invite") && content.contains_key("third_party_invite");
    if !invite_via_3pid {
        out.push((Signer::Sender, sender));
    }
    if pdu.version.event_id_format == EventIdFormat::ServerChosen {
        let domain = server_name(&pdu.event_id);
        if !for_verification || domain != sender {
            out.push((Signer::EventIdDomain, domain));
        }
    }
    if pdu.version.restricted_join && is_member && membership == Some("join") {
        match content.get("join_authorised_via_users_server") {
            None => {}
            Some(JsonValue::String(user)) if user.contains(':') => {
                let user: &'p str = user;
                out.push((Signer::Authoriser, server_name(user)));
            }
            Some(other) => {
                return Err(SignatureError::Authoriser {
                    found: describe(other),
                });
            }
        }
    }
    Ok(out)
}

fn describe(value: &JsonValue<'_>) -> String {
    match value {
        JsonValue::String(s) => format!("`{}`", s.chars().take(64).collect::<String>()),
        other => format!("a {}", other.type_name()),
    }
}

/// At most four key ids, each shortened, for an error message.
fn list_key_ids<'k>(ids: impl Iterator<Item = &'k str>) -> String {
    let mut ids = ids.peekable();
    let mut out = String::new();
    for (i, id) in ids.by_ref().take(4).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.extend(id.chars().take(64));
    }
    if ids.peek().is_some() {
        out.push_str(", …");
    }
    out
}

/// A server's public signing key as the key ring holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerKey {
    key: ed25519_dalek::VerifyingKey,
    /// Milliseconds since the epoch; `None` never expires.
    pub valid_until_ts: Option<i64>,
}

impl ServerKey {
    /// The 32 bytes of the ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

/// Known public signing keys, by server name and key id (`ed25519:<version>`): what Synapse's key ring
/// fetches from servers and notaries, given here by the caller. Read from JSON with
/// [`KeyRing::from_json`]:
/// `{"<server_name>": {"<key_id>": {"key": "<unpadded base64>", "valid_until_ts": <ms>}}}`
/// (`valid_until_ts` optional: without it the key never expires).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    servers: HashMap<String, HashMap<String, ServerKey>>,
}

/// Why a key-ring document or key is unusable; each variant names the server and key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    #[error("keys: {0}")]
    Json(String),
    #[error("keys: {path} must be an object, found {found}")]
    NotAnObject { path: String, found: &'static str },
    #[error("keys: {server}: key id `{key_id}` is not of the form `ed25519:<version>`")]
    KeyId { server: String, key_id: String },
    #[error("keys: {server} {key_id}: `key` {reason}")]
    PublicKey {
        server: String,
        key_id: String,
        reason: String,
    },
    #[error("keys: {server} {key_id}: `valid_until_ts` must be an integer, found {found}")]
    ValidUntil {
        server: String,
        key_id: String,
        found: String,
    },
    #[error("keys: {server} {key_id}: unknown field `{field}` (expected `key`, `valid_until_ts`)")]
    UnknownField {
        server: String,
        key_id: String,
        field: String,
    },
}

impl KeyRing {
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Parses the key-ring document described on [`KeyRing`].
    pub fn from_json(input: &[u8]) -> Result<KeyRing, KeyRingError> {
        let doc = crate::canonical_json::parse(input, NumberPolicy::Lenient)
            .map_err(|e| KeyRingError::Json(e.to_string()))?;
        let not_object = |path: String, value: &JsonValue<'_>| KeyRingError::NotAnObject {
            path,
            found: value.type_name(),
        };
        let JsonValue::Object(servers) = &doc else {
            return Err(not_object("the document".into(), &doc));
        };
        let mut ring = KeyRing::new();
        for (server, keys) in servers.iter() {
            let Some(keys) = keys.as_object() else {
                return Err(not_object(format!("`{server}`"), keys));
            };
            for (key_id, entry) in keys.iter() {
                let Some(entry) = entry.as_object() else {
                    return Err(not_object(format!("`{server}` `{key_id}`"), entry));
                };
                let names = || (server.to_owned(), key_id.to_owned());
                if let Some((field, _)) = entry
                    .iter()
                    .find(|(k, _)| !matches!(*k, "key" | "valid_until_ts"))
                {
                    let (server, key_id) = names();
                    return Err(KeyRingError::UnknownField {
                        server,
                        key_id,
                        field: field.chars().take(64).collect(),
                    });
                }
                let key_error = |reason: &str| {
                    let (server, key_id) = names();
                    KeyRingError::PublicKey {
                        server,
                        key_id,
                        reason: reason.to_owned(),
                    }
                };
                let public = match entry.get("key") {
                    Some(JsonValue::String(text)) => decode_base64_any(text)
                        .ok_or_else(|| key_error("is not base64"))?
                        .try_into()
                        .map_err(|_| key_error("is not 32 bytes"))?,
                    Some(other) => {
                        return Err(key_error(&format!(
                            "must be a string, found {}",
                            other.type_name()
                        )));
                    }
                    None => return Err(key_error("is missing")),
                };
                let valid_until_ts = match entry.get("valid_until_ts") {
                    None => None,
                    Some(JsonValue::Int(ms)) => Some(*ms),
                    // Beyond i64: never expires in practice.
                    Some(JsonValue::UInt(_)) => Some(i64::MAX),
                    Some(other) => {
                        let (server, key_id) = names();
                        return Err(KeyRingError::ValidUntil {
                            server,
                            key_id,
                            found: describe(other),
                        });
                    }
                };
                ring.insert(server, key_id, public, valid_until_ts)?;
            }
        }
        Ok(ring)
    }

    /// Adds (or replaces) a key of `server`. Fails when `key_id` is not `ed25519:<version>` or
    /// `public_key` is not an ed25519 public key.
    pub fn insert(
        &mut self,
        server: &str,
        key_id: &str,
        public_key: [u8; 32],
        valid_until_ts: Option<i64>,
    ) -> Result<(), KeyRingError> {
        if key_id.strip_prefix("ed25519:").is_none_or(str::is_empty) {
            return Err(KeyRingError::KeyId {
                server: server.to_owned(),
                key_id: key_id.chars().take(64).collect(),
            });
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).map_err(|_| {
            KeyRingError::PublicKey {
                server: server.to_owned(),
                key_id: key_id.to_owned(),
                reason: "is not an ed25519 public key".into(),
            }
        })?;
        self.servers.entry(server.to_owned()).or_default().insert(
            key_id.to_owned(),
            ServerKey {
                key,
                valid_until_ts,
            },
        );
        Ok(())
    }

    /// The key `key_id` of `server`, if known.
    pub fn get(&self, server: &str, key_id: &str) -> Option<&ServerKey> {
        self.servers.get(server)?.get(key_id)
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.servers.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies an ed25519 `signature` over `message` with `public_key` (spec appendix "Checking for a
/// signature"; strict verification, as libsodium does it).
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key_bytes) = <&[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig_bytes) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key_bytes) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(sig_bytes);
    key.verify_strict(message, &sig).is_ok()
}

/// Unpadded (or padded) base64 in the standard or the URL-safe alphabet, as Synapse's `decode_base64`
/// (Python's decoder, which ignores non-zero bits after the last full byte).
pub(crate) fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::alphabet::{STANDARD, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true);
    const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&STANDARD, LENIENT);
    const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, LENIENT);
    let trimmed = text.trim_end_matches('=');
    STANDARD_LENIENT
        .decode(trimmed)
        .or_else(|_| URL_SAFE_LENIENT.decode(trimmed))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::parse_object;
    use crate::hashes::base64_standard;

    fn v(id: &str) -> &'static RoomVersion {
        RoomVersion::from_id(id).expect("known")
    }

    /// Spec appendix "Signing events": the minimal event, signed with the appendix's key
    /// (seed `YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`).
    #[test]
    fn spec_signed_event_vector() {
        let minimal = r#"{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},"origin":"domain","origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain","sender":"@a:domain","signatures":{"domain":{"ed25519:1":"KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},"type":"X","unsigned":{"age_ts":1000000}}"#;
        let spec_seed: [u8; 32] = decode_base64_any("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        assert_eq!(
            base64_standard(&public_key(&spec_seed)),
            "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"
        );
        let keys = KeyRing::from_json(
            br#"{"domain":{"ed25519:1":{"key":"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}}}"#,
        )
        .expect("key ring");
        // Up to v10: v11 redaction drops `origin`, which the appendix's signature covers.
        for id in ["4", "6", "10"] {
            let pdu = Pdu::parse(minimal.as_bytes(), v(id)).expect("valid");
            assert_eq!(verify_event(&pdu, &keys), Ok(()), "v{id}");
            // Signing it again gives the appendix's signature (ed25519 is deterministic).
            let mut json = parse_object(minimal.as_bytes(), NumberPolicy::Strict)
                .expect("json")
                .into_owned();
            json.remove("signatures");
            sign_event(&mut json, v(id), "domain", "ed25519:1", &spec_seed);
            assert_eq!(json.get("signatures"), pdu.json.get("signatures"), "v{id}");
        }
    }
}
