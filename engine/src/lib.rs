//! roomgraph: a fast engine for Matrix room event graphs.
//!
//! The core is pure (no I/O): [`room_version`] holds every per-version rule as data, [`canonical_json`]
//! parses and serialises JSON the way the spec's appendix demands, [`pdu`] turns bytes into a checked
//! [`pdu::Pdu`], and [`hashes`], [`event_id`] and [`redaction`] implement the spec's hashing, id and
//! redaction algorithms; [`signatures`] checks an event's signatures on receipt (never during state
//! resolution). See `ARCHITECTURE.md` for the map.

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod auth;
pub mod builder;
pub mod canonical_json;
pub mod event_id;
pub mod hashes;
#[cfg(feature = "store")]
pub mod ingest;
mod json_reader;
pub mod pdu;
pub mod redaction;
pub mod resolve;
pub mod room_generator;
pub mod room_version;
mod scan;
pub mod signatures;
#[cfg(feature = "store")]
pub mod store;

pub use canonical_json::{JsonError, JsonObject, JsonValue, NumberPolicy};
pub use pdu::{Pdu, PduError};
pub use room_version::{RoomVersion, UnknownRoomVersion};
