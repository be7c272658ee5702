//! The Rust runner as a [`Runner`] of the check matrix: the interpreter itself
//! (`run_scenario_on`, `ScenarioHost`, `OutsideWorld`, …) lives in `evloop_scenario::runner`
//! and is re-exported here; this module plugs it into `evconform` for evloop's backends under
//! `VirtualTime` (epoll, poll, select, mio) and for the simulator (`sim`: evloop-sim's
//! `SimBackend` without faults, compared with the epoll fixtures).

pub use evloop_scenario::runner::*;

use evloop::backend::{AnyBackend, VirtualTime};

use crate::check::{Loaded, Runner};

/// The backends `evconform check` runs by default: evloop's, then the simulator.
pub const DEFAULT_BACKENDS: &[&str] = &["epoll", "poll", "select", "mio", SIM_BACKEND];

/// The evloop runner.
pub fn evloop_runner() -> Option<Box<dyn Runner>> {
    Some(Box::new(EvloopRunner))
}

/// Runs scenarios on evloop's backends (`epoll`, `poll`, `select`, `mio`) and on the
/// simulator (`sim`).
pub struct EvloopRunner;

impl Runner for EvloopRunner {
    fn handles(&self, backend: &str) -> bool {
        EVLOOP_BACKENDS.contains(&backend) || backend == SIM_BACKEND
    }
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String> {
        if backend == SIM_BACKEND {
            return run_scenario_on::<evloop_sim::SimBackend>(&scenario.ir.instrs, backend);
        }
        run_scenario_on::<VirtualTime<AnyBackend>>(&scenario.ir.instrs, backend)
    }
}
