//! Rule numbers per room version (digest §2.7 "Numbering cross-reference"), computed from the
//! version's switches so that every failure can name its rule the way that version's spec page does.
//!
//! | Rule                    | v1–v2 | v3–v5 | v6–v11 | v12 |
//! |-------------------------|-------|-------|--------|-----|
//! | room_id → create        | —     | —     | —      | 2   |
//! | auth_events checks      | 2     | 2     | 2      | 3   |
//! | m.federate              | 3     | 3     | 3      | 4   |
//! | m.room.aliases          | 4     | 4     | —      | —   |
//! | m.room.member           | 5     | 5     | 4      | 5   |
//! | sender must be joined   | 6     | 6     | 5      | 6   |
//! | m.room.third_party_invite | 7   | 7     | 6      | 7   |
//! | required power level    | 8     | 8     | 7      | 8   |
//! | `@` state keys          | 9     | 9     | 8      | 9   |
//! | m.room.power_levels     | 10    | 10    | 9      | 10  |
//! | m.room.redaction        | 11    | —     | —      | —   |
//! | otherwise allow         | 12    | 11    | 10     | 11  |

use crate::room_version::RoomVersion;

/// The top-level rule numbers of one room version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub room_id: Option<u8>,
    pub auth_events: u8,
    pub federate: u8,
    pub aliases: Option<u8>,
    pub member: u8,
    pub joined: u8,
    pub third_party_invite: u8,
    pub required_level: u8,
    pub state_key: u8,
    pub power_levels: u8,
    pub redaction: Option<u8>,
    pub allow: u8,
}

impl Rules {
    pub fn of(version: &RoomVersion) -> Rules {
        let room_id = version.room_id_from_create.then_some(2);
        let auth_events = if room_id.is_some() { 3 } else { 2 };
        let mut next = auth_events + 2;
        let aliases = version.special_case_aliases_auth.then(|| {
            next += 1;
            next - 1
        });
        let member = next;
        let power_levels = member + 5;
        let redaction = version
            .special_case_redaction_auth
            .then_some(power_levels + 1);
        Rules {
            room_id,
            auth_events,
            federate: auth_events + 1,
            aliases,
            member,
            joined: member + 1,
            third_party_invite: member + 2,
            required_level: member + 3,
            state_key: member + 4,
            power_levels,
            redaction,
            allow: redaction.unwrap_or(power_levels) + 1,
        }
    }
}

/// Sub-rule numbers inside the `m.room.member` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRules {
    /// The `join_authorised_via_users_server` signature rule (v8+). Checked on receipt only, as Synapse
    /// does ([`crate::signatures::check_present`]); the number names it in failures.
    pub authoriser_signature: Option<u8>,
    pub join: u8,
    /// Inside `join`: the restricted branch (v8+), the public rule and the final reject.
    pub join_restricted: Option<u8>,
    pub join_public: u8,
    pub join_reject: u8,
    pub invite: u8,
    pub leave: u8,
    pub ban: u8,
    pub knock: Option<u8>,
    pub unknown: u8,
}

impl MemberRules {
    pub fn of(version: &RoomVersion) -> MemberRules {
        let authoriser_signature = version.restricted_join.then_some(2);
        let join = if version.restricted_join { 3 } else { 2 };
        let join_restricted = version.restricted_join.then_some(5);
        let join_public = if version.restricted_join { 6 } else { 5 };
        let knock = version.knocking.then_some(join + 4);
        MemberRules {
            authoriser_signature,
            join,
            join_restricted,
            join_public,
            join_reject: join_public + 1,
            invite: join + 1,
            leave: join + 2,
            ban: join + 3,
            knock,
            unknown: knock.map_or(join + 4, |k| k + 1),
        }
    }
}

/// Sub-rule numbers inside the `m.room.power_levels` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerLevelRules {
    /// v10+: the integer type checks of the seven fields and of `events` / `notifications`.
    pub int_types: Option<u8>,
    pub map_types: Option<u8>,
    pub users: u8,
    /// v12: creators must not appear in `users`.
    pub creators: Option<u8>,
    pub no_previous: u8,
    pub fields: u8,
    pub map_old: u8,
    pub map_new: u8,
    pub users_old: u8,
    pub users_new: u8,
    pub allow: u8,
}

impl PowerLevelRules {
    pub fn of(version: &RoomVersion) -> PowerLevelRules {
        let typed = version.integer_power_levels;
        let users = if typed { 3 } else { 1 };
        let creators = version.privileged_creators.then_some(users + 1);
        let no_previous = creators.unwrap_or(users) + 1;
        PowerLevelRules {
            int_types: typed.then_some(1),
            map_types: typed.then_some(2),
            users,
            creators,
            no_previous,
            fields: no_previous + 1,
            map_old: no_previous + 2,
            map_new: no_previous + 3,
            users_old: no_previous + 4,
            users_new: no_previous + 5,
            allow: no_previous + 6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str) -> &'static RoomVersion {
        RoomVersion::from_id(id).expect("known")
    }

    #[test]
    fn top_level_numbers_match_the_cross_reference_table() {
        let row = |id| {
            let r = Rules::of(v(id));
            (
                r.room_id,
                r.auth_events,
                r.federate,
                r.aliases,
                r.member,
                r.joined,
                r.third_party_invite,
            )
        };
        assert_eq!(row("1"), (None, 2, 3, Some(4), 5, 6, 7));
        assert_eq!(row("3"), (None, 2, 3, Some(4), 5, 6, 7));
        assert_eq!(row("6"), (None, 2, 3, None, 4, 5, 6));
        assert_eq!(row("11"), (None, 2, 3, None, 4, 5, 6));
        assert_eq!(row("12"), (Some(2), 3, 4, None, 5, 6, 7));
        let tail = |id| {
            let r = Rules::of(v(id));
            (
                r.required_level,
                r.state_key,
                r.power_levels,
                r.redaction,
                r.allow,
            )
        };
        assert_eq!(tail("2"), (8, 9, 10, Some(11), 12));
        assert_eq!(tail("5"), (8, 9, 10, None, 11));
        assert_eq!(tail("10"), (7, 8, 9, None, 10));
        assert_eq!(tail("12"), (8, 9, 10, None, 11));
    }

    #[test]
    fn member_sub_rules_follow_each_version() {
        let m1 = MemberRules::of(v("1"));
        assert_eq!(
            (
                m1.join,
                m1.join_public,
                m1.join_reject,
                m1.invite,
                m1.leave,
                m1.ban,
                m1.knock,
                m1.unknown
            ),
            (2, 5, 6, 3, 4, 5, None, 6)
        );
        let m7 = MemberRules::of(v("7"));
        assert_eq!((m7.join, m7.knock, m7.unknown), (2, Some(6), 7));
        let m8 = MemberRules::of(v("8"));
        assert_eq!(
            (
                m8.authoriser_signature,
                m8.join,
                m8.join_restricted,
                m8.join_public,
                m8.join_reject
            ),
            (Some(2), 3, Some(5), 6, 7)
        );
        assert_eq!(
            (m8.invite, m8.leave, m8.ban, m8.knock, m8.unknown),
            (4, 5, 6, Some(7), 8)
        );
    }

    #[test]
    fn power_level_sub_rules_follow_each_version() {
        let p1 = PowerLevelRules::of(v("1"));
        assert_eq!(
            (
                p1.users,
                p1.no_previous,
                p1.fields,
                p1.map_old,
                p1.map_new,
                p1.users_old,
                p1.users_new,
                p1.allow
            ),
            (1, 2, 3, 4, 5, 6, 7, 8)
        );
        let p10 = PowerLevelRules::of(v("10"));
        assert_eq!(
            (
                p10.int_types,
                p10.map_types,
                p10.users,
                p10.no_previous,
                p10.allow
            ),
            (Some(1), Some(2), 3, 4, 10)
        );
        let p12 = PowerLevelRules::of(v("12"));
        assert_eq!(
            (
                p12.creators,
                p12.no_previous,
                p12.fields,
                p12.users_new,
                p12.allow
            ),
            (Some(4), 5, 6, 10, 11)
        );
    }
}
