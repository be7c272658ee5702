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
        ("event b timer\non b.read {\n}\n", "bad.scn:2:5: callback bodies of the form 'on NAME.callback' are reserved for bufferevents and listeners (not supported yet)"),
        ("listener l\n", "bad.scn:1:1: 'listener' is reserved for a later version of the language (not supported yet)"),
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
