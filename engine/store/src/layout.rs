//! The physical layout: column families and the fixed keys of `meta`. Private to the crate; every
//! other crate goes through [`crate::table`].

/// The value of the `magic` meta key: marks a directory as a roomgraph store.
pub(crate) const MAGIC: &[u8] = b"roomgraph-store";

/// Column families, in a fixed order (the index is used as [`Cf`]).
pub(crate) const COLUMN_FAMILIES: [&str; 11] = [
    "meta",
    "event_id_to_num",
    "events",
    "rooms",
    "extremities",
    "state_key_to_num",
    "state_num_to_key",
    "snapshots",
    "snapshot_hashes",
    "event_state",
    "auth_chains",
];

/// A column family (see `docs/store.md` for each one's key and value layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cf {
    /// `magic`, `schema_version`, counters.
    Meta = 0,
    /// event id (UTF-8) → event number (u64 BE).
    EventIdToNum = 1,
    /// event number → [`EventRecord`] (status, reason, stored PDU bytes).
    Events = 2,
    /// room id → [`RoomRecord`] (room version, create event).
    Rooms = 3,
    /// room id → current-state snapshot ‖ forward extremities.
    Extremities = 4,
    /// encoded `(type, state_key)` → state-key number (u32 BE).
    StateKeyToNum = 5,
    /// state-key number → encoded `(type, state_key)`.
    StateNumToKey = 6,
    /// snapshot number → [`SnapshotRecord`].
    Snapshots = 7,
    /// state hash (32 bytes) → snapshot number.
    SnapshotHashes = 8,
    /// event number → [`EventMeta`]: snapshots before and after, status, room id, event id, and the
    /// event numbers of its `prev_events` and `auth_events` (the DAG edges).
    EventState = 9,
    /// room ‖ event number → the event's chain cover row (`ChainRow`: key hash, position, links; state
    /// events; `docs/auth-chain-index.md`).
    AuthChains = 10,
}

/// Meta keys.
pub(crate) const META_MAGIC: &[u8] = b"magic";
pub(crate) const META_SCHEMA: &[u8] = b"schema_version";
pub(crate) const META_NEXT_EVENT: &[u8] = b"next_event_num";
pub(crate) const META_NEXT_KEY: &[u8] = b"next_state_key_num";
pub(crate) const META_NEXT_SNAPSHOT: &[u8] = b"next_snapshot_num";
/// Prefix of persisted pending events: `pending/` ‖ u64 BE sequence → raw PDU bytes.
pub(crate) const META_PENDING_PREFIX: &[u8] = b"pending/";
/// `outlier_wait/ ‖ room id length u16 ‖ room id ‖ prev event id ‖ outlier number u64`: an outlier
/// waiting for a missing or outlier prev event to join the timeline.
pub(crate) const META_OUTLIER_WAIT_PREFIX: &[u8] = b"outlier_wait/";
/// `cited/ ‖ room id length u16 ‖ room id ‖ event id`: a missing or outlier event cited as a prev event
/// by an accepted timeline event.
pub(crate) const META_CITED_PREFIX: &[u8] = b"cited/";
/// Present while the `auth_chains` column family still holds a schema 2–4 index (one bitmap per event):
/// the chain cover index must be rebuilt from the stored events before the store is written to.
pub(crate) const META_CHAIN_REBUILD: &[u8] = b"chain_rebuild";
