//! [`SimBackend`]: the `Backend` trait over the simulated world.
//!
//! A `SimBackend` is a handle: the world it acts on (shared, `Rc<RefCell<World>>`) and the host
//! it acts as. Every operation borrows the world for its own duration only, so scripted inputs
//! and simulated programs can hold handles of their own. The wait has two modes:
//!
//! - **standalone** ([`SimBackend::new`]): one host drives its own loop and a wait moves the
//!   clock, by the rule of `VirtualTime` and the C player (IR.md §6): (a) anything ready is
//!   returned at once; (b) a zero timeout returns nothing; (c) with `target = now + timeout`
//!   (rounded as epoll rounds it, 35 min at most), if the next world event (a segment in flight,
//!   a delayed signal) or scripted input is due at or before the target, the clock moves there,
//!   it happens, and one more poll gives the result; (d) otherwise the clock moves to the target;
//!   (e) an infinite wait with nothing to come is an error (`blocked forever`).
//! - **under a [`crate::Sim`]**: a wait that would block *parks*: the host records when it
//!   wants to wake and the dispatch returns an error that ends `Base::run` at exactly the point
//!   where libevent's loop blocks. The simulator resumes the loop later by calling `run` again;
//!   libevent's iteration is unchanged by this (see the `sim` module).
//!
//! This module must never read a real clock nor touch a real descriptor.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use evloop::backend::{
    Backend, ConnectState, Environment, Features, ListenOptions, Ready, Resolution, Shutdown, NSIG,
};
use evloop::{Events, Fd, Time};

use crate::faults::{Decision, FaultConfig, FaultKind};
use crate::trace::{Trace, TraceSummary};
use crate::world::{host_addr, process_due, HostId, Stats, WaitMode, World};

/// epoll's longest wait (`MAX_EPOLL_TIMEOUT_MSEC`, 35 minutes).
const MAX_WAIT_MILLIS: u64 = 35 * 60 * 1000;

/// How a run is set up: the seed, the faults, what to keep.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// The seed of the run's one RNG.
    pub seed: u64,
    /// What may go wrong.
    pub faults: FaultConfig,
    /// Keep the trace's text (not only its hashes).
    pub keep_trace: bool,
    /// Only these fault decision ordinals may inject (shrinking); `None`: all.
    pub only: Option<BTreeSet<u64>>,
}

impl SimConfig {
    /// A configuration with `seed` and no fault.
    pub fn seeded(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }

    pub(crate) fn world(&self) -> World {
        let mut w = World::new(self.seed, self.faults.clone(), self.keep_trace);
        w.set_only(self.only.clone());
        w
    }
}

/// The simulated operating system as one host sees it (see the module documentation).
pub struct SimBackend {
    world: Rc<RefCell<World>>,
    host: HostId,
    env: Option<Box<dyn Environment<SimBackend>>>,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("host", &self.host)
            .finish()
    }
}

impl SimBackend {
    /// A standalone simulated host (host 0, 127.0.0.1) seeded with `seed`, without faults.
    pub fn new(seed: u64) -> SimBackend {
        SimBackend::standalone(&SimConfig::seeded(seed))
    }

    /// A standalone simulated host configured by `cfg`.
    pub fn standalone(cfg: &SimConfig) -> SimBackend {
        let mut w = cfg.world();
        let host = w.add_host(WaitMode::Advance);
        SimBackend {
            world: Rc::new(RefCell::new(w)),
            host,
            env: None,
        }
    }

    /// Another handle on `host` of `world` (inputs and programs use these).
    pub(crate) fn handle(world: Rc<RefCell<World>>, host: HostId) -> SimBackend {
        SimBackend {
            world,
            host,
            env: None,
        }
    }

    /// Another handle on the same host of the same world (without the scripted inputs): to
    /// read the trace, the faults and the counters after the first handle is gone.
    pub(crate) fn another_handle(&self) -> SimBackend {
        SimBackend::handle(self.world.clone(), self.host)
    }

    /// A client socket connected as by a blocking `connect(2)` (the outside world's clients of
    /// the conformance scenarios): a connection to a port of this host that nobody listens on
    /// fails inside the call with ECONNREFUSED, as over Linux loopback; otherwise it starts as
    /// [`Backend::connect`] starts it and completes after the network's delay (the simulator
    /// cannot block).
    pub fn connect_blocking(&mut self, addr: SocketAddr) -> io::Result<Fd> {
        self.world.borrow_mut().connect_blocking(self.host, addr)
    }

    /// The host this backend acts as.
    pub fn host(&self) -> HostId {
        self.host
    }

    /// The host's address (127.0.0.1 for host 0, 127.0.0.2 for host 1, …).
    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(host_addr(self.host))
    }

    /// The address `port` on this host.
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.addr(), port)
    }

    /// Installs scripted outside inputs, performed inside standalone waits by the rule of
    /// `VirtualTime` (replacing any previous environment).
    pub fn set_environment(&mut self, env: Box<dyn Environment<SimBackend>>) {
        self.env = Some(env);
    }

    /// Overrides how waits are rounded (`Some(Resolution::Micros)` for a base with
    /// `PRECISE_TIMER`, as libevent's epoll then waits on a timerfd); `None`: milliseconds, as
    /// epoll. Call it before creating the `Base`, which reads the features once.
    pub fn set_resolution(&mut self, resolution: Option<Resolution>) {
        self.world.borrow_mut().hosts[self.host].resolution =
            resolution.unwrap_or(Resolution::Millis);
    }

    /// Moves the clock forward by `d`: a slow callback. Nothing fires until the next wait.
    pub fn advance(&mut self, d: Duration) {
        let mut w = self.world.borrow_mut();
        w.now = w.now.saturating_add(d);
        let now = w.now.as_micros();
        w.trace.line_at(
            now,
            Some(self.host),
            format_args!("advance {}us", d.as_micros()),
        );
    }

    /// The virtual clock.
    pub fn clock(&self) -> Time {
        self.world.borrow().now
    }

    /// Appends `what` to the run's trace, stamped with the time and the host.
    pub fn trace_line(&mut self, what: &str) {
        self.trace_args(format_args!("{what}"));
    }

    /// [`SimBackend::trace_line`] with the line written piece by piece into the trace's hash
    /// (see [`crate::LineWriter`]), the fastest way.
    pub fn trace_with(&mut self, body: impl FnOnce(&mut crate::LineWriter<'_>)) {
        let mut w = self.world.borrow_mut();
        let now = w.now.as_micros();
        w.trace.line_with(now, Some(self.host), body);
    }

    /// [`SimBackend::trace_line`] with the text formatted straight into the trace's hash (no
    /// allocation unless the trace keeps its text): `trace_args(format_args!("x {n}"))`.
    pub fn trace_args(&mut self, what: fmt::Arguments<'_>) {
        let mut w = self.world.borrow_mut();
        let now = w.now.as_micros();
        w.trace.line_at(now, Some(self.host), what);
    }

    /// Records a failure found by a simulated program (an invariant it checks itself); it goes
    /// into the trace and into the run's report ([`crate::Sim::failures`]).
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.world.borrow_mut().fail(msg.into());
    }

    /// Closes `fd` abortively (`SO_LINGER` 0): the peer of an established TCP connection
    /// reads ECONNRESET instead of EOF.
    pub fn close_reset(&mut self, fd: Fd) -> io::Result<()> {
        self.world.borrow_mut().abort_close(self.host, fd)
    }

    /// Counts one callback. Hosts of a [`crate::Sim`] are counted by the simulator; a
    /// standalone host's program counts its own callbacks with this.
    pub fn count_callback(&mut self) {
        self.world.borrow_mut().stats.callbacks += 1;
    }

    /// Draws a fault decision of `kind` with the configured probability (simulated programs use
    /// this for faults that are theirs to act out, such as [`FaultKind::PeerClose`]); `detail`
    /// describes it in the decision log. Returns a random payload if the fault happens.
    pub fn decide_fault(&mut self, kind: FaultKind, detail: &str) -> Option<u64> {
        self.decide_fault_with(kind, || detail.to_owned())
    }

    /// [`SimBackend::decide_fault`] with the description made only if the fault happens.
    pub fn decide_fault_with(
        &mut self,
        kind: FaultKind,
        detail: impl FnOnce() -> String,
    ) -> Option<u64> {
        let mut w = self.world.borrow_mut();
        let p = w.faults().probability(kind);
        let x = w.decide(kind, p)?;
        let line = format!("h{} {}", self.host, detail());
        w.note_public(line);
        Some(x)
    }

    /// A number in `0..n` from the run's RNG (for simulated programs' own choices).
    pub fn random_below(&mut self, n: u64) -> u64 {
        self.world.borrow_mut().rng.below(n)
    }

    /// The number of the connection a socket descriptor belongs to (a socketpair or a TCP
    /// connection; both ends share it).
    pub fn connection_of(&self, fd: Fd) -> Option<u64> {
        self.world.borrow().conn_of(self.host, fd)
    }

    /// True if a fault (refusal, reset, partition) touched connection `conn`.
    pub fn connection_faulted(&self, conn: u64) -> bool {
        self.world.borrow().conn_faulted(conn)
    }

    /// Marks connection `conn` as touched by a fault (a program acting out a fault says so).
    pub fn mark_faulted(&mut self, conn: u64) {
        self.world.borrow_mut().mark_faulted(conn);
    }

    /// The number of open descriptors of this host.
    pub fn open_fds(&self) -> usize {
        self.world.borrow().open_fds(self.host)
    }

    /// Schedules an outside input: `f` runs with a handle on this host when the clock reaches
    /// `at` (under a `Sim`, or during standalone waits like a segment's arrival).
    pub fn input_at(&mut self, at: Time, f: impl FnOnce(&mut SimBackend) + 'static) {
        self.world
            .borrow_mut()
            .push_input(at, self.host, Box::new(f));
    }

    /// Delivers signal `sig` to this host when the clock reaches `at`.
    pub fn raise_at(&mut self, at: Time, sig: i32) {
        self.world.borrow_mut().schedule_signal(at, self.host, sig);
    }

    /// The trace so far (a copy).
    pub fn trace(&self) -> Trace {
        self.world.borrow().trace.clone()
    }

    /// The trace's hash and length.
    pub fn trace_summary(&self) -> TraceSummary {
        self.world.borrow().trace.summary()
    }

    /// The faults injected so far.
    pub fn decisions(&self) -> Vec<Decision> {
        self.world.borrow().decisions().to_vec()
    }

    /// The run's counters.
    pub fn stats(&self) -> Stats {
        self.world.borrow().stats
    }

    fn scan(&mut self, ready: &mut Vec<Ready>) {
        process_due(&self.world);
        self.world.borrow_mut().scan(self.host, ready);
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    /// epoll's features: edge-triggered, O(1), early close; waits rounded as configured.
    fn features(&self) -> Features {
        Features {
            edge_triggered: true,
            o1: true,
            early_close: true,
            fds: false,
            resolution: self.world.borrow().hosts[self.host].resolution,
        }
    }

    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        self.world.borrow_mut().epoll_add(self.host, fd, old, added)
    }

    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        self.world
            .borrow_mut()
            .epoll_del(self.host, fd, old, removed)
    }

    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let (mode, resolution) = {
            let mut w = self.world.borrow_mut();
            w.dispatch_guard(self.host)?;
            w.maybe_clock_jump(self.host);
            let h = &w.hosts[self.host];
            (h.mode, h.resolution)
        };
        let before = ready.len();
        self.scan(ready);
        if ready.len() > before || timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        let now = self.clock();
        let target = timeout.map(|d| {
            let mut d = resolution.round(d);
            if resolution == Resolution::Millis {
                d = d.min(Duration::from_millis(MAX_WAIT_MILLIS));
            }
            now.saturating_add(d)
        });
        if mode == WaitMode::Park {
            let mut w = self.world.borrow_mut();
            w.hosts[self.host].parked = Some(target);
            w.trace
                .line_with(now.as_micros(), Some(self.host), |l| match target {
                    Some(t) => {
                        l.s("park until ");
                        l.u(t.as_micros());
                    }
                    None => l.s("park"),
                });
            // The simulator reads `parked`, not the error (WouldBlock: the host parked until
            // its next wake-up); a plain error kind costs no allocation.
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let next_world = self.world.borrow().next_event_time();
        let next_env = self.env.as_ref().and_then(|e| e.next_input());
        let next = match (next_world, next_env) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = next {
            if target.is_none_or(|target| t <= target) {
                let now = {
                    let mut w = self.world.borrow_mut();
                    w.now = w.now.max(t);
                    w.now
                };
                process_due(&self.world);
                if let Some(mut env) = self.env.take() {
                    if env.next_input().is_some_and(|t| t <= now) {
                        env.fire(now, self);
                    }
                    if self.env.is_none() {
                        self.env = Some(env);
                    }
                }
                return self.dispatch_again(ready);
            }
        }
        match target {
            Some(target) => {
                self.world.borrow_mut().now = target;
                Ok(())
            }
            None => Err(io::Error::other(
                "simulated host: infinite wait with nothing ready and nothing scheduled (blocked forever)",
            )),
        }
    }

    /// The zero-timeout poll that ends a wait in which something happened.
    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.scan(ready);
        Ok(())
    }

    fn now(&mut self) -> Time {
        self.world.borrow().now
    }

    fn signal_add(&mut self, sig: i32) -> io::Result<()> {
        self.world.borrow_mut().signal_add(self.host, sig)
    }
    fn signal_del(&mut self, sig: i32) -> io::Result<()> {
        self.world.borrow_mut().signal_del(self.host, sig)
    }
    fn signal_fd(&mut self) -> io::Result<Fd> {
        Ok(self.world.borrow_mut().signal_fd(self.host))
    }
    fn signal_drain(&mut self, counts: &mut [u32; NSIG]) {
        self.world.borrow_mut().signal_drain(self.host, counts)
    }
    fn raise(&mut self, sig: i32) -> io::Result<()> {
        self.world.borrow_mut().raise(self.host, sig)
    }
    fn socketpair(&mut self) -> io::Result<(Fd, Fd)> {
        Ok(self.world.borrow_mut().socketpair(self.host))
    }
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        self.world.borrow_mut().read(self.host, fd, buf)
    }
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        self.world.borrow_mut().write(self.host, fd, buf)
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()> {
        self.world.borrow_mut().shutdown(self.host, fd, how)
    }
    fn close(&mut self, fd: Fd) -> io::Result<()> {
        self.world.borrow_mut().close(self.host, fd)
    }
    fn listen(&mut self, addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
        self.world.borrow_mut().listen(self.host, addr, opts)
    }
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, SocketAddr)> {
        self.world.borrow_mut().accept(self.host, fd)
    }
    fn connect(&mut self, addr: SocketAddr) -> io::Result<(Fd, ConnectState)> {
        self.world.borrow_mut().connect(self.host, addr)
    }
    fn connect_existing(&mut self, fd: Fd, addr: SocketAddr) -> io::Result<ConnectState> {
        self.world
            .borrow_mut()
            .connect_existing(self.host, fd, addr)
    }
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>> {
        self.world.borrow_mut().take_socket_error(self.host, fd)
    }
    fn local_addr(&mut self, fd: Fd) -> io::Result<SocketAddr> {
        self.world.borrow_mut().local_addr(self.host, fd)
    }
}
