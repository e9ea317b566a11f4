//! Auth chains, the auth difference and the v2.1 conflicted state subgraph.
//!
//! [`Reachability`]: single passes over the topologically numbered [`EventGraph`] with reused scratch
//!   buffers — the auth difference in one descending pass carrying a bit per state set, and the
//!   conflicted state subgraph as the intersection of one descending (ancestors) and one ascending
//!   (descendants) pass. No path enumeration, no per-event sets. Used by a one-shot resolution, where
//!   building an index first would cost more than the passes. Long-lived graphs (ingest, `Engine::resolve`)
//!   keep the chain cover index instead ([`super::chain_cover`]).
//!
//! Auth chains here include the state-set events themselves when forming the auth difference, as Synapse
//! does (`AuthChainDifferenceTestCase`); see `docs/state-resolution.md`.

use super::graph::{EventGraph, EventIdx};

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
