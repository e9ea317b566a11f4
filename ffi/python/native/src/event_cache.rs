//! Parsed events kept across resolutions: a homeserver resolves the same room again and again, and
//! the same auth chains come back each time. Parsing a PDU (and hashing its event id) is most of a
//! resolution's cost, so each event is parsed once and kept as a [`AuthEvent::detached`] header (the
//! auth facts, not the JSON tree) until the cache is full, when it starts over.
//!
//! An entry serves a lookup only for the same room version, host id and PDU bytes: ids are the
//! host's, and test fixtures reuse them for different events.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use roomgraph_core::RoomVersion;
use roomgraph_core::auth::AuthEvent;

/// Events kept by default (about 0.3 KiB of header and facts each, plus the PDU bytes).
pub const DEFAULT_CAPACITY: usize = 50_000;

/// (room version, host id) → (PDU bytes, parsed event).
type Events = HashMap<(&'static str, String), (Box<[u8]>, AuthEvent)>;

struct Cache {
    capacity: usize,
    events: Events,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        capacity: DEFAULT_CAPACITY,
        events: HashMap::new(),
    })
});

fn cache() -> MutexGuard<'static, Cache> {
    // A panic while holding the lock leaves a map that is still consistent.
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The event parsed from `bytes` as `id` before, if kept.
pub fn get(version: &'static RoomVersion, id: &str, bytes: &[u8]) -> Option<AuthEvent> {
    let cache = cache();
    let (kept, event) = cache.events.get(&(version.id, id.to_owned()))?;
    (**kept == *bytes).then(|| event.clone())
}

/// Keeps `event`, parsed from `bytes`.
pub fn put(version: &'static RoomVersion, bytes: &[u8], event: &AuthEvent) {
    let mut cache = cache();
    if cache.capacity == 0 {
        return;
    }
    if cache.events.len() >= cache.capacity {
        cache.events.clear();
    }
    let key = (version.id, event.event_id().to_owned());
    cache.events.insert(key, (bytes.into(), event.clone()));
}

/// Sets how many events are kept (0: none) and empties the cache.
pub fn set_capacity(capacity: usize) {
    let mut cache = cache();
    cache.capacity = capacity;
    cache.events = HashMap::new();
}

/// How many events are kept now.
pub fn len() -> usize {
    cache().events.len()
}
