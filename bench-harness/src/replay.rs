//! `roomgraph-bench replay TRACE...`: replays recorded federation traces (the trace format of
//! `datasets/README.md`, written by `scripts/record-trace` and `scripts/synapse-export`) and checks
//! roomgraph's conclusions against the recording server's.
//!
//! Every (room, server) pair of a trace is replayed into a fresh store of its own, pairs in parallel
//! (one rayon task each): that server's PDUs in its persistence order, the lines it stored as outliers
//! through [`Engine::ingest_outliers`], the others through [`Engine::ingest`] in batches of
//! consecutive lines (at most `--batch` lines, never mixing outliers and timeline events), with its
//! state hints given up front. Then roomgraph's current state, forward extremities, rejected and
//! soft-failed events and the sampled states before events are compared with `<server>.expected.json`.
//!
//! Latency is per batch: each event is charged the wall time of the call that took its batch (a
//! durable commit included). The figures exclude reading and decompressing the trace files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use hdrhistogram::Histogram;
use rayon::prelude::*;
use roomgraph::ingest::{Engine, EngineOptions, Outcome, Position, StateHint, StateMap};
use roomgraph::store::{StoreOptions, SyncPolicy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::process::peak_rss_bytes;

#[derive(Args)]
pub struct ReplayArgs {
    /// Trace directories (each holding a `manifest.json`).
    #[arg(required = true)]
    traces: Vec<PathBuf>,
    /// Working directory for the stores (one per room and server, removed after); a fresh directory
    /// under the system's temporary directory by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Most lines per ingest call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Do not compare with the recorded conclusions (and never exit non-zero for a difference).
    #[arg(long)]
    no_verify: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Commit without fsync (the figures then exclude durability).
    #[arg(long)]
    no_sync: bool,
}

#[derive(Deserialize)]
struct Manifest {
    format: String,
    format_version: u64,
    #[serde(default)]
    compression: Option<String>,
    rooms: Vec<ManifestRoom>,
    servers: Vec<ManifestServer>,
}

#[derive(Deserialize)]
struct ManifestRoom {
    room_id: String,
    dir: String,
    room_version: String,
    servers: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct ManifestServer {
    name: String,
    file: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    outlier: bool,
}

#[derive(Deserialize)]
struct Expected {
    room_id: String,
    current_state: BTreeMap<String, BTreeMap<String, String>>,
    forward_extremities: Vec<String>,
    #[serde(default)]
    rejected: Vec<RejectedEntry>,
    #[serde(default)]
    soft_failed: Vec<String>,
    #[serde(default)]
    state_before_samples: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
struct RejectedEntry {
    event_id: String,
}

/// One (room, server) pair to replay.
struct Job {
    trace: PathBuf,
    room_id: String,
    room_version: String,
    server: String,
    /// The files, without their extensions: `<trace>/<room>/<server>`.
    stem: PathBuf,
}

/// What one replay found.
struct Replayed {
    events: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
    checks: BTreeMap<&'static str, Check>,
    store_bytes: u64,
}

/// One comparison: how many items were compared and which differed (a few named).
#[derive(Default)]
struct Check {
    compared: usize,
    differing: usize,
    examples: Vec<String>,
}

impl Check {
    fn record(&mut self, same: bool, what: impl FnOnce() -> String) {
        self.compared += 1;
        if !same {
            self.differing += 1;
            if self.examples.len() < 5 {
                self.examples.push(what());
            }
        }
    }
}

pub fn run(args: &ReplayArgs) -> Result<(), String> {
    let mut jobs = Vec::new();
    for trace in &args.traces {
        jobs.extend(jobs_of(trace)?);
    }
    if jobs.is_empty() {
        return Err("the traces hold no room".into());
    }
    let work = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("roomgraph-replay-{}", std::process::id())),
    };
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    eprintln!(
        "replaying {} (room, server) pairs of {} trace(s) on {} threads",
        jobs.len(),
        args.traces.len(),
        rayon::current_num_threads()
    );
    let start = Instant::now();
    let results: Vec<(&Job, Result<Replayed, String>)> = jobs
        .par_iter()
        .enumerate()
        .map(|(i, job)| {
            let db = work.join(format!("store-{i}"));
            let result = replay_one(job, &db, args);
            let _ = fs::remove_dir_all(&db);
            (job, result)
        })
        .collect();
    let wall = start.elapsed().as_secs_f64();
    if args.dir.is_none() {
        let _ = fs::remove_dir_all(&work);
    }

    let mut histogram = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut events = 0usize;
    let mut rows = Vec::new();
    let mut disagreements = 0usize;
    let mut failures = 0usize;
    println!(
        "| room | server | version | events | events/s | current state | extremities | rejected | soft-failed | states before |"
    );
    println!("|---|---|---|---:|---:|---|---|---|---|---|");
    for (job, result) in &results {
        let replayed = match result {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                println!(
                    "| {} | {} | {} | – | – | replay failed: {e} |||||",
                    job.room_id, job.server, job.room_version
                );
                rows.push(json!({"room_id": job.room_id, "server": job.server, "error": e}));
                continue;
            }
        };
        events += replayed.events;
        for &l in &replayed.latencies_us {
            histogram.record(l.max(1)).map_err(|e| e.to_string())?;
        }
        let cell = |name: &str| match replayed.checks.get(name) {
            None => "–".to_owned(),
            Some(c) if c.differing == 0 => format!("agree ({})", c.compared),
            Some(c) => format!("**{} of {} differ**", c.differing, c.compared),
        };
        disagreements += replayed.checks.values().map(|c| c.differing).sum::<usize>();
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            job.room_id,
            job.server,
            job.room_version,
            replayed.events,
            replayed.events as f64 / replayed.seconds.max(1e-9),
            cell("current_state"),
            cell("forward_extremities"),
            cell("rejected"),
            cell("soft_failed"),
            cell("state_before_samples"),
        );
        let checks: BTreeMap<&str, Value> = replayed
            .checks
            .iter()
            .map(|(name, c)| {
                (
                    *name,
                    json!({"compared": c.compared, "differing": c.differing, "examples": c.examples}),
                )
            })
            .collect();
        rows.push(json!({
            "trace": job.trace,
            "room_id": job.room_id,
            "server": job.server,
            "room_version": job.room_version,
            "events": replayed.events,
            "seconds": replayed.seconds,
            "store_bytes": replayed.store_bytes,
            "checks": checks,
        }));
    }
    let quantile = |q: f64| histogram.value_at_quantile(q);
    let summary = json!({
        "pairs": results.len(),
        "events": events,
        "wall_seconds": wall,
        "events_per_second": events as f64 / wall.max(1e-9),
        "latency_us": {"p50": quantile(0.5), "p99": quantile(0.99), "p999": quantile(0.999), "max": histogram.max()},
        "batch_lines": args.batch,
        "durable": !args.no_sync,
        "peak_rss_bytes": peak_rss_bytes(),
        "disagreements": disagreements,
        "failures": failures,
        "verified": !args.no_verify,
    });
    println!();
    println!(
        "{} events in {:.2} s: {:.0} events/s over {} pairs on {} threads; per-event latency (its batch's call) p50 {} µs, p99 {} µs, p99.9 {} µs; peak RSS {} MiB",
        events,
        wall,
        events as f64 / wall.max(1e-9),
        results.len(),
        rayon::current_num_threads(),
        quantile(0.5),
        quantile(0.99),
        quantile(0.999),
        peak_rss_bytes() / (1 << 20)
    );
    if !args.no_verify {
        println!(
            "agreement with the recorded conclusions: {} difference(s), {} failed replay(s)",
            disagreements, failures
        );
    }
    if let Some(path) = &args.report {
        let report = json!({"summary": summary, "pairs": rows});
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    if failures > 0 {
        return Err(format!("{failures} replay(s) failed"));
    }
    if !args.no_verify && disagreements > 0 {
        return Err(format!(
            "{disagreements} difference(s) from the recorded conclusions"
        ));
    }
    Ok(())
}

/// The (room, server) pairs of one trace, from its manifest.
fn jobs_of(trace: &Path) -> Result<Vec<Job>, String> {
    let path = trace.join("manifest.json");
    let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a trace manifest: {e}", path.display()))?;
    if manifest.format != "roomgraph-trace" || manifest.format_version != 1 {
        return Err(format!(
            "{}: format {} version {}, this replayer reads roomgraph-trace version 1",
            path.display(),
            manifest.format,
            manifest.format_version
        ));
    }
    if let Some(c) = manifest.compression.as_deref() {
        return Err(format!(
            "{}: {c}-compressed traces are not read yet: decompress the files first",
            path.display()
        ));
    }
    let files: BTreeMap<&str, &str> = manifest
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.file.as_str()))
        .collect();
    let mut jobs = Vec::new();
    for room in &manifest.rooms {
        for server in room.servers.keys() {
            let Some(file) = files.get(server.as_str()) else {
                return Err(format!(
                    "{}: room {} names server {server}, which `servers` lacks",
                    path.display(),
                    room.room_id
                ));
            };
            jobs.push(Job {
                trace: trace.to_path_buf(),
                room_id: room.room_id.clone(),
                room_version: room.room_version.clone(),
                server: server.clone(),
                stem: trace.join(&room.dir).join(file),
            });
        }
    }
    Ok(jobs)
}

fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Each line of an optional NDJSON file parsed by `parse` (none when the file is absent); an error
/// names the file and the line.
fn parse_optional_lines<T>(
    path: &Path,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_lines(path)?
        .iter()
        .enumerate()
        .map(|(i, l)| parse(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1)))
        .collect()
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

fn replay_one(job: &Job, db: &Path, args: &ReplayArgs) -> Result<Replayed, String> {
    let pdus = read_lines(&with_ext(&job.stem, ".ndjson"))?;
    let meta_path = with_ext(&job.stem, ".meta.ndjson");
    let metas: Vec<Meta> = parse_optional_lines(&meta_path, |l| {
        serde_json::from_slice(l).map_err(|e| e.to_string())
    })?;
    if !metas.is_empty() && metas.len() != pdus.len() {
        return Err(format!(
            "{}: {} lines for {} PDUs",
            meta_path.display(),
            metas.len(),
            pdus.len()
        ));
    }
    let hints: Vec<StateHint> = parse_optional_lines(&with_ext(&job.stem, ".hints.ndjson"), |l| {
        StateHint::from_json(l).map_err(|e| e.to_string())
    })?;

    let options = EngineOptions {
        store: StoreOptions {
            sync: if args.no_sync {
                SyncPolicy::Never
            } else {
                SyncPolicy::PerBatch
            },
            ..StoreOptions::default()
        },
        ..EngineOptions::default()
    };
    let mut engine = Engine::open_with(db, options).map_err(|e| e.to_string())?;
    engine.add_state_hints(hints);

    let outlier = |i: usize| metas.get(i).is_some_and(|m| m.outlier);
    let mut outcomes = Vec::with_capacity(pdus.len());
    let mut latencies_us = Vec::with_capacity(pdus.len());
    let start = Instant::now();
    let mut i = 0;
    while i < pdus.len() {
        let kind = outlier(i);
        let mut end = i + 1;
        while end < pdus.len() && end - i < args.batch.max(1) && outlier(end) == kind {
            end += 1;
        }
        let t = Instant::now();
        let decided = if kind {
            engine.ingest_outliers(&pdus[i..end])
        } else {
            engine.ingest(&pdus[i..end])
        }
        .map_err(|e| format!("lines {}–{}: {e}", i + 1, end))?;
        let us = t.elapsed().as_micros() as u64;
        latencies_us.extend(std::iter::repeat_n(us, end - i));
        outcomes.extend(decided);
        i = end;
    }
    outcomes.extend(engine.finish().map_err(|e| e.to_string())?);
    let seconds = start.elapsed().as_secs_f64();

    let mut checks = BTreeMap::new();
    if !args.no_verify {
        let path = with_ext(&job.stem, ".expected.json");
        let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let expected: Expected =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        verify(&engine, &expected, &outcomes, &mut checks)?;
    }
    let store_bytes = engine.store().size_on_disk();
    drop(engine);
    Ok(Replayed {
        events: pdus.len(),
        seconds,
        latencies_us,
        checks,
        store_bytes,
    })
}

fn named(state: &StateMap) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ((t, k), id) in state {
        out.entry(t.clone())
            .or_default()
            .insert(k.clone(), id.clone());
    }
    out
}

/// Compares map `ours` with `theirs` key by key into `check`.
fn compare_maps(
    check: &mut Check,
    ours: &BTreeMap<String, BTreeMap<String, String>>,
    theirs: &BTreeMap<String, BTreeMap<String, String>>,
    context: &str,
) {
    let flat =
        |m: &BTreeMap<String, BTreeMap<String, String>>| -> BTreeMap<(String, String), String> {
            m.iter()
                .flat_map(|(t, keys)| {
                    keys.iter()
                        .map(move |(k, id)| ((t.clone(), k.clone()), id.clone()))
                })
                .collect()
        };
    let (ours, theirs) = (flat(ours), flat(theirs));
    let keys: BTreeSet<&(String, String)> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let (a, b) = (ours.get(key), theirs.get(key));
        check.record(a == b, || {
            format!(
                "{context}({}, {}): roomgraph {}, Synapse {}",
                key.0,
                key.1,
                a.map_or("none", String::as_str),
                b.map_or("none", String::as_str)
            )
        });
    }
}

fn compare_sets(check: &mut Check, ours: &BTreeSet<String>, theirs: &BTreeSet<String>) {
    for id in ours.union(theirs) {
        let (a, b) = (ours.contains(id), theirs.contains(id));
        check.record(a == b, || format!("{id}: roomgraph {a}, Synapse {b}"));
    }
}

fn verify(
    engine: &Engine,
    expected: &Expected,
    outcomes: &[roomgraph::ingest::EventOutcome],
    checks: &mut BTreeMap<&'static str, Check>,
) -> Result<(), String> {
    let ours = engine
        .current_state(&expected.room_id)
        .map_err(|e| e.to_string())?;
    compare_maps(
        checks.entry("current_state").or_default(),
        &named(&ours),
        &expected.current_state,
        "",
    );
    let ours: BTreeSet<String> = engine
        .extremities(&expected.room_id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let theirs: BTreeSet<String> = expected.forward_extremities.iter().cloned().collect();
    compare_sets(
        checks.entry("forward_extremities").or_default(),
        &ours,
        &theirs,
    );
    // The last outcome of each event (a de-outliered event is reported twice).
    let mut last: BTreeMap<&str, Outcome> = BTreeMap::new();
    for o in outcomes {
        if let Some(id) = &o.event_id {
            last.insert(id, o.outcome);
        }
    }
    let with = |outcome: Outcome| -> BTreeSet<String> {
        last.iter()
            .filter(|(_, o)| **o == outcome)
            .map(|(id, _)| (*id).to_owned())
            .collect()
    };
    let theirs: BTreeSet<String> = expected
        .rejected
        .iter()
        .map(|r| r.event_id.clone())
        .collect();
    compare_sets(
        checks.entry("rejected").or_default(),
        &with(Outcome::Rejected),
        &theirs,
    );
    let theirs: BTreeSet<String> = expected.soft_failed.iter().cloned().collect();
    compare_sets(
        checks.entry("soft_failed").or_default(),
        &with(Outcome::SoftFailed),
        &theirs,
    );
    let samples = checks.entry("state_before_samples").or_default();
    for (event_id, theirs) in &expected.state_before_samples {
        match engine.state_at(event_id, Position::Before) {
            Ok(ours) => compare_maps(
                samples,
                &named(&ours),
                theirs,
                &format!("before {event_id} "),
            ),
            Err(e) => samples.record(false, || format!("before {event_id}: {e}")),
        }
    }
    Ok(())
}
