//! A quick smoke run of `evbench` (not a measurement): proves the Rust side, the libevent
//! program and the bare-epoll floor all build, run the same work and print every row.
//! Needs libevent-dev and a C compiler: with CI=true their absence fails the test.

use std::process::Command;

fn libevent_available() -> bool {
    Command::new("pkg-config")
        .args(["--exists", "libevent"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn quick_run_prints_every_row() {
    if !libevent_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libevent-dev is required in CI (the benchmark smoke run compares with it)"
        );
        eprintln!("skipping: libevent-dev is not installed (install it to run this test)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_evbench"))
        .arg("--quick")
        .output()
        .expect("evbench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "evbench failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for who in [
        "bare epoll (floor)",
        "libevent epoll",
        "libevent poll",
        "libevent select",
        "evloop epoll",
        "evloop poll",
        "evloop select",
        "evloop mio",
        "evloop C ABI epoll",
        "evloop C ABI poll",
        "evloop C ABI select",
    ] {
        let rows = text
            .lines()
            .filter(|l| l.starts_with("| n=") && l.contains(&format!("| {who} |")))
            .count();
        assert_eq!(rows, 2, "{who}: one row per dispatch configuration\n{text}");
    }
    for kind in ["spread", "equal", "churn"] {
        assert!(
            text.contains(&format!("| {kind} n=")),
            "timers {kind}\n{text}"
        );
    }
    assert!(
        text.contains("| hello-world, 10 clients, chaos, one core"),
        "simulator section\n{text}"
    );
    assert!(
        text.contains("| event programs, no faults, one core"),
        "{text}"
    );
    let mem = text
        .lines()
        .find(|l| l.starts_with("| evloop epoll |") && l.matches('|').count() == 4)
        .expect("memory row");
    let bytes: f64 = mem.split('|').nth(2).unwrap().trim().parse().unwrap();
    assert!(bytes > 0.0, "{mem}");
}
