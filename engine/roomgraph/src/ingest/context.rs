//! What the rooms of a batch share while they apply in parallel: the store, the state-key interner,
//! the counters, and the watermark of what is durable.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::fast_hash::FastMap;
use roomgraph_store::table::{EncodedTypeStateKey, STATE_KEY_NUMS, STATE_KEYS};
use roomgraph_store::{Store, StoreError, Writes, codec};

use super::hints::StateHints;

/// Marks a pair known not to exist in the store (a cached negative lookup).
pub(super) const ABSENT: u32 = u32::MAX;

/// Interns `(type, state_key)` pairs to dense numbers, shared by rooms applying in parallel.
pub(crate) struct KeyInterner {
    map: RwLock<FastMap<Vec<u8>, u32>>,
    next: std::sync::atomic::AtomicU32,
    new_keys: std::sync::Mutex<Vec<(u32, EncodedTypeStateKey)>>,
}

impl KeyInterner {
    /// An interner whose next new pair gets `next` (the store's counter; 0 reads as 1).
    pub(super) fn new(next: u32) -> KeyInterner {
        KeyInterner {
            map: RwLock::new(FastMap::default()),
            next: std::sync::atomic::AtomicU32::new(next.max(1)),
            new_keys: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The number the next new pair gets.
    pub(super) fn next_number(&self) -> u32 {
        self.next.load(Ordering::Relaxed)
    }

    /// The number of a pair, if it has one.
    pub fn get(&self, store: &Store, t: &str, s: &str) -> Result<Option<u32>, StoreError> {
        // Encoded on the stack for the lookup (types and state keys are at most 255 bytes each).
        let mut buf = [0u8; 2 + 255 + 255];
        let hit = match codec::encode_state_key_into(t, s, &mut buf) {
            Some(n) => self.map.read().ok().and_then(|m| m.get(&buf[..n]).copied()),
            None => None,
        };
        if let Some(n) = hit {
            return Ok((n != ABSENT).then_some(n));
        }
        let enc = EncodedTypeStateKey::new(t, s);
        let found = store.read(&STATE_KEY_NUMS, &enc)?;
        if let Ok(mut m) = self.map.write() {
            // Negative answers are cached too: only `intern` (this process) creates keys.
            m.entry(enc.as_bytes().to_vec())
                .or_insert(found.unwrap_or(ABSENT));
        }
        Ok(found)
    }

    /// The number of a pair, allocating one (queued for the next commit) if needed.
    pub fn intern(&self, store: &Store, t: &str, s: &str) -> Result<u32, StoreError> {
        if let Some(n) = self.get(store, t, s)? {
            return Ok(n);
        }
        let enc = EncodedTypeStateKey::new(t, s);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(enc.as_bytes())
            && *n != ABSENT
        {
            return Ok(*n);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        map.insert(enc.as_bytes().to_vec(), n);
        self.new_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((n, enc));
        Ok(n)
    }

    pub(super) fn drain_new(&self, writes: &mut Writes) {
        let mut new = self.new_keys.lock().unwrap_or_else(|p| p.into_inner());
        for (n, enc) in new.drain(..) {
            writes.insert(&STATE_KEYS, &n, &enc);
            writes.insert(&STATE_KEY_NUMS, &enc, &n);
        }
    }
}

/// Read-only context and shared counters for rooms applying in parallel.
pub(crate) struct BatchContext<'a> {
    pub store: &'a Store,
    pub keys: &'a KeyInterner,
    pub next_event: &'a AtomicU64,
    pub next_snapshot: &'a AtomicU64,
    pub next_pending: &'a AtomicU64,
    pub pending_count: &'a AtomicUsize,
    pub max_pending: usize,
    pub check_resolutions: bool,
    pub durable: Durable,
    pub hints: &'a StateHints,
}

/// Event and snapshot numbers below these belong to committed batches. The rooms' memory caches may
/// drop only such entries: anything newer is not in the store yet, so a cache miss could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    pub event: u64,
    pub snapshot: u64,
}
