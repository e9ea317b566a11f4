//! `roomgraph resolve [FILE|-] [--time] [--repeat N]`: resolve the state sets of a request document
//! (see `roomgraph::resolve::request`) and print `{"<type>": {"<state_key>": "<event_id>"}}`.
//!
//! `--time` prints `resolve_ns=<n>` on stderr: the best of `--repeat` runs of the resolution alone, from
//! parsed events (ids computed) and state sets to the resolved map — interning, graph and auth-chain work
//! included; file reading, JSON parsing and event-id hashing excluded.

use std::io::Write;
use std::time::Instant;

use roomgraph::resolve::{ResolveRequest, Resolver};

/// Runs the command on `input`; returns the message for stderr on failure.
pub fn run(input: &[u8], time: bool, repeat: u32, out: &mut impl Write) -> Result<(), String> {
    let request = ResolveRequest::parse(input).map_err(|e| e.to_string())?;
    let mut resolver = Resolver::new();
    let mut best = u128::MAX;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let events = request.events.clone();
        let start = Instant::now();
        let prepared = request.prepare_with(events).map_err(|e| e.to_string())?;
        let state = prepared.resolve(&mut resolver).map_err(|e| e.to_string())?;
        best = best.min(start.elapsed().as_nanos());
        last = Some((prepared, state));
    }
    let Some((prepared, state)) = last else {
        return Err("nothing resolved".into());
    };
    let named = state.to_named(&prepared.graph);
    let text = serde_json::to_string(&named).map_err(|e| e.to_string())?;
    writeln!(out, "{text}").map_err(|e| format!("writing standard output: {e}"))?;
    if time {
        eprintln!("resolve_ns={best}");
    }
    Ok(())
}

/// The resolved state of one request document as the command prints it (without the newline): the
/// same steps as [`run`] with one repetition. `roomgraph serve` answers `resolve` with it.
pub fn answer(input: &[u8]) -> Result<String, String> {
    let mut request = ResolveRequest::parse(input).map_err(|e| e.to_string())?;
    let events = std::mem::take(&mut request.events);
    let prepared = request.prepare_with(events).map_err(|e| e.to_string())?;
    let state = prepared
        .resolve(&mut Resolver::new())
        .map_err(|e| e.to_string())?;
    serde_json::to_string(&state.to_named(&prepared.graph)).map_err(|e| e.to_string())
}
