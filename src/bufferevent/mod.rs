//! Bufferevents: buffered I/O over a socket ([`BufferEvent::socket_new`]) or between the two ends
//! of an in-process pair ([`BufferEvent::pair_new`]).
//!
//! This module is libevent's `bufferevent.c`: it owns what every bufferevent shares. That is the
//! registry of bufferevents (kept inside the [`Base`], so that callbacks, which only receive
//! `&mut Base`, can reach them), the user callbacks and how they run (directly, or through one
//! deferred callback per bufferevent with `DEFER_CALLBACKS`), watermarks and read suspension,
//! enable/disable, triggers, the generic timeouts, and the reference count whose last release
//! activates a finalizer callback. `sock.rs` (`bufferevent_sock.c`) and `pair.rs`
//! (`bufferevent_pair.c`) implement the two kinds.
//!
//! Every ordering decision is left to the core: a bufferevent only adds, deletes and activates
//! events and callbacks of its base. It reaches descriptors only through the base's backend.
//!
//! Buffers and their callbacks. In libevent the bufferevent reacts to every change of its input
//! and output buffers through evbuffer callbacks (resume reading inside a drain, start writing on
//! an add, move data to a pair's partner). Here the buffers stay inside the registry, and every
//! method that changes one ([`BufferEvent::write`], [`BufferEvent::drain`],
//! [`BufferEvent::read`], …) performs the change and then the reaction, so it happens at the same
//! point as in libevent. [`BufferEvent::with_input`] and [`BufferEvent::with_output`] give
//! arbitrary access to a buffer; the reaction then runs once, after the closure, for everything
//! it changed.

mod pair;
mod sock;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};
use std::rc::Rc;
use std::time::Duration;

use crate::backend::Backend;
use crate::base::{Base, Error, Result};
use crate::buffer::{EolStyle, EvBuffer};
use crate::event::{EventId, Events, Fd};
use crate::slab::{Slab, SlabKey};

/// Implements the bit operations of a flag set type wrapping an integer.
macro_rules! flag_set {
    ($name:ident, $t:ty) => {
        impl $name {
            /// The empty set.
            pub const NONE: $name = $name(0);
            /// The raw bits, with libevent's values.
            pub const fn bits(self) -> $t {
                self.0
            }
            /// Builds a set from raw bits; unknown bits are kept.
            pub const fn from_bits(bits: $t) -> $name {
                $name(bits)
            }
            /// True if every flag of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// True if any flag of `other` is set.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
            /// True if no flag is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
        }
        impl BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0
            }
        }
        impl BitAnd for $name {
            type Output = $name;
            fn bitand(self, rhs: $name) -> $name {
                $name(self.0 & rhs.0)
            }
        }
        impl Not for $name {
            type Output = $name;
            fn not(self) -> $name {
                $name(!self.0)
            }
        }
    };
}
pub(crate) use flag_set;

/// Bufferevent options (`BEV_OPT_*`, libevent's values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct BevOptions(u32);
flag_set!(BevOptions, u32);

impl BevOptions {
    /// `BEV_OPT_CLOSE_ON_FREE`: close the socket when the bufferevent is finalized.
    pub const CLOSE_ON_FREE: BevOptions = BevOptions(0x01);
    /// `BEV_OPT_THREADSAFE`: accepted; evloop bases are single-threaded.
    pub const THREADSAFE: BevOptions = BevOptions(0x02);
    /// `BEV_OPT_DEFER_CALLBACKS`: run the user callbacks from a deferred callback.
    pub const DEFER_CALLBACKS: BevOptions = BevOptions(0x04);
    /// `BEV_OPT_UNLOCK_CALLBACKS`: accepted (requires `DEFER_CALLBACKS`, as in libevent).
    pub const UNLOCK_CALLBACKS: BevOptions = BevOptions(0x08);
}

/// What an event callback reports (`BEV_EVENT_*`, libevent's values). Any 16-bit value can be
/// delivered with [`BufferEvent::trigger_event`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BevEvents(u16);
flag_set!(BevEvents, u16);

impl BevEvents {
    /// `BEV_EVENT_READING`: the event happened while reading.
    pub const READING: BevEvents = BevEvents(0x01);
    /// `BEV_EVENT_WRITING`: the event happened while writing.
    pub const WRITING: BevEvents = BevEvents(0x02);
    /// `BEV_EVENT_EOF`: end of file.
    pub const EOF: BevEvents = BevEvents(0x10);
    /// `BEV_EVENT_ERROR`: an error; see [`BufferEvent::error`].
    pub const ERROR: BevEvents = BevEvents(0x20);
    /// `BEV_EVENT_TIMEOUT`: a read or write timeout expired.
    pub const TIMEOUT: BevEvents = BevEvents(0x40);
    /// `BEV_EVENT_CONNECTED`: a connect finished.
    pub const CONNECTED: BevEvents = BevEvents(0x80);
}

impl fmt::Display for BevEvents {
    /// `READING|EOF` style, in the order READING, WRITING, EOF, ERROR, TIMEOUT, CONNECTED;
    /// `0` if empty. Bits without a name are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in [
            (BevEvents::READING, "READING"),
            (BevEvents::WRITING, "WRITING"),
            (BevEvents::EOF, "EOF"),
            (BevEvents::ERROR, "ERROR"),
            (BevEvents::TIMEOUT, "TIMEOUT"),
            (BevEvents::CONNECTED, "CONNECTED"),
        ] {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BevEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BevEvents({self})")
    }
}

/// Options of [`BufferEvent::trigger`] (`BEV_TRIG_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TriggerOptions(u32);
flag_set!(TriggerOptions, u32);

impl TriggerOptions {
    /// `BEV_TRIG_IGNORE_WATERMARKS`: run the callback whatever the buffer length.
    pub const IGNORE_WATERMARKS: TriggerOptions = TriggerOptions(1 << 16);
    /// `BEV_TRIG_DEFER_CALLBACKS`: defer the callback (the bit of `BEV_OPT_DEFER_CALLBACKS`).
    pub const DEFER_CALLBACKS: TriggerOptions = TriggerOptions(0x04);
}

/// How [`BufferEvent::flush`] flushes (`enum bufferevent_flush_mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlushMode {
    /// `BEV_NORMAL`: nothing beyond the usual.
    Normal,
    /// `BEV_FLUSH`: move everything, ignoring watermarks.
    Flush,
    /// `BEV_FINISHED`: like `Flush`, and tell the other side that no more data will come.
    Finished,
}

/// A read or write callback: the base and the bufferevent.
pub type DataCb<B> = Box<dyn FnMut(&mut Base<B>, BufferEvent)>;
/// An event callback: the base, the bufferevent and what happened.
pub type EventCb<B> = Box<dyn FnMut(&mut Base<B>, BufferEvent, BevEvents)>;
/// A shared read or write callback ([`BufferEvent::setcb_shared`]): it can be re-entered.
pub type SharedDataCb<B> = Rc<dyn Fn(&mut Base<B>, BufferEvent)>;
/// A shared event callback ([`BufferEvent::setcb_shared`]): it can be re-entered.
pub type SharedEventCb<B> = Rc<dyn Fn(&mut Base<B>, BufferEvent, BevEvents)>;

/// A bufferevent of a [`Base`] (`struct bufferevent *`): a generation-checked handle. Once the
/// bufferevent is freed the handle is stale and every method returns [`Error::StaleId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferEvent {
    idx: u32,
    gen: u32,
    /// The issuing base's tag: a handle given to another base is stale there.
    base: u32,
}

impl fmt::Debug for BufferEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BufferEvent({}#{})", self.idx, self.gen)
    }
}

// --------------------------------------------------------------------------------------------
// State

/// `BEV_SUSPEND_WM`: reading suspended by the read high watermark.
const SUSPEND_WM: u8 = 0x01;
/// The most bytes one socket read asks for (`MAX_SINGLE_READ_DEFAULT`).
const MAX_SINGLE_READ: usize = 16384;
/// The most bytes one socket write hands to the kernel (`MAX_SINGLE_WRITE_DEFAULT`).
const MAX_SINGLE_WRITE: usize = 16384;

enum CbSlot<F, S> {
    Empty,
    Set(F),
    /// A shared callback: it stays in place while it runs, so it can be re-entered.
    Shared(S),
    /// Taken out while it runs.
    Running,
}

impl<F, S> CbSlot<F, S> {
    fn is_set(&self) -> bool {
        !matches!(self, CbSlot::Empty)
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Watermark {
    low: usize,
    high: usize,
}

/// The read high watermark's input-buffer callback (`read_watermarks_cb`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum WmCb {
    Absent,
    Enabled,
    Disabled,
}

/// An error kept for the event callback (libevent's errno).
#[derive(Clone, Copy, Debug)]
struct SavedError {
    raw: Option<i32>,
    kind: io::ErrorKind,
}

impl SavedError {
    fn of(e: &io::Error) -> SavedError {
        SavedError {
            raw: e.raw_os_error(),
            kind: e.kind(),
        }
    }
    fn to_error(self) -> io::Error {
        match self.raw {
            Some(raw) => io::Error::from_raw_os_error(raw),
            None => io::Error::from(self.kind),
        }
    }
}

enum Kind {
    Socket(sock::SockState),
    Pair(pair::PairState),
}

pub(crate) struct Bev<B: Backend> {
    kind: Kind,
    input: EvBuffer,
    output: EvBuffer,
    enabled: Events,
    read_suspended: u8,
    write_suspended: u8,
    wm_read: Watermark,
    wm_write: Watermark,
    read_wm_cb: WmCb,
    timeout_read: Option<Duration>,
    timeout_write: Option<Duration>,
    /// The socket's read event, or a pair's read-timeout timer.
    ev_read: EventId,
    /// The socket's write event, or a pair's write-timeout timer.
    ev_write: EventId,
    deferred: EventId,
    readcb: CbSlot<DataCb<B>, SharedDataCb<B>>,
    writecb: CbSlot<DataCb<B>, SharedDataCb<B>>,
    eventcb: CbSlot<EventCb<B>, SharedEventCb<B>>,
    readcb_pending: bool,
    writecb_pending: bool,
    eventcb_pending: BevEvents,
    errno_pending: Option<SavedError>,
    error: Option<SavedError>,
    options: BevOptions,
    refcnt: u32,
    /// The user freed it: the handle is stale, the state lives on until the finalizer.
    freed: bool,
    /// The last reference is gone and the finalizer is queued: references are no longer
    /// counted, so nothing can finalize it twice.
    finalizing: bool,
}

/// The bufferevents of one base (a slab with generation-checked handles).
pub(crate) type Registry<B> = Slab<Bev<B>, BufferEvent>;

impl SlabKey for BufferEvent {
    fn from_parts(idx: u32, gen: u32, base: u32) -> BufferEvent {
        BufferEvent { idx, gen, base }
    }
    fn tag(self) -> u32 {
        self.base
    }
    fn idx(self) -> u32 {
        self.idx
    }
    fn gen(self) -> u32 {
        self.gen
    }
}

fn bev<B: Backend>(base: &Base<B>, id: BufferEvent) -> Option<&Bev<B>> {
    base.bufferevents.get(id)
}

fn bev_mut<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Option<&mut Bev<B>> {
    base.bufferevents.get_mut(id)
}

/// The bufferevent behind a user's handle: not freed.
fn user<B: Backend>(base: &Base<B>, id: BufferEvent) -> Result<&Bev<B>> {
    match bev(base, id) {
        Some(b) if !b.freed => Ok(b),
        _ => Err(Error::StaleId),
    }
}

fn user_mut<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Result<&mut Bev<B>> {
    match bev_mut(base, id) {
        Some(b) if !b.freed => Ok(b),
        _ => Err(Error::StaleId),
    }
}

/// `bufferevent_init_common_` plus the kind's events: reserves the handle, creates the deferred
/// callback at `npriorities / 2` and the two events (`make_events` receives the handle their
/// callbacks will use), and stores the new bufferevent with `enabled = WRITE`.
fn init_common<B: Backend>(
    base: &mut Base<B>,
    options: BevOptions,
    kind: Kind,
    make_events: impl FnOnce(&mut Base<B>, BufferEvent) -> Result<(EventId, EventId)>,
) -> Result<BufferEvent> {
    if options.contains(BevOptions::UNLOCK_CALLBACKS)
        && !options.contains(BevOptions::DEFER_CALLBACKS)
    {
        return Err(Error::Invalid("UNLOCK_CALLBACKS requires DEFER_CALLBACKS"));
    }
    base.on_drop("bufferevent", close_owned_on_drop::<B>);
    let id = base.bufferevents.reserve();
    let deferred = base.callback_new(move |b, _| run_deferred_callbacks(b, id));
    let pri = base.npriorities() / 2;
    let made = base
        .priority_set(deferred, pri)
        .and_then(|()| make_events(base, id));
    let (ev_read, ev_write) = match made {
        Ok(evs) => evs,
        Err(e) => {
            let _ = base.free(deferred);
            base.bufferevents.release(id);
            return Err(e);
        }
    };
    let mut input = EvBuffer::new();
    input.set_owned();
    let mut output = EvBuffer::new();
    output.set_owned();
    base.bufferevents.fill(
        id,
        Bev {
            kind,
            input,
            output,
            enabled: Events::WRITE,
            read_suspended: 0,
            write_suspended: 0,
            wm_read: Watermark::default(),
            wm_write: Watermark::default(),
            read_wm_cb: WmCb::Absent,
            timeout_read: None,
            timeout_write: None,
            ev_read,
            ev_write,
            deferred,
            readcb: CbSlot::Empty,
            writecb: CbSlot::Empty,
            eventcb: CbSlot::Empty,
            readcb_pending: false,
            writecb_pending: false,
            eventcb_pending: BevEvents::NONE,
            errno_pending: None,
            error: None,
            options,
            refcnt: 1,
            freed: false,
            finalizing: false,
        },
    );
    Ok(id)
}

// --------------------------------------------------------------------------------------------
// Reference count and finalization

fn incref<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    if let Some(b) = bev_mut(base, id) {
        if !b.finalizing {
            b.refcnt += 1;
        }
    }
}

/// `bufferevent_decref_and_unlock_`: the last reference unlinks a pair end from its partner and
/// finalizes: the events and the deferred callback are cancelled and one finalizer callback is
/// activated at the bufferevent's priority. It closes the socket (`CLOSE_ON_FREE`) and releases
/// the state when the loop runs it, and it counts as a callback like any other (e11).
fn decref<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if b.finalizing {
        return;
    }
    debug_assert!(b.refcnt > 0);
    b.refcnt = b.refcnt.saturating_sub(1);
    if b.refcnt > 0 {
        return;
    }
    b.finalizing = true;
    if matches!(b.kind, Kind::Pair(_)) {
        pair::unlink(base, id);
    }
    let Some(b) = bev(base, id) else {
        return;
    };
    let (ev_read, ev_write, deferred) = (b.ev_read, b.ev_write, b.deferred);
    let pri = base
        .priority(ev_read)
        .unwrap_or_else(|_| base.npriorities() / 2);
    let _ = base.free(ev_read);
    let _ = base.free(ev_write);
    let _ = base.callback_cancel(deferred);
    let _ = base.free(deferred);
    let fin = base.callback_new(move |b, me| {
        destruct(b, id);
        let _ = b.free(me);
    });
    let _ = base.priority_set(fin, pri);
    let _ = base.callback_activate(fin);
}

/// The base is being dropped: every handle dies with it, so close the sockets that
/// `CLOSE_ON_FREE` bufferevents own, live ones and freed ones whose finalizer has not run yet
/// (libevent's `event_base_free` runs pending finalizers).
fn close_owned_on_drop<B: Backend>(base: &mut Base<B>) {
    let mut fds = Vec::new();
    for b in base.bufferevents.values_mut() {
        if let Kind::Socket(s) = &mut b.kind {
            if b.options.contains(BevOptions::CLOSE_ON_FREE) && s.fd >= 0 {
                fds.push(s.fd);
                s.fd = -1;
            }
        }
    }
    for fd in fds {
        let _ = base.backend_mut().close(fd);
    }
}

/// `bufferevent_finalize_cb_`: the kind's destructor, then the state goes.
fn destruct<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    if let Some(b) = bev(base, id) {
        if let Kind::Socket(s) = &b.kind {
            if b.options.contains(BevOptions::CLOSE_ON_FREE) && s.fd >= 0 {
                let fd = s.fd;
                let _ = base.backend_mut().close(fd);
            }
        }
    }
    base.bufferevents.release(id);
}

// --------------------------------------------------------------------------------------------
// Running the user callbacks

#[derive(Clone, Copy)]
enum DataKind {
    Read,
    Write,
}

fn data_slot<B: Backend>(
    b: &mut Bev<B>,
    which: DataKind,
) -> &mut CbSlot<DataCb<B>, SharedDataCb<B>> {
    match which {
        DataKind::Read => &mut b.readcb,
        DataKind::Write => &mut b.writecb,
    }
}

/// Calls the read or write callback. An `FnMut` callback is taken out while it runs, so it may
/// call anything, `setcb` and `free` included, but it cannot be re-entered while it runs (a
/// synchronous trigger of a running `FnMut` callback from inside itself is skipped). A shared
/// callback ([`BufferEvent::setcb_shared`]) stays in place and is re-entered, as in libevent.
fn call_data_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent, which: DataKind) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    let slot = data_slot(b, which);
    if let CbSlot::Shared(f) = slot {
        let f = f.clone();
        f(base, id);
        return;
    }
    let mut f = match std::mem::replace(slot, CbSlot::Running) {
        CbSlot::Set(f) => f,
        other => {
            *slot = other;
            return;
        }
    };
    f(base, id);
    if let Some(b) = bev_mut(base, id) {
        let slot = data_slot(b, which);
        if matches!(slot, CbSlot::Running) {
            *slot = CbSlot::Set(f);
        }
    }
}

fn call_event_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: BevEvents) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if let CbSlot::Shared(f) = &b.eventcb {
        let f = f.clone();
        f(base, id, what);
        return;
    }
    let mut f = match std::mem::replace(&mut b.eventcb, CbSlot::Running) {
        CbSlot::Set(f) => f,
        other => {
            b.eventcb = other;
            return;
        }
    };
    f(base, id, what);
    if let Some(b) = bev_mut(base, id) {
        if matches!(b.eventcb, CbSlot::Running) {
            b.eventcb = CbSlot::Set(f);
        }
    }
}

fn defers<B: Backend>(b: &Bev<B>, options: u32) -> bool {
    (b.options.bits() | options) & BevOptions::DEFER_CALLBACKS.bits() != 0
}

/// `SCHEDULE_DEFERRED`: schedule the bufferevent's deferred callback; a new scheduling holds a
/// reference until it runs.
fn schedule_deferred<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev(base, id) else {
        return;
    };
    if base.deferred_schedule(b.deferred).unwrap_or(false) {
        incref(base, id);
    }
}

/// `bufferevent_run_readcb_`.
fn run_readcb<B: Backend>(base: &mut Base<B>, id: BufferEvent, options: u32) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if !b.readcb.is_set() {
        return;
    }
    if defers(b, options) {
        b.readcb_pending = true;
        schedule_deferred(base, id);
    } else {
        call_data_cb(base, id, DataKind::Read);
        inbuf_wm_check(base, id);
    }
}

/// `bufferevent_run_writecb_`.
fn run_writecb<B: Backend>(base: &mut Base<B>, id: BufferEvent, options: u32) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if !b.writecb.is_set() {
        return;
    }
    if defers(b, options) {
        b.writecb_pending = true;
        schedule_deferred(base, id);
    } else {
        call_data_cb(base, id, DataKind::Write);
    }
}

/// `bufferevent_run_eventcb_`. The error the callback can read with [`BufferEvent::error`] is
/// the one kept at this moment (a deferred call keeps it until it runs, like `errno_pending`).
fn run_eventcb<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: BevEvents, options: u32) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if !b.eventcb.is_set() {
        return;
    }
    if defers(b, options) {
        b.eventcb_pending |= what;
        b.errno_pending = b.error;
        schedule_deferred(base, id);
    } else {
        call_event_cb(base, id, what);
    }
}

/// `bufferevent_run_deferred_callbacks_locked`: CONNECTED first, then the read callback, then
/// the write callback, then the remaining event bits, all as they stand now.
fn run_deferred_callbacks<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if b.eventcb_pending.contains(BevEvents::CONNECTED) && b.eventcb.is_set() {
        b.eventcb_pending = b.eventcb_pending & !BevEvents::CONNECTED;
        call_event_cb(base, id, BevEvents::CONNECTED);
    }
    if let Some(b) = bev_mut(base, id) {
        if b.readcb_pending && b.readcb.is_set() {
            b.readcb_pending = false;
            call_data_cb(base, id, DataKind::Read);
            inbuf_wm_check(base, id);
        }
    }
    if let Some(b) = bev_mut(base, id) {
        if b.writecb_pending && b.writecb.is_set() {
            b.writecb_pending = false;
            call_data_cb(base, id, DataKind::Write);
        }
    }
    if let Some(b) = bev_mut(base, id) {
        if !b.eventcb_pending.is_empty() && b.eventcb.is_set() {
            let what = b.eventcb_pending;
            b.eventcb_pending = BevEvents::NONE;
            b.error = b.errno_pending.take();
            call_event_cb(base, id, what);
        }
    }
    decref(base, id);
}

/// `bufferevent_trigger_nolock_`: the read callback if the input reaches the low watermark, the
/// write callback if the output is at or below its low watermark.
fn trigger_nolock<B: Backend>(base: &mut Base<B>, id: BufferEvent, iotype: Events, options: u32) {
    let ignore = options & TriggerOptions::IGNORE_WATERMARKS.bits() != 0;
    if iotype.contains(Events::READ) {
        if let Some(b) = bev(base, id) {
            if ignore || b.input.len() >= b.wm_read.low {
                run_readcb(base, id, options);
            }
        }
    }
    if iotype.contains(Events::WRITE) {
        if let Some(b) = bev(base, id) {
            if ignore || b.output.len() <= b.wm_write.low {
                run_writecb(base, id, options);
            }
        }
    }
}

/// `bufferevent_trigger` with a reference held.
fn trigger_internal<B: Backend>(base: &mut Base<B>, id: BufferEvent, iotype: Events, options: u32) {
    incref(base, id);
    trigger_nolock(base, id, iotype, options);
    decref(base, id);
}

/// `bufferevent_inbuf_wm_check`: after a read callback, while reading is enabled and the input is
/// still at or above the high watermark, schedule the read callback again, always deferred.
fn inbuf_wm_check<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev(base, id) else {
        return;
    };
    if b.wm_read.high == 0 || !b.enabled.contains(Events::READ) || b.input.len() < b.wm_read.high {
        return;
    }
    trigger_internal(base, id, Events::READ, BevOptions::DEFER_CALLBACKS.bits());
}

// --------------------------------------------------------------------------------------------
// Suspension, enabling, the kinds' operations

fn suspend_read<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: u8) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    let was = b.read_suspended;
    b.read_suspended |= what;
    if was == 0 {
        let _ = be_disable(base, id, Events::READ);
    }
}

fn unsuspend_read<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: u8) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    b.read_suspended &= !what;
    if b.read_suspended == 0 && b.enabled.contains(Events::READ) {
        let _ = be_enable(base, id, Events::READ);
    }
}

/// `be_ops->enable`.
fn be_enable<B: Backend>(base: &mut Base<B>, id: BufferEvent, events: Events) -> Result<()> {
    match bev(base, id).map(|b| &b.kind) {
        Some(Kind::Socket(_)) => sock::enable(base, id, events),
        Some(Kind::Pair(_)) => pair::enable(base, id, events),
        None => Err(Error::StaleId),
    }
}

/// `be_ops->disable`.
fn be_disable<B: Backend>(base: &mut Base<B>, id: BufferEvent, events: Events) -> Result<()> {
    match bev(base, id).map(|b| &b.kind) {
        Some(Kind::Socket(_)) => sock::disable(base, id, events),
        Some(Kind::Pair(_)) => pair::disable(base, id, events),
        None => Err(Error::StaleId),
    }
}

/// `bufferevent_enable` (with the reference libevent holds around it).
fn enable_internal<B: Backend>(base: &mut Base<B>, id: BufferEvent, events: Events) -> Result<()> {
    let b = bev_mut(base, id).ok_or(Error::StaleId)?;
    let mut impl_events = events;
    if b.read_suspended != 0 {
        impl_events &= !Events::READ;
    }
    if b.write_suspended != 0 {
        impl_events &= !Events::WRITE;
    }
    b.enabled |= events;
    incref(base, id);
    let r = if impl_events.is_empty() {
        Ok(())
    } else {
        be_enable(base, id, impl_events)
    };
    decref(base, id);
    r
}

/// `bufferevent_disable`.
fn disable_internal<B: Backend>(base: &mut Base<B>, id: BufferEvent, events: Events) -> Result<()> {
    let b = bev_mut(base, id).ok_or(Error::StaleId)?;
    b.enabled &= !events;
    be_disable(base, id, events)
}

/// `bufferevent_add_event_`: add with the timeout, or with none when it is unset.
fn add_event<B: Backend>(base: &mut Base<B>, ev: EventId, tv: Option<Duration>) -> Result<()> {
    base.add(ev, tv)
}

/// The reaction to a change of the input buffer: the high-watermark callback
/// (`bufferevent_inbuf_wm_cb`), which suspends reading at or above high and resumes it (at once)
/// below.
fn input_changed<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if b.input.take_owner_change().is_none() || b.read_wm_cb != WmCb::Enabled {
        return;
    }
    if b.input.len() >= b.wm_read.high {
        suspend_read(base, id, SUSPEND_WM);
    } else {
        unsuspend_read(base, id, SUSPEND_WM);
    }
}

/// The reaction to a change of the output buffer: the kind's output-buffer callback.
fn output_changed<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    let Some(info) = b.output.take_owner_change() else {
        return;
    };
    match b.kind {
        Kind::Socket(_) => sock::outbuf_cb(base, id, info),
        Kind::Pair(_) => pair::outbuf_cb(base, id, info),
    }
}

// --------------------------------------------------------------------------------------------
// Generic timeouts (bufferevents without I/O events of their own: pairs)

fn generic_read_timeout_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    incref(base, id);
    let _ = disable_internal(base, id, Events::READ);
    if let Some(b) = bev_mut(base, id) {
        b.error = None;
    }
    run_eventcb(base, id, BevEvents::TIMEOUT | BevEvents::READING, 0);
    decref(base, id);
}

fn generic_write_timeout_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    incref(base, id);
    let _ = disable_internal(base, id, Events::WRITE);
    if let Some(b) = bev_mut(base, id) {
        b.error = None;
    }
    run_eventcb(base, id, BevEvents::TIMEOUT | BevEvents::WRITING, 0);
    decref(base, id);
}

/// `bufferevent_generic_adj_timeouts_`: arm each timer whose direction is enabled, not
/// suspended and has a timeout (the write one only with pending output); disarm the others.
fn generic_adj_timeouts<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Result<()> {
    let b = bev(base, id).ok_or(Error::StaleId)?;
    let read = (b.enabled.contains(Events::READ) && b.read_suspended == 0)
        .then_some(b.timeout_read)
        .flatten();
    let write =
        (b.enabled.contains(Events::WRITE) && b.write_suspended == 0 && !b.output.is_empty())
            .then_some(b.timeout_write)
            .flatten();
    let (ev_read, ev_write) = (b.ev_read, b.ev_write);
    let r1 = match read {
        Some(t) => base.add(ev_read, Some(t)),
        None => base.del(ev_read),
    };
    let r2 = match write {
        Some(t) => base.add(ev_write, Some(t)),
        None => base.del(ev_write),
    };
    r1.and(r2)
}

/// `bufferevent_generic_adj_existing_timeouts_`: re-arm (or drop) the timeout of each event that
/// is pending now.
fn generic_adj_existing_timeouts<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Result<()> {
    let b = bev(base, id).ok_or(Error::StaleId)?;
    let (ev_read, ev_write, tr, tw) = (b.ev_read, b.ev_write, b.timeout_read, b.timeout_write);
    let mut r = Ok(());
    if base
        .pending(ev_read, Events::READ)?
        .0
        .contains(Events::READ)
    {
        match tr {
            Some(t) => r = add_event(base, ev_read, Some(t)),
            None => base.remove_timer(ev_read)?,
        }
    }
    if base
        .pending(ev_write, Events::WRITE)?
        .0
        .contains(Events::WRITE)
    {
        match tw {
            Some(t) => r = r.and(add_event(base, ev_write, Some(t))),
            None => base.remove_timer(ev_write)?,
        }
    }
    r
}

// --------------------------------------------------------------------------------------------
// The public API

impl BufferEvent {
    /// A bufferevent over the socket `fd` (`bufferevent_socket_new`); `fd` may be -1, for a
    /// later [`BufferEvent::socket_connect`] or [`BufferEvent::setfd`]. Writing is enabled,
    /// reading is not; nothing is added to the base until data is written or a direction is
    /// enabled.
    pub fn socket_new<B: Backend>(
        base: &mut Base<B>,
        fd: Fd,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        sock::new(base, fd, options)
    }

    /// Two bufferevents connected to each other (`bufferevent_pair_new`). Data written to one
    /// arrives in the other's input at once. Callbacks are always deferred.
    pub fn pair_new<B: Backend>(
        base: &mut Base<B>,
        options: BevOptions,
    ) -> Result<(BufferEvent, BufferEvent)> {
        pair::new(base, options)
    }

    /// Sets all three callbacks (`bufferevent_setcb`); `None` removes one. The closures are
    /// dropped when replaced or at [`BufferEvent::free`].
    pub fn setcb<B: Backend>(
        self,
        base: &mut Base<B>,
        readcb: Option<DataCb<B>>,
        writecb: Option<DataCb<B>>,
        eventcb: Option<EventCb<B>>,
    ) -> Result<()> {
        let b = user_mut(base, self)?;
        b.readcb = readcb.map_or(CbSlot::Empty, CbSlot::Set);
        b.writecb = writecb.map_or(CbSlot::Empty, CbSlot::Set);
        b.eventcb = eventcb.map_or(CbSlot::Empty, CbSlot::Set);
        Ok(())
    }

    /// Sets all three callbacks as shared closures (`bufferevent_setcb`); `None` removes one.
    /// Unlike the `FnMut` callbacks of [`BufferEvent::setcb`], a shared callback stays in place
    /// while it runs, so it can be re-entered as in libevent: a synchronous
    /// [`BufferEvent::trigger`] of the read callback from inside itself calls it again at once.
    pub fn setcb_shared<B: Backend>(
        self,
        base: &mut Base<B>,
        readcb: Option<SharedDataCb<B>>,
        writecb: Option<SharedDataCb<B>>,
        eventcb: Option<SharedEventCb<B>>,
    ) -> Result<()> {
        let b = user_mut(base, self)?;
        b.readcb = readcb.map_or(CbSlot::Empty, CbSlot::Shared);
        b.writecb = writecb.map_or(CbSlot::Empty, CbSlot::Shared);
        b.eventcb = eventcb.map_or(CbSlot::Empty, CbSlot::Shared);
        Ok(())
    }

    /// Sets the read callback only.
    pub fn set_readcb<B: Backend>(
        self,
        base: &mut Base<B>,
        f: impl FnMut(&mut Base<B>, BufferEvent) + 'static,
    ) -> Result<()> {
        user_mut(base, self)?.readcb = CbSlot::Set(Box::new(f));
        Ok(())
    }

    /// Sets the write callback only.
    pub fn set_writecb<B: Backend>(
        self,
        base: &mut Base<B>,
        f: impl FnMut(&mut Base<B>, BufferEvent) + 'static,
    ) -> Result<()> {
        user_mut(base, self)?.writecb = CbSlot::Set(Box::new(f));
        Ok(())
    }

    /// Sets the event callback only.
    pub fn set_eventcb<B: Backend>(
        self,
        base: &mut Base<B>,
        f: impl FnMut(&mut Base<B>, BufferEvent, BevEvents) + 'static,
    ) -> Result<()> {
        user_mut(base, self)?.eventcb = CbSlot::Set(Box::new(f));
        Ok(())
    }

    /// Enables reading and/or writing (`bufferevent_enable`). The bits are recorded even while
    /// the direction is suspended; the direction starts when the suspension ends.
    pub fn enable<B: Backend>(self, base: &mut Base<B>, events: Events) -> Result<()> {
        user(base, self)?;
        enable_internal(base, self, events)
    }

    /// Disables reading and/or writing (`bufferevent_disable`).
    pub fn disable<B: Backend>(self, base: &mut Base<B>, events: Events) -> Result<()> {
        user(base, self)?;
        disable_internal(base, self, events)
    }

    /// The enabled directions (`bufferevent_get_enabled`).
    pub fn enabled<B: Backend>(self, base: &Base<B>) -> Result<Events> {
        Ok(user(base, self)?.enabled)
    }

    /// Sets the watermarks of READ and/or WRITE (`bufferevent_setwatermark`). A read high
    /// watermark > 0 suspends reading while the input holds at least `high` bytes.
    pub fn setwatermark<B: Backend>(
        self,
        base: &mut Base<B>,
        events: Events,
        low: usize,
        high: usize,
    ) -> Result<()> {
        let b = user_mut(base, self)?;
        if events.contains(Events::WRITE) {
            b.wm_write = Watermark { low, high };
        }
        if events.contains(Events::READ) {
            b.wm_read = Watermark { low, high };
            if high != 0 {
                b.read_wm_cb = WmCb::Enabled;
                if b.input.len() >= high {
                    suspend_read(base, self, SUSPEND_WM);
                } else {
                    unsuspend_read(base, self, SUSPEND_WM);
                }
            } else {
                if b.read_wm_cb == WmCb::Enabled {
                    b.read_wm_cb = WmCb::Disabled;
                }
                unsuspend_read(base, self, SUSPEND_WM);
            }
        }
        Ok(())
    }

    /// The `(low, high)` watermarks of exactly one of READ or WRITE
    /// (`bufferevent_getwatermark`).
    pub fn getwatermark<B: Backend>(
        self,
        base: &Base<B>,
        events: Events,
    ) -> Result<(usize, usize)> {
        let b = user(base, self)?;
        let wm = if events == Events::WRITE {
            b.wm_write
        } else if events == Events::READ {
            b.wm_read
        } else {
            return Err(Error::Invalid(
                "getwatermark takes exactly one of READ or WRITE",
            ));
        };
        Ok((wm.low, wm.high))
    }

    /// Sets the read and write timeouts (`bufferevent_set_timeouts`); `None` or zero means no
    /// timeout. A socket re-arms only the events pending now; a pair re-evaluates both timers.
    pub fn set_timeouts<B: Backend>(
        self,
        base: &mut Base<B>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> Result<()> {
        let b = user_mut(base, self)?;
        b.timeout_read = read.filter(|d| !d.is_zero());
        b.timeout_write = write.filter(|d| !d.is_zero());
        match b.kind {
            Kind::Socket(_) => generic_adj_existing_timeouts(base, self),
            Kind::Pair(_) => generic_adj_timeouts(base, self),
        }
    }

    /// Appends `data` to the output (`bufferevent_write`).
    pub fn write<B: Backend>(self, base: &mut Base<B>, data: &[u8]) -> Result<()> {
        let r = user_mut(base, self)?.output.add(data);
        output_changed(base, self);
        r
    }

    /// Moves all of `buf` to the output (`bufferevent_write_buffer`).
    pub fn write_buffer<B: Backend>(self, base: &mut Base<B>, buf: &mut EvBuffer) -> Result<()> {
        let r = user_mut(base, self)?.output.add_buffer(buf);
        output_changed(base, self);
        r
    }

    /// Removes up to `out.len()` bytes from the input (`bufferevent_read`).
    pub fn read<B: Backend>(self, base: &mut Base<B>, out: &mut [u8]) -> Result<usize> {
        let r = user_mut(base, self)?.input.remove(out);
        input_changed(base, self);
        r
    }

    /// Moves the whole input to `buf` (`bufferevent_read_buffer`).
    pub fn read_buffer<B: Backend>(self, base: &mut Base<B>, buf: &mut EvBuffer) -> Result<()> {
        let r = buf.add_buffer(&mut user_mut(base, self)?.input);
        input_changed(base, self);
        r
    }

    /// Drops the first `n` bytes of the input (`evbuffer_drain` on `bufferevent_get_input`).
    /// Going below the read high watermark resumes reading inside this call.
    pub fn drain<B: Backend>(self, base: &mut Base<B>, n: usize) -> Result<()> {
        let r = user_mut(base, self)?.input.drain(n);
        input_changed(base, self);
        r
    }

    /// Removes one line from the input (`evbuffer_readln` on `bufferevent_get_input`): the line
    /// is removed and its end-of-line marker drained in two steps, each with its reaction.
    pub fn readln<B: Backend>(
        self,
        base: &mut Base<B>,
        style: EolStyle,
    ) -> Result<Option<Vec<u8>>> {
        let b = user(base, self)?;
        if b.input.is_frozen(true) {
            return Ok(None);
        }
        let Some((pos, eol)) = b.input.search_eol(0, style) else {
            return Ok(None);
        };
        let mut line = vec![0; pos];
        self.read(base, &mut line)?;
        if let Some(b) = bev_mut(base, self) {
            let _ = b.input.drain(eol);
            input_changed(base, self);
        }
        Ok(Some(line))
    }

    /// The input buffer, to look at (`bufferevent_get_input`).
    pub fn input<B: Backend>(self, base: &Base<B>) -> Result<&EvBuffer> {
        Ok(&user(base, self)?.input)
    }

    /// The output buffer, to look at (`bufferevent_get_output`).
    pub fn output<B: Backend>(self, base: &Base<B>) -> Result<&EvBuffer> {
        Ok(&user(base, self)?.output)
    }

    /// Runs `f` on the input buffer, then the bufferevent's reaction to what `f` changed.
    pub fn with_input<B: Backend, R>(
        self,
        base: &mut Base<B>,
        f: impl FnOnce(&mut EvBuffer) -> R,
    ) -> Result<R> {
        let r = f(&mut user_mut(base, self)?.input);
        input_changed(base, self);
        Ok(r)
    }

    /// Runs `f` on the output buffer, then the bufferevent's reaction to what `f` changed.
    pub fn with_output<B: Backend, R>(
        self,
        base: &mut Base<B>,
        f: impl FnOnce(&mut EvBuffer) -> R,
    ) -> Result<R> {
        let r = f(&mut user_mut(base, self)?.output);
        output_changed(base, self);
        Ok(r)
    }

    /// Flushes (`bufferevent_flush`). A socket does nothing; a pair moves data to (WRITE) or from
    /// (READ) its partner ignoring watermarks, and `Finished` gives the partner an EOF event.
    /// Fails on a pair end without a partner.
    pub fn flush<B: Backend>(
        self,
        base: &mut Base<B>,
        iotype: Events,
        mode: FlushMode,
    ) -> Result<()> {
        match user(base, self)?.kind {
            Kind::Socket(_) => Ok(()),
            Kind::Pair(_) => pair::flush(base, self, iotype, mode),
        }
    }

    /// Frees the bufferevent (`bufferevent_free`): the callbacks go at once and the handle is
    /// stale; the rest (closing the socket with `CLOSE_ON_FREE`) happens in a finalizer callback
    /// once nothing holds the bufferevent, at the loop's next pass over the active queues. Data
    /// left in the output is not flushed. A pair end is unlinked from its partner, which gets no
    /// event.
    pub fn free<B: Backend>(self, base: &mut Base<B>) -> Result<()> {
        let b = user_mut(base, self)?;
        b.freed = true;
        b.readcb = CbSlot::Empty;
        b.writecb = CbSlot::Empty;
        b.eventcb = CbSlot::Empty;
        decref(base, self);
        Ok(())
    }

    /// Connects a socket bufferevent created with fd -1 to `addr`
    /// (`bufferevent_socket_connect`). The outcome arrives as an event: CONNECTED, or ERROR
    /// (no direction bit). A connection that completes at once gives a deferred write callback
    /// first; one refused at once gives a deferred ERROR and disables both directions.
    pub fn socket_connect<B: Backend>(self, base: &mut Base<B>, addr: SocketAddr) -> Result<()> {
        match user(base, self)?.kind {
            Kind::Socket(_) => sock::connect(base, self, addr),
            Kind::Pair(_) => Err(Error::Invalid("socket_connect on a pair")),
        }
    }

    /// Runs the read and/or write callback if the watermarks allow it, or always with
    /// `IGNORE_WATERMARKS` (`bufferevent_trigger`); synchronous unless deferred by the options.
    pub fn trigger<B: Backend>(
        self,
        base: &mut Base<B>,
        iotype: Events,
        options: TriggerOptions,
    ) -> Result<()> {
        user(base, self)?;
        let all = TriggerOptions::IGNORE_WATERMARKS | TriggerOptions::DEFER_CALLBACKS;
        trigger_internal(base, self, iotype, (options & all).bits());
        Ok(())
    }

    /// Runs the event callback with `what` (`bufferevent_trigger_event`).
    pub fn trigger_event<B: Backend>(
        self,
        base: &mut Base<B>,
        what: BevEvents,
        options: TriggerOptions,
    ) -> Result<()> {
        user(base, self)?;
        let all = TriggerOptions::IGNORE_WATERMARKS | TriggerOptions::DEFER_CALLBACKS;
        incref(base, self);
        run_eventcb(base, self, what, (options & all).bits());
        decref(base, self);
        Ok(())
    }

    /// The socket (`bufferevent_getfd`); -1 for a pair or a socket bufferevent without one.
    pub fn fd<B: Backend>(self, base: &Base<B>) -> Result<Fd> {
        Ok(match &user(base, self)?.kind {
            Kind::Socket(s) => s.fd,
            Kind::Pair(_) => -1,
        })
    }

    /// Replaces the socket (`bufferevent_setfd`): the events are recreated on `fd` (at the
    /// default priority, as `event_assign` does) and the enabled directions re-enabled.
    pub fn setfd<B: Backend>(self, base: &mut Base<B>, fd: Fd) -> Result<()> {
        match user(base, self)?.kind {
            Kind::Socket(_) => sock::setfd(base, self, fd),
            Kind::Pair(_) => Err(Error::Invalid("setfd on a pair")),
        }
    }

    /// The other end of a pair (`bufferevent_pair_get_partner`); `None` for a socket or after
    /// the partner was freed.
    pub fn partner<B: Backend>(self, base: &Base<B>) -> Result<Option<BufferEvent>> {
        Ok(match &user(base, self)?.kind {
            Kind::Pair(p) => p.partner,
            Kind::Socket(_) => None,
        })
    }

    /// Sets the priority of the socket's events and deferred callback
    /// (`bufferevent_priority_set`). Fails for pairs, as in libevent.
    pub fn priority_set<B: Backend>(self, base: &mut Base<B>, pri: usize) -> Result<()> {
        let b = user(base, self)?;
        if matches!(b.kind, Kind::Pair(_)) {
            return Err(Error::Invalid("priority_set on a pair"));
        }
        let (r, w, d) = (b.ev_read, b.ev_write, b.deferred);
        base.priority_set(r, pri)?;
        base.priority_set(w, pri)?;
        // libevent sets the deferred callback's priority field even while it is queued.
        let _ = base.priority_set(d, pri);
        Ok(())
    }

    /// The priority of the bufferevent's events (`bufferevent_get_priority`).
    pub fn priority<B: Backend>(self, base: &Base<B>) -> Result<usize> {
        base.priority(user(base, self)?.ev_read)
    }

    /// The options it was created with (a pair always has `DEFER_CALLBACKS`).
    pub fn options<B: Backend>(self, base: &Base<B>) -> Result<BevOptions> {
        Ok(user(base, self)?.options)
    }

    /// The error behind the last ERROR event (libevent leaves it in `errno`); meant to be read
    /// inside the event callback.
    pub fn error<B: Backend>(self, base: &Base<B>) -> Result<Option<io::Error>> {
        Ok(user(base, self)?.error.map(SavedError::to_error))
    }

    /// True while the handle names a bufferevent that was not freed.
    pub fn is_live<B: Backend>(self, base: &Base<B>) -> bool {
        user(base, self).is_ok()
    }
}
