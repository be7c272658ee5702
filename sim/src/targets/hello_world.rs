//! The seed's server, libevent's `sample/hello-world.c`, generic over the backend, and the
//! `hello-world` target: the server on host 0 with K simulated clients on other hosts.
//!
//! Each client connects at a random time, reads until EOF and checks what it got. When every
//! client is done, the server gets SIGINT and must exit two seconds later. Invariants:
//! - every client receives exactly `"Hello, NewConnection!\n"` then EOF, unless a fault touched
//!   its connection (refused, reset, partitioned) or it closed early itself (the `peer-close`
//!   fault); even then what it got is a prefix of the message;
//! - every connection ends in exactly one terminal event, on the client and on the server;
//! - no timer fires before its deadline (the clients' start timers, the server's exit delay);
//! - no callback runs while a more urgent one is active;
//! - every host's loop ends (the server by `loopexit`, the clients with no events left).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

pub use evloop::seed::{hello_world_server, ServerEvent, EXIT_DELAY, MESSAGE, PORT, SIGINT};
use evloop::{Base, BevEvents, BevOptions, BufferEvent, Events, LoopExit, Time};

use super::{apply_core_fault, check_priority, RunOptions, RunReport, Target};
use crate::faults::FaultKind;
use crate::sim::{HostStatus, Sim};
use crate::world::host_addr;
use crate::SimBackend;

/// The `hello-world` target.
pub struct HelloWorld;

/// How a client's connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Eof,
    Error(String),
    ClosedEarly,
}

#[derive(Default)]
struct Client {
    conn: Option<u64>,
    connected: bool,
    got: Vec<u8>,
    ends: Vec<End>,
    early_close: Option<usize>,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    /// Server connections: number → terminal events.
    server: BTreeMap<usize, Vec<String>>,
    server_fault: BTreeMap<usize, u64>,
    interrupts: u32,
    failures: Vec<String>,
}

/// Clients per client host.
const CLIENTS_PER_HOST: usize = 10;
/// Clients start within this window.
const START_WINDOW_US: u64 = 200_000;
/// A run that has not settled by then has a runaway.
const HORIZON: Time = Time(3_600_000_000);

impl Target for HelloWorld {
    fn name(&self) -> &str {
        "hello-world"
    }
    fn about(&self) -> &str {
        "the seed's hello-world server (host 0) with --clients simulated clients"
    }
    fn uses_clients(&self) -> bool {
        true
    }

    fn run(&self, opts: &RunOptions) -> RunReport {
        let mut sim = opts.sim();
        let state = Rc::new(RefCell::new(State::default()));
        let k = opts.clients;
        state.borrow_mut().clients = (0..k).map(|_| Client::default()).collect();

        // Host 0: the server.
        let st = state.clone();
        let core_fault = opts.core_fault.clone();
        sim.add_host(|base| {
            apply_core_fault(base, core_fault.as_deref());
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT);
            let r = hello_world_server(base, addr, move |base, ev| server_event(base, &st, ev));
            if let Err(e) = r {
                state
                    .borrow_mut()
                    .failures
                    .push(format!("Could not create a listener! {e}"));
            }
        });
        let server = SocketAddr::new(IpAddr::V4(host_addr(0)), PORT);

        // Client hosts.
        let nhosts = k.div_ceil(CLIENTS_PER_HOST);
        for h in 0..nhosts {
            let st = state.clone();
            let cf = opts.core_fault.clone();
            sim.add_host(|base| {
                apply_core_fault(base, cf.as_deref());
                for i in (h * CLIENTS_PER_HOST)..((h + 1) * CLIENTS_PER_HOST).min(k) {
                    start_client(base, &st, i, server);
                }
            });
        }

        let st = state.clone();
        let done = move |_: &mut Sim| {
            let s = st.borrow();
            s.clients.iter().all(|c| !c.ends.is_empty())
        };
        let outcome = sim.run_until_pred(HORIZON, done);
        let mut failures = Vec::new();
        if outcome == crate::Outcome::Reached {
            failures.push("the clients did not finish within an hour of virtual time".to_owned());
        }
        // Let the server finish what it was doing, then interrupt it.
        sim.run_until_pred(HORIZON, |sim| {
            let s = state.borrow();
            let server_done = s.server.values().all(|v| !v.is_empty());
            server_done && !matches!(sim.status(0), HostStatus::New)
        });
        let sigint_at = sim.now();
        sim.raise_at(sigint_at, 0, SIGINT);
        sim.run_until_pred(HORIZON, |sim| sim.status(0).is_done());
        let exit_at = sim.now();
        sim.run_until_quiescent();

        // Invariants.
        let s = state.borrow();
        failures.extend(s.failures.iter().cloned());
        let world_faulted = |conn: Option<u64>| conn.is_some_and(|c| sim_conn_faulted(&sim, c));
        for (i, c) in s.clients.iter().enumerate() {
            if !MESSAGE.starts_with(&c.got) {
                failures.push(format!(
                    "client {i} received {:?}, not a prefix of the message",
                    String::from_utf8_lossy(&c.got)
                ));
            }
            match c.ends.as_slice() {
                [] => failures.push(format!("client {i} (connection {:?}) never ended", c.conn)),
                [End::Eof] => {
                    if c.got != MESSAGE {
                        failures.push(format!(
                            "client {i} got EOF after {:?} instead of the whole message",
                            String::from_utf8_lossy(&c.got)
                        ));
                    }
                }
                [End::Error(e)] => {
                    if !world_faulted(c.conn) {
                        failures.push(format!(
                            "client {i}: unexplained error {e} (no fault touched connection {:?})",
                            c.conn
                        ));
                    }
                }
                [End::ClosedEarly] => {}
                many => failures.push(format!("client {i} ended {} times: {many:?}", many.len())),
            }
        }
        for (conn, ends) in &s.server {
            match ends.len() {
                1 => {
                    if ends[0].starts_with("error") {
                        let wc = s.server_fault.get(conn).copied();
                        let explained = wc.is_some_and(|c| sim_conn_faulted(&sim, c))
                            || s.clients
                                .iter()
                                .any(|c| c.conn == wc && c.early_close.is_some());
                        if !explained {
                            failures
                                .push(format!("server connection {conn}: unexplained {}", ends[0]));
                        }
                    }
                }
                0 => failures.push(format!("server connection {conn} never ended")),
                n => failures.push(format!(
                    "server connection {conn} ended {n} times: {ends:?}"
                )),
            }
        }
        if s.interrupts == 0 {
            failures.push("the server never saw SIGINT".to_owned());
        }
        match sim.status(0) {
            HostStatus::Exited(LoopExit::Done) => {
                let min_exit = sigint_at.saturating_add(EXIT_DELAY);
                if exit_at < min_exit {
                    failures.push(format!(
                        "the server exited at {}us, before SIGINT ({}us) + 2 s",
                        exit_at.as_micros(),
                        sigint_at.as_micros()
                    ));
                }
            }
            other => failures.push(format!("the server's loop ended as {other:?}")),
        }
        for h in 1..sim.hosts() {
            if let HostStatus::Failed(e) = sim.status(h) {
                failures.push(format!("client host {h} failed: {e}"));
            }
        }
        drop(s);
        RunReport::from_sim(&mut sim, failures)
    }
}

fn sim_conn_faulted(sim: &Sim, conn: u64) -> bool {
    sim.connection_faulted(conn)
}

fn server_event(base: &mut Base<SimBackend>, st: &Rc<RefCell<State>>, ev: ServerEvent) {
    // "server {ev:?}", the frequent variants written without core::fmt (same text).
    base.backend_mut().trace_with(|w| match &ev {
        ServerEvent::Accepted { conn, fd } => {
            w.s("server Accepted { conn: ");
            w.u(*conn as u64);
            w.s(", fd: ");
            w.i(i64::from(*fd));
            w.s(" }");
        }
        ServerEvent::Flushed { conn } | ServerEvent::Closed { conn } => {
            let name = if matches!(ev, ServerEvent::Flushed { .. }) {
                "server Flushed { conn: "
            } else {
                "server Closed { conn: "
            };
            w.s(name);
            w.u(*conn as u64);
            w.s(" }");
        }
        other => {
            w.s("server ");
            w.d(&format_args!("{other:?}"));
        }
    });
    let mut s = st.borrow_mut();
    if let Some(v) = check_priority(base, 0, "server callback") {
        s.failures.push(v);
    }
    match ev {
        ServerEvent::Accepted { conn, fd } => {
            s.server.insert(conn, Vec::new());
            if let Some(c) = base.backend().connection_of(fd) {
                s.server_fault.insert(conn, c);
            }
        }
        ServerEvent::Flushed { conn } => s.server.entry(conn).or_default().push("flushed".into()),
        ServerEvent::Closed { conn } => s.server.entry(conn).or_default().push("closed".into()),
        ServerEvent::Error { conn, error } => s
            .server
            .entry(conn)
            .or_default()
            .push(format!("error {error}")),
        ServerEvent::Interrupt => s.interrupts += 1,
    }
}

fn start_client(
    base: &mut Base<SimBackend>,
    st: &Rc<RefCell<State>>,
    i: usize,
    server: SocketAddr,
) {
    let delay = base.backend_mut().random_below(START_WINDOW_US);
    let deadline = Time(base.now().as_micros() + delay);
    let st2 = st.clone();
    let timer = base.timer_new(move |base, id, _| {
        let st = &st2;
        let now = base.now();
        base.backend_mut()
            .trace_args(format_args!("client {i} start"));
        if now < deadline {
            st.borrow_mut().failures.push(format!(
                "client {i}'s start timer fired at {}us, before its deadline {}us",
                now.as_micros(),
                deadline.as_micros()
            ));
        }
        let _ = base.free(id);
        connect_client(base, st, i, server);
    });
    match timer {
        Ok(t) => {
            let _ = base.add(t, Some(Duration::from_micros(delay)));
        }
        Err(e) => st
            .borrow_mut()
            .failures
            .push(format!("client {i}: timer_new: {e}")),
    }
}

fn connect_client(
    base: &mut Base<SimBackend>,
    st: &Rc<RefCell<State>>,
    i: usize,
    server: SocketAddr,
) {
    let bev = match BufferEvent::socket_new(base, -1, BevOptions::CLOSE_ON_FREE) {
        Ok(b) => b,
        Err(e) => {
            st.borrow_mut()
                .failures
                .push(format!("client {i}: socket_new: {e}"));
            return;
        }
    };
    // The peer-close fault: this client will close after this many bytes (0: at once).
    let early = base
        .backend_mut()
        .decide_fault_with(FaultKind::PeerClose, || format!("client {i}"))
        .map(|x| (x % (MESSAGE.len() as u64)) as usize);
    st.borrow_mut().clients[i].early_close = early;
    let st_r = st.clone();
    let st_e = st.clone();
    let _ = bev.setcb(
        base,
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent| {
                // The message is 22 bytes; a larger read takes what the input holds.
                let mut buf = [0u8; 256];
                let n = bev.read(base, &mut buf).unwrap_or(0);
                let data = &buf[..n];
                base.backend_mut().trace_with(|w| {
                    w.s("client ");
                    w.u(i as u64);
                    w.s(" read ");
                    w.u(n as u64);
                });
                let mut s = st_r.borrow_mut();
                if let Some(v) = check_priority(base, 0, "client read callback") {
                    s.failures.push(v);
                }
                let c = &mut s.clients[i];
                c.got.extend_from_slice(data);
                if c.early_close.is_some_and(|k| c.got.len() >= k) && c.ends.is_empty() {
                    c.ends.push(End::ClosedEarly);
                    drop(s);
                    base.backend_mut()
                        .trace_args(format_args!("client {i} closes early"));
                    let _ = bev.free(base);
                }
            },
        )),
        None,
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent, what: BevEvents| {
                base.backend_mut()
                    .trace_args(format_args!("client {i} event {what:?}"));
                let mut s = st_e.borrow_mut();
                if let Some(v) = check_priority(base, 0, "client event callback") {
                    s.failures.push(v);
                }
                if what.contains(BevEvents::CONNECTED) {
                    let fd = bev.fd(base).unwrap_or(-1);
                    let conn = base.backend().connection_of(fd);
                    let c = &mut s.clients[i];
                    c.connected = true;
                    c.conn = conn;
                    if c.early_close == Some(0) {
                        c.ends.push(End::ClosedEarly);
                        drop(s);
                        base.backend_mut()
                            .trace_args(format_args!("client {i} closes early"));
                        let _ = bev.free(base);
                    }
                    return;
                }
                let end = if what.contains(BevEvents::EOF) {
                    End::Eof
                } else {
                    let e = bev
                        .error(base)
                        .ok()
                        .flatten()
                        .map_or_else(|| format!("{what:?}"), |e| e.to_string());
                    End::Error(e)
                };
                if s.clients[i].conn.is_none() {
                    let fd = bev.fd(base).unwrap_or(-1);
                    s.clients[i].conn = base.backend().connection_of(fd);
                }
                s.clients[i].ends.push(end);
                drop(s);
                let _ = bev.free(base);
            },
        )),
    );
    let _ = bev.enable(base, Events::READ);
    if let Err(e) = bev.socket_connect(base, server) {
        let mut s = st.borrow_mut();
        s.clients[i].ends.push(End::Error(format!("connect: {e}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_clients_no_faults() {
        let r = HelloWorld.run(&RunOptions::new(1, "none"));
        assert!(r.ok(), "{:#?}", r.failures);
    }
}
