//! The `stream` target: every byte written through a bufferevent is read exactly once and in
//! order, unless a fault says otherwise.
//!
//! A sink server (host 0) accepts connections and reads everything into per-connection
//! buffers; K clients (other hosts) each connect, write a distinct byte pattern in random
//! chunks at random times through a socket bufferevent, then free it once the output drained
//! (closing the socket: the server sees EOF). Invariants: what the server read on a connection
//! is a prefix of what its client wrote (nothing lost in the middle, duplicated or reordered);
//! with EOF it is all of it; an error on either side only where a fault touched the connection;
//! every connection ends in exactly one terminal event on each side.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    Base, BevEvents, BevOptions, BufferEvent, Events, Fd, Listener, ListenerOptions, Time,
};

use super::{apply_core_fault, check_priority, RunOptions, RunReport, Target};
use crate::sim::HostStatus;
use crate::world::host_addr;
use crate::SimBackend;

const PORT: u16 = 7000;
const CLIENTS_PER_HOST: usize = 5;
const HORIZON: Time = Time(3_600_000_000);

/// The `stream` target.
pub struct Stream;

/// Byte `i` of client `c`'s stream: a pattern in which a lost, repeated or moved byte shows.
fn pattern(c: usize, i: usize) -> u8 {
    (c as u64 * 131 + i as u64 * 7 + (i as u64 / 251) * 13) as u8
}

#[derive(Default)]
struct ClientState {
    conn: Option<u64>,
    sent: usize,
    total: usize,
    ends: Vec<String>,
}

#[derive(Default)]
struct State {
    clients: Vec<ClientState>,
    /// Server side, by connection number: bytes read, terminal events.
    server: BTreeMap<u64, (Vec<u8>, Vec<String>)>,
    failures: Vec<String>,
}

impl Target for Stream {
    fn name(&self) -> &str {
        "stream"
    }
    fn about(&self) -> &str {
        "bytes through bufferevents over faulty connections: read once, in order"
    }
    fn uses_clients(&self) -> bool {
        true
    }

    fn run(&self, opts: &RunOptions) -> RunReport {
        let mut sim = opts.sim();
        let st = Rc::new(RefCell::new(State::default()));
        let k = opts.clients;
        st.borrow_mut().clients = (0..k).map(|_| ClientState::default()).collect();
        let s0 = st.clone();
        let cf = opts.core_fault.clone();
        sim.add_host(move |base| {
            apply_core_fault(base, cf.as_deref());
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT);
            let s1 = s0.clone();
            let cb = move |base: &mut Base<SimBackend>, _l: Listener, fd: Fd, _a: SocketAddr| {
                sink_accept(base, &s1, fd)
            };
            if let Err(e) = Listener::bind(
                base,
                addr,
                ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_FREE,
                -1,
                Some(Box::new(cb)),
            ) {
                s0.borrow_mut().failures.push(format!("listen: {e}"));
            }
        });
        let server = SocketAddr::new(IpAddr::V4(host_addr(0)), PORT);
        for h in 0..k.div_ceil(CLIENTS_PER_HOST) {
            let s = st.clone();
            let cf = opts.core_fault.clone();
            sim.add_host(move |base| {
                apply_core_fault(base, cf.as_deref());
                for c in (h * CLIENTS_PER_HOST)..((h + 1) * CLIENTS_PER_HOST).min(k) {
                    start_client(base, &s, c, server);
                }
            });
        }
        let s = st.clone();
        let outcome = sim.run_until_pred(HORIZON, move |_| {
            let s = s.borrow();
            s.clients.iter().all(|c| !c.ends.is_empty())
                && s.server.values().all(|(_, e)| !e.is_empty())
        });
        let mut failures = Vec::new();
        if outcome != crate::Outcome::Predicate {
            failures.push(format!("not every connection ended ({outcome:?})"));
        }
        let s = st.borrow();
        failures.extend(s.failures.iter().cloned());
        let faulted = |c: u64| sim.world_ref().borrow().conn_faulted(c);
        for (i, c) in s.clients.iter().enumerate() {
            match c.ends.as_slice() {
                [e] if e == "done" => {}
                [e] => {
                    if !c.conn.is_some_and(faulted) {
                        failures.push(format!(
                            "client {i}: unexplained {e} (connection {:?})",
                            c.conn
                        ));
                    }
                }
                [] => failures.push(format!("client {i} never ended")),
                many => failures.push(format!("client {i} ended {} times: {many:?}", many.len())),
            }
        }
        for (conn, (got, ends)) in &s.server {
            let Some((ci, c)) = s
                .clients
                .iter()
                .enumerate()
                .find(|(_, c)| c.conn == Some(*conn))
            else {
                // A connection whose client never learnt it was connected (reset or refused
                // before CONNECTED): only a fault explains it.
                if !faulted(*conn) {
                    failures.push(format!("server connection c{conn} belongs to no client"));
                }
                continue;
            };
            let expect: Vec<u8> = (0..c.total).map(|j| pattern(ci, j)).collect();
            if !expect.starts_with(got) {
                let at = got
                    .iter()
                    .zip(&expect)
                    .position(|(a, b)| a != b)
                    .unwrap_or(expect.len());
                failures.push(format!(
                    "connection c{conn} (client {ci}): the server read {} bytes that are not what was written (first wrong byte at {at})",
                    got.len()
                ));
            }
            match ends.as_slice() {
                [e] if e == "eof" => {
                    if got.len() != c.total && c.ends.first().is_some_and(|e| e == "done") {
                        failures.push(format!(
                            "connection c{conn} (client {ci}): EOF after {} of {} bytes",
                            got.len(),
                            c.total
                        ));
                    }
                }
                [e] => {
                    if !faulted(*conn) {
                        failures.push(format!("server connection c{conn}: unexplained {e}"));
                    }
                }
                [] => failures.push(format!("server connection c{conn} never ended")),
                many => failures.push(format!(
                    "server connection c{conn} ended {} times: {many:?}",
                    many.len()
                )),
            }
        }
        for h in 0..sim.hosts() {
            if let HostStatus::Failed(e) = sim.status(h) {
                failures.push(format!("host {h} failed: {e}"));
            }
        }
        drop(s);
        RunReport::from_sim(&mut sim, failures)
    }
}

fn sink_accept(base: &mut Base<SimBackend>, st: &Rc<RefCell<State>>, fd: Fd) {
    let Some(conn) = base.backend().connection_of(fd) else {
        return;
    };
    let bev = match BufferEvent::socket_new(base, fd, BevOptions::CLOSE_ON_FREE) {
        Ok(b) => b,
        Err(e) => {
            st.borrow_mut()
                .failures
                .push(format!("sink socket_new: {e}"));
            return;
        }
    };
    st.borrow_mut()
        .server
        .insert(conn, (Vec::new(), Vec::new()));
    let (sr, se) = (st.clone(), st.clone());
    let _ = bev.setcb(
        base,
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent| {
                let mut buf = vec![0u8; 8192];
                let n = bev.read(base, &mut buf).unwrap_or(0);
                base.backend_mut()
                    .trace_args(format_args!("sink c{conn} read {n}"));
                let mut s = sr.borrow_mut();
                if let Some(v) = check_priority(base, 0, "sink read") {
                    s.failures.push(v);
                }
                if let Some(e) = s.server.get_mut(&conn) {
                    e.0.extend_from_slice(&buf[..n]);
                }
            },
        )),
        None,
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent, what: BevEvents| {
                base.backend_mut()
                    .trace_args(format_args!("sink c{conn} event {what:?}"));
                // Whatever is still in the input was read too.
                let mut rest = vec![0u8; 65536];
                let n = bev.read(base, &mut rest).unwrap_or(0);
                let end = if what.contains(BevEvents::EOF) {
                    "eof".to_owned()
                } else {
                    format!("{what:?}")
                };
                if let Some(e) = se.borrow_mut().server.get_mut(&conn) {
                    e.0.extend_from_slice(&rest[..n]);
                    e.1.push(end);
                }
                let _ = bev.free(base);
            },
        )),
    );
    let _ = bev.enable(base, Events::READ);
}

fn start_client(
    base: &mut Base<SimBackend>,
    st: &Rc<RefCell<State>>,
    c: usize,
    server: SocketAddr,
) {
    let be = base.backend_mut();
    let total = 1 + be.random_below(40_000) as usize;
    let start = be.random_below(100_000);
    st.borrow_mut().clients[c].total = total;
    let s = st.clone();
    let Ok(t) = base.timer_new(move |base, id, _| {
        let _ = base.free(id);
        connect(base, &s, c, server);
    }) else {
        return;
    };
    let _ = base.add(t, Some(Duration::from_micros(start)));
}

fn connect(base: &mut Base<SimBackend>, st: &Rc<RefCell<State>>, c: usize, server: SocketAddr) {
    let Ok(bev) = BufferEvent::socket_new(base, -1, BevOptions::CLOSE_ON_FREE) else {
        return;
    };
    let (sw, se) = (st.clone(), st.clone());
    let _ = bev.setcb(
        base,
        None,
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent| {
                // The output drained: once everything was handed over, close.
                let s = sw.borrow();
                let done = s.clients[c].sent == s.clients[c].total;
                drop(s);
                if done && bev.output(base).map_or(0, |o| o.len()) == 0 {
                    base.backend_mut()
                        .trace_args(format_args!("client {c} done"));
                    sw.borrow_mut().clients[c].ends.push("done".into());
                    let _ = bev.free(base);
                }
            },
        )),
        Some(Box::new(
            move |base: &mut Base<SimBackend>, bev: BufferEvent, what: BevEvents| {
                base.backend_mut()
                    .trace_args(format_args!("client {c} event {what:?}"));
                let fd = bev.fd(base).unwrap_or(-1);
                let conn = base.backend().connection_of(fd);
                if conn.is_some() {
                    se.borrow_mut().clients[c].conn = conn;
                }
                if what.contains(BevEvents::CONNECTED) {
                    schedule_chunk(base, &se, c, bev);
                    return;
                }
                se.borrow_mut().clients[c].ends.push(format!("{what:?}"));
                let _ = bev.free(base);
            },
        )),
    );
    let _ = bev.enable(base, Events::WRITE);
    if let Err(e) = bev.socket_connect(base, server) {
        st.borrow_mut().clients[c]
            .ends
            .push(format!("connect: {e}"));
    }
}

/// Writes the next chunk after a random pause, until everything is written.
fn schedule_chunk(
    base: &mut Base<SimBackend>,
    st: &Rc<RefCell<State>>,
    c: usize,
    bev: BufferEvent,
) {
    let pause = base.backend_mut().random_below(5_000);
    let s = st.clone();
    let Ok(t) = base.timer_new(move |base, id, _| {
        let _ = base.free(id);
        if !bev.is_live(base) {
            return;
        }
        let (sent, total) = {
            let s = s.borrow();
            (s.clients[c].sent, s.clients[c].total)
        };
        let n = (1 + base.backend_mut().random_below(8_000) as usize).min(total - sent);
        let chunk: Vec<u8> = (sent..sent + n).map(|i| pattern(c, i)).collect();
        s.borrow_mut().clients[c].sent += n;
        base.backend_mut()
            .trace_args(format_args!("client {c} writes {n}"));
        let _ = bev.write(base, &chunk);
        if sent + n < total {
            schedule_chunk(base, &s, c, bev);
        }
    }) else {
        return;
    };
    let _ = base.add(t, Some(Duration::from_micros(pause)));
}
