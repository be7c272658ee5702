//! The connection listener (SEMANTICS.md §8) on every real backend under virtual time: ports of
//! libevent's `listener/*` regression tests, named after them, plus the accept loop, options,
//! enable/disable and free.

mod util;

macro_rules! listener_suite {
    ($inner:ty, $mk:expr) => {
        use std::cell::Cell;
        use std::io::Read;
        use std::net::{SocketAddr, TcpStream};
        use std::rc::Rc;

        use evloop::backend::{Backend, VirtualTime};
        use evloop::{Base, Count, Events, Fd, Listener, ListenerOptions, LoopExit, LoopFlags};

        use crate::util::*;

        type B = VirtualTime<$inner>;

        fn base() -> Base<B> {
            Base::new(VirtualTime::new($mk))
        }

        fn loopback() -> SocketAddr {
            "127.0.0.1:0".parse().unwrap()
        }

        const FLAGS: ListenerOptions = ListenerOptions::from_bits(
            ListenerOptions::CLOSE_ON_FREE.bits() | ListenerOptions::REUSEABLE.bits(),
        );

        /// `acceptcb`: count down, close the connection, disable at zero.
        fn countdown(count: &Rc<Cell<i32>>) -> evloop::listener::AcceptCb<B> {
            let c = count.clone();
            Box::new(move |b: &mut Base<B>, lev: Listener, fd: Fd, _| {
                c.set(c.get() - 1);
                b.backend_mut().close(fd).unwrap();
                if c.get() == 0 {
                    lev.disable(b).unwrap();
                }
            })
        }

        #[test]
        fn randport() {
            let mut b = base();
            let (count1, count2) = (Rc::new(Cell::new(2)), Rc::new(Cell::new(1)));
            let flags = FLAGS | ListenerOptions::CLOSE_ON_EXEC;
            let l1 =
                Listener::bind(&mut b, loopback(), flags, -1, Some(countdown(&count1))).unwrap();
            let l2 =
                Listener::bind(&mut b, loopback(), flags, -1, Some(countdown(&count2))).unwrap();
            assert!(l1.fd(&b).unwrap() >= 0 && l2.fd(&b).unwrap() >= 0);
            let (a1, a2) = (
                l1.local_addr(&mut b).unwrap(),
                l2.local_addr(&mut b).unwrap(),
            );
            assert!(a1.is_ipv4() && a2.is_ipv4());
            assert_eq!(a1.ip(), a2.ip());
            assert_ne!(a1.port(), a2.port());
            let _c = [
                TcpStream::connect(a1).unwrap(),
                TcpStream::connect(a1).unwrap(),
                TcpStream::connect(a2).unwrap(),
            ];
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!((count1.get(), count2.get()), (0, 0));
            l1.free(&mut b).unwrap();
            l2.free(&mut b).unwrap();
        }

        #[test]
        fn error() {
            // A readable socketpair end is no listening socket: accept fails with EINVAL, a
            // non-retriable error, and the error callback runs (it disables the listener).
            let mut b = base();
            let (s0, s1) = b.backend_mut().socketpair().unwrap();
            assert_eq!(b.backend_mut().write(s1, b"hello").unwrap(), 5);
            let count = Rc::new(Cell::new(1));
            let lev = Listener::new(&mut b, s0, FLAGS, Some(countdown(&count))).unwrap();
            let c = count.clone();
            lev.set_error_cb(&mut b, move |b, lev, e| {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                c.set(1000);
                lev.disable(b).unwrap();
            })
            .unwrap();
            b.dispatch().unwrap();
            assert_eq!(count.get(), 1000);
            lev.free(&mut b).unwrap();
            b.backend_mut().close(s1).unwrap();
        }

        #[test]
        fn close_accepted_fd() {
            // The callback frees the listener inside the accept loop; the loop then ends and the
            // listening socket is closed when the callback returns.
            let mut b = base();
            let count = Rc::new(Cell::new(1));
            let c = count.clone();
            let lev = Listener::bind(
                &mut b,
                loopback(),
                FLAGS,
                -1,
                Some(Box::new(move |b: &mut Base<B>, lev: Listener, fd, _| {
                    c.set(c.get() - 1);
                    b.backend_mut().close(fd).unwrap();
                    if c.get() == 0 {
                        lev.free(b).unwrap();
                        assert!(!lev.is_live(b));
                    }
                })),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            let _c1 = TcpStream::connect(addr).unwrap();
            let _c2 = TcpStream::connect(addr).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(count.get(), 0);
            assert!(lev.free(&mut b).is_err());
            assert!(TcpStream::connect(addr).is_err());
        }

        #[test]
        fn immediate_close() {
            // Two connections queued, a count of 1: the callback disables the listener after
            // the first, which ends the accept loop; nothing else is left, the loop returns.
            let mut b = base();
            let count = Rc::new(Cell::new(1));
            let lev =
                Listener::bind(&mut b, loopback(), FLAGS, -1, Some(countdown(&count))).unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            let _c1 = TcpStream::connect(addr).unwrap();
            let _c2 = TcpStream::connect(addr).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(count.get(), 0);
            lev.free(&mut b).unwrap();
        }

        #[test]
        fn accept_loop_runs_one_callback_per_connection_inside_one_event() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let lev = Listener::bind(
                &mut b,
                loopback(),
                FLAGS,
                16,
                Some(Box::new(
                    move |b: &mut Base<B>, _, fd: Fd, peer: SocketAddr| {
                        l.push(format!("accept {}", peer.ip()));
                        b.backend_mut().write(fd, b"hi").unwrap();
                        b.backend_mut().close(fd).unwrap();
                    },
                )),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            // A zero timer made active in the same iteration runs after all the accepts.
            let l = log.clone();
            let z = b.timer_new(move |_, _, _| l.push("timer")).unwrap();
            let mut clients: Vec<TcpStream> =
                (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
            b.add(z, Some(ms(0))).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(
                log.joined(),
                "accept 127.0.0.1 accept 127.0.0.1 accept 127.0.0.1 accept 127.0.0.1 timer"
            );
            for c in &mut clients {
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                assert_eq!(s, "hi");
            }
            lev.free(&mut b).unwrap();
        }

        #[test]
        fn disabled_option_enable_disable_and_set_cb() {
            let mut b = base();
            let count = Rc::new(Cell::new(100));
            let lev = Listener::bind(
                &mut b,
                loopback(),
                FLAGS | ListenerOptions::DISABLED,
                -1,
                Some(countdown(&count)),
            )
            .unwrap();
            assert_eq!(b.num_events(Count::Added), 0);
            let addr = lev.local_addr(&mut b).unwrap();
            let _c1 = TcpStream::connect(addr).unwrap();
            assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
            lev.enable(&mut b).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(count.get(), 99);
            lev.disable(&mut b).unwrap();
            assert_eq!(b.num_events(Count::Added), 0);
            // Enabled without a callback: nothing is added until a callback is set.
            lev.set_cb(&mut b, None).unwrap();
            lev.enable(&mut b).unwrap();
            assert_eq!(b.num_events(Count::Added), 0);
            let _c2 = TcpStream::connect(addr).unwrap();
            lev.set_cb(&mut b, Some(countdown(&count))).unwrap();
            assert_eq!(b.num_events(Count::Added), 1);
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(count.get(), 98);
            lev.free(&mut b).unwrap();
            assert_eq!(b.num_events(Count::Added), 0);
            // CLOSE_ON_FREE closed the socket at once: nobody listens there any more.
            assert!(TcpStream::connect(addr).is_err());
        }

        #[test]
        fn bind_rejects_backlog_zero_and_unsupported_options() {
            let mut b = base();
            assert!(Listener::bind(&mut b, loopback(), FLAGS, 0, None).is_err());
            let bad = FLAGS | ListenerOptions::LEAVE_SOCKETS_BLOCKING;
            assert!(Listener::bind(&mut b, loopback(), bad, -1, None).is_err());
        }

        #[test]
        fn reuseable_port_lets_two_listeners_share_a_port() {
            let mut b = base();
            let flags = FLAGS | ListenerOptions::REUSEABLE_PORT;
            let l1 = Listener::bind(&mut b, loopback(), flags, -1, None).unwrap();
            let addr = l1.local_addr(&mut b).unwrap();
            let l2 = Listener::bind(&mut b, addr, flags, -1, None).unwrap();
            assert_eq!(l2.local_addr(&mut b).unwrap(), addr);
            // Without REUSEABLE_PORT the port is taken.
            assert!(Listener::bind(&mut b, addr, FLAGS, -1, None).is_err());
            l1.free(&mut b).unwrap();
            l2.free(&mut b).unwrap();
        }

        #[test]
        fn listener_event_is_at_the_default_priority() {
            let mut b = base();
            b.priority_init(5).unwrap();
            let lev = Listener::bind(&mut b, loopback(), FLAGS, -1, None).unwrap();
            let ev = lev.event(&b).unwrap();
            assert_eq!(b.priority(ev).unwrap(), 2);
            assert_eq!(b.events_of(ev).unwrap(), Events::READ | Events::PERSIST);
            lev.free(&mut b).unwrap();
        }

        #[test]
        fn without_an_error_callback_the_accept_error_is_only_logged() {
            let mut b = base();
            let (s0, s1) = b.backend_mut().socketpair().unwrap();
            b.backend_mut().write(s1, b"x").unwrap();
            let count = Rc::new(Cell::new(5));
            let lev = Listener::new(&mut b, s0, FLAGS, Some(countdown(&count))).unwrap();
            // The fd stays readable and the error repeats: run two passes only.
            b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
            b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
            assert_eq!(count.get(), 5);
            lev.free(&mut b).unwrap();
            b.backend_mut().close(s1).unwrap();
        }
    };
}

mod epoll {
    listener_suite!(
        evloop::backend::EpollBackend,
        evloop::backend::EpollBackend::new().unwrap()
    );
}
mod poll {
    listener_suite!(
        evloop::backend::PollBackend,
        evloop::backend::PollBackend::new().unwrap()
    );
}
mod select {
    listener_suite!(
        evloop::backend::SelectBackend,
        evloop::backend::SelectBackend::new().unwrap()
    );
}
mod mio {
    listener_suite!(
        evloop::backend::MioBackend,
        evloop::backend::MioBackend::new().unwrap()
    );
}
