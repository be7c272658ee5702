//! A quick smoke run of `evbench` (not a measurement): proves the Rust side, the libevent
//! program and the bare-epoll floor all build, run the same work and print every row.
//! Needs libevent-dev and a C compiler: on CI (`CI` set to anything but empty, `false` or `0`)
//! their absence fails the test.

use std::process::Command;

/// True on CI: `CI` is set to anything but empty, `false` or `0` (`CI=1`, `CI=yes` count).
/// There a missing libevent is a failure, never a skip.
fn on_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("false") && v != "0")
}

fn ci() -> bool {
    on_ci(std::env::var("CI").ok().as_deref())
}

#[test]
fn ci_means_any_value_but_empty_false_or_0() {
    for v in ["true", "1", "yes", "TRUE", "on"] {
        assert!(on_ci(Some(v)), "CI={v}");
    }
    for v in [None, Some(""), Some("false"), Some("0"), Some("False")] {
        assert!(!on_ci(v), "CI={v:?}");
    }
}

/// Runs `evbench ARGS`, asserts that it succeeded and returns its standard output.
fn evbench_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_evbench"))
        .args(args)
        .output()
        .expect("evbench runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "evbench {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn libevent_available() -> bool {
    Command::new("pkg-config")
        .args(["--exists", "libevent"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn quick_run_prints_every_row() {
    let _serial = serial();
    if !libevent_available() {
        assert!(
            !ci(),
            "libevent-dev is required in CI (the benchmark smoke run compares with it)"
        );
        eprintln!("skipping: libevent-dev is not installed (install it to run this test)");
        return;
    }
    let text = evbench_ok(&["--quick"]);
    for who in [
        "bare epoll (floor)",
        "bare poll (floor)",
        "bare select (floor)",
        "libevent epoll",
        "libevent poll",
        "libevent select",
        "libevent epoll (A/A control)",
        "libevent poll (A/A control)",
        "libevent select (A/A control)",
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

/// The tests of this file run one at a time: the parser's timing must not share the CPU with
/// the other runs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The scenario parser is linear: `evbench parse` fails if 80k declarations take more than 8x
/// as long as 20k, or 3 s (they took 14 s, and 16x, when lowering was quadratic). Needs no
/// libevent.
#[test]
fn parser_benchmark_is_linear() {
    let _serial = serial();
    let text = evbench_ok(&["parse"]);
    assert!(text.contains("| 80000 |"), "{text}");
}

/// A small soak on every real backend: every client gets exactly the message and EOF, and the
/// server ends with the descriptors it started with (`evbench soak` fails otherwise).
#[test]
fn small_soak_on_every_backend() {
    let _serial = serial();
    let text = evbench_ok(&["soak", "--connections", "300"]);
    for b in ["epoll", "poll", "select", "mio"] {
        let rows = text
            .lines()
            .filter(|l| l.starts_with(&format!("| {b} |")))
            .count();
        assert_eq!(rows, 3, "{b}: one row per client count\n{text}");
    }
}

/// `EVBENCH_STEP=1`: the ring does one run per byte on its stdin and ends at end of input
/// (how `evbench dispatch` interleaves the programs of a cell run by run), printing each run's
/// `µs callbacks` line.
#[test]
fn stepped_ring_runs_once_per_byte_of_input() {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_evbench"))
        .args(["ring", "epoll", "20", "2", "50", "10"])
        .env("EVBENCH_STEP", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("evbench runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\n\n\n").expect("write steps");
    drop(stdin);
    let out = child.wait_with_output().expect("evbench ends");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "one line per step, 10 runs allowed:\n{text}"
    );
    for l in lines {
        let cb: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(cb.len(), 2, "{l}");
        // 2 first writes + 50 passed along the ring
        assert_eq!(cb[1], "52", "{l}");
    }
}

/// `dispatch --cell N:A` measures only the cells asked for; a malformed cell is a usage error
/// (exit 2), not a panic.
#[test]
fn dispatch_cells_are_chosen_and_checked() {
    let _serial = serial();
    let bad = Command::new(env!("CARGO_BIN_EXE_evbench"))
        .args(["dispatch", "--cell", "10:20"])
        .output()
        .expect("evbench runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("need 1 ≤ A ≤ N"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    if !libevent_available() {
        assert!(!ci(), "libevent-dev is required in CI");
        return;
    }
    let text = evbench_ok(&["--quick", "dispatch", "--cell", "40:4"]);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| n=")).collect();
    assert!(rows.len() >= 10, "{text}");
    assert!(
        rows.iter().all(|l| l.starts_with("| n=40 a=4 w=40 |")),
        "{text}"
    );
    // Where the programs are pinned to a CPU, evbench keeps itself off it.
    if text.contains("pinned to CPU") {
        assert!(text.contains(", evbench itself on CPU "), "{text}");
    }
}

/// Compiles `bench/c/NAME.c` with `cc -O2 -Wall` into a temporary directory (kept alive by the
/// returned handle). `None` without a C compiler, which fails the test on CI.
fn compile_c(name: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join(name);
    let src = format!("{}/c/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let cc = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(src)
        .output();
    let Ok(cc) = cc else {
        assert!(!ci(), "a C compiler is required in CI");
        eprintln!("skipping: no C compiler");
        return None;
    };
    assert!(
        cc.status.success(),
        "{name}.c: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    Some((dir, exe))
}

/// The poll/select floor (`bench/c/poll_floor.c`) runs poll above FD_SETSIZE (the n=9000 cells;
/// it once crashed there, setting bits of an `fd_set` it did not use), refuses select there
/// with a message, and passes every byte of the ring. Needs only a C compiler.
#[test]
fn poll_floor_runs_the_ring_and_refuses_select_above_fd_setsize() {
    let Some((_dir, exe)) = compile_c("poll_floor") else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .output()
            .expect("poll_floor runs")
    };
    for (args, lines, reads) in [
        (&["poll", "2000", "3", "300", "2"][..], 2, "303"),
        (&["select", "100", "100", "300", "1"][..], 1, "400"),
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), lines, "{args:?}:\n{text}");
        for l in got {
            assert_eq!(l.split_whitespace().nth(1), Some(reads), "{args:?}: {l}");
        }
    }
    let out = run(&["select", "2000", "1", "10", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FD_SETSIZE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The floor probe (`bench/c/floor_probe.c`, the experiments of BENCHMARKS.md's "What a
/// callback costs besides its system calls") passes every byte of the ring with each of its
/// knobs set, and refuses a knob out of range with a message. Needs only a C compiler.
#[test]
fn floor_probe_runs_the_ring_with_every_knob() {
    let Some((_dir, exe)) = compile_c("floor_probe") else {
        return;
    };
    let run = |env: &[(&str, &str)], args: &[&str]| {
        Command::new(&exe)
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("floor_probe runs")
    };
    for env in [
        &[][..],
        &[("PAD", "50")][..],
        &[("DEPTH", "1")][..],
        &[("DEPTH", "2"), ("LINES", "3"), ("SPAN", "16")][..],
    ] {
        let out = run(env, &["50", "2", "200", "2"]);
        assert!(out.status.success(), "{env:?}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), 2, "{env:?}:\n{text}");
        for l in got {
            assert_eq!(l.split_whitespace().nth(1), Some("202"), "{env:?}: {l}");
        }
    }
    let out = run(&[("DEPTH", "3")], &["10", "1", "10", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DEPTH 0..2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
