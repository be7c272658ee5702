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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use evloop::{Base, Time};

use crate::faults::{Decision, FaultConfig};
use crate::trace::Trace;
use crate::world::Stats;
use crate::{Sim, SimBackend};

pub mod hello_world;
pub mod programs;
pub mod scenario;
pub mod stream;

/// The most simulated clients a run may ask for (`--clients`): far above what was tried
/// (10 000, 52 MB), far below what would exhaust memory (about 5 KB each).
pub const MAX_CLIENTS: usize = 100_000;

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
    /// The target's own options (`--param key=value`, see [`Target::params`]).
    pub params: BTreeMap<String, String>,
    /// Why these options cannot run (an unknown profile name): every run made with them fails
    /// with this message ([`RunOptions::sim`], [`RunReport::from_sim`]).
    pub error: Option<String>,
}

impl RunOptions {
    /// Seed `seed`, the named profile, 10 clients. An unknown profile name is not silently
    /// replaced: it is kept in [`RunOptions::error`] and every run made with these options
    /// fails with a message listing the known profiles (use [`RunOptions::try_new`] to get the
    /// error at once).
    ///
    /// ```
    /// use evloop_sim::targets::{hello_world::HelloWorld, RunOptions, Target};
    /// let report = HelloWorld.run(&RunOptions::new(1, "chaso"));
    /// assert!(report.failures[0].contains("unknown fault profile \"chaso\""));
    /// assert!(RunOptions::try_new(1, "chaos").is_ok());
    /// ```
    pub fn new(seed: u64, profile: &str) -> RunOptions {
        let (faults, error) = match FaultConfig::named(profile) {
            Ok(f) => (f, None),
            Err(e) => (FaultConfig::default(), Some(e)),
        };
        RunOptions {
            seed,
            profile: profile.to_owned(),
            faults,
            keep_trace: false,
            only: None,
            clients: 10,
            core_fault: None,
            params: BTreeMap::new(),
            error,
        }
    }

    /// Like [`RunOptions::new`], but an unknown profile name is an error that lists the known
    /// ones.
    pub fn try_new(seed: u64, profile: &str) -> Result<RunOptions, String> {
        let o = RunOptions::new(seed, profile);
        match o.error {
            Some(e) => Err(e),
            None => Ok(o),
        }
    }

    /// Sets the target's option `key` (see [`Target::params`]).
    pub fn with_param(mut self, key: &str, value: &str) -> RunOptions {
        self.params.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The target's option `key` as given, or its declared default.
    pub fn param<'a>(&'a self, target: &'a dyn Target, key: &str) -> Option<&'a str> {
        self.params.get(key).map(String::as_str).or_else(|| {
            target
                .params()
                .iter()
                .find(|p| p.name == key)
                .map(|p| p.default)
        })
    }

    /// The target's boolean option `key` (`true`/`1`/`yes`; absent: its default).
    pub fn flag(&self, target: &dyn Target, key: &str) -> bool {
        self.param(target, key)
            .is_some_and(|v| matches!(v, "true" | "1" | "yes" | "on"))
    }

    /// The options a run cannot honour (an unknown profile, too many clients), as an error.
    pub fn check(&self) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.clients > MAX_CLIENTS {
            return Err(format!(
                "{} clients: at most {MAX_CLIENTS} are supported",
                self.clients
            ));
        }
        Ok(())
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

    /// A [`Sim`] configured by these options; if they cannot run ([`RunOptions::check`]), the
    /// simulation starts with that failure recorded, so the report says why.
    pub fn sim(&self) -> Sim {
        let mut sim = Sim::with_config(&self.sim_config());
        if let Err(e) = self.check() {
            sim.fail(e);
        }
        sim
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
    /// The report of a finished simulation: its trace (taken out), faults, counters and end
    /// time; the failures are those the simulation recorded itself ([`Sim::failures`]: the
    /// scripted clients' broken expectations, invalid options) followed by `failures`.
    pub fn from_sim(sim: &mut Sim, failures: Vec<String>) -> RunReport {
        let mut all = sim.take_failures();
        all.extend(failures);
        RunReport {
            decisions: sim.take_decisions(),
            stats: sim.stats(),
            end: sim.now(),
            trace: sim.take_trace(),
            failures: all,
        }
    }

    /// True if no invariant was violated.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The class of the first failure ([`failure_class`]), if the run failed.
    pub fn signature(&self) -> Option<String> {
        self.failures.first().map(|f| failure_class(f))
    }
}

/// A failure message with its particulars blanked: digits become `N` and quoted text `"…"`, so
/// "client 3 received \"Hel\"" and "client 7 received \"H\"" are one class. Shrinking keeps a
/// run's failure in its class.
pub fn failure_class(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                chars.next();
            }
            out.push('N');
        } else if c == '"' {
            for d in chars.by_ref() {
                if d == '"' {
                    break;
                }
            }
            out.push_str("\"…\"");
        } else {
            out.push(c);
        }
    }
    out
}

/// The type of a target's own option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `true` or `false`.
    Bool,
    /// An unsigned integer.
    U64,
    /// Any text.
    Text,
}

/// One of a target's own options: `--param NAME=VALUE` on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// The key.
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
    /// The value when not given.
    pub default: &'static str,
    /// One line about it.
    pub about: &'static str,
}

impl Param {
    /// A boolean option, `false` unless given.
    pub const fn flag(name: &'static str, about: &'static str) -> Param {
        Param {
            name,
            kind: ParamKind::Bool,
            default: "false",
            about,
        }
    }

    /// Checks that `value` is of this option's type.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let ok = match self.kind {
            ParamKind::Bool => matches!(value, "true" | "false" | "1" | "0" | "yes" | "no"),
            ParamKind::U64 => value.parse::<u64>().is_ok(),
            ParamKind::Text => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "--param {}={value:?}: expected {}",
                self.name,
                match self.kind {
                    ParamKind::Bool => "true or false",
                    ParamKind::U64 => "an unsigned integer",
                    ParamKind::Text => "text",
                }
            ))
        }
    }
}

/// A program the simulator can run from a seed.
///
/// A target builds a [`Sim`] from the options ([`RunOptions::sim`]), runs it and checks its
/// invariants; [`crate::explore::cli_main`] turns a list of targets into an `evsim`.
///
/// ```
/// use evloop_sim::targets::{Param, ParamKind, RunOptions, RunReport, Target};
/// use evloop_sim::Sim;
///
/// struct Tick;
/// impl Target for Tick {
///     fn name(&self) -> &str { "tick" }
///     fn about(&self) -> &str { "one timer" }
///     fn params(&self) -> &[Param] {
///         &[Param { name: "late", kind: ParamKind::Bool, default: "false", about: "plant a bug" }]
///     }
///     fn run(&self, opts: &RunOptions) -> RunReport {
///         let mut sim = opts.sim();
///         let late = opts.flag(self, "late");
///         sim.add_host(|base| {
///             let t = base.timer_new(|_, _, _| {}).unwrap();
///             base.add(t, Some(std::time::Duration::from_millis(5))).unwrap();
///         });
///         sim.run_until_quiescent();
///         let mut failures = Vec::new();
///         if late || sim.now().as_micros() != 5_000 {
///             failures.push(format!("ended at {}us", sim.now().as_micros()));
///         }
///         RunReport::from_sim(&mut sim, failures)
///     }
/// }
/// assert!(Tick.run(&RunOptions::new(1, "none")).ok());
/// assert!(!Tick.run(&RunOptions::new(1, "none").with_param("late", "true")).ok());
/// ```
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
    /// Its own options (`--param NAME=VALUE`), shown by `evsim list`.
    fn params(&self) -> &[Param] {
        &[]
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

/// The one-line command that reproduces a run with the standard `evsim`.
pub fn command(target: &dyn Target, opts: &RunOptions) -> String {
    command_for(None, target, opts)
}

/// The one-line command that reproduces a run: with `program` (a custom `evsim`, as it was
/// invoked), or with the standard `evsim` through cargo if `None`.
pub fn command_for(program: Option<&str>, target: &dyn Target, opts: &RunOptions) -> String {
    let mut s = match program {
        Some(p) => format!("{p} run"),
        None => {
            let mut s = String::from("cargo run --release -p evloop-sim");
            if opts.core_fault.is_some() {
                s.push_str(" --features test-faults");
            }
            s.push_str(" --bin evsim -- run");
            s
        }
    };
    let _ = write!(
        s,
        " {} --seed {} --faults {}",
        target.name(),
        opts.seed,
        opts.profile
    );
    if target.uses_clients() {
        let _ = write!(s, " --clients {}", opts.clients);
    }
    for (k, v) in &opts.params {
        let _ = write!(s, " --param {k}={v}");
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
