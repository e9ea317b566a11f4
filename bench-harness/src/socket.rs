//! `roomgraph-bench socket`: what a homeserver pays to reach roomgraph over `roomgraph serve`'s Unix
//! socket, against calling the library in-process, in the same run.
//!
//! Three workloads, each at 1–32 clients:
//! - `resolve`: one small contested request (a generated room of room version 11), the `roomgraph
//!   resolve` document;
//! - `auth_check`: one event with its auth events, the `roomgraph auth-check` document;
//! - `ingest`: batches of PDUs from a generated trace, every client its own rooms, each answer only
//!   once durable (one fsync per request), into a fresh store per cell.
//!
//! Clients are closed-loop: each sends a request, waits for its answer, sends the next. Latency is
//! per request, send to answer, in an HdrHistogram. The library side runs the same documents through
//! the same functions the server calls (`documents::resolve_json`, `auth::request::evaluate`,
//! `documents::ingest_json`) from as many threads as there are clients, so the difference is the
//! socket: framing, the JSON envelope, the server's queues and threads, and the context switches.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use roomgraph::canonical_json::{JsonValue, to_canonical_string};
use roomgraph::ingest::Engine;
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{RoomConfig, generate as generate_room};
use roomgraph_testkit::trace::{TraceSpec, generate as generate_trace};

#[derive(clap::Args)]
pub struct SocketArgs {
    /// The `roomgraph` binary to serve with; by default the one next to this program.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Client counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16, 32])]
    clients: Vec<usize>,
    /// Seconds per measured `resolve` / `auth_check` cell.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// PDUs per `ingest` request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// `ingest` requests per cell (over all clients).
    #[arg(long, default_value_t = 128)]
    ingest_requests: usize,
    /// Working directory (socket, stores); a temporary one under /tmp by default.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One measured cell.
struct Cell {
    requests: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Cell {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 100 s, three significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// A running `roomgraph serve`, killed on drop.
struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    fn start(bin: &Path, dir: &Path, db: Option<&Path>) -> Result<Server, String> {
        let socket = dir.join("bench.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--socket").arg(&socket);
        if let Some(db) = db {
            cmd.arg("--db").arg(db);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        // The server prints one ready line once it listens.
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the ready line: {e}"))?;
        if line.trim().is_empty() {
            let _ = child.kill();
            return Err(format!("{} serve did not start", bin.display()));
        }
        Ok(Server { child, socket })
    }

    fn stop(mut self) {
        // SIGTERM: the server finishes what is in flight and exits.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection speaking the framed protocol (`docs/protocol.md`).
struct Conn {
    stream: UnixStream,
    next_id: u64,
    buf: Vec<u8>,
}

impl Conn {
    fn open(socket: &Path) -> Result<Conn, String> {
        let stream =
            UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        Ok(Conn {
            stream,
            next_id: 0,
            buf: Vec::new(),
        })
    }

    /// One request, answered; fails on an error answer.
    fn call(&mut self, method: &str, params: &str) -> Result<(), String> {
        self.next_id += 1;
        let body = format!(
            r#"{{"id":{},"method":"{method}","params":{params}}}"#,
            self.next_id
        );
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(body.as_bytes());
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("send: {e}"))?;
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| format!("receive: {e}"))?;
        self.buf.resize(u32::from_be_bytes(header) as usize, 0);
        self.stream
            .read_exact(&mut self.buf)
            .map_err(|e| format!("receive: {e}"))?;
        // The envelope is `{"id":…,"result":…}` or `{"id":…,"error":…}`; only the head is read.
        let head = &self.buf[..self.buf.len().min(64)];
        if memchr::memmem::find(head, b"\"error\"").is_some() {
            return Err(format!(
                "{method}: {}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(400)])
            ));
        }
        Ok(())
    }
}

/// Runs `clients` closed-loop workers for `seconds`; `work(worker)` is one request.
fn timed<W>(
    clients: usize,
    seconds: f64,
    make: impl Fn() -> Result<W, String> + Sync,
) -> Result<Cell, String>
where
    W: FnMut() -> Result<(), String>,
{
    let deadline = Duration::from_secs_f64(seconds);
    let merged = Mutex::new(histogram());
    let total = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    let mut work = make()?;
                    let mut h = histogram();
                    let mut n = 0;
                    while start.elapsed() < deadline {
                        let t = Instant::now();
                        work()?;
                        h.saturating_record(t.elapsed().as_nanos() as u64);
                        n += 1;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                    merged
                        .lock()
                        .map_err(|_| "a worker panicked")?
                        .add(&h)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a worker panicked")??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    Ok(Cell {
        requests: total.into_inner() as u64,
        elapsed,
        latency: merged.into_inner().map_err(|_| "a worker panicked")?,
    })
}

/// Runs one worker per element of `shares`, each sending its requests in order; `make(i)` gives the
/// worker for share `i`.
fn counted<W>(
    shares: &[Vec<String>],
    make: impl Fn(usize) -> Result<W, String> + Sync,
) -> Result<Cell, String>
where
    W: FnMut(&str) -> Result<(), String>,
{
    let merged = Mutex::new(histogram());
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let workers: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(i, share)| {
                let make = &make;
                let merged = &merged;
                s.spawn(move || -> Result<(), String> {
                    let mut work = make(i)?;
                    let mut h = histogram();
                    for request in share {
                        let t = Instant::now();
                        work(request)?;
                        h.saturating_record(t.elapsed().as_nanos() as u64);
                    }
                    merged
                        .lock()
                        .map_err(|_| "a worker panicked")?
                        .add(&h)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a worker panicked")??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    let latency = merged.into_inner().map_err(|_| "a worker panicked")?;
    Ok(Cell {
        requests: latency.len(),
        elapsed,
        latency,
    })
}

/// The `resolve` document: a small generated room of room version 11, its fork states.
fn resolve_document() -> Result<(String, usize), String> {
    let version = RoomVersion::from_id("11").map_err(|e| e.to_string())?;
    let room = generate_room(&RoomConfig::small(version, 3));
    Ok((room.to_request_json(), room.events.len()))
}

/// The `auth_check` document: the last accepted event of a generated room, with its auth events as
/// the state before it.
fn auth_check_document() -> Result<String, String> {
    let version = RoomVersion::from_id("11").map_err(|e| e.to_string())?;
    let room = generate_room(&RoomConfig::small(version, 3));
    let (event, _) = room
        .events
        .iter()
        .zip(&room.rejected)
        .rev()
        .find(|(_, rejected)| !**rejected)
        .ok_or("the generated room has no accepted event")?;
    let auth: Vec<&str> = event
        .json
        .get("auth_events")
        .and_then(|a| match a {
            JsonValue::Array(ids) => Some(ids.iter().filter_map(JsonValue::as_str).collect()),
            _ => None,
        })
        .ok_or("the event has no auth_events")?;
    let mut events = vec![to_canonical_string(&JsonValue::Object(event.json.clone()))];
    for p in &room.events {
        if auth.contains(&&*p.event_id) {
            events.push(to_canonical_string(&JsonValue::Object(p.json.clone())));
        }
    }
    Ok(format!(
        r#"{{"room_version":"11","events":[{}],"event":{},"state":{},"rejected":[]}}"#,
        events.join(","),
        serde_json::json!(event.event_id.to_string()),
        serde_json::json!(auth)
    ))
}

/// `ingest_requests` batches of `batch` PDUs, dealt to `clients` clients by room (every client its own
/// rooms, each room's events in order).
fn ingest_shares(
    clients: usize,
    batch: usize,
    requests: usize,
) -> Result<Vec<Vec<String>>, String> {
    let spec = TraceSpec {
        rooms: 32.max(clients),
        events: batch * requests,
        big_room_members: 50,
        big_room_share: 0,
        fork_every: 20,
        bad_every: 200,
        open_fork_at_end: false,
        versions: vec![RoomVersion::from_id("11").map_err(|e| e.to_string())?],
        seed: 7,
    };
    let trace = generate_trace(&spec);
    let rooms: Vec<String> = trace.rooms.clone();
    let mut per_client: Vec<Vec<&str>> = vec![Vec::new(); clients];
    for line in &trace.lines {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let room = value["room_id"].as_str().unwrap_or_default();
        let slot = rooms.iter().position(|r| r == room).unwrap_or(0) % clients;
        per_client[slot].push(line);
    }
    Ok(per_client
        .into_iter()
        .map(|lines| {
            lines
                .chunks(batch)
                .map(|chunk| format!(r#"{{"pdus":[{}]}}"#, chunk.join(",")))
                .collect()
        })
        .collect())
}

struct Row {
    workload: &'static str,
    clients: usize,
    socket: Cell,
    library: Cell,
}

pub fn run(args: &SocketArgs) -> Result<(), String> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("roomgraph"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (`cargo build --release -p roomgraph-cli`) or pass --bin",
            bin.display()
        ));
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let (resolve_doc, resolve_events) = resolve_document()?;
    let auth_doc = auth_check_document()?;
    eprintln!(
        "socket bench: resolve request {} bytes ({resolve_events} events), auth_check request {} bytes, ingest {} × {} PDUs per cell; {} s per timed cell",
        resolve_doc.len(),
        auth_doc.len(),
        args.ingest_requests,
        args.batch,
        args.seconds
    );
    let mut rows = Vec::new();
    let stateless = Server::start(&bin, &dir, None)?;
    for &clients in &args.clients {
        for (workload, method, doc) in [
            ("resolve", "resolve", &resolve_doc),
            ("auth_check", "auth_check", &auth_doc),
        ] {
            let socket = timed(clients, args.seconds, || {
                let mut conn = Conn::open(&stateless.socket)?;
                Ok(move || conn.call(method, doc))
            })?;
            let library = timed(clients, args.seconds, || {
                Ok(move || -> Result<(), String> {
                    if method == "resolve" {
                        roomgraph::documents::resolve_json(doc.as_bytes())
                            .map(drop)
                            .map_err(|e| e.to_string())
                    } else {
                        roomgraph::auth::request::evaluate(doc.as_bytes())
                            .map(|v| drop(v.to_json()))
                            .map_err(|e| e.to_string())
                    }
                })
            })?;
            eprintln!("  {workload} × {clients}: {:.0} req/s", socket.per_second());
            rows.push(Row {
                workload,
                clients,
                socket,
                library,
            });
        }
    }
    stateless.stop();
    for &clients in &args.clients {
        let shares = ingest_shares(clients, args.batch, args.ingest_requests)?;
        let db = dir.join(format!("socket-db-{clients}"));
        let _ = std::fs::remove_dir_all(&db);
        let server = Server::start(&bin, &dir, Some(&db))?;
        let socket = counted(&shares, |_| {
            let mut conn = Conn::open(&server.socket)?;
            Ok(move |doc: &str| conn.call("ingest", doc))
        })?;
        server.stop();
        // The library: one engine, as the server has; its callers take turns, as the server's
        // ingest queue makes them.
        let lib_db = dir.join(format!("library-db-{clients}"));
        let _ = std::fs::remove_dir_all(&lib_db);
        let engine = Mutex::new((Engine::open(&lib_db).map_err(|e| e.to_string())?, 1u64));
        let library = counted(&shares, |_| {
            let engine = &engine;
            Ok(move |doc: &str| -> Result<(), String> {
                #[derive(serde::Deserialize)]
                struct Params<'a> {
                    #[serde(borrow)]
                    pdus: Vec<&'a serde_json::value::RawValue>,
                }
                let p: Params<'_> = serde_json::from_str(doc).map_err(|e| e.to_string())?;
                let pdus: Vec<&[u8]> = p.pdus.iter().map(|r| r.get().as_bytes()).collect();
                let mut guard = engine.lock().map_err(|_| "a worker panicked")?;
                let (eng, next_line) = &mut *guard;
                roomgraph::documents::ingest_json(eng, next_line, &pdus)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })?;
        drop(engine);
        let _ = std::fs::remove_dir_all(&db);
        let _ = std::fs::remove_dir_all(&lib_db);
        eprintln!("  ingest × {clients}: {:.0} req/s", socket.per_second());
        rows.push(Row {
            workload: "ingest",
            clients,
            socket,
            library,
        });
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_table(&rows, args.batch);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("roomgraph-bench-socket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn print_table(rows: &[Row], batch: usize) {
    println!(
        "| workload | clients | socket req/s | socket p50 µs | socket p99 µs | library req/s | library p50 µs | library p99 µs | p50 overhead µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let name = if r.workload == "ingest" {
            format!("ingest ({batch} PDUs)")
        } else {
            r.workload.to_owned()
        };
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
            r.clients,
            r.socket.per_second(),
            r.socket.quantile_us(0.5),
            r.socket.quantile_us(0.99),
            r.library.per_second(),
            r.library.quantile_us(0.5),
            r.library.quantile_us(0.99),
            r.socket.quantile_us(0.5) - r.library.quantile_us(0.5),
        );
    }
}
