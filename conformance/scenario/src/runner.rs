//! The Rust runner: interprets the conformance IR (IR.md) over `evloop::Base` on evloop's
//! backends, each wrapped in `VirtualTime`, and prints the trace (TRACE.md).
//!
//! It mirrors `player/player.c` instruction for instruction: the same setup order, the same
//! lines built with [`crate::trace::Line`], the same call counters, the same outside inputs
//! (`at` blocks, performed by `VirtualTime` through an [`Environment`]). The virtual clock rule
//! is `VirtualTime`'s, which is the player's rule (IR.md §6).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use evloop::backend::{
    AnyBackend, Environment, EpollBackend, MioBackend, PollBackend, Resolution, SelectBackend,
    Shutdown, VirtualTime,
};
use evloop::bufferevent::{SharedDataCb, SharedEventCb};
use evloop::{
    Backend, Base, BevEvents, BevOptions, BufferEvent, CommonTimeout, Config, Count, EventId,
    Events, Fd, FlushMode, LoopExit, LoopFlags, Time, Timeout, TriggerOptions,
};
use evloop::{Listener, ListenerOptions};

use crate::ir::Instr;
use crate::names;
use crate::trace::{Line, SysResult, TvArg, HEADER};

/// The evloop backends `evconform check` runs by default.
pub const EVLOOP_BACKENDS: &[&str] = &["epoll", "poll", "select", "mio"];

/// libevent's weak-RNG seed in the player: gettimeofday at base creation (1000 s + 0 µs) plus
/// the pinned pid 4242 (IR.md §7).
pub const PLAYER_WEAKRAND_SEED: u32 = 1000 + 4242;

/// The reactor fault every run of this process injects (test builds only, cargo feature
/// `test-faults`): `evconform fuzz --core-fault` is shown to catch a broken reactor.
#[cfg(feature = "test-faults")]
static CORE_FAULT: std::sync::Mutex<Option<evloop::CoreFault>> = std::sync::Mutex::new(None);

/// Makes every following run inject `fault` into its base (`None`: a correct reactor).
#[cfg(feature = "test-faults")]
#[doc(hidden)]
pub fn set_core_fault(fault: Option<evloop::CoreFault>) {
    *CORE_FAULT.lock().unwrap_or_else(|e| e.into_inner()) = fault;
}

/// The player's runaway guard, mirrored.
const MAX_CALLBACKS: u64 = 100_000;

// --------------------------------------------------------------------------------------------
// Hosts: what the runner needs from a backend besides the `Backend` trait

/// The outside world's operations that the `Backend` trait does not offer: a client that
/// connects to a listener. Scripted inputs (`at` blocks) run on this too.
pub trait OutsideWorld: Backend {
    /// A new TCP socket connected to `addr`, nonblocking. The C player connects with a blocking
    /// `connect(2)`, so over loopback the connection is in the listener's accept queue when this
    /// returns; a host must give the same guarantee (or document where it cannot).
    fn connect_client(&mut self, addr: SocketAddr) -> io::Result<Fd>;
}

impl OutsideWorld for AnyBackend {
    fn connect_client(&mut self, addr: SocketAddr) -> io::Result<Fd> {
        let s = TcpStream::connect(addr)?;
        s.set_nonblocking(true)?;
        Ok(s.into_raw_fd())
    }
}

impl<B: OutsideWorld> OutsideWorld for VirtualTime<B> {
    fn connect_client(&mut self, addr: SocketAddr) -> io::Result<Fd> {
        self.inner_mut().connect_client(addr)
    }
}

/// A backend the runner can drive a scenario on: created by name, with a virtual clock it can
/// move (`sleep`) and scripted outside inputs (`at` blocks). `VirtualTime<AnyBackend>` (real
/// sockets, virtual time) implements it here; evloop-sim implements it for its `SimBackend`
/// (the `sim` column, compared with the epoll fixtures, and the `scenario:` targets of `evsim`).
pub trait ScenarioHost: OutsideWorld + Sized + 'static {
    /// The backend the scripted inputs act on.
    type Inner: OutsideWorld + 'static;
    /// Opens backend `name` configured as the player's libevent would be (pinned weak-RNG
    /// seed); `precise_timer` is the base's PRECISE_TIMER flag (epoll then waits in µs).
    fn open(name: &str, precise_timer: bool) -> io::Result<Self>;
    /// Moves the virtual clock forward (a slow callback; nothing is performed).
    fn advance(&mut self, d: Duration);
    /// Installs the scripted outside inputs.
    fn set_inputs(&mut self, env: Box<dyn Environment<Self::Inner>>);
    /// The method a `print base` line shows for backend `name`.
    fn method_name(name: &str) -> &'static str;
    /// True if the host's signals are the process's (real ones): then scenarios run one at a
    /// time per process and the scenario's signals are ignored unless caught. A simulated host
    /// says false, so that many scenarios can run at once on several threads.
    const PROCESS_SIGNALS: bool = true;
    /// Called at the start of every event callback (before its `cb` line): lets a host check
    /// invariants of the reactor (the simulator checks callback priority order). Does nothing
    /// by default.
    fn on_event_callback(_base: &mut Base<Self>, _ev: EventId, _what: Events) {}
}

impl ScenarioHost for VirtualTime<AnyBackend> {
    type Inner = AnyBackend;
    fn open(name: &str, precise_timer: bool) -> io::Result<Self> {
        let inner = open_backend(name)?;
        let mut vt = VirtualTime::new(inner);
        if precise_timer && matches!(name, "epoll" | "mio") {
            // libevent's epoll waits on a timerfd with the exact timeval under PRECISE_TIMER.
            vt.set_resolution(Some(Resolution::Micros));
        }
        Ok(vt)
    }
    fn advance(&mut self, d: Duration) {
        VirtualTime::advance(self, d)
    }
    fn set_inputs(&mut self, env: Box<dyn Environment<AnyBackend>>) {
        self.set_environment(env)
    }
    fn method_name(name: &str) -> &'static str {
        method_name(name)
    }
}

/// The simulator's backend name (`evloop-sim`'s `SimBackend` implements [`ScenarioHost`]; the
/// `sim` column of `evconform check`, compared with the epoll fixtures).
pub const SIM_BACKEND: &str = "sim";

/// Opens `name` configured as the player's libevent would be (pinned weak-RNG seed).
fn open_backend(name: &str) -> io::Result<AnyBackend> {
    Ok(match name {
        "epoll" => AnyBackend::Epoll(EpollBackend::new()?),
        "poll" => AnyBackend::Poll(PollBackend::with_weakrand_seed(PLAYER_WEAKRAND_SEED)),
        "select" => AnyBackend::Select(SelectBackend::with_weakrand_seed(PLAYER_WEAKRAND_SEED)),
        "mio" => AnyBackend::Mio(MioBackend::new()?),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown evloop backend {other:?}"),
            ))
        }
    })
}

/// The method a `print base` line shows: the OS mechanism, as libevent names it. mio on Linux
/// is epoll underneath (TRACE.md).
fn method_name(backend: &str) -> &'static str {
    match backend {
        "poll" => "poll",
        "select" => "select",
        _ => "epoll",
    }
}

// --------------------------------------------------------------------------------------------
// The interpreter's state

struct BodyInfo {
    name: String,
    start: usize,
    count: usize,
    calls: Cell<u64>,
}

#[derive(Clone, Copy)]
struct Decl {
    arg: i64,
    flags: u16,
    prio: i64,
}

/// A bufferevent: its declaration and, while live, its handle.
struct BevSlot {
    name: String,
    /// Socket end id (-1: fd -1); unused for pairs.
    end: i64,
    opts: u32,
    /// The read body; write is `body + 1`, event `body + 2`.
    body: usize,
    is_pair: bool,
    handle: Option<BufferEvent>,
    /// A `trigger_event` with ERROR awaits its event callback, which prints `err=?`.
    trig_err: bool,
}

/// A listener: its declaration, its handle while live, the address it was bound to.
struct LevSlot {
    name: String,
    /// The end it listens on (-1: bound to 127.0.0.1 port 0).
    end: i64,
    opts: u32,
    body: usize,
    first_end: i64,
    nends: i64,
    next_end: i64,
    addr: Option<SocketAddr>,
    handle: Option<Listener>,
}

/// Everything the interpreter shares between the main program, callbacks and outside inputs.
struct Rt {
    code: Vec<Instr>,
    bodies: Vec<BodyInfo>,
    decls: RefCell<Vec<Option<Decl>>>,
    events: RefCell<Vec<Option<EventId>>>,
    ends: RefCell<Vec<(String, Fd)>>,
    /// Descriptors of ends handed to a CLOSE_ON_FREE bufferevent or listener: evloop closes
    /// them, so the cleanup at the end of the run must not.
    handed: RefCell<Vec<Fd>>,
    /// Events (by id) given a timeout since their `event_new`: libevent's `ev_timeout` of any
    /// other event is uninitialized memory, so `print` shows `deadline=?` (TRACE.md).
    tv_set: RefCell<Vec<i64>>,
    /// Every descriptor the interpreter opened for an end and did not close (socketpairs,
    /// accepted connections, clients), closed at the end of the run.
    opened: RefCell<Vec<Fd>>,
    commons: RefCell<Vec<(String, CommonTimeout)>>,
    bevs: RefCell<Vec<BevSlot>>,
    levs: RefCell<Vec<LevSlot>>,
    out: RefCell<String>,
    input: Cell<bool>,
    loop_depth: Cell<u32>,
    callbacks: Cell<u64>,
    runaway: Cell<bool>,
    /// The program ended: callbacks run by the cleanup do nothing.
    finished: Cell<bool>,
    method: &'static str,
}

impl Rt {
    fn line(&self, now: Time, l: Line<'_>) {
        let mut out = self.out.borrow_mut();
        out.push_str(&l.render(now.as_micros() as i64, self.input.get()));
        out.push('\n');
    }

    fn name(&self, id: i64) -> &str {
        &self.bodies[id as usize].name
    }

    fn end_name(&self, end: i64) -> String {
        self.ends.borrow()[end as usize].0.clone()
    }

    fn end_fd(&self, end: i64) -> Fd {
        self.ends.borrow()[end as usize].1
    }

    fn event(&self, id: i64) -> Option<EventId> {
        self.events.borrow()[id as usize]
    }

    fn bev_name(&self, id: i64) -> String {
        self.bevs.borrow()[id as usize].name.clone()
    }

    fn bev(&self, id: i64) -> Option<BufferEvent> {
        self.bevs.borrow()[id as usize].handle
    }

    fn lev_name(&self, id: i64) -> String {
        self.levs.borrow()[id as usize].name.clone()
    }

    /// The fd (or signal number) an event or once-event declaration refers to.
    fn target(&self, arg: i64, flags: u16) -> Fd {
        if flags & names::EV_SIGNAL != 0 {
            arg as Fd
        } else if arg < 0 {
            -1
        } else {
            self.end_fd(arg)
        }
    }

    /// Counts a callback; false (and a loopbreak) once the runaway guard trips.
    fn count_callback<H: Backend>(&self, base: &mut Base<H>) -> bool {
        if self.finished.get() {
            return false;
        }
        let n = self.callbacks.get() + 1;
        self.callbacks.set(n);
        if n > MAX_CALLBACKS {
            self.runaway.set(true);
            base.loopbreak();
            return false;
        }
        true
    }

    /// Increments body `id`'s call counter and returns the new count.
    fn next_call(&self, id: usize) -> u64 {
        let body = &self.bodies[id];
        let call = body.calls.get() + 1;
        body.calls.set(call);
        call
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc_eio())
}

const fn libc_eio() -> i32 {
    5
}

fn rc<T>(r: &Result<T, evloop::Error>) -> i32 {
    if r.is_ok() {
        0
    } else {
        -1
    }
}

fn tv_arg(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

/// Signals are process-wide: one scenario at a time per process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs one lowered scenario on evloop backend `backend` (real sockets under a virtual clock)
/// and returns its trace.
pub fn run_scenario(instrs: &[Instr], backend: &str) -> Result<String, String> {
    run_scenario_on::<VirtualTime<AnyBackend>>(instrs, backend)
}

/// Runs one lowered scenario on backend `backend` of host `H` and returns its trace.
pub fn run_scenario_on<H: ScenarioHost>(instrs: &[Instr], backend: &str) -> Result<String, String> {
    run_scenario_with(instrs, backend, |precise| H::open(backend, precise))
}

/// As [`run_scenario_on`], with the host made by `open` (given the base's PRECISE_TIMER flag)
/// instead of [`ScenarioHost::open`]: a host configured by the caller (the simulator's seed and
/// faults, for instance).
pub fn run_scenario_with<H: ScenarioHost>(
    instrs: &[Instr],
    backend: &str,
    open: impl FnOnce(bool) -> io::Result<H>,
) -> Result<String, String> {
    let _guard =
        H::PROCESS_SIGNALS.then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()));
    if H::PROCESS_SIGNALS {
        // As the player: the signals a scenario may raise are ignored unless a signal event
        // catches them, and SIGPIPE never kills the process. SIGCHLD stays at SIG_DFL, whose
        // action is already to ignore it: SIG_IGN would also make the kernel reap child
        // processes, and `evconform fuzz` waits for its player processes in this process.
        for &(_, sig) in names::SIGNALS.iter().filter(|(_, s)| *s != 17) {
            evloop::backend::sys::ignore_signal(sig).map_err(|e| format!("SIG_IGN {sig}: {e}"))?;
        }
        evloop::backend::sys::ignore_signal(13).map_err(|e| format!("SIG_IGN SIGPIPE: {e}"))?;
    }
    let main_at = instrs
        .iter()
        .position(|i| matches!(i, Instr::Main { .. }))
        .ok_or("the IR has no main directive")?;
    let Some(Instr::Base {
        flags,
        max_interval,
        max_callbacks,
        min_priority,
        priorities,
    }) = instrs.first().cloned()
    else {
        return Err("the IR must start with base".into());
    };

    let precise = flags as u32 & names::BASE_PRECISE_TIMER != 0;
    let host = open(precise).map_err(|e| format!("{backend}: {e}"))?;
    let mut cfg = Config {
        no_cache_time: flags as u32 & names::BASE_NO_CACHE_TIME != 0,
        precise_timer: precise,
        ..Config::default()
    };
    if max_interval >= 0 || max_callbacks >= 0 {
        cfg.max_dispatch_interval = (max_interval >= 0).then(|| tv_arg(max_interval));
        cfg.max_dispatch_callbacks = (max_callbacks >= 0).then_some(max_callbacks as u32);
        cfg.limit_callbacks_after_prio = min_priority.max(0) as u32;
    }
    let mut base: Base<H> = Base::with_config(host, &cfg);
    #[cfg(feature = "test-faults")]
    base.set_fault_injection(*CORE_FAULT.lock().unwrap_or_else(|e| e.into_inner()));
    base.priority_init(priorities as usize)
        .map_err(|e| format!("priority_init({priorities}): {e}"))?;

    // Directives: bodies first (they are numbered), then the rest in order.
    let mut bodies = Vec::new();
    for ins in &instrs[1..main_at] {
        if let Instr::Body {
            name, start, count, ..
        } = ins
        {
            bodies.push(BodyInfo {
                name: name.clone(),
                start: *start as usize,
                count: *count as usize,
                calls: Cell::new(0),
            });
        }
    }
    let rt = Rc::new(Rt {
        code: instrs.to_vec(),
        decls: RefCell::new(vec![None; bodies.len()]),
        events: RefCell::new(vec![None; bodies.len()]),
        bodies,
        ends: RefCell::new(Vec::new()),
        handed: RefCell::new(Vec::new()),
        tv_set: RefCell::new(Vec::new()),
        opened: RefCell::new(Vec::new()),
        commons: RefCell::new(Vec::new()),
        bevs: RefCell::new(Vec::new()),
        levs: RefCell::new(Vec::new()),
        out: RefCell::new(format!("{HEADER}\n")),
        input: Cell::new(false),
        loop_depth: Cell::new(0),
        callbacks: Cell::new(0),
        runaway: Cell::new(false),
        finished: Cell::new(false),
        method: H::method_name(backend),
    });
    // Setup, then main; whatever happens, the cleanup below runs (no descriptor may leak
    // from this long-lived process).
    let played = (|| -> Result<(), String> {
        // The remaining directives, top to bottom, as the player performs them.
        let mut ats: Vec<(i64, usize, usize)> = Vec::new();
        for ins in &instrs[1..main_at] {
            let now = base.backend_mut().now();
            match ins {
                Instr::Body { .. } => {}
                Instr::Pair { name_a, name_b, .. } => {
                    let (a, b) = base
                        .backend_mut()
                        .socketpair()
                        .map_err(|e| format!("socketpair: {e}"))?;
                    rt.opened.borrow_mut().extend([a, b]);
                    let mut ends = rt.ends.borrow_mut();
                    ends.push((name_a.clone(), a));
                    ends.push((name_b.clone(), b));
                }
                Instr::End { name, .. } => rt.ends.borrow_mut().push((name.clone(), -1)),
                Instr::Event {
                    id,
                    arg,
                    flags,
                    prio,
                } => {
                    rt.decls.borrow_mut()[*id as usize] = Some(Decl {
                        arg: *arg,
                        flags: *flags as u16,
                        prio: *prio,
                    });
                    let e = new_event(&rt, &mut base, *id)?;
                    if *prio >= 0 && base.priority_set(e, *prio as usize).is_err() {
                        rt.line(
                            now,
                            Line::PrioritySet {
                                ev: rt.name(*id),
                                prio: *prio,
                                rc: -1,
                            },
                        );
                    }
                }
                Instr::Common { usec, name, .. } => {
                    let c = base
                        .init_common_timeout(tv_arg(*usec))
                        .map_err(|e| format!("common {name}: {e}"))?;
                    rt.commons.borrow_mut().push((name.clone(), c));
                    rt.line(
                        now,
                        Line::Common {
                            name,
                            idx: i64::from(c.index()),
                        },
                    );
                }
                Instr::BevPair {
                    a,
                    opts,
                    body_a,
                    body_b,
                    name_a,
                    name_b,
                    ..
                } => {
                    let (x, y) =
                        BufferEvent::pair_new(&mut base, BevOptions::from_bits(*opts as u32))
                            .map_err(|e| format!("pair_new: {e}"))?;
                    for (k, (h, body, name)) in [(x, body_a, name_a), (y, body_b, name_b)]
                        .into_iter()
                        .enumerate()
                    {
                        rt.bevs.borrow_mut().push(BevSlot {
                            name: name.clone(),
                            end: -1,
                            opts: *opts as u32,
                            body: *body as usize,
                            is_pair: true,
                            trig_err: false,
                            handle: Some(h),
                        });
                        set_bev_callbacks(&rt, &mut base, a + k as i64, 7);
                    }
                }
                Instr::BevSocket {
                    end,
                    opts,
                    body,
                    create,
                    name,
                    id,
                } => {
                    rt.bevs.borrow_mut().push(BevSlot {
                        name: name.clone(),
                        end: *end,
                        opts: *opts as u32,
                        body: *body as usize,
                        is_pair: false,
                        trig_err: false,
                        handle: None,
                    });
                    if *create != 0 {
                        make_socket_bev(&rt, &mut base, *id)
                            .map_err(|e| format!("socket_new {name}: {e}"))?;
                    }
                }
                Instr::Listener {
                    id,
                    end,
                    opts,
                    backlog,
                    body,
                    first_end,
                    nends,
                    name,
                } => {
                    let options = ListenerOptions::from_bits(*opts as u32);
                    let r = rt.clone();
                    let lid = *id;
                    let accept: evloop::listener::AcceptCb<H> =
                        Box::new(move |b, _, fd, _| on_accept(&r, b, lid, fd));
                    let (l, addr) = if *end >= 0 {
                        let fd = rt.end_fd(*end);
                        let l = Listener::new(&mut base, fd, options, Some(accept))
                            .map_err(|e| format!("listener {name}: {e}"))?;
                        if fd >= 0 && *opts as u32 & names::LEV_OPT_CLOSE_ON_FREE != 0 {
                            rt.handed.borrow_mut().push(fd);
                        }
                        (l, None)
                    } else {
                        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
                        let l =
                            Listener::bind(&mut base, any, options, *backlog as i32, Some(accept))
                                .map_err(|e| format!("listener {name}: {e}"))?;
                        let addr = l
                            .local_addr(&mut base)
                            .map_err(|e| format!("listener {name}: {e}"))?;
                        (l, Some(addr))
                    };
                    let r = rt.clone();
                    let lid = *id;
                    l.set_error_cb(&mut base, move |b, _, e| on_accept_error(&r, b, lid, &e))
                        .map_err(|e| format!("listener {name}: {e}"))?;
                    rt.levs.borrow_mut().push(LevSlot {
                        name: name.clone(),
                        end: *end,
                        opts: *opts as u32,
                        body: *body as usize,
                        first_end: *first_end,
                        nends: *nends,
                        next_end: *first_end,
                        addr,
                        handle: Some(l),
                    });
                }
                Instr::At { time, start, count } => {
                    ats.push((*time, *start as usize, *count as usize))
                }
                other => return Err(format!("unexpected directive {other:?}")),
            }
        }
        ats.sort_by_key(|a| a.0); // stable: ties keep IR order
        base.backend_mut().set_inputs(Box::new(Inputs {
            rt: rt.clone(),
            ats,
            next: 0,
        }));

        let Instr::Main { start, count } = instrs[main_at] else {
            unreachable!("found above");
        };
        run_range(&rt, &mut base, start as usize, count as usize, 0);
        let now = base.backend_mut().now();
        rt.line(now, Line::End);
        Ok(())
    })();
    // As the player: free what is left (prints nothing), then the base.
    let out = rt.out.borrow().clone();
    let bevs: Vec<BufferEvent> = rt.bevs.borrow().iter().filter_map(|b| b.handle).collect();
    for b in bevs {
        let _ = b.free(&mut base);
    }
    let levs: Vec<Listener> = rt.levs.borrow().iter().filter_map(|l| l.handle).collect();
    for l in levs {
        let _ = l.free(&mut base);
    }
    // Freed bufferevents close their sockets in finalizer callbacks, which only a loop runs
    // (libevent's event_base_free runs them too): delete every event, mute the callbacks, and
    // let one nonblocking loop run what is still active. Nothing of it reaches the trace.
    rt.finished.set(true);
    let evs: Vec<EventId> = rt.events.borrow().iter().flatten().copied().collect();
    for e in evs {
        let _ = base.del(e);
    }
    let _ = base.run(LoopFlags::NONBLOCK);
    // The player's process exit closes its descriptors; this process lives on (`evconform
    // fuzz` runs thousands of scenarios), so close the ends the scenario left open, except
    // those a CLOSE_ON_FREE bufferevent or listener owns.
    let mut open: Vec<Fd> = rt
        .opened
        .borrow()
        .iter()
        .copied()
        .filter(|fd| *fd >= 0 && !rt.handed.borrow().contains(fd))
        .collect();
    open.sort_unstable();
    open.dedup();
    for fd in open {
        let _ = base.backend_mut().close(fd);
    }
    drop(base);
    played?;
    if rt.runaway.get() {
        return Err(format!(
            "more than {MAX_CALLBACKS} callbacks: runaway scenario"
        ));
    }
    Ok(out)
}

fn new_event<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, id: i64) -> Result<EventId, String> {
    let d = rt.decls.borrow()[id as usize].ok_or_else(|| format!("body {id} is not an event"))?;
    let fd = rt.target(d.arg, d.flags);
    let r = rt.clone();
    let e = base
        .event_new(fd, Events::from_bits(d.flags), move |b, ev, what| {
            H::on_event_callback(b, ev, what);
            on_event(&r, b, id, what)
        })
        .map_err(|e| format!("event_new {}: {e}", rt.name(id)))?;
    rt.events.borrow_mut()[id as usize] = Some(e);
    rt.tv_set.borrow_mut().retain(|x| *x != id);
    Ok(e)
}

fn on_event<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, id: i64, what: Events) {
    if !rt.count_callback(base) {
        return;
    }
    let call = rt.next_call(id as usize);
    let body = &rt.bodies[id as usize];
    let now = base.backend_mut().now();
    rt.line(
        now,
        Line::Cb {
            name: &body.name,
            call,
            what: what.bits(),
        },
    );
    run_range(rt, base, body.start, body.count, call);
}

/// `bufferevent_socket_new` for the declaration of socket bufferevent `id`, with all three
/// callbacks.
fn make_socket_bev<H: ScenarioHost>(
    rt: &Rc<Rt>,
    base: &mut Base<H>,
    id: i64,
) -> Result<(), evloop::Error> {
    let (end, opts) = {
        let b = &rt.bevs.borrow()[id as usize];
        (b.end, b.opts)
    };
    let fd = if end < 0 { -1 } else { rt.end_fd(end) };
    let h = BufferEvent::socket_new(base, fd, BevOptions::from_bits(opts))?;
    if fd >= 0 && opts & names::BEV_OPT_CLOSE_ON_FREE != 0 {
        rt.handed.borrow_mut().push(fd);
    }
    rt.bevs.borrow_mut()[id as usize].handle = Some(h);
    set_bev_callbacks(rt, base, id, 7);
    Ok(())
}

/// `bufferevent_setcb` with the tracing callbacks named by `bits` (read 1, write 2, event 4).
/// They are shared closures, which evloop lets a synchronous trigger re-enter, as libevent does.
fn set_bev_callbacks<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, id: i64, bits: u8) {
    let Some(h) = rt.bev(id) else {
        return;
    };
    let (r1, r2, r3) = (rt.clone(), rt.clone(), rt.clone());
    let readcb: Option<SharedDataCb<H>> = (bits & 1 != 0)
        .then(|| Rc::new(move |b: &mut Base<H>, x| on_bev(&r1, b, id, x, 0, None)) as _);
    let writecb: Option<SharedDataCb<H>> = (bits & 2 != 0)
        .then(|| Rc::new(move |b: &mut Base<H>, x| on_bev(&r2, b, id, x, 1, None)) as _);
    let eventcb: Option<SharedEventCb<H>> = (bits & 4 != 0).then(|| {
        Rc::new(move |b: &mut Base<H>, x, what: BevEvents| on_bev(&r3, b, id, x, 2, Some(what)))
            as _
    });
    let _ = h.setcb_shared(base, readcb, writecb, eventcb);
}

fn bev_lens<H: Backend>(base: &Base<H>, h: BufferEvent) -> (usize, usize) {
    (
        h.input(base).map_or(0, |b| b.len()),
        h.output(base).map_or(0, |b| b.len()),
    )
}

/// A bufferevent callback: kind 0 read, 1 write, 2 event.
fn on_bev<H: ScenarioHost>(
    rt: &Rc<Rt>,
    base: &mut Base<H>,
    id: i64,
    h: BufferEvent,
    kind: usize,
    what: Option<BevEvents>,
) {
    if !rt.count_callback(base) {
        return;
    }
    let body_id = rt.bevs.borrow()[id as usize].body + kind;
    let call = rt.next_call(body_id);
    let body = &rt.bodies[body_id];
    let (input, output) = bev_lens(base, h);
    let err = match what {
        Some(w) if w.contains(BevEvents::ERROR) && rt.bevs.borrow()[id as usize].trig_err => {
            rt.bevs.borrow_mut()[id as usize].trig_err = false;
            Some(-1)
        }
        Some(w) if w.contains(BevEvents::ERROR) => Some(
            h.error(base)
                .ok()
                .flatten()
                .and_then(|e| e.raw_os_error())
                .unwrap_or(0),
        ),
        _ => None,
    };
    let now = base.backend_mut().now();
    rt.line(
        now,
        Line::BevCb {
            name: &body.name,
            call,
            what: what.map(|w| w.bits()),
            err,
            input,
            output,
        },
    );
    run_range(rt, base, body.start, body.count, call);
}

fn on_accept<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, id: i64, fd: Fd) {
    if !rt.count_callback(base) {
        let _ = base.backend_mut().close(fd);
        return;
    }
    let (body_id, slot) = {
        let mut levs = rt.levs.borrow_mut();
        let l = &mut levs[id as usize];
        let slot = (l.next_end < l.first_end + l.nends).then_some(l.next_end);
        if slot.is_some() {
            l.next_end += 1;
        }
        (l.body, slot)
    };
    let end_name = match slot {
        Some(e) => {
            rt.ends.borrow_mut()[e as usize].1 = fd;
            rt.opened.borrow_mut().push(fd);
            Some(rt.end_name(e))
        }
        None => {
            let _ = base.backend_mut().close(fd);
            None
        }
    };
    let call = rt.next_call(body_id);
    let body = &rt.bodies[body_id];
    let now = base.backend_mut().now();
    rt.line(
        now,
        Line::AcceptCb {
            name: &body.name,
            call,
            end: end_name.as_deref(),
        },
    );
    run_range(rt, base, body.start, body.count, call);
}

fn on_accept_error<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, id: i64, e: &io::Error) {
    if !rt.count_callback(base) {
        return;
    }
    let body_id = rt.levs.borrow()[id as usize].body + 1;
    let call = rt.next_call(body_id);
    let body = &rt.bodies[body_id];
    let now = base.backend_mut().now();
    rt.line(
        now,
        Line::ErrorCb {
            name: &body.name,
            call,
            err: errno(e),
        },
    );
    run_range(rt, base, body.start, body.count, call);
}

fn run_range<H: ScenarioHost>(
    rt: &Rc<Rt>,
    base: &mut Base<H>,
    start: usize,
    count: usize,
    call: u64,
) {
    let mut pc = start;
    while pc < start + count {
        if rt.runaway.get() {
            return;
        }
        let ins = &rt.code[pc];
        if let Instr::IfCall { lo, hi, skip } = *ins {
            let call = call as i64;
            if call < lo || (hi >= 0 && call > hi) {
                pc += skip as usize;
            }
        } else {
            exec(rt, base, ins);
        }
        pc += 1;
    }
}

/// The outside inputs: `at` blocks, performed when the virtual clock reaches them.
struct Inputs {
    rt: Rc<Rt>,
    ats: Vec<(i64, usize, usize)>,
    next: usize,
}

impl<W: OutsideWorld> Environment<W> for Inputs {
    fn next_input(&self) -> Option<Time> {
        self.ats.get(self.next).map(|a| Time(a.0.max(0) as u64))
    }
    fn fire(&mut self, now: Time, backend: &mut W) {
        while let Some(&(t, start, count)) = self.ats.get(self.next) {
            if t.max(0) as u64 > now.as_micros() {
                break;
            }
            self.next += 1;
            self.rt.input.set(true);
            for ins in &self.rt.code[start..start + count] {
                if !exec_io(&self.rt, backend, now, ins) {
                    // The language allows only outside-world actions in `at` blocks.
                    self.rt.out.borrow_mut().push_str("# unsupported input\n");
                }
            }
            self.rt.input.set(false);
        }
    }
}

fn sys<T: TryInto<i64>>(r: io::Result<T>) -> SysResult {
    match r {
        Ok(v) => Ok(v.try_into().unwrap_or(i64::MAX)),
        Err(e) => Err(errno(&e)),
    }
}

/// The socket and signal actions, which outside inputs may perform too. Returns false for any
/// other instruction.
fn exec_io(rt: &Rt, be: &mut dyn OutsideWorld, now: Time, ins: &Instr) -> bool {
    match ins {
        Instr::ClientConnect { end, lev } => {
            let addr = rt.levs.borrow()[*lev as usize].addr;
            let r = match addr {
                Some(a) => be.connect_client(a),
                None => Err(io::Error::from_raw_os_error(22)),
            };
            let res = match r {
                Ok(fd) => {
                    rt.ends.borrow_mut()[*end as usize].1 = fd;
                    rt.opened.borrow_mut().push(fd);
                    Ok(0)
                }
                Err(e) => Err(errno(&e)),
            };
            rt.line(
                now,
                Line::ClientConnect {
                    end: &rt.end_name(*end),
                    lev: &rt.lev_name(*lev),
                    res,
                },
            );
        }
        Instr::Write { end, data } => {
            let r = sys(be.write(rt.end_fd(*end), data));
            rt.line(
                now,
                Line::Write {
                    end: &rt.end_name(*end),
                    res: r,
                },
            );
        }
        Instr::WriteFill { end, count } => {
            let buf: Vec<u8> = (0..*count).map(|i| b'a' + (i % 26) as u8).collect();
            let r = sys(be.write(rt.end_fd(*end), &buf));
            rt.line(
                now,
                Line::Write {
                    end: &rt.end_name(*end),
                    res: r,
                },
            );
        }
        Instr::Read { end, max } => {
            let mut buf = vec![0u8; (*max).max(0) as usize];
            let name = rt.end_name(*end);
            match be.read(rt.end_fd(*end), &mut buf) {
                Ok(n) => rt.line(
                    now,
                    Line::Read {
                        end: &name,
                        res: Ok(&buf[..n]),
                    },
                ),
                Err(e) => rt.line(
                    now,
                    Line::Read {
                        end: &name,
                        res: Err(errno(&e)),
                    },
                ),
            }
        }
        Instr::Drain { end, show } => {
            let mut buf = [0u8; 4096];
            let mut total = 0u64;
            let fd = rt.end_fd(*end);
            let stop = loop {
                match be.read(fd, &mut buf) {
                    Ok(0) => break None,
                    Ok(n) => total += n as u64,
                    Err(e) => break Some(errno(&e)),
                }
            };
            let n = (*show != 0).then_some(total);
            rt.line(
                now,
                Line::Drain {
                    end: &rt.end_name(*end),
                    n,
                    stop,
                },
            );
        }
        Instr::Fill { end } => {
            let buf = [b'f'; 4096];
            let fd = rt.end_fd(*end);
            let stop = loop {
                match be.write(fd, &buf) {
                    Ok(n) if n > 0 => {}
                    Ok(_) => break 0,
                    Err(e) => break errno(&e),
                }
            };
            rt.line(
                now,
                Line::Fill {
                    end: &rt.end_name(*end),
                    stop,
                },
            );
        }
        Instr::Shutdown { end, how } => {
            let h = match how {
                0 => Shutdown::Read,
                1 => Shutdown::Write,
                _ => Shutdown::Both,
            };
            let r = sys(be.shutdown(rt.end_fd(*end), h).map(|()| 0));
            rt.line(
                now,
                Line::Shutdown {
                    end: &rt.end_name(*end),
                    how: *how,
                    res: r,
                },
            );
        }
        Instr::Close { end } => {
            let fd = rt.end_fd(*end);
            let r = sys(be.close(fd).map(|()| 0));
            if r.is_ok() {
                rt.ends.borrow_mut()[*end as usize].1 = -1;
                let mut opened = rt.opened.borrow_mut();
                if let Some(i) = opened.iter().position(|f| *f == fd) {
                    opened.swap_remove(i);
                }
            }
            rt.line(
                now,
                Line::Close {
                    end: &rt.end_name(*end),
                    res: r,
                },
            );
        }
        Instr::Raise { sig, count } => {
            rt.line(
                now,
                Line::Raise {
                    sig: *sig as i32,
                    count: *count,
                },
            );
            for _ in 0..*count {
                let _ = be.raise(*sig as i32);
            }
        }
        _ => return false,
    }
    true
}

fn exec<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, ins: &Instr) {
    let now = base.backend_mut().now();
    // Operations on a freed event print `OP NAME dead` and do nothing else.
    let live = |op: &str, ev: i64| -> Option<EventId> {
        let e = rt.event(ev);
        if e.is_none() {
            rt.line(
                now,
                Line::Dead {
                    op,
                    ev: rt.name(ev),
                },
            );
        }
        e
    };
    match ins {
        Instr::Add { ev } => {
            if let Some(e) = live("add", *ev) {
                let r = base.add(e, None);
                rt.line(
                    now,
                    Line::Add {
                        ev: rt.name(*ev),
                        tv: TvArg::Null,
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::AddTv { ev, us } => {
            if let Some(e) = live("add", *ev) {
                let r = base.add(e, Some(tv_arg(*us)));
                if r.is_ok() {
                    rt.tv_set.borrow_mut().push(*ev);
                }
                rt.line(
                    now,
                    Line::Add {
                        ev: rt.name(*ev),
                        tv: TvArg::Tv(*us),
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::AddCommon { ev, common } => {
            if let Some(e) = live("add", *ev) {
                let (cname, c) = rt.commons.borrow()[*common as usize].clone();
                let r = base.add_with(e, Some(Timeout::Common(c)));
                if r.is_ok() {
                    rt.tv_set.borrow_mut().push(*ev);
                }
                rt.line(
                    now,
                    Line::Add {
                        ev: rt.name(*ev),
                        tv: TvArg::Common(&cname),
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::Del { ev } => {
            if let Some(e) = live("del", *ev) {
                let r = base.del(e);
                rt.line(
                    now,
                    Line::Del {
                        ev: rt.name(*ev),
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::Active { ev, res, ncalls } => {
            if let Some(e) = live("active", *ev) {
                rt.line(
                    now,
                    Line::Active {
                        ev: rt.name(*ev),
                        res: *res as u16,
                        ncalls: *ncalls,
                    },
                );
                let _ = base.active(e, Events::from_bits(*res as u16), *ncalls as u16);
            }
        }
        Instr::PrioritySet { ev, prio } => {
            if let Some(e) = live("priority_set", *ev) {
                let r = if *prio < 0 {
                    Err(evloop::Error::Invalid("negative priority"))
                } else {
                    base.priority_set(e, *prio as usize)
                };
                rt.line(
                    now,
                    Line::PrioritySet {
                        ev: rt.name(*ev),
                        prio: *prio,
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::RemoveTimer { ev } => {
            if let Some(e) = live("remove_timer", *ev) {
                let r = base.remove_timer(e);
                rt.line(
                    now,
                    Line::RemoveTimer {
                        ev: rt.name(*ev),
                        rc: rc(&r),
                    },
                );
            }
        }
        Instr::Once { body, arg, events }
        | Instr::OnceTv {
            body, arg, events, ..
        } => {
            let us = match ins {
                Instr::OnceTv { us, .. } => Some(*us),
                _ => None,
            };
            let fd = rt.target(*arg, *events as u16);
            let r2 = rt.clone();
            let id = *body;
            let r = base.once(
                fd,
                Events::from_bits(*events as u16),
                us.map(tv_arg),
                move |b, w| on_event(&r2, b, id, w),
            );
            let tv = us.map_or(TvArg::Null, TvArg::Tv);
            rt.line(
                now,
                Line::Once {
                    name: rt.name(*body),
                    events: *events as u16,
                    tv,
                    rc: rc(&r),
                },
            );
        }
        Instr::Loopexit => {
            let r = base.loopexit(None);
            rt.line(
                now,
                Line::Loopexit {
                    tv: TvArg::Null,
                    rc: rc(&r),
                },
            );
        }
        Instr::LoopexitTv { us } => {
            let r = base.loopexit(Some(tv_arg(*us)));
            rt.line(
                now,
                Line::Loopexit {
                    tv: TvArg::Tv(*us),
                    rc: rc(&r),
                },
            );
        }
        Instr::Loopbreak => {
            base.loopbreak();
            rt.line(now, Line::Loopbreak { rc: 0 });
        }
        Instr::Loopcontinue => {
            base.loopcontinue();
            rt.line(now, Line::Loopcontinue { rc: 0 });
        }
        Instr::Free { ev } => {
            if let Some(e) = live("free", *ev) {
                let _ = base.free(e);
                rt.events.borrow_mut()[*ev as usize] = None;
                rt.line(now, Line::Free { ev: rt.name(*ev) });
            }
        }
        Instr::New { ev } => {
            if rt.event(*ev).is_some() {
                rt.line(now, Line::Live { ev: rt.name(*ev) });
            } else {
                match new_event(rt, base, *ev) {
                    Ok(e) => {
                        let prio = rt.decls.borrow()[*ev as usize].map_or(-1, |d| d.prio);
                        let r = if prio >= 0 {
                            rc(&base.priority_set(e, prio as usize))
                        } else {
                            0
                        };
                        rt.line(
                            now,
                            Line::New {
                                ev: rt.name(*ev),
                                rc: r,
                            },
                        );
                    }
                    Err(msg) => rt.out.borrow_mut().push_str(&format!("# {msg}\n")),
                }
            }
        }
        Instr::PrintEvent { ev } => {
            if let Some(e) = live("pending", *ev) {
                let ask = Events::TIMEOUT
                    | Events::READ
                    | Events::WRITE
                    | Events::SIGNAL
                    | Events::CLOSED;
                let (f, deadline) = base.pending(e, ask).unwrap_or((Events::NONE, None));
                let prio = base.priority(e).map_or(-1, |p| p as i64);
                rt.line(
                    now,
                    Line::Pending {
                        ev: rt.name(*ev),
                        flags: f.bits(),
                        deadline: deadline.map(|t| {
                            if rt.tv_set.borrow().contains(ev) {
                                Some(t.as_micros() as i64)
                            } else {
                                None
                            }
                        }),
                        prio,
                    },
                );
            }
        }
        Instr::PrintCounts => {
            let added = base.num_events(Count::Added) as i64;
            let active = base.num_events(Count::Active) as i64;
            rt.line(now, Line::Counts { added, active });
        }
        Instr::PrintLoop => {
            rt.line(
                now,
                Line::Got {
                    exit: base.got_exit(),
                    brk: base.got_break(),
                },
            );
        }
        Instr::PrintBase => {
            let f = base.features();
            let features = u32::from(f.edge_triggered)
                | u32::from(f.o1) << 1
                | u32::from(f.fds) << 2
                | u32::from(f.early_close) << 3;
            rt.line(
                now,
                Line::Base {
                    method: rt.method,
                    features,
                    priorities: base.npriorities() as i64,
                },
            );
        }
        Instr::PrintTime => {
            let cached = base.now().as_micros() as i64;
            rt.line(now, Line::Time { cached });
        }
        Instr::Loop { flags } => {
            rt.line(
                now,
                Line::Loop {
                    flags: *flags as u32,
                },
            );
            let mut lf = LoopFlags::NONE;
            for (bit, f) in [
                (names::EVLOOP_ONCE, LoopFlags::ONCE),
                (names::EVLOOP_NONBLOCK, LoopFlags::NONBLOCK),
                (names::EVLOOP_NO_EXIT_ON_EMPTY, LoopFlags::NO_EXIT_ON_EMPTY),
            ] {
                if *flags as u32 & bit != 0 {
                    lf = lf | f;
                }
            }
            rt.loop_depth.set(rt.loop_depth.get() + 1);
            let r = base.run(lf);
            rt.loop_depth.set(rt.loop_depth.get() - 1);
            let end = base.backend_mut().now();
            let code = match r {
                Ok(LoopExit::Done) => 0,
                Ok(LoopExit::NoEvents) => 1,
                Err(evloop::Error::Io(e)) if is_blocked_forever(&e) => {
                    rt.line(end, Line::BlockedForever);
                    -1
                }
                Err(_) => -1,
            };
            rt.line(end, Line::LoopEnd { rc: code });
        }
        Instr::PriorityInit { n } => {
            let r = if *n < 0 {
                Err(evloop::Error::Invalid("negative"))
            } else {
                base.priority_init(*n as usize)
            };
            rt.line(now, Line::PriorityInit { n: *n, rc: rc(&r) });
        }
        Instr::Sleep { us } => {
            rt.line(now, Line::Sleep { us: *us });
            base.backend_mut().advance(tv_arg(*us));
        }
        Instr::BevWrite { .. }
        | Instr::BevWriteFill { .. }
        | Instr::BevRead { .. }
        | Instr::BevDrain { .. }
        | Instr::BevEnable { .. }
        | Instr::BevDisable { .. }
        | Instr::BevWatermark { .. }
        | Instr::BevTimeouts { .. }
        | Instr::BevFlush { .. }
        | Instr::BevFree { .. }
        | Instr::BevNew { .. }
        | Instr::BevConnect { .. }
        | Instr::BevTrigger { .. }
        | Instr::BevTriggerEvent { .. }
        | Instr::BevSetcb { .. }
        | Instr::BevPrint { .. } => exec_bev(rt, base, now, ins),
        Instr::LevEnable { .. } | Instr::LevDisable { .. } | Instr::LevFree { .. } => {
            exec_lev(rt, base, now, ins)
        }
        other => {
            if !exec_io(rt, base.backend_mut(), now, other) {
                rt.out
                    .borrow_mut()
                    .push_str(&format!("# cannot execute {other:?}\n"));
            }
        }
    }
}

/// The bufferevent instructions.
fn exec_bev<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, now: Time, ins: &Instr) {
    let (id, op) = match ins {
        Instr::BevWrite { bev, .. } | Instr::BevWriteFill { bev, .. } => (*bev, "write"),
        Instr::BevRead { bev, .. } => (*bev, "read"),
        Instr::BevDrain { bev, .. } => (*bev, "drain"),
        Instr::BevEnable { bev, .. } => (*bev, "enable"),
        Instr::BevDisable { bev, .. } => (*bev, "disable"),
        Instr::BevWatermark { bev, .. } => (*bev, "watermark"),
        Instr::BevTimeouts { bev, .. } => (*bev, "timeouts"),
        Instr::BevFlush { bev, .. } => (*bev, "flush"),
        Instr::BevFree { bev } => (*bev, "free"),
        Instr::BevNew { bev } => (*bev, "new"),
        Instr::BevConnect { bev, .. } => (*bev, "connect"),
        Instr::BevTrigger { bev, .. } => (*bev, "trigger"),
        Instr::BevTriggerEvent { bev, .. } => (*bev, "trigger_event"),
        Instr::BevSetcb { bev, .. } => (*bev, "setcb"),
        Instr::BevPrint { bev } => (*bev, "bev"),
        _ => return,
    };
    let name = rt.bev_name(id);
    if let Instr::BevNew { .. } = ins {
        if rt.bev(id).is_some() {
            rt.line(now, Line::Live { ev: &name });
        } else {
            let rc = rc(&make_socket_bev(rt, base, id));
            rt.line(now, Line::New { ev: &name, rc });
        }
        return;
    }
    let Some(h) = rt.bev(id) else {
        rt.line(now, Line::Dead { op, ev: &name });
        return;
    };
    match ins {
        Instr::BevWrite { .. } | Instr::BevWriteFill { .. } => {
            let data: Vec<u8> = match ins {
                Instr::BevWrite { data, .. } => data.clone(),
                Instr::BevWriteFill { count, .. } => {
                    (0..*count).map(|i| b'a' + (i % 26) as u8).collect()
                }
                _ => unreachable!(),
            };
            let r = h.write(base, &data);
            let (input, output) = bev_lens(base, h);
            rt.line(
                now,
                Line::BevWrite {
                    bev: &name,
                    n: data.len(),
                    rc: rc(&r),
                    input,
                    output,
                },
            );
        }
        Instr::BevRead { max, .. } => {
            let mut buf = vec![0u8; (*max).max(0) as usize];
            let n = h.read(base, &mut buf).unwrap_or(0);
            let (input, output) = bev_lens(base, h);
            rt.line(
                now,
                Line::BevRead {
                    bev: &name,
                    data: &buf[..n],
                    input,
                    output,
                },
            );
        }
        Instr::BevDrain { n, .. } => {
            let n = if *n < 0 {
                bev_lens(base, h).0
            } else {
                *n as usize
            };
            let r = h.drain(base, n);
            let (input, output) = bev_lens(base, h);
            rt.line(
                now,
                Line::BevDrain {
                    bev: &name,
                    n,
                    rc: rc(&r),
                    input,
                    output,
                },
            );
        }
        Instr::BevEnable { flags, .. } | Instr::BevDisable { flags, .. } => {
            let disable = matches!(ins, Instr::BevDisable { .. });
            let ev = Events::from_bits(*flags as u16);
            let r = if disable {
                h.disable(base, ev)
            } else {
                h.enable(base, ev)
            };
            rt.line(
                now,
                Line::BevEnable {
                    bev: &name,
                    disable,
                    flags: *flags as u16,
                    rc: rc(&r),
                },
            );
        }
        Instr::BevWatermark {
            flags, low, high, ..
        } => {
            let _ = h.setwatermark(
                base,
                Events::from_bits(*flags as u16),
                (*low).max(0) as usize,
                (*high).max(0) as usize,
            );
            rt.line(
                now,
                Line::BevWatermark {
                    bev: &name,
                    flags: *flags as u16,
                    low: *low,
                    high: *high,
                },
            );
        }
        Instr::BevTimeouts {
            read_us, write_us, ..
        } => {
            let t = |us: i64| (us > 0).then(|| tv_arg(us));
            let r = h.set_timeouts(base, t(*read_us), t(*write_us));
            rt.line(
                now,
                Line::BevTimeouts {
                    bev: &name,
                    read: *read_us,
                    write: *write_us,
                    rc: rc(&r),
                },
            );
        }
        Instr::BevFlush { flags, mode, .. } => {
            let m = match mode {
                0 => FlushMode::Normal,
                1 => FlushMode::Flush,
                _ => FlushMode::Finished,
            };
            let r = h.flush(base, Events::from_bits(*flags as u16), m);
            rt.line(
                now,
                Line::BevFlush {
                    bev: &name,
                    flags: *flags as u16,
                    mode: *mode,
                    rc: rc(&r),
                },
            );
        }
        Instr::BevFree { .. } => {
            let _ = h.free(base);
            rt.bevs.borrow_mut()[id as usize].handle = None;
            rt.line(now, Line::Free { ev: &name });
        }
        Instr::BevConnect { lev, .. } => {
            let addr = rt.levs.borrow()[*lev as usize].addr;
            let r = match addr {
                Some(a) => h.socket_connect(base, a),
                None => Err(evloop::Error::Invalid("the listener has no address")),
            };
            rt.line(
                now,
                Line::BevConnect {
                    bev: &name,
                    lev: &rt.lev_name(*lev),
                    rc: rc(&r),
                },
            );
        }
        Instr::BevTrigger { flags, opts, .. } => {
            rt.line(
                now,
                Line::BevTrigger {
                    bev: &name,
                    flags: *flags as u16,
                    opts: *opts as u32,
                },
            );
            let _ = h.trigger(
                base,
                Events::from_bits(*flags as u16),
                TriggerOptions::from_bits(*opts as u32),
            );
        }
        Instr::BevTriggerEvent { what, opts, .. } => {
            if *what as u16 & names::BEV_EVENT_ERROR != 0 {
                rt.bevs.borrow_mut()[id as usize].trig_err = true;
            }
            rt.line(
                now,
                Line::BevTriggerEvent {
                    bev: &name,
                    what: *what as u16,
                    opts: *opts as u32,
                },
            );
            let _ = h.trigger_event(
                base,
                BevEvents::from_bits(*what as u16),
                TriggerOptions::from_bits(*opts as u32),
            );
        }
        Instr::BevSetcb { bits, .. } => {
            set_bev_callbacks(rt, base, id, *bits as u8);
            rt.line(
                now,
                Line::BevSetcb {
                    bev: &name,
                    bits: *bits as u8,
                },
            );
        }
        Instr::BevPrint { .. } => {
            let (input, output) = bev_lens(base, h);
            let enabled = h.enabled(base).map_or(0, |e| e.bits());
            let wm_read = h.getwatermark(base, Events::READ).unwrap_or((0, 0));
            let wm_write = h.getwatermark(base, Events::WRITE).unwrap_or((0, 0));
            let is_pair = rt.bevs.borrow()[id as usize].is_pair;
            let partner_name = if is_pair {
                let p = h.partner(base).ok().flatten();
                Some(p.and_then(|p| {
                    rt.bevs
                        .borrow()
                        .iter()
                        .find(|b| b.handle == Some(p))
                        .map(|b| b.name.clone())
                }))
            } else {
                None
            };
            rt.line(
                now,
                Line::BevState {
                    bev: &name,
                    input,
                    output,
                    enabled,
                    wm_read,
                    wm_write,
                    partner: partner_name.as_ref().map(|p| p.as_deref()),
                },
            );
        }
        _ => {}
    }
}

/// The listener instructions.
fn exec_lev<H: ScenarioHost>(rt: &Rc<Rt>, base: &mut Base<H>, now: Time, ins: &Instr) {
    let (id, op) = match ins {
        Instr::LevEnable { lev } => (*lev, "enable"),
        Instr::LevDisable { lev } => (*lev, "disable"),
        Instr::LevFree { lev } => (*lev, "free"),
        _ => return,
    };
    let name = rt.lev_name(id);
    let Some(l) = rt.levs.borrow()[id as usize].handle else {
        rt.line(now, Line::Dead { op, ev: &name });
        return;
    };
    match ins {
        Instr::LevEnable { .. } | Instr::LevDisable { .. } => {
            let disable = matches!(ins, Instr::LevDisable { .. });
            let r = if disable {
                l.disable(base)
            } else {
                l.enable(base)
            };
            rt.line(
                now,
                Line::LevEnable {
                    lev: &name,
                    disable,
                    rc: rc(&r),
                },
            );
        }
        Instr::LevFree { .. } => {
            let _ = l.free(base);
            let (end, opts) = {
                let mut levs = rt.levs.borrow_mut();
                levs[id as usize].handle = None;
                (levs[id as usize].end, levs[id as usize].opts)
            };
            if end >= 0 && opts & names::LEV_OPT_CLOSE_ON_FREE != 0 {
                rt.ends.borrow_mut()[end as usize].1 = -1;
            }
            rt.line(now, Line::Free { ev: &name });
        }
        _ => {}
    }
}

fn is_blocked_forever(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string().contains("infinite wait")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ir, scenario};

    fn trace(src: &str, backend: &str) -> String {
        let sc = scenario::parse("t.scn", src).expect("parses");
        run_scenario(&ir::lower(&sc).instrs, backend).expect("runs")
    }

    #[test]
    fn a_timer_scenario_traces_exact_virtual_times() {
        let src = "event t timer\nmain {\n  add t 10ms\n  loop\n}\n";
        for b in EVLOOP_BACKENDS {
            assert_eq!(
                trace(src, b),
                "# evloop-trace v1\n0 add t tv=10000 rc=0\n0 loop flags=0\n10000 cb t #1 T\n10000 loop-end rc=1\n10000 end\n",
                "{b}"
            );
        }
    }
}
