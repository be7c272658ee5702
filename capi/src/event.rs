//! `struct event`: a small record at the start of libevent's 128-byte `struct event`, in caller
//! memory (`event_assign`) or `calloc`'d memory (`event_new`). It names the base and the evloop
//! event; the callback and its argument are kept for the `event_get_*` accessors.

use std::collections::HashMap;
use std::ffi::{c_int, c_short, c_void};
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr;
use std::sync::Mutex;

use evloop::{EventId, Events, Timeout};

use crate::base::{cbase, clock_diff, current_base, is_live, tv_duration, wall_tv, CBase};
use crate::UserArg;

/// libevent's `event_callback_fn`.
pub type event_callback_fn = Option<unsafe extern "C" fn(c_int, c_short, *mut c_void)>;

/// `sizeof(struct event)` in libevent 2.1.12 on this platform (`event_get_struct_event_size`).
pub const STRUCT_EVENT_SIZE: usize = 128;

/// Marks memory that holds a [`CEvent`] (after `event_assign` / `event_new`).
const MAGIC: u64 = 0x6576_6c6f_6f70_4556; // "evloopEV"

/// evloop's state inside a `struct event`.
#[repr(C)]
pub struct CEvent {
    magic: u64,
    base: *mut CBase,
    id: EventId,
    fd: c_int,
    events: c_short,
    /// Allocated by `event_new` (freed by `event_free`).
    heap: bool,
    /// `event_finalize`/`event_free_finalize` was called: the finalizer is queued.
    finalizing: bool,
    cb: event_callback_fn,
    arg: UserArg,
}

const _: () = assert!(std::mem::size_of::<CEvent>() <= STRUCT_EVENT_SIZE);
const _: () = assert!(std::mem::align_of::<CEvent>() <= 8);

/// The address `event_self_cbarg` returns.
static SELF_CBARG: u8 = 0;

/// Every `struct event` address holding an assigned event: (its base, its evloop id). Validity
/// is decided here, so memory that was never assigned (uninitialised caller memory) is never
/// read, and a record the caller overwrote is not trusted.
///
/// A hash map keyed by address (looked up on every `event_add`/`event_del`; a search tree of a
/// thousand events cost some 170 instructions a lookup). Nothing iterates it in an order that
/// matters: `forget_base` only removes entries.
static ASSIGNED: Mutex<HashMap<usize, (usize, EventId), BuildHasherDefault<AddrHasher>>> =
    Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));

/// Hashes an address: a multiply by a 64-bit odd constant (Fibonacci hashing), then the high
/// half folded into the low one. The map picks buckets by the low bits, and those of a plain
/// product would only depend on the address's low bits, which alignment makes all zero.
#[derive(Default)]
struct AddrHasher(u64);

impl AddrHasher {
    fn mix(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.mix(u64::from(b));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

fn lookup(ev: *const CEvent) -> Option<(usize, EventId)> {
    ASSIGNED.lock().ok()?.get(&crate::addr(ev)).copied()
}

/// The map's table is released once it is empty: a program that freed all its events and bases
/// leaves nothing allocated behind (memcheck reports a static table still held at exit as
/// possibly lost, since the map points into the middle of its allocation).
fn release_if_empty(m: &mut HashMap<usize, (usize, EventId), BuildHasherDefault<AddrHasher>>) {
    if m.is_empty() && m.capacity() > 0 {
        m.shrink_to_fit();
    }
}

fn forget(ev: *const CEvent) {
    if let Ok(mut m) = ASSIGNED.lock() {
        m.remove(&crate::addr(ev));
        release_if_empty(&mut m);
    }
}

/// Forgets every event of a base being freed.
pub(crate) fn forget_base(base: *const CBase) {
    if let Ok(mut m) = ASSIGNED.lock() {
        m.retain(|_, (b, _)| *b != crate::addr(base));
        release_if_empty(&mut m);
    }
}

/// The record at `ev`, if `ev` holds an event of a live base.
///
/// # Safety
/// `ev` is NULL or points at `STRUCT_EVENT_SIZE` readable, 8-aligned bytes.
pub(crate) unsafe fn get<'a>(ev: *mut CEvent) -> Option<(&'a CEvent, &'a CBase)> {
    let (base, id) = lookup(ev)?;
    if !is_live(base as *const CBase) {
        return None;
    }
    // SAFETY: `ev` was assigned by us (it is registered), so the record was written by
    // `assign`; it is checked against the registry before use.
    let e = unsafe { ev.as_ref()? };
    if e.magic != MAGIC || crate::addr(e.base) != base || e.id != id {
        return None;
    }
    // SAFETY: the base is live (checked above).
    let b = unsafe { cbase(e.base)? };
    Some((e, b))
}

/// Assigns an event at `ev` (shared by `event_assign`, `event_new` and `event_set`).
///
/// # Safety
/// `ev` points at `STRUCT_EVENT_SIZE` writable, 8-aligned bytes; `base` is a live base.
unsafe fn assign(
    ev: *mut CEvent,
    base: *mut CBase,
    fd: c_int,
    events: c_short,
    cb: event_callback_fn,
    mut arg: UserArg,
    heap: bool,
) -> c_int {
    // SAFETY: the caller's contract.
    let Some(c) = (unsafe { cbase(base) }) else {
        return -1;
    };
    // Memory that still holds an event of a live base (assigned again, or reused after the
    // program freed it without `event_free`): that event is freed in its base.
    if let Some((ob, id)) = lookup(ev) {
        forget(ev);
        if is_live(ob as *const CBase) {
            // SAFETY: the base is live.
            if let Some(ob) = unsafe { cbase(ob as *mut CBase) } {
                ob.with(|b| {
                    let _ = b.free(id);
                });
            }
        }
    }
    if arg == ptr::addr_of!(SELF_CBARG) as UserArg {
        arg = ev.cast();
    }
    let this = c as *const CBase;
    let f = cb;
    let r = c.with(|b| {
        // The closure captures three words (the base, the callback, its argument), so that it
        // is stored in the event's slot (evloop's `Callback`); the fd is the event's own.
        b.event_new(fd, Events::from_bits(events as u16), move |b, id, what| {
            let fd = b.fd_of(id).unwrap_or(-1);
            // SAFETY: the base outlives its events' callbacks.
            let c = unsafe { &*this };
            let _g = c.enter(b);
            if let Some(f) = f {
                // SAFETY: the user's callback, called as libevent calls it.
                unsafe { f(fd, what.bits() as c_short, arg) }
            }
        })
    });
    let Ok(id) = r else {
        return -1;
    };
    // SAFETY: `ev` is writable for a CEvent (the caller's contract).
    unsafe {
        ev.write(CEvent {
            magic: MAGIC,
            base,
            id,
            fd,
            events,
            heap,
            finalizing: false,
            cb,
            arg,
        })
    };
    if let Ok(mut m) = ASSIGNED.lock() {
        m.insert(crate::addr(ev), (crate::addr(base), id));
    }
    0
}

ffi! {
    /// `event_assign`: prepares the `struct event` at `ev` (caller memory of
    /// `event_get_struct_event_size()` bytes). 0, or -1 for invalid flags.
    fn event_assign(
        ev: *mut CEvent,
        base: *mut CBase,
        fd: c_int,
        events: c_short,
        cb: event_callback_fn,
        arg: UserArg,
    ) -> c_int {
        nonnull!(ev, -1);
        nonnull!(base, -1);
        // SAFETY: libevent's contract for `ev` and `base`.
        unsafe { assign(ev, base, fd, events, cb, arg, false) }
    }
}

ffi! {
    /// `event_new`: a new event; free it with `event_free`. NULL on invalid flags.
    fn event_new(
        base: *mut CBase,
        fd: c_int,
        events: c_short,
        cb: event_callback_fn,
        arg: UserArg,
    ) -> *mut CEvent {
        nonnull!(base, ptr::null_mut());
        // SAFETY: calloc of libevent's size; checked for NULL below.
        let ev = unsafe { libc::calloc(1, STRUCT_EVENT_SIZE) }.cast::<CEvent>();
        nonnull!(ev, ptr::null_mut());
        // SAFETY: `ev` is fresh zeroed memory of the right size; `base` is live.
        if unsafe { assign(ev, base, fd, events, cb, arg, true) } != 0 {
            // SAFETY: `ev` came from calloc above.
            unsafe { libc::free(ev.cast()) };
            return ptr::null_mut();
        }
        ev
    }
}

ffi! {
    /// `event_set` (deprecated): `event_assign` on the current base of `event_init`.
    fn event_set(
        ev: *mut CEvent,
        fd: c_int,
        events: c_short,
        cb: event_callback_fn,
        arg: UserArg,
    ) {
        let base = current_base();
        if ev.is_null() || base.is_null() {
            return;
        }
        // SAFETY: libevent's contract for `ev`; the current base is live.
        unsafe { assign(ev, base, fd, events, cb, arg, false) };
    }
}

ffi! {
    /// `event_free`: deletes the event and frees what `event_new` allocated.
    fn event_free(ev: *mut CEvent) {
        // SAFETY: `ev` is NULL or an event.
        if let Some((e, c)) = unsafe { get(ev) } {
            let (id, heap) = (e.id, e.heap);
            c.with(|b| {
                let _ = b.free(id);
            });
            forget(ev);
            // SAFETY: `ev` is writable; the record is cleared so the memory is no event.
            unsafe { (*ev).magic = 0 };
            if heap {
                // SAFETY: `ev` came from calloc in event_new.
                unsafe { libc::free(ev.cast()) };
            }
        }
    }
}

ffi! {
    /// `event_debug_unassign`: forgets the event (it must not be pending).
    fn event_debug_unassign(ev: *mut CEvent) {
        // SAFETY: `ev` is NULL or an event.
        if let Some((e, c)) = unsafe { get(ev) } {
            let id = e.id;
            c.with(|b| {
                let _ = b.free(id);
            });
            forget(ev);
            // SAFETY: `ev` is writable.
            unsafe { (*ev).magic = 0 };
        }
    }
}

/// Runs `f` on an event's base and id; `err` if `ev` is no event.
///
/// # Safety
/// `ev` is NULL or points at a `struct event`'s memory.
unsafe fn with_event<R>(
    ev: *mut CEvent,
    err: R,
    f: impl FnOnce(&mut evloop::Base<crate::base::B>, &CEvent, &CBase) -> R,
) -> R {
    // SAFETY: the caller's contract.
    match unsafe { get(ev) } {
        Some((e, c)) => c.with(|b| f(b, e, c)),
        None => err,
    }
}

ffi! {
    /// `event_add`: makes the event pending, with a timeout if `tv` is not NULL (a common
    /// timeout of the event's base is recognised). 0 or -1.
    fn event_add(ev: *mut CEvent, tv: *const libc::timeval) -> c_int {
        // SAFETY: `tv` is NULL or readable.
        let tv = unsafe { tv.as_ref() };
        // SAFETY: `ev` is NULL or an event.
        unsafe {
            with_event(ev, -1, |b, e, c| {
                let t = tv.map(|tv| match c.common_of(tv) {
                    Some(ct) => Timeout::Common(ct),
                    None => Timeout::After(tv_duration(tv)),
                });
                if b.add_with(e.id, t).is_ok() {
                    0
                } else {
                    -1
                }
            })
        }
    }
}

ffi! {
    /// `event_del`: makes the event non-pending and non-active. 0 or -1.
    fn event_del(ev: *mut CEvent) -> c_int {
        // SAFETY: `ev` is NULL or an event.
        unsafe { with_event(ev, -1, |b, e, _| if b.del(e.id).is_ok() { 0 } else { -1 }) }
    }
}

ffi! {
    /// `event_del_block`: as `event_del` (no threads).
    fn event_del_block(ev: *mut CEvent) -> c_int {
        // SAFETY: forwards the caller's pointer.
        unsafe { event_del(ev) }
    }
}

ffi! {
    /// `event_del_noblock`: as `event_del` (no threads).
    fn event_del_noblock(ev: *mut CEvent) -> c_int {
        // SAFETY: forwards the caller's pointer.
        unsafe { event_del(ev) }
    }
}

ffi! {
    /// `event_remove_timer`: removes only the timeout. 0 or -1.
    fn event_remove_timer(ev: *mut CEvent) -> c_int {
        // SAFETY: `ev` is NULL or an event.
        unsafe {
            with_event(ev, -1, |b, e, _| {
                if b.remove_timer(e.id).is_ok() {
                    0
                } else {
                    -1
                }
            })
        }
    }
}

ffi! {
    /// `event_active`: makes the event active with `res` (`ncalls`: signal events only).
    fn event_active(ev: *mut CEvent, res: c_int, ncalls: c_short) {
        // SAFETY: `ev` is NULL or an event.
        unsafe {
            with_event(ev, (), |b, e, _| {
                let _ = b.active(e.id, Events::from_bits(res as u16), ncalls as u16);
            })
        }
    }
}

ffi! {
    /// `event_pending`: the subset of `events` the event is pending or active for; with
    /// EV_TIMEOUT pending and `tv` not NULL, its deadline on the wall clock.
    fn event_pending(ev: *const CEvent, events: c_short, tv: *mut libc::timeval) -> c_int {
        // SAFETY: `ev` is NULL or an event; `tv` is NULL or writable.
        unsafe {
            with_event(ev.cast_mut(), 0, |b, e, _| {
                let Ok((flags, deadline)) = b.pending(e.id, Events::from_bits(events as u16))
                else {
                    return 0;
                };
                if let (Some(t), false) = (deadline, tv.is_null()) {
                    let w = wall_tv(t, clock_diff(b));
                    // `tv` is writable (not NULL): the enclosing block's SAFETY covers it.
                    *tv = w;
                }
                flags.bits() as c_int
            })
        }
    }
}

ffi! {
    /// `event_initialized`: 1 if `ev` holds an assigned event.
    fn event_initialized(ev: *const CEvent) -> c_int {
        // SAFETY: `ev` is NULL or an event's memory.
        unsafe { get(ev.cast_mut()) }.is_some() as c_int
    }
}

ffi! {
    /// `event_priority_set`: -1 if the event is active or `pri` out of range.
    fn event_priority_set(ev: *mut CEvent, pri: c_int) -> c_int {
        if pri < 0 {
            return -1;
        }
        // SAFETY: `ev` is NULL or an event.
        unsafe {
            with_event(ev, -1, |b, e, _| {
                if b.priority_set(e.id, pri as usize).is_ok() {
                    0
                } else {
                    -1
                }
            })
        }
    }
}

ffi! {
    /// `event_get_priority`.
    fn event_get_priority(ev: *const CEvent) -> c_int {
        // SAFETY: `ev` is NULL or an event.
        unsafe {
            with_event(ev.cast_mut(), -1, |b, e, _| {
                b.priority(e.id).map(|p| p as c_int).unwrap_or(-1)
            })
        }
    }
}

ffi! {
    /// `event_get_fd`: the descriptor or signal number.
    fn event_get_fd(ev: *const CEvent) -> c_int {
        // SAFETY: `ev` is NULL or an event.
        unsafe { get(ev.cast_mut()) }.map_or(-1, |(e, _)| e.fd)
    }
}

ffi! {
    /// `event_get_events`: the flags it was assigned with.
    fn event_get_events(ev: *const CEvent) -> c_short {
        // SAFETY: `ev` is NULL or an event.
        unsafe { get(ev.cast_mut()) }.map_or(0, |(e, _)| e.events)
    }
}

ffi! {
    /// `event_get_callback`.
    fn event_get_callback(ev: *const CEvent) -> event_callback_fn {
        // SAFETY: `ev` is NULL or an event.
        unsafe { get(ev.cast_mut()) }.and_then(|(e, _)| e.cb)
    }
}

ffi! {
    /// `event_get_callback_arg`.
    fn event_get_callback_arg(ev: *const CEvent) -> UserArg {
        // SAFETY: `ev` is NULL or an event.
        unsafe { get(ev.cast_mut()) }.map_or(ptr::null_mut(), |(e, _)| e.arg)
    }
}

ffi! {
    /// `event_get_base`.
    fn event_get_base(ev: *const CEvent) -> *mut CBase {
        // SAFETY: `ev` is NULL or an event.
        unsafe { get(ev.cast_mut()) }.map_or(ptr::null_mut(), |(e, _)| e.base)
    }
}

ffi! {
    /// `event_get_assignment`: every field `event_assign` was given; NULL outputs are skipped.
    fn event_get_assignment(
        ev: *const CEvent,
        base_out: *mut *mut CBase,
        fd_out: *mut c_int,
        events_out: *mut c_short,
        callback_out: *mut event_callback_fn,
        arg_out: *mut UserArg,
    ) {
        // SAFETY: `ev` is NULL or an event.
        let Some((e, _)) = (unsafe { get(ev.cast_mut()) }) else {
            return;
        };
        // SAFETY: every non-NULL output pointer is writable (libevent's contract).
        unsafe {
            if !base_out.is_null() {
                *base_out = e.base;
            }
            if !fd_out.is_null() {
                *fd_out = e.fd;
            }
            if !events_out.is_null() {
                *events_out = e.events;
            }
            if !callback_out.is_null() {
                *callback_out = e.cb;
            }
            if !arg_out.is_null() {
                *arg_out = e.arg;
            }
        }
    }
}

ffi! {
    /// `event_get_struct_event_size`: libevent's `sizeof(struct event)`.
    fn event_get_struct_event_size() -> usize {
        STRUCT_EVENT_SIZE
    }
}

ffi! {
    /// `event_self_cbarg`: the magic argument that makes `event_new` pass the event itself.
    fn event_self_cbarg() -> UserArg {
        ptr::addr_of!(SELF_CBARG) as UserArg
    }
}

ffi! {
    /// `event_base_set`: moves a non-pending event to `base` (at its default priority). 0 or
    /// -1.
    fn event_base_set(base: *mut CBase, ev: *mut CEvent) -> c_int {
        nonnull!(base, -1);
        // SAFETY: `ev` is NULL or an event.
        let Some((e, c)) = (unsafe { get(ev) }) else {
            return -1;
        };
        let pending = c.with(|b| b.is_pending(e.id).unwrap_or(true));
        if pending {
            return -1;
        }
        let (fd, events, cb, arg, heap) = (e.fd, e.events, e.cb, e.arg, e.heap);
        // SAFETY: `ev` holds an event (checked); `base` is live (the caller's contract).
        unsafe { assign(ev, base, fd, events, cb, arg, heap) }
    }
}

/// libevent's `event_finalize_callback_fn`.
pub type event_finalize_callback_fn = Option<unsafe extern "C" fn(*mut CEvent, *mut c_void)>;

/// `event_finalize` / `event_free_finalize`: deletes the event, then runs `cb(ev, arg)` from
/// the loop, as a callback at the event's priority (libevent activates the event itself with
/// `EV_FINALIZE`); `free` then frees the event as `event_free` would.
///
/// # Safety
/// `ev` is NULL or points at a `struct event`'s memory.
unsafe fn finalize(ev: *mut CEvent, cb: event_finalize_callback_fn, free: bool) -> c_int {
    // SAFETY: the caller's contract.
    let Some((e, c)) = (unsafe { get(ev) }) else {
        return -1;
    };
    if e.finalizing {
        // libevent: deleting and activating a finalizing event are no-ops; it still returns 0
        // and the finalizer runs once.
        return 0;
    }
    let (id, arg, heap) = (e.id, e.arg, e.heap);
    let this = c as *const CBase;
    let r = c.with(|b| {
        let _ = b.del(id);
        let pri = b.priority(id).unwrap_or(0);
        let fin = b.callback_new(move |b, me| {
            let _ = b.free(me);
            if let Some(f) = cb {
                // SAFETY: the base outlives its callbacks.
                let c = unsafe { &*this };
                let _g = c.enter(b);
                // SAFETY: the user's finalizer, called as libevent calls it; the event's
                // memory is still the caller's (or ours, freed just below).
                unsafe { f(ev, arg) };
            }
            if free {
                // The event may have been freed or re-assigned by the finalizer: only the
                // record we registered is released.
                if lookup(ev) == Some((crate::addr(this), id)) {
                    let _ = b.free(id);
                    forget(ev);
                    // SAFETY: `ev` still holds our record (registered), so it is writable.
                    unsafe { (*ev).magic = 0 };
                    if heap {
                        // SAFETY: `ev` came from calloc in event_new.
                        unsafe { libc::free(ev.cast()) };
                    }
                }
            }
        });
        let _ = b.priority_set(fin, pri);
        b.callback_activate(fin)
    });
    if r.is_err() {
        return -1;
    }
    // SAFETY: `ev` holds our record.
    unsafe { (*ev).finalizing = true };
    0
}

ffi! {
    /// `event_finalize`: deletes the event and runs `cb(ev, arg)` from the loop; the memory stays
    /// the caller's. 0 (also when it is already being finalized: the finalizer runs once).
    fn event_finalize(_flags: u32, ev: *mut CEvent, cb: event_finalize_callback_fn) -> c_int {
        // SAFETY: forwards the caller's pointer.
        unsafe { finalize(ev, cb, false) }
    }
}

ffi! {
    /// `event_free_finalize`: as `event_finalize`, then frees the event as `event_free` does.
    fn event_free_finalize(_flags: u32, ev: *mut CEvent, cb: event_finalize_callback_fn) -> c_int {
        // SAFETY: forwards the caller's pointer.
        unsafe { finalize(ev, cb, true) }
    }
}
