//! evloop-conformance: the C player driver, the fixture recorder and the comparison machinery
//! behind the `evconform` CLI. The scenario language, its IR, the trace format and the Rust
//! interpreter live in the `evloop-scenario` crate (conformance/scenario/), re-exported here
//! under their old paths (`scenario`, `names`, `ir`, `trace`, `evloop_runner`).
//!
//! Documentation: SCENARIOS.md (the language), IR.md (the lowered program both interpreters
//! run, and the virtual clock), TRACE.md (trace lines), NONDETERMINISM.md (the one relaxation).
#![forbid(unsafe_code)]

pub mod capi;
pub mod check;
pub mod compare;
pub mod evloop_runner;
pub mod fixture;
pub mod fuzz;
pub mod player;
pub mod record;
pub mod spawn;

pub use evloop_scenario::{ir, names, scenario, trace};

use std::path::PathBuf;

/// `conformance/scenarios` of this checkout.
pub fn default_scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// `fixtures/` at the workspace root of this checkout.
pub fn default_fixtures_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.join(".."), PathBuf::from)
        .join("fixtures")
}
