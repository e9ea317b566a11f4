//! What every rule module reads: the event types the rules name, failures in the numbering of a room
//! version, and the lookups of a sender's or a named power level and of a user's membership.

use crate::room_version::RoomVersion;

use super::event::{AuthEvent, AuthFailure, AuthState};
use super::facts::Membership;
use super::power_levels::IntField;
use super::power_levels::PowerLevel;

pub(super) const CREATE: &str = "m.room.create";
pub(super) const MEMBER: &str = "m.room.member";
pub(super) const JOIN_RULES: &str = "m.room.join_rules";
pub(super) const POWER_LEVELS: &str = "m.room.power_levels";
pub(super) const THIRD_PARTY_INVITE: &str = "m.room.third_party_invite";

/// Builds a failure for `rule` of `version`.
pub(super) fn fail(
    version: &RoomVersion,
    rule: impl std::fmt::Display,
    reason: impl Into<String>,
) -> AuthFailure {
    AuthFailure {
        rule: rule.to_string(),
        version: version.id,
        reason: reason.into(),
    }
}

/// The level of `user` (spec "Definitions"): v12 creators are infinite; otherwise `users` /
/// `users_default` of the power-levels event, or without one 100 for the creator and 0 for others.
pub(super) fn user_power_level(
    user: &str,
    power_levels: Option<&AuthEvent>,
    create: &AuthEvent,
) -> Result<PowerLevel, String> {
    let Some(facts) = &create.create else {
        return Ok(PowerLevel::Finite(0));
    };
    if create.pdu.version.privileged_creators && facts.creators.iter().any(|c| &**c == user) {
        return Ok(PowerLevel::Infinite);
    }
    match power_levels.and_then(|e| e.power_levels.as_deref()) {
        Some(levels) => levels.user_level(user).map(PowerLevel::Finite),
        None if !create.pdu.version.privileged_creators
            && facts.creator.as_deref() == Some(user) =>
        {
            Ok(PowerLevel::Finite(100))
        }
        None => Ok(PowerLevel::Finite(0)),
    }
}

/// The value of a named level (`invite`, `ban`, …) in `state`, with its default.
pub(super) fn named_level(state: &dyn AuthState, field: IntField) -> Result<i64, String> {
    match state
        .get(POWER_LEVELS, "")
        .and_then(|e| e.power_levels.as_deref())
    {
        Some(levels) => levels.field_or_default(field),
        None => Ok(field.default_value()),
    }
}

/// The current membership of `user` in `state` (`None`: no member event).
pub(super) fn membership_of(state: &dyn AuthState, user: &str) -> Option<Membership> {
    state.get(MEMBER, user).and_then(|e| e.membership)
}

/// A power level for messages.
pub(super) fn show(level: PowerLevel) -> String {
    match level {
        PowerLevel::Finite(v) => v.to_string(),
        PowerLevel::Infinite => "infinite (creator)".to_owned(),
    }
}
