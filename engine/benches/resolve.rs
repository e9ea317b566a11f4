//! State-resolution benchmarks (filled in by the resolve work).
fn main() {}
