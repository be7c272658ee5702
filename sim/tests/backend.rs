//! SimBackend's operating-system model: sockets, readiness in epoll's order, the standalone
//! wait rule, signals, and Faulty over real and simulated backends.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::backend::{Backend, Environment, ListenOptions, Ready, Shutdown};
use evloop::{Base, Events, LoopFlags, Time};
use evloop_sim::{Faulty, FaultyConfig, Sim, SimBackend};

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().expect("an OS error")
}

#[test]
fn socketpair_read_write_eof_epipe_ebadf() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    assert_eq!(b.write(a, b"hello").unwrap(), 5);
    let mut buf = [0u8; 3];
    assert_eq!(b.read(c, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"hel");
    assert_eq!(errno(b.read(a, &mut buf).unwrap_err()), libc::EAGAIN);
    b.close(a).unwrap();
    assert_eq!(b.read(c, &mut buf).unwrap(), 2);
    assert_eq!(b.read(c, &mut buf).unwrap(), 0, "EOF after the data");
    assert_eq!(errno(b.write(c, b"x").unwrap_err()), libc::EPIPE);
    assert_eq!(errno(b.read(a, &mut buf).unwrap_err()), libc::EBADF);
    assert_eq!(errno(b.close(a).unwrap_err()), libc::EBADF);
}

#[test]
fn close_with_unread_data_resets_the_peer() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    b.write(a, b"unread").unwrap();
    b.close(c).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(errno(b.read(a, &mut buf).unwrap_err()), libc::ECONNRESET);
    assert_eq!(b.read(a, &mut buf).unwrap(), 0);
}

/// Linux's AF_UNIX accounting (sim/src/world.rs): 44 writes of 4096 bytes fill the default
/// send buffer (each skb costs 4864 bytes of truesize); a partial read frees nothing, and the
/// writer is writable again only once at most a quarter of the buffer is unconsumed (34 whole
/// skbs read, 10 left).
#[test]
fn a_full_socket_is_not_writable_until_the_peer_reads() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    let chunk = [7u8; 4096];
    let mut written = 0;
    while let Ok(n) = b.write(a, &chunk) {
        written += n;
    }
    assert_eq!(written, 180_224);
    b.add(a, Events::NONE, Events::WRITE).unwrap();
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(ready.is_empty());
    let mut buf = vec![0u8; 4096];
    assert_eq!(b.read(c, &mut buf[..100]).unwrap(), 100);
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(ready.is_empty(), "a partial read frees no skb");
    assert_eq!(b.read(c, &mut buf[..3996]).unwrap(), 3996);
    for _ in 1..33 {
        assert_eq!(b.read(c, &mut buf).unwrap(), 4096);
    }
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(
        ready.is_empty(),
        "11 skbs unconsumed: still above a quarter"
    );
    assert_eq!(b.read(c, &mut buf).unwrap(), 4096);
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert_eq!(
        ready,
        vec![Ready {
            fd: a,
            events: Events::WRITE | Events::ET
        }]
    );
}

/// epoll's ready list: descriptors in the order they became ready; a level-triggered one that
/// is still ready goes back to the tail after each report.
#[test]
fn readiness_in_epoll_ready_list_order() {
    let mut b = SimBackend::new(1);
    let (a1, b1) = b.socketpair().unwrap();
    let (a2, b2) = b.socketpair().unwrap();
    let (a3, b3) = b.socketpair().unwrap();
    for fd in [b1, b2, b3] {
        b.add(fd, Events::NONE, Events::READ).unwrap();
    }
    b.write(a3, b"3").unwrap();
    b.write(a1, b"1").unwrap();
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    let order: Vec<_> = ready.iter().map(|r| r.fd).collect();
    assert_eq!(order, vec![b3, b1]);
    // b2 becomes ready after both were reported and re-queued: it comes last.
    b.write(a2, b"2").unwrap();
    ready.clear();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    let order: Vec<_> = ready.iter().map(|r| r.fd).collect();
    assert_eq!(order, vec![b3, b1, b2]);
}

#[test]
fn edge_triggered_reports_once_per_arrival() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    b.add(c, Events::NONE, Events::READ | Events::ET).unwrap();
    b.write(a, b"x").unwrap();
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert_eq!(ready.len(), 1);
    ready.clear();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(ready.is_empty(), "no new edge");
    b.write(a, b"y").unwrap();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert_eq!(ready.len(), 1);
}

#[test]
fn shutdown_write_gives_the_peer_closed() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    b.add(c, Events::NONE, Events::CLOSED).unwrap();
    b.shutdown(a, Shutdown::Write).unwrap();
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert_eq!(
        ready,
        vec![Ready {
            fd: c,
            events: Events::CLOSED | Events::ET
        }]
    );
}

struct Script(Vec<(Time, i32)>);

impl Environment<SimBackend> for Script {
    fn next_input(&self) -> Option<Time> {
        self.0.first().map(|x| x.0)
    }
    fn fire(&mut self, now: Time, backend: &mut SimBackend) {
        while self.0.first().is_some_and(|x| x.0 <= now) {
            let (_, fd) = self.0.remove(0);
            backend.write(fd, b"!").unwrap();
        }
    }
}

/// The standalone wait follows VirtualTime's rule (IR.md §6): the clock moves to the next
/// input inside the wait, or by the (millisecond-rounded) timeout.
#[test]
fn standalone_wait_rule() {
    let mut b = SimBackend::new(1);
    let (a, c) = b.socketpair().unwrap();
    b.add(c, Events::NONE, Events::READ).unwrap();
    b.set_environment(Box::new(Script(vec![(Time(2500), a)])));
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::from_micros(1200)), &mut ready)
        .unwrap();
    assert!(ready.is_empty());
    assert_eq!(b.now(), Time(2000), "1.2 ms rounds up to 2 ms");
    b.dispatch(Some(Duration::from_millis(10)), &mut ready)
        .unwrap();
    assert_eq!(b.now(), Time(2500), "the input fires inside the wait");
    assert_eq!(ready.len(), 1);
    b.del(c, Events::READ, Events::READ).unwrap();
    ready.clear();
    assert!(b.dispatch(None, &mut ready).is_err(), "blocked forever");
}

#[test]
fn signals_reach_the_host_through_its_pipe() {
    let mut base = Base::new(SimBackend::new(1));
    let hits = std::rc::Rc::new(std::cell::Cell::new(0));
    let h = hits.clone();
    let ev = base
        .signal_new(10, move |_, _, _| h.set(h.get() + 1))
        .unwrap();
    base.add(ev, None).unwrap();
    base.backend_mut().raise(10).unwrap();
    base.backend_mut().raise(10).unwrap();
    base.run(LoopFlags::ONCE).unwrap();
    assert_eq!(
        hits.get(),
        2,
        "two deliveries, one callback call each (ncalls)"
    );
}

#[test]
fn connections_between_hosts() {
    let mut sim = Sim::new(5);
    let server = sim.add_host(|base| {
        let fd = base
            .backend_mut()
            .listen(
                "0.0.0.0:80".parse().unwrap(),
                ListenOptions {
                    backlog: 8,
                    ..Default::default()
                },
            )
            .unwrap();
        let ev = base
            .event_new(fd, Events::READ | Events::PERSIST, move |b, _, _| {
                while let Ok((c, _)) = b.backend_mut().accept(fd) {
                    b.backend_mut().write(c, b"hi").unwrap();
                    b.backend_mut().close(c).unwrap();
                }
            })
            .unwrap();
        base.add(ev, None).unwrap();
    });
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    sim.add_host(move |base| {
        let addr: SocketAddr = (evloop_sim::host_addr(server), 80).into();
        let (fd, _) = base.backend_mut().connect(addr).unwrap();
        let ev = base
            .event_new(fd, Events::READ | Events::PERSIST, move |b, id, _| {
                let mut buf = [0u8; 16];
                match b.backend_mut().read(fd, &mut buf) {
                    Ok(0) => {
                        b.del(id).unwrap();
                        b.backend_mut().close(fd).unwrap();
                    }
                    Ok(n) => g.borrow_mut().extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            })
            .unwrap();
        base.add(ev, None).unwrap();
    });
    sim.run_until_quiescent();
    assert_eq!(&*got.borrow(), b"hi");
    // Two one-way latencies for the handshake, one for the data.
    assert!(sim.now() >= Time(200));
}

#[test]
fn connecting_to_nothing_is_refused() {
    let mut sim = Sim::new(5);
    let err = std::rc::Rc::new(std::cell::Cell::new(0));
    let e = err.clone();
    sim.add_host(move |base| {
        let (fd, _) = base
            .backend_mut()
            .connect("127.0.0.1:81".parse().unwrap())
            .unwrap();
        let ev = base
            .event_new(fd, Events::WRITE, move |b, _, _| {
                let r = b.backend_mut().take_socket_error(fd).unwrap();
                e.set(r.and_then(|x| x.raw_os_error()).unwrap_or(0));
            })
            .unwrap();
        base.add(ev, None).unwrap();
    });
    sim.run_until_quiescent();
    assert_eq!(err.get(), libc::ECONNREFUSED);
}

fn faulty_cfg(seed: u64) -> FaultyConfig {
    FaultyConfig {
        seed,
        eagain_read: 0.3,
        eagain_write: 0.3,
        short_read: 0.5,
        short_write: 0.5,
        spurious: 0.3,
        only: None,
    }
}

/// Bytes through Faulty still arrive complete and in order (short I/O and EAGAIN only delay).
fn copy_through<B: Backend>(mut b: Faulty<B>) -> Vec<u8> {
    let (a, c) = b.socketpair().unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut off = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 700];
    for _ in 0..100_000 {
        if off < data.len() {
            if let Ok(n) = b.write(a, &data[off..]) {
                off += n;
            }
        }
        if let Ok(n) = b.read(c, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
    assert!(!b.decisions().is_empty(), "faults were injected");
    got
}

#[test]
fn faulty_over_a_real_backend_and_over_the_simulator() {
    let real = evloop::backend::PollBackend::new().unwrap();
    copy_through(Faulty::new(real, faulty_cfg(3)));
    copy_through(Faulty::new(SimBackend::new(3), faulty_cfg(3)));
}

#[test]
fn faulty_owes_a_report_after_a_spurious_eagain() {
    let mut b = Faulty::new(
        SimBackend::new(1),
        FaultyConfig {
            seed: 9,
            eagain_read: 1.0,
            ..FaultyConfig::default()
        },
    );
    let (a, c) = b.socketpair().unwrap();
    b.add(c, Events::NONE, Events::READ | Events::ET).unwrap();
    b.write(a, b"x").unwrap();
    let mut ready = Vec::new();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(errno(b.read(c, &mut buf).unwrap_err()), libc::EAGAIN);
    ready.clear();
    b.dispatch(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(ready
        .iter()
        .any(|r| r.fd == c && r.events.contains(Events::READ)));
}
