//! The worked example (examples/kv): the planted bug found by `explore`, replayed by the
//! printed line and shrunk to the same failure through the example's own `evsim`.

mod common;
#[path = "../examples/kv/harness.rs"]
mod harness;
#[path = "../examples/kv/server.rs"]
mod server;

use std::process::Command;

use common::kv_evsim;
use evloop_sim::explore::explore;
use evloop_sim::targets::{failure_class, RunOptions};
use harness::Kv;

/// Runs a printed command line (`PROGRAM run …`) and returns (exit code, stdout + stderr).
fn run_line(line: &str) -> (i32, String) {
    let mut words = line.split_whitespace();
    let prog = words.next().expect("a program");
    let out = Command::new(prog)
        .args(words)
        .output()
        .expect("run the line");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn first_fail(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("FAIL: "))
}

#[test]
fn planted_bug_is_found_replayed_and_shrunk_to_the_same_failure() {
    // Without the bug, the same seeds pass.
    let clean = RunOptions::new(0, "lossy");
    assert!(explore(&Kv, &clean, 0..30, 2, false, |_| {}).is_empty());
    // explore finds it (through the library)…
    let buggy = RunOptions::new(0, "lossy").with_param("bug", "true");
    let failed = explore(&Kv, &buggy, 0..30, 2, false, |_| {});
    assert!(!failed.is_empty(), "the planted bug was not found");

    // …and through the example's own evsim, whose reproduce lines name it.
    let bin = kv_evsim();
    let out = Command::new(&bin)
        .args(["explore", "kv", "--seeds", "0..30", "--faults", "lossy"])
        .args(["--param", "bug=true", "--quiet", "--jobs", "2"])
        .output()
        .expect("run the kv evsim");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("reproduce: "))
        .expect("a reproduce line");
    assert!(line.starts_with(bin.to_str().unwrap()), "{line}");
    assert!(line.contains("--param bug=true"), "{line}");
    let seed: u64 = line
        .split_whitespace()
        .skip_while(|w| *w != "--seed")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("the seed");
    assert_eq!(seed, failed[0].seed);

    // The printed line replays the failure.
    let (code, replay) = run_line(line);
    assert_eq!(code, 1, "{replay}");
    let original = first_fail(&replay).expect("a failure").to_owned();
    assert_eq!(original, failed[0].failures[0]);

    // shrink keeps the failure's class, and its line reproduces it.
    let out = Command::new(&bin)
        .args([
            "shrink",
            "kv",
            "--seed",
            &seed.to_string(),
            "--faults",
            "lossy",
        ])
        .args(["--param", "bug=true"])
        .output()
        .expect("shrink");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("reproduce: "))
        .expect("a reproduce line");
    assert!(line.contains("--only-faults"), "{line}");
    let (code, shrunk) = run_line(line);
    assert_eq!(code, 1, "{shrunk}");
    let kept = first_fail(&shrunk).expect("a failure");
    assert_eq!(failure_class(kept), failure_class(&original), "{shrunk}");
}
