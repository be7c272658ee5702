//! `evbench soak`: the seed server (`evloop::seed::hello_world_server`) on a real backend, in a
//! child process of its own, against many loopback clients.
//!
//! For each backend and each client count, `connections` clients connect to 127.0.0.1 (that
//! many in flight at once, driven by one thread over mio), read to EOF and must receive exactly
//! [`MESSAGE`]. The server's descriptor count and resident memory are read
//! from /proc at start, after 1,000 connections and at the end; a server that ends with more
//! descriptors than it started with, or any client that got something else, fails the run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop::backend::AnyBackend;
use evloop::seed::{hello_world_server, ServerEvent, MESSAGE};
use evloop::Base;

/// The environment variable that makes `evbench` the soak server (value: the backend).
pub const SERVER_ENV: &str = "EVBENCH_SOAK_SERVER";

/// In the child process: the seed server on `backend`, port 0; prints `port N`, then serves
/// until killed. Connections it cannot serve are reported on stderr.
pub fn server_child(backend: &str) -> Result<(), String> {
    let mut base = Base::new(AnyBackend::by_name(backend).map_err(|e| e.to_string())?);
    let (listener, _sig) =
        hello_world_server(&mut base, SocketAddr::from(([127, 0, 0, 1], 0)), |_, ev| {
            if let ServerEvent::Error { conn, error } = ev {
                eprintln!("soak server: connection {conn}: {error}");
            }
        })
        .map_err(|e| e.to_string())?;
    let port = listener
        .local_addr(&mut base)
        .map_err(|e| e.to_string())?
        .port();
    println!("port {port}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    base.dispatch().map_err(|e| e.to_string())?;
    Ok(())
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(backend: &str) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(SERVER_ENV, backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("soak server on {backend} did not start: {line:?}"));
        let mut server = Server { child, port: 0 };
        server.port = port?; // on error, dropping `server` kills the child
        Ok(server)
    }

    /// (descriptors, resident bytes) of the server process.
    fn sample(&self) -> Result<(usize, u64), String> {
        let pid = self.child.id();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| e.to_string())?
            .count();
        let statm =
            std::fs::read_to_string(format!("/proc/{pid}/statm")).map_err(|e| e.to_string())?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .ok_or("bad statm")?;
        Ok((fds, pages * 4096))
    }
}

/// The most connections that have not received their first byte yet. The seed server listens
/// with libevent's default backlog (128) and closes each connection as soon as its answer is
/// written, so only connections not yet accepted can pile up; with more than 128 of them the
/// kernel answers with SYN cookies and silently drops handshakes whose ACK finds the accept queue
/// full, which leaves such clients waiting forever. Keeping the not-yet-answered connections
/// under the backlog avoids measuring that kernel behaviour instead of the server.
const UNANSWERED: usize = 100;
/// With no connection finishing for this long, the rest count as hung (a dropped SYN is
/// retransmitted for up to 127 s with Linux's defaults).
const HANG: Duration = Duration::from_secs(130);

/// The clients, in one thread over mio (a thread per client would starve the server of CPU on
/// a small machine): keeps up to `concurrent` connections in flight (at most [`UNANSWERED`]
/// of them not answered yet) until `n` have finished, each reading to EOF. Returns (wrong answers, the
/// first of them, the most connections in flight at once).
fn drive_clients(
    port: u16,
    n: usize,
    concurrent: usize,
    done: &AtomicUsize,
) -> Result<(usize, Option<String>, usize), String> {
    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Token};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<(TcpStream, Vec<u8>)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let (mut started, mut finished, mut inflight) = (0usize, 0usize, 0usize);
    let mut bad = 0usize;
    let mut first_bad: Option<String> = None;
    let mut last_progress = Instant::now();
    let mut buf = [0u8; 256];
    let mut max_inflight = 0;
    let mut unanswered = 0usize;
    while finished < n {
        while inflight < concurrent && started < n && unanswered < UNANSWERED {
            unanswered += 1;
            let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            let slot = free.pop().unwrap_or_else(|| {
                conns.push(None);
                conns.len() - 1
            });
            poll.registry()
                .register(&mut s, Token(slot), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            conns[slot] = Some((s, Vec::new()));
            started += 1;
            inflight += 1;
        }
        max_inflight = max_inflight.max(inflight);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let slot = ev.token().0;
            let Some((s, got)) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let outcome = loop {
                match s.read(&mut buf) {
                    Ok(0) => break Some(Ok(())),
                    Ok(k) => {
                        if got.is_empty() {
                            unanswered -= 1;
                        }
                        got.extend_from_slice(&buf[..k]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break None,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(Err(e.to_string())),
                }
            };
            let Some(outcome) = outcome else { continue };
            let (mut s, got) = conns[slot].take().ok_or("lost a connection")?;
            if got.is_empty() {
                unanswered -= 1;
            }
            let _ = poll.registry().deregister(&mut s);
            free.push(slot);
            inflight -= 1;
            finished += 1;
            done.fetch_add(1, Ordering::Relaxed);
            last_progress = Instant::now();
            let wrong = match outcome {
                Ok(()) if got[..] == *MESSAGE => None,
                Ok(()) => Some(format!("got {:?}", String::from_utf8_lossy(&got))),
                Err(e) => Some(e),
            };
            if let Some(w) = wrong {
                bad += 1;
                first_bad.get_or_insert(w);
            }
        }
        if last_progress.elapsed() > HANG {
            bad += n - finished;
            first_bad.get_or_insert(format!(
                "{} connections hung for {} s",
                n - finished,
                HANG.as_secs()
            ));
            break;
        }
    }
    Ok((bad, first_bad, max_inflight))
}

struct Row {
    rate: f64,
    fds: [usize; 3],
    rss: [u64; 3],
    bad: usize,
    first_bad: Option<String>,
    max_inflight: usize,
}

fn run_one(backend: &str, n: usize, concurrent: usize) -> Result<Row, String> {
    let server = Server::start(backend)?;
    let (fds0, rss0) = server.sample()?;
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let port = server.port;
    let d = done.clone();
    let clients = std::thread::spawn(move || drive_clients(port, n, concurrent, &d));
    let mark = n.min(1000);
    while done.load(Ordering::Relaxed) < mark && !clients.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (fds1, rss1) = server.sample()?;
    let (bad, first_bad, max_inflight) =
        clients.join().map_err(|_| "the client thread panicked")??;
    let secs = start.elapsed().as_secs_f64();
    // Every client saw EOF, so the server has closed every connection; give its loop a moment
    // to finish the last finalizers before reading its descriptor count.
    let mut end = server.sample()?;
    for _ in 0..200 {
        if end.0 <= fds0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        end = server.sample()?;
    }
    Ok(Row {
        rate: n as f64 / secs,
        fds: [fds0, fds1, end.0],
        rss: [rss0, rss1, end.1],
        bad,
        first_bad,
        max_inflight,
    })
}

/// The soak table; an error if any client got something other than the message and EOF, or a
/// server ended with more descriptors than it started with.
pub fn soak(n: usize, backends: &[String], clients: &[usize]) -> Result<(), String> {
    if n == 0 || clients.contains(&0) {
        return Err("soak needs at least one connection and one client".into());
    }
    println!("\n### soak: the seed server, {n} connections per row, loopback clients\n");
    println!("| backend | concurrent clients (most in flight) | connections/s | server fds start / after 1k / end | server RSS KiB start / after 1k / end | wrong answers |");
    println!("|---|---:|---:|---|---|---:|");
    let mut problems = Vec::new();
    for b in backends {
        for &c in clients {
            let r = run_one(b, n, c)?;
            println!(
                "| {b} | {c} ({}) | {:.0} | {} / {} / {} | {} / {} / {} | {} |",
                r.max_inflight,
                r.rate,
                r.fds[0],
                r.fds[1],
                r.fds[2],
                r.rss[0] / 1024,
                r.rss[1] / 1024,
                r.rss[2] / 1024,
                r.bad
            );
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            if r.bad > 0 {
                problems.push(format!(
                    "{b}, {c} clients: {} clients did not get exactly the message and EOF (first: {})",
                    r.bad,
                    r.first_bad.unwrap_or_default()
                ));
            }
            if r.fds[2] > r.fds[0] {
                problems.push(format!(
                    "{b}, {c} clients: the server ended with {} descriptors, started with {}",
                    r.fds[2], r.fds[0]
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
