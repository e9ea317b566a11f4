//! A `send_join` response shaped like Matrix HQ's, for `roomgraph-bench join` and the join tests.
//!
//! The room is simulated event by event: tens of thousands of members join a public room; the creator
//! changes the power levels hundreds of times (moderators come and go) and now and then makes the room
//! invite-only for a while (moderators invite, invitees join); members change their display names,
//! leave, rejoin, are kicked or banned; topics and names change; messages go between them. The response
//! holds what a resident server returns (`/send_join` v2): the room's state and the auth chain of that
//! state (every power-levels and join-rules event since the room began, every membership a later one
//! superseded, ...), each list shuffled, plus a few events a careless or malicious resident server
//! added that fail their auth checks. The join event itself sits on the room's forward extremity, a
//! message the response does not hold: the joining server stores the response as outliers and gives
//! the join the response's state (Synapse's `process_remote_join`).
//!
//! Deterministic for a given [`JoinSpec`]. Events are built with [`EventBuilder`]: real ids, content
//! hashes and (placeholder) signatures of the senders' servers.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::builder::EventBuilder;
use crate::rng::Rng;
use roomgraph_core::canonical_json::{JsonValue, to_canonical_string};
use roomgraph_core::room_version::RoomVersion;

/// What to generate.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub version: &'static RoomVersion,
    /// Members joined when the new member joins (the joining user not counted).
    pub members: usize,
    /// Power-levels events after the first (moderators promoted and demoted).
    pub power_changes: usize,
    /// Join-rules events after the first: switches to `invite` and back to `public`.
    pub join_rule_changes: usize,
    /// Events in the response that fail their auth checks (kept out of the state).
    pub bad: usize,
    pub seed: u64,
}

impl JoinSpec {
    /// Matrix HQ's shape for `members` members: one power-levels change per 75 joins, one join-rules
    /// change per 600, one bad event per 1 000.
    pub fn hq(version: &'static RoomVersion, members: usize, seed: u64) -> JoinSpec {
        JoinSpec {
            version,
            members,
            power_changes: (members / 75).max(4),
            join_rule_changes: (members / 600).max(2),
            bad: (members / 1000).max(4),
            seed,
        }
    }
}

/// The counts that describe a generated room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinShape {
    /// Events of the room's history (messages included, bad events and the join not).
    pub history: usize,
    pub state: usize,
    /// The auth chain of the state less the state itself (bad events not counted).
    pub auth_chain: usize,
    pub joined: usize,
    pub left: usize,
    pub banned: usize,
    pub power_levels: usize,
    pub join_rules: usize,
    pub bad: usize,
}

/// A generated `send_join` response and the join event it answers.
#[derive(Debug, Clone)]
pub struct JoinResponse {
    pub version: &'static RoomVersion,
    pub room_id: String,
    /// The room's state before the join (canonical PDUs), shuffled.
    pub state: Vec<String>,
    /// The auth chain of the state, less the state, with the bad events; shuffled.
    pub auth_chain: Vec<String>,
    /// The ids of `state`, sorted.
    pub state_ids: Vec<String>,
    /// The join event (its prev event, the room's extremity, is not in the response).
    pub join_event: String,
    pub join_event_id: String,
    /// The ids of the events built to fail auth (in `auth_chain`), sorted.
    pub bad: Vec<String>,
    pub shape: JoinShape,
}

impl JoinResponse {
    /// The response body as a resident server sends it (`PUT /_matrix/federation/v2/send_join`).
    pub fn to_json(&self) -> String {
        let len = self
            .state
            .iter()
            .chain(&self.auth_chain)
            .map(|l| l.len() + 1);
        let mut out = String::with_capacity(len.sum::<usize>() + 128);
        out.push_str(r#"{"auth_chain":["#);
        push_list(&mut out, &self.auth_chain);
        out.push_str(r#"],"members_omitted":false,"origin":"hs0.example","state":["#);
        push_list(&mut out, &self.state);
        out.push_str("]}");
        out
    }
}

fn push_list(out: &mut String, lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(l);
    }
}

type Key = (String, String);

/// A state event of the history: its line and auth events (messages are not kept).
struct Kept {
    line: String,
    auth: Vec<String>,
}

struct Sim {
    version: &'static RoomVersion,
    rng: Rng,
    room_id: String,
    creator: String,
    depth: i64,
    ts: i64,
    last: String,
    state: BTreeMap<Key, String>,
    kept: HashMap<String, Kept>,
    history: usize,
    /// Moderators named by the power levels (level 50), in promotion order.
    moderators: Vec<String>,
    /// Moderators from the start: they stay joined and act (invites, kicks, bans).
    staff: Vec<String>,
    joined: Vec<String>,
    /// Position of each joined user in `joined`.
    joined_at: HashMap<String, usize>,
    left: Vec<String>,
    banned: Vec<String>,
    next_member: usize,
    power_levels: usize,
    join_rules: usize,
}

const SERVERS: usize = 1_500;

impl Sim {
    fn member_name(&mut self) -> String {
        let n = self.next_member;
        self.next_member += 1;
        format!("@user{n}:hs{}.example", n % SERVERS)
    }

    fn get(&self, t: &str, k: &str) -> Option<&String> {
        self.state.get(&(t.to_owned(), k.to_owned()))
    }

    /// The auth events the selection algorithm picks for an event of `sender` (and for a member event,
    /// its target and membership).
    fn auth_for(&self, sender: &str, member: Option<(&str, &str)>) -> Vec<String> {
        let mut want: Vec<(&str, &str)> = Vec::with_capacity(5);
        if self.version.create_in_auth_events() {
            want.push(("m.room.create", ""));
        }
        want.push(("m.room.power_levels", ""));
        want.push(("m.room.member", sender));
        if let Some((target, membership)) = member {
            want.push(("m.room.member", target));
            if matches!(membership, "join" | "invite") {
                want.push(("m.room.join_rules", ""));
            }
        }
        let mut out: Vec<String> = Vec::with_capacity(want.len());
        for (t, k) in want {
            if let Some(id) = self.get(t, k)
                && !out.contains(id)
            {
                out.push(id.clone());
            }
        }
        out
    }

    /// Builds an event on the room's last event; `apply` makes it part of the history (else it is a
    /// bad event: built, returned, never a prev event).
    fn build(
        &mut self,
        ty: &str,
        sender: &str,
        state_key: Option<&str>,
        content: &str,
        auth: Vec<String>,
        apply: bool,
    ) -> (String, String) {
        self.depth += 1;
        self.ts += 1 + self.rng.below(5_000) as i64;
        let prev: Vec<&str> = if self.last.is_empty() {
            Vec::new()
        } else {
            vec![self.last.as_str()]
        };
        let mut b = EventBuilder::with_json_content(self.version, ty, sender, content)
            .depth(self.depth)
            .origin_server_ts(self.ts)
            .prev_events(&prev)
            .auth_events(&auth);
        if !(self.version.room_id_from_create && ty == "m.room.create") {
            b = b.room_id(&self.room_id);
        }
        if let Some(k) = state_key {
            b = b.state_key(k);
        }
        let pdu = match b.build() {
            Ok(pdu) => pdu,
            // Generated events are well-formed by construction; an error here is a generator bug.
            Err(e) => panic!("join generator built an invalid event: {e}"),
        };
        let id = pdu.event_id.to_string();
        if ty == "m.room.create" && self.room_id.is_empty() {
            self.room_id = pdu.room_id.to_string();
        }
        let line = to_canonical_string(&JsonValue::Object(pdu.json));
        if apply {
            self.history += 1;
            self.last = id.clone();
            if let Some(k) = state_key {
                self.state.insert((ty.to_owned(), k.to_owned()), id.clone());
                self.kept.insert(
                    id.clone(),
                    Kept {
                        line: line.clone(),
                        auth,
                    },
                );
            }
        }
        (id, line)
    }

    fn member(&mut self, sender: &str, target: &str, membership: &str, extra: &str) {
        let auth = self.auth_for(sender, Some((target, membership)));
        let content = format!(r#"{{"membership":"{membership}"{extra}}}"#);
        self.build("m.room.member", sender, Some(target), &content, auth, true);
        match membership {
            "join" if !self.joined_at.contains_key(target) => {
                self.joined_at.insert(target.to_owned(), self.joined.len());
                self.joined.push(target.to_owned());
            }
            "leave" | "ban" => {
                if let Some(i) = self.joined_at.remove(target) {
                    self.joined.swap_remove(i);
                    if let Some(moved) = self.joined.get(i) {
                        self.joined_at.insert(moved.clone(), i);
                    }
                }
                if membership == "ban" {
                    self.banned.push(target.to_owned());
                } else {
                    self.left.push(target.to_owned());
                }
            }
            _ => {}
        }
    }

    fn profile(&mut self, user: &str) -> String {
        let n = self.rng.below(1 << 30);
        format!(
            r#","avatar_url":"mxc://hs{}.example/a{n:08x}","displayname":"{user} ({n})""#,
            n % 97
        )
    }

    fn power_levels_content(&self) -> String {
        let mut users: Vec<(String, i64)> = Vec::new();
        if !self.version.privileged_creators {
            users.push((self.creator.clone(), 100));
        }
        users.extend(self.moderators.iter().map(|m| (m.clone(), 50)));
        users.sort();
        let users: Vec<String> = users.iter().map(|(u, l)| format!(r#""{u}":{l}"#)).collect();
        format!(
            r#"{{"ban":50,"events":{{"m.room.avatar":50,"m.room.canonical_alias":50,"m.room.encryption":100,"m.room.history_visibility":100,"m.room.name":50,"m.room.power_levels":100,"m.room.server_acl":100,"m.room.tombstone":100}},"events_default":0,"invite":0,"kick":50,"notifications":{{"room":50}},"redact":50,"state_default":50,"users":{{{}}},"users_default":0}}"#,
            users.join(",")
        )
    }

    fn set_power_levels(&mut self) {
        let content = self.power_levels_content();
        let creator = self.creator.clone();
        let auth = self.auth_for(&creator, None);
        self.build(
            "m.room.power_levels",
            &creator,
            Some(""),
            &content,
            auth,
            true,
        );
        self.power_levels += 1;
    }

    fn set_join_rule(&mut self, rule: &str) {
        let creator = self.creator.clone();
        let auth = self.auth_for(&creator, None);
        let content = format!(r#"{{"join_rule":"{rule}"}}"#);
        self.build(
            "m.room.join_rules",
            &creator,
            Some(""),
            &content,
            auth,
            true,
        );
        self.join_rules += 1;
    }

    fn state_event(&mut self, ty: &str, sender: &str, content: &str) {
        let auth = self.auth_for(sender, None);
        self.build(ty, sender, Some(""), content, auth, true);
    }

    fn message(&mut self) {
        let Some(sender) = self.pick_joined() else {
            return;
        };
        let auth = self.auth_for(&sender, None);
        let n = self.rng.below(1 << 20);
        let content = format!(r#"{{"body":"message {n} in a busy room","msgtype":"m.text"}}"#);
        self.build("m.room.message", &sender, None, &content, auth, true);
    }

    fn pick_joined(&mut self) -> Option<String> {
        let i = self.rng.below(self.joined.len());
        self.joined.get(i).cloned()
    }

    /// A joined member without power (a kick or ban target, a leaver, ...).
    fn pick_plain(&mut self) -> Option<String> {
        for _ in 0..8 {
            let u = self.pick_joined()?;
            if u != self.creator && !self.moderators.contains(&u) {
                return Some(u);
            }
        }
        None
    }

    fn pick_staff(&mut self) -> String {
        let i = self.rng.below(self.staff.len());
        self.staff
            .get(i)
            .cloned()
            .unwrap_or_else(|| self.creator.clone())
    }

    fn public(&self) -> bool {
        self.get("m.room.join_rules", "")
            .and_then(|id| self.kept.get(id))
            .is_some_and(|k| k.line.contains(r#""join_rule":"public""#))
    }
}

/// Generates the response.
pub fn generate(spec: &JoinSpec) -> JoinResponse {
    let v = spec.version;
    let creator = "@admin:hs0.example".to_owned();
    let mut sim = Sim {
        version: v,
        rng: Rng::new(spec.seed),
        room_id: if v.room_id_from_create {
            String::new()
        } else {
            format!("!hq{}:hs0.example", spec.seed)
        },
        creator: creator.clone(),
        depth: 0,
        ts: 1_600_000_000_000,
        last: String::new(),
        state: BTreeMap::new(),
        kept: HashMap::new(),
        history: 0,
        moderators: Vec::new(),
        staff: Vec::new(),
        joined: Vec::new(),
        joined_at: HashMap::new(),
        left: Vec::new(),
        banned: Vec::new(),
        next_member: 0,
        power_levels: 0,
        join_rules: 0,
    };
    let create = if v.creator_in_content {
        format!(r#"{{"creator":"{creator}","room_version":"{}"}}"#, v.id)
    } else {
        format!(r#"{{"room_version":"{}"}}"#, v.id)
    };
    sim.build("m.room.create", &creator, Some(""), &create, vec![], true);
    sim.member(&creator, &creator, "join", "");
    sim.staff = (0..10)
        .map(|i| format!("@moderator{i}:hs{i}.example"))
        .collect();
    sim.moderators = sim.staff.clone();
    sim.set_power_levels();
    sim.set_join_rule("public");
    sim.state_event(
        "m.room.history_visibility",
        &creator,
        r#"{"history_visibility":"shared"}"#,
    );
    sim.state_event(
        "m.room.guest_access",
        &creator,
        r#"{"guest_access":"can_join"}"#,
    );
    sim.state_event(
        "m.room.canonical_alias",
        &creator,
        r##"{"alias":"#matrix:hs0.example"}"##,
    );
    sim.state_event("m.room.name", &creator, r#"{"name":"Matrix HQ"}"#);
    for m in sim.staff.clone() {
        sim.member(&m, &m, "join", "");
    }

    let members = spec.members.max(sim.joined.len());
    let power_every = (members / spec.power_changes.max(1)).max(1);
    // Invite-only spells of `SPELL` joins, `join_rule_changes / 2` of them spread over the history.
    const SPELL: usize = 10;
    let rules_every = (2 * members / spec.join_rule_changes.max(1)).max(2 * SPELL);
    let (mut power_done, mut rules_done, mut joins) = (0, 0, 0usize);
    while sim.joined.len() < members
        || power_done < spec.power_changes
        || rules_done < spec.join_rule_changes
    {
        joins += 1;
        // A new member: through an invite while the room is invite-only.
        if sim.joined.len() < members {
            let user = sim.member_name();
            let extra = sim.profile(&user);
            if !sim.public() {
                let staff = sim.pick_staff();
                sim.member(&staff, &user, "invite", "");
            }
            sim.member(&user, &user, "join", &extra);
        }
        if joins.is_multiple_of(power_every) && power_done < spec.power_changes {
            // Promote a member, or (one time in three, beyond the staff) demote a moderator.
            if sim.moderators.len() > sim.staff.len() + 5 && sim.rng.below(3) == 0 {
                let i = sim.staff.len() + sim.rng.below(sim.moderators.len() - sim.staff.len());
                sim.moderators.remove(i);
            } else if let Some(u) = sim.pick_plain() {
                sim.moderators.push(u);
            }
            if sim.moderators.len() > 120 {
                let at = sim.staff.len();
                sim.moderators.remove(at);
            }
            sim.set_power_levels();
            power_done += 1;
        }
        let rule = match joins % rules_every {
            0 => Some("invite"),
            SPELL => Some("public"),
            _ => None,
        };
        if let Some(rule) = rule
            && (rule == "public") != sim.public()
            && rules_done < spec.join_rule_changes
        {
            sim.set_join_rule(rule);
            rules_done += 1;
        }
        let roll = sim.rng.below(1000);
        match roll {
            // A display-name change.
            0..=139 => {
                if let Some(u) = sim.pick_joined() {
                    let extra = sim.profile(&u);
                    sim.member(&u, &u, "join", &extra);
                }
            }
            // A member leaves.
            140..=179 => {
                if let Some(u) = sim.pick_plain() {
                    sim.member(&u, &u, "leave", "");
                }
            }
            // A moderator kicks or bans a member.
            180..=199 => {
                if let Some(u) = sim.pick_plain() {
                    let staff = sim.pick_staff();
                    let membership = if roll < 193 { "leave" } else { "ban" };
                    let reason = r#","reason":"spam""#;
                    sim.member(&staff, &u, membership, reason);
                }
            }
            // Someone who left comes back (while the room is public).
            200..=219 if sim.public() && !sim.left.is_empty() => {
                let i = sim.rng.below(sim.left.len());
                let u = sim.left.swap_remove(i);
                let extra = sim.profile(&u);
                sim.member(&u, &u, "join", &extra);
            }
            // The topic changes.
            220..=222 => {
                let staff = sim.pick_staff();
                let n = sim.rng.below(1 << 20);
                sim.state_event(
                    "m.room.topic",
                    &staff,
                    &format!(r#"{{"topic":"The Matrix HQ room, edition {n}"}}"#),
                );
            }
            // Messages.
            300..=449 => sim.message(),
            _ => {}
        }
    }
    // Open to all when the newcomer joins.
    if !sim.public() {
        sim.set_join_rule("public");
    }
    sim.message();
    let shape_left = sim.left.len();

    // The bad events: a power-levels change by a member without power, a banned user's join, a kick
    // by a member without power, and a display-name change citing the first kind as its auth event.
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut last_bad_pl: Option<String> = None;
    for i in 0..spec.bad {
        let Some(user) = sim.pick_plain() else { break };
        let (ty, sender, key, content, auth) = match i % 4 {
            0 => (
                "m.room.power_levels",
                user.clone(),
                String::new(),
                format!(r#"{{"users":{{"{user}":100}},"users_default":0}}"#),
                sim.auth_for(&user, None),
            ),
            1 if !sim.banned.is_empty() => {
                let b = sim.banned[sim.rng.below(sim.banned.len())].clone();
                let auth = sim.auth_for(&b, Some((&b, "join")));
                (
                    "m.room.member",
                    b.clone(),
                    b,
                    r#"{"membership":"join"}"#.to_owned(),
                    auth,
                )
            }
            3 if last_bad_pl.is_some() => {
                let mut auth = sim.auth_for(&user, Some((&user, "join")));
                let pl = sim.get("m.room.power_levels", "").cloned();
                for a in &mut auth {
                    if Some(&*a) == pl.as_ref()
                        && let Some(b) = &last_bad_pl
                    {
                        a.clone_from(b);
                    }
                }
                let extra = sim.profile(&user);
                (
                    "m.room.member",
                    user.clone(),
                    user,
                    format!(r#"{{"membership":"join"{extra}}}"#),
                    auth,
                )
            }
            _ => {
                let Some(target) = sim.pick_plain() else {
                    break;
                };
                let auth = sim.auth_for(&user, Some((&target, "leave")));
                (
                    "m.room.member",
                    user,
                    target,
                    r#"{"membership":"leave"}"#.to_owned(),
                    auth,
                )
            }
        };
        let built = sim.build(ty, &sender, Some(&key), &content, auth, false);
        if ty == "m.room.power_levels" {
            last_bad_pl = Some(built.0.clone());
        }
        bad.push(built);
    }

    // The join, on the room's extremity (a message: not in the response).
    let joiner = "@newcomer:joining.example";
    let join_auth = sim.auth_for(joiner, Some((joiner, "join")));
    let (join_event_id, join_event) = sim.build(
        "m.room.member",
        joiner,
        Some(joiner),
        r#"{"displayname":"newcomer","membership":"join"}"#,
        join_auth,
        false,
    );

    let mut state_ids: Vec<String> = sim.state.values().cloned().collect();
    state_ids.sort();
    let in_state: HashSet<&str> = state_ids.iter().map(String::as_str).collect();
    let mut chain: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = state_ids.iter().map(String::as_str).collect();
    while let Some(id) = stack.pop() {
        if let Some(k) = sim.kept.get(id) {
            for a in &k.auth {
                if chain.insert(a.as_str()) {
                    stack.push(a.as_str());
                }
            }
        }
    }
    let mut chain_ids: Vec<&str> = chain
        .into_iter()
        .filter(|id| !in_state.contains(id))
        .collect();
    chain_ids.sort_unstable();
    let line_of = |id: &str| sim.kept.get(id).map(|k| k.line.clone()).unwrap_or_default();
    let mut state: Vec<String> = state_ids.iter().map(|id| line_of(id)).collect();
    let mut auth_chain: Vec<String> = chain_ids.iter().map(|id| line_of(id)).collect();
    let shape = JoinShape {
        history: sim.history,
        state: state.len(),
        auth_chain: auth_chain.len(),
        joined: sim.joined.len(),
        left: shape_left,
        banned: sim.banned.len(),
        power_levels: sim.power_levels,
        join_rules: sim.join_rules,
        bad: bad.len(),
    };
    auth_chain.extend(bad.iter().map(|(_, l)| l.clone()));
    let mut shuffle = Rng::new(spec.seed ^ 0x5EED);
    shuffle.shuffle(&mut state);
    shuffle.shuffle(&mut auth_chain);
    let mut bad: Vec<String> = bad.into_iter().map(|(id, _)| id).collect();
    bad.sort();
    JoinResponse {
        version: v,
        room_id: sim.room_id,
        state,
        auth_chain,
        state_ids,
        join_event,
        join_event_id,
        bad,
        shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomgraph_core::pdu::Pdu;

    #[test]
    fn responses_are_deterministic_complete_and_parse() {
        for id in ["10", "12"] {
            let v = RoomVersion::from_id(id).expect("known version");
            let spec = JoinSpec::hq(v, 300, 3);
            let a = generate(&spec);
            let b = generate(&spec);
            assert_eq!(a.to_json(), b.to_json());
            assert_eq!(a.shape.joined, 300);
            assert!(a.shape.power_levels > spec.power_changes);
            assert!(a.shape.auth_chain > a.shape.power_levels);
            assert_eq!(a.bad.len(), spec.bad);
            let mut ids = HashSet::new();
            for line in a.state.iter().chain(&a.auth_chain) {
                let pdu = Pdu::parse(line.as_bytes(), v).expect("parses");
                assert!(pdu.content_hash_matches());
                assert!(ids.insert(pdu.event_id.to_string()), "duplicate event");
            }
            // Every auth event of every event in the response is in the response.
            for line in a.state.iter().chain(&a.auth_chain) {
                let pdu = Pdu::parse(line.as_bytes(), v).expect("parses");
                for e in &pdu.auth_events {
                    assert!(ids.contains(&**e), "{e} missing");
                }
            }
            let join = Pdu::parse(a.join_event.as_bytes(), v).expect("parses");
            assert_eq!(&*join.event_id, a.join_event_id);
            assert!(join.prev_events.iter().all(|p| !ids.contains(&**p)));
        }
    }
}
