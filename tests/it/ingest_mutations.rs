//! Ingest under damaged input: a generated trace with random byte edits (replaced, deleted and inserted
//! bytes, truncated and repeated lines, invalid UTF-8 included) goes through `Engine::ingest`. Whatever
//! the edits, the engine must not fail or panic, must give every line exactly one outcome (invalid lines
//! with their line number and a reason), and must leave a store that reopens with every stored event and
//! its states readable.

use std::collections::BTreeMap;

use proptest::prelude::*;
use roomgraph::ingest::{Engine, Outcome, Position};
use roomgraph::store::EventStatus;
use roomgraph_testkit::trace::{TraceSpec, generate};

/// One edit of one line.
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Repeat,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
        Just(Edit::Repeat),
    ]
}

/// The trace's lines with `edits` applied (a repeated line is appended at the end, so that it arrives
/// after its original).
fn damaged(lines: &[String], edits: &[(prop::sample::Index, Edit)]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.clone().into_bytes()).collect();
    let mut repeats = Vec::new();
    for (which, e) in edits {
        let i = which.index(lines.len());
        let line = &mut out[i];
        match e {
            Edit::Replace(at, b) if !line.is_empty() => {
                let at = at.index(line.len());
                line[at] = *b;
            }
            Edit::Delete(at) if !line.is_empty() => {
                line.remove(at.index(line.len()));
            }
            Edit::Insert(at, b) => {
                let at = at.index(line.len() + 1);
                line.insert(at, *b);
            }
            Edit::Truncate(at) => line.truncate(at.index(line.len() + 1)),
            Edit::Repeat => repeats.push(line.clone()),
            _ => {}
        }
    }
    out.extend(repeats);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn damaged_input_gets_one_outcome_per_line_and_a_sound_store(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), edit()), 1..8),
    ) {
        let trace = generate(&TraceSpec {
            rooms: 2,
            events: 60,
            big_room_members: 8,
            seed: 7,
            ..TraceSpec::default()
        });
        let lines = damaged(&trace.lines, &edits);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outcomes = {
            let mut engine = Engine::open(dir.path()).expect("open");
            let mut outcomes = engine.ingest(&lines).expect("bad input is an outcome, not an error");
            outcomes.extend(engine.finish().expect("finish"));
            outcomes
        };
        // Every line, exactly once: a line decided at `finish` was not reported by `ingest`.
        let mut per_line: BTreeMap<u64, usize> = BTreeMap::new();
        for o in &outcomes {
            let line = o.line.expect("every input line has a number");
            // An outlier that joined the timeline is reported again: its line was counted already.
            if o.deoutliered {
                continue;
            }
            *per_line.entry(line).or_default() += 1;
            if o.outcome == Outcome::Invalid {
                let reason = o.reason_text().unwrap_or_default();
                prop_assert!(reason.starts_with(&format!("line {line}: ")), "{reason}");
            }
        }
        let expected: BTreeMap<u64, usize> = (1..=lines.len() as u64).map(|n| (n, 1)).collect();
        prop_assert_eq!(per_line, expected);

        // The store reopens, and every stored event is there with its states (outliers have none).
        let engine = Engine::open(dir.path()).expect("reopen");
        outcomes.retain(|o| o.outcome.is_stored());
        let last: BTreeMap<&str, Outcome> = outcomes
            .iter()
            .map(|o| (o.event_id.as_deref().expect("a stored event has an id"), o.outcome))
            .collect();
        for (id, outcome) in last {
            let stored = engine.event(id).expect("read").expect("stored event is there");
            let status = match stored.status {
                EventStatus::Accepted => Outcome::Accepted,
                EventStatus::Rejected | EventStatus::RejectedOutlier => Outcome::Rejected,
                EventStatus::SoftFailed => Outcome::SoftFailed,
                EventStatus::Outlier => Outcome::Outlier,
            };
            prop_assert_eq!(status, outcome);
            if !stored.status.is_outlier() {
                engine.state_at(id, Position::Before).expect("state before");
                engine.state_at(id, Position::After).expect("state after");
            }
        }
    }
}
