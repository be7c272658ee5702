//! Child processes started by one worker thread must not keep the descriptors of an in-process
//! run of another thread alive (`evloop_conformance::spawn`). The scenario frees a listener
//! opened without LEV_OPT_CLOSE_ON_EXEC, then connects to its port: libevent and evloop both
//! get ECONNREFUSED, unless a child process started meanwhile inherited the listening socket and
//! still holds it, in which case the connect succeeds. A thread here starts short-lived
//! children all the time, as the libevent player's runs do during `evconform fuzz`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use evloop_conformance::check::{load, Runner};
use evloop_conformance::evloop_runner::EvloopRunner;

#[test]
fn children_started_meanwhile_do_not_hold_a_freed_listener() {
    let path = evloop_conformance::default_scenarios_dir()
        .join("regress_bufferevent_connect_fail_eventcb.scn");
    let l = load(&path).expect("the scenario loads");
    let first = EvloopRunner.run(&l, "epoll").expect("a run");
    assert!(
        first.contains("ECONNREFUSED"),
        "the connect to the freed listener is refused:\n{first}"
    );
    let stop = AtomicBool::new(false);
    let count = AtomicU32::new(0);
    let started = std::thread::scope(|s| {
        let spawner = s.spawn(|| {
            let mut live = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let child = evloop_conformance::spawn::spawn(Command::new("sleep").arg("0.05"))
                    .expect("start sleep");
                live.push(child);
                count.fetch_add(1, Ordering::SeqCst);
                live.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            }
            for mut c in live {
                let _ = c.wait();
            }
        });
        let mut runs = 0;
        let mut result = Ok(());
        // until the spawner has started enough children to overlap many runs
        while count.load(Ordering::SeqCst) < 200 && runs < 100_000 {
            runs += 1;
            let t = EvloopRunner.run(&l, "epoll").expect("a run");
            if t != first {
                result = Err(format!(
                    "run {runs} differs from the first:\n{t}\nfirst:\n{first}"
                ));
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        spawner.join().expect("the spawner thread");
        result.map(|()| (count.load(Ordering::SeqCst), runs))
    });
    let (started, runs) = started.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        started >= 200 && runs >= 200,
        "{started} children were started during {runs} runs"
    );
}
