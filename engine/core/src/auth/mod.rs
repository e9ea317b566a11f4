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

mod event;
mod facts;
mod lookup;
mod membership;
pub mod numbering;
pub mod power_levels;
pub mod request;
mod rules;
mod state;

pub use event::{AuthEvent, AuthFailure, AuthState};
pub use facts::{
    Authoriser, CreateFacts, JoinRule, MemberFacts, Membership, SignedClaim, ThirdPartyClaim,
};
pub use power_levels::{PowerLevel, PowerLevels};
pub use state::{AuthEventsState, StateLookup};

use crate::pdu::Pdu;
use crate::room_version::RoomVersion;
use crate::signatures::{self, SignatureError, Signer};

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
    lookup::user_power_level(&event.pdu.sender, power_levels, create)
        .unwrap_or(PowerLevel::Finite(0))
}
