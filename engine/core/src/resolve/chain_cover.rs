//! The chain cover index of an auth DAG: what a long-lived graph (a room being ingested, a homeserver's
//! room) keeps so that "auth chain of X", "is A an ancestor of B", the auth difference of state sets and
//! the v2.1 conflicted subgraph cost in proportion to their answer, while inserting an event costs a
//! bounded amount of time and writes a bounded number of rows however long the room's history is.
//!
//! The design is Synapse's chain cover index (`docs/auth_chain_difference_algorithm.md` in Synapse),
//! argued in `docs/auth-chain-index.md`:
//! - Every event sits on one **chain** at a 1-based **sequence number**. An event continues the chain of
//!   one of its auth events when that auth event has the same `(type, state_key)` and is the chain's
//!   last event; otherwise it starts a chain (whose id is the event's own number). So a chain is, in
//!   practice, the history of one state key (the power levels, one user's membership), and an event
//!   always has its chain predecessor among its auth events: `(c, s)` reaches every `(c, s' ≤ s)`.
//! - An event's auth events on other chains become **links** `(c, s) → (t, s_t)`, unless the chain
//!   predecessor already reaches `(t, s_t)`. Links are kept per pair of chains as `(origin seq, highest
//!   target seq reachable through the links from origins ≤ it)`, ascending in both: "how far into chain
//!   `t` does `(c, s)` reach directly" is one binary search.
//! - The auth chain of a set of events is, per chain, the highest sequence number reached, found by a
//!   fixpoint over chains (never over events); listing it costs its length.
//!
//! Worst case: a reach costs O(pairs of chains linked × log links) per improvement of a chain's bound,
//! independent of the number of events below those bounds. An insertion is O(auth events) and adds at
//! most one position and one link per auth event.

use ahash::{HashMap, HashMapExt};
use smallvec::SmallVec;

/// An event's place in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainPos {
    /// The chain: the number of its first event.
    pub chain: u64,
    /// 1-based position in the chain.
    pub seq: u32,
}

/// What one insertion added: the rows a persistent copy of the index writes for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub pos: ChainPos,
    /// Links from the event to positions on other chains (redundant ones left out).
    pub links: SmallVec<[ChainPos; 4]>,
}

/// Why an insertion or a query was refused. Nothing is changed by a refused insertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("chain index: event {0} is indexed already")]
    Duplicate(u64),
    #[error("chain index: event {0} is not indexed")]
    Unknown(u64),
}

#[derive(Debug)]
struct Chain {
    /// The state key number its events share.
    key: u32,
    /// `events[seq - 1]`.
    events: Vec<u64>,
    /// Links to other chains, by target chain: `(origin seq, highest target seq reached)`, both
    /// strictly ascending.
    links: HashMap<u64, Vec<(u32, u32)>>,
    /// The same links in insertion order, so ascending by origin seq: `(origin seq, target chain,
    /// highest target seq reached)`. Growing a closure along this chain from one bound to a higher one
    /// reads exactly the links whose origins lie between them.
    by_origin: Vec<(u32, u64, u32)>,
    /// The chains with links into this one.
    linked_from: Vec<u64>,
}

/// The chain cover index over event numbers (any `u64`, assigned by the caller; an event must be
/// inserted after its auth events).
#[derive(Debug, Default)]
pub struct ChainCover {
    pos: HashMap<u64, ChainPos>,
    chains: HashMap<u64, Chain>,
}

/// Per chain, the highest sequence number reached.
pub type Reach = HashMap<u64, u32>;

/// A closure (events and their auth chains) that can grow: [`ChainCover::extend`] adds events,
/// [`ChainCover::in_closure`] asks about one.
#[derive(Debug, Default, Clone)]
pub struct Closure {
    max: Reach,
    /// Per chain, the bound up to which its links have been followed.
    done: Reach,
}

impl Closure {
    /// Per chain, the highest sequence number reached.
    pub fn reach(&self) -> &Reach {
        &self.max
    }
}

impl ChainCover {
    pub fn new() -> ChainCover {
        ChainCover::default()
    }

    /// Number of events indexed.
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Number of chains.
    pub fn chain_count(&self) -> usize {
        self.chains.len()
    }

    /// Number of links kept (after pruning).
    pub fn link_count(&self) -> usize {
        self.chains
            .values()
            .flat_map(|c| c.links.values())
            .map(Vec::len)
            .sum()
    }

    pub fn contains(&self, event: u64) -> bool {
        self.pos.contains_key(&event)
    }

    pub fn position(&self, event: u64) -> Option<ChainPos> {
        self.pos.get(&event).copied()
    }

    /// Indexes `event`, a state event of key `key`, whose auth events are `auth`. Auth events that are
    /// not indexed are skipped (the caller's choice: an event outside this index's graph). Cost: O(auth
    /// events); it adds one position and at most one link per auth event.
    pub fn insert(&mut self, event: u64, key: u32, auth: &[u64]) -> Result<Inserted, ChainError> {
        if self.pos.contains_key(&event) {
            return Err(ChainError::Duplicate(event));
        }
        let auth_pos: SmallVec<[ChainPos; 8]> =
            auth.iter().filter_map(|a| self.position(*a)).collect();
        // The chain to continue: an auth event of the same key at the end of its chain.
        let continued = auth_pos.iter().find(|p| {
            self.chains
                .get(&p.chain)
                .is_some_and(|c| c.key == key && c.events.len() == p.seq as usize)
        });
        let pos = match continued {
            Some(p) => ChainPos {
                chain: p.chain,
                seq: p.seq + 1,
            },
            None => ChainPos {
                chain: event,
                seq: 1,
            },
        };
        // The links: per target chain the highest auth position, unless the predecessor reaches it.
        let mut links: SmallVec<[ChainPos; 4]> = SmallVec::new();
        for p in &auth_pos {
            if p.chain == pos.chain {
                continue;
            }
            match links.iter_mut().find(|l| l.chain == p.chain) {
                Some(l) => l.seq = l.seq.max(p.seq),
                None => links.push(*p),
            }
        }
        if let Some(chain) = self.chains.get(&pos.chain) {
            links.retain(|l| {
                chain
                    .links
                    .get(&l.chain)
                    .and_then(|v| v.last())
                    .is_none_or(|&(_, reached)| reached < l.seq)
            });
        }

        match self.chains.get_mut(&pos.chain) {
            Some(chain) => chain.events.push(event),
            None => {
                self.chains.insert(
                    pos.chain,
                    Chain {
                        key,
                        events: vec![event],
                        links: HashMap::new(),
                        by_origin: Vec::new(),
                        linked_from: Vec::new(),
                    },
                );
            }
        }
        for l in &links {
            let mut first = false;
            if let Some(chain) = self.chains.get_mut(&pos.chain) {
                let list = chain.links.entry(l.chain).or_insert_with(|| {
                    first = true;
                    Vec::new()
                });
                list.push((pos.seq, l.seq));
                chain.by_origin.push((pos.seq, l.chain, l.seq));
            }
            if first && let Some(target) = self.chains.get_mut(&l.chain) {
                target.linked_from.push(pos.chain);
            }
        }
        self.pos.insert(event, pos);
        Ok(Inserted { pos, links })
    }

    /// Restores one event from the rows [`ChainCover::insert`] returned (a persistent index loading
    /// its rows in insertion order). `key` is the event's state key number.
    pub fn restore(&mut self, event: u64, key: u32, ins: &Inserted) -> Result<(), ChainError> {
        if self.pos.contains_key(&event) {
            return Err(ChainError::Duplicate(event));
        }
        let chain = self.chains.entry(ins.pos.chain).or_insert_with(|| Chain {
            key,
            events: Vec::new(),
            links: HashMap::new(),
            by_origin: Vec::new(),
            linked_from: Vec::new(),
        });
        chain.events.push(event);
        let mut new_targets: SmallVec<[u64; 4]> = SmallVec::new();
        for l in &ins.links {
            let list = chain.links.entry(l.chain).or_default();
            if list.is_empty() {
                new_targets.push(l.chain);
            }
            let reached = list.last().map_or(0, |&(_, r)| r).max(l.seq);
            list.push((ins.pos.seq, reached));
            chain.by_origin.push((ins.pos.seq, l.chain, reached));
        }
        for t in new_targets {
            if let Some(target) = self.chains.get_mut(&t) {
                target.linked_from.push(ins.pos.chain);
            }
        }
        self.pos.insert(event, ins.pos);
        Ok(())
    }

    fn pos_of(&self, event: u64) -> Result<ChainPos, ChainError> {
        self.position(event).ok_or(ChainError::Unknown(event))
    }

    /// The reach of `starts` (themselves included), stopping early once `stop` says so.
    fn reach_from(&self, starts: &[ChainPos], stop: impl FnMut(&Reach) -> bool) -> Reach {
        let mut closure = Closure::default();
        self.grow(&mut closure, starts, stop);
        closure.max
    }

    /// Adds `starts` and what they reach to `closure` (a fixpoint over chains: a chain is processed
    /// again only when its bound rises, and then only links beyond the old bound can reach further).
    fn grow(
        &self,
        closure: &mut Closure,
        starts: &[ChainPos],
        mut stop: impl FnMut(&Reach) -> bool,
    ) {
        let Closure { max, done } = closure;
        let mut queue: Vec<u64> = Vec::new();
        for p in starts {
            let m = max.entry(p.chain).or_insert(0);
            if p.seq > *m {
                *m = p.seq;
                queue.push(p.chain);
            }
        }
        while let Some(c) = queue.pop() {
            if stop(max) {
                break;
            }
            let s = max[&c];
            let d = done.entry(c).or_insert(0);
            if *d >= s {
                continue;
            }
            let from = *d;
            *d = s;
            let Some(chain) = self.chains.get(&c) else {
                continue;
            };
            // Only links with an origin in (from, s] can reach further than before.
            let first = chain.by_origin.partition_point(|&(o, _, _)| o <= from);
            for &(o, t, r) in &chain.by_origin[first..] {
                if o > s {
                    break;
                }
                let m = max.entry(t).or_insert(0);
                if r > *m {
                    *m = r;
                    queue.push(t);
                }
            }
        }
    }

    /// Adds `events` and their auth chains to `closure`.
    pub fn extend(&self, closure: &mut Closure, events: &[u64]) -> Result<(), ChainError> {
        let starts: SmallVec<[ChainPos; 8]> = events
            .iter()
            .map(|e| self.pos_of(*e))
            .collect::<Result<_, _>>()?;
        self.grow(closure, &starts, |_| false);
        Ok(())
    }

    /// Whether `event` is in `closure`.
    pub fn in_closure(&self, closure: &Closure, event: u64) -> Result<bool, ChainError> {
        let p = self.pos_of(event)?;
        Ok(closure.max.get(&p.chain).is_some_and(|&s| s >= p.seq))
    }

    /// The closure of `events`: per chain, the highest sequence number among them and their auth
    /// chains.
    pub fn closure(&self, events: &[u64]) -> Result<Reach, ChainError> {
        let starts: Vec<ChainPos> = events
            .iter()
            .map(|e| self.pos_of(*e))
            .collect::<Result<_, _>>()?;
        Ok(self.reach_from(&starts, |_| false))
    }

    /// The events of a closure, ascending by number.
    pub fn events_of(&self, reach: &Reach) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::with_capacity(reach.values().map(|&s| s as usize).sum());
        for (c, &s) in reach {
            if let Some(chain) = self.chains.get(c) {
                out.extend_from_slice(&chain.events[..s as usize]);
            }
        }
        out.sort_unstable();
        out
    }

    /// The auth chain of `event` (not including it), ascending.
    pub fn auth_chain(&self, event: u64) -> Result<Vec<u64>, ChainError> {
        let p = self.pos_of(event)?;
        let reach = self.reach_from(&[p], |_| false);
        let mut out = self.events_of(&reach);
        out.retain(|&e| e != event);
        Ok(out)
    }

    /// Whether `ancestor` is in the auth chain of `event`. Stops as soon as it is reached.
    pub fn is_ancestor(&self, ancestor: u64, event: u64) -> Result<bool, ChainError> {
        let a = self.pos_of(ancestor)?;
        let e = self.pos_of(event)?;
        if ancestor == event {
            return Ok(false);
        }
        if a.chain == e.chain {
            return Ok(a.seq < e.seq);
        }
        let hit = |m: &Reach| m.get(&a.chain).is_some_and(|&s| s >= a.seq);
        let reach = self.reach_from(&[e], hit);
        Ok(hit(&reach))
    }

    /// The auth difference of state sets: the events in the closure (auth chains plus the events
    /// themselves) of some set but not of all. Per chain it is the range between the lowest and the
    /// highest bound the sets reach, so it costs the chains reached plus the answer. Ascending.
    pub fn auth_difference(&self, sets: &[&[u64]]) -> Result<Vec<u64>, ChainError> {
        let closures: Vec<Closure> = sets
            .iter()
            .map(|s| {
                let mut c = Closure::default();
                self.extend(&mut c, s).map(|()| c)
            })
            .collect::<Result<_, _>>()?;
        Ok(self.difference_of(&closures))
    }

    /// [`ChainCover::auth_difference`] of closures built already.
    pub fn difference_of(&self, closures: &[Closure]) -> Vec<u64> {
        let mut chains: Vec<u64> = closures
            .iter()
            .flat_map(|r| r.max.keys().copied())
            .collect();
        chains.sort_unstable();
        chains.dedup();
        let mut out = Vec::new();
        for c in chains {
            // A set that does not reach a chain has bound 0 on it.
            let bound = |r: &Closure| r.max.get(&c).copied().unwrap_or(0);
            let hi = closures.iter().map(bound).max().unwrap_or(0);
            let lo = closures.iter().map(bound).min().unwrap_or(0);
            if let Some(chain) = self.chains.get(&c) {
                out.extend_from_slice(&chain.events[lo as usize..hi as usize]);
            }
        }
        out.sort_unstable();
        out
    }

    /// The v2.1 conflicted state subgraph: the events that are both ancestors-or-self and
    /// descendants-or-self of conflicted events. Per chain the descendants form a suffix; its start is
    /// found by a fixpoint over the links into the chains of the closure. Ascending.
    pub fn conflicted_subgraph(&self, conflicted: &[u64]) -> Result<Vec<u64>, ChainError> {
        let upper = self.closure(conflicted)?;
        // Lowest descendant-or-self seq per chain.
        let mut lower: HashMap<u64, u32> = HashMap::new();
        let mut queue: Vec<u64> = Vec::new();
        for e in conflicted {
            let p = self.pos_of(*e)?;
            let l = lower.entry(p.chain).or_insert(u32::MAX);
            if p.seq < *l {
                *l = p.seq;
                queue.push(p.chain);
            }
        }
        while let Some(t) = queue.pop() {
            let lt = lower[&t];
            let Some(target) = self.chains.get(&t) else {
                continue;
            };
            for c in &target.linked_from {
                if !upper.contains_key(c) {
                    continue;
                }
                let Some(list) = self.chains.get(c).and_then(|ch| ch.links.get(&t)) else {
                    continue;
                };
                // The first origin whose reach into `t` includes the descendant (t, lt).
                let i = list.partition_point(|&(_, r)| r < lt);
                let Some(&(origin, _)) = list.get(i) else {
                    continue;
                };
                let l = lower.entry(*c).or_insert(u32::MAX);
                if origin < *l {
                    *l = origin;
                    queue.push(*c);
                }
            }
        }
        let mut out = Vec::new();
        for (c, &hi) in &upper {
            let Some(&lo) = lower.get(c) else {
                continue;
            };
            if lo <= hi
                && let Some(chain) = self.chains.get(c)
            {
                out.extend_from_slice(&chain.events[lo as usize - 1..hi as usize]);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
