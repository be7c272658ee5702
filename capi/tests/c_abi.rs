//! The C ABI as C programs see it: the exported symbols match libevent's, a stub fails with its
//! name, and the seed's C hello-world, built once against libevent, behaves identically on
//! libevent and on evloop (every real backend) with real clients and a real SIGINT.
//!
//! These tests need a C compiler and libevent-dev 2.1.12. Without them they are skipped
//! locally, and fail when `CI` is set (to anything but empty, `false` or `0`).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

const LIBEVENT: &str = "/usr/lib/x86_64-linux-gnu/libevent-2.1.so.7";
const LIBEVENT_CORE: &str = "/usr/lib/x86_64-linux-gnu/libevent_core-2.1.so.7";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `Some(t)`, or `None` after explaining why the test cannot run here (a failure in CI).
fn need<T>(what: Result<T, String>) -> Option<T> {
    match what {
        Ok(t) => Some(t),
        Err(e) if in_ci() => panic!("CI is set and this test cannot run: {e}"),
        Err(e) => {
            eprintln!("skipped (needs a C compiler and libevent-dev): {e}");
            None
        }
    }
}

/// `libevloop_capi.so` of this test's profile: `target/<profile>/` when the library was built
/// as a package of its own (`cargo build -p evloop-capi`), `target/<profile>/deps/` when cargo
/// built it only as a dependency (as `cargo test --workspace` does); the newer one if both exist.
fn our_library() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    let profile = deps.parent().expect("profile dir");
    let newest = [
        profile.join("libevloop_capi.so"),
        deps.join("libevloop_capi.so"),
    ]
    .into_iter()
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max_by_key(|(t, _)| *t);
    match newest {
        Some((_, lib)) => lib,
        None => panic!(
            "libevloop_capi.so is missing in {} and its deps/: cargo builds the cdylib before \
             the tests of its package",
            profile.display()
        ),
    }
}

/// A directory where both libevent sonames are evloop's library.
fn lib_dir() -> tempfile::TempDir {
    let lib = our_library().canonicalize().expect("canonical");
    let d = tempfile::tempdir().expect("tempdir");
    for n in ["libevent-2.1.so.7", "libevent_core-2.1.so.7"] {
        std::os::unix::fs::symlink(&lib, d.path().join(n)).expect("symlink");
    }
    d
}

/// Compiles `src` (C) against libevent with `-levent` into `dir`.
fn compile(dir: &Path, name: &str, src: &str) -> Result<PathBuf, String> {
    compile_with(dir, name, src, "-levent")
}

/// Compiles `src` (C) against libevent, linked with `lib` (`-levent` or `-levent_core`).
fn compile_with(dir: &Path, name: &str, src: &str, lib: &str) -> Result<PathBuf, String> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).map_err(|e| e.to_string())?;
    let exe = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-O1", "-Wall", "-o"])
        .arg(&exe)
        .arg(&c)
        .arg(lib)
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cc} {name}.c {lib} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// The names `nm -D --defined-only` lists for `lib`.
fn exported(lib: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed", lib.display()));
    }
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

#[test]
fn exports_exactly_libevents_symbols() {
    let Some(theirs) = need(
        Path::new(LIBEVENT)
            .exists()
            .then_some(())
            .ok_or(format!("{LIBEVENT} is missing"))
            .and_then(|_| exported(Path::new(LIBEVENT))),
    ) else {
        return;
    };
    let ours = exported(&our_library()).expect("nm of our library");
    let missing: Vec<&String> = theirs.iter().filter(|s| !ours.contains(s)).collect();
    let extra: Vec<&String> = ours.iter().filter(|s| !theirs.contains(s)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:?}\nextra: {extra:?}"
    );
    assert!(
        theirs.len() > 600,
        "libevent exports {} symbols",
        theirs.len()
    );
    // libevent_core's exports are a subset, so the same file serves both sonames.
    let core = exported(Path::new(LIBEVENT_CORE)).expect("nm libevent_core");
    let not_in_ours: Vec<&String> = core.iter().filter(|s| !ours.contains(s)).collect();
    assert!(
        not_in_ours.is_empty(),
        "libevent_core symbols missing: {not_in_ours:?}"
    );
    // The clock and the waits are imported from libc as dynamic symbols (no raw syscalls),
    // so a program's interposed definitions apply to evloop too (the conformance player's
    // virtual clock relies on this).
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(our_library())
        .output()
        .expect("nm --undefined-only");
    let imports = String::from_utf8_lossy(&out.stdout);
    for f in [
        "clock_gettime",
        "gettimeofday",
        "getpid",
        "epoll_wait",
        "poll",
        "select",
        "timerfd_settime",
    ] {
        assert!(
            imports.lines().any(|l| l
                .split_whitespace()
                .nth(1)
                .is_some_and(|n| n == f || n.starts_with(&format!("{f}@")))),
            "{f} is not imported from libc:\n{imports}"
        );
    }
    // …and the library carries libevent's soname.
    let out = Command::new("readelf")
        .arg("-d")
        .arg(our_library())
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Library soname: [libevent-2.1.so.7]"),
        "{text}"
    );
}

#[test]
fn a_stub_names_itself_and_aborts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = "#include <event2/http.h>\n#include <stdio.h>\n\
               int main(void) { puts(\"before\"); fflush(stdout); evhttp_new(NULL); puts(\"after\"); return 0; }\n";
    let Some(exe) = need(compile(dir.path(), "stub", src)) else {
        return;
    };
    let libs = lib_dir();
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", libs.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    assert!(
        stderr.contains("evloop-capi: evhttp_new is not supported by evloop (stub); aborting"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
    // On libevent the same binary runs to the end.
    let real = Command::new(&exe).output().expect("run on libevent");
    assert_eq!(String::from_utf8_lossy(&real.stdout), "before\nafter\n");
}

/// Environment variables for one run.
type Env<'a> = Vec<(&'a str, &'a std::ffi::OsStr)>;

/// What one run of the hello-world server shows.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    /// Which event library the process mapped: `evloop` or `libevent`.
    library: &'static str,
    stdout: String,
    /// `EVENT_SHOW_METHOD`'s line: the method the base chose.
    stderr: String,
    answers: Vec<Vec<u8>>,
    code: Option<i32>,
}

/// `n` distinct free ports: all `n` listeners are held until every port is chosen, so the
/// servers started in parallel never get the same one (a port released by one `bind(:0)` may be
/// handed out again by the next; a second server then fails to listen and its clients reach the
/// first server, which resets them when it exits).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("its address").port())
        .collect()
}

/// Starts `exe PORT` with `env`, talks to it with `clients` connections (each reads to EOF),
/// sends SIGINT, and waits for the exit.
fn serve(exe: &Path, port: u16, env: &[(&str, &std::ffi::OsStr)], clients: usize) -> Run {
    let mut cmd = Command::new(exe);
    for k in [
        "EVENT_NOEPOLL",
        "EVENT_NOPOLL",
        "EVENT_NOSELECT",
        "EVENT_SHOW_METHOD",
        "EVLOOP_BACKEND",
        "LD_LIBRARY_PATH",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .arg(port.to_string())
        .env("EVENT_SHOW_METHOD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut first = None;
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(addr) {
            first = Some(s);
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let mut conns = vec![first.expect("the server never listened")];
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap_or_default();
    let library = if maps.contains("libevloop_capi.so") {
        "evloop"
    } else if maps.contains("libevent-2.1.so") {
        "libevent"
    } else {
        "none"
    };
    for _ in 1..clients {
        conns.push(TcpStream::connect(addr).expect("connect"));
    }
    let mut answers = Vec::new();
    for mut c in conns {
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("read to EOF");
        answers.push(got);
    }
    // The server has printed "flushed answer" for every client once they all saw EOF. Give the
    // last line a moment to be written before the signal.
    thread::sleep(Duration::from_millis(100));
    // SAFETY: kill() takes no pointers; the pid is our child's, still running.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(r, 0, "kill(SIGINT)");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    Run {
        library,
        stdout,
        stderr,
        answers,
        code: status.code(),
    }
}

#[test]
fn c_hello_world_runs_identically_on_libevent_and_on_evloop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = include_str!("../../examples/c/hello_world.c");
    let Some(exe) = need(compile(dir.path(), "hello_world", src)) else {
        return;
    };
    let libs = lib_dir();
    let lp = libs.path().as_os_str().to_os_string();
    let on = std::ffi::OsStr::new("1");
    const CLIENTS: usize = 4;
    // (label, on evloop, the environment choosing the method)
    let runs: Vec<(&str, bool, Env)> = vec![
        ("libevent-epoll", false, vec![]),
        ("libevent-poll", false, vec![("EVENT_NOEPOLL", on)]),
        (
            "libevent-select",
            false,
            vec![("EVENT_NOEPOLL", on), ("EVENT_NOPOLL", on)],
        ),
        ("evloop-epoll", true, vec![]),
        ("evloop-poll", true, vec![("EVENT_NOEPOLL", on)]),
        (
            "evloop-select",
            true,
            vec![("EVENT_NOEPOLL", on), ("EVENT_NOPOLL", on)],
        ),
        (
            "evloop-mio",
            true,
            vec![("EVLOOP_BACKEND", std::ffi::OsStr::new("mio"))],
        ),
    ];
    let ports = free_ports(runs.len());
    let results: Vec<(String, Run)> = thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .zip(ports)
            .map(|((label, evloop, env), port)| {
                let exe = &exe;
                let lp = &lp;
                s.spawn(move || {
                    let mut env = env.clone();
                    if *evloop {
                        env.push(("LD_LIBRARY_PATH", lp.as_os_str()));
                    }
                    (label.to_string(), serve(exe, port, &env, CLIENTS))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run thread"))
            .collect()
    });
    let expected_stdout = format!(
        "{}Caught an interrupt signal; exiting cleanly in two seconds.\ndone\n",
        "flushed answer\n".repeat(CLIENTS)
    );
    let reference = &results[0].1;
    assert_eq!(reference.stdout, expected_stdout, "libevent's own output");
    assert_eq!(reference.code, Some(0));
    assert_eq!(
        reference.answers,
        vec![b"Hello, NewConnection!\n".to_vec(); CLIENTS]
    );
    for (label, run) in &results {
        let want = if label.starts_with("evloop") {
            "evloop"
        } else {
            "libevent"
        };
        assert_eq!(run.library, want, "{label} ran on the wrong library");
        // The same method as libevent with the same environment (mio: the one evloop adds).
        let method = label.rsplit('-').next().unwrap_or_default();
        assert_eq!(
            run.stderr,
            format!("[msg] libevent using: {method}\n"),
            "{label}: method chosen"
        );
        let Run {
            library: _,
            stderr: _,
            stdout,
            answers,
            code,
        } = run;
        assert_eq!(
            (stdout, answers, code),
            (&reference.stdout, &reference.answers, &reference.code),
            "{label} differs from libevent-epoll"
        );
    }
}

#[test]
fn api_tour_prints_the_same_on_libevent_and_on_evloop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = include_str!("c/api_tour.c");
    let Some(exe) = need(compile(dir.path(), "api_tour", src)) else {
        return;
    };
    let Some(core_exe) = need(compile_with(
        dir.path(),
        "api_tour_core",
        src,
        "-levent_core",
    )) else {
        return;
    };
    let libs = lib_dir();
    let run = |exe: &Path, evloop: bool| {
        let mut cmd = Command::new(exe);
        cmd.env_remove("LD_LIBRARY_PATH")
            .env_remove("EVENT_NOEPOLL")
            .env_remove("EVENT_NOPOLL")
            .env_remove("EVLOOP_BACKEND");
        if evloop {
            cmd.env("LD_LIBRARY_PATH", libs.path());
        }
        let out = cmd.output().expect("run api_tour");
        assert!(
            out.status.success(),
            "{:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let theirs = run(&exe, false);
    let ours = run(&exe, true);
    // Linked with -levent_core, the binary asks for libevent_core-2.1.so.7: the same library.
    assert_eq!(run(&core_exe, true), ours, "-levent_core on evloop");
    let loaded = Command::new(&core_exe)
        .env("LD_LIBRARY_PATH", libs.path())
        .env("LD_DEBUG", "files")
        .output()
        .expect("run with LD_DEBUG");
    let init = format!(
        "calling init: {}",
        libs.path().join("libevent_core-2.1.so.7").display()
    );
    assert!(
        String::from_utf8_lossy(&loaded.stderr).contains(&init),
        "the -levent_core binary did not load evloop's library"
    );
    assert_eq!(run(&core_exe, false), theirs, "-levent_core on libevent");
    assert!(
        theirs.ends_with("end\n") && theirs.lines().count() > 60,
        "{theirs}"
    );
    let diff: Vec<(usize, &str, &str)> = theirs
        .lines()
        .zip(ours.lines())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i + 1, a, b))
        .collect();
    assert!(
        diff.is_empty() && theirs.lines().count() == ours.lines().count(),
        "line, libevent, evloop: {diff:?}\n--- evloop:\n{ours}"
    );
}

#[test]
fn null_handles_get_error_values_not_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exe) = need(compile(
        dir.path(),
        "null_args",
        include_str!("c/null_args.c"),
    )) else {
        return;
    };
    let libs = lib_dir();
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", libs.path())
        .output()
        .expect("run null_args");
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-1 -1 0 0\n-1 -1 -1\n-1 -1\n1\n1\n0 -1 -1\n-1 1\n-1 -1 1\n0 1\n-1 -1\nend\n"
    );
}
