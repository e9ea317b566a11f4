//! Room versions 1–12 as data.
//!
//! Every per-version rule the engine needs (event-id format, PDU schema, redaction set, canonical-JSON
//! strictness, auth-rule switches, state-resolution algorithm) is a plain field of [`RoomVersion`], so
//! version differences are looked up in one table instead of `if version == …` scattered through the code.
//! Source: Matrix spec v1.19, `content/rooms/v1.md` … `v12.md` and the feature matrix in `rooms/_index.md`.

use std::fmt;

use crate::limits::MAX_SAFE_INT;

/// How the event id of a PDU is obtained (spec "Event IDs" fragments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventIdFormat {
    /// v1/v2: `$opaque:domain`, chosen by the origin server and carried in the PDU as `event_id`.
    ServerChosen,
    /// v3: `$` + standard unpadded base64 of the reference hash.
    ReferenceHashStandard,
    /// v4+: `$` + URL-safe unpadded base64 of the reference hash.
    ReferenceHashUrlSafe,
}

/// Which redaction algorithm applies (spec "Redactions" fragments; names follow the digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RedactionRules {
    /// v1–v5: `m.room.aliases` keeps `aliases`.
    R1,
    /// v6–v7: `m.room.aliases` no longer special.
    R6,
    /// v8: join rules keep `allow`.
    R8,
    /// v9–v10: member keeps `join_authorised_via_users_server`.
    R9,
    /// v11+: MSC2176/MSC3821/MSC3989 (create keeps all content, `origin`/`membership`/`prev_state` dropped).
    R11,
}

/// The state-resolution algorithm of a room version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateResAlgorithm {
    /// Room version 1 (legacy algorithm).
    V1,
    /// Room versions 2–11.
    V2,
    /// Room version 12 (MSC4297): empty starting state and the conflicted state subgraph.
    V2_1,
}

/// Every rule that differs between room versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomVersion {
    /// The version identifier, e.g. `"11"`.
    pub id: &'static str,
    pub event_id_format: EventIdFormat,
    /// `auth_events` / `prev_events` are `[[id, {"sha256": …}], …]` pairs (v1/v2) rather than plain ids.
    pub reference_pairs: bool,
    /// `redacts` lives in `content` (v11+) rather than at the top level.
    pub redacts_in_content: bool,
    /// The create event carries no `room_id`; the room id is derived from the create event id (v12).
    pub room_id_from_create: bool,
    pub redaction: RedactionRules,
    /// Canonical JSON strictly enforced: no floats, integers within ±(2^53−1) (v6+).
    pub strict_canonical_json: bool,
    /// Largest allowed `depth` (2^63−1 for v1–v5, 2^53−1 from v6).
    pub max_depth: i64,
    /// Power-level values may be strings holding integers (v1–v9).
    pub string_power_levels: bool,
    /// Power-level values may be floats (v1–v5, only possible where canonical JSON is not enforced).
    pub float_power_levels: bool,
    /// Power levels must be JSON integers with type checks on every field (v10+, rules 9.1–9.3).
    pub integer_power_levels: bool,
    /// The `m.room.aliases` auth rule exists (v1–v5).
    pub special_case_aliases_auth: bool,
    /// The `m.room.redaction` auth rule exists (v1–v2).
    pub special_case_redaction_auth: bool,
    /// Power-level change checks also cover `notifications` (v6+).
    pub notifications_power_levels: bool,
    /// `knock` membership and join rule (v7+).
    pub knocking: bool,
    /// `restricted` join rule and `join_authorised_via_users_server` (v8+).
    pub restricted_join: bool,
    /// `knock_restricted` join rule (v10+).
    pub knock_restricted_join: bool,
    /// The room creator is `content.creator` (v1–v10) rather than the create event's `sender` (v11+).
    pub creator_in_content: bool,
    /// A signing key must still be valid (`valid_until_ts`) at the event's `origin_server_ts` (v5+).
    pub enforce_key_validity: bool,
    /// Creators have infinite power, `additional_creators` exists, create is never an auth event (v12).
    pub privileged_creators: bool,
    pub state_res: StateResAlgorithm,
}

impl RoomVersion {
    /// Looks up a room version by its identifier.
    pub fn from_id(id: &str) -> Result<&'static RoomVersion, UnknownRoomVersion> {
        ROOM_VERSIONS
            .iter()
            .find(|v| v.id == id)
            .ok_or_else(|| UnknownRoomVersion(id.chars().take(64).collect()))
    }

    /// All supported room versions, oldest first.
    pub fn all() -> &'static [RoomVersion] {
        &ROOM_VERSIONS
    }

    /// Whether the create event appears in `auth_events` (v1–v11) or is implied by the room id (v12).
    pub fn create_in_auth_events(&self) -> bool {
        !self.privileged_creators
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

/// A room version this engine does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown room version `{0}` (supported: 1–12)")]
pub struct UnknownRoomVersion(pub String);

const MAX_DEPTH_V1: i64 = i64::MAX;

const V1: RoomVersion = RoomVersion {
    id: "1",
    event_id_format: EventIdFormat::ServerChosen,
    reference_pairs: true,
    redacts_in_content: false,
    room_id_from_create: false,
    redaction: RedactionRules::R1,
    strict_canonical_json: false,
    max_depth: MAX_DEPTH_V1,
    string_power_levels: true,
    float_power_levels: true,
    integer_power_levels: false,
    special_case_aliases_auth: true,
    special_case_redaction_auth: true,
    notifications_power_levels: false,
    knocking: false,
    restricted_join: false,
    knock_restricted_join: false,
    creator_in_content: true,
    enforce_key_validity: false,
    privileged_creators: false,
    state_res: StateResAlgorithm::V1,
};

const V2: RoomVersion = RoomVersion {
    id: "2",
    state_res: StateResAlgorithm::V2,
    ..V1
};

const V3: RoomVersion = RoomVersion {
    id: "3",
    event_id_format: EventIdFormat::ReferenceHashStandard,
    reference_pairs: false,
    special_case_redaction_auth: false,
    ..V2
};

const V4: RoomVersion = RoomVersion {
    id: "4",
    event_id_format: EventIdFormat::ReferenceHashUrlSafe,
    ..V3
};

const V5: RoomVersion = RoomVersion {
    id: "5",
    enforce_key_validity: true,
    ..V4
};

const V6: RoomVersion = RoomVersion {
    id: "6",
    redaction: RedactionRules::R6,
    strict_canonical_json: true,
    max_depth: MAX_SAFE_INT,
    float_power_levels: false,
    special_case_aliases_auth: false,
    notifications_power_levels: true,
    ..V5
};

const V7: RoomVersion = RoomVersion {
    id: "7",
    knocking: true,
    ..V6
};

const V8: RoomVersion = RoomVersion {
    id: "8",
    redaction: RedactionRules::R8,
    restricted_join: true,
    ..V7
};

const V9: RoomVersion = RoomVersion {
    id: "9",
    redaction: RedactionRules::R9,
    ..V8
};

const V10: RoomVersion = RoomVersion {
    id: "10",
    string_power_levels: false,
    integer_power_levels: true,
    knock_restricted_join: true,
    ..V9
};

const V11: RoomVersion = RoomVersion {
    id: "11",
    redacts_in_content: true,
    redaction: RedactionRules::R11,
    creator_in_content: false,
    ..V10
};

const V12: RoomVersion = RoomVersion {
    id: "12",
    room_id_from_create: true,
    privileged_creators: true,
    state_res: StateResAlgorithm::V2_1,
    ..V11
};

static ROOM_VERSIONS: [RoomVersion; 12] = [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_resolves_by_id() {
        for (i, v) in RoomVersion::all().iter().enumerate() {
            assert_eq!(v.id, (i + 1).to_string());
            assert_eq!(RoomVersion::from_id(v.id).map(|v| v.id), Ok(v.id));
        }
    }

    #[test]
    fn unknown_versions_are_rejected() {
        for bad in ["", "0", "13", "org.matrix.hydra.11", "1 ", "v1"] {
            assert!(RoomVersion::from_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn version_features_follow_the_spec_matrix() {
        let v = |id| RoomVersion::from_id(id).expect("known");
        assert_eq!(v("1").state_res, StateResAlgorithm::V1);
        assert_eq!(v("2").state_res, StateResAlgorithm::V2);
        assert_eq!(v("11").state_res, StateResAlgorithm::V2);
        assert_eq!(v("12").state_res, StateResAlgorithm::V2_1);
        assert_eq!(v("3").event_id_format, EventIdFormat::ReferenceHashStandard);
        assert_eq!(v("4").event_id_format, EventIdFormat::ReferenceHashUrlSafe);
        assert!(!v("6").knocking && v("7").knocking);
        assert!(!v("7").restricted_join && v("8").restricted_join);
        assert!(!v("9").knock_restricted_join && v("10").knock_restricted_join);
        assert!(v("9").string_power_levels && !v("10").string_power_levels);
        assert!(v("5").float_power_levels && !v("6").float_power_levels);
        assert!(!v("5").strict_canonical_json && v("6").strict_canonical_json);
        assert!(v("10").creator_in_content && !v("11").creator_in_content);
        assert!(!v("11").redacts_in_content || v("11").redaction == RedactionRules::R11);
        assert!(v("12").room_id_from_create && !v("12").create_in_auth_events());
        assert!(v("2").special_case_redaction_auth && !v("3").special_case_redaction_auth);
        assert!(v("5").special_case_aliases_auth && !v("6").special_case_aliases_auth);
        assert!(!v("4").enforce_key_validity && v("5").enforce_key_validity);
        assert!(v("12").enforce_key_validity);
    }
}
