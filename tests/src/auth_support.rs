//! Shared fixtures for the auth tests and the auth benchmark: a room under construction whose events
//! cite the auth events the selection algorithm picks from the current state, plus the adaptor that
//! hands the same events to ruma-state-res.

use std::collections::{BTreeMap, HashMap};

use roomgraph::auth::{
    AuthEvent, AuthEventsState, AuthFailure, StateLookup, auth_types_for_event,
    check_signature_presence, check_state_dependent, check_state_independent,
};
use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::event_id::room_id_from_create_event_id;
use roomgraph::pdu::server_name;
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::builder::EventBuilder;

pub const ALICE: &str = "@alice:a.org";
pub const BOB: &str = "@bob:a.org";
pub const CAROL: &str = "@carol:b.org";
pub const DAVE: &str = "@dave:b.org";
pub const EVE: &str = "@eve:c.org";

pub fn version(id: &str) -> &'static RoomVersion {
    RoomVersion::from_id(id).expect("known room version")
}

/// A room built event by event; `state` is the current state.
#[derive(Clone)]
pub struct Room {
    pub version: &'static RoomVersion,
    pub room_id: String,
    pub events: HashMap<String, AuthEvent>,
    pub state: BTreeMap<(String, String), String>,
    pub create_id: String,
    pub rejected: Vec<String>,
    last: String,
    depth: i64,
    counter: u64,
}

/// How to build one event.
#[derive(Clone)]
pub struct Spec {
    pub event_type: String,
    pub sender: String,
    pub state_key: Option<String>,
    pub content: String,
    pub prev_events: Option<Vec<String>>,
    pub auth_events: Option<Vec<String>>,
    pub extra_signers: Vec<String>,
    pub redacts: Option<String>,
    pub room_id: Option<String>,
}

pub fn spec(event_type: &str, sender: &str, state_key: Option<&str>, content: &str) -> Spec {
    Spec {
        event_type: event_type.into(),
        sender: sender.into(),
        state_key: state_key.map(Into::into),
        content: content.into(),
        prev_events: None,
        auth_events: None,
        extra_signers: Vec::new(),
        redacts: None,
        room_id: None,
    }
}

impl Spec {
    pub fn prev(mut self, ids: &[&str]) -> Spec {
        self.prev_events = Some(ids.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn auth(mut self, ids: &[&str]) -> Spec {
        self.auth_events = Some(ids.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn signed_by(mut self, server: &str) -> Spec {
        self.extra_signers.push(server.into());
        self
    }
    pub fn redacts(mut self, id: &str) -> Spec {
        self.redacts = Some(id.into());
        self
    }
    pub fn in_room(mut self, room_id: &str) -> Spec {
        self.room_id = Some(room_id.into());
        self
    }
}

pub fn member(sender: &str, target: &str, membership: &str) -> Spec {
    spec(
        "m.room.member",
        sender,
        Some(target),
        &format!(r#"{{"membership":"{membership}"}}"#),
    )
}

pub fn state(event_type: &str, sender: &str, content: &str) -> Spec {
    spec(event_type, sender, Some(""), content)
}

pub fn message(sender: &str) -> Spec {
    spec(
        "m.room.message",
        sender,
        None,
        r#"{"body":"hi","msgtype":"m.text"}"#,
    )
}

impl Room {
    /// A room of `version_id` created by `creator` with extra create content (JSON members without
    /// braces, e.g. `"m.federate":false`).
    pub fn new(version_id: &str, creator: &str, extra_create: &str) -> Room {
        let version = version(version_id);
        let mut content = format!(r#"{{"room_version":"{version_id}""#);
        if version.creator_in_content {
            content.push_str(&format!(r#","creator":"{creator}""#));
        }
        if !extra_create.is_empty() {
            content.push(',');
            content.push_str(extra_create);
        }
        content.push('}');
        let mut room = Room {
            version,
            room_id: format!("!room:{}", server_name(creator)),
            events: HashMap::new(),
            state: BTreeMap::new(),
            create_id: String::new(),
            rejected: Vec::new(),
            last: String::new(),
            depth: 0,
            counter: 0,
        };
        let create = room.build(
            spec("m.room.create", creator, Some(""), &content)
                .prev(&[])
                .auth(&[]),
        );
        if version.room_id_from_create {
            room.room_id = room_id_from_create_event_id(create.event_id());
        }
        room.create_id = create.event_id().to_owned();
        room.add(create);
        room
    }

    /// A room with the usual opening: creator joins, power levels (extra content merged), join rules.
    pub fn standard(version_id: &str, join_rule: &str, power_levels: &str) -> Room {
        let mut room = Room::new(version_id, ALICE, "");
        let create_id = room.create_id.clone();
        room.send(member(ALICE, ALICE, "join").prev(&[&create_id]));
        // Before v12 the creator needs an explicit level once power levels exist; in v12 creators
        // must not be listed.
        let alice = format!(r#""{ALICE}":100"#);
        let power_levels = if room.version.privileged_creators {
            power_levels
                .replace(&format!("{alice},"), "")
                .replace(&alice, "")
        } else if power_levels.contains(ALICE) {
            power_levels.to_owned()
        } else if power_levels.contains(r#""users":{}"#) {
            power_levels.replace(r#""users":{}"#, &format!(r#""users":{{{alice}}}"#))
        } else if power_levels.contains(r#""users":{"#) {
            power_levels.replacen(r#""users":{"#, &format!(r#""users":{{{alice},"#), 1)
        } else {
            let rest = power_levels.trim().trim_start_matches('{');
            let sep = if rest.trim() == "}" { "" } else { "," };
            format!(r#"{{"users":{{{alice}}}{sep}{rest}"#)
        };
        room.send(state("m.room.power_levels", ALICE, &power_levels));
        room.send(state(
            "m.room.join_rules",
            ALICE,
            &format!(r#"{{"join_rule":"{join_rule}"}}"#),
        ));
        room
    }

    pub fn create(&self) -> &AuthEvent {
        &self.events[&self.create_id]
    }

    pub fn get(&self, id: &str) -> &AuthEvent {
        &self.events[id]
    }

    pub fn state_id(&self, event_type: &str, state_key: &str) -> Option<&str> {
        self.state
            .get(&(event_type.to_owned(), state_key.to_owned()))
            .map(String::as_str)
    }

    /// Builds an event from `spec`: prev event = the last event, auth events = the selection from the
    /// current state (unless given).
    pub fn build(&mut self, spec: Spec) -> AuthEvent {
        let draft = self.build_with(&spec, &[]);
        let auth: Vec<String> = match &spec.auth_events {
            Some(ids) => ids.clone(),
            None => auth_types_for_event(&draft)
                .into_iter()
                .filter_map(|(t, k)| self.state_id(t, &k).map(str::to_owned))
                .collect(),
        };
        self.build_with(&spec, &auth)
    }

    fn build_with(&mut self, spec: &Spec, auth: &[String]) -> AuthEvent {
        self.counter += 1;
        let v = self.version;
        let prev = spec.prev_events.clone().unwrap_or_else(|| {
            if self.last.is_empty() {
                Vec::new()
            } else {
                vec![self.last.clone()]
            }
        });
        let mut b =
            EventBuilder::with_json_content(v, &spec.event_type, &spec.sender, &spec.content)
                .prev_events(&prev)
                .auth_events(auth)
                .depth(self.depth + 1)
                .origin_server_ts(1_000 + self.counter as i64)
                .local_id(&format!("${}:{}", self.counter, server_name(&spec.sender)));
        if let Some(sk) = &spec.state_key {
            b = b.state_key(sk);
        }
        let is_v12_create = v.room_id_from_create && spec.event_type == "m.room.create";
        if !is_v12_create {
            b = b.room_id(spec.room_id.as_deref().unwrap_or(&self.room_id));
        }
        if let Some(r) = &spec.redacts {
            b = b.redacts(r);
        }
        let mut json = roomgraph::canonical_json::parse_object(
            b.build_json_line().as_bytes(),
            roomgraph::NumberPolicy::Lenient,
        )
        .expect("builder output parses")
        .into_owned();
        if !spec.extra_signers.is_empty()
            && let Some(JsonValue::Object(sigs)) = json.get_mut("signatures")
        {
            for server in &spec.extra_signers {
                let mut key = roomgraph::JsonObject::new();
                key.insert("ed25519:1".into(), JsonValue::String("c2ln".into()));
                sigs.insert(server.clone().into(), JsonValue::Object(key));
            }
        }
        let line = to_canonical_string(&JsonValue::Object(json));
        let pdu = roomgraph::Pdu::parse(line.as_bytes(), v)
            .expect("fixture event is a valid PDU")
            .into_owned();
        AuthEvent::new(pdu)
    }

    /// Stores `event` and applies it to the current state (no auth check).
    pub fn add(&mut self, event: AuthEvent) -> String {
        let id = event.event_id().to_owned();
        if let Some(sk) = &event.pdu.state_key {
            self.state.insert(
                (event.pdu.event_type.to_string(), sk.to_string()),
                id.clone(),
            );
        }
        self.last = id.clone();
        self.depth += 1;
        self.events.insert(id.clone(), event);
        id
    }

    /// Builds, stores and applies an event; panics if the full check rejects it (fixture setup).
    pub fn send(&mut self, spec: Spec) -> String {
        let event = self.build(spec);
        if let Err(e) = self.check_full(&event) {
            panic!(
                "fixture event {} {:?} rejected: {e}",
                event.pdu.event_type, event.pdu.state_key
            );
        }
        self.add(event)
    }

    /// Stores and applies an event without checking it (to set up unusual states).
    pub fn force(&mut self, spec: Spec) -> String {
        let event = self.build(spec);
        self.add(event)
    }

    pub fn current_state(&self) -> StateLookup<'_> {
        self.state
            .values()
            .filter(|id| !self.rejected.contains(id))
            .map(|id| &self.events[id])
            .collect()
    }

    /// State-dependent rules against the current state.
    pub fn check(&self, event: &AuthEvent) -> Result<(), AuthFailure> {
        check_state_dependent(event, &self.current_state(), self.create())
    }

    /// The receipt checks: the required signatures are present (on the whole PDU, as ingest checks
    /// them before detaching it), then receipt checks 4 and 5 — independent rules, dependent rules
    /// against the auth events, dependent rules against the current state.
    ///
    /// Every call also runs checks 4 and 5 on [`AuthEvent::detached`] copies of the event and of every
    /// event of the room (as ingest holds them) and asserts the same verdict, so each scenario of the
    /// suite is also a test that detaching keeps everything the rules read.
    pub fn check_full(&self, event: &AuthEvent) -> Result<(), AuthFailure> {
        check_signature_presence(&event.pdu)?;
        let full = self.receipt_checks(event, &self.events);
        let detached: HashMap<String, AuthEvent> = self
            .events
            .iter()
            .map(|(id, e)| (id.clone(), AuthEvent::detached(&e.pdu)))
            .collect();
        let lean = self.receipt_checks(&AuthEvent::detached(&event.pdu), &detached);
        assert_eq!(
            full,
            lean,
            "the detached copy of {} is judged differently",
            event.event_id()
        );
        full
    }

    fn receipt_checks(
        &self,
        event: &AuthEvent,
        events: &HashMap<String, AuthEvent>,
    ) -> Result<(), AuthFailure> {
        let auth: Vec<&AuthEvent> = event
            .pdu
            .auth_events
            .iter()
            .map(|id| {
                events
                    .get(&**id)
                    .unwrap_or_else(|| panic!("unknown auth event {id}"))
            })
            .collect();
        let room_create = &events[&self.create_id];
        let create = if event.is_create() {
            None
        } else {
            Some(room_create)
        };
        let rejected = |id: &str| self.rejected.iter().any(|r| r == id);
        check_state_independent(event, &auth, create, &rejected)?;
        if event.is_create() {
            return Ok(());
        }
        check_state_dependent(event, &AuthEventsState::new(&auth), room_create)?;
        let current: StateLookup<'_> = self
            .state
            .values()
            .filter(|id| !self.rejected.contains(id))
            .map(|id| &events[id])
            .collect();
        check_state_dependent(event, &current, room_create)
    }

    /// An `auth-check` request document for `event` against the current state.
    pub fn request(&self, event: &AuthEvent) -> String {
        let mut events: Vec<String> = self
            .events
            .values()
            .map(|e| to_canonical_string(&JsonValue::Object(e.pdu.json.clone())))
            .collect();
        if !self.events.contains_key(event.event_id()) {
            events.push(to_canonical_string(&JsonValue::Object(
                event.pdu.json.clone(),
            )));
        }
        let state: Vec<String> = self.state.values().map(|id| format!("{id:?}")).collect();
        let rejected: Vec<String> = self.rejected.iter().map(|id| format!("{id:?}")).collect();
        format!(
            r#"{{"room_version":"{}","events":[{}],"event":{:?},"state":[{}],"rejected":[{}]}}"#,
            self.version.id,
            events.join(","),
            event.event_id(),
            state.join(","),
            rejected.join(",")
        )
    }
}

/// ruma-state-res's view of our events.
pub mod ruma_adaptor {
    use super::*;
    use ruma::events::{StateEventType, TimelineEventType};
    use ruma::room_version_rules::AuthorizationRules;
    use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, UInt};
    use serde_json::value::RawValue;

    pub use crate::ruma_oracle::RumaPdu;

    /// Converts one of our events; `None` if ruma cannot represent it (e.g. an id ruma rejects).
    pub fn convert(event: &AuthEvent, rejected: bool) -> Option<RumaPdu> {
        let pdu = &event.pdu;
        let content = to_canonical_string(&JsonValue::Object(pdu.content().clone()));
        let room_id = if pdu.json.contains_key("room_id")
            || !pdu.version.room_id_from_create
            || !event.is_create()
        {
            Some(OwnedRoomId::try_from(&*pdu.room_id).ok()?)
        } else {
            None
        };
        Some(RumaPdu {
            event_id: OwnedEventId::try_from(&*pdu.event_id).ok()?,
            room_id,
            sender: OwnedUserId::try_from(&*pdu.sender).ok()?,
            origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::new(
                pdu.origin_server_ts.max(0) as u64
            )?),
            kind: TimelineEventType::from(&*pdu.event_type),
            content: RawValue::from_string(content).ok()?,
            state_key: pdu.state_key.as_deref().map(str::to_owned),
            prev_events: pdu
                .prev_events
                .iter()
                .map(|id| OwnedEventId::try_from(&**id).ok())
                .collect::<Option<_>>()?,
            auth_events: pdu
                .auth_events
                .iter()
                .map(|id| OwnedEventId::try_from(&**id).ok())
                .collect::<Option<_>>()?,
            redacts: match pdu.redacts.as_deref() {
                Some(id) => Some(OwnedEventId::try_from(id).ok()?),
                None => None,
            },
            rejected,
        })
    }

    pub fn rules(version: &RoomVersion) -> AuthorizationRules {
        ruma::RoomVersionId::try_from(version.id)
            .ok()
            .and_then(|v| v.rules())
            .expect("ruma knows every room version")
            .authorization
    }

    /// ruma's verdict on `event` in `room`: state-independent rules against its auth events, and the
    /// state-dependent rules against the current state of `room`.
    pub fn ruma_checks(room: &Room, event: &AuthEvent) -> (Result<(), String>, Result<(), String>) {
        let rules = rules(room.version);
        let by_id: HashMap<OwnedEventId, RumaPdu> = room
            .events
            .values()
            .filter_map(|e| convert(e, room.rejected.iter().any(|r| r == e.event_id())))
            .map(|e| (e.event_id.clone(), e))
            .collect();
        let Some(incoming) = convert(event, false) else {
            return (
                Err("not representable in ruma".into()),
                Err("not representable in ruma".into()),
            );
        };
        let fetch_event = |id: &EventId| by_id.get(id).cloned();
        let independent =
            ruma::state_res::check_state_independent_auth_rules(&rules, &incoming, fetch_event);
        let mut state: HashMap<(StateEventType, String), RumaPdu> = HashMap::new();
        for ((t, k), id) in &room.state {
            if room.rejected.contains(id) {
                continue;
            }
            if let Some(e) = OwnedEventId::try_from(id.as_str())
                .ok()
                .and_then(|id| by_id.get(&id))
            {
                state.insert((StateEventType::from(t.as_str()), k.clone()), e.clone());
            }
        }
        let create = by_id
            .get(&OwnedEventId::try_from(room.create_id.as_str()).expect("id"))
            .cloned();
        let fetch_state = |t: &StateEventType, k: &str| {
            if *t == StateEventType::RoomCreate && k.is_empty() {
                return create.clone();
            }
            state.get(&(t.clone(), k.to_owned())).cloned()
        };
        let dependent =
            ruma::state_res::check_state_dependent_auth_rules(&rules, &incoming, fetch_state);
        (independent, dependent)
    }
}
