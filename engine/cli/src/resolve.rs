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
