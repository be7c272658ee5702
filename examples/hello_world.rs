//! The seed program: libevent's `sample/hello-world.c` on evloop.
//!
//! A listener on 127.0.0.1:9995 answers every connection with `Hello, NewConnection!\n`: the
//! accept callback makes a socket bufferevent, enables writing, disables reading and writes the
//! message; the write callback frees the bufferevent once its output has drained to 0 (printing
//! `flushed answer`), which closes the connection. SIGINT prints a notice and calls
//! `loopexit(2 s)`; when the loop has ended the program prints `done` and exits with 0.
//!
//! ```sh
//! cargo run --release --example hello_world [-- --port 9995 --backend epoll|poll|select|mio]
//! nc 127.0.0.1 9995
//! ```
//!
//! The server itself ([`serve`]) is generic over the backend, so the same code runs on any real
//! backend or in the simulator. It also prints `listening on ADDR` once bound (with `--port 0`
//! the kernel picks the port, and this is how to learn it).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::backend::AnyBackend;
use evloop::{
    Backend, Base, BevEvents, BevOptions, BufferEvent, Events, Fd, Listener, ListenerOptions,
};

/// What the server writes to every connection.
pub const MESSAGE: &str = "Hello, NewConnection!\n";

/// The seed's port.
pub const PORT: u16 = 9995;

/// `listener_cb`: a bufferevent per connection that writes the message.
fn listener_cb<B: Backend + 'static>(base: &mut Base<B>, _: Listener, fd: Fd, _: SocketAddr) {
    let bev = match BufferEvent::socket_new(base, fd, BevOptions::CLOSE_ON_FREE) {
        Ok(bev) => bev,
        Err(_) => {
            eprint!("Error constructing bufferevent!");
            base.loopbreak();
            return;
        }
    };
    let setup = bev
        .setcb(
            base,
            None,
            Some(Box::new(conn_writecb)),
            Some(Box::new(conn_eventcb)),
        )
        .and_then(|()| bev.enable(base, Events::WRITE))
        .and_then(|()| bev.disable(base, Events::READ))
        .and_then(|()| bev.write(base, MESSAGE.as_bytes()));
    if let Err(e) = setup {
        eprintln!("Error setting up the connection: {e}");
        let _ = bev.free(base);
    }
}

/// `conn_writecb`: free the bufferevent once everything was written.
fn conn_writecb<B: Backend>(base: &mut Base<B>, bev: BufferEvent) {
    if bev.output(base).is_ok_and(|o| o.is_empty()) {
        println!("flushed answer");
        let _ = bev.free(base);
    }
}

/// `conn_eventcb`: report EOF or an error, then free the bufferevent.
fn conn_eventcb<B: Backend>(base: &mut Base<B>, bev: BufferEvent, events: BevEvents) {
    if events.contains(BevEvents::EOF) {
        println!("Connection closed.");
    } else if events.contains(BevEvents::ERROR) {
        let err = bev.error(base).ok().flatten();
        let err = err.map_or_else(|| "unknown error".to_string(), |e| e.to_string());
        println!("Got an error on the connection: {err}");
    }
    // None of the other events can happen here, since no timeouts are set.
    let _ = bev.free(base);
}

/// `signal_cb`: exit the loop two seconds from now.
fn signal_cb<B: Backend>(base: &mut Base<B>) {
    println!("Caught an interrupt signal; exiting cleanly in two seconds.");
    let _ = base.loopexit(Some(Duration::from_secs(2)));
}

/// Runs the server on `base` until the loop ends: binds `addr` (`REUSEABLE | CLOSE_ON_FREE`,
/// backlog -1), adds the SIGINT event, dispatches, frees both.
pub fn serve<B: Backend + 'static>(
    base: &mut Base<B>,
    addr: SocketAddr,
) -> Result<(), Box<dyn Error>> {
    let listener = Listener::bind(
        base,
        addr,
        ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_FREE,
        -1,
        Some(Box::new(listener_cb::<B>)),
    )
    .map_err(|e| format!("Could not create a listener! ({e})"))?;
    println!("listening on {}", listener.local_addr(base)?);

    let signal_event = base
        .signal_new(libc::SIGINT, |b, _, _| signal_cb(b))
        .and_then(|ev| base.add(ev, None).map(|()| ev))
        .map_err(|e| format!("Could not create/add a signal event! ({e})"))?;

    base.dispatch()?;

    listener.free(base)?;
    base.free(signal_event)?;
    println!("done");
    Ok(())
}

/// Parses `--port N` and `--backend NAME`, then serves on 127.0.0.1.
pub fn run(args: impl IntoIterator<Item = String>) -> Result<(), Box<dyn Error>> {
    let mut port = PORT;
    let mut backend = "epoll".to_string();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().ok_or("--port needs a value")?.parse()?,
            "--backend" => backend = args.next().ok_or("--backend needs a value")?,
            "-h" | "--help" => {
                println!("usage: hello_world [--port N] [--backend epoll|poll|select|mio]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let mut base = Base::new(AnyBackend::by_name(&backend)?);
    serve(&mut base, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[allow(dead_code)] // the integration test includes this file and calls `run` itself
fn main() {
    if let Err(e) = run(std::env::args().skip(1)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
