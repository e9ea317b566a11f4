//! Writes generated rooms as JSON for `bench_synapse.py` (or `tests/differential.py`):
//!
//! ```sh
//! cargo run --release -p roomgraph-python --example dump_rooms -- bench DIR 100 1000 3000
//! cargo run --release -p roomgraph-python --example dump_rooms -- large DIR 20000
//! cargo run --release -p roomgraph-python --example dump_rooms -- differential DIR SEEDS [HEAVY]
//! ```

#[path = "../tests/support/rooms.rs"]
mod rooms;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers = |from: usize| -> Option<Vec<usize>> {
        args.get(from..)?.iter().map(|a| a.parse().ok()).collect()
    };
    let generated = match (args.first().map(String::as_str), args.get(1)) {
        (Some("bench"), Some(dir)) => numbers(2).map(|sizes| (dir, rooms::bench(&sizes))),
        (Some("large"), Some(dir)) => match numbers(2).as_deref() {
            Some([members]) => Some((dir, rooms::large(*members))),
            _ => None,
        },
        (Some("differential"), Some(dir)) => numbers(2).and_then(|n| match n.as_slice() {
            [seeds] => Some((dir, rooms::differential(*seeds as u64, 0))),
            [seeds, heavy] => Some((dir, rooms::differential(*seeds as u64, *heavy))),
            _ => None,
        }),
        _ => None,
    };
    let Some((dir, generated)) = generated else {
        eprintln!(
            "usage: dump_rooms bench DIR SIZE... | large DIR MEMBERS | differential DIR SEEDS [HEAVY]"
        );
        return ExitCode::from(2);
    };
    match rooms::write_all(Path::new(dir), &generated) {
        Ok(()) => {
            println!("{} rooms in {dir}", generated.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dump_rooms: {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
