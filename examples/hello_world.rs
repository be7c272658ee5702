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
//! The server itself (`evloop::seed::hello_world_server`) is generic over the backend, so the
//! same code runs on any real backend here and in the simulator (`evsim run hello-world`). It also prints `listening on ADDR` once bound (with `--port 0`
//! the kernel picks the port, and this is how to learn it).

use std::error::Error;
use std::net::SocketAddr;

use evloop::backend::AnyBackend;
use evloop::seed::{hello_world_server, ServerEvent, PORT};
use evloop::{Backend, Base};

/// Prints what `sample/hello-world.c` prints for each server event.
fn print_event<B: Backend>(_: &mut Base<B>, ev: ServerEvent) {
    match ev {
        ServerEvent::Accepted { .. } => {}
        ServerEvent::Flushed { .. } => println!("flushed answer"),
        ServerEvent::Closed { .. } => println!("Connection closed."),
        ServerEvent::Error { error, .. } => println!("Got an error on the connection: {error}"),
        ServerEvent::Interrupt => {
            println!("Caught an interrupt signal; exiting cleanly in two seconds.")
        }
    }
}

/// Runs the server on `base` until the loop ends: [`hello_world_server`] (the same code the
/// simulator runs), then dispatch, then free the listener and the signal event.
pub fn serve<B: Backend + 'static>(
    base: &mut Base<B>,
    addr: SocketAddr,
) -> Result<(), Box<dyn Error>> {
    let (listener, signal_event) = hello_world_server(base, addr, print_event)
        .map_err(|e| format!("Could not set up the server! ({e})"))?;
    println!("listening on {}", listener.local_addr(base)?);
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
