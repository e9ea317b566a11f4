//! `roomgraph auth-check [FILE|-]`: decide whether the event of a request document passes the receipt
//! checks 4 and 5 (see `roomgraph::auth::request`) and print `{"allowed": true}` or
//! `{"allowed": false, "stage", "rule", "reason"}`.

use std::io::Write;

use roomgraph::auth::request::evaluate;

/// Runs the command on `input`; returns the message for stderr when the input is malformed.
pub fn run(input: &[u8], out: &mut impl Write) -> Result<(), String> {
    let verdict = evaluate(input).map_err(|e| e.to_string())?;
    writeln!(out, "{}", verdict.to_json()).map_err(|e| format!("writing standard output: {e}"))
}
