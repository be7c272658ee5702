//! The poll(2) backend: libevent's `poll.c`, down to the order in which it reports descriptors.
//!
//! The `pollfd` array is kept exactly as libevent keeps it: a new descriptor is appended, and when
//! the last interest of a descriptor goes, the array's last entry moves into its slot. Each scan
//! starts at an index drawn from libevent's weak RNG ([`WeakRand`]) and wraps around, so with the
//! same seed and the same add/del history the readiness order equals real libevent's. It must
//! never reorder reports or draw from the generator where libevent does not: the order is the point.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::time::Duration;

use super::signal::SignalState;
use super::sys::{self, real_signal_ops, real_socket_ops, syscall, WeakRand};
use super::{Backend, Features, Ready, Resolution};
use crate::event::{Events, Fd, Time};

/// `POLLRDHUP` where the platform has it (Linux, since 2.6.17); without it, no early close.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const POLLRDHUP: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const POLLRDHUP: libc::c_short = 0;

/// The poll backend (libevent method `"poll"`).
pub struct PollBackend {
    /// libevent's `event_set`: one entry per watched fd, in libevent's order.
    fds: Vec<libc::pollfd>,
    /// libevent's per-fd `idxplus1`, indexed by fd: 0 = not in `fds`.
    idxplus1: Vec<u32>,
    rng: WeakRand,
    /// The generator's state before the last dispatch's draw, if that dispatch drew
    /// (see [`Backend::dispatch_again`]).
    undraw: Option<WeakRand>,
    signals: SignalState,
    clock: sys::Clock,
}

impl PollBackend {
    /// A poll backend whose weak RNG is seeded as libevent seeds it (`gettimeofday` + `getpid`).
    pub fn new() -> io::Result<PollBackend> {
        Ok(PollBackend::with_rng(WeakRand::from_time_and_pid()))
    }

    /// A poll backend whose weak RNG starts in state `seed`: the conformance runner passes the
    /// seed the C player's pinned clock and pid give libevent, to reproduce its scan order.
    pub fn with_weakrand_seed(seed: u32) -> PollBackend {
        PollBackend::with_rng(WeakRand::with_seed(seed))
    }

    fn with_rng(rng: WeakRand) -> PollBackend {
        PollBackend {
            fds: Vec::new(),
            idxplus1: Vec::new(),
            rng,
            undraw: None,
            signals: SignalState::eager(),
            clock: sys::Clock::default(),
        }
    }

    /// The weak RNG's current state.
    pub fn weakrand_state(&self) -> u32 {
        self.rng.state()
    }

    fn slot(&self, fd: Fd) -> Option<usize> {
        let i = *self.idxplus1.get(usize::try_from(fd).ok()?)?;
        (i > 0).then(|| i as usize - 1)
    }
}

fn poll_mask(ev: Events) -> libc::c_short {
    let mut mask = 0;
    if ev.contains(Events::READ) {
        mask |= libc::POLLIN;
    }
    if ev.contains(Events::WRITE) {
        mask |= libc::POLLOUT;
    }
    if ev.contains(Events::CLOSED) {
        mask |= POLLRDHUP;
    }
    mask
}

/// libevent's mapping of `revents`: hang-up, error and invalid fd wake both directions.
fn readiness(mut what: libc::c_short) -> Events {
    if what & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        what |= libc::POLLIN | libc::POLLOUT;
    }
    let mut ev = Events::NONE;
    if what & libc::POLLIN != 0 {
        ev |= Events::READ;
    }
    if what & libc::POLLOUT != 0 {
        ev |= Events::WRITE;
    }
    if POLLRDHUP != 0 && what & POLLRDHUP != 0 {
        ev |= Events::CLOSED;
    }
    ev
}

/// libevent's `evutil_tv_to_msec_` (whole ms, rounded up), capped at `INT_MAX` like poll.c.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    timeout_ms_capped(timeout, libc::c_int::MAX as u64)
}

/// [`Resolution::Millis`] applied to a wait in integer milliseconds (whole microseconds, rounded
/// up to the millisecond), capped at `cap`; `None` (wait forever) is -1. The zero timeout of a
/// nonblocking pass costs one compare.
#[inline]
pub(crate) fn timeout_ms_capped(timeout: Option<Duration>, cap: u64) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) if d.is_zero() => 0,
        Some(d) => timeout_ms_of(d, cap),
    }
}

/// A nonzero timeout in milliseconds, out of line: nonblocking passes never need it.
#[inline(never)]
fn timeout_ms_of(d: Duration, cap: u64) -> libc::c_int {
    crate::event::duration_micros(d).div_ceil(1000).min(cap) as libc::c_int
}

impl Backend for PollBackend {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn features(&self) -> Features {
        Features {
            edge_triggered: false,
            o1: false,
            early_close: POLLRDHUP != 0,
            fds: true,
            resolution: Resolution::Millis,
        }
    }

    /// Appends `fd` at the end of the array if it is new, then ORs in the added interest
    /// (libevent's `poll_add`).
    fn add(&mut self, fd: Fd, _old: Events, added: Events) -> io::Result<()> {
        if added.io().is_empty() {
            return Ok(());
        }
        let idx = usize::try_from(fd).map_err(|_| bad_fd(fd))?;
        let i = match self.slot(fd) {
            Some(i) => i,
            None => {
                self.fds.push(libc::pollfd {
                    fd,
                    events: 0,
                    revents: 0,
                });
                if self.idxplus1.len() <= idx {
                    self.idxplus1.resize(idx + 1, 0);
                }
                self.idxplus1[idx] = self.fds.len() as u32;
                self.fds.len() - 1
            }
        };
        let pfd = &mut self.fds[i];
        pfd.revents = 0;
        pfd.events |= poll_mask(added);
        Ok(())
    }

    /// Clears the removed interest; when none is left, moves the array's last entry into the
    /// freed slot (libevent's `poll_del`).
    fn del(&mut self, fd: Fd, _old: Events, removed: Events) -> io::Result<()> {
        if removed.io().is_empty() {
            return Ok(());
        }
        let Some(i) = self.slot(fd) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("poll: fd {fd} is not watched"),
            ));
        };
        self.fds[i].events &= !poll_mask(removed);
        if self.fds[i].events != 0 {
            return Ok(());
        }
        self.idxplus1[fd as usize] = 0;
        self.fds.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.idxplus1[moved.fd as usize] = i as u32 + 1;
        }
        Ok(())
    }

    /// One `poll(2)`; then, if anything is ready, a scan from a random start (libevent's
    /// `poll_dispatch`). No number is drawn when nothing is ready.
    // Inlined into the loop, as epoll's is (see there): one return fewer after the wait.
    #[inline(always)]
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.undraw = None;
        let nfds = self.fds.len();
        // SAFETY: `fds` is writable for `nfds` pollfds (a dangling but aligned pointer when 0).
        let res = match syscall!(poll(
            self.fds.as_mut_ptr(),
            nfds as libc::nfds_t,
            timeout_ms(timeout)
        )) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        if res == 0 || nfds == 0 {
            return Ok(());
        }
        self.undraw = Some(self.rng);
        let mut i = self.rng.range(nfds as i32) as usize;
        // `poll` returned how many entries have `revents` set: once all of them are seen, the
        // rest of libevent's scan (which walks all `nfds`) would find nothing.
        let mut left = res;
        for _ in 0..nfds {
            i += 1;
            if i == nfds {
                i = 0;
            }
            let pfd = &self.fds[i];
            if pfd.revents == 0 {
                continue;
            }
            let events = readiness(pfd.revents);
            if !events.is_empty() {
                ready.push(Ready { fd: pfd.fd, events });
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
        Ok(())
    }

    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        if let Some(rng) = self.undraw.take() {
            self.rng = rng;
        }
        self.dispatch(Some(Duration::ZERO), ready)
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

fn bad_fd(fd: Fd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid file descriptor {fd}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(
            timeout_ms(Some(Duration::from_nanos(999))),
            0,
            "below 1 µs is 0"
        );
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1000))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1001))), 2);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
        assert_eq!(
            timeout_ms_capped(Some(Duration::from_secs(7200)), 2_100_000),
            2_100_000
        );
        for us in [0u64, 1, 999, 1000, 1001, 123_456_789] {
            let d = Duration::from_micros(us);
            let old = Resolution::Millis.round(d).as_millis() as libc::c_int;
            assert_eq!(timeout_ms(Some(d)), old, "{us} µs as before");
        }
    }
}
