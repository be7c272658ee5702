//! `evconform record [--check]`: play every scenario on libevent's epoll, poll and select
//! (twice each: the two traces must be identical) and write or verify the fixtures.

use std::fs;
use std::path::{Path, PathBuf};

use crate::check::Loaded;
use crate::compare;
use crate::fixture;
use crate::player::Player;

/// One recorded trace.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Scenario name.
    pub scenario: String,
    /// `libevent-<method>`.
    pub backend: String,
    /// The trace.
    pub trace: String,
}

/// Plays every scenario on every libevent method, twice. Returns the traces, or every problem
/// found (a failed run, or two runs that differ).
pub fn play_all(scenarios: &[Loaded], player: &Player) -> Result<Vec<Recorded>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for sc in scenarios {
        let ir = sc.ir.to_text();
        for m in fixture::LIBEVENT_METHODS {
            let backend = format!("libevent-{m}");
            let first = player.run(m, &ir);
            let second = player.run(m, &ir);
            match (first, second) {
                (Ok(a), Ok(b)) => {
                    if let Err(d) = compare::compare_exact(&a, &b) {
                        problems.push(format!(
                            "{} on {backend}: two runs of the player gave different traces (nondeterministic scenario)\n{d}\n   (- first run, + second run)",
                            sc.name
                        ));
                    } else {
                        out.push(Recorded {
                            scenario: sc.name.clone(),
                            backend,
                            trace: a,
                        });
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    problems.push(format!("{} on {backend}: {e}", sc.name))
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn is_libevent_fixture(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "snap")
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("@libevent-"))
}

fn libevent_fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_libevent_fixture(p))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What `record` did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Fixtures written (created or changed).
    pub written: Vec<PathBuf>,
    /// Fixtures that were already up to date.
    pub unchanged: usize,
    /// Stale libevent fixtures removed (no scenario of that name any more).
    pub removed: Vec<PathBuf>,
}

/// Writes the libevent fixtures of `scenarios` into `dir` and removes stale ones. Nothing is
/// written if any run fails or is nondeterministic.
pub fn record(scenarios: &[Loaded], player: &Player, dir: &Path) -> Result<Report, Vec<String>> {
    let traces = play_all(scenarios, player)?;
    fs::create_dir_all(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut rep = Report::default();
    let mut keep = Vec::new();
    for r in &traces {
        let p = fixture::path(dir, &r.scenario, &r.backend);
        let text = fixture::render(&r.scenario, &r.backend, &r.trace);
        keep.push(p.clone());
        if fs::read_to_string(&p).ok().as_deref() == Some(text.as_str()) {
            rep.unchanged += 1;
            continue;
        }
        fs::write(&p, text).map_err(|e| vec![format!("{}: {e}", p.display())])?;
        rep.written.push(p);
    }
    for p in libevent_fixtures(dir) {
        if !keep.contains(&p) {
            fs::remove_file(&p).map_err(|e| vec![format!("{}: {e}", p.display())])?;
            rep.removed.push(p);
        }
    }
    Ok(rep)
}

/// Re-records into a temporary directory and compares with the committed fixtures in `dir`:
/// every difference, missing fixture or stale fixture is a problem. Returns the number of
/// fixtures verified.
pub fn record_check(
    scenarios: &[Loaded],
    player: &Player,
    dir: &Path,
) -> Result<usize, Vec<String>> {
    let tmp = tempfile::Builder::new()
        .prefix("evconform-record")
        .tempdir()
        .map_err(|e| vec![format!("temp dir: {e}")])?;
    record(scenarios, player, tmp.path())?;
    let fresh = libevent_fixtures(tmp.path());
    let mut problems = Vec::new();
    for p in &fresh {
        let name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let committed = dir.join(&name);
        let new_text = fs::read_to_string(p).unwrap_or_default();
        match fs::read_to_string(&committed) {
            Err(_) => problems.push(format!(
                "{}: missing (run `evconform record`)",
                committed.display()
            )),
            Ok(old) if old == new_text => {}
            Ok(old) => {
                let detail = match (fixture::parse(&old), fixture::parse(&new_text)) {
                    (Ok(o), Ok(n)) if o.trace != n.trace => {
                        match compare::compare_exact(&o.trace, &n.trace) {
                            Err(m) => format!("{m}\n   (- committed fixture, + libevent now)"),
                            Ok(()) => "the traces differ only in trailing whitespace".into(),
                        }
                    }
                    (Ok(_), Ok(_)) => "the header differs".into(),
                    (Err(e), _) | (_, Err(e)) => e,
                };
                problems.push(format!(
                    "{}: differs from what libevent records now:\n{detail}",
                    committed.display()
                ));
            }
        }
    }
    let fresh_names: Vec<_> = fresh
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_owned()))
        .collect();
    for p in libevent_fixtures(dir) {
        if !p
            .file_name()
            .is_some_and(|n| fresh_names.iter().any(|f| f == n))
        {
            problems.push(format!("{}: stale (no scenario records it)", p.display()));
        }
    }
    if problems.is_empty() {
        Ok(fresh.len())
    } else {
        Err(problems)
    }
}
