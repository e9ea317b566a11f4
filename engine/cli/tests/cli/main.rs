//! The `roomgraph` binary end to end, in one test binary: each module runs the real binary
//! (`CARGO_BIN_EXE_roomgraph`) in real processes on real files, stores and sockets, and checks its
//! output contract (stdout, stderr, exit codes) against the library.

mod auth_check;
mod demo;
mod ingest;
mod pdu;
mod resolve;
mod serve;
