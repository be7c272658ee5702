//! The select(2) backend: libevent's `select.c`, down to the order in which it reports fds.
//!
//! Two `fd_set`s of interest (read, write) are copied into output sets for each wait. After
//! every successful wait, ready or not, a start index is drawn from libevent's weak RNG over
//! `nfds` (the highest fd ever added, plus one) and fds are scanned from there, wrapping around.
//! Unlike glibc's `FD_SET`, which aborts, fds at or above `FD_SETSIZE` are refused with an error.
//! Like poll.rs, it must never reorder reports nor draw where libevent does not.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem;
use std::ptr;
use std::time::Duration;

use super::signal::SignalState;
use super::sys::{self, real_signal_ops, real_socket_ops, syscall, WeakRand};
use super::{Backend, Features, Ready, Resolution};
use crate::event::{duration_micros, Events, Fd, Time};

/// The select backend (libevent method `"select"`).
pub struct SelectBackend {
    /// Boxed: four fd_sets are half a kilobyte, too much to move around inline.
    sets: Box<FdSets>,
    /// libevent's `event_fds`: the highest fd ever added (never lowered; 0 at the start).
    event_fds: Fd,
    rng: WeakRand,
    /// The generator's state before the last dispatch's draw (see [`Backend::dispatch_again`]).
    undraw: Option<WeakRand>,
    signals: SignalState,
    clock: sys::Clock,
}

/// The interest sets and the sets handed to (and filled by) select().
struct FdSets {
    read_in: libc::fd_set,
    write_in: libc::fd_set,
    read_out: libc::fd_set,
    write_out: libc::fd_set,
}

fn empty_set() -> libc::fd_set {
    // SAFETY: fd_set is plain old data; all zeroes is a valid value.
    let mut set: libc::fd_set = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable fd_set.
    unsafe { libc::FD_ZERO(&mut set) };
    set
}

impl SelectBackend {
    /// A select backend whose weak RNG is seeded as libevent seeds it (`gettimeofday` +
    /// `getpid`).
    pub fn new() -> io::Result<SelectBackend> {
        Ok(SelectBackend::with_rng(WeakRand::from_time_and_pid()))
    }

    /// A select backend whose weak RNG starts in state `seed` (see
    /// [`super::PollBackend::with_weakrand_seed`]).
    pub fn with_weakrand_seed(seed: u32) -> SelectBackend {
        SelectBackend::with_rng(WeakRand::with_seed(seed))
    }

    fn with_rng(rng: WeakRand) -> SelectBackend {
        // The scan order of a select() call reporting several descriptors depends on their
        // numbers (the start index is drawn in [0, nfds)): see `SignalState::eager`.
        let signals = SignalState::eager();
        SelectBackend {
            sets: Box::new(FdSets {
                read_in: empty_set(),
                write_in: empty_set(),
                read_out: empty_set(),
                write_out: empty_set(),
            }),
            event_fds: 0,
            rng,
            undraw: None,
            signals,
            clock: sys::Clock::default(),
        }
    }

    /// The weak RNG's current state.
    pub fn weakrand_state(&self) -> u32 {
        self.rng.state()
    }
}

/// `FD_SETSIZE` as an fd.
const SETSIZE: Fd = libc::FD_SETSIZE as Fd;

fn check_fd(fd: Fd) -> io::Result<()> {
    if (0..SETSIZE).contains(&fd) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "select: fd {fd} is outside 0..FD_SETSIZE ({SETSIZE}); use another backend for \
                 descriptors this large"
            ),
        ))
    }
}

impl Backend for SelectBackend {
    fn name(&self) -> &'static str {
        "select"
    }

    fn features(&self) -> Features {
        Features {
            edge_triggered: false,
            o1: false,
            early_close: false,
            fds: true,
            resolution: Resolution::Micros,
        }
    }

    /// Sets the fd's bits and raises `nfds` if needed (libevent's `select_add`). CLOSED alone
    /// sets nothing: select cannot see a half-close.
    fn add(&mut self, fd: Fd, _old: Events, added: Events) -> io::Result<()> {
        check_fd(fd)?;
        self.event_fds = self.event_fds.max(fd);
        if added.contains(Events::READ) {
            // SAFETY: 0 <= fd < FD_SETSIZE, checked above; the set is valid and writable.
            unsafe { libc::FD_SET(fd, &mut self.sets.read_in) };
        }
        if added.contains(Events::WRITE) {
            // SAFETY: as above.
            unsafe { libc::FD_SET(fd, &mut self.sets.write_in) };
        }
        Ok(())
    }

    /// Clears the fd's bits (libevent's `select_del`; `nfds` never shrinks).
    fn del(&mut self, fd: Fd, _old: Events, removed: Events) -> io::Result<()> {
        if fd > self.event_fds {
            return Ok(());
        }
        check_fd(fd)?;
        if removed.contains(Events::READ) {
            // SAFETY: 0 <= fd < FD_SETSIZE, checked above; the set is valid and writable.
            unsafe { libc::FD_CLR(fd, &mut self.sets.read_in) };
        }
        if removed.contains(Events::WRITE) {
            // SAFETY: as above.
            unsafe { libc::FD_CLR(fd, &mut self.sets.write_in) };
        }
        Ok(())
    }

    /// One `select(2)` with a microsecond timeout, then a draw and a scan from the drawn start
    /// (libevent's `select_dispatch`). The draw happens even when nothing is ready, as in
    /// libevent; only a failed or interrupted wait draws nothing.
    // Inlined into the loop, as epoll's is (see there): one return fewer after the wait.
    #[inline(always)]
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.undraw = None;
        let sets = &mut *self.sets;
        sets.read_out = sets.read_in;
        sets.write_out = sets.write_in;
        let nfds = self.event_fds + 1;
        let mut tv;
        let tvp = match timeout {
            None => ptr::null_mut(),
            Some(d) => {
                let us = duration_micros(d);
                tv = libc::timeval {
                    tv_sec: (us / 1_000_000).min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_usec: (us % 1_000_000) as libc::suseconds_t,
                };
                &mut tv as *mut libc::timeval
            }
        };
        // SAFETY: both sets are valid and writable, hold only fds < nfds <= FD_SETSIZE, and `tvp`
        // is null or points to `tv`, which outlives the call.
        let res = match syscall!(select(
            nfds,
            &mut sets.read_out,
            &mut sets.write_out,
            ptr::null_mut(),
            tvp
        )) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        self.undraw = Some(self.rng);
        let mut i = self.rng.range(nfds);
        if res == 0 {
            return Ok(());
        }
        // `select` returned how many bits it left set in both sets: once all of them are seen,
        // the rest of libevent's scan (which walks all `nfds`) would find nothing.
        let mut left = res;
        for _ in 0..nfds {
            i += 1;
            if i >= nfds {
                i = 0;
            }
            let mut events = Events::NONE;
            // SAFETY: 0 <= i < nfds <= FD_SETSIZE; the sets are valid.
            if unsafe { libc::FD_ISSET(i, &sets.read_out) } {
                events |= Events::READ;
            }
            // SAFETY: as above.
            if unsafe { libc::FD_ISSET(i, &sets.write_out) } {
                events |= Events::WRITE;
            }
            if !events.is_empty() {
                ready.push(Ready { fd: i, events });
                left -= i32::from(events.contains(Events::READ))
                    + i32::from(events.contains(Events::WRITE));
                if left <= 0 {
                    break;
                }
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
