//! The auth-relevant facts of one event, extracted once from its content (see [`super::AuthEvent`]).
//!
//! Each fact keeps "present but malformed" apart from "absent", because the rules treat them
//! differently (e.g. a `third_party_invite` without `signed` still selects the third-party branch).

use crate::canonical_json::{JsonObject, JsonValue, to_canonical_vec};
use crate::pdu::{Pdu, check_user_id};
use crate::room_version::RoomVersion;
use crate::signatures::decode_base64_any;

/// `content.membership` of an `m.room.member` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    Join,
    Invite,
    Leave,
    Ban,
    Knock,
    /// Any other value, including non-strings.
    Unknown,
}

impl Membership {
    fn parse(value: &JsonValue<'_>) -> Membership {
        match value.as_str() {
            Some("join") => Membership::Join,
            Some("invite") => Membership::Invite,
            Some("leave") => Membership::Leave,
            Some("ban") => Membership::Ban,
            Some("knock") => Membership::Knock,
            _ => Membership::Unknown,
        }
    }
}

/// `content.join_rule` of an `m.room.join_rules` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinRule {
    Public,
    Invite,
    Knock,
    Restricted,
    KnockRestricted,
    Private,
    /// Any other value, including non-strings.
    Unknown,
}

impl JoinRule {
    /// A missing `join_rule` reads as `invite`, as in Synapse (`content.get("join_rule", "invite")`).
    fn parse(value: Option<&JsonValue<'_>>) -> JoinRule {
        let Some(value) = value else {
            return JoinRule::Invite;
        };
        match value.as_str() {
            Some("public") => JoinRule::Public,
            Some("invite") => JoinRule::Invite,
            Some("knock") => JoinRule::Knock,
            Some("restricted") => JoinRule::Restricted,
            Some("knock_restricted") => JoinRule::KnockRestricted,
            Some("private") => JoinRule::Private,
            _ => JoinRule::Unknown,
        }
    }
}

/// Facts of an `m.room.create` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateFacts {
    /// The room creator for the "first join" rule and the no-power-levels fallback: `content.creator`
    /// (v1–v10, when a string) or the `sender` (v11+).
    pub creator: Option<Box<str>>,
    /// v12 creators: `sender` plus valid `additional_creators` (empty before v12).
    pub creators: Vec<Box<str>>,
    /// `content.creator` is present (any type): create rule 1.4 in v1–v10.
    pub has_creator_key: bool,
    /// `m.federate` is absent or `true` (Synapse: anything but `true` means not federated).
    pub federate: bool,
    /// `content.room_version` is absent or names a version this engine knows.
    pub room_version_known: bool,
    /// Why `content.additional_creators` is invalid, if it is (v12 rule 1.4).
    pub additional_creators_error: Option<String>,
}

impl CreateFacts {
    fn extract(pdu: &Pdu<'_>, version: &RoomVersion) -> CreateFacts {
        let content = pdu.content();
        let creator = if version.creator_in_content {
            content
                .get("creator")
                .and_then(JsonValue::as_str)
                .map(Box::from)
        } else {
            Some(Box::from(&*pdu.sender))
        };
        let mut creators = Vec::new();
        let mut additional_creators_error = None;
        if version.privileged_creators {
            creators.push(Box::from(&*pdu.sender));
            match content.get("additional_creators") {
                None => {}
                Some(JsonValue::Array(items)) => {
                    for item in items {
                        match item.as_str() {
                            Some(user) if check_user_id("additional_creators", user).is_ok() => {
                                creators.push(Box::from(user));
                            }
                            _ => {
                                additional_creators_error = Some(format!(
                                    "additional_creators holds {} that is not a user id",
                                    describe(item)
                                ));
                                break;
                            }
                        }
                    }
                }
                Some(other) => {
                    additional_creators_error = Some(format!(
                        "additional_creators is {}, not an array",
                        other.type_name()
                    ));
                }
            }
            if additional_creators_error.is_some() {
                creators.truncate(1);
            }
        }
        let room_version_known = match content.get("room_version") {
            None => true,
            Some(JsonValue::String(v)) => RoomVersion::from_id(v).is_ok(),
            Some(_) => false,
        };
        CreateFacts {
            creator,
            creators,
            has_creator_key: content.contains_key("creator"),
            federate: matches!(
                content.get("m.federate"),
                None | Some(JsonValue::Bool(true))
            ),
            room_version_known,
            additional_creators_error,
        }
    }
}

/// `content.join_authorised_via_users_server` of a member event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authoriser {
    Absent,
    User(Box<str>),
    /// Present but not a string.
    Invalid,
}

/// `content.third_party_invite` of an invite, as far as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThirdPartyClaim {
    /// `signed`, if `third_party_invite` is an object holding an object `signed`.
    pub signed: Option<SignedClaim>,
}

/// The `signed` object of a third-party invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaim {
    pub mxid: Option<Box<str>>,
    pub token: Option<Box<str>>,
    /// `(server, key id, signature bytes)` for every well-formed `ed25519:` signature.
    pub signatures: Vec<(Box<str>, Box<str>, Vec<u8>)>,
    /// Canonical JSON of `signed` without `signatures` and `unsigned`: the signed bytes.
    pub signed_bytes: Vec<u8>,
}

/// Facts of an `m.room.member` event beyond its membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub authoriser: Authoriser,
    pub third_party_invite: Option<ThirdPartyClaim>,
}

impl MemberFacts {
    fn extract(content: &JsonObject<'_>) -> MemberFacts {
        let authoriser = match content.get("join_authorised_via_users_server") {
            None => Authoriser::Absent,
            Some(JsonValue::String(user)) => Authoriser::User(Box::from(&**user)),
            Some(_) => Authoriser::Invalid,
        };
        let third_party_invite = content
            .get("third_party_invite")
            .map(|tpi| ThirdPartyClaim {
                signed: tpi
                    .as_object()
                    .and_then(|o| o.get("signed"))
                    .and_then(JsonValue::as_object)
                    .map(SignedClaim::extract),
            });
        MemberFacts {
            authoriser,
            third_party_invite,
        }
    }
}

impl SignedClaim {
    fn extract(signed: &JsonObject<'_>) -> SignedClaim {
        let string = |key| signed.get(key).and_then(JsonValue::as_str).map(Box::from);
        let mut signatures = Vec::new();
        if let Some(JsonValue::Object(by_server)) = signed.get("signatures") {
            for (server, keys) in by_server.iter() {
                let Some(keys) = keys.as_object() else {
                    continue;
                };
                for (key_id, sig) in keys.iter() {
                    if !key_id.starts_with("ed25519:") {
                        continue;
                    }
                    if let Some(bytes) = sig.as_str().and_then(decode_base64_any) {
                        signatures.push((Box::from(server), Box::from(key_id), bytes));
                    }
                }
            }
        }
        let mut unsigned = signed.clone();
        unsigned.remove("signatures");
        unsigned.remove("unsigned");
        SignedClaim {
            mxid: string("mxid"),
            token: string("token"),
            signatures,
            signed_bytes: to_canonical_vec(&JsonValue::Object(unsigned)),
        }
    }
}

/// The public keys of an `m.room.third_party_invite` event (`public_key` and `public_keys[].public_key`),
/// decoded; keys that are not base64 are skipped.
pub fn third_party_public_keys(content: &JsonObject<'_>) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    if let Some(key) = content
        .get("public_key")
        .and_then(JsonValue::as_str)
        .and_then(decode_base64_any)
    {
        keys.push(key);
    }
    if let Some(list) = content.get("public_keys").and_then(JsonValue::as_array) {
        for entry in list {
            if let Some(key) = entry
                .as_object()
                .and_then(|o| o.get("public_key"))
                .and_then(JsonValue::as_str)
                .and_then(decode_base64_any)
            {
                keys.push(key);
            }
        }
    }
    keys
}

fn describe(value: &JsonValue<'_>) -> String {
    match value {
        JsonValue::String(s) => format!("`{}`", s.chars().take(64).collect::<String>()),
        other => format!("a {}", other.type_name()),
    }
}

/// Everything [`super::AuthEvent::new`] extracts, by event type.
pub(super) struct Extracted {
    pub membership: Option<Membership>,
    pub join_rule: Option<JoinRule>,
    pub power_levels: Option<Box<super::power_levels::PowerLevels>>,
    pub create: Option<Box<CreateFacts>>,
    pub member: Option<Box<MemberFacts>>,
    pub third_party_keys: Option<Box<[Vec<u8>]>>,
}

pub(super) fn extract(pdu: &Pdu<'_>) -> Extracted {
    let version = pdu.version;
    let content = pdu.content();
    let mut out = Extracted {
        membership: None,
        join_rule: None,
        power_levels: None,
        create: None,
        member: None,
        third_party_keys: None,
    };
    match &*pdu.event_type {
        "m.room.member" => {
            out.membership = content.get("membership").map(Membership::parse);
            out.member = Some(Box::new(MemberFacts::extract(content)));
        }
        "m.room.join_rules" => out.join_rule = Some(JoinRule::parse(content.get("join_rule"))),
        "m.room.power_levels" => {
            out.power_levels = Some(Box::new(super::power_levels::PowerLevels::parse(
                content, version,
            )));
        }
        "m.room.create" => out.create = Some(Box::new(CreateFacts::extract(pdu, version))),
        "m.room.third_party_invite" => {
            out.third_party_keys = Some(third_party_public_keys(content).into_boxed_slice());
        }
        _ => {}
    }
    out
}
