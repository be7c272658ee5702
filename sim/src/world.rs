//! The simulated operating system and network shared by every host of a run.
//!
//! The [`World`] owns the virtual clock, the run's one RNG, the fault configuration and the
//! decision log, the trace, every host's descriptor table and epoll-like interest list, every
//! socket, listener and signal pipe, and the queue of timed world events (segments in flight,
//! delayed signals, scheduled faults, scripted inputs). [`crate::SimBackend`] is a thin handle
//! (`Rc<RefCell<World>>` plus a host id) through which a `Base` reaches it.
//!
//! Models, each after Linux:
//! - Readiness follows epoll's ready list: a descriptor is appended when a wake-up whose kind it
//!   watches happens (data, room, state change, error) or when `add`/`mod` finds it ready; a
//!   dispatch takes the list in order, re-polls each entry, reports it if still ready, and puts
//!   level-triggered entries back at the tail; at most `maxevents` per dispatch (libevent's
//!   epoll array: 32, doubling up to 4096 when filled). Reports are mapped to `EV_*` bits as
//!   libevent's epoll backend maps them.
//! - Socketpairs are AF_UNIX streams on one host: no latency; close with unread data gives the
//!   peer ECONNRESET; writes to a closed or read-shut peer give EPIPE.
//! - TCP connections go between host addresses (127.0.0.0/8, never the real network). Every
//!   segment (SYN, SYN-ACK, data, FIN, RST) is a world event with a latency, FIFO per direction.
//!   Nothing listening: RST, ECONNREFUSED (a blocking connect to a port of the connecting host
//!   itself fails inside the call, as over Linux loopback). Backlog full: the SYN is retried after 1, 2, 4… s
//!   (ETIMEDOUT after 6 tries, which counts as a fault: an overloaded server). Closing with unread data, or receiving data after close, sends
//!   RST: the peer reads its data, then ECONNRESET, then EOF; writes give ECONNRESET once, then
//!   EPIPE. A socket that had the peer's FIN and sent none (CLOSE_WAIT) gets EPIPE from the RST
//!   instead of ECONNRESET, as Linux's `tcp_reset` sets it.
//! - Signals: per host; a caught signal adds one to the host's pending count and makes its
//!   signal pipe readable, as libevent's handler writes one byte to its pipe.
//!
//! This module must never read a real clock, touch a real descriptor, or iterate a hash map.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use evloop::backend::{ConnectState, ListenOptions, Ready, Resolution, Shutdown, NSIG};
use evloop::{Events, Fd, Time};

use crate::faults::{Decision, FaultConfig, FaultGate, FaultKind, Jitter, ScheduledFault};
use crate::rng::{unit_of, SimRng};
use crate::trace::{LineWriter, Part, Trace};
use crate::SimBackend;

/// Identifies a host of a simulation (0, 1, 2, …).
pub type HostId = usize;
type SockId = usize;
type LisId = usize;

// Linux poll bits (the subset epoll reports here).
const EP_IN: u32 = 0x001;
const EP_OUT: u32 = 0x004;
const EP_ERR: u32 = 0x008;
const EP_HUP: u32 = 0x010;
const EP_RDHUP: u32 = 0x2000;

const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;
const SHUTDOWN_MASK: u8 = 3;

/// libevent's epoll result array: initial size and the size it stops doubling at.
const INITIAL_NEVENT: usize = 32;
const MAX_NEVENT: usize = 4096;
/// Bytes a socket may have in flight plus unread at its peer (one direction).
pub const SOCKET_CAPACITY: usize = 64 * 1024;
/// AF_UNIX stream sockets (Linux 6.x, `net/unix/af_unix.c`): a write is cut into skbs of at
/// most `min(sk_sndbuf / 2 - 64, SKB_MAX_HEAD(0) + 32 KiB)` bytes; an skb is allocated while the
/// writer's `sk_wmem_alloc` (the truesizes of its unconsumed skbs) is below `sk_sndbuf`; the
/// peer's read frees an skb's truesize only once the skb is read completely; the writer is
/// writable (EPOLLOUT) while `(sk_wmem_alloc + 1) * 4 <= sk_sndbuf`. With the default
/// `sk_sndbuf` of 212992, `fill` writes 44 chunks of 4096 bytes (180224), as on Linux.
const UNIX_SNDBUF: usize = 212_992;
/// `SKB_MAX_HEAD(0)` on x86-64 with 4 KiB pages: 4096 minus the aligned `skb_shared_info`.
const UNIX_SKB_MAX_HEAD: usize = 3776;
const UNIX_SKB_MAX: usize = UNIX_SKB_MAX_HEAD + 32 * 1024;
const SHINFO: usize = 320;
const SKB_STRUCT: usize = 256;
const PAGE: usize = 4096;

/// The truesize Linux charges for one AF_UNIX skb carrying `size` bytes: the `sk_buff`, the
/// kmalloc'ed head (linear part plus `skb_shared_info`, rounded to its kmalloc size class) and
/// the page fragments.
fn unix_truesize(size: usize) -> usize {
    let data_len = size.min(size.saturating_sub(UNIX_SKB_MAX_HEAD).div_ceil(PAGE) * PAGE);
    let head = (size - data_len + SHINFO).next_power_of_two().max(512);
    SKB_STRUCT + head + data_len
}

/// The largest TCP segment (loopback MTU minus headers).
const MSS: usize = 65_483;
/// A host dispatching this many times without the clock moving is in a livelock.
const LIVELOCK_DISPATCHES: u64 = 1_000_000;
/// SYN retries before a connect fails with ETIMEDOUT (Linux's `tcp_syn_retries`).
const SYN_RETRIES: u32 = 6;
/// The first ephemeral port.
const EPHEMERAL_BASE: u16 = 40_000;

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// The address of host `h`: 127.0.0.1 for host 0, 127.0.0.2 for host 1, … (127.0.0.0/8).
pub fn host_addr(h: HostId) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + h as u32 + 1)
}

fn host_of_addr(ip: Ipv4Addr, nhosts: usize) -> Option<HostId> {
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    let n = u32::from(ip).checked_sub(base)? as usize;
    (n < nhosts).then_some(n)
}

/// How a host's dispatch waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitMode {
    /// Standalone: a wait moves the clock itself (VirtualTime's rule, IR.md §6).
    Advance,
    /// Under a [`crate::Sim`]: a wait that would block parks the host and returns to the
    /// simulator, which moves the clock.
    Park,
}

enum FdObj {
    Sock(SockId),
    Listener(LisId),
    SignalPipe,
}

struct Reg {
    /// Linux poll bits watched (EP_IN/EP_OUT/EP_RDHUP).
    mask: u32,
    et: bool,
    on_list: bool,
}

pub(crate) struct HostNet {
    fds: BTreeMap<Fd, FdObj>,
    regs: BTreeMap<Fd, Reg>,
    /// epoll's ready list: descriptor and the instant it was queued.
    ready: VecDeque<(Fd, Time)>,
    maxevents: usize,
    sig_caught: [bool; NSIG],
    sig_pending: [u32; NSIG],
    sig_fd: Option<Fd>,
    next_port: u16,
    pub(crate) mode: WaitMode,
    /// Set by a parking dispatch: `Some(wake)` (`None` inside: no timeout).
    pub(crate) parked: Option<Option<Time>>,
    pub(crate) resolution: Resolution,
    spin_time: Time,
    spins: u64,
}

impl HostNet {
    fn new(mode: WaitMode) -> HostNet {
        HostNet {
            fds: BTreeMap::new(),
            regs: BTreeMap::new(),
            ready: VecDeque::new(),
            maxevents: INITIAL_NEVENT,
            sig_caught: [false; NSIG],
            sig_pending: [0; NSIG],
            sig_fd: None,
            next_port: EPHEMERAL_BASE,
            mode,
            parked: None,
            resolution: Resolution::Millis,
            spin_time: Time::ZERO,
            spins: 0,
        }
    }

    fn alloc_fd(&mut self, obj: FdObj) -> Fd {
        let mut fd = 3;
        for &k in self.fds.keys() {
            if k > fd {
                break;
            }
            if k == fd {
                fd += 1;
            }
        }
        self.fds.insert(fd, obj);
        fd
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    SynSent,
    Established,
    Closed,
}

/// A TCP socket's `sock->state` (Linux's `socket_state`), as connect(2) sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ss {
    /// A connect that failed was reported by a later connect(2): the socket was disconnected
    /// and may connect again.
    Unconnected,
    /// A nonblocking connect(2) started it; it stays so until a connect(2) reports the outcome.
    Connecting,
    /// A connect(2) returned success on it, or it was accepted, or connected blocking.
    Connected,
}

struct Sock {
    tcp: bool,
    host: HostId,
    /// The descriptor, while the application holds one.
    fd: Option<Fd>,
    peer: Option<SockId>,
    st: St,
    recvq: VecDeque<u8>,
    shutdown: u8,
    err: Option<i32>,
    /// The application closed it.
    closed: bool,
    fin_sent: bool,
    /// The peer's FIN arrived (with `!fin_sent`: Linux's CLOSE_WAIT).
    fin_rcvd: bool,
    local: SocketAddr,
    remote: SocketAddr,
    /// Bytes sent towards the peer and not yet delivered.
    inflight: usize,
    /// Linux's `sock->state`, which connect(2) reads apart from the TCP state.
    ss: Ss,
    /// AF_UNIX: the skbs queued to this socket (unread bytes, truesize), oldest first.
    skbs: VecDeque<(usize, usize)>,
    /// AF_UNIX: the truesizes of this socket's skbs its peer has not consumed (sk_wmem_alloc).
    wmem: usize,
    /// The arrival time of the last segment sent (FIFO per direction).
    last_arrival: Time,
    /// The connection's number (for the trace).
    conn: u64,
}

struct Lis {
    host: HostId,
    fd: Option<Fd>,
    addr: SocketAddr,
    /// 0: bound but not listening.
    backlog: usize,
    queue: VecDeque<SockId>,
}

pub(crate) type InputFn = Box<dyn FnOnce(&mut SimBackend)>;

enum Ev {
    Syn {
        client: SockId,
        dst: SocketAddr,
        attempt: u32,
    },
    SynAck {
        client: SockId,
        server: SockId,
    },
    Refused {
        client: SockId,
    },
    Data {
        to: SockId,
        bytes: Vec<u8>,
    },
    Fin {
        to: SockId,
    },
    Rst {
        to: SockId,
    },
    Signal {
        host: HostId,
        sig: i32,
    },
    Reset {
        a: SockId,
        b: SockId,
    },
    Scheduled(ScheduledFault),
    Input {
        host: HostId,
        f: InputFn,
    },
}

/// Counters of a run (for the figures the CLI prints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Dispatches performed by all hosts.
    pub dispatches: u64,
    /// Readiness reports returned by all dispatches.
    pub reports: u64,
    /// World events (segments, signals, inputs) applied.
    pub deliveries: u64,
    /// Callbacks run by the hosts' loops (counted by the simulator, internal callbacks
    /// included), plus those reported through [`crate::SimBackend::count_callback`].
    pub callbacks: u64,
}

/// The simulated world (see the module documentation).
pub struct World {
    pub(crate) now: Time,
    pub(crate) rng: SimRng,
    faults: FaultConfig,
    gate: FaultGate,
    pub(crate) trace: Trace,
    pub(crate) hosts: Vec<HostNet>,
    socks: Vec<Sock>,
    listeners: Vec<Lis>,
    events: BTreeMap<(Time, u64), Ev>,
    seq: u64,
    conns: u64,
    partitions: BTreeMap<(HostId, HostId), Time>,
    pub(crate) stats: Stats,
    /// Connections touched by a fault (reset, refused, partitioned), by connection number.
    faulted: BTreeSet<u64>,
    /// Failures recorded during the run ([`World::fail`]).
    pub(crate) failures: Vec<String>,
    /// Buffers [`World::scan`] reuses.
    scratch: Scratch,
}

type Scratch = (
    VecDeque<(Fd, Time)>,
    VecDeque<(Fd, Time)>,
    Vec<(Ready, Time)>,
);

impl World {
    pub(crate) fn new(seed: u64, faults: FaultConfig, keep_trace: bool) -> World {
        let mut w = World {
            now: Time::ZERO,
            rng: SimRng::new(seed),
            faults,
            gate: FaultGate::new(None),
            trace: Trace::new(keep_trace),
            hosts: Vec::new(),
            socks: Vec::new(),
            listeners: Vec::new(),
            events: BTreeMap::new(),
            seq: 0,
            conns: 0,
            partitions: BTreeMap::new(),
            stats: Stats::default(),
            faulted: BTreeSet::new(),
            failures: Vec::new(),
            scratch: Scratch::default(),
        };
        for (t, f) in w.faults.schedule.clone() {
            w.push(t, Ev::Scheduled(f));
        }
        w
    }

    /// A new host: a process whose reactor is created with it, so its signal pipe exists from
    /// the start (descriptor 3), as libevent's backends make theirs when the base is created.
    /// A pipe made at the first signal add would take the lowest free number, perhaps one the
    /// program just closed while an event still names it, which under libevent stays closed.
    pub(crate) fn add_host(&mut self, mode: WaitMode) -> HostId {
        self.hosts.push(HostNet::new(mode));
        let host = self.hosts.len() - 1;
        self.signal_fd(host);
        host
    }

    /// Restricts fault injection to the decision ordinals in `only` (shrinking).
    pub(crate) fn set_only(&mut self, only: Option<BTreeSet<u64>>) {
        self.gate = FaultGate::new(only);
    }

    pub(crate) fn decisions(&self) -> &[Decision] {
        self.gate.decisions()
    }

    /// Takes the decision log out (the run is over).
    pub(crate) fn take_decisions(&mut self) -> Vec<Decision> {
        self.gate.take_decisions()
    }

    pub(crate) fn faults(&self) -> &FaultConfig {
        &self.faults
    }

    /// True if a fault touched the connection with this number.
    pub(crate) fn conn_faulted(&self, conn: u64) -> bool {
        self.faulted.contains(&conn)
    }

    // ----------------------------------------------------------------------------------------
    // The fault gate

    /// The one gate every fault goes through (see [`FaultGate`]).
    pub(crate) fn decide(&mut self, kind: FaultKind, p: f64) -> Option<u64> {
        self.gate.decide(&mut self.rng, self.now, kind, p)
    }

    /// Records the details of the fault just decided, in the decision log and the trace.
    fn note(&mut self, detail: String) {
        if let Some(d) = self.gate.note(detail) {
            // "{now} fault {d}", written without core::fmt.
            self.trace.line_with(self.now.as_micros(), None, |w| {
                w.s("fault #");
                w.u(d.ordinal);
                w.s(" at ");
                w.u(d.at.as_micros());
                w.s("us: ");
                w.s(d.kind.name());
                w.s(" ");
                w.s(&d.detail);
            });
        }
    }

    /// [`World::note`] for decisions drawn outside the world (simulated programs).
    pub(crate) fn note_public(&mut self, detail: String) {
        self.note(detail);
    }

    pub(crate) fn mark_faulted(&mut self, conn: u64) {
        self.faulted.insert(conn);
    }

    fn line(&mut self, host: HostId, args: std::fmt::Arguments<'_>) {
        self.trace.line_at(self.now.as_micros(), Some(host), args);
    }

    /// `"c{conn} {what}"` or `"c{conn} {what} n={n}"`, without core::fmt.
    fn conn_line(&mut self, host: HostId, conn: u64, what: &str, n: Option<u64>) {
        self.trace.line_with(self.now.as_micros(), Some(host), |w| {
            w.s("c");
            w.u(conn);
            w.s(" ");
            w.s(what);
            if let Some(n) = n {
                w.s(" n=");
                w.u(n);
            }
        });
    }

    /// `"{op}{fd}{sep}{n}"` (`read 3 n=22`, `write 5 err=11`), without core::fmt.
    fn io_line(&mut self, host: HostId, op: &str, fd: Fd, sep: &str, n: i64) {
        self.trace.line_parts(
            self.now.as_micros(),
            Some(host),
            &[Part::S(op), Part::I(fd.into()), Part::S(sep), Part::I(n)],
        );
    }

    // ----------------------------------------------------------------------------------------
    // World events

    fn push(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.events.insert((t, self.seq), ev);
    }

    /// Schedules a segment; one due now while nothing else is due is applied at once (a
    /// zero-latency loopback segment arrives within the call that sent it, as on Linux).
    fn push_segment(&mut self, at: Time, ev: Ev) {
        if at <= self.now && self.next_event_time().is_none_or(|t| t > self.now) {
            self.stats.deliveries += 1;
            self.apply(ev);
        } else {
            self.push(at, ev);
        }
    }

    pub(crate) fn push_input(&mut self, t: Time, host: HostId, f: InputFn) {
        self.push(t, Ev::Input { host, f });
    }

    pub(crate) fn next_event_time(&self) -> Option<Time> {
        self.events.keys().next().map(|k| k.0)
    }

    /// Applies the first world event due at or before now; an input closure is handed back to
    /// be called without the world borrowed. Returns false when nothing is due.
    fn apply_one(&mut self) -> Option<Option<(HostId, InputFn)>> {
        let (&key, _) = self.events.iter().next()?;
        if key.0 > self.now {
            return None;
        }
        let ev = self.events.remove(&key).expect("present");
        self.stats.deliveries += 1;
        Some(match ev {
            Ev::Input { host, f } => Some((host, f)),
            other => {
                self.apply(other);
                None
            }
        })
    }

    fn apply(&mut self, ev: Ev) {
        match ev {
            Ev::Syn {
                client,
                dst,
                attempt,
            } => self.arrive_syn(client, dst, attempt),
            Ev::SynAck { client, server } => {
                let c = &mut self.socks[client];
                if c.closed || c.st != St::SynSent {
                    // The client gave up: answer with RST.
                    let (h, conn) = (c.host, c.conn);
                    self.conn_line(h, conn, "synack-to-closed", None);
                    self.send(client, server, Ev::Rst { to: server }, 0);
                    return;
                }
                c.st = St::Established;
                c.peer = Some(server);
                let (h, conn) = (c.host, c.conn);
                self.conn_line(h, conn, "established", None);
                self.wake(client, EP_OUT);
            }
            Ev::Refused { client } => {
                let c = &mut self.socks[client];
                if c.closed || c.st != St::SynSent {
                    return;
                }
                let (h, conn) = (c.host, c.conn);
                self.conn_line(h, conn, "refused", None);
                self.abort(client, libc::ECONNREFUSED);
            }
            Ev::Data { to, bytes } => {
                let n = bytes.len();
                if let Some(from) = self.socks[to].peer {
                    let f = &mut self.socks[from];
                    f.inflight = f.inflight.saturating_sub(n);
                }
                let s = &self.socks[to];
                let (h, conn, closed, peer) = (s.host, s.conn, s.closed, s.peer);
                if closed {
                    self.conn_line(h, conn, "data-to-closed", Some(n as u64));
                    if let Some(from) = peer {
                        if self.socks[from].st != St::Closed {
                            self.send(to, from, Ev::Rst { to: from }, 0);
                        }
                    }
                    return;
                }
                let s = &mut self.socks[to];
                if s.st == St::Closed {
                    return; // reset: dropped
                }
                s.recvq.extend(bytes);
                self.conn_line(h, conn, "arrive", Some(n as u64));
                self.wake(to, EP_IN);
            }
            Ev::Fin { to } => {
                let s = &mut self.socks[to];
                if s.closed || s.st == St::Closed {
                    return;
                }
                s.shutdown |= RCV_SHUTDOWN;
                s.fin_rcvd = true;
                let (h, conn) = (s.host, s.conn);
                self.conn_line(h, conn, "fin", None);
                self.wake(to, 0);
            }
            Ev::Rst { to } => {
                let s = &self.socks[to];
                if s.closed || s.st == St::Closed {
                    return;
                }
                let (h, conn, code) = (s.host, s.conn, Self::reset_error(s));
                self.conn_line(h, conn, "rst", None);
                self.abort(to, code);
            }
            Ev::Signal { host, sig } => self.deliver_signal(host, sig),
            Ev::Reset { a, b } => {
                let conn = self.socks[a].conn;
                self.faulted.insert(conn);
                for s in [a, b] {
                    let k = &self.socks[s];
                    if !k.closed && k.st != St::Closed {
                        let (h, code) = (k.host, Self::reset_error(k));
                        self.conn_line(h, conn, "reset", None);
                        self.abort(s, code);
                    }
                }
            }
            Ev::Scheduled(f) => self.apply_scheduled(f),
            Ev::Input { .. } => unreachable!("handed back by apply_one"),
        }
    }

    fn apply_scheduled(&mut self, f: ScheduledFault) {
        match f {
            ScheduledFault::Partition { a, b, heal_after } => {
                let heal = self.now.saturating_add(heal_after);
                self.trace.line_at(
                    self.now.as_micros(),
                    None,
                    format_args!("scheduled partition h{a}-h{b} until {}", heal.as_micros()),
                );
                self.partitions.insert((a.min(b), a.max(b)), heal);
            }
            ScheduledFault::ClockJump(d) => {
                self.now = self.now.saturating_add(d);
                self.trace.line_at(
                    self.now.as_micros(),
                    None,
                    format_args!("scheduled clock-jump {}us", d.as_micros()),
                );
            }
            ScheduledFault::ResetHost(h) => {
                let victims: Vec<(SockId, SockId)> = (0..self.socks.len())
                    .filter(|&s| {
                        let k = &self.socks[s];
                        k.tcp && k.host == h && k.st == St::Established && !k.closed
                    })
                    .filter_map(|s| self.socks[s].peer.map(|p| (s, p)))
                    .collect();
                for (a, b) in victims {
                    self.apply(Ev::Reset { a, b });
                }
            }
            ScheduledFault::Signal { host, sig } => self.deliver_signal(host, sig),
        }
    }

    /// A socket is reset or refused: error, both directions shut, closed state.
    /// The error an RST leaves on a socket, by its state (Linux's `tcp_reset`): ECONNREFUSED
    /// during the handshake, EPIPE in CLOSE_WAIT (the peer's FIN arrived, ours was not sent),
    /// ECONNRESET otherwise.
    fn reset_error(k: &Sock) -> i32 {
        if k.st == St::SynSent {
            libc::ECONNREFUSED
        } else if k.fin_rcvd && !k.fin_sent {
            libc::EPIPE
        } else {
            libc::ECONNRESET
        }
    }

    fn abort(&mut self, s: SockId, code: i32) {
        let k = &mut self.socks[s];
        k.err = Some(code);
        k.shutdown = SHUTDOWN_MASK;
        k.st = St::Closed;
        self.wake(s, EP_ERR);
        self.wake(s, 0);
    }

    // ----------------------------------------------------------------------------------------
    // Sending segments

    /// The one-way latency of the next segment on the link `a`–`b` (a fault decision when
    /// jitter applies).
    fn latency(&mut self, a: HostId, b: HostId) -> Duration {
        let link = self.faults.link(a, b).clone();
        let mut lat = link.latency;
        if link.jitter != Jitter::None {
            if let Some(x) = self.decide(FaultKind::Latency, link.jitter_p) {
                let extra = match link.jitter {
                    Jitter::None => 0,
                    Jitter::Uniform { max } => {
                        let max = evloop::event::duration_micros(max);
                        ((u128::from(x) * u128::from(max + 1)) >> 64) as u64
                    }
                    Jitter::Exponential { mean } => {
                        let mean = evloop::event::duration_micros(mean) as f64;
                        let u = unit_of(x).max(1e-12);
                        ((-u.ln()) * mean).min(mean * 20.0) as u64
                    }
                };
                lat += Duration::from_micros(extra);
                self.note(format!("h{a}->h{b} +{extra}us"));
            }
        }
        lat
    }

    /// Schedules a segment from socket `from` to socket `to`: latency, partition, FIFO.
    fn send(&mut self, from: SockId, to: SockId, ev: Ev, _len: usize) {
        let (ha, hb) = (self.socks[from].host, self.socks[to].host);
        let mut at = self.now.saturating_add(self.latency(ha, hb));
        let key = (ha.min(hb), ha.max(hb));
        let link = self.faults.link(ha, hb).clone();
        if let Some(x) = self.decide(FaultKind::Partition, link.partition) {
            let max = evloop::event::duration_micros(link.partition_max).max(1);
            let d = 1 + x % max;
            let heal = self.now.saturating_add(Duration::from_micros(d));
            let conn = self.socks[from].conn;
            self.faulted.insert(conn);
            self.partitions.insert(key, heal);
            self.note(format!("h{ha}-h{hb} until {}", heal.as_micros()));
        }
        if let Some(&heal) = self.partitions.get(&key) {
            if heal > self.now {
                let conn = self.socks[from].conn;
                self.faulted.insert(conn);
                at = at.max(heal.saturating_add(link.latency));
            } else {
                self.partitions.remove(&key);
            }
        }
        let s = &mut self.socks[from];
        at = at.max(s.last_arrival);
        s.last_arrival = at;
        self.push_segment(at, ev);
    }

    /// Schedules a SYN (client socket not yet connected: it has no peer).
    fn send_syn(&mut self, client: SockId, dst: SocketAddr, attempt: u32, delay: Duration) {
        let ha = self.socks[client].host;
        let hb = match dst.ip() {
            IpAddr::V4(ip) => host_of_addr(ip, self.hosts.len()).unwrap_or(ha),
            IpAddr::V6(_) => ha,
        };
        let mut at = self
            .now
            .saturating_add(delay)
            .saturating_add(self.latency(ha, hb));
        let key = (ha.min(hb), ha.max(hb));
        if let Some(&heal) = self.partitions.get(&key) {
            if heal > self.now {
                let conn = self.socks[client].conn;
                self.faulted.insert(conn);
                at = at.max(heal.saturating_add(self.faults.link(ha, hb).latency));
            }
        }
        self.push_segment(
            at,
            Ev::Syn {
                client,
                dst,
                attempt,
            },
        );
    }

    fn arrive_syn(&mut self, client: SockId, dst: SocketAddr, attempt: u32) {
        let c = &self.socks[client];
        if c.closed || c.st != St::SynSent {
            return;
        }
        let (ch, conn) = (c.host, c.conn);
        let target = self.find_listener(dst);
        let Some(l) = target else {
            self.line(ch, format_args!("c{conn} syn {dst} no-listener"));
            let dh = match dst.ip() {
                IpAddr::V4(ip) => host_of_addr(ip, self.hosts.len()).unwrap_or(ch),
                IpAddr::V6(_) => ch,
            };
            let lat = self.latency(dh, ch);
            self.push_segment(self.now.saturating_add(lat), Ev::Refused { client });
            return;
        };
        let lh = self.listeners[l].host;
        let link = self.faults.link(ch, lh).clone();
        if self.decide(FaultKind::Refuse, link.refuse).is_some() {
            self.faulted.insert(conn);
            self.note(format!("c{conn} h{ch}->h{lh}"));
            let lat = self.latency(lh, ch);
            self.push_segment(self.now.saturating_add(lat), Ev::Refused { client });
            return;
        }
        let lis = &self.listeners[l];
        if lis.queue.len() >= lis.backlog {
            if attempt >= SYN_RETRIES {
                // The server was overloaded for two minutes: an environmental condition that
                // explains the failure like a fault does.
                self.faulted.insert(conn);
                self.line(ch, format_args!("c{conn} syn timeout"));
                self.abort(client, libc::ETIMEDOUT);
                return;
            }
            self.line(
                ch,
                format_args!("c{conn} syn backlog-full retry={}", attempt + 1),
            );
            let back = Duration::from_secs(1 << attempt);
            self.send_syn(client, dst, attempt + 1, back);
            return;
        }
        let local = lis.addr;
        let local = SocketAddr::new(dst.ip(), local.port());
        let remote = self.socks[client].local;
        let server = self.socks.len();
        self.socks.push(Sock {
            tcp: true,
            host: lh,
            fd: None,
            peer: Some(client),
            st: St::Established,
            recvq: VecDeque::new(),
            shutdown: 0,
            err: None,
            closed: false,
            fin_sent: false,
            fin_rcvd: false,
            local,
            remote,
            inflight: 0,
            ss: Ss::Connected,
            skbs: VecDeque::new(),
            wmem: 0,
            last_arrival: Time::ZERO,
            conn,
        });
        self.listeners[l].queue.push_back(server);
        self.line(lh, format_args!("c{conn} syn {dst} queued"));
        if let Some(fd) = self.listeners[l].fd {
            self.wake_fd(lh, fd, EP_IN);
        }
        self.send(server, client, Ev::SynAck { client, server }, 0);
        if let Some(x) = self.decide(FaultKind::Reset, link.reset) {
            let within = evloop::event::duration_micros(link.reset_within).max(1);
            let d = x % within;
            self.note(format!("c{conn} in {d}us"));
            self.push(
                self.now.saturating_add(Duration::from_micros(d)),
                Ev::Reset {
                    a: client,
                    b: server,
                },
            );
        }
    }

    fn find_listener(&self, dst: SocketAddr) -> Option<LisId> {
        let IpAddr::V4(ip) = dst.ip() else {
            return None;
        };
        let h = host_of_addr(ip, self.hosts.len())?;
        // An exact address wins over the wildcard, as in the kernel's lookup.
        let mut best = None;
        for (i, l) in self.listeners.iter().enumerate() {
            if l.host != h || l.fd.is_none() || l.backlog == 0 || l.addr.port() != dst.port() {
                continue;
            }
            if l.addr.ip() == dst.ip() {
                return Some(i);
            }
            if l.addr.ip().is_unspecified() {
                best = Some(i);
            }
        }
        best
    }

    // ----------------------------------------------------------------------------------------
    // Readiness

    /// Linux's poll mask of an open descriptor.
    fn poll_fd(&self, host: HostId, fd: Fd) -> u32 {
        match self.hosts[host].fds.get(&fd) {
            Some(FdObj::Sock(s)) => self.poll_sock(*s),
            Some(FdObj::Listener(l)) if !self.listeners[*l].queue.is_empty() => EP_IN,
            Some(FdObj::SignalPipe) if self.hosts[host].sig_pending.iter().any(|&n| n > 0) => EP_IN,
            Some(_) => 0,
            None => 0,
        }
    }

    fn poll_sock(&self, s: SockId) -> u32 {
        let k = &self.socks[s];
        let mut m = 0;
        if k.tcp {
            if k.shutdown == SHUTDOWN_MASK || k.st == St::Closed {
                m |= EP_HUP;
            }
            if k.shutdown & RCV_SHUTDOWN != 0 {
                m |= EP_IN | EP_RDHUP;
            }
            if k.st != St::SynSent {
                if !k.recvq.is_empty() {
                    m |= EP_IN;
                }
                if k.shutdown & SEND_SHUTDOWN != 0 || self.room(s) > 0 {
                    m |= EP_OUT;
                }
            }
        } else {
            if k.shutdown == SHUTDOWN_MASK {
                m |= EP_HUP;
            }
            if k.shutdown & RCV_SHUTDOWN != 0 {
                m |= EP_IN | EP_RDHUP;
            }
            if !k.recvq.is_empty() {
                m |= EP_IN;
            }
            if k.peer.is_none() || Self::unix_writable(k) {
                m |= EP_OUT;
            }
        }
        if k.err.is_some() {
            m |= EP_ERR;
        }
        m
    }

    /// `unix_writable`: the unconsumed skbs take at most a quarter of the send buffer.
    fn unix_writable(k: &Sock) -> bool {
        (k.wmem + 1) * 4 <= UNIX_SNDBUF
    }

    /// Bytes `s` may still send: capacity minus in flight minus unread at the peer.
    fn room(&self, s: SockId) -> usize {
        let k = &self.socks[s];
        let unread = k.peer.map_or(0, |p| self.socks[p].recvq.len());
        SOCKET_CAPACITY.saturating_sub(k.inflight + unread)
    }

    /// epoll's wake-up callback for socket `s` with wake-up kind `key` (0: any).
    fn wake(&mut self, s: SockId, key: u32) {
        let k = &self.socks[s];
        if let Some(fd) = k.fd {
            let h = k.host;
            self.wake_fd(h, fd, key);
        }
    }

    fn wake_fd(&mut self, host: HostId, fd: Fd, key: u32) {
        let now = self.now;
        let hn = &mut self.hosts[host];
        let Some(reg) = hn.regs.get_mut(&fd) else {
            return;
        };
        if key != 0 && key & (reg.mask | EP_ERR | EP_HUP) == 0 {
            return;
        }
        if !reg.on_list {
            reg.on_list = true;
            hn.ready.push_back((fd, now));
        }
    }

    /// The `EV_*` bits libevent's epoll backend derives from the reported Linux bits.
    fn readiness(what: u32) -> Events {
        if what & EP_ERR != 0 || (what & EP_HUP != 0 && what & EP_RDHUP == 0) {
            return Events::READ | Events::WRITE;
        }
        let mut ev = Events::NONE;
        if what & EP_IN != 0 {
            ev |= Events::READ;
        }
        if what & EP_OUT != 0 {
            ev |= Events::WRITE;
        }
        if what & EP_RDHUP != 0 {
            ev |= Events::CLOSED;
        }
        ev
    }

    /// True if a dispatch of `host` would report something now.
    pub(crate) fn has_work(&self, host: HostId) -> bool {
        let hn = &self.hosts[host];
        hn.ready.iter().any(|&(fd, _)| {
            hn.regs
                .get(&fd)
                .is_some_and(|r| self.poll_fd(host, fd) & (r.mask | EP_ERR | EP_HUP) != 0)
        })
    }

    /// epoll_wait's scan of the ready list (`ep_send_events`), with the readiness faults.
    pub(crate) fn scan(&mut self, host: HostId, out: &mut Vec<Ready>) {
        let now = self.now;
        let mut list = std::mem::take(&mut self.hosts[host].ready);
        let maxevents = self.hosts[host].maxevents;
        // Scratch buffers kept between scans (a scan runs on every dispatch).
        let (mut rest, mut requeue, mut got) = std::mem::take(&mut self.scratch);
        for (fd, t) in list.drain(..) {
            if got.len() == maxevents {
                rest.push_back((fd, t));
                continue;
            }
            let Some(reg) = self.hosts[host].regs.get(&fd) else {
                continue;
            };
            let (mask, et) = (reg.mask, reg.et);
            let revents = self.poll_fd(host, fd) & (mask | EP_ERR | EP_HUP);
            let reg = self.hosts[host].regs.get_mut(&fd).expect("checked");
            reg.on_list = false;
            if revents == 0 {
                continue;
            }
            let events = World::readiness(revents);
            if events.is_empty() {
                continue;
            }
            got.push((
                Ready {
                    fd,
                    events: events | Events::ET,
                },
                t,
            ));
            if !et {
                reg.on_list = true;
                requeue.push_back((fd, now));
            }
        }
        rest.extend(requeue.drain(..));
        let hn = &mut self.hosts[host];
        hn.ready = rest;
        let rest = list;
        if got.len() == maxevents && maxevents < MAX_NEVENT {
            hn.maxevents = maxevents * 2;
        }
        // Fault: permute entries queued in the same instant (a real kernel could have queued
        // simultaneous wake-ups in any order).
        if got.len() > 1 {
            let p = self.faults.reorder;
            if let Some(x) = self.decide(FaultKind::Reorder, p) {
                let mut r = SimRng::new(x);
                let mut i = 0;
                let mut moved = 0;
                while i < got.len() {
                    let mut j = i + 1;
                    while j < got.len() && got[j].1 == got[i].1 {
                        j += 1;
                    }
                    if j - i > 1 {
                        r.shuffle(&mut got[i..j]);
                        moved += j - i;
                    }
                    i = j;
                }
                self.note(format!("h{host} {moved} of {}", got.len()));
            }
        }
        // Fault: one watched descriptor reported although it is not ready.
        let nregs = self.hosts[host].regs.len();
        if nregs > 0 {
            let p = self.faults.spurious;
            if let Some(x) = self.decide(FaultKind::Spurious, p) {
                let k = (x % nregs as u64) as usize;
                let (&fd, reg) = self.hosts[host].regs.iter().nth(k).expect("k < len");
                let events = World::readiness(reg.mask) | Events::ET;
                if !got.iter().any(|(r, _)| r.fd == fd) {
                    got.push((Ready { fd, events }, now));
                }
                self.note(format!("h{host} fd={fd} {events}"));
            }
        }
        if !got.is_empty() {
            self.trace.line_with(now.as_micros(), Some(host), |w| {
                w.s("ready");
                for (r, _) in &got {
                    w.s(" ");
                    w.i(r.fd.into());
                    w.s(":");
                    events_letters(w, r.events);
                }
            });
        }
        self.stats.reports += got.len() as u64;
        out.extend(got.drain(..).map(|(r, _)| r));
        self.scratch = (rest, requeue, got);
    }

    // ----------------------------------------------------------------------------------------
    // The backend operations (called through SimBackend)

    pub(crate) fn epoll_add(
        &mut self,
        host: HostId,
        fd: Fd,
        old: Events,
        added: Events,
    ) -> io::Result<()> {
        if added.io().is_empty() {
            return Ok(());
        }
        if !self.hosts[host].fds.contains_key(&fd) {
            return Err(err(libc::EBADF));
        }
        let mask = ep_mask(old.io() | added.io());
        let et = added.contains(Events::ET);
        self.epoll_set(host, fd, mask, et);
        Ok(())
    }

    pub(crate) fn epoll_del(
        &mut self,
        host: HostId,
        fd: Fd,
        old: Events,
        removed: Events,
    ) -> io::Result<()> {
        if removed.io().is_empty() {
            return Ok(());
        }
        let remaining = old.io() & !removed.io();
        let hn = &mut self.hosts[host];
        if remaining.is_empty() {
            hn.regs.remove(&fd);
            hn.ready.retain(|&(f, _)| f != fd);
            return Ok(());
        }
        if !hn.fds.contains_key(&fd) {
            return Err(err(libc::EBADF));
        }
        // evmap never mixes ET and level-triggered events on one fd (as in EpollBackend::del).
        let et = removed.contains(Events::ET);
        self.epoll_set(host, fd, ep_mask(remaining), et);
        Ok(())
    }

    /// EPOLL_CTL_ADD / EPOLL_CTL_MOD: set the interest, then queue the fd if it is ready.
    fn epoll_set(&mut self, host: HostId, fd: Fd, mask: u32, et: bool) {
        let reg = self.hosts[host].regs.entry(fd).or_insert(Reg {
            mask,
            et,
            on_list: false,
        });
        reg.mask = mask;
        reg.et = et;
        let on_list = reg.on_list;
        if !on_list && self.poll_fd(host, fd) & (mask | EP_ERR | EP_HUP) != 0 {
            let now = self.now;
            let hn = &mut self.hosts[host];
            hn.regs.get_mut(&fd).expect("inserted").on_list = true;
            hn.ready.push_back((fd, now));
        }
    }

    /// Counts dispatches and stops a host that spins at one instant forever.
    pub(crate) fn dispatch_guard(&mut self, host: HostId) -> io::Result<()> {
        self.stats.dispatches += 1;
        let now = self.now;
        let hn = &mut self.hosts[host];
        if hn.spin_time == now {
            hn.spins += 1;
            if hn.spins > LIVELOCK_DISPATCHES {
                return Err(io::Error::other(format!(
                    "simulated host {host}: {LIVELOCK_DISPATCHES} dispatches without the clock moving (livelock)"
                )));
            }
        } else {
            hn.spin_time = now;
            hn.spins = 0;
        }
        Ok(())
    }

    /// Fault: the clock jumps forward inside a wait.
    pub(crate) fn maybe_clock_jump(&mut self, host: HostId) {
        let p = self.faults.clock_jump;
        if let Some(x) = self.decide(FaultKind::ClockJump, p) {
            let max = evloop::event::duration_micros(self.faults.clock_jump_max).max(1);
            let d = 1 + x % max;
            self.now = Time(self.now.0 + d);
            self.note(format!("h{host} +{d}us"));
        }
    }

    pub(crate) fn signal_add(&mut self, host: HostId, sig: i32) -> io::Result<()> {
        let i = check_signal(sig)?;
        self.hosts[host].sig_caught[i] = true;
        Ok(())
    }

    pub(crate) fn signal_del(&mut self, host: HostId, sig: i32) -> io::Result<()> {
        let i = check_signal(sig)?;
        self.hosts[host].sig_caught[i] = false;
        Ok(())
    }

    pub(crate) fn signal_fd(&mut self, host: HostId) -> Fd {
        let hn = &mut self.hosts[host];
        match hn.sig_fd {
            Some(fd) => fd,
            None => {
                let fd = hn.alloc_fd(FdObj::SignalPipe);
                hn.sig_fd = Some(fd);
                fd
            }
        }
    }

    pub(crate) fn signal_drain(&mut self, host: HostId, counts: &mut [u32; NSIG]) {
        let hn = &mut self.hosts[host];
        let mut s = String::new();
        for (i, n) in hn.sig_pending.iter_mut().enumerate() {
            if *n > 0 {
                counts[i] = counts[i].saturating_add(*n);
                let _ = write!(s, " {i}x{n}");
                *n = 0;
            }
        }
        if !s.is_empty() {
            self.line(host, format_args!("signal-drain{s}"));
        }
    }

    pub(crate) fn raise(&mut self, host: HostId, sig: i32) -> io::Result<()> {
        check_signal(sig)?;
        let p = self.faults.signal_delay;
        if let Some(x) = self.decide(FaultKind::SignalDelay, p) {
            let max = evloop::event::duration_micros(self.faults.signal_delay_max).max(1);
            let d = 1 + x % max;
            self.note(format!("h{host} sig={sig} +{d}us"));
            self.push(
                self.now.saturating_add(Duration::from_micros(d)),
                Ev::Signal { host, sig },
            );
            return Ok(());
        }
        self.deliver_signal(host, sig);
        Ok(())
    }

    fn deliver_signal(&mut self, host: HostId, sig: i32) {
        let Ok(i) = check_signal(sig) else {
            return;
        };
        if !self.hosts[host].sig_caught[i] {
            self.line(host, format_args!("signal {sig} ignored"));
            return;
        }
        if self.hosts[host].sig_pending[i] > 0 {
            let p = self.faults.signal_merge;
            if self.decide(FaultKind::SignalMerge, p).is_some() {
                self.note(format!("h{host} sig={sig}"));
                return;
            }
        }
        let mut n = 1;
        let p = self.faults.signal_repeat;
        if self.decide(FaultKind::SignalRepeat, p).is_some() {
            self.note(format!("h{host} sig={sig}"));
            n = 2;
        }
        self.hosts[host].sig_pending[i] += n;
        self.line(host, format_args!("signal {sig} delivered x{n}"));
        if let Some(fd) = self.hosts[host].sig_fd {
            self.wake_fd(host, fd, EP_IN);
        }
    }

    pub(crate) fn schedule_signal(&mut self, t: Time, host: HostId, sig: i32) {
        self.push(t, Ev::Signal { host, sig });
    }

    fn new_sock(
        &mut self,
        host: HostId,
        tcp: bool,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> SockId {
        self.socks.push(Sock {
            tcp,
            host,
            fd: None,
            peer: None,
            st: St::Established,
            recvq: VecDeque::new(),
            shutdown: 0,
            err: None,
            closed: false,
            fin_sent: false,
            fin_rcvd: false,
            local,
            remote,
            inflight: 0,
            ss: Ss::Connected,
            skbs: VecDeque::new(),
            wmem: 0,
            last_arrival: Time::ZERO,
            conn: 0,
        });
        self.socks.len() - 1
    }

    fn attach(&mut self, host: HostId, s: SockId) -> Fd {
        let fd = self.hosts[host].alloc_fd(FdObj::Sock(s));
        self.socks[s].fd = Some(fd);
        fd
    }

    pub(crate) fn socketpair(&mut self, host: HostId) -> (Fd, Fd) {
        let unix = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let a = self.new_sock(host, false, unix, unix);
        let b = self.new_sock(host, false, unix, unix);
        self.socks[a].peer = Some(b);
        self.socks[b].peer = Some(a);
        self.conns += 1;
        self.socks[a].conn = self.conns;
        self.socks[b].conn = self.conns;
        let fa = self.attach(host, a);
        let fb = self.attach(host, b);
        self.line(host, format_args!("socketpair {fa} {fb}"));
        (fa, fb)
    }

    fn sock_of(&self, host: HostId, fd: Fd) -> io::Result<SockId> {
        match self.hosts[host].fds.get(&fd) {
            Some(FdObj::Sock(s)) => Ok(*s),
            Some(_) => Err(err(libc::ENOTSOCK)),
            None => Err(err(libc::EBADF)),
        }
    }

    pub(crate) fn read(&mut self, host: HostId, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.read_inner(host, fd, buf);
        match &r {
            Ok(n) => self.io_line(host, "read ", fd, " n=", *n as i64),
            Err(e) => self.io_line(
                host,
                "read ",
                fd,
                " err=",
                i64::from(e.raw_os_error().unwrap_or(0)),
            ),
        }
        r
    }

    fn read_inner(&mut self, host: HostId, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        if matches!(self.hosts[host].fds.get(&fd), Some(FdObj::SignalPipe)) {
            return Err(err(libc::EAGAIN));
        }
        let s = self.sock_of(host, fd)?;
        if self.socks[s].tcp && self.socks[s].st == St::SynSent {
            return Err(err(libc::EAGAIN));
        }
        if !self.socks[s].recvq.is_empty() && !buf.is_empty() {
            let p = self.faults.eagain_read;
            if self.decide(FaultKind::EagainRead, p).is_some() {
                self.note(format!("h{host} fd={fd}"));
                // The data "was not there yet": it is announced again, as its arrival would be.
                self.wake(s, EP_IN);
                return Err(err(libc::EAGAIN));
            }
            let k = &self.socks[s];
            let mut n = buf.len().min(k.recvq.len());
            if n > 1 {
                let p = self.faults.short_read;
                if let Some(x) = self.decide(FaultKind::ShortRead, p) {
                    let m = 1 + (x % (n as u64 - 1)) as usize;
                    self.note(format!("h{host} fd={fd} {m} of {n}"));
                    n = m;
                    self.wake(s, EP_IN);
                }
            }
            let k = &mut self.socks[s];
            for (dst, b) in buf.iter_mut().zip(k.recvq.drain(..n)) {
                *dst = b;
            }
            if !self.socks[s].tcp {
                // AF_UNIX: completely read skbs give their truesize back to the writer, which
                // is woken if that makes it writable
                let mut freed = 0;
                let mut left = n;
                let k = &mut self.socks[s];
                while left > 0 {
                    let Some(front) = k.skbs.front_mut() else {
                        break;
                    };
                    let take = left.min(front.0);
                    front.0 -= take;
                    left -= take;
                    if front.0 == 0 {
                        freed += front.1;
                        k.skbs.pop_front();
                    }
                }
                if let Some(p) = self.socks[s].peer {
                    let w = &mut self.socks[p];
                    w.wmem = w.wmem.saturating_sub(freed);
                    if freed > 0 && Self::unix_writable(w) {
                        self.wake(p, EP_OUT);
                    }
                }
                return Ok(n);
            }
            // The writer has room again.
            if let Some(p) = self.socks[s].peer {
                if self.room(p) > 0 {
                    self.wake(p, EP_OUT);
                }
            }
            return Ok(n);
        }
        let k = &mut self.socks[s];
        if buf.is_empty() {
            return Ok(0);
        }
        if k.tcp && k.fin_rcvd {
            // Linux's tcp_recvmsg: once the peer's FIN has arrived (SOCK_DONE), an empty queue
            // reads as end of file before any pending error is looked at. An RST after the FIN
            // leaves its error (EPIPE in CLOSE_WAIT) for the next write or SO_ERROR.
            return Ok(0);
        }
        if let Some(e) = k.err.take() {
            return Err(err(e));
        }
        if k.shutdown & RCV_SHUTDOWN != 0 || k.st == St::Closed {
            return Ok(0);
        }
        Err(err(libc::EAGAIN))
    }

    pub(crate) fn write(&mut self, host: HostId, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let r = self.write_inner(host, fd, buf);
        match &r {
            Ok(n) => self.io_line(host, "write ", fd, " n=", *n as i64),
            Err(e) => self.io_line(
                host,
                "write ",
                fd,
                " err=",
                i64::from(e.raw_os_error().unwrap_or(0)),
            ),
        }
        r
    }

    fn write_inner(&mut self, host: HostId, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let s = self.sock_of(host, fd)?;
        let k = &mut self.socks[s];
        if k.tcp {
            if let Some(e) = k.err.take() {
                return Err(err(e));
            }
            if k.shutdown & SEND_SHUTDOWN != 0 || k.st == St::Closed {
                return Err(err(libc::EPIPE));
            }
            if k.st == St::SynSent {
                return Err(err(libc::EAGAIN));
            }
        } else {
            if k.shutdown & SEND_SHUTDOWN != 0 {
                return Err(err(libc::EPIPE));
            }
            let peer = k.peer;
            match peer {
                None => return Err(err(libc::EPIPE)),
                Some(p) if self.socks[p].shutdown & RCV_SHUTDOWN != 0 => {
                    return Err(err(libc::EPIPE))
                }
                Some(_) => {}
            }
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let room = if self.socks[s].tcp {
            self.room(s)
        } else if self.socks[s].wmem >= UNIX_SNDBUF {
            0
        } else {
            buf.len()
        };
        if room == 0 {
            return Err(err(libc::EAGAIN));
        }
        let p = self.faults.eagain_write;
        if self.decide(FaultKind::EagainWrite, p).is_some() {
            self.note(format!("h{host} fd={fd}"));
            self.wake(s, EP_OUT);
            return Err(err(libc::EAGAIN));
        }
        let mut n = buf.len().min(room);
        if n > 1 {
            let p = self.faults.short_write;
            if let Some(x) = self.decide(FaultKind::ShortWrite, p) {
                let m = 1 + (x % (n as u64 - 1)) as usize;
                self.note(format!("h{host} fd={fd} {m} of {n}"));
                n = m;
                self.wake(s, EP_OUT);
            }
        }
        let peer = self.socks[s].peer.expect("checked above");
        if !self.socks[s].tcp {
            // one skb at a time while the writer's sk_wmem_alloc is below sk_sndbuf
            let mut sent = 0;
            while sent < n && self.socks[s].wmem < UNIX_SNDBUF {
                let size = (n - sent).min(UNIX_SKB_MAX);
                let t = unix_truesize(size);
                self.socks[s].wmem += t;
                let q = &mut self.socks[peer];
                q.recvq.extend(&buf[sent..sent + size]);
                q.skbs.push_back((size, t));
                sent += size;
            }
            self.wake(peer, EP_IN);
            return Ok(sent);
        }
        // TCP: segments of at most MSS, possibly chunked further, each with its latency.
        let mut cuts = Vec::new();
        let mut off = 0;
        while off < n {
            let len = (n - off).min(MSS);
            cuts.push((off, off + len));
            off += len;
        }
        let ha = self.socks[s].host;
        let hb = self.socks[peer].host;
        let p = self.faults.link(ha, hb).chunk;
        if n > 1 {
            if let Some(x) = self.decide(FaultKind::Chunk, p) {
                let pieces = 2 + (x % 3) as usize;
                let mut r = SimRng::new(x);
                let mut points: Vec<usize> = (0..pieces - 1)
                    .map(|_| 1 + r.below(n as u64 - 1) as usize)
                    .collect();
                points.extend(cuts.iter().map(|c| c.1));
                points.sort_unstable();
                points.dedup();
                let mut start = 0;
                cuts.clear();
                for e in points {
                    if e > start {
                        cuts.push((start, e));
                        start = e;
                    }
                }
                let conn = self.socks[s].conn;
                self.note(format!("c{conn} {n} bytes in {} segments", cuts.len()));
            }
        }
        self.socks[s].inflight += n;
        for (a, b) in cuts {
            let bytes = buf[a..b].to_vec();
            self.send(s, peer, Ev::Data { to: peer, bytes }, b - a);
        }
        Ok(n)
    }

    pub(crate) fn shutdown(&mut self, host: HostId, fd: Fd, how: Shutdown) -> io::Result<()> {
        let s = self.sock_of(host, fd)?;
        let mode = match how {
            Shutdown::Read => RCV_SHUTDOWN,
            Shutdown::Write => SEND_SHUTDOWN,
            Shutdown::Both => SHUTDOWN_MASK,
        };
        self.line(host, format_args!("shutdown {fd} {mode}"));
        if self.socks[s].tcp {
            if self.socks[s].st == St::SynSent {
                return Err(err(libc::ENOTCONN));
            }
            self.socks[s].shutdown |= mode;
            if mode & SEND_SHUTDOWN != 0 {
                self.send_fin(s);
            }
            self.wake(s, 0);
            return Ok(());
        }
        self.socks[s].shutdown |= mode;
        self.wake(s, 0);
        if let Some(p) = self.socks[s].peer {
            let flip = ((mode & RCV_SHUTDOWN) << 1) | ((mode & SEND_SHUTDOWN) >> 1);
            self.socks[p].shutdown |= flip;
            self.wake(p, 0);
        }
        Ok(())
    }

    fn send_fin(&mut self, s: SockId) {
        let k = &mut self.socks[s];
        if k.fin_sent || k.st != St::Established {
            return;
        }
        k.fin_sent = true;
        if let Some(p) = k.peer {
            self.send(s, p, Ev::Fin { to: p }, 0);
        }
    }

    pub(crate) fn close(&mut self, host: HostId, fd: Fd) -> io::Result<()> {
        let obj = self.hosts[host]
            .fds
            .remove(&fd)
            .ok_or_else(|| err(libc::EBADF))?;
        let hn = &mut self.hosts[host];
        // Closing the last reference removes the descriptor from the epoll set.
        hn.regs.remove(&fd);
        hn.ready.retain(|&(f, _)| f != fd);
        self.trace.line_parts(
            self.now.as_micros(),
            Some(host),
            &[Part::S("close "), Part::I(fd.into())],
        );
        match obj {
            FdObj::SignalPipe => {
                self.hosts[host].sig_fd = None;
            }
            FdObj::Listener(l) => {
                let lis = &mut self.listeners[l];
                lis.fd = None;
                // Connections never accepted are reset.
                let pending: Vec<SockId> = lis.queue.drain(..).collect();
                for s in pending {
                    self.socks[s].closed = true;
                    if let Some(p) = self.socks[s].peer {
                        self.send(s, p, Ev::Rst { to: p }, 0);
                    }
                }
            }
            FdObj::Sock(s) => {
                let k = &mut self.socks[s];
                k.fd = None;
                k.closed = true;
                if k.tcp {
                    if k.st == St::Established {
                        if k.recvq.is_empty() {
                            self.send_fin(s);
                        } else if let Some(p) = k.peer {
                            k.st = St::Closed;
                            self.send(s, p, Ev::Rst { to: p }, 0);
                        }
                    }
                } else if let Some(p) = k.peer.take() {
                    let unread = !k.recvq.is_empty();
                    let q = &mut self.socks[p];
                    q.peer = None;
                    q.shutdown = SHUTDOWN_MASK;
                    if unread {
                        q.err = Some(libc::ECONNRESET);
                    }
                    self.wake(p, 0);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn listen(
        &mut self,
        host: HostId,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<Fd> {
        let own = SocketAddr::new(IpAddr::V4(host_addr(host)), addr.port());
        let ip_ok = match addr.ip() {
            IpAddr::V4(ip) => ip.is_unspecified() || ip == host_addr(host),
            IpAddr::V6(_) => false,
        };
        if !ip_ok {
            return Err(err(libc::EADDRNOTAVAIL));
        }
        let mut port = addr.port();
        if port == 0 {
            port = self.ephemeral(host);
        } else if !opts.reuse_port
            && self
                .listeners
                .iter()
                .any(|l| l.host == host && l.fd.is_some() && l.addr.port() == port)
        {
            return Err(err(libc::EADDRINUSE));
        }
        let _ = own;
        let backlog = match opts.backlog {
            0 => 0,
            b if b < 0 => 128,
            b => b as usize,
        };
        let l = self.listeners.len();
        self.listeners.push(Lis {
            host,
            fd: None,
            addr: SocketAddr::new(addr.ip(), port),
            backlog,
            queue: VecDeque::new(),
        });
        let fd = self.hosts[host].alloc_fd(FdObj::Listener(l));
        self.listeners[l].fd = Some(fd);
        let bound = self.listeners[l].addr;
        self.line(host, format_args!("listen {fd} {bound} backlog={backlog}"));
        Ok(fd)
    }

    fn ephemeral(&mut self, host: HostId) -> u16 {
        let hn = &mut self.hosts[host];
        let p = hn.next_port;
        hn.next_port = if p == u16::MAX { EPHEMERAL_BASE } else { p + 1 };
        p
    }

    pub(crate) fn accept(&mut self, host: HostId, fd: Fd) -> io::Result<(Fd, SocketAddr)> {
        let l = match self.hosts[host].fds.get(&fd) {
            Some(FdObj::Listener(l)) => *l,
            Some(_) => return Err(err(libc::EINVAL)),
            None => return Err(err(libc::EBADF)),
        };
        let Some(s) = self.listeners[l].queue.pop_front() else {
            self.io_line(host, "accept ", fd, " err=", libc::EAGAIN.into());
            return Err(err(libc::EAGAIN));
        };
        let nfd = self.attach(host, s);
        let (conn, remote) = (self.socks[s].conn, self.socks[s].remote);
        self.trace.line_parts(
            self.now.as_micros(),
            Some(host),
            &[
                Part::S("accept "),
                Part::I(fd.into()),
                Part::S(" -> "),
                Part::I(nfd.into()),
                Part::S(" c"),
                Part::U(conn),
            ],
        );
        Ok((nfd, remote))
    }

    /// A blocking `connect(2)` as far as the simulator can block: over Linux loopback the SYN to
    /// a port of the connecting host itself is processed before the call returns, and so is the
    /// RST when nobody listens there, so the call fails with ECONNREFUSED (no socket is left, no
    /// connection counted, no port used). Otherwise the connection starts as a nonblocking one
    /// does (the handshake completes after the network's delay). Loopback is the kernel, not the
    /// network: no fault applies to this refusal. (A nonblocking `connect` on Linux returns
    /// EINPROGRESS even then, the refusal arriving as SO_ERROR: [`World::connect`] does that.)
    pub(crate) fn connect_blocking(&mut self, host: HostId, addr: SocketAddr) -> io::Result<Fd> {
        let dst = if addr.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(host_addr(host)), addr.port())
        } else {
            addr
        };
        let same_host = match dst.ip() {
            IpAddr::V4(ip) => host_of_addr(ip, self.hosts.len()) == Some(host),
            IpAddr::V6(_) => false,
        };
        if same_host && self.find_listener(dst).is_none() {
            self.line(host, format_args!("connect {dst} refused"));
            return Err(err(libc::ECONNREFUSED));
        }
        let fd = self.connect(host, addr).map(|(fd, _)| fd)?;
        if let Ok(s) = self.sock_of(host, fd) {
            self.socks[s].ss = Ss::Connected;
        }
        Ok(fd)
    }

    /// connect(2) on an existing socket, as Linux's `__inet_stream_connect` answers it. A socket
    /// a nonblocking connect started (SS_CONNECTING) gets EALREADY during the handshake, success
    /// once it completed (it becomes SS_CONNECTED, also after the peer closed), EISCONN after
    /// that. If its connection failed (reset, refused), the call returns the pending error (or
    /// ECONNABORTED) and disconnects the socket (`tcp_disconnect`: SS_UNCONNECTED, nothing
    /// queued, no shutdown bits), so that the next connect(2) starts a new connection on the
    /// same descriptor. AF_UNIX sockets take no IPv4 address (EINVAL).
    pub(crate) fn connect_existing(
        &mut self,
        host: HostId,
        fd: Fd,
        addr: SocketAddr,
    ) -> io::Result<ConnectState> {
        let s = self.sock_of(host, fd)?;
        let k = &mut self.socks[s];
        if !k.tcp {
            return Err(err(libc::EINVAL));
        }
        match (k.ss, k.st) {
            (Ss::Connected, _) | (Ss::Unconnected, St::SynSent | St::Established) => {
                Err(err(libc::EISCONN))
            }
            (Ss::Connecting, St::SynSent) => Err(err(libc::EALREADY)),
            (Ss::Connecting, St::Established) => {
                k.ss = Ss::Connected;
                Ok(ConnectState::Connected)
            }
            (Ss::Connecting, St::Closed) => {
                let e = k.err.take().unwrap_or(libc::ECONNABORTED);
                k.ss = Ss::Unconnected;
                k.shutdown = 0;
                k.recvq.clear();
                Err(err(e))
            }
            (Ss::Unconnected, St::Closed) => {
                // A new connection from the same descriptor: the old socket keeps whatever is
                // still in flight to it, the descriptor moves to a fresh one.
                let n = self.start_connect(host, addr);
                let old = &mut self.socks[s];
                old.fd = None;
                old.closed = true;
                self.hosts[host].fds.insert(fd, FdObj::Sock(n));
                self.socks[n].fd = Some(fd);
                self.connect_line_and_syn(host, fd, n);
                Ok(ConnectState::InProgress)
            }
        }
    }

    pub(crate) fn connect(
        &mut self,
        host: HostId,
        addr: SocketAddr,
    ) -> io::Result<(Fd, ConnectState)> {
        let s = self.start_connect(host, addr);
        let fd = self.attach(host, s);
        self.connect_line_and_syn(host, fd, s);
        Ok((fd, ConnectState::InProgress))
    }

    /// A new TCP socket from an ephemeral port in SYN_SENT towards `addr` (its SYN goes out with
    /// [`World::connect_line_and_syn`], once it has a descriptor).
    fn start_connect(&mut self, host: HostId, addr: SocketAddr) -> SockId {
        let dst = if addr.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(host_addr(host)), addr.port())
        } else {
            addr
        };
        let port = self.ephemeral(host);
        let local = SocketAddr::new(IpAddr::V4(host_addr(host)), port);
        let s = self.new_sock(host, true, local, dst);
        self.socks[s].st = St::SynSent;
        self.socks[s].ss = Ss::Connecting;
        self.conns += 1;
        self.socks[s].conn = self.conns;
        s
    }

    fn connect_line_and_syn(&mut self, host: HostId, fd: Fd, s: SockId) {
        let (dst, conn) = (self.socks[s].remote, self.socks[s].conn);
        self.line(host, format_args!("connect {fd} {dst} c{conn}"));
        self.send_syn(s, dst, 0, Duration::ZERO);
    }

    pub(crate) fn take_socket_error(
        &mut self,
        host: HostId,
        fd: Fd,
    ) -> io::Result<Option<io::Error>> {
        let s = self.sock_of(host, fd)?;
        let k = &mut self.socks[s];
        if let Some(e) = k.err.take() {
            return Ok(Some(err(e)));
        }
        if k.st == St::SynSent {
            return Ok(Some(err(libc::EINPROGRESS)));
        }
        Ok(None)
    }

    pub(crate) fn local_addr(&mut self, host: HostId, fd: Fd) -> io::Result<SocketAddr> {
        match self.hosts[host].fds.get(&fd) {
            Some(FdObj::Sock(s)) => Ok(self.socks[*s].local),
            Some(FdObj::Listener(l)) => Ok(self.listeners[*l].addr),
            Some(FdObj::SignalPipe) => Err(err(libc::ENOTSOCK)),
            None => Err(err(libc::EBADF)),
        }
    }

    /// The connection number of a socket descriptor (for the targets' invariants).
    pub(crate) fn conn_of(&self, host: HostId, fd: Fd) -> Option<u64> {
        self.sock_of(host, fd).ok().map(|s| self.socks[s].conn)
    }

    /// The process of `host` exited: every descriptor it held is closed.
    pub(crate) fn close_all(&mut self, host: HostId) {
        let fds: Vec<Fd> = self.hosts[host].fds.keys().copied().collect();
        for fd in fds {
            let _ = self.close(host, fd);
        }
    }

    /// The number of open descriptors of a host.
    pub(crate) fn open_fds(&self, host: HostId) -> usize {
        self.hosts[host].fds.len()
    }
}

/// Applies every world event due at or before now, calling input closures with the world
/// released.
pub(crate) fn process_due(world: &std::rc::Rc<std::cell::RefCell<World>>) {
    loop {
        let next = world.borrow_mut().apply_one();
        match next {
            None => return,
            Some(None) => {}
            Some(Some((host, f))) => {
                let mut handle = SimBackend::handle(world.clone(), host);
                f(&mut handle);
            }
        }
    }
}

fn ep_mask(ev: Events) -> u32 {
    let mut m = 0;
    if ev.contains(Events::READ) {
        m |= EP_IN;
    }
    if ev.contains(Events::WRITE) {
        m |= EP_OUT;
    }
    if ev.contains(Events::CLOSED) {
        m |= EP_RDHUP;
    }
    m
}

fn check_signal(sig: i32) -> io::Result<usize> {
    match usize::try_from(sig) {
        Ok(i) if (1..NSIG).contains(&i) => Ok(i),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal number {sig} is outside 1..{NSIG}"),
        )),
    }
}

impl World {
    /// Closes `fd` abortively (`SO_LINGER` 0): an established TCP connection sends RST instead
    /// of FIN, so the peer reads ECONNRESET.
    pub(crate) fn abort_close(&mut self, host: HostId, fd: Fd) -> io::Result<()> {
        let s = self.sock_of(host, fd)?;
        let k = &mut self.socks[s];
        if k.tcp && k.st == St::Established {
            if let Some(p) = k.peer {
                k.st = St::Closed;
                let conn = k.conn;
                self.conn_line(host, conn, "abort", None);
                self.send(s, p, Ev::Rst { to: p }, 0);
            }
        }
        self.close(host, fd)
    }

    /// Records a failure found during the run (a scripted client's broken expectation, an
    /// invariant a program checks itself).
    pub(crate) fn fail(&mut self, msg: String) {
        self.trace
            .line_at(self.now.as_micros(), None, format_args!("FAIL {msg}"));
        self.failures.push(msg);
    }
}

/// `events` as its `Display` writes it (`T R W S P E C` letters, `0` if empty).
fn events_letters(w: &mut LineWriter<'_>, events: Events) {
    if events.is_empty() {
        w.s("0");
        return;
    }
    for (flag, c) in [
        (Events::TIMEOUT, "T"),
        (Events::READ, "R"),
        (Events::WRITE, "W"),
        (Events::SIGNAL, "S"),
        (Events::PERSIST, "P"),
        (Events::ET, "E"),
        (Events::FINALIZE, "F"),
        (Events::CLOSED, "C"),
    ] {
        if events.contains(flag) {
            w.s(c);
        }
    }
}
