//! The seed server on select with descriptors at or above FD_SETSIZE (issue 10, defect 5):
//! select cannot watch such a connection, so the server must close it and report it on stderr
//! instead of leaving the client hanging and leaking the socket, and keep serving.
//!
//! The server runs in a child process (this binary started again with `EVLOOP_SEED_FDS_CHILD`,
//! under `ulimit -n 4096` so that it may hold more than 1024 descriptors). The child binds the
//! listener first (a low fd), then opens /dev/null until its descriptors reach 1023, so the next
//! accepted connections get fds >= 1024. After three such connections were refused it drops the
//! filler files, and later connections get low fds again and are answered. The parent checks what
//! each client receives, the child's stderr and its descriptor count.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use evloop::backend::SelectBackend;
use evloop::seed::{hello_world_server, ServerEvent, MESSAGE};
use evloop::Base;

const CHILD_ENV: &str = "EVLOOP_SEED_FDS_CHILD";
const REFUSED: usize = 3;
const SERVED: usize = 3;

/// The child's entry point (ignored in normal runs; the test below starts it with `--ignored`).
#[test]
#[ignore = "the child process of select_closes_connections_it_cannot_watch_and_keeps_serving"]
fn child_server() {
    assert!(std::env::var(CHILD_ENV).is_ok(), "only runs as the child");
    let mut base = Base::new(SelectBackend::new().expect("select backend"));
    let fillers: Rc<RefCell<Vec<std::fs::File>>> = Rc::default();
    let errors = Rc::new(RefCell::new(0usize));
    let (f, e) = (fillers.clone(), errors.clone());
    let (listener, sig) = hello_world_server(
        &mut base,
        "127.0.0.1:0".parse().unwrap(),
        move |_, ev: ServerEvent| {
            println!("{ev:?}");
            if let ServerEvent::Error { .. } = ev {
                *e.borrow_mut() += 1;
                if *e.borrow() == REFUSED {
                    f.borrow_mut().clear();
                    println!("fillers closed");
                }
            }
            std::io::stdout().flush().unwrap();
        },
    )
    .expect("server");
    loop {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null (ulimit -n too low?)");
        let fd = file.as_raw_fd();
        fillers.borrow_mut().push(file);
        if fd >= 1023 {
            break;
        }
    }
    println!("port {}", listener.local_addr(&mut base).unwrap().port());
    std::io::stdout().flush().unwrap();
    base.dispatch().expect("dispatch");
    let _ = (listener, sig);
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Connects and reads to EOF; a hang is a failure (the read timeout is only a guard).
fn client(port: u16) -> Vec<u8> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the server answers or closes, it does not leave the client hanging");
    got
}

#[test]
fn select_closes_connections_it_cannot_watch_and_keeps_serving() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 4096 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_server",
            "--ignored",
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        if let Some(p) = line.trim().strip_prefix("port ") {
            break p.parse().unwrap();
        }
    };
    let pid = child.id();
    let with_fillers = fd_count(pid);
    assert!(with_fillers >= 1024, "{with_fillers} descriptors");
    let mut lines = Vec::new();
    for i in 0..REFUSED {
        assert_eq!(
            client(port),
            b"",
            "refused connection {i} is closed without data"
        );
    }
    // Wait for the child to report the last refusal and close its fillers.
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        lines.push(line.trim().to_string());
        if line.trim() == "fillers closed" {
            break;
        }
    }
    for i in 0..SERVED {
        assert_eq!(
            client(port),
            MESSAGE,
            "connection {i} after the fillers went"
        );
    }
    // Served connections are closed by the server (the client saw EOF); the refused ones were
    // closed too: the child holds what it held before the clients, minus the 1000-odd fillers.
    let after = fd_count(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    lines.extend(rest.lines().map(str::to_string));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        after + 1000 < with_fillers,
        "descriptors: {with_fillers} with fillers, {after} at the end"
    );
    assert!(
        after < 16,
        "{after} descriptors left: refused connections leaked"
    );
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("enable WRITE failed") && l.contains("FD_SETSIZE"))
        .collect();
    assert_eq!(refusals.len(), REFUSED, "stderr:\n{stderr}");
    let errors = lines.iter().filter(|l| l.starts_with("Error {")).count();
    let flushed = lines.iter().filter(|l| l.starts_with("Flushed {")).count();
    assert_eq!(errors, REFUSED, "{lines:?}");
    assert_eq!(flushed, SERVED, "{lines:?}");
}
