//! Auth chains, the auth difference and the v2.1 conflicted state subgraph.
//!
//! Two tools, both linear and safe against adversarial graphs:
//! - [`AuthChainIndex`]: one roaring bitmap per event holding its auth chain. Inserting an event unions the
//!   bitmaps of its at most 10 auth events (bounded cost per insertion, never a walk), after which "auth
//!   chain of X" and "auth difference of these sets" are bitmap operations. Meant for long-lived graphs
//!   (ingest, many small resolutions in one room).
//! - [`Reachability`]: single passes over the topologically numbered [`EventGraph`] with reused scratch
//!   buffers — the auth difference in one descending pass carrying a bit per state set, and the
//!   conflicted state subgraph as the intersection of one descending (ancestors) and one ascending
//!   (descendants) pass. No path enumeration, no per-event sets. Used by a one-shot resolution, where
//!   building the index first would cost more than the passes.
//!
//! Auth chains here include the state-set events themselves when forming the auth difference, as Synapse
//! does (`AuthChainDifferenceTestCase`); see `docs/state-resolution.md`.

use roaring::RoaringBitmap;

use super::intern::{EventGraph, EventIdx};

/// Per-event auth chains as roaring bitmaps (the chain excludes the event itself).
#[derive(Debug, Default, Clone)]
pub struct AuthChainIndex {
    chains: Vec<RoaringBitmap>,
}

impl AuthChainIndex {
    /// Indexes every event of `graph` in order.
    pub fn build(graph: &EventGraph) -> AuthChainIndex {
        let mut index = AuthChainIndex {
            chains: Vec::with_capacity(graph.len()),
        };
        for i in 0..graph.len() as u32 {
            index.insert(EventIdx(i), graph.auth_events(EventIdx(i)));
        }
        index
    }

    /// Indexes the next event (its index must be `self.len()`), given its auth events, which must be
    /// indexed already. Cost: at most one bitmap union per auth event.
    pub fn insert(&mut self, e: EventIdx, auth_events: &[EventIdx]) {
        debug_assert_eq!(e.ix(), self.chains.len());
        let mut chain = RoaringBitmap::new();
        for a in auth_events {
            if let Some(c) = self.chains.get(a.ix()) {
                chain |= c;
            }
            chain.insert(a.0);
        }
        self.chains.push(chain);
    }

    pub fn len(&self) -> usize {
        self.chains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// The auth chain of `e` (not including `e`).
    pub fn auth_chain(&self, e: EventIdx) -> &RoaringBitmap {
        &self.chains[e.ix()]
    }

    /// Whether `ancestor` is in the auth chain of `e`.
    pub fn is_ancestor(&self, ancestor: EventIdx, e: EventIdx) -> bool {
        self.chains[e.ix()].contains(ancestor.0)
    }

    /// The union of the auth chains of `events` and the events themselves.
    pub fn closure<'a>(&self, events: impl IntoIterator<Item = &'a EventIdx>) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for e in events {
            out |= &self.chains[e.ix()];
            out.insert(e.0);
        }
        out
    }

    /// The auth difference of state sets: union minus intersection of their closures.
    pub fn auth_difference(&self, state_sets: &[&[EventIdx]]) -> RoaringBitmap {
        let closures: Vec<RoaringBitmap> =
            state_sets.iter().map(|s| self.closure(s.iter())).collect();
        let Some((first, rest)) = closures.split_first() else {
            return RoaringBitmap::new();
        };
        let mut union = first.clone();
        let mut inter = first.clone();
        for c in rest {
            union |= c;
            inter &= c;
        }
        union - inter
    }

    /// The conflicted state subgraph: events on auth paths from one conflicted event to another.
    pub fn conflicted_subgraph(&self, conflicted: &[EventIdx]) -> RoaringBitmap {
        let set: RoaringBitmap = conflicted.iter().map(|e| e.0).collect();
        let backward = self.closure(conflicted.iter());
        // An event is in the subgraph if it is an ancestor-or-self of a conflicted event and some
        // conflicted event is in its auth chain (or it is conflicted itself).
        backward
            .iter()
            .filter(|&x| set.contains(x) || !(&self.chains[x as usize] & &set).is_empty())
            .collect()
    }
}

/// Reusable scratch for the linear reachability passes.
#[derive(Debug, Default)]
pub struct Reachability {
    masks: Vec<u64>,
    back: Vec<bool>,
    fwd: Vec<bool>,
}

impl Reachability {
    /// The auth difference of `state_sets`, sorted by index: events in the closure (auth chains plus the
    /// events themselves) of some but not all sets. One descending pass over indices `0..=max`.
    pub fn auth_difference(
        &mut self,
        graph: &EventGraph,
        state_sets: &[&[EventIdx]],
        out: &mut Vec<EventIdx>,
    ) {
        out.clear();
        let k = state_sets.len();
        if k < 2 {
            return;
        }
        let words = k.div_ceil(64);
        let Some(max) = state_sets
            .iter()
            .flat_map(|s| s.iter())
            .map(|e| e.ix())
            .max()
        else {
            return;
        };
        let n = max + 1;
        self.masks.clear();
        self.masks.resize(n * words, 0);
        for (i, set) in state_sets.iter().enumerate() {
            for e in set.iter() {
                self.masks[e.ix() * words + i / 64] |= 1 << (i % 64);
            }
        }
        let full_last = if k.is_multiple_of(64) {
            u64::MAX
        } else {
            (1u64 << (k % 64)) - 1
        };
        for x in (0..n).rev() {
            let row = x * words;
            if self.masks[row..row + words].iter().all(|&w| w == 0) {
                continue;
            }
            let full = (0..words).all(|w| {
                let want = if w + 1 == words { full_last } else { u64::MAX };
                self.masks[row + w] == want
            });
            if !full {
                out.push(EventIdx(x as u32));
            }
            for &a in graph.auth_events(EventIdx(x as u32)) {
                let arow = a.ix() * words;
                for w in 0..words {
                    let m = self.masks[row + w];
                    self.masks[arow + w] |= m;
                }
            }
        }
        out.reverse();
    }

    /// The conflicted state subgraph (state resolution v2.1): every event that is an auth ancestor-or-self
    /// of some conflicted event and has some conflicted event as auth ancestor-or-self. Two linear passes
    /// over the index range spanned by `conflicted`. Output sorted by index.
    pub fn conflicted_subgraph(
        &mut self,
        graph: &EventGraph,
        conflicted: &[EventIdx],
        out: &mut Vec<EventIdx>,
    ) {
        out.clear();
        let (Some(lo), Some(hi)) = (
            conflicted.iter().map(|e| e.ix()).min(),
            conflicted.iter().map(|e| e.ix()).max(),
        ) else {
            return;
        };
        let n = hi + 1;
        self.back.clear();
        self.back.resize(n, false);
        self.fwd.clear();
        self.fwd.resize(n, false);
        for e in conflicted {
            self.back[e.ix()] = true;
            self.fwd[e.ix()] = true;
        }
        // Ancestors: descending, so every citing event is done before its auth events.
        for x in (lo..n).rev() {
            if self.back[x] {
                for &a in graph.auth_events(EventIdx(x as u32)) {
                    if a.ix() >= lo {
                        self.back[a.ix()] = true;
                    }
                }
            }
        }
        // Descendants: ascending; events below `lo` cannot reach a conflicted event's descendants.
        for x in lo..n {
            if !self.fwd[x] && self.back[x] {
                self.fwd[x] = graph
                    .auth_events(EventIdx(x as u32))
                    .iter()
                    .any(|a| a.ix() >= lo && self.fwd[a.ix()]);
            }
            if self.fwd[x] && self.back[x] {
                out.push(EventIdx(x as u32));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_generator::{RoomConfig, generate};
    use crate::room_version::RoomVersion;

    /// The roaring index and the linear passes agree on generated rooms.
    #[test]
    fn index_and_passes_agree() {
        for seed in 0..6 {
            let room = generate(&RoomConfig::small(
                RoomVersion::from_id("12").expect("known"),
                seed,
            ));
            let (graph, sets) = room.graph();
            let index = AuthChainIndex::build(&graph);
            let refs: Vec<&[EventIdx]> = sets.iter().map(Vec::as_slice).collect();
            let mut reach = Reachability::default();
            let mut diff = Vec::new();
            reach.auth_difference(&graph, &refs, &mut diff);
            let from_index: Vec<EventIdx> =
                index.auth_difference(&refs).iter().map(EventIdx).collect();
            assert_eq!(diff, from_index, "seed {seed}");
            let conflicted: Vec<EventIdx> = diff
                .iter()
                .copied()
                .filter(|e| sets.iter().flatten().any(|s| s == e))
                .collect();
            let mut sub = Vec::new();
            reach.conflicted_subgraph(&graph, &conflicted, &mut sub);
            let from_index: Vec<EventIdx> = index
                .conflicted_subgraph(&conflicted)
                .iter()
                .map(EventIdx)
                .collect();
            assert_eq!(sub, from_index, "seed {seed}");
        }
    }
}
