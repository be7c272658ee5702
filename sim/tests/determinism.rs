//! Determinism, checked: every seed is run twice and the traces' rolling hashes compared.
//!
//! `EVSIM_DETERMINISM_SEEDS` sets the number of seeds per target (default 1000); a failing seed
//! is printed with the `evsim` command that shows where the two runs part.

use evloop_sim::targets::{self, builtin, command, RunOptions, Target};

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

/// Pinned trace hashes and lengths (printed by `evsim run`; first those of the text-based
/// tracer before lines were hashed as they are written, renewed when every host got its signal
/// pipe at creation, which moved descriptor numbers): the same runs give the same hashes and
/// lengths, and the hash is the FNV-1a of the text itself.
#[test]
fn hashes_equal_the_text_based_ones() {
    let cases = [
        ("hello-world", 7, "chaos", 343, 0x9f23_1b47_3967_b99au64),
        ("hello-world", 42, "chaos", 345, 0x5d94_3fe1_d1e4_0f63),
        ("programs", 11, "chaos", 4128, 0x2cda_615e_8d2f_03a4),
        ("programs", 3, "none", 17, 0x3551_d61f_5c6b_19bb),
        ("stream", 5, "chaos", 1218, 0xa741_df4d_fbdc_3626),
        ("stream", 6, "chaos", 980, 0x497b_deb2_7fda_f7e5),
    ];
    let targets = builtin();
    for (name, seed, profile, lines, hash) in cases {
        let t = targets.iter().find(|t| t.name() == name).unwrap();
        for keep in [false, true] {
            let mut o = RunOptions::new(seed, profile);
            o.keep_trace = keep;
            let r = t.run(&o);
            let s = r.trace.summary();
            assert_eq!((s.lines, s.hash), (lines, hash), "{name} {seed} {profile}");
            if let Some(text) = r.trace.text() {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in text.as_bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
                assert_eq!(h, hash, "{name}: the hash is the text's");
            }
        }
    }
}
