//! The whole corpus on the portable mode of the mio backend (`MioBackend::portable`: mio's
//! edge-triggered registrations plus the user-space shadow of epoll's ready list, the mode of
//! every system but Linux), compared with the libevent epoll fixtures like the `mio` column of
//! `evconform check`, which on Linux runs the native mode (`MioBackend::new`). Without this test
//! the portable mode would only be checked against the epoll backend (`tests/mio_semantics.rs`),
//! never against real libevent's traces. A second test runs `evconform fuzz`'s generated cases
//! on both modes and compares their traces (the native mode is the one `fuzz --backend mio`
//! compares with libevent).

use evloop::backend::{AnyBackend, MioBackend, Resolution, VirtualTime};
use evloop_conformance::check::{self, Loaded, Runner};
use evloop_conformance::compare;
use evloop_conformance::evloop_runner::{run_scenario, run_scenario_with};
use evloop_conformance::ir::{self, Instr};
use evloop_conformance::{default_fixtures_dir, default_scenarios_dir, fuzz, scenario};
use evloop_scenario::strategies::Config;

/// The column name; [`check::fixture_backend`] compares it with `libevent-epoll`.
const COLUMN: &str = "mio-portable";

/// Runs scenarios on the portable mio backend, under the virtual clock, as the `mio` column does.
struct PortableMio;

impl Runner for PortableMio {
    fn handles(&self, backend: &str) -> bool {
        backend == COLUMN
    }
    fn run(&self, scenario: &Loaded, _backend: &str) -> Result<String, String> {
        run_portable(&scenario.ir.instrs)
    }
}

/// One lowered scenario on the portable mio backend: the trace.
fn run_portable(instrs: &[Instr]) -> Result<String, String> {
    run_scenario_with::<VirtualTime<AnyBackend>>(instrs, "mio", |precise| {
        let mio = MioBackend::portable()?;
        assert!(!mio.is_native());
        let mut vt = VirtualTime::new(AnyBackend::Mio(mio));
        if precise {
            // As the `mio` column: libevent's epoll waits in µs under PRECISE_TIMER.
            vt.set_resolution(Some(Resolution::Micros));
        }
        Ok(vt)
    })
}

/// Whether the two modes' traces of one scenario differ (both errors count as a trace).
fn modes_differ(instrs: &[Instr]) -> Option<String> {
    let native = run_scenario(instrs, "mio");
    let portable = run_portable(instrs);
    match (&native, &portable) {
        (Ok(a), Ok(b)) => compare::compare(a, b)
            .err()
            .map(|m| format!("{}: {:?} vs {:?}", m.reason, m.expected, m.actual)),
        _ if native == portable => None,
        _ => Some(format!("native {native:?}, portable {portable:?}")),
    }
}

/// Both tests run scenarios on real descriptors in this process: one at a time, so that no run
/// takes the number of a descriptor another run closed and still relies on (see
/// `evloop_check.rs`).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_scenario_passes_on_the_portable_mio_backend() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scenarios = check::load_dir(&default_scenarios_dir()).expect("the corpus parses");
    assert!(
        scenarios.len() >= 40,
        "corpus too small: {}",
        scenarios.len()
    );
    assert_eq!(check::fixture_backend(COLUMN), "libevent-epoll");
    let m = check::run_matrix(
        &scenarios,
        &[COLUMN.to_string()],
        &PortableMio,
        &default_fixtures_dir(),
    );
    assert_eq!(m.cells.len(), scenarios.len());
    assert!(m.all_pass(), "{}", m.render());
}

/// `evconform fuzz`'s cases (seed 7, every feature group) on both modes: the same trace. A
/// difference counts only if a second run of both modes shows the same difference, as in
/// `evconform fuzz` (cases with real TCP connections can differ in timing from run to run).
#[test]
fn fuzz_cases_trace_the_same_on_both_mio_modes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const SEED: u64 = 7;
    const CASES: u64 = 1000;
    let cfg = Config::all();
    let mut compared = 0;
    let mut unrepeated = 0;
    let mut confirmed = Vec::new();
    for k in 0..CASES {
        let sc = fuzz::case_scenario(&cfg, SEED, k).expect("the generator makes a case");
        if scenario::validate("case", &sc).is_err() {
            continue;
        }
        let instrs = ir::lower(&sc).instrs;
        compared += 1;
        if let Some(first) = modes_differ(&instrs) {
            match modes_differ(&instrs) {
                Some(second) if second == first => confirmed.push(format!("case {k}: {first}")),
                _ => unrepeated += 1,
            }
        }
    }
    assert!(
        compared >= CASES * 9 / 10,
        "only {compared} of {CASES} cases were valid scenarios"
    );
    assert!(
        unrepeated <= CASES / 20,
        "{unrepeated} cases differed once and not again: too many to call it timing"
    );
    assert!(
        confirmed.is_empty(),
        "the native and portable mio modes trace differently:\n{}",
        confirmed.join("\n")
    );
}
