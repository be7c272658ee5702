//! The connection listener: libevent's `evconnlistener` (`listener.c`).
//!
//! This module owns listeners: a listening socket, a persistent READ event on it at the default
//! priority, and the accept loop. When the socket is readable the listener accepts connections
//! in a loop until accept fails, calling the user's callback once per connection, synchronously,
//! inside the one event callback. EAGAIN, EINTR and ECONNABORTED end the loop quietly; any other
//! error goes to the error callback (or a warning on stderr when there is none). A callback that
//! disables or frees the listener stops the loop.
//!
//! Socket calls (bind and listen, accept, close) go through the base's backend only. Listeners
//! live in a registry inside the [`Base`], so callbacks, which receive `&mut Base`, can reach
//! them.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::backend::{Backend, ListenOptions};
use crate::base::{Base, Error, Result};
use crate::bufferevent::flag_set;
use crate::event::{EventId, Events, Fd};
use crate::slab::{Slab, SlabKey};
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// Listener options (`LEV_OPT_*`, libevent's values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct ListenerOptions(u32);
flag_set!(ListenerOptions, u32);

impl ListenerOptions {
    /// `LEV_OPT_LEAVE_SOCKETS_BLOCKING`: not supported (the backend's accepted sockets are always
    /// nonblocking); [`Listener::bind`] and [`Listener::new`] reject it.
    pub const LEAVE_SOCKETS_BLOCKING: ListenerOptions = ListenerOptions(1 << 0);
    /// `LEV_OPT_CLOSE_ON_FREE`: close the listening socket in [`Listener::free`].
    pub const CLOSE_ON_FREE: ListenerOptions = ListenerOptions(1 << 1);
    /// `LEV_OPT_CLOSE_ON_EXEC`: the listening socket is close-on-exec.
    pub const CLOSE_ON_EXEC: ListenerOptions = ListenerOptions(1 << 2);
    /// `LEV_OPT_REUSEABLE`: `SO_REUSEADDR`.
    pub const REUSEABLE: ListenerOptions = ListenerOptions(1 << 3);
    /// `LEV_OPT_THREADSAFE`: accepted; evloop bases are single-threaded.
    pub const THREADSAFE: ListenerOptions = ListenerOptions(1 << 4);
    /// `LEV_OPT_DISABLED`: start disabled.
    pub const DISABLED: ListenerOptions = ListenerOptions(1 << 5);
    /// `LEV_OPT_DEFERRED_ACCEPT`: not supported by the backend; rejected.
    pub const DEFERRED_ACCEPT: ListenerOptions = ListenerOptions(1 << 6);
    /// `LEV_OPT_REUSEABLE_PORT`: `SO_REUSEPORT`.
    pub const REUSEABLE_PORT: ListenerOptions = ListenerOptions(1 << 7);
    /// `LEV_OPT_BIND_IPV6ONLY`: not supported by the backend; rejected.
    pub const BIND_IPV6ONLY: ListenerOptions = ListenerOptions(1 << 8);
}

/// The accept callback: the base, the listener, the new connection (nonblocking; the callback
/// owns it) and the peer's address.
pub type AcceptCb<B> = Box<dyn FnMut(&mut Base<B>, Listener, Fd, SocketAddr)>;
/// The error callback: the base, the listener and accept's error.
pub type AcceptErrorCb<B> = Box<dyn FnMut(&mut Base<B>, Listener, io::Error)>;

/// A listener of a [`Base`] (`struct evconnlistener *`): a generation-checked handle, stale once
/// freed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    idx: u32,
    gen: u32,
    /// The issuing base's tag: a handle given to another base is stale there.
    base: u32,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listener({}#{})", self.idx, self.gen)
    }
}

enum CbSlot<F> {
    Empty,
    Set(F),
    Running,
}

pub(crate) struct Lev<B: Backend> {
    fd: Fd,
    ev: EventId,
    cb: CbSlot<AcceptCb<B>>,
    errorcb: CbSlot<AcceptErrorCb<B>>,
    enabled: bool,
    refcnt: u32,
    options: ListenerOptions,
    freed: bool,
}

/// The listeners of one base (a slab with generation-checked handles).
pub(crate) type Registry<B> = Slab<Lev<B>, Listener>;

impl SlabKey for Listener {
    fn from_parts(idx: u32, gen: u32, base: u32) -> Listener {
        Listener { idx, gen, base }
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

fn lev_mut<B: Backend>(base: &mut Base<B>, id: Listener) -> Option<&mut Lev<B>> {
    base.listeners.get_mut(id)
}

fn user<B: Backend>(base: &Base<B>, id: Listener) -> Result<&Lev<B>> {
    match base.listeners.get(id) {
        Some(l) if !l.freed => Ok(l),
        _ => Err(Error::StaleId),
    }
}

fn user_mut<B: Backend>(base: &mut Base<B>, id: Listener) -> Result<&mut Lev<B>> {
    match base.listeners.get_mut(id) {
        Some(l) if !l.freed => Ok(l),
        _ => Err(Error::StaleId),
    }
}

/// `listener_decref_and_unlock`: the last reference deletes the event, closes the socket with
/// `CLOSE_ON_FREE` (at once, not through a finalizer) and releases the listener.
fn decref<B: Backend>(base: &mut Base<B>, id: Listener) -> bool {
    let Some(l) = lev_mut(base, id) else {
        return false;
    };
    l.refcnt -= 1;
    if l.refcnt > 0 {
        return false;
    }
    let (ev, fd, close) = (
        l.ev,
        l.fd,
        l.options.contains(ListenerOptions::CLOSE_ON_FREE),
    );
    let _ = base.free(ev);
    if close {
        let _ = base.backend_mut().close(fd);
    }
    base.listeners.release(id);
    true
}

/// The base is being dropped: every handle dies with it, so close the listening sockets that
/// `CLOSE_ON_FREE` listeners own.
fn close_owned_on_drop<B: Backend>(base: &mut Base<B>) {
    let mut fds = Vec::new();
    for l in base.listeners.values_mut() {
        if l.options.contains(ListenerOptions::CLOSE_ON_FREE) && l.fd >= 0 {
            fds.push(l.fd);
            l.fd = -1;
        }
    }
    for fd in fds {
        let _ = base.backend_mut().close(fd);
    }
}

fn retriable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    )
}

/// `listener_read_cb`: accept until accept fails.
fn read_cb<B: Backend>(base: &mut Base<B>, id: Listener) {
    let Some(l) = lev_mut(base, id) else {
        return;
    };
    let fd = l.fd;
    let err = loop {
        let (conn, peer) = match base.backend_mut().accept(fd) {
            Ok(c) => c,
            Err(e) => break e,
        };
        let Some(l) = lev_mut(base, id) else {
            let _ = base.backend_mut().close(conn);
            return;
        };
        let mut f = match std::mem::replace(&mut l.cb, CbSlot::Running) {
            CbSlot::Set(f) => f,
            other => {
                // No callback (or it is running, which cannot happen here): drop the connection.
                l.cb = other;
                let _ = base.backend_mut().close(conn);
                return;
            }
        };
        l.refcnt += 1;
        f(base, id, conn, peer);
        let Some(l) = lev_mut(base, id) else {
            return;
        };
        if matches!(l.cb, CbSlot::Running) {
            l.cb = CbSlot::Set(f);
        }
        if l.refcnt == 1 {
            // Freed inside the callback.
            decref(base, id);
            return;
        }
        l.refcnt -= 1;
        if !l.enabled {
            return;
        }
    };
    if retriable(&err) {
        return;
    }
    let Some(l) = lev_mut(base, id) else {
        return;
    };
    let mut f = match std::mem::replace(&mut l.errorcb, CbSlot::Running) {
        CbSlot::Set(f) => f,
        other => {
            l.errorcb = other;
            eprintln!("[warn] Error from accept() call: {err}");
            return;
        }
    };
    l.refcnt += 1;
    f(base, id, err);
    if let Some(l) = lev_mut(base, id) {
        if matches!(l.errorcb, CbSlot::Running) {
            l.errorcb = CbSlot::Set(f);
        }
    }
    decref(base, id);
}

fn check_options(options: ListenerOptions) -> Result<()> {
    let unsupported = ListenerOptions::LEAVE_SOCKETS_BLOCKING
        | ListenerOptions::DEFERRED_ACCEPT
        | ListenerOptions::BIND_IPV6ONLY;
    if options.intersects(unsupported) {
        return Err(Error::Invalid(
            "LEAVE_SOCKETS_BLOCKING, DEFERRED_ACCEPT and BIND_IPV6ONLY are not supported",
        ));
    }
    Ok(())
}

impl Listener {
    /// Binds a nonblocking TCP socket to `addr` and listens on it (`evconnlistener_new_bind`):
    /// `SO_KEEPALIVE` always, `SO_REUSEADDR` with `REUSEABLE`, `SO_REUSEPORT` with
    /// `REUSEABLE_PORT`, close-on-exec with `CLOSE_ON_EXEC`; a negative `backlog` means 128 and
    /// 0 is an error, as in libevent. Unless `DISABLED`, accepting starts at once (if there is a
    /// callback).
    pub fn bind<B: Backend>(
        base: &mut Base<B>,
        addr: SocketAddr,
        options: ListenerOptions,
        backlog: i32,
        cb: Option<AcceptCb<B>>,
    ) -> Result<Listener> {
        check_options(options)?;
        if backlog == 0 {
            return Err(Error::Invalid(
                "evconnlistener_new_bind needs a backlog other than 0",
            ));
        }
        let fd = base.backend_mut().listen(
            addr,
            ListenOptions {
                backlog,
                reuse_addr: options.contains(ListenerOptions::REUSEABLE),
                reuse_port: options.contains(ListenerOptions::REUSEABLE_PORT),
                close_on_exec: options.contains(ListenerOptions::CLOSE_ON_EXEC),
            },
        )?;
        match Listener::new(base, fd, options, cb) {
            Ok(l) => Ok(l),
            Err(e) => {
                let _ = base.backend_mut().close(fd);
                Err(e)
            }
        }
    }

    /// A listener on a socket that is already bound and listening (`evconnlistener_new` with
    /// backlog 0, which calls no `listen()`). The backend offers no `listen()` on an existing
    /// socket, so the other backlog values of `evconnlistener_new` are only available through
    /// [`Listener::bind`].
    pub fn new<B: Backend>(
        base: &mut Base<B>,
        fd: Fd,
        options: ListenerOptions,
        cb: Option<AcceptCb<B>>,
    ) -> Result<Listener> {
        check_options(options)?;
        base.on_drop("listener", close_owned_on_drop::<B>);
        let id = base.listeners.reserve();
        let ev = match base.event_new(fd, Events::READ | Events::PERSIST, move |b, _, _| {
            read_cb(b, id)
        }) {
            Ok(ev) => ev,
            Err(e) => {
                base.listeners.release(id);
                return Err(e);
            }
        };
        base.listeners.fill(
            id,
            Lev {
                fd,
                ev,
                cb: cb.map_or(CbSlot::Empty, CbSlot::Set),
                errorcb: CbSlot::Empty,
                enabled: false,
                refcnt: 1,
                options,
                freed: false,
            },
        );
        if !options.contains(ListenerOptions::DISABLED) {
            id.enable(base)?;
        }
        Ok(id)
    }

    /// Starts accepting (`evconnlistener_enable`); without a callback it only records the wish.
    pub fn enable<B: Backend>(self, base: &mut Base<B>) -> Result<()> {
        let l = user_mut(base, self)?;
        l.enabled = true;
        if matches!(l.cb, CbSlot::Empty) {
            return Ok(());
        }
        let ev = l.ev;
        base.add(ev, None)
    }

    /// Stops accepting (`evconnlistener_disable`).
    pub fn disable<B: Backend>(self, base: &mut Base<B>) -> Result<()> {
        let l = user_mut(base, self)?;
        l.enabled = false;
        let ev = l.ev;
        base.del(ev)
    }

    /// Replaces the accept callback (`evconnlistener_set_cb`); setting one on an enabled listener
    /// that had none starts accepting.
    pub fn set_cb<B: Backend>(self, base: &mut Base<B>, cb: Option<AcceptCb<B>>) -> Result<()> {
        let l = user_mut(base, self)?;
        let start = l.enabled && matches!(l.cb, CbSlot::Empty);
        l.cb = cb.map_or(CbSlot::Empty, CbSlot::Set);
        if start {
            self.enable(base)?;
        }
        Ok(())
    }

    /// Sets the accept callback from a closure.
    pub fn set_accept_cb<B: Backend>(
        self,
        base: &mut Base<B>,
        f: impl FnMut(&mut Base<B>, Listener, Fd, SocketAddr) + 'static,
    ) -> Result<()> {
        self.set_cb(base, Some(Box::new(f)))
    }

    /// Sets the error callback (`evconnlistener_set_error_cb`).
    pub fn set_error_cb<B: Backend>(
        self,
        base: &mut Base<B>,
        f: impl FnMut(&mut Base<B>, Listener, io::Error) + 'static,
    ) -> Result<()> {
        user_mut(base, self)?.errorcb = CbSlot::Set(Box::new(f));
        Ok(())
    }

    /// Frees the listener (`evconnlistener_free`): the callbacks go, and unless its accept
    /// callback is running (then when it returns), the event is deleted and the socket closed
    /// with `CLOSE_ON_FREE`, at once.
    pub fn free<B: Backend>(self, base: &mut Base<B>) -> Result<()> {
        let l = user_mut(base, self)?;
        l.freed = true;
        l.cb = CbSlot::Empty;
        l.errorcb = CbSlot::Empty;
        decref(base, self);
        Ok(())
    }

    /// The listening socket (`evconnlistener_get_fd`).
    pub fn fd<B: Backend>(self, base: &Base<B>) -> Result<Fd> {
        Ok(user(base, self)?.fd)
    }

    /// The address the socket is bound to (`getsockname` on `evconnlistener_get_fd`), e.g. to
    /// learn the port picked for port 0.
    pub fn local_addr<B: Backend>(self, base: &mut Base<B>) -> Result<SocketAddr> {
        let fd = user(base, self)?.fd;
        Ok(base.backend_mut().local_addr(fd)?)
    }

    /// The listener's event (for priorities and inspection).
    pub fn event<B: Backend>(self, base: &Base<B>) -> Result<EventId> {
        Ok(user(base, self)?.ev)
    }

    /// True while the handle names a listener that was not freed.
    pub fn is_live<B: Backend>(self, base: &Base<B>) -> bool {
        user(base, self).is_ok()
    }
}
