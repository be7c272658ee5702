//! Scripted clients: expectations met and broken, timeouts, half-close, reset, the text form,
//! and the fault profile acting on them on its own (`peer-close` included).

#[path = "../examples/kv/server.rs"]
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use evloop::{Base, Listener, ListenerOptions, Time};
use evloop_sim::client::{ClientStatus, Entry, Script};
use evloop_sim::{host_addr, FaultConfig, Sim, SimBackend, SimConfig};
use server::{kv_server, KvConfig};

const PORT: u16 = 7000;
const HORIZON: Time = Time(600_000_000);

fn server_addr() -> SocketAddr {
    SocketAddr::new(host_addr(0).into(), PORT)
}

fn kv(base: &mut Base<SimBackend>) {
    let cfg = KvConfig {
        idle: Duration::from_secs(10),
        bug_partial_lines: false,
    };
    kv_server(
        base,
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), PORT),
        cfg,
    )
    .unwrap();
}

/// A server that accepts and then does `with` to each connection's descriptor.
fn raw(base: &mut Base<SimBackend>, with: fn(&mut Base<SimBackend>, evloop::Fd)) {
    let addr = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), PORT);
    let cb = Box::new(move |base: &mut Base<SimBackend>, _, fd, _| with(base, fd));
    Listener::bind(base, addr, ListenerOptions::REUSEABLE, -1, Some(cb)).unwrap();
}

#[test]
fn a_script_reads_top_to_bottom_and_keeps_its_transcript() {
    let mut sim = Sim::new(1);
    sim.add_host(kv);
    let s = Script::new("a")
        .connect(server_addr())
        .send_line("SET x 1 50")
        .expect_line("OK")
        .send_line("GET x")
        .expect_any_line()
        .sleep(Duration::from_millis(60))
        .send_line("GET x")
        .expect_line("NOT_FOUND")
        .send("GET y\nDEL")
        .expect_line("NOT_FOUND")
        .send(" x\n")
        .expect_bytes("NOT_FOUND\n")
        .send_line("GET x")
        .half_close()
        .expect_line("NOT_FOUND")
        .expect_eof();
    let text = Script::parse(
        "b",
        "connect 127.0.0.1:7000\nrepeat 3\n send-line SET k v\n expect-line OK\nend\nsend-line QUIT\nexpect-line BYE\nexpect-eof\n",
    )
    .unwrap();
    let ids = sim.add_clients([s, text]);
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    assert!(sim.failures().is_empty(), "{:?}", sim.failures());
    let a = sim.client(ids[0]);
    assert_eq!(a.status, ClientStatus::Done);
    assert_eq!(
        a.transcript.lines(),
        ["OK", "VALUE 1", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]
    );
    assert!(a
        .transcript
        .entries
        .iter()
        .any(|(_, e)| *e == Entry::Received(b"NOT_FOUND\n".to_vec())));
    assert_eq!(
        a.transcript.sent(),
        b"SET x 1 50\nGET x\nGET x\nGET y\nDEL x\nGET x\n"
    );
    // The sleep is virtual time: 60 ms between the two GETs.
    let sends: Vec<Time> = a
        .transcript
        .entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Sent(_)))
        .map(|(t, _)| *t)
        .collect();
    assert!(sends[2].as_micros() - sends[1].as_micros() >= 60_000);
    let b = sim.client(ids[1]);
    assert_eq!(b.status, ClientStatus::Done);
    assert_eq!(b.transcript.lines(), ["OK", "OK", "OK", "BYE"]);
    assert_eq!(b.host, a.host, "several clients share a host");
}

#[test]
fn a_broken_expectation_or_a_timeout_is_a_failure_of_the_run() {
    let mut sim = Sim::new(2);
    sim.add_host(kv);
    // A silent peer: accepted, never answered.
    let ids = sim.add_clients([
        Script::new("wrong")
            .connect(server_addr())
            .send_line("GET q")
            .expect_line("VALUE 3"),
        Script::new("slow")
            .connect(server_addr())
            .timeout(Duration::from_secs(1))
            .expect_line("hello"),
    ]);
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    let f = sim.failures();
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f.iter()
            .any(|m| m
                == "client wrong: step 3 (expect line \"VALUE 3\"): got the line \"NOT_FOUND\""),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|m| m == "client slow: step 2 (expect line \"hello\"): timed out after 1000000us"),
        "{f:?}"
    );
    assert_eq!(
        sim.client(ids[0]).status,
        ClientStatus::Failed(
            2,
            f.iter().find(|m| m.starts_with("client wrong")).unwrap()["client wrong: ".len()..]
                .to_owned()
        )
    );
    assert!(matches!(
        sim.client(ids[1]).status,
        ClientStatus::Failed(1, _)
    ));
    // The timeout is virtual: 1 s after the connect (+ the 100 µs link latency each way).
    assert!(
        sim.now().as_micros() >= 1_000_000 && sim.now().as_micros() < 1_001_000,
        "{:?}",
        sim.now()
    );
    let r = evloop_sim::targets::RunReport::from_sim(&mut sim, vec!["mine".into()]);
    assert_eq!(r.failures.len(), 3);
    assert_eq!(r.failures[2], "mine");
}

#[test]
fn reset_both_ways() {
    let mut sim = Sim::new(3);
    // The server resets every connection it accepts.
    sim.add_host(|base| {
        raw(base, |base, fd| {
            base.backend_mut().close_reset(fd).unwrap();
        })
    });
    let ids = sim.add_clients([
        Script::new("r").connect(server_addr()).expect_reset(),
        Script::new("e").connect(server_addr()).expect_eof(),
    ]);
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    assert_eq!(sim.client(ids[0]).status, ClientStatus::Done);
    assert!(
        matches!(&sim.client(ids[1]).status, ClientStatus::Failed(1, m) if m.contains("got the connection was reset instead of EOF"))
    );

    // A client that resets: the kv server's connection ends (its eventcb frees it), and the
    // client's own transcript records the close.
    let mut sim = Sim::new(4);
    sim.add_host(kv);
    let ids = sim.add_clients([Script::new("x")
        .connect(server_addr())
        .send_line("SET a 1")
        .expect_line("OK")
        .reset()]);
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    let x = sim.client(ids[0]);
    assert_eq!(x.status, ClientStatus::Done);
    assert_eq!(
        x.transcript.entries.last().map(|e| &e.1),
        Some(&Entry::Closed)
    );
    assert!(sim.trace().lines().is_none());
}

#[test]
fn the_fault_profile_acts_on_scripted_clients() {
    let faults = FaultConfig {
        peer_close: 1.0,
        ..FaultConfig::none()
    };
    let mut sim = Sim::with_config(&SimConfig {
        seed: 5,
        faults,
        keep_trace: true,
        only: None,
    });
    sim.add_host(kv);
    let script = |n: &str| {
        Script::new(n)
            .connect(server_addr())
            .send_line("SET a 1")
            .expect_line("OK")
            .send_line("QUIT")
            .expect_line("BYE")
            .expect_eof()
    };
    let ids = sim.add_clients(["p", "q", "r"].map(script));
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    assert!(sim.failures().is_empty(), "{:?}", sim.failures());
    for id in ids {
        let c = sim.client(id);
        assert!(
            matches!(&c.status, ClientStatus::Faulted(_, m) if m.contains("peer-close")),
            "{c:?}"
        );
        assert!(c
            .transcript
            .entries
            .iter()
            .any(|(_, e)| *e == Entry::PeerCloseFault));
        assert!(sim.connection_faulted(c.conn.unwrap()));
    }
    assert!(
        sim.decisions()
            .iter()
            .filter(|d| d.kind == evloop_sim::FaultKind::PeerClose)
            .count()
            == 3
    );
    let text = sim.trace().text().unwrap();
    assert!(text.contains("client p peer-close fault"), "{text}");

    // Refused connections (nothing listens) are failures without a fault, faults with one.
    let mut sim = Sim::new(6);
    sim.add_host(|_| {});
    let ids = sim.add_clients([Script::new("n").connect(server_addr()).expect_eof()]);
    sim.run_until_pred(HORIZON, |sim| sim.clients_done());
    assert!(
        matches!(&sim.client(ids[0]).status, ClientStatus::Failed(0, m) if m.contains("connect failed")),
        "{:?}",
        sim.client(ids[0])
    );
}
