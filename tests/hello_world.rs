//! The seed's server, `examples/hello_world.rs`, end to end on epoll, poll, select and mio.
//!
//! Signals are process-wide, so the server runs in a process of its own: this test binary starts
//! itself again with `EVLOOP_HELLO_WORLD_CHILD=<backend>`, and in that child the `child_server`
//! entry point runs the example's own code (the file is included below) on port 0. The parent
//! reads the bound port from the child's output, connects N clients over loopback, checks that
//! each receives exactly the message followed by EOF, sends SIGINT with `kill -INT`, and checks
//! the printed lines and the exit status. Nothing here measures time.

#[path = "../examples/hello_world.rs"]
#[allow(dead_code)]
mod hello_world;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "EVLOOP_HELLO_WORLD_CHILD";

/// In the child process: run the server and exit with its status. In the parent: nothing.
#[test]
fn child_server() {
    let Ok(backend) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args = ["--port", "0", "--backend", &backend].map(String::from);
    match hello_world::run(args) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

/// Kills the child if the test fails half-way, so no server outlives it.
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Server {
    fn start(backend: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_server",
                "--nocapture",
                "--quiet",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Server { child, out }
    }

    /// The next line the server printed (`None` at end of output).
    fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        match self.out.read_line(&mut s).unwrap() {
            0 => None,
            _ => Some(s.trim_end_matches('\n').to_string()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn hello_world_on(backend: &str, clients: usize) {
    let mut server = Server::start(backend);
    // The test harness announces itself first; the server's first line gives its address.
    let addr: SocketAddr = loop {
        let line = server.line().expect("the server exited before listening");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.parse().unwrap();
        }
        assert!(
            line.is_empty() || line.starts_with("running "),
            "unexpected line {line:?}"
        );
    };
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);

    let mut streams: Vec<TcpStream> = (0..clients)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for s in &mut streams {
        // Only a guard against a hung server; the test asserts on what is read, not when.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(
            got,
            evloop::seed::MESSAGE,
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // Every connection was closed by the server after its answer was flushed.
    for _ in 0..clients {
        assert_eq!(server.line().as_deref(), Some("flushed answer"));
    }

    let status = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        server.line().as_deref(),
        Some("Caught an interrupt signal; exiting cleanly in two seconds.")
    );
    assert_eq!(server.line().as_deref(), Some("done"));
    assert_eq!(server.line(), None);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // The listener was freed with CLOSE_ON_FREE and the process is gone: nothing listens.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn hello_world_epoll() {
    hello_world_on("epoll", 8);
}

#[test]
fn hello_world_poll() {
    hello_world_on("poll", 8);
}

#[test]
fn hello_world_select() {
    hello_world_on("select", 8);
}

#[test]
fn hello_world_mio() {
    hello_world_on("mio", 8);
}
