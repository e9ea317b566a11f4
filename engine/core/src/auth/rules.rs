//! The authorization rules themselves: auth-event selection, the state-independent rules (create,
//! v12 room id, auth-events structure) and the state-dependent rules (everything else), in the order
//! of the spec's rule list. Membership rules live in [`super::membership`].

use smallvec::SmallVec;

use crate::pdu::server_name;
use crate::room_version::RoomVersion;

use super::event::{AuthEvent, AuthFailure, AuthState};
use super::facts::CreateFacts;
use super::facts::Membership;
use super::lookup::{
    CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, THIRD_PARTY_INVITE, fail, membership_of, named_level,
    show, user_power_level,
};
use super::membership;
use super::numbering::{PowerLevelRules, Rules};
use super::power_levels::PowerLevel;
use super::power_levels::{IntField, Level, MapViolation, compare_maps, map_entries};

/// Server-server API "Auth events selection", as Synapse's `auth_types_for_event`: create (v1–v11),
/// power levels and the sender's member event; for member events also the target's member event, the
/// join rules (join/invite/knock), the third-party-invite token (invites) and the authorising user's
/// member event (joins, v8+). Deduplicated, in that order.
pub(super) fn auth_types_for_event(event: &AuthEvent) -> Vec<(&'static str, String)> {
    let mut types: Vec<(&'static str, String)> = Vec::with_capacity(6);
    for_each_auth_type(event, |t, k| {
        if !types.iter().any(|(tt, kk)| *tt == t && kk == k) {
            types.push((t, k.to_owned()));
        }
    });
    types
}

/// The keys of [`auth_types_for_event`] without allocating: `visit` is called once per selected key, in
/// the same order; a key may be visited twice (e.g. the sender's and the target's member event of a
/// self-join), callers deduplicate if they need to.
pub(super) fn for_each_auth_type<'e>(
    event: &'e AuthEvent,
    mut visit: impl FnMut(&'static str, &'e str),
) {
    let pdu = &event.pdu;
    if event.is_create() {
        return;
    }
    visit(POWER_LEVELS, "");
    visit(MEMBER, &pdu.sender);
    if pdu.version.create_in_auth_events() {
        visit(CREATE, "");
    }
    if pdu.event_type == MEMBER {
        if let Some(target) = pdu.state_key.as_deref() {
            visit(MEMBER, target);
        }
        let membership = event.membership;
        if matches!(
            membership,
            Some(Membership::Join | Membership::Invite | Membership::Knock)
        ) {
            visit(JOIN_RULES, "");
        }
        if let Some(facts) = &event.member {
            if membership == Some(Membership::Invite)
                && let Some(token) = facts
                    .third_party_invite
                    .as_ref()
                    .and_then(|c| c.signed.as_ref())
                    .and_then(|s| s.token.as_deref())
            {
                visit(THIRD_PARTY_INVITE, token);
            }
            if membership == Some(Membership::Join)
                && pdu.version.restricted_join
                && let super::Authoriser::User(user) = &facts.authoriser
            {
                visit(MEMBER, user);
            }
        }
    }
}

/// Create rules (rule 1), the v12 room-id rule (2) and the auth-events rules (2.x / 3.x in v12).
pub(super) fn check_state_independent(
    event: &AuthEvent,
    auth_events: &[&AuthEvent],
    create: Option<&AuthEvent>,
    is_rejected: &dyn Fn(&str) -> bool,
) -> Result<(), AuthFailure> {
    let pdu = &event.pdu;
    let version = pdu.version;
    if event.is_create() {
        return check_create(event);
    }
    let n = Rules::of(version);
    if let Some(rule) = n.room_id {
        let implied = crate::event_id::create_event_id_from_room_id(&pdu.room_id);
        match create {
            Some(c) if c.is_create() && c.pdu.event_id == implied => {
                if is_rejected(&c.pdu.event_id) {
                    return Err(fail(
                        version,
                        rule,
                        format!("the room's create event {implied} was rejected"),
                    ));
                }
            }
            _ => {
                return Err(fail(
                    version,
                    rule,
                    format!(
                        "room id {} is not the id of a known m.room.create event",
                        pdu.room_id
                    ),
                ));
            }
        }
    }
    let a = n.auth_events;
    // Borrowed keys: this runs for every event, and owned ones cost an allocation each.
    let mut expected: SmallVec<[(&'static str, &str); 8]> = SmallVec::new();
    for_each_auth_type(event, |t, k| expected.push((t, k)));
    let mut seen: SmallVec<[(&str, &str); 8]> = SmallVec::new();
    for auth in auth_events {
        let id = auth.event_id();
        if auth.pdu.room_id != pdu.room_id {
            return Err(fail(
                version,
                format!("{a}.5"),
                format!("auth event {id} belongs to room {}", auth.pdu.room_id),
            ));
        }
        let Some(state_key) = auth.pdu.state_key.as_deref() else {
            return Err(fail(
                version,
                format!("{a}.2"),
                format!("auth event {id} is not a state event"),
            ));
        };
        let key = (&*auth.pdu.event_type, state_key);
        if seen.contains(&key) {
            return Err(fail(
                version,
                format!("{a}.1"),
                format!("duplicate auth events for ({}, {:?})", key.0, key.1),
            ));
        }
        if !expected.iter().any(|(t, k)| *t == key.0 && *k == key.1) {
            return Err(fail(
                version,
                format!("{a}.2"),
                format!(
                    "auth event {id} ({}, {:?}) is not selected for this event",
                    key.0, key.1
                ),
            ));
        }
        if is_rejected(id) {
            return Err(fail(
                version,
                format!("{a}.3"),
                format!("auth event {id} was rejected"),
            ));
        }
        seen.push(key);
    }
    if version.create_in_auth_events() && !seen.iter().any(|(t, _)| *t == CREATE) {
        return Err(fail(
            version,
            format!("{a}.4"),
            "no m.room.create event among the auth events",
        ));
    }
    Ok(())
}

/// Rule 1: `m.room.create`.
fn check_create(event: &AuthEvent) -> Result<(), AuthFailure> {
    let pdu = &event.pdu;
    let version = pdu.version;
    if !pdu.prev_events.is_empty() {
        return Err(fail(version, "1.1", "m.room.create has prev_events"));
    }
    if version.room_id_from_create {
        if pdu.json.contains_key("room_id") {
            return Err(fail(version, "1.2", "m.room.create has a room_id"));
        }
    } else if server_name(&pdu.room_id) != server_name(&pdu.sender) || !pdu.room_id.contains(':') {
        return Err(fail(
            version,
            "1.2",
            format!(
                "room id {} is not on the sender's server {}",
                pdu.room_id,
                server_name(&pdu.sender)
            ),
        ));
    }
    let Some(facts) = &event.create else {
        return Err(fail(version, "1", "m.room.create facts missing"));
    };
    if !facts.room_version_known {
        return Err(fail(
            version,
            "1.3",
            "content.room_version is not a known room version",
        ));
    }
    if version.creator_in_content && !facts.has_creator_key {
        return Err(fail(version, "1.4", "content has no creator"));
    }
    if let Some(reason) = &facts.additional_creators_error {
        return Err(fail(version, "1.4", reason.clone()));
    }
    Ok(())
}

/// The create facts of `create`, or a failure if `create` is not a create event.
pub(super) fn create_facts<'c>(
    create: &'c AuthEvent,
    version: &RoomVersion,
) -> Result<&'c CreateFacts, AuthFailure> {
    match &create.create {
        Some(facts) if create.is_create() => Ok(facts),
        _ => Err(fail(
            version,
            Rules::of(version).auth_events,
            format!("{} is not an m.room.create event", create.event_id()),
        )),
    }
}

/// Everything after the auth-events rules.
pub(super) fn check_state_dependent(
    event: &AuthEvent,
    state: &dyn AuthState,
    create: &AuthEvent,
) -> Result<(), AuthFailure> {
    if event.is_create() {
        return Ok(());
    }
    let pdu = &event.pdu;
    let version = pdu.version;
    let n = Rules::of(version);
    let facts = create_facts(create, version)?;

    if !facts.federate && server_name(&pdu.sender) != server_name(&create.pdu.sender) {
        return Err(fail(
            version,
            n.federate,
            format!(
                "room is not federated and the sender's server {} is not the creator's",
                server_name(&pdu.sender)
            ),
        ));
    }

    if let Some(rule) = n.aliases
        && pdu.event_type == "m.room.aliases"
    {
        let Some(state_key) = pdu.state_key.as_deref() else {
            return Err(fail(
                version,
                format!("{rule}.1"),
                "m.room.aliases has no state_key",
            ));
        };
        if state_key != server_name(&pdu.sender) {
            return Err(fail(
                version,
                format!("{rule}.2"),
                "m.room.aliases state_key is not the sender's server",
            ));
        }
        return Ok(());
    }

    if pdu.event_type == MEMBER {
        return membership::check(event, state, create, facts, &n);
    }

    if membership_of(state, &pdu.sender) != Some(Membership::Join) {
        return Err(fail(version, n.joined, "sender is not joined"));
    }

    let power_levels = state.get(POWER_LEVELS, "");
    let sender_level = user_power_level(&pdu.sender, power_levels, create)
        .map_err(|reason| fail(version, n.required_level, reason))?;

    if pdu.event_type == THIRD_PARTY_INVITE {
        let invite = named_level(state, IntField::Invite)
            .map_err(|reason| fail(version, format!("{}.1", n.third_party_invite), reason))?;
        if sender_level < PowerLevel::Finite(invite) {
            return Err(fail(
                version,
                format!("{}.1", n.third_party_invite),
                format!(
                    "sender's power level {} is below the invite level {invite}",
                    show(sender_level)
                ),
            ));
        }
        return Ok(());
    }

    let required = match power_levels.and_then(|e| e.power_levels.as_deref()) {
        Some(levels) => levels.required_level(&pdu.event_type, pdu.is_state()),
        None => Ok(if pdu.is_state() { 50 } else { 0 }),
    }
    .map_err(|reason| fail(version, n.required_level, reason))?;
    if sender_level < PowerLevel::Finite(required) {
        return Err(fail(
            version,
            n.required_level,
            format!(
                "sender's power level {} is below the level {required} required for {}",
                show(sender_level),
                pdu.event_type
            ),
        ));
    }

    if let Some(state_key) = pdu.state_key.as_deref()
        && state_key.starts_with('@')
        && state_key != pdu.sender
    {
        return Err(fail(version, n.state_key, "state_key is another user's id"));
    }

    if pdu.event_type == POWER_LEVELS {
        check_power_levels(event, state, facts, sender_level, &n)?;
    }

    if let Some(rule) = n.redaction
        && pdu.event_type == "m.room.redaction"
    {
        let redact = named_level(state, IntField::Redact)
            .map_err(|reason| fail(version, format!("{rule}.1"), reason))?;
        if sender_level >= PowerLevel::Finite(redact) {
            return Ok(());
        }
        // Synapse lets a redaction without a `redacts` string through here.
        let Some(target) = pdu.redacts.as_deref() else {
            return Ok(());
        };
        if server_name(&pdu.event_id) == server_name(target) {
            return Ok(());
        }
        return Err(fail(
            version,
            format!("{rule}.3"),
            "sender is below the redact level and the redacted event is from another server",
        ));
    }
    Ok(())
}

/// The `m.room.power_levels` rule, with Synapse's comparison: a value is compared only on the sides
/// where it is present (no defaults substituted), unchanged values are skipped.
fn check_power_levels(
    event: &AuthEvent,
    state: &dyn AuthState,
    facts: &CreateFacts,
    sender_level: PowerLevel,
    n: &Rules,
) -> Result<(), AuthFailure> {
    let pdu = &event.pdu;
    let version = pdu.version;
    let r = PowerLevelRules::of(version);
    let p = n.power_levels;
    let rule = |sub: u8| format!("{p}.{sub}");
    let Some(new) = event.power_levels.as_deref() else {
        return Err(fail(version, p, "power levels content was not parsed"));
    };
    if let Some(sub) = r.int_types
        && let Some(field) = IntField::ALL
            .into_iter()
            .find(|f| new.field(*f) == Level::Invalid)
    {
        return Err(fail(
            version,
            rule(sub),
            format!("`{}` is not an integer", field.key()),
        ));
    }
    if let Some(sub) = r.map_types {
        for (key, map) in [
            ("events", &new.events),
            ("notifications", &new.notifications),
        ] {
            if let Err(reason) = map_entries(map, key) {
                return Err(fail(version, rule(sub), reason));
            }
        }
    }
    if let Err(reason) = map_entries(&new.users, "users") {
        return Err(fail(version, rule(r.users), reason));
    }
    if let Some(key) = &new.invalid_user_key {
        return Err(fail(
            version,
            rule(r.users),
            format!("users key `{key}` is not a user id"),
        ));
    }
    if let Some(sub) = r.creators
        && let Ok(users) = map_entries(&new.users, "users")
        && let Some(creator) = facts.creators.iter().find(|c| {
            users
                .binary_search_by(|(k, _)| k.as_bytes().cmp(c.as_bytes()))
                .is_ok()
        })
    {
        return Err(fail(
            version,
            rule(sub),
            format!("users lists the room creator {creator}"),
        ));
    }
    // Synapse looks the previous power levels up under the event's own state key.
    let state_key = pdu.state_key.as_deref().unwrap_or("");
    let Some(old) = state
        .get(POWER_LEVELS, state_key)
        .and_then(|e| e.power_levels.as_deref())
    else {
        return Ok(());
    };

    for field in IntField::ALL {
        let values = old
            .field(field)
            .present(field.key())
            .and_then(|o| Ok((o, new.field(field).present(field.key())?)));
        let (old_value, new_value) =
            values.map_err(|reason| fail(version, rule(r.fields), reason))?;
        if old_value.is_some() && old_value == new_value {
            continue;
        }
        if let Some(o) = old_value
            && PowerLevel::Finite(o) > sender_level
        {
            return Err(fail(
                version,
                format!("{p}.{}.1", r.fields),
                format!(
                    "current `{}` {o} is above the sender's level {}",
                    field.key(),
                    show(sender_level)
                ),
            ));
        }
        if let Some(v) = new_value
            && PowerLevel::Finite(v) > sender_level
        {
            return Err(fail(
                version,
                format!("{p}.{}.2", r.fields),
                format!(
                    "new `{}` {v} is above the sender's level {}",
                    field.key(),
                    show(sender_level)
                ),
            ));
        }
    }

    let mut maps = vec![("events", &old.events, &new.events)];
    if version.notifications_power_levels {
        maps.push(("notifications", &old.notifications, &new.notifications));
    }
    for (key, old_map, new_map) in maps {
        let old_entries =
            map_entries(old_map, key).map_err(|reason| fail(version, rule(r.map_old), reason))?;
        let new_entries =
            map_entries(new_map, key).map_err(|reason| fail(version, rule(r.map_new), reason))?;
        match compare_maps(old_entries, new_entries, sender_level, |_| false) {
            Ok(()) => {}
            Err(MapViolation::Old(k)) => {
                return Err(fail(
                    version,
                    rule(r.map_old),
                    format!(
                        "current {key} level of `{k}` is above the sender's level {}",
                        show(sender_level)
                    ),
                ));
            }
            Err(MapViolation::New(k)) => {
                return Err(fail(
                    version,
                    rule(r.map_new),
                    format!(
                        "new {key} level of `{k}` is above the sender's level {}",
                        show(sender_level)
                    ),
                ));
            }
        }
    }

    let old_users = map_entries(&old.users, "users")
        .map_err(|reason| fail(version, rule(r.users_old), reason))?;
    let new_users = map_entries(&new.users, "users")
        .map_err(|reason| fail(version, rule(r.users_new), reason))?;
    let sender = &*pdu.sender;
    match compare_maps(old_users, new_users, sender_level, |user| user != sender) {
        Ok(()) => Ok(()),
        Err(MapViolation::Old(user)) => Err(fail(
            version,
            rule(r.users_old),
            format!(
                "current level of {user} is not below the sender's level {}",
                show(sender_level)
            ),
        )),
        Err(MapViolation::New(user)) => Err(fail(
            version,
            rule(r.users_new),
            format!(
                "new level of {user} is above the sender's level {}",
                show(sender_level)
            ),
        )),
    }
}
