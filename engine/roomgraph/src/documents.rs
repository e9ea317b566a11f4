//! The JSON documents roomgraph answers in, shared by every surface: the command line
//! (`roomgraph ingest --outcomes`, `state`, `event`), the socket server and the C API. Their shapes
//! are contracts (`README.md`, `docs/protocol.md`, `ffi/include/roomgraph.h`): one place writes them.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::auth::AuthEvent;
use crate::ingest::{Engine, EventOutcome, IngestError, Reader, StateMap, Summary};
use crate::pdu::Pdu;
use crate::resolve::{ConflictedSet, ResolveError, ResolveRequest, Resolver, Session, Step};
use crate::room_version::RoomVersion;

/// Lines per atomic commit of [`ingest_json`], as `roomgraph ingest`'s default `--batch-lines`.
pub const BATCH_LINES: usize = 8192;

/// The summary line. Written field by field: the fields and their order are the command-line contract
/// (the counts as before, then `signatures`).
pub fn summary_json(summary: &Summary, signatures: &str) -> String {
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

/// One line of the `--outcomes` file. Field order is the order on the line.
#[derive(serde::Serialize)]
pub struct OutcomeLine<'a> {
    /// The 1-based input line; `None` for an event replayed from the pending set of an earlier run.
    pub line: Option<u64>,
    pub event_id: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: String,
    /// On the second line of an outlier that joined the timeline (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deoutliered: bool,
}

impl<'a> OutcomeLine<'a> {
    /// The line of `outcome`, at input position `line`.
    pub fn new(outcome: &'a EventOutcome, line: Option<u64>) -> OutcomeLine<'a> {
        OutcomeLine {
            line,
            event_id: outcome.event_id.as_deref(),
            outcome: outcome.outcome.as_str(),
            reason: outcome.reason_text().unwrap_or_default(),
            deoutliered: outcome.deoutliered,
        }
    }
}

/// `{"<type>": {"<state_key>": "<event_id>"}}`.
pub fn state_json(map: &StateMap) -> serde_json::Value {
    let mut out: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for ((t, s), e) in map {
        out.entry(t).or_default().insert(s, e);
    }
    serde_json::json!(out)
}

/// A stored event as `roomgraph event` prints it (`None`: not in the store).
pub fn event_json(
    reader: &Reader,
    event_id: &str,
) -> Result<Option<serde_json::Value>, IngestError> {
    let Some(ev) = reader.event(event_id)? else {
        return Ok(None);
    };
    let pdu: serde_json::Value = serde_json::from_slice(&ev.pdu).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&ev.pdu).into_owned())
    });
    Ok(Some(serde_json::json!({
        "event_id": ev.event_id,
        "room_id": ev.room_id,
        "room_version": ev.room_version,
        "outcome": ev.status.as_str(),
        "reason": ev.reason,
        "redacted": ev.redacted,
        "pdu": pdu,
    })))
}

/// Ingests a request's PDUs as `roomgraph ingest` does (batches of 8192 lines, then `finish`):
/// `{"summary", "outcomes"}`, outcomes as the CLI's `--outcomes` lines with `line` the 1-based
/// position in `pdus` (`null` for events of earlier requests or runs decided now).
pub fn ingest_json(
    engine: &mut Engine,
    next_line: &mut u64,
    pdus: &[&[u8]],
) -> Result<String, IngestError> {
    let first = *next_line;
    let count = pdus.len() as u64;
    *next_line += count;
    let mut batches: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
    for (i, chunk) in pdus.chunks(BATCH_LINES).enumerate() {
        let base = first + (i * BATCH_LINES) as u64;
        batches.push(
            chunk
                .iter()
                .enumerate()
                .map(|(j, p)| (base + j as u64, p.to_vec()))
                .collect(),
        );
    }
    let mut outcomes: Vec<EventOutcome> = Vec::new();
    engine.ingest_stream(batches, |o| {
        outcomes.extend(o);
        Ok(())
    })?;
    outcomes.extend(engine.finish()?);
    let mut summary = Summary::default();
    summary.add(&outcomes);
    let local = |line: Option<u64>| {
        line.filter(|n| (first..first + count).contains(n))
            .map(|n| n - first + 1)
    };
    let mut lines: Vec<(Option<u64>, &EventOutcome)> =
        outcomes.iter().map(|o| (local(o.line), o)).collect();
    lines.sort_by_key(|(line, _)| *line);
    let outcome_lines: Vec<OutcomeLine<'_>> = lines
        .into_iter()
        .map(|(line, o)| OutcomeLine::new(o, line))
        .collect();
    let outcomes_json =
        serde_json::to_string(&outcome_lines).map_err(|e| IngestError::Caller(e.to_string()))?;
    let signatures = if engine.checks_signatures() {
        "checked"
    } else {
        "not_checked"
    };
    Ok(format!(
        r#"{{"summary":{},"outcomes":{outcomes_json}}}"#,
        summary_json(&summary, signatures)
    ))
}

/// The resolved state of a `roomgraph resolve` document as the command prints it (without the
/// newline): `{"<type>": {"<state_key>": "<event_id>"}}`. The socket's `resolve` and the C API's
/// `roomgraph_resolve_json` answer with it.
pub fn resolve_json(request: &[u8]) -> Result<String, ResolveError> {
    let mut request = ResolveRequest::parse(request)?;
    let events = std::mem::take(&mut request.events);
    let prepared = request.prepare_with(events)?;
    let state = prepared.resolve(&mut Resolver::new())?;
    serde_json::to_string(&state.to_named(&prepared.graph))
        .map_err(|e| ResolveError::Request(e.to_string()))
}

/// The document that starts a host-driven resolution (`resolve_begin` on the socket,
/// `roomgraph_resolve_begin` in C): `{"room_version", "state_sets": [[id, ...], ...], "events"?:
/// [PDU, ...], "rejected"?: [id, ...]}`. A host that computes the auth difference itself adds
/// `"auth_difference": [id, ...]` ([`Session::begin_with_difference`]), or gives
/// `"full_conflicted_set": [id, ...]` and `"base_state": {type: {state_key: id}}` in place of
/// `state_sets` ([`Session::begin_conflicted`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BeginDocument<'a> {
    room_version: String,
    #[serde(default)]
    state_sets: Option<Vec<Vec<String>>>,
    #[serde(default)]
    auth_difference: Option<Vec<String>>,
    #[serde(default)]
    full_conflicted_set: Option<Vec<String>>,
    #[serde(default)]
    base_state: Option<BTreeMap<String, BTreeMap<String, String>>>,
    #[serde(default, borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    rejected: Vec<String>,
}

/// The document that answers a `need`: `{"events": [PDU, ...], "rejected"?: [id, ...]}`, and on the
/// socket the `session` it belongs to.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyDocument<'a> {
    #[serde(default)]
    pub session: Option<u64>,
    #[serde(default, borrow)]
    pub events: Vec<&'a RawValue>,
    #[serde(default)]
    pub rejected: Vec<String>,
}

impl<'a> SupplyDocument<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<SupplyDocument<'a>, ResolveError> {
        serde_json::from_slice(bytes)
            .map_err(|e| ResolveError::Request(format!("not a resolve_supply document: {e}")))
    }
}

/// Starts a [`Session`] from a `resolve_begin` document.
pub fn resolve_begin(bytes: &[u8]) -> Result<(Session, Step), ResolveError> {
    let doc: BeginDocument<'_> = serde_json::from_slice(bytes)
        .map_err(|e| ResolveError::Request(format!("not a resolve_begin document: {e}")))?;
    let version = RoomVersion::from_id(&doc.room_version)
        .map_err(|e| ResolveError::Request(e.to_string()))?;
    let events = parse_events(&doc.events, version)?;
    match (doc.state_sets, doc.full_conflicted_set) {
        (Some(state_sets), None) if doc.base_state.is_none() => match doc.auth_difference {
            None => Session::begin(version, state_sets, events, &doc.rejected),
            Some(difference) => Session::begin_with_difference(
                version,
                state_sets,
                difference,
                events,
                &doc.rejected,
            ),
        },
        (None, Some(full)) if doc.auth_difference.is_none() => {
            let base_state = doc
                .base_state
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(t, keys)| keys.into_iter().map(move |(k, id)| (t.clone(), k, id)))
                .collect();
            let conflicted = ConflictedSet {
                events: full,
                base_state,
            };
            Session::begin_conflicted(version, conflicted, events, &doc.rejected)
        }
        _ => Err(ResolveError::Request(
            "a resolve_begin document has `state_sets` (and optionally `auth_difference`), or \
             `full_conflicted_set` with `base_state`"
                .into(),
        )),
    }
}

/// Supplies a session with the events of a `resolve_supply` document.
pub fn resolve_supply(
    session: &mut Session,
    doc: &SupplyDocument<'_>,
) -> Result<Step, ResolveError> {
    let events = parse_events(&doc.events, session.version())?;
    session.supply(events, &doc.rejected)
}

/// A step as JSON: `{"need": {"events": [id, ...]}}` or `{"done": {type: {state_key: id}}}`.
pub fn step_json(step: &Step) -> serde_json::Value {
    match step {
        Step::Need(ids) => serde_json::json!({ "need": { "events": ids } }),
        Step::Done(done) => {
            serde_json::json!({ "done": done.to_named() })
        }
        _ => serde_json::json!({}),
    }
}

/// PDUs of a document, parsed in `version` from the bytes as received.
fn parse_events(
    events: &[&RawValue],
    version: &'static RoomVersion,
) -> Result<Vec<AuthEvent>, ResolveError> {
    events
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            Pdu::parse(raw.get().as_bytes(), version)
                .map(|pdu| AuthEvent::new(pdu.into_owned()))
                .map_err(|e| ResolveError::Request(format!("events[{i}]: {e}")))
        })
        .collect()
}
