//! Rows older builds wrote, for tests of upgrades and refusals (feature `test-support`, enabled only
//! by the workspace's tests): the raw writes that no other code may make.

use crate::layout::{Cf, META_SCHEMA};
use crate::table::{AUTH_CHAINS, InRoom};
use crate::{Store, StoreError, Writes};

/// Marks the store with schema version `version` (a version this build refuses, or an older one).
pub fn set_schema_version(store: &Store, version: &str) -> Result<(), StoreError> {
    let mut w = Writes::default();
    w.put(Cf::Meta, META_SCHEMA, version);
    store.commit(w)
}

/// Turns `rooms`' chain cover rows into what schema 4 left (one auth-chain bitmap per event, keyed
/// by the bare event number; the bitmaps empty) and marks the store schema 4.
pub fn downgrade_chain_index_to_schema_4(
    store: &Store,
    rooms: &[String],
) -> Result<(), StoreError> {
    let mut w = Writes::default();
    for room_id in rooms {
        let room = InRoom { room_id, key: () };
        for (num, _) in store.scan(&AUTH_CHAINS, &room)? {
            w.remove(&AUTH_CHAINS, &InRoom { room_id, key: num });
            // An empty roaring bitmap, as schema 4 wrote one.
            w.put(Cf::AuthChains, num.to_be_bytes(), [0x3a, 0x30, 0, 0]);
        }
    }
    w.put(Cf::Meta, META_SCHEMA, "4");
    store.commit(w)
}

/// How many schema 2–4 `auth_chains` rows the store still holds (0 once rebuilt).
pub fn schema_4_chain_rows(store: &Store) -> Result<usize, StoreError> {
    Ok(store.old_chain_keys()?.len())
}
