//! State snapshots: a state map `state-key number → event number`, stored as a delta against a parent
//! snapshot and deduplicated by a hash of the sorted state.
//!
//! Layout (three levels, so any snapshot is materialised from at most `MAX_CHAIN + 2` records):
//! - a *full* snapshot holds every entry (`parent = None`);
//! - a *level-1* delta holds the cumulative difference from the nearest full snapshot;
//! - a *chain* delta holds the difference from its parent, at most [`MAX_CHAIN`] chain deltas in a row.
//!
//! A new state derived from a parent is stored as a chain delta while the parent's chain is short, as a
//! level-1 delta once the chain is long, and as a full snapshot once the difference from the full one
//! exceeds a sixteenth of the state (plus a small constant). In memory a [`StateView`] mirrors this: a shared
//! full map, a shared overlay (the difference) and a small layer of recent changes, so deriving a state
//! costs O(recent changes), not O(state) nor O(overlay).
//!
//! The state hash is blake3 over each sorted `(key, event)` entry, combined by 256-bit addition: the
//! hash of a state is independent of insertion order, equal states get equal hashes, and a delta updates
//! the hash in O(delta) instead of rehashing a 50 000-entry state for every membership change.

use std::sync::Arc;

use super::codec::Reader;
use roomgraph_core::fast_hash::IntMap;

/// Longest run of chain deltas before a level-1 delta or a full snapshot is written. A level-1 delta of
/// a 50 000-member room holds up to ~3 000 entries (36 KB): every 128 state events rather than every 32,
/// that is a big room's snapshot bytes cut by a third (its store by a ninth), for views rebuilt from at
/// most 130 small records when they are not cached.
pub const MAX_CHAIN: u8 = 128;
/// Marks a key removed relative to the full snapshot, inside deltas and overlays.
pub const TOMBSTONE: u64 = u64::MAX;

/// The order-independent hash of a state map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateHash([u64; 4]);

impl StateHash {
    fn entry(key: u32, event: u64) -> [u64; 4] {
        let mut buf = [0u8; 12];
        buf[..4].copy_from_slice(&key.to_be_bytes());
        buf[4..].copy_from_slice(&event.to_be_bytes());
        let h = blake3::hash(&buf);
        let b = h.as_bytes();
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let mut lane = [0u8; 8];
            lane.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *o = u64::from_le_bytes(lane);
        }
        out
    }

    /// Adds an entry (256-bit wrapping addition).
    pub fn add(&mut self, key: u32, event: u64) {
        let e = Self::entry(key, event);
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(e) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *a = s2;
            carry = c1 || c2;
        }
    }

    /// Removes an entry added before (256-bit wrapping subtraction).
    pub fn remove(&mut self, key: u32, event: u64) {
        let e = Self::entry(key, event);
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(e) {
            let (s1, b1) = a.overflowing_sub(b);
            let (s2, b2) = s1.overflowing_sub(u64::from(borrow));
            *a = s2;
            borrow = b1 || b2;
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, lane) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&lane.to_be_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<StateHash> {
        if b.len() != 32 {
            return None;
        }
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let mut lane = [0u8; 8];
            lane.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *o = u64::from_be_bytes(lane);
        }
        Some(StateHash(out))
    }

    /// The hash of a whole map (used by tests and consistency checks).
    pub fn of(map: &IntMap<u32, u64>) -> StateHash {
        let mut h = StateHash::default();
        for (k, e) in map {
            h.add(*k, *e);
        }
        h
    }
}

/// The `snapshots` value: `parent u64 BE (u64::MAX = full snapshot) ‖ chain u8 ‖ state size u32 BE ‖
/// hash 32 bytes ‖ entries (key u32 BE ‖ event u64 BE, TOMBSTONE = removed)…`, entries sorted by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// `None` for a full snapshot; `Some(0)` is a delta against the empty state.
    pub parent: Option<u64>,
    /// Number of delta records between this one and a full snapshot (0 for a full one).
    pub chain: u8,
    /// Number of entries in the materialised state.
    pub len: u32,
    pub hash: StateHash,
    pub entries: Vec<(u32, u64)>,
}

impl SnapshotRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`SnapshotRecord::encode`], appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(45 + self.entries.len() * 12);
        out.extend_from_slice(&self.parent.unwrap_or(u64::MAX).to_be_bytes());
        out.push(self.chain);
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.hash.to_bytes());
        for (k, e) in &self.entries {
            out.extend_from_slice(&k.to_be_bytes());
            out.extend_from_slice(&e.to_be_bytes());
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotRecord, String> {
        let mut r = Reader(bytes);
        let parent = r.u64().ok_or("missing parent")?;
        let chain = r.u8().ok_or("missing chain length")?;
        let len = r.u32().ok_or("missing state size")?;
        let hash = r
            .take(32)
            .and_then(StateHash::from_bytes)
            .ok_or("missing hash")?;
        if r.0.len() % 12 != 0 {
            return Err(format!("entry bytes ({}) not a multiple of 12", r.0.len()));
        }
        let mut entries = Vec::with_capacity(r.0.len() / 12);
        while !r.0.is_empty() {
            let k = r.u32().ok_or("short entry")?;
            let e = r.u64().ok_or("short entry")?;
            entries.push((k, e));
        }
        Ok(SnapshotRecord {
            parent: (parent != u64::MAX).then_some(parent),
            chain,
            len,
            hash,
            entries,
        })
    }
}

/// A materialised state: a shared full map, a shared overlay of differences from it, and a small
/// layer of recent changes on top of the overlay. Deriving a state copies only the recent layer; the
/// overlay (up to a sixteenth of the state) is rebuilt when a level-1 or full record is written, or when
/// the recent layer outgrows about √(2 · overlay) entries — so a 50 000-member room does not copy
/// thousands of overlay entries for every membership change.
#[derive(Debug, Clone)]
pub struct StateView {
    /// The snapshot number (0 = the empty state).
    pub snap: u64,
    /// The stored record's chain length.
    pub chain: u8,
    pub hash: StateHash,
    len: usize,
    /// The full snapshot `full` came from (0 = empty state).
    full_snap: u64,
    full: Arc<IntMap<u32, u64>>,
    /// Differences from `full`, normalised (no entry equal to `full`'s); `TOMBSTONE` = removed.
    overlay: Arc<IntMap<u32, u64>>,
    /// Changes on top of `overlay`, not normalised (an entry may restore `full`'s value, hiding the
    /// overlay's); `TOMBSTONE` = removed.
    recent: Arc<IntMap<u32, u64>>,
    /// Number of keys whose value differs from `full` (the size of `overlay` merged with `recent`).
    merged: usize,
}

/// The value of `key` in a state layered as `recent` over `overlay` over `full`.
fn layered(
    full: &IntMap<u32, u64>,
    overlay: &IntMap<u32, u64>,
    recent: &IntMap<u32, u64>,
    key: u32,
) -> Option<u64> {
    match recent.get(&key).or_else(|| overlay.get(&key)) {
        Some(&TOMBSTONE) => None,
        Some(e) => Some(*e),
        None => full.get(&key).copied(),
    }
}

/// `overlay` with `recent` folded in, normalised against `full`.
fn fold(
    full: &IntMap<u32, u64>,
    overlay: &IntMap<u32, u64>,
    recent: &IntMap<u32, u64>,
) -> IntMap<u32, u64> {
    let mut merged = overlay.clone();
    for (k, e) in recent {
        apply_to_overlay(full, &mut merged, *k, *e);
    }
    merged
}

/// A state derived from a [`StateView`] that has no snapshot number yet.
#[derive(Debug, Clone)]
pub struct StateDraft {
    pub hash: StateHash,
    len: usize,
    parent_snap: u64,
    parent_chain: u8,
    full_snap: u64,
    full: Arc<IntMap<u32, u64>>,
    overlay: Arc<IntMap<u32, u64>>,
    recent: IntMap<u32, u64>,
    merged: usize,
    /// The effective changes relative to the parent, sorted by key.
    changes: Vec<(u32, u64)>,
}

impl StateView {
    pub fn empty() -> StateView {
        StateView {
            snap: 0,
            chain: 0,
            hash: StateHash::default(),
            len: 0,
            full_snap: 0,
            full: Arc::new(IntMap::default()),
            overlay: Arc::new(IntMap::default()),
            recent: Arc::new(IntMap::default()),
            merged: 0,
        }
    }

    /// Builds the view of `chain[0]` from its records, head first, ending at a full snapshot or at a
    /// delta against the empty state.
    pub fn from_chain(chain: Vec<(u64, SnapshotRecord)>) -> StateView {
        let Some((head_snap, head)) = chain.first().map(|(n, r)| (*n, (r.chain, r.hash, r.len)))
        else {
            return StateView::empty();
        };
        let mut records = chain.into_iter().rev().peekable();
        let (full_snap, full) = match records.peek() {
            Some((n, r)) if r.parent.is_none() => {
                let full: IntMap<u32, u64> = r
                    .entries
                    .iter()
                    .copied()
                    .filter(|(_, e)| *e != TOMBSTONE)
                    .collect();
                let n = *n;
                records.next();
                (n, full)
            }
            _ => (0, IntMap::default()),
        };
        let mut overlay = IntMap::default();
        for (_, rec) in records {
            for (k, e) in rec.entries {
                apply_to_overlay(&full, &mut overlay, k, e);
            }
        }
        StateView {
            snap: head_snap,
            chain: head.0,
            hash: head.1,
            len: head.2 as usize,
            full_snap,
            full: Arc::new(full),
            merged: overlay.len(),
            overlay: Arc::new(overlay),
            recent: Arc::new(IntMap::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: u32) -> Option<u64> {
        layered(&self.full, &self.overlay, &self.recent, key)
    }

    /// Calls `f` for every entry, in no particular order.
    pub fn for_each(&self, mut f: impl FnMut(u32, u64)) {
        for (k, e) in self.full.iter() {
            if !self.overlay.contains_key(k) && !self.recent.contains_key(k) {
                f(*k, *e);
            }
        }
        for (k, e) in self.overlay.iter() {
            if *e != TOMBSTONE && !self.recent.contains_key(k) {
                f(*k, *e);
            }
        }
        for (k, e) in self.recent.iter() {
            if *e != TOMBSTONE {
                f(*k, *e);
            }
        }
    }

    pub fn to_map(&self) -> IntMap<u32, u64> {
        let mut m = IntMap::with_capacity_and_hasher(self.len, Default::default());
        self.for_each(|k, e| {
            m.insert(k, e);
        });
        m
    }

    /// Whether two views share their full map, so their difference lies in the overlays only.
    pub fn shares_base(&self, other: &StateView) -> bool {
        Arc::ptr_eq(&self.full, &other.full) || self.full_snap == other.full_snap
    }

    /// Keys whose values differ between `self` and `other`, in no particular order and possibly
    /// repeated. When the views share a base only their upper layers are compared — only the recent
    /// layers when they also share the overlay, as forks of one state mostly do; otherwise both whole
    /// states.
    pub fn differing_keys(&self, other: &StateView) -> Vec<u32> {
        let mut keys = Vec::new();
        let mut visit = |k: u32| {
            if self.get(k) != other.get(k) {
                keys.push(k);
            }
        };
        if !self.shares_base(other) {
            self.for_each(|k, _| visit(k));
            other.for_each(|k, e| {
                if self.get(k) != Some(e) {
                    keys.push(k);
                }
            });
            return keys;
        }
        for k in self.recent.keys().chain(other.recent.keys()) {
            visit(*k);
        }
        if !Arc::ptr_eq(&self.overlay, &other.overlay) {
            for k in self.overlay.keys().chain(other.overlay.keys()) {
                visit(*k);
            }
        }
        keys
    }

    /// The changes that turn `self` into `target`.
    pub fn diff_to(&self, target: &IntMap<u32, u64>) -> Vec<(u32, Option<u64>)> {
        let mut changes: Vec<(u32, Option<u64>)> = target
            .iter()
            .filter(|(k, e)| self.get(**k) != Some(**e))
            .map(|(k, e)| (*k, Some(*e)))
            .collect();
        self.for_each(|k, _| {
            if !target.contains_key(&k) {
                changes.push((k, None));
            }
        });
        changes
    }

    /// Applies `changes` (`None` = remove). Returns `None` when nothing changes. Costs O(changes +
    /// the recent layer), not O(overlay).
    pub fn apply(&self, changes: &[(u32, Option<u64>)]) -> Option<StateDraft> {
        let mut hash = self.hash;
        let mut len = self.len;
        let mut merged = self.merged;
        let mut effective: Vec<(u32, u64)> = Vec::with_capacity(changes.len());
        let mut recent: Option<IntMap<u32, u64>> = None;
        for &(k, new) in changes {
            // Later changes to the same key see the earlier ones: read through the layer being built.
            let top = recent.as_ref().unwrap_or(&self.recent);
            let old = layered(&self.full, &self.overlay, top, k);
            if old == new {
                continue;
            }
            let r = recent.get_or_insert_with(|| {
                let mut r = IntMap::with_capacity_and_hasher(
                    self.recent.len() + changes.len(),
                    Default::default(),
                );
                r.extend(self.recent.iter().map(|(k, e)| (*k, *e)));
                r
            });
            if let Some(e) = old {
                hash.remove(k, e);
                len -= 1;
            }
            if let Some(e) = new {
                hash.add(k, e);
                len += 1;
            }
            let in_full = self.full.get(&k).copied();
            merged = merged + usize::from(new != in_full) - usize::from(old != in_full);
            r.insert(k, new.unwrap_or(TOMBSTONE));
            effective.push((k, new.unwrap_or(TOMBSTONE)));
        }
        let recent = recent?;
        // The last change of each key wins: latest first, then a stable sort by key keeps it first.
        effective.reverse();
        effective.sort_by_key(|(k, _)| *k);
        effective.dedup_by_key(|(k, _)| *k);
        Some(StateDraft {
            hash,
            len,
            parent_snap: self.snap,
            parent_chain: self.chain,
            full_snap: self.full_snap,
            full: Arc::clone(&self.full),
            overlay: Arc::clone(&self.overlay),
            recent,
            merged,
            changes: effective,
        })
    }
}

fn apply_to_overlay(full: &IntMap<u32, u64>, overlay: &mut IntMap<u32, u64>, key: u32, event: u64) {
    match (full.get(&key), event) {
        (Some(_), TOMBSTONE) => {
            overlay.insert(key, TOMBSTONE);
        }
        (None, TOMBSTONE) => {
            overlay.remove(&key);
        }
        (Some(f), e) if *f == e => {
            overlay.remove(&key);
        }
        (_, e) => {
            overlay.insert(key, e);
        }
    }
}

impl StateDraft {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the draft its snapshot number: returns the view and the record to store.
    pub fn commit(self, snap: u64) -> (StateView, SnapshotRecord) {
        let StateDraft {
            hash,
            len,
            parent_snap,
            parent_chain,
            full_snap,
            full,
            overlay,
            recent,
            merged,
            changes,
        } = self;
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        if merged > full.len() / 16 + 64 {
            let mut map: IntMap<u32, u64> = (*full).clone();
            // The recent layer last: its entries override the overlay's.
            map.extend(overlay.iter().map(|(k, e)| (*k, *e)));
            map.extend(recent);
            map.retain(|_, e| *e != TOMBSTONE);
            let mut entries: Vec<(u32, u64)> = map.iter().map(|(k, e)| (*k, *e)).collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            let view = StateView {
                snap,
                chain: 0,
                hash,
                len,
                full_snap: snap,
                full: Arc::new(map),
                overlay: Arc::new(IntMap::default()),
                recent: Arc::new(IntMap::default()),
                merged: 0,
            };
            return (
                view,
                SnapshotRecord {
                    parent: None,
                    chain: 0,
                    len: len32,
                    hash,
                    entries,
                },
            );
        }
        let (record, overlay, recent) = if parent_chain < MAX_CHAIN {
            let record = SnapshotRecord {
                parent: Some(parent_snap),
                chain: parent_chain + 1,
                len: len32,
                hash,
                entries: changes,
            };
            // Fold the recent layer in once it stops being small next to the overlay, so that
            // deriving the next state stays cheap (in memory only; the records are the same).
            // Folding costs O(overlay), the recent layer O(itself) per derived state: folding at
            // about √(2 · overlay) entries balances the two.
            if recent.len() > 16 + (2 * overlay.len()).isqrt() {
                (
                    record,
                    Arc::new(fold(&full, &overlay, &recent)),
                    IntMap::default(),
                )
            } else {
                (record, overlay, recent)
            }
        } else {
            let overlay = fold(&full, &overlay, &recent);
            let mut entries: Vec<(u32, u64)> = overlay.iter().map(|(k, e)| (*k, *e)).collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            let record = SnapshotRecord {
                parent: Some(full_snap),
                chain: u8::from(full_snap != 0),
                len: len32,
                hash,
                entries,
            };
            (record, Arc::new(overlay), IntMap::default())
        };
        if recent.is_empty() {
            debug_assert_eq!(merged, overlay.len(), "merged size out of step");
        }
        let view = StateView {
            snap,
            chain: record.chain,
            hash,
            len,
            full_snap,
            full,
            overlay,
            recent: Arc::new(recent),
            merged,
        };
        (view, record)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The view of `snap` rebuilt from the stored `records`, as a reload from the store does.
    fn rebuild(records: &HashMap<u64, SnapshotRecord>, snap: u64) -> StateView {
        let mut chain = Vec::new();
        let mut cursor = snap;
        while cursor != 0 {
            let r = records[&cursor].clone();
            let p = r.parent;
            chain.push((cursor, r));
            match p {
                Some(p) => cursor = p,
                None => break,
            }
        }
        assert!(
            chain.len() <= MAX_CHAIN as usize + 2,
            "chain {}",
            chain.len()
        );
        StateView::from_chain(chain)
    }

    /// Applies a random walk of changes, storing every record; every view must equal both the reference
    /// map and the view rebuilt from the stored records.
    #[test]
    fn views_match_reference_and_stored_records() {
        let mut records: HashMap<u64, SnapshotRecord> = HashMap::new();
        let mut reference: IntMap<u32, u64> = IntMap::default();
        let mut view = StateView::empty();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for snap in 1..=400u64 {
            let mut changes = Vec::new();
            for _ in 0..(next() % 3 + 1) {
                let key = (next() % 60) as u32;
                let value = if next() % 7 == 0 {
                    None
                } else {
                    Some(next() % 1000)
                };
                changes.push((key, value));
            }
            for (k, v) in &changes {
                match v {
                    Some(e) => reference.insert(*k, *e),
                    None => reference.remove(k),
                };
            }
            let Some(draft) = view.apply(&changes) else {
                assert_eq!(view.to_map(), reference);
                continue;
            };
            let (v, rec) = draft.commit(snap);
            assert_eq!(v.to_map(), reference, "snap {snap}");
            assert_eq!(v.hash, StateHash::of(&reference));
            assert_eq!(v.len(), reference.len());
            assert_eq!(SnapshotRecord::decode(&rec.encode()).as_ref(), Ok(&rec));
            records.insert(snap, rec);
            let rebuilt = rebuild(&records, snap);
            assert_eq!(rebuilt.to_map(), reference, "rebuilt snap {snap}");
            assert_eq!(rebuilt.chain, v.chain);
            // Continue half the time from the rebuilt view (as after a restart).
            view = if snap % 2 == 0 { rebuilt } else { v };
        }
    }

    /// Forks: states derived from random earlier states (full snapshots, level-1 deltas and folded
    /// recent layers all occur), each checked against a reference map, rebuilt from the stored records,
    /// and compared with another state through `differing_keys`.
    #[test]
    fn forked_views_match_reference_and_differ_exactly() {
        let mut records: HashMap<u64, SnapshotRecord> = HashMap::new();
        let mut nodes: Vec<(StateView, IntMap<u32, u64>)> =
            vec![(StateView::empty(), IntMap::default())];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut fulls, mut level1, mut folded) = (0, 0, 0);
        let mut head = 0;
        for snap in 1..=1500u64 {
            // Mostly extend the main line, sometimes a recent or an old state (a long-lived fork).
            let n = nodes.len() as u64;
            let at = match next() % 10 {
                0 | 1 => (next() % n) as usize,
                2 => (n - 1 - next() % n.min(3)) as usize,
                _ => head,
            };
            let (parent, mut reference) = nodes[at].clone();
            let count = match next() % 200 {
                _ if snap == 1 => 800,
                0 => 120,
                1..=3 => 40,
                _ => next() % 3 + 1,
            };
            let mut changes = Vec::new();
            for _ in 0..count {
                // Mostly a few hot keys, so that chains grow long before the overlay grows large;
                // large change sets (resolutions) spread wide.
                let wide = count > 3 || next() % 10 == 0;
                let key = (next() % if wide { 1600 } else { 12 }) as u32;
                let value = (next() % 6 != 0).then(|| next() % 50);
                match value {
                    Some(e) => reference.insert(key, e),
                    None => reference.remove(&key),
                };
                changes.push((key, value));
            }
            let Some(draft) = parent.apply(&changes) else {
                assert_eq!(parent.to_map(), reference);
                continue;
            };
            if at == head {
                head = nodes.len();
            }
            let recent_before = draft.recent.len();
            let (v, rec) = draft.commit(snap);
            match (rec.parent, rec.chain) {
                (None, _) => fulls += 1,
                (Some(_), c) if c <= 1 && parent.chain == MAX_CHAIN => level1 += 1,
                _ if v.recent.is_empty() && recent_before > 0 => folded += 1,
                _ => {}
            }
            assert_eq!(v.to_map(), reference, "snap {snap}");
            assert_eq!(v.hash, StateHash::of(&reference), "snap {snap}");
            assert_eq!(v.len(), reference.len(), "snap {snap}");
            records.insert(snap, rec);
            let rebuilt = rebuild(&records, snap);
            assert_eq!(rebuilt.to_map(), reference, "rebuilt snap {snap}");
            // Compare with a random other state, both as built and as rebuilt.
            let (other, other_ref) = &nodes[(next() % nodes.len() as u64) as usize];
            let mut expected: Vec<u32> = reference
                .keys()
                .chain(other_ref.keys())
                .copied()
                .filter(|k| reference.get(k) != other_ref.get(k))
                .collect();
            expected.sort_unstable();
            expected.dedup();
            for view in [&v, &rebuilt] {
                let mut got = view.differing_keys(other);
                got.sort_unstable();
                got.dedup();
                assert_eq!(got, expected, "snap {snap} against snap {}", other.snap);
            }
            nodes.push((if snap % 3 == 0 { rebuilt } else { v }, reference));
        }
        assert!(
            fulls > 3 && level1 > 3 && folded > 3,
            "walk too tame: {fulls} full, {level1} level-1, {folded} folded"
        );
    }

    #[test]
    fn hash_is_order_independent() {
        let mut a = StateHash::default();
        a.add(1, 10);
        a.add(2, 20);
        let mut b = StateHash::default();
        b.add(2, 20);
        b.add(3, 30);
        b.add(1, 10);
        b.remove(3, 30);
        assert_eq!(a, b);
        assert_ne!(a, StateHash::default());
    }
}
