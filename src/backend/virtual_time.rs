//! Real sockets, virtual time: [`VirtualTime`] wraps a real backend and replaces its clock.
//!
//! Every wait polls the real backend with a zero timeout. When nothing is ready, the virtual clock
//! jumps by the timeout the core asked for (rounded as the backend rounds it), or to the next
//! scripted outside input of the [`Environment`], whichever comes first. The C libevent player
//! applies the identical rule inside its `epoll_wait`/`poll`/`select` overrides, so a run on a
//! real backend compares exactly, time stamp for time stamp, with the recorded fixtures.
//!
//! This module owns the virtual clock. It must never read a real clock nor sleep.

use std::io;
use std::time::Duration;

use super::{Backend, Features, Ready};
use crate::event::{Events, Fd, Time};

/// Scripted outside inputs for a [`VirtualTime`] run: data arriving on sockets, signals, peers
/// closing, each at a virtual time. The conformance runner implements it.
pub trait Environment<B> {
    /// The virtual time of the next input, if any is left.
    fn next_input(&self) -> Option<Time>;
    /// Performs the inputs due at `now` through `backend` (write to a socket, raise a signal…).
    fn fire(&mut self, now: Time, backend: &mut B);
}

/// A real backend under a virtual clock (see the module documentation).
pub struct VirtualTime<B: Backend> {
    inner: B,
    now: Time,
    env: Option<Box<dyn Environment<B>>>,
    resolution: Option<super::Resolution>,
}

impl<B: Backend> VirtualTime<B> {
    /// Wraps `inner`; the virtual clock starts at `Time(0)`.
    pub fn new(inner: B) -> VirtualTime<B> {
        VirtualTime::with_start(inner, Time::ZERO)
    }

    /// Wraps `inner`; the virtual clock starts at `start`.
    pub fn with_start(inner: B, start: Time) -> VirtualTime<B> {
        VirtualTime {
            inner,
            now: start,
            env: None,
            resolution: None,
        }
    }

    /// Overrides how waits are rounded. libevent's epoll backend waits with µs precision (a
    /// timerfd) when the base has `EVENT_BASE_FLAG_PRECISE_TIMER`; the conformance runner
    /// mirrors that with `Some(Resolution::Micros)`. `None` uses the inner backend's.
    pub fn set_resolution(&mut self, resolution: Option<super::Resolution>) {
        self.resolution = resolution;
    }

    /// Installs the scripted outside inputs (replacing any previous environment).
    pub fn set_environment(&mut self, env: Box<dyn Environment<B>>) {
        self.env = Some(env);
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend, mutably (for setup outside the core, e.g. a test writing to a socket).
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Moves the virtual clock forward by `d` (for tests; the core only moves it by waiting).
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }
}

impl<B: Backend> Backend for VirtualTime<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn features(&self) -> Features {
        let mut f = self.inner.features();
        if let Some(r) = self.resolution {
            f.resolution = r;
        }
        f
    }

    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        self.inner.add(fd, old, added)
    }

    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        self.inner.del(fd, old, removed)
    }

    /// The virtual wait. In order:
    /// (a) poll the inner backend with a zero timeout; anything ready is returned at once and the
    ///     clock does not move;
    /// (b) a zero timeout returns with nothing;
    /// (c) with `target = now + rounded timeout` (no target for `None`): if the next input is due
    ///     at or before the target, the clock moves to it (never backwards), the input fires, and
    ///     one more zero-timeout poll, counted as part of the same wait
    ///     ([`Backend::dispatch_again`]), gives the result, possibly empty;
    /// (d) otherwise a finite wait moves the clock to the target and returns nothing;
    /// (e) an infinite wait with nothing ready and no input would never end: an error.
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let before = ready.len();
        self.inner.dispatch(Some(Duration::ZERO), ready)?;
        if ready.len() > before || timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        let resolution = self.features().resolution;
        let target = timeout.map(|d| self.now.saturating_add(resolution.round(d)));
        if let Some(env) = self.env.as_mut() {
            if let Some(t) = env.next_input() {
                if target.is_none_or(|target| t <= target) {
                    self.now = self.now.max(t);
                    env.fire(self.now, &mut self.inner);
                    return self.inner.dispatch_again(ready);
                }
            }
        }
        match target {
            Some(target) => {
                self.now = target;
                Ok(())
            }
            None => Err(io::Error::other(
                "virtual time: infinite wait with nothing ready and no scheduled input",
            )),
        }
    }

    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.inner.dispatch_again(ready)
    }

    /// The virtual clock.
    fn now(&mut self) -> Time {
        self.now
    }

    crate::delegate_signal_ops!(inner);
    crate::delegate_socket_ops!(inner);
}
