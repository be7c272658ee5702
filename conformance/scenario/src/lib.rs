//! evloop-scenario: the conformance scenario language (SCENARIOS.md), the IR it lowers to
//! (IR.md), the trace lines both interpreters print (TRACE.md), and the Rust interpreter of the
//! IR over any evloop host ([`runner::run_scenario_on`] with [`runner::ScenarioHost`]).
//!
//! It needs neither the C player, nor the fixtures, nor the simulator, so that both
//! `evloop-conformance` (the `evconform` CLI, the player, the fixtures, the check matrix) and
//! `evloop-sim` (which runs scenarios as `evsim` targets) can depend on it. The documents live
//! in `conformance/` beside this crate.
#![forbid(unsafe_code)]

pub mod ir;
pub mod names;
pub mod runner;
pub mod scenario;
pub mod strategies;
pub mod trace;
