//! What a room keeps in memory between events: event facts, parsed auth events and the chain cover
//! index, state views and snapshots not durable yet, and key numbers; the caches among them trimmed
//! to what is durable.

use super::*;

/// What the store knows about an event of this room.
#[derive(Debug, Clone, Copy)]
pub(super) struct EventInfo {
    pub(super) status: EventStatus,
    pub(super) after: u64,
}

/// The room's event numbers by id and event facts by number: caches over the store.
#[derive(Default)]
pub(super) struct EventIndex {
    pub(super) ids: FastMap<Box<str>, u64>,
    pub(super) info: IntMap<u64, EventInfo>,
}

impl EventIndex {
    /// Room for `additional` more events.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.ids.reserve(additional);
        self.info.reserve(additional);
    }

    /// The number of a stored event id (cached in memory), `None` if not stored.
    pub(super) fn lookup(&mut self, ctx: &BatchContext<'_>, id: &str) -> RoomResult<Option<u64>> {
        if let Some(n) = self.ids.get(id) {
            return Ok(Some(*n));
        }
        let n = ctx.store.event_num(id)?;
        if let Some(n) = n {
            self.ids.insert(id.into(), n);
        }
        Ok(n)
    }

    /// A stored event's facts, and whether it is an event of `room_id` (only those are cached).
    pub(super) fn info(
        &mut self,
        ctx: &BatchContext<'_>,
        room_id: &str,
        num: u64,
    ) -> RoomResult<Option<(EventInfo, bool)>> {
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
                let ours = meta.room_id == room_id;
                if ours {
                    self.info.insert(num, i);
                }
                Ok(Some((i, ours)))
            }
        }
    }
}

/// The room's state views: the [`VIEW_CACHE`] last used, the records of the snapshots not durable yet
/// and snapshot numbers by state hash.
#[derive(Default)]
pub(super) struct ViewCache {
    views: IntMap<u64, StateView>,
    /// The snapshots of `views`, oldest first.
    order: VecDeque<u64>,
    /// The records of this room's snapshots that are not durable yet: a view evicted from `views`
    /// before its batch is committed is rebuilt from them (see [`Durable`](super::super::Durable)).
    unsynced: IntMap<u64, SnapshotRecord>,
    by_hash: FastMap<StateHash, u64>,
}

impl ViewCache {
    /// Drops the records of the snapshots that are durable now (numbered below `durable_snapshot`).
    pub(super) fn forget_durable(&mut self, durable_snapshot: u64) {
        if !self.unsynced.is_empty() {
            self.unsynced.retain(|snap, _| *snap >= durable_snapshot);
        }
    }

    /// The view of a snapshot, from memory or else from the store.
    fn get(&mut self, ctx: &BatchContext<'_>, snap: u64) -> RoomResult<StateView> {
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

    /// Keeps a view, evicting the oldest beyond [`VIEW_CACHE`].
    pub(super) fn remember(&mut self, v: StateView) {
        if self.views.insert(v.snap, v.clone()).is_none() {
            self.order.push_back(v.snap);
            while self.order.len() > VIEW_CACHE {
                if let Some(old) = self.order.pop_front() {
                    self.views.remove(&old);
                }
            }
        }
    }

    /// Gives a draft a new snapshot number and queues its record.
    fn commit(
        &mut self,
        ctx: &BatchContext<'_>,
        draft: StateDraft,
        writes: &mut Writes,
    ) -> StateView {
        let snap = ctx.next_snapshot.fetch_add(1, Ordering::Relaxed);
        let (view, record) = draft.commit(snap);
        writes.insert(&SNAPSHOTS, &snap, &record);
        writes.insert(&SNAPSHOT_HASHES, &view.hash, &snap);
        self.unsynced.insert(snap, record);
        self.by_hash.insert(view.hash, snap);
        self.remember(view.clone());
        view
    }
}

/// The room's auth events: parsed ones kept in memory (trimmed to what is durable), and the chain
/// cover auth-chain index of every stored state event (loaded whole with the room).
pub(super) struct AuthChains {
    events: IntMap<u64, Arc<AuthEvent>>,
    /// Size at which `events` is trimmed next ([`trim_cache`]).
    trim_at: usize,
    pub(super) cover: ChainCover,
}

impl AuthChains {
    pub(super) fn new() -> AuthChains {
        AuthChains {
            events: IntMap::default(),
            trim_at: AUTH_CACHE,
            cover: ChainCover::new(),
        }
    }

    /// Room for `additional` more events.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.events.reserve(additional);
    }

    /// Loads the room's chain cover index from the store.
    pub(super) fn restore_cover(
        &mut self,
        ctx: &BatchContext<'_>,
        room_id: &str,
    ) -> RoomResult<()> {
        for (num, row) in ctx.store.chain_rows(room_id)? {
            self.cover
                .restore(num, row.key, &row.inserted)
                .map_err(|e| AUTH_CHAINS.corrupt(&InRoom { room_id, key: num }, e.to_string()))?;
        }
        Ok(())
    }

    /// A stored event's auth facts (cached in memory).
    pub(super) fn load(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Arc<AuthEvent>> {
        if let Some(a) = self.events.get(&num) {
            return Ok(Arc::clone(a));
        }
        let a = Arc::new(load_auth_event(ctx, num)?);
        trim_cache(&mut self.events, &mut self.trim_at, ctx.durable.event);
        self.events.insert(num, Arc::clone(&a));
        Ok(a)
    }

    /// Caches an event for auth lookups.
    pub(super) fn insert(&mut self, num: u64, event: &Arc<AuthEvent>) {
        self.events.insert(num, Arc::clone(event));
    }

    /// Indexes the auth chain of a state event (the persisted index used to assemble resolutions) and
    /// caches the event for auth lookups.
    pub(super) fn index(
        &mut self,
        room_id: &str,
        num: u64,
        auth_nums: &[u64],
        event: &Arc<AuthEvent>,
        writes: &mut Writes,
    ) -> RoomResult<()> {
        let key = state_key_hash(
            &event.pdu.event_type,
            event.pdu.state_key.as_deref().unwrap_or(""),
        );
        let row_key = InRoom { room_id, key: num };
        let inserted = self
            .cover
            .insert(num, key, auth_nums)
            .map_err(|e| AUTH_CHAINS.corrupt(&row_key, e.to_string()))?;
        writes.insert(&AUTH_CHAINS, &row_key, &ChainRow { key, inserted });
        self.insert(num, event);
        Ok(())
    }

    /// Whether `e` is in `closure` (an event outside the index is not).
    pub(super) fn in_cover(&self, closure: &Closure, e: u64) -> bool {
        self.cover.in_closure(closure, e).unwrap_or(false)
    }
}

/// Store key numbers of `(type, state_key)` pairs and of state events, kept by the room so that the
/// hot path spares the shared interner's lock.
pub(super) struct KeyNumbers {
    /// By the pair's encoding.
    by_encoding: FastMap<Box<[u8]>, u32>,
    /// `m.room.member` pairs, by state key.
    members: FastMap<Box<str>, u32>,
    /// The create, power-levels and join-rules pairs (`u32::MAX`: not known yet).
    fixed: [u32; 3],
    /// The key number of each non-rejected state event applied here (or looked up since).
    pub(super) of_event: IntMap<u64, u32>,
}

impl KeyNumbers {
    pub(super) fn new() -> KeyNumbers {
        KeyNumbers {
            by_encoding: FastMap::default(),
            members: FastMap::default(),
            fixed: [u32::MAX; 3],
            of_event: IntMap::default(),
        }
    }

    /// Room for `additional` more state events.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.of_event.reserve(additional);
    }

    /// The store key number of a pair, numbering it if it has none.
    pub(super) fn intern(&mut self, ctx: &BatchContext<'_>, t: &str, s: &str) -> RoomResult<u32> {
        match self.number(ctx, t, s, true)? {
            Some(k) => Ok(k),
            // Interning always numbers the pair; this only keeps the types honest.
            None => ctx.keys.intern(ctx.store, t, s),
        }
    }

    /// The store key number of a `(type, state_key)` pair, if it has one.
    pub(super) fn get(
        &mut self,
        ctx: &BatchContext<'_>,
        t: &str,
        s: &str,
    ) -> RoomResult<Option<u32>> {
        self.number(ctx, t, s, false)
    }

    /// [`KeyNumbers::get`]; with `intern`, a pair without a number gets one (and is remembered), so
    /// a new state key costs one interner call.
    pub(super) fn number(
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
            ("m.room.member", _) => return cached_number(&mut self.members, s, ask),
            _ => {
                let mut buf = [0u8; 2 + 255 + 255];
                return match codec::encode_state_key_into(t, s, &mut buf) {
                    Some(n) => cached_number(&mut self.by_encoding, &buf[..n], ask),
                    None => ask(),
                };
            }
        };
        if self.fixed[fixed] != u32::MAX {
            return Ok(Some(self.fixed[fixed]));
        }
        let k = ask()?;
        if let Some(k) = k {
            self.fixed[fixed] = k;
        }
        Ok(k)
    }
}

impl RoomWorker {
    /// [`EventIndex::info`] for this room.
    pub(super) fn info(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
    ) -> RoomResult<Option<(EventInfo, bool)>> {
        self.events.info(ctx, &self.room_id, num)
    }

    /// The view of a snapshot.
    pub(super) fn view(&mut self, ctx: &BatchContext<'_>, snap: u64) -> RoomResult<StateView> {
        if snap == EMPTY_SNAPSHOT {
            return Ok(StateView::empty());
        }
        if self.extremities.current.snap == snap {
            return Ok(self.extremities.current.clone());
        }
        self.views.get(ctx, snap)
    }

    /// Gives a draft a snapshot number (reusing an identical stored state) and queues its record.
    pub(super) fn commit_draft(
        &mut self,
        ctx: &BatchContext<'_>,
        draft: StateDraft,
        writes: &mut Writes,
    ) -> RoomResult<StateView> {
        let existing = match self.views.by_hash.get(&draft.hash) {
            Some(s) => Some(*s),
            None if self.fresh => None,
            None => ctx.store.snapshot_by_hash(&draft.hash)?,
        };
        if let Some(snap) = existing {
            return self.view(ctx, snap);
        }
        Ok(self.views.commit(ctx, draft, writes))
    }

    /// Records an event's status and state after. When a de-outliered event changes between rejected
    /// and not, the resolution graph (which holds rejection flags) and the memoised resolutions are
    /// dropped: rare, and rebuilt on demand.
    pub(super) fn set_info(
        &mut self,
        num: u64,
        status: EventStatus,
        after: u64,
        was: Option<EventStatus>,
    ) {
        self.events.info.insert(num, EventInfo { status, after });
        if was.is_some_and(|w| w.is_rejected() != status.is_rejected()) {
            self.forks.invalidate();
        }
    }
}

/// Bounds a per-room cache keyed by event number: once it reaches `limit` it drops the entries of
/// committed batches. Entries of batches not committed yet stay (a miss could not be served from the
/// store), so when they are most of the cache the next trim waits until it has doubled.
pub(super) fn trim_cache<V>(cache: &mut IntMap<u64, V>, limit: &mut usize, durable_event: u64) {
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
pub(super) fn cached_number<K, Q>(
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
pub(super) fn ask_interner(
    ctx: &BatchContext<'_>,
    t: &str,
    s: &str,
    intern: bool,
) -> RoomResult<Option<u32>> {
    if intern {
        ctx.keys.intern(ctx.store, t, s).map(Some)
    } else {
        ctx.keys.get(ctx.store, t, s)
    }
}
