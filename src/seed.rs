//! The seed program's server: libevent's `sample/hello-world.c`, generic over the backend.
//!
//! A listener on `addr` answers every connection with [`MESSAGE`]: the accept callback makes a
//! socket bufferevent (`CLOSE_ON_FREE`), enables writing, disables reading and writes the
//! message; the write callback frees the bufferevent once its output has drained to 0, which
//! closes the connection; the event callback frees it on EOF or error. A SIGINT event calls
//! `loopexit(2 s)`. A connection that cannot be served (the backend refuses its descriptor, say)
//! is closed and reported on stderr (and as [`ServerEvent::Error`] once accepted); the listener
//! keeps serving. No result is ignored. What the C program prints reaches the caller as [`ServerEvent`]s, so the
//! same server runs unchanged in `examples/hello_world.rs` (which prints them) and in the
//! simulator (which checks them).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::{
    Backend, Base, BevEvents, BevOptions, BufferEvent, EventId, Events, Fd, Listener,
    ListenerOptions,
};

/// What the server says to every connection.
pub const MESSAGE: &[u8] = b"Hello, NewConnection!\n";
/// The port it listens on.
pub const PORT: u16 = 9995;
/// SIGINT.
pub const SIGINT: i32 = libc::SIGINT;
/// The delay between SIGINT and the loop's exit.
pub const EXIT_DELAY: Duration = Duration::from_secs(2);

/// What the seed's server prints, as events (connection numbers count accepts from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// `listener_cb`: a connection was accepted and answered.
    Accepted {
        /// The connection's number.
        conn: usize,
        /// Its descriptor.
        fd: Fd,
    },
    /// "flushed answer": the output drained; the bufferevent is freed.
    Flushed {
        /// The connection's number.
        conn: usize,
    },
    /// "Connection closed.": EOF; the bufferevent is freed.
    Closed {
        /// The connection's number.
        conn: usize,
    },
    /// "Got an error on the connection": ERROR; the bufferevent is freed.
    Error {
        /// The connection's number.
        conn: usize,
        /// The error.
        error: String,
    },
    /// "Caught an interrupt signal; exiting cleanly in two seconds."
    Interrupt,
}

type Observer<B> = Rc<RefCell<dyn FnMut(&mut Base<B>, ServerEvent)>>;

/// The seed's server: a listener on `addr` answering every connection with [`MESSAGE`] and
/// freeing the bufferevent once the answer is flushed, and a SIGINT handler that exits the loop
/// two seconds later. `on` sees what the C program prints. The caller then dispatches (or hands
/// the base to a simulator).
pub fn hello_world_server<B: Backend + 'static>(
    base: &mut Base<B>,
    addr: SocketAddr,
    on: impl FnMut(&mut Base<B>, ServerEvent) + 'static,
) -> crate::Result<(Listener, EventId)> {
    let on: Observer<B> = Rc::new(RefCell::new(on));
    let next_conn = Rc::new(RefCell::new(0usize));
    let obs = on.clone();
    let listener = Listener::bind(
        base,
        addr,
        ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_FREE,
        -1,
        Some(Box::new(move |base: &mut Base<B>, _l, fd: Fd, _peer| {
            let conn = {
                let mut n = next_conn.borrow_mut();
                *n += 1;
                *n - 1
            };
            listener_cb(base, fd, conn, obs.clone());
        })),
    )?;
    let obs = on.clone();
    let sig = base.signal_new(SIGINT, move |base, _, _| {
        (obs.borrow_mut())(base, ServerEvent::Interrupt);
        if let Err(e) = base.loopexit(Some(EXIT_DELAY)) {
            eprintln!("hello-world: loopexit failed: {e}");
        }
    })?;
    base.add(sig, None)?;
    Ok((listener, sig))
}

fn listener_cb<B: Backend + 'static>(base: &mut Base<B>, fd: Fd, conn: usize, on: Observer<B>) {
    let bev = match BufferEvent::socket_new(base, fd, BevOptions::CLOSE_ON_FREE) {
        Ok(b) => b,
        Err(e) => {
            // hello-world.c breaks the loop here ("Error constructing bufferevent!"); a server
            // that must keep serving closes this one connection, says so, and goes on.
            eprintln!("hello-world: connection {conn} (fd {fd}): cannot make a bufferevent: {e}; closing it");
            if let Err(e) = base.backend_mut().close(fd) {
                eprintln!("hello-world: connection {conn}: close(fd {fd}) failed: {e}");
            }
            return;
        }
    };
    (on.borrow_mut())(base, ServerEvent::Accepted { conn, fd });
    let on_w = on.clone();
    let on_e = on.clone();
    let setup = bev
        .setcb(
            base,
            None,
            Some(Box::new(move |base: &mut Base<B>, bev: BufferEvent| {
                // conn_writecb
                if bev.output(base).map(|o| o.len()).unwrap_or(0) == 0 {
                    (on_w.borrow_mut())(base, ServerEvent::Flushed { conn });
                    free_reporting(base, bev, conn);
                }
            })),
            Some(Box::new(
                move |base: &mut Base<B>, bev: BufferEvent, what: BevEvents| {
                    // conn_eventcb
                    let ev = if what.contains(BevEvents::EOF) {
                        ServerEvent::Closed { conn }
                    } else {
                        let error = bev
                            .error(base)
                            .ok()
                            .flatten()
                            .map_or_else(|| format!("{what:?}"), |e| e.to_string());
                        ServerEvent::Error { conn, error }
                    };
                    (on_e.borrow_mut())(base, ev);
                    free_reporting(base, bev, conn);
                },
            )),
        )
        .map_err(|e| ("setcb", e))
        .and_then(|()| {
            bev.enable(base, Events::WRITE)
                .map_err(|e| ("enable WRITE", e))
        })
        .and_then(|()| {
            bev.disable(base, Events::READ)
                .map_err(|e| ("disable READ", e))
        })
        .and_then(|()| bev.write(base, MESSAGE).map_err(|e| ("write", e)));
    if let Err((step, e)) = setup {
        // The connection cannot be served (for example, select cannot watch descriptors at or
        // above FD_SETSIZE): close it (CLOSE_ON_FREE) and report it; the listener goes on.
        eprintln!("hello-world: connection {conn} (fd {fd}): {step} failed: {e}; closing it");
        let error = format!("cannot serve the connection: {step} failed: {e}");
        (on.borrow_mut())(base, ServerEvent::Error { conn, error });
        free_reporting(base, bev, conn);
    }
}

/// Frees a connection's bufferevent (which closes it); a failure is reported, not ignored.
fn free_reporting<B: Backend>(base: &mut Base<B>, bev: BufferEvent, conn: usize) {
    if let Err(e) = bev.free(base) {
        eprintln!("hello-world: connection {conn}: freeing its bufferevent failed: {e}");
    }
}
