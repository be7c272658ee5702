//! The gate can fail: a fixture with one changed line fails the comparison with a readable
//! diff, and `record --check` fails when a committed fixture is changed. Tests that need
//! libevent and a C compiler fail on CI (`CI` set to anything but empty, `false` or `0`) when
//! they are missing, and are skipped otherwise.

use std::fs;
use std::path::Path;
use std::process::Command;

use evloop_conformance::check::{self, Dispatch, Outcome, Runner};
use evloop_conformance::player::Player;
use evloop_conformance::{fixture, record, spawn};

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

fn player_or_skip(test: &str) -> Option<Player> {
    match Player::build() {
        Ok(p) => Some(p),
        Err(e) => {
            if ci() {
                panic!("{test}: libevent-dev and a C compiler are required on CI: {e}");
            }
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

fn corpus_file(name: &str) -> std::path::PathBuf {
    evloop_conformance::default_scenarios_dir().join(format!("{name}.scn"))
}

#[test]
fn every_scenario_has_its_three_fixtures() {
    let corpus = check::load_dir(&evloop_conformance::default_scenarios_dir())
        .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let dir = evloop_conformance::default_fixtures_dir();
    for sc in &corpus {
        for m in fixture::LIBEVENT_METHODS {
            let backend = format!("libevent-{m}");
            let f = fixture::read(&fixture::path(&dir, &sc.name, &backend))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.source, format!("conformance/scenarios/{}.scn", sc.name));
            assert_eq!(f.expression, backend);
            assert!(
                f.trace.starts_with("# evloop-trace v1\n"),
                "{}@{backend}",
                sc.name
            );
            assert!(f.trace.ends_with(" end"), "{}@{backend}", sc.name);
        }
    }
}

/// Replays a fixed trace for every scenario: stands in for a backend.
struct Canned(String);

impl Runner for Canned {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn run(&self, _: &check::Loaded, _: &str) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

#[test]
fn one_changed_line_fails_check_with_a_readable_diff() {
    let name = "regress_loopexit";
    let sc = check::load(&corpus_file(name)).unwrap();
    let real = fixture::read(&fixture::path(
        &evloop_conformance::default_fixtures_dir(),
        name,
        "libevent-epoll",
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // the committed trace passes
    fs::write(
        fixture::path(dir.path(), name, "libevent-epoll"),
        fixture::render(name, "libevent-epoll", &real.trace),
    )
    .unwrap();
    let runner = Dispatch(vec![Box::new(Canned(real.trace.clone()))]);
    let m = check::run_matrix(
        std::slice::from_ref(&sc),
        &["epoll".to_string()],
        &runner,
        dir.path(),
    );
    assert!(m.all_pass(), "{}", m.render());
    // one changed line in the fixture fails
    let changed = real
        .trace
        .replace("300000 loop-end rc=0", "300000 loop-end rc=1");
    assert_ne!(changed, real.trace);
    fs::write(
        fixture::path(dir.path(), name, "libevent-epoll"),
        fixture::render(name, "libevent-epoll", &changed),
    )
    .unwrap();
    let m = check::run_matrix(
        std::slice::from_ref(&sc),
        &["epoll".to_string()],
        &runner,
        dir.path(),
    );
    assert!(!m.all_pass());
    let text = m.render();
    assert!(
        text.contains("regress_loopexit  FAIL") || text.contains("FAIL"),
        "{text}"
    );
    assert!(
        text.contains("first difference at line 5 of the trace: lines differ"),
        "{text}"
    );
    assert!(text.contains("(- libevent fixture, + epoll)"), "{text}");
    assert!(text.contains(" -     5  300000 loop-end rc=1"), "{text}");
    assert!(text.contains(" +     5  300000 loop-end rc=0"), "{text}");
    assert!(text.contains("       4  0 loop flags=0"), "{text}");
    let junit = m.junit();
    assert!(
        junit.contains(
            "<failure message=\"differs from regress_loopexit@libevent-epoll.snap at line 5\">"
        ),
        "{junit}"
    );
    match &m.cells[0].outcome {
        Outcome::Fail(mm) => assert_eq!(mm.line, 5),
        other => panic!("{other:?}"),
    }
}

fn copy_scenarios(dir: &Path, names: &[&str]) {
    for n in names {
        fs::copy(corpus_file(n), dir.join(format!("{n}.scn"))).unwrap();
    }
}

#[test]
fn record_check_fails_when_a_fixture_is_changed() {
    let Some(_) = player_or_skip("record_check_fails_when_a_fixture_is_changed") else {
        return;
    };
    let scen = tempfile::tempdir().unwrap();
    let fx = tempfile::tempdir().unwrap();
    copy_scenarios(scen.path(), &["regress_loopexit", "signal_ncalls"]);
    let evconform = env!("CARGO_BIN_EXE_evconform");
    let run = |args: &[&str]| {
        // through the library's spawn guard: other tests of this file run scenarios in-process
        spawn::output(
            Command::new(evconform)
                .args(args)
                .arg("--scenarios")
                .arg(scen.path())
                .arg("--fixtures")
                .arg(fx.path()),
        )
        .unwrap()
    };
    let out = run(&["record"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_dir(fx.path()).unwrap().count(), 6);
    let out = run(&["record", "--check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // change one line of one fixture
    let p = fixture::path(fx.path(), "signal_ncalls", "libevent-poll");
    let text = fs::read_to_string(&p).unwrap();
    fs::write(&p, text.replace("0 cb s #2 S", "0 cb s #2 R")).unwrap();
    let out = run(&["record", "--check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("signal_ncalls@libevent-poll.snap: differs from what libevent records now"),
        "{err}"
    );
    assert!(
        err.contains("first difference at line 6 of the trace: lines differ"),
        "{err}"
    );
    assert!(err.contains(" -     6  0 cb s #2 R"), "{err}");
    assert!(err.contains(" +     6  0 cb s #2 S"), "{err}");
    assert!(
        err.contains("(- committed fixture, + libevent now)"),
        "{err}"
    );
    // a missing fixture and a stale one fail too
    fs::write(&p, text).unwrap();
    fs::remove_file(fixture::path(
        fx.path(),
        "regress_loopexit",
        "libevent-select",
    ))
    .unwrap();
    fs::write(
        fixture::path(fx.path(), "gone", "libevent-epoll"),
        fixture::render("gone", "libevent-epoll", "# evloop-trace v1\n0 end"),
    )
    .unwrap();
    let out = run(&["record", "--check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regress_loopexit@libevent-select.snap: missing"),
        "{err}"
    );
    assert!(err.contains("gone@libevent-epoll.snap: stale"), "{err}");
}

#[test]
fn the_player_is_deterministic() {
    let Some(player) = player_or_skip("the_player_is_deterministic") else {
        return;
    };
    for name in [
        "io_many_ready_scan_order",
        "io_poll_scan_repeated",
        "signal_lost_while_active",
        "persist_missed_deadlines",
        "regress_nonpersist_readd",
        "bev_deferred_budget_33",
        "regress_bufferevent_connect",
        "hello_world_server",
        "regress_bufferevent_connect_fail_eventcb",
    ] {
        let sc = check::load(&corpus_file(name)).unwrap();
        let ir = sc.ir.to_text();
        for m in fixture::LIBEVENT_METHODS {
            let a = player.run(m, &ir).unwrap();
            let b = player.run(m, &ir).unwrap();
            assert_eq!(a, b, "{name} on {m}");
            assert!(a.starts_with("# evloop-trace v1\n"));
        }
    }
}

#[test]
fn the_player_matches_the_committed_fixtures() {
    let Some(player) = player_or_skip("the_player_matches_the_committed_fixtures") else {
        return;
    };
    let corpus = check::load_dir(&evloop_conformance::default_scenarios_dir())
        .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    match record::record_check(
        &corpus,
        &player,
        &evloop_conformance::default_fixtures_dir(),
    ) {
        Ok(n) => assert_eq!(n, corpus.len() * 3),
        Err(problems) => panic!("{}", problems.join("\n\n")),
    }
}

/// Descriptors the player inherits (a CI runner or a shell leaving some open across exec) do not
/// change what it records: libevent's select backend orders the callbacks of one select() call
/// by fd number from a start index drawn in [0, nfds), so shifted fd numbers reorder them. The
/// player closes what it inherited; without that this trace's window comes out rotated.
#[test]
fn inherited_descriptors_do_not_change_what_the_player_records() {
    let Some(player) =
        player_or_skip("inherited_descriptors_do_not_change_what_the_player_records")
    else {
        return;
    };
    let run = |preamble: &str| -> String {
        let dir = tempfile::tempdir().unwrap();
        let name = "io_lt_rewoken_keeps_place";
        let ir_path = dir.path().join("scenario.ir");
        let sc = check::load(&corpus_file(name)).unwrap();
        fs::write(&ir_path, sc.ir.to_text()).unwrap();
        let out = spawn::output(
            Command::new("bash")
                .arg("-c")
                .arg(format!("{preamble} exec \"$0\" select \"$1\""))
                .arg(player.path())
                .arg(&ir_path),
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run("");
    assert!(plain.contains("~window 4"), "{plain}");
    for preamble in [
        "exec 7</dev/null;",
        "exec 7</dev/null 8</dev/null 9</dev/null 10</dev/null 251</dev/null;",
    ] {
        assert_eq!(run(preamble), plain, "with `{preamble}`");
    }
}

/// The player refuses to move its virtual clock past the horizon (2^62 us, IR.md §6) as the
/// Rust runner does (conformance/tests/errors.rs), instead of wrapping around.
#[test]
fn the_player_stops_at_the_virtual_clock_horizon() {
    let Some(_) = player_or_skip("the_player_stops_at_the_virtual_clock_horizon") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("horizon.scn");
    let mut src = String::from("main {\n");
    for _ in 0..4097 {
        src.push_str("  sleep 1125899906842624us\n");
    }
    src.push_str("}\n");
    fs::write(&path, src).unwrap();
    let out = spawn::output(
        Command::new(env!("CARGO_BIN_EXE_evconform"))
            .args(["run", "--backend", "libevent-epoll"])
            .arg(&path),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("player: the virtual clock would pass its horizon of 2^62 us"),
        "{stderr}"
    );
}

/// A signal event that re-activates itself in its callback (`event_active` clears
/// `ev_pncalls`) and then frees itself: libevent 2.1.12's signal closure goes on calling the
/// callback of the freed `struct event` (found by `evconform fuzz --seed 3011202631 --case
/// 37998`). The player detects a callback of a freed event and refuses the scenario (exit 6,
/// so `fuzz` counts it as a libevent failure), while evloop runs no callback of a freed event.
#[test]
fn the_player_refuses_a_callback_of_a_freed_event() {
    let Some(_) = player_or_skip("the_player_refuses_a_callback_of_a_freed_event") else {
        return;
    };
    let src = "event e0 signal SIGUSR2\n\
               on e0 {\n  #1 active e0 TIMEOUT ncalls 3\n  #2 free e0\n}\n\
               main {\n  active e0 WRITE ncalls 3\n  loop\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("freed.scn");
    fs::write(&path, src).unwrap();
    let run = |backend: &str| {
        spawn::output(
            Command::new(env!("CARGO_BIN_EXE_evconform"))
                .args(["run", "--backend", backend])
                .arg(&path),
        )
        .unwrap()
    };
    let out = run("libevent-epoll");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exit status: 6")
            && stderr.contains("libevent ran the callback of e0 after event_free"),
        "{stderr}"
    );
    for backend in ["epoll", "sim"] {
        let out = run(backend);
        let trace = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{backend}: {trace}");
        let lines: Vec<&str> = trace
            .lines()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect();
        let freed = lines.iter().position(|l| *l == "free e0").expect(&trace);
        assert_eq!(
            lines[freed - 1..],
            ["cb e0 #2 T", "free e0", "loop-end rc=1", "end"],
            "{backend}: {trace}"
        );
    }
}
