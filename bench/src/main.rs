//! `evbench`: evloop's benchmarks, side by side with libevent and a bare epoll loop, in one run.
//!
//! Every figure is a ratio measured in the same process run (BENCHMARKS.md): absolute times are
//! noisy on shared machines. The C programs in `bench/c/` are built with the system C compiler
//! at start (libevent side: `-levent`).
//!
//! - `dispatch`: libevent's `test/bench.c` method (n socketpairs with persistent read events, a
//!   active writers n/a apart, w writes in a 1-byte token ring, timed ONCE|NONBLOCK loop).
//! - `timers`: add and fire timers with spread and with equal deadlines; add/delete churn.
//! - `memory`: resident bytes per added event.
//! - `parse`: the scenario language's parse + lower + print over 10k..80k event declarations.
//! - `soak`: the seed server on every real backend for N connections with 1, 50 and 1000
//!   concurrent loopback clients; connections/s, the server's fds and RSS (`soak.rs`).
//!
//! This is the one place in the workspace that reads the wall clock, to time runs.
#![forbid(unsafe_code)]
#![allow(clippy::disallowed_methods)] // benchmarks measure wall time on purpose

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

mod soak;

use clap::{Parser, Subcommand};
use evloop::backend::{EpollBackend, MioBackend, PollBackend, SelectBackend};
use evloop::{Backend, Base, Events, LoopFlags};

#[derive(Parser)]
#[command(about = "evloop benchmarks side by side with libevent (ratios from one run)")]
struct Cli {
    #[command(subcommand)]
    what: Option<What>,
    /// A quick smoke run: small sizes, few runs (proves the programs work; not a measurement).
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(Subcommand, Clone, PartialEq, Eq)]
enum What {
    /// Everything below.
    All,
    /// The bench.c token ring on every backend, libevent and the bare epoll floor.
    Dispatch {
        /// Only these cells, as N:A (socketpairs:active writers, e.g. `--cell 1000:100`;
        /// repeatable). Default: every cell of the table.
        #[arg(long = "cell", value_parser = parse_cell)]
        cells: Vec<(usize, usize)>,
    },
    /// Timer add/fire and add/delete churn.
    Timers,
    /// Resident bytes per added event.
    Memory,
    /// The simulator: callbacks/s on one core, hello-world seeds/s on every core.
    Sim,
    /// Only evloop's timer benchmark, once (evbench runs it in a fresh process per repetition).
    #[command(hide = true)]
    TimerRun {
        /// spread, equal or churn.
        kind: String,
        /// Timers.
        n: usize,
    },
    /// The scenario parser: parse + lower + print of 10k, 20k, 40k and 80k event declarations
    /// (linear: each doubling about doubles the time; fails above 8x from 20k to 80k, or 3 s).
    Parse,
    /// The seed server on each real backend for N connections per client count (1, 50 and 1000
    /// concurrent clients on 127.0.0.1): every client must get exactly the message and EOF;
    /// reports connections/s and the server's fd count and RSS at start, after 1k and at the end.
    Soak {
        /// Connections per backend and client count.
        #[arg(long, default_value_t = 100_000)]
        connections: usize,
        /// Backends (comma-separated).
        #[arg(long, default_value = "epoll,poll,select,mio", value_delimiter = ',')]
        backends: Vec<String>,
        /// Concurrent client counts (comma-separated).
        #[arg(long, default_value = "1,50,1000", value_delimiter = ',')]
        clients: Vec<usize>,
    },
    /// Only evloop's token ring on one backend (for strace/perf: `ring epoll 100 1 1000 3`).
    Ring {
        /// epoll, poll, select or mio.
        backend: String,
        /// Socketpairs.
        n: usize,
        /// Active writers.
        a: usize,
        /// Writes.
        w: usize,
        /// Runs.
        runs: usize,
    },
}

/// `N:A` of `--cell`: 1 ≤ A ≤ N ≤ 100 000.
fn parse_cell(s: &str) -> Result<(usize, usize), String> {
    let (n, a) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected N:A, e.g. 1000:100"))?;
    let num = |x: &str| x.trim().parse::<usize>().map_err(|e| format!("{x:?}: {e}"));
    let (n, a) = (num(n)?, num(a)?);
    if a == 0 || a > n || n > 100_000 {
        return Err(format!("{s:?}: need 1 ≤ A ≤ N ≤ 100000"));
    }
    Ok((n, a))
}

const LIBEVENT_SRC: &str = include_str!("../c/libevent_bench.c");
const FLOOR_SRC: &str = include_str!("../c/epoll_floor.c");
const POLL_FLOOR_SRC: &str = include_str!("../c/poll_floor.c");

struct Programs {
    _dir: tempfile::TempDir,
    libevent: PathBuf,
    floor: PathBuf,
    /// The poll and select rows' floor (`bench/c/poll_floor.c`).
    poll_floor: PathBuf,
    /// A directory where `libevent-2.1.so.7` is evloop's C ABI library (`evloop-capi`): the
    /// libevent program run with `LD_LIBRARY_PATH` there runs on evloop, unchanged.
    capi: PathBuf,
}

/// evloop's C ABI library: `$EVLOOP_CAPI_LIB`, or `libevloop_capi.so` built next to this
/// executable (evloop-bench depends on evloop-capi so that cargo builds it, into `deps/`).
fn capi_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("EVLOOP_CAPI_LIB").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let newest = [
        dir.join("libevloop_capi.so"),
        dir.join("deps/libevloop_capi.so"),
    ]
    .into_iter()
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max_by_key(|(t, _)| *t);
    newest.map(|(_, p)| p).ok_or_else(|| {
        format!(
            "libevloop_capi.so not found in {} (cargo build --release -p evloop-capi, or set EVLOOP_CAPI_LIB)",
            dir.display()
        )
    })
}

fn build(dir: &Path, name: &str, src: &str, libs: &[&str]) -> Result<PathBuf, String> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).map_err(|e| e.to_string())?;
    let exe = dir.join(name);
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&c)
        .args(libs)
        .output()
        .map_err(|e| format!("cc: {e} (install a C compiler)"))?;
    if !out.status.success() {
        return Err(format!(
            "building {name} failed (is libevent-dev installed?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

fn programs() -> Result<Programs, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lib = capi_library()?
        .canonicalize()
        .map_err(|e| format!("evloop-capi library: {e}"))?;
    let capi = dir.path().join("capi");
    std::fs::create_dir(&capi).map_err(|e| e.to_string())?;
    for name in ["libevent-2.1.so.7", "libevent_core-2.1.so.7"] {
        std::os::unix::fs::symlink(&lib, capi.join(name)).map_err(|e| e.to_string())?;
    }
    Ok(Programs {
        libevent: build(dir.path(), "libevent_bench", LIBEVENT_SRC, &["-levent"])?,
        floor: build(dir.path(), "epoll_floor", FLOOR_SRC, &[])?,
        poll_floor: build(dir.path(), "poll_floor", POLL_FLOOR_SRC, &[])?,
        capi,
        _dir: dir,
    })
}

fn run_c(exe: &Path, args: &[String]) -> Result<String, String> {
    run_c_with(exe, args, None, None)
}

/// `exe`, on CPU `pin` through `taskset` if given.
fn command_on(exe: &Path, pin: Option<usize>) -> Command {
    match pin {
        Some(cpu) => {
            let mut t = Command::new("taskset");
            t.arg("-c").arg(cpu.to_string()).arg(exe);
            t
        }
        None => Command::new(exe),
    }
}

/// Runs a C program, with `LD_LIBRARY_PATH=lib_dir` if given (the program then loads evloop's
/// C ABI library instead of libevent), on CPU `pin` if given.
fn run_c_with(
    exe: &Path,
    args: &[String],
    lib_dir: Option<&Path>,
    pin: Option<usize>,
) -> Result<String, String> {
    let mut cmd = command_on(exe, pin);
    cmd.env_remove("LD_LIBRARY_PATH");
    if let Some(d) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {:?} failed: {}",
            exe.display(),
            args,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Per-run samples: (elapsed µs, callbacks).
type Samples = Vec<(f64, u64)>;

fn parse_samples(s: &str) -> Samples {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

// ---- dispatch ------------------------------------------------------------------------------

struct Ring {
    count: Cell<u64>,
    fired: Cell<u64>,
    writes: Cell<u64>,
    pipes: Vec<(i32, i32)>,
}

/// libevent's bench.c `run_once`, `runs` times, on one evloop backend; `on_run` gets each run's
/// `(µs, callbacks)` as soon as it is done. With `step`, each run first waits for one byte on
/// stdin and the runs end at end of input (`EVBENCH_STEP=1`, as in the C programs).
fn dispatch_evloop<B: Backend + 'static>(
    backend: B,
    n: usize,
    a: usize,
    w: usize,
    runs: usize,
    step: bool,
    on_run: &mut dyn FnMut(f64, u64),
) -> Result<(), String> {
    if n == 0 || a == 0 || a > n {
        return Err(format!("ring: need 1 ≤ a ≤ n (got n={n} a={a})"));
    }
    let mut base = Base::new(backend);
    let mut pipes = Vec::with_capacity(n);
    for _ in 0..n {
        pipes.push(
            base.backend_mut()
                .socketpair()
                .map_err(|e| format!("socketpair: {e}"))?,
        );
    }
    let ring = Rc::new(Ring {
        count: Cell::new(0),
        fired: Cell::new(0),
        writes: Cell::new(0),
        pipes,
    });
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let r = ring.clone();
        let fd = r.pipes[i].0;
        // As bench.c's read_cb, which gets its index as the argument and reads the ring's size
        // from a global: the closure captures three words (the ring, its fd, its index), so
        // evloop keeps it in the event's slot.
        let e = base
            .event_new(fd, Events::READ | Events::PERSIST, move |b, _, _| {
                let mut ch = [0u8; 1];
                if let Ok(k) = b.backend_mut().read(fd, &mut ch) {
                    r.count.set(r.count.get() + k as u64);
                }
                if r.writes.get() > 0 {
                    let n = r.pipes.len();
                    let widx = if i + 1 >= n { i + 1 - n } else { i + 1 };
                    let _ = b.backend_mut().write(r.pipes[widx].1, b"e");
                    r.writes.set(r.writes.get() - 1);
                    r.fired.set(r.fired.get() + 1);
                }
            })
            .map_err(|e| e.to_string())?;
        events.push(e);
    }
    let once_nb = LoopFlags::ONCE | LoopFlags::NONBLOCK;
    for _ in 0..runs {
        if step {
            use std::io::Read as _;
            let mut b = [0u8; 1];
            if !matches!(std::io::stdin().read(&mut b), Ok(1)) {
                break;
            }
        }
        for &e in &events {
            let _ = base.del(e);
            base.add(e, None).map_err(|e| e.to_string())?;
        }
        base.run(once_nb).map_err(|e| e.to_string())?;
        ring.fired.set(0);
        let space = n / a;
        for i in 0..a {
            let _ = base.backend_mut().write(ring.pipes[i * space].1, b"e");
            ring.fired.set(ring.fired.get() + 1);
        }
        ring.count.set(0);
        ring.writes.set(w as u64);
        let t0 = Instant::now();
        loop {
            base.run(once_nb).map_err(|e| e.to_string())?;
            if ring.count.get() == ring.fired.get() {
                break;
            }
        }
        on_run(t0.elapsed().as_secs_f64() * 1e6, ring.count.get());
    }
    for (a, b) in &ring.pipes {
        let _ = base.backend_mut().close(*a);
        let _ = base.backend_mut().close(*b);
    }
    Ok(())
}

struct Row {
    config: String,
    who: String,
    median_us: f64,
    ns_per_event: f64,
    /// `÷ libevent` as shown: the median ratio and its min–max.
    vs_libevent: String,
}

fn print_rows(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| config | implementation | median µs/run | ns/event | ÷ libevent |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} |",
            r.config, r.who, r.median_us, r.ns_per_event, r.vs_libevent
        );
    }
}

/// One program of the dispatch table: a command line (`RUNS` stands for the number of runs)
/// that runs the token ring and prints one `µs callbacks` line per run; [`Live`] starts it in
/// step mode.
struct Contender {
    who: String,
    /// The row of the same cell this one is divided by for `÷ libevent` (mio: libevent epoll).
    reference: Option<String>,
    /// The method it waits with (mio: epoll): its `÷ floor` is against the floor programs of
    /// the same method.
    method: &'static str,
    /// A floor program: a row's floor is the fastest floor program of its method, per pass.
    floor: bool,
    /// The A/A control of its method: a second process of the libevent program, so that its
    /// `÷ libevent` shows what the method makes of two identical programs in this cell.
    control: bool,
    exe: PathBuf,
    args: Vec<String>,
    /// `LD_LIBRARY_PATH` for the run: evloop's C ABI library under libevent's soname.
    lib_dir: Option<PathBuf>,
}

/// A contender's process in step mode (`EVBENCH_STEP=1`): it does one run per byte written to
/// its stdin and prints that run's `µs callbacks` line at once; closing stdin ends it.
struct Live {
    who: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Live {
    /// Starts `c` for at most `runs` runs, on CPU `pin` (through `taskset`) if given.
    fn start(c: &Contender, runs: usize, pin: Option<usize>) -> Result<Live, String> {
        use std::process::Stdio;
        let mut args = c.args.clone();
        if let Some(i) = args.iter().position(|a| a == "RUNS") {
            args[i] = runs.to_string();
        }
        let mut cmd = command_on(&c.exe, pin);
        cmd.args(&args)
            .env("EVBENCH_STEP", "1")
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(d) = &c.lib_dir {
            cmd.env("LD_LIBRARY_PATH", d);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", c.exe.display()))?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let mut live = Live {
            who: c.who.clone(),
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout.ok_or("no stdout")?),
        };
        if live.stdin.is_none() {
            live.kill();
            return Err("no stdin".into());
        }
        Ok(live)
    }

    /// One run: `(µs, callbacks)`.
    fn step(&mut self) -> Result<(f64, u64), String> {
        use std::io::{BufRead as _, Write as _};
        let who = &self.who;
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        if let Err(e) = stdin.write_all(b"\n").and_then(|()| stdin.flush()) {
            let status = self.child.wait().map_err(|e| format!("{who}: {e}"))?;
            return Err(format!("{who}: {e}: it ended before its run ({status})"));
        }
        let mut line = String::new();
        let got = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| format!("{who}: {e}"))?;
        if got == 0 {
            let status = self.child.wait().map_err(|e| format!("{who}: {e}"))?;
            return Err(format!("{who} ended before its run ({status})"));
        }
        parse_samples(&line)
            .first()
            .copied()
            .ok_or_else(|| format!("{who}: not a `µs callbacks` line: {line:?}"))
    }

    /// Ends the process by closing its stdin and checks that it stepped: it was started with
    /// one run more than it was stepped, so a program that ignored `EVBENCH_STEP` printed a line
    /// too many.
    fn finish(mut self) -> Result<(), String> {
        use std::io::Read as _;
        drop(self.stdin.take());
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let status = self
            .child
            .wait()
            .map_err(|e| format!("{}: {e}", self.who))?;
        if !rest.trim().is_empty() {
            return Err(format!(
                "{} ran without waiting for its step (EVBENCH_STEP): {rest:?}",
                self.who
            ));
        }
        if !status.success() {
            return Err(format!("{} failed at the end ({status})", self.who));
        }
        Ok(())
    }

    fn kill(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The CPU the contenders run on: the last one, when there are several and `taskset` works;
/// `EVBENCH_PIN=none` turns pinning off, `EVBENCH_PIN=K` picks CPU K.
fn pin_cpu() -> Option<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = match std::env::var("EVBENCH_PIN") {
        Ok(v) if v == "none" => return None,
        Ok(v) => v.parse().ok()?,
        Err(_) if cpus < 2 => return None,
        Err(_) => cpus - 1,
    };
    let ok = Command::new("taskset")
        .args(["-c", &want.to_string(), "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(want)
}

/// Moves evbench itself (every thread) off CPU `cpu`, where the programs it measures run: a
/// parent woken by a program's output may otherwise be placed on that program's CPU and run
/// there between two measured runs. Returns the CPUs evbench keeps, or `None` if there are
/// none or `taskset` failed (then evbench stays where the scheduler puts it).
fn keep_off(cpu: usize) -> Option<String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others: Vec<String> = (0..cpus)
        .filter(|&c| c != cpu)
        .map(|c| c.to_string())
        .collect();
    if others.is_empty() {
        return None;
    }
    let list = others.join(",");
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", &list, &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(list)
}

/// Ratio statistics of one row across passes: the median, and the range.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(v: &[f64]) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            median: median(v.to_vec()),
            min,
            max,
        })
    }

    fn show(&self) -> String {
        format!("{:.2} ({:.2}–{:.2})", self.median, self.min, self.max)
    }

    /// A win or a loss only when the whole range of several passes is on one side of 1.0, and,
    /// given the A/A control of the same method and cell (libevent against a second copy of
    /// itself), also outside the band the control spans around 1.0: a range that two identical
    /// programs can produce decides nothing. Which copy of libevent is the reference is
    /// arbitrary, so a control of 0.90–1.00 also says that 1.00–1.11 is noise: the band is the
    /// control's range joined with its reciprocals.
    fn verdict(&self, passes: usize, control: Option<Spread>) -> &'static str {
        let clear = |faster: bool| {
            control.is_none_or(|c| {
                if faster {
                    self.max < c.min.min(1.0 / c.max)
                } else {
                    self.min > c.max.max(1.0 / c.min)
                }
            })
        };
        if passes < 2 {
            "one pass: no verdict"
        } else if self.max < 1.0 {
            if clear(true) {
                "faster"
            } else {
                "within A/A noise"
            }
        } else if self.min > 1.0 {
            if clear(false) {
                "slower"
            } else {
                "within A/A noise"
            }
        } else {
            "within noise"
        }
    }
}

/// The order in which the `n` programs of cell `cell` run in round `round` of pass `pass`: a
/// shuffle drawn from a fixed seed, so that a run is preceded by a different program from round
/// to round and by each about equally often. (A rotation of one fixed order kept every program's
/// predecessor: the A/A control, always run right after the libevent process it is compared
/// with, came out 1.01 (1.00–1.01) of it at n=100 a=1 in run 12.)
fn round_order(n: usize, cell: usize, pass: usize, round: usize) -> Vec<usize> {
    let mut rng = Lcg(0x5eed ^ ((cell as u64) << 40) ^ ((pass as u64) << 32) ^ round as u64);
    let mut order: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        order.swap(k, rng.next() as usize % (k + 1));
    }
    order
}

/// The fewest rounds of a dispatch pass (also all of them for the slow poll/select runs).
const MIN_ROUNDS: usize = 25;
/// The most rounds of a dispatch pass.
const MAX_ROUNDS: usize = 200;
/// The time a dispatch pass may take, by its warm-up round (µs).
const PASS_BUDGET_US: f64 = 8_000_000.0;

/// The rounds of a dispatch pass whose warm-up round took `round_us`: as many as fit in
/// [`PASS_BUDGET_US`], within `min..=max`.
fn rounds_for(round_us: f64, min: usize, max: usize) -> usize {
    if round_us.is_nan() || round_us <= 0.0 {
        return max;
    }
    ((PASS_BUDGET_US / round_us).ceil() as usize).clamp(min, max)
}

fn dispatch_contenders(
    p: &Programs,
    n: usize,
    a: usize,
    w: usize,
) -> Result<Vec<Contender>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let cell = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([n.to_string(), a.to_string(), w.to_string(), "RUNS".into()]);
        v
    };
    let select_ok = 2 * n + 16 < 1024;
    let mut out = Vec::new();
    for (label, arg) in [
        ("bare epoll (floor)", "4096"),
        ("bare epoll, growing array (floor)", "grow"),
    ] {
        let mut args = cell(&[]);
        args.push(arg.into());
        out.push(Contender {
            who: label.into(),
            reference: None,
            method: "epoll",
            floor: true,
            control: false,
            exe: p.floor.clone(),
            args,
            lib_dir: None,
        });
    }
    for m in ["poll", "select"] {
        if m == "select" && !select_ok {
            continue;
        }
        out.push(Contender {
            who: format!("bare {m} (floor)"),
            reference: None,
            method: m,
            floor: true,
            control: false,
            exe: p.poll_floor.clone(),
            args: cell(&[m]),
            lib_dir: None,
        });
    }
    for m in ["epoll", "poll", "select"] {
        if m == "select" && !select_ok {
            continue;
        }
        for control in [false, true] {
            out.push(Contender {
                who: if control {
                    format!("libevent {m} (A/A control)")
                } else {
                    format!("libevent {m}")
                },
                reference: Some(format!("libevent {m}")),
                method: m,
                floor: false,
                control,
                exe: p.libevent.clone(),
                args: cell(&["dispatch", m]),
                lib_dir: None,
            });
        }
    }
    // The same libevent program, unchanged, on evloop through the C ABI.
    for m in ["epoll", "poll", "select"] {
        if m == "select" && !select_ok {
            continue;
        }
        out.push(Contender {
            who: format!("evloop C ABI {m}"),
            reference: Some(format!("libevent {m}")),
            method: m,
            floor: false,
            control: false,
            exe: p.libevent.clone(),
            args: cell(&["dispatch", m]),
            lib_dir: Some(p.capi.clone()),
        });
    }
    for b in ["epoll", "poll", "select", "mio"] {
        if b == "select" && !select_ok {
            continue;
        }
        let lib = if b == "mio" { "epoll" } else { b };
        out.push(Contender {
            who: format!("evloop {b}"),
            reference: Some(format!("libevent {lib}")),
            method: lib,
            floor: false,
            control: false,
            exe: me.clone(),
            args: cell(&["ring", b]),
            lib_dir: None,
        });
    }
    Ok(out)
}

/// The dispatch table (issue: a benchmark that can tell signal from noise). For each cell and
/// pass, every program of the cell is started once (a fresh process, pinned to one CPU when
/// possible) and stepped: in each round every program does one run, in an order shuffled
/// from round to round, so the runs of one round are milliseconds apart and a slow phase of
/// the machine hits all of them. A program's ratio to its reference (÷ libevent) and to the
/// floor is taken per round, between those neighbouring runs, and its pass ratio is the
/// median over the rounds. Every process does one untimed warm-up run first. The table shows
/// per row the median ratio across `passes` passes and its min–max, and calls a row faster or
/// slower only when the whole range is on one side of 1.0 and outside the band around 1.0 of
/// its method's A/A control ([`Spread::verdict`]): a second process of the libevent program,
/// compared with the first as any row is. The control shows the noise of the method in that
/// cell (at n=9000 a=100, poll against itself gave pass ratios of 0.96–1.02).
///
/// A pass has at least [`MIN_ROUNDS`] rounds, and more where the runs are short: as many as
/// fit in [`PASS_BUDGET_US`] by the warm-up round's time, up to [`MAX_ROUNDS`]. One round's
/// ratios spread by about ±6 % (interquartile) on this kind of machine, so a pass median has
/// a standard error of about 2 % with 25 rounds and 0.8 % with 200.
fn dispatch(p: &Programs, quick: bool, only: &[(usize, usize)]) -> Result<(), String> {
    let (min_rounds, max_rounds) = if quick {
        (3, 3)
    } else {
        (MIN_ROUNDS, MAX_ROUNDS)
    };
    let passes = if quick { 1 } else { 3 };
    let warm = usize::from(!quick);
    let sizes: &[usize] = if quick { &[100] } else { &[100, 1000, 9000] };
    let pin = pin_cpu();
    let parent_cpus = pin.and_then(keep_off);
    let mut cells = Vec::new();
    let w_of = |n: usize| if quick { n } else { n.max(1000) };
    if only.is_empty() {
        for &n in sizes {
            for a in [1usize, 100] {
                cells.push((n, a, w_of(n)));
            }
        }
    } else {
        cells.extend(only.iter().map(|&(n, a)| (n, a, w_of(n))));
    }
    // all[cell] = (contenders, per contender: (per-pass medians µs, per-pass ÷ reference,
    // per-pass ÷ floor), callbacks per run, rounds of each pass)
    type Acc = (Vec<f64>, Vec<f64>, Vec<f64>);
    type CellAcc = (Vec<Contender>, Vec<Acc>, u64, Vec<usize>);
    let mut all: Vec<CellAcc> = Vec::new();
    for &(n, a, w) in &cells {
        let cs = dispatch_contenders(p, n, a, w)?;
        let acc = cs
            .iter()
            .map(|_| (Vec::new(), Vec::new(), Vec::new()))
            .collect();
        all.push((cs, acc, 0, Vec::new()));
    }
    for pass in 0..passes {
        for (ci, &(n, a, _)) in cells.iter().enumerate() {
            let (cs, acc, events, cell_rounds) = &mut all[ci];
            // poll and select scan every descriptor on every pass: with a = 1 at n = 9000 one
            // run takes seconds, so those rows take 3 rounds per pass and no warm-up run.
            let heavy_cell = n * n / a > 10_000_000;
            let heavy: Vec<bool> = cs
                .iter()
                .map(|c| heavy_cell && c.method != "epoll")
                .collect();
            // the rounds of this pass: `max_rounds` until the warm-up round has been timed
            let mut rounds = max_rounds;
            let timed = |i: usize, rounds: usize| if heavy[i] { rounds.min(3) } else { rounds };
            let mut lives = Vec::with_capacity(cs.len());
            for (i, c) in cs.iter().enumerate() {
                // at least one run more than stepped: `finish` checks that it was not done
                let runs = timed(i, max_rounds) + if heavy[i] { 0 } else { warm } + 1;
                lives.push(Live::start(c, runs, pin)?);
            }
            // samples[i][r]: contender i's run in timed round r
            let mut samples: Vec<Vec<Option<f64>>> =
                cs.iter().map(|_| vec![None; max_rounds]).collect();
            let mut warm_us = 0.0;
            let mut r = 0;
            while r < warm + rounds {
                if r == warm && warm > 0 {
                    rounds = rounds_for(warm_us, min_rounds, max_rounds);
                }
                for i in round_order(cs.len(), ci, pass, r) {
                    let timed_round = r.checked_sub(warm);
                    let runs_now = match timed_round {
                        Some(t) => t < timed(i, rounds),
                        None => !heavy[i],
                    };
                    if !runs_now {
                        continue;
                    }
                    let (us, cb) = lives[i].step()?;
                    if timed_round.is_none() {
                        warm_us += us;
                    }
                    if *events == 0 {
                        *events = cb.max(1);
                    } else if cb != *events {
                        return Err(format!(
                            "{} (n={n} a={a}): {cb} callbacks where the others made {events}",
                            cs[i].who
                        ));
                    }
                    if let Some(t) = timed_round {
                        samples[i][t] = Some(us);
                    }
                }
                r += 1;
            }
            cell_rounds.push(rounds);
            for live in lives {
                live.finish()?;
            }
            let meds: Vec<f64> = samples
                .iter()
                .map(|v| median(v.iter().flatten().copied().collect()))
                .collect();
            // the floor of each method in this pass: its floor program with the lowest median
            let floor_of = |method: &str| {
                cs.iter()
                    .enumerate()
                    .filter(|(_, c)| c.floor && c.method == method)
                    .min_by(|x, y| meds[x.0].total_cmp(&meds[y.0]))
                    .map(|(i, _)| i)
            };
            // the median over the rounds of the ratio of neighbouring runs
            let paired = |i: usize, j: usize| {
                median(
                    samples[i]
                        .iter()
                        .zip(&samples[j])
                        .filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?))
                        .collect(),
                )
            };
            for (i, c) in cs.iter().enumerate() {
                acc[i].0.push(meds[i]);
                if let Some(f) = floor_of(c.method) {
                    acc[i].2.push(paired(i, f));
                }
                if let Some(r) = &c.reference {
                    if let Some(j) = cs.iter().position(|x| &x.who == r) {
                        acc[i].1.push(paired(i, j));
                    }
                }
            }
        }
    }
    let pinned = match (pin, &parent_cpus) {
        (Some(cpu), Some(rest)) => format!("pinned to CPU {cpu}, evbench itself on CPU {rest}"),
        (Some(cpu), None) => format!("pinned to CPU {cpu}"),
        (None, _) => "not pinned".into(),
    };
    println!(
        "\n### dispatch (bench.c method; {passes} passes of {min_rounds}–{max_rounds} rounds, as \
         many as fit in {} s per pass by the warm-up round (column `rounds`), 3 for poll/select \
         when n²/a > 10⁷; per round one run of every program; one process per program, cell and \
         pass, {pinned}, {warm} warm-up run)\n",
        PASS_BUDGET_US / 1_000_000.0
    );
    println!(
        "Ratios: per round (neighbouring runs), median over the rounds of a pass; shown as the \
         median across passes (min–max). A row is faster or slower than libevent only when its \
         whole range is on one side of 1.0 and outside the band its method's A/A control \
         (libevent against a second process of itself) spans around 1.0, its range and the \
         reciprocals; otherwise \"within A/A noise\".\n"
    );
    println!("| config | rounds | implementation | median µs/run | ns/event | ÷ libevent | ÷ floor | vs libevent |");
    println!("|---|---:|---|---:|---:|---:|---:|---|");
    for (ci, &(n, a, w)) in cells.iter().enumerate() {
        let (cs, acc, events, cell_rounds) = &all[ci];
        let rounds = cell_rounds
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("/");
        // the A/A control of each method in this cell
        let control_of = |method: &str| {
            cs.iter()
                .zip(acc)
                .find(|(c, _)| c.control && c.method == method)
                .and_then(|(_, (_, vs_lib, _))| Spread::of(vs_lib))
        };
        for (c, (meds, vs_lib, vs_floor)) in cs.iter().zip(acc) {
            let med = median(meds.clone());
            let lib = Spread::of(vs_lib);
            let is_ref = c.reference.as_deref() == Some(c.who.as_str());
            let control = if c.control {
                None
            } else {
                control_of(c.method)
            };
            println!(
                "| n={n} a={a} w={w} | {rounds} | {} | {:.0} | {:.0} | {} | {} | {} |",
                c.who,
                med,
                med * 1000.0 / *events.max(&1) as f64,
                lib.map_or(String::new(), |s| if is_ref {
                    "1.00".into()
                } else {
                    s.show()
                }),
                Spread::of(vs_floor).map_or(String::new(), |s| s.show()),
                match lib {
                    Some(s) if !is_ref => s.verdict(passes, control),
                    _ => "",
                }
            );
        }
    }
    Ok(())
}

// ---- timers --------------------------------------------------------------------------------

/// The same LCG as libevent_bench.c, so both sides draw the same offsets.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn timers_evloop(n: usize, kind: &str) -> Result<f64, String> {
    if !matches!(kind, "spread" | "equal" | "churn") {
        return Err(format!(
            "unknown timer kind {kind:?} (spread, equal or churn)"
        ));
    }
    let mut base = Base::new(EpollBackend::new().map_err(|e| e.to_string())?);
    let fired = Rc::new(Cell::new(0usize));
    let mut ev = Vec::with_capacity(n);
    for _ in 0..n {
        let f = fired.clone();
        ev.push(
            base.timer_new(move |_, _, _| f.set(f.get() + 1))
                .map_err(|e| e.to_string())?,
        );
    }
    let mut rng = Lcg(42);
    let t0 = Instant::now();
    if kind == "churn" {
        for &e in &ev {
            base.add(
                e,
                Some(Duration::from_secs(10 + u64::from(rng.next() % 1000))),
            )
            .map_err(|e| e.to_string())?;
        }
        for _ in 0..4 {
            for &e in &ev {
                let tv = Duration::from_secs(10 + u64::from(rng.next() % 1000));
                if rng.next() & 1 == 1 {
                    base.del(e).map_err(|e| e.to_string())?;
                } else {
                    base.add(e, Some(tv)).map_err(|e| e.to_string())?;
                }
            }
        }
        for &e in &ev {
            base.del(e).map_err(|e| e.to_string())?;
        }
    } else {
        for &e in &ev {
            let us = if kind == "spread" {
                u64::from(rng.next() % 1000)
            } else {
                0
            };
            base.add(e, Some(Duration::from_micros(us)))
                .map_err(|e| e.to_string())?;
        }
        base.dispatch().map_err(|e| e.to_string())?;
        if fired.get() != n {
            return Err(format!("fired {} of {n}", fired.get()));
        }
    }
    Ok(t0.elapsed().as_secs_f64() * 1e6)
}

fn timers(p: &Programs, quick: bool) -> Result<(), String> {
    let n = if quick { 10_000 } else { 1_000_000 };
    let reps = if quick { 1 } else { 7 };
    let pin = pin_cpu();
    let _ = pin.and_then(keep_off);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for kind in ["spread", "equal", "churn"] {
        let mut lib = Vec::new();
        let mut ours = Vec::new();
        for rep in 0..reps {
            // Both sides in fresh processes on one CPU, one after the other, the first side
            // alternating; the ratio is taken per pair.
            let lib_args = ["timers".into(), "epoll".into(), n.to_string(), kind.into()];
            let our_args = ["timer-run".into(), kind.into(), n.to_string()];
            let parse = |out: String| out.trim().parse::<f64>().map_err(|e| e.to_string());
            if rep % 2 == 0 {
                lib.push(parse(run_c_with(&p.libevent, &lib_args, None, pin)?)?);
                ours.push(parse(run_c_with(&me, &our_args, None, pin)?)?);
            } else {
                ours.push(parse(run_c_with(&me, &our_args, None, pin)?)?);
                lib.push(parse(run_c_with(&p.libevent, &lib_args, None, pin)?)?);
            }
        }
        let ratios: Vec<f64> = ours.iter().zip(&lib).map(|(o, l)| o / l).collect();
        let ratio = Spread::of(&ratios).map_or(String::new(), |s| s.show());
        let (l, o) = (median(lib), median(ours));
        let ops = if kind == "churn" { n * 6 } else { n };
        let config = format!("{kind} n={n}");
        rows.push(Row {
            config: config.clone(),
            who: "libevent epoll".into(),
            median_us: l,
            ns_per_event: l * 1000.0 / ops as f64,
            vs_libevent: "1.00".into(),
        });
        rows.push(Row {
            config,
            who: "evloop epoll".into(),
            median_us: o,
            ns_per_event: o * 1000.0 / ops as f64,
            vs_libevent: ratio,
        });
    }
    let pinned = pin.map_or("not pinned".to_string(), |c| format!("pinned to CPU {c}"));
    print_rows(
        &format!(
            "timers ({reps} pairs of fresh processes, {pinned}; median µs; ÷ libevent: median of \
             the pairs' ratios (min–max); ns per timer operation)"
        ),
        &rows,
    );
    Ok(())
}

// ---- memory --------------------------------------------------------------------------------

fn rss_bytes() -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/self/statm").map_err(|e| e.to_string())?;
    let resident: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .ok_or("bad /proc/self/statm")?;
    Ok(resident * 4096)
}

fn memory(p: &Programs, quick: bool) -> Result<(), String> {
    let n = if quick { 10_000 } else { 1_000_000 };
    let lib: f64 = run_c(
        &p.libevent,
        &["memory".into(), "epoll".into(), n.to_string()],
    )?
    .trim()
    .parse()
    .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    // Measured in a child process of our own, so earlier benchmarks' memory does not count.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env("EVBENCH_MEMORY_CHILD", n.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    let ours: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e: std::num::ParseFloatError| format!("memory child: {e}"))?;
    println!("\n### memory (resident bytes per added timer event, {n} events)\n");
    println!("| implementation | bytes/event | ÷ libevent |");
    println!("|---|---:|---:|");
    println!("| libevent epoll | {lib:.1} | 1.00 |");
    println!("| evloop epoll | {ours:.1} | {:.2} |", ours / lib);
    Ok(())
}

fn memory_child(n: usize) -> Result<(), String> {
    let mut base = Base::new(EpollBackend::new().map_err(|e| e.to_string())?);
    let before = rss_bytes()?;
    for i in 0..n {
        let e = base.timer_new(|_, _, _| {}).map_err(|e| e.to_string())?;
        base.add(e, Some(Duration::from_secs(3600 + (i % 1000) as u64)))
            .map_err(|e| e.to_string())?;
    }
    let after = rss_bytes()?;
    println!("{:.1}", (after - before) as f64 / n as f64);
    Ok(())
}

// ---- simulator -----------------------------------------------------------------------------

/// `evsim explore` through the library: seeds per second and simulated callbacks per second.
fn sim_throughput(target: &str, faults: &str, seeds: u64, jobs: usize) -> (f64, f64, usize) {
    let targets = evloop_sim::targets::builtin();
    let Some(t) = targets.iter().find(|t| t.name() == target) else {
        return (f64::NAN, f64::NAN, 0);
    };
    let opts = evloop_sim::targets::RunOptions::new(0, faults);
    let start = Instant::now();
    let mut callbacks = 0u64;
    let failed = evloop_sim::explore::explore(t.as_ref(), &opts, 0..seeds, jobs, false, |r| {
        callbacks += r.callbacks
    });
    let secs = start.elapsed().as_secs_f64();
    (seeds as f64 / secs, callbacks as f64 / secs, failed.len())
}

fn simulator(quick: bool) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = if quick { 200 } else { 10_000 };
    println!("\n### simulator\n");
    println!("| measurement | seeds/s | simulated callbacks/s | failed |");
    println!("|---|---:|---:|---:|");
    for (label, target, faults, jobs) in [
        (
            "hello-world, 10 clients, chaos, all cores",
            "hello-world",
            "chaos",
            cores,
        ),
        (
            "hello-world, 10 clients, chaos, one core",
            "hello-world",
            "chaos",
            1,
        ),
        ("event programs, no faults, one core", "programs", "none", 1),
    ] {
        let (sps, cps, failed) = sim_throughput(target, faults, n, jobs);
        println!("| {label} ({n} seeds) | {sps:.0} | {cps:.0} | {failed} |");
    }
}

// ---- scenario parser -----------------------------------------------------------------------

/// A scenario with `n` timer declarations and a main block that uses the first.
fn many_declarations(n: usize) -> String {
    let mut src = String::with_capacity(n * 24);
    for i in 0..n {
        src.push_str(&format!("event e{i} timer\n"));
    }
    src.push_str("main {\n  add e0 1ms\n  loop\n}\n");
    src
}

/// Seconds for parse + validate + lower + print of `src` (median of 3).
fn parse_secs(src: &str) -> Result<f64, String> {
    let mut v = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let sc = evloop_scenario::scenario::parse("bench.scn", src).map_err(|e| e.to_string())?;
        let ir = evloop_scenario::ir::lower(&sc);
        let text = evloop_scenario::scenario::print(&sc);
        v.push(start.elapsed().as_secs_f64());
        std::hint::black_box((ir, text));
    }
    Ok(median(v))
}

fn parse_bench() -> Result<(), String> {
    println!("\n### scenario parser (parse + validate + lower + print, median of 3)\n");
    println!("| event declarations | ms | ÷ half as many |");
    println!("|---:|---:|---:|");
    let mut prev: Option<f64> = None;
    let mut times = Vec::new();
    for n in [10_000, 20_000, 40_000, 80_000] {
        let secs = parse_secs(&many_declarations(n))?;
        let ratio = prev.map_or("–".to_string(), |p| format!("{:.2}", secs / p));
        println!("| {n} | {:.1} | {ratio} |", secs * 1e3);
        prev = Some(secs);
        times.push(secs);
    }
    let last = times[3];
    // Linear (n log n with the name maps) gives about 4-5x from 20k to 80k, quadratic 16x. The
    // ratio is robust to a loaded machine; the absolute bound is loose for the same reason
    // (0.4 s on the idle 2-core VM; the target is under 1 s there).
    let ratio = last / times[1];
    if ratio > 8.0 {
        return Err(format!(
            "80k declarations took {ratio:.1}x as long as 20k: not linear"
        ));
    }
    if last >= 3.0 {
        return Err(format!("80k declarations took {last:.2} s"));
    }
    if last >= 1.0 {
        println!("\nnote: 80k declarations took {last:.2} s (over 1 s: a loaded machine?)");
    }
    Ok(())
}

fn main() {
    if let Ok(backend) = std::env::var(soak::SERVER_ENV) {
        if let Err(e) = soak::server_child(&backend) {
            eprintln!("evbench soak server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Ok(n) = std::env::var("EVBENCH_MEMORY_CHILD") {
        let n = n.parse().unwrap_or(1_000_000);
        if let Err(e) = memory_child(n) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let cli = Cli::parse();
    if let Some(What::Ring {
        backend,
        n,
        a,
        w,
        runs,
    }) = &cli.what
    {
        let step = std::env::var("EVBENCH_STEP").is_ok_and(|v| v == "1");
        // Rust's stdout is line-buffered: each line reaches a stepping evbench at once.
        let mut print = |us: f64, n: u64| println!("{us:.0} {n}");
        let (n, a, w, runs, p) = (*n, *a, *w, *runs, &mut print);
        let r = match backend.as_str() {
            "epoll" => EpollBackend::new()
                .map_err(|e| e.to_string())
                .and_then(|b| dispatch_evloop(b, n, a, w, runs, step, p)),
            "poll" => PollBackend::new()
                .map_err(|e| e.to_string())
                .and_then(|b| dispatch_evloop(b, n, a, w, runs, step, p)),
            "select" => SelectBackend::new()
                .map_err(|e| e.to_string())
                .and_then(|b| dispatch_evloop(b, n, a, w, runs, step, p)),
            "mio" => MioBackend::new()
                .map_err(|e| e.to_string())
                .and_then(|b| dispatch_evloop(b, n, a, w, runs, step, p)),
            other => Err(format!("unknown backend {other}")),
        };
        match r {
            Ok(()) => {}
            Err(e) => {
                eprintln!("evbench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(What::TimerRun { kind, n }) = &cli.what {
        match timers_evloop(*n, kind) {
            Ok(us) => println!("{us:.0}"),
            Err(e) => {
                eprintln!("evbench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let standalone = match &cli.what {
        Some(What::Parse) => Some(parse_bench()),
        Some(What::Soak {
            connections,
            backends,
            clients,
        }) => Some(soak::soak(*connections, backends, clients)),
        _ => None,
    };
    if let Some(r) = standalone {
        if let Err(e) = r {
            eprintln!("evbench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let what = cli.what.clone().unwrap_or(What::All);
    let result = programs().and_then(|p| {
        println!(
            "evbench: machine {} cores; {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if cli.quick {
                "quick smoke run (not a measurement)"
            } else {
                "full run"
            }
        );
        match &what {
            What::All => dispatch(&p, cli.quick, &[])?,
            What::Dispatch { cells } => dispatch(&p, cli.quick, cells)?,
            _ => {}
        }
        if matches!(what, What::All | What::Timers) {
            timers(&p, cli.quick)?;
        }
        if matches!(what, What::All | What::Memory) {
            memory(&p, cli.quick)?;
        }
        if matches!(what, What::All | What::Sim) {
            simulator(cli.quick);
        }
        if what == What::All {
            parse_bench()?;
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("evbench: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short runs get more rounds, long ones the minimum, and a warm-up round that measured
    /// nothing the most.
    #[test]
    fn rounds_fit_the_pass_budget() {
        assert_eq!(rounds_for(40_000.0, 25, 200), 200);
        assert_eq!(rounds_for(60_000.0, 25, 200), 134);
        assert_eq!(rounds_for(1_000_000.0, 25, 200), 25);
        assert_eq!(rounds_for(0.0, 25, 200), 200);
        assert_eq!(rounds_for(f64::NAN, 25, 200), 200);
        assert_eq!(rounds_for(60_000.0, 3, 3), 3);
    }

    #[test]
    fn round_orders_are_fixed_shuffles_that_vary_each_program_s_predecessor() {
        let n = 17;
        let mut predecessors = vec![std::collections::BTreeSet::new(); n];
        for round in 0..50 {
            let order = round_order(n, 2, 1, round);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
            assert_eq!(
                order,
                round_order(n, 2, 1, round),
                "the same seed, the same order"
            );
            for w in order.windows(2) {
                predecessors[w[1]].insert(w[0]);
            }
        }
        assert_ne!(round_order(n, 2, 1, 0), round_order(n, 2, 2, 0));
        for (i, p) in predecessors.iter().enumerate() {
            assert!(p.len() >= 8, "program {i} followed only {p:?} in 50 rounds");
        }
    }

    #[test]
    fn verdicts_need_the_whole_range_clear_of_one_and_of_the_control() {
        let s = |min, max| Spread {
            median: (min + max) / 2.0,
            min,
            max,
        };
        assert_eq!(s(0.95, 0.99).verdict(3, None), "faster");
        assert_eq!(s(1.01, 1.05).verdict(3, None), "slower");
        assert_eq!(s(0.99, 1.01).verdict(3, None), "within noise");
        assert_eq!(s(0.95, 0.99).verdict(1, None), "one pass: no verdict");
        // identical programs spread over 0.97–1.02 in this cell, that is over 0.97–1.031 with
        // the reference and the copy swapped: 0.98 or 1.03 decides nothing
        let control = Some(s(0.97, 1.02));
        assert_eq!(s(0.96, 0.98).verdict(3, control), "within A/A noise");
        assert_eq!(s(1.01, 1.05).verdict(3, control), "within A/A noise");
        assert_eq!(s(1.03, 1.10).verdict(3, control), "within A/A noise");
        assert_eq!(s(0.90, 0.96).verdict(3, control), "faster");
        assert_eq!(s(1.04, 1.10).verdict(3, control), "slower");
        assert_eq!(s(0.99, 1.01).verdict(3, control), "within noise");
        // a control on one side of 1.0 bounds the other side too (run 14, poll at n=9000 a=1:
        // the control 0.47–1.00, evloop 1.01–1.07)
        let one_sided = Some(s(0.47, 1.00));
        assert_eq!(s(1.01, 1.07).verdict(3, one_sided), "within A/A noise");
        assert_eq!(s(2.2, 2.5).verdict(3, one_sided), "slower");
    }
}
