//! State resolution v1 (room version 1, spec `rooms/v1.md` "State resolution"), as Synapse's
//! `synapse/state/v1.py` implements it (ruma has none).
//!
//! A key conflicts only when two sets hold different events for it (a missing key is no conflict).
//! Conflicted power levels, then join rules, then memberships are resolved by replaying candidates in
//! ascending depth (ties: descending SHA-1 of the event id) until one fails; every other conflicted key
//! takes the first candidate by descending depth (ties: ascending SHA-1) that passes the auth rules.

use std::collections::HashMap;

use crate::auth::{self, AuthEvent};

use super::error::ResolveError;
use super::graph::{EventGraph, EventIdx, TypeStateKeyIdx};
use super::resolved::ResolvedState;
use super::v2::{CheckState, create_event};

pub(crate) fn resolve(
    graph: &EventGraph,
    state_sets: &[&[EventIdx]],
) -> Result<ResolvedState, ResolveError> {
    // Validate every set (state events, one per key) whatever the path taken.
    let mut keyed_sets: Vec<Vec<(TypeStateKeyIdx, EventIdx)>> =
        Vec::with_capacity(state_sets.len());
    for (i, set) in state_sets.iter().enumerate() {
        let mut seen = HashMap::with_capacity(set.len());
        let mut keyed = Vec::with_capacity(set.len());
        for &e in set.iter() {
            let Some(k) = graph.node(e).key else {
                return Err(ResolveError::NotStateEvent {
                    set: i,
                    event_id: graph.event_id(e).to_owned(),
                });
            };
            if seen.insert(k, e).is_some() {
                let (t, s) = graph.keys().resolve(k);
                return Err(ResolveError::DuplicateKey {
                    set: i,
                    event_type: t.to_owned(),
                    state_key: s.to_owned(),
                });
            }
            keyed.push((k, e));
        }
        keyed_sets.push(keyed);
    }
    let Some((first, rest)) = keyed_sets.split_first() else {
        return Ok(ResolvedState::default());
    };
    if rest.is_empty() {
        return Ok(ResolvedState::from_entries(first.clone()));
    }

    // Synapse `_seperate` (v1 flavour): conflicts only between present values.
    let mut unconflicted: HashMap<TypeStateKeyIdx, EventIdx> = first.iter().copied().collect();
    let mut conflicted: Vec<(TypeStateKeyIdx, Vec<EventIdx>)> = Vec::new();
    let mut conflicted_pos: HashMap<TypeStateKeyIdx, usize> = HashMap::new();
    for set in rest {
        for &(k, e) in set {
            if let Some(&p) = conflicted_pos.get(&k) {
                if !conflicted[p].1.contains(&e) {
                    conflicted[p].1.push(e);
                }
                continue;
            }
            match unconflicted.get(&k) {
                None => {
                    unconflicted.insert(k, e);
                }
                Some(&u) if u != e => {
                    unconflicted.remove(&k);
                    conflicted_pos.insert(k, conflicted.len());
                    conflicted.push((k, vec![e, u]));
                }
                Some(_) => {}
            }
        }
    }
    if conflicted.is_empty() {
        return Ok(ResolvedState::from_entries(
            unconflicted.into_iter().collect(),
        ));
    }
    let create = create_event(graph)?;

    // Synapse `_create_auth_events_from_maps`: the auth keys of conflicted events, from unconflicted state.
    let mut auth_events: HashMap<TypeStateKeyIdx, EventIdx> = HashMap::new();
    for (_, events) in &conflicted {
        for &e in events {
            graph.for_each_auth_key(e, |k| {
                if let Some(&u) = unconflicted.get(&k) {
                    auth_events.entry(k).or_insert(u);
                }
            });
        }
    }

    let type_of = |k: TypeStateKeyIdx| graph.keys().resolve(k).0;
    let mut resolved: HashMap<TypeStateKeyIdx, EventIdx> = HashMap::new();
    let pl_key = graph.keys().get("m.room.power_levels", "");
    if let Some((k, events)) = conflicted.iter().find(|(k, _)| Some(*k) == pl_key) {
        resolved.insert(*k, resolve_auth_events(graph, events, &auth_events, create));
    }
    auth_events.extend(resolved.iter().map(|(&k, &e)| (k, e)));
    for category in ["m.room.join_rules", "m.room.member"] {
        for (k, events) in conflicted.iter().filter(|(k, _)| type_of(*k) == category) {
            resolved.insert(*k, resolve_auth_events(graph, events, &auth_events, create));
        }
        auth_events.extend(resolved.iter().map(|(&k, &e)| (k, e)));
    }
    for (k, events) in &conflicted {
        if !resolved.contains_key(k) {
            resolved.insert(
                *k,
                resolve_normal_events(graph, events, &auth_events, create),
            );
        }
    }
    unconflicted.extend(resolved);
    Ok(ResolvedState::from_entries(
        unconflicted.into_iter().collect(),
    ))
}

/// Candidates by descending depth, then ascending SHA-1 of the event id (Synapse `_ordered_events`).
fn ordered(graph: &EventGraph, events: &[EventIdx]) -> Vec<EventIdx> {
    let mut keyed: Vec<(i64, [u8; 20], EventIdx)> = events
        .iter()
        .map(|&e| (-graph.node(e).depth, sha1(graph.event_id(e).as_bytes()), e))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, e)| e).collect()
}

fn passes(
    graph: &EventGraph,
    e: EventIdx,
    state: &HashMap<TypeStateKeyIdx, EventIdx>,
    create: &AuthEvent,
) -> bool {
    if Some(e) == graph.create() {
        return true;
    }
    let mut check = CheckState::new(graph);
    for (&k, &v) in state {
        check.put(k, v);
    }
    auth::check_state_dependent(graph.event(e), &check, create).is_ok()
}

/// Synapse `_resolve_auth_events`: replay from the oldest candidate; stop at the first failure.
fn resolve_auth_events(
    graph: &EventGraph,
    events: &[EventIdx],
    auth_events: &HashMap<TypeStateKeyIdx, EventIdx>,
    create: &AuthEvent,
) -> EventIdx {
    let mut order = ordered(graph, events);
    order.reverse();
    let mut state: HashMap<TypeStateKeyIdx, EventIdx> = HashMap::new();
    for &e in &order {
        graph.for_each_auth_key(e, |k| {
            if let Some(&a) = auth_events.get(&k) {
                state.insert(k, a);
            }
        });
    }
    let mut prev = order[0];
    for &e in &order[1..] {
        if let Some(k) = graph.node(prev).key {
            state.insert(k, prev);
        }
        if !passes(graph, e, &state, create) {
            return prev;
        }
        prev = e;
    }
    prev
}

/// Synapse `_resolve_normal_events`: the first candidate that passes; the last one if none does.
fn resolve_normal_events(
    graph: &EventGraph,
    events: &[EventIdx],
    auth_events: &HashMap<TypeStateKeyIdx, EventIdx>,
    create: &AuthEvent,
) -> EventIdx {
    let order = ordered(graph, events);
    for &e in &order {
        if passes(graph, e, auth_events, create) {
            return e;
        }
    }
    order[order.len() - 1]
}

/// SHA-1 (FIPS 180-4), only for the v1 tie-break on event ids.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sha1;

    fn hex(d: [u8; 20]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }
}
