//! The per-room apply step: the spec's "checks performed on receipt of a PDU" (steps 4–6), state before
//! and after each event, forward extremities and current state. One [`RoomWorker`] is touched by one
//! thread at a time; rooms run in parallel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use crate::auth::{self, AuthEvent, AuthEventsState, AuthFailure, AuthState};
use crate::pdu::Pdu;
use crate::resolve::{ChainCover, Closure};
use crate::resolve::{EventGraph, EventIdx, Resolver};
use crate::room_version::{RoomVersion, StateResAlgorithm};
use roomgraph_store::codec;
use roomgraph_store::snapshot::StateDraft;
use roomgraph_store::table::{
    AUTH_CHAINS, CITED, EVENT_NUMS, EVENT_STATE, EVENTS, EXTREMITIES, EventMetaRef, EventRecordRef,
    ExtremitiesRef, InRoom, OUTLIER_WAITS, PENDING, ROOMS, SNAPSHOT_HASHES, SNAPSHOTS,
};
use roomgraph_store::{
    ChainRow, EMPTY_SNAPSHOT, EventStatus, RoomRecord, SnapshotRecord, StateHash, StateView,
    StoreError, Writes,
};

use super::context::BatchContext;
use super::outcome::{EventOutcome, Outcome, Reason, StoredResolveError};
use crate::fast_hash::{FastMap, FastSet, IntMap};

/// Views kept in memory per room (each holds its own overlay; the full maps are shared).
pub(crate) const VIEW_CACHE: usize = 256;
/// Parsed auth events (and auth chains) kept in memory per room before the cache is trimmed; small in
/// unit tests, so that they exercise the trimming.
const AUTH_CACHE: usize = if cfg!(test) { 64 } else { 300_000 };

/// A parsed event waiting to be applied.
#[derive(Debug)]
pub(crate) struct ParsedEvent {
    pub line: Option<u64>,
    /// The event's header and auth facts ([`AuthEvent::detached`]: no JSON tree), shared so that
    /// queueing an item moves a pointer and the auth cache keeps the same allocation.
    pub event: Arc<AuthEvent>,
    /// The bytes as received (kept for the pending set).
    pub raw: Vec<u8>,
    /// The redacted canonical form, when the content hash did not match.
    pub redacted: Option<Vec<u8>>,
    /// The failed signature-presence check, when a server that must sign the event did not: the event
    /// is rejected (Synapse's `validate_event_for_room_version`).
    pub unsigned: Option<Box<AuthFailure>>,
    /// Sequence number of the persisted pending row, if this event was pending before.
    pub pending_seq: Option<u64>,
    /// Stored as an outlier whatever its prev events ([`Engine::ingest_outliers`](super::Engine)).
    pub outlier: bool,
}

/// What the store knows about an event of this room.
#[derive(Debug, Clone, Copy)]
struct EventInfo {
    status: EventStatus,
    after: u64,
}

/// The in-memory state of one room.
pub(crate) struct RoomWorker {
    pub room_id: String,
    pub version: &'static RoomVersion,
    /// The accepted create event.
    create: Option<(u64, Arc<AuthEvent>)>,
    extremities: Vec<u64>,
    current: StateView,
    dirty: bool,
    ids: FastMap<Box<str>, u64>,
    info: IntMap<u64, EventInfo>,
    views: IntMap<u64, StateView>,
    view_order: VecDeque<u64>,
    /// The records of this room's snapshots that are not durable yet: a view evicted from `views`
    /// before its batch is committed is rebuilt from them (see [`Durable`](super::Durable)).
    unsynced: IntMap<u64, SnapshotRecord>,
    auth_cache: IntMap<u64, Arc<AuthEvent>>,
    /// Size at which `auth_cache` is trimmed next ([`trim_cache`]).
    auth_limit: usize,
    /// The room's chain cover auth-chain index (every stored state event; loaded whole with the room).
    cover: ChainCover,
    hashes: FastMap<StateHash, u64>,
    /// Memoised resolutions: sorted input snapshots → result snapshot.
    memo: FastMap<Vec<u64>, u64>,
    graph: Option<EventGraph>,
    graph_idx: IntMap<u64, EventIdx>,
    graph_nums: Vec<u64>,
    /// Graph state-key index → store state-key number (`u32::MAX` = not cached yet).
    graph_keys: Vec<u32>,
    resolver: Resolver,
    /// Store key numbers of `(type, state_key)` pairs by their encoding ([`RoomWorker::key`]).
    key_cache: FastMap<Box<[u8]>, u32>,
    /// The same for `m.room.member` pairs, by state key.
    member_keys: FastMap<Box<str>, u32>,
    /// The same for the create, power-levels and join-rules pairs (`u32::MAX`: not known yet).
    fixed_keys: [u32; 3],
    /// Store key number of each non-rejected state event applied here (or looked up since).
    event_keys: IntMap<u64, u32>,
    /// Every non-rejected state event applied by this process, ascending: the events that can have
    /// entered a state since `log_from` (see [`RoomWorker::fast_inputs`]).
    state_log: Vec<u64>,
    /// The first event number from which `state_log` is complete (`u64::MAX` until the first apply of a
    /// room loaded from the store).
    log_from: u64,
    /// Counts of fork resolutions by path.
    pub stats: ResolutionStats,
    /// Events waiting for a missing event id.
    pub waiting: FastMap<String, Vec<ParsedEvent>>,
    /// Events in `waiting` without a pending row yet (parked by the current run).
    unsaved: usize,
    /// Outliers by the missing or outlier prev event they wait for (persisted: `outlier_wait_key`).
    outlier_wait: FastMap<Box<str>, SmallVec<[u64; 2]>>,
    /// Outliers stored by this process, by number.
    outlier_bytes: IntMap<u64, OutlierBytes>,
    /// Missing or outlier events that an accepted timeline event cites as a prev event (persisted:
    /// `cited_key`): when they join the timeline they are not forward extremities.
    cited: FastSet<Box<str>>,
    /// The prev events of the soft-failed and rejected timeline events applied by this process (for
    /// [`RoomWorker::prevs_before_rejected`]; older ones are read from the store).
    bad_prevs: IntMap<u64, SmallVec<[u64; 2]>>,
    /// Created in this process: every event and snapshot of the room is in the maps above, so misses
    /// need no store lookup (event ids of v3+ rooms hash the room id, so no other room has them).
    fresh: bool,
}

/// The result of one apply run.
#[derive(Default)]
pub(crate) struct RoomOutput {
    pub outcomes: Vec<EventOutcome>,
    pub writes: Writes,
    pub stored: usize,
}

/// An error that stops the batch (nothing of it is committed).
pub(crate) type RoomResult<T> = Result<T, StoreError>;

/// The stored event numbers of an event's `prev_events` and `auth_events`, in PDU order, and the ids
/// of its prev events that are not stored.
struct Parents {
    prev: SmallVec<[u64; 4]>,
    auth: SmallVec<[u64; 8]>,
    missing: SmallVec<[Box<str>; 1]>,
}

/// An event to process: new, or an outlier whose gap has closed (with its event number).
enum Work {
    New(ParsedEvent),
    Deoutlier(ParsedEvent, u64),
}

/// A waiting event as [`RoomWorker::pending_outcomes`] reads it: line, id, event.
type WaitingEvent = (Option<u64>, String, Arc<AuthEvent>);

/// Where an event whose auth events are stored goes ([`RoomWorker::place`]).
enum Placement {
    /// Every prev event is a timeline event: the state before comes from them.
    Timeline,
    /// Some prev events are missing or outliers, and hints give the state before (or the reason it
    /// cannot be resolved).
    Hinted(Result<StateView, String>),
    /// A hint names this event, which is not stored yet: wait for it.
    Wait(String),
    /// A hint cannot be used (two events for one key): the event is reported invalid.
    BadHint(String),
    /// No state for the gap: an outlier, waiting for these prev events.
    Outlier(SmallVec<[Box<str>; 2]>),
}

/// The bytes of an outlier stored by this process, kept to rewrite its record when it is
/// de-outliered (older outliers are read back from the store).
struct OutlierBytes {
    raw: Vec<u8>,
    redacted: Option<Vec<u8>>,
    line: Option<u64>,
}

/// The outcome of the checks for one event.
struct Verdict {
    status: EventStatus,
    reason: Option<Reason>,
}

impl RoomWorker {
    /// A key of one of this room's rows in a room-scoped table.
    fn in_room<T>(&self, key: T) -> InRoom<'_, T> {
        InRoom {
            room_id: &self.room_id,
            key,
        }
    }

    /// A room about to receive its create event.
    pub fn new(room_id: String, version: &'static RoomVersion) -> RoomWorker {
        RoomWorker {
            room_id,
            version,
            create: None,
            extremities: Vec::new(),
            current: StateView::empty(),
            dirty: false,
            ids: FastMap::default(),
            info: IntMap::default(),
            views: IntMap::default(),
            view_order: VecDeque::new(),
            unsynced: IntMap::default(),
            auth_cache: IntMap::default(),
            auth_limit: AUTH_CACHE,
            cover: ChainCover::new(),
            hashes: FastMap::default(),
            memo: FastMap::default(),
            graph: None,
            graph_idx: IntMap::default(),
            graph_nums: Vec::new(),
            graph_keys: Vec::new(),
            resolver: Resolver::new(),
            key_cache: FastMap::default(),
            member_keys: FastMap::default(),
            fixed_keys: [u32::MAX; 3],
            event_keys: IntMap::default(),
            state_log: Vec::new(),
            log_from: 0,
            stats: ResolutionStats::default(),
            waiting: FastMap::default(),
            unsaved: 0,
            outlier_wait: FastMap::default(),
            outlier_bytes: IntMap::default(),
            cited: FastSet::default(),
            bad_prevs: IntMap::default(),
            fresh: true,
        }
    }

    /// Loads a stored room.
    pub fn load(
        ctx: &BatchContext<'_>,
        room_id: &str,
        record: &RoomRecord,
    ) -> RoomResult<RoomWorker> {
        let version = RoomVersion::from_id(&record.room_version)
            .map_err(|e| ROOMS.corrupt(room_id, e.to_string()))?;
        let mut room = RoomWorker::new(room_id.to_owned(), version);
        room.fresh = false;
        room.log_from = u64::MAX;
        let create = room.load_auth(ctx, record.create_event)?;
        room.create = Some((record.create_event, create));
        for (num, row) in ctx.store.chain_rows(room_id)? {
            room.cover
                .restore(num, row.key, &row.inserted)
                .map_err(|e| AUTH_CHAINS.corrupt(&InRoom { room_id, key: num }, e.to_string()))?;
        }
        if let Some((current, extremities)) = ctx.store.extremities(room_id)? {
            room.current = room.view(ctx, current)?;
            room.extremities = extremities;
        }
        let this_room = InRoom { room_id, key: () };
        for ((id, num), ()) in ctx.store.scan(&OUTLIER_WAITS, &this_room)? {
            room.outlier_wait.entry(id.into()).or_default().push(num);
        }
        for (id, ()) in ctx.store.scan(&CITED, &this_room)? {
            room.cited.insert(id.into());
        }
        Ok(room)
    }

    /// Applies `items` in input order (replayed pending events first), each once its auth events are
    /// known, and whatever each one unblocks right after it. Synapse decides soft-failure against the
    /// room's current state when an event arrives, so the order of application is the order of
    /// arrival: the same input gives the same outcomes however it is split into batches.
    pub fn run(
        &mut self,
        ctx: &BatchContext<'_>,
        mut items: Vec<ParsedEvent>,
    ) -> RoomResult<RoomOutput> {
        if !self.unsynced.is_empty() {
            self.unsynced
                .retain(|snap, _| *snap >= ctx.durable.snapshot);
        }
        // An event row (the PDU and a small header), its id, its state row, and for state events a
        // chain and a snapshot.
        let bytes = items.iter().map(|i| i.raw.len() + 320).sum();
        let mut out = RoomOutput {
            writes: Writes::with_capacity(items.len() * 5, bytes),
            ..RoomOutput::default()
        };
        items.sort_by_key(|i| i.line);
        // Sized once for the run: growing them event by event rehashed ~10 % of a 38 000-event
        // send_join response's apply time away.
        self.ids.reserve(items.len());
        self.info.reserve(items.len());
        self.auth_cache.reserve(items.len());
        self.event_keys.reserve(items.len());
        let mut queue: VecDeque<Work> = items.into_iter().map(Work::New).collect();
        while let Some(work) = queue.pop_front() {
            match work {
                Work::New(item) => self.step(ctx, item, None, &mut queue, &mut out)?,
                Work::Deoutlier(item, num) => {
                    self.step(ctx, item, Some(num), &mut queue, &mut out)?
                }
            }
        }
        self.persist_waiting(ctx, &mut out.writes);
        Ok(out)
    }

    /// Writes the pending rows of the events parked by this run that are still waiting. An event
    /// parked and woken within one run (unordered input: most of a send_join response) costs no row:
    /// writing each one and deleting it in the same batch doubled the bytes committed.
    fn persist_waiting(&mut self, ctx: &BatchContext<'_>, writes: &mut Writes) {
        if self.unsaved == 0 {
            return;
        }
        for items in self.waiting.values_mut() {
            for item in items.iter_mut().filter(|i| i.pending_seq.is_none()) {
                let seq = ctx.next_pending.fetch_add(1, Ordering::Relaxed);
                writes.insert(&PENDING, &seq, item.raw.as_slice());
                item.pending_seq = Some(seq);
            }
        }
        self.unsaved = 0;
    }

    /// One event: a duplicate, parked until its auth events arrive, stored as an outlier, or applied
    /// to the timeline (`deoutlier`: the number of an outlier whose gap may have closed).
    fn step(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        deoutlier: Option<u64>,
        queue: &mut VecDeque<Work>,
        out: &mut RoomOutput,
    ) -> RoomResult<()> {
        let id = item.event.pdu.event_id.to_string();
        let mut existing = deoutlier;
        if existing.is_none() {
            let known = if self.fresh && !self.version.reference_pairs {
                self.ids.get(id.as_str()).copied()
            } else {
                self.lookup(ctx, &id)?
            };
            if let Some(num) = known {
                // An outlier received again is processed as a timeline event if it now can be.
                let outlier =
                    matches!(self.info(ctx, num)?, Some((i, true)) if i.status.is_outlier());
                if !outlier {
                    if let Some(seq) = item.pending_seq {
                        out.writes.remove(&PENDING, &seq);
                    }
                    out.outcomes.push(EventOutcome {
                        line: item.line,
                        event_id: Some(id),
                        outcome: Outcome::Duplicate,
                        reason: None,
                        deoutliered: false,
                    });
                    return Ok(());
                }
                existing = Some(num);
            }
        }
        // A room whose create event is not applied yet: in v12 no event cites the create event, so
        // wait for it explicitly (its id is the room id's), as an event of an unknown room does.
        if self.create.is_none()
            && self.version.room_id_from_create
            && item.event.pdu.event_type != "m.room.create"
            && let Some(local) = self.room_id.strip_prefix('!')
        {
            let create_id = format!("${local}");
            if self.lookup(ctx, &create_id)?.is_none() {
                self.park(ctx, item, create_id, out);
                return Ok(());
            }
        }
        let parents = match self.parent_nums(ctx, &item.event.pdu)? {
            Ok(parents) => parents,
            Err(missing) => {
                self.park(ctx, item, missing, out);
                return Ok(());
            }
        };
        // An outlier by request (a send_join response) waits for no prev event: it joins the
        // timeline when received again as an ordinary event once they are in it.
        let placement = if item.outlier {
            Placement::Outlier(SmallVec::new())
        } else {
            self.place(ctx, &item.event, &parents, &mut out.writes)?
        };
        if let Placement::Wait(missing) = placement {
            if existing.is_none() {
                self.park(ctx, item, missing, out);
            }
            return Ok(());
        }
        if let Some(seq) = item.pending_seq {
            out.writes.remove(&PENDING, &seq);
        }
        if existing.is_some() && matches!(placement, Placement::Outlier(_)) {
            // Still at a gap: it stays an outlier (received again, it is a duplicate).
            if deoutlier.is_some() {
                return Ok(());
            }
            out.outcomes.push(EventOutcome {
                line: item.line,
                event_id: Some(id),
                outcome: Outcome::Duplicate,
                reason: None,
                deoutliered: false,
            });
            return Ok(());
        }
        // Taken before `apply` consumes the id; an error poisons the engine, so nothing is lost.
        let woken = if self.waiting.is_empty() {
            None
        } else {
            self.waiting.remove(&id)
        };
        let timeline = matches!(placement, Placement::Timeline | Placement::Hinted(_));
        let outcome = match placement {
            Placement::Outlier(gaps) => self.store_outlier(ctx, item, parents, gaps, id, out)?,
            Placement::BadHint(reason) => EventOutcome {
                line: item.line,
                event_id: Some(id),
                outcome: Outcome::Invalid,
                reason: Some(Reason::BadHint(reason)),
                deoutliered: false,
            },
            Placement::Timeline => {
                self.apply(ctx, item, parents, None, id, existing, &mut out.writes)?
            }
            Placement::Hinted(before) => self.apply(
                ctx,
                item,
                parents,
                Some(before),
                id,
                existing,
                &mut out.writes,
            )?,
            Placement::Wait(_) => return Ok(()),
        };
        if outcome.outcome != Outcome::Invalid {
            out.stored += 1;
        }
        // A new timeline event may close the gap of outliers waiting for it.
        if timeline
            && !self.outlier_wait.is_empty()
            && let Some(event_id) = &outcome.event_id
        {
            let ready = self.outliers_waiting_for(ctx, event_id, &mut out.writes)?;
            for (item, num) in ready.into_iter().rev() {
                queue.push_front(Work::Deoutlier(item, num));
            }
        }
        if let Some(woken) = woken {
            ctx.pending_count.fetch_sub(woken.len(), Ordering::Relaxed);
            for w in woken.into_iter().rev() {
                queue.push_front(Work::New(w));
            }
        }
        out.outcomes.push(outcome);
        Ok(())
    }

    /// Puts an event into the waiting set (persisted at the end of the run if it still waits then:
    /// [`RoomWorker::persist_waiting`]), or reports it when the set is full.
    fn park(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        missing: String,
        out: &mut RoomOutput,
    ) {
        if item.pending_seq.is_none() {
            if ctx.pending_count.load(Ordering::Relaxed) >= ctx.max_pending {
                out.outcomes.push(EventOutcome {
                    line: item.line,
                    event_id: Some(item.event.pdu.event_id.to_string()),
                    outcome: Outcome::Pending,
                    reason: Some(Reason::PendingSetFull {
                        limit: ctx.max_pending,
                        waiting_for: missing,
                    }),
                    deoutliered: false,
                });
                return;
            }
            self.unsaved += 1;
        }
        ctx.pending_count.fetch_add(1, Ordering::Relaxed);
        self.waiting.entry(missing).or_default().push(item);
    }

    /// Moves waiting events whose missing parent is now stored (e.g. in another room) back into play,
    /// and outliers whose missing prev event is now stored in another room (they are then rejected).
    /// The deletions of the outliers' wait rows go into `writes`, committed with the work.
    pub fn take_unblocked(
        &mut self,
        ctx: &BatchContext<'_>,
        writes: &mut Writes,
    ) -> RoomResult<Vec<ParsedEvent>> {
        let mut ready = Vec::new();
        let gaps: Vec<Box<str>> = self.outlier_wait.keys().cloned().collect();
        for g in gaps {
            if !self.ids.contains_key(&*g) && ctx.store.event_num(&g)?.is_some() {
                for (item, _) in self.outliers_waiting_for(ctx, &g, writes)? {
                    ready.push(item);
                }
            }
        }
        let keys: Vec<String> = self.waiting.keys().cloned().collect();
        for k in keys {
            if (ctx.store.event_num(&k)?.is_some() || self.ids.contains_key(k.as_str()))
                && let Some(items) = self.waiting.remove(&k)
            {
                ctx.pending_count.fetch_sub(items.len(), Ordering::Relaxed);
                ready.extend(items);
            }
        }
        Ok(ready)
    }

    /// The waiting events, as pending outcomes naming the missing events that block them: the root
    /// missing ancestors (an event that is itself waiting is followed to what it waits for).
    pub fn pending_outcomes(&mut self, ctx: &BatchContext<'_>) -> RoomResult<Vec<EventOutcome>> {
        // What each waiting event waits for: the key it is parked under, and any other auth event
        // not stored.
        let mut blockers: FastMap<String, SmallVec<[String; 2]>> = FastMap::default();
        let waiting: Vec<(String, Vec<WaitingEvent>)> = self
            .waiting
            .iter()
            .map(|(missing, items)| {
                let items = items
                    .iter()
                    .map(|i| {
                        (
                            i.line,
                            i.event.pdu.event_id.to_string(),
                            Arc::clone(&i.event),
                        )
                    })
                    .collect();
                (missing.clone(), items)
            })
            .collect();
        for (missing, items) in &waiting {
            for (_, id, event) in items {
                let mut b: SmallVec<[String; 2]> = SmallVec::new();
                b.push(missing.clone());
                for a in &event.pdu.auth_events {
                    if **a != **missing && self.lookup(ctx, a)?.is_none() {
                        b.push(a.to_string());
                    }
                }
                blockers.insert(id.clone(), b);
            }
        }
        let mut out = Vec::new();
        for (_, items) in &waiting {
            for (line, id, _) in items {
                let mut roots: Vec<&str> = Vec::new();
                let mut seen: FastSet<&str> = FastSet::default();
                let mut stack: Vec<&str> = vec![id.as_str()];
                while let Some(e) = stack.pop() {
                    for m in blockers.get(e).map(|b| b.as_slice()).unwrap_or_default() {
                        if !seen.insert(m.as_str()) {
                            continue;
                        }
                        if blockers.contains_key(m.as_str()) {
                            stack.push(m.as_str());
                        } else {
                            roots.push(m.as_str());
                        }
                    }
                }
                roots.sort_unstable();
                out.push(EventOutcome {
                    line: *line,
                    event_id: Some(id.clone()),
                    outcome: Outcome::Pending,
                    reason: Some(Reason::Waiting(
                        roots.iter().map(|r| (*r).to_owned()).collect(),
                    )),
                    deoutliered: false,
                });
            }
        }
        out.sort_by(|a, b| {
            a.line
                .cmp(&b.line)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        Ok(out)
    }

    fn lookup(&mut self, ctx: &BatchContext<'_>, id: &str) -> RoomResult<Option<u64>> {
        if let Some(n) = self.ids.get(id) {
            return Ok(Some(*n));
        }
        let n = ctx.store.event_num(id)?;
        if let Some(n) = n {
            self.ids.insert(id.into(), n);
        }
        Ok(n)
    }

    /// The event numbers of `auth_events` and of the stored `prev_events`, or the first auth event
    /// that is not stored yet (the event waits for it; missing prev events make a gap instead).
    fn parent_nums(
        &mut self,
        ctx: &BatchContext<'_>,
        pdu: &Pdu<'static>,
    ) -> RoomResult<Result<Parents, String>> {
        let mut auth = SmallVec::with_capacity(pdu.auth_events.len());
        for id in &pdu.auth_events {
            match self.lookup(ctx, id)? {
                Some(n) => auth.push(n),
                None => return Ok(Err(id.to_string())),
            }
        }
        let mut prev = SmallVec::with_capacity(pdu.prev_events.len());
        let mut missing = SmallVec::new();
        for id in &pdu.prev_events {
            match self.lookup(ctx, id)? {
                Some(n) => prev.push(n),
                None => missing.push(Box::from(&**id)),
            }
        }
        Ok(Ok(Parents {
            prev,
            auth,
            missing,
        }))
    }

    /// Where an event whose auth events are stored goes: into the timeline (its prev events are all
    /// timeline events, or hints give the state at the gap), or out of it as an outlier.
    fn place(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &AuthEvent,
        parents: &Parents,
        writes: &mut Writes,
    ) -> RoomResult<Placement> {
        let mut gaps: SmallVec<[Box<str>; 2]> = parents.missing.iter().cloned().collect();
        for (p, id) in parents.prev.iter().zip(
            event
                .pdu
                .prev_events
                .iter()
                .filter(|id| !parents.missing.iter().any(|m| **m == ***id)),
        ) {
            if matches!(self.info(ctx, *p)?, Some((i, true)) if i.status.is_outlier()) {
                gaps.push(Box::from(&**id));
            }
        }
        if gaps.is_empty() {
            return Ok(Placement::Timeline);
        }
        let event_id = &*event.pdu.event_id;
        if let Some(ids) = ctx.hints.before(event_id) {
            return self.hinted_view(ctx, event_id, ids, None, writes);
        }
        let mut views: SmallVec<[StateView; 2]> = SmallVec::new();
        for id in &event.pdu.prev_events {
            if gaps.iter().any(|g| **g == **id) {
                let Some(ids) = ctx.hints.after(id) else {
                    return Ok(Placement::Outlier(gaps));
                };
                // The prev event itself, when stored as a state event that was not rejected (Synapse
                // adds it to what `/state_ids` returned).
                let mut own = None;
                if let Some(p) = self.lookup(ctx, id)?
                    && matches!(self.info(ctx, p)?, Some((i, true)) if !i.status.is_rejected())
                {
                    own = Some(p);
                }
                match self.hinted_view(ctx, id, ids, own, writes)? {
                    Placement::Hinted(Ok(v)) => views.push(v),
                    other => return Ok(other),
                }
            } else if let Some(p) = self.lookup(ctx, id)?
                && let Some((i, true)) = self.info(ctx, p)?
            {
                views.push(self.view(ctx, i.after)?);
            }
        }
        let before = fork_outcome(self.resolve_views(ctx, &views, writes))?;
        Ok(Placement::Hinted(before))
    }

    /// The state named by a hint about `about`, plus `own` (the hinted prev event itself) at its key.
    fn hinted_view(
        &mut self,
        ctx: &BatchContext<'_>,
        about: &str,
        ids: &[Box<str>],
        own: Option<u64>,
        writes: &mut Writes,
    ) -> RoomResult<Placement> {
        let mut changes: Vec<(u32, Option<u64>)> = Vec::with_capacity(ids.len() + 1);
        // Key → (its entry in `changes`, the id that named it).
        let mut named: FastMap<u32, (usize, &str)> = FastMap::default();
        for id in ids {
            let Some(num) = self.lookup(ctx, id)? else {
                return Ok(Placement::Wait(id.to_string()));
            };
            // Events of other rooms and non-state events are left out, as Synapse does with what
            // `/state_ids` returns.
            if !matches!(self.info(ctx, num)?, Some((_, true))) {
                continue;
            }
            let Some(k) = self.key_of_interned(ctx, num)? else {
                continue;
            };
            if let Some(&(_, other)) = named.get(&k) {
                if other == &**id {
                    continue;
                }
                return Ok(Placement::BadHint(format!(
                    "state hint for {about}: {other} and {id} are both given for one (type, state_key)"
                )));
            }
            named.insert(k, (changes.len(), id));
            changes.push((k, Some(num)));
        }
        if let Some(p) = own
            && let Some(k) = self.key_of_interned(ctx, p)?
        {
            match named.get(&k) {
                Some(&(i, _)) => changes[i] = (k, Some(p)),
                None => changes.push((k, Some(p))),
            }
        }
        let view = match StateView::empty().apply(&changes) {
            None => StateView::empty(),
            Some(draft) => self.commit_draft(ctx, draft, writes)?,
        };
        Ok(Placement::Hinted(Ok(view)))
    }

    /// The outliers waiting for `event_id` whose gap it closes, as work to de-outlier them.
    fn outliers_waiting_for(
        &mut self,
        ctx: &BatchContext<'_>,
        event_id: &str,
        writes: &mut Writes,
    ) -> RoomResult<Vec<(ParsedEvent, u64)>> {
        let Some(nums) = self.outlier_wait.remove(event_id) else {
            return Ok(Vec::new());
        };
        let mut ready = Vec::with_capacity(nums.len());
        for num in nums {
            writes.remove(&OUTLIER_WAITS, &self.in_room((event_id, num)));
            let event = self.load_auth(ctx, num)?;
            let (raw, redacted, line) = match self.outlier_bytes.get(&num) {
                Some(b) => (b.raw.clone(), b.redacted.clone(), b.line),
                None => {
                    // An outlier of an earlier process: durable, so the store has it.
                    let rec = ctx.store.event_record(num)?.ok_or_else(|| {
                        EVENTS.corrupt(&num, "outlier waiting for its prev events is missing")
                    })?;
                    let redacted = rec.redacted.then(|| rec.pdu.clone());
                    (rec.pdu, redacted, None)
                }
            };
            let unsigned =
                super::receipt::stored_presence(redacted.as_deref().unwrap_or(&raw), self.version);
            ready.push((
                ParsedEvent {
                    line,
                    event,
                    raw,
                    redacted,
                    unsigned,
                    pending_seq: None,
                    outlier: false,
                },
                num,
            ));
        }
        Ok(ready)
    }

    /// Stores an event whose prev events are missing or outliers, and for which no state was supplied,
    /// as an outlier: checked against its auth events only (spec: step 4), no state of its own, never
    /// an extremity. It waits to be de-outliered when its gap closes.
    fn store_outlier(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        parents: Parents,
        gaps: SmallVec<[Box<str>; 2]>,
        event_id: String,
        out: &mut RoomOutput,
    ) -> RoomResult<EventOutcome> {
        let ParsedEvent {
            line,
            event,
            raw,
            redacted,
            unsigned,
            ..
        } = item;
        let num = ctx.next_event.fetch_add(1, Ordering::Relaxed);
        self.log_from = self.log_from.min(num);
        let is_create = event.is_create() && event.pdu.state_key.as_deref() == Some("");
        // Synapse validates an outlier's signatures before its auth events, as a timeline event's.
        let verdict = match (unsigned, self.create.clone()) {
            (Some(failure), _) => Err(Reason::Signature(failure)),
            (None, Some((_, create))) if is_create => {
                Err(Reason::SecondCreate(create.pdu.event_id.to_string()))
            }
            (None, None) if is_create => {
                auth::check_state_independent(&event, &[], None, &|_| false)
                    .map_err(|e| Reason::AuthEvents(Box::new(e)))
            }
            (None, None) => Err(Reason::NoCreate),
            (None, Some((_, create))) => {
                self.check_auth_events(ctx, &event, &parents.auth, &create)?
            }
        };
        let status = match verdict {
            Ok(()) => EventStatus::Outlier,
            Err(_) => EventStatus::RejectedOutlier,
        };
        let reason = verdict.err();
        let stored_reason = reason.as_ref().map(ToString::to_string).unwrap_or_default();
        let writes = &mut out.writes;
        // A create event stored as an outlier (a send_join response's) founds the room all the same.
        if is_create && status == EventStatus::Outlier {
            self.set_create(num, &event, writes);
        }
        if let Some(sk) = event.pdu.state_key.as_deref() {
            self.index_auth_chain(num, &parents.auth, &event, writes)?;
            if !status.is_rejected() {
                let k = self.intern_key(ctx, &event.pdu.event_type, sk)?;
                self.event_keys.insert(num, k);
                self.state_log.push(num);
            }
        }
        // Kept until durable: de-outliering reads it back before its batch may be committed.
        self.auth_cache.insert(num, Arc::clone(&event));
        self.ids.insert(event_id.as_str().into(), num);
        self.info.insert(
            num,
            EventInfo {
                status,
                after: EMPTY_SNAPSHOT,
            },
        );
        self.write_event(
            writes,
            num,
            &event_id,
            status,
            &stored_reason,
            redacted.as_deref().unwrap_or(&raw),
            redacted.is_some(),
            (EMPTY_SNAPSHOT, EMPTY_SNAPSHOT),
            &parents,
        );
        for g in &gaps {
            writes.insert(&OUTLIER_WAITS, &self.in_room((g.as_ref(), num)), &());
            self.outlier_wait.entry(g.clone()).or_default().push(num);
        }
        let was_redacted = redacted.is_some();
        // Kept to de-outlier it when its gap closes (an outlier by request waits for nothing: it is
        // de-outliered only when received again, with its bytes).
        if !gaps.is_empty() {
            self.outlier_bytes.insert(
                num,
                OutlierBytes {
                    raw,
                    redacted,
                    line,
                },
            );
        }
        let (outcome, mut reason) = match status {
            EventStatus::Outlier => (Outcome::Outlier, None),
            _ => (
                Outcome::Rejected,
                reason.map(|r| Reason::Outlier(Box::new(r))),
            ),
        };
        if was_redacted {
            reason = redacted_reason(reason);
        }
        Ok(EventOutcome {
            line,
            event_id: Some(event_id),
            outcome,
            reason,
            deoutliered: false,
        })
    }

    /// Makes `num` the room's create event and queues the room's record.
    fn set_create(&mut self, num: u64, event: &Arc<AuthEvent>, writes: &mut Writes) {
        self.create = Some((num, Arc::clone(event)));
        let record = RoomRecord {
            room_version: self.version.id.to_owned(),
            create_event: num,
        };
        writes.insert(&ROOMS, self.room_id.as_str(), &record);
    }

    /// The event's rows: id, record and state row.
    #[allow(clippy::too_many_arguments)]
    fn write_event(
        &self,
        writes: &mut Writes,
        num: u64,
        event_id: &str,
        status: EventStatus,
        reason: &str,
        pdu: &[u8],
        redacted: bool,
        (before, after): (u64, u64),
        parents: &Parents,
    ) {
        writes.insert(&EVENT_NUMS, event_id, &num);
        let record = EventRecordRef {
            status,
            redacted,
            room_version: self.version.id,
            reason,
            pdu,
        };
        writes.insert(&EVENTS, &num, &record);
        let meta = EventMetaRef {
            before,
            after,
            status,
            room_id: &self.room_id,
            event_id,
            prev: &parents.prev,
            auth: &parents.auth,
        };
        writes.insert(&EVENT_STATE, &num, &meta);
    }

    /// Indexes the auth chain of a state event (the persisted index used to assemble resolutions) and
    /// caches the event for auth lookups.
    fn index_auth_chain(
        &mut self,
        num: u64,
        auth_nums: &[u64],
        event: &Arc<AuthEvent>,
        writes: &mut Writes,
    ) -> RoomResult<()> {
        let key = state_key_hash(
            &event.pdu.event_type,
            event.pdu.state_key.as_deref().unwrap_or(""),
        );
        let row_key = InRoom {
            room_id: self.room_id.as_str(),
            key: num,
        };
        let inserted = self
            .cover
            .insert(num, key, auth_nums)
            .map_err(|e| AUTH_CHAINS.corrupt(&row_key, e.to_string()))?;
        writes.insert(&AUTH_CHAINS, &row_key, &ChainRow { key, inserted });
        self.auth_cache.insert(num, Arc::clone(event));
        Ok(())
    }

    /// The store key number of a pair, numbering it if it has none.
    fn intern_key(&mut self, ctx: &BatchContext<'_>, t: &str, s: &str) -> RoomResult<u32> {
        match self.key_or_intern(ctx, t, s, true)? {
            Some(k) => Ok(k),
            // Interning always numbers the pair; this only keeps the types honest.
            None => ctx.keys.intern(ctx.store, t, s),
        }
    }

    /// The prev events of a stored soft-failed or rejected timeline event.
    fn prevs_of(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<SmallVec<[u64; 2]>> {
        if let Some(p) = self.bad_prevs.get(&num) {
            return Ok(p.clone());
        }
        // Not applied by this process: durable.
        Ok(ctx
            .store
            .event_state(num)?
            .map(|m| m.prev.into_iter().collect())
            .unwrap_or_default())
    }

    /// Synapse's `_get_prevs_before_rejected`: starting from `prevs`, every soft-failed or rejected
    /// timeline event adds its prev events to `out`, and the walk goes on through them. An extremity
    /// reached this way is stale once an accepted event cites the soft-failed or rejected event.
    fn prevs_before_rejected(
        &mut self,
        ctx: &BatchContext<'_>,
        prevs: &[u64],
        out: &mut SmallVec<[u64; 8]>,
    ) -> RoomResult<()> {
        let bad = |s: EventStatus| matches!(s, EventStatus::SoftFailed | EventStatus::Rejected);
        let mut stack: SmallVec<[u64; 8]> = SmallVec::new();
        for p in prevs {
            if matches!(self.info(ctx, *p)?, Some((i, true)) if bad(i.status)) {
                stack.push(*p);
            }
        }
        if stack.is_empty() {
            return Ok(());
        }
        let mut seen: FastSet<u64> = FastSet::default();
        while let Some(p) = stack.pop() {
            for q in self.prevs_of(ctx, p)? {
                if !seen.insert(q) {
                    continue;
                }
                out.push(q);
                if matches!(self.info(ctx, q)?, Some((i, true)) if bad(i.status)) {
                    stack.push(q);
                }
            }
        }
        Ok(())
    }

    fn info(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Option<(EventInfo, bool)>> {
        if let Some(i) = self.info.get(&num) {
            return Ok(Some((*i, true)));
        }
        match ctx.store.event_state(num)? {
            None => Ok(None),
            Some(meta) => {
                let i = EventInfo {
                    status: meta.status,
                    after: meta.after,
                };
                let ours = meta.room_id == self.room_id;
                if ours {
                    self.info.insert(num, i);
                }
                Ok(Some((i, ours)))
            }
        }
    }

    fn load_auth(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Arc<AuthEvent>> {
        if let Some(a) = self.auth_cache.get(&num) {
            return Ok(Arc::clone(a));
        }
        let a = Arc::new(load_auth_event(ctx, num)?);
        trim_cache(
            &mut self.auth_cache,
            &mut self.auth_limit,
            ctx.durable.event,
        );
        self.auth_cache.insert(num, Arc::clone(&a));
        Ok(a)
    }

    fn view(&mut self, ctx: &BatchContext<'_>, snap: u64) -> RoomResult<StateView> {
        if snap == EMPTY_SNAPSHOT {
            return Ok(StateView::empty());
        }
        if self.current.snap == snap {
            return Ok(self.current.clone());
        }
        if let Some(v) = self.views.get(&snap) {
            return Ok(v.clone());
        }
        let unsynced = &self.unsynced;
        let v = ctx
            .store
            .load_view_with(snap, |n| unsynced.get(&n).cloned())?;
        self.remember(v.clone());
        Ok(v)
    }

    fn remember(&mut self, v: StateView) {
        if self.views.insert(v.snap, v.clone()).is_none() {
            self.view_order.push_back(v.snap);
            while self.view_order.len() > VIEW_CACHE {
                if let Some(old) = self.view_order.pop_front() {
                    self.views.remove(&old);
                }
            }
        }
    }

    /// Gives a draft a snapshot number (reusing an identical stored state) and queues its record.
    fn commit_draft(
        &mut self,
        ctx: &BatchContext<'_>,
        draft: StateDraft,
        writes: &mut Writes,
    ) -> RoomResult<StateView> {
        let existing = match self.hashes.get(&draft.hash) {
            Some(s) => Some(*s),
            None if self.fresh => None,
            None => ctx.store.snapshot_by_hash(&draft.hash)?,
        };
        if let Some(snap) = existing {
            return self.view(ctx, snap);
        }
        let snap = ctx.next_snapshot.fetch_add(1, Ordering::Relaxed);
        let (view, record) = draft.commit(snap);
        writes.insert(&SNAPSHOTS, &snap, &record);
        writes.insert(&SNAPSHOT_HASHES, &view.hash, &snap);
        self.unsynced.insert(snap, record);
        self.hashes.insert(view.hash, snap);
        self.remember(view.clone());
        Ok(view)
    }

    /// The store key numbers of the state entries the state-dependent rules may read for `event`
    /// (those that exist), sorted.
    fn check_keys(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &AuthEvent,
    ) -> RoomResult<SmallVec<[u32; 12]>> {
        let mut pairs: SmallVec<[(&str, &str); 12]> = SmallVec::new();
        auth::for_each_auth_type(event, |t, s| pairs.push((t, s)));
        pairs.push(("m.room.create", ""));
        pairs.push(("m.room.power_levels", ""));
        pairs.push(("m.room.join_rules", ""));
        pairs.push(("m.room.member", &event.pdu.sender));
        if let Some(sk) = &event.pdu.state_key {
            pairs.push(("m.room.member", sk));
        }
        let mut keys = SmallVec::new();
        for (i, &(t, s)) in pairs.iter().enumerate() {
            // The same pair comes up twice or three times (the sender's member event, the fixed
            // three); skipped cheaply when it is the same string, so a pair not numbered yet (a new
            // member) is asked of the shared interner once.
            let same = |&(t2, s2): &(&str, &str)| {
                t2 == t && s2.as_ptr() == s.as_ptr() && s2.len() == s.len()
            };
            if pairs[..i].iter().any(same) {
                continue;
            }
            if let Some(k) = self.key(ctx, t, s)? {
                keys.push(k);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The store key number of a `(type, state_key)` pair, if it has one: from the room's own cache,
    /// which spares the shared interner's lock on the hot path.
    fn key(&mut self, ctx: &BatchContext<'_>, t: &str, s: &str) -> RoomResult<Option<u32>> {
        self.key_or_intern(ctx, t, s, false)
    }

    /// [`RoomWorker::key`]; with `intern`, a pair without a number gets one (and the room's cache
    /// remembers it), so a new state key costs one interner call.
    fn key_or_intern(
        &mut self,
        ctx: &BatchContext<'_>,
        t: &str,
        s: &str,
        intern: bool,
    ) -> RoomResult<Option<u32>> {
        let ask = || ask_interner(ctx, t, s, intern);
        // The pairs every check reads get a slot each, members are looked up by user id alone, the
        // rest by their encoding (built in that arm only: the common pairs clear no 512-byte buffer;
        // too long to encode: ask the interner every time).
        let fixed = match (t, s) {
            ("m.room.create", "") => 0,
            ("m.room.power_levels", "") => 1,
            ("m.room.join_rules", "") => 2,
            ("m.room.member", _) => return cached_number(&mut self.member_keys, s, ask),
            _ => {
                let mut buf = [0u8; 2 + 255 + 255];
                return match codec::encode_state_key_into(t, s, &mut buf) {
                    Some(n) => cached_number(&mut self.key_cache, &buf[..n], ask),
                    None => ask(),
                };
            }
        };
        if self.fixed_keys[fixed] != u32::MAX {
            return Ok(Some(self.fixed_keys[fixed]));
        }
        let k = ask()?;
        if let Some(k) = k {
            self.fixed_keys[fixed] = k;
        }
        Ok(k)
    }

    /// Loads the state entries `keys` of `view` (the auth events the state-dependent rules may read)
    /// into the cache and returns them as an [`AuthState`].
    fn state_for_check(
        &mut self,
        ctx: &BatchContext<'_>,
        keys: &[u32],
        view: &StateView,
    ) -> RoomResult<SmallVec<[Arc<AuthEvent>; 8]>> {
        let mut events = SmallVec::new();
        for &k in keys {
            let Some(num) = view.get(k) else { continue };
            let a = self.load_auth(ctx, num)?;
            if !events.iter().any(|e: &Arc<AuthEvent>| Arc::ptr_eq(e, &a)) {
                events.push(a);
            }
        }
        Ok(events)
    }

    /// Steps 4–6 of the receipt checks, state before/after, extremities and current state for one
    /// timeline event whose auth events are stored: `hinted`, the state before it from hints when it
    /// sits at a gap (else its prev events give it); `existing`, the number of the outlier it was.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        parents: Parents,
        hinted: Option<Result<StateView, String>>,
        event_id: String,
        existing: Option<u64>,
        writes: &mut Writes,
    ) -> RoomResult<EventOutcome> {
        let ParsedEvent {
            line,
            event,
            raw,
            redacted,
            unsigned,
            ..
        } = item;
        let pdu = &event.pdu;
        let was = existing.and_then(|n| self.info.get(&n).map(|i| i.status));
        let num = match existing {
            Some(n) => n,
            None => {
                let n = ctx.next_event.fetch_add(1, Ordering::Relaxed);
                self.log_from = self.log_from.min(n);
                n
            }
        };
        let is_create = pdu.event_type == "m.room.create" && pdu.state_key.as_deref() == Some("");
        let state_key = pdu.state_key.as_deref().map(|sk| (&*pdu.event_type, sk));
        let gap = hinted.is_some();

        let (before, foreign_prev) = match hinted {
            Some(before) => (before, None),
            None if is_create => (Ok(StateView::empty()), None),
            None => self.state_from_prevs(ctx, &event, &parents.prev, writes)?,
        };
        let (verdict, before) = self.check(
            ctx,
            &event,
            is_create,
            before,
            foreign_prev,
            gap,
            &parents,
            writes,
        )?;
        // Receipt: a server that must sign the event did not (found in the parse stage). Synapse
        // checks this before the auth rules, so its reason is the one reported.
        let mut verdict = match unsigned {
            Some(failure) => Verdict {
                status: EventStatus::Rejected,
                reason: Some(Reason::Signature(failure)),
            },
            None => verdict,
        };
        let before = before.unwrap_or_else(StateView::empty);

        // State after: a rejected event never updates state.
        let mut after = before.clone();
        if verdict.status != EventStatus::Rejected
            && let Some((t, s)) = state_key
        {
            let k = self.intern_key(ctx, t, s)?;
            if self.event_keys.insert(num, k).is_none() || was.is_some_and(EventStatus::is_rejected)
            {
                // A de-outliered event that was a rejected outlier enters the log at its place.
                let at = self.state_log.partition_point(|&n| n < num);
                if self.state_log.get(at) != Some(&num) {
                    self.state_log.insert(at, num);
                }
            }
            if let Some(draft) = before.apply(&[(k, Some(num))]) {
                after = self.commit_draft(ctx, draft, writes)?;
            }
        }

        // Auth chain of state events (an outlier's is indexed already).
        if state_key.is_some() && existing.is_none() {
            self.index_auth_chain(num, &parents.auth, &event, writes)?;
        }

        // Visible to the resolutions below (the new current state may include this event).
        self.ids.insert(event_id.as_str().into(), num);
        self.set_info(num, verdict.status, after.snap, was);

        // Forward extremities and current state: only accepted events move them.
        if verdict.status == EventStatus::Accepted {
            match self.advance_extremities(ctx, num, &event_id, &parents, &after, writes)? {
                Ok(()) => {
                    if gap {
                        self.cite_gaps(&event, &parents, writes);
                    }
                }
                Err(reason) => {
                    verdict = Verdict {
                        status: EventStatus::Rejected,
                        reason: Some(Reason::NewCurrentStateUnresolved(reason)),
                    };
                    after = before.clone();
                    self.set_info(
                        num,
                        EventStatus::Rejected,
                        after.snap,
                        Some(EventStatus::Accepted),
                    );
                }
            }
        }
        if matches!(
            verdict.status,
            EventStatus::SoftFailed | EventStatus::Rejected
        ) {
            self.bad_prevs
                .insert(num, parents.prev.iter().copied().collect());
        }
        if is_create && verdict.status == EventStatus::Accepted {
            self.set_create(num, &event, writes);
        }

        let status = verdict.status;
        let was_redacted = redacted.is_some();
        self.write_event(
            writes,
            num,
            &event_id,
            status,
            &verdict
                .reason
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            redacted.as_deref().unwrap_or(&raw),
            was_redacted,
            (before.snap, after.snap),
            &parents,
        );
        if existing.is_some() {
            self.forget_outlier(num, &event, writes);
        }
        self.remember(after);

        let outcome = match status {
            EventStatus::Accepted => Outcome::Accepted,
            EventStatus::SoftFailed => Outcome::SoftFailed,
            _ => Outcome::Rejected,
        };
        let mut reason = verdict.reason;
        if was_redacted {
            reason = redacted_reason(reason);
        }
        Ok(EventOutcome {
            line,
            event_id: Some(event_id),
            outcome,
            reason,
            deoutliered: existing.is_some(),
        })
    }

    /// Records an event's status and state after. When a de-outliered event changes between rejected
    /// and not, the resolution graph (which holds rejection flags) and the memoised resolutions are
    /// dropped: rare, and rebuilt on demand.
    fn set_info(&mut self, num: u64, status: EventStatus, after: u64, was: Option<EventStatus>) {
        self.info.insert(num, EventInfo { status, after });
        if was.is_some_and(|w| w.is_rejected() != status.is_rejected()) {
            self.graph = None;
            self.graph_idx.clear();
            self.graph_nums.clear();
            self.graph_keys.clear();
            self.memo.clear();
        }
    }

    /// The forward extremities after accepting `num`, as Synapse computes them
    /// (`_calculate_new_extremities`): its prev events leave, and so do the events reached from them
    /// through soft-failed or rejected events; `num` joins unless an accepted timeline event already
    /// cites it (it arrived after its child, which was stored at a gap). The current state is the
    /// resolution of the states after the new extremities. `Err` when that cannot be resolved.
    fn advance_extremities(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
        event_id: &str,
        parents: &Parents,
        after: &StateView,
        writes: &mut Writes,
    ) -> RoomResult<Result<(), String>> {
        let mut gone: SmallVec<[u64; 8]> = parents.prev.iter().copied().collect();
        self.prevs_before_rejected(ctx, &parents.prev, &mut gone)?;
        let mut ext: Vec<u64> = self
            .extremities
            .iter()
            .copied()
            .filter(|e| !gone.contains(e))
            .collect();
        if !self.cited.contains(event_id) {
            ext.push(num);
        }
        if ext.is_empty() || ext == self.extremities {
            return Ok(Ok(()));
        }
        let new_current = if ext == [num] {
            Ok(after.clone())
        } else {
            let mut views = Vec::with_capacity(ext.len());
            for e in &ext {
                if *e == num {
                    views.push(after.clone());
                } else {
                    let snap = self.info(ctx, *e)?.map_or(EMPTY_SNAPSHOT, |(i, _)| i.after);
                    views.push(self.view(ctx, snap)?);
                }
            }
            fork_outcome(self.resolve_views(ctx, &views, writes))?
        };
        Ok(new_current.map(|current| {
            self.current = current;
            self.extremities = ext;
            self.dirty = true;
        }))
    }

    /// Remembers (and persists) that an accepted timeline event cites these missing or outlier prev
    /// events: when one of them later joins the timeline, it is not a forward extremity.
    fn cite_gaps(&mut self, event: &AuthEvent, parents: &Parents, writes: &mut Writes) {
        for id in &event.pdu.prev_events {
            let gap = parents.missing.iter().any(|m| **m == **id)
                || self
                    .ids
                    .get(&**id)
                    .and_then(|n| self.info.get(n))
                    .is_some_and(|i| i.status.is_outlier());
            if gap && self.cited.insert(Box::from(&**id)) {
                writes.insert(&CITED, &self.in_room(&**id), &());
            }
        }
    }

    /// Drops what was kept for an outlier that is now a timeline event.
    fn forget_outlier(&mut self, num: u64, event: &AuthEvent, writes: &mut Writes) {
        self.outlier_bytes.remove(&num);
        for id in &event.pdu.prev_events {
            if let Some(list) = self.outlier_wait.get_mut(&**id) {
                list.retain(|n| *n != num);
                if list.is_empty() {
                    self.outlier_wait.remove(&**id);
                }
            }
            writes.remove(&OUTLIER_WAITS, &self.in_room((&**id, num)));
        }
    }

    /// Queues the room's extremities record if they changed.
    pub fn flush(&mut self, writes: &mut Writes) {
        if self.dirty {
            let heads = ExtremitiesRef {
                current: self.current.snap,
                events: &self.extremities,
            };
            writes.insert(&EXTREMITIES, self.room_id.as_str(), &heads);
            self.dirty = false;
        }
    }

    /// The state before an event whose prev events are all timeline events: the resolution of the
    /// states after them. Also names a prev event of another room, if any.
    fn state_from_prevs(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &AuthEvent,
        prev_nums: &[u64],
        writes: &mut Writes,
    ) -> RoomResult<(Result<StateView, String>, Option<String>)> {
        let mut foreign_prev = None;
        let mut prev_views: SmallVec<[StateView; 2]> = SmallVec::new();
        for (p, id) in prev_nums.iter().zip(&event.pdu.prev_events) {
            match self.info(ctx, *p)? {
                Some((i, true)) => prev_views.push(self.view(ctx, i.after)?),
                _ => foreign_prev = Some(id.to_string()),
            }
        }
        let before = if prev_views.is_empty() {
            Ok(StateView::empty())
        } else {
            fork_outcome(self.resolve_views(ctx, &prev_views, writes))?
        };
        Ok((before, foreign_prev))
    }

    /// Step 4 of the receipt checks: the event against its own auth events (rejected ones left out).
    fn check_auth_events(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &Arc<AuthEvent>,
        auth_nums: &[u64],
        create: &Arc<AuthEvent>,
    ) -> RoomResult<Result<(), Reason>> {
        let mut auth_events: SmallVec<[Arc<AuthEvent>; 8]> = SmallVec::new();
        // At most 10 auth events: a list beats a map.
        let mut statuses: SmallVec<[(&str, EventStatus); 8]> = SmallVec::new();
        for (a, id) in auth_nums.iter().zip(&event.pdu.auth_events) {
            let ae = self.load_auth(ctx, *a)?;
            let status = match self.info(ctx, *a)? {
                Some((i, _)) => i.status,
                None => EventStatus::Rejected,
            };
            statuses.push((id, status));
            auth_events.push(ae);
        }
        let refs: SmallVec<[&AuthEvent; 8]> = auth_events.iter().map(|a| &**a).collect();
        // Mostly none is rejected: then no id needs comparing.
        let any_rejected = statuses.iter().any(|(_, s)| s.is_rejected());
        let is_rejected = |id: &str| {
            any_rejected
                && statuses
                    .iter()
                    .rev()
                    .find(|(i, _)| *i == id)
                    .is_some_and(|(_, s)| s.is_rejected())
        };
        if let Err(e) = auth::check_state_independent(event, &refs, Some(create), &is_rejected) {
            return Ok(Err(Reason::AuthEvents(Box::new(e))));
        }
        let usable: SmallVec<[&AuthEvent; 8]> = auth_events
            .iter()
            .filter(|a| !is_rejected(a.event_id()))
            .map(|a| &**a)
            .collect();
        if let Err(e) = auth::check_state_dependent(event, &AuthEventsState::new(&usable), create) {
            return Ok(Err(Reason::AuthEvents(Box::new(e))));
        }
        Ok(Ok(()))
    }

    /// Checks against the event's own auth events, the state before it and the current state (for an
    /// event at a gap, `gap`: the resolution of the current extremities' states with the state before
    /// it, as Synapse's `_check_for_soft_fail` does when prev events are missing).
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &Arc<AuthEvent>,
        is_create: bool,
        before: Result<StateView, String>,
        foreign_prev: Option<String>,
        gap: bool,
        parents: &Parents,
        writes: &mut Writes,
    ) -> RoomResult<(Verdict, Option<StateView>)> {
        let reject = |reason: Reason| Verdict {
            status: EventStatus::Rejected,
            reason: Some(reason),
        };
        let before = match before {
            Ok(v) => v,
            Err(reason) => {
                return Ok((reject(Reason::StateBeforeUnresolved(reason)), None));
            }
        };
        if let Some(id) = foreign_prev {
            return Ok((reject(Reason::ForeignPrevEvent(id)), Some(before)));
        }
        if is_create {
            if let Some((_, create)) = &self.create {
                let other = &create.pdu.event_id;
                return Ok((
                    reject(Reason::SecondCreate(other.to_string())),
                    Some(before),
                ));
            }
            return Ok(
                match auth::check_state_independent(event, &[], None, &|_| false) {
                    Ok(()) => (
                        Verdict {
                            status: EventStatus::Accepted,
                            reason: None,
                        },
                        Some(before),
                    ),
                    Err(e) => (reject(Reason::AuthEvents(Box::new(e))), Some(before)),
                },
            );
        }
        let Some((_, create)) = self.create.clone() else {
            return Ok((reject(Reason::NoCreate), Some(before)));
        };
        if event.pdu.prev_events.is_empty() {
            return Ok((reject(Reason::NoPrevEvents), Some(before)));
        }

        // Step 4: the event's own auth events.
        if let Err(reason) = self.check_auth_events(ctx, event, &parents.auth, &create)? {
            return Ok((reject(reason), Some(before)));
        }

        // Step 5: the state before the event.
        let keys = self.check_keys(ctx, event)?;
        let state = self.state_for_check(ctx, &keys, &before)?;
        if let Err(e) = auth::check_state_dependent(event, &ArcState(&state), &create) {
            return Ok((reject(Reason::StateBefore(Box::new(e))), Some(before)));
        }

        // Step 6: the current state (soft fail).
        let current = if gap {
            let mut views: Vec<StateView> = Vec::with_capacity(self.extremities.len() + 1);
            for e in self.extremities.clone() {
                let snap = self.info(ctx, e)?.map_or(EMPTY_SNAPSHOT, |(i, _)| i.after);
                views.push(self.view(ctx, snap)?);
            }
            views.push(before.clone());
            match fork_outcome(self.resolve_views(ctx, &views, writes))? {
                Ok(v) => v,
                Err(reason) => {
                    return Ok((
                        Verdict {
                            status: EventStatus::SoftFailed,
                            reason: Some(Reason::CurrentStateUnresolved(reason)),
                        },
                        Some(before),
                    ));
                }
            }
        } else {
            self.current.clone()
        };
        if current.snap != before.snap {
            let state = self.state_for_check(ctx, &keys, &current)?;
            if let Err(e) = auth::check_state_dependent(event, &ArcState(&state), &create) {
                return Ok((
                    Verdict {
                        status: EventStatus::SoftFailed,
                        reason: Some(Reason::CurrentState(Box::new(e))),
                    },
                    Some(before),
                ));
            }
        }
        Ok((
            Verdict {
                status: EventStatus::Accepted,
                reason: None,
            },
            Some(before),
        ))
    }
    /// [`RoomWorker::key_of`], numbering the pair if it has none.
    fn key_of_interned(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Option<u32>> {
        self.event_key(ctx, num, true)
    }

    /// The store key number of one of this room's state events (`None`: not a state event).
    fn key_of(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Option<u32>> {
        self.event_key(ctx, num, false)
    }

    /// [`RoomWorker::key_of`]; with `intern`, a pair without a number gets one.
    fn event_key(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
        intern: bool,
    ) -> RoomResult<Option<u32>> {
        if let Some(k) = self.event_keys.get(&num) {
            return Ok(Some(*k));
        }
        let event = self.load_auth(ctx, num)?;
        let Some(state_key) = event.pdu.state_key.as_deref() else {
            return Ok(None);
        };
        let k = self.key_or_intern(ctx, &event.pdu.event_type, state_key, intern)?;
        if let Some(k) = k {
            self.event_keys.insert(num, k);
        }
        Ok(k)
    }

    /// The inputs of a resolution of `views` that costs O(conflicted events and their auth chains), not
    /// O(state): per view, its events at the conflicted keys plus the unconflicted events the auth checks
    /// can read, and the auth difference of the *full* views, from the persisted auth chains.
    ///
    /// With `U` the unconflicted events and `K_i` view i's conflicted events, the closure (auth chain
    /// plus the events themselves) of view i is `cl(U) ∪ cl(K_i)`, so the auth difference is
    /// `Y ∖ cl(U)` with `Y = ∪ cl(K_i) ∖ ∩ cl(K_i)`. Membership in `cl(U)` is decided from the unconflicted
    /// events inside `∪ cl(K_i)` and, for what remains, from the state events applied after the oldest
    /// undecided one (an event is only ever in the auth chain of later events). `None` when that
    /// history reaches back before what this process has seen, or would cost more than the full
    /// resolution: the caller then resolves the full sets.
    fn fast_inputs<S: KeyedState>(
        &mut self,
        ctx: &BatchContext<'_>,
        views: &[&S],
        conflicted_keys: &[u32],
    ) -> RoomResult<Option<FastInputs>> {
        let base = views[0];
        // K_i and cl(K_i).
        let mut sets: Vec<Vec<u64>> = vec![Vec::new(); views.len()];
        let mut closures: Vec<Closure> = Vec::with_capacity(views.len());
        for (view, set) in views.iter().zip(&mut sets) {
            for &k in conflicted_keys {
                if let Some(e) = view.get(k) {
                    set.push(e);
                }
            }
            let mut closure = Closure::default();
            if self.cover.extend(&mut closure, set).is_err() {
                return Ok(None);
            }
            closures.push(closure);
        }
        // ∪ cl(K_i) ∖ ∩ cl(K_i), per chain a range of sequence numbers.
        let candidates = self.cover.difference_of(&closures);

        // cl(U) ∩ candidates. An unconflicted event inside ∩ cl(K_i) has all its ancestors there, so
        // among the union only the candidates themselves can cover candidates (descending: an event
        // already covered has its chain covered too).
        let mut covered = Closure::default();
        for &d in candidates.iter().rev() {
            if !self.in_cover(&covered, d)
                && self.is_unconflicted(ctx, base, conflicted_keys, d)?
                && self.cover.extend(&mut covered, &[d]).is_err()
            {
                return Ok(None);
            }
        }
        let mut undecided: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&d| !self.in_cover(&covered, d))
            .collect();
        if let Some(&oldest) = undecided.first() {
            if oldest < self.log_from {
                return Ok(None);
            }
            let from = self.state_log.partition_point(|&n| n <= oldest);
            if self.state_log.len() - from > base.len() {
                return Ok(None);
            }
            for i in from..self.state_log.len() {
                let u = self.state_log[i];
                if self.in_cover(&covered, u)
                    || !self.is_unconflicted(ctx, base, conflicted_keys, u)?
                {
                    continue;
                }
                if self.cover.extend(&mut covered, &[u]).is_err() {
                    return Ok(None);
                }
                undecided.retain(|&d| !self.in_cover(&covered, d));
                if undecided.is_empty() {
                    break;
                }
            }
        }
        let difference: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&d| !self.in_cover(&covered, d))
            .collect();

        // The unconflicted events the iterative auth checks can read: the auth-type keys of every event
        // that can enter the full conflicted set (v2.1 adds the conflicted subgraph, inside the union).
        let mut readers: Vec<u64> = sets.iter().flatten().copied().collect();
        readers.extend(difference.iter().copied());
        if self.version.state_res == StateResAlgorithm::V2_1 {
            let conflicted: Vec<u64> = readers.clone();
            match self.cover.conflicted_subgraph(&conflicted) {
                Ok(sub) => readers.extend(sub),
                Err(_) => return Ok(None),
            }
        }
        readers.sort_unstable();
        readers.dedup();
        // The create event, which every check needs (in v12 no event cites it).
        let mut read: Vec<u64> = Vec::new();
        if let Some((create, _)) = &self.create {
            read.push(*create);
        }
        for e in readers {
            let event = self.load_auth(ctx, e)?;
            let mut types: SmallVec<[(&str, &str); 8]> = SmallVec::new();
            auth::for_each_auth_type(&event, |t, s| types.push((t, s)));
            for (t, s) in types {
                let Some(k) = self.key(ctx, t, s)? else {
                    continue;
                };
                if conflicted_keys.binary_search(&k).is_err()
                    && let Some(u) = base.get(k)
                {
                    read.push(u);
                }
            }
        }
        read.sort_unstable();
        read.dedup();
        for set in &mut sets {
            set.extend_from_slice(&read);
        }
        Ok(Some(FastInputs { sets, difference }))
    }

    /// Whether `e` is in `closure` (an event outside the index is not).
    fn in_cover(&self, closure: &Closure, e: u64) -> bool {
        self.cover.in_closure(closure, e).unwrap_or(false)
    }

    /// Whether `e` is an unconflicted entry of the views whose first member is `base`.
    fn is_unconflicted<S: KeyedState>(
        &mut self,
        ctx: &BatchContext<'_>,
        base: &S,
        conflicted_keys: &[u32],
        e: u64,
    ) -> RoomResult<bool> {
        Ok(match self.key_of(ctx, e)? {
            Some(k) => conflicted_keys.binary_search(&k).is_err() && base.get(k) == Some(e),
            None => false,
        })
    }

    /// The resolution of `views` as a stored snapshot (memoised by input snapshots).
    fn resolve_views(
        &mut self,
        ctx: &BatchContext<'_>,
        views: &[StateView],
        writes: &mut Writes,
    ) -> Result<StateView, StoredResolveError> {
        let mut snaps: Vec<u64> = views.iter().map(|v| v.snap).collect();
        snaps.sort_unstable();
        snaps.dedup();
        if snaps.len() == 1 {
            return Ok(views[0].clone());
        }
        if let Some(s) = self.memo.get(&snaps).copied() {
            return Ok(self.view(ctx, s)?);
        }
        let mut unique: Vec<&StateView> = Vec::with_capacity(snaps.len());
        for v in views {
            if !unique.iter().any(|u| u.snap == v.snap) {
                unique.push(v);
            }
        }
        // Every resolution algorithm keeps the entries all sets agree on, so the result differs from
        // the first input only at the conflicted keys: those where the inputs differ (found from the
        // overlays when the views share a base, as forks of one state do).
        let base = unique[0];
        let mut conflicted_keys: Vec<u32> = Vec::new();
        for other in &unique[1..] {
            conflicted_keys.extend(base.differing_keys(other));
        }
        conflicted_keys.sort_unstable();
        conflicted_keys.dedup();
        if conflicted_keys.is_empty() {
            self.memo.insert(snaps, base.snap);
            return Ok(base.clone());
        }
        let fast = if self.version.state_res == StateResAlgorithm::V1 {
            None
        } else {
            self.fast_inputs(ctx, &unique, &conflicted_keys)?
        };
        let resolved = match &fast {
            Some(inputs) => {
                self.stats.partial += 1;
                let got = self.resolve_sets_with(ctx, &inputs.sets, Some(&inputs.difference))?;
                if ctx.check_resolutions {
                    let full = self.resolve_full(ctx, &unique)?;
                    check_same(&conflicted_keys, &got, &full)?;
                }
                got
            }
            None => {
                self.stats.full += 1;
                self.resolve_full(ctx, &unique)?
            }
        };
        let mut keys: IntMap<u32, Option<u64>> =
            conflicted_keys.iter().map(|k| (*k, None)).collect();
        for (k, e) in resolved {
            if let Some(slot) = keys.get_mut(&k) {
                *slot = Some(e);
            }
        }
        let changes: Vec<(u32, Option<u64>)> = keys.into_iter().collect();
        let view = match base.apply(&changes) {
            None => base.clone(),
            Some(draft) => self.commit_draft(ctx, draft, writes)?,
        };
        self.memo.insert(snaps, view.snap);
        if self.memo.len() > 100_000 {
            self.memo.clear();
        }
        Ok(view)
    }

    /// Resolves caller-supplied state sets with the room's event graph and chain cover. The sets come
    /// as the first set's events (`base`, event numbers, one per key) and, per other set, its
    /// differences from the first (`overlays`: an event replacing or adding the entry of its key, or
    /// the removal of a base entry), so a caller handing over large, mostly equal sets pays per
    /// difference. Returns the resolved state as its difference from the first set.
    ///
    /// Only the conflict is paid for (as in fork resolution, [`RoomWorker::fast_inputs`]): the sets'
    /// events at the conflicted keys, the auth difference from the chain cover, and the unconflicted
    /// events the auth checks read enter the graph — the first time they are needed; the graph persists
    /// across calls. The rest of the state is the first set's. Room version 1, or a difference whose
    /// history this process has not seen, resolves the full sets.
    pub fn resolve_sets(
        &mut self,
        ctx: &BatchContext<'_>,
        base: &[u64],
        overlays: &[Vec<SetChange>],
    ) -> Result<StateDelta, StoredResolveError> {
        let mut base_map: IntMap<u32, u64> = IntMap::default();
        base_map.reserve(base.len());
        for &e in base {
            let k = self.state_key_num(ctx, e)?;
            if let Some(other) = base_map.insert(k, e)
                && other != e
            {
                return Err(StoredResolveError::TwoEventsForKey {
                    first: self.name_of(ctx, other),
                    second: self.name_of(ctx, e),
                });
            }
        }
        let mut changes: Vec<IntMap<u32, Option<u64>>> = Vec::with_capacity(overlays.len());
        let mut conflicted_keys: Vec<u32> = Vec::new();
        for overlay in overlays {
            let mut map: IntMap<u32, Option<u64>> = IntMap::default();
            map.reserve(overlay.len());
            for change in overlay {
                let (k, v) = match *change {
                    SetChange::Set(e) => (self.state_key_num(ctx, e)?, Some(e)),
                    SetChange::Remove(e) => (self.state_key_num(ctx, e)?, None),
                };
                if base_map.get(&k).copied() != v {
                    conflicted_keys.push(k);
                }
                map.insert(k, v);
            }
            changes.push(map);
        }
        conflicted_keys.sort_unstable();
        conflicted_keys.dedup();
        if conflicted_keys.is_empty() {
            return Ok(StateDelta::default());
        }
        let empty = IntMap::default();
        let views: Vec<Overlay<'_>> = std::iter::once(Overlay::new(&base_map, &empty))
            .chain(changes.iter().map(|c| Overlay::new(&base_map, c)))
            .collect();
        let refs: Vec<&Overlay<'_>> = views.iter().collect();
        let fast = if self.version.state_res == StateResAlgorithm::V1 {
            None
        } else {
            self.fast_inputs(ctx, &refs, &conflicted_keys)?
        };
        let resolved: IntMap<u32, u64> = match fast {
            Some(inputs) => {
                self.stats.partial += 1;
                self.resolve_sets_with(ctx, &inputs.sets, Some(&inputs.difference))?
                    .into_iter()
                    .filter(|(k, _)| conflicted_keys.binary_search(k).is_ok())
                    .collect()
            }
            None => {
                self.stats.full += 1;
                let full: Vec<Vec<u64>> = views.iter().map(Overlay::events).collect();
                self.resolve_sets_with(ctx, &full, None)?
                    .into_iter()
                    .collect()
            }
        };
        // Only conflicted keys can differ from the first set (every algorithm keeps what all sets
        // agree on).
        let mut delta = StateDelta::default();
        for &k in &conflicted_keys {
            let (before, after) = (base_map.get(&k).copied(), resolved.get(&k).copied());
            if before != after {
                delta.removed.extend(before);
                delta.added.extend(after);
            }
        }
        Ok(delta)
    }

    /// The key number of a state event, or an error naming the event.
    fn state_key_num(&mut self, ctx: &BatchContext<'_>, e: u64) -> Result<u32, StoredResolveError> {
        match self.key_of_interned(ctx, e)? {
            Some(k) => Ok(k),
            None => Err(StoredResolveError::NotState(self.name_of(ctx, e))),
        }
    }

    /// The id of a stored event, for an error (its number when even that cannot be read).
    fn name_of(&mut self, ctx: &BatchContext<'_>, num: u64) -> String {
        match self.load_auth(ctx, num) {
            Ok(a) => a.pdu.event_id.to_string(),
            Err(_) => format!("event number {num}"),
        }
    }

    /// The number of an event id of this room (cached in memory), `None` if not stored.
    pub fn event_num(&mut self, ctx: &BatchContext<'_>, id: &str) -> RoomResult<Option<u64>> {
        self.lookup(ctx, id)
    }

    /// A stored event's auth facts (cached in memory).
    pub fn auth_event(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Arc<AuthEvent>> {
        self.load_auth(ctx, num)
    }

    /// Resolves the full state of `views` (O(state): the fallback of [`RoomWorker::fast_inputs`]).
    fn resolve_full(
        &mut self,
        ctx: &BatchContext<'_>,
        views: &[&StateView],
    ) -> Result<Vec<(u32, u64)>, StoredResolveError> {
        let sets: Vec<Vec<u64>> = views
            .iter()
            .map(|v| {
                let mut set = Vec::with_capacity(v.len());
                v.for_each(|_, e| set.push(e));
                set
            })
            .collect();
        self.resolve_sets_with(ctx, &sets, None)
    }

    /// [`RoomWorker::resolve_sets`], optionally with the auth difference of the full sets given (when
    /// `sets` hold only part of each state, see [`RoomWorker::fast_inputs`]).
    fn resolve_sets_with(
        &mut self,
        ctx: &BatchContext<'_>,
        sets: &[Vec<u64>],
        difference: Option<&[u64]>,
    ) -> Result<Vec<(u32, u64)>, StoredResolveError> {
        // The sets' events not in the graph yet and their auth chains, ascending.
        let mut fresh: Vec<u64> = sets
            .iter()
            .flatten()
            .copied()
            .filter(|e| !self.graph_idx.contains_key(e))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        let mut closure = Closure::default();
        self.cover.extend(&mut closure, &fresh)?;
        let need = self.cover.events_of(closure.reach());
        if self.graph.is_none() {
            self.graph = Some(EventGraph::new(self.version, &self.room_id));
        }
        // Event numbers grow in apply order, and an event is applied after its auth events: ascending
        // order is a topological order of the auth DAG, as `EventGraph::insert` needs.
        for &n in &need {
            if self.graph_idx.contains_key(&n) {
                continue;
            }
            let ae = self.load_auth(ctx, n)?;
            let rejected = match self.info(ctx, n)? {
                Some((i, true)) => i.status.is_rejected(),
                _ => continue,
            };
            let Some(graph) = self.graph.as_mut() else {
                break;
            };
            if let Ok(idx) = graph.insert(Arc::clone(&ae), rejected) {
                self.graph_idx.insert(n, idx);
                self.graph_nums.push(n);
            }
        }
        let mut idx_sets: Vec<Vec<EventIdx>> = Vec::with_capacity(sets.len());
        for set in sets {
            let mut s = Vec::with_capacity(set.len());
            for e in set {
                match self.graph_idx.get(e) {
                    Some(i) => s.push(*i),
                    None => return Err(StoredResolveError::NotInGraph(self.name_of(ctx, *e))),
                }
            }
            idx_sets.push(s);
        }
        let refs: Vec<&[EventIdx]> = idx_sets.iter().map(Vec::as_slice).collect();
        let Some(graph) = self.graph.as_ref() else {
            return Err(StoredResolveError::Internal("no event graph"));
        };
        let resolved = match difference {
            None => self.resolver.resolve(graph, &refs),
            Some(diff) => {
                let diff: Vec<EventIdx> = diff
                    .iter()
                    .filter_map(|n| self.graph_idx.get(n).copied())
                    .collect();
                self.resolver
                    .resolve_with_auth_difference(graph, &refs, &diff)
            }
        }?;
        let mut out = Vec::with_capacity(resolved.len());
        for (k, e) in resolved.iter() {
            // Graph key index → store key number, cached (the graph's keys are dense and only grow).
            let kn = match self.graph_keys.get(k.ix()).copied() {
                Some(kn) if kn != u32::MAX => kn,
                _ => {
                    let (t, s) = graph.keys().resolve(k);
                    let kn = ctx.keys.intern(ctx.store, t, s)?;
                    if self.graph_keys.len() <= k.ix() {
                        self.graph_keys.resize(k.ix() + 1, u32::MAX);
                    }
                    self.graph_keys[k.ix()] = kn;
                    kn
                }
            };
            let num = self
                .graph_nums
                .get(e.ix())
                .copied()
                .ok_or(StoredResolveError::Internal(
                    "resolved event outside the graph",
                ))?;
            out.push((kn, num));
        }
        Ok(out)
    }
}

/// Splits a fork resolution's failure: a store failure stops the batch (nothing of it commits); any
/// other failure is the event's, and its text becomes the event's reason.
fn fork_outcome(
    resolved: Result<StateView, StoredResolveError>,
) -> RoomResult<Result<StateView, String>> {
    match resolved {
        Ok(view) => Ok(Ok(view)),
        Err(StoredResolveError::Store(e)) => Err(e),
        Err(other) => Ok(Err(other.to_string())),
    }
}

/// A state map keyed by store key numbers: a stored snapshot, or a caller's state set.
pub(crate) trait KeyedState {
    fn get(&self, key: u32) -> Option<u64>;
    fn len(&self) -> usize;
}

impl KeyedState for StateView {
    fn get(&self, key: u32) -> Option<u64> {
        StateView::get(self, key)
    }

    fn len(&self) -> usize {
        StateView::len(self)
    }
}

/// A resolved state as its difference from the first input set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateDelta {
    /// Events of the first set that are not in the resolved state.
    pub removed: Vec<u64>,
    /// Events of the resolved state that are not in the first set.
    pub added: Vec<u64>,
}

/// How a caller's state set differs from the first set at one key (see [`RoomWorker::resolve_sets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetChange {
    /// This event holds its key (replacing the first set's event there, or adding the key).
    Set(u64),
    /// The first set's event for its key is absent from this set.
    Remove(u64),
}

/// A state set as the first set plus changes by key number.
struct Overlay<'a> {
    base: &'a IntMap<u32, u64>,
    changes: &'a IntMap<u32, Option<u64>>,
    len: usize,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a IntMap<u32, u64>, changes: &'a IntMap<u32, Option<u64>>) -> Overlay<'a> {
        let mut len = base.len();
        for (k, v) in changes {
            match (base.contains_key(k), v.is_some()) {
                (false, true) => len += 1,
                (true, false) => len -= 1,
                _ => {}
            }
        }
        Overlay { base, changes, len }
    }

    /// Every event of the set.
    fn events(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .base
            .iter()
            .filter(|(k, _)| !self.changes.contains_key(k))
            .map(|(_, &e)| e)
            .collect();
        out.extend(self.changes.values().flatten().copied());
        out
    }
}

impl KeyedState for Overlay<'_> {
    fn get(&self, key: u32) -> Option<u64> {
        match self.changes.get(&key) {
            Some(v) => *v,
            None => self.base.get(&key).copied(),
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// How many fork resolutions took each path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolutionStats {
    /// Resolved from the conflicted entries and the auth-chain index ([`RoomWorker::fast_inputs`]).
    pub partial: u64,
    /// Resolved from the full state sets (room version 1, or history not in memory).
    pub full: u64,
}

/// The partial state sets and the full sets' auth difference, see [`RoomWorker::fast_inputs`].
struct FastInputs {
    sets: Vec<Vec<u64>>,
    difference: Vec<u64>,
}

/// Compares the fast resolution with the full one at the conflicted keys (the
/// `EngineOptions::check_resolutions` self-check).
fn check_same(
    conflicted_keys: &[u32],
    fast: &[(u32, u64)],
    full: &[(u32, u64)],
) -> Result<(), StoredResolveError> {
    let at = |set: &[(u32, u64)], k: u32| set.iter().find(|e| e.0 == k).map(|e| e.1);
    for &k in conflicted_keys {
        let (a, b) = (at(fast, k), at(full, k));
        if a != b {
            let name =
                |e: Option<u64>| e.map_or("nothing".to_owned(), |n| format!("event number {n}"));
            return Err(StoredResolveError::SelfCheck {
                key: k,
                partial: name(a),
                full: name(b),
            });
        }
    }
    Ok(())
}

/// An [`AuthState`] over a handful of loaded events.
struct ArcState<'a>(&'a [Arc<AuthEvent>]);

impl AuthState for ArcState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        self.0
            .iter()
            .find(|e| {
                e.pdu.event_type == event_type && e.pdu.state_key.as_deref() == Some(state_key)
            })
            .map(|a| &**a)
    }
}

/// `prefix ‖ room id length (u16 BE) ‖ room id`: the start of a room's rows of a `meta` row family.
/// The chain cover index's key of a state event: FNV-1a of `type ‖ 0xff ‖ state_key`. Deterministic, so
/// that a rebuilt index chains as the original did; a collision only makes a chain continue across two
/// keys, which the index allows (a chain needs its predecessor among the event's auth events, nothing
/// more).
pub(crate) fn state_key_hash(event_type: &str, state_key: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in event_type
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(state_key.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn redacted_reason(reason: Option<Reason>) -> Option<Reason> {
    Some(Reason::Redacted(reason.map(Box::new)))
}

/// Bounds a per-room cache keyed by event number: once it reaches `limit` it drops the entries of
/// committed batches. Entries of batches not committed yet stay (a miss could not be served from the
/// store), so when they are most of the cache the next trim waits until it has doubled.
fn trim_cache<V>(cache: &mut IntMap<u64, V>, limit: &mut usize, durable_event: u64) {
    if cache.len() >= *limit {
        cache.retain(|num, _| *num >= durable_event);
        *limit = AUTH_CACHE.max(2 * cache.len());
    }
}

/// Parses a stored event back into an [`AuthEvent`].
pub(crate) fn load_auth_event(ctx: &BatchContext<'_>, num: u64) -> RoomResult<AuthEvent> {
    let rec = ctx
        .store
        .event_record(num)?
        .ok_or_else(|| EVENTS.corrupt(&num, format!("event {num} is referenced but missing")))?;
    let version =
        RoomVersion::from_id(&rec.room_version).map_err(|e| EVENTS.corrupt(&num, e.to_string()))?;
    let pdu = Pdu::parse(&rec.pdu, version)
        .map_err(|e| EVENTS.corrupt(&num, format!("stored PDU does not parse: {e}")))?;
    Ok(AuthEvent::detached(&pdu))
}

/// `cache[key]`, or else `ask`'s number, remembered when there is one: numbers never change once
/// given, absence can (another room may intern the pair).
fn cached_number<K, Q>(
    cache: &mut FastMap<K, u32>,
    key: &Q,
    ask: impl FnOnce() -> RoomResult<Option<u32>>,
) -> RoomResult<Option<u32>>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq + for<'q> From<&'q Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(k) = cache.get(key) {
        return Ok(Some(*k));
    }
    let k = ask()?;
    if let Some(k) = k {
        cache.insert(K::from(key), k);
    }
    Ok(k)
}

/// The shared interner's number for `(t, s)`; with `intern`, one is given if the pair has none.
fn ask_interner(ctx: &BatchContext<'_>, t: &str, s: &str, intern: bool) -> RoomResult<Option<u32>> {
    if intern {
        ctx.keys.intern(ctx.store, t, s).map(Some)
    } else {
        ctx.keys.get(ctx.store, t, s)
    }
}

#[cfg(test)]
mod tests;
