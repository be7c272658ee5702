//! A scenario that closes the descriptor an event still watches and then opens a socket relies
//! on the kernel giving that socket the lowest free number, as it does in the libevent player's
//! own process: here the client socket takes the closed end's number, so poll keeps polling a
//! valid descriptor with nothing to read and the event never runs (libevent's trace). In
//! `evconform`'s process other worker threads open and close descriptors at the same time
//! (pipes to the children they start); if one of them takes or frees a lower number, the client
//! socket gets another one, poll reports `POLLNVAL` on the closed descriptor, and the event runs
//! as READ on every pass (seed 3011202640 case 88615). So evloop's real backends run in a child
//! process ([`ISOLATED_BACKENDS`]), which this test checks under a thread that churns
//! descriptors all along, through the same dispatch as `evconform check` and `fuzz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use evloop_conformance::check::{self, Dispatch, Runner};
use evloop_conformance::evloop_runner::{evloop_runner, IsolatedRunner, ISOLATED_BACKENDS};
use evloop_conformance::scenario;

const SRC: &str = "socketpair a0 b0
event e0 fd b0 READ|PERSIST
listener l0 bind CLOSE_ON_FREE accept x0
client k0
main {
  add e0
  close b0
  connect k0 l0
  loopexit 5ms
  loop
}
";

#[test]
fn descriptor_reuse_is_exact_while_other_threads_open_and_close_descriptors() {
    let sc = scenario::parse("fd_reuse.scn", SRC).unwrap();
    let loaded = check::Loaded {
        name: "fd_reuse".into(),
        path: "fd_reuse.scn".into(),
        ir: evloop_conformance::ir::lower(&sc),
        scenario: sc,
    };
    let dispatch = Dispatch(vec![
        Box::new(IsolatedRunner::new(env!("CARGO_BIN_EXE_evconform").into())),
        evloop_runner().expect("the evloop runner"),
    ]);
    for backend in ["epoll", "poll", "mio"] {
        assert!(ISOLATED_BACKENDS.contains(&backend), "{backend}");
    }
    let expected = dispatch.run(&loaded, "poll").unwrap();
    assert!(
        !expected.contains("cb e0"),
        "e0 watches the client socket, which has nothing to read:\n{expected}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                held.push(std::os::unix::net::UnixStream::pair().unwrap());
                if held.len() > 3 {
                    held.remove((n % 3) as usize);
                }
                n += 1;
            }
            n
        })
    };
    for backend in ["poll", "epoll", "mio"] {
        let want = if backend == "poll" {
            expected.clone()
        } else {
            dispatch.run(&loaded, backend).unwrap()
        };
        for run in 0..40 {
            let got = dispatch.run(&loaded, backend).unwrap();
            assert_eq!(got, want, "{backend}, run {run}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0);
}
