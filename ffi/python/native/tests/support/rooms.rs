//! Generated rooms (`roomgraph_testkit::room_generator`) as JSON documents for the Python side
//! (`tests/differential.py`, `bench_synapse.py`): one file per room, `{"label", "room_version",
//! "room_id", "events": [PDU, ...], "rejected": [id, ...], "forks": [[[type, state_key, id], ...],
//! ...]}`, the events in the order the generator made them (auth events first).

use std::path::Path;

use roomgraph_core::RoomVersion;
use roomgraph_core::canonical_json::{JsonValue, to_canonical_string};
use roomgraph_testkit::room_generator::{GeneratedRoom, RoomConfig, generate};
use serde_json::{Value, json};

/// The room as one JSON document.
pub fn room_json(room: &GeneratedRoom, label: &str) -> String {
    let events: Vec<Value> = room
        .events
        .iter()
        .map(|p| {
            let text = to_canonical_string(&JsonValue::Object(p.json.clone()));
            serde_json::from_str(&text).expect("canonical JSON is JSON")
        })
        .collect();
    let rejected: Vec<&str> = room
        .events
        .iter()
        .zip(&room.rejected)
        .filter(|(_, r)| **r)
        .map(|(p, _)| &*p.event_id)
        .collect();
    let named = room.named_fork_states();
    let forks: Vec<Vec<[&str; 3]>> = named
        .iter()
        .map(|set| {
            set.iter()
                .map(|((t, k), id)| [t.as_str(), k.as_str(), id.as_str()])
                .collect()
        })
        .collect();
    json!({
        "label": label,
        "room_version": room.version.id,
        "room_id": room.room_id,
        "events": events,
        "rejected": rejected,
        "forks": forks,
    })
    .to_string()
}

/// The differential rooms: `seeds` small rooms (forks, power changes, memberships, rejected events)
/// of every room version, and with `heavy` a state-heavy contested room of each.
pub fn differential(seeds: u64, heavy: usize) -> Vec<(String, GeneratedRoom)> {
    let mut out = Vec::new();
    for version in RoomVersion::all() {
        for seed in 0..seeds {
            let label = format!("small-v{}-{seed}", version.id);
            out.push((label, generate(&RoomConfig::small(version, seed))));
        }
        if heavy > 0 {
            let label = format!("heavy-v{}-{heavy}", version.id);
            out.push((
                label,
                generate(&RoomConfig::state_heavy(version, 14, heavy)),
            ));
        }
    }
    out
}

/// The benchmark rooms of room version 10: contested rooms of about `sizes` events (long power
/// histories, three forks, one keeping events that fail auth).
pub fn bench(sizes: &[usize]) -> Vec<(String, GeneratedRoom)> {
    let version = RoomVersion::from_id("10").expect("room version 10 is known");
    sizes
        .iter()
        .map(|&n| {
            (
                format!("contested-{n}"),
                generate(&RoomConfig::contested(version, n)),
            )
        })
        .collect()
}

/// A big room of room version 10: `members` joined members, one power-levels change per 100 of them,
/// then two servers that fork and send 50 state events each.
pub fn large(members: usize) -> Vec<(String, GeneratedRoom)> {
    let version = RoomVersion::from_id("10").expect("room version 10 is known");
    let config = RoomConfig::large(version, 1, members, members / 100, 2, 50);
    vec![(format!("members-{members}"), generate(&config))]
}

/// Writes each room to `dir/<label>.json`.
pub fn write_all(dir: &Path, rooms: &[(String, GeneratedRoom)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (label, room) in rooms {
        std::fs::write(dir.join(format!("{label}.json")), room_json(room, label))?;
    }
    Ok(())
}
