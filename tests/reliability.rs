//! Misuse that must give an error, never a panic or a silently wrong result (issue 10): a
//! `priority_init` below an existing event's priority, ids and handles handed to another base,
//! and a panicking callback. One suite, instantiated per backend under `VirtualTime`.

mod util;

macro_rules! reliability_suite {
    ($inner:ty, $mk_inner:expr) => {
        use std::cell::Cell;
        use std::net::SocketAddr;
        use std::panic::{catch_unwind, AssertUnwindSafe};
        use std::rc::Rc;

        use evloop::backend::VirtualTime;
        use evloop::Backend;
        use evloop::{
            Base, BevOptions, BufferEvent, Error, Events, Listener, ListenerOptions, LoopExit,
        };

        use crate::util::*;

        type B = VirtualTime<$inner>;

        fn base() -> Base<B> {
            Base::new(VirtualTime::new($mk_inner))
        }

        fn loopback() -> SocketAddr {
            "127.0.0.1:0".parse().unwrap()
        }

        fn invalid(r: evloop::Result<()>) -> bool {
            matches!(r, Err(Error::Invalid(_)))
        }

        // ---- defect 1: priority_init below an existing event's priority -------------------

        #[test]
        fn priority_init_below_a_timer_priority_is_refused_and_the_loop_runs() {
            let log = Log::default();
            let mut b = base();
            b.priority_init(10).unwrap();
            let t = timed(&mut b, &log, "t");
            assert_eq!(b.priority(t).unwrap(), 5);
            assert!(invalid(b.priority_init(2)), "t has priority 5 >= 2");
            assert!(invalid(b.priority_init(5)), "t has priority 5 >= 5");
            assert_eq!(b.npriorities(), 10, "a refused call changes nothing");
            b.add(t, Some(ms(1))).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "t(T)@1");
            // Allowed again once no event is that low.
            b.priority_set(t, 1).unwrap();
            b.priority_init(2).unwrap();
            b.add(t, Some(ms(1))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "t(T)@2");
        }

        #[test]
        fn priority_init_below_fd_events_bufferevents_and_listeners_is_refused() {
            let mut b = base();
            b.priority_init(10).unwrap();
            let (s1, s2) = b.backend_mut().socketpair().unwrap();
            let e = b.event_new(s1, Events::READ, |_, _, _| {}).unwrap();
            assert!(invalid(b.priority_init(2)), "fd event at priority 5");
            b.free(e).unwrap();
            b.priority_init(10).unwrap();

            let (p1, p2) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            assert!(invalid(b.priority_init(2)), "pair's deferred callbacks");
            p1.free(&mut b).unwrap();
            p2.free(&mut b).unwrap();
            // The pair's finalizers (at priority 5) still exist until the loop runs them.
            assert!(invalid(b.priority_init(2)), "pending finalizers");
            b.dispatch().unwrap();
            b.priority_init(2).unwrap();
            b.priority_init(10).unwrap();

            let accepted = Rc::new(Cell::new(0));
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
            assert!(
                invalid(b.priority_init(2)),
                "listener's event at priority 5"
            );
            l.free(&mut b).unwrap();
            b.priority_init(2).unwrap();
            assert_eq!(accepted.get(), 0);
            b.backend_mut().close(s1).unwrap();
            b.backend_mut().close(s2).unwrap();
        }

        // ---- defect 2: ids and handles are tied to their base -----------------------------

        #[test]
        fn event_ids_from_another_base_are_stale() {
            let (mut a, mut b) = (base(), base());
            let log = Log::default();
            let ea = timed(&mut a, &log, "a");
            let eb = timed(&mut b, &log, "b");
            assert_eq!(ea.index(), eb.index(), "both bases issue their first slot");
            assert_ne!(ea, eb);
            assert!(matches!(a.add(eb, Some(ms(1))), Err(Error::StaleId)));
            assert!(matches!(a.free(eb), Err(Error::StaleId)));
            assert!(matches!(a.del(eb), Err(Error::StaleId)));
            assert!(matches!(
                a.active(eb, Events::TIMEOUT, 1),
                Err(Error::StaleId)
            ));
            assert!(matches!(a.priority(eb), Err(Error::StaleId)));
            assert!(matches!(a.is_pending(eb), Err(Error::StaleId)));
            // a's own event is untouched.
            assert!(!a.is_pending(ea).unwrap());
            a.add(ea, Some(ms(1))).unwrap();
            a.dispatch().unwrap();
            assert_eq!(log.joined(), "a(T)@1");
        }

        #[test]
        fn bufferevent_and_listener_handles_from_another_base_are_stale() {
            let (mut a, mut b) = (base(), base());
            let (pa, _) = BufferEvent::pair_new(&mut a, BevOptions::NONE).unwrap();
            let (pb, _) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            assert_eq!(
                format!("{pa:?}"),
                format!("{pb:?}"),
                "same slot and generation"
            );
            assert!(matches!(
                pb.enable(&mut a, Events::READ),
                Err(Error::StaleId)
            ));
            assert!(matches!(pb.write(&mut a, b"x"), Err(Error::StaleId)));
            assert!(matches!(pb.free(&mut a), Err(Error::StaleId)));
            pa.write(&mut a, b"still mine").unwrap();
            pa.free(&mut a).unwrap();

            let la = Listener::bind(&mut a, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None)
                .unwrap();
            let lb = Listener::bind(&mut b, loopback(), ListenerOptions::CLOSE_ON_FREE, -1, None)
                .unwrap();
            assert_eq!(format!("{la:?}"), format!("{lb:?}"));
            assert!(matches!(lb.fd(&a), Err(Error::StaleId)));
            assert!(matches!(lb.disable(&mut a), Err(Error::StaleId)));
            assert!(matches!(lb.free(&mut a), Err(Error::StaleId)));
            assert!(la.fd(&a).unwrap() >= 0);
            la.free(&mut a).unwrap();
            lb.free(&mut b).unwrap();
        }

        // ---- defect 3: a panicking callback does not poison the base ----------------------

        #[test]
        fn a_panicking_callback_leaves_a_usable_base() {
            let log = Log::default();
            let mut b = base();
            let boom = b
                .timer_new(|_, _, _| panic!("callback panics on purpose"))
                .unwrap();
            let later = timed(&mut b, &log, "later");
            b.add(boom, Some(ms(1))).unwrap();
            b.add(later, Some(ms(2))).unwrap();
            let r = catch_unwind(AssertUnwindSafe(|| b.dispatch()));
            assert!(r.is_err(), "the panic reaches the caller");
            // The loop state was restored: not Reentrant, and the rest still runs.
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "later(T)@2");
            // What is left: the event that panicked, registered but with no callback.
            b.add(boom, Some(ms(1))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.len(), 0);
            b.free(boom).unwrap();
            // Nested loops after the panic still report reentrance correctly.
            let inner = Rc::new(Cell::new(None));
            let i = inner.clone();
            let t = b
                .timer_new(move |b, _, _| {
                    i.set(Some(matches!(b.dispatch(), Err(Error::Reentrant))))
                })
                .unwrap();
            b.add(t, Some(ms(1))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(inner.get(), Some(true));
        }
    };
}

mod virtual_time_epoll {
    reliability_suite!(
        evloop::backend::EpollBackend,
        evloop::backend::EpollBackend::new().unwrap()
    );
}
mod virtual_time_poll {
    reliability_suite!(
        evloop::backend::PollBackend,
        evloop::backend::PollBackend::new().unwrap()
    );
}
mod virtual_time_select {
    reliability_suite!(
        evloop::backend::SelectBackend,
        evloop::backend::SelectBackend::new().unwrap()
    );
}
mod virtual_time_mio {
    reliability_suite!(
        evloop::backend::MioBackend,
        evloop::backend::MioBackend::new().unwrap()
    );
}
