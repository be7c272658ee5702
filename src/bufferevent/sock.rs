//! Socket bufferevents: libevent's `bufferevent_sock.c`.
//!
//! This module owns the socket kind: its read and write events (persistent, on the socket, armed
//! with the read and write timeouts), the read path (at most 4096 bytes per read, bounded by the
//! high watermark), the write path (at most 16384 bytes per write; the write callback after every
//! write that leaves the output at or below the low watermark), the connect state machine, and
//! the output-buffer reaction that starts writing when data is added. Socket calls go through the
//! base's backend only.

use std::io;
use std::net::SocketAddr;

use super::{
    add_event, bev, bev_mut, decref, disable_internal, enable_internal, incref, init_common,
    input_changed, output_changed, run_eventcb, suspend_read, trigger_nolock, BevEvents,
    BevOptions, BufferEvent, Kind, SavedError, MAX_SINGLE_READ, MAX_SINGLE_WRITE, SUSPEND_WM,
};
use crate::backend::{Backend, ConnectState};
use crate::base::{Base, Error, Result};
use crate::buffer::CbInfo;
use crate::event::{EventId, Events, Fd};

/// What a socket bufferevent adds to the common state.
pub(super) struct SockState {
    pub(super) fd: Fd,
    /// A connect is in progress: the next writability reports its outcome.
    pub(super) connecting: bool,
    /// A read saw ECONNREFUSED while connecting (BSD reports it that way).
    pub(super) connection_refused: bool,
}

fn state<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Option<&mut SockState> {
    match &mut bev_mut(base, id)?.kind {
        Kind::Socket(s) => Some(s),
        Kind::Pair(_) => None,
    }
}

fn make_events<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    fd: Fd,
) -> Result<(EventId, EventId)> {
    let r = base.event_new(fd, Events::READ | Events::PERSIST, move |b, _, what| {
        readcb(b, id, what)
    })?;
    match base.event_new(fd, Events::WRITE | Events::PERSIST, move |b, _, what| {
        writecb(b, id, what)
    }) {
        Ok(w) => Ok((r, w)),
        Err(e) => {
            let _ = base.free(r);
            Err(e)
        }
    }
}

/// `bufferevent_socket_new`.
pub(super) fn new<B: Backend>(
    base: &mut Base<B>,
    fd: Fd,
    options: BevOptions,
) -> Result<BufferEvent> {
    let kind = Kind::Socket(SockState {
        fd,
        connecting: false,
        connection_refused: false,
    });
    let id = init_common(base, options, kind, |b, id| make_events(b, id, fd))?;
    let b = bev_mut(base, id).expect("just created");
    // Only the read path adds to the input and only the write path drains the output.
    b.input.freeze(false);
    b.output.freeze(true);
    Ok(id)
}

/// `be_socket_enable`.
pub(super) fn enable<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    events: Events,
) -> Result<()> {
    let b = bev(base, id).ok_or(Error::StaleId)?;
    let (r, w, tr, tw) = (b.ev_read, b.ev_write, b.timeout_read, b.timeout_write);
    if events.contains(Events::READ) {
        add_event(base, r, tr)?;
    }
    if events.contains(Events::WRITE) {
        add_event(base, w, tw)?;
    }
    Ok(())
}

/// `be_socket_disable`: a connecting socket keeps its write event.
pub(super) fn disable<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    events: Events,
) -> Result<()> {
    let b = bev(base, id).ok_or(Error::StaleId)?;
    let (r, w) = (b.ev_read, b.ev_write);
    let connecting = matches!(&b.kind, Kind::Socket(s) if s.connecting);
    if events.contains(Events::READ) {
        base.del(r)?;
    }
    if events.contains(Events::WRITE) && !connecting {
        base.del(w)?;
    }
    Ok(())
}

/// `bufferevent_socket_outbuf_cb`: data added while writing is enabled, not pending and not
/// suspended starts the write event.
pub(super) fn outbuf_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent, info: CbInfo) {
    let Some(b) = bev(base, id) else {
        return;
    };
    if info.n_added == 0 || !b.enabled.contains(Events::WRITE) || b.write_suspended != 0 {
        return;
    }
    let (w, tw) = (b.ev_write, b.timeout_write);
    let pending = base
        .pending(w, Events::WRITE)
        .map_or(true, |(p, _)| p.contains(Events::WRITE));
    if !pending {
        let _ = add_event(base, w, tw);
    }
}

fn retriable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn set_error<B: Backend>(base: &mut Base<B>, id: BufferEvent, e: Option<&io::Error>) {
    if let Some(b) = bev_mut(base, id) {
        b.error = e.map(SavedError::of);
    }
}

/// `bufferevent_readcb`: the read event fired.
pub(super) fn readcb<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: Events) {
    incref(base, id);
    read_path(base, id, what);
    decref(base, id);
}

fn read_path<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: Events) {
    let mut ev = BevEvents::READING;
    if what == Events::TIMEOUT {
        // Only a pure timeout: TIMEOUT|READ means data arrived as well.
        set_error(base, id, None);
        read_error(base, id, ev | BevEvents::TIMEOUT);
        return;
    }
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    let mut howmuch = MAX_SINGLE_READ;
    if b.wm_read.high != 0 {
        let len = b.input.len();
        if len >= b.wm_read.high {
            // The watermark was lowered under the data already read: stop reading.
            suspend_read(base, id, SUSPEND_WM);
            return;
        }
        howmuch = howmuch.min(b.wm_read.high - len);
    }
    if b.read_suspended != 0 {
        return;
    }
    let fd = match &b.kind {
        Kind::Socket(s) => s.fd,
        Kind::Pair(_) => return,
    };
    b.input.unfreeze(false);
    // The buffer and the backend are both inside the base; take the buffer out for the call.
    let mut input = std::mem::take(&mut b.input);
    let res = input.read_from(base.backend_mut(), fd, Some(howmuch));
    let b = bev_mut(base, id).expect("alive while referenced");
    b.input = input;
    b.input.freeze(false);
    input_changed(base, id);
    match res {
        Ok(0) => {
            // read(2) returning 0 leaves errno alone: libevent's callback (or the deferred
            // callback's saved errno_pending, when an EOF and an error are coalesced) still sees
            // the last error (found by `evconform fuzz`, scenario bev_socket_eof_keeps_errno)
            read_error(base, id, ev | BevEvents::EOF);
        }
        Ok(_) => trigger_nolock(base, id, Events::READ, 0),
        Err(e) if retriable(&e) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            if let Some(s) = state(base, id) {
                s.connection_refused = true;
            }
        }
        Err(e) => {
            ev |= BevEvents::ERROR;
            set_error(base, id, Some(&e));
            read_error(base, id, ev);
        }
    }
}

fn read_error<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: BevEvents) {
    let _ = disable_internal(base, id, Events::READ);
    run_eventcb(base, id, what, 0);
}

/// `evutil_socket_finished_connecting_`: 1 connected, 0 still connecting, -1 failed.
fn finished_connecting<B: Backend>(base: &mut Base<B>, id: BufferEvent, fd: Fd) -> i32 {
    match base.backend_mut().take_socket_error(fd) {
        Ok(None) => 1,
        Ok(Some(e))
            if e.kind() == io::ErrorKind::Interrupted
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            0
        }
        Ok(Some(e)) | Err(e) => {
            set_error(base, id, Some(&e));
            -1
        }
    }
}

/// `bufferevent_writecb`: the write event fired.
pub(super) fn writecb<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: Events) {
    incref(base, id);
    write_path(base, id, what);
    decref(base, id);
}

fn write_path<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: Events) {
    let mut ev = BevEvents::WRITING;
    if what == Events::TIMEOUT {
        set_error(base, id, None);
        write_error(base, id, ev | BevEvents::TIMEOUT);
        return;
    }
    let Some(s) = state(base, id) else {
        return;
    };
    let fd = s.fd;
    let mut connected = false;
    if s.connecting {
        let refused = std::mem::take(&mut s.connection_refused);
        let mut c = finished_connecting(base, id, fd);
        if refused {
            c = -1;
            let e = io::Error::from(io::ErrorKind::ConnectionRefused);
            set_error(base, id, Some(&e));
        }
        if c == 0 {
            return;
        }
        if let Some(s) = state(base, id) {
            s.connecting = false;
        }
        let b = bev(base, id).expect("alive while referenced");
        let (r, w) = (b.ev_read, b.ev_write);
        if c < 0 {
            let _ = base.del(w);
            let _ = base.del(r);
            run_eventcb(base, id, BevEvents::ERROR, 0);
            return;
        }
        connected = true;
        set_error(base, id, None);
        run_eventcb(base, id, BevEvents::CONNECTED, 0);
        let Some(b) = bev(base, id) else {
            return;
        };
        if !b.enabled.contains(Events::WRITE) || b.write_suspended != 0 {
            let w = b.ev_write;
            let _ = base.del(w);
            return;
        }
    }
    let Some(b) = bev_mut(base, id) else {
        return;
    };
    if b.write_suspended != 0 {
        return;
    }
    let mut written = 0;
    if !b.output.is_empty() {
        b.output.unfreeze(true);
        let mut output = std::mem::take(&mut b.output);
        let res = output.write_atmost(base.backend_mut(), fd, Some(MAX_SINGLE_WRITE));
        let b = bev_mut(base, id).expect("alive while referenced");
        b.output = output;
        b.output.freeze(true);
        output_changed(base, id);
        match res {
            Ok(0) => {
                // as for read: errno is left as it was
                write_error(base, id, ev | BevEvents::EOF);
                return;
            }
            Ok(n) => written = n,
            Err(e) if retriable(&e) => {
                // Reschedule: stop watching if there is nothing left to write.
                if let Some(b) = bev(base, id) {
                    if b.output.is_empty() {
                        let w = b.ev_write;
                        let _ = base.del(w);
                    }
                }
                return;
            }
            Err(e) => {
                ev |= BevEvents::ERROR;
                set_error(base, id, Some(&e));
                write_error(base, id, ev);
                return;
            }
        }
    }
    let Some(b) = bev(base, id) else {
        return;
    };
    if b.output.is_empty() {
        let w = b.ev_write;
        let _ = base.del(w);
    }
    if written > 0 || !connected {
        trigger_nolock(base, id, Events::WRITE, 0);
    }
}

fn write_error<B: Backend>(base: &mut Base<B>, id: BufferEvent, what: BevEvents) {
    let _ = disable_internal(base, id, Events::WRITE);
    run_eventcb(base, id, what, 0);
}

/// `be_socket_setfd`: new events on `fd`; the buffers are unfrozen (and stay so until the next
/// read or write, as in libevent); the enabled directions are enabled again.
pub(super) fn setfd<B: Backend>(base: &mut Base<B>, id: BufferEvent, fd: Fd) -> Result<()> {
    let b = bev_mut(base, id).ok_or(Error::StaleId)?;
    let (old_r, old_w) = (b.ev_read, b.ev_write);
    b.input.unfreeze(false);
    b.output.unfreeze(true);
    let _ = base.free(old_r);
    let _ = base.free(old_w);
    let (r, w) = make_events(base, id, fd)?;
    let b = bev_mut(base, id).ok_or(Error::StaleId)?;
    b.ev_read = r;
    b.ev_write = w;
    if let Kind::Socket(s) = &mut b.kind {
        s.fd = fd;
    }
    if fd >= 0 {
        let enabled = b.enabled;
        enable_internal(base, id, enabled)?;
    }
    Ok(())
}

/// `bufferevent_socket_connect` for a bufferevent without a socket.
pub(super) fn connect<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    addr: SocketAddr,
) -> Result<()> {
    incref(base, id);
    let r = connect_inner(base, id, addr);
    decref(base, id);
    r
}

fn connect_inner<B: Backend>(base: &mut Base<B>, id: BufferEvent, addr: SocketAddr) -> Result<()> {
    let fd = state(base, id).ok_or(Error::StaleId)?.fd;
    let res = if fd >= 0 {
        // libevent connects the socket the bufferevent already has (found by `evconform fuzz`,
        // scenario bev_socket_connect_again): after a completed nonblocking connect Linux
        // answers 0 once, and libevent takes the "connected at once" path again
        base.backend_mut()
            .connect_existing(fd, addr)
            .map(|st| (fd, st))
    } else {
        base.backend_mut().connect(addr)
    };
    match res {
        Ok((fd, ConnectState::InProgress)) => {
            setfd(base, id, fd)?;
            enable(base, id, Events::WRITE)?;
            if let Some(s) = state(base, id) {
                s.connecting = true;
            }
            Ok(())
        }
        Ok((fd, ConnectState::Connected)) => {
            setfd(base, id, fd)?;
            if let Some(s) = state(base, id) {
                s.connecting = true;
            }
            trigger_nolock(base, id, Events::WRITE, BevOptions::DEFER_CALLBACKS.bits());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // Refused at once. The backend has closed its socket, so the bufferevent keeps -1.
            set_error(base, id, Some(&e));
            run_eventcb(
                base,
                id,
                BevEvents::ERROR,
                BevOptions::DEFER_CALLBACKS.bits(),
            );
            let _ = disable_internal(base, id, Events::READ | Events::WRITE);
            Ok(())
        }
        Err(e) => Err(Error::Io(e)),
    }
}
