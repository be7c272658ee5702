//! [`Faulty<B>`]: the syscall-level faults over any backend, real ones included.
//!
//! It wraps a backend and, drawing every decision from its own [`SimRng`] seeded from one `u64`
//! through the same [`FaultGate`] as the simulated world, injects: spurious EAGAIN on reads and
//! writes that could succeed, short reads and writes, and spurious readiness (a watched
//! descriptor reported although it is not ready). A descriptor that got a spurious EAGAIN or a
//! short read/write is reported ready again at the next dispatch (it really is ready), so
//! edge-triggered users do not lose a wake-up a real kernel would have given them. Everything
//! else is passed through unchanged. Clock, signals and network behaviour are the inner
//! backend's.
//!
//! This module uses only the `Backend` trait; it must never read a clock itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::backend::{Backend, ConnectState, Features, ListenOptions, Ready, Shutdown};
use evloop::{Events, Fd, Time};

use crate::faults::{Decision, FaultConfig, FaultGate, FaultKind};
use crate::rng::SimRng;

/// The faults [`Faulty`] injects and its seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultyConfig {
    /// The seed of its RNG.
    pub seed: u64,
    /// Probability of a spurious EAGAIN on a read.
    pub eagain_read: f64,
    /// Probability of a spurious EAGAIN on a write.
    pub eagain_write: f64,
    /// Probability of a short read.
    pub short_read: f64,
    /// Probability of a short write.
    pub short_write: f64,
    /// Probability, per dispatch, of one spurious readiness report.
    pub spurious: f64,
    /// Only these decision ordinals may inject (shrinking); `None`: all.
    pub only: Option<BTreeSet<u64>>,
}

impl FaultyConfig {
    /// The syscall-level part of a simulator fault configuration, with `seed`.
    pub fn from_faults(seed: u64, f: &FaultConfig) -> FaultyConfig {
        FaultyConfig {
            seed,
            eagain_read: f.eagain_read,
            eagain_write: f.eagain_write,
            short_read: f.short_read,
            short_write: f.short_write,
            spurious: f.spurious,
            only: None,
        }
    }
}

/// A backend with syscall-level faults (see the module documentation).
pub struct Faulty<B: Backend> {
    inner: B,
    cfg: FaultyConfig,
    rng: SimRng,
    gate: FaultGate,
    /// Watched interest per descriptor (for spurious and owed reports).
    interest: BTreeMap<Fd, Events>,
    /// Descriptors owed a readiness report (after a spurious EAGAIN or short I/O).
    owed: BTreeMap<Fd, Events>,
}

impl<B: Backend> Faulty<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, cfg: FaultyConfig) -> Faulty<B> {
        Faulty {
            rng: SimRng::new(cfg.seed),
            gate: FaultGate::new(cfg.only.clone()),
            inner,
            cfg,
            interest: BTreeMap::new(),
            owed: BTreeMap::new(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend, mutably.
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// The faults injected so far.
    pub fn decisions(&self) -> &[Decision] {
        self.gate.decisions()
    }

    fn decide(&mut self, kind: FaultKind, p: f64, detail: impl FnOnce() -> String) -> Option<u64> {
        let now = self.inner.now();
        let x = self.gate.decide(&mut self.rng, now, kind, p)?;
        self.gate.note(detail());
        Some(x)
    }

    fn owe(&mut self, fd: Fd, ev: Events) {
        let want = self.interest.get(&fd).copied().unwrap_or(Events::NONE) & ev;
        if !want.is_empty() {
            *self.owed.entry(fd).or_default() |= want;
        }
    }
}

impl<B: Backend> Backend for Faulty<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        self.inner.add(fd, old, added)?;
        *self.interest.entry(fd).or_default() |= added.io();
        Ok(())
    }
    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        self.inner.del(fd, old, removed)?;
        let left = old.io() & !removed.io();
        if left.is_empty() {
            self.interest.remove(&fd);
            self.owed.remove(&fd);
        } else {
            self.interest.insert(fd, left);
        }
        Ok(())
    }
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let timeout = if self.owed.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        let before = ready.len();
        self.inner.dispatch(timeout, ready)?;
        let owed = std::mem::take(&mut self.owed);
        for (fd, ev) in owed {
            if let Some(r) = ready[before..].iter_mut().find(|r| r.fd == fd) {
                r.events |= ev;
            } else {
                ready.push(Ready { fd, events: ev });
            }
        }
        if !self.interest.is_empty() {
            let n = self.interest.len() as u64;
            let p = self.cfg.spurious;
            if let Some(x) = self.decide(FaultKind::Spurious, p, || "one watched fd".to_owned()) {
                let (&fd, &ev) = self
                    .interest
                    .iter()
                    .nth((x % n) as usize)
                    .expect("x % n < n");
                if !ready[before..].iter().any(|r| r.fd == fd) {
                    ready.push(Ready { fd, events: ev });
                }
            }
        }
        Ok(())
    }
    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.inner.dispatch_again(ready)
    }
    fn now(&mut self) -> Time {
        self.inner.now()
    }
    evloop::delegate_signal_ops!(inner);
    fn socketpair(&mut self) -> io::Result<(Fd, Fd)> {
        self.inner.socketpair()
    }
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        let p = self.cfg.eagain_read;
        if !buf.is_empty()
            && self
                .decide(FaultKind::EagainRead, p, || format!("fd={fd}"))
                .is_some()
        {
            self.owe(fd, Events::READ);
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        let mut len = buf.len();
        if len > 1 {
            let p = self.cfg.short_read;
            if let Some(x) = self.decide(FaultKind::ShortRead, p, || format!("fd={fd}")) {
                len = 1 + (x % (len as u64 - 1)) as usize;
            }
        }
        let n = self.inner.read(fd, &mut buf[..len])?;
        if len < buf.len() && n == len {
            self.owe(fd, Events::READ);
        }
        Ok(n)
    }
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let p = self.cfg.eagain_write;
        if !buf.is_empty()
            && self
                .decide(FaultKind::EagainWrite, p, || format!("fd={fd}"))
                .is_some()
        {
            self.owe(fd, Events::WRITE);
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        let mut len = buf.len();
        if len > 1 {
            let p = self.cfg.short_write;
            if let Some(x) = self.decide(FaultKind::ShortWrite, p, || format!("fd={fd}")) {
                len = 1 + (x % (len as u64 - 1)) as usize;
            }
        }
        let n = self.inner.write(fd, &buf[..len])?;
        if len < buf.len() && n == len {
            self.owe(fd, Events::WRITE);
        }
        Ok(n)
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(fd, how)
    }
    fn close(&mut self, fd: Fd) -> io::Result<()> {
        self.owed.remove(&fd);
        self.inner.close(fd)
    }
    fn listen(&mut self, addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
        self.inner.listen(addr, opts)
    }
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, SocketAddr)> {
        self.inner.accept(fd)
    }
    fn connect(&mut self, addr: SocketAddr) -> io::Result<(Fd, ConnectState)> {
        self.inner.connect(addr)
    }
    fn connect_existing(&mut self, fd: Fd, addr: SocketAddr) -> io::Result<ConnectState> {
        self.inner.connect_existing(fd, addr)
    }
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>> {
        self.inner.take_socket_error(fd)
    }
    fn local_addr(&mut self, fd: Fd) -> io::Result<SocketAddr> {
        self.inner.local_addr(fd)
    }
}
