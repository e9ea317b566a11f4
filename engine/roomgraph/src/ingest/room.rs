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

/// The in-memory state of one room, one part per concern: its forward extremities and current state
/// (here), event facts, state views, auth events and key numbers (`caches.rs`), the fork resolver and
/// the state log (`forks.rs`), the pending set (`pending.rs`) and the outliers (`outliers.rs`).
pub(crate) struct RoomWorker {
    pub room_id: String,
    pub version: &'static RoomVersion,
    /// The accepted create event.
    create: Option<(u64, Arc<AuthEvent>)>,
    /// Created in this process: every event and snapshot of the room is in the maps of the parts
    /// below, so misses need no store lookup (event ids of v3+ rooms hash the room id, so no other
    /// room has them).
    fresh: bool,
    extremities: ForwardExtremities,
    events: EventIndex,
    views: ViewCache,
    auth: AuthChains,
    keys: KeyNumbers,
    forks: ForkResolver,
    state_log: StateLog,
    pending: PendingSet,
    outliers: Outliers,
}

/// The room's forward extremities and its current state (the resolution of the states after them).
struct ForwardExtremities {
    events: Vec<u64>,
    current: StateView,
    /// Changed since the last [`ForwardExtremities::flush`].
    dirty: bool,
    /// The prev events of the soft-failed and rejected timeline events applied by this process (for
    /// [`RoomWorker::prevs_before_rejected`]; older ones are read from the store).
    bad_prevs: IntMap<u64, SmallVec<[u64; 2]>>,
}

impl ForwardExtremities {
    fn new() -> ForwardExtremities {
        ForwardExtremities {
            events: Vec::new(),
            current: StateView::empty(),
            dirty: false,
            bad_prevs: IntMap::default(),
        }
    }

    /// Queues the room's extremities record if they changed.
    fn flush(&mut self, room_id: &str, writes: &mut Writes) {
        if self.dirty {
            let heads = ExtremitiesRef {
                current: self.current.snap,
                events: &self.events,
            };
            writes.insert(&EXTREMITIES, room_id, &heads);
            self.dirty = false;
        }
    }

    /// The prev events of a stored soft-failed or rejected timeline event.
    fn prevs_of(&self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<SmallVec<[u64; 2]>> {
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
}

/// The outcome of the checks for one event.
struct Verdict {
    status: EventStatus,
    reason: Option<Reason>,
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
            fresh: true,
            extremities: ForwardExtremities::new(),
            events: EventIndex::default(),
            views: ViewCache::default(),
            auth: AuthChains::new(),
            keys: KeyNumbers::new(),
            forks: ForkResolver::new(),
            state_log: StateLog::complete_from(0),
            pending: PendingSet::default(),
            outliers: Outliers::default(),
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
        room.state_log = StateLog::complete_from(u64::MAX);
        let create = room.auth.load(ctx, record.create_event)?;
        room.create = Some((record.create_event, create));
        room.auth.restore_cover(ctx, room_id)?;
        if let Some((current, extremities)) = ctx.store.extremities(room_id)? {
            room.extremities.current = room.view(ctx, current)?;
            room.extremities.events = extremities;
        }
        room.outliers = Outliers::load(ctx, room_id)?;
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
        self.views.forget_durable(ctx.durable.snapshot);
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
        self.events.reserve(items.len());
        self.auth.reserve(items.len());
        self.keys.reserve(items.len());
        let mut queue: VecDeque<Work> = items.into_iter().map(Work::New).collect();
        while let Some(work) = queue.pop_front() {
            match work {
                Work::New(item) => self.step(ctx, item, None, &mut queue, &mut out)?,
                Work::Deoutlier(item, num) => {
                    self.step(ctx, item, Some(num), &mut queue, &mut out)?
                }
            }
        }
        self.pending.persist(ctx, &mut out.writes);
        Ok(out)
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
                self.events.ids.get(id.as_str()).copied()
            } else {
                self.events.lookup(ctx, &id)?
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
            if self.events.lookup(ctx, &create_id)?.is_none() {
                self.pending.park(ctx, item, create_id, out);
                return Ok(());
            }
        }
        let parents = match self.parent_nums(ctx, &item.event.pdu)? {
            Ok(parents) => parents,
            Err(missing) => {
                self.pending.park(ctx, item, missing, out);
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
                self.pending.park(ctx, item, missing, out);
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
        let woken = self.pending.take(&id);
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
            && self.outliers.any_waiting()
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

    /// The event numbers of `auth_events` and of the stored `prev_events`, or the first auth event
    /// that is not stored yet (the event waits for it; missing prev events make a gap instead).
    fn parent_nums(
        &mut self,
        ctx: &BatchContext<'_>,
        pdu: &Pdu<'static>,
    ) -> RoomResult<Result<Parents, String>> {
        let mut auth = SmallVec::with_capacity(pdu.auth_events.len());
        for id in &pdu.auth_events {
            match self.events.lookup(ctx, id)? {
                Some(n) => auth.push(n),
                None => return Ok(Err(id.to_string())),
            }
        }
        let mut prev = SmallVec::with_capacity(pdu.prev_events.len());
        let mut missing = SmallVec::new();
        for id in &pdu.prev_events {
            match self.events.lookup(ctx, id)? {
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
                if let Some(p) = self.events.lookup(ctx, id)?
                    && matches!(self.info(ctx, p)?, Some((i, true)) if !i.status.is_rejected())
                {
                    own = Some(p);
                }
                match self.hinted_view(ctx, id, ids, own, writes)? {
                    Placement::Hinted(Ok(v)) => views.push(v),
                    other => return Ok(other),
                }
            } else if let Some(p) = self.events.lookup(ctx, id)?
                && let Some((i, true)) = self.info(ctx, p)?
            {
                views.push(self.view(ctx, i.after)?);
            }
        }
        let before = self.resolve_fork(ctx, &views, writes)?;
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
            let Some(num) = self.events.lookup(ctx, id)? else {
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
            for q in self.extremities.prevs_of(ctx, p)? {
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
            if let Some(k) = self.keys.get(ctx, t, s)? {
                keys.push(k);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
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
        let was = existing.and_then(|n| self.events.info.get(&n).map(|i| i.status));
        let num = match existing {
            Some(n) => n,
            None => {
                let n = ctx.next_event.fetch_add(1, Ordering::Relaxed);
                self.state_log.numbered(n);
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
            let k = self.keys.intern(ctx, t, s)?;
            if self.keys.of_event.insert(num, k).is_none()
                || was.is_some_and(EventStatus::is_rejected)
            {
                // A de-outliered event that was a rejected outlier enters the log at its place.
                self.state_log.insert(num);
            }
            if let Some(draft) = before.apply(&[(k, Some(num))]) {
                after = self.commit_draft(ctx, draft, writes)?;
            }
        }

        // Auth chain of state events (an outlier's is indexed already).
        if state_key.is_some() && existing.is_none() {
            self.auth
                .index(&self.room_id, num, &parents.auth, &event, writes)?;
        }

        // Visible to the resolutions below (the new current state may include this event).
        self.events.ids.insert(event_id.as_str().into(), num);
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
            self.extremities
                .bad_prevs
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
            self.outliers.forget(&self.room_id, num, &event, writes);
        }
        self.views.remember(after);

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
            .events
            .iter()
            .copied()
            .filter(|e| !gone.contains(e))
            .collect();
        if !self.outliers.is_cited(event_id) {
            ext.push(num);
        }
        if ext.is_empty() || ext == self.extremities.events {
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
            self.resolve_fork(ctx, &views, writes)?
        };
        Ok(new_current.map(|current| {
            self.extremities.current = current;
            self.extremities.events = ext;
            self.extremities.dirty = true;
        }))
    }

    /// Queues the room's extremities record if they changed.
    pub fn flush(&mut self, writes: &mut Writes) {
        self.extremities.flush(&self.room_id, writes);
    }

    /// The number of an event id of this room (cached in memory), `None` if not stored.
    pub fn event_num(&mut self, ctx: &BatchContext<'_>, id: &str) -> RoomResult<Option<u64>> {
        self.events.lookup(ctx, id)
    }

    /// A stored event's auth facts (cached in memory).
    pub fn auth_event(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Arc<AuthEvent>> {
        self.auth.load(ctx, num)
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

mod caches;
mod checks;
mod forks;
mod outliers;
mod pending;

use caches::{AuthChains, EventIndex, EventInfo, KeyNumbers, ViewCache};
use forks::{ForkResolver, StateLog};
use outliers::Outliers;
use pending::PendingSet;

pub use forks::{ResolutionStats, SetChange, StateDelta};
#[cfg(test)]
mod tests;
