//! The mio backend: mio's `Poll` (epoll, kqueue, …) behind the libevent-style interface.
//!
//! mio is edge-triggered only. For libevent's level-triggered default, every fd reported in one
//! dispatch is re-armed (re-registered with the same interest) at the start of the next one, after
//! the callbacks had their chance to drain it: if the condition still holds, the kernel queues it
//! again and it is reported again. The cost is one extra `epoll_ctl`/`kevent` call per reported
//! level-triggered fd per dispatch (native epoll pays nothing for that). Events with `EV_ET` are
//! not re-armed: they are truly edge-triggered and reported with `ET`. A re-arm must never
//! outlive the interest: `add`/`del` replace any pending one.
//!
//! Portable to any unix mio supports: no Linux-only call here (sys.rs and signal.rs carry the
//! fallbacks for the shared socket and signal code).
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use super::signal::SignalState;
use super::sys::{self, real_signal_ops, real_socket_ops};
use super::{Backend, Features, Ready, Resolution};
use crate::event::{Events, Fd, Time};

/// The first capacity of the result buffer; it doubles when a wait fills it, up to
/// [`MAX_EVENTS`] (libevent's epoll rule).
const INITIAL_EVENTS: usize = 32;
const MAX_EVENTS: usize = 4096;

/// What the backend knows about one fd.
#[derive(Clone, Copy, Default)]
struct FdState {
    /// READ/WRITE/CLOSED plus ET, as registered with mio; empty = not registered.
    interest: Events,
    /// Reported by the last dispatch and not yet re-armed.
    rearm: bool,
}

/// The mio backend (method name `"mio"`).
pub struct MioBackend {
    poll: Poll,
    events: mio::Events,
    capacity: usize,
    /// Indexed by fd.
    fds: Vec<FdState>,
    /// Fds to re-arm at the next dispatch (each at most once: see `FdState::rearm`).
    rearm: Vec<Fd>,
    signals: SignalState,
}

impl MioBackend {
    /// Opens a mio `Poll`.
    pub fn new() -> io::Result<MioBackend> {
        Ok(MioBackend {
            poll: Poll::new()?,
            events: mio::Events::with_capacity(INITIAL_EVENTS),
            capacity: INITIAL_EVENTS,
            fds: Vec::new(),
            rearm: Vec::new(),
            signals: SignalState::new(),
        })
    }

    fn state(&mut self, fd: Fd) -> io::Result<&mut FdState> {
        let idx = usize::try_from(fd).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid file descriptor {fd}"),
            )
        })?;
        if self.fds.len() <= idx {
            self.fds.resize(idx + 1, FdState::default());
        }
        Ok(&mut self.fds[idx])
    }

    /// Registers `fd` for `interest`, or updates its registration, with libevent's epoll
    /// fallbacks (a stale registration after close/reopen, or none where one was expected).
    fn register(&mut self, fd: Fd, registered: bool, interest: Events) -> io::Result<()> {
        let mio_interest = mio_interest(interest);
        let registry = self.poll.registry();
        let token = Token(fd as usize);
        let mut source = SourceFd(&fd);
        if registered {
            match registry.reregister(&mut source, token, mio_interest) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    registry.register(&mut source, token, mio_interest)
                }
                other => other,
            }
        } else {
            match registry.register(&mut source, token, mio_interest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    registry.reregister(&mut source, token, mio_interest)
                }
                other => other,
            }
        }
    }

    /// Re-arms the level-triggered fds reported by the last dispatch.
    fn rearm(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        let mut pending = std::mem::take(&mut self.rearm);
        for fd in pending.drain(..) {
            let st = self.fds[fd as usize];
            self.fds[fd as usize].rearm = false;
            if !st.rearm || st.interest.io().is_empty() {
                continue;
            }
            if let Err(e) = self.register(fd, true, st.interest) {
                // Closed (or closed and reused) since it was reported: nothing left to re-arm.
                if !gone(&e) && result.is_ok() {
                    result = Err(e);
                }
            }
        }
        self.rearm = pending;
        result
    }
}

/// CLOSED needs mio's readable interest: that is where it reports a read-side close.
fn mio_interest(ev: Events) -> Interest {
    let readable = ev.intersects(Events::READ | Events::CLOSED);
    match (readable, ev.contains(Events::WRITE)) {
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (false, true) => Interest::WRITABLE,
        _ => Interest::READABLE,
    }
}

/// The errors of an fd that no longer exists (libevent's epoll ignores them on delete).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EBADF | libc::EPERM)
    )
}

/// libevent's epoll mapping, as far as mio's event shows it: an error wakes both directions; so
/// does a full hang-up when the fd does not watch CLOSED (epoll then has no EPOLLRDHUP to report).
/// Otherwise only what the fd watches is reported.
fn readiness(event: &mio::event::Event, interest: Events) -> Events {
    if event.is_error()
        || (event.is_read_closed() && event.is_write_closed() && !interest.contains(Events::CLOSED))
    {
        return Events::READ | Events::WRITE;
    }
    let mut ev = Events::NONE;
    if event.is_readable() && interest.contains(Events::READ) {
        ev |= Events::READ;
    }
    if event.is_writable() && interest.contains(Events::WRITE) {
        ev |= Events::WRITE;
    }
    if event.is_read_closed() && interest.contains(Events::CLOSED) {
        ev |= Events::CLOSED;
    }
    ev
}

impl Backend for MioBackend {
    fn name(&self) -> &'static str {
        "mio"
    }

    fn features(&self) -> Features {
        Features {
            edge_triggered: true,
            o1: true,
            early_close: true,
            fds: false,
            resolution: Resolution::Millis,
        }
    }

    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        if added.io().is_empty() {
            return Ok(());
        }
        let st = *self.state(fd)?;
        let mut interest = old.io() | added.io();
        if added.contains(Events::ET) || st.interest.contains(Events::ET) {
            interest |= Events::ET;
        }
        self.register(fd, !st.interest.io().is_empty(), interest)?;
        // A (re)registration arms the fd: a pending re-arm would only repeat it.
        *self.state(fd)? = FdState {
            interest,
            rearm: false,
        };
        Ok(())
    }

    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        if removed.io().is_empty() {
            return Ok(());
        }
        let st = *self.state(fd)?;
        let remaining = old.io() & !removed.io();
        if remaining.is_empty() {
            *self.state(fd)? = FdState::default();
            return match self.poll.registry().deregister(&mut SourceFd(&fd)) {
                Err(e) if gone(&e) => Ok(()),
                other => other,
            };
        }
        let interest = remaining | (st.interest & Events::ET);
        self.register(fd, true, interest)?;
        *self.state(fd)? = FdState {
            interest,
            rearm: false,
        };
        Ok(())
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.rearm()?;
        let timeout = timeout.map(|d| Resolution::Millis.round(d));
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let first = ready.len();
        let mut n = 0;
        for event in self.events.iter() {
            n += 1;
            let fd = event.token().0 as Fd;
            let Some(st) = self.fds.get_mut(fd as usize) else {
                continue;
            };
            if st.interest.io().is_empty() {
                continue;
            }
            let mut events = readiness(event, st.interest);
            if events.is_empty() {
                continue;
            }
            if st.interest.contains(Events::ET) {
                events |= Events::ET;
            } else if !st.rearm {
                st.rearm = true;
                self.rearm.push(fd);
            }
            // kqueue reports the read and write filters of one fd as two adjacent events: report
            // the fd once, like epoll.
            match ready[first..].last_mut() {
                Some(last) if last.fd == fd => last.events |= events,
                _ => ready.push(Ready { fd, events }),
            }
        }
        if n >= self.capacity && self.capacity < MAX_EVENTS {
            self.capacity *= 2;
            self.events = mio::Events::with_capacity(self.capacity);
        }
        Ok(())
    }

    fn now(&mut self) -> Time {
        sys::monotonic_now()
    }

    real_signal_ops!(signals);
    real_socket_ops!();
}
