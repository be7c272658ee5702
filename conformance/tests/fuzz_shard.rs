//! `evconform fuzz --shard K/N --report FILE` as a scheduler runs it: 3 shards as separate
//! processes, merged by `evconform merge`, give exactly the unsharded run's report (the same
//! cases, verdicts, libevent trace hashes and digest). Needs the player (cc, libevent-dev).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn evconform() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evconform"))
}

fn read_report(p: &Path) -> Vec<Value> {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    t.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Without what depends on timing and on how the run was cut.
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

const ARGS: &[&str] = &[
    "fuzz",
    "--seed",
    "11",
    "--cases",
    "36",
    "--backend",
    "sim",
    "--backend",
    "epoll",
    "--quiet",
];

#[test]
fn fuzz_shards_merge_to_the_unsharded_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let n = 3;
    let mut children = Vec::new();
    let mut reports: Vec<PathBuf> = Vec::new();
    for k in 1..=n {
        let r = dir.path().join(format!("shard{k}.jsonl"));
        let mut c = evconform();
        c.args(ARGS)
            .args(["--jobs", "1", "--report-all", "--report"])
            .arg(&r)
            .stdout(std::process::Stdio::null());
        // Shard 2 from GitLab's variables, the others from --shard.
        if k == 2 {
            c.arg("--shard-from-env")
                .env("CI_NODE_INDEX", "2")
                .env("CI_NODE_TOTAL", n.to_string());
        } else {
            c.args(["--shard", &format!("{k}/{n}")]);
        }
        children.push(c.spawn().expect("start a shard"));
        reports.push(r);
    }
    for mut c in children {
        assert_eq!(c.wait().expect("a shard").code(), Some(0));
    }
    for (i, r) in reports.iter().enumerate() {
        let lines = read_report(r);
        let cases: Vec<u64> = lines
            .iter()
            .filter(|l| l["type"] == "seed")
            .map(|l| l["seed"].as_u64().unwrap())
            .collect();
        assert_eq!(cases, (i as u64..36).step_by(n).collect::<Vec<_>>());
    }
    let whole = dir.path().join("whole.jsonl");
    let out = evconform()
        .args(ARGS)
        .args(["--jobs", "2", "--report-all", "--report"])
        .arg(&whole)
        .output()
        .expect("the unsharded run");
    assert_eq!(out.status.code(), Some(0));
    let merged = dir.path().join("merged.jsonl");
    let out = evconform()
        .arg("merge")
        .args(&reports)
        .arg("--report")
        .arg(&merged)
        .output()
        .expect("merge");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("36 seeds run, 36 passed, 0 failed"), "{text}");
    let w = read_report(&whole);
    assert_eq!(comparable(&read_report(&merged)), comparable(&w));
    let summary = w.last().unwrap();
    assert_eq!(summary["tool"], "evconform fuzz");
    assert_eq!(summary["options"]["seed"], 11);
    // Distinct cases, distinct libevent traces.
    let mut hashes: Vec<&str> = w
        .iter()
        .filter(|l| l["type"] == "seed")
        .map(|l| l["trace_hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 36);
    hashes.sort_unstable();
    hashes.dedup();
    assert!(hashes.len() > 30, "{} distinct traces", hashes.len());
    // A missing shard is an error (exit 2), as is a shard of another fuzz seed.
    let out = evconform()
        .arg("merge")
        .args(&reports[..2])
        .output()
        .expect("merge");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing: 3/3"));
    let other = dir.path().join("other.jsonl");
    let mut args = ARGS.to_vec();
    args[2] = "12";
    let out = evconform()
        .args(&args)
        .args(["--shard", "3/3", "--report"])
        .arg(&other)
        .output()
        .expect("another seed");
    assert_eq!(out.status.code(), Some(0));
    let out = evconform()
        .arg("merge")
        .args(&reports[..2])
        .arg(&other)
        .output()
        .expect("merge");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("disagree on options"));
}
