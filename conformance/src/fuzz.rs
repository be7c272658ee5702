//! `evconform fuzz`: differential property testing against real libevent.
//!
//! Case `K` of seed `S` is the scenario [`evloop_scenario::strategies::scenario`] draws from a
//! ChaCha RNG seeded with a hash of `(S, K)`, so `--seed S --case K` replays exactly that case
//! whatever `--cases` and `--jobs` were. Each case runs on the libevent player (compiled once
//! per run) with the method each chosen backend is compared with (epoll, poll, select; mio and
//! sim compare with epoll, as in `check`), and on the chosen evloop backends; the traces are
//! compared by [`crate::compare::compare`], i.e. exactly except for NONDETERMINISM.md's rules.
//!
//! On a divergence the case is shrunk — first with proptest's own shrinking of the drawn
//! program, then by deleting single statements and items from the AST — to the smallest
//! scenario that still shows the same first difference (same backend, same kinds of the first
//! differing libevent and evloop lines), which is printed, saved as a regression scenario and
//! reported with the command that replays it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use evloop_scenario::strategies::{self, Config};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};

use crate::check::{self, Loaded, Runner};
use crate::compare::{self, Mismatch};
use crate::evloop_runner::{EvloopRunner, IsolatedRunner, ISOLATED_BACKENDS};
use crate::ir;
use crate::player::Player;
use crate::scenario::{self, Item, Scenario};
use evloop_sim::shard::Shard;
use evloop_sim::TraceSummary;

/// What `evconform fuzz` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of cases (ignored with `case`).
    pub cases: u64,
    /// The run's seed.
    pub seed: u64,
    /// Only this case (replay).
    pub case: Option<u64>,
    /// evloop backends to compare with libevent.
    pub backends: Vec<String>,
    /// Worker threads.
    pub jobs: usize,
    /// Where diverging cases are saved as scenarios.
    pub save: Option<PathBuf>,
    /// Which feature groups the generator mixes.
    pub config: Config,
    /// Keep going after a divergence (report every one) instead of stopping at the first.
    pub keep_going: bool,
    /// Shrink diverging cases.
    pub shrink: bool,
    /// Print the progress bar (stderr).
    pub progress: bool,
    /// A reactor invariant to break on purpose (`early-timers`, `priority-inversion`; needs the
    /// cargo feature `test-faults`).
    pub core_fault: Option<String>,
    /// An `evconform` executable to run evloop's real backends in, each run in a child process
    /// numbered as the player is ([`IsolatedRunner`], [`ISOLATED_BACKENDS`]): select's traces
    /// are then compared exactly, and descriptor reuse is the player's. Without it they run in
    /// this process, and select is compared with NONDETERMINISM.md's select rules (§1, §2).
    pub isolate: Option<PathBuf>,
}

/// What a case runs on besides evloop in this process: libevent's player, and the isolated
/// runner of evloop's real backends.
struct Sides {
    player: Player,
    isolated: Option<IsolatedRunner>,
}

/// The reactor faults `--core-fault` knows.
pub const CORE_FAULTS: &[&str] = &["early-timers", "priority-inversion"];

/// Applies `--core-fault` to every following evloop run of this process.
pub fn apply_core_fault(name: Option<&str>) -> Result<(), String> {
    if let Some(n) = name {
        if !CORE_FAULTS.contains(&n) {
            return Err(format!(
                "unknown --core-fault '{n}' (known: {})",
                CORE_FAULTS.join(", ")
            ));
        }
    }
    #[cfg(feature = "test-faults")]
    {
        use std::time::Duration;
        evloop_scenario::runner::set_core_fault(match name {
            Some("early-timers") => Some(evloop::CoreFault::EarlyTimers(Duration::from_millis(1))),
            Some(_) => Some(evloop::CoreFault::PriorityInversion),
            None => None,
        });
        Ok(())
    }
    #[cfg(not(feature = "test-faults"))]
    match name {
        Some(_) => Err("--core-fault needs a build with `--features test-faults` (cargo run --release -p evloop-conformance --features test-faults -- fuzz …)".into()),
        None => Ok(()),
    }
}

/// A case that diverged, shrunk.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The case index.
    pub case: u64,
    /// The evloop backend.
    pub backend: String,
    /// The libevent backend it was compared with.
    pub libevent: String,
    /// The smallest scenario found.
    pub scenario: Scenario,
    /// How the traces differ (a comparison mismatch or a run error).
    pub detail: String,
    /// The short signature that shrinking preserved.
    pub signature: String,
    /// Scenario runs spent shrinking.
    pub shrink_runs: usize,
    /// Where it was saved.
    pub saved: Option<PathBuf>,
}

/// What a fuzz run found.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Cases run to the end.
    pub cases: u64,
    /// Comparisons made (case × backend).
    pub comparisons: u64,
    /// Cases where libevent itself failed (the runaway guard, a crash): skipped.
    pub libevent_errors: u64,
    /// The first libevent failure, for the summary.
    pub first_libevent_error: Option<String>,
    /// Cases whose difference did not repeat when the case ran again (libevent and evloop):
    /// skipped. TCP over loopback can lag behind `connect(2)` on a loaded machine (either
    /// side); evloop's select backend run in-process (without `Options::isolate`) scans in its
    /// own descriptor numbers, which other worker threads' descriptors shift.
    pub unrepeated: u64,
    /// The cases counted in `unrepeated`.
    pub nondeterministic_cases: Vec<String>,
    /// Select comparisons that agreed up to a select() window and differed in or after it
    /// (NONDETERMINISM.md §2: not a divergence, counted).
    pub select_window_cut: u64,
    /// Divergences, shrunk.
    pub divergences: Vec<Divergence>,
    /// Wall-clock seconds (for cases/s; 0 when unknown).
    pub seconds: f64,
    /// Every case run (libevent failures and unrepeated differences included), in completion
    /// order: its index, the hash and length of its libevent traces, and whether a confirmed
    /// divergence failed it (for `--report`).
    pub per_case: Vec<(u64, TraceSummary, bool)>,
    /// Every case with a confirmed divergence (unshrunk), in case order: its index and its
    /// first difference's backend, signature and detail.
    pub failing: Vec<FailingCase>,
}

/// A case with a confirmed divergence, before shrinking.
#[derive(Clone, Debug)]
pub struct FailingCase {
    /// The case index.
    pub case: u64,
    /// The evloop backend of its first difference.
    pub backend: String,
    /// The difference's signature.
    pub signature: String,
    /// How the traces differ.
    pub detail: String,
}

/// FNV-1a of `parts`, and their line count: the case's "trace hash" in reports.
fn trace_of<'a>(parts: impl IntoIterator<Item = &'a str>) -> TraceSummary {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut lines = 0usize;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        lines += p.lines().count();
    }
    TraceSummary { hash: h, lines }
}

/// A raw (unshrunk) difference of one case on one backend.
#[derive(Clone, Debug)]
struct Diff {
    backend: String,
    libevent: String,
    signature: String,
    detail: String,
}

/// The 32-byte RNG seed of case `k` of run `seed` (splitmix64 stream).
pub fn case_seed(seed: u64, k: u64) -> [u8; 32] {
    let mut x = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed_f022;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    out
}

fn runner_for(seed: u64, k: u64) -> TestRunner {
    TestRunner::new_with_rng(
        PtConfig {
            failure_persistence: None,
            ..PtConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &case_seed(seed, k)),
    )
}

/// The scenario of case `k` of run `seed` under `cfg`.
pub fn case_scenario(cfg: &Config, seed: u64, k: u64) -> Result<Scenario, String> {
    let mut runner = runner_for(seed, k);
    let tree = strategies::scenario(cfg.clone())
        .new_tree(&mut runner)
        .map_err(|e| format!("generating case {k}: {e}"))?;
    Ok(tree.current())
}

fn loaded(sc: &Scenario, name: &str) -> Result<Loaded, String> {
    scenario::validate(name, sc).map_err(|e| e.to_string())?;
    Ok(Loaded {
        name: name.to_string(),
        path: PathBuf::from(format!("{name}.scn")),
        scenario: sc.clone(),
        ir: ir::lower(sc),
    })
}

/// Runs an evloop backend, turning a panic into an error (the library must never panic).
/// (The runner itself runs real backends one at a time: they share the process's signals.)
fn run_evloop(l: &Loaded, backend: &str) -> Result<String, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| EvloopRunner.run(l, backend))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "?".into());
            Err(format!("evloop panicked: {msg}"))
        }
    }
}

fn first_kind(line: Option<&(usize, String)>) -> String {
    match line {
        None => "<end>".into(),
        Some((_, l)) => {
            let mut w = l.split(' ').skip(1);
            match w.next() {
                Some("input") => format!("input {}", w.next().unwrap_or("")),
                Some(k) => k.to_string(),
                None => l.clone(),
            }
        }
    }
}

fn signature(backend: &str, m: &Mismatch) -> String {
    format!(
        "{backend}: libevent `{}` vs evloop `{}`",
        first_kind(m.expected.get(m.common)),
        first_kind(m.actual.get(m.common))
    )
}

/// What happened to one scenario.
enum Outcome {
    /// Every backend agreed; the number of select comparisons that agreed only up to a
    /// select() window (NONDETERMINISM.md §2).
    Agree(u64),
    /// libevent failed; nothing to compare.
    LibeventError(String),
    /// Differences, per backend (in backend order).
    Differ(Vec<Diff>),
}

/// Runs `sc` on libevent and on `backends`, compares.
fn run_one(sides: &Sides, sc: &Scenario, backends: &[String]) -> Result<Outcome, String> {
    run_one_traced(sides, sc, backends).map(|(o, _)| o)
}

/// [`run_one`], with the hash of the libevent traces (or of libevent's error).
fn run_one_traced(
    sides: &Sides,
    sc: &Scenario,
    backends: &[String],
) -> Result<(Outcome, TraceSummary), String> {
    let l = loaded(sc, "fuzz")?;
    let ir_text = l.ir.to_text();
    let methods: BTreeSet<String> = backends.iter().map(|b| check::fixture_backend(b)).collect();
    let mut lib = Vec::new();
    for m in &methods {
        let method = check::libevent_method(m).unwrap_or("epoll");
        match sides.player.run(method, &ir_text) {
            Ok(t) => lib.push((m.clone(), t)),
            Err(e) => {
                let t = trace_of([m.as_str(), e.as_str()]);
                return Ok((Outcome::LibeventError(e), t));
            }
        }
    }
    let mut diffs = Vec::new();
    let mut cut = 0;
    for b in backends {
        let fx = check::fixture_backend(b);
        let expected = &lib
            .iter()
            .find(|(m, _)| *m == fx)
            .ok_or("no libevent trace")?
            .1;
        let isolated = sides
            .isolated
            .as_ref()
            .filter(|_| ISOLATED_BACKENDS.contains(&b.as_str()));
        let run = match isolated {
            Some(r) => r.run_ir(&ir_text, b),
            None => run_evloop(&l, b),
        };
        match run {
            Ok(actual) => {
                let cmp = if isolated.is_some() {
                    compare::compare_strict(expected, &actual)
                } else {
                    compare::compare(expected, &actual)
                };
                if let Err(m) = cmp {
                    if isolated.is_none() && after_select_window(expected, &m) {
                        cut += 1;
                        continue;
                    }
                    diffs.push(Diff {
                        backend: b.clone(),
                        libevent: fx.clone(),
                        signature: signature(b, &m),
                        detail: format!("{m}\n   (- {fx}, + {b})"),
                    });
                }
            }
            Err(e) => diffs.push(Diff {
                backend: b.clone(),
                libevent: fx.clone(),
                signature: format!("{b}: run error {}", e.lines().next().unwrap_or("")),
                detail: e,
            }),
        }
    }
    let trace = trace_of(lib.iter().flat_map(|(m, t)| [m.as_str(), t.as_str()]));
    Ok((
        if diffs.is_empty() {
            Outcome::Agree(cut)
        } else {
            Outcome::Differ(diffs)
        },
        trace,
    ))
}

/// NONDETERMINISM.md §2: in a select fixture, a difference at or after the first select()
/// window of several descriptors cannot be told apart from libevent's scan order (which
/// depends on the player process's descriptor numbers), unless the scenario was written to
/// keep the callbacks of the window independent (the corpus rule of §1), which a generated
/// scenario is not.
fn after_select_window(expected: &str, m: &Mismatch) -> bool {
    match expected.lines().position(|l| l.starts_with("~window ")) {
        Some(i) => m.line > i,
        None => false,
    }
}

/// True if `sc` still shows the difference `sig` on `backend`.
fn still_fails(sides: &Sides, sc: &Scenario, backend: &str, sig: &str) -> Option<Diff> {
    if loaded(sc, "fuzz").is_err() {
        return None;
    }
    match run_one(sides, sc, &[backend.to_string()]) {
        Ok(Outcome::Differ(d)) => d.into_iter().find(|d| d.signature == sig),
        _ => None,
    }
}

/// Shrinking budget: scenario runs (each runs libevent once and evloop once).
const SHRINK_RUNS: usize = 600;

/// Every scenario with one statement or one item removed (largest parts first).
fn deletions(sc: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, it) in sc.items.iter().enumerate() {
        if !matches!(it, Item::Main(_)) {
            let mut s = sc.clone();
            s.items.remove(i);
            out.push(s);
        }
    }
    for (i, it) in sc.items.iter().enumerate() {
        let n = match it {
            Item::On(_, b) | Item::OnCallback(_, _, b) | Item::At(_, b) | Item::Main(b) => b.len(),
            _ => 0,
        };
        for j in 0..n {
            let mut s = sc.clone();
            if let Item::On(_, b) | Item::OnCallback(_, _, b) | Item::At(_, b) | Item::Main(b) =
                &mut s.items[i]
            {
                b.remove(j);
            }
            out.push(s);
        }
    }
    out
}

/// Shrinks a diverging case; returns the smallest scenario, its difference and the runs spent.
fn shrink(
    sides: &Sides,
    cfg: &Config,
    seed: u64,
    k: u64,
    first: &Diff,
) -> Result<(Scenario, Diff, usize), String> {
    let mut runner = runner_for(seed, k);
    let mut tree = strategies::scenario(cfg.clone())
        .new_tree(&mut runner)
        .map_err(|e| e.to_string())?;
    let mut best = tree.current();
    let mut best_diff = first.clone();
    let mut runs = 0usize;
    // proptest's shrinking of the drawn numbers
    if tree.simplify() {
        loop {
            if runs >= SHRINK_RUNS / 2 {
                break;
            }
            runs += 1;
            let cur = tree.current();
            let more = match still_fails(sides, &cur, &first.backend, &first.signature) {
                Some(d) => {
                    best = cur;
                    best_diff = d;
                    tree.simplify()
                }
                None => tree.complicate(),
            };
            if !more {
                break;
            }
        }
    }
    // then delete statements and items until no single deletion keeps the difference
    'outer: while runs < SHRINK_RUNS {
        for cand in deletions(&best) {
            if runs >= SHRINK_RUNS {
                break 'outer;
            }
            if loaded(&cand, "fuzz").is_err() {
                continue;
            }
            runs += 1;
            if let Some(d) = still_fails(sides, &cand, &first.backend, &first.signature) {
                best = cand;
                best_diff = d;
                continue 'outer;
            }
        }
        break;
    }
    Ok((best, best_diff, runs))
}

/// The replay command for case `k`.
pub fn replay_command(
    seed: u64,
    k: u64,
    backend: &str,
    groups: &str,
    core_fault: Option<&str>,
) -> String {
    let mut s = match core_fault {
        Some(f) => format!("cargo run --release -p evloop-conformance --features test-faults -- fuzz --core-fault {f}"),
        None => "cargo run --release -p evloop-conformance -- fuzz".to_string(),
    };
    let _ = write!(s, " --seed {seed} --case {k} --backend {backend}");
    if groups != "all" {
        let _ = write!(s, " --features {groups}");
    }
    s
}

/// The text of a saved regression scenario.
pub fn regression_text(d: &Divergence, seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Found by `evconform fuzz --seed {seed} --case {}` (shrunk): {}.",
        d.case, d.signature
    );
    out.push_str(
        "# TODO: say what libevent does here and why (SCENARIOS.md, \"Adding a scenario\").\n",
    );
    out.push_str(&scenario::print(&d.scenario));
    out
}

fn save(dir: &Path, d: &Divergence, seed: u64) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = dir.join(format!("fuzz_{seed}_{}_{}.scn", d.case, d.backend));
    std::fs::write(&p, regression_text(d, seed)).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

/// Wall-clock seconds since an arbitrary origin, for the progress line only (never used by
/// the reactor, the runner or the comparison).
#[allow(clippy::disallowed_methods)]
fn wall() -> f64 {
    use std::sync::OnceLock;
    static T0: OnceLock<std::time::Instant> = OnceLock::new();
    T0.get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn progress(done: u64, total: u64, divs: usize, secs: f64) {
    let width = 30usize;
    let filled = if total == 0 {
        width
    } else {
        (done as usize * width / total as usize).min(width)
    };
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {done}/{total} cases  {rate:.1} cases/s  {divs} divergence(s) ",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    let _ = err.flush();
}

enum Msg {
    Done(
        u64,
        Result<(Outcome, TraceSummary), String>,
        Option<Vec<Diff>>,
    ),
}

/// Runs the fuzzer. `groups` is the `--features` text (for the replay command).
pub fn fuzz(opts: &Options, groups: &str, out: &mut dyn std::io::Write) -> Result<Summary, String> {
    fuzz_shard(opts, Shard::WHOLE, groups, out)
}

/// [`fuzz`] on one shard of the cases `0..cases`: the cases `k` with `k % N == K - 1`
/// ([`Shard`]). Case `k` is the same program whichever shard runs it. (`opts.case` runs that
/// one case, whatever the shard.)
pub fn fuzz_shard(
    opts: &Options,
    shard: Shard,
    groups: &str,
    out: &mut dyn std::io::Write,
) -> Result<Summary, String> {
    apply_core_fault(opts.core_fault.as_deref())?;
    let player = Sides {
        player: Player::build()?,
        isolated: opts
            .isolate
            .clone()
            .map(|exe| IsolatedRunner::new(exe).with_core_fault(opts.core_fault.clone())),
    };
    let t0 = wall();
    let (range, shard) = match opts.case {
        Some(k) => (k..k.saturating_add(1), Shard::WHOLE),
        None => (0..opts.cases, shard),
    };
    let count = shard.len(&range);
    // `next` counts the shard's cases (0, 1, …), not the case indices.
    let next = AtomicU64::new(0);
    let range = &range;
    let stop = AtomicBool::new(false);
    let mut sum = Summary::default();
    let (tx, rx) = mpsc::channel::<Msg>();
    let jobs = opts.jobs.max(1);
    let mut pending: Vec<(u64, Vec<Diff>)> = Vec::new();
    let mut gen_error: Option<String> = None;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (player, next, stop) = (&player, &next, &stop);
            s.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    break;
                }
                let k = shard.nth(range, i);
                let res = case_scenario(&opts.config, opts.seed, k)
                    .and_then(|sc| run_one_traced(player, &sc, &opts.backends));
                // a difference is confirmed by a second run of both sides (see `unrepeated`)
                let confirm = match &res {
                    Ok((Outcome::Differ(d), _)) => case_scenario(&opts.config, opts.seed, k)
                        .ok()
                        .map(|sc| match run_one(player, &sc, &opts.backends) {
                            Ok(Outcome::Differ(d2)) => d
                                .iter()
                                .filter(|x| {
                                    d2.iter()
                                        .any(|y| y.signature == x.signature && y.detail == x.detail)
                                })
                                .cloned()
                                .collect(),
                            _ => Vec::new(),
                        }),
                    _ => None,
                };
                if tx.send(Msg::Done(k, res, confirm)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        for Msg::Done(k, res, confirm) in rx.iter() {
            done += 1;
            if let Ok((o, t)) = &res {
                let failed = matches!(o, Outcome::Differ(_))
                    && confirm.as_ref().is_some_and(|c| !c.is_empty());
                sum.per_case.push((k, *t, failed));
            }
            match res.map(|(o, _)| o) {
                Err(e) => {
                    gen_error.get_or_insert(format!("case {k}: {e}"));
                    stop.store(true, Ordering::SeqCst);
                }
                Ok(Outcome::Agree(cut)) => {
                    sum.select_window_cut += cut;
                    sum.cases += 1;
                    sum.comparisons += opts.backends.len() as u64;
                }
                Ok(Outcome::LibeventError(e)) => {
                    sum.libevent_errors += 1;
                    if sum.first_libevent_error.is_none() {
                        sum.first_libevent_error = Some(format!("case {k}: {e}"));
                    }
                }
                Ok(Outcome::Differ(first)) => {
                    sum.cases += 1;
                    sum.comparisons += opts.backends.len() as u64;
                    let confirmed = confirm.unwrap_or_default();
                    if confirmed.is_empty() {
                        sum.unrepeated += 1;
                        let backends: Vec<&str> =
                            first.iter().map(|d| d.backend.as_str()).collect();
                        sum.nondeterministic_cases
                            .push(format!("{k} ({})", backends.join(" ")));
                    } else {
                        let d = &confirmed[0];
                        sum.failing.push(FailingCase {
                            case: k,
                            backend: d.backend.clone(),
                            signature: d.signature.clone(),
                            detail: d.detail.clone(),
                        });
                        pending.push((k, confirmed));
                        if !opts.keep_going {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
            if opts.progress && (done % (count / 200).max(1) == 0 || done == count) {
                progress(done, count, pending.len(), wall() - t0);
            }
        }
    });
    if opts.progress {
        let _ = writeln!(std::io::stderr());
    }
    if let Some(e) = gen_error {
        return Err(e);
    }
    pending.sort_by_key(|(k, _)| *k);
    sum.failing.sort_by_key(|f| f.case);
    if !opts.keep_going {
        pending.truncate(1);
    }
    // shrink: one per signature (the first case showing it)
    let mut seen = BTreeSet::new();
    for (k, diffs) in pending {
        for d in diffs {
            if !seen.insert(d.signature.clone()) {
                continue;
            }
            let (sc, dd, runs) = if opts.shrink {
                shrink(&player, &opts.config, opts.seed, k, &d)?
            } else {
                (case_scenario(&opts.config, opts.seed, k)?, d.clone(), 0)
            };
            let mut div = Divergence {
                case: k,
                backend: dd.backend.clone(),
                libevent: dd.libevent.clone(),
                scenario: sc,
                detail: dd.detail.clone(),
                signature: d.signature.clone(),
                shrink_runs: runs,
                saved: None,
            };
            if let Some(dir) = &opts.save {
                div.saved = Some(save(dir, &div, opts.seed)?);
            }
            report(out, &div, opts, groups);
            sum.divergences.push(div);
            if !opts.keep_going {
                break;
            }
        }
        if !opts.keep_going && !sum.divergences.is_empty() {
            break;
        }
    }
    sum.seconds = wall() - t0;
    Ok(sum)
}

fn report(out: &mut dyn std::io::Write, d: &Divergence, opts: &Options, groups: &str) {
    let seed = opts.seed;
    let _ = writeln!(
        out,
        "\nDIVERGENCE: case {} of seed {seed} on {} (compared with {}), {}",
        d.case, d.backend, d.libevent, d.signature
    );
    let _ = writeln!(
        out,
        "smallest scenario with the same first difference ({} shrink runs):\n",
        d.shrink_runs
    );
    for l in scenario::print(&d.scenario).lines() {
        let _ = writeln!(out, "    {l}");
    }
    let _ = writeln!(out, "\n{}", d.detail);
    if let Some(p) = &d.saved {
        let _ = writeln!(out, "saved as {}", p.display());
    }
    let _ = writeln!(
        out,
        "replay: {}",
        replay_command(seed, d.case, &d.backend, groups, opts.core_fault.as_deref())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_reproducible_and_distinct() {
        let cfg = Config::all();
        let a = case_scenario(&cfg, 7, 3).unwrap();
        assert_eq!(a, case_scenario(&cfg, 7, 3).unwrap());
        assert_ne!(
            scenario::print(&a),
            scenario::print(&case_scenario(&cfg, 7, 4).unwrap())
        );
        assert_ne!(
            scenario::print(&a),
            scenario::print(&case_scenario(&cfg, 8, 3).unwrap())
        );
    }

    #[test]
    fn only_differences_at_or_after_a_select_window_are_cut() {
        let exp = "# evloop-trace v1\n0 loop flags=0\n~window 2\n0 cb a #1 R\n0 cb b #1 W\n~window-end\n0 cb t #1 T\n";
        // a difference before the window is a divergence
        let before = compare::compare(exp, "# evloop-trace v1\n0 loop flags=1\n").unwrap_err();
        assert!(!after_select_window(exp, &before));
        // one after it is not (NONDETERMINISM.md §2)
        let after = compare::compare(
            exp,
            "# evloop-trace v1\n0 loop flags=0\n0 cb a #1 R\n0 cb b #1 W\n0 cb u #1 T\n",
        )
        .unwrap_err();
        assert!(after_select_window(exp, &after));
        // and a trace without windows has no such rule
        let plain = exp.replace("~window 2\n", "").replace("~window-end\n", "");
        let m = compare::compare(
            &plain,
            "# evloop-trace v1\n0 loop flags=0\n0 cb b #1 W\n0 cb a #1 R\n0 cb t #1 T\n",
        )
        .unwrap_err();
        assert!(!after_select_window(&plain, &m));
    }

    #[test]
    fn deletions_remove_one_thing_each() {
        let sc = scenario::parse(
            "t.scn",
            "event t timer\non t {\n  print counts\n}\nmain {\n  add t 1ms\n  loop\n}\n",
        )
        .unwrap();
        let d = deletions(&sc);
        // two items besides main, one statement in `on t`, two in main
        assert_eq!(d.len(), 5);
        assert!(d.iter().all(|s| s != &sc));
    }
}
