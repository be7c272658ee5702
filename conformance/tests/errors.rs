//! Scenario errors are reported as `file:line:column: message`, and the CLI exits non-zero.

use std::process::Command;

use evloop_conformance::scenario;

fn err(src: &str) -> String {
    scenario::parse("bad.scn", src).unwrap_err().to_string()
}

#[test]
fn positions_point_at_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("main {\n  add nope\n}\n", "bad.scn:2:7: 'nope' is not declared (expected an event)"),
        ("socketpair a b\nmain {\n  add a\n}\n", "bad.scn:3:7: 'a' is a socketpair end (line 1), expected an event"),
        ("event t timer\nmain {\n    add t 5\n}\n", "bad.scn:3:11: a duration needs a unit: 5ms, 5us or 5s (only 0 may be written bare)"),
        ("event t timer READ\nmain {}\n", "bad.scn:1:7: event 't': flag(s) READ not allowed for this source (allowed: TIMEOUT|PERSIST)"),
        ("main {}\nbase priorities 2\n", "bad.scn:2:1: 'base' must be the first declaration (and appear once)"),
        ("event t timer\non t {\n  #0 del t\n}\nmain {}\n", "bad.scn:3:3: calls are numbered from 1"),
        ("event t timer\non t {\n  #5..2 del t\n}\nmain {}\n", "bad.scn:3:7: empty call range #5..2"),
        ("on ghost {\n}\nmain {}\n", "bad.scn:1:4: 'on ghost': no event is declared and no once-event uses this name"),
        ("event t timer\nmain {\n  once t timer\n}\n", "bad.scn:3:8: 't' is an event (line 1); a once-event needs its own callback name"),
        ("main {\n  loop SOMETIMES\n}\n", "bad.scn:2:8: unknown loop flag 'SOMETIMES' (known: ONCE, NONBLOCK, NO_EXIT_ON_EMPTY)"),
        ("event read timer\n", "bad.scn:1:7: 'read' is a keyword and cannot be used as an event name"),
        ("main {\n  frobnicate\n}\n", "bad.scn:2:3: unknown action 'frobnicate'"),
        ("main {\n  sleep 10ms 20ms\n}\n", "bad.scn:2:14: expected end of statement, found a duration"),
        ("main {\n", "bad.scn:2:1: expected '}', found end of file"),
        ("event b timer\non b.read {\n}\nmain {}\n", "bad.scn:2:4: 'on b.read': 'b' is an event (line 1), expected a bufferevent"),
        ("listener l\n", "bad.scn:1:11: expected 'bind' or 'fd END', found end of line"),
        ("main {\n  write a \"\\q\"\n}\n", "bad.scn:2:12: unknown escape \\q"),
        ("main {}\nmain {}\n", "bad.scn:2:1: second 'main' block (the first is at line 1)"),
        ("main {\n  raise SIGUSR1 0\n}\n", "bad.scn:2:17: raise at least once"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(src, want)| err(src) != *want)
        .map(|(src, want)| format!("source:\n{src}\nwant: {want}\ngot:  {}\n", err(src)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_cli_reports_errors_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.scn");
    std::fs::write(&path, "event t timer\nmain {\n  add t 10xs\n}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evconform"))
        .arg("ir")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "{}:3:9: unknown time unit 'xs' (use us, ms or s)",
            path.display()
        )
    );
}

#[test]
fn bufferevent_and_listener_errors_point_at_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("bufferevent x pair y\nmain {\n  enable x\n}\n", "bad.scn:3:10: 'enable x' takes READ, WRITE or READ|WRITE"),
        ("bufferevent x socket nosuch\nmain {}\n", "bad.scn:1:22: 'nosuch' is not declared (expected a socketpair end)"),
        ("bufferevent x pair y\non x.accept {\n}\nmain {}\n", "bad.scn:2:4: 'on x.accept': 'x' is a bufferevent (line 1), expected a listener"),
        ("bufferevent x pair y\non x.reed {\n}\nmain {}\n", "bad.scn:2:6: expected a callback (read, write, event, accept or error) after 'x.', found 'reed'"),
        ("bufferevent x pair y\non x {\n}\nmain {}\n", "bad.scn:2:4: 'x' is a bufferevent: write 'on x.CALLBACK' (read, write or event)"),
        ("bufferevent x pair y\nmain {\n  drain x quiet\n}\n", "bad.scn:3:9: 'drain x quiet' is for socket ends; a bufferevent drains N bytes ('drain x N') or all of its input ('drain x')"),
        ("bufferevent x pair y\nmain {\n  new x\n}\n", "bad.scn:3:7: 'new x': the bufferevents of a pair are only created at setup"),
        ("socketpair a b\nlistener l bind\nmain {\n  connect a l\n}\n", "bad.scn:4:11: 'connect a …': 'a' is not a client end (declare it with 'client a')"),
        ("socketpair a b\nbufferevent x socket a\nlistener l bind\nmain {\n  connect x l\n}\n", "bad.scn:5:11: 'connect x …': only a 'socket none' bufferevent can connect"),
        ("listener l bind backlog 0\n", "bad.scn:1:25: evconnlistener_new_bind fails with backlog 0; write 1 or more, or leave it out for -1 (128)"),
        ("socketpair a b\nlistener l fd a backlog 5\n", "bad.scn:2:17: 'backlog' is only for 'listener NAME bind' (an 'fd' listener never calls listen())"),
        ("bufferevent x pair y\nat 5ms { write x \"a\" }\nmain {}\n", "bad.scn:2:16: 'x' is a bufferevent: 'at' blocks only act on sockets from the outside"),
        ("bufferevent x pair y\nat 5ms { enable x READ }\nmain {}\n", "bad.scn:2:10: only write, shutdown, close, raise and connect are allowed in 'at' blocks (outside inputs)"),
        ("bufferevent x pair y\nmain {\n  flush x WRITE SOON\n}\n", "bad.scn:3:17: expected a flush mode (NORMAL, FLUSH or FINISHED), found 'SOON'"),
        ("bufferevent x pair y CLOSE_ON_EXEC\n", "bad.scn:1:22: unknown bufferevent option 'CLOSE_ON_EXEC' (known: CLOSE_ON_FREE, DEFER_CALLBACKS)"),
        ("listener l bind DEFER_CALLBACKS\n", "bad.scn:1:17: unknown listener option 'DEFER_CALLBACKS' (known: CLOSE_ON_FREE, CLOSE_ON_EXEC, REUSEABLE, DISABLED, REUSEABLE_PORT)"),
        ("client c\nmain {\n  enable c\n}\n", "bad.scn:3:10: 'c' is a socketpair end (line 1), expected a bufferevent or a listener"),
        ("listener l bind\nmain {\n  enable l READ\n}\n", "bad.scn:3:10: 'enable l': a listener takes no flags"),
        ("bufferevent x pair y\nmain {\n  setcb x read read\n}\n", "bad.scn:3:16: a callback is named twice"),
        ("bufferevent x pair y\nmain {\n  trigger_event x SOMETHING\n}\n", "bad.scn:3:19: unknown bufferevent event 'SOMETHING' (known: READING, WRITING, EOF, ERROR, TIMEOUT, CONNECTED)"),
        ("bufferevent x pair x\n", "bad.scn:1:20: 'x' is already declared as a bufferevent at line 1"),
        ("socketpair a b\nlistener l bind accept a\n", "bad.scn:2:24: 'a' is already declared as a socketpair end at line 1"),
        ("bufferevent x pair y\nmain {\n  print x\n  close x\n}\n", "bad.scn:4:9: 'x' is a bufferevent (line 1), expected a socketpair end"),
        ("bufferevent x pair y\nlistener l bind\nmain {\n  free y\n  free l\n  print l\n}\n", "bad.scn:6:9: 'l' is a listener (line 2), expected an event or a bufferevent"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(src, want)| err(src) != *want)
        .map(|(src, want)| format!("source:\n{src}\nwant: {want}\ngot:  {}\n", err(src)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A valid scenario that lowers the number of priorities below an existing event's priority:
/// libevent returns 0 and aborts when the event is activated; evloop refuses the call, and the
/// runner reports it as an error line (rc=-1) and goes on, on every evloop backend.
#[test]
fn priority_init_below_an_event_is_an_error_line_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prio_down.scn");
    std::fs::write(
        &path,
        "base priorities 10\nevent t timer\nmain {\n  priority_init 2\n  add t 1ms\n  loop\n}\n",
    )
    .unwrap();
    for backend in ["epoll", "poll", "select", "mio"] {
        let out = Command::new(env!("CARGO_BIN_EXE_evconform"))
            .args(["run", "--backend", backend])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{backend}: {stdout}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "# evloop-trace v1",
                "0 priority_init 2 rc=-1",
                "0 add t tv=1000 rc=0",
                "0 loop flags=0",
                "1000 cb t #1 T",
                "1000 loop-end rc=1",
                "1000 end"
            ],
            "{backend}"
        );
    }
}

/// `check` over nothing is not a pass: zero scenarios, or a backend column that compared no
/// trace with a fixture, makes it fail.
#[test]
fn check_with_nothing_to_compare_fails() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evconform"))
        .args(["check", "--scenarios"])
        .arg(empty.path())
        .args(["--fixtures"])
        .arg(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("error: no scenarios"), "{stdout}");

    // One scenario, no fixtures: every column has zero comparisons.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("one.scn"),
        "event t timer\nmain {\n  add t 1ms\n  loop\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evconform"))
        .args(["check", "--backend", "epoll", "--scenarios"])
        .arg(dir.path())
        .args(["--fixtures"])
        .arg(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error: backend epoll: zero comparisons with a fixture"),
        "{stdout}"
    );
}
