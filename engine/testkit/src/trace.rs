//! Synthetic ingest traces for tests and the ingest benchmark: many rooms interleaved, joins, messages,
//! topic changes, forks that merge (and some left open), and a sprinkling of events that must be rejected.
//! Deterministic for a given [`TraceSpec`]. Events are built with [`EventBuilder`], so ids and content
//! hashes are real.

use crate::builder::EventBuilder;
use crate::rng::Rng;
use roomgraph_core::canonical_json::{JsonValue, to_canonical_string};
use roomgraph_core::room_version::RoomVersion;

/// What to generate.
#[derive(Debug, Clone)]
pub struct TraceSpec {
    pub rooms: usize,
    /// Events in total, over all rooms (approximately; every room gets at least its setup events).
    pub events: usize,
    /// Members joined into room 0 (the big room) over the trace.
    pub big_room_members: usize,
    /// Share of all events that go to the big room, in percent.
    pub big_room_share: u32,
    /// One fork (two concurrent events, then a merge) every this many events of a room (0 = none).
    pub fork_every: usize,
    /// One event that auth must reject every this many events (0 = none).
    pub bad_every: usize,
    /// Leave the last fork of each room open (two forward extremities at the end).
    pub open_fork_at_end: bool,
    /// Room versions, used round-robin over rooms.
    pub versions: Vec<&'static RoomVersion>,
    pub seed: u64,
}

impl Default for TraceSpec {
    fn default() -> Self {
        TraceSpec {
            rooms: 4,
            events: 400,
            big_room_members: 50,
            big_room_share: 40,
            fork_every: 10,
            bad_every: 25,
            open_fork_at_end: true,
            versions: vec![RoomVersion::from_id("11").unwrap_or(&RoomVersion::all()[10])],
            seed: 1,
        }
    }
}

/// A generated trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// NDJSON lines in DAG order.
    pub lines: Vec<String>,
    /// The event id of each line.
    pub ids: Vec<String>,
    /// The room version of each line.
    pub line_versions: Vec<&'static RoomVersion>,
    pub rooms: Vec<String>,
    /// Merge events: `(room id, merge event id, its prev_events)`.
    pub merges: Vec<(String, String, Vec<String>)>,
    /// Events built to fail auth.
    pub bad: Vec<String>,
}

impl Trace {
    fn push(&mut self, id: String, line: String, version: &'static RoomVersion) {
        self.ids.push(id);
        self.lines.push(line);
        self.line_versions.push(version);
    }
}

struct RoomGen {
    version: &'static RoomVersion,
    room_id: String,
    server: String,
    creator: String,
    create_id: String,
    pl_id: String,
    jr_id: String,
    topic_id: Option<String>,
    members: Vec<(String, String)>,
    depth: i64,
    ts: i64,
    extremities: Vec<String>,
    n: usize,
}

impl RoomGen {
    fn auth_for(&self, sender_member: Option<&str>, extra: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if self.version.create_in_auth_events() {
            a.push(self.create_id.clone());
        }
        if !self.pl_id.is_empty() {
            a.push(self.pl_id.clone());
        }
        if let Some(m) = sender_member {
            a.push(m.to_owned());
        }
        for e in extra {
            if !a.iter().any(|x| x == e) {
                a.push((*e).to_owned());
            }
        }
        a
    }

    fn member_event(&self, user: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, e)| e.as_str())
    }

    /// Builds one event on top of `prev`, returns (id, line).
    fn build(
        &mut self,
        ty: &str,
        sender: &str,
        content: &str,
        state_key: Option<&str>,
        auth: Vec<String>,
        prev: &[String],
    ) -> (String, String) {
        self.depth += 1;
        self.ts += 1;
        let mut b = EventBuilder::with_json_content(self.version, ty, sender, content)
            .depth(self.depth)
            .origin_server_ts(self.ts)
            .prev_events(prev)
            .auth_events(&auth);
        if !(self.version.room_id_from_create && ty == "m.room.create") {
            b = b.room_id(&self.room_id);
        }
        if let Some(sk) = state_key {
            b = b.state_key(sk);
        }
        if self.version.reference_pairs {
            self.n += 1;
            b = b.local_id(&format!(
                "${}-{}:{}",
                self.room_id.trim_start_matches('!').replace(':', "-"),
                self.n,
                self.server
            ));
        }
        match b.build() {
            Ok(pdu) => {
                let id = pdu.event_id.to_string();
                (id, to_canonical_string(&JsonValue::Object(pdu.json)))
            }
            // Generated events are well-formed by construction; an error here is a generator bug.
            Err(e) => panic!("trace generator built an invalid event: {e}"),
        }
    }
}

/// Generates a trace.
pub fn generate(spec: &TraceSpec) -> Trace {
    let mut rng = Rng::new(spec.seed);
    let mut trace = Trace::default();
    let mut rooms: Vec<RoomGen> = Vec::with_capacity(spec.rooms);
    let versions = if spec.versions.is_empty() {
        vec![&RoomVersion::all()[10]]
    } else {
        spec.versions.clone()
    };
    for r in 0..spec.rooms {
        let version = versions[r % versions.len()];
        let server = format!("hs{}.example", r % 7);
        let creator = format!("@admin{r}:{server}");
        let mut g = RoomGen {
            version,
            room_id: format!("!room{r}:{server}"),
            server: server.clone(),
            creator: creator.clone(),
            create_id: String::new(),
            pl_id: String::new(),
            jr_id: String::new(),
            topic_id: None,
            members: Vec::new(),
            depth: 0,
            ts: 1_700_000_000_000 + r as i64 * 1000,
            extremities: Vec::new(),
            n: 0,
        };
        let create_content = if version.creator_in_content {
            format!(
                r#"{{"creator":"{creator}","room_version":"{}"}}"#,
                version.id
            )
        } else {
            format!(r#"{{"room_version":"{}"}}"#, version.id)
        };
        let (create_id, line) = g.build(
            "m.room.create",
            &creator,
            &create_content,
            Some(""),
            vec![],
            &[],
        );
        if version.room_id_from_create {
            g.room_id = format!("!{}", &create_id[1..]);
        }
        g.create_id = create_id.clone();
        trace.push(create_id.clone(), line, version);
        let auth = g.auth_for(None, &[]);
        let (join_id, line) = g.build(
            "m.room.member",
            &creator,
            r#"{"membership":"join"}"#,
            Some(&creator),
            auth,
            std::slice::from_ref(&create_id),
        );
        g.members.push((creator.clone(), join_id.clone()));
        trace.push(join_id.clone(), line, version);
        let users = if version.privileged_creators {
            "{}".to_owned()
        } else {
            format!(r#"{{"{creator}":100}}"#)
        };
        let pl = format!(
            r#"{{"users":{users},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{{}}}}"#
        );
        let auth = g.auth_for(Some(&join_id), &[]);
        let (pl_id, line) = g.build(
            "m.room.power_levels",
            &creator,
            &pl,
            Some(""),
            auth,
            std::slice::from_ref(&join_id),
        );
        trace.push(pl_id.clone(), line, version);
        g.pl_id = pl_id.clone();
        let auth = g.auth_for(Some(&join_id), &[]);
        let (jr_id, line) = g.build(
            "m.room.join_rules",
            &creator,
            r#"{"join_rule":"public"}"#,
            Some(""),
            auth,
            &[pl_id],
        );
        trace.push(jr_id.clone(), line, version);
        g.jr_id = jr_id.clone();
        g.extremities = vec![jr_id];
        trace.rooms.push(g.room_id.clone());
        rooms.push(g);
    }
    let setup = trace.lines.len();
    let remaining = spec.events.saturating_sub(setup);
    let mut big_members = 1usize;
    let mut count = 0usize;
    while count < remaining {
        let r = if spec.rooms > 1 && rng.below(100) < spec.big_room_share as usize {
            0
        } else {
            rng.below(spec.rooms)
        };
        let g = &mut rooms[r];
        g.n += 1;
        let prev = g.extremities.clone();
        let want_members = if r == 0 { spec.big_room_members } else { 20 };
        let joined = if r == 0 { big_members } else { g.members.len() };
        if spec.fork_every > 0 && g.n.is_multiple_of(spec.fork_every) && count + 3 <= remaining {
            // Branch A: a topic change by the creator; branch B: a new member joins; then a merge.
            let creator = g.creator.clone();
            let creator_member = g.member_event(&creator).unwrap_or_default().to_owned();
            let auth = g.auth_for(Some(&creator_member), &[]);
            let (a_id, a_line) = g.build(
                "m.room.topic",
                &creator,
                &format!(r#"{{"topic":"topic {}"}}"#, g.n),
                Some(""),
                auth,
                &prev,
            );
            let user = format!("@u{}:{}", g.members.len(), g.server);
            let auth = g.auth_for(None, &[&g.jr_id.clone()]);
            g.depth -= 1;
            let (b_id, b_line) = g.build(
                "m.room.member",
                &user,
                r#"{"membership":"join"}"#,
                Some(&user),
                auth,
                &prev,
            );
            trace.push(a_id.clone(), a_line, g.version);
            trace.push(b_id.clone(), b_line, g.version);
            g.topic_id = Some(a_id.clone());
            g.members.push((user.clone(), b_id.clone()));
            if r == 0 {
                big_members += 1;
            }
            count += 2;
            let open_end = spec.open_fork_at_end && count + 3 > remaining;
            if open_end {
                g.extremities = vec![a_id, b_id];
                continue;
            }
            let sender_member = g.member_event(&user).unwrap_or_default().to_owned();
            let auth = g.auth_for(Some(&sender_member), &[]);
            let tips = vec![a_id, b_id];
            let (m_id, m_line) = g.build(
                "m.room.message",
                &user,
                r#"{"msgtype":"m.text","body":"merge"}"#,
                None,
                auth,
                &tips,
            );
            trace.push(m_id.clone(), m_line, g.version);
            trace.merges.push((g.room_id.clone(), m_id.clone(), tips));
            g.extremities = vec![m_id];
            count += 1;
            continue;
        }
        if spec.bad_every > 0 && rng.below(spec.bad_every) == 0 {
            // A message from someone who never joined: rejected against its own auth events.
            let user = format!("@stranger{}:{}", g.n, g.server);
            let auth = g.auth_for(None, &[]);
            let (id, line) = g.build(
                "m.room.message",
                &user,
                r#"{"msgtype":"m.text","body":"let me in"}"#,
                None,
                auth,
                &prev,
            );
            trace.push(id.clone(), line, g.version);
            trace.bad.push(id);
            count += 1;
            continue;
        }
        let (id, line) = if joined < want_members && rng.below(3) != 0 {
            let user = format!("@u{}:{}", g.members.len(), g.server);
            let auth = g.auth_for(None, &[&g.jr_id.clone()]);
            let (id, line) = g.build(
                "m.room.member",
                &user,
                r#"{"membership":"join"}"#,
                Some(&user),
                auth,
                &prev,
            );
            g.members.push((user, id.clone()));
            if r == 0 {
                big_members += 1;
            }
            (id, line)
        } else {
            let (user, member) = g.members[rng.below(g.members.len())].clone();
            let auth = g.auth_for(Some(&member), &[]);
            g.build(
                "m.room.message",
                &user,
                &format!(r#"{{"msgtype":"m.text","body":"message {}"}}"#, g.n),
                None,
                auth,
                &prev,
            )
        };
        trace.push(id.clone(), line, g.version);
        g.extremities = vec![id];
        count += 1;
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_deterministic_and_parse() {
        let spec = TraceSpec {
            events: 120,
            ..TraceSpec::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.lines, b.lines);
        assert!(a.lines.len() >= 120);
        assert!(!a.merges.is_empty());
        let v = RoomVersion::from_id("11").expect("v11");
        for l in &a.lines {
            let pdu = roomgraph_core::pdu::Pdu::parse(l.as_bytes(), v).expect("parses");
            assert!(pdu.content_hash_matches());
        }
    }
}
