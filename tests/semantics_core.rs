//! Core semantics of SEMANTICS.md §0–§4 (loop, priorities, closures, timers, loop control),
//! asserted in exact virtual time on every backend under `VirtualTime`.
//!
//! One suite, instantiated once per backend; the module name (`virtual_time_epoll::…`) shows
//! which backend a test ran on. Expected orders come from libevent's experiments (`eN.out` in
//! shared/libevent/experiments) and regression tests, converted to virtual time.

mod util;

macro_rules! core_suite {
    ($inner:ty, $mk_inner:expr) => {
        use std::cell::Cell;
        use std::rc::Rc;

        use evloop::backend::VirtualTime;
        use evloop::{Base, Config, Count, Error, Events, LoopExit, LoopFlags, Timeout};

        use crate::util::*;

        type B = VirtualTime<$inner>;

        fn base() -> Base<B> {
            Base::new(VirtualTime::new($mk_inner))
        }

        fn base_with(cfg: &Config) -> Base<B> {
            Base::with_config(VirtualTime::new($mk_inner), cfg)
        }

        fn with_prio(n: usize) -> Base<B> {
            let mut b = base();
            b.priority_init(n).unwrap();
            b
        }

        fn event(b: &mut Base<B>, log: &Log, name: &'static str, pri: usize) -> evloop::EventId {
            let id = logged(b, log, name, -1, Events::NONE);
            b.priority_set(id, pri).unwrap();
            id
        }

        // ---- §1 priorities (e1) -----------------------------------------------------------

        #[test]
        fn e1_default_priority_is_half_the_queues() {
            let got: Vec<usize> = (1..=5)
                .map(|n| {
                    let mut b = with_prio(n);
                    let e = b.timer_new(|_, _, _| {}).unwrap();
                    b.priority(e).unwrap()
                })
                .collect();
            assert_eq!(got, [0, 1, 1, 2, 2]);
        }

        #[test]
        fn e1_priority_init_fails_while_active_or_out_of_range() {
            let mut b = base();
            let e = b.timer_new(|_, _, _| {}).unwrap();
            b.active(e, Events::READ, 1).unwrap();
            assert!(matches!(b.priority_init(3), Err(Error::Invalid(_))));
            b.del(e).unwrap();
            assert!(b.priority_init(0).is_err());
            assert!(b.priority_init(256).is_err());
            assert!(b.priority_init(255).is_ok());
            let e = b.timer_new(|_, _, _| {}).unwrap();
            b.active(e, Events::READ, 1).unwrap();
            assert!(
                b.priority_set(e, 1).is_err(),
                "priority_set on an active event"
            );
        }

        #[test]
        fn e1a_lower_number_runs_first() {
            let log = Log::default();
            let mut b = with_prio(3);
            let a = event(&mut b, &log, "A", 2);
            let bb = event(&mut b, &log, "B", 1);
            let c = event(&mut b, &log, "C", 0);
            for e in [a, bb, c] {
                b.active(e, Events::READ, 1).unwrap();
            }
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "C(R) B(R) A(R)");
        }

        #[test]
        fn e1b_one_queue_per_pass_then_a_fresh_iteration() {
            let log = Log::default();
            let mut b = with_prio(2);
            let t = event(&mut b, &log, "t", 0);
            let l = log.clone();
            let x = b
                .event_new(-1, Events::NONE, move |b, _, w| {
                    l.push(format!("x({w})"));
                    b.add(t, Some(ms(0))).unwrap();
                })
                .unwrap();
            b.priority_set(x, 0).unwrap();
            let y = event(&mut b, &log, "y", 1);
            b.active(x, Events::READ, 1).unwrap();
            b.active(y, Events::READ, 1).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "x(R) t(T) y(R)");
        }

        #[test]
        fn e1c_more_urgent_activation_preempts_after_the_current_callback() {
            let log = Log::default();
            let mut b = with_prio(2);
            let w = event(&mut b, &log, "w", 0);
            let l = log.clone();
            let y = b
                .event_new(-1, Events::NONE, move |b, _, what| {
                    l.push(format!("y({what})"));
                    b.active(w, Events::READ, 1).unwrap();
                })
                .unwrap();
            b.priority_set(y, 1).unwrap();
            let z = event(&mut b, &log, "z", 1);
            b.active(y, Events::READ, 1).unwrap();
            b.active(z, Events::READ, 1).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "y(R) w(R) z(R)");
        }

        fn max_dispatch(max_callbacks: Option<u32>, min_prio: u32) -> String {
            let log = Log::default();
            let cfg = Config {
                max_dispatch_callbacks: max_callbacks,
                limit_callbacks_after_prio: min_prio,
                ..Config::default()
            };
            let mut b = base_with(&cfg);
            b.priority_init(2).unwrap();
            let t = event(&mut b, &log, "t", 0);
            let l = log.clone();
            let a = b
                .event_new(-1, Events::NONE, move |b, _, w| {
                    l.push(format!("a({w})"));
                    b.add(t, Some(ms(0))).unwrap();
                })
                .unwrap();
            b.priority_set(a, 1).unwrap();
            let rest: Vec<_> = ["b", "d", "e", "f"]
                .into_iter()
                .map(|n| event(&mut b, &log, n, 1))
                .collect();
            b.active(a, Events::READ, 1).unwrap();
            for e in rest {
                b.active(e, Events::READ, 1).unwrap();
            }
            b.dispatch().unwrap();
            log.joined()
        }

        #[test]
        fn e1d_max_dispatch_callbacks_and_min_priority() {
            assert_eq!(max_dispatch(None, 0), "a(R) b(R) d(R) e(R) f(R) t(T)");
            assert_eq!(max_dispatch(Some(2), 0), "a(R) b(R) t(T) d(R) e(R) f(R)");
            assert_eq!(max_dispatch(Some(2), 2), "a(R) b(R) d(R) e(R) f(R) t(T)");
        }

        fn loopcontinue_case(with_continue: bool) -> String {
            let log = Log::default();
            let mut b = with_prio(2);
            let t = event(&mut b, &log, "t", 0);
            let l = log.clone();
            let x = b
                .event_new(-1, Events::NONE, move |b, _, w| {
                    l.push(format!("x({w})"));
                    b.add(t, Some(ms(0))).unwrap();
                    if with_continue {
                        b.loopcontinue();
                    }
                })
                .unwrap();
            b.priority_set(x, 1).unwrap();
            let y = event(&mut b, &log, "y", 1);
            b.active(x, Events::READ, 1).unwrap();
            b.active(y, Events::READ, 1).unwrap();
            b.dispatch().unwrap();
            log.joined()
        }

        #[test]
        fn e1e_loopcontinue_starts_a_new_iteration() {
            assert_eq!(loopcontinue_case(true), "x(R) t(T) y(R)");
            assert_eq!(loopcontinue_case(false), "x(R) y(R) t(T)");
        }

        /// regress `priorities`: two 0-timeout timers at p0 and p(n-1) that re-add themselves;
        /// each one, at its 4th run, calls loopexit(NULL) instead of counting and re-adding.
        fn regress_priorities(n: usize) -> (u32, u32) {
            let mut b = with_prio(n);
            let counts = [Rc::new(Cell::new(0u32)), Rc::new(Cell::new(0u32))];
            let mut ids = Vec::new();
            for (k, c) in counts.iter().enumerate() {
                let c = c.clone();
                let e = b
                    .timer_new(move |b, id, _| {
                        if c.get() == 3 {
                            b.loopexit(None).unwrap();
                            return;
                        }
                        c.set(c.get() + 1);
                        b.add(id, Some(ms(0))).unwrap();
                    })
                    .unwrap();
                b.priority_set(e, if k == 0 { 0 } else { n - 1 }).unwrap();
                ids.push(e);
            }
            for e in ids {
                b.add(e, Some(ms(0))).unwrap();
            }
            b.dispatch().unwrap();
            (counts[0].get(), counts[1].get())
        }

        #[test]
        fn regress_priorities_starvation() {
            // n=1: both run every pass; n=2: the loopexit event sits at p1 with `two`, which
            // runs once; n=3: `two` never runs.
            assert_eq!(regress_priorities(1), (3, 3));
            assert_eq!(regress_priorities(2), (3, 1));
            assert_eq!(regress_priorities(3), (3, 0));
        }

        // ---- §2 closures (e2) ---------------------------------------------------------------

        #[test]
        fn e2a_persistent_timer_manually_activated_stays_pending_on_its_timeout() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let e = b
                .event_new(-1, Events::PERSIST, move |b, id, w| {
                    let (p, _) = b
                        .pending(id, Events::READ | Events::WRITE | Events::TIMEOUT)
                        .unwrap();
                    l.push(format!("cb({w}) pending={p}"));
                })
                .unwrap();
            b.add(e, Some(ms(5000))).unwrap();
            b.active(e, Events::READ, 1).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.joined(), "cb(R) pending=T");
        }

        #[test]
        fn e2b_activation_of_a_never_added_event_merges_flags_and_runs_once() {
            let log = Log::default();
            let mut b = base();
            let calls = Rc::new(Cell::new(0));
            let c = calls.clone();
            let l = log.clone();
            let a = b
                .timer_new(move |_, _, w| {
                    c.set(c.get() + 1);
                    l.push(format!("A({w})"));
                })
                .unwrap();
            b.active(a, Events::READ, 3).unwrap();
            assert_eq!(
                b.pending(a, Events::READ | Events::WRITE | Events::TIMEOUT)
                    .unwrap()
                    .0,
                Events::READ
            );
            b.active(a, Events::WRITE, 1).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "A(RW)");
            assert_eq!(calls.get(), 1);
            assert!(!b.is_pending(a).unwrap());
        }

        #[test]
        fn e2c_base_once_rejects_and_orders() {
            let log = Log::default();
            let mut b = base();
            let nop = |_: &mut Base<B>, _: Events| {};
            assert!(b
                .once(-1, Events::TIMEOUT | Events::PERSIST, None, nop)
                .is_err());
            assert!(b.once(10, Events::SIGNAL, None, nop).is_err());
            assert!(b.once(-1, Events::NONE, None, nop).is_err());
            for (name, tv) in [
                ("t1ms", Some(ms(1))),
                ("NULLtv", None),
                ("zero-tv", Some(ms(0))),
            ] {
                let l = log.clone();
                b.once(-1, Events::TIMEOUT, tv, move |b, w| {
                    l.push(format!("{name}({w}){}", at(b)))
                })
                .unwrap();
            }
            assert_eq!(
                b.num_events(Count::Active),
                2,
                "NULL and zero timeouts are active at once"
            );
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "NULLtv(T)@0 zero-tv(T)@0 t1ms(T)@1");
            assert_eq!(
                b.num_events(Count::Added),
                0,
                "once-events are freed after they run"
            );
        }

        #[test]
        fn e2d_readding_a_timeout_active_event_cancels_its_pending_call() {
            let log = Log::default();
            let mut b = base();
            let bb = timed(&mut b, &log, "B");
            let l = log.clone();
            let a = b
                .timer_new(move |b, _, w| {
                    l.push(format!("A({w}){}", at(b)));
                    b.add(bb, Some(ms(100))).unwrap();
                })
                .unwrap();
            b.add(a, Some(ms(50))).unwrap();
            b.add(bb, Some(ms(50))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "A(T)@50 B(T)@150");
        }

        #[test]
        fn e2e_deleting_an_active_event_cancels_it() {
            let log = Log::default();
            let mut b = base();
            let bb = logged(&mut b, &log, "B", -1, Events::NONE);
            let l = log.clone();
            let a = b
                .event_new(-1, Events::NONE, move |b, _, _| {
                    l.push("A");
                    b.del(bb).unwrap();
                })
                .unwrap();
            b.active(a, Events::READ, 1).unwrap();
            b.active(bb, Events::READ, 1).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "A");
        }

        #[test]
        fn e2f_timer_added_without_timeout_registers_nothing() {
            let log = Log::default();
            let mut b = base();
            let e = timed(&mut b, &log, "never");
            b.add(e, None).unwrap();
            assert_eq!(b.pending(e, Events::TIMEOUT).unwrap().0, Events::NONE);
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.len(), 0);
        }

        #[test]
        fn e2g_signal_event_activated_with_ncalls_runs_that_many_times() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let s = b
                .signal_new(12, move |_, _, w| l.push(format!("s({w})")))
                .unwrap();
            b.active(s, Events::SIGNAL, 3).unwrap();
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "s(S) s(S) s(S)");
        }

        #[test]
        fn nonpersistent_event_is_deleted_before_its_callback_and_can_readd_itself() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let n = Rc::new(Cell::new(0));
            let e = b
                .timer_new(move |b, id, w| {
                    let (p, _) = b.pending(id, Events::TIMEOUT).unwrap();
                    l.push(format!("t({w}) pending={p}{}", at(b)));
                    n.set(n.get() + 1);
                    if n.get() < 3 {
                        b.add(id, Some(ms(10))).unwrap();
                    }
                })
                .unwrap();
            b.add(e, Some(ms(10))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(
                log.joined(),
                "t(T) pending=0@10 t(T) pending=0@20 t(T) pending=0@30"
            );
        }

        // ---- §2 persistent rescheduling (e9, regress persistent_*) ---------------------------

        #[test]
        fn e9_persistent_timer_with_slow_callbacks_and_self_activation() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let k = Rc::new(Cell::new(0));
            let pe = b
                .event_new(-1, Events::PERSIST, move |b, id, w| {
                    k.set(k.get() + 1);
                    l.push(format!("#{}({w}){}", k.get(), at(b)));
                    match k.get() {
                        1 => b.backend_mut().advance(ms(30)),
                        3 => b.backend_mut().advance(ms(250)),
                        5 => b.active(id, Events::READ, 1).unwrap(),
                        8 => b.del(id).unwrap(),
                        _ => {}
                    }
                })
                .unwrap();
            b.add(pe, Some(ms(100))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(
                log.joined(),
                "#1(T)@100 #2(T)@230 #3(T)@300 #4(T)@650 #5(T)@750 #6(R)@750 #7(T)@850 #8(T)@950"
            );
        }

        #[test]
        fn regress_persistent_active_timeout() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let e = b
                .event_new(-1, Events::PERSIST, move |b, _, w| {
                    l.push(format!("e({w}){}", at(b)))
                })
                .unwrap();
            b.add(e, Some(ms(200))).unwrap();
            b.once(-1, Events::TIMEOUT, Some(ms(100)), move |b, _| {
                b.active(e, Events::READ, 1).unwrap();
            })
            .unwrap();
            b.loopexit(Some(ms(600))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "e(R)@100 e(T)@300 e(T)@500");
        }

        #[test]
        fn regress_persistent_timeout_jump_has_no_catch_up_burst() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let e = b
                .event_new(-1, Events::PERSIST, move |b, _, w| {
                    l.push(format!("e({w}){}", at(b)))
                })
                .unwrap();
            b.add(e, Some(ms(100))).unwrap();
            // "sleep 300 ms before dispatch"
            b.backend_mut().advance(ms(300));
            b.loopexit(Some(ms(50))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "e(T)@300");
            // The missed deadline was re-based on now: next at 400, not 200.
            assert_eq!(
                b.pending(e, Events::TIMEOUT)
                    .unwrap()
                    .1
                    .map(|t| t.as_micros()),
                Some(400_000)
            );
        }

        #[test]
        fn regress_persistent_timeout_keeps_firing() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let n = Rc::new(Cell::new(0));
            let e = b
                .event_new(-1, Events::PERSIST, move |b, _, _| {
                    l.push(at(b));
                    n.set(n.get() + 1);
                    if n.get() == 6 {
                        b.loopexit(None).unwrap();
                    }
                })
                .unwrap();
            b.add(e, Some(ms(10))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "@10 @20 @30 @40 @50 @60");
        }

        // ---- §3 timers (e3, e10) -------------------------------------------------------------

        fn tie_order(n: usize) -> String {
            let log = Log::default();
            let mut b = base();
            let ids: Vec<_> = (0..n)
                .map(|i| {
                    let l = log.clone();
                    b.timer_new(move |_, _, _| l.push(i.to_string())).unwrap()
                })
                .collect();
            let adder = b
                .timer_new(move |b, _, _| {
                    for &id in &ids {
                        b.add(id, Some(ms(20))).unwrap();
                    }
                })
                .unwrap();
            b.active(adder, Events::TIMEOUT, 1).unwrap();
            b.dispatch().unwrap();
            log.joined()
        }

        #[test]
        fn e3a_equal_deadlines_fire_in_heap_order() {
            assert_eq!(tie_order(2), "0 1");
            assert_eq!(tie_order(4), "0 3 2 1");
            assert_eq!(tie_order(8), "0 7 6 5 4 3 2 1");
            assert_eq!(tie_order(16), "0 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1");
        }

        #[test]
        fn e3b_common_timeouts_fire_fifo() {
            let log = Log::default();
            let mut b = base();
            let ct = b.init_common_timeout(ms(20)).unwrap();
            assert_eq!(ct.magic_usec(), 0x5000_4e20);
            assert_eq!(
                b.init_common_timeout(ms(20)).unwrap(),
                ct,
                "same duration, same handle"
            );
            let ct2 = b.init_common_timeout(ms(200)).unwrap();
            assert_eq!(ct2.magic_usec(), 200_000 | 0x5010_0000);
            for i in 0..16 {
                let l = log.clone();
                let e = b
                    .timer_new(move |b, _, _| l.push(format!("{i}{}", at(b))))
                    .unwrap();
                b.add_with(e, Some(Timeout::Common(ct))).unwrap();
            }
            b.dispatch().unwrap();
            let expected: Vec<String> = (0..16).map(|i| format!("{i}@20")).collect();
            assert_eq!(log.joined(), expected.join(" "));
        }

        #[test]
        fn common_timeouts_reject_a_foreign_handle_and_cap_at_256() {
            let mut b = base();
            let mut other = base();
            let foreign = other.init_common_timeout(ms(7)).unwrap();
            let e = b.timer_new(|_, _, _| {}).unwrap();
            assert!(b.add_with(e, Some(Timeout::Common(foreign))).is_err());
            for i in 0..256 {
                b.init_common_timeout(ms(1000 + i)).unwrap();
            }
            assert!(b.init_common_timeout(ms(1)).is_err());
        }

        #[test]
        fn e3c_callbacks_of_one_iteration_share_the_cached_time() {
            let log = Log::default();
            let mut b = base();
            let mk = |b: &mut Base<B>, name: &'static str| {
                let l = log.clone();
                b.event_new(-1, Events::NONE, move |b, _, _| {
                    l.push(format!("{name}{}", at(b)));
                    b.backend_mut().advance(ms(20));
                    if name == "c2" {
                        b.update_cache_time();
                    }
                })
                .unwrap()
            };
            let c: Vec<_> = ["c1", "c2", "c3"]
                .into_iter()
                .map(|n| mk(&mut b, n))
                .collect();
            for e in c {
                b.active(e, Events::READ, 1).unwrap();
            }
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "c1@0 c2@0 c3@40");
        }

        #[test]
        fn e3d_zero_timeout_runs_in_the_next_pass() {
            let log = Log::default();
            let mut b = base();
            let z = timed(&mut b, &log, "z");
            b.add(z, Some(ms(0))).unwrap();
            assert_eq!(b.pending(z, Events::TIMEOUT).unwrap().0, Events::TIMEOUT);
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "z(T)@0");
        }

        fn stale_cache(no_cache_time: bool, sleep: u64) -> String {
            let log = Log::default();
            let mut b = base_with(&Config {
                no_cache_time,
                ..Config::default()
            });
            let t = timed(&mut b, &log, "T");
            let a = b
                .event_new(-1, Events::NONE, move |b, _, _| {
                    b.add(t, Some(ms(100))).unwrap();
                    b.backend_mut().advance(ms(sleep));
                })
                .unwrap();
            b.active(a, Events::READ, 1).unwrap();
            b.dispatch().unwrap();
            log.joined()
        }

        #[test]
        fn e10_the_poll_timeout_uses_the_previous_cached_time() {
            assert_eq!(stale_cache(false, 0), "T(T)@100");
            assert_eq!(stale_cache(false, 60), "T(T)@160");
            assert_eq!(stale_cache(true, 0), "T(T)@100");
            assert_eq!(stale_cache(true, 60), "T(T)@100");
        }

        #[test]
        fn add_without_timeout_keeps_the_old_one_and_remove_timer_drops_it() {
            let log = Log::default();
            let mut b = base();
            let t = timed(&mut b, &log, "t");
            b.add(t, Some(ms(100))).unwrap();
            b.add(t, None).unwrap();
            assert_eq!(
                b.pending(t, Events::TIMEOUT)
                    .unwrap()
                    .1
                    .map(|t| t.as_micros()),
                Some(100_000)
            );
            b.add(t, Some(ms(30))).unwrap();
            let u = timed(&mut b, &log, "u");
            b.add(u, Some(ms(10))).unwrap();
            b.remove_timer(u).unwrap();
            assert_eq!(b.pending(u, Events::TIMEOUT).unwrap().0, Events::NONE);
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "t(T)@30");
        }

        // ---- §0 counters (e15), return codes, reentrancy -------------------------------------

        #[test]
        fn e15_added_counts_list_memberships() {
            let mut b = base();
            let e = b.event_new(-1, Events::READ, |_, _, _| {}).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (0, 0)
            );
            b.add(e, None).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (1, 0)
            );
            b.add(e, Some(ms(10_000))).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (2, 0)
            );
            b.active(e, Events::READ, 1).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (3, 1)
            );
            let t = b.timer_new(|_, _, _| {}).unwrap();
            b.active(t, Events::TIMEOUT, 1).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (4, 2)
            );
            b.run(LoopFlags::NONBLOCK).unwrap();
            assert_eq!(
                (b.num_events(Count::Added), b.num_events(Count::Active)),
                (0, 0)
            );
            assert_eq!(b.max_events(Count::Added, false), 4);
        }

        #[test]
        fn fd_minus_one_with_io_flags_counts_but_never_fires() {
            let log = Log::default();
            let mut b = base();
            let e = logged(&mut b, &log, "io", -1, Events::READ | Events::PERSIST);
            b.add(e, None).unwrap();
            assert_eq!(b.num_events(Count::Added), 1);
            b.loopexit(Some(ms(50))).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::Done);
            assert_eq!(b.now().as_micros(), 50_000);
            assert_eq!(log.len(), 0);
        }

        #[test]
        fn e9_reentrant_loop_is_rejected_and_single_timer_returns_one() {
            let mut b = base();
            let seen = Rc::new(Cell::new(false));
            let s = seen.clone();
            let r = b
                .timer_new(move |b, _, _| {
                    s.set(matches!(b.run(LoopFlags::NONBLOCK), Err(Error::Reentrant)))
                })
                .unwrap();
            b.active(r, Events::READ, 1).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert!(seen.get());
            let log = Log::default();
            let t = timed(&mut b, &log, "t30");
            b.add(t, Some(ms(30))).unwrap();
            assert_eq!(b.run(LoopFlags::NONE).unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "t30(T)@30");
            b.add(t, Some(ms(30))).unwrap();
            b.loopexit(Some(ms(120))).unwrap();
            assert_eq!(b.run(LoopFlags::NO_EXIT_ON_EMPTY).unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "t30(T)@60");
            assert_eq!(b.now().as_micros(), 150_000);
        }

        #[test]
        fn once_waits_for_the_first_event_then_drains_every_priority() {
            let log = Log::default();
            let mut b = with_prio(2);
            let x = timed(&mut b, &log, "x");
            let y = timed(&mut b, &log, "y");
            b.priority_set(x, 1).unwrap();
            b.priority_set(y, 0).unwrap();
            b.add(x, Some(ms(40))).unwrap();
            b.add(y, Some(ms(40))).unwrap();
            let z = timed(&mut b, &log, "z");
            b.add(z, Some(ms(90))).unwrap();
            assert_eq!(b.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "y(T)@40 x(T)@40");
            assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::Done);
            assert_eq!(log.len(), 0);
            assert_eq!(b.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "z(T)@90");
            assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
        }

        // ---- §4 loop control -----------------------------------------------------------------

        #[test]
        fn loopexit_lets_the_current_queue_finish() {
            let log = Log::default();
            let mut b = with_prio(3);
            let l = log.clone();
            let a = b
                .event_new(-1, Events::NONE, move |b, _, _| {
                    l.push("A");
                    b.loopexit(None).unwrap();
                })
                .unwrap();
            b.priority_set(a, 1).unwrap();
            let bb = event(&mut b, &log, "B", 1);
            let c = event(&mut b, &log, "C", 2);
            for e in [a, bb, c] {
                b.active(e, Events::READ, 1).unwrap();
            }
            assert_eq!(b.dispatch().unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "A B(R)");
            assert!(b.got_exit() && !b.got_break());
            // C stayed active for the next loop; NONBLOCK keeps iterating while callbacks are
            // active, then finds the base empty (rc 1).
            assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "C(R)");
            assert!(!b.got_exit());
        }

        #[test]
        fn regress_loopexit_and_loopexit_multiple() {
            let log = Log::default();
            let mut b = base();
            let day = timed(&mut b, &log, "day");
            b.add(day, Some(ms(86_400_000))).unwrap();
            b.loopexit(Some(ms(300))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(b.now().as_micros(), 300_000);
            assert!(b.got_exit() && !b.got_break());
            b.del(day).unwrap();
            b.loopexit(Some(ms(200))).unwrap();
            b.loopexit(Some(ms(3000))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(b.now().as_micros(), 500_000);
            // The 3 s exit timer survives and ends the next loop.
            let t = timed(&mut b, &log, "late");
            b.add(t, Some(ms(10_000))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(b.now().as_micros(), 3_300_000);
            assert_eq!(log.len(), 0);
        }

        #[test]
        fn regress_loopbreak_stops_after_the_current_callback() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let first = b
                .timer_new(move |b, _, _| {
                    l.push("first");
                    b.loopbreak();
                })
                .unwrap();
            let second = logged(&mut b, &log, "second", -1, Events::NONE);
            b.add(first, Some(ms(0))).unwrap();
            b.add(second, Some(ms(0))).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "first");
            assert!(b.got_break() && !b.got_exit());
            assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "second(T)");
        }

        #[test]
        fn loopbreak_before_the_loop_is_lost() {
            let log = Log::default();
            let mut b = base();
            let t = timed(&mut b, &log, "t");
            b.add(t, Some(ms(5))).unwrap();
            b.loopbreak();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "t(T)@5");
        }

        #[test]
        fn loopexit_before_the_loop_runs_one_pass() {
            let log = Log::default();
            let mut b = base();
            let a = logged(&mut b, &log, "a", -1, Events::NONE);
            let t = timed(&mut b, &log, "t");
            b.add(t, Some(ms(5))).unwrap();
            b.active(a, Events::READ, 1).unwrap();
            b.loopexit(None).unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::Done);
            assert_eq!(log.joined(), "a(R)");
        }

        #[test]
        fn infinite_wait_with_nothing_to_wake_is_a_backend_error() {
            let mut b = base();
            assert!(matches!(
                b.run(LoopFlags::NO_EXIT_ON_EMPTY),
                Err(Error::Io(_))
            ));
            // The base is usable afterwards.
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
        }

        // ---- ids and misuse --------------------------------------------------------------------

        #[test]
        fn stale_ids_are_errors_not_panics() {
            let mut b = base();
            let e = b.timer_new(|_, _, _| {}).unwrap();
            b.free(e).unwrap();
            assert!(matches!(b.add(e, None), Err(Error::StaleId)));
            assert!(matches!(b.del(e), Err(Error::StaleId)));
            assert!(matches!(b.active(e, Events::READ, 1), Err(Error::StaleId)));
            assert!(matches!(b.pending(e, Events::READ), Err(Error::StaleId)));
            assert!(matches!(b.free(e), Err(Error::StaleId)));
            // The slot is reused with a new generation; the old id stays stale.
            let f = b.timer_new(|_, _, _| {}).unwrap();
            assert_eq!(f.index(), e.index());
            assert!(matches!(b.del(e), Err(Error::StaleId)));
            assert!(b.del(f).is_ok());
            assert!(b
                .event_new(10, Events::SIGNAL | Events::READ, |_, _, _| {})
                .is_err());
            let bad_sig = b.event_new(65, Events::SIGNAL, |_, _, _| {}).unwrap();
            assert!(b.add(bad_sig, None).is_err());
            let neg_sig = b.event_new(-1, Events::SIGNAL, |_, _, _| {}).unwrap();
            assert!(b.add(neg_sig, None).is_err());
        }

        #[test]
        fn a_callback_may_free_its_own_event_and_reuse_the_slot() {
            let log = Log::default();
            let mut b = base();
            let l = log.clone();
            let e = b
                .event_new(-1, Events::PERSIST, move |b, id, _| {
                    b.free(id).unwrap();
                    let l2 = l.clone();
                    let n = b.timer_new(move |_, _, _| l2.push("new")).unwrap();
                    assert_eq!(n.index(), id.index());
                    b.add(n, Some(ms(1))).unwrap();
                    l.push("freed");
                })
                .unwrap();
            b.add(e, Some(ms(5))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "freed new");
        }
    };
}

mod virtual_time_epoll {
    core_suite!(
        evloop::backend::EpollBackend,
        evloop::backend::EpollBackend::new().unwrap()
    );
}
mod virtual_time_poll {
    core_suite!(
        evloop::backend::PollBackend,
        evloop::backend::PollBackend::new().unwrap()
    );
}
mod virtual_time_select {
    core_suite!(
        evloop::backend::SelectBackend,
        evloop::backend::SelectBackend::new().unwrap()
    );
}
mod virtual_time_mio {
    core_suite!(
        evloop::backend::MioBackend,
        evloop::backend::MioBackend::new().unwrap()
    );
}
