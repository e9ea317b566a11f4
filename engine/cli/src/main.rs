//! The `roomgraph` command line: a thin shell over the library. Output on stdout, diagnostics on stderr;
//! exit code 2 for invalid input.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
mod auth_check;
mod demo;
mod resolve;
mod serve;
mod store_cmds;
use roomgraph::canonical_json::{self, JsonValue, NumberPolicy};

use roomgraph::pdu::Pdu;
use roomgraph::redaction::redact;
use roomgraph::room_version::RoomVersion;

/// mimalloc: ingest allocates and frees many small objects (see the `mimalloc` feature).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "roomgraph",
    version,
    about = "Fast engine for Matrix room event graphs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on the embedded default: ingest the sample room shipped with roomgraph into a
    /// RocksDB store and print the outcomes, forward extremities and current state.
    Demo {
        /// Keep the store in DIR (default: a temporary directory, removed afterwards).
        #[arg(long, value_name = "DIR")]
        db: Option<std::path::PathBuf>,
    },
    /// Check one event against the auth rules: reads `{"room_version", "events", "event", "state",
    /// "rejected"}` and prints `{"allowed": true}` or `{"allowed": false, "stage", "rule", "reason"}`.
    AuthCheck {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Resolve state sets: reads `{"room_version", "events", "state_sets", "rejected"}` and prints the
    /// resolved state as `{"<type>": {"<state_key>": "<event_id>"}}`.
    Resolve {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Print `resolve_ns=<n>` on stderr: the best of `--repeat` runs of the resolution alone.
        #[arg(long)]
        time: bool,
        /// How many times to run the resolution (with `--time`).
        #[arg(long, value_name = "N", default_value_t = 1)]
        repeat: u32,
    },
    /// Ingest federation-format PDUs (NDJSON, any rooms, any order) into a store; prints a JSON summary.
    Ingest {
        /// The store directory (created if missing).
        #[arg(long, value_name = "DIR")]
        db: std::path::PathBuf,
        /// NDJSON input, `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Write one NDJSON line per event, `{"line", "event_id", "outcome", "reason"}`, in input order
        /// (`"line": null` for events left pending by an earlier run).
        #[arg(long, value_name = "FILE")]
        outcomes: Option<std::path::PathBuf>,
        /// Input lines per atomic, fsynced commit.
        #[arg(long, value_name = "N", default_value_t = 8192)]
        batch_lines: usize,
        /// State for events at gaps in the DAG (NDJSON): `{"event_id": P, "state_after": [ids]}` for a
        /// missing or outlier prev event P, or `{"event_id": E, "state_before": [ids]}`.
        #[arg(long, value_name = "FILE")]
        state_hints: Option<std::path::PathBuf>,
        /// Verify event signatures with these server keys:
        /// `{"<server>": {"<key_id>": {"key": "<base64>", "valid_until_ts": <ms>}}}`. Without it
        /// signatures are not verified (only their presence is checked).
        #[arg(long, value_name = "FILE")]
        keys: Option<std::path::PathBuf>,
    },
    /// Print a state map `{"<type>": {"<state_key>": "<event_id>"}}`: a room's current state, or the
    /// state after (or `--before`) an event. With `--events FILE`: one NDJSON line per event id of FILE,
    /// `{"event_id", "state"}`, in input order; an unknown id gets `{"event_id", "error"}` in its place
    /// and the command exits with code 2 once every line is answered. Opens the store read-only.
    #[command(group(clap::ArgGroup::new("of_event").args(["event", "events"])))]
    State {
        #[arg(long, value_name = "DIR")]
        db: std::path::PathBuf,
        #[arg(long, value_name = "ROOM_ID", conflicts_with = "of_event")]
        room: Option<String>,
        #[arg(long, value_name = "EVENT_ID")]
        event: Option<String>,
        /// Event ids, one per line (blank lines skipped), `-` for standard input.
        #[arg(long, value_name = "FILE")]
        events: Option<String>,
        /// The state before the event(s) instead of after.
        #[arg(long, requires = "of_event")]
        before: bool,
    },
    /// Print a stored PDU with its outcome and reason. Opens the store read-only.
    Event {
        #[arg(long, value_name = "DIR")]
        db: std::path::PathBuf,
        event_id: String,
    },
    /// Print a room's forward extremities as stored, a JSON list of event ids sorted by id. Opens the
    /// store read-only.
    Extremities {
        #[arg(long, value_name = "DIR")]
        db: std::path::PathBuf,
        #[arg(long, value_name = "ROOM_ID")]
        room: String,
    },
    /// Print the event id of one federation-format PDU.
    EventId {
        #[arg(long = "room-version", value_name = "V")]
        room_version: String,
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Print the redacted PDU as canonical JSON.
    Redact {
        #[arg(long = "room-version", value_name = "V")]
        room_version: String,
        #[arg(default_value = "-")]
        file: String,
    },
    /// Print the unpadded base64 SHA-256 content hash of a PDU.
    ContentHash {
        #[arg(long = "room-version", value_name = "V")]
        room_version: String,
        #[arg(default_value = "-")]
        file: String,
    },
    /// Print a JSON document as canonical JSON (with a room version: that version's number rules).
    CanonicalJson {
        #[arg(long = "room-version", value_name = "V")]
        room_version: Option<String>,
        #[arg(default_value = "-")]
        file: String,
    },
    /// Serve the library over a local socket: length-prefixed JSON requests answered as the commands
    /// answer them (the wire contract: docs/protocol.md). Stops on SIGTERM/SIGINT once in-flight
    /// requests are answered.
    Serve(serve::ServeArgs),
    /// Check every PDU of an NDJSON file (default: the embedded sample room) and print one line each.
    Inspect {
        #[arg(long = "room-version", value_name = "V", default_value = "11")]
        room_version: String,
        /// NDJSON file, `-` for standard input; without it, the sample room shipped with roomgraph.
        file: Option<String>,
    },
}

/// An error for the user: message on stderr, exit code 2.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    roomgraph_cli::allocator::keep_freed_pages();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("roomgraph: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Demo { db } => demo::run(db, &mut stdout).map_err(Failure)?,
        Command::Serve(args) => serve::run(args).map_err(Failure)?,
        Command::AuthCheck { file } => {
            let input = read_input(&file)?;
            auth_check::run(&input, &mut stdout).map_err(Failure)?
        }
        Command::Resolve { file, time, repeat } => {
            let input = read_input(&file)?;
            resolve::run(&input, time, repeat, &mut stdout).map_err(Failure)?
        }
        Command::Ingest {
            db,
            file,
            outcomes,
            batch_lines,
            state_hints,
            keys,
        } => store_cmds::ingest(
            store_cmds::IngestArgs {
                db: &db,
                file: &file,
                outcomes: outcomes.as_deref(),
                hints: state_hints.as_deref(),
                batch_lines,
                keys: keys.as_deref(),
            },
            &mut stdout,
        )
        .map_err(Failure)?,
        Command::State {
            db,
            room,
            event,
            events,
            before,
        } => store_cmds::state(
            &db,
            store_cmds::StateOf::from_args(room, event, events)?,
            before,
            &mut stdout,
        )
        .map_err(Failure)?,
        Command::Event { db, event_id } => {
            store_cmds::event(&db, &event_id, &mut stdout).map_err(Failure)?
        }
        Command::Extremities { db, room } => {
            store_cmds::extremities(&db, &room, &mut stdout).map_err(Failure)?
        }
        Command::EventId { room_version, file } => {
            let version = RoomVersion::from_id(&room_version)?;
            let input = read_input(&file)?;
            let pdu = Pdu::parse(&input, version)?;
            writeln!(stdout, "{}", pdu.event_id)?;
        }
        Command::Redact { room_version, file } => {
            let version = RoomVersion::from_id(&room_version)?;
            let input = read_input(&file)?;
            let pdu = Pdu::parse(&input, version)?;
            let redacted = redact(&pdu.json, version.redaction);
            writeln!(
                stdout,
                "{}",
                canonical_json::to_canonical_string(&JsonValue::Object(redacted))
            )?;
        }
        Command::ContentHash { room_version, file } => {
            let version = RoomVersion::from_id(&room_version)?;
            let input = read_input(&file)?;
            let pdu = Pdu::parse(&input, version)?;
            writeln!(stdout, "{}", pdu.content_hash_base64())?;
        }
        Command::CanonicalJson { room_version, file } => {
            let policy = match room_version {
                None => NumberPolicy::Normalise,
                Some(v) if RoomVersion::from_id(&v)?.strict_canonical_json => NumberPolicy::Strict,
                Some(_) => NumberPolicy::Lenient,
            };
            let input = read_input(&file)?;
            let value = canonical_json::parse(&input, policy)?;
            writeln!(stdout, "{}", canonical_json::to_canonical_string(&value))?;
        }
        Command::Inspect { room_version, file } => {
            let version = RoomVersion::from_id(&room_version)?;
            let input = match file {
                Some(f) => read_input(&f)?,
                None => demo::SAMPLE_ROOM.as_bytes().to_vec(),
            };
            let mut bad = 0usize;
            for (n, line) in input.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match Pdu::parse(line, version) {
                    Ok(pdu) => writeln!(
                        stdout,
                        "{}\t{}\t{}\t{}",
                        pdu.event_id,
                        pdu.event_type,
                        pdu.state_key.as_deref().unwrap_or("-"),
                        if pdu.content_hash_matches() {
                            "hash-ok"
                        } else {
                            "hash-mismatch"
                        }
                    )?,
                    Err(e) => {
                        bad += 1;
                        eprintln!("roomgraph: line {}: {e}", n + 1);
                    }
                }
            }
            if bad > 0 {
                return Err(Failure(format!("{bad} invalid PDU(s)")));
            }
        }
    }
    Ok(())
}

fn read_input(file: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure(format!("reading standard input: {e}")))?;
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| Failure(format!("reading {file}: {e}")))?;
    }
    Ok(buf)
}
