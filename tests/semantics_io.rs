//! I/O and signal semantics of SEMANTICS.md §2, §5 and §6 on every real backend (real sockets,
//! real signals, real time). These tests assert orders and flags, never durations.
//!
//! Signals are process-wide, so every test that adds one holds `SIGNALS`.

mod util;

use std::sync::Mutex;

static SIGNALS: Mutex<()> = Mutex::new(());

fn signal_lock() -> std::sync::MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(|e| e.into_inner())
}

macro_rules! io_suite {
    ($backend:ty, $mk:expr) => {
        use std::cell::Cell;
        use std::rc::Rc;

        use evloop::backend::Shutdown;
        use evloop::{Backend, Base, Count, Events, LoopExit, LoopFlags};

        use crate::util::*;

        type B = $backend;

        fn base() -> Base<B> {
            Base::new($mk)
        }

        fn pair(b: &mut Base<B>) -> (i32, i32) {
            b.backend_mut().socketpair().unwrap()
        }

        const ONCE_NB: LoopFlags = LoopFlags::ONCE.union(LoopFlags::NONBLOCK);

        #[test]
        fn e2a_nonpersistent_is_not_pending_inside_its_callback_persistent_is() {
            let log = Log::default();
            let mut b = base();
            let (s0, _s1) = pair(&mut b);
            for flags in [Events::WRITE, Events::WRITE | Events::PERSIST] {
                let l = log.clone();
                let e = b
                    .event_new(s0, flags, move |b, id, w| {
                        let (p, _) = b
                            .pending(id, Events::READ | Events::WRITE | Events::TIMEOUT)
                            .unwrap();
                        l.push(format!("cb({w}) pending={p}"));
                    })
                    .unwrap();
                b.add(e, Some(ms(5000))).unwrap();
                b.run(LoopFlags::ONCE).unwrap();
                b.free(e).unwrap();
            }
            assert_eq!(log.joined(), "cb(W) pending=0 cb(W) pending=TW");
        }

        #[test]
        fn e2c_io_once_events_run_after_immediate_ones_in_reverse_add_order() {
            let log = Log::default();
            let mut b = base();
            let (s0, _s1) = pair(&mut b);
            let l = log.clone();
            b.once(-1, Events::TIMEOUT, None, move |_, w| {
                l.push(format!("now({w})"))
            })
            .unwrap();
            let l = log.clone();
            b.once(s0, Events::WRITE, None, move |_, w| {
                l.push(format!("write-once({w})"))
            })
            .unwrap();
            let l = log.clone();
            b.once(s0, Events::WRITE | Events::TIMEOUT, None, move |_, w| {
                l.push(format!("wt-once({w})"))
            })
            .unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "now(T) wt-once(W) write-once(W)");
        }

        #[test]
        fn level_triggered_refires_until_drained() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let r = logged(&mut b, &log, "r", s0, Events::READ | Events::PERSIST);
            b.add(r, None).unwrap();
            b.backend_mut().write(s1, b"abc").unwrap();
            for _ in 0..3 {
                b.run(ONCE_NB).unwrap();
            }
            assert_eq!(log.joined(), "r(R) r(R) r(R)");
            let mut buf = [0u8; 8];
            assert_eq!(b.backend_mut().read(s0, &mut buf).unwrap(), 3);
            b.run(ONCE_NB).unwrap();
            assert_eq!(log.len(), 0);
        }

        #[test]
        fn edge_triggered_fires_once_per_edge_and_reports_et() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let r = logged(
                &mut b,
                &log,
                "r",
                s0,
                Events::READ | Events::PERSIST | Events::ET,
            );
            b.add(r, None).unwrap();
            b.backend_mut().write(s1, b"abc").unwrap();
            for _ in 0..3 {
                b.run(ONCE_NB).unwrap();
            }
            if b.features().edge_triggered {
                assert_eq!(log.joined(), "r(RE)");
                b.backend_mut().write(s1, b"d").unwrap();
                b.run(ONCE_NB).unwrap();
                assert_eq!(log.joined(), "r(RE)");
            } else {
                // Without ET support the request degrades to level-triggered, as in libevent.
                assert_eq!(log.joined(), "r(R) r(R) r(R)");
            }
        }

        #[test]
        fn read_and_write_in_one_call() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let e = logged(&mut b, &log, "rw", s0, Events::READ | Events::WRITE);
            b.backend_mut().write(s1, b"x").unwrap();
            b.add(e, None).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.joined(), "rw(RW)");
        }

        #[test]
        fn several_events_on_one_fd_fire_in_reverse_add_order() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let first = logged(&mut b, &log, "first", s0, Events::READ);
            let second = logged(&mut b, &log, "second", s0, Events::READ);
            let third = logged(&mut b, &log, "third", s0, Events::READ);
            for e in [first, second, third] {
                b.add(e, None).unwrap();
            }
            b.backend_mut().write(s1, b"x").unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.joined(), "third(R) second(R) first(R)");
        }

        #[test]
        fn closed_is_reported_on_peer_shutdown_where_supported() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let e = logged(&mut b, &log, "c", s0, Events::READ | Events::CLOSED);
            b.add(e, None).unwrap();
            b.backend_mut().shutdown(s1, Shutdown::Write).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            if b.features().early_close {
                assert_eq!(log.joined(), "c(RC)");
            } else {
                assert_eq!(log.joined(), "c(R)");
            }
        }

        #[test]
        fn peer_close_wakes_read_and_write_events() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let r = logged(&mut b, &log, "r", s0, Events::READ);
            b.add(r, None).unwrap();
            b.backend_mut().close(s1).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.joined(), "r(R)");
            let mut buf = [0u8; 4];
            assert_eq!(b.backend_mut().read(s0, &mut buf).unwrap(), 0, "EOF");
        }

        #[test]
        fn expiry_in_the_same_iteration_loses_the_io_bit() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let e = logged(&mut b, &log, "e", s0, Events::READ);
            b.backend_mut().write(s1, b"x").unwrap();
            b.add(e, Some(ms(0))).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.joined(), "e(T)");
            assert!(
                !b.is_pending(e).unwrap(),
                "the non-persistent event is gone, data unread"
            );
        }

        #[test]
        fn deleting_the_last_event_unregisters_the_fd() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let r = logged(&mut b, &log, "r", s0, Events::READ | Events::PERSIST);
            let w = logged(&mut b, &log, "w", s0, Events::WRITE | Events::PERSIST);
            b.add(r, None).unwrap();
            b.add(w, None).unwrap();
            b.backend_mut().write(s1, b"x").unwrap();
            b.del(w).unwrap();
            b.run(ONCE_NB).unwrap();
            assert_eq!(log.joined(), "r(R)");
            b.del(r).unwrap();
            assert_eq!(b.run(ONCE_NB).unwrap(), LoopExit::NoEvents);
            assert_eq!(log.len(), 0);
        }

        #[test]
        fn bad_fds_are_errors() {
            let mut b = base();
            let e = b.event_new(1 << 30, Events::READ, |_, _, _| {}).unwrap();
            assert!(b.add(e, None).is_err());
            // The failed add left nothing registered.
            assert_eq!(b.num_events(Count::Added), 0);
            let (s0, _s1) = pair(&mut b);
            let ok = b.event_new(s0, Events::READ, |_, _, _| {}).unwrap();
            assert!(b.add(ok, None).is_ok());
        }

        // ---- signals (§5, e5) ---------------------------------------------------------------

        fn sig_event(
            b: &mut Base<B>,
            log: &Log,
            name: &'static str,
            sig: i32,
            ev: Events,
        ) -> evloop::EventId {
            let l = log.clone();
            b.event_new(sig, ev, move |_, _, w| l.push(format!("{name}({w})")))
                .unwrap()
        }

        #[test]
        fn e5a_e5b_deliveries_before_dispatch_give_ncalls_repetitions() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut b = base();
            let p = sig_event(
                &mut b,
                &log,
                "persist",
                libc::SIGUSR1,
                Events::SIGNAL | Events::PERSIST,
            );
            assert_eq!(b.events_of(p).unwrap(), Events::SIGNAL | Events::PERSIST);
            b.add(p, None).unwrap();
            for _ in 0..3 {
                b.backend_mut().raise(libc::SIGUSR1).unwrap();
            }
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "persist(S) persist(S) persist(S)");
            b.del(p).unwrap();
            let np = sig_event(&mut b, &log, "np", libc::SIGUSR1, Events::SIGNAL);
            b.add(np, None).unwrap();
            for _ in 0..3 {
                b.backend_mut().raise(libc::SIGUSR1).unwrap();
            }
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "np(S) np(S) np(S)");
            assert!(!b.is_pending(np).unwrap());
        }

        #[test]
        fn e5c_several_events_on_one_signal_run_in_reverse_add_order() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut b = base();
            let ids: Vec<_> = ["first", "second", "third"]
                .into_iter()
                .map(|n| {
                    sig_event(
                        &mut b,
                        &log,
                        n,
                        libc::SIGUSR2,
                        Events::SIGNAL | Events::PERSIST,
                    )
                })
                .collect();
            for &e in &ids {
                b.add(e, None).unwrap();
            }
            b.backend_mut().raise(libc::SIGUSR2).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "third(S) second(S) first(S)");
            assert_eq!(
                b.num_events(Count::Added),
                3,
                "the internal signal pipe event is not counted"
            );
        }

        #[test]
        fn e5d_signals_run_after_the_io_of_the_same_poll() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = pair(&mut b);
            let p = sig_event(
                &mut b,
                &log,
                "sig",
                libc::SIGUSR1,
                Events::SIGNAL | Events::PERSIST,
            );
            let l = log.clone();
            let io = b
                .event_new(s0, Events::READ | Events::PERSIST, move |b, _, w| {
                    let mut buf = [0u8; 8];
                    let _ = b.backend_mut().read(s0, &mut buf);
                    l.push(format!("io({w})"));
                })
                .unwrap();
            b.add(p, None).unwrap();
            b.add(io, None).unwrap();
            b.backend_mut().raise(libc::SIGUSR1).unwrap();
            b.backend_mut().write(s1, b"x").unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "io(R) sig(S)");
            b.backend_mut().write(s1, b"x").unwrap();
            b.backend_mut().raise(libc::SIGUSR1).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "io(R) sig(S)");
        }

        #[test]
        fn e5e_deleting_inside_the_callback_aborts_the_repetitions() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut b = base();
            let n = Rc::new(Cell::new(0));
            let c = n.clone();
            let l = log.clone();
            let s = b
                .event_new(
                    libc::SIGUSR1,
                    Events::SIGNAL | Events::PERSIST,
                    move |b, id, w| {
                        c.set(c.get() + 1);
                        l.push(format!("del-after-first({w})"));
                        b.del(id).unwrap();
                    },
                )
                .unwrap();
            b.add(s, None).unwrap();
            for _ in 0..3 {
                b.backend_mut().raise(libc::SIGUSR1).unwrap();
            }
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(n.get(), 1);
            assert_eq!(log.joined(), "del-after-first(S)");
        }

        #[test]
        fn regress_signal_switchbase_the_last_base_to_loop_gets_signals() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut a = base();
            let mut c = base();
            let ea = sig_event(
                &mut a,
                &log,
                "a",
                libc::SIGUSR2,
                Events::SIGNAL | Events::PERSIST,
            );
            let ec = sig_event(
                &mut c,
                &log,
                "c",
                libc::SIGUSR2,
                Events::SIGNAL | Events::PERSIST,
            );
            a.add(ea, None).unwrap();
            c.add(ec, None).unwrap();
            a.run(LoopFlags::NONBLOCK).unwrap();
            a.backend_mut().raise(libc::SIGUSR2).unwrap();
            a.run(LoopFlags::NONBLOCK).unwrap();
            c.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "a(S)");
            c.backend_mut().raise(libc::SIGUSR2).unwrap();
            c.run(LoopFlags::NONBLOCK).unwrap();
            a.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "c(S)");
            a.del(ea).unwrap();
            c.del(ec).unwrap();
        }

        #[test]
        fn deliveries_while_the_event_is_active_are_lost() {
            let _g = crate::signal_lock();
            let log = Log::default();
            let mut b = base();
            b.priority_init(2).unwrap();
            let s = sig_event(
                &mut b,
                &log,
                "s",
                libc::SIGUSR2,
                Events::SIGNAL | Events::PERSIST,
            );
            b.priority_set(s, 1).unwrap();
            b.add(s, None).unwrap();
            // A p0 event keeps the p1 signal event waiting for one extra pass; the second
            // delivery arrives while it is still queued and only ORs into it.
            let n = Rc::new(Cell::new(0));
            let c = n.clone();
            let busy = b
                .timer_new(move |b, id, _| {
                    c.set(c.get() + 1);
                    if c.get() == 1 {
                        b.backend_mut().raise(libc::SIGUSR2).unwrap();
                        b.add(id, Some(ms(0))).unwrap();
                    }
                })
                .unwrap();
            b.priority_set(busy, 0).unwrap();
            b.backend_mut().raise(libc::SIGUSR2).unwrap();
            b.add(busy, Some(ms(0))).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "s(S)");
        }
    };
}

mod epoll {
    io_suite!(
        evloop::backend::EpollBackend,
        evloop::backend::EpollBackend::new().unwrap()
    );
}
mod poll {
    io_suite!(
        evloop::backend::PollBackend,
        evloop::backend::PollBackend::new().unwrap()
    );
}
mod select {
    io_suite!(
        evloop::backend::SelectBackend,
        evloop::backend::SelectBackend::new().unwrap()
    );
}
mod mio {
    io_suite!(
        evloop::backend::MioBackend,
        evloop::backend::MioBackend::new().unwrap()
    );
}
