//! `m.room.power_levels` content, parsed once into integers (spec "Definitions" and the power-levels
//! auth rule; `v1-stringy-power-levels.md`, `v1-floaty-power-levels.md`).
//!
//! Values are checked the way the room version reads them: JSON integers only from v10, integers or
//! strings holding an integer in v1–v9, and also floats (truncated) in v1–v5. A value of the wrong kind
//! is kept as [`Level::Invalid`]: it makes the event fail its own power-levels rule, and any later
//! rule that reads it (Synapse and ruma both read lazily, so an unread bad value is harmless).

use crate::canonical_json::{JsonObject, JsonValue};
use crate::pdu::check_user_id;
use crate::room_version::RoomVersion;

/// A sender's power level: finite, or infinite for v12 creators (MSC4289).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PowerLevel {
    Finite(i64),
    Infinite,
}

/// The seven integer fields of power-levels content, in the spec's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntField {
    UsersDefault,
    EventsDefault,
    StateDefault,
    Ban,
    Redact,
    Kick,
    Invite,
}

impl IntField {
    pub const ALL: [IntField; 7] = [
        IntField::UsersDefault,
        IntField::EventsDefault,
        IntField::StateDefault,
        IntField::Ban,
        IntField::Redact,
        IntField::Kick,
        IntField::Invite,
    ];

    pub fn key(self) -> &'static str {
        match self {
            IntField::UsersDefault => "users_default",
            IntField::EventsDefault => "events_default",
            IntField::StateDefault => "state_default",
            IntField::Ban => "ban",
            IntField::Redact => "redact",
            IntField::Kick => "kick",
            IntField::Invite => "invite",
        }
    }

    /// The value used when the key is absent or no power-levels event exists.
    pub fn default_value(self) -> i64 {
        match self {
            IntField::UsersDefault | IntField::EventsDefault | IntField::Invite => 0,
            IntField::StateDefault | IntField::Ban | IntField::Redact | IntField::Kick => 50,
        }
    }
}

/// One integer field as found in the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    #[default]
    Absent,
    Value(i64),
    /// Present but not a power level in this room version.
    Invalid,
}

impl Level {
    /// The value if present; `Err` names the key when it is not a valid level.
    pub(crate) fn present(self, key: &str) -> Result<Option<i64>, String> {
        match self {
            Level::Absent => Ok(None),
            Level::Value(v) => Ok(Some(v)),
            Level::Invalid => Err(format!("power levels `{key}` is not an integer")),
        }
    }
}

/// One of the maps `events`, `notifications` or `users`, sorted by key bytes (as JSON objects are),
/// so lookups are binary searches and comparing two maps is one merge pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LevelMap {
    #[default]
    Absent,
    Valid(Vec<(Box<str>, i64)>),
    /// Not an object, or some value is not a level; the string says what is wrong.
    Invalid(String),
}

impl LevelMap {
    fn entries(&self, key: &str) -> Result<&[(Box<str>, i64)], String> {
        match self {
            LevelMap::Absent => Ok(&[]),
            LevelMap::Valid(entries) => Ok(entries),
            LevelMap::Invalid(reason) => Err(format!("power levels `{key}` {reason}")),
        }
    }

    fn get(&self, map: &str, key: &str) -> Result<Option<i64>, String> {
        let entries = self.entries(map)?;
        Ok(entries
            .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
            .ok()
            .map(|i| entries[i].1))
    }
}

/// Parsed power-levels content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PowerLevels {
    fields: [Level; 7],
    pub events: LevelMap,
    pub notifications: LevelMap,
    pub users: LevelMap,
    /// The first `users` key that is not a user id, if any.
    pub invalid_user_key: Option<Box<str>>,
}

impl PowerLevels {
    /// Parses `content` as the power levels of a room of `version`.
    pub fn parse(content: &JsonObject<'_>, version: &RoomVersion) -> PowerLevels {
        let mut fields = [Level::Absent; 7];
        for (slot, field) in fields.iter_mut().zip(IntField::ALL) {
            if let Some(value) = content.get(field.key()) {
                *slot = parse_level(value, version).map_or(Level::Invalid, Level::Value);
            }
        }
        let users = parse_map(content.get("users"), version);
        let invalid_user_key = match content.get("users") {
            Some(JsonValue::Object(users)) => users
                .iter()
                .find(|(k, _)| check_user_id("users", k).is_err())
                .map(|(k, _)| k.into()),
            _ => None,
        };
        PowerLevels {
            fields,
            events: parse_map(content.get("events"), version),
            notifications: parse_map(content.get("notifications"), version),
            users,
            invalid_user_key,
        }
    }

    pub fn field(&self, field: IntField) -> Level {
        self.fields[field as usize]
    }

    /// The value of `field`, or its default when absent.
    pub fn field_or_default(&self, field: IntField) -> Result<i64, String> {
        Ok(self
            .field(field)
            .present(field.key())?
            .unwrap_or(field.default_value()))
    }

    /// The level of `user_id` from `users`, else `users_default`.
    pub fn user_level(&self, user_id: &str) -> Result<i64, String> {
        match self.users.get("users", user_id)? {
            Some(level) => Ok(level),
            None => self.field_or_default(IntField::UsersDefault),
        }
    }

    /// The required power level of an event of `event_type` (spec "Definitions").
    pub fn required_level(&self, event_type: &str, is_state: bool) -> Result<i64, String> {
        if let Some(level) = self.events.get("events", event_type)? {
            return Ok(level);
        }
        self.field_or_default(if is_state {
            IntField::StateDefault
        } else {
            IntField::EventsDefault
        })
    }
}

/// Parses one power level as `version` reads it.
pub fn parse_level(value: &JsonValue<'_>, version: &RoomVersion) -> Option<i64> {
    match value {
        JsonValue::Int(i) => Some(*i),
        JsonValue::String(s) if version.string_power_levels => parse_string_level(s),
        JsonValue::Float(f) if version.float_power_levels => {
            let t = f.trunc();
            // `i64::MAX as f64` rounds up to 2^63, so the upper bound is exclusive.
            (t.is_finite() && t >= i64::MIN as f64 && t < i64::MAX as f64).then_some(t as i64)
        }
        _ => None,
    }
}

/// A string power level (v1–v9): optional surrounding whitespace, an optional `+` or `-`, then decimal
/// digits (leading zeros allowed).
fn parse_string_level(s: &str) -> Option<i64> {
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 19 {
        return None;
    }
    let magnitude: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

fn parse_map(value: Option<&JsonValue<'_>>, version: &RoomVersion) -> LevelMap {
    let Some(value) = value else {
        return LevelMap::Absent;
    };
    let Some(object) = value.as_object() else {
        return LevelMap::Invalid(format!("is {}, not an object", value.type_name()));
    };
    let mut entries = Vec::with_capacity(object.len());
    for (key, v) in object.iter() {
        match parse_level(v, version) {
            Some(level) => entries.push((Box::<str>::from(key), level)),
            None => return LevelMap::Invalid(format!("entry `{key}` is not an integer")),
        }
    }
    LevelMap::Valid(entries)
}

/// A difference between an old and a new power-levels map entry that the rules forbid.
pub(crate) enum MapViolation {
    /// The old value (changed or removed) is above the sender's level (or, for other users, not below).
    Old(Box<str>),
    /// The new value (added or changed) is above the sender's level.
    New(Box<str>),
}

/// Compares `old` and `new` entry by entry, Synapse-style: only values present on a side are compared.
/// `old_limit_inclusive(key)` says whether an old value equal to the sender's level also rejects (the
/// `users` rule for other users' entries).
pub(crate) fn compare_maps(
    old: &[(Box<str>, i64)],
    new: &[(Box<str>, i64)],
    sender: PowerLevel,
    old_limit_inclusive: impl Fn(&str) -> bool,
) -> Result<(), MapViolation> {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.0.as_bytes().cmp(b.0.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (key, old_value, new_value) = match order {
            std::cmp::Ordering::Equal => {
                let r = (&old[i].0, Some(old[i].1), Some(new[j].1));
                i += 1;
                j += 1;
                r
            }
            std::cmp::Ordering::Less => {
                i += 1;
                (&old[i - 1].0, Some(old[i - 1].1), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (&new[j - 1].0, None, Some(new[j - 1].1))
            }
        };
        if old_value.is_some() && old_value == new_value {
            continue;
        }
        if let Some(o) = old_value {
            let o = PowerLevel::Finite(o);
            if o > sender || (o == sender && old_limit_inclusive(key)) {
                return Err(MapViolation::Old(key.clone()));
            }
        }
        if let Some(n) = new_value
            && PowerLevel::Finite(n) > sender
        {
            return Err(MapViolation::New(key.clone()));
        }
    }
    Ok(())
}

/// The entries of a map for the change rules; `Err` when the map is malformed.
pub(crate) fn map_entries<'m>(
    map: &'m LevelMap,
    key: &str,
) -> Result<&'m [(Box<str>, i64)], String> {
    map.entries(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json::{NumberPolicy, parse_object};

    fn v(id: &str) -> &'static RoomVersion {
        RoomVersion::from_id(id).expect("known")
    }

    fn pl(json: &str, version: &str) -> PowerLevels {
        let policy = if v(version).strict_canonical_json {
            NumberPolicy::Strict
        } else {
            NumberPolicy::Lenient
        };
        PowerLevels::parse(
            &parse_object(json.as_bytes(), policy).expect("json"),
            v(version),
        )
    }

    #[test]
    fn string_levels_follow_the_v1_grammar() {
        for (s, expected) in [
            ("50", Some(50)),
            (" +007 ", Some(7)),
            ("-3", Some(-3)),
            ("\t12\n", Some(12)),
            ("", None),
            ("+", None),
            ("1.5", None),
            ("1_0", None),
            ("--1", None),
            ("99999999999999999999999", None),
        ] {
            assert_eq!(parse_string_level(s), expected, "{s:?}");
        }
    }

    #[test]
    fn version_decides_which_values_are_levels() {
        let levels = pl(r#"{"ban":"30","kick":1.9,"users":{"@a:x":"5"}}"#, "1");
        assert_eq!(levels.field(IntField::Ban), Level::Value(30));
        assert_eq!(levels.field(IntField::Kick), Level::Value(1));
        assert_eq!(levels.user_level("@a:x"), Ok(5));
        let levels = pl(r#"{"ban":"30","users":{"@a:x":"5"}}"#, "9");
        assert_eq!(levels.field(IntField::Ban), Level::Value(30));
        let levels = pl(r#"{"ban":"30","users":{"@a:x":"5"}}"#, "10");
        assert_eq!(levels.field(IntField::Ban), Level::Invalid);
        assert!(matches!(levels.users, LevelMap::Invalid(_)));
        assert!(levels.user_level("@a:x").is_err());
        let levels = pl(r#"{"ban":true}"#, "3");
        assert_eq!(levels.field(IntField::Ban), Level::Invalid);
    }

    #[test]
    fn lookups_fall_back_to_defaults() {
        let levels = pl(
            r#"{"users":{"@a:x":100},"users_default":3,"events":{"m.room.name":70}}"#,
            "11",
        );
        assert_eq!(levels.user_level("@a:x"), Ok(100));
        assert_eq!(levels.user_level("@b:x"), Ok(3));
        assert_eq!(levels.required_level("m.room.name", true), Ok(70));
        assert_eq!(levels.required_level("m.room.topic", true), Ok(50));
        assert_eq!(levels.required_level("m.room.message", false), Ok(0));
        assert_eq!(
            PowerLevels::default().field_or_default(IntField::Kick),
            Ok(50)
        );
        let bad = pl(r#"{"users":{"not-a-user":1}}"#, "11");
        assert_eq!(bad.invalid_user_key.as_deref(), Some("not-a-user"));
    }

    #[test]
    fn map_comparison_checks_only_present_values() {
        let e = |pairs: &[(&str, i64)]| -> Vec<(Box<str>, i64)> {
            pairs.iter().map(|(k, v)| (Box::from(*k), *v)).collect()
        };
        let sender = PowerLevel::Finite(50);
        assert!(
            compare_maps(
                &e(&[("a", 10)]),
                &e(&[("a", 10), ("b", 50)]),
                sender,
                |_| false
            )
            .is_ok()
        );
        assert!(matches!(
            compare_maps(&e(&[]), &e(&[("b", 51)]), sender, |_| false),
            Err(MapViolation::New(k)) if &*k == "b"
        ));
        assert!(matches!(
            compare_maps(&e(&[("a", 60)]), &e(&[]), sender, |_| false),
            Err(MapViolation::Old(k)) if &*k == "a"
        ));
        assert!(compare_maps(&e(&[("a", 50)]), &e(&[("a", 10)]), sender, |_| false).is_ok());
        assert!(compare_maps(&e(&[("a", 50)]), &e(&[("a", 10)]), sender, |_| true).is_err());
        assert!(
            compare_maps(
                &e(&[("a", 99)]),
                &e(&[("a", 1)]),
                PowerLevel::Infinite,
                |_| true
            )
            .is_ok()
        );
    }
}
