//! Running scenarios on backends and comparing with fixtures: the runner extension point, the
//! scenario × backend matrix, failure reports and JUnit output.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::compare::{self, Mismatch};
use crate::fixture;
use crate::ir::{self, Ir};
use crate::player::Player;
use crate::scenario::{self, Scenario};

/// A scenario file, parsed and lowered.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The file stem (the fixture name).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The AST.
    pub scenario: Scenario,
    /// The lowered program.
    pub ir: Ir,
}

/// Loads one scenario file (errors as `file:line:column: message`).
pub fn load(path: &Path) -> Result<Loaded, String> {
    let src = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let display = path.display().to_string();
    let sc = scenario::parse(&display, &src).map_err(|e| e.to_string())?;
    let ir = ir::lower(&sc);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Loaded {
        name,
        path: path.to_path_buf(),
        scenario: sc,
        ir,
    })
}

/// Loads every `*.scn` in `dir`, sorted by name. All errors are returned together.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, Vec<String>> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "scn"))
            .collect(),
        Err(e) => return Err(vec![format!("{}: {e}", dir.display())]),
    };
    paths.sort();
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for p in paths {
        match load(&p) {
            Ok(l) => ok.push(l),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(ok)
    } else {
        Err(errs)
    }
}

/// Something that runs a scenario on a backend and returns its trace. The player implements
/// it for `libevent-*`; the evloop runner (see [`crate::evloop_runner`]) for evloop backends.
pub trait Runner {
    /// True if this runner knows `backend`.
    fn handles(&self, backend: &str) -> bool;
    /// Runs `scenario` on `backend`; the trace as TRACE.md specifies.
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String>;
    /// True if this runner's `backend` traces are compared with the fixtures without
    /// NONDETERMINISM.md §1's select windows ([`compare::compare_strict`]): its process numbers
    /// descriptors as the player's does. False by default.
    fn strict(&self, _backend: &str) -> bool {
        false
    }
}

/// Runs scenarios on real libevent: backends `libevent-epoll`, `libevent-poll`, `libevent-select`.
pub struct PlayerRunner {
    player: Player,
}

impl PlayerRunner {
    /// Builds the player.
    pub fn new() -> Result<PlayerRunner, String> {
        Ok(PlayerRunner {
            player: Player::build()?,
        })
    }
    /// The compiled player.
    pub fn player(&self) -> &Player {
        &self.player
    }
}

impl Runner for PlayerRunner {
    fn handles(&self, backend: &str) -> bool {
        libevent_method(backend).is_some()
    }
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String> {
        let method =
            libevent_method(backend).ok_or_else(|| format!("not a libevent backend: {backend}"))?;
        self.player.run(method, &scenario.ir.to_text())
    }
}

/// `libevent-epoll` → `epoll`, …
pub fn libevent_method(backend: &str) -> Option<&'static str> {
    fixture::LIBEVENT_METHODS
        .iter()
        .copied()
        .find(|m| backend.strip_prefix("libevent-") == Some(m))
}

/// The fixture a backend is compared with: `epoll`/`poll`/`select` with libevent's method of the
/// same name, every other evloop backend (mio, sim) with epoll's, `libevent-X` with itself and
/// `capi-X` (the player on evloop's C ABI) with `libevent-X`.
pub fn fixture_backend(backend: &str) -> String {
    if libevent_method(backend).is_some() {
        backend.to_string()
    } else if let Some(m) = crate::capi::capi_method(backend) {
        format!("libevent-{m}")
    } else if fixture::LIBEVENT_METHODS.contains(&backend) {
        format!("libevent-{backend}")
    } else {
        "libevent-epoll".to_string()
    }
}

/// Tries runners in order; the first that handles a backend runs it.
pub struct Dispatch(pub Vec<Box<dyn Runner>>);

impl Runner for Dispatch {
    fn handles(&self, backend: &str) -> bool {
        self.0.iter().any(|r| r.handles(backend))
    }
    fn run(&self, scenario: &Loaded, backend: &str) -> Result<String, String> {
        match self.0.iter().find(|r| r.handles(backend)) {
            Some(r) => r.run(scenario, backend),
            None => Err(format!("no runner for backend '{backend}'")),
        }
    }
    fn strict(&self, backend: &str) -> bool {
        self.0
            .iter()
            .find(|r| r.handles(backend))
            .is_some_and(|r| r.strict(backend))
    }
}

/// The result of one scenario on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The trace matches the fixture.
    Pass,
    /// The trace differs.
    Fail(Mismatch),
    /// No fixture to compare with.
    MissingFixture(String),
    /// The run itself failed.
    Error(String),
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Scenario name.
    pub scenario: String,
    /// Backend name.
    pub backend: String,
    /// The fixture compared with.
    pub fixture: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Scenario × backend results.
#[derive(Clone, Debug, Default)]
pub struct Matrix {
    /// Scenario names, in order.
    pub scenarios: Vec<String>,
    /// Backend names, in order.
    pub backends: Vec<String>,
    /// Row-major cells.
    pub cells: Vec<Cell>,
}

/// Compares one trace with its fixture file (select windows relaxed, NONDETERMINISM.md §1).
pub fn check_one(trace: &str, fixture_path: &Path) -> Outcome {
    check_one_with(trace, fixture_path, false)
}

/// [`check_one`]; with `strict`, exactly ([`compare::compare_strict`]).
pub fn check_one_with(trace: &str, fixture_path: &Path, strict: bool) -> Outcome {
    if !fixture_path.exists() {
        return Outcome::MissingFixture(format!(
            "{} does not exist (run `evconform record`)",
            fixture_path.display()
        ));
    }
    match fixture::read(fixture_path) {
        Ok(f) => match if strict {
            compare::compare_strict(&f.trace, trace)
        } else {
            compare::compare(&f.trace, trace)
        } {
            Ok(()) => Outcome::Pass,
            Err(m) => Outcome::Fail(m),
        },
        Err(e) => Outcome::Error(e),
    }
}

/// Runs every scenario on every backend and compares with the fixtures in `fixtures`.
pub fn run_matrix(
    scenarios: &[Loaded],
    backends: &[String],
    runner: &dyn Runner,
    fixtures: &Path,
) -> Matrix {
    let mut m = Matrix {
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        backends: backends.to_vec(),
        cells: Vec::new(),
    };
    for sc in scenarios {
        for b in backends {
            let fx = fixture_backend(b);
            let outcome = match runner.run(sc, b) {
                Ok(trace) => check_one_with(
                    &trace,
                    &fixture::path(fixtures, &sc.name, &fx),
                    runner.strict(b),
                ),
                Err(e) => Outcome::Error(e),
            };
            m.cells.push(Cell {
                scenario: sc.name.clone(),
                backend: b.clone(),
                fixture: fx,
                outcome,
            });
        }
    }
    m
}

impl Matrix {
    /// True if every cell passed and something was compared: zero scenarios, or a backend
    /// whose column compared nothing, is a failure, not a silent pass.
    pub fn all_pass(&self) -> bool {
        self.vacuous().is_empty() && self.cells.iter().all(|c| c.outcome == Outcome::Pass)
    }

    /// Why the matrix proves nothing: no scenario, no backend, or a backend column without a
    /// single comparison with a fixture (a pass or a difference). Empty if it is not vacuous.
    pub fn vacuous(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.scenarios.is_empty() {
            why.push("error: no scenarios: nothing was compared".to_string());
        }
        if self.backends.is_empty() {
            why.push("error: no backends: nothing was compared".to_string());
        }
        for b in &self.backends {
            let compared = self
                .cells
                .iter()
                .filter(|c| {
                    &c.backend == b && matches!(c.outcome, Outcome::Pass | Outcome::Fail(_))
                })
                .count();
            if compared == 0 {
                why.push(format!(
                    "error: backend {b}: zero comparisons with a fixture"
                ));
            }
        }
        why
    }

    /// The cells that did not pass.
    pub fn failures(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| c.outcome != Outcome::Pass)
    }

    /// The table, a summary line, then every failure with its first differing line.
    pub fn render(&self) -> String {
        let w = self
            .scenarios
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let widths: Vec<usize> = self.backends.iter().map(|b| b.len().max(7)).collect();
        let mut out = String::new();
        let _ = write!(out, "{:w$}", "scenario");
        for (b, bw) in self.backends.iter().zip(&widths) {
            let _ = write!(out, "  {b:>bw$}");
        }
        out.push('\n');
        for (r, s) in self.scenarios.iter().enumerate() {
            let _ = write!(out, "{s:w$}");
            for (c, bw) in widths.iter().enumerate() {
                let cell = &self.cells[r * self.backends.len() + c];
                let mark = match cell.outcome {
                    Outcome::Pass => "ok",
                    Outcome::Fail(_) => "FAIL",
                    Outcome::MissingFixture(_) => "MISSING",
                    Outcome::Error(_) => "ERROR",
                };
                let _ = write!(out, "  {mark:>bw$}");
            }
            out.push('\n');
        }
        let failed = self.failures().count();
        let _ = writeln!(
            out,
            "{} scenarios x {} backends: {} passed, {failed} failed",
            self.scenarios.len(),
            self.backends.len(),
            self.cells.len() - failed
        );
        for why in self.vacuous() {
            let _ = writeln!(out, "{why}");
        }
        for c in self.failures() {
            let _ = writeln!(
                out,
                "\n== {} on {} (fixture {}@{}.snap)",
                c.scenario, c.backend, c.scenario, c.fixture
            );
            match &c.outcome {
                Outcome::Fail(m) => {
                    let _ = writeln!(out, "{m}\n   (- libevent fixture, + {})", c.backend);
                }
                Outcome::MissingFixture(e) | Outcome::Error(e) => {
                    let _ = writeln!(out, "{e}");
                }
                Outcome::Pass => {}
            }
        }
        out
    }

    /// JUnit XML: one testsuite per backend, one testcase per scenario.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total_fail = self
            .cells
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_) | Outcome::MissingFixture(_)))
            .count();
        let total_err = self
            .cells
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Error(_)))
            .count();
        let _ = writeln!(
            out,
            "<testsuites name=\"evconform\" tests=\"{}\" failures=\"{total_fail}\" errors=\"{total_err}\">",
            self.cells.len()
        );
        for (bi, b) in self.backends.iter().enumerate() {
            let cells: Vec<&Cell> = self
                .cells
                .iter()
                .skip(bi)
                .step_by(self.backends.len().max(1))
                .collect();
            let f = cells
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Fail(_) | Outcome::MissingFixture(_)))
                .count();
            let e = cells
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Error(_)))
                .count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\">",
                xml(b),
                cells.len()
            );
            for c in cells {
                let _ = write!(
                    out,
                    "    <testcase classname=\"evconform.{}\" name=\"{}\"",
                    xml(b),
                    xml(&c.scenario)
                );
                match &c.outcome {
                    Outcome::Pass => out.push_str("/>\n"),
                    Outcome::Fail(m) => {
                        let _ = write!(
                            out,
                            ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                            xml(&format!(
                                "differs from {}@{}.snap at line {}",
                                c.scenario, c.fixture, m.line
                            )),
                            xml(&m.to_string())
                        );
                    }
                    Outcome::MissingFixture(e) => {
                        let _ = write!(
                            out,
                            ">\n      <failure message=\"missing fixture\">{}</failure>\n    </testcase>\n",
                            xml(e)
                        );
                    }
                    Outcome::Error(e) => {
                        let _ = write!(
                            out,
                            ">\n      <error message=\"run failed\">{}</error>\n    </testcase>\n",
                            xml(e)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}
