//! Running targets: once, twice (the determinism check), over many seeds in parallel
//! (exploring), and shrinking a failing run's faults; and the `evsim` command line.
//!
//! [`cli_main`] is the whole of `evsim`; another crate can build its own `evsim` with more
//! targets (the conformance scenarios) by calling it with them. Explore runs each seed in its
//! own `Sim` on one of `--jobs` threads; only the progress display and the seeds-per-second
//! figure read the wall clock, through [`wall_clock`], the one place allowed to.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::faults::Decision;
use crate::report::{self, Header, Totals};
use crate::shard::{Shard, ShardArgs};
use crate::targets::{
    self, check_core_fault, command_for, RunOptions, RunReport, Target, MAX_CLIENTS,
};
use crate::trace::{describe_difference, TraceSummary};

/// The wall clock, for throughput figures and the progress bar only: it never reaches a
/// simulation, whose only clock is virtual.
#[allow(clippy::disallowed_methods)] // the one allowed wall-clock read: progress and seeds/s
pub fn wall_clock() -> Instant {
    Instant::now()
}

/// The result of running a seed twice.
#[derive(Debug)]
pub struct Determinism {
    /// The first run.
    pub first: RunReport,
    /// Where the two runs part, if they do.
    pub difference: Option<String>,
}

/// Runs `target` twice with the same options and compares the traces line by line.
pub fn check_determinism(target: &dyn Target, opts: &RunOptions) -> Determinism {
    let a = target.run(opts);
    let b = target.run(opts);
    let difference =
        if a.trace.summary() == b.trace.summary() && a.trace.first_difference(&b.trace).is_none() {
            None
        } else if a.trace.keeps_text() {
            describe_difference(&a.trace, &b.trace)
        } else {
            // Find the line with the text kept.
            let mut o = opts.clone();
            o.keep_trace = true;
            let a2 = target.run(&o);
            let b2 = target.run(&o);
            Some(
                describe_difference(&a2.trace, &b2.trace).unwrap_or_else(|| {
                    format!(
                        "the hashes differed ({} vs {}) but not with the text kept",
                        a.trace.summary(),
                        b.trace.summary()
                    )
                }),
            )
        };
    Determinism {
        first: a,
        difference,
    }
}

/// One explored seed.
#[derive(Debug)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Its invariant violations (and a determinism failure, if checked).
    pub failures: Vec<String>,
    /// Callbacks run.
    pub callbacks: u64,
    /// The trace's hash and length (of the first run, with `--check-determinism`).
    pub trace: TraceSummary,
}

/// Runs seeds `seeds` of `target` on `jobs` threads; `each` sees every result as it comes
/// (in completion order). Returns the failing seeds, sorted.
///
/// ```
/// use evloop_sim::explore::explore;
/// use evloop_sim::targets::{programs::Programs, RunOptions};
///
/// let mut callbacks = 0;
/// // 20 random event programs under the lossy profile, each run twice (determinism).
/// let failed = explore(&Programs, &RunOptions::new(0, "lossy"), 0..20, 2, true, |r| {
///     callbacks += r.callbacks
/// });
/// assert!(failed.is_empty());
/// assert!(callbacks > 0);
/// ```
pub fn explore(
    target: &dyn Target,
    base: &RunOptions,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    determinism: bool,
    each: impl FnMut(&SeedResult),
) -> Vec<SeedResult> {
    explore_shard(target, base, seeds, Shard::WHOLE, jobs, determinism, each)
}

/// [`explore`] on one shard of `seeds` ([`Shard`]: the seeds `s` with
/// `(s - seeds.start) % N == K - 1`). A seed's run is the same whichever shard runs it.
///
/// ```
/// use evloop_sim::explore::explore_shard;
/// use evloop_sim::shard::Shard;
/// use evloop_sim::targets::{programs::Programs, RunOptions};
///
/// let mut seen = Vec::new();
/// let shard = Shard::parse("2/3").unwrap();
/// explore_shard(&Programs, &RunOptions::new(0, "none"), 0..10, shard, 1, false, |r| {
///     seen.push(r.seed)
/// });
/// seen.sort();
/// assert_eq!(seen, [1, 4, 7]);
/// ```
pub fn explore_shard(
    target: &dyn Target,
    base: &RunOptions,
    seeds: std::ops::Range<u64>,
    shard: Shard,
    jobs: usize,
    determinism: bool,
    mut each: impl FnMut(&SeedResult),
) -> Vec<SeedResult> {
    // `next` counts the shard's seeds (0, 1, …), not the seeds themselves.
    let next = AtomicU64::new(0);
    let count = shard.len(&seeds);
    // Results travel in small batches: one wake-up of the collecting thread per batch, not
    // per seed (a seed of hello-world takes about 100 µs).
    let (tx, rx) = mpsc::channel::<Vec<SeedResult>>();
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let tx = tx.clone();
            let next = &next;
            let seeds = &seeds;
            scope.spawn(move || {
                let mut batch = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let seed = shard.nth(seeds, i);
                    let mut opts = base.clone();
                    opts.seed = seed;
                    let (report, diff) = if determinism {
                        let d = check_determinism(target, &opts);
                        (d.first, d.difference)
                    } else {
                        (target.run(&opts), None)
                    };
                    let mut failures = report.failures;
                    if let Some(d) = diff {
                        failures.push(format!("nondeterministic: {d}"));
                    }
                    batch.push(SeedResult {
                        seed,
                        failures,
                        callbacks: report.stats.callbacks,
                        trace: report.trace.summary(),
                    });
                    if batch.len() >= 16 && tx.send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                }
                let _ = tx.send(batch);
            });
        }
        drop(tx);
        for batch in rx {
            for r in batch {
                each(&r);
                if !r.failures.is_empty() {
                    failed.push(r);
                }
            }
        }
    });
    failed.sort_by_key(|r| r.seed);
    failed
}

/// The result of shrinking.
#[derive(Debug)]
pub struct Shrunk {
    /// The faults of the original failing run.
    pub original: Vec<Decision>,
    /// A minimal list of faults with which the run still fails (1-minimal: dropping any one
    /// makes it pass).
    pub minimal: Vec<Decision>,
    /// The failing run with only the minimal faults.
    pub report: RunReport,
    /// The options that reproduce it (`only` set).
    pub options: RunOptions,
    /// Runs performed.
    pub runs: usize,
}

/// Minimises the faults of a failing run (delta debugging over decision ordinals) while the
/// run keeps failing *the same way*: a candidate's first failure must be of the original first
/// failure's class ([`RunReport::signature`], [`crate::targets::failure_class`]). Returns
/// `None` if the run does not fail.
///
/// ```
/// use evloop_sim::explore::shrink;
/// use evloop_sim::targets::{hello_world::HelloWorld, RunOptions};
/// // hello-world passes under chaos, so there is nothing to shrink.
/// assert!(shrink(&HelloWorld, &RunOptions::new(3, "chaos"), 50).is_none());
/// ```
pub fn shrink(target: &dyn Target, opts: &RunOptions, max_runs: usize) -> Option<Shrunk> {
    let first = target.run(opts);
    let sig = first.signature()?;
    let same = move |r: &RunReport| r.signature().as_ref() == Some(&sig);
    shrink_from(target, opts, first, max_runs, same)
}

/// [`shrink`] with another notion of "still failing": `keep(report)` says whether a candidate
/// run still shows the failure (e.g. `|r| !r.ok()` accepts any failure).
pub fn shrink_with(
    target: &dyn Target,
    opts: &RunOptions,
    max_runs: usize,
    keep: impl Fn(&RunReport) -> bool,
) -> Option<Shrunk> {
    let first = target.run(opts);
    if !keep(&first) {
        return None;
    }
    shrink_from(target, opts, first, max_runs, keep)
}

fn shrink_from(
    target: &dyn Target,
    opts: &RunOptions,
    first: RunReport,
    max_runs: usize,
    keep: impl Fn(&RunReport) -> bool,
) -> Option<Shrunk> {
    let original = first.decisions.clone();
    let mut runs = 1;
    let mut best_opts = opts.clone();
    let mut best = first;
    let mut current: Vec<u64> = best.decisions.iter().map(|d| d.ordinal).collect();
    let attempt = |set: &[u64], runs: &mut usize| -> Option<(RunOptions, RunReport)> {
        *runs += 1;
        let mut o = opts.clone();
        o.only = Some(set.iter().copied().collect::<BTreeSet<u64>>());
        let r = target.run(&o);
        keep(&r).then_some((o, r))
    };
    // No fault at all?
    if let Some((o, r)) = attempt(&[], &mut runs) {
        return Some(Shrunk {
            original,
            minimal: Vec::new(),
            report: r,
            options: o,
            runs,
        });
    }
    let mut n = 2usize;
    while current.len() >= 2 && runs < max_runs {
        let chunk = current.len().div_ceil(n);
        let mut reduced = false;
        for start in (0..current.len()).step_by(chunk) {
            if runs >= max_runs {
                break;
            }
            let end = (start + chunk).min(current.len());
            let complement: Vec<u64> = current[..start]
                .iter()
                .chain(&current[end..])
                .copied()
                .collect();
            if let Some((o, r)) = attempt(&complement, &mut runs) {
                current = r.decisions.iter().map(|d| d.ordinal).collect();
                best_opts = o;
                best = r;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    // Express the result as the faults that actually happened in the best run.
    let minimal = best.decisions.clone();
    best_opts.only = Some(minimal.iter().map(|d| d.ordinal).collect());
    Some(Shrunk {
        original,
        minimal,
        report: best,
        options: best_opts,
        runs,
    })
}

// --------------------------------------------------------------------------------------------
// The command line

#[derive(Parser)]
#[command(
    name = "evsim",
    about = "Deterministic simulation of evloop programs",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The most threads `--jobs` may ask for.
const MAX_JOBS: u64 = 1024;

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed and print its trace.
    Run(RunArgs),
    /// Run a range of seeds in parallel and report the failing ones.
    Explore(ExploreArgs),
    /// Minimise a failing seed's faults, keeping its failure, and print the minimal list.
    Shrink(ShrinkArgs),
    /// List the targets (with their own options) and the fault profiles.
    List,
    /// Combine the reports of the shards of a run into one; fails if shards are missing,
    /// overlap or disagree.
    Merge(MergeArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// The seed.
    #[arg(long)]
    seed: u64,
    /// Write the trace to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the run as Trace Event Format JSON (Perfetto, chrome://tracing) to FILE.
    #[arg(long, value_name = "FILE")]
    chrome_trace: Option<PathBuf>,
    /// Run twice and compare the traces line by line.
    #[arg(long)]
    check_determinism: bool,
    /// Only these fault decisions may inject (comma-separated ordinals, `-` for none), as
    /// printed by `shrink`.
    #[arg(long, value_name = "LIST")]
    only_faults: Option<String>,
}

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    common: Common,
    /// The seeds, `A..B` (B excluded).
    #[arg(long, value_name = "A..B")]
    seeds: String,
    /// Threads (default: the number of cores; at most 1024).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_JOBS))]
    jobs: Option<u64>,
    /// Run every seed twice and compare the traces.
    #[arg(long)]
    check_determinism: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    shard: ShardArgs,
    /// Write a JSON Lines report: a line per failing seed (with its trace hash and reproduce
    /// command) and a summary line per target (`evsim merge` combines shards' reports).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also write a line for every seed run (its verdict and trace hash) to the report.
    #[arg(long, requires = "report")]
    report_all: bool,
    /// Write JUnit XML (a testcase per failing seed, one for the passing ones) to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct MergeArgs {
    /// The shards' reports (`explore --report FILE`; or `evconform fuzz --report FILE`).
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
    /// Write the merged report (same format, shard 1/1) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write JUnit XML of the merged result to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct ShrinkArgs {
    #[command(flatten)]
    common: Common,
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    /// Give up after this many runs (1 to 1000000).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_runs: u64,
    /// Accept any failure while shrinking, not only the original one's class.
    #[arg(long)]
    any_failure: bool,
}

#[derive(Args, Clone)]
struct Common {
    /// What to run (`evsim list` shows them): a target's name, `scenario:PATH` (one
    /// conformance scenario) or `scenarios:DIR` (each scenario of a directory).
    target: String,
    /// The fault profile.
    #[arg(long, default_value = "none")]
    faults: String,
    /// Simulated clients (targets with clients; 0 to 100000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_CLIENTS as u64))]
    clients: u64,
    /// A target's own option, `NAME=VALUE` (repeatable; `evsim list` shows them).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Break a reactor invariant on purpose (`early-timers`, `priority-inversion`; needs
    /// `--features test-faults`).
    #[arg(long)]
    core_fault: Option<String>,
}

/// What the command line runs with: the targets, and how this program is invoked (for the
/// reproduce lines).
struct Ctx<'a> {
    targets: &'a [Box<dyn Target>],
    /// `None`: the standard `evsim` (printed as a `cargo run` line).
    program: Option<String>,
}

impl Ctx<'_> {
    fn command(&self, target: &dyn Target, opts: &RunOptions) -> String {
        command_for(self.program.as_deref(), target, opts)
    }
}

fn options(c: &Common, target: &dyn Target, seed: u64) -> Result<RunOptions, String> {
    let mut opts = RunOptions::try_new(seed, &c.faults)?;
    check_core_fault(c.core_fault.as_deref())?;
    opts.clients = usize::try_from(c.clients).map_err(|e| format!("--clients: {e}"))?;
    opts.core_fault = c.core_fault.clone();
    for p in &c.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--param {p:?}: expected NAME=VALUE"))?;
        let decl = target
            .params()
            .iter()
            .find(|d| d.name == k)
            .ok_or_else(|| {
                let known: Vec<&str> = target.params().iter().map(|d| d.name).collect();
                if known.is_empty() {
                    format!("--param {k}: {} takes no options", target.name())
                } else {
                    format!(
                        "--param {k}: {} has no such option (known: {})",
                        target.name(),
                        known.join(", ")
                    )
                }
            })?;
        decl.check(v)?;
        opts.params.insert(k.to_owned(), v.to_owned());
    }
    opts.check()?;
    Ok(opts)
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--seeds {s:?}: expected A..B"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|e| format!("--seeds {s:?}: {e}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|e| format!("--seeds {s:?}: {e}"))?;
    if b <= a {
        return Err(format!("--seeds {s:?}: empty range"));
    }
    Ok(a..b)
}

fn parse_only(s: &str) -> Result<BTreeSet<u64>, String> {
    if s.trim() == "-" {
        return Ok(BTreeSet::new());
    }
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse::<u64>()
                .map_err(|e| format!("--only-faults {p:?}: {e}"))
        })
        .collect()
}

fn find<'a>(targets: &'a [Box<dyn Target>], name: &str) -> Result<&'a dyn Target, String> {
    targets
        .iter()
        .find(|t| t.name() == name)
        .map(|t| t.as_ref())
        .ok_or_else(|| {
            let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
            format!("unknown target {name:?} (expected one of {names:?})")
        })
}

/// A target named on the command line: a built-in one, or one made from the name (a
/// conformance scenario).
enum Resolved<'a> {
    Builtin(&'a dyn Target),
    Owned(Box<dyn Target>),
}

impl Resolved<'_> {
    fn get(&self) -> &dyn Target {
        match self {
            Resolved::Builtin(t) => *t,
            Resolved::Owned(t) => t.as_ref(),
        }
    }
}

/// The targets `name` stands for: `scenario:PATH` (one conformance scenario), `scenarios:DIR`
/// (every scenario of a directory), or a target's name.
fn find_all<'a>(targets: &'a [Box<dyn Target>], name: &str) -> Result<Vec<Resolved<'a>>, String> {
    if let Some(r) = targets::scenario::resolve(name) {
        return r.map(|v| v.into_iter().map(Resolved::Owned).collect());
    }
    find(targets, name).map(|t| vec![Resolved::Builtin(t)])
}

/// The one target `name` stands for.
fn find_one<'a>(targets: &'a [Box<dyn Target>], name: &str) -> Result<Resolved<'a>, String> {
    let mut v = find_all(targets, name)?;
    if v.len() != 1 {
        return Err(format!(
            "{name:?} names {} targets; this command takes one (use scenario:PATH)",
            v.len()
        ));
    }
    Ok(v.remove(0))
}

fn print_failures(out: &mut String, r: &RunReport) {
    for f in r.failures.iter().take(20) {
        let _ = writeln!(out, "  FAIL: {f}");
    }
    if r.failures.len() > 20 {
        let _ = writeln!(out, "  … and {} more", r.failures.len() - 20);
    }
}

/// `evsim`: the built-in targets plus `extra` (see the module documentation). The reproduce
/// lines name the running program: the standard `evsim` as a `cargo run` line, any other
/// binary (a custom `evsim` of another crate) by the path it was started with.
pub fn cli_main(extra: Vec<Box<dyn Target>>) -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let standard = std::path::Path::new(&argv0)
        .file_stem()
        .is_some_and(|s| s == "evsim");
    cli_main_as((!standard).then_some(argv0.as_str()), extra)
}

/// [`cli_main`] with the invocation its reproduce lines print: `Some("cargo run --release
/// --example my_evsim --")` for example; `None` for the standard `evsim`.
pub fn cli_main_as(program: Option<&str>, extra: Vec<Box<dyn Target>>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut all = targets::builtin();
    all.extend(extra);
    let ctx = Ctx {
        targets: &all,
        program: program.map(str::to_owned),
    };
    match run_cli(cli, &ctx) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("evsim: {e}");
            ExitCode::from(2)
        }
    }
}

/// `evsim run` on one target; the exit code (0 ok, 1 failed, 3 nondeterministic).
fn run_one(ctx: &Ctx<'_>, target: &dyn Target, a: &RunArgs) -> Result<u8, String> {
    let mut opts = options(&a.common, target, a.seed)?;
    opts.keep_trace = true;
    if let Some(o) = &a.only_faults {
        opts.only = Some(parse_only(o)?);
    }
    let (report, diff) = if a.check_determinism {
        let d = check_determinism(target, &opts);
        (d.first, Some(d.difference))
    } else {
        (target.run(&opts), None)
    };
    let text = report.trace.text().unwrap_or_default();
    match &a.trace {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(text.as_bytes());
        }
    }
    if let Some(path) = &a.chrome_trace {
        let json = crate::chrome::trace_event_json(&report.trace);
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} seed {} faults {}: {} ({}, {} faults injected, ended at {}us, {} callbacks)",
        target.name(),
        a.seed,
        a.common.faults,
        if report.ok() { "ok" } else { "FAILED" },
        report.trace.summary(),
        report.decisions.len(),
        report.end.as_micros(),
        report.stats.callbacks
    );
    print_failures(&mut out, &report);
    let mut code = if report.ok() { 0 } else { 1 };
    match diff {
        Some(None) => {
            let _ = writeln!(
                out,
                "# deterministic: two runs gave the same trace ({})",
                report.trace.summary()
            );
        }
        Some(Some(d)) => {
            let _ = writeln!(out, "# NOT deterministic: {d}");
            code = 3;
        }
        None => {}
    }
    if !report.ok() {
        let _ = writeln!(out, "# reproduce: {}", ctx.command(target, &opts));
    }
    if a.trace.is_some() {
        print!("{out}");
    } else {
        eprint!("{out}");
    }
    Ok(code)
}

/// What `explore` found on one target: the failing seeds' count and the report's lines.
struct Explored {
    failed: usize,
    /// Failure lines (seed order), seed lines (`--report-all`), the summary.
    lines: Vec<serde_json::Value>,
    summary: serde_json::Value,
    failures: Vec<serde_json::Value>,
}

/// What a report says of a target's options (besides the profile and the seed).
fn options_json(a: &ExploreArgs, opts: &RunOptions) -> serde_json::Value {
    serde_json::json!({
        "clients": a.common.clients,
        "params": opts.params,
        "core_fault": opts.core_fault,
        "check_determinism": a.check_determinism,
    })
}

/// `evsim explore` on one target (one shard of the range): prints its failures and its
/// figures; returns them with the report's lines.
fn explore_one(
    ctx: &Ctx<'_>,
    target: &dyn Target,
    a: &ExploreArgs,
    range: std::ops::Range<u64>,
    shard: Shard,
    jobs: usize,
) -> Result<Explored, String> {
    let opts = options(&a.common, target, 0)?;
    let total = shard.len(&range);
    let pb = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} seeds  {per_sec}  failures: {msg}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message("0");
        pb
    };
    let header = Header {
        tool: "evsim".to_owned(),
        target: target.name().to_owned(),
        profile: a.common.faults.clone(),
        options: options_json(a, &opts),
    };
    let start = wall_clock();
    let mut callbacks = 0u64;
    let mut nfail = 0u64;
    let mut digest = 0u64;
    let mut all: Vec<(u64, bool, TraceSummary)> = Vec::new();
    let check = a.check_determinism;
    let failed = explore_shard(target, &opts, range.clone(), shard, jobs, check, |r| {
        callbacks += r.callbacks;
        let bad = !r.failures.is_empty();
        digest ^= report::seed_digest(r.seed, r.trace, bad);
        if a.report_all {
            all.push((r.seed, !bad, r.trace));
        }
        if bad {
            nfail += 1;
            pb.set_message(nfail.to_string());
            let mut o = opts.clone();
            o.seed = r.seed;
            let mut msg = format!("seed {} FAILED: {}", r.seed, r.failures[0]);
            if r.failures.len() > 1 {
                let _ = write!(msg, " (+{} more)", r.failures.len() - 1);
            }
            let _ = write!(msg, "\n  reproduce: {}", ctx.command(target, &o));
            pb.println(msg);
        }
        pb.inc(1);
    });
    pb.finish_and_clear();
    let secs = wall_clock().duration_since(start).as_secs_f64().max(1e-9);
    let part = if shard == Shard::WHOLE {
        String::new()
    } else {
        let mut first: Vec<String> = shard.seeds(&range).take(3).map(|s| s.to_string()).collect();
        if total > 3 {
            first.push("…".to_owned());
        }
        format!(
            " (shard {shard} of {}..{}: seeds {})",
            range.start,
            range.end,
            if first.is_empty() {
                "none".to_owned()
            } else {
                first.join(", ")
            }
        )
    };
    println!(
        "{} seeds{part} of {} (faults {}, {} jobs{}) in {:.2} s: {:.1} seeds/s, {:.0} simulated callbacks/s; {} failed",
        total,
        target.name(),
        a.common.faults,
        jobs,
        if check { ", each run twice" } else { "" },
        secs,
        total as f64 / secs,
        callbacks as f64 / secs,
        failed.len()
    );
    let mut failures = Vec::new();
    for r in &failed {
        let mut o = opts.clone();
        o.seed = r.seed;
        let shown: Vec<&str> = r.failures.iter().take(3).map(String::as_str).collect();
        let more = r.failures.len().saturating_sub(3);
        let more = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        let cmd = ctx.command(target, &o);
        println!("FAILED seed {}: {}{more}", r.seed, shown.join("; "));
        println!("  reproduce: {cmd}");
        failures.push(header.failure(r.seed, &r.failures, r.trace, &cmd));
    }
    all.sort_unstable_by_key(|x| x.0);
    let totals = Totals {
        seeds: range,
        shard,
        run: total,
        failed: failed.len() as u64,
        callbacks,
        seconds: secs,
        jobs: jobs as u64,
        digest,
    };
    let summary = header.summary(&totals);
    let mut lines = failures.clone();
    lines.extend(all.iter().map(|&(seed, ok, t)| header.seed(seed, ok, t)));
    lines.push(summary.clone());
    Ok(Explored {
        failed: failed.len(),
        lines,
        summary,
        failures,
    })
}

/// The shard `explore` runs: `--shard K/N`, `--shard-from-env`, or the whole range.
fn shard_of(a: &ExploreArgs) -> Result<Shard, String> {
    Ok(a.shard.resolve("evsim")?.unwrap_or(Shard::WHOLE))
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `evsim merge`: 0 if the merged run has no failure, 1 if it has, an error otherwise.
fn merge_cmd(a: &MergeArgs) -> Result<ExitCode, String> {
    merge_reports(&a.reports, a.report.as_deref(), a.junit.as_deref())
}

/// `evsim merge` (and `evconform merge`): merges the shards' reports `reports`
/// ([`report::merge`]), prints a line per target and every failure with its reproduce line,
/// writes the merged report to `report` and JUnit XML to `junit`. Returns exit code 0 if the
/// merged run has no failure, 1 if it has; an error if the shards do not merge.
pub fn merge_reports(
    reports: &[PathBuf],
    out_report: Option<&std::path::Path>,
    out_junit: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    let a = (out_report, out_junit);
    let mut texts = Vec::new();
    for p in reports {
        let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        texts.push((p.display().to_string(), t));
    }
    let merged = report::merge(&texts)?;
    let mut failed = 0u64;
    let mut lines = Vec::new();
    let mut junit = Vec::new();
    for m in &merged {
        let s = &m.summary;
        let f = s["failed"].as_u64().unwrap_or(0);
        failed += f;
        println!(
            "{} shards of {} {} ({} {}, seeds {}..{}): {} seeds run, {} passed, {} failed; digest {}; {:.1} seeds/s together, slowest shard {:.2} s",
            s["merged_from"],
            s["tool"].as_str().unwrap_or(""),
            s["target"].as_str().unwrap_or(""),
            if s["tool"] == "evsim" { "faults" } else { "profile" },
            s["profile"].as_str().unwrap_or(""),
            s["seeds"]["start"],
            s["seeds"]["end"],
            s["run"],
            s["passed"],
            f,
            s["digest"].as_str().unwrap_or(""),
            s["seeds_per_sec"].as_f64().unwrap_or(0.0),
            s["seconds"].as_f64().unwrap_or(0.0),
        );
        for l in &m.failures {
            println!(
                "FAILED seed {}: {}",
                l["seed"],
                l["failure"].as_str().unwrap_or("")
            );
            println!("  reproduce: {}", l["reproduce"].as_str().unwrap_or(""));
        }
        lines.extend(m.lines());
        junit.push((m.summary.clone(), m.failures.clone()));
    }
    if merged.len() > 1 {
        let failing = merged
            .iter()
            .filter(|m| m.summary["failed"].as_u64().unwrap_or(0) > 0)
            .count();
        println!(
            "{} targets: {} passed, {failing} failed ({failed} failing seeds)",
            merged.len(),
            merged.len() - failing
        );
    }
    if let Some(p) = a.0 {
        write_file(p, &report::to_jsonl(&lines))?;
    }
    if let Some(p) = a.1 {
        write_file(p, &report::junit(&junit))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list(ctx: &Ctx<'_>) {
    for t in ctx.targets {
        println!("{:14} {}", t.name(), t.about());
        for p in t.params() {
            println!(
                "{:14}   --param {}=… ({:?}, default {}): {}",
                "", p.name, p.kind, p.default, p.about
            );
        }
    }
    for (name, about) in [
        (
            "scenario:PATH",
            "a conformance scenario (a .scn file, or a name of conformance/scenarios)",
        ),
        (
            "scenarios:DIR",
            "every conformance scenario of DIR, one target each",
        ),
    ] {
        println!("{name:14} {about}");
    }
    println!("fault profiles: {}", crate::faults::PROFILES.join(" "));
}

fn shrink_cmd(ctx: &Ctx<'_>, a: &ShrinkArgs) -> Result<ExitCode, String> {
    let found = find_one(ctx.targets, &a.common.target)?;
    let target = found.get();
    let opts = options(&a.common, target, a.seed)?;
    let max_runs = usize::try_from(a.max_runs).map_err(|e| format!("--max-runs: {e}"))?;
    let shrunk = if a.any_failure {
        shrink_with(target, &opts, max_runs, |r| !r.ok())
    } else {
        shrink(target, &opts, max_runs)
    };
    let Some(s) = shrunk else {
        println!("seed {} does not fail: nothing to shrink", a.seed);
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "seed {} fails with {} injected faults; {} of them suffice ({} runs):",
        a.seed,
        s.original.len(),
        s.minimal.len(),
        s.runs
    );
    for d in &s.minimal {
        println!("  {d}");
    }
    if let Some(sig) = s.report.signature() {
        println!("failure kept: {sig}");
    }
    let mut out = String::new();
    print_failures(&mut out, &s.report);
    print!("{out}");
    println!("reproduce: {}", ctx.command(target, &s.options));
    Ok(ExitCode::from(1))
}

fn run_cli(cli: Cli, ctx: &Ctx<'_>) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::List => {
            list(ctx);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(a) => {
            let found = find_all(ctx.targets, &a.common.target)?;
            if found.len() > 1 && (a.trace.is_some() || a.chrome_trace.is_some()) {
                return Err(format!(
                    "--trace and --chrome-trace take one target; {:?} names {}",
                    a.common.target,
                    found.len()
                ));
            }
            let mut worst = 0u8;
            for t in &found {
                worst = worst.max(run_one(ctx, t.get(), &a)?);
            }
            Ok(ExitCode::from(worst))
        }
        Cmd::Explore(a) => {
            let found = find_all(ctx.targets, &a.common.target)?;
            let range = parse_seeds(&a.seeds)?;
            let jobs = match a.jobs {
                Some(j) => usize::try_from(j).map_err(|e| format!("--jobs: {e}"))?,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let shard = shard_of(&a)?;
            // Fail before the run, not after it, on a report that cannot be written.
            for p in a.report.iter().chain(&a.junit) {
                std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let mut failed_targets = 0usize;
            let mut lines = Vec::new();
            let mut junit = Vec::new();
            for t in &found {
                let e = explore_one(ctx, t.get(), &a, range.clone(), shard, jobs)?;
                if e.failed > 0 {
                    failed_targets += 1;
                }
                lines.extend(e.lines);
                junit.push((e.summary, e.failures));
            }
            if let Some(p) = &a.report {
                write_file(p, &report::to_jsonl(&lines))?;
            }
            if let Some(p) = &a.junit {
                write_file(p, &report::junit(&junit))?;
            }
            if found.len() > 1 {
                println!(
                    "{} targets of {}: {} passed, {failed_targets} failed",
                    found.len(),
                    a.common.target,
                    found.len() - failed_targets
                );
            }
            Ok(if failed_targets == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Shrink(a) => shrink_cmd(ctx, &a),
        Cmd::Merge(a) => merge_cmd(&a),
    }
}
