//! Determinism, checked: every seed is run twice and the traces' rolling hashes compared.
//!
//! `EVSIM_DETERMINISM_SEEDS` sets the number of seeds per target (default 1000); a failing seed
//! is printed with the `evsim` command that shows where the two runs part.

use evloop_sim::targets::{self, command, RunOptions, Target};

fn seeds() -> u64 {
    std::env::var("EVSIM_DETERMINISM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn check(target: &dyn Target, profile: &str, clients: usize) {
    let n = seeds();
    let base = evloop_sim::seed_from_env(0);
    for seed in base..base + n {
        let mut opts = RunOptions::new(seed, profile);
        opts.clients = clients;
        let a = target.run(&opts);
        let b = target.run(&opts);
        assert!(
            a.trace.summary() == b.trace.summary(),
            "seed {seed}: two runs differ ({} vs {}); see where with:\n  {} --check-determinism",
            a.trace.summary(),
            b.trace.summary(),
            command(target, &opts)
        );
        assert!(!a.trace.is_empty(), "seed {seed}: empty trace");
    }
}

#[test]
fn hello_world_1000_seeds_twice_under_chaos() {
    check(&targets::hello_world::HelloWorld, "chaos", 3);
}

#[test]
fn programs_1000_seeds_twice_under_lossy() {
    check(&targets::programs::Programs, "lossy", 0);
}

#[test]
fn different_seeds_give_different_runs() {
    let t = targets::hello_world::HelloWorld;
    let a = t.run(&RunOptions::new(1, "chaos"));
    let b = t.run(&RunOptions::new(2, "chaos"));
    assert_ne!(a.trace.summary(), b.trace.summary());
}
