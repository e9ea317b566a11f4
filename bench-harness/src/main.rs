//! `roomgraph-bench`: benchmarks that need more than criterion gives (whole-pipeline runs, peak RSS,
//! store size). Each measured phase runs in its own process so its peak RSS is its own.
//!
//! `roomgraph-bench ingest` generates a trace (≥ 1 000 000 events over ≥ 100 rooms, one room with
//! ≥ 50 000 members and frequent forks), times a parse+hash-only pass over it (the physical limit: PDU
//! parsing, event ids and content hashes, in parallel) and then `Engine::ingest` with per-batch durable
//! commits, and prints events/s, peak RSS, the store size on disk and the bytes written per event.
//! `roomgraph-bench heavy` does the same for one contested, state-heavy room ([`heavy`]).

mod heavy;
mod process;
mod replay;

mod join;
mod socket;

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use rayon::prelude::*;
use roomgraph::ingest::{Engine, EngineOptions, Summary};
use roomgraph::pdu::Pdu;
use roomgraph::room_version::RoomVersion;
use roomgraph_cli::ndjson::LineBatches;
use roomgraph_testkit::trace::{TraceSpec, generate};

/// Lines per batch (per atomic, fsynced commit). 32 768 rather than the CLI's 8 192: the per-batch work
/// (fork/join of the room jobs, sorting and writing the batch, one fsync) is amortised over more events
/// — 5–9 % more events/s on the 1 M trace (docs/BENCHMARKS.md § ingest); every batch stays durable
/// before its outcomes count.
pub(crate) const DEFAULT_BATCH_LINES: usize = 32_768;

/// The same allocator as the `roomgraph` binary, so the harness measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use roomgraph::store::{StoreOptions, SyncPolicy};

use crate::process::peak_rss_bytes;

#[derive(Parser)]
#[command(name = "roomgraph-bench", about = "roomgraph benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct TraceArgs {
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    #[arg(long, default_value_t = 50_000)]
    big_members: usize,
    /// Percent of all events that go to the big room.
    #[arg(long, default_value_t = 15)]
    big_share: u32,
    /// A fork (two concurrent events, then a merge) every this many events of a room.
    #[arg(long, default_value_t = 20)]
    fork_every: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate, then measure parse+hash and ingest (each in a child process); print the report.
    Ingest {
        /// Working directory (trace file and store); a temporary one under /tmp by default.
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        trace: TraceArgs,
        #[arg(long, default_value_t = DEFAULT_BATCH_LINES)]
        batch_lines: usize,
    },
    /// Write a generated trace as NDJSON.
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// Generate the state-heavy room, then measure parse+hash and ingest of it (each in a child
    /// process); print the report.
    Heavy(heavy::HeavyArgs),
    /// Write the state-heavy room as NDJSON and print its shape.
    GenerateHeavy {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        room: heavy::HeavyRoom,
    },
    /// Parse + hash every line (no store): the reference rate.
    ParseHash {
        file: PathBuf,
        #[arg(long, default_value_t = DEFAULT_BATCH_LINES)]
        batch_lines: usize,
        /// The room version the lines are parsed as.
        #[arg(long, default_value = "11")]
        room_version: String,
        /// Passes over the file (rates and CPU are per event per pass).
        #[arg(long, default_value_t = 1)]
        passes: usize,
    },
    /// Ingest a file into a store with per-batch durable commits.
    IngestFile {
        #[arg(long)]
        db: PathBuf,
        file: PathBuf,
        #[arg(long, default_value_t = DEFAULT_BATCH_LINES)]
        batch_lines: usize,
        /// Do not fsync each batch (WAL only).
        #[arg(long)]
        no_sync: bool,
        /// Resolve every fork both ways (partial and full state sets) and compare: a correctness run,
        /// not a timing one.
        #[arg(long)]
        check_resolutions: bool,
    },
    /// Ingest one file once per batch size, each into a fresh store, and check that every run decides
    /// the same: per-line outcomes, and each room's forward extremities and current state (blake3
    /// digests). Exits non-zero on any difference.
    Batches {
        file: PathBuf,
        /// Batch sizes in lines, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64, 8192])]
        sizes: Vec<usize>,
        /// Working directory for the stores; a temporary one under /tmp by default.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Join a huge room: a send_join response like Matrix HQ's stored by roomgraph and by a
    /// ruma-state-res path, side by side (`join.rs`).
    Join(join::JoinArgs),
    /// `roomgraph serve` over its Unix socket against the library in-process: requests/s and
    /// p50/p99 latency for resolve, auth_check and ingest at 1–32 clients (`socket.rs`).
    Socket(socket::SocketArgs),
    /// Replay recorded federation traces (datasets/README.md, "Trace format") into fresh stores,
    /// rooms and servers in parallel, and check the conclusions against the recording servers'
    /// (`replay.rs`).
    Replay(replay::ReplayArgs),
}

fn main() {
    roomgraph_cli::allocator::keep_freed_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Ingest {
            dir,
            trace,
            batch_lines,
        } => drive(dir, &trace, batch_lines),
        Cmd::Generate { out, trace } => generate_file(&out, &trace),
        Cmd::Heavy(args) => heavy::drive(&args),
        Cmd::GenerateHeavy { out, room } => heavy::generate_file(&out, &room),
        Cmd::ParseHash {
            file,
            batch_lines,
            room_version,
            passes,
        } => parse_hash(&file, batch_lines, &room_version, passes),
        Cmd::IngestFile {
            db,
            file,
            batch_lines,
            no_sync,
            check_resolutions,
        } => ingest_file(&db, &file, batch_lines, no_sync, check_resolutions),
        Cmd::Batches { file, sizes, dir } => batches(&file, &sizes, dir),
        Cmd::Join(args) => join::run(&args),
        Cmd::Socket(args) => socket::run(&args),
        Cmd::Replay(args) => replay::run(&args),
    };
    if let Err(e) = result {
        eprintln!("roomgraph-bench: {e}");
        std::process::exit(2);
    }
}

fn spec(t: &TraceArgs) -> TraceSpec {
    TraceSpec {
        rooms: t.rooms,
        events: t.events,
        big_room_members: t.big_members,
        big_room_share: t.big_share,
        fork_every: t.fork_every,
        bad_every: 200,
        open_fork_at_end: true,
        versions: vec![RoomVersion::from_id("11").unwrap_or(&RoomVersion::all()[10])],
        seed: t.seed,
    }
}

fn generate_file(out: &Path, t: &TraceArgs) -> Result<(), String> {
    let start = Instant::now();
    let trace = generate(&spec(t));
    let mut f =
        BufWriter::new(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?);
    for l in &trace.lines {
        writeln!(f, "{l}").map_err(|e| e.to_string())?;
    }
    // Written through to disk here, so the kernel's writeback of the trace does not compete with the
    // fsyncs of the timed ingest that follows (it cost that run 10–15 %).
    f.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())?;
    let big = trace
        .lines
        .iter()
        .filter(|l| l.contains(&format!("\"{}\"", trace.rooms[0])))
        .count();
    println!(
        "{}",
        serde_json::json!({"events": trace.lines.len(), "rooms": trace.rooms.len(), "big_room_events": big,
            "merges": trace.merges.len(), "seconds": start.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// `file` in groups of `batch_lines` non-blank lines.
fn line_batches(
    file: &Path,
    batch_lines: usize,
) -> Result<LineBatches<BufReader<std::fs::File>>, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(LineBatches::new(
        BufReader::with_capacity(1 << 20, f),
        batch_lines,
    ))
}

fn parse_hash(
    file: &Path,
    batch_lines: usize,
    room_version: &str,
    passes: usize,
) -> Result<(), String> {
    let version = RoomVersion::from_id(room_version).map_err(|e| e.to_string())?;
    let passes = passes.max(1);
    let (start, cpu) = (Instant::now(), process::self_cpu_seconds());
    let mut ok = 0u64;
    let mut events = 0u64;
    for _ in 0..passes {
        let mut batches = line_batches(file, batch_lines)?;
        for lines in &mut batches {
            events += lines.len() as u64;
            ok += lines
                .par_iter()
                .filter(|(_, l)| {
                    let l = l.strip_suffix(b"\n").unwrap_or(l);
                    Pdu::parse(l, version)
                        .map(|p| p.content_hash_matches())
                        .unwrap_or(false)
                })
                .count() as u64;
        }
        if let Some(e) = batches.take_error() {
            return Err(format!("{}: {e}", file.display()));
        }
    }
    let (secs, cpu) = (
        start.elapsed().as_secs_f64(),
        process::self_cpu_seconds() - cpu,
    );
    let per_pass = events / passes as u64;
    println!(
        "{}",
        serde_json::json!({"events": per_pass, "passes": passes, "hash_ok": ok / passes as u64,
            "seconds": secs, "cpu_seconds": cpu, "events_per_s": events as f64 / secs,
            "peak_rss_bytes": peak_rss_bytes()})
    );
    Ok(())
}

fn ingest_file(
    db: &Path,
    file: &Path,
    batch_lines: usize,
    no_sync: bool,
    check_resolutions: bool,
) -> Result<(), String> {
    let options = EngineOptions {
        store: StoreOptions {
            sync: if no_sync {
                SyncPolicy::Never
            } else {
                SyncPolicy::PerBatch
            },
            ..StoreOptions::default()
        },
        check_resolutions,
        ..EngineOptions::default()
    };
    let (start, cpu) = (Instant::now(), process::self_cpu_seconds());
    let mut engine = Engine::open_with(db, options).map_err(|e| e.to_string())?;
    let mut summary = Summary::default();
    let mut batches = 0u64;
    let mut events = 0u64;
    let mut input = line_batches(file, batch_lines)?.read_ahead();
    let counted = input.by_ref().inspect(|b| events += b.len() as u64);
    engine
        .ingest_stream(counted, |o| {
            summary.add(&o);
            batches += 1;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = input.take_error() {
        return Err(format!("{}: {e}", file.display()));
    }
    let o = engine.finish().map_err(|e| e.to_string())?;
    summary.add(&o);
    let (secs, cpu) = (
        start.elapsed().as_secs_f64(),
        process::self_cpu_seconds() - cpu,
    );
    let size = engine.store().size_on_disk();
    let resolutions = engine.resolution_stats();
    println!(
        "{}",
        serde_json::json!({"events": events, "seconds": secs, "cpu_seconds": cpu, "events_per_s": events as f64 / secs,
            "batches": batches, "sync_per_batch": !no_sync, "peak_rss_bytes": peak_rss_bytes(), "store_bytes": size,
            "accepted": summary.accepted, "rejected": summary.rejected, "soft_failed": summary.soft_failed,
            "pending": summary.pending, "duplicates": summary.duplicates, "invalid": summary.invalid,
            "resolutions_partial": resolutions.partial, "resolutions_full": resolutions.full})
    );
    engine.close_for_exit();
    Ok(())
}

/// What one run decided, as digests: the outcome lines in order, and the rooms' extremities and
/// current states.
fn decisions(db: &Path, file: &Path, batch_lines: usize) -> Result<serde_json::Value, String> {
    let options = EngineOptions {
        store: StoreOptions {
            // Each batch still goes through its own commit; durability is not what is compared.
            sync: SyncPolicy::Never,
            ..StoreOptions::default()
        },
        ..EngineOptions::default()
    };
    let start = Instant::now();
    let mut engine = Engine::open_with(db, options).map_err(|e| e.to_string())?;
    let mut outcomes = blake3::Hasher::new();
    let mut summary = Summary::default();
    let mut digest = |o: &[roomgraph::ingest::EventOutcome]| {
        summary.add(o);
        for o in o {
            let line = serde_json::json!([
                o.line,
                o.event_id,
                o.outcome.as_str(),
                o.reason_text(),
                o.deoutliered
            ]);
            outcomes.update(line.to_string().as_bytes());
            outcomes.update(b"\n");
        }
    };
    let mut input = line_batches(file, batch_lines)?.read_ahead();
    engine
        .ingest_stream(input.by_ref(), |o| {
            digest(&o);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = input.take_error() {
        return Err(format!("{}: {e}", file.display()));
    }
    digest(&engine.finish().map_err(|e| e.to_string())?);
    let secs = start.elapsed().as_secs_f64();
    let mut rooms = blake3::Hasher::new();
    let room_ids = engine.rooms().map_err(|e| e.to_string())?;
    for room in &room_ids {
        let ext = engine.extremities(room).map_err(|e| e.to_string())?;
        let state = engine.current_state(room).map_err(|e| e.to_string())?;
        let state: Vec<_> = state.into_iter().collect();
        rooms.update(serde_json::json!([room, ext, state]).to_string().as_bytes());
    }
    engine.close_for_exit();
    Ok(serde_json::json!({
        "batch_lines": batch_lines, "seconds": secs, "rooms": room_ids.len(),
        "accepted": summary.accepted, "rejected": summary.rejected, "soft_failed": summary.soft_failed,
        "outliers": summary.outliers, "deoutliered": summary.deoutliered, "pending": summary.pending,
        "outcomes_blake3": outcomes.finalize().to_hex().to_string(),
        "rooms_blake3": rooms.finalize().to_hex().to_string(),
    }))
}

fn batches(file: &Path, sizes: &[usize], dir: Option<PathBuf>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("roomgraph-batches-{}", std::process::id()))
    });
    let mut runs = Vec::new();
    for &size in sizes {
        let db = dir.join(format!("store-{size}"));
        if db.exists() {
            std::fs::remove_dir_all(&db).map_err(|e| e.to_string())?;
        }
        let run = decisions(&db, file, size.max(1))?;
        eprintln!("batches of {size}: {run}");
        std::fs::remove_dir_all(&db).map_err(|e| e.to_string())?;
        runs.push(run);
    }
    let key = |r: &serde_json::Value| (r["outcomes_blake3"].clone(), r["rooms_blake3"].clone());
    let identical = runs.windows(2).all(|w| key(&w[0]) == key(&w[1]));
    println!(
        "{}",
        serde_json::json!({"identical": identical, "runs": runs})
    );
    if identical {
        Ok(())
    } else {
        Err("the batch sizes decided differently".into())
    }
}

/// Runs this binary with `args` (see [`process::run`]).
fn child(args: &[&str]) -> Result<process::ChildRun, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    process::run(&exe, args)
}

fn drive(dir: Option<PathBuf>, t: &TraceArgs, batch_lines: usize) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("roomgraph-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let trace = dir.join("trace.ndjson");
    let db = dir.join("store");
    if db.exists() {
        std::fs::remove_dir_all(&db).map_err(|e| e.to_string())?;
    }
    let (e, r, m, s, f, seed, b) = (
        t.events.to_string(),
        t.rooms.to_string(),
        t.big_members.to_string(),
        t.big_share.to_string(),
        t.fork_every.to_string(),
        t.seed.to_string(),
        batch_lines.to_string(),
    );
    let trace_s = trace.to_str().ok_or("non-UTF-8 path")?;
    let db_s = db.to_str().ok_or("non-UTF-8 path")?;
    let generated = if trace.exists() {
        serde_json::json!({"reused": trace_s})
    } else {
        child(&[
            "generate",
            "--out",
            trace_s,
            "--events",
            &e,
            "--rooms",
            &r,
            "--big-members",
            &m,
            "--big-share",
            &s,
            "--fork-every",
            &f,
            "--seed",
            &seed,
        ])?
        .report
    };
    eprintln!("generated: {generated}");
    let ph = child(&["parse-hash", trace_s, "--batch-lines", &b])?.report;
    eprintln!("parse+hash: {ph}");
    let run = child(&["ingest-file", "--db", db_s, trace_s, "--batch-lines", &b])?;
    let ing = &run.report;
    eprintln!("ingest: {ing}");
    let ratio =
        ing["events_per_s"].as_f64().unwrap_or(0.0) / ph["events_per_s"].as_f64().unwrap_or(1.0);
    let events = ing["events"].as_f64().unwrap_or(0.0).max(1.0);
    println!(
        "{}",
        serde_json::json!({"trace": generated, "parse_hash": ph, "ingest": ing, "ingest_vs_parse_hash": ratio,
            "ingest_write_bytes": run.write_bytes, "ingest_cancelled_write_bytes": run.cancelled_write_bytes,
            "write_bytes_per_event": run.write_bytes as f64 / events})
    );
    Ok(())
}
