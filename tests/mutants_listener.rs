//! The listener (src/listener.rs) on epoll under virtual time: tests written to kill mutants that
//! `cargo mutants -f src/listener.rs` left alive (docs/mutation-testing.md).

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;

use evloop::backend::{Backend, EpollBackend, VirtualTime};
use evloop::{Base, Listener, ListenerOptions, LoopExit, LoopFlags};

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

/// A handle prints as `Listener(index#generation)`.
#[test]
fn debug_names_index_and_generation() {
    let mut b = base();
    let l = Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None).unwrap();
    assert_eq!(format!("{l:?}"), "Listener(0#0)");
    l.free(&mut b).unwrap();
    let l2 = Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None).unwrap();
    assert_eq!(format!("{l2:?}"), "Listener(0#1)");
    l2.free(&mut b).unwrap();
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
