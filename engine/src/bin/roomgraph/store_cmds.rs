//! `roomgraph ingest`, `roomgraph state` and `roomgraph event`: thin shells over [`roomgraph::ingest`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;

use roomgraph::ingest::{
    Engine, EventOutcome, LineBatches, Position, StateHint, StateMap, Summary,
};

pub fn ingest(
    db: &Path,
    file: &str,
    outcomes_path: Option<&Path>,
    hints_path: Option<&Path>,
    batch_lines: usize,
    out: &mut dyn Write,
) -> Result<(), String> {
    // Read before the store is opened: a bad hints file changes nothing.
    let hints = match hints_path {
        Some(p) => read_hints(p)?,
        None => Vec::new(),
    };
    let mut engine = Engine::open(db).map_err(|e| e.to_string())?;
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
    let json = serde_json::json!({
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "soft_failed": summary.soft_failed,
        "pending": summary.pending,
        "duplicates": summary.duplicates,
        "invalid": summary.invalid,
        "outliers": summary.outliers,
        "deoutliered": summary.deoutliered,
    });
    engine.close_for_exit();
    writeln!(out, "{json}").map_err(|e| e.to_string())
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
