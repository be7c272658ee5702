//! Sharded exploring as a scheduler runs it: N shards of a seed range as separate `evsim`
//! processes, their JSON Lines reports merged by `evsim merge`, must give exactly the report
//! of one unsharded run (the same failures, counts, per-seed trace hashes and digest); a
//! planted failure found by shard 3 of 4 is replayed by its printed command alone; merging
//! missing, overlapping or disagreeing shards is an error (exit 2, never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::kv_evsim;

fn evsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_evsim"))
}

fn text(o: &Output) -> String {
    let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
    t.push_str(&String::from_utf8_lossy(&o.stderr));
    t
}

/// A report, every line parsed (and checked to be an object with a known type).
fn read_report(p: &Path) -> Vec<Value> {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let lines: Vec<Value> = t
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for l in &lines {
        assert!(
            matches!(l["type"].as_str(), Some("failure" | "seed" | "summary")),
            "{l}"
        );
    }
    lines
}

/// A report without what depends on timing and on how the run was cut.
fn comparable(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            let o = l.as_object_mut().expect("an object");
            for k in ["seconds", "seeds_per_sec", "jobs", "merged_from", "shard"] {
                o.remove(k);
            }
            l
        })
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

/// Runs `bin explore ARGS` as `n` concurrent shard processes and unsharded, merges the
/// shards with `bin merge`, and checks that the merged report is the unsharded one. Returns
/// the unsharded report.
fn sharded_equals_unsharded(bin: &Path, args: &[&str], n: u64, dir: &Path) -> Vec<Value> {
    let mut children = Vec::new();
    let mut reports = Vec::new();
    for k in 1..=n {
        let r = dir.join(format!("shard{k}.jsonl"));
        let child = Command::new(bin)
            .arg("explore")
            .args(args)
            .args(["--quiet", "--jobs", "1", "--report-all", "--report"])
            .arg(&r)
            .args(["--shard", &format!("{k}/{n}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start a shard");
        children.push(child);
        reports.push(r);
    }
    for mut c in children {
        let st = c.wait().expect("a shard");
        assert!(matches!(st.code(), Some(0 | 1)), "a shard exited {st:?}");
    }
    // Each shard ran exactly its stride of the range.
    for (k, r) in reports.iter().enumerate() {
        let lines = read_report(r);
        let s = of_type(&lines, "summary")[0];
        assert_eq!(s["shard"]["index"], k as u64 + 1);
        assert_eq!(s["shard"]["count"], n);
        let start = s["seeds"]["start"].as_u64().unwrap();
        for l in of_type(&lines, "seed") {
            assert_eq!((l["seed"].as_u64().unwrap() - start) % n, k as u64, "{l}");
        }
    }
    let whole = dir.join("whole.jsonl");
    let out = Command::new(bin)
        .arg("explore")
        .args(args)
        .args(["--quiet", "--jobs", "2", "--report-all", "--report"])
        .arg(&whole)
        .output()
        .expect("the unsharded run");
    let whole_code = out.status.code();
    assert!(matches!(whole_code, Some(0 | 1)), "{}", text(&out));
    let merged = dir.join("merged.jsonl");
    let junit = dir.join("merged.xml");
    let out = Command::new(bin)
        .arg("merge")
        .args(&reports)
        .arg("--report")
        .arg(&merged)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("merge");
    let merge_text = text(&out);
    assert_eq!(out.status.code(), whole_code, "{merge_text}");
    let w = read_report(&whole);
    let m = read_report(&merged);
    assert_eq!(comparable(&m), comparable(&w), "merged != unsharded");
    let summary = of_type(&w, "summary")[0];
    let run = summary["run"].as_u64().unwrap();
    assert_eq!(of_type(&w, "seed").len() as u64, run);
    assert_eq!(of_type(&m, "summary")[0]["merged_from"], n);
    // The merge prints every failure with its reproduce line, and JUnit lists them.
    let failures = of_type(&w, "failure");
    assert_eq!(summary["failed"], failures.len() as u64);
    let x = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        x.starts_with("<?xml") && x.trim_end().ends_with("</testsuites>"),
        "{x}"
    );
    assert_eq!(
        x.matches("<testcase ").count() as u64,
        failures.len() as u64 + u64::from(summary["passed"].as_u64().unwrap() > 0),
        "{x}"
    );
    for f in &failures {
        let line = format!("  reproduce: {}", f["reproduce"].as_str().unwrap());
        assert!(merge_text.contains(&line), "{merge_text}");
        assert!(x.contains(&format!("name=\"seed {}\"", f["seed"])), "{x}");
    }
    w
}

#[test]
fn sharded_runs_merge_to_the_unsharded_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A planted bug that fails some seeds and not others.
    let kv = kv_evsim();
    let args = [
        "kv",
        "--seeds",
        "0..60",
        "--faults",
        "lossy",
        "--clients",
        "1",
        "--param",
        "bug=true",
    ];
    let d = dir.path().join("kv");
    std::fs::create_dir(&d).unwrap();
    let w = sharded_equals_unsharded(&kv, &args, 4, &d);
    let failed = of_type(&w, "failure").len();
    assert!(failed > 0 && failed < 60, "{failed} of 60 seeds failed");
    // The standard evsim, every seed checked for determinism, an uneven cut.
    let args = [
        "hello-world",
        "--seeds",
        "100..403",
        "--faults",
        "chaos",
        "--check-determinism",
    ];
    let d = dir.path().join("hw");
    std::fs::create_dir(&d).unwrap();
    let w = sharded_equals_unsharded(&evsim(), &args, 5, &d);
    assert_eq!(of_type(&w, "seed").len(), 303);
    // Different seeds, different traces: the per-seed hashes are real.
    let mut hashes: Vec<&str> = of_type(&w, "seed")
        .iter()
        .map(|l| l["trace_hash"].as_str().unwrap())
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 303);
}

#[test]
fn a_failure_found_in_shard_3_of_4_is_reproduced_by_its_printed_command() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kv = kv_evsim();
    let args = [
        "explore",
        "kv",
        "--seeds",
        "0..40",
        "--faults",
        "lossy",
        "--clients",
        "1",
        "--param",
        "bug=true",
        "--quiet",
    ];
    let report = dir.path().join("s3.jsonl");
    let out = Command::new(&kv)
        .args(args)
        .args(["--shard", "3/4", "--report"])
        .arg(&report)
        .output()
        .expect("shard 3/4");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = read_report(&report);
    let f = of_type(&lines, "failure")[0].clone();
    let seed = f["seed"].as_u64().unwrap();
    assert_eq!(seed % 4, 2, "seed {seed} is not in shard 3/4");
    for k in [
        "target",
        "profile",
        "options",
        "failure",
        "failures",
        "trace_lines",
    ] {
        assert!(f.get(k).is_some(), "{k} missing in {f}");
    }
    assert_eq!(f["options"]["params"]["bug"], "true");
    // The same shard from a Slurm array's environment (`--array=0-3`, task 2).
    let slurm = dir.path().join("slurm.jsonl");
    let out = Command::new(&kv)
        .args(args)
        .args(["--shard-from-env", "--report"])
        .arg(&slurm)
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .expect("shard from Slurm's variables");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(comparable(&read_report(&slurm)), comparable(&lines));

    // The printed command, on its own.
    let cmd = f["reproduce"].as_str().unwrap();
    assert!(cmd.contains(&format!("--seed {seed}")), "{cmd}");
    let mut words = cmd.split_whitespace();
    let out = Command::new(words.next().unwrap())
        .args(words)
        .output()
        .expect("run the reproduce command");
    let replay = text(&out);
    assert_eq!(out.status.code(), Some(1), "{replay}");
    let first = replay
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("FAIL: "))
        .expect("a failure");
    assert_eq!(first, f["failure"].as_str().unwrap());
    // …with the very trace the shard saw.
    let hash = format!("hash {}", f["trace_hash"].as_str().unwrap());
    let lines_n = format!("{} lines", f["trace_lines"]);
    let summary = replay
        .lines()
        .find(|l| l.starts_with("# kv seed"))
        .expect("the run's summary line");
    assert!(
        summary.contains(&hash) && summary.contains(&lines_n),
        "{summary} vs {f}"
    );
}

#[test]
fn merge_rejects_missing_overlapping_and_disagreeing_shards() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let shard = |name: &str, k: &str, faults: &str| -> PathBuf {
        let r = dir.path().join(name);
        let out = Command::new(evsim())
            .args(["explore", "hello-world", "--seeds", "0..12", "--quiet"])
            .args(["--faults", faults, "--shard", k, "--report"])
            .arg(&r)
            .output()
            .expect("a shard");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        r
    };
    let a = shard("a", "1/3", "none");
    let b = shard("b", "2/3", "none");
    let c = shard("c", "3/3", "none");
    let c_chaos = shard("cc", "3/3", "chaos");
    let half = shard("h", "2/2", "none");
    let merge = |files: &[&PathBuf]| -> (Option<i32>, String) {
        let out = Command::new(evsim())
            .arg("merge")
            .args(files)
            .output()
            .expect("merge");
        (out.status.code(), text(&out))
    };
    let (code, t) = merge(&[&a, &b, &c]);
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("12 seeds run, 12 passed, 0 failed"), "{t}");
    for (files, what) in [
        (vec![&a, &c], "missing: 2/3"),
        (vec![&a, &b, &b, &c], "overlap"),
        (vec![&a, &b, &half], "overlap"),
        (vec![&a, &b, &c_chaos], "disagree on profile"),
    ] {
        let (code, t) = merge(&files);
        assert_eq!(code, Some(2), "{t}");
        assert!(t.contains(what), "{what}: {t}");
    }
    // A report cut short (a shard killed before its summary), or not a report at all.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, "").unwrap();
    let (code, t) = merge(&[&a, &b, &cut]);
    assert_eq!(code, Some(2), "{t}");
    std::fs::write(&cut, "{\"type\":\"summary\"").unwrap();
    let (code, t) = merge(&[&cut]);
    assert_eq!(code, Some(2), "{t}");
    let (code, t) = merge(&[&dir.path().join("no-such-file")]);
    assert_eq!(code, Some(2), "{t}");
    // Bad shards on the command line.
    for bad in ["0/4", "5/4", "1/0", "4", "x/4", "1/-2"] {
        let out = Command::new(evsim())
            .args(["explore", "hello-world", "--seeds", "0..4", "--shard", bad])
            .output()
            .expect("explore");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains("--shard"), "{bad}: {}", text(&out));
    }
    let out = Command::new(evsim())
        .args([
            "explore",
            "hello-world",
            "--seeds",
            "0..4",
            "--shard-from-env",
        ])
        .env("JOB_COMPLETION_INDEX", "4")
        .env("EVSIM_SHARD_COUNT", "4")
        .output()
        .expect("explore");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
