//! Properties over random event programs, fault configurations and seeds (proptest).
//!
//! - within one processing pass no less urgent callback runs before a more urgent active one;
//! - a non-persistent event runs at most once per add;
//! - no timer fires before its deadline and none is lost;
//! - every byte written through a bufferevent is read exactly once and in order unless a fault
//!   says otherwise;
//! - every connection ends in exactly one terminal event.
//!
//! A failure prints the seed, the program or fault configuration, and the `evsim` command that
//! replays the nearest built-in run. `PROPTEST_CASES` scales the number of cases.

use evloop_sim::strategies::{fault_config, program};
use evloop_sim::targets::programs::run_program;
use evloop_sim::targets::{self, command, RunOptions, Target};
use evloop_sim::{FaultConfig, SimConfig};
use proptest::prelude::*;

fn report(
    target: &dyn Target,
    seed: u64,
    faults: &FaultConfig,
    clients: usize,
) -> Result<(), TestCaseError> {
    let mut opts = RunOptions::new(seed, "none");
    opts.faults = faults.clone();
    opts.clients = clients;
    let r = target.run(&opts);
    prop_assert!(
        r.ok(),
        "seed {seed}: {:?}\nfaults: {faults:?}\nreplay the seed with a built-in profile: {} (or --faults chaos)",
        r.failures.iter().take(5).collect::<Vec<_>>(),
        command(target, &opts)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random programs under random faults: priorities, once-per-add, timers on time and never
    /// lost.
    #[test]
    fn programs_keep_the_reactor_invariants(p in program(), faults in fault_config(), seed in any::<u64>()) {
        let cfg = SimConfig { seed, faults: faults.clone(), keep_trace: false, only: None };
        let r = run_program(&p, &cfg, None);
        prop_assert!(r.ok(), "seed {seed}: {:?}\nprogram: {p:?}\nfaults: {faults:?}", r.failures.iter().take(5).collect::<Vec<_>>());
    }

    /// A program's trace is a function of (program, faults, seed).
    #[test]
    fn programs_are_deterministic(p in program(), faults in fault_config(), seed in any::<u64>()) {
        let cfg = SimConfig { seed, faults, keep_trace: false, only: None };
        let a = run_program(&p, &cfg, None);
        let b = run_program(&p, &cfg, None);
        prop_assert_eq!(a.trace.summary(), b.trace.summary());
    }

    /// Bytes through bufferevents over faulty connections: once, in order; one terminal event
    /// per connection on each side.
    #[test]
    fn stream_bytes_exactly_once_in_order(faults in fault_config(), seed in any::<u64>()) {
        report(&targets::stream::Stream, seed, &faults, 3)?;
    }

    /// The seed's server under random faults: every client gets the message then EOF unless a
    /// fault explains otherwise; one terminal event per connection.
    #[test]
    fn hello_world_under_random_faults(faults in fault_config(), seed in any::<u64>()) {
        report(&targets::hello_world::HelloWorld, seed, &faults, 8)?;
    }
}

/// One seed from `EVSIM_SEED` (or 42) through every built-in target and profile.
#[test]
fn env_seed_through_every_target_and_profile() {
    let seed = evloop_sim::seed_from_env(42);
    for t in targets::builtin() {
        for p in evloop_sim::PROFILES {
            let mut o = RunOptions::new(seed, p);
            o.clients = 5;
            let r = t.run(&o);
            assert!(
                r.ok(),
                "EVSIM_SEED={seed}: {:?}\n  reproduce: {}",
                r.failures,
                command(t.as_ref(), &o)
            );
        }
    }
}
