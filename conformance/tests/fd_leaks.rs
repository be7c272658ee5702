//! Running generated scenarios must not leak descriptors in the evloop runner's process
//! (`evconform fuzz` runs thousands in one process; a leak ends in EMFILE or select's FD_SETSIZE).

use evloop_conformance::check::{Loaded, Runner};
use evloop_conformance::evloop_runner::{EvloopRunner, DEFAULT_BACKENDS};
use evloop_conformance::fuzz::case_scenario;
use evloop_conformance::ir;
use evloop_scenario::strategies::Config;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn generated_scenarios_release_every_descriptor() {
    for b in DEFAULT_BACKENDS {
        for k in 0..40 {
            let sc = case_scenario(&Config::all(), 11, k).unwrap();
            let l = Loaded {
                name: "leak".into(),
                path: "leak.scn".into(),
                ir: ir::lower(&sc),
                scenario: sc.clone(),
            };
            let before = open_fds();
            let _ = EvloopRunner.run(&l, b);
            let after = open_fds();
            assert!(
                after <= before,
                "{b}: case {k} leaked {} descriptor(s):\n{}",
                after - before,
                evloop_conformance::scenario::print(&sc)
            );
        }
    }
}
