//! insta snapshots of a few fixed seeds' traces: any change of simulated behaviour (the
//! reactor's ordering, the simulator's model, the RNG's use) shows up here.

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
