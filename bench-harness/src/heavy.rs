//! `roomgraph-bench heavy`: ingest of a contested, state-heavy room (issue 14): room version 12, ~7 000
//! events from [`RoomConfig::state_heavy`], ~92 % state events, ≥ 40 % merges, ≥ 700 power-levels
//! changes, membership churn, ≥ 40 % rejected by the auth rules. Each phase runs in its own process
//! (generate, parse+hash, ingest); the report compares ingest's CPU per event with parse+hash's over
//! the same file and gives the bytes written per event.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{RoomConfig, generate};

use crate::process::{self, ChildRun};

#[derive(clap::Args, Clone)]
pub struct HeavyRoom {
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
    /// Events in the room (approximately: the servers drop actions that fail auth on their view).
    #[arg(long, default_value_t = 7_000)]
    pub events: usize,
}

#[derive(clap::Args)]
pub struct HeavyArgs {
    #[command(flatten)]
    pub room: HeavyRoom,
    /// Working directory (room file and store); a temporary one under /tmp by default. A room file
    /// already there is reused.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `roomgraph-bench` binary that runs the ingest phase (`ingest-file`), e.g. an older build to
    /// compare with; this one by default.
    #[arg(long)]
    pub ingest_bin: Option<PathBuf>,
    /// Passes of parse+hash over the file (the room is small: one pass takes milliseconds).
    #[arg(long, default_value_t = 20)]
    pub passes: usize,
    #[arg(long, default_value_t = crate::DEFAULT_BATCH_LINES)]
    pub batch_lines: usize,
}

fn version() -> Result<&'static RoomVersion, String> {
    RoomVersion::from_id("12").map_err(|e| e.to_string())
}

/// Writes the room as NDJSON (generation order: auth and prev events first) and prints its shape.
pub fn generate_file(out: &Path, room: &HeavyRoom) -> Result<(), String> {
    let start = std::time::Instant::now();
    let generated = generate(&RoomConfig::state_heavy(version()?, room.seed, room.events));
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut f = BufWriter::new(file);
    for line in generated.ndjson_lines() {
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    f.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())?;
    let s = generated.shape();
    println!(
        "{}",
        serde_json::json!({
            "room_id": generated.room_id, "events": s.events,
            "state_events": s.state_events, "state_pct": s.percent(s.state_events),
            "merges": s.merges, "merges_pct": s.percent(s.merges),
            "power_levels": s.power_levels, "power_levels_accepted": s.power_levels_accepted,
            "joins": s.joins, "leaves": s.leaves, "bans": s.bans, "invites": s.invites,
            "display_names": s.display_names,
            "generator_rejected": s.rejected, "generator_rejected_pct": s.percent(s.rejected),
            "seconds": start.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// Generates (or reuses) the room file, then measures parse+hash and ingest, each in a child.
pub fn drive(args: &HeavyArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("roomgraph-heavy-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!(
        "heavy-{}-{}.ndjson",
        args.room.seed, args.room.events
    ));
    let db = dir.join("store");
    if db.exists() {
        std::fs::remove_dir_all(&db).map_err(|e| e.to_string())?;
    }
    let file_s = file.to_str().ok_or("non-UTF-8 path")?;
    let db_s = db.to_str().ok_or("non-UTF-8 path")?;
    let (seed, events) = (args.room.seed.to_string(), args.room.events.to_string());
    let batch = args.batch_lines.to_string();
    let shape = if file.exists() {
        // The shape is the generator's; a reused file is not regenerated to print it.
        serde_json::json!({"reused": file_s})
    } else {
        let args = [
            "generate-heavy",
            "--out",
            file_s,
            "--seed",
            &seed,
            "--events",
            &events,
        ];
        process::run(&exe, &args)?.report
    };
    eprintln!("room: {shape}");
    let passes = args.passes.max(1).to_string();
    let ph = process::run(
        &exe,
        &[
            "parse-hash",
            file_s,
            "--room-version",
            "12",
            "--passes",
            &passes,
            "--batch-lines",
            &batch,
        ],
    )?;
    eprintln!("parse+hash: {}", ph.report);
    let ingest_exe = args.ingest_bin.clone().unwrap_or_else(|| exe.clone());
    let ing = process::run(
        &ingest_exe,
        &["ingest-file", "--db", db_s, file_s, "--batch-lines", &batch],
    )?;
    eprintln!("ingest: {}", ing.report);
    println!("{}", report(&shape, &ph, &ing, args.passes.max(1)));
    Ok(())
}

/// The figures, from the children's reports and what the parent measured of them. CPU per event is
/// the child's own count over its timed section where it reports one (`cpu_seconds`), else the whole
/// child's (older builds; start-up included).
fn report(shape: &serde_json::Value, ph: &ChildRun, ing: &ChildRun, passes: usize) -> String {
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let events = f(&ing.report, "events").max(1.0);
    let cpu = |run: &ChildRun| {
        run.report["cpu_seconds"]
            .as_f64()
            .unwrap_or(run.cpu_seconds)
    };
    let ph_cpu_per_event = cpu(ph) / (events * passes as f64);
    let ing_cpu_per_event = cpu(ing) / events;
    let rejected = f(&ing.report, "rejected");
    serde_json::json!({
        "room": shape,
        "parse_hash": ph.report,
        "ingest": ing.report,
        "ingest_events_per_s": f(&ing.report, "events_per_s"),
        "parse_hash_events_per_s": f(&ph.report, "events_per_s"),
        "ingest_cpu_us_per_event": ing_cpu_per_event * 1e6,
        "parse_hash_cpu_us_per_event": ph_cpu_per_event * 1e6,
        "ingest_vs_parse_hash_cpu": ing_cpu_per_event / ph_cpu_per_event.max(1e-12),
        "ingest_child_cpu_seconds": ing.cpu_seconds,
        "ingest_peak_rss_bytes": ing.report["peak_rss_bytes"],
        "store_bytes": ing.report["store_bytes"],
        "ingest_write_bytes": ing.write_bytes,
        "ingest_cancelled_write_bytes": ing.cancelled_write_bytes,
        "write_bytes_per_event": ing.write_bytes as f64 / events,
        "rejected_pct": 100.0 * rejected / events,
    })
    .to_string()
}
