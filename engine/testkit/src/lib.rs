//! Test and benchmark tooling for roomgraph, never linked into the library: [`builder`] makes
//! well-formed PDUs, [`room_generator`] simulates rooms over several servers (forks, merges, power
//! changes, rejected events), [`trace`] generates the synthetic ingest trace and [`join`] a
//! `send_join` response into a huge room.

pub mod builder;
pub mod join;
pub mod rng;
pub mod room_generator;
pub mod trace;
