//! `evconform`: record fixtures from real libevent, check evloop against them, run one scenario.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use evloop_conformance::check::{self, Dispatch, PlayerRunner, Runner};
use evloop_conformance::{
    capi, default_fixtures_dir, default_scenarios_dir, evloop_runner, record, scenario,
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
    /// Run one scenario file and print its trace.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// libevent-epoll, libevent-poll, libevent-select, capi-epoll|poll|select, or an
        /// evloop backend.
        #[arg(long, value_name = "NAME")]
        backend: String,
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
fn runners(backends: &[String]) -> Result<Dispatch, String> {
    let mut v: Vec<Box<dyn Runner>> = Vec::new();
    if backends.iter().any(|b| check::libevent_method(b).is_some()) {
        v.push(Box::new(PlayerRunner::new()?));
    }
    if backends.iter().any(|b| capi::capi_method(b).is_some()) {
        v.push(Box::new(capi::CapiRunner::new(&capi::find_library()?)?));
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
        Cmd::Run { file, backend } => {
            let sc = check::load(&file)?;
            let runner = runners(std::slice::from_ref(&backend))?;
            let trace = runner.run(&sc, &backend)?;
            print!("{trace}");
            Ok(ExitCode::SUCCESS)
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
