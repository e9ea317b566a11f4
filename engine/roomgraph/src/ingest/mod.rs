//! The ingest pipeline: PDUs in, each checked the way a homeserver checks a PDU received over
//! federation (spec server-server API "Checks performed on receipt of a PDU"), results in the
//! [`store`](crate::store).
//!
//! Per batch:
//! 1. **parse** (parallel, rayon): route each line to its room, parse it as a PDU of the room's version
//!    (format and size checks, event id), verify its signatures when the engine has keys (step 2; a
//!    failure is `invalid`, nothing stored, as Synapse drops it), check the content hash and redact on
//!    mismatch (step 3), and check that the servers that must sign it did (Synapse's
//!    `validate_event_for_room_version`; a failure rejects the event in the apply stage);
//! 2. **apply** (parallel across rooms, sequential inside a room): auth against the event's own
//!    `auth_events` (step 4, reject), against the state before it, i.e. the resolution of the states
//!    after its `prev_events` (step 5, reject), and against the room's current state (step 6, soft fail);
//!    events whose parents are unknown wait in a bounded, persisted pending set;
//! 3. **commit**: one atomic `WriteBatch` for the whole batch (events, edges, snapshots, extremities,
//!    counters, pending rows), fsynced by default.
//!
//! The room version comes from the room's create event (v12: the room id is derived from it). Signatures
//! are verified only with [`EngineOptions::keys`] (or [`Engine::set_keys`]); without keys, only their
//! presence is checked. Events replayed from the pending set are checked with the keys of the run that
//! replays them.

mod context;
pub mod hints;
mod outcome;
pub mod reader;
mod receipt;
pub mod room;

pub use hints::{HintError, StateHint, StateHints};
pub use outcome::{
    EventOutcome, IngestError, Outcome, Position, Reason, StateMap, StoredEvent,
    StoredResolveError, Summary,
};
pub use reader::Reader;
pub use room::ResolutionStats;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::{AuthEvent, AuthFailure};
use crate::canonical_json::{self, JsonValue, NumberPolicy};
use crate::pdu::Pdu;
use crate::redaction::redact;
use crate::room_version::RoomVersion;
use crate::signatures::{self, KeyRing};
use roomgraph_store::table::{AUTH_CHAINS, EVENTS, InRoom, PENDING};
use roomgraph_store::{Counters, Store, StoreError, StoreOptions, Writes};

use crate::fast_hash::FastMap;
use context::{BatchContext, Durable, KeyInterner};
use receipt::presence;
use room::{ParsedEvent, RoomWorker, SetChange};

/// Options for [`Engine::open_with`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub store: StoreOptions,
    /// Most events kept waiting for unknown parents (beyond it, new ones are reported, not kept).
    pub max_pending: usize,
    /// Self-check: resolve every fork both from the conflicted entries (the fast path) and from the
    /// full state sets, and reject with an `internal:` reason where they differ. For tests; slow.
    pub check_resolutions: bool,
    /// Server keys to verify event signatures with (receipt step 2). `None`: signatures are not
    /// verified, only their presence is checked.
    pub keys: Option<Arc<KeyRing>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            store: StoreOptions::default(),
            max_pending: 200_000,
            check_resolutions: false,
            keys: None,
        }
    }
}

/// A processed batch ready to commit, and what it makes durable.
struct Prepared {
    writes: Writes,
    durable: Durable,
}

/// Borrows the shared context field by field, so `self.rooms` stays free for mutable use.
macro_rules! batch_context {
    ($e:ident) => {
        BatchContext {
            store: &*$e.store,
            keys: &$e.keys,
            next_event: &$e.next_event,
            next_snapshot: &$e.next_snapshot,
            next_pending: &$e.next_pending,
            pending_count: &$e.pending_count,
            max_pending: $e.max_pending,
            check_resolutions: $e.check_resolutions,
            durable: $e.durable,
            hints: &$e.hints,
        }
    };
}

/// One input line.
struct Input {
    line: Option<u64>,
    bytes: Vec<u8>,
    pending_seq: Option<u64>,
    /// Store as an outlier whatever its prev events ([`Engine::ingest_outliers`]).
    outlier: bool,
}

/// A line that failed to parse: its outcome and the pending row to delete, if it had one.
type Unparsed = (EventOutcome, Option<u64>);

/// An event of a room without a stored create event, kept until the create event arrives.
struct Orphan {
    input: Input,
    room_id: String,
}

/// The engine: an open store plus the in-memory state of the rooms it has touched.
pub struct Engine {
    /// BatchContext with the commit of the previous batch in [`Engine::ingest_stream`].
    store: Arc<Store>,
    keys: KeyInterner,
    next_event: AtomicU64,
    next_snapshot: AtomicU64,
    next_pending: AtomicU64,
    pending_count: AtomicUsize,
    max_pending: usize,
    check_resolutions: bool,
    /// Server keys signatures are verified with (`None`: not verified).
    signing_keys: Option<Arc<KeyRing>>,
    /// What the last successful commit made durable.
    durable: Durable,
    rooms: FastMap<String, RoomWorker>,
    orphans: Vec<Orphan>,
    /// Pending rows found at open, replayed by the next ingest call.
    replay: Vec<Input>,
    /// State supplied by the host for events at gaps in the DAG.
    hints: StateHints,
    poisoned: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

/// The fields that route a line to its room, read without building the whole tree.
#[derive(Deserialize)]
struct Route<'a> {
    #[serde(borrow, default)]
    room_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    state_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CreateContent<'a> {
    #[serde(borrow, default)]
    room_version: Option<&'a RawValue>,
}

fn raw_str<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    raw.and_then(|r| serde_json::from_str::<Cow<'a, str>>(r.get()).ok())
}

/// Where a line goes after routing.
enum Routed {
    Invalid {
        outcome: EventOutcome,
        pending_seq: Option<u64>,
    },
    /// A create event, parsed (its version comes from its content).
    Create(Box<ParsedEvent>, &'static RoomVersion),
    /// An event of a loaded room, parsed.
    Event {
        room_id: String,
        item: Box<ParsedEvent>,
    },
    /// An event of a room not loaded yet.
    Late { room_id: String, input: Input },
}

impl Engine {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Engine, IngestError> {
        Engine::open_with(path, EngineOptions::default())
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        options: EngineOptions,
    ) -> Result<Engine, IngestError> {
        let store = Store::open_with(path, &options.store)?;
        if store.chain_rebuild_pending()? {
            rebuild_chain_index(&store)?;
        }
        let Counters {
            next_event,
            next_state_key,
            next_snapshot,
        } = store.counters()?;
        let rows = store.scan(&PENDING, &())?;
        let mut next_pending = 1;
        let mut replay = Vec::with_capacity(rows.len());
        for (seq, v) in rows {
            next_pending = next_pending.max(seq + 1);
            replay.push(Input {
                line: None,
                bytes: v,
                pending_seq: Some(seq),
                outlier: false,
            });
        }
        Ok(Engine {
            store: Arc::new(store),
            keys: KeyInterner::new(next_state_key),
            next_event: AtomicU64::new(next_event.max(1)),
            next_snapshot: AtomicU64::new(next_snapshot.max(1)),
            next_pending: AtomicU64::new(next_pending),
            pending_count: AtomicUsize::new(0),
            max_pending: options.max_pending,
            check_resolutions: options.check_resolutions,
            signing_keys: options.keys,
            durable: Durable {
                event: next_event.max(1),
                snapshot: next_snapshot.max(1),
            },
            rooms: FastMap::default(),
            orphans: Vec::new(),
            replay,
            hints: StateHints::default(),
            poisoned: false,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Adds state supplied by the host for events at gaps in the DAG (see [`hints`]). They serve the
    /// events ingested by this engine from now on; they are not persisted.
    pub fn add_state_hints(&mut self, hints: impl IntoIterator<Item = StateHint>) {
        for h in hints {
            self.hints.insert(h);
        }
    }

    /// Replaces the keys signatures are verified with (`None`: not verified) for the next ingest calls.
    pub fn set_keys(&mut self, keys: Option<Arc<KeyRing>>) {
        self.signing_keys = keys;
    }

    /// Whether event signatures are verified (the engine has keys).
    pub fn checks_signatures(&self) -> bool {
        self.signing_keys.is_some()
    }

    /// Ingests a batch of federation-format PDUs (any rooms, any order), numbering lines from 1.
    /// Returns the outcome of every event that was decided; events still waiting for parents are
    /// reported by [`Engine::finish`].
    pub fn ingest<B: AsRef<[u8]>>(
        &mut self,
        batch: &[B],
    ) -> Result<Vec<EventOutcome>, IngestError> {
        let lines: Vec<(u64, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64 + 1, b.as_ref()))
            .collect();
        self.ingest_lines(&lines)
    }

    /// Ingests `(line number, bytes)` pairs as one atomic commit.
    pub fn ingest_lines(
        &mut self,
        lines: &[(u64, &[u8])],
    ) -> Result<Vec<EventOutcome>, IngestError> {
        let batch: Vec<(u64, Vec<u8>)> = lines.iter().map(|(n, b)| (*n, b.to_vec())).collect();
        let mut outcomes = Vec::new();
        self.ingest_stream(std::iter::once(batch), |o| {
            outcomes = o;
            Ok(())
        })?;
        Ok(outcomes)
    }

    /// Ingests a stream of batches of `(line number, bytes)` pairs, each batch one atomic commit, and
    /// hands each batch's outcomes to `committed` once that batch is durable — the same decisions as
    /// calling [`Engine::ingest_lines`] per batch, faster: batch N+1 is parsed and applied while batch
    /// N is written. Applying needs nothing of batch N from the store: the rooms keep in memory
    /// whatever is not durable yet ([`Durable`]). Events of other rooms become visible to a room's
    /// lookups once committed, as they do within a batch: an event citing one waits until then.
    /// Batches are written in order, one at a time; a failed write poisons the engine, and the batch
    /// applied beside it is never written.
    pub fn ingest_stream(
        &mut self,
        batches: impl IntoIterator<Item = Vec<(u64, Vec<u8>)>>,
        committed: impl FnMut(Vec<EventOutcome>) -> Result<(), String>,
    ) -> Result<(), IngestError> {
        self.ingest_stream_as(batches, false, committed)
    }

    /// Stores every event of a batch as an **outlier**, as Synapse persists the `state` and
    /// `auth_chain` of a `send_join` response or a `/state` answer (`_auth_and_persist_outliers`):
    /// each is checked against its own auth events only (spec step 4), in any input order (an event
    /// whose auth events are not stored yet waits for them, and is applied as soon as the last one
    /// is); its prev events are not looked at. The state of the joined room is then given to the
    /// join event with a [`StateHint::Before`] before it is ingested ([`Engine::ingest`]).
    ///
    /// These outliers do not wait for their prev events: they join the timeline when received again
    /// once their prev events are in it (backfill), as any outlier does. One atomic commit; events
    /// still waiting at the end are reported by [`Engine::finish`], and are treated as ordinary
    /// events if replayed from the persisted pending set by a later engine session.
    pub fn ingest_outliers<B: AsRef<[u8]>>(
        &mut self,
        batch: &[B],
    ) -> Result<Vec<EventOutcome>, IngestError> {
        let batch: Vec<(u64, Vec<u8>)> = batch
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64 + 1, b.as_ref().to_vec()))
            .collect();
        let mut outcomes = Vec::new();
        self.ingest_stream_as(std::iter::once(batch), true, |o| {
            outcomes = o;
            Ok(())
        })?;
        Ok(outcomes)
    }

    /// [`Engine::ingest_stream`]; with `outliers`, every new event is stored as an outlier
    /// ([`Engine::ingest_outliers`]).
    fn ingest_stream_as(
        &mut self,
        batches: impl IntoIterator<Item = Vec<(u64, Vec<u8>)>>,
        outliers: bool,
        mut committed: impl FnMut(Vec<EventOutcome>) -> Result<(), String>,
    ) -> Result<(), IngestError> {
        if self.poisoned {
            return Err(IngestError::Poisoned);
        }
        // A processed batch whose writes are not yet committed.
        let mut inflight: Option<(Prepared, Vec<EventOutcome>)> = None;
        for batch in batches {
            let mut inputs: Vec<Input> = std::mem::take(&mut self.replay);
            inputs.extend(batch.into_iter().map(|(n, mut bytes)| {
                let (start, end) = trimmed_range(&bytes);
                bytes.truncate(end);
                bytes.drain(..start);
                Input {
                    line: Some(n),
                    bytes,
                    pending_seq: None,
                    outlier: outliers,
                }
            }));
            let store = Arc::clone(&self.store);
            let previous = inflight.take();
            let ((result, outcomes, writes), written) = rayon::join(
                || {
                    let routes = self.route_all(inputs);
                    let mut outcomes = Vec::new();
                    let mut writes = Writes::default();
                    let result = self.process(routes, &mut outcomes, &mut writes);
                    (result, outcomes, writes)
                },
                move || previous.map(|(p, o)| (store.commit(p.writes), p.durable, o)),
            );
            if let Some((written, durable, done)) = written {
                self.write_result(written, durable)?;
                if let Err(e) = committed(done) {
                    // The batch applied beside this commit is in memory only.
                    self.poisoned = true;
                    return Err(IngestError::Caller(e));
                }
            }
            inflight = Some((self.prepare_commit(result, writes)?, outcomes));
        }
        if let Some((prepared, outcomes)) = inflight {
            let result = self.store.commit(prepared.writes);
            self.write_result(result, prepared.durable)?;
            committed(outcomes).map_err(IngestError::Caller)?;
        }
        Ok(())
    }

    /// Closes the store and leaves the in-memory room state (parsed events, auth chains, state views:
    /// millions of small allocations after a large ingest) to the operating system instead of freeing
    /// it piece by piece, which took about 7 % of a 300 000-event ingest. For a process about to exit;
    /// everything is durable already, as after every batch.
    pub fn close_for_exit(mut self) {
        let rooms = std::mem::take(&mut self.rooms);
        std::mem::forget(rooms);
    }

    /// How the fork resolutions of the rooms held in memory were computed (for benchmarks and tests).
    pub fn resolution_stats(&self) -> ResolutionStats {
        let mut total = ResolutionStats::default();
        for room in self.rooms.values() {
            total.partial += room.stats().partial;
            total.full += room.stats().full;
        }
        total
    }

    /// Retries events whose missing parents arrived in other rooms, then reports what is still pending
    /// (it stays in the persisted pending set for later batches).
    pub fn finish(&mut self) -> Result<Vec<EventOutcome>, IngestError> {
        if self.poisoned {
            return Err(IngestError::Poisoned);
        }
        let mut outcomes = Vec::new();
        if !self.replay.is_empty() {
            outcomes = self.ingest_lines(&[])?;
        }
        loop {
            let mut writes = Writes::default();
            let mut progressed = 0usize;
            let result = (|| -> Result<(), IngestError> {
                let ctx = batch_context!(self);
                let mut work: Vec<(String, Vec<ParsedEvent>)> = Vec::new();
                for (id, room) in self.rooms.iter_mut() {
                    let ready = room.take_unblocked(&ctx, &mut writes)?;
                    if !ready.is_empty() {
                        work.push((id.clone(), ready));
                    }
                }
                progressed = work.iter().map(|w| w.1.len()).sum();
                if progressed > 0 {
                    self.apply_rooms(work, &mut outcomes, &mut writes)?;
                }
                Ok(())
            })();
            self.commit(result, writes)?;
            if progressed == 0 {
                break;
            }
        }
        let mut pending: Vec<EventOutcome> = Vec::new();
        {
            let ctx = batch_context!(self);
            for room in self.rooms.values_mut() {
                pending.extend(room.pending_outcomes(&ctx)?);
            }
        }
        for o in &self.orphans {
            let id = Pdu::parse(
                &o.input.bytes,
                RoomVersion::from_id("11").unwrap_or(&RoomVersion::all()[10]),
            )
            .ok()
            .map(|p| p.event_id.to_string());
            pending.push(EventOutcome {
                line: o.input.line,
                event_id: id,
                outcome: Outcome::Pending,
                reason: Some(Reason::CreateNotStored(o.room_id.clone())),
                deoutliered: false,
            });
        }
        pending.sort_by(|a, b| {
            a.line
                .cmp(&b.line)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        outcomes.extend(pending);
        Ok(outcomes)
    }

    fn batch_context(&self) -> BatchContext<'_> {
        batch_context!(self)
    }

    fn commit(
        &mut self,
        result: Result<(), IngestError>,
        writes: Writes,
    ) -> Result<(), IngestError> {
        let prepared = self.prepare_commit(result, writes)?;
        let result = self.store.commit(prepared.writes);
        self.write_result(result, prepared.durable)
    }

    /// Adds the batch-wide rows (new state keys, extremities, counters) to a processed batch's writes;
    /// a failed batch poisons the engine (in-memory room state may be ahead of the store).
    fn prepare_commit(
        &mut self,
        result: Result<(), IngestError>,
        mut writes: Writes,
    ) -> Result<Prepared, IngestError> {
        if let Err(e) = result {
            self.poisoned = true;
            return Err(e);
        }
        self.keys.drain_new(&mut writes);
        for room in self.rooms.values_mut() {
            room.flush(&mut writes);
        }
        let durable = Durable {
            event: self.next_event.load(Ordering::Relaxed),
            snapshot: self.next_snapshot.load(Ordering::Relaxed),
        };
        if !writes.is_empty() {
            Store::put_counters(
                &mut writes,
                Counters {
                    next_event: durable.event,
                    next_state_key: self.keys.next_number(),
                    next_snapshot: durable.snapshot,
                },
            );
        }
        Ok(Prepared { writes, durable })
    }

    /// Takes a commit's result: on success what the batch numbered is durable; a failure poisons the
    /// engine.
    fn write_result(
        &mut self,
        result: Result<(), StoreError>,
        durable: Durable,
    ) -> Result<(), IngestError> {
        if let Err(e) = result {
            self.poisoned = true;
            return Err(e.into());
        }
        self.durable = durable;
        Ok(())
    }

    /// Routes and parses a batch (no store access, no room state changed): runs beside the previous
    /// batch's commit in [`Engine::ingest_stream`].
    fn route_all(&self, inputs: Vec<Input>) -> Vec<Routed> {
        let rooms = &self.rooms;
        let keys = self.signing_keys.as_deref();
        inputs
            .into_par_iter()
            .map(|input| route(input, rooms, keys))
            .collect()
    }

    /// Applies one routed batch (loading rooms, parsing events of rooms that were not loaded yet).
    fn process(
        &mut self,
        routes: Vec<Routed>,
        outcomes: &mut Vec<EventOutcome>,
        writes: &mut Writes,
    ) -> Result<(), IngestError> {
        let mut by_room: FastMap<String, Vec<ParsedEvent>> = FastMap::default();
        let mut late: Vec<(String, Input)> = Vec::new();
        for r in routes {
            match r {
                Routed::Invalid {
                    outcome,
                    pending_seq,
                } => {
                    if let Some(seq) = pending_seq {
                        writes.remove(&PENDING, &seq);
                    }
                    outcomes.push(outcome);
                }
                Routed::Create(item, version) => {
                    let room_id = item.event.pdu.room_id.to_string();
                    self.ensure_room(&room_id, Some(version))?;
                    by_room.entry(room_id).or_default().push(*item);
                }
                Routed::Event { room_id, item } => by_room.entry(room_id).or_default().push(*item),
                Routed::Late { room_id, input } => late.push((room_id, input)),
            }
        }
        // Events of rooms not loaded during routing: load the room, or keep them as orphans until its
        // create event is stored.
        let mut to_parse: Vec<(String, &'static RoomVersion, Input)> = Vec::new();
        let orphans = std::mem::take(&mut self.orphans);
        self.pending_count
            .fetch_sub(orphans.len(), Ordering::Relaxed);
        let candidates = orphans
            .into_iter()
            .map(|o| (o.room_id, o.input))
            .chain(late);
        for (room_id, mut input) in candidates {
            self.ensure_room(&room_id, None)?;
            if let Some(room) = self.rooms.get(&room_id) {
                to_parse.push((room_id, room.version, input));
                continue;
            }
            // An orphan joins the persisted pending set (bounded like the rest of it).
            if input.pending_seq.is_none() {
                if self.pending_count.load(Ordering::Relaxed) >= self.max_pending {
                    outcomes.push(EventOutcome {
                        line: input.line,
                        event_id: None,
                        outcome: Outcome::Pending,
                        reason: Some(Reason::UnknownRoomPendingSetFull {
                            limit: self.max_pending,
                            room_id: room_id.clone(),
                        }),
                        deoutliered: false,
                    });
                    continue;
                }
                let seq = self.next_pending.fetch_add(1, Ordering::Relaxed);
                writes.insert(&PENDING, &seq, input.bytes.as_slice());
                input.pending_seq = Some(seq);
            }
            self.pending_count.fetch_add(1, Ordering::Relaxed);
            self.orphans.push(Orphan { input, room_id });
        }
        let keys = self.signing_keys.as_deref();
        let parsed: Vec<Result<(String, ParsedEvent), Unparsed>> = to_parse
            .into_par_iter()
            .map(|(room_id, version, input)| {
                let seq = input.pending_seq;
                parse_item(input, version, keys)
                    .map(|item| (room_id, item))
                    .map_err(|o| (o, seq))
            })
            .collect();
        for p in parsed {
            match p {
                Ok((room_id, item)) => by_room.entry(room_id).or_default().push(item),
                Err((o, seq)) => {
                    if let Some(seq) = seq {
                        writes.remove(&PENDING, &seq);
                    }
                    outcomes.push(o);
                }
            }
        }
        let work: Vec<(String, Vec<ParsedEvent>)> = by_room.into_iter().collect();
        self.apply_rooms(work, outcomes, writes)
    }

    /// Makes sure a room is in memory: loaded from the store, or new (when `new_version` is given, for a
    /// create event of an unknown room).
    fn ensure_room(
        &mut self,
        room_id: &str,
        new_version: Option<&'static RoomVersion>,
    ) -> Result<(), IngestError> {
        if self.rooms.contains_key(room_id) {
            return Ok(());
        }
        if let Some(rec) = self.store.room(room_id)? {
            let ctx = self.batch_context();
            let loaded = RoomWorker::load(&ctx, room_id, &rec)?;
            self.rooms.insert(room_id.to_owned(), loaded);
        } else if let Some(version) = new_version {
            self.rooms.insert(
                room_id.to_owned(),
                RoomWorker::new(room_id.to_owned(), version),
            );
        }
        Ok(())
    }

    fn apply_rooms(
        &mut self,
        work: Vec<(String, Vec<ParsedEvent>)>,
        outcomes: &mut Vec<EventOutcome>,
        writes: &mut Writes,
    ) -> Result<(), IngestError> {
        let mut jobs: Vec<(RoomWorker, Vec<ParsedEvent>)> = Vec::with_capacity(work.len());
        for (room_id, items) in work {
            match self.rooms.remove(&room_id) {
                Some(room) => jobs.push((room, items)),
                None => {
                    for item in items {
                        outcomes.push(EventOutcome {
                            line: item.line,
                            event_id: Some(item.event.pdu.event_id.to_string()),
                            outcome: Outcome::Pending,
                            reason: Some(Reason::UnknownRoom(room_id.clone())),
                            deoutliered: false,
                        });
                    }
                }
            }
        }
        // Largest room first: a huge room is the batch's critical path, so it starts at once while the
        // other thread works through the small ones.
        jobs.sort_by_key(|(_, items)| std::cmp::Reverse(items.len()));
        let ctx = self.batch_context();
        let results: Vec<(RoomWorker, Result<room::RoomOutput, StoreError>)> = jobs
            .into_par_iter()
            .map(|(mut room, items)| {
                let r = room.run(&ctx, items);
                (room, r)
            })
            .collect();
        let mut first_err = None;
        let n_outcomes = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|out| out.outcomes.len())
            .sum();
        outcomes.reserve(n_outcomes);
        for (room, r) in results {
            match r {
                Ok(out) => {
                    outcomes.extend(out.outcomes);
                    writes.append(out.writes);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            self.rooms.insert(room.room_id.clone(), room);
        }
        // Outcomes in input order (rooms ran in any order); replayed pending events (no line) first.
        outcomes.sort_by_key(|o| o.line);
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    // ----- queries (read the store: what they return is what is durable) -----

    /// Queries over this engine's store ([`Reader`]; it shares the open store).
    pub fn reader(&self) -> Reader {
        Reader::over(Arc::clone(&self.store))
    }

    /// A stored event with its outcome ([`Reader::event`]).
    pub fn event(&self, event_id: &str) -> Result<Option<StoredEvent>, IngestError> {
        self.reader().event(event_id)
    }

    /// The state before or after an event ([`Reader::state_at`]).
    pub fn state_at(&self, event_id: &str, position: Position) -> Result<StateMap, IngestError> {
        self.reader().state_at(event_id, position)
    }

    /// The current state of a room ([`Reader::current_state`]).
    pub fn current_state(&self, room_id: &str) -> Result<StateMap, IngestError> {
        self.reader().current_state(room_id)
    }

    /// The auth chain of a stored state event ([`Reader::auth_chain`]).
    pub fn auth_chain(&self, event_id: &str) -> Result<Vec<String>, IngestError> {
        self.reader().auth_chain(event_id)
    }

    /// The rooms of the store ([`Reader::rooms`]).
    pub fn rooms(&self) -> Result<Vec<String>, IngestError> {
        self.reader().rooms()
    }

    /// The forward extremities of a room ([`Reader::extremities`]).
    pub fn extremities(&self, room_id: &str) -> Result<Vec<String>, IngestError> {
        self.reader().extremities(room_id)
    }

    /// Resolves named state sets of a stored room with the room's algorithm, on the room's persistent
    /// event graph and chain cover index: no graph is built per call, and the work is that of the
    /// conflict (the conflicted entries, the auth difference, the unconflicted events the auth checks
    /// read), not of the state's size or the room's history. Every event named must be a stored,
    /// non-outlier state event of the room at its own `(type, state_key)`.
    pub fn resolve(
        &mut self,
        room_id: &str,
        state_sets: &[StateMap],
    ) -> Result<StateMap, IngestError> {
        if self.poisoned {
            return Err(IngestError::Poisoned);
        }
        if !self.rooms.contains_key(room_id) {
            let rec = self
                .store
                .room(room_id)?
                .ok_or_else(|| IngestError::UnknownRoom(room_id.to_owned()))?;
            let ctx = self.batch_context();
            let loaded = RoomWorker::load(&ctx, room_id, &rec)?;
            self.rooms.insert(room_id.to_owned(), loaded);
        }
        let ctx = batch_context!(self);
        let room = self
            .rooms
            .get_mut(room_id)
            .ok_or_else(|| IngestError::UnknownRoom(room_id.to_owned()))?;
        let Some((first, rest)) = state_sets.split_first() else {
            return Ok(StateMap::new());
        };
        // The first set in full; the others as their differences from it, found by walking the sorted
        // maps side by side, so entries equal to the first set's cost a string comparison each.
        let first: Vec<(&(String, String), &String)> = first.iter().collect();
        let mut base: Vec<u64> = Vec::with_capacity(first.len());
        for &(key, id) in &first {
            base.push(entry_number(room, &ctx, room_id, 0, key, id)?);
        }
        // What names the events of the other sets' changes in the answer.
        let mut named: FastMap<u64, (&(String, String), &String)> = FastMap::default();
        let mut overlays: Vec<Vec<SetChange>> = Vec::with_capacity(rest.len());
        for (i, set) in rest.iter().enumerate() {
            let mut changes = Vec::new();
            let mut a = 0;
            let mut other = set.iter().peekable();
            loop {
                let order = match (first.get(a), other.peek()) {
                    (None, None) => break,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(&(ka, _)), Some(&(kb, _))) => ka.cmp(kb),
                };
                match order {
                    std::cmp::Ordering::Less => {
                        changes.push(SetChange::Remove(base[a]));
                        a += 1;
                    }
                    std::cmp::Ordering::Greater | std::cmp::Ordering::Equal => {
                        let Some((key, id)) = other.next() else {
                            break;
                        };
                        let same = order == std::cmp::Ordering::Equal && first[a].1 == id;
                        if order == std::cmp::Ordering::Equal {
                            a += 1;
                        }
                        if !same {
                            let n = entry_number(room, &ctx, room_id, i + 1, key, id)?;
                            named.insert(n, (key, id));
                            changes.push(SetChange::Set(n));
                        }
                    }
                }
            }
            overlays.push(changes);
        }
        let delta = room.resolve_sets(&ctx, &base, &overlays)?;
        // The first set's entries that survive, in its (sorted) order, so the map is built in one
        // pass; then the few resolved events it does not hold.
        let removed: FastMap<u64, ()> = delta.removed.iter().map(|&e| (e, ())).collect();
        let mut out: StateMap = first
            .iter()
            .zip(&base)
            .filter(|(_, n)| !removed.contains_key(n))
            .map(|(&(key, id), _)| (key.clone(), id.clone()))
            .collect();
        for e in delta.added {
            match named.get(&e) {
                Some(&(key, id)) => {
                    out.insert(key.clone(), id.clone());
                }
                None => {
                    let event = room.auth_event(&ctx, e)?;
                    let pdu = &event.pdu;
                    let Some(state_key) = pdu.state_key.as_deref() else {
                        return Err(StoredResolveError::NotState(pdu.event_id.to_string()).into());
                    };
                    out.insert(
                        (pdu.event_type.to_string(), state_key.to_owned()),
                        pdu.event_id.to_string(),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// The number of the event a state set names at `key`, checked to be a stored event of the room at
/// that key (`set` is the set's position, for the error).
fn entry_number(
    room: &mut RoomWorker,
    ctx: &BatchContext<'_>,
    room_id: &str,
    set: usize,
    key: &(String, String),
    id: &str,
) -> Result<u64, IngestError> {
    let n = room
        .event_num(ctx, id)?
        .ok_or_else(|| IngestError::UnknownEvent(id.to_owned()))?;
    let event = room.auth_event(ctx, n)?;
    let pdu = &event.pdu;
    if *pdu.room_id != *room_id
        || *pdu.event_type != *key.0
        || pdu.state_key.as_deref() != Some(key.1.as_str())
    {
        return Err(StoredResolveError::WrongKey {
            set,
            event_type: key.0.clone(),
            state_key: key.1.clone(),
            event_id: id.to_owned(),
        }
        .into());
    }
    Ok(n)
}

/// The range of `b` without leading and trailing ASCII whitespace.
fn trimmed_range(b: &[u8]) -> (usize, usize) {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    (start, end.max(start))
}

/// Routes one line: create events are parsed with the version in their content; other events are parsed
/// right away when their room is loaded, else later.
fn route(input: Input, rooms: &FastMap<String, RoomWorker>, keys: Option<&KeyRing>) -> Routed {
    let input = match route_fast(input, rooms, keys) {
        Ok(routed) => return routed,
        Err(input) => input,
    };
    let invalid = |input: &Input, detail: String| Routed::Invalid {
        outcome: EventOutcome {
            line: input.line,
            event_id: None,
            outcome: Outcome::Invalid,
            reason: Some(Reason::Invalid {
                line: input.line,
                detail,
            }),
            deoutliered: false,
        },
        pending_seq: input.pending_seq,
    };
    let r: Route<'_> = match serde_json::from_slice(&input.bytes) {
        Ok(r) => r,
        Err(e) => {
            let detail = match canonical_json::parse(&input.bytes, NumberPolicy::Lenient) {
                Err(je) => je.to_string(),
                Ok(JsonValue::Object(_)) => format!("invalid JSON: {e}"),
                Ok(other) => format!("a PDU must be a JSON object, found {}", other.type_name()),
            };
            return invalid(&input, detail);
        }
    };
    let event_type = raw_str(r.event_type);
    let is_create = event_type.as_deref() == Some("m.room.create")
        && raw_str(r.state_key).as_deref() == Some("");
    if is_create {
        let content: Option<CreateContent<'_>> =
            r.content.and_then(|c| serde_json::from_str(c.get()).ok());
        let version_id = match content.and_then(|c| c.room_version) {
            None => Cow::Borrowed("1"),
            Some(raw) => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
                Ok(v) => v,
                Err(_) => {
                    return invalid(
                        &input,
                        "m.room.create: `content.room_version` is not a string".to_owned(),
                    );
                }
            },
        };
        let version = match RoomVersion::from_id(&version_id) {
            Ok(v) => v,
            Err(e) => return invalid(&input, format!("m.room.create: {e}")),
        };
        let seq = input.pending_seq;
        return match parse_item(input, version, keys) {
            Ok(item) => Routed::Create(Box::new(item), version),
            Err(outcome) => Routed::Invalid {
                outcome,
                pending_seq: seq,
            },
        };
    }
    let Some(room_id) = raw_str(r.room_id) else {
        return invalid(
            &input,
            "pdu: key `room_id` is required and must be a string".to_owned(),
        );
    };
    let room_id = room_id.into_owned();
    match rooms.get(&room_id) {
        Some(room) => {
            let seq = input.pending_seq;
            routed_event(room_id, seq, parse_item(input, room.version, keys))
        }
        None => Routed::Late { room_id, input },
    }
}

/// Steps 1–3 for one line: format, sizes and event id, then [`receive`].
fn parse_item(
    input: Input,
    version: &'static RoomVersion,
    keys: Option<&KeyRing>,
) -> Result<ParsedEvent, EventOutcome> {
    let checked = match Pdu::parse(&input.bytes, version) {
        Ok(parsed) => receive(&parsed, version, keys),
        Err(e) => Err(e.to_string()),
    };
    finish_item(input, checked)
}

/// A parsed line as the apply stage takes it: the detached auth form, the redacted canonical form when
/// the content hash did not match, and a failed signature-presence check (the event is rejected).
struct Received {
    event: AuthEvent,
    redacted: Option<Vec<u8>>,
    unsigned: Option<Box<AuthFailure>>,
}

/// Steps 2 and 3 for a parsed PDU, in Synapse's order (`_check_sigs_and_hash`, then
/// `validate_event_for_room_version`): signatures verified with `keys` when given (a failure is the
/// reason the line is invalid: Synapse drops the event); the content hash (on a mismatch the redacted
/// form is kept, as the spec says); then the presence of the required signatures on the kept form (a
/// failure rejects the event). `Err` is the detail of a [`Reason::Invalid`].
fn receive(
    parsed: &Pdu<'_>,
    version: &'static RoomVersion,
    keys: Option<&KeyRing>,
) -> Result<Received, String> {
    if let Some(keys) = keys {
        signatures::verify_event(parsed, keys).map_err(|e| format!("signature check: {e}"))?;
    }
    if parsed.content_hash_matches() {
        return Ok(Received {
            unsigned: presence(parsed)?,
            event: AuthEvent::detached(parsed),
            redacted: None,
        });
    }
    let red = redact(&parsed.json, version.redaction);
    let bytes = canonical_json::to_canonical_vec(&JsonValue::Object(red));
    // The parsed form borrows `bytes`: it is dropped before `bytes` moves.
    let (event, unsigned) = match Pdu::parse(&bytes, version) {
        Ok(p) => (AuthEvent::detached(&p), presence(&p)?),
        Err(e) => return Err(format!("redacted form after a content-hash mismatch: {e}")),
    };
    Ok(Received {
        event,
        redacted: Some(bytes),
        unsigned,
    })
}

/// Rebuilds the chain cover index of a store upgraded from schema 2–4 (whose `auth_chains` rows are
/// one bitmap per event): every stored state event is inserted again, ascending by number (an event
/// is numbered after its auth events), and the old rows are deleted, all in one commit together with
/// the end of the rebuild marker — an interrupted rebuild leaves the store as it was and runs again.
fn rebuild_chain_index(store: &Store) -> Result<(), IngestError> {
    use crate::resolve::ChainCover;
    use roomgraph_store::ChainRow;
    let mut covers: HashMap<String, ChainCover> = HashMap::new();
    let mut w = Writes::default();
    store.for_each_event(|num, rec| {
        let corrupt = |what: String| EVENTS.corrupt(&num, what);
        let version =
            RoomVersion::from_id(&rec.room_version).map_err(|e| corrupt(e.to_string()))?;
        let pdu = Pdu::parse(&rec.pdu, version).map_err(|e| corrupt(e.to_string()))?;
        let Some(state_key) = pdu.state_key.as_deref() else {
            return Ok(());
        };
        let mut auth = smallvec::SmallVec::<[u64; 8]>::new();
        for id in &pdu.auth_events {
            if let Some(n) = store.event_num(id)? {
                auth.push(n);
            }
        }
        let hash = room::state_key_hash(&pdu.event_type, state_key);
        let cover = covers.entry(pdu.room_id.to_string()).or_default();
        let inserted = cover
            .insert(num, hash, &auth)
            .map_err(|e| corrupt(e.to_string()))?;
        let row = ChainRow {
            key: hash,
            inserted,
        };
        let key = InRoom {
            room_id: &pdu.room_id,
            key: num,
        };
        w.insert(&AUTH_CHAINS, &key, &row);
        Ok(())
    })?;
    store.finish_chain_rebuild(&mut w)?;
    store.commit(w)?;
    Ok(())
}

/// The item for `input`, or its invalid outcome.
fn finish_item(
    input: Input,
    checked: Result<Received, String>,
) -> Result<ParsedEvent, EventOutcome> {
    match checked {
        Ok(Received {
            event,
            redacted,
            unsigned,
        }) => Ok(ParsedEvent {
            line: input.line,
            event: Arc::new(event),
            raw: input.bytes,
            redacted,
            unsigned,
            pending_seq: input.pending_seq,
            outlier: input.outlier,
        }),
        Err(reason) => Err(EventOutcome {
            line: input.line,
            event_id: None,
            outcome: Outcome::Invalid,
            reason: Some(Reason::Invalid {
                line: input.line,
                detail: reason,
            }),
            deoutliered: false,
        }),
    }
}

/// The `room_id` of a line found by looking for its key instead of parsing: a guess, right for canonical
/// PDUs unless `content` (sorted before it) holds a nested `room_id`; [`route_fast`] checks it against
/// the parsed PDU. `None` for pretty-printed input, escapes, or no such key.
fn quick_room_id(bytes: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""room_id":""#;
    // Built once: building a searcher costs more than searching one line.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let at = FINDER.find(bytes)? + KEY.len();
    let len = memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
    if bytes.get(at + len) != Some(&b'"') {
        return None;
    }
    std::str::from_utf8(bytes.get(at..at + len)?).ok()
}

/// Routes a line of a loaded room with one parse (no pre-parse for the room id), when
/// [`quick_room_id`] guesses its room and the PDU parsed with that room's version confirms it. Create
/// events and everything unusual go the general way ([`route`]), which decides exactly as before.
fn route_fast(
    input: Input,
    rooms: &FastMap<String, RoomWorker>,
    keys: Option<&KeyRing>,
) -> Result<Routed, Input> {
    let Some((room_id, version)) = quick_room_id(&input.bytes)
        .and_then(|id| rooms.get_key_value(id))
        .map(|(id, room)| (id.clone(), room.version))
    else {
        return Err(input);
    };
    // The parsed form borrows the input: it is dropped before the input moves.
    let checked = match Pdu::parse(&input.bytes, version) {
        Ok(p) if *p.room_id == *room_id && p.event_type != "m.room.create" => {
            Some(receive(&p, version, keys))
        }
        _ => None,
    };
    let Some(checked) = checked else {
        return Err(input);
    };
    let seq = input.pending_seq;
    Ok(routed_event(room_id, seq, finish_item(input, checked)))
}

/// A parsed event of a loaded room, or its invalid outcome (with the pending row to delete).
fn routed_event(
    room_id: String,
    seq: Option<u64>,
    item: Result<ParsedEvent, EventOutcome>,
) -> Routed {
    match item {
        Ok(item) => Routed::Event {
            room_id,
            item: Box::new(item),
        },
        Err(outcome) => Routed::Invalid {
            outcome,
            pending_seq: seq,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use roomgraph_testkit::builder::EventBuilder;
    use roomgraph_testkit::trace::{TraceSpec, generate};
    use std::collections::BTreeSet;

    fn outcomes_by_id(outcomes: &[EventOutcome]) -> BTreeMap<String, Outcome> {
        outcomes
            .iter()
            .filter_map(|o| o.event_id.clone().map(|id| (id, o.outcome)))
            .collect()
    }

    #[test]
    fn generated_trace_is_accepted_except_bad_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = generate(&TraceSpec {
            events: 300,
            ..TraceSpec::default()
        });
        let mut engine = Engine::open(dir.path()).expect("open");
        let mut outcomes = engine.ingest(&trace.lines).expect("ingest");
        outcomes.extend(engine.finish().expect("finish"));
        let by_id = outcomes_by_id(&outcomes);
        assert_eq!(by_id.len(), trace.lines.len());
        for (id, o) in &by_id {
            let expected = if trace.bad.contains(id) {
                Outcome::Rejected
            } else {
                Outcome::Accepted
            };
            let reason = outcomes
                .iter()
                .find(|x| x.event_id.as_ref() == Some(id))
                .and_then(|x| x.reason_text());
            assert_eq!(*o, expected, "{id}: {reason:?}");
        }
        for room in &trace.rooms {
            let state = engine.current_state(room).expect("current state");
            assert!(state.contains_key(&("m.room.create".to_owned(), String::new())));
        }
    }

    #[test]
    fn quick_room_id_finds_the_key_or_gives_up() {
        let line = br#"{"auth_events":[],"content":{},"room_id":"!r:x","type":"t"}"#;
        assert_eq!(quick_room_id(line), Some("!r:x"));
        assert_eq!(quick_room_id(br#"{"room_id": "!r:x"}"#), None);
        assert_eq!(quick_room_id(br#"{"room_id":"!r\u0021:x"}"#), None);
        assert_eq!(quick_room_id(br#"{"room_id":"!r:x"#), None);
        assert_eq!(quick_room_id(br#"{"type":"t"}"#), None);
    }

    /// A store holding a generated trace of `events` events in `rooms` rooms (the directory lives as
    /// long as the first value).
    fn ingested(
        events: usize,
        rooms: usize,
    ) -> (tempfile::TempDir, roomgraph_testkit::trace::Trace, Engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = generate(&TraceSpec {
            events,
            rooms,
            ..TraceSpec::default()
        });
        let mut engine = Engine::open(dir.path()).expect("open");
        engine.ingest(&trace.lines).expect("ingest");
        (dir, trace, engine)
    }

    /// What a test needs to write events of a generated room as its creator.
    #[derive(Clone)]
    struct Author {
        room: String,
        version: &'static RoomVersion,
        creator: String,
        auth: Vec<String>,
    }

    impl Author {
        fn of(engine: &Engine, room: &str) -> Author {
            let state = engine.current_state(room).expect("state");
            let create_id = &state[&("m.room.create".to_owned(), String::new())];
            let create = engine.event(create_id).expect("read").expect("stored");
            let version = RoomVersion::from_id(&create.room_version).expect("version");
            let creator = Pdu::parse(&create.pdu, version)
                .expect("create parses")
                .sender
                .to_string();
            let mut auth = vec![
                state[&("m.room.power_levels".to_owned(), String::new())].clone(),
                state[&("m.room.member".to_owned(), creator.clone())].clone(),
            ];
            if !version.room_id_from_create {
                auth.push(create_id.clone());
            }
            Author {
                room: room.to_owned(),
                version,
                creator,
                auth,
            }
        }

        /// The same author citing `power_levels` as the room's power levels event.
        fn citing_power_levels(&self, power_levels: &str) -> Author {
            let mut a = self.clone();
            a.auth[0] = power_levels.to_owned();
            a
        }

        /// An event of the creator's with `prev` as its `prev_events`; returns its line and id.
        fn event(
            &self,
            event_type: &str,
            state_key: Option<&str>,
            content: &str,
            depth: i64,
            prev: &[String],
        ) -> (String, String) {
            let mut b =
                EventBuilder::with_json_content(self.version, event_type, &self.creator, content)
                    .room_id(&self.room)
                    .depth(depth)
                    .prev_events(prev)
                    .auth_events(&self.auth);
            if let Some(sk) = state_key {
                b = b.state_key(sk);
            }
            let line = b.build_json_line();
            let id = Pdu::parse(line.as_bytes(), self.version)
                .expect("built event parses")
                .event_id
                .to_string();
            (line, id)
        }
    }

    /// Two branches of one room that stay apart for far more new states than the engine keeps views of
    /// in memory, all in one batch, each a chain of power-level changes that cite the one before: the
    /// views, auth events and auth chains the engine evicts while applying the batch are not in the
    /// store yet, so eviction must spare them.
    #[test]
    fn a_long_fork_within_one_batch_keeps_its_uncommitted_states() {
        let (_dir, trace, mut engine) = ingested(60, 1);
        let author = Author::of(&engine, &trace.rooms[0]);
        let base = engine.extremities(&author.room).expect("extremities");
        let mut lines = Vec::new();
        let mut tips = Vec::new();
        for branch in 0..2i64 {
            let mut prev = base.clone();
            let mut cites = author.clone();
            for i in 0..(2 * room::VIEW_CACHE) {
                let (line, id) = cites.event(
                    "m.room.power_levels",
                    Some(""),
                    &format!(
                        r#"{{"users":{{"{}":100}},"users_default":0,"state_default":50,"events_default":0,"notifications":{{"room":{}}}}}"#,
                        author.creator,
                        i % 100
                    ),
                    // Branch 0 first: its tip is the oldest of the views by the end.
                    50_000 + 1_000 * branch + i as i64,
                    &prev,
                );
                lines.push(line);
                cites = author.citing_power_levels(&id);
                prev = vec![id];
            }
            tips.extend(prev);
        }
        let (merge, merge_id) =
            author.event("m.room.message", None, r#"{"body":"merge"}"#, 70_000, &tips);
        lines.push(merge);
        let outcomes = engine.ingest(&lines).expect("one batch with a long fork");
        assert_eq!(outcomes.len(), lines.len());
        for o in &outcomes {
            assert_eq!(o.outcome, Outcome::Accepted, "{o:?}");
        }
        assert_eq!(
            engine.extremities(&author.room).expect("ext"),
            vec![merge_id.clone()]
        );

        // The same events in small batches (every eviction then hits committed data) give the same
        // states and auth chains.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let mut small = Engine::open(dir2.path()).expect("open");
        small.ingest(&trace.lines).expect("ingest");
        for chunk in lines.chunks(64) {
            small.ingest(chunk).expect("small batch");
        }
        assert_eq!(
            small.current_state(&author.room).expect("state"),
            engine.current_state(&author.room).expect("state")
        );
        for id in tips.iter().chain([&merge_id]) {
            let chain = |e: &Engine| {
                let chain: Option<BTreeSet<String>> =
                    e.auth_chain(id).ok().map(|c| c.into_iter().collect());
                (e.state_at(id, Position::Before).expect("before"), chain)
            };
            assert_eq!(chain(&small), chain(&engine), "{id}");
        }
    }

    /// A schema 4 store (one auth-chain bitmap per event, keyed by event number) is upgraded: the
    /// first read-write open rebuilds the chain cover index from the stored events, and the store then
    /// answers and ingests exactly as one written by this schema.
    #[test]
    fn a_schema_4_store_gets_its_chain_index_rebuilt() {
        use roomgraph_store::test_support;
        let trace = generate(&TraceSpec {
            events: 600,
            rooms: 3,
            fork_every: 5,
            bad_every: 13,
            ..TraceSpec::default()
        });
        let (first, rest) = trace.lines.split_at(400);
        let reference_dir = tempfile::tempdir().expect("tempdir");
        let mut reference = Engine::open(reference_dir.path()).expect("open");
        reference.ingest(first).expect("ingest");

        // The same first part, then turned into what schema 4 left: bitmap rows keyed by event
        // number instead of the chain rows, and the schema key saying 4.
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut old = Engine::open(dir.path()).expect("open");
            old.ingest(first).expect("ingest");
            test_support::downgrade_chain_index_to_schema_4(old.store(), &trace.rooms)
                .expect("downgrade");
            old.close_for_exit();
        }
        let reader = Reader::open(dir.path()).expect("read-only open of schema 4");
        // Every room's current state events.
        let state_events: Vec<String> = trace
            .rooms
            .iter()
            .flat_map(|r| reference.current_state(r).expect("state").into_values())
            .collect();
        assert!(state_events.len() > 20);
        let some_state_event = state_events.first();
        if let Some(id) = some_state_event {
            assert!(matches!(
                reader.auth_chain(id),
                Err(IngestError::ChainIndexOutdated)
            ));
        }
        drop(reader);

        let mut upgraded = Engine::open(dir.path()).expect("upgrade");
        assert!(!upgraded.store().chain_rebuild_pending().expect("read"));
        assert_eq!(
            test_support::schema_4_chain_rows(upgraded.store()).expect("scan"),
            0
        );
        for id in &state_events {
            assert_eq!(
                upgraded.auth_chain(id).expect("chain"),
                reference.auth_chain(id).expect("chain"),
                "{id}"
            );
        }
        let a = upgraded.ingest(rest).expect("ingest");
        let b = reference.ingest(rest).expect("ingest");
        let outcomes = |o: &[EventOutcome]| -> Vec<(Option<String>, Outcome)> {
            o.iter().map(|o| (o.event_id.clone(), o.outcome)).collect()
        };
        assert_eq!(outcomes(&a), outcomes(&b));
        for room in &trace.rooms {
            assert_eq!(
                upgraded.current_state(room).expect("state"),
                reference.current_state(room).expect("state")
            );
        }
    }

    /// An event citing an event of another room that the previous batch of a stream stored — still
    /// being written while this batch is applied — is decided once that batch is durable: rejected,
    /// never left pending.
    #[test]
    fn a_stream_rejects_a_prev_event_of_another_room_from_the_batch_before() {
        let (_dir, trace, mut engine) = ingested(200, 2);
        let (home, other) = (
            Author::of(&engine, &trace.rooms[0]),
            Author::of(&engine, &trace.rooms[1]),
        );
        let (elsewhere, elsewhere_id) = other.event(
            "m.room.message",
            None,
            r#"{"body":"elsewhere"}"#,
            100_000,
            &engine.extremities(&other.room).expect("extremities"),
        );
        let mut prev = engine.extremities(&home.room).expect("extremities");
        prev.push(elsewhere_id.clone());
        let (citing, citing_id) =
            home.event("m.room.message", None, r#"{"body":"hi"}"#, 100_001, &prev);
        let mut outcomes = Vec::new();
        engine
            .ingest_stream(
                [
                    vec![(1, elsewhere.into_bytes())],
                    vec![(2, citing.into_bytes())],
                ],
                |o| {
                    outcomes.extend(o);
                    Ok(())
                },
            )
            .expect("stream");
        outcomes.extend(engine.finish().expect("finish"));
        let by_id = outcomes_by_id(&outcomes);
        assert_eq!(by_id[&elsewhere_id], Outcome::Accepted, "{outcomes:?}");
        assert_eq!(by_id[&citing_id], Outcome::Rejected, "{outcomes:?}");
        // Stored as an outlier first (its prev event was not durable yet), then rejected.
        let reason = outcomes
            .iter()
            .rev()
            .find(|o| o.event_id.as_deref() == Some(citing_id.as_str()))
            .and_then(|o| o.reason_text())
            .unwrap_or_default();
        assert!(reason.contains("belongs to another room"), "{reason}");
    }

    /// When the caller's handler fails for batch N, batch N is durable and batch N+1 (applied beside
    /// N's commit) is not: the engine refuses further work until reopened, and the reopened store has
    /// exactly batch N.
    #[test]
    fn a_failing_outcome_handler_poisons_the_stream_and_loses_nothing_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = generate(&TraceSpec {
            events: 120,
            rooms: 1,
            ..TraceSpec::default()
        });
        let batches: Vec<Vec<(u64, Vec<u8>)>> = trace
            .lines
            .chunks(60)
            .enumerate()
            .map(|(b, chunk)| {
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, l)| ((b * 60 + i + 1) as u64, l.clone().into_bytes()))
                    .collect()
            })
            .collect();
        let mut first: Vec<EventOutcome> = Vec::new();
        {
            let mut engine = Engine::open(dir.path()).expect("open");
            let err = engine
                .ingest_stream(batches.clone(), |o| {
                    first = o;
                    Err("disk full".to_owned())
                })
                .expect_err("the handler fails");
            assert!(
                matches!(err, IngestError::Caller(ref m) if m == "disk full"),
                "{err}"
            );
            assert!(matches!(
                engine.ingest_lines(&[]),
                Err(IngestError::Poisoned)
            ));
        }
        let engine = Engine::open(dir.path()).expect("reopen");
        assert!(!first.is_empty());
        for o in &first {
            let id = o.event_id.as_deref().expect("id");
            assert!(engine.event(id).expect("read").is_some(), "{id} of batch 1");
        }
        let second = Pdu::parse(&batches[1][0].1, RoomVersion::from_id("11").expect("v11"))
            .expect("parses")
            .event_id
            .to_string();
        assert!(
            engine.event(&second).expect("read").is_none(),
            "batch 2 was not written"
        );
    }

    /// A `room_id` nested in `content` (sorted before the top-level one) misleads the guess of the fast
    /// routing path; the event still lands in its own room.
    #[test]
    fn a_nested_room_id_does_not_misroute_an_event() {
        let (_dir, trace, mut engine) = ingested(200, 2);
        let (home, other) = (&trace.rooms[0], &trace.rooms[1]);
        let author = Author::of(&engine, home);
        let (line, _) = author.event(
            "m.room.message",
            None,
            &format!(r#"{{"body":"hi","moved":{{"room_id":"{other}"}}}}"#),
            100_000,
            &engine.extremities(home).expect("extremities"),
        );
        assert!(quick_room_id(line.as_bytes()) == Some(other.as_str()));
        let outcomes = engine.ingest(&[line]).expect("ingest");
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].outcome, Outcome::Accepted, "{outcomes:?}");
        let id = outcomes[0].event_id.as_deref().expect("id");
        let stored = engine.event(id).expect("read").expect("stored");
        assert_eq!(&stored.room_id, home);
    }
}
