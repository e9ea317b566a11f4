//! Mainline ordering (state resolution v2, "mainline ordering", step 3 of the algorithm).
//!
//! The mainline of the resolved power-levels event P is P, the power-levels event among P's auth events,
//! and so on. An event's position is found by following power-levels auth events until one is on the
//! mainline. Positions are memoised for every event visited, so the whole sort costs O(events + distinct
//! power-levels events walked) instead of one walk per event. Depth numbering follows Synapse: the oldest
//! mainline event is 1, the newest n, and 0 means "no mainline ancestor" (sorts first).

use super::graph::{EventGraph, EventIdx};

const UNKNOWN: u32 = u32::MAX;

/// Reusable memo for mainline depths.
#[derive(Debug, Default)]
pub struct MainlineSorter {
    memo: Vec<u32>,
    touched: Vec<EventIdx>,
    path: Vec<EventIdx>,
}

impl MainlineSorter {
    /// Sorts `events` by (mainline depth, `origin_server_ts`, event id) against the power-levels event
    /// `resolved_pl` (none: every depth is 0).
    pub fn sort(
        &mut self,
        graph: &EventGraph,
        resolved_pl: Option<EventIdx>,
        events: &mut [EventIdx],
    ) {
        if self.memo.len() < graph.len() {
            self.memo.resize(graph.len(), UNKNOWN);
        }
        let mut mainline = Vec::new();
        let mut p = resolved_pl;
        while let Some(x) = p {
            mainline.push(x);
            p = graph.node(x).pl_auth;
        }
        let n = mainline.len() as u32;
        for (i, &x) in mainline.iter().enumerate() {
            self.set(x, n - i as u32);
        }
        let mut keyed: Vec<(u32, i64, EventIdx)> = events
            .iter()
            .map(|&e| (self.depth(graph, e), graph.node(e).origin_server_ts, e))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| graph.event_id(a.2).cmp(graph.event_id(b.2)))
        });
        for (slot, (_, _, e)) in events.iter_mut().zip(keyed) {
            *slot = e;
        }
        for e in self.touched.drain(..) {
            self.memo[e.ix()] = UNKNOWN;
        }
    }

    fn set(&mut self, e: EventIdx, depth: u32) {
        if self.memo[e.ix()] == UNKNOWN {
            self.touched.push(e);
        }
        self.memo[e.ix()] = depth;
    }

    /// The mainline depth of `e`, testing `e` itself first (as Synapse does; the events sorted here are
    /// never power-levels events, so this equals the spec's "closest power-levels ancestor").
    fn depth(&mut self, graph: &EventGraph, e: EventIdx) -> u32 {
        self.path.clear();
        let mut x = Some(e);
        let found = loop {
            match x {
                None => break 0,
                Some(y) if self.memo[y.ix()] != UNKNOWN => break self.memo[y.ix()],
                Some(y) => {
                    self.path.push(y);
                    x = graph.node(y).pl_auth;
                }
            }
        };
        let path = std::mem::take(&mut self.path);
        for &y in &path {
            self.set(y, found);
        }
        self.path = path;
        found
    }
}
