//! Authorization rules for room versions 1–12 (spec "Authorization rules" of each room version page).
//!
//! CONTRACT (used by state resolution, ingest, the CLI and the FFI; the signatures below are fixed —
//! extend, don't change):
//! - [`AuthEvent`]: a PDU plus its auth-relevant facts (membership, join rule, parsed power levels…),
//!   extracted once when the event enters the engine, so no JSON is re-parsed inside hot loops.
//! - [`AuthState`]: the state an event is checked against (its `auth_events`, the state before it, the
//!   current state, or the partial state of an iterative auth check), looked up by `(type, state_key)`.
//! - [`check_state_independent`] and [`check_state_dependent`]: the spec's rules split the way Synapse and
//!   ruma split them; each failure says which rule failed.
//! - [`check_signature_presence`]: the receipt-time signature check Synapse runs before the rules
//!   (including the v8+ authorising server's signature, which the spec lists as rule `M.2`); never
//!   part of [`check_state_dependent`], so state resolution does not run it.
//!
//! Where Synapse, ruma and the spec text disagree, these rules follow Synapse; `docs/auth-rules.md`
//! lists every such choice. Rule numbers follow the numbering of the event's room version
//! ([`numbering`]).

mod facts;
mod membership;
pub mod numbering;
pub mod power_levels;
pub mod request;
mod rules;
mod state;

pub use facts::{
    Authoriser, CreateFacts, JoinRule, MemberFacts, Membership, SignedClaim, ThirdPartyClaim,
};
pub use power_levels::PowerLevels;
pub(crate) use state::FastHash;
pub use state::{AuthEventsState, StateMap};

use crate::pdu::Pdu;
use crate::room_version::RoomVersion;
use crate::signatures::{self, SignatureError, Signer};

/// A PDU with its auth-relevant facts extracted once.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    pub pdu: Pdu<'static>,
    /// `content.membership` of an `m.room.member` event (`None` when absent or for other types).
    pub membership: Option<Membership>,
    /// `content.join_rule` of an `m.room.join_rules` event (absent reads as `invite`, as in Synapse).
    pub join_rule: Option<JoinRule>,
    /// Parsed content of an `m.room.power_levels` event.
    pub power_levels: Option<Box<PowerLevels>>,
    /// Creator, creators, `m.federate` and validity facts of an `m.room.create` event.
    pub create: Option<Box<CreateFacts>>,
    /// `join_authorised_via_users_server` and `third_party_invite` of an `m.room.member` event.
    pub member: Option<Box<MemberFacts>>,
    /// Decoded public keys of an `m.room.third_party_invite` event.
    pub third_party_keys: Option<Box<[Vec<u8>]>>,
}

impl AuthEvent {
    /// Extracts the auth facts of `pdu`. Never fails: malformed auth-relevant content (e.g. a power-levels
    /// event with non-integer values) is recorded and makes the auth checks fail with the rule it breaks.
    pub fn new(pdu: Pdu<'static>) -> AuthEvent {
        let facts = facts::extract(&pdu);
        AuthEvent::assemble(pdu, facts)
    }

    /// Like [`AuthEvent::new`], keeping a [`Pdu::detached`] header instead of the whole PDU: the facts,
    /// the header fields and of the JSON only what the rules read besides the facts — everything of a
    /// create event (rule 1 reads its top level). Signatures are checked on receipt, before the rules
    /// ([`crate::signatures`]). Ingest holds its events this way: a fraction of the memory, no JSON
    /// tree to copy or drop.
    pub fn detached(pdu: &Pdu<'_>) -> AuthEvent {
        let facts = facts::extract(pdu);
        let is_create = pdu.event_type == "m.room.create";
        let header = pdu.detached(|_| is_create);
        AuthEvent::assemble(header, facts)
    }

    fn assemble(pdu: Pdu<'static>, facts: facts::Extracted) -> AuthEvent {
        let facts::Extracted {
            membership,
            join_rule,
            power_levels,
            create,
            member,
            third_party_keys,
        } = facts;
        AuthEvent {
            pdu,
            membership,
            join_rule,
            power_levels,
            create,
            member,
            third_party_keys,
        }
    }

    pub fn event_id(&self) -> &str {
        &self.pdu.event_id
    }

    /// Whether the create rules (rule 1) apply: the type is `m.room.create`, as in Synapse and ruma.
    pub fn is_create(&self) -> bool {
        self.pdu.event_type == "m.room.create"
    }
}

/// A state map as seen by the auth rules.
pub trait AuthState {
    /// The event for `(event_type, state_key)`, if any. Implementations must never return rejected events.
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent>;
}

/// A sender's power level: finite, or infinite for v12 creators (MSC4289).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PowerLevel {
    Finite(i64),
    Infinite,
}

/// Which rule rejected an event, in words: `rule 4.7.2 (v11): sender is not joined`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule} (v{version}): {reason}")]
pub struct AuthFailure {
    /// The rule number in the numbering of the event's room version, e.g. `"5.3.7"`.
    pub rule: String,
    pub version: &'static str,
    pub reason: String,
}

/// The `(type, state_key)` pairs `event` may cite in `auth_events` (server-server API "Auth events
/// selection"); also the keys looked up during iterative auth checks in state resolution.
pub fn auth_types_for_event(event: &AuthEvent) -> Vec<(&'static str, String)> {
    rules::auth_types_for_event(event)
}

/// The keys of [`auth_types_for_event`] without allocating: `visit(type, state_key)` is called for each,
/// in the same order; a key may be visited more than once. Used to intern each event's lookup keys once
/// when it enters an [`EventGraph`](crate::resolve::EventGraph).
pub fn for_each_auth_type<'e>(event: &'e AuthEvent, visit: impl FnMut(&'static str, &'e str)) {
    rules::for_each_auth_type(event, visit)
}

/// The state-independent rules: the create rules, the v12 room-id rule and the checks on the structure
/// of `auth_events` (duplicates, unexpected types, rejected entries, other rooms). `auth_events` are the
/// events `event.pdu.auth_events` cite, in order; `is_rejected` tells which of them were rejected.
/// `create` is the room's create event (for v12 taken from the room id; `None` when checking the create
/// event itself or when it is unknown).
pub fn check_state_independent(
    event: &AuthEvent,
    auth_events: &[&AuthEvent],
    create: Option<&AuthEvent>,
    is_rejected: &dyn Fn(&str) -> bool,
) -> Result<(), AuthFailure> {
    rules::check_state_independent(event, auth_events, create, is_rejected)
}

/// The state-dependent rules (everything after the auth-events checks) against `state`.
/// `create` is the room's create event; the create event itself is checked by
/// [`check_state_independent`] only.
pub fn check_state_dependent(
    event: &AuthEvent,
    state: &dyn AuthState,
    create: &AuthEvent,
) -> Result<(), AuthFailure> {
    rules::check_state_dependent(event, state, create)
}

/// Synapse's receipt-time signature check (`validate_event_for_room_version`): the servers that must
/// sign `pdu` appear in its `signatures` ([`signatures::check_present`]). Runs before the auth rules on
/// receipt only — never in state resolution, where Synapse and ruma run the state-dependent rules
/// alone. The failure names its rule as [`signature_failure`] does.
pub fn check_signature_presence(pdu: &Pdu<'_>) -> Result<(), AuthFailure> {
    signatures::check_present(pdu).map_err(|e| signature_failure(&e, pdu.version))
}

/// A signature failure as an [`AuthFailure`]: the authorising server's signature is the spec's member
/// sub-rule `M.2` (`4.2` in v8–v11, `5.2` in v12); the others, which the spec lists among the receipt
/// checks rather than the auth rules, are `signatures.sender` and `signatures.event_id`.
pub fn signature_failure(error: &SignatureError, version: &'static RoomVersion) -> AuthFailure {
    let rule = match error.signer() {
        Signer::Sender => "signatures.sender".to_owned(),
        Signer::EventIdDomain => "signatures.event_id".to_owned(),
        Signer::Authoriser => {
            let sub = numbering::MemberRules::of(version)
                .authoriser_signature
                .unwrap_or(2);
            format!("{}.{sub}", numbering::Rules::of(version).member)
        }
    };
    AuthFailure {
        rule,
        version: version.id,
        reason: error.to_string(),
    }
}

/// The power level of `event`'s sender according to the power-levels event `power_levels` (the one among
/// the event's own auth events, for the reverse topological power ordering): creators get 100 without a
/// power-levels event before v12, and are infinite in v12.
///
/// A malformed `users` or `users_default` (possible only in v1–v9 rooms) counts as 0 here; the auth
/// rules themselves reject events that depend on such values.
pub fn sender_power_level(
    event: &AuthEvent,
    power_levels: Option<&AuthEvent>,
    create: &AuthEvent,
) -> PowerLevel {
    rules::user_power_level(&event.pdu.sender, power_levels, create)
        .unwrap_or(PowerLevel::Finite(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::EventBuilder;
    use crate::room_version::RoomVersion;

    fn event(
        v: &str,
        event_type: &str,
        sender: &str,
        state_key: Option<&str>,
        content: &str,
    ) -> AuthEvent {
        let version = RoomVersion::from_id(v).expect("known");
        let mut b = EventBuilder::with_json_content(version, event_type, sender, content)
            .room_id("!r:a.org");
        if let Some(k) = state_key {
            b = b.state_key(k);
        }
        AuthEvent::new(b.build().expect("valid fixture"))
    }

    fn create(v: &str, extra: &str) -> AuthEvent {
        event(
            v,
            "m.room.create",
            "@alice:a.org",
            Some(""),
            &format!(r#"{{"creator":"@alice:a.org"{extra}}}"#),
        )
    }

    #[test]
    fn selection_follows_the_event() {
        let join = event(
            "8",
            "m.room.member",
            "@bob:a.org",
            Some("@bob:a.org"),
            r#"{"membership":"join","join_authorised_via_users_server":"@carol:b.org"}"#,
        );
        let keys = auth_types_for_event(&join);
        for key in [
            ("m.room.power_levels", ""),
            ("m.room.member", "@bob:a.org"),
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.member", "@carol:b.org"),
        ] {
            assert!(
                keys.iter().any(|(t, k)| *t == key.0 && k == key.1),
                "{key:?} in {keys:?}"
            );
        }
        assert_eq!(keys.len(), 5);
        let invite = event(
            "12",
            "m.room.member",
            "@bob:a.org",
            Some("@eve:c.org"),
            r#"{"membership":"invite","third_party_invite":{"signed":{"token":"t"}}}"#,
        );
        let keys = auth_types_for_event(&invite);
        assert!(
            keys.iter()
                .any(|(t, k)| *t == "m.room.third_party_invite" && k == "t")
        );
        assert!(
            !keys.iter().any(|(t, _)| *t == "m.room.create"),
            "v12 never cites the create event"
        );
        assert!(auth_types_for_event(&create("11", "")).is_empty());
    }

    #[test]
    fn facts_follow_synapse_readings() {
        assert!(
            !create("6", r#","m.federate":"false""#)
                .create
                .expect("facts")
                .federate
        );
        assert!(create("6", "").create.expect("facts").federate);
        let rules = event("6", "m.room.join_rules", "@alice:a.org", Some(""), "{}");
        assert_eq!(rules.join_rule, Some(JoinRule::Invite));
        let odd = event(
            "6",
            "m.room.join_rules",
            "@alice:a.org",
            Some(""),
            r#"{"join_rule":5}"#,
        );
        assert_eq!(odd.join_rule, Some(JoinRule::Unknown));
    }

    struct Map(Vec<AuthEvent>);

    impl AuthState for Map {
        fn get(&self, t: &str, k: &str) -> Option<&AuthEvent> {
            self.0
                .iter()
                .find(|e| e.pdu.event_type == t && e.pdu.state_key.as_deref() == Some(k))
        }
    }

    #[test]
    fn power_levels_with_a_state_key_compare_against_their_own_key() {
        let c = create("6", "");
        let state = Map(vec![
            event(
                "6",
                "m.room.member",
                "@alice:a.org",
                Some("@alice:a.org"),
                r#"{"membership":"join"}"#,
            ),
            event(
                "6",
                "m.room.power_levels",
                "@alice:a.org",
                Some(""),
                r#"{"users":{"@alice:a.org":60}}"#,
            ),
        ]);
        // Under "" this would raise bob above alice (rule 9.7); under "x" there is no previous event.
        let keyed = event(
            "6",
            "m.room.power_levels",
            "@alice:a.org",
            Some("x"),
            r#"{"users":{"@bob:a.org":99}}"#,
        );
        assert_eq!(check_state_dependent(&keyed, &state, &c), Ok(()));
        let plain = event(
            "6",
            "m.room.power_levels",
            "@alice:a.org",
            Some(""),
            r#"{"users":{"@alice:a.org":60,"@bob:a.org":99}}"#,
        );
        assert_eq!(
            check_state_dependent(&plain, &state, &c).map_err(|f| f.rule),
            Err("9.7".to_owned())
        );
    }

    #[test]
    fn v1_redaction_without_target_passes_like_synapse() {
        let c = create("1", "");
        let state = Map(vec![
            event(
                "1",
                "m.room.member",
                "@carol:b.org",
                Some("@carol:b.org"),
                r#"{"membership":"join"}"#,
            ),
            event(
                "1",
                "m.room.power_levels",
                "@alice:a.org",
                Some(""),
                r#"{"users":{"@alice:a.org":100}}"#,
            ),
        ]);
        let redaction = event("1", "m.room.redaction", "@carol:b.org", None, "{}");
        assert_eq!(check_state_dependent(&redaction, &state, &c), Ok(()));
    }

    #[test]
    fn no_input_panics_on_a_foreign_create() {
        // A "create" argument that is not a create event is a failure, not a panic.
        let not_create = event("11", "m.room.topic", "@alice:a.org", Some(""), "{}");
        let msg = event("11", "m.room.message", "@alice:a.org", None, "{}");
        let failure =
            check_state_dependent(&msg, &Map(Vec::new()), &not_create).expect_err("no create");
        assert_eq!(failure.rule, "2");
        assert_eq!(
            sender_power_level(&msg, None, &not_create),
            PowerLevel::Finite(0)
        );
    }
}
