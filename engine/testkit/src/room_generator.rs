//! Seeded random rooms: a room simulated over several servers with forks and merges.
//!
//! Used by the differential tests against ruma, the resolution benchmarks and (later) the ingest tests and
//! the benchmark harness. Each server keeps its own view of the room (state map and forward extremities).
//! Servers act in turn: joins, leaves, invites, kicks, bans and unbans, power-level changes by privileged
//! and unprivileged senders, join-rule changes, topics, display names and messages. Honest servers keep
//! only events that pass the auth rules against their view; the optional malicious server keeps whatever
//! it sends. Now and then a server learns another server's extremities and resolves the two states
//! (with [`roomgraph_core::resolve`]), so the DAG forks and merges. The output is every PDU in DAG order and the
//! state of each server at the end (the fork-tip state sets).
//!
//! Deterministic for a given [`RoomConfig`]: a built-in SplitMix64 generator, no global state.

use std::collections::HashMap;

use roaring::RoaringBitmap;
use serde_json::{Value, json};

use crate::builder::EventBuilder;
use roomgraph_core::auth::{self, AuthEvent, AuthState};
use roomgraph_core::canonical_json::{JsonValue, to_canonical_string};
use roomgraph_core::pdu::Pdu;
use roomgraph_core::resolve::{EventGraph, EventIdx, Reachability, Resolver};
use roomgraph_core::room_version::{RoomVersion, StateResAlgorithm};

use crate::rng::Rng;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub version: &'static RoomVersion,
    pub seed: u64,
    /// Servers taking part (2–8 is sensible); server 0 creates the room.
    pub servers: usize,
    /// Active users per server in the random phase.
    pub users_per_server: usize,
    /// Extra members that join during the linear bootstrap (big rooms).
    pub bootstrap_members: usize,
    /// Power-level changes spread over the bootstrap (deep power-levels history).
    pub bootstrap_pl_changes: usize,
    /// Random actions after the bootstrap, over all servers.
    pub steps: usize,
    /// Chance per step that the acting server first learns another server's extremities and merges.
    pub merge_probability: f64,
    /// The last this many servers keep events that fail the auth rules (malicious or buggy servers).
    pub malicious_servers: usize,
    /// Chance that a malicious server keeps its next event whatever the auth rules say.
    pub force_probability: f64,
    /// Honest servers do not learn the extremities of a server whose view holds a rejected event (as a
    /// real server would not build on events it rejected), so only malicious servers build on them.
    pub quarantine: bool,
    /// The first user of each honest server is an admin (power 100) rather than a moderator (50), and
    /// malicious servers' users have no power (their power-levels changes, kicks and bans fail).
    pub honest_admins: bool,
    /// Share of actions that are messages (non-state events).
    pub message_ratio: f64,
    /// Share of the state actions that are changes of a member's power level (on top of the random
    /// mix's ~14 %), sent by the local admin or moderator.
    pub power_ratio: f64,
    /// Share of actions taken by a random bootstrap member of the acting server (a display-name change,
    /// sometimes a leave), so that forks of a big room touch many distinct keys.
    pub member_activity: f64,
}

impl RoomConfig {
    /// A room of a few dozen events for differential tests.
    pub fn small(version: &'static RoomVersion, seed: u64) -> RoomConfig {
        let mut rng = Rng::new(seed);
        RoomConfig {
            version,
            seed,
            servers: 2 + rng.below(3),
            users_per_server: 2 + rng.below(3),
            bootstrap_members: 0,
            bootstrap_pl_changes: rng.below(3),
            steps: 20 + rng.below(50),
            merge_probability: 0.15,
            malicious_servers: usize::from(rng.chance(0.5)),
            force_probability: 0.5,
            quarantine: false,
            honest_admins: false,
            message_ratio: 0.05,
            power_ratio: 0.0,
            member_activity: 0.0,
        }
    }

    /// A contested room of about `events` events: a long power-levels history (one change per three
    /// joins), then three servers that fork and each send state (display names, leaves, kicks, power
    /// changes; the third keeps events that fail auth) without hearing from each other, so the state
    /// sets conflict and their auth chains differ by hundreds of events (`resolve_request` benchmark).
    pub fn contested(version: &'static RoomVersion, events: usize) -> RoomConfig {
        let members = events * 2 / 5;
        RoomConfig {
            version,
            seed: events as u64,
            servers: 3,
            users_per_server: 6,
            bootstrap_members: members,
            bootstrap_pl_changes: members / 3,
            steps: events / 2,
            merge_probability: 0.02,
            malicious_servers: 1,
            force_probability: 0.5,
            quarantine: false,
            honest_admins: false,
            message_ratio: 0.0,
            power_ratio: 0.0,
            member_activity: 0.6,
        }
    }

    /// A big room: `members` joined members, `pl_changes` power-level events in its history, then
    /// `forks` servers each sending `events_per_fork` state events without hearing from each other.
    pub fn large(
        version: &'static RoomVersion,
        seed: u64,
        members: usize,
        pl_changes: usize,
        forks: usize,
        events_per_fork: usize,
    ) -> RoomConfig {
        RoomConfig {
            version,
            seed,
            servers: forks,
            users_per_server: 8,
            bootstrap_members: members,
            bootstrap_pl_changes: pl_changes,
            steps: forks * events_per_fork,
            merge_probability: 0.0,
            malicious_servers: 0,
            force_probability: 0.5,
            quarantine: false,
            honest_admins: false,
            message_ratio: 0.0,
            power_ratio: 0.0,
            member_activity: 0.8,
        }
    }

    /// A contested, state-heavy room of about `events` events (issue 14's adversarial room): six
    /// servers, three of them malicious (their powerless members send power-levels changes, kicks and
    /// bans, and keep building on what they sent), an admin on each honest server, frequent merges,
    /// membership churn among `events / 24` bootstrap members, about 8 % messages. At 7 000 events (seeds
    /// 1–3 and 14): ~92 % state events, 43–45 % of events with two or more prev events, ~1 200
    /// power-levels events (~45 % of them accepted), 40–48 % rejected.
    pub fn state_heavy(version: &'static RoomVersion, seed: u64, events: usize) -> RoomConfig {
        let members = events / 24;
        let pl_changes = events / 240;
        let bootstrap = 40 + members + members / 97 + pl_changes;
        RoomConfig {
            version,
            seed,
            servers: 6,
            users_per_server: 6,
            bootstrap_members: members,
            bootstrap_pl_changes: pl_changes,
            steps: events.saturating_sub(bootstrap) * STATE_HEAVY_STEPS_PER_100_EVENTS / 100,
            merge_probability: 0.85,
            malicious_servers: 3,
            force_probability: 0.9,
            quarantine: true,
            honest_admins: true,
            message_ratio: 0.1,
            power_ratio: 0.1,
            member_activity: 0.25,
        }
    }
}

/// Steps per 100 events past the bootstrap in [`RoomConfig::state_heavy`] (honest servers drop the
/// actions that fail auth on their view).
const STATE_HEAVY_STEPS_PER_100_EVENTS: usize = 116;

/// A generated room.
#[derive(Debug, Clone)]
pub struct GeneratedRoom {
    pub version: &'static RoomVersion,
    pub room_id: String,
    /// Every accepted PDU, auth and prev events first.
    pub events: Vec<Pdu<'static>>,
    /// The state of each server at the end (event ids, one per key); distinct sets only.
    pub fork_states: Vec<Vec<String>>,
    /// The forward extremities of each server at the end (parallel to `fork_states` before dedup).
    pub tips: Vec<Vec<String>>,
    /// The generator's verdict, parallel to `events`: the event failed the auth rules on its sender's
    /// view and was kept by a malicious server, or cites such an event among its auth events.
    pub rejected: Vec<bool>,
}

/// What a generated room is made of (see [`GeneratedRoom::shape`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomShape {
    pub events: usize,
    pub state_events: usize,
    /// Events with two or more prev events.
    pub merges: usize,
    pub power_levels: usize,
    /// Power-levels events the generator expects to be accepted.
    pub power_levels_accepted: usize,
    pub joins: usize,
    pub leaves: usize,
    pub bans: usize,
    pub invites: usize,
    /// Member events of a joined user naming a display name.
    pub display_names: usize,
    /// Events the generator expects to be rejected (`GeneratedRoom::rejected`).
    pub rejected: usize,
}

impl RoomShape {
    /// `part` of all events, in percent.
    pub fn percent(&self, part: usize) -> f64 {
        100.0 * part as f64 / self.events.max(1) as f64
    }
}

impl GeneratedRoom {
    /// The fork states keyed by `(type, state_key)`, as state sets are handed to a resolver.
    pub fn named_fork_states(&self) -> Vec<std::collections::BTreeMap<(String, String), String>> {
        let by_id: std::collections::HashMap<&str, &Pdu<'static>> =
            self.events.iter().map(|p| (&*p.event_id, p)).collect();
        self.fork_states
            .iter()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| {
                        let p = by_id.get(id.as_str())?;
                        let key = (
                            p.event_type.to_string(),
                            p.state_key.as_deref().unwrap_or_default().to_owned(),
                        );
                        Some((key, id.clone()))
                    })
                    .collect()
            })
            .collect()
    }

    /// What a host with an auth-chain index computes before the expensive half of state resolution
    /// v2 (Synapse's `resolve_events_with_store` up to `_resolve_conflicted_set`), for the fork states:
    /// the unconflicted state by key (`(type, state_key, event_id)`, in key order) and the full
    /// conflicted set (conflicted events, auth difference and, for room version 12, the conflicted
    /// subgraph; sorted ids). The input of `Session::begin_conflicted`.
    pub fn conflicted_set(&self) -> (Vec<(String, String, String)>, Vec<String>) {
        use std::collections::BTreeMap;
        let rejected: std::collections::HashSet<&str> = self
            .events
            .iter()
            .zip(&self.rejected)
            .filter(|(_, r)| **r)
            .map(|(p, _)| &*p.event_id)
            .collect();
        let events: Vec<AuthEvent> = self.events.iter().cloned().map(AuthEvent::new).collect();
        let Ok(graph) = EventGraph::build(self.version, events, &|id| rejected.contains(id)) else {
            return (Vec::new(), Vec::new());
        };
        let sets: Vec<Vec<EventIdx>> = self
            .fork_states
            .iter()
            .map(|set| set.iter().filter_map(|id| graph.idx(id)).collect())
            .collect();
        // Per key: the event of each set (None where a set lacks the key).
        let mut by_key: BTreeMap<(String, String), Vec<Option<EventIdx>>> = BTreeMap::new();
        for (i, set) in sets.iter().enumerate() {
            for &e in set {
                let pdu = &graph.event(e).pdu;
                let key = (
                    pdu.event_type.to_string(),
                    pdu.state_key.as_deref().unwrap_or_default().to_owned(),
                );
                by_key.entry(key).or_insert_with(|| vec![None; sets.len()])[i] = Some(e);
            }
        }
        let mut unconflicted = Vec::new();
        let mut conflicted = Vec::new();
        for ((t, k), events) in by_key {
            match events[0] {
                Some(first) if events.iter().all(|e| *e == Some(first)) => {
                    unconflicted.push((t, k, graph.event_id(first).to_owned()));
                }
                _ => conflicted.extend(events.iter().flatten().copied()),
            }
        }
        let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
        let mut reach = Reachability::default();
        let mut full = Vec::new();
        reach.auth_difference(&graph, &refs, &mut full);
        full.extend_from_slice(&conflicted);
        if self.version.state_res == StateResAlgorithm::V2_1 {
            let mut subgraph = Vec::new();
            reach.conflicted_subgraph(&graph, &conflicted, &mut subgraph);
            full.extend(subgraph);
        }
        let mut full: Vec<String> = full.iter().map(|&e| graph.event_id(e).to_owned()).collect();
        full.sort_unstable();
        full.dedup();
        (unconflicted, full)
    }

    /// Counts of the room's events by kind.
    pub fn shape(&self) -> RoomShape {
        let mut shape = RoomShape {
            events: self.events.len(),
            ..RoomShape::default()
        };
        for (pdu, &rejected) in self.events.iter().zip(&self.rejected) {
            shape.rejected += usize::from(rejected);
            shape.state_events += usize::from(pdu.is_state());
            shape.merges += usize::from(pdu.prev_events.len() >= 2);
            match &*pdu.event_type {
                "m.room.power_levels" => {
                    shape.power_levels += 1;
                    shape.power_levels_accepted += usize::from(!rejected);
                }
                "m.room.member" => {
                    let content = pdu.content();
                    match content.get("membership").and_then(|m| m.as_str()) {
                        Some("join") if content.get("displayname").is_some() => {
                            shape.display_names += 1;
                        }
                        Some("join") => shape.joins += 1,
                        Some("leave") => shape.leaves += 1,
                        Some("ban") => shape.bans += 1,
                        Some("invite") => shape.invites += 1,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        shape
    }

    /// The events as NDJSON lines (canonical JSON), in generation order: every event after its auth
    /// and prev events, as a server could receive them.
    pub fn ndjson_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.events
            .iter()
            .map(|pdu| to_canonical_string(&JsonValue::Object(pdu.json.clone())))
    }

    /// The room as a `roomgraph resolve` request document.
    pub fn to_request_json(&self) -> String {
        let mut out = String::from("{\"room_version\":");
        out.push_str(&json!(self.version.id).to_string());
        out.push_str(",\"events\":[");
        for (i, pdu) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&to_canonical_string(&JsonValue::Object(pdu.json.clone())));
        }
        out.push_str("],\"state_sets\":");
        out.push_str(&json!(self.fork_states).to_string());
        out.push_str(",\"rejected\":[]}");
        out
    }

    /// The events as [`AuthEvent`]s and an [`EventGraph`] with the fork states as indices.
    pub fn graph(&self) -> (EventGraph, Vec<Vec<EventIdx>>) {
        let events: Vec<AuthEvent> = self.events.iter().cloned().map(AuthEvent::new).collect();
        let graph = match EventGraph::build(self.version, events, &|_| false) {
            Ok(g) => g,
            Err(e) => panic!("generated rooms are well-formed: {e}"),
        };
        let sets = self
            .fork_states
            .iter()
            .map(|s| s.iter().filter_map(|id| graph.idx(id)).collect())
            .collect();
        (graph, sets)
    }
}

#[derive(Debug, Clone, Default)]
struct View {
    state: HashMap<(String, String), EventIdx>,
    tips: Vec<EventIdx>,
    known: RoaringBitmap,
}

struct ViewState<'a> {
    view: &'a View,
    graph: &'a EventGraph,
}

impl AuthState for ViewState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        let e = self
            .view
            .state
            .get(&(event_type.to_owned(), state_key.to_owned()))?;
        Some(self.graph.event(*e))
    }
}

struct Sim {
    cfg: RoomConfig,
    rng: Rng,
    graph: EventGraph,
    pdus: Vec<Pdu<'static>>,
    views: Vec<View>,
    clock: i64,
    counter: u64,
    creator: String,
    room_id: String,
    resolver: Resolver,
    /// The generator's verdicts: by event index, and parallel to `pdus`.
    rejected: RoaringBitmap,
    verdicts: Vec<bool>,
}

/// Simulates a room as configured.
pub fn generate(cfg: &RoomConfig) -> GeneratedRoom {
    let servers = cfg.servers.max(1);
    let mut sim = Sim {
        cfg: cfg.clone(),
        rng: Rng::new(cfg.seed),
        graph: EventGraph::new(cfg.version, ""),
        pdus: Vec::new(),
        views: vec![View::default(); servers],
        clock: 1_000_000,
        counter: 0,
        creator: "@admin:s0.example".to_owned(),
        room_id: String::new(),
        resolver: Resolver::new(),
        rejected: RoaringBitmap::new(),
        verdicts: Vec::new(),
    };
    sim.bootstrap();
    for _ in 0..cfg.steps {
        sim.step();
    }
    let mut fork_states: Vec<Vec<String>> = Vec::new();
    let mut tips = Vec::new();
    for view in &sim.views {
        let mut ids: Vec<String> = view
            .state
            .values()
            .map(|&e| sim.graph.event_id(e).to_owned())
            .collect();
        ids.sort();
        tips.push(
            view.tips
                .iter()
                .map(|&e| sim.graph.event_id(e).to_owned())
                .collect(),
        );
        if !fork_states.contains(&ids) {
            fork_states.push(ids);
        }
    }
    GeneratedRoom {
        version: cfg.version,
        room_id: sim.room_id,
        events: sim.pdus,
        fork_states,
        tips,
        rejected: sim.verdicts,
    }
}

fn server_name(server: usize) -> String {
    format!("s{server}.example")
}

fn user(i: usize, server: usize) -> String {
    format!("@u{i}:{}", server_name(server))
}

impl Sim {
    fn bootstrap(&mut self) {
        let v = self.cfg.version;
        let creator = self.creator.clone();
        let create_content = if v.creator_in_content {
            json!({"creator": creator, "room_version": v.id})
        } else {
            json!({"room_version": v.id})
        };
        self.emit(0, &creator, "m.room.create", Some(""), create_content, true);
        self.emit_member(0, &creator, &creator, "join", true);
        let mut users = serde_json::Map::new();
        if !v.privileged_creators {
            users.insert(creator.clone(), json!(100));
        }
        // A moderator (or an admin) on every server, so kicks and bans come from everywhere.
        for s in 0..self.cfg.servers {
            match (self.cfg.honest_admins, self.malicious(s)) {
                (false, _) => users.insert(user(0, s), json!(50)),
                (true, false) => users.insert(user(0, s), json!(100)),
                (true, true) => None,
            };
        }
        let pl = json!({
            "users": users, "users_default": 0, "events_default": 0, "state_default": 50,
            "ban": 50, "kick": 50, "redact": 50, "invite": 0,
            "events": {"m.room.topic": 0, "m.room.name": 50, "m.room.power_levels": 100}
        });
        self.emit(0, &creator, "m.room.power_levels", Some(""), pl, true);
        self.emit(
            0,
            &creator,
            "m.room.join_rules",
            Some(""),
            json!({"join_rule": "public"}),
            true,
        );
        for s in 0..self.cfg.servers {
            for i in 0..self.cfg.users_per_server {
                let u = user(i, s);
                self.emit_member(0, &u, &u, "join", false);
            }
        }
        let members = self.cfg.bootstrap_members;
        let pl_every = members
            .checked_div(self.cfg.bootstrap_pl_changes.max(1))
            .unwrap_or(0)
            .max(1);
        let mut pl_done = 0;
        for m in 0..members {
            let u = format!("@m{m}:{}", server_name(m % self.cfg.servers));
            self.emit_member(0, &u, &u, "join", false);
            if m % pl_every == pl_every - 1 && pl_done < self.cfg.bootstrap_pl_changes {
                pl_done += 1;
                let target = format!(
                    "@m{}:{}",
                    self.rng.below(m + 1),
                    server_name(self.rng.below(self.cfg.servers))
                );
                let level = *self.rng.pick(&[0, 10, 25, 50]).unwrap_or(&0);
                self.set_power(0, &creator, &target, level, false);
            }
            if m % 97 == 0 {
                let topic = format!("topic {m}");
                self.emit(
                    0,
                    &u,
                    "m.room.topic",
                    Some(""),
                    json!({"topic": topic}),
                    false,
                );
            }
        }
        while pl_done < self.cfg.bootstrap_pl_changes {
            pl_done += 1;
            let target = user(
                self.rng.below(self.cfg.users_per_server.max(1)),
                self.rng.below(self.cfg.servers),
            );
            let level = *self.rng.pick(&[0, 25, 50]).unwrap_or(&0);
            self.set_power(0, &creator, &target, level, false);
        }
        let base = self.views[0].clone();
        for view in self.views.iter_mut().skip(1) {
            *view = base.clone();
        }
    }

    fn malicious(&self, server: usize) -> bool {
        server > 0 && server >= self.cfg.servers.saturating_sub(self.cfg.malicious_servers)
    }

    /// With [`RoomConfig::honest_admins`], whether `user_id` is an honest server's admin or the creator:
    /// they stay in the room (no leaves, kicks or bans of them), so the honest servers keep changing
    /// power levels all along.
    fn is_honest_admin(&self, user_id: &str) -> bool {
        self.cfg.honest_admins
            && (user_id == self.creator
                || (0..self.cfg.servers).any(|s| !self.malicious(s) && user_id == user(0, s)))
    }

    /// Whether `server`'s view holds an event the generator rejects (in its state or extremities).
    fn holds_rejected(&self, server: usize) -> bool {
        let view = &self.views[server];
        view.tips
            .iter()
            .chain(view.state.values())
            .any(|e| self.rejected.contains(e.0))
    }

    /// Members of `view` with the given membership.
    fn with_membership(&self, server: usize, membership: &str) -> Vec<String> {
        let mut out: Vec<String> = self.views[server]
            .state
            .iter()
            .filter(|((t, _), _)| t == "m.room.member")
            .filter(|(_, e)| {
                self.graph
                    .event(**e)
                    .pdu
                    .content()
                    .get("membership")
                    .and_then(|m| m.as_str())
                    == Some(membership)
            })
            .map(|((_, k), _)| k.clone())
            .collect();
        out.sort();
        out
    }

    fn local_users(&self, server: usize) -> Vec<String> {
        let mut out: Vec<String> = (0..self.cfg.users_per_server)
            .map(|i| user(i, server))
            .collect();
        if server == 0 {
            out.push(self.creator.clone());
        }
        out
    }

    fn current_pl(&self, server: usize) -> Value {
        self.views[server]
            .state
            .get(&("m.room.power_levels".to_owned(), String::new()))
            .and_then(|e| {
                let c = to_canonical_string(&JsonValue::Object(
                    self.graph.event(*e).pdu.content().clone(),
                ));
                serde_json::from_str(&c).ok()
            })
            .unwrap_or_else(|| json!({}))
    }

    fn set_power(&mut self, server: usize, sender: &str, target: &str, level: i64, force: bool) {
        let mut pl = self.current_pl(server);
        if let Some(users) = pl.get_mut("users").and_then(Value::as_object_mut) {
            if self.cfg.version.privileged_creators && target == self.creator {
                return;
            }
            if level == 0 {
                users.remove(target);
            } else {
                users.insert(target.to_owned(), json!(level));
            }
        }
        self.emit(server, sender, "m.room.power_levels", Some(""), pl, force);
    }

    fn step(&mut self) {
        let server = self.rng.below(self.cfg.servers);
        if self.cfg.servers > 1 && self.rng.chance(self.cfg.merge_probability) {
            let other = (server + 1 + self.rng.below(self.cfg.servers - 1)) % self.cfg.servers;
            if !(self.cfg.quarantine && !self.malicious(server) && self.holds_rejected(other)) {
                self.merge(server, other);
            }
        }
        let force = self.malicious(server) && self.rng.chance(self.cfg.force_probability);
        if self.cfg.member_activity > 0.0
            && self.cfg.bootstrap_members > self.cfg.servers
            && self.rng.chance(self.cfg.member_activity)
        {
            let per_server = self.cfg.bootstrap_members / self.cfg.servers;
            let m = self.rng.below(per_server) * self.cfg.servers + server;
            let u = format!("@m{m}:{}", server_name(server));
            let n = self.counter;
            let content = if self.rng.chance(0.1) {
                json!({"membership": "leave"})
            } else {
                json!({"membership": "join", "displayname": format!("member {m} ({n})")})
            };
            self.emit(server, &u, "m.room.member", Some(&u), content, force);
            return;
        }
        let locals = self.local_users(server);
        let joined = self.with_membership(server, "join");
        let local_joined: Vec<String> = locals
            .iter()
            .filter(|u| joined.contains(u))
            .cloned()
            .collect();
        let Some(sender) = self
            .rng
            .pick(&local_joined)
            .cloned()
            .or_else(|| self.rng.pick(&locals).cloned())
        else {
            return;
        };
        if self.rng.chance(self.cfg.message_ratio) {
            self.emit(
                server,
                &sender,
                "m.room.message",
                None,
                json!({"body": "hi", "msgtype": "m.text"}),
                force,
            );
            return;
        }
        let privileged = if self.rng.chance(0.7) {
            // Prefer a sender with power: the creator on server 0, the local moderator elsewhere.
            if server == 0 {
                self.creator.clone()
            } else {
                user(0, server)
            }
        } else {
            sender.clone()
        };
        let change_power = self.cfg.power_ratio > 0.0 && self.rng.chance(self.cfg.power_ratio);
        match if change_power {
            43
        } else {
            self.rng.below(100)
        } {
            0..=14 => {
                let candidates: Vec<String> = locals
                    .iter()
                    .filter(|u| !joined.contains(u))
                    .cloned()
                    .collect();
                if let Some(u) = self.rng.pick(&candidates).cloned() {
                    self.emit_member(server, &u, &u, "join", force);
                }
            }
            15..=21 => {
                if !self.is_honest_admin(&sender) {
                    self.emit_member(server, &sender, &sender, "leave", force);
                }
            }
            22..=26 => {
                let target = user(
                    self.rng.below(self.cfg.users_per_server + 2),
                    self.rng.below(self.cfg.servers),
                );
                if !joined.contains(&target) {
                    self.emit_member(server, &sender, &target, "invite", force);
                }
            }
            27..=33 => {
                if let Some(target) = self.rng.pick(&joined).cloned()
                    && !self.is_honest_admin(&target)
                {
                    self.emit_member(server, &privileged, &target, "leave", force);
                }
            }
            34..=39 => {
                let target = user(
                    self.rng.below(self.cfg.users_per_server),
                    self.rng.below(self.cfg.servers),
                );
                if !self.is_honest_admin(&target) {
                    self.emit_member(server, &privileged, &target, "ban", force);
                }
            }
            40..=42 => {
                let banned = self.with_membership(server, "ban");
                if let Some(target) = self.rng.pick(&banned).cloned() {
                    self.emit_member(server, &privileged, &target, "leave", force);
                }
            }
            43..=56 => {
                let target = self
                    .rng
                    .pick(&joined)
                    .cloned()
                    .unwrap_or_else(|| user(0, self.rng.below(self.cfg.servers)));
                let level = *self.rng.pick(&[0, 25, 50, 75, 100]).unwrap_or(&0);
                self.set_power(server, &privileged, &target, level, force);
            }
            57..=61 => {
                let mut pl = self.current_pl(server);
                let field = *self
                    .rng
                    .pick(&["state_default", "kick", "ban", "invite", "users_default"])
                    .unwrap_or(&"kick");
                let level = *self.rng.pick(&[0, 25, 50, 75]).unwrap_or(&50);
                if let Some(obj) = pl.as_object_mut() {
                    obj.insert(field.to_owned(), json!(level));
                }
                self.emit(
                    server,
                    &privileged,
                    "m.room.power_levels",
                    Some(""),
                    pl,
                    force,
                );
            }
            62..=67 => {
                let rule = *self.rng.pick(&["public", "invite"]).unwrap_or(&"public");
                self.emit(
                    server,
                    &privileged,
                    "m.room.join_rules",
                    Some(""),
                    json!({"join_rule": rule}),
                    force,
                );
            }
            68..=81 => {
                let n = self.counter;
                self.emit(
                    server,
                    &sender,
                    "m.room.topic",
                    Some(""),
                    json!({"topic": format!("topic {n}")}),
                    force,
                );
            }
            82..=87 => {
                let n = self.counter;
                self.emit(
                    server,
                    &privileged,
                    "m.room.name",
                    Some(""),
                    json!({"name": format!("name {n}")}),
                    force,
                );
            }
            _ => {
                let n = self.counter;
                let content = json!({"membership": "join", "displayname": format!("user {n}")});
                self.emit(
                    server,
                    &sender,
                    "m.room.member",
                    Some(&sender),
                    content,
                    force,
                );
            }
        }
    }

    /// Server `a` learns server `b`'s extremities and resolves the two states.
    fn merge(&mut self, a: usize, b: usize) {
        let (va, vb) = (&self.views[a], &self.views[b]);
        if vb.tips.iter().all(|t| va.known.contains(t.0)) {
            return;
        }
        if va.tips.iter().all(|t| vb.known.contains(t.0)) {
            self.views[a] = self.views[b].clone();
            return;
        }
        let set_a: Vec<EventIdx> = va.state.values().copied().collect();
        let set_b: Vec<EventIdx> = vb.state.values().copied().collect();
        let mut tips: Vec<EventIdx> = va
            .tips
            .iter()
            .filter(|t| !vb.known.contains(t.0))
            .copied()
            .collect();
        tips.extend(vb.tips.iter().filter(|t| !va.known.contains(t.0)));
        tips.truncate(20);
        let known = &va.known | &vb.known;
        let resolved = match self.resolver.resolve(&self.graph, &[&set_a, &set_b]) {
            Ok(r) => r,
            Err(_) => return,
        };
        let state = resolved
            .iter()
            .map(|(k, e)| {
                let (t, s) = self.graph.keys().resolve(k);
                ((t.to_owned(), s.to_owned()), e)
            })
            .collect();
        self.views[a] = View { state, tips, known };
    }

    /// Builds an event on `server`'s view; keeps it if it passes auth there (or `force`).
    /// A member event of `target` with content `{"membership": membership}`.
    fn emit_member(
        &mut self,
        server: usize,
        sender: &str,
        target: &str,
        membership: &str,
        force: bool,
    ) {
        let content = json!({ "membership": membership });
        self.emit(
            server,
            sender,
            "m.room.member",
            Some(target),
            content,
            force,
        );
    }

    fn emit(
        &mut self,
        server: usize,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
        force: bool,
    ) {
        let v = self.cfg.version;
        let view = &self.views[server];
        let lookup = |t: &str, k: &str| view.state.get(&(t.to_owned(), k.to_owned())).copied();
        let is_create = event_type == "m.room.create";
        let mut auth: Vec<EventIdx> = Vec::new();
        if !is_create {
            let mut want: Vec<(&str, String)> = Vec::new();
            if v.create_in_auth_events() {
                want.push(("m.room.create", String::new()));
            }
            want.push(("m.room.power_levels", String::new()));
            want.push(("m.room.member", sender.to_owned()));
            if event_type == "m.room.member"
                && let Some(target) = state_key
            {
                want.push(("m.room.member", target.to_owned()));
                let membership = content.get("membership").and_then(Value::as_str);
                if matches!(membership, Some("join" | "invite" | "knock")) {
                    want.push(("m.room.join_rules", String::new()));
                }
            }
            for (t, k) in want {
                if let Some(e) = lookup(t, &k)
                    && !auth.contains(&e)
                {
                    auth.push(e);
                }
            }
        }
        let depth = view
            .tips
            .iter()
            .map(|t| self.graph.node(*t).depth)
            .max()
            .unwrap_or(0)
            + 1;
        let prev: Vec<String> = view
            .tips
            .iter()
            .map(|t| self.graph.event_id(*t).to_owned())
            .collect();
        let auth_ids: Vec<String> = auth
            .iter()
            .map(|a| self.graph.event_id(*a).to_owned())
            .collect();
        self.clock += 1 + self.rng.below(1000) as i64;
        self.counter += 1;
        let content_text = content.to_string();
        let mut builder = EventBuilder::with_json_content(v, event_type, sender, &content_text)
            .prev_events(&prev)
            .auth_events(&auth_ids)
            .depth(depth)
            .origin_server_ts(self.clock)
            .local_id(&format!("$e{}:{}", self.counter, server_name(server)));
        if let Some(k) = state_key {
            builder = builder.state_key(k);
        }
        if !(is_create && v.room_id_from_create) {
            if self.room_id.is_empty() {
                self.room_id = format!("!room{}:{}", self.cfg.seed, server_name(0));
            }
            builder = builder.room_id(&self.room_id);
        }
        let Ok(pdu) = builder.build() else { return };
        if is_create && v.room_id_from_create {
            self.room_id = pdu.room_id.to_string();
        }
        let event = AuthEvent::new(pdu.clone());
        let fails = !is_create && {
            let Some(create) = self.graph.create().map(|c| self.graph.event(c)) else {
                return;
            };
            let state = ViewState {
                view,
                graph: &self.graph,
            };
            auth::check_state_dependent(&event, &state, create).is_err()
        };
        if fails && !force {
            return;
        }
        let rejected = fails || auth.iter().any(|a| self.rejected.contains(a.0));
        let Ok(idx) = self.graph.insert(event, false) else {
            return;
        };
        self.pdus.push(pdu);
        self.verdicts.push(rejected);
        if rejected {
            self.rejected.insert(idx.0);
        }
        let view = &mut self.views[server];
        if let Some(k) = state_key {
            view.state
                .insert((event_type.to_owned(), k.to_owned()), idx);
        }
        view.tips = vec![idx];
        view.known.insert(idx.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let v = RoomVersion::from_id("10").expect("known");
        let a = generate(&RoomConfig::small(v, 7));
        let b = generate(&RoomConfig::small(v, 7));
        assert_eq!(a.events.len(), b.events.len());
        assert_eq!(a.fork_states, b.fork_states);
        assert!(a.events.len() > 10);
        let (graph, sets) = a.graph();
        assert_eq!(graph.len(), a.events.len());
        assert_eq!(sets.len(), a.fork_states.len());
    }

    /// The state-heavy preset, scaled down to ~600 events (the bootstrap weighs more there, so the
    /// rejected share is lower than the ~45 % of the 7 000-event room).
    #[test]
    fn state_heavy_room_has_the_promised_shape() {
        let v = RoomVersion::from_id("12").expect("known");
        for seed in [14, 1] {
            let room = generate(&RoomConfig::state_heavy(v, seed, 600));
            let s = room.shape();
            assert_eq!(room.rejected.len(), room.events.len());
            assert!((500..=700).contains(&s.events), "seed {seed}: {s:?}");
            assert!(s.percent(s.state_events) >= 88.0, "seed {seed}: {s:?}");
            assert!(s.percent(s.merges) >= 35.0, "seed {seed}: {s:?}");
            assert!(
                s.power_levels >= 80 && s.power_levels_accepted >= 30,
                "seed {seed}: {s:?}"
            );
            assert!(s.percent(s.rejected) >= 20.0, "seed {seed}: {s:?}");
            assert!(
                s.joins > 50 && s.leaves > 30 && s.bans > 5 && s.display_names > 100,
                "seed {seed}: {s:?}"
            );
            // Only the malicious servers (s3–s5) send events the generator rejects.
            for (pdu, &rejected) in room.events.iter().zip(&room.rejected) {
                if rejected {
                    let server = roomgraph_core::pdu::server_name(&pdu.sender);
                    assert!(matches!(server, "s3.example" | "s4.example" | "s5.example"));
                }
            }
        }
    }
}
