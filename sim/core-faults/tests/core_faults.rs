//! The explorer catches a reactor that breaks an invariant: with evloop's test-only switch
//! (`test-faults`, turned on by this crate's dev-dependency) `explore` finds failing seeds, and
//! re-running a printed seed reproduces the failure. `cargo test --workspace --release` runs it.

use evloop_sim::explore::explore;
use evloop_sim::targets::{builtin, command, RunOptions};

fn caught(target: &str, fault: &str, faults: &str) {
    let targets = builtin();
    let t = targets
        .iter()
        .find(|t| t.name() == target)
        .expect("builtin target");
    let mut opts = RunOptions::new(0, faults);
    opts.core_fault = Some(fault.to_string());
    let failed = explore(t.as_ref(), &opts, 0..300, 2, false, |_| {});
    assert!(
        !failed.is_empty(),
        "{target} with {fault}: explore found no failing seed in 0..300"
    );
    // The same seed, run alone with the options the printed command names, fails again.
    let first = &failed[0];
    let mut again = opts.clone();
    again.seed = first.seed;
    let cmd = command(t.as_ref(), &again);
    assert!(
        cmd.contains("--features test-faults")
            && cmd.contains(&format!("--core-fault {fault}"))
            && cmd.contains(&format!("--seed {}", first.seed)),
        "{cmd}"
    );
    let report = t.run(&again);
    assert!(
        !report.failures.is_empty(),
        "seed {} did not reproduce: {cmd}",
        first.seed
    );
    assert_eq!(report.failures, first.failures, "same failure: {cmd}");
    // And without the switch the same seed passes.
    let mut healthy = again.clone();
    healthy.core_fault = None;
    assert!(
        t.run(&healthy).failures.is_empty(),
        "{target} seed {}",
        first.seed
    );
}

#[test]
fn early_timers_are_caught_in_hello_world() {
    caught("hello-world", "early-timers", "none");
}

#[test]
fn priority_inversion_is_caught_in_programs() {
    caught("programs", "priority-inversion", "none");
}
