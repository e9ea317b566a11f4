//! roomgraph's end-to-end and differential suites, in one test binary (`cargo test -p roomgraph-tests`):
//! the core's rules and resolution against Synapse's scenarios and ruma, ingest against generated rooms
//! and mutated events. Shared fixtures and the ruma oracle live in the crate's library (`src/`).

mod auth_scenarios;
mod auth_vs_ruma;
mod core_auth;
mod core_resolve;
mod core_signatures;
mod ingest_forks;
mod ingest_generator;
mod ingest_join;
mod ingest_mutations;
mod pdu_vs_ruma;
mod resolve_scenarios;
mod resolve_session;
mod resolve_vs_ruma;
