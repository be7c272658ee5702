//! `struct bufferevent`: an evloop `BufferEvent` of a base, with its two buffers' handles and
//! the C callbacks.

use std::ffi::{c_int, c_short, c_void};
use std::ptr;
use std::rc::Rc;

use evloop::bufferevent::{SharedDataCb, SharedEventCb};
use evloop::{BevEvents, BevOptions, BufferEvent, EvBuffer, Events, FlushMode, TriggerOptions};

use crate::base::{cbase, tv_duration, CBase, B};
use crate::buffer::CBuf;
use crate::evutil::read_sockaddr;
use crate::UserArg;

/// `bufferevent_data_cb`.
pub type bufferevent_data_cb = Option<unsafe extern "C" fn(*mut CBev, *mut c_void)>;
/// `bufferevent_event_cb`.
pub type bufferevent_event_cb = Option<unsafe extern "C" fn(*mut CBev, c_short, *mut c_void)>;

/// `struct bufferevent`.
pub struct CBev {
    base: *mut CBase,
    id: BufferEvent,
    input: CBuf,
    output: CBuf,
    readcb: bufferevent_data_cb,
    writecb: bufferevent_data_cb,
    eventcb: bufferevent_event_cb,
    arg: UserArg,
    /// The `getaddrinfo` error of the last `bufferevent_socket_connect_hostname`, or 0.
    dns_error: c_int,
}

/// The bufferevent behind a handle and its base.
///
/// # Safety
/// `p` is NULL or a live `struct bufferevent *`.
unsafe fn get<'a>(p: *mut CBev) -> Option<(&'a mut CBev, &'a CBase)> {
    // SAFETY: the caller's contract; a bufferevent's base outlives it.
    unsafe {
        let b = p.as_mut()?;
        let c = cbase(b.base)?;
        Some((b, c))
    }
}

/// Wraps a new evloop bufferevent in a `CBev` registered with its base.
fn wrap(base: *mut CBase, c: &CBase, id: BufferEvent) -> *mut CBev {
    let p = Box::into_raw(Box::new(CBev {
        base,
        id,
        input: CBuf::of_bev(base, id, true),
        output: CBuf::of_bev(base, id, false),
        readcb: None,
        writecb: None,
        eventcb: None,
        arg: ptr::null_mut(),
        dns_error: 0,
    }));
    // SAFETY: the map is touched only by this thread and no reference into it is live.
    unsafe { (*c.bevs.get()).insert(id, p) };
    p
}

ffi! {
    /// `bufferevent_socket_new`: a bufferevent on `fd` (-1: none yet); free it with
    /// `bufferevent_free`. NULL on failure.
    fn bufferevent_socket_new(base: *mut CBase, fd: c_int, options: c_int) -> *mut CBev {
        // SAFETY: `base` is NULL or live.
        let Some(c) = (unsafe { cbase(base) }) else {
            return ptr::null_mut();
        };
        match c.with(|b| BufferEvent::socket_new(b, fd, BevOptions::from_bits(options as u32))) {
            Ok(id) => wrap(base, c, id),
            Err(_) => ptr::null_mut(),
        }
    }
}

ffi! {
    /// `bufferevent_pair_new`: two connected bufferevents in `pair[0]`, `pair[1]`. 0 or -1.
    fn bufferevent_pair_new(base: *mut CBase, options: c_int, pair: *mut *mut CBev) -> c_int {
        nonnull!(pair, -1);
        // SAFETY: `base` is NULL or live.
        let Some(c) = (unsafe { cbase(base) }) else {
            return -1;
        };
        match c.with(|b| BufferEvent::pair_new(b, BevOptions::from_bits(options as u32))) {
            Ok((x, y)) => {
                // SAFETY: `pair` has two writable slots.
                unsafe {
                    *pair = wrap(base, c, x);
                    *pair.add(1) = wrap(base, c, y);
                }
                0
            }
            Err(_) => -1,
        }
    }
}

ffi! {
    /// `bufferevent_pair_get_partner`: the other end, or NULL once it is freed.
    fn bufferevent_pair_get_partner(bev: *mut CBev) -> *mut CBev {
        // SAFETY: `bev` is NULL or live.
        let Some((b, c)) = (unsafe { get(bev) }) else {
            return ptr::null_mut();
        };
        let id = b.id;
        let Some(Some(p)) = c.with(|bb| id.partner(bb).ok()) else {
            return ptr::null_mut();
        };
        // SAFETY: the map is touched only by this thread and no reference into it is live.
        unsafe { (*c.bevs.get()).get(&p).copied() }.unwrap_or(ptr::null_mut())
    }
}

ffi! {
    /// `bufferevent_free`: the bufferevent is gone for the caller at once; evloop finishes it
    /// (closing the socket with `BEV_OPT_CLOSE_ON_FREE`) in a finalizer.
    fn bufferevent_free(bev: *mut CBev) {
        // SAFETY: `bev` is NULL or live.
        let Some((b, c)) = (unsafe { get(bev) }) else {
            return;
        };
        let id = b.id;
        // SAFETY: the map is touched only by this thread and no reference into it is live.
        unsafe { (*c.bevs.get()).remove(&id) };
        c.with(|bb| {
            let _ = id.free(bb);
        });
        // SAFETY: `bev` came from Box::into_raw in `wrap`; it was removed from the map, so it
        // is freed once. evloop dropped its callbacks, which are the only other users.
        drop(unsafe { Box::from_raw(bev) });
    }
}

ffi! {
    /// `bufferevent_setcb`: the three callbacks (NULL: none) and their argument.
    fn bufferevent_setcb(
        bev: *mut CBev,
        readcb: bufferevent_data_cb,
        writecb: bufferevent_data_cb,
        eventcb: bufferevent_event_cb,
        arg: UserArg,
    ) {
        // SAFETY: `bev` is NULL or live.
        let Some((b, c)) = (unsafe { get(bev) }) else {
            return;
        };
        b.readcb = readcb;
        b.writecb = writecb;
        b.eventcb = eventcb;
        b.arg = arg;
        let this = c as *const CBase;
        let data = |f: Option<unsafe extern "C" fn(*mut CBev, *mut c_void)>| {
            f.map(|f| {
                Rc::new(move |b: &mut evloop::Base<B>, _: BufferEvent| {
                    // SAFETY: the base outlives the bufferevent's callbacks.
                    let c = unsafe { &*this };
                    let _g = c.enter(b);
                    // SAFETY: the user's callback, called as libevent calls it; `bev` is live
                    // while evloop still holds its callbacks.
                    unsafe { f(bev, arg) }
                }) as SharedDataCb<B>
            })
        };
        let ev = eventcb.map(|f| {
            Rc::new(move |b: &mut evloop::Base<B>, h: BufferEvent, what: BevEvents| {
                if what.contains(BevEvents::ERROR) {
                    let e = h.error(b).ok().flatten().and_then(|e| e.raw_os_error());
                    crate::set_errno(e.unwrap_or(0));
                }
                // SAFETY: the base outlives the bufferevent's callbacks.
                let c = unsafe { &*this };
                let _g = c.enter(b);
                // SAFETY: as for the data callbacks.
                unsafe { f(bev, what.bits() as c_short, arg) }
            }) as SharedEventCb<B>
        });
        let id = b.id;
        let (r, w) = (data(readcb), data(writecb));
        c.with(|bb| {
            let _ = id.setcb_shared(bb, r, w, ev);
        });
    }
}

ffi! {
    /// `bufferevent_getcb`: the callbacks and argument; NULL outputs are skipped.
    fn bufferevent_getcb(
        bev: *mut CBev,
        readcb: *mut bufferevent_data_cb,
        writecb: *mut bufferevent_data_cb,
        eventcb: *mut bufferevent_event_cb,
        arg: *mut UserArg,
    ) {
        // SAFETY: `bev` is NULL or live.
        let Some((b, _)) = (unsafe { get(bev) }) else {
            return;
        };
        // SAFETY: every non-NULL output is writable.
        unsafe {
            if !readcb.is_null() {
                *readcb = b.readcb;
            }
            if !writecb.is_null() {
                *writecb = b.writecb;
            }
            if !eventcb.is_null() {
                *eventcb = b.eventcb;
            }
            if !arg.is_null() {
                *arg = b.arg;
            }
        }
    }
}

/// Runs `f` on the bufferevent's base and handle; `err` if `bev` is NULL.
///
/// # Safety
/// `bev` is NULL or live.
unsafe fn with_bev<R>(
    bev: *mut CBev,
    err: R,
    f: impl FnOnce(&mut evloop::Base<B>, BufferEvent) -> R,
) -> R {
    // SAFETY: the caller's contract.
    match unsafe { get(bev) } {
        Some((b, c)) => {
            let id = b.id;
            c.with(|bb| f(bb, id))
        }
        None => err,
    }
}

fn rc<T>(r: evloop::Result<T>) -> c_int {
    if r.is_ok() {
        0
    } else {
        -1
    }
}

ffi! {
    /// `bufferevent_enable`: EV_READ and/or EV_WRITE. 0 or -1.
    fn bufferevent_enable(bev: *mut CBev, event: c_short) -> c_int {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.enable(b, Events::from_bits(event as u16)))) }
    }
}

ffi! {
    /// `bufferevent_disable`. 0 or -1.
    fn bufferevent_disable(bev: *mut CBev, event: c_short) -> c_int {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.disable(b, Events::from_bits(event as u16)))) }
    }
}

ffi! {
    /// `bufferevent_get_enabled`.
    fn bufferevent_get_enabled(bev: *mut CBev) -> c_short {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, 0, |b, id| id.enabled(b).map_or(0, |e| e.bits() as c_short)) }
    }
}

ffi! {
    /// `bufferevent_write`: appends `size` bytes to the output. 0 or -1.
    fn bufferevent_write(bev: *mut CBev, data: *const c_void, size: usize) -> c_int {
        if size > 0 && data.is_null() {
            return -1;
        }
        let bytes: &[u8] = if size == 0 {
            &[]
        } else {
            // SAFETY: `data` is readable for `size` bytes.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) }
        };
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.write(b, bytes))) }
    }
}

ffi! {
    /// `bufferevent_write_buffer`: moves all of `buf` to the output. 0 or -1.
    fn bufferevent_write_buffer(bev: *mut CBev, buf: *mut CBuf) -> c_int {
        nonnull!(buf, -1);
        nonnull!(bev, -1);
        // SAFETY: `buf` is live.
        let Some(mut tmp) = (unsafe { (*buf).take_all() }) else {
            return -1;
        };
        // SAFETY: `bev` is live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.write_buffer(b, &mut tmp))) }
    }
}

ffi! {
    /// `bufferevent_read`: removes up to `size` bytes from the input; how many.
    fn bufferevent_read(bev: *mut CBev, data: *mut c_void, size: usize) -> usize {
        if size == 0 || data.is_null() {
            return 0;
        }
        // SAFETY: `data` is writable for `size` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), size) };
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, 0, |b, id| id.read(b, out).unwrap_or(0)) }
    }
}

ffi! {
    /// `bufferevent_read_buffer`: moves the whole input to `buf`. 0 or -1.
    fn bufferevent_read_buffer(bev: *mut CBev, buf: *mut CBuf) -> c_int {
        nonnull!(buf, -1);
        let mut tmp = EvBuffer::new();
        // SAFETY: `bev` is NULL or live.
        if unsafe { with_bev(bev, -1, |b, id| rc(id.read_buffer(b, &mut tmp))) } != 0 {
            return -1;
        }
        // SAFETY: `buf` is live.
        if unsafe { (*buf).put_all(&mut tmp) } {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `bufferevent_get_input`: the input buffer (owned by the bufferevent).
    fn bufferevent_get_input(bev: *mut CBev) -> *mut CBuf {
        nonnull!(bev, ptr::null_mut());
        // SAFETY: `bev` is live; the field's address stays valid while it lives.
        unsafe { ptr::addr_of_mut!((*bev).input) }
    }
}

ffi! {
    /// `bufferevent_get_output`: the output buffer (owned by the bufferevent).
    fn bufferevent_get_output(bev: *mut CBev) -> *mut CBuf {
        nonnull!(bev, ptr::null_mut());
        // SAFETY: `bev` is live; the field's address stays valid while it lives.
        unsafe { ptr::addr_of_mut!((*bev).output) }
    }
}

ffi! {
    /// `bufferevent_get_base`.
    fn bufferevent_get_base(bev: *mut CBev) -> *mut CBase {
        nonnull!(bev, ptr::null_mut());
        // SAFETY: `bev` is live.
        unsafe { (*bev).base }
    }
}

ffi! {
    /// `bufferevent_setwatermark`: the low and high watermarks of EV_READ and/or EV_WRITE.
    fn bufferevent_setwatermark(bev: *mut CBev, events: c_short, low: usize, high: usize) {
        // SAFETY: `bev` is NULL or live.
        unsafe {
            with_bev(bev, (), |b, id| {
                let _ = id.setwatermark(b, Events::from_bits(events as u16), low, high);
            })
        }
    }
}

ffi! {
    /// `bufferevent_getwatermark`: exactly one of EV_READ or EV_WRITE. 0 or -1.
    fn bufferevent_getwatermark(bev: *mut CBev, events: c_short, low: *mut usize, high: *mut usize) -> c_int {
        // SAFETY: `bev` is NULL or live.
        let r = unsafe { with_bev(bev, None, |b, id| id.getwatermark(b, Events::from_bits(events as u16)).ok()) };
        let Some((l, h)) = r else {
            return -1;
        };
        // SAFETY: non-NULL outputs are writable.
        unsafe {
            if !low.is_null() {
                *low = l;
            }
            if !high.is_null() {
                *high = h;
            }
        }
        0
    }
}

ffi! {
    /// `bufferevent_set_timeouts`: NULL or zero means none. 0 or -1.
    fn bufferevent_set_timeouts(bev: *mut CBev, tv_read: *const libc::timeval, tv_write: *const libc::timeval) -> c_int {
        // SAFETY: NULL or readable timevals.
        let (r, w) = unsafe { (tv_read.as_ref().map(tv_duration), tv_write.as_ref().map(tv_duration)) };
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.set_timeouts(b, r, w))) }
    }
}

ffi! {
    /// `bufferevent_settimeout` (deprecated): timeouts in whole seconds (0: none).
    fn bufferevent_settimeout(bev: *mut CBev, timeout_read: c_int, timeout_write: c_int) {
        let d = |s: c_int| (s > 0).then(|| std::time::Duration::from_secs(s as u64));
        // SAFETY: `bev` is NULL or live.
        unsafe {
            with_bev(bev, (), |b, id| {
                let _ = id.set_timeouts(b, d(timeout_read), d(timeout_write));
            })
        }
    }
}

ffi! {
    /// `bufferevent_flush`: `BEV_NORMAL`, `BEV_FLUSH` or `BEV_FINISHED`. 0 or -1.
    fn bufferevent_flush(bev: *mut CBev, iotype: c_short, mode: c_int) -> c_int {
        let m = match mode {
            0 => FlushMode::Normal,
            1 => FlushMode::Flush,
            2 => FlushMode::Finished,
            _ => return -1,
        };
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.flush(b, Events::from_bits(iotype as u16), m))) }
    }
}

ffi! {
    /// `bufferevent_trigger`: runs the read and/or write callback (watermarks permitting).
    fn bufferevent_trigger(bev: *mut CBev, iotype: c_short, options: c_int) {
        // SAFETY: `bev` is NULL or live.
        unsafe {
            with_bev(bev, (), |b, id| {
                let _ = id.trigger(
                    b,
                    Events::from_bits(iotype as u16),
                    TriggerOptions::from_bits(options as u32),
                );
            })
        }
    }
}

ffi! {
    /// `bufferevent_trigger_event`: runs the event callback with `what`.
    fn bufferevent_trigger_event(bev: *mut CBev, what: c_short, options: c_int) {
        // SAFETY: `bev` is NULL or live.
        unsafe {
            with_bev(bev, (), |b, id| {
                let _ = id.trigger_event(
                    b,
                    BevEvents::from_bits(what as u16),
                    TriggerOptions::from_bits(options as u32),
                );
            })
        }
    }
}

ffi! {
    /// `bufferevent_socket_connect`: connects a bufferevent without a socket to `sa`
    /// (IPv4/IPv6). 0 or -1.
    fn bufferevent_socket_connect(bev: *mut CBev, sa: *const libc::sockaddr, socklen: c_int) -> c_int {
        // SAFETY: `sa` is NULL or readable for `socklen` bytes.
        let Some(addr) = (unsafe { read_sockaddr(sa, socklen) }) else {
            return -1;
        };
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.socket_connect(b, addr))) }
    }
}

ffi! {
    /// `bufferevent_getfd`: the socket, or -1.
    fn bufferevent_getfd(bev: *mut CBev) -> c_int {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| id.fd(b).unwrap_or(-1)) }
    }
}

ffi! {
    /// `bufferevent_setfd`: replaces the socket. 0 or -1.
    fn bufferevent_setfd(bev: *mut CBev, fd: c_int) -> c_int {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.setfd(b, fd))) }
    }
}

ffi! {
    /// `bufferevent_priority_set`. 0 or -1.
    fn bufferevent_priority_set(bev: *mut CBev, pri: c_int) -> c_int {
        if pri < 0 {
            return -1;
        }
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev, -1, |b, id| rc(id.priority_set(b, pri as usize))) }
    }
}

ffi! {
    /// `bufferevent_get_priority`.
    fn bufferevent_get_priority(bev: *const CBev) -> c_int {
        // SAFETY: `bev` is NULL or live.
        unsafe { with_bev(bev.cast_mut(), -1, |b, id| id.priority(b).map_or(-1, |p| p as c_int)) }
    }
}

ffi! {
    /// `bufferevent_lock`: no-op (no threads).
    fn bufferevent_lock(_bev: *mut CBev) {}
}

ffi! {
    /// `bufferevent_unlock`: no-op (no threads).
    fn bufferevent_unlock(_bev: *mut CBev) {}
}

ffi! {
    /// `bufferevent_base_set`: only the bufferevent's own base is accepted (0); -1 otherwise.
    fn bufferevent_base_set(base: *mut CBase, bev: *mut CBev) -> c_int {
        nonnull!(bev, -1);
        // SAFETY: `bev` is live.
        if unsafe { (*bev).base } == base {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `bufferevent_new` (deprecated): `bufferevent_socket_new` on the current base with the
    /// callbacks set and no options.
    fn bufferevent_new(
        fd: c_int,
        readcb: bufferevent_data_cb,
        writecb: bufferevent_data_cb,
        eventcb: bufferevent_event_cb,
        arg: UserArg,
    ) -> *mut CBev {
        // SAFETY: the current base is NULL or live.
        let b = unsafe { bufferevent_socket_new(crate::base::current_base(), fd, 0) };
        if !b.is_null() {
            // SAFETY: `b` was just created.
            unsafe { bufferevent_setcb(b, readcb, writecb, eventcb, arg) };
        }
        b
    }
}

ffi! {
    /// `bufferevent_socket_get_dns_error`: the `getaddrinfo` error (`EVUTIL_EAI_*`) of the last
    /// `bufferevent_socket_connect_hostname`, or 0.
    fn bufferevent_socket_get_dns_error(bev: *mut CBev) -> c_int {
        nonnull!(bev, -1);
        // SAFETY: `bev` is live.
        unsafe { (*bev).dns_error }
    }
}

ffi! {
    /// `bufferevent_socket_connect_hostname`: resolves `hostname` with a blocking
    /// `getaddrinfo` (as libevent does without a DNS base; an evdns base is not used) and
    /// connects to the first address. A failed resolution reports BEV_EVENT_ERROR (its code
    /// in `bufferevent_socket_get_dns_error`) and returns 0, as libevent does; -1 for bad
    /// arguments.
    fn bufferevent_socket_connect_hostname(
        bev: *mut CBev,
        _dns_base: *mut c_void,
        family: c_int,
        hostname: *const std::ffi::c_char,
        port: c_int,
    ) -> c_int {
        nonnull!(bev, -1);
        nonnull!(hostname, -1);
        if !(1..=65535).contains(&port)
            || ![libc::AF_UNSPEC, libc::AF_INET, libc::AF_INET6].contains(&family)
        {
            return -1;
        }
        // SAFETY: sockaddr hints are plain old data.
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = family;
        hints.ai_socktype = libc::SOCK_STREAM;
        hints.ai_protocol = libc::IPPROTO_TCP;
        let service = std::ffi::CString::new(port.to_string()).unwrap_or_default();
        let mut res: *mut libc::addrinfo = ptr::null_mut();
        // SAFETY: NUL-terminated strings, valid hints, a writable result pointer.
        let err = unsafe { libc::getaddrinfo(hostname, service.as_ptr(), &hints, &mut res) };
        // SAFETY: `bev` is live.
        unsafe { (*bev).dns_error = err };
        if err != 0 || res.is_null() {
            // SAFETY: `bev` is live.
            unsafe {
                with_bev(bev, (), |b, id| {
                    let _ = id.trigger_event(b, BevEvents::ERROR, TriggerOptions::NONE);
                })
            };
            return 0;
        }
        // SAFETY: `res` is a list from getaddrinfo; its first entry's address is readable.
        let addr = unsafe { read_sockaddr((*res).ai_addr, (*res).ai_addrlen as c_int) };
        // SAFETY: `res` came from getaddrinfo.
        unsafe { libc::freeaddrinfo(res) };
        match addr {
            // SAFETY: `bev` is live.
            Some(a) => unsafe { with_bev(bev, -1, |b, id| rc(id.socket_connect(b, a))) },
            None => -1,
        }
    }
}
