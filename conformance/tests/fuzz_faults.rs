//! `evconform fuzz` catches a deliberately broken reactor within 500 cases, the reported case
//! replays, and the same case passes on the correct reactor. Needs the libevent player (cc and
//! libevent-dev) and the test-only switch; run by `.ci/run`:
//! `cargo test --release -p evloop-conformance --features test-faults --test fuzz_faults`.
#![cfg(feature = "test-faults")]

use std::process::Command;

use evloop_conformance::fuzz::{fuzz, fuzz_shard, Options};
use evloop_scenario::strategies::Config;
use evloop_sim::shard::Shard;

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
        isolate: Some(env!("CARGO_BIN_EXE_evconform").into()),
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

/// A divergence found by shard 3 of 4 (as a scheduler's array job would run it) is replayed on
/// its own by the command the shard printed: the `evconform` binary, run as a separate process
/// with the printed arguments and no shard, finds the same case diverging again.
fn caught_in_a_shard_replays_from_its_printed_line(fault: &str) {
    let shard = Shard::new(3, 4).unwrap();
    let mut out = Vec::new();
    let sum = fuzz_shard(&opts(Some(fault), None), shard, "all", &mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let d = sum
        .divergences
        .first()
        .unwrap_or_else(|| panic!("{fault}: no divergence in shard 3/4 of 500 cases\n{text}"));
    assert_eq!(d.case % 4, 2, "shard 3/4 runs the cases k with k % 4 == 2");
    let line = text
        .lines()
        .find(|l| l.contains("replay: cargo run"))
        .unwrap_or_else(|| panic!("no replay line in:\n{text}"));
    let args: Vec<&str> = line
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("no ` -- ` in {line}"))
        .1
        .split_whitespace()
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--case", &d.case.to_string()]),
        "{line}"
    );
    assert!(!args.contains(&"--shard"), "{line}");
    let run = Command::new(env!("CARGO_BIN_EXE_evconform"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{line}\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&d.signature),
        "{line}: {}\n{stdout}",
        d.signature
    );
    assert!(stdout.contains(&format!("--case {}", d.case)), "{stdout}");
}

/// One test: the fault switch is process-wide, so the faults are tried one after the other.
#[test]
fn broken_reactors_are_caught_within_500_cases() {
    caught("early-timers");
    caught("priority-inversion");
    caught_in_a_shard_replays_from_its_printed_line("early-timers");
}
