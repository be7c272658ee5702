//! [`Sim`]: several hosts, each with its own `Base<SimBackend>`, on one simulated network.
//!
//! Stepping. The simulator repeats: apply the world events that are due (segments arriving,
//! delayed signals, scheduled faults and inputs); run, in an order shuffled by the run's RNG,
//! every host that has work (never started, ready descriptors, or its wake-up time reached);
//! when no host has work, jump the clock straight to the next world event or wake-up. It never
//! ticks idly.
//!
//! Each host runs libevent's own loop: `Base::run(flags)` (`LoopFlags::NONE` by default, i.e.
//! `event_base_dispatch`). When the loop would block in its backend wait, the host's
//! `SimBackend` records the wake-up time (`now + timeout`, rounded as epoll rounds it) and the
//! wait returns an error that ends `run` right there; the simulator later calls `run` again.
//! This preserves libevent's iteration exactly: a wait only happens when nothing is active, the
//! resumed iteration's wait returns what is ready (or nothing, at the wake-up time), the time
//! cache is then set to the time the wait returned, and timers and callbacks proceed as in one
//! uninterrupted `run`. `got_exit`/`got_break` are false whenever a loop waits, so resetting
//! them at `run`'s entry changes nothing. A loop that ends (`loopexit`, `loopbreak`, no events)
//! ends its host: the process exits and its descriptors are closed.
//!
//! A program written for `B: Backend` runs here unchanged: its setup function takes
//! `&mut Base<SimBackend>` and must not call `run`/`dispatch` itself (the simulator does).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use evloop::{Base, Config, LoopExit, LoopFlags, Time};

use crate::backend::{SimBackend, SimConfig};
use crate::faults::Decision;
use crate::trace::{CallbackSpan, Trace, TraceSummary};
use crate::world::{process_due, HostId, Stats, WaitMode, World};

/// Where a host's loop is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostStatus {
    /// Set up; its loop has not run yet.
    New,
    /// Its loop waits: until the time given, or for I/O only (`None`).
    Waiting(Option<Time>),
    /// Its loop ended (and the host's descriptors were closed).
    Exited(LoopExit),
    /// Its loop failed with this error.
    Failed(String),
}

impl HostStatus {
    /// True once the loop ended or failed.
    pub fn is_done(&self) -> bool {
        matches!(self, HostStatus::Exited(_) | HostStatus::Failed(_))
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing can happen any more: no host has work, nothing is scheduled, every waiting host
    /// waits for I/O only.
    Quiescent,
    /// The requested virtual time was reached.
    Reached,
    /// The predicate holds.
    Predicate,
}

struct Host {
    base: Base<SimBackend>,
    flags: LoopFlags,
    status: HostStatus,
}

/// Several simulated hosts on one network, one clock, one RNG (see the module documentation).
///
/// ```
/// use evloop_sim::{HostStatus, Sim};
/// use std::time::Duration;
///
/// let mut sim = Sim::new(42);
/// let h = sim.add_host(|base| {
///     // The program's `main` up to its dispatch: the simulator runs the loop.
///     let t = base.timer_new(|base, _, _| base.backend_mut().trace_line("tick")).unwrap();
///     base.add(t, Some(Duration::from_millis(250))).unwrap();
/// });
/// sim.run_until_quiescent();
/// assert_eq!(sim.now().as_micros(), 250_000); // the clock jumped there: no idle ticking
/// assert!(matches!(sim.status(h), HostStatus::Exited(_))); // no events left: the loop ended
/// assert_eq!(sim.stats().callbacks, 1); // counted by the loop
/// assert!(sim.failures().is_empty());
/// ```
pub struct Sim {
    world: Rc<RefCell<World>>,
    hosts: Vec<Host>,
    pub(crate) clients: Vec<Rc<RefCell<crate::client::ClientRun>>>,
    /// The order of a round (kept to reuse its buffer).
    order: Vec<HostId>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now())
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

impl Sim {
    /// A simulation seeded with `seed`, without faults.
    pub fn new(seed: u64) -> Sim {
        Sim::with_config(&SimConfig::seeded(seed))
    }

    /// A simulation configured by `cfg`.
    pub fn with_config(cfg: &SimConfig) -> Sim {
        Sim {
            world: Rc::new(RefCell::new(cfg.world())),
            hosts: Vec::new(),
            clients: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Adds a host with a default base and `event_base_dispatch`'s flags; `setup` runs at once
    /// (like a program's `main` before it dispatches). Returns the host's id; its address is
    /// [`crate::host_addr`]`(id)`.
    pub fn add_host(&mut self, setup: impl FnOnce(&mut Base<SimBackend>)) -> HostId {
        self.add_host_with(&Config::default(), LoopFlags::NONE, setup)
    }

    /// Adds a host whose base is configured by `cfg` and whose loop runs with `flags`.
    pub fn add_host_with(
        &mut self,
        cfg: &Config,
        flags: LoopFlags,
        setup: impl FnOnce(&mut Base<SimBackend>),
    ) -> HostId {
        let id = self.world.borrow_mut().add_host(WaitMode::Park);
        let mut base = Base::with_config(SimBackend::handle(self.world.clone(), id), cfg);
        if self.world.borrow().trace.keeps_text() {
            base.set_callback_hook(Some(span_hook(self.world.clone(), id)));
        }
        setup(&mut base);
        self.hosts.push(Host {
            base,
            flags,
            status: HostStatus::New,
        });
        id
    }

    /// The number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Host `h`'s base (to inspect it, or to act on it between steps).
    pub fn base(&mut self, h: HostId) -> &mut Base<SimBackend> {
        &mut self.hosts[h].base
    }

    /// Where host `h`'s loop is.
    pub fn status(&self, h: HostId) -> &HostStatus {
        &self.hosts[h].status
    }

    /// The virtual clock.
    pub fn now(&self) -> Time {
        self.world.borrow().now
    }

    /// Schedules an outside input on host `h` at time `at`.
    pub fn at(&mut self, at: Time, h: HostId, f: impl FnOnce(&mut SimBackend) + 'static) {
        self.world.borrow_mut().push_input(at, h, Box::new(f));
    }

    /// Delivers signal `sig` to host `h` at time `at`.
    pub fn raise_at(&mut self, at: Time, h: HostId, sig: i32) {
        self.world.borrow_mut().schedule_signal(at, h, sig);
    }

    /// Appends a line to the trace.
    pub fn trace_line(&mut self, what: &str) {
        let mut w = self.world.borrow_mut();
        let now = w.now.as_micros();
        w.trace.line_at(now, None, format_args!("sim {what}"));
    }

    /// The trace so far (a copy).
    pub fn trace(&self) -> Trace {
        self.world.borrow().trace.clone()
    }

    /// The trace's hash and length.
    pub fn trace_summary(&self) -> TraceSummary {
        self.world.borrow().trace.summary()
    }

    /// Takes the trace out (leaving an empty one).
    pub fn take_trace(&mut self) -> Trace {
        let mut w = self.world.borrow_mut();
        let keep = w.trace.keeps_text();
        std::mem::replace(&mut w.trace, Trace::new(keep))
    }

    /// The faults injected so far.
    pub fn decisions(&self) -> Vec<Decision> {
        self.world.borrow().decisions().to_vec()
    }

    /// Takes the log of faults injected out (at the end of a run: no copy).
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        self.world.borrow_mut().take_decisions()
    }

    /// The run's counters.
    pub fn stats(&self) -> Stats {
        self.world.borrow().stats
    }

    /// True if a fault (refusal, reset, partition, a scripted client's `peer-close`) touched
    /// connection `conn` (see [`SimBackend::connection_of`]).
    pub fn connection_faulted(&self, conn: u64) -> bool {
        self.world.borrow().conn_faulted(conn)
    }

    /// Records a failure (an invariant the harness checks); it also goes into the trace.
    /// [`crate::targets::RunReport::from_sim`] reports it.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.world.borrow_mut().fail(msg.into());
    }

    /// The failures recorded so far: by [`Sim::fail`], [`SimBackend::fail`] and the scripted
    /// clients' broken expectations.
    pub fn failures(&self) -> Vec<String> {
        self.world.borrow().failures.clone()
    }

    /// Takes the failures recorded so far out.
    pub fn take_failures(&mut self) -> Vec<String> {
        std::mem::take(&mut self.world.borrow_mut().failures)
    }

    fn runnable(&self, h: HostId, now: Time) -> bool {
        match self.hosts[h].status {
            HostStatus::New => true,
            HostStatus::Waiting(wake) => {
                wake.is_some_and(|t| t <= now) || self.world.borrow().has_work(h)
            }
            HostStatus::Exited(_) | HostStatus::Failed(_) => false,
        }
    }

    /// Applies what is due and runs every host that has work, in a seeded order. Returns
    /// false if no host had work.
    fn round(&mut self) -> bool {
        process_due(&self.world);
        let now = self.now();
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend((0..self.hosts.len()).filter(|&h| self.runnable(h, now)));
        if order.is_empty() {
            self.order = order;
            return false;
        }
        self.world.borrow_mut().rng.shuffle(&mut order);
        for &h in &order {
            // An earlier host of this round may have changed nothing for this one; it still
            // had work when the round started and cannot lose it to another host.
            self.run_host(h);
        }
        self.order = order;
        true
    }

    fn run_host(&mut self, h: HostId) {
        let host = &mut self.hosts[h];
        let before = host.base.callbacks_run();
        let r = host.base.run(host.flags);
        let ran = host.base.callbacks_run() - before;
        let parked = {
            let mut w = self.world.borrow_mut();
            w.stats.callbacks += ran;
            w.hosts[h].parked.take()
        };
        let status = match (r, parked) {
            (Err(_), Some(wake)) => HostStatus::Waiting(wake),
            (Ok(exit), _) => HostStatus::Exited(exit),
            (Err(e), None) => HostStatus::Failed(e.to_string()),
        };
        if status.is_done() {
            let mut w = self.world.borrow_mut();
            let now = w.now.as_micros();
            w.trace
                .line_at(now, Some(h), format_args!("exit {:?}", status));
            w.close_all(h);
        }
        self.hosts[h].status = status;
    }

    /// The time of the next thing that can happen: a world event or a host's wake-up.
    fn next_time(&self) -> Option<Time> {
        let w = self.world.borrow();
        let mut next = w.next_event_time();
        for host in &self.hosts {
            if let HostStatus::Waiting(Some(t)) = host.status {
                next = Some(next.map_or(t, |n: Time| n.min(t)));
            }
        }
        next
    }

    fn jump(&mut self, t: Time) {
        let mut w = self.world.borrow_mut();
        w.now = w.now.max(t);
    }

    /// Runs what is due now, or jumps to the next thing that can happen and runs that.
    /// Returns false once quiescent.
    pub fn step(&mut self) -> bool {
        if self.round() {
            return true;
        }
        match self.next_time() {
            None => false,
            Some(t) => {
                self.jump(t);
                self.round();
                true
            }
        }
    }

    /// Runs until nothing can happen any more.
    pub fn run_until_quiescent(&mut self) -> Outcome {
        while self.step() {}
        Outcome::Quiescent
    }

    /// Runs until the clock reaches `deadline` (everything due at `deadline` included), or
    /// until quiescent; the clock then reads `deadline`.
    pub fn run_until(&mut self, deadline: Time) -> Outcome {
        loop {
            if self.round() {
                continue;
            }
            match self.next_time() {
                Some(t) if t <= deadline => self.jump(t),
                next => {
                    self.jump(deadline);
                    return if next.is_some() {
                        Outcome::Reached
                    } else {
                        Outcome::Quiescent
                    };
                }
            }
        }
    }

    /// Runs until `pred` holds (checked before each step), until quiescent, or until the clock
    /// would pass `horizon`.
    pub fn run_until_pred(
        &mut self,
        horizon: Time,
        mut pred: impl FnMut(&mut Sim) -> bool,
    ) -> Outcome {
        loop {
            if pred(self) {
                return Outcome::Predicate;
            }
            if self.round() {
                continue;
            }
            match self.next_time() {
                Some(t) if t <= horizon => self.jump(t),
                Some(_) => {
                    self.jump(horizon);
                    return Outcome::Reached;
                }
                None => return Outcome::Quiescent,
            }
        }
    }
}

/// Records every callback of host `h` as a [`CallbackSpan`] of the trace.
fn span_hook(world: Rc<RefCell<World>>, h: HostId) -> evloop::CallbackHook {
    let mut start = Time::ZERO;
    Box::new(move |info: &evloop::CallbackInfo, begin: bool| {
        let mut w = world.borrow_mut();
        if begin {
            start = w.now;
            return;
        }
        let name = match info.kind {
            evloop::CallbackKind::Timer => "timer".to_owned(),
            evloop::CallbackKind::Io => format!("io fd {} {:?}", info.fd, info.res),
            evloop::CallbackKind::Signal => format!("signal {}", info.fd),
            evloop::CallbackKind::Bare => "deferred".to_owned(),
        };
        let end = w.now;
        w.trace.push_span(CallbackSpan {
            host: h,
            start,
            end,
            priority: info.priority,
            name,
            internal: info.internal,
        });
    })
}

impl Sim {
    pub(crate) fn world_ref(&self) -> &Rc<RefCell<World>> {
        &self.world
    }
}
