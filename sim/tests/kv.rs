//! The worked example's tests: the harness (examples/kv/harness.rs) under random fault
//! configurations, and one seed (`EVSIM_SEED`) of every profile, replayed twice.

#[path = "../examples/kv/harness.rs"]
mod harness;
#[path = "../examples/kv/server.rs"]
mod server;

use evloop_sim::targets::{RunOptions, Target};
use evloop_sim::{explore::check_determinism, seed_from_env, strategies::fault_config, PROFILES};
use harness::Kv;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The correct server passes under any fault configuration.
    #[test]
    fn kv_holds_under_random_faults(faults in fault_config(), seed in any::<u64>()) {
        let mut opts = RunOptions::new(seed, "none");
        opts.faults = faults;
        let r = Kv.run(&opts);
        prop_assert!(r.ok(), "seed {seed}: {:#?}\nconfig {:?}", r.failures, opts.faults);
    }
}

/// `EVSIM_SEED=N cargo test -p evloop-sim --test kv` replays one seed of every profile.
#[test]
fn kv_seed_from_env_is_deterministic_and_passes() {
    let seed = seed_from_env(2024);
    for p in PROFILES {
        let d = check_determinism(&Kv, &RunOptions::new(seed, p));
        assert!(d.difference.is_none(), "{p}: {:?}", d.difference);
        assert!(d.first.ok(), "seed {seed} {p}: {:#?}", d.first.failures);
    }
}
