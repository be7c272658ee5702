//! The event base: event table, active queues, the loop and loop control.
//!
//! This is libevent's `event.c` in Rust. [`Base`] owns every event (a slab of slots with
//! generation-checked ids), one FIFO active queue per priority, the active-later queue, the timer
//! heap and the common-timeout lists, the per-fd and per-signal maps, and the time cache. The
//! loop ([`Base::run`]) performs libevent's iteration step for step (SEMANTICS.md §0), so every
//! backend inherits the same ordering.
//!
//! Callbacks receive `&mut Base<B>`: the slot's callback is taken out before the call and put
//! back afterwards if the event still exists, so a callback may add, delete, activate or free
//! anything, including its own event. This module reads time only through [`Backend::now`].

use smallbox::SmallBox;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::backend::{Backend, Features, Ready, NSIG};
use crate::event::{duration_micros, EventId, Events, Fd, Time};
use crate::evmap::{IoMap, SignalMap};
use crate::timer::TimerHeap;

/// `EVLIST_*` membership flags, with libevent's values.
pub(crate) mod list {
    pub const TIMEOUT: u8 = 0x01;
    pub const INSERTED: u8 = 0x02;
    pub const ACTIVE: u8 = 0x08;
    pub const INTERNAL: u8 = 0x10;
    pub const ACTIVE_LATER: u8 = 0x20;
    pub const FINALIZING: u8 = 0x40;
    /// The callback is a full event (not a bare internal callback).
    pub const INIT: u8 = 0x80;
}

/// The most priorities a base may have (`EVENT_MAX_PRIORITIES`).
pub const MAX_PRIORITIES: usize = 256;
/// The most common timeouts a base may have (`MAX_COMMON_TIMEOUTS`).
pub const MAX_COMMON_TIMEOUTS: usize = 256;
/// Deferred callbacks activated directly per loop iteration (`MAX_DEFERREDS_QUEUED`; the check is
/// `>`, so 33 run before the rest wait for the next iteration).
pub const MAX_DEFERREDS_QUEUED: u32 = 32;

const NIL: u32 = u32::MAX;
const NO_COMMON: u8 = u8::MAX;

/// The next base's tag. Ids and handles carry their base's tag, so one handed to another base
/// is stale there. Tags only distinguish bases; nothing orders by them (determinism).
static NEXT_BASE_TAG: AtomicU32 = AtomicU32::new(1);

/// Something a layer above the core must do when the base is dropped (see [`Base`]'s `Drop`).
pub(crate) type DropHook<B> = fn(&mut Base<B>);

/// Errors of the reactor API. Misuse returns one of these; it never panics.
#[derive(Debug)]
pub enum Error {
    /// The id does not name a live event (it was freed, or never belonged to this base).
    StaleId,
    /// An argument is out of range or a combination of flags is not allowed.
    Invalid(&'static str),
    /// The event is finalizing (being freed) and can no longer be changed.
    Finalizing,
    /// `run` was called from inside a callback of the same base.
    Reentrant,
    /// The backend failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::StaleId => f.write_str("stale or unknown event id"),
            Error::Invalid(why) => write!(f, "invalid argument: {why}"),
            Error::Finalizing => f.write_str("event is finalizing"),
            Error::Reentrant => {
                f.write_str("reentrant loop: only one event loop can run on each base at once")
            }
            Error::Io(e) => write!(f, "backend error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Result type of the reactor API.
pub type Result<T> = std::result::Result<T, Error>;

/// Loop flags (`EVLOOP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LoopFlags(u8);

impl LoopFlags {
    /// Run until no events remain, or until exit/break.
    pub const NONE: LoopFlags = LoopFlags(0);
    /// `EVLOOP_ONCE`: wait for events, run the active ones, stop.
    pub const ONCE: LoopFlags = LoopFlags(1);
    /// `EVLOOP_NONBLOCK`: do not wait.
    pub const NONBLOCK: LoopFlags = LoopFlags(2);
    /// `EVLOOP_NO_EXIT_ON_EMPTY`: keep running with no events.
    pub const NO_EXIT_ON_EMPTY: LoopFlags = LoopFlags(4);
    /// True if all flags of `o` are set.
    pub const fn contains(self, o: LoopFlags) -> bool {
        self.0 & o.0 == o.0
    }
    /// Both sets of flags (usable in constants).
    pub const fn union(self, o: LoopFlags) -> LoopFlags {
        LoopFlags(self.0 | o.0)
    }
}

impl std::ops::BitOr for LoopFlags {
    type Output = LoopFlags;
    fn bitor(self, rhs: LoopFlags) -> LoopFlags {
        LoopFlags(self.0 | rhs.0)
    }
}

/// How a loop run ended (libevent's return codes 0 and 1; -1 is an [`Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopExit {
    /// 0: exit, break, or ONCE/NONBLOCK done.
    Done,
    /// 1: no events were registered.
    NoEvents,
}

impl LoopExit {
    /// libevent's integer return code.
    pub fn code(self) -> i32 {
        match self {
            LoopExit::Done => 0,
            LoopExit::NoEvents => 1,
        }
    }
}

/// Which counter [`Base::num_events`] reads (`EVENT_BASE_COUNT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// List memberships of non-internal events: inserted, timeout, active (libevent's "ADDED").
    Added,
    /// Active and active-later callbacks, internal ones included.
    Active,
    /// Virtual events (always 0 here: evloop has no virtual events yet).
    Virtual,
}

/// Base configuration (`event_config`).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `max_dispatch_interval`: after this much time in one queue pass, return to the loop.
    pub max_dispatch_interval: Option<Duration>,
    /// `max_callbacks`: after this many callbacks, return to the loop (`None`: unlimited).
    pub max_dispatch_callbacks: Option<u32>,
    /// `min_priority`: the limits apply only to priorities at or above this number.
    pub limit_callbacks_after_prio: u32,
    /// `EVENT_BASE_FLAG_NO_CACHE_TIME`.
    pub no_cache_time: bool,
    /// `EVENT_BASE_FLAG_PRECISE_TIMER`: the backend reads the precise monotonic clock
    /// ([`Backend::use_precise_clock`]). Without it a real backend reads the clock libevent's
    /// default base reads, on Linux `CLOCK_MONOTONIC_COARSE`, which advances once per scheduler
    /// tick (see [`crate::backend::sys::Clock`]). For µs-precise waits on epoll as well, open
    /// the backend with [`crate::backend::EpollBackend::with_precise_timer`].
    pub precise_timer: bool,
}

/// A handle to a common timeout (`event_base_init_common_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommonTimeout {
    idx: u8,
    duration: Duration,
}

impl CommonTimeout {
    /// The duration this handle stands for.
    pub fn duration(self) -> Duration {
        self.duration
    }
    /// The handle's position (0, 1, …), as libevent encodes it in `tv_usec`.
    pub fn index(self) -> u8 {
        self.idx
    }
    /// libevent's magic `tv_usec` for this handle: `usec | 0x50000000 | idx << 20`.
    pub fn magic_usec(self) -> u32 {
        self.duration.subsec_micros() | 0x5000_0000 | (u32::from(self.idx) << 20)
    }
}

/// A timeout given to [`Base::add_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// A relative timeout from the (cached) current time; it goes into the heap.
    After(Duration),
    /// A relative timeout on a common-timeout list.
    Common(CommonTimeout),
}

/// The inline room of a [`Callback`]: three words, what a closure capturing an `Rc`, a
/// descriptor and an index takes (or the C ABI's: the base, the C callback and its argument).
/// A fourth word would cost every event 8 bytes (a slot of 88).
type CallbackSpace = [usize; 3];

/// What runs when an event's callback is due: `(base, its own id, the result flags)`.
///
/// A closure of up to three words is stored in the event's slot itself, a larger one on the
/// heap. libevent keeps its callback and argument in the `struct event`; evloop's dispatch path
/// likewise touches no memory of its own beyond the slot, the fd's evmap entry and the queue.
/// At a=100 on n=1000 sockets the heap box, one more cache line per callback (the kernel's
/// work between two callbacks evicts it), cost about 1 % of the time (BENCHMARKS.md, "The
/// callback in the slot").
///
/// Every kind of callback is one of these: a once-event's `FnOnce` and a bare callback are
/// wrapped, and the base's internal events (signal pipe, common timeouts, loop exit) are
/// closures too, so a slot holds one `Option` of it (`None` while it runs) and nothing else.
type Callback<B> = SmallBox<dyn FnMut(&mut Base<B>, EventId, Events), CallbackSpace>;

/// Drops a callback whose event was freed while it ran, out of the dispatch path's code.
#[cold]
#[inline(never)]
fn drop_callback<B: Backend>(f: Callback<B>) {
    drop(f);
}

/// `SmallBox`'s constructor for unsized values on stable Rust (its `smallbox!` macro): the
/// closure `f` is moved in whole and coerced to the trait object. The macro expands to the
/// crate's own `unsafe` constructor, whose one condition (the pointer it is given is the
/// value's own address) the macro itself meets; this module writes no `unsafe`.
fn boxed<B: Backend, F>(f: F) -> Callback<B>
where
    F: FnMut(&mut Base<B>, EventId, Events) + 'static,
{
    smallbox::smallbox!(f)
}

/// What kind of callback a [`CallbackInfo`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackKind {
    /// A timer (no fd).
    Timer,
    /// An fd event.
    Io,
    /// A signal event.
    Signal,
    /// A bare callback (deferred callbacks of the buffered layer).
    Bare,
}

/// The callback about to run (or just run), as a [`Base::set_callback_hook`] hook sees it.
#[derive(Clone, Copy, Debug)]
pub struct CallbackInfo {
    /// The event's slot number (stable while the event lives).
    pub slot: u32,
    /// Its fd, its signal number, or -1.
    pub fd: Fd,
    /// The priority it runs at.
    pub priority: usize,
    /// What made it active.
    pub res: Events,
    /// Its kind.
    pub kind: CallbackKind,
    /// True for libevent's internal events (the signal pipe, the buffered layer's own).
    pub internal: bool,
}

/// A hook called around callbacks ([`Base::set_callback_hook`]).
pub type CallbackHook = Box<dyn FnMut(&CallbackInfo, bool)>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Closure {
    Event,
    Persist,
    Signal,
    /// A bare callback (EV_CLOSURE_CB_SELF).
    Bare,
}

/// An event's state (`struct event`). 80 bytes, checked at compile time below: what the
/// dispatch path reads fits two cache lines, and a timer with a small closure takes no other
/// allocation.
struct Slot<B: Backend> {
    gen: u32,
    live: bool,
    /// The fd, the signal number, or -1.
    fd: Fd,
    events: Events,
    pri: u8,
    flags: u8,
    res: Events,
    ncalls: u16,
    /// libevent's `ev_pncalls != NULL`: the running signal closure's counter may be aborted.
    pncalls: bool,
    closure: Closure,
    /// `ev_timeout`: the deadline (common-timeout index kept apart in `common`).
    timeout: Time,
    common: u8,
    /// The event's [`Extra`] in `Base::extras`, or NIL.
    extra: u32,
    /// Active (or active-later) queue links.
    prev: u32,
    next: u32,
    /// `None` while the callback runs (it is taken out) and once the event is freed.
    handler: Option<Callback<B>>,
}

const _: () = assert!(std::mem::size_of::<Slot<crate::backend::EpollBackend>>() == 80);

/// What few events need, kept out of their slots so that the slots stay small: the interval
/// of a persistent event with a timeout, and the links of an event on a common-timeout list.
/// An event gets one the first time it needs it and keeps it until it is freed.
#[derive(Clone, Copy)]
struct Extra {
    /// `ev_io_timeout` of a persistent event: the interval (µs; 0: none) and its common index.
    io_timeout: u64,
    io_common: u8,
    /// Common-timeout list links.
    ct_prev: u32,
    ct_next: u32,
}

impl Extra {
    const NONE: Extra = Extra {
        io_timeout: 0,
        io_common: NO_COMMON,
        ct_prev: NIL,
        ct_next: NIL,
    };
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

struct CommonList {
    duration: u64,
    events: List,
    /// The internal timer in the heap for this list.
    timer: u32,
}

/// The event base (`struct event_base`), generic over the backend.
pub struct Base<B: Backend> {
    backend: B,
    features: Features,
    slots: Vec<Slot<B>>,
    free_slots: Vec<u32>,
    /// [`Extra`]s of the slots that have one (`Slot::extra`), and the free ones.
    extras: Vec<Extra>,
    free_extras: Vec<u32>,
    queues: Vec<List>,
    active_later: List,
    heap: TimerHeap,
    commons: Vec<CommonList>,
    io: IoMap,
    sigmap: SignalMap,
    sig_event: Option<u32>,
    sig_event_added: bool,
    sig_counts: [u32; NSIG],
    ready: Vec<Ready>,
    tv_cache: Option<Time>,
    running_loop: bool,
    got_term: bool,
    got_break: bool,
    cont: bool,
    running_priority: i32,
    /// Callbacks run so far (internal ones included): simulators count work with it.
    callbacks_run: u64,
    /// Called before (`true`) and after (`false`) each callback ([`Base::set_callback_hook`]).
    callback_hook: Option<CallbackHook>,
    /// The running signal closure's remaining repetitions (libevent's local `ncalls`).
    sig_repeats: u16,
    event_count: usize,
    event_count_active: usize,
    event_count_max: usize,
    event_count_active_max: usize,
    n_deferreds_queued: u32,
    max_dispatch_time: Option<u64>,
    max_dispatch_callbacks: u32,
    limit_callbacks_after_prio: u32,
    no_cache_time: bool,
    /// The bufferevents of the buffered layer (`bufferevent/`). They live in the base so that
    /// callbacks, which only receive `&mut Base`, can reach them; the core never looks inside.
    pub(crate) bufferevents: crate::bufferevent::Registry<B>,
    /// The connection listeners (`listener.rs`), kept here for the same reason.
    pub(crate) listeners: crate::listener::Registry<B>,
    /// This base's tag, carried by every id and handle it issues.
    tag: u32,
    /// What the layers above the core registered to run when the base is dropped (closing the
    /// descriptors they own), by name, each once, in registration order.
    drop_hooks: Vec<(&'static str, DropHook<B>)>,
    /// A deliberately broken invariant, for testing the simulator's explorer (`test-faults`).
    #[cfg(feature = "test-faults")]
    fault: Option<CoreFault>,
}

/// A deliberately broken reactor invariant (cargo feature `test-faults`, test builds only).
///
/// The simulator's explorer must catch each of these; they exist to prove that it does.
#[cfg(feature = "test-faults")]
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreFault {
    /// Timers whose deadline is at most this far in the future count as expired: they fire early.
    EarlyTimers(Duration),
    /// The active queues are scanned from the least urgent priority to the most urgent.
    PriorityInversion,
}

impl<B: Backend> fmt::Debug for Base<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Base")
            .field("method", &self.backend.name())
            .field("priorities", &self.queues.len())
            .field("added", &self.event_count)
            .field("active", &self.event_count_active)
            .finish()
    }
}

impl<B: Backend> Base<B> {
    /// A base with one priority and the default configuration (`event_base_new`).
    pub fn new(backend: B) -> Base<B> {
        Base::with_config(backend, &Config::default())
    }

    /// A base configured like `event_base_new_with_config`.
    pub fn with_config(mut backend: B, cfg: &Config) -> Base<B> {
        if cfg.precise_timer {
            backend.use_precise_clock();
        }
        let max_dispatch_time = cfg.max_dispatch_interval.map(duration_micros);
        let max_dispatch_callbacks = cfg.max_dispatch_callbacks.unwrap_or(u32::MAX);
        let mut limit = cfg.limit_callbacks_after_prio;
        if max_dispatch_callbacks == u32::MAX && max_dispatch_time.is_none() {
            limit = u32::MAX;
        }
        let features = backend.features();
        let tag = NEXT_BASE_TAG.fetch_add(1, Ordering::Relaxed);
        Base {
            backend,
            features,
            slots: Vec::new(),
            free_slots: Vec::new(),
            extras: Vec::new(),
            free_extras: Vec::new(),
            queues: vec![List::EMPTY],
            active_later: List::EMPTY,
            heap: TimerHeap::new(),
            commons: Vec::new(),
            io: IoMap::default(),
            sigmap: SignalMap::default(),
            sig_event: None,
            sig_event_added: false,
            sig_counts: [0; NSIG],
            ready: Vec::with_capacity(32),
            tv_cache: None,
            running_loop: false,
            got_term: false,
            got_break: false,
            cont: false,
            running_priority: -1,
            callbacks_run: 0,
            callback_hook: None,
            sig_repeats: 0,
            event_count: 0,
            event_count_active: 0,
            event_count_max: 0,
            event_count_active_max: 0,
            n_deferreds_queued: 0,
            max_dispatch_time,
            max_dispatch_callbacks,
            limit_callbacks_after_prio: limit,
            no_cache_time: cfg.no_cache_time,
            bufferevents: crate::slab::Slab::new(tag),
            listeners: crate::slab::Slab::new(tag),
            tag,
            drop_hooks: Vec::new(),
            #[cfg(feature = "test-faults")]
            fault: None,
        }
    }

    /// Breaks one reactor invariant on purpose (`None` restores correct behaviour). Test builds
    /// only (cargo feature `test-faults`): the simulator's explorer is shown to catch each fault.
    #[cfg(feature = "test-faults")]
    #[doc(hidden)]
    pub fn set_fault_injection(&mut self, fault: Option<CoreFault>) {
        self.fault = fault;
    }

    /// The most urgent priority whose active queue is not empty, if any callback is active.
    ///
    /// A read-only view for invariant checks (the simulator asserts inside each callback that no
    /// more urgent callback is waiting: within one pass, libevent never runs a less urgent
    /// callback while a more urgent one is active). The running callback is not in its queue.
    pub fn first_active_priority(&self) -> Option<usize> {
        self.queues.iter().position(|q| q.head != NIL)
    }

    /// The number of callbacks this base has run, internal ones (signal pipe, deferred
    /// bufferevent callbacks) included. Not a libevent API: simulators measure work with it.
    pub fn callbacks_run(&self) -> u64 {
        self.callbacks_run
    }

    /// Installs (or removes) a hook called before (`true`) and after (`false`) every callback
    /// the loop runs. Not a libevent API: simulators draw timelines with it.
    pub fn set_callback_hook(&mut self, hook: Option<CallbackHook>) {
        self.callback_hook = hook;
    }

    fn callback_info(&self, idx: u32, pri: usize) -> CallbackInfo {
        let s = &self.slots[idx as usize];
        let kind = match s.closure {
            Closure::Signal => CallbackKind::Signal,
            Closure::Bare => CallbackKind::Bare,
            _ if s.fd >= 0
                && s.events
                    .intersects(Events::READ | Events::WRITE | Events::CLOSED) =>
            {
                CallbackKind::Io
            }
            _ => CallbackKind::Timer,
        };
        CallbackInfo {
            slot: idx,
            fd: s.fd,
            priority: pri,
            res: s.res,
            kind,
            internal: s.flags & list::INTERNAL != 0,
        }
    }

    /// Registers `hook` (once per `name`) to run when the base is dropped: how a layer above the
    /// core (bufferevents, listeners) releases what it owns without the core knowing it.
    pub(crate) fn on_drop(&mut self, name: &'static str, hook: DropHook<B>) {
        if !self.drop_hooks.iter().any(|&(n, _)| n == name) {
            self.drop_hooks.push((name, hook));
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }
    /// The backend, mutably (socket operations, scripted inputs).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }
    /// The backend's method name (`event_base_get_method`).
    pub fn method(&self) -> &'static str {
        self.backend.name()
    }
    /// The backend's features (`event_base_get_features`).
    pub fn features(&self) -> Features {
        self.features
    }
    /// Number of active queues (`event_base_get_npriorities`).
    pub fn npriorities(&self) -> usize {
        self.queues.len()
    }

    // ----------------------------------------------------------------------------------------
    // Slots

    fn slot(&self, id: EventId) -> Result<&Slot<B>> {
        match self.slots.get(id.idx as usize) {
            Some(s) if s.live && s.gen == id.gen && id.base == self.tag => Ok(s),
            _ => Err(Error::StaleId),
        }
    }

    fn check(&self, id: EventId) -> Result<u32> {
        self.slot(id).map(|_| id.idx)
    }

    fn id_of(&self, idx: u32) -> EventId {
        EventId {
            idx,
            gen: self.slots[idx as usize].gen,
            base: self.tag,
        }
    }

    fn alloc(&mut self, fd: Fd, events: Events, closure: Closure, handler: Callback<B>) -> u32 {
        let pri = (self.queues.len() / 2) as u8;
        let slot = Slot {
            gen: 0,
            live: true,
            fd,
            events,
            pri,
            flags: if closure == Closure::Bare {
                0
            } else {
                list::INIT
            },
            res: Events::NONE,
            ncalls: 0,
            pncalls: false,
            closure,
            timeout: Time::ZERO,
            common: NO_COMMON,
            extra: NIL,
            prev: NIL,
            next: NIL,
            handler: Some(handler),
        };
        if let Some(idx) = self.free_slots.pop() {
            let s = &mut self.slots[idx as usize];
            let gen = s.gen.wrapping_add(1);
            *s = slot;
            s.gen = gen;
            idx
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        }
    }

    fn release(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        debug_assert!(
            s.flags & (list::ACTIVE | list::ACTIVE_LATER | list::TIMEOUT | list::INSERTED) == 0
        );
        s.live = false;
        s.gen = s.gen.wrapping_add(1);
        s.handler = None;
        let extra = std::mem::replace(&mut s.extra, NIL);
        if extra != NIL {
            self.extras[extra as usize] = Extra::NONE;
            self.free_extras.push(extra);
        }
        self.free_slots.push(idx);
    }

    /// The slot's [`Extra`] (all unset if it has none).
    fn extra(&self, idx: u32) -> Extra {
        match self.slots[idx as usize].extra {
            NIL => Extra::NONE,
            e => self.extras[e as usize],
        }
    }

    /// The slot's [`Extra`], given one first if it has none.
    fn extra_mut(&mut self, idx: u32) -> &mut Extra {
        let mut e = self.slots[idx as usize].extra;
        if e == NIL {
            e = match self.free_extras.pop() {
                Some(e) => e,
                None => {
                    self.extras.push(Extra::NONE);
                    (self.extras.len() - 1) as u32
                }
            };
            self.slots[idx as usize].extra = e;
        }
        &mut self.extras[e as usize]
    }

    // ----------------------------------------------------------------------------------------
    // Creating events

    /// Creates an event (`event_new`): an fd event (READ/WRITE/CLOSED, optionally PERSIST and
    /// ET), a timer (fd -1, no I/O flags) or, with SIGNAL, a signal event whose `fd` is the
    /// signal number. The priority is `npriorities / 2` at the time of the call.
    pub fn event_new(
        &mut self,
        fd: Fd,
        events: Events,
        cb: impl FnMut(&mut Base<B>, EventId, Events) + 'static,
    ) -> Result<EventId> {
        let closure = if events.contains(Events::SIGNAL) {
            if events.intersects(Events::READ | Events::WRITE | Events::CLOSED) {
                return Err(Error::Invalid(
                    "EV_SIGNAL cannot be combined with I/O flags",
                ));
            }
            Closure::Signal
        } else if events.contains(Events::PERSIST) {
            Closure::Persist
        } else {
            Closure::Event
        };
        let idx = self.alloc(fd, events, closure, boxed(cb));
        Ok(self.id_of(idx))
    }

    /// A pure timer (`evtimer_new`); add it with a timeout.
    pub fn timer_new(
        &mut self,
        cb: impl FnMut(&mut Base<B>, EventId, Events) + 'static,
    ) -> Result<EventId> {
        self.event_new(-1, Events::NONE, cb)
    }

    /// A signal event (`evsignal_new`: `EV_SIGNAL|EV_PERSIST`).
    pub fn signal_new(
        &mut self,
        sig: i32,
        cb: impl FnMut(&mut Base<B>, EventId, Events) + 'static,
    ) -> Result<EventId> {
        self.event_new(sig, Events::SIGNAL | Events::PERSIST, cb)
    }

    /// A bare callback (libevent's internal `event_callback`) at priority `npriorities - 1`;
    /// it only runs when activated with [`Base::callback_activate`]. The buffered layer uses
    /// these for deferred callbacks.
    pub fn callback_new(&mut self, cb: impl FnMut(&mut Base<B>, EventId) + 'static) -> EventId {
        let mut cb = cb;
        let f = boxed(move |b: &mut Base<B>, id, _| cb(b, id));
        let idx = self.alloc(-1, Events::NONE, Closure::Bare, f);
        self.slots[idx as usize].pri = (self.queues.len() - 1) as u8;
        self.id_of(idx)
    }

    /// Schedules a one-shot callback (`event_base_once`). A pure timeout with no or a zero
    /// timeout is made active at once (order-preserving); I/O once-events apply `timeout` too.
    pub fn once(
        &mut self,
        fd: Fd,
        events: Events,
        timeout: Option<Duration>,
        cb: impl FnOnce(&mut Base<B>, Events) + 'static,
    ) -> Result<()> {
        let mut cb = Some(cb);
        let f = boxed(move |b: &mut Base<B>, id: EventId, res| {
            if let Some(cb) = cb.take() {
                cb(b, res);
            }
            b.finish_once(id.idx, id.gen);
        });
        self.once_inner(fd, events, timeout, f)
    }

    fn once_inner(
        &mut self,
        fd: Fd,
        events: Events,
        timeout: Option<Duration>,
        handler: Callback<B>,
    ) -> Result<()> {
        if events.intersects(Events::SIGNAL | Events::PERSIST) {
            return Err(Error::Invalid(
                "once-events cannot be signals or persistent",
            ));
        }
        let kinds =
            Events::TIMEOUT | Events::SIGNAL | Events::READ | Events::WRITE | Events::CLOSED;
        let (fd, events, activate) = if events & kinds == Events::TIMEOUT {
            (-1, Events::NONE, timeout.is_none_or(|d| d.is_zero()))
        } else if !events.io().is_empty() {
            (fd, events.io(), false)
        } else {
            return Err(Error::Invalid("once-event needs EV_TIMEOUT or I/O flags"));
        };
        let idx = self.alloc(fd, events, Closure::Event, handler);
        if activate {
            self.active_idx(idx, Events::TIMEOUT, 1);
            Ok(())
        } else {
            let tv = timeout.map(|d| Tv::Rel(duration_micros(d), NO_COMMON));
            match self.add_idx(idx, tv) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = self.del_idx(idx, false);
                    self.release(idx);
                    Err(e)
                }
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Priorities, common timeouts

    /// `event_base_priority_init`: fails while any callback is active, or if `n` is not in
    /// 1..256. Events created before keep their priority.
    ///
    /// It also fails (`Error::Invalid`) while any event or internal callback of the base (a
    /// bufferevent's deferred callback, a listener's event, …) has a priority `>= n`: such an
    /// event would have no queue to run in. libevent accepts that call and aborts on an
    /// assertion when the event is activated; evloop refuses it up front, so every event's
    /// priority is always below [`Base::npriorities`]. Free those events, or lower their
    /// priority with [`Base::priority_set`], first.
    pub fn priority_init(&mut self, n: usize) -> Result<()> {
        if self.event_count_active > 0 {
            return Err(Error::Invalid("priority_init while callbacks are active"));
        }
        if !(1..MAX_PRIORITIES).contains(&n) {
            return Err(Error::Invalid("number of priorities must be in 1..256"));
        }
        if self.slots.iter().any(|s| s.live && s.pri as usize >= n) {
            return Err(Error::Invalid(
                "priority_init below the priority of an existing event",
            ));
        }
        self.queues = vec![List::EMPTY; n];
        Ok(())
    }

    /// `event_priority_set`: fails if the event is active or `pri` is out of range.
    pub fn priority_set(&mut self, id: EventId, pri: usize) -> Result<()> {
        let idx = self.check(id)?;
        if self.slots[idx as usize].flags & list::ACTIVE != 0 {
            return Err(Error::Invalid("priority_set on an active event"));
        }
        if pri >= self.queues.len() {
            return Err(Error::Invalid("priority out of range"));
        }
        self.slots[idx as usize].pri = pri as u8;
        Ok(())
    }

    /// The event's priority (`event_get_priority`).
    pub fn priority(&self, id: EventId) -> Result<usize> {
        Ok(self.slot(id)?.pri as usize)
    }
    /// The flags the event was created with (`event_get_events`).
    pub fn events_of(&self, id: EventId) -> Result<Events> {
        Ok(self.slot(id)?.events)
    }
    /// The fd or signal number of the event (`event_get_fd`).
    pub fn fd_of(&self, id: EventId) -> Result<Fd> {
        Ok(self.slot(id)?.fd)
    }

    /// `event_base_init_common_timeout`: the same duration gives the same handle; at most 256.
    pub fn init_common_timeout(&mut self, d: Duration) -> Result<CommonTimeout> {
        let us = duration_micros(d);
        if let Some(i) = self.commons.iter().position(|c| c.duration == us) {
            return Ok(CommonTimeout {
                idx: i as u8,
                duration: Duration::from_micros(us),
            });
        }
        if self.commons.len() == MAX_COMMON_TIMEOUTS {
            return Err(Error::Invalid("too many common timeouts (256 per base)"));
        }
        let ci = self.commons.len() as u8;
        let timer = self.alloc(
            -1,
            Events::NONE,
            Closure::Event,
            boxed(move |b: &mut Base<B>, _, _| b.common_timeout_callback(ci)),
        );
        let s = &mut self.slots[timer as usize];
        s.flags |= list::INTERNAL;
        s.pri = 0;
        self.commons.push(CommonList {
            duration: us,
            events: List::EMPTY,
            timer,
        });
        Ok(CommonTimeout {
            idx: ci,
            duration: Duration::from_micros(us),
        })
    }

    // ----------------------------------------------------------------------------------------
    // add / del / active

    /// `event_add(ev, tv)`: registers the event's I/O or signal interest and, with `Some`,
    /// (re)sets its timeout. `None` keeps an existing timeout.
    pub fn add(&mut self, id: EventId, timeout: Option<Duration>) -> Result<()> {
        self.add_with(id, timeout.map(Timeout::After))
    }

    /// `event_add` with a heap timeout or a common timeout.
    pub fn add_with(&mut self, id: EventId, timeout: Option<Timeout>) -> Result<()> {
        let idx = self.check(id)?;
        let tv = match timeout {
            None => None,
            Some(Timeout::After(d)) => Some(Tv::Rel(duration_micros(d), NO_COMMON)),
            Some(Timeout::Common(c)) => {
                if c.idx as usize >= self.commons.len()
                    || self.commons[c.idx as usize].duration != duration_micros(c.duration)
                {
                    return Err(Error::Invalid("common timeout from another base"));
                }
                Some(Tv::Rel(self.commons[c.idx as usize].duration, c.idx))
            }
        };
        self.add_idx(idx, tv)
    }

    /// `event_del`: removes the event from I/O, signal, timeout and active lists. An active
    /// event that has not run yet will not run.
    pub fn del(&mut self, id: EventId) -> Result<()> {
        let idx = self.check(id)?;
        self.del_idx(idx, false)
    }

    /// `event_remove_timer`: drops only the timeout; I/O registration stays.
    pub fn remove_timer(&mut self, id: EventId) -> Result<()> {
        let idx = self.check(id)?;
        if self.slots[idx as usize].flags & list::TIMEOUT != 0 {
            self.remove_timeout(idx);
            let s = &mut self.slots[idx as usize];
            // libevent clears `ev_io_timeout`, which shares storage with a signal event's
            // repetition counters.
            if s.events.contains(Events::SIGNAL) {
                s.ncalls = 0;
                s.pncalls = false;
            }
            if s.extra != NIL {
                let e = &mut self.extras[s.extra as usize];
                e.io_timeout = 0;
                e.io_common = NO_COMMON;
            }
        }
        Ok(())
    }

    /// `event_active(ev, res, ncalls)`: makes the event active with `res`; `ncalls` matters
    /// for signal events only. Activating an already active event only ORs `res` in.
    pub fn active(&mut self, id: EventId, res: Events, ncalls: u16) -> Result<()> {
        let idx = self.check(id)?;
        self.active_idx(idx, res, ncalls);
        Ok(())
    }

    /// Activates a bare callback (`event_callback_activate_`).
    pub fn callback_activate(&mut self, id: EventId) -> Result<bool> {
        let idx = self.check(id)?;
        Ok(self.callback_activate_idx(idx))
    }

    /// Activates a bare callback at the start of the next iteration
    /// (`event_callback_activate_later_`).
    pub fn callback_activate_later(&mut self, id: EventId) -> Result<bool> {
        let idx = self.check(id)?;
        let f = self.slots[idx as usize].flags;
        if f & (list::ACTIVE | list::ACTIVE_LATER | list::FINALIZING) != 0 {
            return Ok(false);
        }
        self.insert_active_later(idx);
        Ok(true)
    }

    /// Schedules a deferred callback the way libevent's `event_deferred_cb_schedule_` does: the
    /// first 33 per loop iteration are activated directly, the rest at the next iteration.
    pub fn deferred_schedule(&mut self, id: EventId) -> Result<bool> {
        let idx = self.check(id)?;
        let f = self.slots[idx as usize].flags;
        if f & (list::ACTIVE | list::FINALIZING) != 0 {
            return Ok(false);
        }
        // libevent checks the budget before counting, and counts only direct activations, so
        // 33 run in this iteration. A callback waiting on the active-later queue is moved to the
        // active queue while budget remains (without counting, as `event_callback_activate_`
        // reports it as not newly activated).
        if self.n_deferreds_queued > MAX_DEFERREDS_QUEUED {
            self.insert_active_later(idx);
            return Ok(f & list::ACTIVE_LATER == 0);
        }
        let newly = self.callback_activate_idx(idx);
        if newly {
            self.n_deferreds_queued += 1;
        }
        Ok(newly)
    }

    /// Removes a bare callback from the active queues (`event_callback_cancel_`).
    pub fn callback_cancel(&mut self, id: EventId) -> Result<()> {
        let idx = self.check(id)?;
        let f = self.slots[idx as usize].flags;
        if f & list::ACTIVE != 0 {
            self.remove_active(idx);
        } else if f & list::ACTIVE_LATER != 0 {
            self.remove_active_later(idx);
        }
        Ok(())
    }

    /// `event_base_active_by_fd`: activates every event on `fd` that wants any of `events`.
    pub fn active_by_fd(&mut self, fd: Fd, events: Events) {
        self.io_active(fd, events);
    }

    /// `event_base_active_by_signal`: activates every event on `sig` once.
    pub fn active_by_signal(&mut self, sig: i32) {
        self.signal_active(sig, 1);
    }

    /// `event_pending(ev, events, &tv)`: the subset of `events` the event is pending or active
    /// for, and its deadline if TIMEOUT was asked for and is pending.
    pub fn pending(&self, id: EventId, events: Events) -> Result<(Events, Option<Time>)> {
        let s = self.slot(id)?;
        let mut flags = Events::NONE;
        if s.flags & list::INSERTED != 0 {
            flags |= s.events & (Events::READ | Events::WRITE | Events::CLOSED | Events::SIGNAL);
        }
        if s.flags & (list::ACTIVE | list::ACTIVE_LATER) != 0 {
            flags |= s.res;
        }
        if s.flags & list::TIMEOUT != 0 {
            flags |= Events::TIMEOUT;
        }
        let asked = events
            & (Events::TIMEOUT | Events::READ | Events::WRITE | Events::CLOSED | Events::SIGNAL);
        let tv = (flags & asked)
            .contains(Events::TIMEOUT)
            .then_some(s.timeout);
        Ok((flags & asked, tv))
    }

    /// True if the event is added, pending on a timeout, or active.
    pub fn is_pending(&self, id: EventId) -> Result<bool> {
        let f = self.slot(id)?.flags;
        Ok(f & (list::INSERTED | list::TIMEOUT | list::ACTIVE | list::ACTIVE_LATER) != 0)
    }

    /// `event_free`: deletes and frees the event; the id becomes stale. Allowed from inside
    /// the event's own callback.
    pub fn free(&mut self, id: EventId) -> Result<()> {
        let idx = self.check(id)?;
        self.del_idx(idx, true)?;
        self.release(idx);
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Loop control

    /// `event_base_loopexit(tv)`: a once-timer at the middle priority that makes the loop stop
    /// at the top of its next iteration.
    pub fn loopexit(&mut self, after: Option<Duration>) -> Result<()> {
        let f = boxed(|b: &mut Base<B>, id: EventId, _| {
            b.got_term = true;
            b.finish_once(id.idx, id.gen);
        });
        self.once_inner(-1, Events::TIMEOUT, after, f)
    }

    /// `event_base_loopbreak`: stop after the current callback. Lost if no loop is running.
    pub fn loopbreak(&mut self) {
        self.got_break = true;
    }

    /// `event_base_loopcontinue`: finish the current callback, then start a new iteration.
    pub fn loopcontinue(&mut self) {
        self.cont = true;
    }

    /// `event_base_got_exit`.
    pub fn got_exit(&self) -> bool {
        self.got_term
    }
    /// `event_base_got_break`.
    pub fn got_break(&self) -> bool {
        self.got_break
    }

    /// `event_base_get_num_events`.
    pub fn num_events(&self, which: Count) -> usize {
        match which {
            Count::Added => self.event_count,
            Count::Active => self.event_count_active,
            Count::Virtual => 0,
        }
    }

    /// `event_base_get_max_events`; `clear` resets the maximum to the current value.
    pub fn max_events(&mut self, which: Count, clear: bool) -> usize {
        let (cur, max) = match which {
            Count::Added => (self.event_count, &mut self.event_count_max),
            Count::Active => (self.event_count_active, &mut self.event_count_active_max),
            Count::Virtual => return 0,
        };
        let r = *max;
        if clear {
            *max = cur;
        }
        r
    }

    /// The cached time (`event_base_gettimeofday_cached`, on the monotonic clock): inside
    /// callbacks, the time the last dispatch returned.
    pub fn now(&mut self) -> Time {
        self.gettime()
    }

    /// `event_base_update_cache_time`: refresh the cache while the loop runs.
    pub fn update_cache_time(&mut self) {
        if self.running_loop {
            self.update_time_cache();
        }
    }

    /// `event_base_dispatch`: run until no events remain or exit/break.
    pub fn dispatch(&mut self) -> Result<LoopExit> {
        self.run(LoopFlags::NONE)
    }

    /// `event_base_loop(flags)`.
    ///
    /// A callback that panics unwinds out of `run`; the base stays usable: the loop state is
    /// restored on the way out (no loop is running, the time cache is cleared), so a later
    /// `run` works. What the panic leaves behind: the callback that panicked is dropped with
    /// the unwinding (its event stays registered with its flags and timeout, but runs nothing
    /// when activated; a once-event or bufferevent/listener callback is lost the same way), and
    /// the callbacks that were active but had not run yet stay active for the next `run`.
    pub fn run(&mut self, flags: LoopFlags) -> Result<LoopExit> {
        if self.running_loop {
            return Err(Error::Reentrant);
        }
        self.running_loop = true;
        self.tv_cache = None;
        if self.sig_event_added && self.sigmap.any() {
            self.backend.signal_claim();
        }
        self.got_term = false;
        self.got_break = false;
        let guard = LoopGuard(self);
        guard.0.run_inner(flags)
    }

    fn run_inner(&mut self, flags: LoopFlags) -> Result<LoopExit> {
        loop {
            self.cont = false;
            self.n_deferreds_queued = 0;
            if self.got_term || self.got_break {
                return Ok(LoopExit::Done);
            }
            let timeout = if self.event_count_active == 0 && !flags.contains(LoopFlags::NONBLOCK) {
                self.timeout_next()
            } else {
                Some(Duration::ZERO)
            };
            if !flags.contains(LoopFlags::NO_EXIT_ON_EMPTY)
                && self.event_count == 0
                && self.event_count_active == 0
            {
                return Ok(LoopExit::NoEvents);
            }
            self.make_later_events_active();
            self.tv_cache = None;
            self.dispatch_backend(timeout)?;
            self.update_time_cache();
            self.timeout_process();
            if self.event_count_active > 0 {
                let n = self.process_active();
                if flags.contains(LoopFlags::ONCE) && self.event_count_active == 0 && n != 0 {
                    return Ok(LoopExit::Done);
                }
            } else if flags.contains(LoopFlags::NONBLOCK) {
                return Ok(LoopExit::Done);
            }
        }
    }

    fn dispatch_backend(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.ready.clear();
        let r = self.backend.dispatch(timeout, &mut self.ready);
        if r.is_ok() {
            // Activation runs no callback, so nothing touches `ready` while it is walked.
            let mut i = 0;
            while let Some(&Ready { fd, events }) = self.ready.get(i) {
                self.io_active(fd, events);
                i += 1;
            }
        }
        r.map_err(Error::Io)
    }

    // ----------------------------------------------------------------------------------------
    // Time

    fn gettime(&mut self) -> Time {
        match self.tv_cache {
            Some(t) => t,
            None => self.backend.now(),
        }
    }

    fn update_time_cache(&mut self) {
        self.tv_cache = None;
        if !self.no_cache_time {
            self.tv_cache = Some(self.backend.now());
        }
    }

    #[inline(never)]
    fn timeout_next(&mut self) -> Option<Duration> {
        let (deadline, _) = self.heap.top()?;
        let now = self.gettime();
        Some(deadline.since(now))
    }

    #[inline(always)]
    fn timeout_process(&mut self) {
        if !self.heap.is_empty() {
            self.timeout_process_due();
        }
    }

    #[inline(never)]
    fn timeout_process_due(&mut self) {
        let now = self.gettime();
        #[cfg(feature = "test-faults")]
        let now = match self.fault {
            Some(CoreFault::EarlyTimers(d)) => now.saturating_add(d),
            _ => now,
        };
        while let Some((deadline, idx)) = self.heap.top() {
            if deadline > now {
                break;
            }
            let _ = self.del_idx(idx, false);
            self.active_idx(idx, Events::TIMEOUT, 1);
        }
    }

    // ----------------------------------------------------------------------------------------
    // The core of add/del/active (event_add_nolock_, event_del_nolock_, event_active_nolock_)

    fn add_idx(&mut self, idx: u32, tv: Option<Tv>) -> Result<()> {
        let s = &self.slots[idx as usize];
        if s.flags & list::FINALIZING != 0 {
            return Err(Error::Finalizing);
        }
        let (events, fd, flags) = (s.events, s.fd, s.flags);
        if events.intersects(Events::READ | Events::WRITE | Events::CLOSED | Events::SIGNAL)
            && flags & (list::INSERTED | list::ACTIVE | list::ACTIVE_LATER) == 0
        {
            if !events.io().is_empty() {
                self.io_add(fd, idx)?;
            } else {
                self.signal_add(fd, idx)?;
            }
            self.insert_inserted(idx);
        }
        let Some(tv) = tv else {
            return Ok(());
        };
        if let (Closure::Persist, Tv::Rel(us, ci)) = (self.slots[idx as usize].closure, tv) {
            if us != 0 || self.slots[idx as usize].extra != NIL {
                let e = self.extra_mut(idx);
                e.io_timeout = us;
                e.io_common = ci;
            }
        }
        if self.slots[idx as usize].flags & list::TIMEOUT != 0 {
            self.remove_timeout(idx);
        }
        let s = &self.slots[idx as usize];
        if s.flags & list::ACTIVE != 0 && s.res.contains(Events::TIMEOUT) {
            if s.events.contains(Events::SIGNAL) && s.ncalls != 0 && s.pncalls {
                self.sig_repeats = 0;
            }
            self.remove_active(idx);
        }
        let now = self.gettime();
        let (deadline, ci) = match tv {
            Tv::Abs(t, ci) => (t, ci),
            Tv::Rel(us, ci) => (Time(now.0.saturating_add(us)), ci),
        };
        {
            let s = &mut self.slots[idx as usize];
            s.timeout = deadline;
            s.common = ci;
        }
        self.insert_timeout(idx);
        if ci != NO_COMMON && self.commons[ci as usize].events.head == idx {
            self.common_timeout_schedule(ci);
        }
        Ok(())
    }

    fn del_idx(&mut self, idx: u32, even_if_finalizing: bool) -> Result<()> {
        let s = &self.slots[idx as usize];
        if !even_if_finalizing && s.flags & list::FINALIZING != 0 {
            return Ok(());
        }
        if s.events.contains(Events::SIGNAL) && s.ncalls != 0 && s.pncalls {
            self.sig_repeats = 0;
        }
        let flags = s.flags;
        if flags & list::TIMEOUT != 0 {
            self.remove_timeout(idx);
        }
        if flags & list::ACTIVE != 0 {
            self.remove_active(idx);
        } else if flags & list::ACTIVE_LATER != 0 {
            self.remove_active_later(idx);
        }
        if flags & list::INSERTED != 0 {
            self.remove_inserted(idx);
            let (fd, events) = (self.slots[idx as usize].fd, self.slots[idx as usize].events);
            if !events.io().is_empty() {
                self.io_del(fd, idx)?;
            } else {
                self.signal_del(fd, idx)?;
            }
        }
        Ok(())
    }

    /// `event_active_nolock_`.
    fn active_idx(&mut self, idx: u32, res: Events, ncalls: u16) {
        self.activate_with(idx, ncalls, |_| Some(res));
    }

    /// `event_active_nolock_` with the result flags computed from the event's own flags
    /// (`None`: the event is not activated), in one lookup of the slot. An event that is not
    /// queued yet (the dispatch path) is appended to its queue here; the rest is
    /// [`Base::activate_queued`].
    #[inline(always)]
    fn activate_with(
        &mut self,
        idx: u32,
        ncalls: u16,
        res_of: impl FnOnce(Events) -> Option<Events>,
    ) {
        let Some(s) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let Some(res) = res_of(s.events) else {
            return;
        };
        let flags = s.flags;
        if flags & (list::FINALIZING | list::ACTIVE | list::ACTIVE_LATER) != 0 {
            self.activate_queued(idx, res, ncalls);
            return;
        }
        s.res = res;
        if s.events.contains(Events::SIGNAL) {
            s.ncalls = ncalls;
            s.pncalls = false;
        }
        // `event_queue_insert_active`, inline.
        s.flags = flags | list::ACTIVE;
        let pri = s.pri;
        let q = &mut self.queues[pri as usize];
        let tail = q.tail;
        s.prev = tail;
        s.next = NIL;
        q.tail = idx;
        if tail == NIL {
            q.head = idx;
        } else if let Some(t) = self.slots.get_mut(tail as usize) {
            t.next = idx;
        }
        if i32::from(pri) < self.running_priority {
            self.cont = true;
        }
        if flags & list::INTERNAL == 0 {
            self.event_count += 1;
            self.event_count_max = self.event_count_max.max(self.event_count);
        }
        self.event_count_active += 1;
        self.event_count_active_max = self.event_count_active_max.max(self.event_count_active);
    }

    /// [`Base::activate_with`] for an event that is finalizing, active or active-later.
    #[inline(never)]
    fn activate_queued(&mut self, idx: u32, res: Events, ncalls: u16) {
        let running_priority = self.running_priority;
        let Some(s) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let flags = s.flags;
        if flags & (list::FINALIZING | list::ACTIVE) != 0 {
            if flags & list::FINALIZING == 0 {
                s.res |= res;
            }
            return;
        }
        if flags & list::ACTIVE_LATER != 0 {
            s.res |= res;
        } else {
            s.res = res;
        }
        if s.events.contains(Events::SIGNAL) {
            s.ncalls = ncalls;
            s.pncalls = false;
        }
        if (s.pri as i32) < running_priority {
            self.cont = true;
        }
        if flags & list::ACTIVE_LATER != 0 {
            self.remove_active_later(idx);
        }
        self.insert_active(idx);
    }

    fn callback_activate_idx(&mut self, idx: u32) -> bool {
        let f = self.slots[idx as usize].flags;
        if f & list::FINALIZING != 0 {
            return false;
        }
        let mut r = true;
        if f & list::ACTIVE != 0 {
            return false;
        }
        if f & list::ACTIVE_LATER != 0 {
            self.remove_active_later(idx);
            r = false;
        }
        self.insert_active(idx);
        r
    }

    // ----------------------------------------------------------------------------------------
    // Queue membership (event_queue_insert_* / event_queue_remove_*), with libevent's counting

    fn counts(&self, idx: u32) -> bool {
        self.slots[idx as usize].flags & list::INTERNAL == 0
    }

    fn incr(&mut self, idx: u32) {
        if self.counts(idx) {
            self.event_count += 1;
            self.event_count_max = self.event_count_max.max(self.event_count);
        }
    }

    fn decr(&mut self, idx: u32) {
        if self.counts(idx) {
            self.event_count -= 1;
        }
    }

    fn insert_inserted(&mut self, idx: u32) {
        self.incr(idx);
        self.slots[idx as usize].flags |= list::INSERTED;
    }

    fn remove_inserted(&mut self, idx: u32) {
        self.decr(idx);
        self.slots[idx as usize].flags &= !list::INSERTED;
    }

    /// `event_queue_insert_active`: appends to the tail of the event's priority queue (one
    /// lookup of the slot, one of the old tail).
    #[inline]
    fn insert_active(&mut self, idx: u32) {
        let Some(s) = self.slots.get_mut(idx as usize) else {
            return;
        };
        if s.flags & list::ACTIVE != 0 {
            return;
        }
        s.flags |= list::ACTIVE;
        let counted = s.flags & list::INTERNAL == 0;
        let pri = s.pri as usize;
        let q = &mut self.queues[pri];
        let tail = q.tail;
        s.prev = tail;
        s.next = NIL;
        q.tail = idx;
        if tail == NIL {
            q.head = idx;
        } else if let Some(t) = self.slots.get_mut(tail as usize) {
            t.next = idx;
        }
        if counted {
            self.event_count += 1;
            self.event_count_max = self.event_count_max.max(self.event_count);
        }
        self.event_count_active += 1;
        self.event_count_active_max = self.event_count_active_max.max(self.event_count_active);
    }

    /// `event_queue_remove_active`.
    fn remove_active(&mut self, idx: u32) {
        let Some(s) = self.slots.get_mut(idx as usize) else {
            return;
        };
        s.flags &= !list::ACTIVE;
        let counted = s.flags & list::INTERNAL == 0;
        let (prev, next) = (s.prev, s.next);
        let q = &mut self.queues[s.pri as usize];
        if prev == NIL {
            q.head = next;
        } else if let Some(p) = self.slots.get_mut(prev as usize) {
            p.next = next;
        }
        if next == NIL {
            q.tail = prev;
        } else if let Some(n) = self.slots.get_mut(next as usize) {
            n.prev = prev;
        }
        if counted {
            self.event_count -= 1;
        }
        self.event_count_active -= 1;
    }

    fn insert_active_later(&mut self, idx: u32) {
        if self.slots[idx as usize].flags & (list::ACTIVE | list::ACTIVE_LATER) != 0 {
            return;
        }
        self.incr(idx);
        self.event_count_active += 1;
        self.event_count_active_max = self.event_count_active_max.max(self.event_count_active);
        self.slots[idx as usize].flags |= list::ACTIVE_LATER;
        let mut q = self.active_later;
        self.link_tail(&mut q, idx);
        self.active_later = q;
    }

    fn remove_active_later(&mut self, idx: u32) {
        self.decr(idx);
        self.event_count_active -= 1;
        self.slots[idx as usize].flags &= !list::ACTIVE_LATER;
        let mut q = self.active_later;
        self.unlink(&mut q, idx);
        self.active_later = q;
    }

    #[inline(always)]
    fn make_later_events_active(&mut self) {
        if self.active_later.head != NIL {
            self.make_later_events_active_all();
        }
    }

    #[inline(never)]
    fn make_later_events_active_all(&mut self) {
        while self.active_later.head != NIL {
            let idx = self.active_later.head;
            let mut q = self.active_later;
            self.unlink(&mut q, idx);
            self.active_later = q;
            let s = &mut self.slots[idx as usize];
            s.flags = (s.flags & !list::ACTIVE_LATER) | list::ACTIVE;
            let pri = s.pri as usize;
            let mut q = self.queues[pri];
            self.link_tail(&mut q, idx);
            self.queues[pri] = q;
            self.n_deferreds_queued += u32::from(self.slots[idx as usize].closure == Closure::Bare);
        }
    }

    fn insert_timeout(&mut self, idx: u32) {
        self.incr(idx);
        let s = &mut self.slots[idx as usize];
        s.flags |= list::TIMEOUT;
        let (deadline, ci) = (s.timeout, s.common);
        if ci == NO_COMMON {
            self.heap.push(idx, deadline);
        } else {
            self.common_insert_inorder(ci, idx);
        }
    }

    fn remove_timeout(&mut self, idx: u32) {
        self.decr(idx);
        let s = &mut self.slots[idx as usize];
        s.flags &= !list::TIMEOUT;
        let ci = s.common;
        if ci == NO_COMMON {
            self.heap.erase(idx);
        } else {
            let mut l = self.commons[ci as usize].events;
            self.ct_unlink(&mut l, idx);
            self.commons[ci as usize].events = l;
        }
    }

    fn link_tail(&mut self, q: &mut List, idx: u32) {
        let tail = q.tail;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            q.head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        q.tail = idx;
    }

    fn unlink(&mut self, q: &mut List, idx: u32) {
        let (prev, next) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            q.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            q.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Common timeouts

    /// `insert_common_timeout_inorder`: search from the tail for the last entry not later
    /// than the new one, so equal deadlines keep insertion order.
    fn common_insert_inorder(&mut self, ci: u8, idx: u32) {
        let mut l = self.commons[ci as usize].events;
        let t = self.slots[idx as usize].timeout;
        let mut e = l.tail;
        while e != NIL && self.slots[e as usize].timeout > t {
            e = self.extra(e).ct_prev;
        }
        let next = if e == NIL {
            l.head
        } else {
            self.extra(e).ct_next
        };
        {
            let x = self.extra_mut(idx);
            x.ct_prev = e;
            x.ct_next = next;
        }
        if e == NIL {
            l.head = idx;
        } else {
            self.extra_mut(e).ct_next = idx;
        }
        if next == NIL {
            l.tail = idx;
        } else {
            self.extra_mut(next).ct_prev = idx;
        }
        self.commons[ci as usize].events = l;
    }

    fn ct_unlink(&mut self, l: &mut List, idx: u32) {
        let Extra {
            ct_prev: prev,
            ct_next: next,
            ..
        } = self.extra(idx);
        if prev == NIL {
            l.head = next;
        } else {
            self.extra_mut(prev).ct_next = next;
        }
        if next == NIL {
            l.tail = prev;
        } else {
            self.extra_mut(next).ct_prev = prev;
        }
    }

    fn common_timeout_schedule(&mut self, ci: u8) {
        let c = &self.commons[ci as usize];
        let (head, timer) = (c.events.head, c.timer);
        let t = self.slots[head as usize].timeout;
        let _ = self.add_idx(timer, Some(Tv::Abs(t, NO_COMMON)));
    }

    fn common_timeout_callback(&mut self, ci: u8) {
        let now = self.gettime();
        loop {
            let head = self.commons[ci as usize].events.head;
            if head == NIL || self.slots[head as usize].timeout > now {
                break;
            }
            let _ = self.del_idx(head, false);
            self.active_idx(head, Events::TIMEOUT, 1);
        }
        if self.commons[ci as usize].events.head != NIL {
            self.common_timeout_schedule(ci);
        }
    }

    // ----------------------------------------------------------------------------------------
    // evmap: per-fd and per-signal registration

    fn io_add(&mut self, fd: Fd, idx: u32) -> Result<()> {
        if fd < 0 {
            return Ok(());
        }
        let events = self.slots[idx as usize].events;
        let (old, added) = self.io.add(fd, idx, events).map_err(Error::Invalid)?;
        if !added.is_empty() {
            if let Err(e) = self.backend.add(fd, old, (events & Events::ET) | added) {
                self.io.undo_add(fd, idx, events);
                return Err(Error::Io(e));
            }
        }
        Ok(())
    }

    fn io_del(&mut self, fd: Fd, idx: u32) -> Result<()> {
        if fd < 0 {
            return Ok(());
        }
        let events = self.slots[idx as usize].events;
        let (old, removed) = self.io.del(fd, idx, events);
        if !removed.is_empty() {
            self.backend
                .del(fd, old, (events & Events::ET) | removed)
                .map_err(Error::Io)?;
        }
        Ok(())
    }

    /// `evmap_io_active_`: every event on `fd` that wants any reported bit, most recently
    /// added first.
    fn io_active(&mut self, fd: Fd, events: Events) {
        // Activation does not change the map, so the entry's head read once stays valid.
        let (n, head) = self.io.head(fd);
        for k in (0..n).rev() {
            let idx = match head.get(k) {
                Some(&idx) => idx,
                None => match self.io.get(fd, k) {
                    Some(idx) => idx,
                    None => break,
                },
            };
            self.activate_with(idx, 1, |want| {
                want.intersects(events & !Events::ET)
                    .then_some(want & events)
            });
        }
    }

    fn signal_add(&mut self, sig: Fd, idx: u32) -> Result<()> {
        if !(0..NSIG as Fd).contains(&sig) {
            return Err(Error::Invalid("signal number out of range"));
        }
        if self.sigmap.is_empty(sig) {
            self.backend.signal_add(sig)?;
            if !self.sig_event_added {
                let pipe_ev = match self.sig_event {
                    Some(i) => i,
                    None => {
                        let fd = self.backend.signal_fd()?;
                        let i = self.alloc(
                            fd,
                            Events::READ | Events::PERSIST,
                            Closure::Persist,
                            boxed(|b: &mut Base<B>, _, _| b.signal_pipe_callback()),
                        );
                        let s = &mut self.slots[i as usize];
                        s.flags |= list::INTERNAL;
                        s.pri = 0;
                        self.sig_event = Some(i);
                        i
                    }
                };
                if let Err(e) = self.add_idx(pipe_ev, None) {
                    let _ = self.backend.signal_del(sig);
                    return Err(e);
                }
                self.sig_event_added = true;
            }
        }
        self.sigmap.push(sig, idx);
        Ok(())
    }

    fn signal_del(&mut self, sig: Fd, idx: u32) -> Result<()> {
        self.sigmap.remove(sig, idx);
        if self.sigmap.is_empty(sig) {
            self.backend.signal_del(sig)?;
        }
        Ok(())
    }

    /// `evmap_signal_active_`: every event on `sig`, most recently added first.
    fn signal_active(&mut self, sig: i32, ncalls: u16) {
        let n = self.sigmap.len_of(sig);
        for k in (0..n).rev() {
            let Some(idx) = self.sigmap.get(sig, k) else {
                break;
            };
            self.active_idx(idx, Events::SIGNAL, ncalls);
        }
    }

    /// `evsig_cb`: drain the wake-up channel, then activate the signal events.
    fn signal_pipe_callback(&mut self) {
        let mut counts = self.sig_counts;
        counts.fill(0);
        self.backend.signal_drain(&mut counts);
        for (sig, &n) in counts.iter().enumerate() {
            if n > 0 {
                self.signal_active(sig as i32, n.min(i16::MAX as u32) as u16);
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Processing active callbacks

    fn process_active(&mut self) -> i32 {
        let endtime = self.max_dispatch_time.map(|d| {
            self.update_time_cache();
            Time(self.gettime().0.saturating_add(d))
        });
        let mut c = 0;
        #[cfg(not(feature = "test-faults"))]
        let order = 0..self.queues.len();
        #[cfg(feature = "test-faults")]
        let order: Vec<usize> = if self.fault == Some(CoreFault::PriorityInversion) {
            (0..self.queues.len()).rev().collect()
        } else {
            (0..self.queues.len()).collect()
        };
        for pri in order {
            if self.queues[pri].head != NIL {
                self.running_priority = pri as i32;
                c = if (pri as u32) < self.limit_callbacks_after_prio {
                    self.process_queue(pri, u32::MAX, None)
                } else {
                    self.process_queue(pri, self.max_dispatch_callbacks, endtime)
                };
                if c != 0 {
                    break;
                }
            }
        }
        self.running_priority = -1;
        c
    }

    /// Counts a callback about to run and calls the callback hook, if any, before it.
    #[inline(always)]
    fn hook_before(&mut self, idx: u32, pri: usize) -> Option<CallbackInfo> {
        self.callbacks_run += 1;
        if self.callback_hook.is_some() {
            Some(self.call_hook_before(idx, pri))
        } else {
            None
        }
    }

    /// Calls the callback hook, if any, after a callback ran.
    #[inline(always)]
    fn hook_after(&mut self, info: Option<CallbackInfo>) {
        if let Some(i) = info {
            self.call_hook_after(&i);
        }
    }

    // The hook's calls are kept out of the dispatch path's code: without a hook they are never
    // taken, and the path stays in fewer instruction-cache lines (BENCHMARKS.md, "What a callback
    // costs besides its system calls").
    #[cold]
    #[inline(never)]
    fn call_hook_before(&mut self, idx: u32, pri: usize) -> CallbackInfo {
        let info = self.callback_info(idx, pri);
        if let Some(h) = self.callback_hook.as_mut() {
            h(&info, true);
        }
        info
    }

    #[cold]
    #[inline(never)]
    fn call_hook_after(&mut self, info: &CallbackInfo) {
        if let Some(h) = self.callback_hook.as_mut() {
            h(info, false);
        }
    }

    /// `event_process_active_single_queue`: returns -1 on break, else the number of
    /// non-internal callbacks run.
    fn process_queue(&mut self, pri: usize, max: u32, endtime: Option<Time>) -> i32 {
        let mut count: u32 = 0;
        // priority_init may run inside a callback once nothing else is active.
        while let Some(q) = self.queues.get_mut(pri) {
            let idx = q.head;
            let Some(s) = self.slots.get_mut(idx as usize) else {
                break;
            };
            let flags = s.flags;
            let counted = flags & list::INTERNAL == 0;
            if flags & list::INIT != 0
                && !s.events.contains(Events::PERSIST)
                && flags & list::FINALIZING == 0
            {
                let _ = self.del_idx(idx, false);
                if counted {
                    count += 1;
                }
                let info = self.hook_before(idx, pri);
                self.run_closure(idx);
                self.hook_after(info);
            } else {
                // The hot path: a persistent event without a timeout to reschedule runs its
                // callback straight from here, taken out of the slot in the same lookup.
                let no_interval = s.extra == NIL
                    || self
                        .extras
                        .get(s.extra as usize)
                        .is_none_or(|e| e.io_timeout == 0);
                let direct = if s.closure == Closure::Persist && no_interval {
                    s.handler.take().map(|f| (f, s.gen, s.res))
                } else {
                    None
                };
                // `remove_active` of the queue's head: its `prev` is NIL.
                s.flags = flags & !list::ACTIVE;
                let next = s.next;
                q.head = next;
                if next == NIL {
                    q.tail = NIL;
                } else if let Some(n) = self.slots.get_mut(next as usize) {
                    n.prev = NIL;
                }
                if counted {
                    self.event_count -= 1;
                    count += 1;
                }
                self.event_count_active -= 1;
                let info = self.hook_before(idx, pri);
                match direct {
                    Some((mut f, gen, res)) => {
                        f(
                            self,
                            EventId {
                                idx,
                                gen,
                                base: self.tag,
                            },
                            res,
                        );
                        self.put_back(idx, gen, f);
                    }
                    None => self.run_closure(idx),
                }
                self.hook_after(info);
            }
            if self.got_break {
                return -1;
            }
            if count >= max {
                return count as i32;
            }
            if count > 0 {
                if let Some(end) = endtime {
                    self.update_time_cache();
                    if self.gettime() >= end {
                        return count as i32;
                    }
                }
            }
            if self.cont {
                break;
            }
        }
        count as i32
    }

    #[inline(always)]
    fn run_closure(&mut self, idx: u32) {
        let Some(s) = self.slots.get(idx as usize) else {
            return;
        };
        match s.closure {
            Closure::Signal => self.signal_closure(idx),
            Closure::Persist => {
                if s.extra != NIL {
                    self.persist_reschedule(idx);
                }
                let res = self.slots[idx as usize].res;
                self.call(idx, res);
            }
            Closure::Event | Closure::Bare => {
                let res = s.res;
                self.call(idx, res);
            }
        }
    }

    /// `event_persist_closure`'s rescheduling: the next deadline is the previous deadline plus
    /// the interval after a timeout, `now + interval` otherwise or when a deadline was missed.
    fn persist_reschedule(&mut self, idx: u32) {
        let Extra {
            io_timeout: delay,
            io_common: ci,
            ..
        } = self.extra(idx);
        if delay == 0 {
            return;
        }
        let s = &self.slots[idx as usize];
        let (fired_by_timeout, prev) = (s.res.contains(Events::TIMEOUT), s.timeout);
        let now = self.gettime();
        let relative_to = if fired_by_timeout { prev } else { now };
        let mut run_at = Time(relative_to.0.saturating_add(delay));
        if run_at < now {
            run_at = Time(now.0.saturating_add(delay));
        }
        let _ = self.add_idx(idx, Some(Tv::Abs(run_at, ci)));
    }

    /// `event_signal_closure`: call the callback `ncalls` times; a delete or a break stops the
    /// repetitions.
    fn signal_closure(&mut self, idx: u32) {
        let gen = self.slots[idx as usize].gen;
        let ncalls = self.slots[idx as usize].ncalls;
        self.sig_repeats = ncalls;
        if ncalls != 0 {
            self.slots[idx as usize].pncalls = true;
        }
        while self.sig_repeats > 0 {
            self.sig_repeats -= 1;
            let left = self.sig_repeats;
            let s = &mut self.slots[idx as usize];
            if !s.live || s.gen != gen {
                return;
            }
            s.ncalls = left;
            if left == 0 {
                s.pncalls = false;
            }
            let res = s.res;
            self.call(idx, res);
            if self.got_break {
                let s = &mut self.slots[idx as usize];
                if self.sig_repeats != 0 && s.live && s.gen == gen {
                    s.pncalls = false;
                }
                return;
            }
        }
    }

    /// Takes the handler out of the slot, runs it, and puts it back if the slot still holds
    /// the same event.
    ///
    /// The user callback of a full event is the hot path (one per dispatched callback): one slot
    /// lookup to take it, one to put it back; everything else goes through [`Base::call_other`].
    #[inline(always)]
    fn call(&mut self, idx: u32, res: Events) {
        let Some(s) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let gen = s.gen;
        let id = EventId {
            idx,
            gen,
            base: self.tag,
        };
        if let Some(mut f) = s.handler.take() {
            f(self, id, res);
            self.put_back(idx, gen, f);
        }
    }

    /// Returns a callback taken out by [`Base::call`] to its slot, unless the callback freed
    /// the event (then the callback is dropped here).
    #[inline(always)]
    fn put_back(&mut self, idx: u32, gen: u32, f: Callback<B>) {
        if let Some(s) = self.slots.get_mut(idx as usize) {
            if s.live && s.gen == gen && s.handler.is_none() {
                s.handler = Some(f);
                return;
            }
        }
        drop_callback(f);
    }

    fn finish_once(&mut self, idx: u32, gen: u32) {
        let s = &self.slots[idx as usize];
        if s.live && s.gen == gen {
            let _ = self.del_idx(idx, true);
            self.release(idx);
        }
    }
}

/// Restores the loop state when [`Base::run`] returns or unwinds out of a panicking callback.
struct LoopGuard<'a, B: Backend>(&'a mut Base<B>);

impl<B: Backend> Drop for LoopGuard<'_, B> {
    fn drop(&mut self) {
        let b = &mut *self.0;
        b.tv_cache = None;
        b.running_loop = false;
        b.running_priority = -1;
        b.sig_repeats = 0;
        b.cont = false;
    }
}

/// Dropping a base runs what the layers above registered (libevent's `event_base_free` runs
/// the pending finalizers): a bufferevent freed but not yet finalized, and every live
/// bufferevent and listener with `CLOSE_ON_FREE`, close their descriptor, since their handles
/// die with the base. Other descriptors the caller passed in stay open.
impl<B: Backend> Drop for Base<B> {
    fn drop(&mut self) {
        let hooks = std::mem::take(&mut self.drop_hooks);
        for (_, hook) in hooks {
            hook(self);
        }
    }
}

/// A timeout as `event_add_nolock_` receives it: relative (µs) or absolute, with a common index.
#[derive(Clone, Copy, Debug)]
enum Tv {
    Rel(u64, u8),
    Abs(Time, u8),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::EpollBackend;
    use std::cell::Cell;
    use std::rc::Rc;

    fn base() -> Base<EpollBackend> {
        Base::new(EpollBackend::new().expect("epoll"))
    }

    fn is_inline(b: &Base<EpollBackend>, id: EventId) -> bool {
        let h = b.slots[id.idx as usize]
            .handler
            .as_ref()
            .expect("a callback");
        !h.is_heap()
    }

    /// A closure of three words (an `Rc`, a descriptor, an index: the token ring's) lives in
    /// the slot; a larger one on the heap. Both run, with their captures intact.
    #[test]
    fn small_closures_are_stored_in_the_slot() {
        let mut b = base();
        let hits = Rc::new(Cell::new(0usize));
        let (h, fd, i) = (hits.clone(), 7i32, 3usize);
        let small = b
            .timer_new(move |_, _, _| h.set(h.get() + i + fd as usize))
            .unwrap();
        let h = hits.clone();
        let big = [1usize, 2, 3, 4];
        let large = b
            .timer_new(move |_, _, _| h.set(h.get() + big.iter().sum::<usize>()))
            .unwrap();
        assert!(is_inline(&b, small));
        assert!(!is_inline(&b, large));
        b.active(small, Events::TIMEOUT, 1).unwrap();
        b.active(large, Events::TIMEOUT, 1).unwrap();
        b.run(LoopFlags::ONCE | LoopFlags::NONBLOCK).unwrap();
        assert_eq!(hits.get(), 10 + 10);
        assert!(is_inline(&b, small), "put back after running");
    }

    /// A persistent event with a timeout takes an [`Extra`] for its interval; freeing the
    /// event gives it back, and the next event that needs one reuses it.
    #[test]
    fn extras_are_given_back_when_the_event_is_freed() {
        let mut b = base();
        for _ in 0..3 {
            let e = b.timer_new(|_, _, _| {}).unwrap();
            b.add(e, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(b.slots[e.idx as usize].extra, NIL, "a plain timer has none");
            let p = b.event_new(-1, Events::PERSIST, |_, _, _| {}).unwrap();
            b.add(p, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(b.extra(p.idx).io_timeout, 5_000_000);
            b.free(p).unwrap();
            b.free(e).unwrap();
        }
        assert_eq!(b.extras.len(), 1);
        assert_eq!(b.free_extras, [0]);
    }

    /// Re-adding a persistent event with a zero timeout clears the interval it had
    /// (libevent's `ev_io_timeout` becomes zero): once that timeout has fired, nothing
    /// schedules it again.
    #[test]
    fn a_zero_timeout_clears_a_persistent_events_interval() {
        let mut b = base();
        let hits = Rc::new(Cell::new(0u32));
        let h = hits.clone();
        let p = b
            .event_new(-1, Events::PERSIST, move |_, _, _| h.set(h.get() + 1))
            .unwrap();
        b.add(p, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(b.extra(p.idx).io_timeout, 5_000_000);
        b.add(p, Some(Duration::ZERO)).unwrap();
        assert_eq!(b.extra(p.idx).io_timeout, 0);
        b.run(LoopFlags::ONCE).unwrap();
        assert_eq!(hits.get(), 1);
        assert!(
            !b.is_pending(p).unwrap(),
            "rescheduled with a stale interval"
        );
    }

    /// A callback that frees its own event is dropped when it returns, and what it captured
    /// with it; it is not parked in the freed slot until the slot is reused.
    #[test]
    fn a_callback_that_frees_its_event_is_dropped_when_it_returns() {
        let mut b = base();
        let token = Rc::new(());
        for flags in [Events::PERSIST, Events::NONE] {
            let t = token.clone();
            let e = b
                .event_new(-1, flags, move |b, id, _| {
                    let _keep = &t;
                    b.free(id).unwrap();
                })
                .unwrap();
            b.active(e, Events::TIMEOUT, 1).unwrap();
            assert_eq!(Rc::strong_count(&token), 2);
            b.run(LoopFlags::ONCE | LoopFlags::NONBLOCK).unwrap();
            assert_eq!(Rc::strong_count(&token), 1, "flags {flags:?}");
        }
    }
}
