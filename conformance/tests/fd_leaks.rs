//! Running scenarios must not leak descriptors in the evloop runner's process (`evconform fuzz`
//! runs thousands in one process; a leak ends in EMFILE or select's FD_SETSIZE): the ends the
//! runner opened are closed at the end of every run, and the finalizers of freed bufferevents
//! (which close CLOSE_ON_FREE sockets) run before the base goes.

use evloop_conformance::check::{Loaded, Runner};
use evloop_conformance::evloop_runner::{EvloopRunner, DEFAULT_BACKENDS};
use evloop_conformance::fuzz::case_scenario;
use evloop_conformance::ir;
use evloop_scenario::strategies::Config;

/// The tests of this file count the process's descriptors: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let link = std::fs::read_link(e.path()).unwrap_or_default();
                    format!("{} -> {}", e.file_name().to_string_lossy(), link.display())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn generated_scenarios_release_every_descriptor() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for b in DEFAULT_BACKENDS {
        for k in 0..400 {
            let sc = case_scenario(&Config::all(), 11, k).unwrap();
            let l = Loaded {
                name: "leak".into(),
                path: "leak.scn".into(),
                ir: ir::lower(&sc),
                scenario: sc.clone(),
            };
            let before = open_fds();
            let _ = EvloopRunner.run(&l, b);
            let after = open_fds();
            let leaked: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
            assert!(
                leaked.is_empty(),
                "{b}: case {k} leaked {leaked:?}:\n{}",
                evloop_conformance::scenario::print(&sc)
            );
        }
    }
}

/// A run that fails (here the runaway guard: a persistent write event on a writable socket
/// never stops) still closes its socketpair and frees its bufferevents' sockets.
#[test]
fn a_failed_run_releases_every_descriptor() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let src = "socketpair a b\nevent w fd a WRITE|PERSIST\nbufferevent s socket b CLOSE_ON_FREE\nmain {\n  add w\n  loop\n}\n";
    let sc = evloop_conformance::scenario::parse("runaway.scn", src).unwrap();
    let l = Loaded {
        name: "runaway".into(),
        path: "runaway.scn".into(),
        ir: ir::lower(&sc),
        scenario: sc,
    };
    for b in DEFAULT_BACKENDS {
        let before = open_fds();
        let r = EvloopRunner.run(&l, b);
        assert!(r.unwrap_err().contains("runaway"), "{b}");
        let after = open_fds();
        let leaked: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
        assert!(leaked.is_empty(), "{b}: leaked {leaked:?}");
    }
}
