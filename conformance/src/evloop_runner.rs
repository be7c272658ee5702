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
        // real descriptors: see `crate::spawn`
        crate::spawn::in_process(|| {
            run_scenario_on::<VirtualTime<AnyBackend>>(&scenario.ir.instrs, backend)
        })
    }
}

/// The evloop backends whose traces can depend on descriptor numbers, which [`IsolatedRunner`]
/// runs in a child process numbered as the player is: all of evloop's real backends. select
/// scans ready fds by number from a random start in `[0, nfds)` (IR.md §7). On every backend, a
/// scenario that closes a descriptor its event still watches and then opens a socket relies
/// on the kernel giving the new socket the lowest free number, as it does in the player's
/// process. In `evconform`'s own process other worker threads open and close descriptors at
/// the same time (pipes to the children they start), so the new socket could get another
/// number and the event watch a closed descriptor instead (seed 3011202640 case 88615, poll:
/// `POLLNVAL` reported as READ).
pub const ISOLATED_BACKENDS: &[&str] = &["epoll", "poll", "select", "mio"];

/// Runs evloop's `select` backend in a child process that numbers its descriptors as the
/// libevent player does: the child (`evconform run-isolated`) closes every descriptor it
/// inherited before anything else, and evloop's select backend creates its signal pipe when it
/// is created, as libevent's `select_init` does. The scan of a `select()` call that reports
/// several descriptors then starts where libevent's does, so its traces are compared with the
/// select fixtures exactly ([`crate::compare::compare_strict`]), without NONDETERMINISM.md §1's
/// windows.
pub struct IsolatedRunner {
    exe: std::path::PathBuf,
    core_fault: Option<String>,
}

impl IsolatedRunner {
    /// A runner that starts `exe` (an `evconform` executable) for each scenario.
    pub fn new(exe: std::path::PathBuf) -> IsolatedRunner {
        IsolatedRunner {
            exe,
            core_fault: None,
        }
    }

    /// The same, with `--core-fault NAME` passed to the child (`evconform fuzz --core-fault`
    /// applies to the isolated runs too).
    pub fn with_core_fault(mut self, fault: Option<String>) -> IsolatedRunner {
        self.core_fault = fault;
        self
    }

    /// Runs the IR text `ir` on `backend` in the child; its trace.
    pub fn run_ir(&self, ir: &str, backend: &str) -> Result<String, String> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(&self.exe);
        cmd.args(["run-isolated", "--backend", backend]);
        if let Some(f) = &self.core_fault {
            cmd.args(["--core-fault", f]);
        }
        let mut child = crate::spawn::spawn(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let text = ir.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", self.exe.display()))?;
        let _ = writer.join();
        if out.status.success() {
            String::from_utf8(out.stdout).map_err(|e| format!("the trace is not UTF-8: {e}"))
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "the isolated {backend} run failed ({}): {}",
                out.status,
                err.trim_end()
            ))
        }
    }
}

impl Runner for IsolatedRunner {
    fn handles(&self, backend: &str) -> bool {
        ISOLATED_BACKENDS.contains(&backend)
    }
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String> {
        self.run_ir(&scenario.ir.to_text(), backend)
    }
    fn strict(&self, _backend: &str) -> bool {
        true
    }
}

/// The child side of [`IsolatedRunner`] (`evconform run-isolated`): closes the inherited
/// descriptors, then runs the IR text `ir` on `backend` in this process.
pub fn run_isolated_child(ir: &str, backend: &str) -> Result<String, String> {
    evloop::backend::sys::close_inherited_descriptors()
        .map_err(|e| format!("closing inherited descriptors: {e}"))?;
    let ir = crate::ir::Ir::parse(ir)?;
    run_scenario_on::<VirtualTime<AnyBackend>>(&ir.instrs, backend)
}
