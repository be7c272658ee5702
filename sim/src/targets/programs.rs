//! Random event programs: timers, I/O events on socketpairs, signals, priorities, and callbacks
//! that add, delete and activate events, write, read and raise signals; outside inputs write to
//! socketpair ends and raise signals at random times. A [`Program`] is plain data: it is
//! generated from a seed ([`Program::generate`]) for `evsim`, or by a proptest strategy
//! ([`crate::strategies::program`]), and run on one simulated host by [`run_program`].
//!
//! Checked while it runs and at the end:
//! - within one processing pass no less urgent callback runs before a more urgent active one
//!   (the repetitions of one signal callback count as one callback: libevent's signal closure
//!   calls it `ncalls` times in a row without looking at the queues, as a shrunk `explore`
//!   finding showed: `programs --seed 8211 --faults chaos`, one `signal-repeat`);
//! - a non-persistent event runs at most once per add (or activation);
//! - no timer fires before its deadline, and none is lost (at the end, an armed timeout that
//!   never fired is still pending and not overdue).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{Backend, Base, Config, EventId, Events, Fd, LoopFlags, Time};

use super::{apply_core_fault, check_priority, RunOptions, RunReport, Target};
use crate::rng::SimRng;
use crate::sim::{HostStatus, Sim};
use crate::SimConfig;

/// What an event of a program watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// A pure timer.
    Timer,
    /// READ on end `end` of the socketpairs (pair `end / 2`).
    Read(usize),
    /// WRITE on end `end`.
    Write(usize),
    /// A signal.
    Signal(i32),
}

/// One event of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// What it watches.
    pub watch: Watch,
    /// `EV_PERSIST`.
    pub persist: bool,
    /// Its priority (clamped to the base's number of priorities).
    pub priority: usize,
    /// What its callback does, on each of its first few calls (then nothing).
    pub actions: Vec<Action>,
}

/// Something a callback (or the program's setup) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `event_add(ev, timeout)`.
    Add {
        /// The event.
        ev: usize,
        /// The timeout in µs.
        timeout_us: Option<u64>,
    },
    /// `event_del(ev)`.
    Del {
        /// The event.
        ev: usize,
    },
    /// `event_active(ev, EV_TIMEOUT, 1)`.
    Active {
        /// The event.
        ev: usize,
    },
    /// Write `n` bytes to socketpair end `end`.
    Write {
        /// The end.
        end: usize,
        /// How many bytes.
        n: usize,
    },
    /// Read up to 64 bytes from end `end`.
    Read {
        /// The end.
        end: usize,
    },
    /// Raise signal `sig`.
    Raise {
        /// The signal.
        sig: i32,
    },
}

/// A random event program (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Priorities of the base (1..=4).
    pub priorities: usize,
    /// Socketpairs.
    pub pairs: usize,
    /// The events.
    pub events: Vec<EventSpec>,
    /// What the program does before the loop.
    pub setup: Vec<Action>,
    /// Outside inputs: at a time (µs), an action on the world (writes and raises only).
    pub inputs: Vec<(u64, Action)>,
}

/// Signals programs use (SIGUSR1, SIGUSR2).
pub const SIGNALS: [i32; 2] = [10, 12];
/// How many calls of an event run its actions.
const ACTIVE_CALLS: u32 = 3;
/// A program that runs this many callbacks is stopped with `loopbreak`.
const CALLBACK_BUDGET: u32 = 2000;
/// Programs are cut off here (persistent timers would run forever).
pub const HORIZON: Time = Time(5_000_000);

impl Program {
    /// A program drawn from `rng`.
    pub fn generate(rng: &mut SimRng) -> Program {
        let priorities = 1 + rng.below(4) as usize;
        let pairs = 1 + rng.below(3) as usize;
        let nev = 2 + rng.below(9) as usize;
        let timeout = |r: &mut SimRng| -> Option<u64> {
            match r.below(4) {
                0 => None,
                1 => Some(0),
                _ => Some(r.range(1, 300_000)),
            }
        };
        let action = |r: &mut SimRng| -> Action {
            match r.below(6) {
                0 | 1 => Action::Add {
                    ev: r.below(nev as u64) as usize,
                    timeout_us: timeout(r),
                },
                2 => Action::Del {
                    ev: r.below(nev as u64) as usize,
                },
                3 => Action::Active {
                    ev: r.below(nev as u64) as usize,
                },
                4 => Action::Write {
                    end: r.below(2 * pairs as u64) as usize,
                    n: r.range(1, 100) as usize,
                },
                _ => {
                    if r.chance(0.5) {
                        Action::Read {
                            end: r.below(2 * pairs as u64) as usize,
                        }
                    } else {
                        Action::Raise {
                            sig: SIGNALS[r.below(2) as usize],
                        }
                    }
                }
            }
        };
        let mut events = Vec::with_capacity(nev);
        for _ in 0..nev {
            let watch = match rng.below(5) {
                0 | 1 => Watch::Timer,
                2 => Watch::Read(rng.below(2 * pairs as u64) as usize),
                3 => Watch::Write(rng.below(2 * pairs as u64) as usize),
                _ => Watch::Signal(SIGNALS[rng.below(2) as usize]),
            };
            let persist = rng.chance(0.4);
            let priority = rng.below(priorities as u64) as usize;
            let nact = rng.below(4) as usize;
            let actions = (0..nact).map(|_| action(rng)).collect();
            events.push(EventSpec {
                watch,
                persist,
                priority,
                actions,
            });
        }
        let setup = (0..1 + rng.below(nev as u64 + 2))
            .map(|_| Action::Add {
                ev: rng.below(nev as u64) as usize,
                timeout_us: timeout(rng),
            })
            .collect();
        let inputs = (0..rng.below(5))
            .map(|_| {
                let t = rng.range(0, 500_000);
                let a = if rng.chance(0.7) {
                    Action::Write {
                        end: rng.below(2 * pairs as u64) as usize,
                        n: rng.range(1, 50) as usize,
                    }
                } else {
                    Action::Raise {
                        sig: SIGNALS[rng.below(2) as usize],
                    }
                };
                (t, a)
            })
            .collect();
        Program {
            priorities,
            pairs,
            events,
            setup,
            inputs,
        }
    }
}

#[derive(Default)]
struct Track {
    ids: Vec<Option<EventId>>,
    calls: Vec<u32>,
    /// A non-persistent event may run once: set by add/active, cleared when it runs.
    armed: Vec<bool>,
    /// The deadline of an armed timeout (non-persistent events).
    deadline: Vec<Option<Time>>,
    ends: Vec<Fd>,
    failures: Vec<String>,
    total: u32,
    /// The previous callback: event and time.
    last: Option<(usize, Time)>,
}

type Shared = Rc<RefCell<Track>>;

fn perform<B: Backend + 'static>(base: &mut Base<B>, p: &Rc<Program>, t: &Shared, a: Action) {
    let now = base.now();
    match a {
        Action::Add { ev, timeout_us } => {
            let Some(id) = t.borrow().ids[ev] else { return };
            let spec = &p.events[ev];
            if matches!(spec.watch, Watch::Timer) && timeout_us.is_none() {
                // A timer added without a timeout is only "added": nothing will fire it.
            }
            let r = base.add(id, timeout_us.map(Duration::from_micros));
            if r.is_ok() {
                let mut tr = t.borrow_mut();
                let watches_io = !matches!(spec.watch, Watch::Timer);
                if timeout_us.is_some() || watches_io {
                    tr.armed[ev] = true;
                }
                if let Some(us) = timeout_us {
                    if !spec.persist {
                        tr.deadline[ev] = Some(Time(now.as_micros() + us));
                    }
                }
            }
        }
        Action::Del { ev } => {
            let Some(id) = t.borrow().ids[ev] else { return };
            let _ = base.del(id);
            let mut tr = t.borrow_mut();
            tr.armed[ev] = false;
            tr.deadline[ev] = None;
        }
        Action::Active { ev } => {
            let Some(id) = t.borrow().ids[ev] else { return };
            let _ = base.active(id, Events::TIMEOUT, 1);
            t.borrow_mut().armed[ev] = true;
        }
        Action::Write { end, n } => {
            let fd = t.borrow().ends[end % t.borrow().ends.len()];
            let buf = vec![b'x'; n];
            let _ = base.backend_mut().write(fd, &buf);
        }
        Action::Read { end } => {
            let fd = t.borrow().ends[end % t.borrow().ends.len()];
            let mut buf = [0u8; 64];
            let _ = base.backend_mut().read(fd, &mut buf);
        }
        Action::Raise { sig } => {
            let _ = base.backend_mut().raise(sig);
        }
    }
}

fn on_fire(
    base: &mut Base<crate::SimBackend>,
    p: &Rc<Program>,
    t: &Shared,
    ev: usize,
    what: Events,
) {
    let spec = &p.events[ev];
    let pri = spec.priority.min(p.priorities - 1);
    let now = base.now();
    let call = {
        let mut tr = t.borrow_mut();
        tr.calls[ev] += 1;
        tr.calls[ev]
    };
    base.backend_mut()
        .trace_args(format_args!("cb e{ev} #{call} {what} pri={pri}"));
    {
        let mut tr = t.borrow_mut();
        // libevent's signal closure makes its `ncalls` calls back to back without looking at
        // the queues (`event_signal_closure`): a repetition is part of one callback, so only
        // the first call of a run of repetitions is checked.
        let repeat = matches!(spec.watch, Watch::Signal(_)) && tr.last == Some((ev, now));
        tr.last = Some((ev, now));
        // The name is only formatted when there is a violation to describe.
        let violation = if repeat || base.first_active_priority().is_none_or(|p| p >= pri) {
            None
        } else {
            check_priority(base, pri, &format!("event e{ev}"))
        };
        if let Some(v) = violation {
            tr.failures.push(format!("{}us: {v}", now.as_micros()));
        }
        tr.total += 1;
        if tr.total == CALLBACK_BUDGET {
            // A program may legitimately never wait (a persistent WRITE event on a writable
            // socket runs forever at one instant): stop it here.
            base.loopbreak();
        }
        if !spec.persist {
            // Non-persistent events are deleted before their callback runs.
            tr.deadline[ev] = None;
        }
        if !spec.persist && !matches!(spec.watch, Watch::Signal(_)) {
            if !tr.armed[ev] {
                tr.failures.push(format!(
                    "{}us: non-persistent event e{ev} ran twice for one add (call #{call})",
                    now.as_micros()
                ));
            }
            tr.armed[ev] = false;
            if what.contains(Events::TIMEOUT) {
                if let Some(d) = tr.deadline[ev] {
                    if now < d {
                        tr.failures.push(format!(
                            "{}us: timer e{ev} fired before its deadline {}us",
                            now.as_micros(),
                            d.as_micros()
                        ));
                    }
                }
            }
            tr.deadline[ev] = None;
        }
    }
    if call <= ACTIVE_CALLS {
        for &a in &spec.actions {
            perform(base, p, t, a);
        }
    }
}

/// Runs `program` on one simulated host configured by `cfg`; returns the report.
pub fn run_program(program: &Program, cfg: &SimConfig, core_fault: Option<&str>) -> RunReport {
    let p = Rc::new(program.clone());
    let t: Shared = Rc::new(RefCell::new(Track::default()));
    let mut sim = Sim::with_config(cfg);
    let (p2, t2) = (p.clone(), t.clone());
    let host = sim.add_host_with(&Config::default(), LoopFlags::NONE, move |base| {
        apply_core_fault(base, core_fault);
        let p = p2;
        let t = t2;
        let _ = base.priority_init(p.priorities);
        {
            let mut tr = t.borrow_mut();
            for _ in 0..p.pairs {
                if let Ok((a, b)) = base.backend_mut().socketpair() {
                    tr.ends.push(a);
                    tr.ends.push(b);
                }
            }
            let n = p.events.len();
            tr.ids = vec![None; n];
            tr.calls = vec![0; n];
            tr.armed = vec![false; n];
            tr.deadline = vec![None; n];
        }
        for (i, spec) in p.events.iter().enumerate() {
            let ends = t.borrow().ends.clone();
            let (fd, mut flags) = match spec.watch {
                Watch::Timer => (-1, Events::NONE),
                Watch::Read(e) => (ends[e % ends.len()], Events::READ),
                Watch::Write(e) => (ends[e % ends.len()], Events::WRITE),
                Watch::Signal(s) => (s, Events::SIGNAL),
            };
            if spec.persist {
                flags |= Events::PERSIST;
            }
            let (p3, t3) = (p.clone(), t.clone());
            match base.event_new(fd, flags, move |b, _, what| on_fire(b, &p3, &t3, i, what)) {
                Ok(id) => {
                    let _ = base.priority_set(id, spec.priority.min(p.priorities - 1));
                    t.borrow_mut().ids[i] = Some(id);
                }
                Err(e) => t.borrow_mut().failures.push(format!("event_new e{i}: {e}")),
            }
        }
        for &a in &p.setup {
            perform(base, &p, &t, a);
        }
    });
    for &(at, a) in &p.inputs {
        let t = t.clone();
        sim.at(Time(at), host, move |be| {
            let fd = |end: usize| {
                let tr = t.borrow();
                tr.ends[end % tr.ends.len()]
            };
            match a {
                Action::Write { end, n } => {
                    let _ = be.write(fd(end), &vec![b'i'; n]);
                }
                Action::Raise { sig } => {
                    let _ = be.raise(sig);
                }
                _ => {}
            }
        });
    }
    sim.run_until(HORIZON);
    let end = sim.now();
    let mut failures = std::mem::take(&mut t.borrow_mut().failures);
    if let HostStatus::Failed(e) = sim.status(host) {
        failures.push(format!("the loop failed: {e}"));
    }
    // No timer lost: an armed non-persistent timeout is still pending and not overdue (unless
    // the program was stopped by its callback budget).
    let stopped = matches!(
        sim.status(host),
        HostStatus::Exited(evloop::LoopExit::Done) | HostStatus::Failed(_)
    );
    let tr = t.borrow();
    for (i, d) in tr.deadline.iter().enumerate() {
        let (Some(d), Some(id)) = (d, tr.ids[i]) else {
            continue;
        };
        let base = sim.base(host);
        match base.pending(id, Events::TIMEOUT) {
            Ok((flags, Some(_))) if flags.contains(Events::TIMEOUT) => {
                // Waits round up to whole milliseconds: allow one. A stopped loop fires nothing.
                if !stopped && d.as_micros() + 1000 < end.as_micros() {
                    failures.push(format!(
                        "timer e{i} (deadline {}us) is overdue at the end ({}us)",
                        d.as_micros(),
                        end.as_micros()
                    ));
                }
            }
            _ => {
                if !stopped {
                    failures.push(format!(
                        "timer e{i} (deadline {}us) was lost",
                        d.as_micros()
                    ));
                }
            }
        }
    }
    drop(tr);
    RunReport {
        decisions: sim.decisions(),
        stats: sim.stats(),
        trace: sim.take_trace(),
        failures,
        end,
    }
}

/// The `programs` target: a random program per seed.
pub struct Programs;

impl Target for Programs {
    fn name(&self) -> &str {
        "programs"
    }
    fn about(&self) -> &str {
        "random event programs (timers, priorities, activations, adds, deletes, I/O, signals)"
    }
    fn run(&self, opts: &RunOptions) -> RunReport {
        // The program comes from its own stream of the seed, so the faults do not change it.
        let program = Program::generate(&mut SimRng::new(opts.seed ^ 0x005e_ed0f_9e09));
        let mut r = run_program(&program, &opts.sim_config(), opts.core_fault.as_deref());
        if let Err(e) = opts.check() {
            r.failures.insert(0, e);
        }
        r
    }
}
