//! Conformance scenarios as `evsim` targets, and the simulator as a scenario host.
//!
//! [`SimBackend`] implements `evloop_scenario`'s `ScenarioHost`, so the conformance interpreter
//! runs any scenario (`conformance/scenarios/*.scn`) on one standalone simulated host: that is
//! the `sim` column of `evconform check` (seed 0, no faults, compared with the epoll fixtures)
//! and the `scenario:` targets here, which run it with any seed and fault profile.
//!
//! - `scenario:PATH` (or `scenario:NAME`, a file of `conformance/scenarios/`): one scenario.
//! - `scenarios:DIR`: every `*.scn` of `DIR`, one target each (sorted by name).
//!
//! A scenario target's run passes when:
//! - the run completes (no interpreter error, no runaway of more than 100 000 callbacks, no
//!   livelock of the simulated host);
//! - it is deterministic: the target runs the seed twice and compares the traces' hashes;
//! - inside every event callback no more urgent callback is active (the reactor invariant the
//!   other targets check; signal events are exempt, as their `ncalls` repetitions run in a row);
//! - without faults (profile `none`): its trace is the same for every seed (equal to seed 0's)
//!   and, if a fixture `NAME@libevent-epoll.snap` lies in a `fixtures/` directory beside or
//!   above the scenario's directory, equal to that fixture's trace.
//!
//! The report's trace is the scenario's trace (TRACE.md) followed by one `# sim world …` line
//! with the hash and length of the simulated world's own trace.

use std::cell::RefCell;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use evloop::backend::{Environment, Resolution};
use evloop::{Backend, Base, EventId, Events, Fd, Time};
use evloop_scenario::ir::{self, Instr};
use evloop_scenario::runner::{self, OutsideWorld, ScenarioHost, SIM_BACKEND};
use evloop_scenario::scenario;

use super::{check_priority, RunOptions, RunReport, Target};
use crate::trace::Trace;
use crate::SimBackend;

impl OutsideWorld for SimBackend {
    /// A simulated client socket connecting to `addr` as the player's blocking `connect` does:
    /// refused inside the call when nobody listens on the port (of this host), as over Linux
    /// loopback; otherwise the connection reaches the listener's accept queue after the
    /// network's delay instead of inside the call.
    fn connect_client(&mut self, addr: SocketAddr) -> io::Result<Fd> {
        self.connect_blocking(addr)
    }
}

impl ScenarioHost for SimBackend {
    type Inner = SimBackend;
    const PROCESS_SIGNALS: bool = false;
    fn open(name: &str, precise_timer: bool) -> io::Result<Self> {
        if name != SIM_BACKEND {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown simulator backend {name:?}"),
            ));
        }
        let mut b = SimBackend::new(0);
        b.set_resolution(precise_timer.then_some(Resolution::Micros));
        Ok(b)
    }
    fn advance(&mut self, d: Duration) {
        SimBackend::advance(self, d)
    }
    fn set_inputs(&mut self, env: Box<dyn Environment<SimBackend>>) {
        self.set_environment(env)
    }
    fn method_name(_: &str) -> &'static str {
        "epoll"
    }
    fn on_event_callback(base: &mut Base<Self>, ev: EventId, what: Events) {
        base.backend_mut().count_callback();
        if what.contains(Events::SIGNAL) {
            return;
        }
        let Ok(pri) = base.priority(ev) else {
            return;
        };
        if let Some(v) = check_priority(base, pri, &format!("event {ev:?}")) {
            let now = base.backend_mut().now();
            VIOLATIONS.with(|x| x.borrow_mut().push(format!("{}us: {v}", now.as_micros())));
        }
    }
}

thread_local! {
    /// Invariant violations found by the callback hook during the current run on this thread.
    static VIOLATIONS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The fixture a scenario's no-fault trace must equal, if one lies beside it.
const FIXTURE_BACKEND: &str = "libevent-epoll";

/// One conformance scenario as a target.
pub struct ScenarioTarget {
    name: String,
    stem: String,
    instrs: Vec<Instr>,
    fixture: Option<(PathBuf, String)>,
    reference: OnceLock<Result<String, String>>,
}

/// What one run of a scenario on the simulator gave.
struct Once {
    result: Result<String, String>,
    world: crate::TraceSummary,
    report: RunReport,
}

impl ScenarioTarget {
    /// Loads a scenario file (`name` is what the command line calls it: `scenario:PATH`).
    pub fn load(path: &Path, name: String) -> Result<ScenarioTarget, String> {
        let src = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sc = scenario::parse(&path.display().to_string(), &src).map_err(|e| e.to_string())?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fixture = find_fixture(path, &stem)?;
        Ok(ScenarioTarget {
            name,
            stem,
            instrs: ir::lower(&sc).instrs,
            fixture,
            reference: OnceLock::new(),
        })
    }

    /// The scenario's name (its file stem).
    pub fn scenario(&self) -> &str {
        &self.stem
    }

    /// The trace of the fixture it is compared with without faults, if any.
    pub fn fixture(&self) -> Option<&Path> {
        self.fixture.as_ref().map(|f| f.0.as_path())
    }

    fn run_once(&self, opts: &RunOptions, keep: bool) -> Once {
        let mut cfg = opts.sim_config();
        cfg.keep_trace = false;
        let mut probe: Option<SimBackend> = None;
        VIOLATIONS.with(|v| v.borrow_mut().clear());
        let result = runner::run_scenario_with(&self.instrs, SIM_BACKEND, |precise| {
            let mut b = SimBackend::standalone(&cfg);
            b.set_resolution(precise.then_some(Resolution::Micros));
            probe = Some(b.another_handle());
            Ok(b)
        });
        let failures = VIOLATIONS.with(|v| std::mem::take(&mut *v.borrow_mut()));
        let mut trace = Trace::new(keep);
        let text = match &result {
            Ok(t) => t.clone(),
            Err(e) => format!("# run failed: {e}\n"),
        };
        for l in text.lines() {
            trace.line(l);
        }
        let (world, decisions, stats, end) = match &probe {
            Some(p) => (p.trace_summary(), p.decisions(), p.stats(), p.clock()),
            None => (
                Trace::new(false).summary(),
                Vec::new(),
                Default::default(),
                Time::ZERO,
            ),
        };
        trace.line(&format!("# sim world {world}"));
        Once {
            result,
            world,
            report: RunReport {
                trace,
                failures,
                decisions,
                stats,
                end,
            },
        }
    }

    /// Seed 0 without faults: what every no-fault seed must print.
    fn reference(&self) -> &Result<String, String> {
        self.reference.get_or_init(|| {
            let opts = RunOptions::new(0, "none");
            self.run_once(&opts, false).result
        })
    }
}

impl Target for ScenarioTarget {
    fn name(&self) -> &str {
        &self.name
    }
    fn about(&self) -> &str {
        "a conformance scenario on one simulated host"
    }
    fn run(&self, opts: &RunOptions) -> RunReport {
        let a = self.run_once(opts, opts.keep_trace);
        let b = self.run_once(opts, false);
        let mut report = a.report;
        if let Err(e) = opts.check() {
            report.failures.insert(0, e);
        }
        match &a.result {
            Err(e) => report.failures.insert(0, format!("run failed: {e}")),
            Ok(text) => {
                if opts.faults.is_none() {
                    if let Ok(reference) = self.reference() {
                        if let Some(d) = first_difference(reference, text) {
                            report
                                .failures
                                .push(format!("the trace differs from seed 0's: {d}"));
                        }
                    }
                    if let Some((path, expected)) = &self.fixture {
                        if let Some(d) = first_difference(expected, text) {
                            report
                                .failures
                                .push(format!("the trace differs from {}: {d}", path.display()));
                        }
                    }
                }
            }
        }
        if a.result != b.result || a.world != b.world {
            report.failures.push(format!(
                "nondeterministic: the same seed gave two traces ({} vs {})",
                report.trace.summary(),
                b.report.trace.summary()
            ));
        }
        report
    }
}

/// The first line where `expected` and `actual` differ (1-based), shown as `- expected` and
/// `+ actual`; `None` if they are equal (trailing whitespace aside).
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    let e: Vec<&str> = expected.trim_end().lines().collect();
    let a: Vec<&str> = actual.trim_end().lines().collect();
    let n = e.len().max(a.len());
    (0..n).find_map(|i| {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        (x != y).then(|| {
            format!(
                "line {}: - {} / + {}",
                i + 1,
                x.unwrap_or("(end of trace)"),
                y.unwrap_or("(end of trace)")
            )
        })
    })
}

/// `fixtures/STEM@libevent-epoll.snap` in the scenario's directory, its parent or grandparent
/// (the first `fixtures/` directory found); its trace is what follows the `---` header.
fn find_fixture(path: &Path, stem: &str) -> Result<Option<(PathBuf, String)>, String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for up in [
        dir.join("fixtures"),
        dir.join("../fixtures"),
        dir.join("../../fixtures"),
    ] {
        if !up.is_dir() {
            continue;
        }
        let f = up.join(format!("{stem}@{FIXTURE_BACKEND}.snap"));
        if !f.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        return Ok(Some((f.clone(), snapshot_body(&text))));
    }
    Ok(None)
}

/// The contents of an insta snapshot: what follows the `---` … `---` header.
fn snapshot_body(text: &str) -> String {
    match text
        .strip_prefix("---\n")
        .and_then(|rest| rest.find("\n---\n").map(|i| &rest[i + 5..]))
    {
        Some(body) => body.trim_end().to_owned(),
        None => text.trim_end().to_owned(),
    }
}

/// The conformance corpus of this checkout (`conformance/scenarios`).
pub fn default_scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/scenarios")
}

/// The targets a command-line name stands for, if it is a scenario name: `scenario:PATH`
/// (a `.scn` file, or a bare name of the default corpus) or `scenarios:DIR` (every `*.scn` of
/// `DIR`, sorted). `None` if `name` is neither.
pub fn resolve(name: &str) -> Option<Result<Vec<Box<dyn Target>>, String>> {
    if let Some(p) = name.strip_prefix("scenario:") {
        let mut path = PathBuf::from(p);
        if !path.exists() && !p.contains('/') {
            let stem = p.strip_suffix(".scn").unwrap_or(p);
            path = default_scenarios_dir().join(format!("{stem}.scn"));
        }
        return Some(
            ScenarioTarget::load(&path, name.to_owned())
                .map(|t| vec![Box::new(t) as Box<dyn Target>]),
        );
    }
    let dir = name.strip_prefix("scenarios:")?;
    Some(load_dir(Path::new(dir)))
}

/// One target per `*.scn` of `dir`, sorted by file name, each named `scenario:DIR/FILE`.
pub fn load_dir(dir: &Path) -> Result<Vec<Box<dyn Target>>, String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no *.scn file", dir.display()));
    }
    let mut out: Vec<Box<dyn Target>> = Vec::new();
    let mut errs = Vec::new();
    for p in paths {
        let name = format!("scenario:{}", p.display());
        match ScenarioTarget::load(&p, name) {
            Ok(t) => out.push(Box::new(t)),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_body_is_what_follows_the_header() {
        let t = "---\nsource: x\nexpression: libevent-epoll\n---\n# evloop-trace v1\n0 end\n";
        assert_eq!(snapshot_body(t), "# evloop-trace v1\n0 end");
        assert_eq!(first_difference("a\nb\n", "a\nb"), None);
        assert_eq!(
            first_difference("a\nb", "a\nc").as_deref(),
            Some("line 2: - b / + c")
        );
    }
}
