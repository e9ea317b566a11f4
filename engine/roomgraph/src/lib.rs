//! roomgraph: a fast engine for Matrix room event graphs.
//!
//! This is the crate embedders depend on. It re-exports the pure core (`roomgraph-core`: PDUs, ids,
//! redaction, signatures, auth rules, state resolution) and adds the [`ingest`] engine over the
//! RocksDB [`store`]: the checks performed on receipt of a PDU, forks resolved as Synapse resolves
//! them, and the queries (state before or after an event, current state, forward extremities).
//! `ARCHITECTURE.md` maps the code.
//!
//! The examples use the 13-event sample room shipped in `datasets/`.
//!
//! # Receipt checks: parse a PDU
//!
//! [`Pdu::parse`] runs the format checks of the event's room version (schema, sizes, canonical JSON
//! where required), computes its event id and tells whether its content hash matches (a mismatch
//! means the event is stored redacted).
//!
//! ```
//! use roomgraph::{Pdu, RoomVersion};
//! # let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/sample-room-v11.ndjson"))?;
//! let create = sample.lines().next().expect("the sample has events");
//!
//! let version = RoomVersion::from_id("11")?;
//! let pdu = Pdu::parse(create.as_bytes(), version)?;
//! assert_eq!(&*pdu.event_id, "$Cl8MS3x5lasS29cjrFC8KNFIQFGF1Zg24tUxn7frtn8");
//! assert!(pdu.content_hash_matches());
//!
//! // Bad input is an error that says what is wrong, never a panic.
//! let err = Pdu::parse(br#"{"type": 5}"#, version).unwrap_err();
//! assert!(err.to_string().contains("type"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Authorization rules
//!
//! [`auth::AuthEvent`] holds a PDU with its auth facts extracted once;
//! [`auth::check_state_independent`] and [`auth::check_state_dependent`] apply the rules of the
//! event's room version, and a failure names its rule in that version's numbering.
//!
//! ```
//! use roomgraph::auth::{self, AuthEvent, AuthEventsState};
//! use roomgraph::{Pdu, RoomVersion};
//! # let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/sample-room-v11.ndjson"))?;
//! let version = RoomVersion::from_id("11")?;
//! let events: Vec<AuthEvent> = sample
//!     .lines()
//!     .map(|line| Ok(AuthEvent::new(Pdu::parse(line.as_bytes(), version)?.into_owned())))
//!     .collect::<Result<_, roomgraph::PduError>>()?;
//! let (create, join) = (&events[0], &events[1]);
//!
//! // Alice's join, checked against its own auth events (receipt check 4).
//! auth::check_state_independent(join, &[create], Some(create), &|_| false)?;
//! let auth_events = [create];
//! let state = AuthEventsState::new(&auth_events);
//! auth::check_state_dependent(join, &state, create)?;
//!
//! // The same join without the create event among its auth events fails, naming the rule.
//! let failure = auth::check_state_independent(join, &[], Some(create), &|_| false).unwrap_err();
//! assert!(failure.to_string().starts_with("rule "));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Ingest and state queries
//!
//! [`ingest::Engine`] keeps rooms in a RocksDB directory. Each call to [`ingest::Engine::ingest`] is
//! one atomic, durable commit; every event gets an [`ingest::Outcome`] (accepted, rejected,
//! soft-failed, pending, outlier, duplicate, invalid) and a reason when it is not accepted.
//!
//! ```
//! use roomgraph::ingest::{Engine, Outcome, Position};
//! # let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/sample-room-v11.ndjson"))?;
//! # let dir = tempfile::tempdir()?;
//! let mut engine = Engine::open(dir.path())?;
//! let lines: Vec<&str> = sample.lines().collect();
//! let outcomes = engine.ingest(&lines)?;
//! assert_eq!(outcomes.len(), 13);
//! assert!(outcomes.iter().all(|o| o.outcome == Outcome::Accepted));
//!
//! let room = "!sample:example.org";
//! let current = engine.current_state(room)?;
//! let alice = &current[&("m.room.member".to_owned(), "@alice:example.org".to_owned())];
//! let before_alice = engine.state_at(alice, Position::Before)?;
//! assert!(before_alice.len() < current.len());
//! assert_eq!(engine.extremities(room)?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # State resolution
//!
//! Stateless, from events the caller ships ([`resolve::ResolveRequest`], the `roomgraph resolve`
//! document), or on a stored room ([`ingest::Engine::resolve`], no graph built per call):
//!
//! ```
//! use roomgraph::ingest::{Engine, Position};
//! use roomgraph::resolve::{ResolveRequest, Resolver};
//! use roomgraph::{Pdu, RoomVersion};
//! # let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/sample-room-v11.ndjson"))?;
//! # let dir = tempfile::tempdir()?;
//! # let mut engine = Engine::open(dir.path())?;
//! let lines: Vec<&str> = sample.lines().collect();
//! engine.ingest(&lines)?;
//! let version = RoomVersion::from_id("11")?;
//! let ids = lines
//!     .iter()
//!     .map(|l| Ok(Pdu::parse(l.as_bytes(), version)?.event_id.to_string()))
//!     .collect::<Result<Vec<String>, roomgraph::PduError>>()?;
//! // Two views of the room: after its fourth and after its last event.
//! let early = engine.state_at(&ids[3], Position::After)?;
//! let late = engine.state_at(&ids[12], Position::After)?;
//!
//! let stored = engine.resolve("!sample:example.org", &[early.clone(), late.clone()])?;
//!
//! let document = serde_json::json!({
//!     "room_version": "11",
//!     "events": lines.iter().map(|l| serde_json::from_str::<serde_json::Value>(l)).collect::<Result<Vec<_>, _>>()?,
//!     "state_sets": [early.values().collect::<Vec<_>>(), late.values().collect::<Vec<_>>()],
//! });
//! let request = ResolveRequest::parse(document.to_string().as_bytes())?;
//! let prepared = request.prepare()?;
//! let stateless = prepared.resolve(&mut Resolver::new())?;
//! let named = stateless.to_named(&prepared.graph);
//! for ((event_type, state_key), event_id) in &stored {
//!     assert_eq!(&named[event_type][state_key], event_id);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use roomgraph_core::{
    JsonError, JsonObject, JsonValue, NumberPolicy, Pdu, PduError, RoomVersion, UnknownRoomVersion,
    auth, canonical_json, event_id, fast_hash, hashes, limits, pdu, redaction, resolve,
    room_version, signatures,
};
/// What an embedder sees of the RocksDB store: open options, statuses and errors. The layout itself
/// (column families, row codecs) is `roomgraph-store`'s own.
pub mod store {
    pub use roomgraph_store::{EventStatus, Store, StoreError, StoreOptions, SyncPolicy};
}

pub mod documents;
pub mod ingest;
