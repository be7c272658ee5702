//! The key-value server's simulation harness: the server on host 0, `--clients` scripted
//! clients on 3 client hosts, each with its own keys and a script drawn from the seed, whose
//! expected replies come from a model of the store; at the end the server's store is checked
//! against the model. `--param bug=true` plants a bug in the server.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use evloop::Time;
use evloop_sim::client::{ClientStatus, Script};
use evloop_sim::targets::{Param, RunOptions, RunReport, Target};
use evloop_sim::{host_addr, SimRng};

use crate::server::{kv_server, KvConfig};

pub const PORT: u16 = 7000;
const IDLE: Duration = Duration::from_secs(10);
const TTL_MS: u64 = 5_000;
const PARAMS: &[Param] = &[Param::flag(
    "bug",
    "plant the bug: a partial line runs as a command",
)];

/// What a client leaves in the store: key → (value, has a TTL); `None`: deleted.
pub type Model = BTreeMap<String, Option<(String, bool)>>;

/// Client `i`'s script and the store it leaves. Sleeps are short (≤ 100 ms each, ≤ 0.8 s in
/// all) or long (6 s > the TTL), so whether an entry has expired never depends on latency;
/// no silence reaches the idle timeout, except in the clients that test it.
pub fn script(i: usize, rng: &mut SimRng, server: SocketAddr) -> (Script, Model) {
    let start = Duration::from_millis(rng.below(200));
    let mut s = Script::new(format!("c{i}")).sleep(start).connect(server);
    let (mut model, mut set_at, mut clock, mut quiet) = (Model::new(), BTreeMap::new(), 0, 0);
    for _ in 0..rng.range(3, 9) {
        let key = format!("k{i}-{}", rng.below(3));
        let live = |v: &(String, bool)| !v.1 || clock - set_at[&key] < TTL_MS;
        let (get, del) = match model.get(&key) {
            Some(Some(v)) if live(v) => (format!("VALUE {}", v.0), "DELETED"),
            _ => ("NOT_FOUND".to_owned(), "NOT_FOUND"),
        };
        let (cmd, reply) = match rng.below(5) {
            0 | 1 => {
                let (v, ttl) = (format!("v{}", rng.below(1000)), rng.chance(0.5));
                model.insert(key.clone(), Some((v.clone(), ttl)));
                set_at.insert(key.clone(), clock);
                let ttl = [String::new(), format!(" {TTL_MS}")][usize::from(ttl)].clone();
                (format!("SET {key} {v}{ttl}"), "OK".to_owned())
            }
            2 => (format!("GET {key}"), get),
            3 => {
                model.insert(key.clone(), None);
                (format!("DEL {key}"), del.to_owned())
            }
            _ => {
                let ms = [rng.range(1, 100), TTL_MS + 1_000][usize::from(rng.chance(0.3))];
                if quiet + ms < 8_000 {
                    (clock, quiet) = (clock + ms, quiet + ms);
                    s = s.sleep(Duration::from_millis(ms));
                }
                continue;
            }
        };
        quiet = 0;
        s = s.send_line(&cmd).expect_line(&reply);
    }
    let s = if i % 4 == 3 {
        // The server closes idle clients (a spurious wake-up re-arms its timer: wait long).
        let s = s.sleep(IDLE + Duration::from_secs(2));
        s.timeout(Duration::from_secs(120)).expect_eof()
    } else {
        s.send_line("QUIT").expect_line("BYE").expect_eof()
    };
    (s, model)
}

/// The `kv` target.
pub struct Kv;

impl Target for Kv {
    fn name(&self) -> &str {
        "kv"
    }
    fn about(&self) -> &str {
        "the key-value server (host 0) with --clients scripted clients and a model check"
    }
    fn uses_clients(&self) -> bool {
        true
    }
    fn params(&self) -> &[Param] {
        PARAMS
    }

    fn run(&self, opts: &RunOptions) -> RunReport {
        let mut sim = opts.sim();
        let bug_partial_lines = opts.flag(self, "bug");
        let cfg = KvConfig {
            idle: IDLE,
            bug_partial_lines,
        };
        let mut store = None;
        sim.add_host(|base| {
            let addr = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), PORT);
            match kv_server(base, addr, cfg) {
                Ok((_, st)) => store = Some(st),
                Err(e) => base.backend_mut().fail(format!("kv_server: {e}")),
            }
        });
        let server = SocketAddr::new(host_addr(0).into(), PORT);
        let mut rng = SimRng::new(opts.seed ^ 0x6b76); // the scripts do not depend on faults
        let (scripts, models): (Vec<Script>, Vec<Model>) = (0..opts.clients)
            .map(|i| script(i, &mut rng, server))
            .unzip();
        for host in scripts.chunks(opts.clients.div_ceil(3).max(1)) {
            sim.add_clients(host.to_vec());
        }
        sim.run_until_pred(Time(3_600_000_000), |sim| sim.clients_done());

        // The model check: the store holds what each finished client left.
        let mut failures = Vec::new();
        let store = store.map(|s| s.borrow().clone()).unwrap_or_default();
        for (c, model) in sim.clients().iter().zip(&models) {
            match c.status {
                ClientStatus::Running => failures.push(format!("client {} never ended", c.name)),
                ClientStatus::Done => {
                    for (k, want) in model {
                        let got = store.get(k).map(|v| (v.value.clone(), v.expires.is_some()));
                        if got != *want {
                            failures
                                .push(format!("{k}: the store has {got:?}, the model {want:?}"));
                        }
                    }
                }
                _ => {} // faulted or failed: its keys may be in any state
            }
        }
        RunReport::from_sim(&mut sim, failures)
    }
}
