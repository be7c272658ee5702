//! `evconform`: record fixtures from real libevent, check evloop against them, run one scenario.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evloop_sim::shard::{Shard, ShardArgs};

use evloop_conformance::check::{self, Dispatch, PlayerRunner, Runner};
use evloop_conformance::{
    capi, default_fixtures_dir, default_scenarios_dir, evloop_runner, fuzz, record, scenario,
};

#[derive(Parser)]
#[command(
    name = "evconform",
    about = "evloop's conformance harness: scenarios on real libevent and on evloop"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Play every scenario on libevent (epoll, poll, select) and write the fixtures.
    Record {
        /// Re-record into a temporary directory and fail on any difference from the fixtures.
        #[arg(long)]
        check: bool,
        /// The scenario directory.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
        /// The fixture directory.
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
    },
    /// Run every scenario on backends and compare with the fixtures; print the matrix.
    Check {
        /// A backend to check (repeatable): epoll, poll, select, mio, sim,
        /// libevent-epoll|poll|select, or capi-epoll|poll|select (the C player on evloop's C
        /// ABI library; needs a C compiler and libevent-dev). Default: epoll, poll, select, mio
        /// and sim.
        #[arg(long = "backend", value_name = "NAME")]
        backends: Vec<String>,
        /// Only these scenarios (file stems; repeatable).
        #[arg(long = "only", value_name = "SCENARIO")]
        only: Vec<String>,
        /// Also write a JUnit XML report.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// The scenario directory.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
        /// The fixture directory.
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
    },
    /// Internal: run the IR on stdin on an evloop backend in this process after closing every
    /// inherited descriptor, print the trace (the child of the isolated runner).
    #[command(hide = true)]
    RunIsolated {
        /// The evloop backend.
        #[arg(long, value_name = "NAME")]
        backend: String,
        /// Test only: a reactor fault, as `fuzz --core-fault`.
        #[arg(long, value_name = "FAULT")]
        core_fault: Option<String>,
    },
    /// Run one scenario file and print its trace.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// libevent-epoll, libevent-poll, libevent-select, capi-epoll|poll|select, or an
        /// evloop backend.
        #[arg(long, value_name = "NAME")]
        backend: String,
    },
    /// Differential fuzzing: random scenarios on libevent and on evloop, compared exactly
    /// (NONDETERMINISM.md's rules only); a divergence is shrunk, printed, saved, and fails.
    Fuzz {
        /// Number of cases.
        #[arg(long, default_value_t = 1000)]
        cases: u64,
        /// The run's seed (case K of seed S is always the same program).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Run only case K of the seed (replay a reported case).
        #[arg(long, value_name = "K", conflicts_with_all = ["shard", "shard_from_env"])]
        case: Option<u64>,
        /// An evloop backend to compare (repeatable): epoll, poll, select, mio, sim.
        /// Default: all five.
        #[arg(long = "backend", value_name = "NAME")]
        backends: Vec<String>,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Save each shrunk diverging case as DIR/fuzz_SEED_CASE_BACKEND.scn.
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
        /// Feature groups the generator mixes: all, core, timers, or +/-base, io, signals,
        /// bufferevents, listeners, fill, close (comma-separated, applied in order).
        #[arg(long, value_name = "GROUPS", default_value = "all")]
        features: String,
        /// Report every divergence (one per kind of first difference) instead of stopping.
        #[arg(long)]
        keep_going: bool,
        /// Do not shrink diverging cases.
        #[arg(long)]
        no_shrink: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print the scenario of each case (with --case: only print it, run nothing).
        #[arg(long)]
        show: bool,
        /// Test only: break a reactor invariant on purpose (early-timers, priority-inversion);
        /// needs `--features test-faults`.
        #[arg(long, value_name = "FAULT")]
        core_fault: Option<String>,
        /// Sharding (a shard implies --keep-going).
        #[command(flatten)]
        shard: ShardArgs,
        /// Write a JSON Lines report (a line per diverging case with its replay command, a
        /// summary; the format of `evsim explore --report`; implies --keep-going). `evconform
        /// merge` (or `evsim merge`) combines the shards' reports.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Also write a line for every case (its verdict and libevent trace hash).
        #[arg(long, requires = "report")]
        report_all: bool,
        /// Write JUnit XML (a testcase per diverging case, one for the rest) to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Combine the reports of the shards of a fuzz run (or of an `evsim explore` run) into
    /// one; fails if shards are missing, overlap or disagree.
    Merge {
        /// The shards' reports (`fuzz --report FILE`).
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Write the merged report to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write JUnit XML of the merged result to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Print the IR a scenario lowers to.
    Ir {
        /// The scenario file.
        file: PathBuf,
    },
    /// Print a scenario in canonical form.
    Fmt {
        /// The scenario file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{}", msg.trim_end());
            ExitCode::FAILURE
        }
    }
}

fn load_corpus(dir: &Path) -> Result<Vec<check::Loaded>, String> {
    check::load_dir(dir).map_err(|errs| errs.join("\n"))
}

/// The runners for the requested backends: the player for `libevent-*`, the evloop runner for
/// the rest (an error names any backend nobody can run).
/// The isolated runner of evloop's real backends (`ISOLATED_BACKENDS`), started from this
/// executable.
fn isolated_runner(core_fault: Option<String>) -> Option<evloop_runner::IsolatedRunner> {
    let exe = std::env::current_exe().ok()?;
    Some(evloop_runner::IsolatedRunner::new(exe).with_core_fault(core_fault))
}

fn runners(backends: &[String]) -> Result<Dispatch, String> {
    let mut v: Vec<Box<dyn Runner>> = Vec::new();
    if backends.iter().any(|b| check::libevent_method(b).is_some()) {
        v.push(Box::new(PlayerRunner::new()?));
    }
    if backends.iter().any(|b| capi::capi_method(b).is_some()) {
        v.push(Box::new(capi::CapiRunner::new(&capi::find_library()?)?));
    }
    if let Some(r) = isolated_runner(None) {
        v.push(Box::new(r));
    }
    if let Some(r) = evloop_runner::evloop_runner() {
        v.push(r);
    }
    let d = Dispatch(v);
    let missing: Vec<&str> = backends
        .iter()
        .filter(|b| !d.handles(b))
        .map(|b| b.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no runner for backend(s) {} (libevent-epoll|poll|select run on the player; the evloop runner is not plugged in yet)",
            missing.join(", ")
        ));
    }
    Ok(d)
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Record {
            check,
            scenarios,
            fixtures,
        } => {
            let sdir = scenarios.unwrap_or_else(default_scenarios_dir);
            let fdir = fixtures.unwrap_or_else(default_fixtures_dir);
            let corpus = load_corpus(&sdir)?;
            let runner = PlayerRunner::new()?;
            if check {
                match record::record_check(&corpus, runner.player(), &fdir) {
                    Ok(n) => {
                        println!(
                            "record --check: {n} fixtures of {} scenarios match libevent, every scenario deterministic",
                            corpus.len()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(problems) => {
                        for p in &problems {
                            eprintln!("{p}\n");
                        }
                        Err(format!("record --check: {} problem(s)", problems.len()))
                    }
                }
            } else {
                match record::record(&corpus, runner.player(), &fdir) {
                    Ok(rep) => {
                        for p in &rep.written {
                            println!("wrote {}", p.display());
                        }
                        for p in &rep.removed {
                            println!("removed stale {}", p.display());
                        }
                        println!(
                            "recorded {} scenarios x 3 methods: {} written, {} unchanged, {} removed",
                            corpus.len(),
                            rep.written.len(),
                            rep.unchanged,
                            rep.removed.len()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(problems) => {
                        for p in &problems {
                            eprintln!("{p}\n");
                        }
                        Err(format!(
                            "record: {} problem(s); no fixture written",
                            problems.len()
                        ))
                    }
                }
            }
        }
        Cmd::Check {
            backends,
            only,
            junit,
            scenarios,
            fixtures,
        } => {
            let sdir = scenarios.unwrap_or_else(default_scenarios_dir);
            let fdir = fixtures.unwrap_or_else(default_fixtures_dir);
            let mut corpus = load_corpus(&sdir)?;
            if !only.is_empty() {
                corpus.retain(|s| only.contains(&s.name));
                if corpus.is_empty() {
                    return Err(format!("no scenario named {}", only.join(", ")));
                }
            }
            let backends = if backends.is_empty() {
                evloop_runner::DEFAULT_BACKENDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                backends
            };
            let runner = runners(&backends)?;
            let m = check::run_matrix(&corpus, &backends, &runner, &fdir);
            print!("{}", m.render());
            if let Some(j) = junit {
                std::fs::write(&j, m.junit()).map_err(|e| format!("{}: {e}", j.display()))?;
            }
            Ok(if m.all_pass() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::RunIsolated {
            backend,
            core_fault,
        } => {
            evloop_conformance::fuzz::apply_core_fault(core_fault.as_deref())?;
            let mut ir = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut ir)
                .map_err(|e| format!("reading the IR from stdin: {e}"))?;
            let trace = evloop_runner::run_isolated_child(&ir, &backend)?;
            print!("{trace}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { file, backend } => {
            let sc = check::load(&file)?;
            let runner = runners(std::slice::from_ref(&backend))?;
            let trace = runner.run(&sc, &backend)?;
            print!("{trace}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fuzz {
            cases,
            seed,
            case,
            backends,
            jobs,
            save,
            features,
            keep_going,
            no_shrink,
            quiet,
            show,
            core_fault,
            shard,
            report,
            report_all,
            junit,
        } => {
            let backends: Vec<String> = if backends.is_empty() {
                evloop_runner::DEFAULT_BACKENDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                backends
            };
            let bad: Vec<&str> = backends
                .iter()
                .filter(|b| !evloop_runner::DEFAULT_BACKENDS.contains(&b.as_str()))
                .map(|b| b.as_str())
                .collect();
            if !bad.is_empty() {
                return Err(format!(
                    "fuzz compares evloop backends with libevent: unknown backend(s) {} (epoll, poll, select, mio, sim)",
                    bad.join(", ")
                ));
            }
            let config = evloop_scenario::strategies::Config::parse(&features)?;
            if show {
                let (lo, n) = case.map_or((0, cases), |k| (k, 1));
                for k in lo..lo + n {
                    let sc = fuzz::case_scenario(&config, seed, k)?;
                    println!("# case {k} of seed {seed}\n{}", scenario::print(&sc));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let shard = shard.resolve("evconform")?;
            for p in report.iter().chain(&junit) {
                std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let opts = fuzz::Options {
                cases,
                seed,
                case,
                backends: backends.clone(),
                jobs,
                save,
                config,
                // A shard or a report lists every diverging case, not only the first.
                keep_going: keep_going || shard.is_some() || report.is_some() || junit.is_some(),
                shrink: !no_shrink,
                progress: !quiet,
                core_fault: core_fault.clone(),
                isolate: std::env::current_exe().ok(),
            };
            let shard = shard.unwrap_or(Shard::WHOLE);
            let mut stdout = std::io::stdout();
            let sum = fuzz::fuzz_shard(&opts, shard, &features, &mut stdout)?;
            if report.is_some() || junit.is_some() {
                let lines = fuzz_report(&opts, shard, &features, &sum, report_all);
                if let Some(p) = &report {
                    std::fs::write(p, evloop_sim::report::to_jsonl(&lines))
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                }
                if let Some(p) = &junit {
                    let (summary, failures): (Vec<_>, Vec<_>) =
                        lines.into_iter().partition(|l| l["type"] == "summary");
                    let failures = failures
                        .into_iter()
                        .filter(|l| l["type"] == "failure")
                        .collect();
                    let x = evloop_sim::report::junit(&[(summary[0].clone(), failures)]);
                    std::fs::write(p, x).map_err(|e| format!("{}: {e}", p.display()))?;
                }
            }
            let rate = if sum.seconds > 0.0 {
                sum.cases as f64 / sum.seconds
            } else {
                0.0
            };
            // select runs isolated and is compared exactly; only an in-process select run
            // (no executable to start) has NONDETERMINISM.md §2's cut comparisons.
            let cut = if sum.select_window_cut > 0 {
                format!(
                    "{} select comparison(s) equal only up to a select() window (NONDETERMINISM.md §2); ",
                    sum.select_window_cut
                )
            } else {
                String::new()
            };
            println!(
                "fuzz seed {seed}: {} cases x {} backends ({}): {} comparisons, {} divergence(s); {cut}{} case(s) skipped (libevent failed), {} skipped (difference not repeated by a second run); {:.1}s, {rate:.1} cases/s",
                sum.cases,
                backends.len(),
                backends.join(" "),
                sum.comparisons,
                sum.divergences.len(),
                sum.libevent_errors,
                sum.unrepeated,
                sum.seconds
            );
            if !sum.nondeterministic_cases.is_empty() {
                println!(
                    "cases whose difference did not repeat on a second run: {}",
                    sum.nondeterministic_cases.join(", ")
                );
            }
            if let Some(e) = &sum.first_libevent_error {
                println!("first libevent failure: {}", e.trim_end());
            }
            Ok(if sum.divergences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Merge {
            reports,
            report,
            junit,
        } => {
            // As `evsim merge`: 1 means failures (listed), 2 shards that do not merge.
            match evloop_sim::explore::merge_reports(&reports, report.as_deref(), junit.as_deref())
            {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("evconform merge: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::Ir { file } => {
            let sc = check::load(&file)?;
            print!("{}", sc.ir.to_text());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fmt { file } => {
            let sc = check::load(&file)?;
            print!("{}", scenario::print(&sc.scenario));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The JSON Lines report of a fuzz run (evloop_sim::report's format): a line per diverging
/// case (its first difference, its libevent traces' hash, its replay command), with
/// `report_all` a line per case, and the summary. The "seed" of a line is the case index;
/// the run's seed is in `options`.
fn fuzz_report(
    opts: &fuzz::Options,
    shard: Shard,
    groups: &str,
    sum: &fuzz::Summary,
    report_all: bool,
) -> Vec<serde_json::Value> {
    use evloop_sim::report::{seed_digest, Header, Totals};
    let header = Header {
        tool: "evconform fuzz".to_owned(),
        target: "fuzz".to_owned(),
        profile: groups.to_owned(),
        options: serde_json::json!({
            "seed": opts.seed,
            "backends": opts.backends,
            "core_fault": opts.core_fault,
            "shrink": opts.shrink,
        }),
    };
    let mut cases = sum.per_case.clone();
    cases.sort_unstable_by_key(|c| c.0);
    let trace = |k: u64| {
        cases
            .binary_search_by_key(&k, |c| c.0)
            .map(|i| cases[i].1)
            .unwrap_or(evloop_sim::TraceSummary { hash: 0, lines: 0 })
    };
    let mut lines = Vec::new();
    for f in &sum.failing {
        let cmd = fuzz::replay_command(
            opts.seed,
            f.case,
            &f.backend,
            groups,
            opts.core_fault.as_deref(),
        );
        lines.push(header.failure(
            f.case,
            &[f.signature.clone(), f.detail.clone()],
            trace(f.case),
            &cmd,
        ));
    }
    let mut digest = 0u64;
    for &(k, t, failed) in &cases {
        digest ^= seed_digest(k, t, failed);
        if report_all {
            lines.push(header.seed(k, !failed, t));
        }
    }
    let seeds = match opts.case {
        Some(k) => k..k.saturating_add(1),
        None => 0..opts.cases,
    };
    lines.push(header.summary(&Totals {
        seeds,
        shard,
        run: cases.len() as u64,
        failed: sum.failing.len() as u64,
        callbacks: sum.comparisons,
        seconds: sum.seconds,
        jobs: opts.jobs as u64,
        digest,
    }));
    lines
}
