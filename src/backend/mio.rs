//! The mio backend: mio's `Poll` (epoll, kqueue, …) behind the libevent-style interface, with
//! the exact behaviour of libevent's epoll backend (its conformance reference is the `epoll`
//! fixtures; `tests/mio_semantics.rs` compares it with [`super::EpollBackend`] report for
//! report on the real kernel).
//!
//! Two modes, with the same reports:
//!
//! **Native** ([`MioBackend::new`] on Linux, where mio's `Poll` is an epoll instance and mio's
//! selector keeps no state per registration): every fd is registered with `epoll_ctl` on mio's
//! own epoll descriptor (`Poll::as_raw_fd`) with native epoll's mask (READ→`EPOLLIN`,
//! WRITE→`EPOLLOUT`, CLOSED→`EPOLLRDHUP`), level-triggered unless `EV_ET` asks for `EPOLLET`,
//! exactly as libevent's epoll backend registers it. The kernel then keeps its ready list in
//! its own order, re-queueing reported level-triggered fds itself; mio's `Poll::poll` does the
//! wait and its `Events` the iteration, in that order. A dispatch is one `epoll_wait`, as for
//! [`super::EpollBackend`]. The token is the fd, with the fd's interest in its high 32 bits on
//! 64-bit targets (every change of interest is an `epoll_ctl` that rewrites it), so that mapping
//! a report needs no table lookup.
//!
//! **Portable** ([`MioBackend::portable`], and [`MioBackend::new`] on every other system): mio
//! registers every fd edge-triggered (`EPOLLET`, `EV_CLEAR`, …). libevent's default is
//! level-triggered, and its epoll backend reports fds in the order of the kernel's ready list.
//! Native epoll puts every reported level-triggered fd back at the tail of its ready list right
//! after the wait, behind whatever a full result array left queued at the head; an
//! edge-triggered registration loses exactly those queued fds, so this mode keeps them in user
//! space, in the kernel's order: the *shadow list*. Each dispatch then:
//! 1. asks the current readiness of the shadow list's fds with one `poll(2)` call (zero timeout),
//!    with the mask native epoll would use (READ→`POLLIN`, WRITE→`POLLOUT`, CLOSED→`POLLRDHUP`);
//! 2. waits in mio (zero timeout if a shadow fd is ready) for what became ready since: an fd
//!    that mio reports while it is on the shadow list keeps its shadow place, because the native
//!    kernel does not queue an fd that is queued already; if mio fills its array, it is asked
//!    again until it has nothing more, so that nothing the kernel still holds is left behind the
//!    fds re-queued below;
//! 3. reports the first `capacity` ready entries of shadow-then-new (libevent's array size: 32,
//!    doubling when a wait fills it, up to 4096), drops the not-ready entries before that point
//!    (native epoll unqueues an fd it finds not ready), keeps everything after it queued, and
//!    re-queues the reported level-triggered fds behind, in report order.
//!
//! The portable mode's cost is one `poll(2)` per dispatch that has a non-empty shadow list,
//! whatever the number of fds (at one callback per pass: 4 system calls per callback against
//! the native mode's 3), plus the shadow list's bookkeeping. It stays selectable on Linux so
//! that it is tested there: `tests/mio_semantics.rs` runs both modes against the epoll backend,
//! and `conformance/tests/mio_portable.rs` runs the corpus on it against libevent's fixtures
//! and compares its traces with the native mode's on `evconform fuzz`'s generated cases.
//!
//! `EV_ET` follows libevent's epoll rule: the `epoll_ctl` of a change sets `EPOLLET` iff the
//! event making the change has `EV_ET` (an add of an ET event, or the del of one), whatever the
//! fd had before; an fd without it is level-triggered as a whole. `EV_ET` is ORed into every
//! report, as libevent's epoll does; the core masks it with each event's own flags.
//!
//! mio's `Interest` cannot watch a read-side close without readability; an fd watching CLOSED
//! but not READ would then wake on arriving data where native epoll does not. On Linux the
//! portable mode registers such fds on mio's epoll descriptor with native epoll's mask (plus
//! `EPOLLET`), as the native mode does every fd (`exact_mask`). mio's event cannot show
//! `EPOLLRDHUP` without `EPOLLIN`, so in both modes these fds' reports are read with `poll(2)`
//! (one call per such report; no fd in the benchmarks' path is one).
//!
//! Portable mode: closing an fd through [`Backend::close`] unqueues it (the kernel forgets a
//! closed fd's registration). An fd closed behind the backend's back is dropped from the shadow
//! list when `poll(2)` says `POLLNVAL`; only if its number is reused before the next dispatch
//! would the shadow list wrongly look at the new file. The native mode has no such window: the
//! kernel's list is the only one.
//!
//! The portable mode works on any unix mio supports: `poll(2)` everywhere, `POLLRDHUP` where it
//! exists (Linux), otherwise a hang-up stands for the read-side close. The ready order emulated
//! is Linux epoll's.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use super::signal::SignalState;
#[cfg(any(target_os = "linux", target_os = "android"))]
use super::sys::epoll_mask;
use super::sys::{self, real_signal_ops, syscall};
use super::{Backend, ConnectState, Features, ListenOptions, Ready, Resolution, Shutdown};
use crate::event::{Events, Fd, Time};

/// The first capacity of the result buffer; it doubles when a wait fills it, up to
/// [`MAX_EVENTS`] (libevent's epoll rule).
const INITIAL_EVENTS: usize = 32;
const MAX_EVENTS: usize = 4096;
/// How many more zero-timeout waits one dispatch makes while mio keeps filling its array (only
/// an outside writer waking fds as fast as they are taken could need more).
const MAX_REFILLS: usize = 64;
/// libevent's `MAX_EPOLL_TIMEOUT_MSEC`: a longer wait returns empty after 35 minutes.
const MAX_WAIT: Duration = Duration::from_secs(35 * 60);

/// Whether [`MioBackend::new`] opens the native mode: where mio's `Poll` is an epoll instance.
const NATIVE: bool = cfg!(any(target_os = "linux", target_os = "android"));

#[cfg(any(target_os = "linux", target_os = "android"))]
const POLLRDHUP: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const POLLRDHUP: libc::c_short = 0;

/// What the backend knows about one fd.
#[derive(Clone, Copy, Default)]
struct FdState {
    /// READ/WRITE/CLOSED plus ET, as registered with mio; empty = not registered.
    interest: Events,
    /// On the shadow list: native epoll would have this fd queued in its ready list.
    queued: bool,
    /// The dispatch (see `MioBackend::epoch`) in which `slot` is this fd's place in the scan.
    epoch: u32,
    slot: u32,
}

/// The mio backend (method name `"mio"`).
pub struct MioBackend {
    poll: Poll,
    /// Native mode (Linux): every fd is an entry of mio's epoll instance with native epoll's
    /// mask, level-triggered unless `EV_ET`; the kernel keeps the ready list, and the shadow
    /// list below stays empty. Otherwise the portable mode: mio's edge-triggered registrations
    /// and the shadow list.
    native: bool,
    events: mio::Events,
    /// libevent's `nevents`: how many fds one dispatch may report.
    capacity: usize,
    /// Indexed by fd.
    fds: Vec<FdState>,
    /// The shadow list: fds native epoll would have queued, in its order (see the module
    /// documentation). An entry whose fd has `queued` false was unqueued since (del, close).
    queued: Vec<Fd>,
    /// Scratch for one dispatch: the `poll(2)` array, the scan in ready-list order (an empty
    /// `events` is a queued fd found not ready), the level-triggered fds to re-queue.
    pollfds: Vec<libc::pollfd>,
    scan: Vec<Ready>,
    requeue: Vec<Fd>,
    /// Counts dispatches; never 0, so that a default `FdState::epoch` never matches.
    epoch: u32,
    signals: SignalState,
    clock: sys::Clock,
}

impl MioBackend {
    /// Opens a mio `Poll`: in native mode on Linux, in the portable mode elsewhere.
    pub fn new() -> io::Result<MioBackend> {
        MioBackend::with_mode(NATIVE)
    }

    /// Opens a mio `Poll` in the portable mode (mio's edge-triggered registrations and the
    /// shadow list), on every platform: the mode of non-Linux systems, selectable on Linux so
    /// that it is tested there.
    pub fn portable() -> io::Result<MioBackend> {
        MioBackend::with_mode(false)
    }

    /// True in native mode (see the module documentation).
    pub fn is_native(&self) -> bool {
        self.native
    }

    fn with_mode(native: bool) -> io::Result<MioBackend> {
        Ok(MioBackend {
            poll: Poll::new()?,
            native,
            events: mio::Events::with_capacity(INITIAL_EVENTS),
            capacity: INITIAL_EVENTS,
            fds: Vec::new(),
            queued: Vec::new(),
            pollfds: Vec::new(),
            scan: Vec::new(),
            requeue: Vec::new(),
            epoch: 1,
            signals: SignalState::eager(),
            clock: sys::Clock::default(),
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
        if exact_mask(interest) {
            return self.epoll_register(fd, registered, interest, true);
        }
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

    /// A registration made with `epoll_ctl` on mio's own epoll descriptor, with native epoll's
    /// mask ([`epoll_mask`]), `EPOLLET` iff `et`, and the token mio would use (mio's epoll
    /// selector keeps no state per registration, so its `poll` sees these entries like its own,
    /// and its `reregister`/`deregister` of the fd are plain MOD/DEL as well). Used for every fd
    /// in native mode, and in the portable mode for [`exact_mask`]'s fds (always with `et`).
    /// libevent's fallbacks: a MOD that finds nothing becomes an ADD (closed and reopened), an
    /// ADD that finds the fd becomes a MOD.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn epoll_register(
        &mut self,
        fd: Fd,
        registered: bool,
        interest: Events,
        et: bool,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut events = epoll_mask(interest);
        if et {
            events |= libc::EPOLLET as u32;
        }
        let epfd = self.poll.as_raw_fd();
        let data = if self.native {
            native_token(fd, interest) as u64
        } else {
            fd as usize as u64
        };
        let ctl = |op: libc::c_int| {
            let mut ev = libc::epoll_event { events, u64: data };
            // SAFETY: `ev` is a valid, writable epoll_event for the duration of the call, and
            // `epfd` is mio's epoll descriptor, open as long as `self.poll`.
            syscall!(epoll_ctl(epfd, op, fd, &mut ev)).map(drop)
        };
        let (op, retry, fallback) = if registered {
            (libc::EPOLL_CTL_MOD, libc::ENOENT, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EEXIST, libc::EPOLL_CTL_MOD)
        };
        match ctl(op) {
            Err(e) if e.raw_os_error() == Some(retry) => ctl(fallback),
            other => other,
        }
    }

    /// Never called: native mode and [`exact_mask`] exist only on Linux.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn epoll_register(&mut self, _: Fd, _: bool, _: Events, _: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "native epoll masks exist only on Linux",
        ))
    }

    /// Native mode's `add`: libevent's epoll rule on mio's epoll instance (ADD when nothing was
    /// watched, MOD with the union otherwise, `EPOLLET` iff the change asks for `EV_ET`).
    fn native_add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        self.state(fd)?;
        let mut interest = old.io() | added.io();
        if added.contains(Events::ET) {
            interest |= Events::ET;
        }
        self.epoll_register(
            fd,
            !old.io().is_empty(),
            interest,
            interest.contains(Events::ET),
        )?;
        self.state(fd)?.interest = interest;
        Ok(())
    }

    /// The fd of a native-mode report and its interest: from the token's high half on 64-bit
    /// targets (see [`native_token`]), else from the table.
    #[inline]
    fn native_report(&self, token: Token) -> Option<(Fd, Events)> {
        let fd = token.0 as u32 as Fd;
        if TOKEN_HAS_INTEREST {
            Some((fd, Events::from_bits((token.0 >> 16 >> 16) as u16)))
        } else {
            self.fds.get(fd as usize).map(|st| (fd, st.interest))
        }
    }

    /// Native mode's `dispatch`: one wait in mio, whose events are the kernel's ready list in
    /// its order; each is mapped as libevent's epoll maps it.
    #[inline(always)]
    fn native_dispatch(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let timeout = wait_timeout(timeout);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut n = 0;
        for event in self.events.iter() {
            n += 1;
            let Some((fd, interest)) = self.native_report(event.token()) else {
                continue;
            };
            let events = if exact_mask(interest) {
                Self::poll_one(fd, interest)?
            } else {
                native_readiness(event, interest)
            };
            if !events.is_empty() {
                // libevent's epoll ORs EV_ET into every report.
                ready.push(Ready {
                    fd,
                    events: events | Events::ET,
                });
            }
        }
        if n == self.capacity && self.capacity < MAX_EVENTS {
            self.capacity *= 2;
            self.events = mio::Events::with_capacity(self.capacity);
        }
        Ok(())
    }

    /// The readiness of one fd as native epoll would report it, from `poll(2)` (for the fds
    /// whose mio event cannot show it: see [`exact_mask`]).
    fn poll_one(fd: Fd, interest: Events) -> io::Result<Events> {
        let mut p = libc::pollfd {
            fd,
            events: poll_mask(interest),
            revents: 0,
        };
        // SAFETY: `p` is one valid, writable pollfd for the whole call; a zero timeout never
        // blocks.
        syscall!(poll(&mut p, 1, 0))?;
        Ok(poll_readiness(p.revents, interest))
    }

    /// Starts the next dispatch's epoch, so that every fd's `slot` from earlier ones is stale.
    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for st in &mut self.fds {
                st.epoch = 0;
            }
            self.epoch = 1;
        }
    }

    /// Step 1: the shadow list's fds with their current readiness, into `scan`. Returns whether
    /// any is ready; `Err(Interrupted)` leaves the shadow list untouched.
    fn scan_queued(&mut self) -> io::Result<bool> {
        self.pollfds.clear();
        for &fd in &self.queued {
            let st = &self.fds[fd as usize];
            if st.queued {
                self.pollfds.push(libc::pollfd {
                    fd,
                    events: poll_mask(st.interest),
                    revents: 0,
                });
            }
        }
        if self.pollfds.is_empty() {
            return Ok(false);
        }
        // SAFETY: `pollfds` is a valid, writable array of `len()` pollfd structs for the whole
        // call; a zero timeout never blocks.
        syscall!(poll(
            self.pollfds.as_mut_ptr(),
            self.pollfds.len() as libc::nfds_t,
            0
        ))?;
        let mut any = false;
        for p in &self.pollfds {
            let st = &mut self.fds[p.fd as usize];
            let events = poll_readiness(p.revents, st.interest);
            any |= !events.is_empty();
            st.epoch = self.epoch;
            st.slot = self.scan.len() as u32;
            self.scan.push(Ready { fd: p.fd, events });
        }
        Ok(any)
    }

    /// Step 2: what mio reports, appended to `scan` behind the shadow list (an fd already in the
    /// scan keeps its place and gains the bits).
    fn scan_mio(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut timeout = timeout;
        for _ in 0..=MAX_REFILLS {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                // Like an empty wait: the shadow fds were looked at, nothing new is known.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
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
                let events = if exact_mask(st.interest) {
                    Self::poll_one(fd, st.interest)?
                } else {
                    readiness(event, st.interest)
                };
                if st.epoch == self.epoch {
                    // Queued already (native epoll leaves it in place), or kqueue's second
                    // filter for the same fd.
                    self.scan[st.slot as usize].events |= events;
                } else if !events.is_empty() {
                    st.epoch = self.epoch;
                    st.slot = self.scan.len() as u32;
                    self.scan.push(Ready { fd, events });
                }
            }
            if n < self.events.capacity() {
                break;
            }
            timeout = Some(Duration::ZERO);
        }
        Ok(())
    }
    /// The portable mode's `dispatch`: steps 1–3 of the module documentation. Out of line, so
    /// that the native path stays small.
    #[inline(never)]
    fn portable_dispatch(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        self.next_epoch();
        self.scan.clear();
        let any_queued_ready = match self.scan_queued() {
            Ok(any) => any,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        let timeout = if any_queued_ready {
            Some(Duration::ZERO)
        } else {
            wait_timeout(timeout)
        };
        if let Err(e) = self.scan_mio(timeout) {
            // The shadow list is still the one before this dispatch: nothing was reported.
            self.scan.clear();
            return Err(e);
        }
        // Step 3: the native scan of the ready list.
        self.queued.clear();
        self.requeue.clear();
        let mut reported = 0;
        for &Ready { fd, events } in &self.scan {
            let st = &mut self.fds[fd as usize];
            if reported == self.capacity {
                // Not reached: stays queued, ahead of the re-queued fds.
                st.queued = true;
                self.queued.push(fd);
            } else if events.is_empty() {
                st.queued = false;
            } else {
                reported += 1;
                // libevent's epoll ORs EV_ET into every report.
                ready.push(Ready {
                    fd,
                    events: events | Events::ET,
                });
                st.queued = !st.interest.contains(Events::ET);
                if st.queued {
                    self.requeue.push(fd);
                }
            }
        }
        self.queued.extend_from_slice(&self.requeue);
        if reported == self.capacity && self.capacity < MAX_EVENTS {
            self.capacity *= 2;
            self.events = mio::Events::with_capacity(self.capacity);
        }
        Ok(())
    }
}

/// Whether a native-mode token carries the fd's interest (64-bit targets).
const TOKEN_HAS_INTEREST: bool = usize::BITS >= 64;

/// The token of an fd registered in native mode: the fd in the low 32 bits and, where `usize`
/// has 64 bits, the interest (READ/WRITE/CLOSED/ET) above, so that mapping a report needs no
/// lookup. Every change of interest is an `epoll_ctl` that rewrites the token with it.
fn native_token(fd: Fd, interest: Events) -> usize {
    let fd = fd as u32 as usize;
    if TOKEN_HAS_INTEREST {
        fd | (interest.bits() as usize) << 16 << 16
    } else {
        fd
    }
}

/// Native mode's mapping of one report. The kernel masks a report with the registration's mask
/// (plus `EPOLLERR`/`EPOLLHUP`), so readability and writability need no interest test; an error
/// or a close takes [`readiness`]'s full mapping.
#[inline]
fn native_readiness(event: &mio::event::Event, interest: Events) -> Events {
    if event.is_error() || event.is_read_closed() {
        return readiness(event, interest);
    }
    let mut ev = Events::NONE;
    if event.is_readable() {
        ev |= Events::READ;
    }
    if event.is_writable() {
        ev |= Events::WRITE;
    }
    ev
}

/// The wait mio is asked for: whole milliseconds rounded up (libevent's epoll), at most
/// [`MAX_WAIT`]; a zero timeout (every pass of a busy loop) skips the arithmetic.
#[inline]
fn wait_timeout(timeout: Option<Duration>) -> Option<Duration> {
    match timeout {
        Some(d) if d.is_zero() => Some(Duration::ZERO),
        Some(d) => Some(Resolution::Millis.round(d).min(MAX_WAIT)),
        None => None,
    }
}

/// Whether `fd` must be registered with native epoll's exact mask rather than through mio's
/// `Interest`: CLOSED without READ (Linux only). mio can only ask for a read-side close together
/// with readability (`EPOLLIN|EPOLLRDHUP`), so arriving data would wake such an fd where native
/// epoll (`EPOLLRDHUP` alone) sleeps on; for an edge-triggered fd, or one the kernel does not
/// hold queued, that is a report libevent never makes. The reports of these fds are read with
/// `poll(2)`, as mio's event cannot show `EPOLLRDHUP` without `EPOLLIN`.
fn exact_mask(interest: Events) -> bool {
    cfg!(any(target_os = "linux", target_os = "android"))
        && interest.contains(Events::CLOSED)
        && !interest.contains(Events::READ)
}

/// CLOSED needs mio's readable interest: that is where it reports a read-side close (off Linux;
/// see [`exact_mask`]).
fn mio_interest(ev: Events) -> Interest {
    let readable = ev.intersects(Events::READ | Events::CLOSED);
    match (readable, ev.contains(Events::WRITE)) {
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (false, true) => Interest::WRITABLE,
        _ => Interest::READABLE,
    }
}

/// The `poll(2)` mask native epoll would watch: READ→`POLLIN`, WRITE→`POLLOUT`,
/// CLOSED→`POLLRDHUP` (errors and hang-ups are always reported).
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

/// libevent's epoll mapping applied to `poll(2)` flags (the same bits as epoll's): an error, or
/// a hang-up without a read-side close, wakes both directions. `POLLNVAL` (closed fd) is
/// nothing. Without `POLLRDHUP` (not Linux) a hang-up is the read-side close for CLOSED.
fn poll_readiness(revents: libc::c_short, interest: Events) -> Events {
    let rdhup = revents & POLLRDHUP != 0
        || (POLLRDHUP == 0 && revents & libc::POLLHUP != 0 && interest.contains(Events::CLOSED));
    if revents & libc::POLLERR != 0 || (revents & libc::POLLHUP != 0 && !rdhup) {
        return Events::READ | Events::WRITE;
    }
    let mut ev = Events::NONE;
    if revents & libc::POLLIN != 0 {
        ev |= Events::READ;
    }
    if revents & libc::POLLOUT != 0 {
        ev |= Events::WRITE;
    }
    if rdhup {
        ev |= Events::CLOSED;
    }
    ev
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

    /// Registers the union of the old and added interest, edge-triggered iff the change asks
    /// for `EV_ET` (libevent's epoll). A queued fd stays queued (epoll's MOD leaves it in place).
    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        if added.io().is_empty() {
            return Ok(());
        }
        if self.native {
            return self.native_add(fd, old, added);
        }
        let registered = !self.state(fd)?.interest.io().is_empty();
        let mut interest = old.io() | added.io();
        if added.contains(Events::ET) {
            interest |= Events::ET;
        }
        self.register(fd, registered, interest)?;
        let st = self.state(fd)?;
        st.interest = interest;
        if !registered {
            st.queued = false;
        }
        Ok(())
    }

    /// Deregisters the fd when nothing remains (and unqueues it), else registers what remains,
    /// edge-triggered iff the removed event had `EV_ET` (libevent's epoll): in native mode a MOD
    /// with native epoll's mask on mio's epoll instance, in the portable mode through mio.
    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        if removed.io().is_empty() {
            return Ok(());
        }
        self.state(fd)?;
        let remaining = old.io() & !removed.io();
        if remaining.is_empty() {
            // DEL (an fd already gone is fine); `queued` only matters in the portable mode.
            let st = self.state(fd)?;
            st.interest = Events::NONE;
            st.queued = false;
            return match self.poll.registry().deregister(&mut SourceFd(&fd)) {
                Err(e) if gone(&e) => Ok(()),
                other => other,
            };
        }
        let mut interest = remaining;
        if removed.contains(Events::ET) {
            interest |= Events::ET;
        }
        if self.native {
            self.epoll_register(fd, true, interest, interest.contains(Events::ET))?;
        } else {
            self.register(fd, true, interest)?;
        }
        self.state(fd)?.interest = interest;
        Ok(())
    }

    // Inlined into the loop, as epoll's is (see there): one return fewer after the wait.
    #[inline(always)]
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        if self.native {
            self.native_dispatch(timeout, ready)
        } else {
            self.portable_dispatch(timeout, ready)
        }
    }

    fn now(&mut self) -> Time {
        self.clock.now()
    }

    fn use_precise_clock(&mut self) {
        self.clock = sys::Clock::PRECISE;
    }

    real_signal_ops!(signals);

    fn socketpair(&mut self) -> io::Result<(Fd, Fd)> {
        sys::socketpair()
    }
    #[inline]
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(fd, buf)
    }
    #[inline]
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        sys::write(fd, buf)
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()> {
        sys::shutdown(fd, how)
    }
    /// `close(2)`; the kernel drops the fd's registration, and with it its place in the ready
    /// list.
    fn close(&mut self, fd: Fd) -> io::Result<()> {
        if let Some(st) = usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i)) {
            st.queued = false;
        }
        sys::close(fd)
    }
    fn listen(&mut self, addr: std::net::SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
        sys::listen(addr, opts)
    }
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, std::net::SocketAddr)> {
        sys::accept(fd)
    }
    fn connect(&mut self, addr: std::net::SocketAddr) -> io::Result<(Fd, ConnectState)> {
        sys::connect(addr)
    }
    fn connect_existing(&mut self, fd: Fd, addr: std::net::SocketAddr) -> io::Result<ConnectState> {
        sys::connect_existing(fd, addr)
    }
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>> {
        sys::take_socket_error(fd)
    }
    fn local_addr(&mut self, fd: Fd) -> io::Result<std::net::SocketAddr> {
        sys::local_addr(fd)
    }
}
