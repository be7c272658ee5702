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

use crate::faults::{Decision, FaultConfig, PROFILES};
use crate::targets::{self, check_core_fault, command, RunOptions, RunReport, Target};
use crate::trace::describe_difference;

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
}

/// Runs seeds `seeds` of `target` on `jobs` threads; `each` sees every result as it comes
/// (in completion order). Returns the failing seeds, sorted.
pub fn explore(
    target: &dyn Target,
    base: &RunOptions,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    determinism: bool,
    mut each: impl FnMut(&SeedResult),
) -> Vec<SeedResult> {
    let next = AtomicU64::new(seeds.start);
    let (tx, rx) = mpsc::channel::<SeedResult>();
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let tx = tx.clone();
            let next = &next;
            let end = seeds.end;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
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
                let r = SeedResult {
                    seed,
                    failures,
                    callbacks: report.stats.callbacks,
                };
                if tx.send(r).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for r in rx {
            each(&r);
            if !r.failures.is_empty() {
                failed.push(r);
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

/// Minimises the faults of a failing run (delta debugging over decision ordinals): returns
/// `None` if the run does not fail.
pub fn shrink(target: &dyn Target, opts: &RunOptions, max_runs: usize) -> Option<Shrunk> {
    let first = target.run(opts);
    if first.ok() {
        return None;
    }
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
        (!r.ok()).then_some((o, r))
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

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed and print its trace.
    Run {
        #[command(flatten)]
        common: Common,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Write the trace to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Run twice and compare the traces line by line.
        #[arg(long)]
        check_determinism: bool,
        /// Only these fault decisions may inject (comma-separated ordinals, `-` for none), as
        /// printed by `shrink`.
        #[arg(long, value_name = "LIST")]
        only_faults: Option<String>,
    },
    /// Run a range of seeds in parallel and report the failing ones.
    Explore {
        #[command(flatten)]
        common: Common,
        /// The seeds, `A..B` (B excluded).
        #[arg(long, value_name = "A..B")]
        seeds: String,
        /// Threads (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run every seed twice and compare the traces.
        #[arg(long)]
        check_determinism: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Minimise a failing seed's faults and print the minimal list.
    Shrink {
        #[command(flatten)]
        common: Common,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Give up after this many runs.
        #[arg(long, default_value_t = 400)]
        max_runs: usize,
    },
    /// List the targets and fault profiles.
    List,
}

#[derive(Args, Clone)]
struct Common {
    /// What to run (`evsim list` shows them): a target's name, `scenario:PATH` (one
    /// conformance scenario) or `scenarios:DIR` (each scenario of a directory).
    target: String,
    /// The fault profile.
    #[arg(long, default_value = "none")]
    faults: String,
    /// Simulated clients (targets with clients).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Break a reactor invariant on purpose (`early-timers`, `priority-inversion`; needs
    /// `--features test-faults`).
    #[arg(long)]
    core_fault: Option<String>,
}

fn options(c: &Common, seed: u64) -> Result<RunOptions, String> {
    let faults = FaultConfig::profile(&c.faults).ok_or_else(|| {
        format!(
            "unknown fault profile {:?} (expected one of {PROFILES:?})",
            c.faults
        )
    })?;
    check_core_fault(c.core_fault.as_deref())?;
    Ok(RunOptions {
        seed,
        profile: c.faults.clone(),
        faults,
        keep_trace: false,
        only: None,
        clients: c.clients,
        core_fault: c.core_fault.clone(),
    })
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

/// `evsim`: the built-in targets plus `extra` (see the module documentation).
pub fn cli_main(extra: Vec<Box<dyn Target>>) -> ExitCode {
    let cli = Cli::parse();
    let mut all = targets::builtin();
    all.extend(extra);
    match run_cli(cli, &all) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("evsim: {e}");
            ExitCode::from(2)
        }
    }
}

/// `evsim run` on one target; the exit code (0 ok, 1 failed, 3 nondeterministic).
fn run_one(
    target: &dyn Target,
    common: &Common,
    seed: u64,
    trace: Option<&PathBuf>,
    check: bool,
    only_faults: Option<&str>,
) -> Result<u8, String> {
    let mut opts = options(common, seed)?;
    opts.keep_trace = true;
    if let Some(o) = only_faults {
        opts.only = Some(parse_only(o)?);
    }
    let (report, diff) = if check {
        let d = check_determinism(target, &opts);
        (d.first, Some(d.difference))
    } else {
        (target.run(&opts), None)
    };
    let text = report.trace.text().unwrap_or_default();
    match trace {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(text.as_bytes());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} seed {} faults {}: {} ({}, {} faults injected, ended at {}us, {} callbacks)",
        target.name(),
        seed,
        common.faults,
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
        let _ = writeln!(out, "# reproduce: {}", command(target, &opts));
    }
    if trace.is_some() {
        print!("{out}");
    } else {
        eprint!("{out}");
    }
    Ok(code)
}

/// `evsim explore` on one target: prints its failures and its figures; the number of failing
/// seeds.
fn explore_one(
    target: &dyn Target,
    common: &Common,
    opts: &RunOptions,
    range: std::ops::Range<u64>,
    jobs: usize,
    check: bool,
    quiet: bool,
) -> usize {
    let total = range.end - range.start;
    let pb = if quiet {
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
    let start = wall_clock();
    let mut callbacks = 0u64;
    let mut nfail = 0u64;
    let failed = explore(target, opts, range.clone(), jobs, check, |r| {
        callbacks += r.callbacks;
        if !r.failures.is_empty() {
            nfail += 1;
            pb.set_message(nfail.to_string());
            let mut o = opts.clone();
            o.seed = r.seed;
            let mut msg = format!("seed {} FAILED: {}", r.seed, r.failures[0]);
            if r.failures.len() > 1 {
                let _ = write!(msg, " (+{} more)", r.failures.len() - 1);
            }
            let _ = write!(msg, "\n  reproduce: {}", command(target, &o));
            pb.println(msg);
        }
        pb.inc(1);
    });
    pb.finish_and_clear();
    let secs = wall_clock().duration_since(start).as_secs_f64().max(1e-9);
    println!(
                "{} seeds of {} (faults {}, {} jobs{}) in {:.2} s: {:.1} seeds/s, {:.0} simulated callbacks/s; {} failed",
                total,
                target.name(),
                common.faults,
                jobs,
                if check { ", each run twice" } else { "" },
                secs,
                total as f64 / secs,
                callbacks as f64 / secs,
                failed.len()
            );
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
        println!("FAILED seed {}: {}{more}", r.seed, shown.join("; "));
        println!("  reproduce: {}", command(target, &o));
    }
    failed.len()
}

fn run_cli(cli: Cli, all: &[Box<dyn Target>]) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::List => {
            for t in all {
                println!("{:14} {}", t.name(), t.about());
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
            println!("fault profiles: {}", PROFILES.join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            common,
            seed,
            trace,
            check_determinism: check,
            only_faults,
        } => {
            let found = find_all(all, &common.target)?;
            if found.len() > 1 && trace.is_some() {
                return Err(format!(
                    "--trace FILE takes one target; {:?} names {}",
                    common.target,
                    found.len()
                ));
            }
            let mut worst = 0u8;
            for t in &found {
                let code = run_one(
                    t.get(),
                    &common,
                    seed,
                    trace.as_ref(),
                    check,
                    only_faults.as_deref(),
                )?;
                worst = worst.max(code);
            }
            Ok(ExitCode::from(worst))
        }
        Cmd::Explore {
            common,
            seeds,
            jobs,
            check_determinism: check,
            quiet,
        } => {
            let found = find_all(all, &common.target)?;
            let opts = options(&common, 0)?;
            let range = parse_seeds(&seeds)?;
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let mut failed_targets = 0usize;
            for t in &found {
                let failed =
                    explore_one(t.get(), &common, &opts, range.clone(), jobs, check, quiet);
                if failed > 0 {
                    failed_targets += 1;
                }
            }
            if found.len() > 1 {
                println!(
                    "{} targets of {}: {} passed, {failed_targets} failed",
                    found.len(),
                    common.target,
                    found.len() - failed_targets
                );
            }
            Ok(if failed_targets == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Shrink {
            common,
            seed,
            max_runs,
        } => {
            let found = find_one(all, &common.target)?;
            let target = found.get();
            let opts = options(&common, seed)?;
            match shrink(target, &opts, max_runs) {
                None => {
                    println!("seed {seed} does not fail: nothing to shrink");
                    Ok(ExitCode::SUCCESS)
                }
                Some(s) => {
                    println!(
                        "seed {seed} fails with {} injected faults; {} of them suffice ({} runs):",
                        s.original.len(),
                        s.minimal.len(),
                        s.runs
                    );
                    for d in &s.minimal {
                        println!("  {d}");
                    }
                    let mut out = String::new();
                    print_failures(&mut out, &s.report);
                    print!("{out}");
                    println!("reproduce: {}", command(target, &s.options));
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
