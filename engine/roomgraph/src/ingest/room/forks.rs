//! Fork resolution over the stored graph: the resolutions of the states after prev events and
//! extremities, and of callers' state sets ([`RoomWorker::resolve_sets`]), from the conflicted entries and
//! the auth-chain index when it can ([`RoomWorker::fast_inputs`]), from the full sets otherwise.

use super::*;

/// The fork resolver's state, kept across resolutions: the event graph of the room's events that
/// entered a resolution (with their auth chains; built on first use), and the memoised results.
pub(super) struct ForkResolver {
    graph: Option<EventGraph>,
    /// The graph index of each event number in `graph`.
    idx: IntMap<u64, EventIdx>,
    /// The event number of each graph index.
    nums: Vec<u64>,
    /// Graph state-key index → store state-key number (`u32::MAX` = not cached yet).
    store_keys: Vec<u32>,
    resolver: Resolver,
    /// Memoised resolutions: sorted input snapshots → result snapshot.
    memo: FastMap<Vec<u64>, u64>,
    /// Counts of fork resolutions by path.
    stats: ResolutionStats,
}

impl ForkResolver {
    pub(super) fn new() -> ForkResolver {
        ForkResolver {
            graph: None,
            idx: IntMap::default(),
            nums: Vec::new(),
            store_keys: Vec::new(),
            resolver: Resolver::new(),
            memo: FastMap::default(),
            stats: ResolutionStats::default(),
        }
    }

    /// Drops the graph and the memoised resolutions (an event changed between rejected and not).
    pub(super) fn invalidate(&mut self) {
        self.graph = None;
        self.idx.clear();
        self.nums.clear();
        self.store_keys.clear();
        self.memo.clear();
    }

    /// Resolves `sets` (graph indices) over the graph, optionally with the auth difference of the full
    /// sets given (event numbers): the resolved state as (store key number, event number) pairs.
    fn resolve(
        &mut self,
        ctx: &BatchContext<'_>,
        sets: &[Vec<EventIdx>],
        difference: Option<&[u64]>,
    ) -> Result<Vec<(u32, u64)>, StoredResolveError> {
        let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
        let Some(graph) = self.graph.as_ref() else {
            return Err(StoredResolveError::Internal("no event graph"));
        };
        let resolved = match difference {
            None => self.resolver.resolve(graph, &refs),
            Some(diff) => {
                let diff: Vec<EventIdx> = diff
                    .iter()
                    .filter_map(|n| self.idx.get(n).copied())
                    .collect();
                self.resolver
                    .resolve_with_auth_difference(graph, &refs, &diff)
            }
        }?;
        let mut out = Vec::with_capacity(resolved.len());
        for (k, e) in resolved.iter() {
            // Graph key index → store key number, cached (the graph's keys are dense and only grow).
            let kn = match self.store_keys.get(k.ix()).copied() {
                Some(kn) if kn != u32::MAX => kn,
                _ => {
                    let (t, s) = graph.keys().resolve(k);
                    let kn = ctx.keys.intern(ctx.store, t, s)?;
                    if self.store_keys.len() <= k.ix() {
                        self.store_keys.resize(k.ix() + 1, u32::MAX);
                    }
                    self.store_keys[k.ix()] = kn;
                    kn
                }
            };
            let num = self
                .nums
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

/// Every non-rejected state event applied by this process, ascending: the events that can have entered
/// a state since `complete_from` (see [`RoomWorker::fast_inputs`]).
pub(super) struct StateLog {
    events: Vec<u64>,
    /// The first event number from which `events` is complete (`u64::MAX` until the first apply of a
    /// room loaded from the store).
    complete_from: u64,
}

impl StateLog {
    /// An empty log, complete from event number `complete_from`.
    pub(super) fn complete_from(complete_from: u64) -> StateLog {
        StateLog {
            events: Vec::new(),
            complete_from,
        }
    }

    /// Notes that this process numbered event `num`: the log is complete from the first such number.
    pub(super) fn numbered(&mut self, num: u64) {
        self.complete_from = self.complete_from.min(num);
    }

    /// Appends a state event numbered after every event in the log.
    pub(super) fn push(&mut self, num: u64) {
        self.events.push(num);
    }

    /// Inserts a state event at its place, unless it is there already.
    pub(super) fn insert(&mut self, num: u64) {
        let at = self.events.partition_point(|&n| n < num);
        if self.events.get(at) != Some(&num) {
            self.events.insert(at, num);
        }
    }
}

impl RoomWorker {
    /// Counts of this room's fork resolutions by path.
    pub fn stats(&self) -> ResolutionStats {
        self.forks.stats
    }

    /// [`RoomWorker::resolve_views`] for a fork met while applying an event: a store failure stops the
    /// batch, any other failure is the event's (its text becomes the event's reason).
    pub(super) fn resolve_fork(
        &mut self,
        ctx: &BatchContext<'_>,
        views: &[StateView],
        writes: &mut Writes,
    ) -> RoomResult<Result<StateView, String>> {
        fork_outcome(self.resolve_views(ctx, views, writes))
    }

    /// [`RoomWorker::key_of`], numbering the pair if it has none.
    pub(super) fn key_of_interned(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
    ) -> RoomResult<Option<u32>> {
        self.event_key(ctx, num, true)
    }

    /// The store key number of one of this room's state events (`None`: not a state event).
    pub(super) fn key_of(&mut self, ctx: &BatchContext<'_>, num: u64) -> RoomResult<Option<u32>> {
        self.event_key(ctx, num, false)
    }

    /// [`RoomWorker::key_of`]; with `intern`, a pair without a number gets one.
    pub(super) fn event_key(
        &mut self,
        ctx: &BatchContext<'_>,
        num: u64,
        intern: bool,
    ) -> RoomResult<Option<u32>> {
        if let Some(k) = self.keys.of_event.get(&num) {
            return Ok(Some(*k));
        }
        let event = self.auth.load(ctx, num)?;
        let Some(state_key) = event.pdu.state_key.as_deref() else {
            return Ok(None);
        };
        let k = self
            .keys
            .number(ctx, &event.pdu.event_type, state_key, intern)?;
        if let Some(k) = k {
            self.keys.of_event.insert(num, k);
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
    pub(super) fn fast_inputs<S: KeyedState>(
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
            if self.auth.cover.extend(&mut closure, set).is_err() {
                return Ok(None);
            }
            closures.push(closure);
        }
        // ∪ cl(K_i) ∖ ∩ cl(K_i), per chain a range of sequence numbers.
        let candidates = self.auth.cover.difference_of(&closures);

        // cl(U) ∩ candidates. An unconflicted event inside ∩ cl(K_i) has all its ancestors there, so
        // among the union only the candidates themselves can cover candidates (descending: an event
        // already covered has its chain covered too).
        let mut covered = Closure::default();
        for &d in candidates.iter().rev() {
            if !self.auth.in_cover(&covered, d)
                && self.is_unconflicted(ctx, base, conflicted_keys, d)?
                && self.auth.cover.extend(&mut covered, &[d]).is_err()
            {
                return Ok(None);
            }
        }
        let mut undecided: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&d| !self.auth.in_cover(&covered, d))
            .collect();
        if let Some(&oldest) = undecided.first() {
            if oldest < self.state_log.complete_from {
                return Ok(None);
            }
            let from = self.state_log.events.partition_point(|&n| n <= oldest);
            if self.state_log.events.len() - from > base.len() {
                return Ok(None);
            }
            for i in from..self.state_log.events.len() {
                let u = self.state_log.events[i];
                if self.auth.in_cover(&covered, u)
                    || !self.is_unconflicted(ctx, base, conflicted_keys, u)?
                {
                    continue;
                }
                if self.auth.cover.extend(&mut covered, &[u]).is_err() {
                    return Ok(None);
                }
                undecided.retain(|&d| !self.auth.in_cover(&covered, d));
                if undecided.is_empty() {
                    break;
                }
            }
        }
        let difference: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&d| !self.auth.in_cover(&covered, d))
            .collect();

        // The unconflicted events the iterative auth checks can read: the auth-type keys of every event
        // that can enter the full conflicted set (v2.1 adds the conflicted subgraph, inside the union).
        let mut readers: Vec<u64> = sets.iter().flatten().copied().collect();
        readers.extend(difference.iter().copied());
        if self.version.state_res == StateResAlgorithm::V2_1 {
            let conflicted: Vec<u64> = readers.clone();
            match self.auth.cover.conflicted_subgraph(&conflicted) {
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
            let event = self.auth.load(ctx, e)?;
            let mut types: SmallVec<[(&str, &str); 8]> = SmallVec::new();
            auth::for_each_auth_type(&event, |t, s| types.push((t, s)));
            for (t, s) in types {
                let Some(k) = self.keys.get(ctx, t, s)? else {
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

    /// Whether `e` is an unconflicted entry of the views whose first member is `base`.
    pub(super) fn is_unconflicted<S: KeyedState>(
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
    pub(super) fn resolve_views(
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
        if let Some(s) = self.forks.memo.get(&snaps).copied() {
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
            self.forks.memo.insert(snaps, base.snap);
            return Ok(base.clone());
        }
        let fast = if self.version.state_res == StateResAlgorithm::V1 {
            None
        } else {
            self.fast_inputs(ctx, &unique, &conflicted_keys)?
        };
        let resolved = match &fast {
            Some(inputs) => {
                self.forks.stats.partial += 1;
                let got = self.resolve_sets_with(ctx, &inputs.sets, Some(&inputs.difference))?;
                if ctx.check_resolutions {
                    let full = self.resolve_full(ctx, &unique)?;
                    check_same(&conflicted_keys, &got, &full)?;
                }
                got
            }
            None => {
                self.forks.stats.full += 1;
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
        self.forks.memo.insert(snaps, view.snap);
        if self.forks.memo.len() > 100_000 {
            self.forks.memo.clear();
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
                self.forks.stats.partial += 1;
                self.resolve_sets_with(ctx, &inputs.sets, Some(&inputs.difference))?
                    .into_iter()
                    .filter(|(k, _)| conflicted_keys.binary_search(k).is_ok())
                    .collect()
            }
            None => {
                self.forks.stats.full += 1;
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
    pub(super) fn state_key_num(
        &mut self,
        ctx: &BatchContext<'_>,
        e: u64,
    ) -> Result<u32, StoredResolveError> {
        match self.key_of_interned(ctx, e)? {
            Some(k) => Ok(k),
            None => Err(StoredResolveError::NotState(self.name_of(ctx, e))),
        }
    }

    /// The id of a stored event, for an error (its number when even that cannot be read).
    pub(super) fn name_of(&mut self, ctx: &BatchContext<'_>, num: u64) -> String {
        match self.auth.load(ctx, num) {
            Ok(a) => a.pdu.event_id.to_string(),
            Err(_) => format!("event number {num}"),
        }
    }

    /// Resolves the full state of `views` (O(state): the fallback of [`RoomWorker::fast_inputs`]).
    pub(super) fn resolve_full(
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
    pub(super) fn resolve_sets_with(
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
            .filter(|e| !self.forks.idx.contains_key(e))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        let mut closure = Closure::default();
        self.auth.cover.extend(&mut closure, &fresh)?;
        let need = self.auth.cover.events_of(closure.reach());
        let graph = self
            .forks
            .graph
            .get_or_insert_with(|| EventGraph::new(self.version, &self.room_id));
        // Event numbers grow in apply order, and an event is applied after its auth events: ascending
        // order is a topological order of the auth DAG, as `EventGraph::insert` needs.
        for &n in &need {
            if self.forks.idx.contains_key(&n) {
                continue;
            }
            // `graph` borrows `self.forks`: the facts come from `self.events` itself.
            let ae = self.auth.load(ctx, n)?;
            let rejected = match self.events.info(ctx, &self.room_id, n)? {
                Some((i, true)) => i.status.is_rejected(),
                _ => continue,
            };
            if let Ok(idx) = graph.insert(Arc::clone(&ae), rejected) {
                self.forks.idx.insert(n, idx);
                self.forks.nums.push(n);
            }
        }
        let mut idx_sets: Vec<Vec<EventIdx>> = Vec::with_capacity(sets.len());
        for set in sets {
            let mut s = Vec::with_capacity(set.len());
            for e in set {
                match self.forks.idx.get(e) {
                    Some(i) => s.push(*i),
                    None => return Err(StoredResolveError::NotInGraph(self.name_of(ctx, *e))),
                }
            }
            idx_sets.push(s);
        }
        self.forks.resolve(ctx, &idx_sets, difference)
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
pub(super) struct Overlay<'a> {
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
pub(super) struct FastInputs {
    sets: Vec<Vec<u64>>,
    difference: Vec<u64>,
}

/// Compares the fast resolution with the full one at the conflicted keys (the
/// `EngineOptions::check_resolutions` self-check).
pub(super) fn check_same(
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
