//! roomgraph's pure core: everything that decides, nothing that stores.
//!
//! [`room_version`] holds every per-version rule as data, [`canonical_json`] parses and serialises JSON
//! the way the spec's appendix demands, [`pdu`] turns bytes into a checked [`pdu::Pdu`], and
//! [`hashes`], [`event_id`] and [`redaction`] implement the spec's hashing, id and redaction
//! algorithms; [`signatures`] checks an event's signatures on receipt (never during state
//! resolution); [`auth`] holds the authorization rules of every room version and [`resolve`] state
//! resolution v1, v2 and v2.1. No files, sockets, clocks or databases: this crate builds without
//! RocksDB. Embedders use it through the `roomgraph` crate, which re-exports it.

pub mod auth;
pub mod canonical_json;
pub mod event_id;
pub mod fast_hash;
pub mod hashes;
pub mod limits;
pub mod pdu;
pub mod redaction;
pub mod resolve;
pub mod room_version;
pub mod signatures;

pub use canonical_json::{JsonError, JsonObject, JsonValue, NumberPolicy};
pub use pdu::{Pdu, PduError};
pub use room_version::{RoomVersion, UnknownRoomVersion};
