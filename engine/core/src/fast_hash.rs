//! The hashers of roomgraph's tables: [`FastHash`] for every table keyed by data from the network
//! (event ids, state keys, server names), [`IntHasher`] for integers the engine allocates itself.
//!
//! Remote servers choose those keys, so the hash must not be predictable: ahash with a random key
//! per map (per process for [`RandomState::new`](ahash::RandomState::new) seeds). It is several times
//! cheaper than the standard library's SipHash, which was ~5 % of ingest cycles.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher state of roomgraph's maps and sets.
pub type FastHash = ahash::RandomState;
/// A `HashMap` with [`FastHash`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;
/// A `HashSet` with [`FastHash`].
pub type FastSet<K> = std::collections::HashSet<K, FastHash>;

/// A fast hasher for dense integer keys (event, snapshot and state-key numbers): one multiply per
/// word, as rustc's FxHasher. Not DoS-resistant, which is fine for numbers the engine allocates itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct IntHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// A `HashMap` keyed by engine-allocated integers.
pub type IntMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IntHasher>>;
