//! The whole corpus on the portable mode of the mio backend (`MioBackend::portable`: mio's
//! edge-triggered registrations plus the user-space shadow of epoll's ready list, the mode of
//! every system but Linux), compared with the libevent epoll fixtures like the `mio` column of
//! `evconform check`, which on Linux runs the native mode (`MioBackend::new`). Without this test
//! the portable mode would only be checked against the epoll backend (`tests/mio_semantics.rs`),
//! never against real libevent's traces.

use evloop::backend::{AnyBackend, MioBackend, Resolution, VirtualTime};
use evloop_conformance::check::{self, Loaded, Runner};
use evloop_conformance::evloop_runner::run_scenario_with;
use evloop_conformance::{default_fixtures_dir, default_scenarios_dir};

/// The column name; [`check::fixture_backend`] compares it with `libevent-epoll`.
const COLUMN: &str = "mio-portable";

/// Runs scenarios on the portable mio backend, under the virtual clock, as the `mio` column does.
struct PortableMio;

impl Runner for PortableMio {
    fn handles(&self, backend: &str) -> bool {
        backend == COLUMN
    }
    fn run(&self, scenario: &Loaded, _backend: &str) -> Result<String, String> {
        run_scenario_with::<VirtualTime<AnyBackend>>(&scenario.ir.instrs, "mio", |precise| {
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
}

#[test]
fn every_scenario_passes_on_the_portable_mio_backend() {
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
