//! `struct evconnlistener`: an evloop `Listener` and its C callbacks.

use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use std::ptr;
use std::sync::Mutex;

use evloop::{Listener, ListenerOptions};

use crate::base::{cbase, CBase, B};
use crate::evutil::{read_sockaddr, write_sockaddr};
use crate::UserArg;

/// `evconnlistener_cb`.
pub type evconnlistener_cb =
    Option<unsafe extern "C" fn(*mut CLev, c_int, *mut libc::sockaddr, c_int, *mut c_void)>;
/// `evconnlistener_errorcb`.
pub type evconnlistener_errorcb = Option<unsafe extern "C" fn(*mut CLev, *mut c_void)>;

/// `struct evconnlistener`.
pub struct CLev {
    base: *mut CBase,
    id: Listener,
    cb: evconnlistener_cb,
    errcb: evconnlistener_errorcb,
    arg: UserArg,
}

/// Live listeners (base address, listener address), released with their base.
static LIVE: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Frees the wrappers of `base`'s listeners (at `event_base_free`).
pub(crate) fn free_all(base: *mut CBase) {
    let mine: Vec<usize> = match LIVE.lock() {
        Ok(mut v) => {
            let mine = v
                .iter()
                .filter(|(b, _)| *b == crate::addr(base))
                .map(|(_, l)| *l)
                .collect();
            v.retain(|(b, _)| *b != crate::addr(base));
            mine
        }
        Err(_) => Vec::new(),
    };
    for l in mine {
        // SAFETY: every registered address came from Box::into_raw in `make` and is removed
        // from LIVE before it is freed, so it is freed once.
        drop(unsafe { Box::from_raw(l as *mut CLev) });
    }
}

/// The listener behind a handle and its base.
///
/// # Safety
/// `p` is NULL or a live `struct evconnlistener *`.
unsafe fn get<'a>(p: *mut CLev) -> Option<(&'a mut CLev, &'a CBase)> {
    // SAFETY: the caller's contract; a listener's base outlives it.
    unsafe {
        let l = p.as_mut()?;
        let c = cbase(l.base)?;
        Some((l, c))
    }
}

/// The evloop accept callback that calls the C one stored in `lp`.
fn accept_cb(this: *const CBase, lp: *mut CLev) -> evloop::listener::AcceptCb<B> {
    Box::new(move |b, _, fd, addr: SocketAddr| {
        // SAFETY: `lp` is live while evloop holds its callbacks (freed after they are dropped).
        let (cb, arg) = unsafe { ((*lp).cb, (*lp).arg) };
        // SAFETY: sockaddr_storage is plain old data.
        let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is writable for its size.
        let len = unsafe {
            write_sockaddr(
                &addr,
                ptr::addr_of_mut!(st).cast(),
                std::mem::size_of::<libc::sockaddr_storage>(),
            )
        };
        // SAFETY: the base outlives its listeners' callbacks.
        let c = unsafe { &*this };
        let _g = c.enter(b);
        match cb {
            // SAFETY: the user's callback, called as libevent calls it.
            Some(f) => unsafe { f(lp, fd, ptr::addr_of_mut!(st).cast(), len as c_int, arg) },
            None => {
                // SAFETY: nobody takes the connection: close it.
                unsafe { libc::close(fd) };
            }
        }
    })
}

fn make(
    base: *mut CBase,
    c: &CBase,
    id: Listener,
    cb: evconnlistener_cb,
    arg: UserArg,
) -> *mut CLev {
    let lp = Box::into_raw(Box::new(CLev {
        base,
        id,
        cb,
        errcb: None,
        arg,
    }));
    if cb.is_some() {
        let f = accept_cb(c, lp);
        c.with(|b| {
            let _ = id.set_cb(b, Some(f));
        });
    }
    if let Ok(mut v) = LIVE.lock() {
        v.push((crate::addr(base), crate::addr(lp)));
    }
    lp
}

/// `LEV_OPT_*` evloop accepts: `LEAVE_SOCKETS_BLOCKING` is dropped (accepted sockets are
/// always nonblocking on evloop), as are `DEFERRED_ACCEPT` and `BIND_IPV6ONLY` for
/// `evconnlistener_new` (they only matter when binding).
fn options(flags: u32) -> ListenerOptions {
    ListenerOptions::from_bits(flags & !(1 << 0) & !(1 << 6) & !(1 << 8))
}

ffi! {
    /// `evconnlistener_new`: a listener on the bound socket `fd`; `backlog` > 0 calls
    /// `listen(fd, backlog)`, < 0 `listen(fd, 128)`, 0 nothing. Free it with
    /// `evconnlistener_free`. NULL on failure.
    fn evconnlistener_new(
        base: *mut CBase,
        cb: evconnlistener_cb,
        arg: UserArg,
        flags: u32,
        backlog: c_int,
        fd: c_int,
    ) -> *mut CLev {
        // SAFETY: `base` is NULL or live.
        let Some(c) = (unsafe { cbase(base) }) else {
            return ptr::null_mut();
        };
        if backlog != 0 {
            // SAFETY: listen on the caller's descriptor.
            if unsafe { libc::listen(fd, if backlog > 0 { backlog } else { 128 }) } < 0 {
                return ptr::null_mut();
            }
        }
        // Start disabled: the C callback is installed next, then the listener enabled.
        let opts = options(flags);
        let Ok(id) = c.with(|b| Listener::new(b, fd, opts | ListenerOptions::DISABLED, None)) else {
            return ptr::null_mut();
        };
        let lp = make(base, c, id, cb, arg);
        if !opts.contains(ListenerOptions::DISABLED) {
            c.with(|b| {
                let _ = id.enable(b);
            });
        }
        lp
    }
}

ffi! {
    /// `evconnlistener_new_bind`: binds a new nonblocking socket to `sa` and listens
    /// (`backlog` < 0: 128; 0 is an error). NULL on failure.
    fn evconnlistener_new_bind(
        base: *mut CBase,
        cb: evconnlistener_cb,
        arg: UserArg,
        flags: u32,
        backlog: c_int,
        sa: *const libc::sockaddr,
        socklen: c_int,
    ) -> *mut CLev {
        // SAFETY: `base` is NULL or live.
        let Some(c) = (unsafe { cbase(base) }) else {
            return ptr::null_mut();
        };
        // SAFETY: `sa` is NULL or readable for `socklen` bytes.
        let Some(addr) = (unsafe { read_sockaddr(sa, socklen) }) else {
            return ptr::null_mut();
        };
        let opts = options(flags);
        let Ok(id) = c.with(|b| {
            Listener::bind(b, addr, opts | ListenerOptions::DISABLED, backlog, None)
        }) else {
            return ptr::null_mut();
        };
        let lp = make(base, c, id, cb, arg);
        if !opts.contains(ListenerOptions::DISABLED) {
            c.with(|b| {
                let _ = id.enable(b);
            });
        }
        lp
    }
}

ffi! {
    /// `evconnlistener_free`: stops listening (closing the socket with
    /// `LEV_OPT_CLOSE_ON_FREE`) and frees the listener.
    fn evconnlistener_free(lev: *mut CLev) {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return;
        };
        let (id, base) = (l.id, l.base);
        c.with(|b| {
            let _ = id.free(b);
        });
        if let Ok(mut v) = LIVE.lock() {
            v.retain(|x| *x != (crate::addr(base), crate::addr(lev)));
        }
        // SAFETY: `lev` came from Box::into_raw in `make`, was removed from LIVE, and evloop
        // dropped the callbacks that used it.
        drop(unsafe { Box::from_raw(lev) });
    }
}

ffi! {
    /// `evconnlistener_enable`. 0 or -1.
    fn evconnlistener_enable(lev: *mut CLev) -> c_int {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return -1;
        };
        let id = l.id;
        if c.with(|b| id.enable(b)).is_ok() {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `evconnlistener_disable`. 0 or -1.
    fn evconnlistener_disable(lev: *mut CLev) -> c_int {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return -1;
        };
        let id = l.id;
        if c.with(|b| id.disable(b)).is_ok() {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `evconnlistener_set_cb`: replaces the accept callback and its argument.
    fn evconnlistener_set_cb(lev: *mut CLev, cb: evconnlistener_cb, arg: UserArg) {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return;
        };
        l.cb = cb;
        l.arg = arg;
        let id = l.id;
        let f = cb.map(|_| accept_cb(c, lev));
        c.with(|b| {
            let _ = id.set_cb(b, f);
        });
    }
}

ffi! {
    /// `evconnlistener_set_error_cb`: called with `errno` set when `accept` fails.
    fn evconnlistener_set_error_cb(lev: *mut CLev, errcb: evconnlistener_errorcb) {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return;
        };
        l.errcb = errcb;
        let id = l.id;
        let this = c as *const CBase;
        c.with(|b| {
            let _ = id.set_error_cb(b, move |b, _, e| {
                crate::set_errno(e.raw_os_error().unwrap_or(0));
                // SAFETY: `lev` is live while evloop holds its callbacks.
                let (f, arg) = unsafe { ((*lev).errcb, (*lev).arg) };
                // SAFETY: the base outlives its listeners' callbacks.
                let c = unsafe { &*this };
                let _g = c.enter(b);
                if let Some(f) = f {
                    // SAFETY: the user's callback, called as libevent calls it.
                    unsafe { f(lev, arg) }
                }
            });
        });
    }
}

ffi! {
    /// `evconnlistener_get_fd`.
    fn evconnlistener_get_fd(lev: *mut CLev) -> c_int {
        // SAFETY: `lev` is NULL or live.
        let Some((l, c)) = (unsafe { get(lev) }) else {
            return -1;
        };
        let id = l.id;
        c.with(|b| id.fd(b).unwrap_or(-1))
    }
}

ffi! {
    /// `evconnlistener_get_base`.
    fn evconnlistener_get_base(lev: *mut CLev) -> *mut CBase {
        nonnull!(lev, ptr::null_mut());
        // SAFETY: `lev` is live.
        unsafe { (*lev).base }
    }
}
