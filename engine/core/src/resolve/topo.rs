//! Kahn's algorithm with a binary heap (state resolution v2, "reverse topological power ordering").
//!
//! Nodes are emitted auth-events first; among the nodes whose in-set auth events have all been emitted,
//! the one with the smallest key goes next. Nothing is dropped: edges to nodes outside the set are ignored
//! and every node is emitted exactly once (the graph is acyclic by construction of [`super::EventGraph`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Sorts `n` local nodes `0..n`. `deps(i)` lists the local nodes `i` depends on (its auth events inside the
/// set; duplicates allowed); `key(i)` orders the ready nodes, smallest first.
pub fn kahn_sort<K: Ord>(
    n: usize,
    deps: impl Fn(usize, &mut Vec<u32>),
    key: impl Fn(usize) -> K,
) -> Vec<u32> {
    let mut pending = vec![0u32; n];
    let mut dependents_start = vec![0u32; n + 1];
    let mut scratch = Vec::new();
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for (i, waiting) in pending.iter_mut().enumerate() {
        scratch.clear();
        deps(i, &mut scratch);
        scratch.sort_unstable();
        scratch.dedup();
        for &d in &scratch {
            if d as usize != i {
                edges.push((d, i as u32));
                *waiting += 1;
                dependents_start[d as usize + 1] += 1;
            }
        }
    }
    for i in 0..n {
        dependents_start[i + 1] += dependents_start[i];
    }
    let mut fill = dependents_start.clone();
    let mut dependents = vec![0u32; edges.len()];
    for &(d, i) in &edges {
        dependents[fill[d as usize] as usize] = i;
        fill[d as usize] += 1;
    }
    let mut heap: BinaryHeap<Reverse<(K, u32)>> = (0..n)
        .filter(|&i| pending[i] == 0)
        .map(|i| Reverse((key(i), i as u32)))
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = heap.pop() {
        out.push(i);
        let i = i as usize;
        for &c in &dependents[dependents_start[i] as usize..dependents_start[i + 1] as usize] {
            pending[c as usize] -= 1;
            if pending[c as usize] == 0 {
                heap.push(Reverse((key(c as usize), c)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synapse `LexicographicalTestCase.test_simple`: l→{o}, m→{n,o}, n→{o}, o→{}, p→{o}, key = name.
    #[test]
    fn lexicographical_simple() {
        let names = ["l", "m", "n", "o", "p"];
        let deps: [&[u32]; 5] = [&[3], &[2, 3], &[3], &[], &[3]];
        let order = kahn_sort(5, |i, out| out.extend_from_slice(deps[i]), |i| names[i]);
        let got: Vec<&str> = order.iter().map(|&i| names[i as usize]).collect();
        assert_eq!(got, ["o", "l", "n", "m", "p"]);
    }

    #[test]
    fn emits_every_node_once_with_duplicate_edges() {
        let deps: [&[u32]; 4] = [&[], &[0, 0], &[1, 0, 1], &[2, 2, 0]];
        let order = kahn_sort(
            4,
            |i, out| out.extend_from_slice(deps[i]),
            std::cmp::Reverse,
        );
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn heap_picks_smallest_ready_key() {
        // 0 is the root; 1, 2, 3 depend on it; keys make 3 first, then 1, then 2.
        let deps: [&[u32]; 4] = [&[], &[0], &[0], &[0]];
        let keys = [0, 5, 7, 1];
        let order = kahn_sort(4, |i, out| out.extend_from_slice(deps[i]), |i| keys[i]);
        assert_eq!(order, [0, 3, 1, 2]);
    }
}
