//! What the `roomgraph` binary and the benchmark harness share beyond the library: the allocator
//! tuning of the binaries and the NDJSON batch reader of the command line.

pub mod allocator;
pub mod ndjson;
