//! `evconform fuzz` catches a deliberately broken reactor within 500 cases, the reported case
//! replays, and the same case passes on the correct reactor. Needs the libevent player (cc and
//! libevent-dev) and the test-only switch; run by `.ci/run`:
//! `cargo test --release -p evloop-conformance --features test-faults --test fuzz_faults`.
#![cfg(feature = "test-faults")]

use evloop_conformance::fuzz::{fuzz, Options};
use evloop_scenario::strategies::Config;

fn opts(fault: Option<&str>, case: Option<u64>) -> Options {
    Options {
        cases: 500,
        seed: 9,
        case,
        backends: vec!["epoll".into(), "sim".into()],
        jobs: 2,
        save: None,
        config: Config::all(),
        keep_going: false,
        shrink: true,
        progress: false,
        core_fault: fault.map(str::to_string),
    }
}

fn caught(fault: &str) {
    let mut out = Vec::new();
    let sum = fuzz(&opts(Some(fault), None), "all", &mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let d = sum
        .divergences
        .first()
        .unwrap_or_else(|| panic!("{fault}: no divergence in 500 cases"));
    assert!(d.case < 500, "{text}");
    assert!(
        text.contains(&format!(
            "--features test-faults -- fuzz --core-fault {fault} --seed 9 --case {} --backend {}",
            d.case, d.backend
        )),
        "{text}"
    );
    // the shrunk scenario is no bigger than the case
    let printed = evloop_conformance::scenario::print(&d.scenario);
    assert!(
        text.contains(printed.lines().next().unwrap_or("")),
        "{text}"
    );
    // the printed replay finds it again
    let again = fuzz(&opts(Some(fault), Some(d.case)), "all", &mut Vec::new()).unwrap();
    assert_eq!(
        again.divergences.len(),
        1,
        "{fault}: case {} did not replay",
        d.case
    );
    assert_eq!(again.divergences[0].signature, d.signature);
    // and the correct reactor agrees with libevent on that case
    let healthy = fuzz(&opts(None, Some(d.case)), "all", &mut Vec::new()).unwrap();
    assert!(
        healthy.divergences.is_empty(),
        "{fault}: case {} fails without the fault",
        d.case
    );
    assert_eq!(healthy.cases, 1);
}

/// One test: the fault switch is process-wide, so the faults are tried one after the other.
#[test]
fn broken_reactors_are_caught_within_500_cases() {
    caught("early-timers");
    caught("priority-inversion");
}
