//! `roomgraph demo`: the main job on the embedded default — the sample room shipped in `datasets/` is
//! ingested into a real RocksDB store (every PDU checked as on receipt over federation), then the room's
//! current state and forward extremities are printed.

use std::io::Write;
use std::path::PathBuf;

use roomgraph::ingest::{Engine, Summary};

use roomgraph::documents::state_json;

/// The sample room shipped in `datasets/`, the embedded default of `inspect` and `demo`.
pub(crate) const SAMPLE_ROOM: &str = include_str!("../../../datasets/sample-room-v11.ndjson");

/// Runs the demo in `db` (a fresh temporary directory, removed afterwards, when `None`).
pub fn run(db: Option<PathBuf>, out: &mut dyn Write) -> Result<(), String> {
    let (dir, temporary) = match db {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("roomgraph-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = run_in(&dir, out);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(dir: &std::path::Path, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let lines: Vec<&str> = SAMPLE_ROOM
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    writeln!(
        out,
        "roomgraph demo: ingesting the embedded sample room ({} PDUs, room version 11)",
        lines.len()
    )
    .map_err(io)?;
    writeln!(out, "store: {}", dir.display()).map_err(io)?;
    let mut engine = Engine::open(dir).map_err(|e| e.to_string())?;
    let mut outcomes = engine.ingest(&lines).map_err(|e| e.to_string())?;
    outcomes.extend(engine.finish().map_err(|e| e.to_string())?);
    let mut summary = Summary::default();
    summary.add(&outcomes);
    writeln!(
        out,
        "outcomes: accepted {}, rejected {}, soft-failed {}, pending {}, duplicates {}, invalid {}",
        summary.accepted,
        summary.rejected,
        summary.soft_failed,
        summary.pending,
        summary.duplicates,
        summary.invalid
    )
    .map_err(io)?;
    for o in outcomes.iter().filter(|o| o.reason.is_some()) {
        writeln!(
            out,
            "  line {}: {} {}",
            o.line.unwrap_or(0),
            o.outcome.as_str(),
            o.reason_text().as_deref().unwrap_or("")
        )
        .map_err(io)?;
    }
    let room = first_room_id(&lines).ok_or("the sample room has no room id")?;
    let state = engine.current_state(&room).map_err(|e| e.to_string())?;
    let extremities = engine.extremities(&room).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "forward extremities of {room}: {}",
        extremities.join(", ")
    )
    .map_err(io)?;
    writeln!(out, "current state of {room}:").map_err(io)?;
    let pretty = serde_json::to_string_pretty(&state_json(&state)).map_err(|e| e.to_string())?;
    writeln!(out, "{pretty}").map_err(io)?;
    Ok(())
}

fn first_room_id(lines: &[&str]) -> Option<String> {
    lines.iter().find_map(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()?
            .get("room_id")?
            .as_str()
            .map(str::to_owned)
    })
}
