//! What a room keeps in memory between events: event facts, parsed auth events, state views and
//! snapshots not durable yet, and key numbers; each a cache over the store, trimmed to what is durable.

use super::*;

impl RoomWorker {
    /// The store key number of a pair, numbering it if it has none.
    pub(super) fn intern_key(
        &mut self,
        ctx: &BatchContext<'_>,
        t: &str,
        s: &str,
    ) -> RoomResult<u32> {
        match self.key_or_intern(ctx, t, s, true)? {
            Some(k) => Ok(k),
            // Interning always numbers the pair; this only keeps the types honest.
            None => ctx.keys.intern(ctx.store, t, s),
        }
    }

    pub(super) fn info(
        &mut self,
        ctx: &BatchContext<'_>,
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
                let ours = meta.room_id == self.room_id;
                if ours {
                    self.info.insert(num, i);
                }
                Ok(Some((i, ours)))
            }
        }
    }

    pub(super) fn load_auth(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
    ) -> RoomResult<Arc<AuthEvent>> {
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

    pub(super) fn view(&mut self, ctx: &BatchContext<'_>, snap: u64) -> RoomResult<StateView> {
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

    pub(super) fn remember(&mut self, v: StateView) {
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
    pub(super) fn commit_draft(
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

    /// The store key number of a `(type, state_key)` pair, if it has one: from the room's own cache,
    /// which spares the shared interner's lock on the hot path.
    pub(super) fn key(
        &mut self,
        ctx: &BatchContext<'_>,
        t: &str,
        s: &str,
    ) -> RoomResult<Option<u32>> {
        self.key_or_intern(ctx, t, s, false)
    }

    /// [`RoomWorker::key`]; with `intern`, a pair without a number gets one (and the room's cache
    /// remembers it), so a new state key costs one interner call.
    pub(super) fn key_or_intern(
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
        self.info.insert(num, EventInfo { status, after });
        if was.is_some_and(|w| w.is_rejected() != status.is_rejected()) {
            self.graph = None;
            self.graph_idx.clear();
            self.graph_nums.clear();
            self.graph_keys.clear();
            self.memo.clear();
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
