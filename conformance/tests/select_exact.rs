//! evloop's select backend run isolated (`evconform run-isolated`, started by `evconform check`,
//! `run` and `fuzz`) reproduces libevent's select scan order exactly: its traces equal the
//! select fixtures line for line, inside the `~window` blocks too, whatever descriptors the
//! parent left open. Needs no libevent (the fixtures are committed).

use std::fs;
use std::io::Write as _;
use std::process::{Command, Stdio};

use evloop_conformance::check::{self, Outcome, Runner};
use evloop_conformance::compare;
use evloop_conformance::evloop_runner::IsolatedRunner;
use evloop_conformance::{default_fixtures_dir, default_scenarios_dir, fixture};

/// Scenarios whose select fixtures have windows of several callbacks.
const WINDOWED: &[&str] = &[
    "io_lt_rewoken_keeps_place",
    "io_lt_overflow_relink",
    "io_many_ready_scan_order",
    "io_poll_scan_repeated",
    "regress_nonpersist_readd",
    "signal_after_io",
];

fn select_fixture(name: &str) -> String {
    let path = fixture::path(&default_fixtures_dir(), name, "libevent-select");
    fixture::read(&path).expect("the fixture parses").trace
}

fn load(name: &str) -> check::Loaded {
    check::load(&default_scenarios_dir().join(format!("{name}.scn"))).expect("the scenario parses")
}

/// Every select window of several callbacks in the corpus comes out in libevent's order.
#[test]
fn isolated_select_runs_equal_the_fixtures_exactly() {
    let runner = IsolatedRunner::new(env!("CARGO_BIN_EXE_evconform").into());
    assert!(runner.handles("select") && runner.strict("select"));
    let mut windows = 0;
    for name in WINDOWED {
        let expected = select_fixture(name);
        windows += expected
            .lines()
            .filter(|l| {
                l.strip_prefix("~window ")
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n >= 2)
            })
            .count();
        let trace = runner.run(&load(name), "select").unwrap();
        if let Err(m) = compare::compare_strict(&expected, &trace) {
            panic!("{name}: {m}");
        }
    }
    assert!(windows >= WINDOWED.len(), "{windows} windows");
}

/// The child closes what it inherited: started with extra descriptors open (as a CI runner or
/// a shell may leave them), it still numbers its sockets from 3 and scans as libevent does.
#[test]
fn inherited_descriptors_do_not_change_the_isolated_order() {
    for name in ["io_lt_rewoken_keeps_place", "io_lt_overflow_relink"] {
        let ir = load(name).ir.to_text();
        let mut child = Command::new("bash")
            .arg("-c")
            .arg("exec 7</dev/null 8</dev/null 9</dev/null 12</dev/null; exec \"$0\" run-isolated --backend select")
            .arg(env!("CARGO_BIN_EXE_evconform"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ir.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = String::from_utf8(out.stdout).unwrap();
        if let Err(m) = compare::compare_strict(&select_fixture(name), &trace) {
            panic!("{name}: {m}");
        }
    }
}

/// `evconform check` compares the select column exactly: two callbacks of one window swapped
/// in a copy of the fixtures fail the check (NONDETERMINISM.md §1's window rule would accept
/// the swap).
#[test]
fn check_fails_on_a_window_in_another_order() {
    let name = "io_lt_rewoken_keeps_place";
    let dir = tempfile::tempdir().unwrap();
    for e in fs::read_dir(default_fixtures_dir()).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = fixture::path(dir.path(), name, "libevent-select");
    let text = fs::read_to_string(&path).unwrap();
    let swapped = text.replacen(
        "0 cb r2 #2 R\n0 cb r3 #2 R\n",
        "0 cb r3 #2 R\n0 cb r2 #2 R\n",
        1,
    );
    assert_ne!(text, swapped, "the fixture has r2 before r3 in a window");
    fs::write(&path, &swapped).unwrap();
    // the swap is inside a window: the relaxed rule accepts it
    let trace = IsolatedRunner::new(env!("CARGO_BIN_EXE_evconform").into())
        .run(&load(name), "select")
        .unwrap();
    assert_eq!(check::check_one(&trace, &path), Outcome::Pass);
    assert!(matches!(
        check::check_one_with(&trace, &path, true),
        Outcome::Fail(_)
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_evconform"))
        .args(["check", "--backend", "select", "--fixtures"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let corpus = check::load_dir(&default_scenarios_dir()).unwrap().len();
    assert!(
        stdout.contains(name) && stdout.contains(&format!("{} passed, 1 failed", corpus - 1)),
        "{stdout}"
    );
}
