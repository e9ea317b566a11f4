//! The event as the rules see it ([`AuthEvent`]: a PDU and its auth facts, extracted once), the state
//! they read ([`AuthState`]), power levels and the failure a rule reports.

use crate::pdu::Pdu;

use super::facts::{self, CreateFacts, JoinRule, MemberFacts, Membership};
use super::power_levels::PowerLevels;

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

/// Which rule rejected an event, in words: `rule 4.7.2 (v11): sender is not joined`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule} (v{version}): {reason}")]
pub struct AuthFailure {
    /// The rule number in the numbering of the event's room version, e.g. `"5.3.7"`.
    pub rule: String,
    pub version: &'static str,
    pub reason: String,
}
