//! Host-driven resolution through the C ABI against stateless resolution through the C ABI, on the
//! differential rooms of every room version (forks, power changes, rejected events; the rooms the
//! core's `Session` and the ruma suites use): a host that answers each `need` from its own events gets
//! exactly what `roomgraph_resolve_json` answers for all the events at once, whether it begins with
//! the state sets, the full conflicted set and base state, or the state sets and their auth
//! difference. The functions are called
//! as a C host calls them (raw pointers, buffers freed with `roomgraph_buffer_free`).

use std::collections::{BTreeMap, HashMap, HashSet};

use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::room_version::RoomVersion;
use roomgraph_ffi::{
    roomgraph_buffer, roomgraph_buffer_free, roomgraph_resolve_begin, roomgraph_resolve_free,
    roomgraph_resolve_json, roomgraph_resolve_session, roomgraph_resolve_supply, roomgraph_result,
};
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};
use serde_json::{Value, json};

fn rooms() -> Vec<GeneratedRoom> {
    let mut out = Vec::new();
    for version in RoomVersion::all() {
        for seed in 0..3 {
            out.push(generate(&RoomConfig::small(version, seed)));
        }
    }
    for version in ["10", "12"] {
        let version = RoomVersion::from_id(version).expect("known");
        out.push(generate(&RoomConfig::state_heavy(version, 14, 400)));
    }
    out
}

/// Takes the buffer's document and frees the buffer.
fn take(buf: &mut roomgraph_buffer) -> Value {
    // SAFETY: `buf` was written by roomgraph on success: `ptr` valid for `len` bytes (or null).
    let bytes = if buf.ptr.is_null() {
        Vec::new()
    } else {
        unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec()
    };
    // SAFETY: a buffer roomgraph gave, freed once.
    unsafe { roomgraph_buffer_free(buf) };
    serde_json::from_slice(&bytes).expect("roomgraph answers JSON")
}

fn empty() -> roomgraph_buffer {
    roomgraph_buffer {
        ptr: std::ptr::null_mut(),
        len: 0,
    }
}

struct Host<'a> {
    room: &'a GeneratedRoom,
    pdus: HashMap<&'a str, String>,
    rejected: HashSet<&'a str>,
}

impl<'a> Host<'a> {
    fn new(room: &'a GeneratedRoom) -> Host<'a> {
        let pdus = room
            .events
            .iter()
            .map(|p| {
                let json = to_canonical_string(&JsonValue::Object(p.json.clone()));
                (&*p.event_id, json)
            })
            .collect();
        let rejected = room
            .events
            .iter()
            .zip(&room.rejected)
            .filter(|(_, r)| **r)
            .map(|(p, _)| &*p.event_id)
            .collect();
        Host {
            room,
            pdus,
            rejected,
        }
    }

    /// `{"events": [...], "rejected": [...]}` members for `ids` (unknown ids are left out).
    fn ship<'i>(&self, ids: impl Iterator<Item = &'i str>) -> (String, Vec<&'a str>) {
        let mut events = Vec::new();
        let mut flagged = Vec::new();
        for id in ids {
            if let Some((&key, pdu)) = self.pdus.get_key_value(id) {
                events.push(pdu.as_str());
                if self.rejected.contains(key) {
                    flagged.push(key);
                }
            }
        }
        (format!("[{}]", events.join(",")), flagged)
    }

    /// The whole request, as `roomgraph resolve` takes it, rejected events flagged.
    fn request(&self) -> String {
        let all = self.room.events.iter().map(|p| &*p.event_id);
        let (events, rejected) = self.ship(all);
        format!(
            r#"{{"room_version":{},"state_sets":{},"events":{events},"rejected":{}}}"#,
            json!(self.room.version.id),
            json!(self.room.fork_states),
            json!(rejected)
        )
    }

    fn stateless(&self) -> Value {
        let request = self.request();
        let mut out = empty();
        // SAFETY: `request` is valid for its length; `out` is a valid buffer to write.
        let r = unsafe { roomgraph_resolve_json(request.as_ptr(), request.len(), &mut out) };
        assert_eq!(r, roomgraph_result::ROOMGRAPH_OK);
        take(&mut out)
    }

    /// Begins with the first `up_front` events shipped, then answers every `need`; returns the
    /// state and the number of rounds.
    fn hosted(&self, up_front: usize) -> (Value, usize) {
        let head = format!(r#""state_sets":{}"#, json!(self.room.fork_states));
        self.hosted_from(&head, up_front)
    }

    /// [`Host::hosted`] beginning with `head` (the document's members that say what to resolve).
    fn hosted_from(&self, head: &str, up_front: usize) -> (Value, usize) {
        let first: Vec<&str> = self
            .room
            .events
            .iter()
            .take(up_front)
            .map(|p| &*p.event_id)
            .collect();
        let (events, rejected) = self.ship(first.iter().copied());
        let begin = format!(
            r#"{{"room_version":{},{head},"events":{events},"rejected":{}}}"#,
            json!(self.room.version.id),
            json!(rejected)
        );
        let mut session: *mut roomgraph_resolve_session = std::ptr::null_mut();
        let mut out = empty();
        // SAFETY: valid request bytes; `session` and `out` valid for writes.
        let r =
            unsafe { roomgraph_resolve_begin(begin.as_ptr(), begin.len(), &mut session, &mut out) };
        assert_eq!(r, roomgraph_result::ROOMGRAPH_OK);
        assert!(!session.is_null());
        let mut step = take(&mut out);
        let mut rounds = 0;
        let mut asked: HashSet<String> = HashSet::new();
        while let Some(need) = step.get("need") {
            rounds += 1;
            let ids: Vec<&str> = need["events"]
                .as_array()
                .expect("need names ids")
                .iter()
                .map(|id| id.as_str().expect("an id"))
                .collect();
            assert!(!ids.is_empty(), "a need names something");
            for id in &ids {
                assert!(asked.insert((*id).to_owned()), "{id} asked twice");
                assert!(!first.contains(id), "{id} was shipped up front");
            }
            let (events, rejected) = self.ship(ids.into_iter());
            let supply = format!(r#"{{"events":{events},"rejected":{}}}"#, json!(rejected));
            // SAFETY: `session` from begin, not freed; valid supply bytes; `out` valid.
            let r = unsafe {
                roomgraph_resolve_supply(session, supply.as_ptr(), supply.len(), &mut out)
            };
            assert_eq!(r, roomgraph_result::ROOMGRAPH_OK);
            step = take(&mut out);
        }
        // SAFETY: from begin, freed once.
        unsafe { roomgraph_resolve_free(session) };
        (step["done"].clone(), rounds)
    }
}

#[test]
fn host_driven_resolution_through_c_matches_stateless_resolution_through_c() {
    let mut sessions = 0;
    let mut with_rejected = 0;
    for room in rooms() {
        let host = Host::new(&room);
        let expected = host.stateless();
        assert!(expected.is_object(), "{expected}");
        with_rejected += usize::from(!host.rejected.is_empty());
        for up_front in [0, room.events.len() / 2, room.events.len()] {
            let (state, rounds) = host.hosted(up_front);
            assert_eq!(
                state, expected,
                "v{} {} with {up_front} events up front",
                room.version.id, room.room_id
            );
            if up_front == room.events.len() {
                assert_eq!(rounds, 0, "everything shipped: nothing to ask");
            } else {
                assert!(rounds >= 1);
            }
            sessions += 1;
        }
        if room.version.id == "1" {
            continue;
        }
        // A host with its own auth-chain index: from the full conflicted set and the unconflicted
        // state, or from the state sets and their auth difference.
        let (unconflicted, full) = room.conflicted_set();
        let mut base: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (t, k, id) in &unconflicted {
            base.entry(t.as_str())
                .or_default()
                .insert(k.as_str(), id.as_str());
        }
        let heads = [
            format!(
                r#""full_conflicted_set":{},"base_state":{}"#,
                json!(full),
                json!(base)
            ),
            format!(
                r#""state_sets":{},"auth_difference":{}"#,
                json!(room.fork_states),
                json!(full)
            ),
        ];
        for head in heads {
            let (state, _) = host.hosted_from(&head, 0);
            assert_eq!(
                state, expected,
                "v{} {} begun with {head}",
                room.version.id, room.room_id
            );
            sessions += 1;
        }
    }
    assert!(sessions >= 150, "{sessions} sessions");
    assert!(
        with_rejected >= 10,
        "{with_rejected} rooms with rejected events"
    );
}
