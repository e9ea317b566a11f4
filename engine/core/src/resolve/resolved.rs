//! The answer of a resolution: one event per state key.

use std::collections::BTreeMap;

use super::graph::{EventGraph, EventIdx, TypeStateKeyIdx};

/// A resolved state map: one event per `(type, state_key)`, sorted by key index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedState {
    entries: Vec<(TypeStateKeyIdx, EventIdx)>,
}

impl ResolvedState {
    pub fn from_entries(mut entries: Vec<(TypeStateKeyIdx, EventIdx)>) -> ResolvedState {
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        ResolvedState { entries }
    }

    /// From entries already sorted by key with distinct keys (checked in debug builds).
    pub(crate) fn from_sorted(entries: Vec<(TypeStateKeyIdx, EventIdx)>) -> ResolvedState {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        ResolvedState { entries }
    }

    pub fn get(&self, key: TypeStateKeyIdx) -> Option<EventIdx> {
        self.entries
            .binary_search_by_key(&key, |e| e.0)
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// The event for `(event_type, state_key)`, looked up through the graph's key interner.
    pub fn get_by_name(
        &self,
        graph: &EventGraph,
        event_type: &str,
        state_key: &str,
    ) -> Option<EventIdx> {
        self.get(graph.keys().get(event_type, state_key)?)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (TypeStateKeyIdx, EventIdx)> + '_ {
        self.entries.iter().copied()
    }

    /// The event indices, in key order (usable as a state set of a later resolution).
    pub fn events(&self) -> Vec<EventIdx> {
        self.entries.iter().map(|e| e.1).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `{type: {state_key: event_id}}` with strings from `graph`, sorted (the CLI output shape).
    pub fn to_named(&self, graph: &EventGraph) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (k, e) in self.iter() {
            let (t, s) = graph.keys().resolve(k);
            out.entry(t.to_owned())
                .or_default()
                .insert(s.to_owned(), graph.event_id(e).to_owned());
        }
        out
    }
}
