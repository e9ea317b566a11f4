//! `roomgraph ingest`, `state`, `event` and `extremities`: thin shells over [`roomgraph::ingest`]. The
//! queries open the store read-only ([`Reader`]): they take no lock and write no file of the store.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::rc::Rc;

use std::sync::Arc;

use roomgraph::documents::{OutcomeLine, event_json, state_json, summary_json};
use roomgraph::ingest::{
    Engine, EngineOptions, EventOutcome, IngestError, Position, Reader, StateHint, Summary,
};
use roomgraph::signatures::KeyRing;
use roomgraph_cli::ndjson::LineBatches;

/// `roomgraph ingest`'s arguments.
pub struct IngestArgs<'a> {
    pub db: &'a Path,
    pub file: &'a str,
    pub outcomes: Option<&'a Path>,
    /// The state-hints file (`--state-hints`).
    pub hints: Option<&'a Path>,
    pub batch_lines: usize,
    /// The key-ring file (`--keys`): signatures are verified only with it.
    pub keys: Option<&'a Path>,
}

pub fn ingest(args: IngestArgs<'_>, out: &mut dyn Write) -> Result<(), String> {
    let IngestArgs {
        db,
        file,
        outcomes: outcomes_path,
        hints: hints_path,
        batch_lines,
        keys,
    } = args;
    // Read before the store is opened: a bad hints or keys file changes nothing.
    let hints = match hints_path {
        Some(p) => read_hints(p)?,
        None => Vec::new(),
    };
    let keys = keys.map(read_keys).transpose()?;
    let options = EngineOptions {
        keys,
        ..EngineOptions::default()
    };
    let mut engine = Engine::open_with(db, options).map_err(|e| e.to_string())?;
    engine.add_state_hints(hints);
    let (reader, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = File::open(file).map_err(|e| format!("reading {file}: {e}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let reader = BufReader::with_capacity(1 << 20, reader);
    let mut outcomes_file = match outcomes_path {
        Some(p) => Some(OutcomeFile::new(
            File::create(p).map_err(|e| format!("creating {}: {e}", p.display()))?,
        )),
        None => None,
    };
    // The input lines handed to the engine, for writing outcome lines in input order.
    let fed = outcomes_file.as_ref().map(|f| Rc::clone(&f.fed));
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = match total_bytes {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });

    let mut summary = Summary::default();
    let mut batches = LineBatches::new(reader, batch_lines).read_ahead();
    // Bytes handed to the engine, for the progress bar.
    let fed_bytes = Rc::new(std::cell::Cell::new(0u64));
    let mut run = || -> Result<(), String> {
        let counted = batches.by_ref().inspect(|b| {
            fed_bytes.set(fed_bytes.get() + b.iter().map(|(_, l)| l.len() as u64).sum::<u64>());
            if let Some(fed) = &fed {
                fed.borrow_mut().extend(b.iter().map(|(n, _)| *n));
            }
        });
        engine
            .ingest_stream(counted, |outcomes| {
                report(&outcomes, &mut summary, outcomes_file.as_mut())?;
                if let Some(bar) = &progress {
                    bar.set_position(fed_bytes.get());
                    bar.set_message(format!("{} accepted", summary.accepted));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = batches.take_error() {
            return Err(format!("reading {file}: {e}"));
        }
        let outcomes = engine.finish().map_err(|e| e.to_string())?;
        report(&outcomes, &mut summary, outcomes_file.as_mut())
    };
    let ran = run();
    // Lines held back for an earlier input line are committed decisions: written even if the run
    // failed after them.
    if let Some(f) = outcomes_file.as_mut() {
        let written = f.write_held();
        ran?;
        written?;
    } else {
        ran?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let signatures = if engine.checks_signatures() {
        "checked"
    } else {
        "not_checked"
    };
    engine.close_for_exit();
    writeln!(out, "{}", summary_json(&summary, signatures)).map_err(|e| e.to_string())
}

/// The state hints of an NDJSON file (blank lines skipped); a bad line is an error naming it.
fn read_hints(path: &Path) -> Result<Vec<StateHint>, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut hints = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let hint = StateHint::from_json(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        hints.push(hint);
    }
    Ok(hints)
}

/// Counts outcomes, reports invalid lines on stderr and hands them to the outcomes file (flushed, so
/// every line in it describes a committed decision).
fn report(
    outcomes: &[EventOutcome],
    summary: &mut Summary,
    file: Option<&mut OutcomeFile>,
) -> Result<(), String> {
    summary.add(outcomes);
    for o in outcomes {
        if o.outcome == roomgraph::ingest::Outcome::Invalid {
            eprintln!(
                "roomgraph: {}",
                o.reason_text().as_deref().unwrap_or("invalid line")
            );
        }
    }
    match file {
        Some(f) => f.write(outcomes),
        None => Ok(()),
    }
}

/// The `--outcomes` file, written in input order. The engine decides a batch's events in its own order,
/// and an event waiting for parents is decided by a later batch (or reported `pending` at the end):
/// the line of a decided event is held back until every earlier input line has been written. Events
/// replayed from the pending set (no input line) are written as soon as they are decided.
struct OutcomeFile {
    out: BufWriter<File>,
    /// Input lines handed to the engine whose outcome is not written yet, in input order.
    fed: Rc<RefCell<VecDeque<u64>>>,
    /// Outcome lines waiting for an earlier input line's outcome, by input line.
    held: BTreeMap<u64, Vec<String>>,
}

impl OutcomeFile {
    fn new(file: File) -> OutcomeFile {
        OutcomeFile {
            out: BufWriter::new(file),
            fed: Rc::default(),
            held: BTreeMap::new(),
        }
    }

    /// Writes the lines of `outcomes` that are next in input order, holds back the others, flushes.
    fn write(&mut self, outcomes: &[EventOutcome]) -> Result<(), String> {
        let fed = Rc::clone(&self.fed);
        let mut fed = fed.borrow_mut();
        for o in outcomes {
            let text = serde_json::to_string(&OutcomeLine::new(o, o.line))
                .map_err(|e| format!("writing outcomes: {e}"))?;
            match (o.line, fed.front()) {
                (Some(n), Some(&next)) if n >= next => self.held.entry(n).or_default().push(text),
                // No input line, or one whose place has passed (an engine reporting a line twice).
                _ => self.put(&text)?,
            }
        }
        while let Some(&next) = fed.front() {
            let Some(lines) = self.held.remove(&next) else {
                break;
            };
            for text in lines {
                self.put(&text)?;
            }
            fed.pop_front();
        }
        self.flush()
    }

    /// Writes whatever is still held, in input order (after the engine's last report every input
    /// line has its outcome, so nothing is left unless an engine skipped a line).
    fn write_held(&mut self) -> Result<(), String> {
        for text in std::mem::take(&mut self.held).into_values().flatten() {
            self.put(&text)?;
        }
        self.fed.borrow_mut().clear();
        self.flush()
    }

    fn put(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.out, "{text}").map_err(|e| format!("writing outcomes: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("writing outcomes: {e}"))
    }
}

/// What `roomgraph state` prints the state of.
pub enum StateOf {
    Room(String),
    Event(String),
    /// A file of event ids (`-`: standard input).
    Events(String),
}

impl StateOf {
    pub fn from_args(
        room: Option<String>,
        event: Option<String>,
        events: Option<String>,
    ) -> Result<StateOf, String> {
        match (room, event, events) {
            (Some(room), None, None) => Ok(StateOf::Room(room)),
            (None, Some(event), None) => Ok(StateOf::Event(event)),
            (None, None, Some(file)) => Ok(StateOf::Events(file)),
            _ => {
                Err("give exactly one of --room ROOM_ID, --event EVENT_ID and --events FILE".into())
            }
        }
    }
}

pub fn state(db: &Path, of: StateOf, before: bool, out: &mut dyn Write) -> Result<(), String> {
    let reader = Reader::open(db).map_err(|e| e.to_string())?;
    let pos = if before {
        Position::Before
    } else {
        Position::After
    };
    let map = match of {
        StateOf::Room(room) => reader.current_state(&room).map_err(|e| e.to_string())?,
        StateOf::Event(event) => reader.state_at(&event, pos).map_err(|e| e.to_string())?,
        StateOf::Events(file) => return states(&reader, &file, pos, out),
    };
    writeln!(out, "{}", state_json(&map)).map_err(|e| e.to_string())
}

/// `state --events FILE`: one line `{"event_id", "state"}` per event id of FILE, in input order. An
/// id not in the store, or of an outlier (no state), gets `{"event_id", "error"}` in its place (and a
/// line on stderr); once every line is answered, the command fails if any id had no state. Any other
/// error stops it.
fn states(reader: &Reader, file: &str, pos: Position, out: &mut dyn Write) -> Result<(), String> {
    let input: Box<dyn BufRead> = if file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(file).map_err(|e| format!("reading {file}: {e}"))?,
        ))
    };
    let mut out = BufWriter::new(out);
    let (mut answered, mut unknown) = (0u64, 0u64);
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("reading {file}: {e}"))?;
        let event_id = line.trim();
        if event_id.is_empty() {
            continue;
        }
        answered += 1;
        let json = match reader.state_at(event_id, pos) {
            Ok(map) => serde_json::json!({"event_id": event_id, "state": state_json(&map)}),
            Err(e @ (IngestError::UnknownEvent(_) | IngestError::Outlier(_))) => {
                unknown += 1;
                eprintln!("roomgraph: {file}: line {}: {e}", n + 1);
                serde_json::json!({"event_id": event_id, "error": e.to_string()})
            }
            Err(e) => return Err(format!("{file}: line {}: {e}", n + 1)),
        };
        writeln!(out, "{json}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    if unknown > 0 {
        return Err(format!(
            "{unknown} of {answered} event ids unknown or outliers"
        ));
    }
    Ok(())
}

pub fn extremities(db: &Path, room: &str, out: &mut dyn Write) -> Result<(), String> {
    let reader = Reader::open(db).map_err(|e| e.to_string())?;
    let ids = reader.extremities(room).map_err(|e| e.to_string())?;
    writeln!(out, "{}", serde_json::json!(ids)).map_err(|e| e.to_string())
}

pub fn event(db: &Path, event_id: &str, out: &mut dyn Write) -> Result<(), String> {
    let reader = Reader::open(db).map_err(|e| e.to_string())?;
    let json = event_json(&reader, event_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unknown event {event_id}"))?;
    writeln!(out, "{json}").map_err(|e| e.to_string())
}

/// The server keys of a `--keys` file (`KeyRing::from_json`), shared by `ingest` and `serve`.
pub fn read_keys(path: &std::path::Path) -> Result<Arc<KeyRing>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let ring = KeyRing::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(ring))
}
