//! The reactor (src/base.rs) on epoll under virtual time: tests written to kill mutants that
//! `cargo mutants -f src/base.rs` left alive (docs/mutation-testing.md).

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use evloop::backend::{Backend, EpollBackend, VirtualTime};
use evloop::{Base, CallbackKind, Events, LoopExit};

use util::*;

type B = VirtualTime<EpollBackend>;

fn base() -> Base<B> {
    Base::new(VirtualTime::new(EpollBackend::new().unwrap()))
}

/// A timer at priority `pri` whose callback logs `name`.
fn named(b: &mut Base<B>, log: &Log, name: &'static str, pri: usize) -> evloop::EventId {
    let l = log.clone();
    let e = b.timer_new(move |_, _, _| l.push(name)).unwrap();
    b.priority_set(e, pri).unwrap();
    e
}

/// libevent's return codes of `event_base_loop`: 0 when it was done, 1 with no events.
#[test]
fn loop_exit_codes_are_libevents() {
    assert_eq!((LoopExit::Done.code(), LoopExit::NoEvents.code()), (0, 1));
    let mut b = base();
    let t = b.timer_new(|_, _, _| {}).unwrap();
    b.add(t, Some(ms(5))).unwrap();
    let exit = b.dispatch().unwrap();
    assert_eq!((exit, exit.code()), (LoopExit::NoEvents, 1));
}

/// The callback hook sees a timer as `Timer`, an fd event that fired for READ as `Io`, and an
/// event with an fd but no READ/WRITE/CLOSED interest (a timeout only) as `Timer`; each
/// callback is announced before (true) and after (false) it runs.
#[test]
fn callback_hook_kinds() {
    let mut b = base();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        s.borrow_mut().push((info.kind, info.fd, before));
    })));
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let timer = b.timer_new(|_, _, _| {}).unwrap();
    let io = b.event_new(s0, Events::READ, |_, _, _| {}).unwrap();
    let fd_timeout = b.event_new(s1, Events::NONE, |_, _, _| {}).unwrap();
    // `evtimer_new` is `event_new(-1, 0, …)`.
    assert_eq!(
        (b.fd_of(timer).unwrap(), b.events_of(timer).unwrap()),
        (-1, Events::NONE)
    );
    b.add(timer, Some(ms(10))).unwrap();
    b.add(fd_timeout, Some(ms(20))).unwrap();
    b.add(io, None).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"x").unwrap(), 1);
    assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        *seen.borrow(),
        vec![
            (CallbackKind::Io, s0, true),
            (CallbackKind::Io, s0, false),
            (CallbackKind::Timer, -1, true),
            (CallbackKind::Timer, -1, false),
            (CallbackKind::Timer, s1, true),
            (CallbackKind::Timer, s1, false),
        ]
    );
    for ev in [timer, io, fd_timeout] {
        b.free(ev).unwrap();
    }
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `event_base_get_method`: the backend's name.
#[test]
fn method_names_the_backend() {
    assert_eq!(base().method(), "epoll");
    assert_eq!(
        Base::new(evloop::backend::PollBackend::new().unwrap()).method(),
        "poll"
    );
    assert_eq!(
        Base::new(evloop::backend::SelectBackend::new().unwrap()).method(),
        "select"
    );
}

/// `event_base_once` with READ|TIMEOUT is an fd event with a timeout, not a pure timer: the
/// readable fd wins at once. Only TIMEOUT alone makes a timer.
#[test]
fn once_with_io_and_timeout_waits_for_the_fd() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    assert_eq!(b.backend_mut().write(s1, b"x").unwrap(), 1);
    for (name, events) in [
        ("r", Events::READ | Events::TIMEOUT),
        ("w", Events::WRITE | Events::TIMEOUT),
        ("t", Events::TIMEOUT),
    ] {
        let l = log.clone();
        b.once(s0, events, Some(ms(100)), move |b, what| {
            l.push(format!("{name}({what}){}", at(b)))
        })
        .unwrap();
    }
    assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
    // Events on one fd run most recently added first, as libevent inserts at the list head.
    assert_eq!(log.joined(), "w(W)@0 r(R)@0 t(T)@100");
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `event_callback_activate_later_` reports whether it scheduled: not again while the callback
/// waits for the next iteration; it then runs once.
#[test]
fn callback_activate_later_only_once() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let cb = b.callback_new(move |_, _| l.push("cb"));
    assert!(b.callback_activate_later(cb).unwrap());
    assert!(!b.callback_activate_later(cb).unwrap());
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "cb");
}

/// `event_deferred_cb_schedule_` past the per-iteration budget puts callbacks on the
/// active-later queue and still reports them as newly scheduled; scheduling any of them again
/// reports false. Every callback then runs exactly once, in order.
#[test]
fn deferred_schedule_past_the_budget_reports_new_schedulings() {
    let log = Log::default();
    let mut b = base();
    let n = evloop::MAX_DEFERREDS_QUEUED as usize + 8;
    let ids: Vec<_> = (0..n)
        .map(|i| {
            let l = log.clone();
            b.callback_new(move |_, _| l.push(i.to_string()))
        })
        .collect();
    let first: Vec<bool> = ids
        .iter()
        .map(|&id| b.deferred_schedule(id).unwrap())
        .collect();
    assert_eq!(first, vec![true; n]);
    let again: Vec<bool> = ids
        .iter()
        .map(|&id| b.deferred_schedule(id).unwrap())
        .collect();
    assert_eq!(again, vec![false; n]);
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(log.take(), expected);
}

/// A backend error keeps the `io::Error` as its `source()`; the reactor's own errors have none.
#[test]
fn only_backend_errors_have_a_source() {
    use std::error::Error as _;
    let io = evloop::Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
    let source = io.source().expect("an Io error has a source");
    assert_eq!(source.to_string(), "gone");
    assert!(evloop::Error::StaleId.source().is_none());
    assert!(evloop::Error::Invalid("x").source().is_none());
}

/// Deleting another signal event that is active with calls pending (made active by hand, not
/// running) does not cut the running signal callback's repetitions: in libevent only the event
/// whose closure runs has `ev_pncalls` set.
#[test]
fn deleting_another_pending_signal_event_keeps_the_running_repetitions() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let x = b.signal_new(10, move |_, _, _| l.push("x")).unwrap();
    let l = log.clone();
    let y = b
        .signal_new(12, move |b, _, _| {
            l.push("y");
            b.del(x).unwrap();
        })
        .unwrap();
    b.active(y, Events::SIGNAL, 3).unwrap();
    b.active(x, Events::SIGNAL, 3).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "y y y");
    b.free(x).unwrap();
    b.free(y).unwrap();
}

/// Loop flags combine as a set: a flag given twice is still set (`|` and `union` agree).
#[test]
fn loop_flags_combine_as_a_set() {
    use evloop::LoopFlags;
    let once = LoopFlags::ONCE;
    assert_eq!(once | once, once);
    assert_eq!(once.union(once), once);
    let both = LoopFlags::ONCE | LoopFlags::NONBLOCK;
    assert_eq!(both | LoopFlags::NONBLOCK, both);
    assert_eq!(both.union(LoopFlags::ONCE), both);
    assert!(both.contains(once) && !once.contains(both));
}

/// Common-timeout handles number themselves 0, 1, … in creation order, keep their duration,
/// and encode both in libevent's magic `tv_usec`; the same duration gives the same handle.
#[test]
fn common_timeout_handles() {
    let mut b = base();
    let a = b.init_common_timeout(ms(250)).unwrap();
    let c = b
        .init_common_timeout(std::time::Duration::from_micros(1_000_001))
        .unwrap();
    assert_eq!((a.index(), a.duration()), (0, ms(250)));
    assert_eq!(
        (c.index(), c.duration()),
        (1, std::time::Duration::from_micros(1_000_001))
    );
    assert_eq!(a.magic_usec(), 250_000 | 0x5000_0000);
    assert_eq!(c.magic_usec(), 1 | 0x5000_0000 | 1 << 20);
    assert_eq!(b.init_common_timeout(ms(250)).unwrap(), a);
}

/// `{:?}` of a base shows its method and its counters.
#[test]
fn base_debug_shows_method_and_counts() {
    let mut b = base();
    b.priority_init(3).unwrap();
    let t = b.timer_new(|_, _, _| {}).unwrap();
    b.add(t, Some(ms(5))).unwrap();
    assert_eq!(
        format!("{b:?}"),
        "Base { method: \"epoll\", priorities: 3, added: 1, active: 0 }"
    );
}

/// The callback hook names each kind (a WRITE-only fd event is `Io`, an activated signal event
/// `Signal`, a bare callback `Bare`) and marks only the base's own events (here a common
/// timeout's timer) internal; `first_active_priority` follows the queues; `callbacks_run` counts every callback.
#[test]
fn callback_info_kinds_priorities_and_counts() {
    let mut b = base();
    b.priority_init(3).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push(format!(
                "{:?}/{}/{}",
                info.kind, info.priority, info.internal
            ));
        }
    })));
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let w = b.event_new(s0, Events::WRITE, |_, _, _| {}).unwrap();
    b.priority_set(w, 0).unwrap();
    let sig = b.signal_new(12, |_, _, _| {}).unwrap();
    b.priority_set(sig, 2).unwrap();
    let bare = b.callback_new(|_, _| {});
    b.priority_set(bare, 1).unwrap();
    assert_eq!(b.first_active_priority(), None);
    b.active(sig, Events::SIGNAL, 1).unwrap();
    assert_eq!(b.first_active_priority(), Some(2));
    assert!(b.callback_activate(bare).unwrap());
    assert_eq!(b.first_active_priority(), Some(1));
    b.add(w, None).unwrap();
    let before = b.callbacks_run();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(
        *seen.borrow(),
        ["Io/0/false", "Bare/1/false", "Signal/2/false"]
    );
    assert_eq!(b.callbacks_run() - before, 3);
    assert_eq!(b.first_active_priority(), None);
    // A common timeout's own timer is internal (it runs first, at priority 0, and moves the
    // due events of its list to their queues); the user's timer is not.
    seen.borrow_mut().clear();
    let common = b.init_common_timeout(ms(10)).unwrap();
    let t = b.timer_new(|_, _, _| {}).unwrap();
    b.add_with(t, Some(evloop::Timeout::Common(common)))
        .unwrap();
    let before = b.callbacks_run();
    b.run(evloop::LoopFlags::ONCE).unwrap();
    assert_eq!(*seen.borrow(), ["Timer/0/true", "Timer/1/false"]);
    assert_eq!(b.callbacks_run() - before, 2);
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// A signal event cannot also ask for I/O: SIGNAL with READ, WRITE or CLOSED is refused.
#[test]
fn signal_with_any_io_flag_is_refused() {
    let mut b = base();
    for io in [Events::READ, Events::WRITE, Events::CLOSED] {
        let r = b.event_new(12, Events::SIGNAL | io, |_, _, _| {});
        assert!(matches!(r, Err(evloop::Error::Invalid(_))), "{io}");
    }
    assert!(b.event_new(12, Events::SIGNAL, |_, _, _| {}).is_ok());
}

/// A bare callback has no descriptor: its fd is -1, as the hook reports it.
#[test]
fn a_bare_callback_has_no_fd() {
    let mut b = base();
    let bare = b.callback_new(|_, _| {});
    assert_eq!(b.fd_of(bare).unwrap(), -1);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push(info.fd);
        }
    })));
    b.callback_activate(bare).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(*seen.borrow(), [-1]);
}

/// A once-event with only TIMEOUT is a pure timer whatever fd it is given (`event_base_once`
/// assigns it with `evtimer_assign`): the hook sees a `Timer` on fd -1.
#[test]
fn a_timeout_only_once_event_is_a_timer_without_fd() {
    let mut b = base();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push((info.kind, info.fd));
        }
    })));
    b.once(7, Events::TIMEOUT, Some(ms(5)), |_, _| {}).unwrap();
    b.once(-1, Events::TIMEOUT, None, |_, _| {}).unwrap();
    b.dispatch().unwrap();
    assert_eq!(
        *seen.borrow(),
        [(CallbackKind::Timer, -1), (CallbackKind::Timer, -1)]
    );
}

/// A common timeout's own timer has no descriptor (fd -1), like any timer.
#[test]
fn a_common_timeouts_timer_has_no_fd() {
    let mut b = base();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push((info.internal, info.fd));
        }
    })));
    let common = b.init_common_timeout(ms(10)).unwrap();
    let t = b.timer_new(|_, _, _| {}).unwrap();
    b.add_with(t, Some(evloop::Timeout::Common(common)))
        .unwrap();
    b.dispatch().unwrap();
    assert_eq!(*seen.borrow(), [(true, -1), (false, -1)]);
}

/// `remove_timer` drops a pending timeout (a pure timer does not fire; an fd event keeps its
/// I/O registration without the timeout) and touches nothing else: on a deleted persistent
/// event it keeps the I/O timeout that the next I/O callback re-arms (libevent clears
/// `ev_io_timeout` only when `EVLIST_TIMEOUT` is set).
#[test]
fn remove_timer_drops_only_a_pending_timeout() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let t = b
        .timer_new(move |b, _, w| l.push(format!("t {w}{}", at(b))))
        .unwrap();
    b.add(t, Some(ms(10))).unwrap();
    b.remove_timer(t).unwrap();
    assert_eq!(b.pending(t, Events::TIMEOUT).unwrap().0, Events::NONE);
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let l = log.clone();
    let e = b
        .event_new(s0, Events::READ | Events::PERSIST, move |b, _, w| {
            if w.contains(Events::READ) {
                let mut buf = [0u8; 8];
                b.backend_mut().read(s0, &mut buf).unwrap();
            }
            l.push(format!("e {w}{}", at(b)));
        })
        .unwrap();
    b.add(e, Some(ms(100))).unwrap();
    b.del(e).unwrap();
    b.remove_timer(e).unwrap(); // no timeout pending: nothing to drop
    b.add(e, None).unwrap();
    b.backend_mut().advance(ms(20));
    assert_eq!(b.backend_mut().write(s1, b"x").unwrap(), 1);
    b.run(evloop::LoopFlags::ONCE).unwrap();
    b.loopexit(Some(ms(150))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "e R@20 e T@120");
    b.del(e).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `callback_cancel` takes an activated bare callback off its queue, active or active-later:
/// it does not run; activated again, it runs once.
#[test]
fn a_cancelled_callback_does_not_run() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let cb = b.callback_new(move |_, _| l.push("ran"));
    assert!(b.callback_activate(cb).unwrap());
    b.callback_cancel(cb).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert!(b.callback_activate_later(cb).unwrap());
    b.callback_cancel(cb).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "");
    assert!(b.callback_activate(cb).unwrap(), "not queued any more");
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "ran");
}

/// `active_by_fd` activates the events on the fd that want the given bits (no data needed),
/// `active_by_signal` the events of the signal, once; `pending` reports an added signal or
/// CLOSED event's own bit.
#[test]
fn activating_by_fd_and_by_signal_and_pending_bits() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let l = log.clone();
    let r = b
        .event_new(s0, Events::READ, move |_, _, w| l.push(format!("r {w}")))
        .unwrap();
    let l = log.clone();
    let c = b
        .event_new(s1, Events::CLOSED, move |_, _, w| l.push(format!("c {w}")))
        .unwrap();
    let l = log.clone();
    let sig = b
        .signal_new(12, move |_, _, w| l.push(format!("s {w}")))
        .unwrap();
    b.add(r, None).unwrap();
    b.add(c, None).unwrap();
    b.add(sig, None).unwrap();
    assert_eq!(b.pending(c, Events::CLOSED).unwrap().0, Events::CLOSED);
    assert_eq!(b.pending(sig, Events::SIGNAL).unwrap().0, Events::SIGNAL);
    b.active_by_fd(s0, Events::READ);
    b.active_by_signal(12);
    b.run(evloop::LoopFlags::NONBLOCK | evloop::LoopFlags::ONCE)
        .unwrap();
    assert_eq!(log.joined(), "r R s S");
    b.del(c).unwrap();
    b.del(sig).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `pending` answers only what was asked: READ alone does not bring the pending TIMEOUT or its
/// deadline; the deadline comes only with a pending TIMEOUT that was asked for.
#[test]
fn pending_answers_only_what_was_asked() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let e = b.event_new(s0, Events::READ, |_, _, _| {}).unwrap();
    b.add(e, Some(ms(50))).unwrap();
    let (p, tv) = b.pending(e, Events::READ).unwrap();
    assert_eq!((p, tv), (Events::READ, None));
    let (p, tv) = b.pending(e, Events::TIMEOUT).unwrap();
    assert_eq!(p, Events::TIMEOUT);
    assert!(tv.is_some());
    b.del(e).unwrap();
    assert_eq!(
        b.pending(e, Events::TIMEOUT | Events::READ).unwrap(),
        (Events::NONE, None)
    );
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `is_pending` is true for each way of waiting: an fd event added without a timeout, a timer
/// with one, an event made active by hand, a callback activated for later; false once done.
#[test]
fn is_pending_covers_every_way_of_waiting() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let io = b.event_new(s0, Events::READ, |_, _, _| {}).unwrap();
    b.add(io, None).unwrap();
    let t = b.timer_new(|_, _, _| {}).unwrap();
    b.add(t, Some(ms(10))).unwrap();
    let act = b.timer_new(|_, _, _| {}).unwrap();
    b.active(act, Events::TIMEOUT, 1).unwrap();
    let later = b.callback_new(|_, _| {});
    b.callback_activate_later(later).unwrap();
    for (name, id) in [("io", io), ("timer", t), ("active", act), ("later", later)] {
        assert!(b.is_pending(id).unwrap(), "{name}");
    }
    b.del(io).unwrap();
    b.dispatch().unwrap();
    for (name, id) in [("io", io), ("timer", t), ("active", act), ("later", later)] {
        assert!(!b.is_pending(id).unwrap(), "{name}");
    }
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// A base claims the process's signals when it enters its loop only if it has signal events
/// (`evsig_set_base_` under `ev_signal_added && ev_n_signals_added`): a base whose only signal
/// event was deleted leaves them with the base that still waits for one.
#[test]
fn a_base_without_signal_events_does_not_claim_signals() {
    let _g = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let log = Log::default();
    let mut a = base();
    let mut c = base();
    let l = log.clone();
    let ea = a
        .signal_new(libc::SIGUSR1, move |_, _, w| l.push(format!("a {w}")))
        .unwrap();
    let ec = c.signal_new(libc::SIGUSR1, |_, _, _| {}).unwrap();
    a.add(ea, None).unwrap();
    c.add(ec, None).unwrap();
    c.del(ec).unwrap();
    a.run(evloop::LoopFlags::NONBLOCK).unwrap();
    c.run(evloop::LoopFlags::NONBLOCK).unwrap();
    a.backend_mut().raise(libc::SIGUSR1).unwrap();
    a.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "a S");
    a.del(ea).unwrap();
}

/// Adding an fd event while it is active (made active by hand, never added) does not register
/// it for I/O (`event_add_nolock_` inserts only events that are neither inserted nor active):
/// after its callback, bytes arriving on the fd do not wake it.
#[test]
fn adding_an_active_event_does_not_register_its_io() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let l = log.clone();
    let e = b
        .event_new(s0, Events::READ | Events::PERSIST, move |_, _, w| {
            l.push(format!("e {w}"))
        })
        .unwrap();
    b.active(e, Events::READ, 1).unwrap();
    b.add(e, None).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK | evloop::LoopFlags::ONCE)
        .unwrap();
    assert_eq!(log.joined(), "e R");
    assert_eq!(b.backend_mut().write(s1, b"x").unwrap(), 1);
    b.run(evloop::LoopFlags::NONBLOCK | evloop::LoopFlags::ONCE)
        .unwrap();
    assert_eq!(log.joined(), "", "not registered for I/O");
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// Re-adding with a timeout a signal event that is waiting to run for its timeout removes it
/// from its queue without touching the repetitions of another signal event's running closure
/// (libevent aborts only the closure that the re-added event itself is running).
#[test]
fn re_adding_a_timed_out_signal_event_keeps_other_repetitions() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let l = log.clone();
    let sb = b
        .signal_new(12, move |b, _, w| l.push(format!("b {w}{}", at(b))))
        .unwrap();
    b.priority_set(sb, 1).unwrap();
    let l = log.clone();
    let sa = b
        .signal_new(10, move |b, _, w| {
            l.push(format!("a {w}"));
            b.add(sb, Some(ms(50))).unwrap();
        })
        .unwrap();
    b.priority_set(sa, 0).unwrap();
    b.add(sb, Some(ms(10))).unwrap();
    b.backend_mut().advance(ms(10));
    b.active(sa, Events::SIGNAL, 3).unwrap();
    b.run(evloop::LoopFlags::ONCE).unwrap();
    assert_eq!(log.joined(), "a S a S a S", "all three repetitions");
    b.loopexit(Some(ms(100))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "b T@60", "b waits for its new timeout");
    b.del(sa).unwrap();
    b.del(sb).unwrap();
}

/// Activating an event at the running callback's own priority does not end the pass
/// (`event_continue` is set only for a more urgent priority): the rest of the queue runs before
/// the next iteration looks at the timers, even when a timer became due meanwhile.
#[test]
fn activating_at_the_running_priority_does_not_end_the_pass() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let t = named(&mut b, &log, "T", 0);
    b.add(t, Some(ms(10))).unwrap();
    let l = log.clone();
    let c = b.timer_new(move |_, _, _| l.push("C")).unwrap();
    let l = log.clone();
    let bb = b.timer_new(move |_, _, _| l.push("B")).unwrap();
    let l = log.clone();
    let a = b
        .timer_new(move |b, _, _| {
            l.push("A");
            b.backend_mut().advance(ms(10));
            b.active(c, Events::TIMEOUT, 1).unwrap();
        })
        .unwrap();
    for e in [a, bb, c] {
        b.priority_set(e, 1).unwrap();
    }
    b.active(a, Events::TIMEOUT, 1).unwrap();
    b.active(bb, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "A B C T");
}

/// An event waiting on the active-later queue that is activated is moved to its active queue
/// at once, keeping the result bits it had (`event_active_nolock_`'s ACTIVE_LATER case:
/// `ev_res |= res`, then the move): it runs before an event activated after it, with both bits.
#[test]
fn activating_an_active_later_event_moves_it_and_merges_its_bits() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let l = log.clone();
    let e = b
        .event_new(s0, Events::READ | Events::WRITE, move |_, _, w| {
            l.push(format!("e {w}"))
        })
        .unwrap();
    let l = log.clone();
    let x = b.timer_new(move |_, _, _| l.push("x")).unwrap();
    b.active(e, Events::READ, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "e R");
    assert!(b.callback_activate_later(e).unwrap());
    b.active(e, Events::WRITE, 1).unwrap();
    b.active(x, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "e RW x");
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// The same for an event moved from the active-later queue: activated at the running priority
/// it does not end the pass; at a more urgent one it does (the next iteration runs it first).
#[test]
fn activating_an_active_later_event_ends_the_pass_only_if_more_urgent() {
    for (pri, want) in [(1u8, "A B L T"), (0, "A L T B")] {
        let log = Log::default();
        let mut b = base();
        b.priority_init(2).unwrap();
        let t = named(&mut b, &log, "T", 0);
        b.add(t, Some(ms(10))).unwrap();
        let late = named(&mut b, &log, "L", pri as usize);
        let l = log.clone();
        let bb = b.timer_new(move |_, _, _| l.push("B")).unwrap();
        let l = log.clone();
        let a = b
            .timer_new(move |b, _, _| {
                l.push("A");
                b.backend_mut().advance(ms(10));
                assert!(b.callback_activate_later(late).unwrap());
                b.active(late, Events::TIMEOUT, 1).unwrap();
            })
            .unwrap();
        b.priority_set(a, 1).unwrap();
        b.priority_set(bb, 1).unwrap();
        b.active(a, Events::TIMEOUT, 1).unwrap();
        b.active(bb, Events::TIMEOUT, 1).unwrap();
        b.run(evloop::LoopFlags::NONBLOCK).unwrap();
        assert_eq!(log.joined(), want, "priority {pri}");
    }
}

/// A bare callback waiting on the active-later queue and then activated with `active` moves to
/// its active queue once: it runs once.
#[test]
fn an_active_later_bare_callback_activated_runs_once() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let cb = b.callback_new(move |_, _| l.push("cb"));
    assert!(b.callback_activate_later(cb).unwrap());
    b.active(cb, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "cb");
    assert!(!b.is_pending(cb).unwrap());
}

/// A callback moved from the active-later queue is active: another callback that runs before
/// it in the same pass sees it pending.
#[test]
fn a_callback_moved_from_active_later_is_pending() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let later = b.callback_new(|_, _| {});
    let l = log.clone();
    let first = b
        .timer_new(move |b, _, _| l.push(format!("{}", b.is_pending(later).unwrap())))
        .unwrap();
    b.priority_set(first, 0).unwrap();
    assert!(b.callback_activate_later(later).unwrap());
    b.active(first, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "true");
    assert!(!b.is_pending(later).unwrap());
}

/// Deferred callbacks moved from the active-later queue at the top of an iteration count
/// against that iteration's budget of 33 direct activations (`event_process_active` counts
/// them in `n_deferreds_queued`): of 30 scheduled after 7 were moved, 26 run in the pass and 4
/// wait for the next one, behind an event activated after them.
#[test]
fn deferreds_moved_from_active_later_count_against_the_budget() {
    let log = Log::default();
    let mut b = base();
    let budget = evloop::MAX_DEFERREDS_QUEUED as usize + 1;
    let l = log.clone();
    let marker = b.timer_new(move |_, _, _| l.push("M")).unwrap();
    let seconds: Vec<_> = (0..30)
        .map(|i| {
            let l = log.clone();
            b.callback_new(move |_, _| l.push(format!("e{i}")))
        })
        .collect();
    let firsts: Vec<_> = (0..budget + 7)
        .map(|i| {
            let l = log.clone();
            let seconds = seconds.clone();
            b.callback_new(move |b, _| {
                l.push(format!("c{i}"));
                // The first callback moved from the active-later queue schedules 30 more.
                if i == budget {
                    for &e in &seconds {
                        b.deferred_schedule(e).unwrap();
                    }
                    b.active(marker, Events::TIMEOUT, 1).unwrap();
                }
            })
        })
        .collect();
    for &c in &firsts {
        b.deferred_schedule(c).unwrap();
    }
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    let got = log.take();
    let pos = |s: &str| got.iter().position(|x| x == s).unwrap();
    assert_eq!(got.len(), budget + 7 + 30 + 1);
    assert!(pos("e25") < pos("M") && pos("M") < pos("e26"), "{got:?}");
}

/// A common-timeout list stays sorted when an event goes in before the tail: a persistent event
/// that fired late is re-added relative to its old deadline (`event_persist_closure`), which
/// can be earlier than an event added meanwhile; it still fires at its own deadline.
#[test]
fn a_late_persistent_common_timeout_is_inserted_in_order() {
    let log = Log::default();
    let mut b = base();
    let common = b.init_common_timeout(ms(100)).unwrap();
    let l = log.clone();
    let p = b
        .event_new(-1, Events::PERSIST, move |b, _, w| {
            l.push(format!("P {w}{}", at(b)))
        })
        .unwrap();
    let l = log.clone();
    let q = b
        .timer_new(move |b, _, w| l.push(format!("Q {w}{}", at(b))))
        .unwrap();
    b.add_with(p, Some(evloop::Timeout::Common(common)))
        .unwrap();
    b.backend_mut().advance(ms(150));
    b.add_with(q, Some(evloop::Timeout::Common(common)))
        .unwrap();
    b.loopexit(Some(ms(120))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "P T@150 P T@200 Q T@250");
    b.del(p).unwrap();
}

/// With `max_dispatch_callbacks` limited from priority 1 on, a priority-1 queue runs one
/// callback per pass (the next iteration looks at the timers first); the limit does not apply
/// below `limit_callbacks_after_prio`, so priority 0 runs its whole queue.
#[test]
fn the_callback_limit_starts_at_its_priority() {
    let cfg = evloop::Config {
        max_dispatch_callbacks: Some(1),
        limit_callbacks_after_prio: 1,
        ..Default::default()
    };
    for (pri, want) in [(1usize, "A T B"), (0, "A B T")] {
        let log = Log::default();
        let mut b = Base::with_config(VirtualTime::new(EpollBackend::new().unwrap()), &cfg);
        b.priority_init(2).unwrap();
        let t = named(&mut b, &log, "T", 0);
        b.add(t, Some(ms(10))).unwrap();
        let l = log.clone();
        let bb = b.timer_new(move |_, _, _| l.push("B")).unwrap();
        let l = log.clone();
        let a = b
            .timer_new(move |b, _, _| {
                l.push("A");
                b.backend_mut().advance(ms(10));
            })
            .unwrap();
        b.priority_set(a, pri).unwrap();
        b.priority_set(bb, pri).unwrap();
        b.active(a, Events::TIMEOUT, 1).unwrap();
        b.active(bb, Events::TIMEOUT, 1).unwrap();
        b.run(evloop::LoopFlags::NONBLOCK).unwrap();
        assert_eq!(log.joined(), want, "priority {pri}");
    }
}

/// After a pass no priority is running (`event_running_priority` is back to -1): timers made
/// active by the next iteration, even at the most urgent priority, do not cut that iteration's
/// pass short, so the second of two timers due together runs in the same pass, with the same
/// cached time, although the first one's callback let the clock move on.
#[test]
fn no_priority_is_running_between_passes() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let l = log.clone();
    let t0 = b
        .timer_new(move |b, _, _| {
            l.push(format!("T0{}", at(b)));
            b.backend_mut().advance(ms(5));
        })
        .unwrap();
    let l = log.clone();
    let t1 = b
        .timer_new(move |b, _, _| l.push(format!("T1{}", at(b))))
        .unwrap();
    for t in [t0, t1] {
        b.priority_set(t, 0).unwrap();
        b.add(t, Some(ms(10))).unwrap();
    }
    let l = log.clone();
    let a = b
        .timer_new(move |b, _, _| {
            l.push("A");
            b.backend_mut().advance(ms(10));
        })
        .unwrap();
    b.priority_set(a, 1).unwrap();
    b.active(a, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "A T0@10 T1@10");
}

/// Tests here that raise real signals take turns: the process has one signal disposition.
static SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The signal pipe's callback activates the events of the signals that arrived, and only
/// those (`evsig_cb` skips signals caught 0 times): with SIGUSR1 and SIGUSR2 both watched,
/// raising SIGUSR1 runs the pipe's internal callback and SIGUSR1's event, nothing for SIGUSR2.
#[test]
fn only_the_signals_that_arrived_are_activated() {
    let _g = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = base();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push((info.kind, info.internal, info.fd));
        }
    })));
    let e1 = b.signal_new(libc::SIGUSR1, |_, _, _| {}).unwrap();
    let e2 = b.signal_new(libc::SIGUSR2, |_, _, _| {}).unwrap();
    b.add(e1, None).unwrap();
    b.add(e2, None).unwrap();
    b.backend_mut().raise(libc::SIGUSR1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    let got = seen.borrow().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (CallbackKind::Io, true), "the pipe");
    assert_eq!(got[1], (CallbackKind::Signal, false, libc::SIGUSR1));
    b.del(e1).unwrap();
    b.del(e2).unwrap();
}

/// `max_dispatch_interval`: after a callback, once the interval has passed, the pass ends and
/// the next iteration looks at the timers first; while it has not passed, the queue goes on.
#[test]
fn the_dispatch_interval_ends_a_pass_only_once_passed() {
    let cfg = evloop::Config {
        max_dispatch_interval: Some(ms(10)),
        limit_callbacks_after_prio: 0,
        ..Default::default()
    };
    for (advance, want) in [(20, "A T B C"), (0, "A B C T")] {
        let log = Log::default();
        let mut b = Base::with_config(VirtualTime::new(EpollBackend::new().unwrap()), &cfg);
        b.priority_init(2).unwrap();
        let t = named(&mut b, &log, "T", 0);
        let (bb, c) = (named(&mut b, &log, "B", 1), named(&mut b, &log, "C", 1));
        let l = log.clone();
        let a = b
            .timer_new(move |b, _, _| {
                l.push("A");
                b.backend_mut().advance(ms(advance));
                b.add(t, Some(ms(0))).unwrap();
            })
            .unwrap();
        b.priority_set(a, 1).unwrap();
        for e in [a, bb, c] {
            b.active(e, Events::TIMEOUT, 1).unwrap();
        }
        b.run(evloop::LoopFlags::NONBLOCK).unwrap();
        assert_eq!(log.joined(), want, "advance {advance}");
    }
}

/// A persistent timer that fired exactly one interval late is rescheduled for now (its previous
/// deadline plus the interval), not a whole interval later: `event_persist_closure` moves the
/// deadline to `now + interval` only when the next one is already in the past (`<`).
#[test]
fn a_persistent_timer_one_interval_late_fires_again_at_once() {
    let log = Log::default();
    let mut b = base();
    let l = log.clone();
    let p = b
        .event_new(-1, Events::PERSIST, move |b, _, _| {
            l.push(format!("P{}", at(b)))
        })
        .unwrap();
    b.add(p, Some(ms(10))).unwrap();
    b.backend_mut().advance(ms(20));
    b.loopexit(Some(ms(5))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "P@20 P@20");
    b.del(p).unwrap();
}

/// The interval is checked only after a counted callback (`count > 0`): with an interval of 0,
/// a common timeout's internal timer running first does not end the pass, the user's timer
/// after it does; so the less urgent event runs after both.
#[test]
fn the_dispatch_interval_ignores_internal_callbacks() {
    let cfg = evloop::Config {
        max_dispatch_interval: Some(ms(0)),
        limit_callbacks_after_prio: 0,
        ..Default::default()
    };
    let log = Log::default();
    let mut b = Base::with_config(VirtualTime::new(EpollBackend::new().unwrap()), &cfg);
    b.priority_init(2).unwrap();
    let common = b.init_common_timeout(ms(10)).unwrap();
    let p = named(&mut b, &log, "P", 1);
    b.add_with(p, Some(evloop::Timeout::Common(common)))
        .unwrap();
    let t = named(&mut b, &log, "B", 0);
    b.add(t, Some(ms(10))).unwrap();
    let d = named(&mut b, &log, "D", 1);
    b.active(d, Events::TIMEOUT, 1).unwrap();
    b.backend_mut().advance(ms(10));
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "B D P");
}

/// A signal event freed by its own callback stops repeating, even when a new event created in
/// that callback takes over its slot: the new event's callback does not run for the rest of
/// the old event's repetitions.
#[test]
fn a_signal_event_freed_in_its_callback_stops_repeating() {
    let log = Log::default();
    let mut b = base();
    let made = Rc::new(RefCell::new(None));
    let (l, m) = (log.clone(), made.clone());
    let s = b
        .signal_new(12, move |b, me, _| {
            l.push("S");
            b.free(me).unwrap();
            let l2 = l.clone();
            let n = b.timer_new(move |_, _, _| l2.push("N")).unwrap();
            *m.borrow_mut() = Some(n);
        })
        .unwrap();
    b.active(s, Events::SIGNAL, 3).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "S");
    let n = made.borrow().expect("created");
    assert!(!b.is_pending(n).unwrap());
}

/// An event freed in its own callback, whose slot a new event created in that callback takes
/// over, does not hand its callback to the new event: activated, the new event runs its own.
#[test]
fn a_new_event_in_a_freed_slot_keeps_its_own_callback() {
    let log = Log::default();
    let mut b = base();
    let made = Rc::new(RefCell::new(None));
    let (l, m) = (log.clone(), made.clone());
    let e = b
        .timer_new(move |b, me, _| {
            l.push("E");
            b.free(me).unwrap();
            let l2 = l.clone();
            *m.borrow_mut() = Some(b.timer_new(move |_, _, _| l2.push("N")).unwrap());
        })
        .unwrap();
    b.active(e, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    let n = made.borrow().expect("created");
    b.active(n, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "E N");
}

/// A once-event's slot is released after its callback (nothing leaks): a second once-event,
/// scheduled after the first ran, runs in the same slot (the hook reports slot numbers).
#[test]
fn a_once_events_slot_is_released_after_it_runs() {
    let mut b = base();
    let slots = Rc::new(RefCell::new(Vec::new()));
    let s = slots.clone();
    b.set_callback_hook(Some(Box::new(move |info, before| {
        if before {
            s.borrow_mut().push(info.slot);
        }
    })));
    for _ in 0..2 {
        b.once(-1, Events::TIMEOUT, None, |_, _| {}).unwrap();
        b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    }
    let got = slots.borrow().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], got[1], "the first once-event's slot was reused");
}

/// After `run` returns, no priority is running: in the next `run`, the most urgent timers made
/// active by its first iteration do not cut the pass short (the second of two timers due
/// together runs in the same pass, with the same cached time).
#[test]
fn no_priority_is_running_after_run_returns() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let a = b.timer_new(|_, _, _| {}).unwrap();
    b.priority_set(a, 1).unwrap();
    b.active(a, Events::TIMEOUT, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    let l = log.clone();
    let t0 = b
        .timer_new(move |b, _, _| {
            l.push(format!("T0{}", at(b)));
            b.backend_mut().advance(ms(5));
        })
        .unwrap();
    let l = log.clone();
    let t1 = b
        .timer_new(move |b, _, _| l.push(format!("T1{}", at(b))))
        .unwrap();
    for t in [t0, t1] {
        b.priority_set(t, 0).unwrap();
        b.add(t, Some(ms(10))).unwrap();
    }
    b.backend_mut().advance(ms(10));
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "T0@10 T1@10");
}

/// The same merge for a bare callback (which has no INIT flag): activated while it waits on
/// the active-later queue, it keeps its earlier result bits, as `pending` shows.
#[test]
fn an_active_later_bare_callback_keeps_its_bits_when_activated() {
    let mut b = base();
    let cb = b.callback_new(|_, _| {});
    b.active(cb, Events::WRITE, 1).unwrap();
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
    assert!(b.callback_activate_later(cb).unwrap());
    b.active(cb, Events::READ, 1).unwrap();
    let (p, _) = b.pending(cb, Events::READ | Events::WRITE).unwrap();
    assert_eq!(p, Events::READ | Events::WRITE);
    b.run(evloop::LoopFlags::NONBLOCK).unwrap();
}
