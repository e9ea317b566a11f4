//! The chain cover index against linear reachability (bit sets of ancestors) on random and adversarial
//! auth DAGs: wide, deep, long power histories with membership churn, forks of one state key, and
//! auth-chain bombs (every event citing ten random earlier ones).

use super::*;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A DAG in insertion order: per event its key and its auth events (as indices of earlier events).
struct Dag {
    keys: Vec<u32>,
    auth: Vec<Vec<usize>>,
}

/// Event numbers are sparse, as a store's are (several rooms share one counter).
fn num(i: usize) -> u64 {
    1_000 + 7 * i as u64
}

impl Dag {
    fn new() -> Dag {
        Dag {
            keys: Vec::new(),
            auth: Vec::new(),
        }
    }

    fn push(&mut self, key: u32, mut auth: Vec<usize>) -> usize {
        auth.sort_unstable();
        auth.dedup();
        self.keys.push(key);
        self.auth.push(auth);
        self.keys.len() - 1
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Ancestors (not self) of every event, as bit sets.
    fn ancestors(&self) -> Vec<Vec<u64>> {
        let words = self.len().div_ceil(64);
        let mut anc: Vec<Vec<u64>> = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let mut set = vec![0u64; words];
            for &a in &self.auth[i] {
                set[a / 64] |= 1 << (a % 64);
                for (w, x) in set.iter_mut().zip(&anc[a]) {
                    *w |= x;
                }
            }
            anc.push(set);
        }
        anc
    }

    fn index(&self) -> (ChainCover, Vec<Inserted>) {
        let mut cover = ChainCover::new();
        let mut rows = Vec::new();
        for i in 0..self.len() {
            let auth: Vec<u64> = self.auth[i].iter().map(|&a| num(a)).collect();
            let ins = cover.insert(num(i), self.keys[i], &auth).expect("insert");
            assert!(
                ins.links.len() <= auth.len(),
                "at most one link per auth event"
            );
            rows.push(ins);
        }
        (cover, rows)
    }
}

fn has(set: &[u64], i: usize) -> bool {
    set[i / 64] >> (i % 64) & 1 == 1
}

fn members(set: &[u64], n: usize) -> Vec<u64> {
    (0..n).filter(|&i| has(set, i)).map(num).collect()
}

/// Every query of the index against the bit sets.
fn check(dag: &Dag, rng: &mut Rng, label: &str) {
    let n = dag.len();
    let anc = dag.ancestors();
    let (cover, rows) = dag.index();
    assert_eq!(cover.len(), n);

    // A copy restored from the insertion rows answers the same.
    let mut restored = ChainCover::new();
    for (i, ins) in rows.iter().enumerate() {
        restored.restore(num(i), dag.keys[i], ins).expect("restore");
    }

    for (i, ancestors) in anc.iter().enumerate() {
        let want = members(ancestors, n);
        assert_eq!(
            cover.auth_chain(num(i)).expect("chain"),
            want,
            "{label}: auth chain of {i}"
        );
        if i % 7 == 0 {
            assert_eq!(
                restored.auth_chain(num(i)).expect("chain"),
                want,
                "{label}: restored {i}"
            );
        }
    }
    // A closure grown event by event contains what the bit sets say.
    let mut grown = Closure::default();
    let mut want = vec![0u64; n.div_ceil(64)];
    for step in 0..20 {
        let e = rng.below(n);
        cover.extend(&mut grown, &[num(e)]).expect("extend");
        want[e / 64] |= 1 << (e % 64);
        for (w, x) in want.iter_mut().zip(&anc[e]) {
            *w |= x;
        }
        for x in 0..n {
            assert_eq!(
                cover.in_closure(&grown, num(x)).expect("known"),
                has(&want, x),
                "{label}: grown closure, step {step}, event {x}"
            );
        }
    }
    for _ in 0..n.min(2_000) {
        let (a, b) = (rng.below(n), rng.below(n));
        assert_eq!(
            cover.is_ancestor(num(a), num(b)).expect("known"),
            has(&anc[b], a),
            "{label}: is {a} an ancestor of {b}"
        );
    }
    let closure = |events: &[usize]| {
        let words = n.div_ceil(64);
        let mut set = vec![0u64; words];
        for &e in events {
            set[e / 64] |= 1 << (e % 64);
            for (w, x) in set.iter_mut().zip(&anc[e]) {
                *w |= x;
            }
        }
        set
    };
    for round in 0..60 {
        let k = 2 + rng.below(3);
        let sets: Vec<Vec<usize>> = (0..k)
            .map(|_| (0..1 + rng.below(12)).map(|_| rng.below(n)).collect())
            .collect();
        let closures: Vec<Vec<u64>> = sets.iter().map(|s| closure(s)).collect();
        let want: Vec<u64> = (0..n)
            .filter(|&i| {
                let c = closures.iter().filter(|cl| has(cl, i)).count();
                c > 0 && c < closures.len()
            })
            .map(num)
            .collect();
        let nums: Vec<Vec<u64>> = sets
            .iter()
            .map(|s| s.iter().map(|&i| num(i)).collect())
            .collect();
        let refs: Vec<&[u64]> = nums.iter().map(Vec::as_slice).collect();
        assert_eq!(
            cover.auth_difference(&refs).expect("difference"),
            want,
            "{label}: auth difference, round {round}"
        );

        let conflicted: Vec<usize> = (0..2 + rng.below(8)).map(|_| rng.below(n)).collect();
        let up = closure(&conflicted);
        let want: Vec<u64> = (0..n)
            .filter(|&x| has(&up, x) && conflicted.iter().any(|&k| k == x || has(&anc[x], k)))
            .map(num)
            .collect();
        let knums: Vec<u64> = conflicted.iter().map(|&i| num(i)).collect();
        assert_eq!(
            cover.conflicted_subgraph(&knums).expect("subgraph"),
            want,
            "{label}: conflicted subgraph of {conflicted:?}"
        );
    }
}

#[test]
fn random_dags_agree_with_linear_reachability() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut dag = Dag::new();
        dag.push(0, vec![]);
        let keys = 2 + rng.below(40) as u32;
        let mut tips: Vec<Option<usize>> = vec![None; keys as usize + 1];
        for _ in 0..600 {
            let key = 1 + rng.below(keys as usize) as u32;
            let mut auth = vec![0];
            // Mostly the key's latest event (a chain continues); sometimes an older one (a fork).
            if let Some(t) = tips[key as usize] {
                if rng.below(5) == 0 {
                    auth.push(rng.below(t + 1));
                } else {
                    auth.push(t);
                }
            }
            for _ in 0..rng.below(4) {
                auth.push(rng.below(dag.len()));
            }
            let e = dag.push(key, auth);
            tips[key as usize] = Some(e);
        }
        check(&dag, &mut rng, &format!("random seed {seed}"));
    }
}

#[test]
fn a_long_power_history_with_membership_churn() {
    let mut rng = Rng(42);
    let mut dag = Dag::new();
    let create = dag.push(0, vec![]);
    let mut power = dag.push(1, vec![create]);
    let mut rules = dag.push(2, vec![create, power]);
    let members = 150;
    let mut member: Vec<Option<usize>> = vec![None; members];
    for step in 0..3_000 {
        let user = rng.below(members);
        let sender = member[user];
        match step % 5 {
            // A power-levels change by a member.
            0 => {
                let mut auth = vec![create, power];
                auth.extend(sender);
                power = dag.push(1, auth);
            }
            1 if step % 50 == 1 => {
                let mut auth = vec![create, power];
                auth.extend(sender);
                rules = dag.push(2, auth);
            }
            // A membership change of the user (join, leave, ban).
            _ => {
                let mut auth = vec![create, power, rules];
                auth.extend(member[user]);
                member[user] = Some(dag.push(10 + user as u32, auth));
            }
        }
    }
    check(&dag, &mut rng, "power history");
}

#[test]
fn deep_wide_and_bomb_shaped_dags() {
    let mut rng = Rng(7);
    // Deep: one key, every event citing the previous one and the create event.
    let mut dag = Dag::new();
    dag.push(0, vec![]);
    for i in 1..2_500 {
        dag.push(1, vec![0, i - 1]);
    }
    check(&dag, &mut rng, "deep");

    // Wide: every event a key of its own, citing the create event and three random earlier events.
    let mut dag = Dag::new();
    dag.push(0, vec![]);
    for i in 1..1_500 {
        let auth = vec![0, rng.below(i), rng.below(i), rng.below(i)];
        dag.push(i as u32, auth);
    }
    check(&dag, &mut rng, "wide");

    // An auth-chain bomb: ten random earlier events each, few keys, many forks.
    let mut dag = Dag::new();
    dag.push(0, vec![]);
    for i in 1..1_200 {
        let auth: Vec<usize> = (0..10).map(|_| rng.below(i)).collect();
        dag.push(1 + rng.below(5) as u32, auth);
    }
    check(&dag, &mut rng, "bomb");
}

#[test]
fn insertion_adds_a_bounded_number_of_rows_however_long_the_history() {
    // One key's history of 20 000 events: each insertion adds one position and no link.
    let mut cover = ChainCover::new();
    cover.insert(1, 0, &[]).expect("create");
    for e in 2..20_000u64 {
        let ins = cover.insert(e, 1, &[1, e - 1]).expect("insert");
        assert!(ins.links.len() <= 1, "{ins:?}");
    }
    assert_eq!(cover.chain_count(), 2);
    assert!(cover.link_count() <= 1, "{}", cover.link_count());
    assert_eq!(cover.auth_chain(19_999).expect("chain").len(), 19_998);
}

#[test]
fn refused_inputs_change_nothing() {
    let mut cover = ChainCover::new();
    cover.insert(1, 0, &[]).expect("create");
    cover.insert(2, 1, &[1]).expect("insert");
    assert_eq!(cover.insert(2, 1, &[1]), Err(ChainError::Duplicate(2)));
    assert_eq!(cover.auth_chain(9), Err(ChainError::Unknown(9)));
    assert_eq!(cover.is_ancestor(1, 9), Err(ChainError::Unknown(9)));
    assert_eq!(
        cover.auth_difference(&[&[1], &[9]]),
        Err(ChainError::Unknown(9))
    );
    assert_eq!(cover.conflicted_subgraph(&[9]), Err(ChainError::Unknown(9)));
    // An auth event outside the index is skipped, as the caller's graph says.
    cover.insert(3, 2, &[1, 77]).expect("insert");
    assert_eq!(cover.auth_chain(3).expect("chain"), vec![1]);
    assert_eq!(cover.len(), 3);
}
