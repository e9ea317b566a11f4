//! `roomgraph ingest`, `roomgraph state` and `roomgraph event`: thin shells over [`roomgraph::ingest`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;

use std::sync::Arc;

use roomgraph::ingest::{
    Engine, EngineOptions, EventOutcome, LineBatches, Position, StateHint, StateMap, Summary,
};
use roomgraph::signatures::KeyRing;

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
    let keys = match keys {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let ring =
                KeyRing::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Arc::new(ring))
        }
        None => None,
    };
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
        Some(p) => Some(BufWriter::new(
            File::create(p).map_err(|e| format!("creating {}: {e}", p.display()))?,
        )),
        None => None,
    };
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
    let fed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = {
        let fed = std::rc::Rc::clone(&fed);
        batches.by_ref().inspect(move |b| {
            fed.set(fed.get() + b.iter().map(|(_, l)| l.len() as u64).sum::<u64>());
        })
    };
    engine
        .ingest_stream(counted, |outcomes| {
            report(&outcomes, &mut summary, outcomes_file.as_mut())?;
            if let Some(bar) = &progress {
                bar.set_position(fed.get());
                bar.set_message(format!("{} accepted", summary.accepted));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = batches.take_error() {
        return Err(format!("reading {file}: {e}"));
    }
    let outcomes = engine.finish().map_err(|e| e.to_string())?;
    report(&outcomes, &mut summary, outcomes_file.as_mut())?;
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

/// The summary line. Written field by field: the fields and their order are the command-line contract
/// (the counts as before, then `signatures`).
fn summary_json(summary: &Summary, signatures: &str) -> String {
    let Summary {
        accepted,
        rejected,
        soft_failed,
        pending,
        duplicates,
        invalid,
        outliers,
        deoutliered,
    } = *summary;
    format!(
        r#"{{"accepted":{accepted},"deoutliered":{deoutliered},"duplicates":{duplicates},"invalid":{invalid},"outliers":{outliers},"pending":{pending},"rejected":{rejected},"soft_failed":{soft_failed},"signatures":"{signatures}"}}"#
    )
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

/// Counts outcomes, reports invalid lines on stderr and appends them to the outcomes file (flushed, so
/// every line in it describes a committed decision).
fn report(
    outcomes: &[EventOutcome],
    summary: &mut Summary,
    file: Option<&mut BufWriter<File>>,
) -> Result<(), String> {
    summary.add(outcomes);
    for o in outcomes {
        if o.outcome == roomgraph::ingest::Outcome::Invalid {
            eprintln!(
                "roomgraph: {}",
                o.reason.as_deref().unwrap_or("invalid line")
            );
        }
    }
    if let Some(f) = file {
        for o in outcomes {
            let mut line = serde_json::json!({
                "event_id": o.event_id,
                "outcome": o.outcome.as_str(),
                "reason": o.reason.as_deref().unwrap_or(""),
            });
            if o.deoutliered {
                line["deoutliered"] = true.into();
            }
            writeln!(f, "{line}").map_err(|e| format!("writing outcomes: {e}"))?;
        }
        f.flush().map_err(|e| format!("writing outcomes: {e}"))?;
    }
    Ok(())
}

pub fn state(
    db: &Path,
    room: Option<&str>,
    event: Option<&str>,
    before: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let engine = Engine::open(db).map_err(|e| e.to_string())?;
    let map = match (room, event) {
        (Some(room), None) => engine.current_state(room).map_err(|e| e.to_string())?,
        (None, Some(event)) => {
            let pos = if before {
                Position::Before
            } else {
                Position::After
            };
            engine.state_at(event, pos).map_err(|e| e.to_string())?
        }
        _ => return Err("give exactly one of --room ROOM_ID and --event EVENT_ID".into()),
    };
    writeln!(out, "{}", nested(&map)).map_err(|e| e.to_string())
}

/// `{"<type>": {"<state_key>": "<event_id>"}}`.
pub fn nested(map: &StateMap) -> serde_json::Value {
    let mut out: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for ((t, s), e) in map {
        out.entry(t).or_default().insert(s, e);
    }
    serde_json::json!(out)
}

pub fn event(db: &Path, event_id: &str, out: &mut dyn Write) -> Result<(), String> {
    let engine = Engine::open(db).map_err(|e| e.to_string())?;
    let ev = engine
        .event(event_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unknown event {event_id}"))?;
    let pdu: serde_json::Value = serde_json::from_slice(&ev.pdu).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&ev.pdu).into_owned())
    });
    let json = serde_json::json!({
        "event_id": ev.event_id,
        "room_id": ev.room_id,
        "room_version": ev.room_version,
        "outcome": ev.status.as_str(),
        "reason": ev.reason,
        "redacted": ev.redacted,
        "pdu": pdu,
    });
    writeln!(out, "{json}").map_err(|e| e.to_string())
}
