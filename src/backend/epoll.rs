//! The epoll(7) backend: libevent's `epoll.c` without the changelist.
//!
//! Every `add`/`del` is applied at once with one `epoll_ctl`, with libevent's fallbacks for
//! descriptors that were closed and reopened behind the reactor's back. `dispatch` maps the
//! kernel's flags to libevent's `EV_*` bits exactly as libevent does and reports descriptors in
//! the kernel's ready-list order; it never reorders or filters them.
//!
//! Linux only: on other systems [`EpollBackend::new`] fails with `Unsupported`.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::time::Duration;

use super::{Backend, Features, Ready, Resolution};
use crate::event::{Events, Fd, Time};

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use self::imp::EpollBackend;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub use self::unsupported::EpollBackend;

/// libevent's epoll features: `EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_EARLY_CLOSE`, waits in
/// whole milliseconds.
const FEATURES: Features = Features {
    edge_triggered: true,
    o1: true,
    early_close: true,
    fds: false,
    resolution: Resolution::Millis,
};

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::super::signal::SignalState;
    use super::super::sys::{self, epoll_mask, real_signal_ops, real_socket_ops, syscall};
    use super::*;

    /// libevent's `INITIAL_NEVENT`: the first size of the result array.
    const INITIAL_NEVENT: usize = 32;
    /// libevent's `MAX_NEVENT`: the array stops doubling here.
    const MAX_NEVENT: usize = 4096;

    /// Doubles the event array after a full report; out of line, as it happens a few times at
    /// most and the dispatch path's code stays in fewer instruction-cache lines without it.
    #[cold]
    #[inline(never)]
    fn grow(events: &mut Vec<libc::epoll_event>) {
        let n = events.len() * 2;
        events.resize(n, libc::epoll_event { events: 0, u64: 0 });
    }

    /// libevent's `MAX_EPOLL_TIMEOUT_MSEC`: older kernels misbehave with longer waits.
    const MAX_EPOLL_TIMEOUT_MSEC: u64 = 35 * 60 * 1000;

    /// The epoll backend (libevent method `"epoll"`).
    pub struct EpollBackend {
        epfd: OwnedFd,
        /// The result array handed to `epoll_wait`; it only grows, and only when a wait filled it.
        events: Vec<libc::epoll_event>,
        signals: SignalState,
        /// `EVENT_BASE_FLAG_PRECISE_TIMER`: a timerfd in the epoll set carries the exact timeout
        /// and `epoll_wait` blocks without one, as libevent's epoll does.
        timerfd: Option<OwnedFd>,
        clock: sys::Clock,
    }

    impl EpollBackend {
        /// Opens an epoll instance (`epoll_create1(EPOLL_CLOEXEC)`).
        pub fn new() -> io::Result<EpollBackend> {
            // SAFETY: epoll_create1() takes no pointers.
            let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
            Ok(EpollBackend {
                // SAFETY: `fd` was just created and nothing else owns it.
                epfd: unsafe { OwnedFd::from_raw_fd(fd) },
                events: vec![libc::epoll_event { events: 0, u64: 0 }; INITIAL_NEVENT],
                signals: SignalState::eager(),
                timerfd: None,
                clock: sys::Clock::default(),
            })
        }

        /// An epoll backend with libevent's `EVENT_BASE_FLAG_PRECISE_TIMER` behaviour: a
        /// `timerfd` (in the epoll set, level-triggered) is armed with each wait's exact timeout
        /// and `epoll_wait` gets -1 (or 0 for a zero timeout), so waits have µs resolution.
        pub fn with_precise_timer() -> io::Result<EpollBackend> {
            let mut b = EpollBackend::new()?;
            // SAFETY: timerfd_create() takes no pointers.
            let fd = syscall!(timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
            ))?;
            // SAFETY: `fd` was just created and nothing else owns it.
            let tfd = unsafe { OwnedFd::from_raw_fd(fd) };
            b.ctl(libc::EPOLL_CTL_ADD, tfd.as_raw_fd(), libc::EPOLLIN as u32)?;
            b.timerfd = Some(tfd);
            b.clock = sys::Clock::PRECISE;
            Ok(b)
        }

        /// Arms (or, with `None`, disarms) the precise timer; the `epoll_wait` timeout to use.
        #[inline(never)]
        fn arm_timer(&self, tfd: libc::c_int, timeout: Option<Duration>) -> io::Result<i32> {
            let mut spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            };
            let mut wait = -1;
            if let Some(d) = timeout {
                let us = crate::event::duration_micros(d);
                if us == 0 {
                    wait = 0;
                }
                spec.it_value.tv_sec = (us / 1_000_000) as libc::time_t;
                spec.it_value.tv_nsec = ((us % 1_000_000) * 1000) as libc::c_long;
            }
            // SAFETY: `spec` is a valid itimerspec; a NULL old value is allowed.
            syscall!(timerfd_settime(tfd, 0, &spec, std::ptr::null_mut()))?;
            Ok(wait)
        }

        fn ctl(&self, op: libc::c_int, fd: Fd, events: u32) -> io::Result<()> {
            let mut ev = libc::epoll_event {
                events,
                u64: fd as u32 as u64,
            };
            // SAFETY: `ev` is a valid, writable epoll_event for the duration of the call.
            syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev)).map(drop)
        }

        /// One change with libevent's retries (`epoll_apply_one_change`): an ADD that finds the fd
        /// already there becomes a MOD (a precautionary add, or dup2 onto a watched number); a MOD
        /// that finds nothing becomes an ADD (closed and reopened); a DEL of something already
        /// gone is fine (closed before the delete).
        fn apply(&self, op: libc::c_int, fd: Fd, events: u32) -> io::Result<()> {
            let err = match self.ctl(op, fd, events) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match (op, err.raw_os_error()) {
                (libc::EPOLL_CTL_MOD, Some(libc::ENOENT)) => {
                    self.ctl(libc::EPOLL_CTL_ADD, fd, events)
                }
                (libc::EPOLL_CTL_ADD, Some(libc::EEXIST)) => {
                    self.ctl(libc::EPOLL_CTL_MOD, fd, events)
                }
                (libc::EPOLL_CTL_DEL, Some(libc::ENOENT | libc::EBADF | libc::EPERM)) => Ok(()),
                _ => Err(err),
            }
        }
    }

    /// libevent's mapping of one epoll result: an error, or a hang-up nobody asked to see as
    /// `EV_CLOSED`, wakes both directions.
    fn readiness(what: u32) -> Events {
        let what = what as libc::c_int;
        if what & libc::EPOLLERR != 0
            || (what & libc::EPOLLHUP != 0 && what & libc::EPOLLRDHUP == 0)
        {
            return Events::READ | Events::WRITE;
        }
        let mut ev = Events::NONE;
        if what & libc::EPOLLIN != 0 {
            ev |= Events::READ;
        }
        if what & libc::EPOLLOUT != 0 {
            ev |= Events::WRITE;
        }
        if what & libc::EPOLLRDHUP != 0 {
            ev |= Events::CLOSED;
        }
        ev
    }

    impl Backend for EpollBackend {
        fn name(&self) -> &'static str {
            "epoll"
        }

        fn features(&self) -> Features {
            if self.timerfd.is_some() {
                Features {
                    resolution: Resolution::Micros,
                    ..FEATURES
                }
            } else {
                FEATURES
            }
        }

        /// `EPOLL_CTL_ADD` when nothing was watched before, `EPOLL_CTL_MOD` otherwise, with the
        /// union of the old and added interest (`EPOLLET` if the change asks for `EV_ET`).
        fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
            if added.io().is_empty() {
                return Ok(());
            }
            let mut mask = epoll_mask(old.io() | added.io());
            if added.contains(Events::ET) {
                mask |= libc::EPOLLET as u32;
            }
            let op = if old.io().is_empty() {
                libc::EPOLL_CTL_ADD
            } else {
                libc::EPOLL_CTL_MOD
            };
            self.apply(op, fd, mask)
        }

        /// `EPOLL_CTL_DEL` when nothing remains, `EPOLL_CTL_MOD` with what remains otherwise.
        fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
            if removed.io().is_empty() {
                return Ok(());
            }
            let remaining = old.io() & !removed.io();
            if remaining.is_empty() {
                return self.apply(libc::EPOLL_CTL_DEL, fd, 0);
            }
            let mut mask = epoll_mask(remaining);
            // evmap never mixes ET and level-triggered events on one fd, so an ET removal
            // leaves ET events behind.
            if removed.contains(Events::ET) {
                mask |= libc::EPOLLET as u32;
            }
            self.apply(libc::EPOLL_CTL_MOD, fd, mask)
        }

        // Inlined into the loop (`Base::run`), so that `epoll_wait` returns straight into it:
        // on this machine each extra function return on the way back from a system call costs
        // about 0.6 % of a callback at a=1 (BENCHMARKS.md, "What a callback costs besides its
        // system calls"). What rarely runs (the precise timer, a full array) stays out of line,
        // so that the loop's code stays small.
        #[inline(always)]
        fn dispatch(
            &mut self,
            timeout: Option<Duration>,
            ready: &mut Vec<Ready>,
        ) -> io::Result<()> {
            let tfd = self.timerfd.as_ref().map(|t| t.as_raw_fd());
            let timeout_ms = match tfd {
                Some(tfd) => self.arm_timer(tfd, timeout)?,
                None => super::super::poll::timeout_ms_capped(timeout, MAX_EPOLL_TIMEOUT_MSEC),
            };
            let capacity = self.events.len();
            // SAFETY: `events` is writable for `capacity` epoll_events.
            let n = match syscall!(epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                capacity as libc::c_int,
                timeout_ms,
            )) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            };
            // No `reserve`: the core keeps `ready` from pass to pass, so once it has grown a
            // push allocates nothing.
            for ev in &self.events[..n] {
                // Copy out of the (packed on x86_64) struct before use.
                let (what, data) = (ev.events, ev.u64);
                if tfd == Some(data as u32 as Fd) {
                    continue;
                }
                let events = readiness(what);
                if events.is_empty() {
                    continue;
                }
                ready.push(Ready {
                    fd: data as u32 as Fd,
                    // libevent's epoll ORs EV_ET into every report; the core masks it with
                    // each event's own flags.
                    events: events | Events::ET,
                });
            }
            if n == capacity && capacity < MAX_NEVENT {
                // The array was full: more may have been ready. Be ready for more next time.
                grow(&mut self.events);
            }
            Ok(())
        }

        fn now(&mut self) -> Time {
            self.clock.now()
        }

        fn use_precise_clock(&mut self) {
            self.clock = sys::Clock::PRECISE;
        }

        real_signal_ops!(signals);
        real_socket_ops!();
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod unsupported {
    use super::super::sys::{self, real_socket_ops};
    use super::super::NSIG;
    use super::*;

    /// Stand-in on systems without epoll: it cannot be constructed.
    pub struct EpollBackend {
        never: std::convert::Infallible,
    }

    impl EpollBackend {
        /// Always fails: epoll is Linux-only.
        pub fn new() -> io::Result<EpollBackend> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the epoll backend exists only on Linux",
            ))
        }

        /// Always fails: epoll is Linux-only.
        pub fn with_precise_timer() -> io::Result<EpollBackend> {
            EpollBackend::new()
        }
    }

    impl Backend for EpollBackend {
        fn name(&self) -> &'static str {
            "epoll"
        }
        fn features(&self) -> Features {
            FEATURES
        }
        fn add(&mut self, _: Fd, _: Events, _: Events) -> io::Result<()> {
            match self.never {}
        }
        fn del(&mut self, _: Fd, _: Events, _: Events) -> io::Result<()> {
            match self.never {}
        }
        fn dispatch(&mut self, _: Option<Duration>, _: &mut Vec<Ready>) -> io::Result<()> {
            match self.never {}
        }
        fn now(&mut self) -> Time {
            match self.never {}
        }
        fn signal_add(&mut self, _: i32) -> io::Result<()> {
            match self.never {}
        }
        fn signal_del(&mut self, _: i32) -> io::Result<()> {
            match self.never {}
        }
        fn signal_fd(&mut self) -> io::Result<Fd> {
            match self.never {}
        }
        fn signal_drain(&mut self, _: &mut [u32; NSIG]) {
            match self.never {}
        }
        fn raise(&mut self, sig: i32) -> io::Result<()> {
            sys::raise(sig)
        }
        real_socket_ops!();
    }
}
