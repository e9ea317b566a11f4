//! The `m.room.member` rule (rule 4 in v6–v11, 5 elsewhere): join, invite (including third-party
//! invites), leave, ban and knock, with the version's sub-rule numbering ([`MemberRules`]).

use crate::pdu::{check_user_id, server_name};
use crate::signatures::verify_ed25519;

use super::event::{AuthEvent, AuthFailure, AuthState};
use super::facts::{Authoriser, CreateFacts, JoinRule, Membership};
use super::lookup::{
    JOIN_RULES, POWER_LEVELS, THIRD_PARTY_INVITE, fail, membership_of, named_level, show,
    user_power_level,
};
use super::numbering::{MemberRules, Rules};
use super::power_levels::IntField;
use super::power_levels::PowerLevel;

pub(super) fn check(
    event: &AuthEvent,
    state: &dyn AuthState,
    create: &AuthEvent,
    facts: &CreateFacts,
    n: &Rules,
) -> Result<(), AuthFailure> {
    let pdu = &event.pdu;
    let version = pdu.version;
    let m = n.member;
    let r = MemberRules::of(version);
    let Some(target) = pdu.state_key.as_deref() else {
        return Err(fail(
            version,
            format!("{m}.1"),
            "member event has no state_key",
        ));
    };
    let Some(membership) = event.membership else {
        return Err(fail(
            version,
            format!("{m}.1"),
            "member event has no content.membership",
        ));
    };
    if check_user_id("state_key", target).is_err() {
        return Err(fail(
            version,
            format!("{m}.1"),
            "state_key of a member event is not a user id",
        ));
    }
    let authoriser = event
        .member
        .as_deref()
        .map_or(&Authoriser::Absent, |f| &f.authoriser);

    // The authorising server's signature (spec rule M.2, v8+) is a receipt check, not an auth rule
    // here: Synapse checks it in `validate_event_for_room_version` before the rules and its resolver
    // never does (`crate::signatures`, docs/auth-rules.md).

    let j = r.join;
    if membership == Membership::Join
        && pdu.prev_events.len() == 1
        && pdu.prev_events[0] == create.pdu.event_id
        && facts.creator.as_deref() == Some(target)
    {
        return Ok(());
    }

    // Synapse: with `m.federate: false` the target, too, must be on the creator's server.
    if !facts.federate && server_name(target) != server_name(&create.pdu.sender) {
        return Err(fail(
            version,
            n.federate,
            format!(
                "room is not federated and the target's server {} is not the creator's",
                server_name(target)
            ),
        ));
    }

    let sender = &*pdu.sender;
    // Rule names are formatted only on failure: `(a, b)` names rule `{m}.{a}.{b}`.
    let level = |user: &str, (a, b): (u8, u8)| {
        user_power_level(user, state.get(POWER_LEVELS, ""), create)
            .map_err(|reason| fail(version, format!("{m}.{a}.{b}"), reason))
    };
    let named = |field: IntField, (a, b): (u8, u8)| {
        named_level(state, field).map_err(|reason| fail(version, format!("{m}.{a}.{b}"), reason))
    };
    let target_membership = membership_of(state, target);
    let join_rule = state
        .get(JOIN_RULES, "")
        .and_then(|e| e.join_rule)
        .unwrap_or(JoinRule::Invite);

    match membership {
        Membership::Join => {
            if sender != target {
                return Err(fail(
                    version,
                    format!("{m}.{j}.2"),
                    "sender of a join is not its target",
                ));
            }
            if target_membership == Some(Membership::Ban) {
                return Err(fail(version, format!("{m}.{j}.3"), "sender is banned"));
            }
            let invited_or_joined = matches!(
                target_membership,
                Some(Membership::Invite | Membership::Join)
            );
            let restricted = (version.restricted_join && join_rule == JoinRule::Restricted)
                || (version.knock_restricted_join && join_rule == JoinRule::KnockRestricted);
            if join_rule == JoinRule::Invite || (version.knocking && join_rule == JoinRule::Knock) {
                if invited_or_joined {
                    return Ok(());
                }
                return Err(fail(
                    version,
                    format!("{m}.{j}.{}", r.join_reject),
                    format!(
                        "join rule is {} and the sender is not invited",
                        join_rule_name(join_rule)
                    ),
                ));
            }
            if let (true, Some(sub)) = (restricted, r.join_restricted) {
                if invited_or_joined {
                    return Ok(());
                }
                let rule = format!("{m}.{j}.{sub}.2");
                let Authoriser::User(authoriser) = authoriser else {
                    return Err(fail(
                        version,
                        rule,
                        "restricted join without a valid join_authorised_via_users_server",
                    ));
                };
                if membership_of(state, authoriser) != Some(Membership::Join) {
                    return Err(fail(
                        version,
                        rule,
                        format!("authorising user {authoriser} is not joined"),
                    ));
                }
                let authoriser_level =
                    user_power_level(authoriser, state.get(POWER_LEVELS, ""), create)
                        .map_err(|reason| fail(version, rule.clone(), reason))?;
                let invite = named_level(state, IntField::Invite)
                    .map_err(|reason| fail(version, rule.clone(), reason))?;
                if authoriser_level < PowerLevel::Finite(invite) {
                    return Err(fail(
                        version,
                        rule,
                        format!("authorising user {authoriser} is below the invite level {invite}"),
                    ));
                }
                return Ok(());
            }
            if join_rule == JoinRule::Public {
                return Ok(());
            }
            Err(fail(
                version,
                format!("{m}.{j}.{}", r.join_reject),
                format!(
                    "join rule {} does not admit this join",
                    join_rule_name(join_rule)
                ),
            ))
        }
        Membership::Invite => {
            let i = r.invite;
            if let Some(claim) = event
                .member
                .as_deref()
                .and_then(|f| f.third_party_invite.as_ref())
            {
                if target_membership == Some(Membership::Ban) {
                    return Err(fail(version, format!("{m}.{i}.1.1"), "target is banned"));
                }
                let Some(signed) = &claim.signed else {
                    return Err(fail(
                        version,
                        format!("{m}.{i}.1.2"),
                        "third_party_invite has no signed object",
                    ));
                };
                let (Some(mxid), Some(token)) = (signed.mxid.as_deref(), signed.token.as_deref())
                else {
                    return Err(fail(
                        version,
                        format!("{m}.{i}.1.3"),
                        "signed lacks mxid or token",
                    ));
                };
                if mxid != target {
                    return Err(fail(
                        version,
                        format!("{m}.{i}.1.4"),
                        "signed.mxid is not the state_key",
                    ));
                }
                let Some(invite_event) = state.get(THIRD_PARTY_INVITE, token) else {
                    return Err(fail(
                        version,
                        format!("{m}.{i}.1.5"),
                        "no m.room.third_party_invite for the token in the current state",
                    ));
                };
                if invite_event.pdu.sender != pdu.sender {
                    return Err(fail(
                        version,
                        format!("{m}.{i}.1.6"),
                        "sender is not the sender of the m.room.third_party_invite",
                    ));
                }
                let keys = invite_event.third_party_keys.as_deref().unwrap_or(&[]);
                let verified = signed.signatures.iter().any(|(_, _, sig)| {
                    keys.iter()
                        .any(|key| verify_ed25519(key, &signed.signed_bytes, sig))
                });
                if verified {
                    return Ok(());
                }
                return Err(fail(
                    version,
                    format!("{m}.{i}.1.8"),
                    "no signature in signed matches a public key of the m.room.third_party_invite",
                ));
            }
            if membership_of(state, sender) != Some(Membership::Join) {
                return Err(fail(version, format!("{m}.{i}.2"), "sender is not joined"));
            }
            if matches!(target_membership, Some(Membership::Join | Membership::Ban)) {
                return Err(fail(
                    version,
                    format!("{m}.{i}.3"),
                    "target is joined or banned",
                ));
            }
            let sender_level = level(sender, (i, 4))?;
            let invite = named(IntField::Invite, (i, 4))?;
            if sender_level >= PowerLevel::Finite(invite) {
                return Ok(());
            }
            Err(fail(
                version,
                format!("{m}.{i}.5"),
                format!(
                    "sender's power level {} is below the invite level {invite}",
                    show(sender_level)
                ),
            ))
        }
        Membership::Leave => {
            let l = r.leave;
            let sender_membership = membership_of(state, sender);
            if sender == target {
                let may_leave = matches!(
                    sender_membership,
                    Some(Membership::Invite | Membership::Join)
                ) || (version.knocking
                    && sender_membership == Some(Membership::Knock));
                if may_leave {
                    return Ok(());
                }
                return Err(fail(
                    version,
                    format!("{m}.{l}.1"),
                    "sender is not invited, joined or knocking",
                ));
            }
            if sender_membership != Some(Membership::Join) {
                return Err(fail(version, format!("{m}.{l}.2"), "sender is not joined"));
            }
            let sender_level = level(sender, (l, 3))?;
            if target_membership == Some(Membership::Ban) {
                let ban = named(IntField::Ban, (l, 3))?;
                if sender_level < PowerLevel::Finite(ban) {
                    return Err(fail(
                        version,
                        format!("{m}.{l}.3"),
                        format!(
                            "target is banned and sender's power level {} is below the ban level {ban}",
                            show(sender_level)
                        ),
                    ));
                }
            }
            let kick = named(IntField::Kick, (l, 4))?;
            let target_level = level(target, (l, 4))?;
            if sender_level >= PowerLevel::Finite(kick) && target_level < sender_level {
                return Ok(());
            }
            Err(fail(
                version,
                format!("{m}.{l}.5"),
                format!(
                    "sender's power level {} is below the kick level {kick} or not above the target's {}",
                    show(sender_level),
                    show(target_level)
                ),
            ))
        }
        Membership::Ban => {
            let b = r.ban;
            if membership_of(state, sender) != Some(Membership::Join) {
                return Err(fail(version, format!("{m}.{b}.1"), "sender is not joined"));
            }
            let sender_level = level(sender, (b, 2))?;
            let ban = named(IntField::Ban, (b, 2))?;
            let target_level = level(target, (b, 2))?;
            if sender_level >= PowerLevel::Finite(ban) && target_level < sender_level {
                return Ok(());
            }
            Err(fail(
                version,
                format!("{m}.{b}.3"),
                format!(
                    "sender's power level {} is below the ban level {ban} or not above the target's {}",
                    show(sender_level),
                    show(target_level)
                ),
            ))
        }
        Membership::Knock if r.knock.is_some() => {
            let k = r.knock.unwrap_or_default();
            let knockable = join_rule == JoinRule::Knock
                || (version.knock_restricted_join && join_rule == JoinRule::KnockRestricted);
            if !knockable {
                return Err(fail(
                    version,
                    format!("{m}.{k}.1"),
                    format!(
                        "join rule {} does not allow knocking",
                        join_rule_name(join_rule)
                    ),
                ));
            }
            if sender != target {
                return Err(fail(
                    version,
                    format!("{m}.{k}.2"),
                    "sender of a knock is not its target",
                ));
            }
            if matches!(
                membership_of(state, sender),
                Some(Membership::Ban | Membership::Invite | Membership::Join)
            ) {
                return Err(fail(
                    version,
                    format!("{m}.{k}.4"),
                    "sender is banned, invited or joined",
                ));
            }
            Ok(())
        }
        Membership::Knock | Membership::Unknown => Err(fail(
            version,
            format!("{m}.{}", r.unknown),
            "unknown membership",
        )),
    }
}

fn join_rule_name(rule: JoinRule) -> &'static str {
    match rule {
        JoinRule::Public => "public",
        JoinRule::Invite => "invite",
        JoinRule::Knock => "knock",
        JoinRule::Restricted => "restricted",
        JoinRule::KnockRestricted => "knock_restricted",
        JoinRule::Private => "private",
        JoinRule::Unknown => "unknown",
    }
}
