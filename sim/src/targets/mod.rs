//! The programs `evsim` runs, and what they check.
//!
//! A [`Target`] runs one seeded simulation and returns a [`RunReport`]: the trace, the faults
//! injected, the counters, and the invariant violations found (none if the run is correct).
//! Built in: `hello-world` (the seed's server with simulated clients), `programs` (random event
//! programs: timers, priorities, activations, adds and deletes) and `stream` (bytes through
//! bufferevents over a faulty connection). Conformance scenarios are targets too, named on the
//! command line: `scenario:PATH` and `scenarios:DIR` ([`scenario`], through the
//! `evloop-scenario` crate). Other crates can add their own targets by passing them to
//! [`crate::explore::cli_main`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use evloop::{Base, Time};

use crate::faults::{Decision, FaultConfig};
use crate::trace::Trace;
use crate::world::Stats;
use crate::SimBackend;

pub mod hello_world;
pub mod programs;
pub mod scenario;
pub mod stream;

/// How to run a target once.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// The fault profile's name (for the reproduction command).
    pub profile: String,
    /// The faults.
    pub faults: FaultConfig,
    /// Keep the trace's text.
    pub keep_trace: bool,
    /// Only these fault decisions may inject (shrinking).
    pub only: Option<BTreeSet<u64>>,
    /// The number of simulated clients (hello-world, stream).
    pub clients: usize,
    /// A reactor invariant to break on purpose (`early-timers`, `priority-inversion`); needs
    /// the `test-faults` feature.
    pub core_fault: Option<String>,
}

impl RunOptions {
    /// Seed `seed`, the named profile (`none` if unknown), 10 clients.
    pub fn new(seed: u64, profile: &str) -> RunOptions {
        RunOptions {
            seed,
            profile: profile.to_owned(),
            faults: FaultConfig::profile(profile).unwrap_or_default(),
            keep_trace: false,
            only: None,
            clients: 10,
            core_fault: None,
        }
    }

    /// The simulator configuration these options describe.
    pub fn sim_config(&self) -> crate::SimConfig {
        crate::SimConfig {
            seed: self.seed,
            faults: self.faults.clone(),
            keep_trace: self.keep_trace,
            only: self.only.clone(),
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The trace.
    pub trace: Trace,
    /// The invariant violations (empty: the run is correct).
    pub failures: Vec<String>,
    /// The faults injected.
    pub decisions: Vec<Decision>,
    /// The run's counters.
    pub stats: Stats,
    /// The virtual time at the end.
    pub end: Time,
}

impl RunReport {
    /// True if no invariant was violated.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A program the simulator can run from a seed.
pub trait Target: Send + Sync {
    /// The name on the command line.
    fn name(&self) -> &str;
    /// One line about it.
    fn about(&self) -> &str;
    /// Runs it once.
    fn run(&self, opts: &RunOptions) -> RunReport;
    /// True if `--clients` means something to it.
    fn uses_clients(&self) -> bool {
        false
    }
}

/// The built-in targets.
pub fn builtin() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(hello_world::HelloWorld),
        Box::new(programs::Programs),
        Box::new(stream::Stream),
    ]
}

/// The one-line command that reproduces a run.
pub fn command(target: &dyn Target, opts: &RunOptions) -> String {
    let mut s = String::from("cargo run --release -p evloop-sim");
    if opts.core_fault.is_some() {
        s.push_str(" --features test-faults");
    }
    let _ = write!(
        s,
        " --bin evsim -- run {} --seed {} --faults {}",
        target.name(),
        opts.seed,
        opts.profile
    );
    if target.uses_clients() {
        let _ = write!(s, " --clients {}", opts.clients);
    }
    if let Some(f) = &opts.core_fault {
        let _ = write!(s, " --core-fault {f}");
    }
    if let Some(only) = &opts.only {
        let list: Vec<String> = only.iter().map(u64::to_string).collect();
        let _ = write!(
            s,
            " --only-faults {}",
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(",")
            }
        );
    }
    s
}

/// Applies `--core-fault` to a base. Without the `test-faults` feature any core fault is an
/// error, reported by [`check_core_fault`].
#[allow(unused_variables)]
pub fn apply_core_fault(base: &mut Base<SimBackend>, fault: Option<&str>) {
    #[cfg(feature = "test-faults")]
    {
        use std::time::Duration;
        let f = match fault {
            Some("early-timers") => Some(evloop::CoreFault::EarlyTimers(Duration::from_millis(1))),
            Some("priority-inversion") => Some(evloop::CoreFault::PriorityInversion),
            _ => None,
        };
        base.set_fault_injection(f);
    }
}

/// The core faults `--core-fault` accepts.
pub const CORE_FAULTS: &[&str] = &["early-timers", "priority-inversion"];

/// Checks that `--core-fault` can be honoured in this build.
pub fn check_core_fault(fault: Option<&str>) -> Result<(), String> {
    let Some(f) = fault else {
        return Ok(());
    };
    if !CORE_FAULTS.contains(&f) {
        return Err(format!(
            "unknown core fault {f:?} (expected one of {CORE_FAULTS:?})"
        ));
    }
    if cfg!(feature = "test-faults") {
        Ok(())
    } else {
        Err("--core-fault needs a build with `--features test-faults`".to_owned())
    }
}

/// Checks, inside a callback of priority `pri`, that no more urgent callback is active (within
/// one processing pass libevent never runs a less urgent callback before a more urgent active
/// one). Returns the violation, if any.
pub fn check_priority<B: evloop::Backend>(
    base: &Base<B>,
    pri: usize,
    what: &str,
) -> Option<String> {
    match base.first_active_priority() {
        Some(p) if p < pri => Some(format!(
            "{what} (priority {pri}) ran while a callback of priority {p} was active"
        )),
        _ => None,
    }
}
