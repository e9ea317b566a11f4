//! What roomgraph's test suites (`it/`) and benchmarks share: fixtures that build rooms event by event
//! (`auth_support` for the auth rules, `resolve_support` for resolution scenarios) and the ruma-state-res
//! oracle (`ruma_oracle`), one adapter for every differential test and benchmark.

pub mod auth_support;
pub mod resolve_support;
pub mod ruma_oracle;
