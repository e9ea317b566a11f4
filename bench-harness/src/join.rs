//! `roomgraph-bench join`: joining a huge room. A `send_join` response shaped like Matrix HQ's
//! ([`roomgraph_testkit::join`]) is stored the way Synapse stores one (`process_remote_join`): the state
//! and auth chain as outliers, each checked against its own auth events, in the order they come
//! (unordered: events wait for their auth events), then the join event with the response's state as
//! the state before it. Two paths do that work on the same bytes, each in its own child process (so
//! each peak RSS is its own):
//!
//! - **roomgraph**: [`Engine::ingest_outliers`] into a fresh store (parse, receipt checks, auth
//!   against auth events, the chain cover auth-chain index, one durable commit), then the join with a
//!   [`StateHint::Before`]; the stored state after the join is checked against the response.
//! - **ruma**: what a ruma-based server does ([`ruma_path`]): ruma's canonical JSON, event ids and
//!   content hashes, an auth-first topological order, ruma-state-res 0.18's
//!   `check_state_independent_auth_rules` and `check_state_dependent_auth_rules` against each event's
//!   auth events, every event's auth chain (memoised, a set of ids per event), and the final state map.
//!
//! The driver prints both side by side and checks that they rejected the same events.

mod ruma_path;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use roomgraph::ingest::{Engine, Outcome, Position, StateHint};
use roomgraph::pdu::Pdu;
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::join::{JoinResponse, JoinSpec, generate};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{child, peak_rss_bytes};

/// `roomgraph-bench join`: arguments of the driver and of its phases.
#[derive(clap::Args)]
pub struct JoinArgs {
    /// Members joined when the new member joins.
    #[arg(long, default_value_t = 30_000)]
    members: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Room version of the joined room.
    #[arg(long, default_value = "12")]
    room_version: String,
    /// Working directory (response files and store); a temporary one under /tmp by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run one phase (the driver runs each in a child process).
    #[command(subcommand)]
    phase: Option<Phase>,
}

#[derive(clap::Subcommand, Clone, Copy)]
enum Phase {
    /// Write the response, the join event and what the checks need into `--dir`.
    Generate,
    /// The roomgraph path on the files in `--dir`.
    Roomgraph,
    /// The ruma-state-res path on the files in `--dir`.
    Ruma,
}

/// The files of one workload.
struct Files {
    response: PathBuf,
    join: PathBuf,
    meta: PathBuf,
    store: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            response: dir.join("send_join.json"),
            join: dir.join("join_event.json"),
            meta: dir.join("meta.json"),
            store: dir.join("store"),
        }
    }
}

/// What the phases need besides the bytes: the room version (the joining server has it from
/// `make_join`) and, for the checks, the expected rejections and the generated shape.
#[derive(serde::Serialize, Deserialize)]
struct Meta {
    room_version: String,
    join_event_id: String,
    bad: Vec<String>,
    shape: serde_json::Value,
}

pub fn run(args: &JoinArgs) -> Result<(), String> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("roomgraph-join-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = Files::in_dir(&dir);
    let report = match args.phase {
        Some(Phase::Generate) => generate_files(args, &files)?,
        Some(Phase::Roomgraph) => roomgraph_phase(&files)?,
        Some(Phase::Ruma) => ruma_phase(&files)?,
        None => return drive(args, &dir, &files),
    };
    println!("{report}");
    Ok(())
}

fn version(id: &str) -> Result<&'static RoomVersion, String> {
    RoomVersion::from_id(id).map_err(|e| e.to_string())
}

fn generate_files(args: &JoinArgs, files: &Files) -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let r = generate(&JoinSpec::hq(
        version(&args.room_version)?,
        args.members,
        args.seed,
    ));
    let write = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    };
    let body = r.to_json();
    write(&files.response, body.as_bytes())?;
    write(&files.join, r.join_event.as_bytes())?;
    let shape = shape_json(&r);
    let meta = Meta {
        room_version: r.version.id.to_owned(),
        join_event_id: r.join_event_id.clone(),
        bad: r.bad.clone(),
        shape: shape.clone(),
    };
    let meta = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
    write(&files.meta, &meta)?;
    Ok(
        serde_json::json!({"shape": shape, "response_bytes": body.len(),
        "seconds": start.elapsed().as_secs_f64()}),
    )
}

fn shape_json(r: &JoinResponse) -> serde_json::Value {
    let s = &r.shape;
    serde_json::json!({"room_version": r.version.id, "history_events": s.history,
        "state": s.state, "auth_chain": s.auth_chain, "response_events": r.state.len() + r.auth_chain.len(),
        "joined": s.joined, "left": s.left, "banned": s.banned, "power_levels": s.power_levels,
        "join_rules": s.join_rules, "bad": s.bad})
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_meta(files: &Files) -> Result<Meta, String> {
    serde_json::from_slice(&read(&files.meta)?).map_err(|e| format!("meta: {e}"))
}

/// The two lists of a `send_join` response, unparsed.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    state: Vec<&'a RawValue>,
    #[serde(borrow)]
    auth_chain: Vec<&'a RawValue>,
}

fn split(response: &[u8]) -> Result<Response<'_>, String> {
    serde_json::from_slice(response).map_err(|e| format!("send_join response: {e}"))
}

/// A state map by name: `(type, state_key) → event id`.
pub type Named = BTreeMap<(String, String), String>;

/// CPU time of this process (all threads), user + system, in seconds.
fn cpu_seconds() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } == 0;
    if !ok {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above (and zeroed before it).
    let u = unsafe { u.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// What the roomgraph path concluded, and how long each step took.
pub struct RoomgraphRun {
    pub split_s: f64,
    pub ingest_s: f64,
    pub join_s: f64,
    pub outliers: usize,
    /// Ids of the rejected events of the response, sorted.
    pub rejected: Vec<String>,
    /// The join's outcome.
    pub join: Outcome,
    /// The stored state after the join.
    pub state_after: Named,
    /// The response's state plus the join, from the PDUs.
    pub expected: Named,
    pub store_bytes: u64,
}

/// The roomgraph path: `response` (a send_join body) and `join` (the join event's PDU) into a fresh
/// store at `db`.
pub fn roomgraph_join(
    response: &[u8],
    join: &[u8],
    version: &'static RoomVersion,
    db: &Path,
) -> Result<RoomgraphRun, String> {
    let start = Instant::now();
    let r = split(response)?;
    let lines: Vec<&[u8]> = r
        .state
        .iter()
        .chain(&r.auth_chain)
        .map(|raw| raw.get().as_bytes())
        .collect();
    let split_s = start.elapsed().as_secs_f64();
    let mut engine = Engine::open(db).map_err(|e| e.to_string())?;
    let mut outcomes = engine.ingest_outliers(&lines).map_err(|e| e.to_string())?;
    outcomes.extend(engine.finish().map_err(|e| e.to_string())?);
    let ingest_s = start.elapsed().as_secs_f64() - split_s;

    // The state's ids, from the outcomes (the engine computed them): lines 1..=state.
    let mut ids: Vec<Option<&str>> = vec![None; lines.len()];
    let mut rejected = Vec::new();
    let mut outliers = 0;
    for o in &outcomes {
        match o.outcome {
            Outcome::Outlier => outliers += 1,
            Outcome::Rejected => rejected.extend(o.event_id.clone()),
            other => {
                return Err(format!(
                    "line {:?} ({:?}): {} {:?}",
                    o.line,
                    o.event_id,
                    other.as_str(),
                    o.reason_text()
                ));
            }
        }
        if let (Some(line), Some(id)) = (o.line, &o.event_id)
            && let Some(slot) = ids.get_mut(line as usize - 1)
        {
            *slot = Some(id.as_str());
        }
    }
    let state: Vec<String> = ids[..r.state.len()]
        .iter()
        .map(|id| id.map(str::to_owned).ok_or("a state event has no outcome"))
        .collect::<Result<_, _>>()?;
    let join_pdu = Pdu::parse(join, version).map_err(|e| format!("join event: {e}"))?;
    let join_id = join_pdu.event_id.to_string();
    engine.add_state_hints([StateHint::Before {
        event_id: join_id.clone(),
        state,
    }]);
    let o = engine.ingest(&[join]).map_err(|e| e.to_string())?;
    let join_outcome = o.first().map_or(Outcome::Pending, |o| o.outcome);
    let join_s = start.elapsed().as_secs_f64() - split_s - ingest_s;

    // Checks (not timed).
    let state_after = engine
        .state_at(&join_id, Position::After)
        .map_err(|e| e.to_string())?;
    let mut expected: Named = r
        .state
        .par_iter()
        .map(|raw| {
            let p = Pdu::parse(raw.get().as_bytes(), version).map_err(|e| e.to_string())?;
            let key = (
                p.event_type.to_string(),
                p.state_key.as_deref().unwrap_or("").to_owned(),
            );
            Ok((key, p.event_id.to_string()))
        })
        .collect::<Result<_, String>>()?;
    expected.insert(
        (
            join_pdu.event_type.to_string(),
            join_pdu.state_key.as_deref().unwrap_or("").to_owned(),
        ),
        join_id,
    );
    let store_bytes = engine.store().size_on_disk();
    engine.close_for_exit();
    rejected.sort();
    Ok(RoomgraphRun {
        split_s,
        ingest_s,
        join_s,
        outliers,
        rejected,
        join: join_outcome,
        state_after,
        expected,
        store_bytes,
    })
}

fn roomgraph_phase(files: &Files) -> Result<serde_json::Value, String> {
    let meta = read_meta(files)?;
    let v = version(&meta.room_version)?;
    let response = read(&files.response)?;
    let join = read(&files.join)?;
    if files.store.exists() {
        std::fs::remove_dir_all(&files.store).map_err(|e| e.to_string())?;
    }
    let cpu0 = cpu_seconds();
    let run = roomgraph_join(&response, &join, v, &files.store)?;
    let cpu = cpu_seconds() - cpu0;
    let wall = run.split_s + run.ingest_s + run.join_s;
    let events = run.outliers + run.rejected.len() + 1;
    let peak = peak_rss_bytes();
    // The reference: parse + content hash of every PDU, in parallel (no checks, no store).
    let r = split(&response)?;
    let start = Instant::now();
    let hashed = r
        .state
        .par_iter()
        .chain(r.auth_chain.par_iter())
        .filter(|raw| Pdu::parse(raw.get().as_bytes(), v).is_ok_and(|p| p.content_hash_matches()))
        .count();
    let parse_hash_s = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "events": events, "wall_s": wall, "cpu_s": cpu, "events_per_s": events as f64 / wall,
        "split_s": run.split_s, "ingest_s": run.ingest_s, "join_s": run.join_s,
        "peak_rss_bytes": peak, "store_bytes": run.store_bytes,
        "outliers": run.outliers, "rejected": run.rejected, "join": run.join.as_str(),
        "state_entries": run.state_after.len(), "state_ok": run.state_after == run.expected,
        "parse_hash_s": parse_hash_s, "parse_hash_ok": hashed,
    }))
}

fn ruma_phase(files: &Files) -> Result<serde_json::Value, String> {
    let meta = read_meta(files)?;
    let response = read(&files.response)?;
    let join = read(&files.join)?;
    let cpu0 = cpu_seconds();
    let run = ruma_path::join(&response, &join, &meta.room_version)?;
    let cpu = cpu_seconds() - cpu0;
    let wall = run.parse_s + run.order_s + run.auth_s + run.chains_s + run.join_s;
    let events = run.checked + 1;
    Ok(serde_json::json!({
        "events": events, "wall_s": wall, "cpu_s": cpu, "events_per_s": events as f64 / wall,
        "parse_s": run.parse_s, "order_s": run.order_s, "auth_s": run.auth_s,
        "auth_chains_s": run.chains_s, "join_s": run.join_s, "auth_chain_entries": run.chain_entries,
        "peak_rss_bytes": peak_rss_bytes(), "rejected": run.rejected, "join": run.join_ok,
        "state_entries": run.state.len(),
    }))
}

fn drive(args: &JoinArgs, dir: &Path, files: &Files) -> Result<(), String> {
    let d = dir.to_str().ok_or("non-UTF-8 path")?;
    let (m, s) = (args.members.to_string(), args.seed.to_string());
    let phase = |name: &str| {
        child(&[
            "join",
            "--dir",
            d,
            "--members",
            &m,
            "--seed",
            &s,
            "--room-version",
            &args.room_version,
            name,
        ])
    };
    let generated = phase("generate")?.report;
    eprintln!("generated: {generated}");
    let meta = read_meta(files)?;
    let ours = phase("roomgraph")?.report;
    eprintln!("roomgraph: {ours}");
    let theirs = phase("ruma")?.report;
    eprintln!("ruma: {theirs}");
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let mib = |v: &serde_json::Value| f(v, "peak_rss_bytes") / (1024.0 * 1024.0);
    let ratio = f(&theirs, "wall_s") / f(&ours, "wall_s").max(1e-9);
    let cpu_ratio = f(&theirs, "cpu_s") / f(&ours, "cpu_s").max(1e-9);
    let bad = serde_json::json!(meta.bad);
    let agree = ours["rejected"] == theirs["rejected"];
    let as_built = ours["rejected"] == bad;
    eprintln!(
        "\n{:<10} {:>9} {:>9} {:>10} {:>12}\n{:<10} {:>9.3} {:>9.3} {:>10.0} {:>12.0}\n{:<10} {:>9.3} {:>9.3} {:>10.0} {:>12.0}\nruma / roomgraph: wall {ratio:.1}x, CPU {cpu_ratio:.1}x; same rejections: {agree}; state ok: {}",
        "path",
        "wall s",
        "CPU s",
        "RSS MiB",
        "events/s",
        "roomgraph",
        f(&ours, "wall_s"),
        f(&ours, "cpu_s"),
        mib(&ours),
        f(&ours, "events_per_s"),
        "ruma",
        f(&theirs, "wall_s"),
        f(&theirs, "cpu_s"),
        mib(&theirs),
        f(&theirs, "events_per_s"),
        ours["state_ok"],
    );
    println!(
        "{}",
        serde_json::json!({"workload": generated, "roomgraph": ours, "ruma": theirs,
            "ruma_over_roomgraph_wall": ratio, "ruma_over_roomgraph_cpu": cpu_ratio,
            "same_rejections": agree, "rejections_as_built": as_built})
    );
    if !agree || !as_built || ours["state_ok"] != true || ours["join"] != "accepted" {
        return Err("the two paths disagree, or the stored state is wrong".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 500-member join: roomgraph stores the response's state plus the join as the state after
    /// it, and both paths reject exactly the events built to fail (no timing).
    #[test]
    fn both_paths_store_the_join_and_agree() {
        for id in ["10", "12"] {
            let v = version(id).expect("known version");
            let r = generate(&JoinSpec::hq(v, 500, 7));
            let body = r.to_json();
            let dir = std::env::temp_dir()
                .join(format!("roomgraph-join-test-{}-{id}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let ours = roomgraph_join(body.as_bytes(), r.join_event.as_bytes(), v, &dir)
                .expect("roomgraph path");
            let _ = std::fs::remove_dir_all(&dir);
            assert_eq!(ours.join, Outcome::Accepted);
            assert_eq!(ours.state_after, ours.expected);
            assert_eq!(ours.state_after.len(), r.state.len() + 1);
            assert_eq!(ours.rejected, r.bad);
            assert_eq!(
                ours.outliers,
                r.state.len() + r.auth_chain.len() - r.bad.len()
            );
            let theirs =
                ruma_path::join(body.as_bytes(), r.join_event.as_bytes(), id).expect("ruma path");
            assert_eq!(theirs.rejected, ours.rejected);
            assert!(theirs.join_ok);
            assert_eq!(theirs.state, ours.state_after);
        }
    }
}
