//! Scripted clients: straight-line scripts that a simulated host interprets.
//!
//! A [`Script`] reads top to bottom: connect to an address, send bytes or lines, expect a line,
//! exact bytes, EOF or a reset within a virtual timeout, sleep, half-close, close or reset,
//! repeat. [`Sim::add_clients`] puts several scripts on one new host; each runs as a small
//! state machine over that host's `Base<SimBackend>` (an fd event for reading and writing, one
//! timer), so it steps with the simulation like any program, and everything it does is in the
//! trace. The [`Transcript`] of what each client sent and received is kept for checks
//! ([`Sim::client`]).
//!
//! Faults apply to scripted clients on their own: the network's (latency, chunks, refused and
//! reset connections, partitions) through the world, and `peer-close`, drawn when a connection
//! is established, closes the connection before a random later step. A step that fails on a
//! connection a fault touched (or after a clock jump during that connection) ends the client as
//! [`ClientStatus::Faulted`]; any other failed step ends it as [`ClientStatus::Failed`] and is
//! recorded as a failure of the run ([`Sim::failures`]).
//!
//! ```
//! use evloop_sim::client::{ClientStatus, Script};
//! use evloop_sim::{host_addr, Sim};
//! use std::net::SocketAddr;
//!
//! let mut sim = Sim::new(7);
//! // Host 0: the seed's hello-world server (any server written for `B: Backend` will do).
//! sim.add_host(|base| {
//!     let addr: SocketAddr = "0.0.0.0:9995".parse().unwrap();
//!     evloop::seed::hello_world_server(base, addr, |_, _| {}).unwrap();
//! });
//! let server = SocketAddr::new(host_addr(0).into(), 9995);
//! let greet = |name: &str| {
//!     Script::new(name)
//!         .connect(server)
//!         .expect_line("Hello, NewConnection!")
//!         .expect_eof()
//! };
//! let ids = sim.add_clients([greet("alice"), greet("bob").sleep(std::time::Duration::from_millis(5))]);
//! sim.run_until_pred(evloop::Time(60_000_000), |sim| sim.clients_done());
//! let alice = sim.client(ids[0]);
//! assert_eq!(alice.status, ClientStatus::Done);
//! assert_eq!(alice.transcript.lines(), ["Hello, NewConnection!"]);
//! assert_eq!(sim.client(ids[1]).status, ClientStatus::Done);
//! assert!(sim.failures().is_empty());
//! ```

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::backend::{Backend, ConnectState, Shutdown};
use evloop::{Base, EventId, Events, Fd, Time};

use crate::faults::FaultKind;
use crate::sim::Sim;
use crate::world::HostId;
use crate::SimBackend;

/// The timeout of connects and expectations unless [`Script::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an expectation waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This line (without its `\n`; a trailing `\r` is dropped).
    Line(Vec<u8>),
    /// Any line (kept in the transcript for the harness to check).
    AnyLine,
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// End of stream (nothing left unread).
    Eof,
    /// The connection is reset (ECONNRESET).
    Reset,
}

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Connect to an address (closing the previous connection, if any) within the timeout.
    Connect(SocketAddr, Duration),
    /// Send these bytes (waiting for room as needed).
    Send(Vec<u8>),
    /// Wait for something to arrive within the timeout.
    Expect(Expect, Duration),
    /// Think for this long.
    Sleep(Duration),
    /// `shutdown(SHUT_WR)`: send FIN, keep reading.
    HalfClose,
    /// `close`.
    Close,
    /// Close abortively (`SO_LINGER` 0): the peer reads ECONNRESET.
    Reset,
}

fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Connect(a, _) => write!(f, "connect {a}"),
            Step::Send(b) => write!(f, "send {}", show(b)),
            Step::Expect(Expect::Line(l), _) => write!(f, "expect line {}", show(l)),
            Step::Expect(Expect::AnyLine, _) => write!(f, "expect any line"),
            Step::Expect(Expect::Bytes(b), _) => write!(f, "expect bytes {}", show(b)),
            Step::Expect(Expect::Eof, _) => write!(f, "expect EOF"),
            Step::Expect(Expect::Reset, _) => write!(f, "expect reset"),
            Step::Sleep(d) => write!(f, "sleep {}us", d.as_micros()),
            Step::HalfClose => write!(f, "half-close"),
            Step::Close => write!(f, "close"),
            Step::Reset => write!(f, "reset"),
        }
    }
}

/// A client's script: built with the methods below (usable from proptest strategies), or
/// parsed from text with [`Script::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The client's name (in the trace, the transcript and failure messages).
    pub name: String,
    /// The steps, with repetitions unrolled.
    pub steps: Vec<Step>,
    timeout: Duration,
}

impl Script {
    /// An empty script for a client called `name`.
    pub fn new(name: impl Into<String>) -> Script {
        Script {
            name: name.into(),
            steps: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    fn push(mut self, s: Step) -> Script {
        self.steps.push(s);
        self
    }

    /// The timeout of the connects and expectations that follow.
    pub fn timeout(mut self, d: Duration) -> Script {
        self.timeout = d;
        self
    }
    /// Connect to `addr`.
    pub fn connect(self, addr: SocketAddr) -> Script {
        let t = self.timeout;
        self.push(Step::Connect(addr, t))
    }
    /// Send `bytes`.
    pub fn send(self, bytes: impl AsRef<[u8]>) -> Script {
        self.push(Step::Send(bytes.as_ref().to_vec()))
    }
    /// Send `line` and a `\n`.
    pub fn send_line(self, line: &str) -> Script {
        self.send(format!("{line}\n"))
    }
    /// Expect the line `line`.
    pub fn expect_line(self, line: &str) -> Script {
        let t = self.timeout;
        self.push(Step::Expect(Expect::Line(line.as_bytes().to_vec()), t))
    }
    /// Expect a line, whatever it says (the harness checks the transcript).
    pub fn expect_any_line(self) -> Script {
        let t = self.timeout;
        self.push(Step::Expect(Expect::AnyLine, t))
    }
    /// Expect exactly `bytes`.
    pub fn expect_bytes(self, bytes: impl AsRef<[u8]>) -> Script {
        let t = self.timeout;
        self.push(Step::Expect(Expect::Bytes(bytes.as_ref().to_vec()), t))
    }
    /// Expect the end of the stream.
    pub fn expect_eof(self) -> Script {
        let t = self.timeout;
        self.push(Step::Expect(Expect::Eof, t))
    }
    /// Expect the connection to be reset.
    pub fn expect_reset(self) -> Script {
        let t = self.timeout;
        self.push(Step::Expect(Expect::Reset, t))
    }
    /// Think for `d`.
    pub fn sleep(self, d: Duration) -> Script {
        self.push(Step::Sleep(d))
    }
    /// Shut the writing side (FIN).
    pub fn half_close(self) -> Script {
        self.push(Step::HalfClose)
    }
    /// Close the connection.
    pub fn close(self) -> Script {
        self.push(Step::Close)
    }
    /// Reset the connection.
    pub fn reset(self) -> Script {
        self.push(Step::Reset)
    }
    /// Appends `n` times the steps `body` adds to an empty script.
    pub fn repeat(mut self, n: usize, body: impl Fn(Script) -> Script) -> Script {
        let inner = body(Script {
            name: String::new(),
            steps: Vec::new(),
            timeout: self.timeout,
        });
        for _ in 0..n {
            self.steps.extend(inner.steps.iter().cloned());
        }
        self
    }

    /// Parses the text form: one step a line (`#` starts a comment), `repeat N` … `end`
    /// blocks. A text is the rest of its line without surrounding blanks, with `\n`, `\r`,
    /// `\t`, `\\` escapes.
    ///
    /// ```text
    /// timeout 2s
    /// connect 127.0.0.1:7000
    /// repeat 2
    ///   send-line GET a
    ///   expect-line NOT_FOUND
    /// end
    /// send ab\ncd\n
    /// expect-any-line
    /// expect-bytes cd\n
    /// sleep 150ms
    /// half-close
    /// expect-eof
    /// close
    /// ```
    /// Also `expect-reset` and `reset`.
    pub fn parse(name: &str, text: &str) -> Result<Script, String> {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut pos = 0;
        let script = parse_block(Script::new(name), &lines, &mut pos, 0)?;
        if pos < lines.len() {
            return Err(format!("line {}: `end` without `repeat`", lines[pos].0));
        }
        Ok(script)
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match it.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('\\') | None => out.push(b'\\'),
            Some(o) => {
                out.push(b'\\');
                let mut b = [0; 4];
                out.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

/// Parses `150ms`, `2s`, `40us`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 150ms, 2s or 40us"))?;
    match unit {
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(format!("{s:?}: the unit must be us, ms or s")),
    }
}

fn parse_block(
    mut script: Script,
    lines: &[(usize, &str)],
    pos: &mut usize,
    depth: usize,
) -> Result<Script, String> {
    while *pos < lines.len() {
        let (no, line) = lines[*pos];
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim_start();
        let at = |e: String| format!("line {no}: {e}");
        *pos += 1;
        script = match word {
            "end" if depth > 0 => return Ok(script),
            "connect" => {
                let a: SocketAddr = rest
                    .parse()
                    .map_err(|e| at(format!("connect {rest:?}: {e}")))?;
                script.connect(a)
            }
            "send" => script.send(unescape(rest)),
            "send-line" => {
                let mut b = unescape(rest);
                b.push(b'\n');
                script.send(b)
            }
            "expect-line" => {
                let t = script.timeout;
                script.push(Step::Expect(Expect::Line(unescape(rest)), t))
            }
            "expect-any-line" => script.expect_any_line(),
            "expect-bytes" => script.expect_bytes(unescape(rest)),
            "expect-eof" => script.expect_eof(),
            "expect-reset" => script.expect_reset(),
            "sleep" => script.sleep(parse_duration(rest).map_err(at)?),
            "timeout" => script.timeout(parse_duration(rest).map_err(at)?),
            "half-close" => script.half_close(),
            "close" => script.close(),
            "reset" => script.reset(),
            "repeat" => {
                let n: usize = rest
                    .parse()
                    .map_err(|_| at(format!("repeat {rest:?}: expected a count")))?;
                if n > 100_000 {
                    return Err(at(format!("repeat {n}: at most 100000")));
                }
                let body = Script {
                    name: String::new(),
                    steps: Vec::new(),
                    timeout: script.timeout,
                };
                let body = parse_block(body, lines, pos, depth + 1)?;
                for _ in 0..n {
                    script.steps.extend(body.steps.iter().cloned());
                }
                script
            }
            other => return Err(at(format!("unknown step {other:?}"))),
        };
    }
    if depth > 0 {
        return Err("`repeat` without `end`".to_owned());
    }
    Ok(script)
}

/// One thing a client did or saw, in a [`Transcript`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The connection was established (its number, see [`SimBackend::connection_of`]).
    Connected(Option<u64>),
    /// The client sent these bytes.
    Sent(Vec<u8>),
    /// The client received this line (without `\n`).
    Line(Vec<u8>),
    /// The client received these bytes (an `expect_bytes`, or data before EOF or a reset).
    Received(Vec<u8>),
    /// End of stream.
    Eof,
    /// The connection was reset.
    Reset,
    /// An error (connect, read or write).
    Error(String),
    /// The client shut its writing side.
    HalfClosed,
    /// The client closed (or reset) its connection.
    Closed,
    /// The `peer-close` fault closed the connection.
    PeerCloseFault,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Connected(c) => match c {
                Some(c) => write!(f, "connected c{c}"),
                None => write!(f, "connected"),
            },
            Entry::Sent(b) => write!(f, "sent {}", show(b)),
            Entry::Line(b) => write!(f, "line {}", show(b)),
            Entry::Received(b) => write!(f, "received {}", show(b)),
            Entry::Eof => write!(f, "EOF"),
            Entry::Reset => write!(f, "reset"),
            Entry::Error(e) => write!(f, "error {e}"),
            Entry::HalfClosed => write!(f, "half-closed"),
            Entry::Closed => write!(f, "closed"),
            Entry::PeerCloseFault => write!(f, "peer-close fault"),
        }
    }
}

/// What a client sent and received, with the virtual times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The entries in order.
    pub entries: Vec<(Time, Entry)>,
}

impl Transcript {
    /// The lines received, as text.
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Line(l) => Some(String::from_utf8_lossy(l).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// Everything sent, concatenated.
    pub fn sent(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (_, e) in &self.entries {
            if let Entry::Sent(b) = e {
                v.extend_from_slice(b);
            }
        }
        v
    }
}

/// Where a scripted client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    /// Still running its script.
    Running,
    /// The script completed.
    Done,
    /// A step failed: its index and why (also a failure of the run).
    Failed(usize, String),
    /// A fault ended the script at this step (the network, a clock jump, `peer-close`); not
    /// a failure of the run.
    Faulted(usize, String),
}

/// A scripted client as seen from outside ([`Sim::client`]).
#[derive(Clone, Debug)]
pub struct ClientReport {
    /// Its name.
    pub name: String,
    /// The host it runs on.
    pub host: HostId,
    /// Where it is.
    pub status: ClientStatus,
    /// The number of its (last) connection.
    pub conn: Option<u64>,
    /// What it sent and received.
    pub transcript: Transcript,
}

/// The index of a scripted client in its [`Sim`].
pub type ClientId = usize;

pub(crate) struct ClientRun {
    name: String,
    host: HostId,
    steps: Vec<Step>,
    pc: usize,
    /// The current step has started (its deadline set, its action done).
    started: bool,
    deadline: Option<Time>,
    /// When the current connection's connect step began (clock jumps since then explain).
    conn_start: Time,
    fd: Option<Fd>,
    conn: Option<u64>,
    read_ev: Option<EventId>,
    write_ev: Option<EventId>,
    timer: Option<EventId>,
    connecting: bool,
    connected: bool,
    connect_error: Option<String>,
    inbuf: Vec<u8>,
    eof: bool,
    reset: bool,
    read_error: Option<String>,
    outbuf: Vec<u8>,
    peer_close_at: Option<usize>,
    status: ClientStatus,
    transcript: Transcript,
}

type Shared = Rc<RefCell<ClientRun>>;

impl ClientRun {
    fn new(script: Script, host: HostId) -> ClientRun {
        ClientRun {
            name: script.name,
            host,
            steps: script.steps,
            pc: 0,
            started: false,
            deadline: None,
            conn_start: Time::ZERO,
            fd: None,
            conn: None,
            read_ev: None,
            write_ev: None,
            timer: None,
            connecting: false,
            connected: false,
            connect_error: None,
            inbuf: Vec::new(),
            eof: false,
            reset: false,
            read_error: None,
            outbuf: Vec::new(),
            peer_close_at: None,
            status: ClientStatus::Running,
            transcript: Transcript::default(),
        }
    }

    pub(crate) fn report(&self) -> ClientReport {
        ClientReport {
            name: self.name.clone(),
            host: self.host,
            status: self.status.clone(),
            conn: self.conn,
            transcript: self.transcript.clone(),
        }
    }

    fn note(&mut self, base: &mut Base<SimBackend>, e: Entry) {
        let now = base.now();
        base.backend_mut()
            .trace_args(format_args!("client {} {e}", self.name));
        self.transcript.entries.push((now, e));
    }
}

impl Sim {
    /// Adds a host that runs `scripts`, each a client starting at once (begin a script with
    /// [`Script::sleep`] to start it later). Returns the clients' ids.
    pub fn add_clients(&mut self, scripts: impl IntoIterator<Item = Script>) -> Vec<ClientId> {
        let first = self.clients.len();
        let mut runs: Vec<Shared> = Vec::new();
        let host = self.hosts();
        for s in scripts {
            runs.push(Rc::new(RefCell::new(ClientRun::new(s, host))));
        }
        let for_host = runs.clone();
        self.add_host(move |base| {
            for c in for_host {
                start(base, c);
            }
        });
        self.clients.extend(runs);
        (first..self.clients.len()).collect()
    }

    /// Scripted client `id` (its status and transcript).
    pub fn client(&self, id: ClientId) -> ClientReport {
        self.clients[id].borrow().report()
    }

    /// Every scripted client, in the order they were added.
    pub fn clients(&self) -> Vec<ClientReport> {
        self.clients.iter().map(|c| c.borrow().report()).collect()
    }

    /// True when no scripted client is still running.
    pub fn clients_done(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.borrow().status != ClientStatus::Running)
    }
}

fn start(base: &mut Base<SimBackend>, c: Shared) {
    let c2 = c.clone();
    match base.timer_new(move |base, _, _| drive(base, &c2)) {
        Ok(t) => {
            c.borrow_mut().timer = Some(t);
            let _ = base.add(t, Some(Duration::ZERO));
        }
        Err(e) => {
            let mut r = c.borrow_mut();
            r.status = ClientStatus::Failed(0, format!("timer_new: {e}"));
            let msg = format!("client {}: timer_new: {e}", r.name);
            base.backend_mut().fail(msg);
        }
    }
}

/// Reads everything available into the client's buffer.
fn on_read(base: &mut Base<SimBackend>, c: &Shared) {
    {
        let mut r = c.borrow_mut();
        let Some(fd) = r.fd else { return };
        let mut buf = [0u8; 4096];
        loop {
            match base.backend_mut().read(fd, &mut buf) {
                Ok(0) => {
                    r.eof = true;
                    break;
                }
                Ok(n) => r.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                    r.reset = true;
                    break;
                }
                Err(e) => {
                    r.read_error = Some(e.to_string());
                    break;
                }
            }
        }
        if r.eof || r.reset || r.read_error.is_some() {
            // Nothing more will come: stop watching (a level-triggered EOF stays readable).
            if let Some(ev) = r.read_ev {
                let _ = base.del(ev);
            }
        }
    }
    drive(base, c);
}

fn on_write(base: &mut Base<SimBackend>, c: &Shared) {
    {
        let mut r = c.borrow_mut();
        if r.connecting {
            r.connecting = false;
            let fd = r.fd.unwrap_or(-1);
            match base.backend_mut().take_socket_error(fd) {
                Ok(None) => r.connected = true,
                // Not connected yet (a spurious wake-up): keep waiting.
                Ok(Some(e)) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    r.connecting = true;
                    want_write(base, &mut r);
                }
                // Established, then reset before the client looked: connected, and reset.
                Ok(Some(e)) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                    r.connected = true;
                    r.reset = true;
                }
                Ok(Some(e)) | Err(e) => r.connect_error = Some(e.to_string()),
            }
        }
    }
    drive(base, c);
}

fn close_fd(base: &mut Base<SimBackend>, r: &mut ClientRun, abort: bool) {
    for ev in [r.read_ev.take(), r.write_ev.take()].into_iter().flatten() {
        let _ = base.free(ev);
    }
    if let Some(fd) = r.fd.take() {
        let _ = if abort {
            base.backend_mut().close_reset(fd)
        } else {
            base.backend_mut().close(fd)
        };
    }
    r.connecting = false;
    r.connected = false;
}

/// Ends the client: closes what is open and frees its timer.
fn finish(base: &mut Base<SimBackend>, r: &mut ClientRun, status: ClientStatus) {
    close_fd(base, r, false);
    if let Some(t) = r.timer.take() {
        let _ = base.free(t);
    }
    base.backend_mut()
        .trace_args(format_args!("client {} ends {status:?}", r.name));
    r.status = status;
}

/// A step failed: a fault explains it, or it is a failure of the run.
fn step_failed(base: &mut Base<SimBackend>, r: &mut ClientRun, why: String) {
    let step = r.pc;
    let faulted = r.conn.is_some_and(|c| base.backend().connection_faulted(c))
        || base
            .backend()
            .decisions()
            .iter()
            .any(|d| d.kind == FaultKind::ClockJump && d.at >= r.conn_start);
    let what = format!("step {} ({}): {why}", step + 1, r.steps[step]);
    if faulted {
        finish(base, r, ClientStatus::Faulted(step, what));
    } else {
        let msg = format!("client {}: {what}", r.name);
        base.backend_mut().fail(msg);
        finish(base, r, ClientStatus::Failed(step, what));
    }
}

fn arm_timer(base: &mut Base<SimBackend>, r: &mut ClientRun, at: Time) {
    r.deadline = Some(at);
    if let Some(t) = r.timer {
        let d = Duration::from_micros(at.as_micros().saturating_sub(base.now().as_micros()));
        let _ = base.add(t, Some(d));
    }
}

fn want_write(base: &mut Base<SimBackend>, r: &mut ClientRun) {
    if let Some(w) = r.write_ev {
        let _ = base.add(w, None);
    }
}

fn open(base: &mut Base<SimBackend>, c: &Shared, r: &mut ClientRun, addr: SocketAddr) -> bool {
    close_fd(base, r, false);
    r.inbuf.clear();
    r.eof = false;
    r.reset = false;
    r.read_error = None;
    r.connect_error = None;
    match base.backend_mut().connect(addr) {
        Ok((fd, state)) => {
            r.fd = Some(fd);
            r.conn = base.backend().connection_of(fd);
            let (cr, cw) = (c.clone(), c.clone());
            let rd = base.event_new(fd, Events::READ | Events::PERSIST, move |base, _, _| {
                on_read(base, &cr)
            });
            let wr = base.event_new(fd, Events::WRITE, move |base, _, _| on_write(base, &cw));
            match (rd, wr) {
                (Ok(rd), Ok(wr)) => {
                    r.read_ev = Some(rd);
                    r.write_ev = Some(wr);
                    let _ = base.add(rd, None);
                }
                (Err(e), _) | (_, Err(e)) => {
                    r.connect_error = Some(format!("event_new: {e}"));
                    return true;
                }
            }
            match state {
                ConnectState::Connected => r.connected = true,
                ConnectState::InProgress => {
                    r.connecting = true;
                    want_write(base, r);
                }
            }
            true
        }
        Err(e) => {
            r.connect_error = Some(e.to_string());
            true
        }
    }
}

/// Runs the script as far as it can go now.
fn drive(base: &mut Base<SimBackend>, c: &Shared) {
    let mut guard = c.borrow_mut();
    let r = &mut *guard;
    loop {
        if r.status != ClientStatus::Running {
            return;
        }
        if r.pc >= r.steps.len() {
            finish(base, r, ClientStatus::Done);
            return;
        }
        if r.peer_close_at == Some(r.pc) {
            r.peer_close_at = None;
            let at = r.pc;
            r.note(base, Entry::PeerCloseFault);
            if let Some(conn) = r.conn {
                base.backend_mut().mark_faulted(conn);
            }
            finish(
                base,
                r,
                ClientStatus::Faulted(at, "the peer-close fault closed the connection".into()),
            );
            return;
        }
        let now = base.now();
        let first = !r.started;
        if first {
            r.started = true;
            r.deadline = None;
        }
        let step = r.steps[r.pc].clone();
        let abort = step == Step::Reset;
        let done = match step {
            Step::Connect(addr, timeout) => {
                if first {
                    r.conn_start = now;
                    open(base, c, r, addr);
                    arm_timer(base, r, now.saturating_add(timeout));
                }
                if let Some(e) = r.connect_error.take() {
                    r.note(base, Entry::Error(format!("connect: {e}")));
                    step_failed(base, r, format!("connect failed: {e}"));
                    return;
                }
                if r.connected {
                    let conn = r.conn;
                    r.note(base, Entry::Connected(conn));
                    // The peer-close fault: close before a later step of this connection.
                    let rest = r.steps.len() - r.pc - 1;
                    let name = r.name.clone();
                    if rest > 0 {
                        if let Some(x) = base
                            .backend_mut()
                            .decide_fault_with(FaultKind::PeerClose, || format!("client {name}"))
                        {
                            r.peer_close_at = Some(r.pc + 1 + (x % rest as u64) as usize);
                        }
                    }
                    true
                } else {
                    false
                }
            }
            Step::Send(bytes) => {
                if first {
                    r.note(base, Entry::Sent(bytes.clone()));
                    r.outbuf = bytes;
                }
                let Some(fd) = r.fd else {
                    step_failed(base, r, "not connected".into());
                    return;
                };
                let mut err = None;
                while !r.outbuf.is_empty() {
                    match base.backend_mut().write(fd, &r.outbuf) {
                        Ok(n) => {
                            r.outbuf.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                if let Some(e) = err {
                    r.note(base, Entry::Error(format!("write: {e}")));
                    step_failed(base, r, format!("write failed: {e}"));
                    return;
                }
                if r.outbuf.is_empty() {
                    true
                } else {
                    want_write(base, r);
                    false
                }
            }
            Step::Expect(what, timeout) => {
                if first {
                    arm_timer(base, r, now.saturating_add(timeout));
                }
                match check_expect(base, r, &what) {
                    Some(Ok(())) => true,
                    Some(Err(why)) => {
                        step_failed(base, r, why);
                        return;
                    }
                    None => {
                        if r.deadline.is_some_and(|d| now >= d) {
                            let pending = if r.inbuf.is_empty() {
                                String::new()
                            } else {
                                format!(" (unread: {})", show(&r.inbuf))
                            };
                            step_failed(
                                base,
                                r,
                                format!("timed out after {}us{pending}", timeout.as_micros()),
                            );
                            return;
                        }
                        false
                    }
                }
            }
            Step::Sleep(d) => {
                if first {
                    arm_timer(base, r, now.saturating_add(d));
                }
                r.deadline.is_none_or(|t| now >= t)
            }
            Step::HalfClose => {
                if let Some(fd) = r.fd {
                    let _ = base.backend_mut().shutdown(fd, Shutdown::Write);
                }
                r.note(base, Entry::HalfClosed);
                true
            }
            Step::Close | Step::Reset => {
                close_fd(base, r, abort);
                r.note(base, Entry::Closed);
                true
            }
        };
        if !done {
            return;
        }
        r.pc += 1;
        r.started = false;
    }
}

/// `Some(Ok)`: the expectation is met (what arrived is consumed and noted); `Some(Err)`: it
/// cannot be met; `None`: wait.
fn check_expect(
    base: &mut Base<SimBackend>,
    r: &mut ClientRun,
    what: &Expect,
) -> Option<Result<(), String>> {
    let ended = |r: &ClientRun| {
        if r.reset {
            "the connection was reset".to_owned()
        } else if let Some(e) = &r.read_error {
            format!("read error: {e}")
        } else {
            "EOF".to_owned()
        }
    };
    let closed = r.eof || r.reset || r.read_error.is_some();
    match what {
        Expect::Line(_) | Expect::AnyLine => {
            let Some(i) = r.inbuf.iter().position(|&b| b == b'\n') else {
                if closed {
                    let why = format!("got {} after {}", ended(r), show(&r.inbuf));
                    let rest = std::mem::take(&mut r.inbuf);
                    if !rest.is_empty() {
                        r.note(base, Entry::Received(rest));
                    }
                    return Some(Err(why));
                }
                return None;
            };
            let mut line: Vec<u8> = r.inbuf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            r.note(base, Entry::Line(line.clone()));
            match what {
                Expect::Line(want) if *want != line => {
                    Some(Err(format!("got the line {}", show(&line))))
                }
                _ => Some(Ok(())),
            }
        }
        Expect::Bytes(want) => {
            if r.inbuf.len() >= want.len() || closed {
                let n = want.len().min(r.inbuf.len());
                let got: Vec<u8> = r.inbuf.drain(..n).collect();
                r.note(base, Entry::Received(got.clone()));
                if got == *want {
                    Some(Ok(()))
                } else if got.len() < want.len() {
                    Some(Err(format!("got {} then {}", show(&got), ended(r))))
                } else {
                    Some(Err(format!("got {}", show(&got))))
                }
            } else {
                None
            }
        }
        Expect::Eof => {
            if !r.inbuf.is_empty() {
                let got = std::mem::take(&mut r.inbuf);
                r.note(base, Entry::Received(got.clone()));
                return Some(Err(format!("got {} instead of EOF", show(&got))));
            }
            if r.reset || r.read_error.is_some() {
                Some(Err(format!("got {} instead of EOF", ended(r))))
            } else if r.eof {
                r.note(base, Entry::Eof);
                Some(Ok(()))
            } else {
                None
            }
        }
        Expect::Reset => {
            if r.reset {
                let got = std::mem::take(&mut r.inbuf);
                if !got.is_empty() {
                    r.note(base, Entry::Received(got));
                }
                r.note(base, Entry::Reset);
                Some(Ok(()))
            } else if closed {
                Some(Err(format!("got {} instead of a reset", ended(r))))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_equals_builder() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let text = "timeout 2s\nconnect 127.0.0.1:7000\nrepeat 2\n send-line GET a\n expect-line NOT_FOUND\nend\n# c\nsend ab\\ncd\\n\nexpect-any-line\nexpect-bytes cd\\n\nsleep 150ms\nhalf-close\nexpect-eof\nexpect-reset\nreset\nclose\n";
        let parsed = Script::parse("c", text).unwrap();
        let built = Script::new("c")
            .timeout(Duration::from_secs(2))
            .connect(a)
            .repeat(2, |s| s.send_line("GET a").expect_line("NOT_FOUND"))
            .send("ab\ncd\n")
            .expect_any_line()
            .expect_bytes("cd\n")
            .sleep(Duration::from_millis(150))
            .half_close()
            .expect_eof()
            .expect_reset()
            .reset()
            .close();
        assert_eq!(parsed, built);
        assert!(Script::parse("c", "repeat 2\nsend x\n")
            .unwrap_err()
            .contains("without `end`"));
        assert!(Script::parse("c", "end\n").unwrap_err().contains("line 1"));
        assert!(Script::parse("c", "sleep 5h\n")
            .unwrap_err()
            .contains("unit"));
        assert!(Script::parse("c", "jump\n")
            .unwrap_err()
            .contains("unknown step"));
    }
}
