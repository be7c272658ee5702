//! The listener (src/listener.rs) on epoll under virtual time: tests written to kill mutants that
//! `cargo mutants -f src/listener.rs` left alive (docs/mutation-testing.md).

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;

use evloop::backend::{Backend, EpollBackend, VirtualTime};
use evloop::{Base, Count, Listener, ListenerOptions, LoopExit, LoopFlags};

type B = VirtualTime<EpollBackend>;

fn base() -> Base<B> {
    Base::new(VirtualTime::new(EpollBackend::new().unwrap()))
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The options carry libevent's `LEV_OPT_*` values (event2/listener.h), bit for bit.
#[test]
fn options_have_libevent_values() {
    let values = [
        (ListenerOptions::LEAVE_SOCKETS_BLOCKING, 1u32 << 0),
        (ListenerOptions::CLOSE_ON_FREE, 1 << 1),
        (ListenerOptions::CLOSE_ON_EXEC, 1 << 2),
        (ListenerOptions::REUSEABLE, 1 << 3),
        (ListenerOptions::THREADSAFE, 1 << 4),
        (ListenerOptions::DISABLED, 1 << 5),
        (ListenerOptions::DEFERRED_ACCEPT, 1 << 6),
        (ListenerOptions::REUSEABLE_PORT, 1 << 7),
        (ListenerOptions::BIND_IPV6ONLY, 1 << 8),
    ];
    for (opt, bits) in values {
        assert_eq!(opt.bits(), bits, "{opt:?}");
    }
}

/// Each unsupported option is refused on its own, by `bind` and by `new`, and nothing is left
/// registered; the supported ones are accepted.
#[test]
fn each_unsupported_option_is_refused() {
    let mut b = base();
    for bad in [
        ListenerOptions::LEAVE_SOCKETS_BLOCKING,
        ListenerOptions::DEFERRED_ACCEPT,
        ListenerOptions::BIND_IPV6ONLY,
    ] {
        assert!(
            Listener::bind(&mut b, loopback(), bad, -1, None).is_err(),
            "{bad:?}"
        );
        let (s0, s1) = b.backend_mut().socketpair().unwrap();
        assert!(Listener::new(&mut b, s0, bad, None).is_err(), "{bad:?}");
        b.backend_mut().close(s0).unwrap();
        b.backend_mut().close(s1).unwrap();
    }
    let ok = ListenerOptions::CLOSE_ON_FREE
        | ListenerOptions::CLOSE_ON_EXEC
        | ListenerOptions::REUSEABLE
        | ListenerOptions::THREADSAFE
        | ListenerOptions::REUSEABLE_PORT;
    let l = Listener::bind(&mut b, loopback(), ok, -1, None).unwrap();
    assert!(l.is_live(&b));
    l.free(&mut b).unwrap();
    assert!(!l.is_live(&b));
}

/// A handle prints as `Listener(index#generation)`; a freed listener's slot is reused with the
/// next generation, and the old handle stays stale while the new one works.
#[test]
fn handles_are_generation_checked() {
    let mut b = base();
    let l = Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None).unwrap();
    assert_eq!(format!("{l:?}"), "Listener(0#0)");
    assert!(l.is_live(&b));
    l.free(&mut b).unwrap();
    let l2 = Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None).unwrap();
    assert_eq!(format!("{l2:?}"), "Listener(0#1)");
    assert!(!l.is_live(&b) && l.fd(&b).is_err() && l.free(&mut b).is_err());
    assert!(l2.is_live(&b) && l2.fd(&b).unwrap() >= 0);
    l2.free(&mut b).unwrap();
    assert!(!l2.is_live(&b));
}

/// An accept loop that ends on EAGAIN (the normal end) calls no error callback and leaves the
/// listener live and accepting.
#[test]
fn the_normal_end_of_the_accept_loop_is_no_error() {
    let mut b = base();
    let (accepted, errors) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let a = accepted.clone();
    let l = Listener::bind(
        &mut b,
        loopback(),
        ListenerOptions::CLOSE_ON_FREE,
        -1,
        Some(Box::new(move |b: &mut Base<B>, _, fd, _| {
            a.set(a.get() + 1);
            b.backend_mut().close(fd).unwrap();
        })),
    )
    .unwrap();
    let e = errors.clone();
    l.set_error_cb(&mut b, move |_, _, _| e.set(e.get() + 1))
        .unwrap();
    let addr = l.local_addr(&mut b).unwrap();
    let _c1 = TcpStream::connect(addr).unwrap();
    let _c2 = TcpStream::connect(addr).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!((accepted.get(), errors.get()), (2, 0));
    assert!(l.is_live(&b));
    let _c3 = TcpStream::connect(addr).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!((accepted.get(), errors.get()), (3, 0));
    l.free(&mut b).unwrap();
    assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
}

/// Dropping the base closes only what `CLOSE_ON_FREE` listeners own: a listener without it
/// leaves its socket open (still listening: a client connects), one with it closes its socket.
#[test]
fn dropping_the_base_closes_only_owned_listening_sockets() {
    let mut b = base();
    let kept = Listener::bind(&mut b, loopback(), ListenerOptions::NONE, -1, None).unwrap();
    let owned =
        Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None).unwrap();
    let kept_fd = kept.fd(&b).unwrap();
    let (kept_addr, owned_addr) = (
        kept.local_addr(&mut b).unwrap(),
        owned.local_addr(&mut b).unwrap(),
    );
    drop(b);
    assert!(
        TcpStream::connect(kept_addr).is_ok(),
        "the caller's socket stays open"
    );
    assert!(
        TcpStream::connect(owned_addr).is_err(),
        "the owned socket is closed"
    );
    EpollBackend::new().unwrap().close(kept_fd).unwrap();
}

/// A listener freed inside its own accept callback is stale at once for every call, though its
/// slot lives until the callback returns; then the loop ends and the owned socket is closed.
#[test]
fn freed_inside_its_callback_the_handle_is_stale_at_once() {
    let mut b = base();
    let results = Rc::new(Cell::new(None));
    let r = results.clone();
    let l = Listener::bind(
        &mut b,
        loopback(),
        ListenerOptions::CLOSE_ON_FREE,
        -1,
        Some(Box::new(move |b: &mut Base<B>, lev: Listener, fd, _| {
            b.backend_mut().close(fd).unwrap();
            lev.free(b).unwrap();
            r.set(Some([
                lev.free(b).is_err(),
                lev.enable(b).is_err(),
                lev.disable(b).is_err(),
                lev.set_cb(b, None).is_err(),
                lev.set_error_cb(b, |_, _, _| {}).is_err(),
                lev.fd(b).is_err(),
                lev.event(b).is_err(),
                !lev.is_live(b),
            ]));
        })),
    )
    .unwrap();
    let addr = l.local_addr(&mut b).unwrap();
    let _c1 = TcpStream::connect(addr).unwrap();
    let _c2 = TcpStream::connect(addr).unwrap();
    assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(results.get(), Some([true; 8]));
    assert!(TcpStream::connect(addr).is_err());
}

/// `set_accept_cb` installs the callback, and on a disabled listener it does not start
/// accepting: only `enable` does.
#[test]
fn set_accept_cb_on_a_disabled_listener_does_not_start_it() {
    let mut b = base();
    let opts = ListenerOptions::CLOSE_ON_FREE | ListenerOptions::DISABLED;
    let l = Listener::bind(&mut b, loopback(), opts, -1, None).unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    l.set_accept_cb(&mut b, move |b, _, fd, _| {
        a.set(a.get() + 1);
        b.backend_mut().close(fd).unwrap();
    })
    .unwrap();
    assert_eq!(b.num_events(Count::Added), 0);
    let addr = l.local_addr(&mut b).unwrap();
    let _c1 = TcpStream::connect(addr).unwrap();
    assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
    assert_eq!(accepted.get(), 0);
    l.enable(&mut b).unwrap();
    assert_eq!(b.num_events(Count::Added), 1);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(accepted.get(), 1);
    l.free(&mut b).unwrap();
}
