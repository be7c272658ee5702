//! `evconform check` inside `cargo test`: every scenario of the corpus on every evloop backend
//! and on the simulator (the full default matrix of `evconform check`), compared with the
//! committed libevent fixtures. Needs no libevent, so it also guards machines
//! without it. Also shows that the gate can fail on a real evloop run: a fixture with one changed
//! line makes the comparison fail with a readable diff.

use std::fs;

use evloop_conformance::check::{self, Outcome};
use evloop_conformance::evloop_runner::{evloop_runner, DEFAULT_BACKENDS, SIM_BACKEND};
use evloop_conformance::{default_fixtures_dir, default_scenarios_dir, fixture};

/// The tests of this file run scenarios on real descriptors in this process: one at a time.
/// Some scenarios close a descriptor their event still watches and rely on its number staying
/// free, as it does in the libevent player's process. A run of another test thread that opened
/// a descriptor meanwhile took that number: `io_closed_fd_not_reused_by_signal_pipe` on select
/// then polled a valid descriptor instead of failing with `EBADF` (a CI run, 2026-11-30).
/// `evconform check` runs these backends in child processes of their own (`IsolatedRunner`).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn every_scenario_passes_on_every_evloop_backend_and_the_simulator() {
    let _serial = serial();
    let scenarios = check::load_dir(&default_scenarios_dir()).expect("the corpus parses");
    assert!(
        scenarios.len() >= 40,
        "corpus too small: {}",
        scenarios.len()
    );
    let runner = evloop_runner().expect("the evloop runner exists");
    let backends: Vec<String> = DEFAULT_BACKENDS.iter().map(|b| b.to_string()).collect();
    assert!(
        backends.iter().any(|b| b == SIM_BACKEND),
        "sim is a default column"
    );
    let m = check::run_matrix(
        &scenarios,
        &backends,
        runner.as_ref(),
        &default_fixtures_dir(),
    );
    assert_eq!(m.cells.len(), scenarios.len() * backends.len());
    assert!(m.all_pass(), "{}", m.render());
}

#[test]
fn a_changed_fixture_fails_an_evloop_run_with_a_diff() {
    let _serial = serial();
    let name = "timer_heap_ties_8";
    let scenarios = check::load_dir(&default_scenarios_dir()).expect("the corpus parses");
    let sc = scenarios
        .iter()
        .find(|s| s.name == name)
        .expect("scenario exists")
        .clone();
    let real = fixture::read(&fixture::path(
        &default_fixtures_dir(),
        name,
        "libevent-epoll",
    ))
    .expect("fixture exists");
    // Swap two adjacent callback lines: the heap tie order, the very thing the scenario pins.
    let lines: Vec<&str> = real.trace.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(" cb "))
        .expect("has callbacks");
    let j = i
        + 1
        + lines[i + 1..]
            .iter()
            .position(|l| l.contains(" cb "))
            .expect("two callbacks");
    let mut changed: Vec<&str> = lines.clone();
    changed.swap(i, j);
    let changed = changed.join("\n") + "\n";
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        fixture::path(dir.path(), name, "libevent-epoll"),
        fixture::render(name, "libevent-epoll", &changed),
    )
    .unwrap();
    let runner = evloop_runner().unwrap();
    let m = check::run_matrix(
        std::slice::from_ref(&sc),
        &["epoll".to_string(), "mio".to_string()],
        runner.as_ref(),
        dir.path(),
    );
    assert!(!m.all_pass());
    for c in &m.cells {
        match &c.outcome {
            Outcome::Fail(mm) => assert_eq!(mm.line, i + 1, "first differing line"),
            other => panic!("{}: expected a failure, got {other:?}", c.backend),
        }
    }
    let text = m.render();
    assert!(text.contains("(- libevent fixture, + epoll)"), "{text}");
    assert!(text.contains("first difference at line"), "{text}");
}

/// The `sim` column alone: every scenario on evloop-sim's `SimBackend` without faults, compared
/// with the epoll fixtures. It used to have one known difference (a client's `connect` to a
/// closed port of the same host was refused after the simulated network's delay instead of
/// inside the call, as on Linux loopback); the simulator now refuses inside `connect`.
#[test]
fn the_sim_column_passes_every_scenario() {
    let _serial = serial();
    let scenarios = check::load_dir(&default_scenarios_dir()).expect("the corpus parses");
    let runner = evloop_runner().expect("the evloop runner exists");
    let m = check::run_matrix(
        &scenarios,
        &[SIM_BACKEND.to_string()],
        runner.as_ref(),
        &default_fixtures_dir(),
    );
    assert!(m.all_pass(), "{}", m.render());
    assert_eq!(m.cells.len(), scenarios.len());
}
