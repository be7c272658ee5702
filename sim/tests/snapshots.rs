//! insta snapshots of a few fixed seeds' traces: a change of simulated behaviour (the
//! simulator's model, the RNG's use) shows up here, and so does a change of the reactor's
//! ordering in what the ordering snapshots below exercise: the scan of the active queues by
//! priority, a non-persistent event running once per add, persistent timers staying on their
//! grid, and the timer heap's order of equal deadlines. (Each of those four was broken on
//! purpose and changed at least one snapshot; the random seeds above alone did not show them.)

use evloop_sim::targets::scenario::ScenarioTarget;
use evloop_sim::targets::{self, RunOptions, Target};

fn trace(target: &dyn Target, seed: u64, profile: &str, clients: usize) -> String {
    let mut o = RunOptions::new(seed, profile);
    o.keep_trace = true;
    o.clients = clients;
    let r = target.run(&o);
    assert!(r.ok(), "{:?}", r.failures);
    r.trace.text().expect("kept")
}

#[test]
fn hello_world_seed_42_two_clients() {
    insta::assert_snapshot!(trace(&targets::hello_world::HelloWorld, 42, "none", 2));
}

#[test]
fn hello_world_seed_7_three_clients_chaos() {
    insta::assert_snapshot!(trace(&targets::hello_world::HelloWorld, 7, "chaos", 3));
}

#[test]
fn programs_seed_3() {
    insta::assert_snapshot!(trace(&targets::programs::Programs, 3, "none", 0));
}

/// The trace of one conformance scenario (`conformance/scenarios/NAME.scn`) on the simulator,
/// seed 0, no faults.
fn scenario_trace(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/scenarios")
        .join(format!("{name}.scn"));
    let t = ScenarioTarget::load(&path, format!("scenario:{name}")).expect("scenario loads");
    trace(&t, 0, "none", 0)
}

#[test]
fn ordering_priority_queues() {
    insta::assert_snapshot!(scenario_trace("regress_priorities_n3"));
}

#[test]
fn ordering_nonpersistent_runs_once_per_add() {
    insta::assert_snapshot!(scenario_trace("regress_want_only_once"));
}

#[test]
fn ordering_persistent_timer_grid() {
    insta::assert_snapshot!(scenario_trace("persist_missed_deadlines"));
}

#[test]
fn ordering_heap_ties() {
    insta::assert_snapshot!(scenario_trace("timer_heap_ties_8"));
}
