//! Machine-readable results: the JSON Lines reports of `evsim explore --report FILE` (and of
//! `evconform fuzz --report FILE`), their JUnit XML form, and `evsim merge`, which combines
//! the reports of the shards of one run ([`crate::shard`]) into the report of the whole.
//!
//! A report is one JSON object a line, each with a `"type"`:
//!
//! - `"failure"`: a failing seed: `tool`, `target`, `profile`, `options` (clients, params,
//!   core fault, determinism check: everything a run depends on besides the seed), `seed`,
//!   `failure` (the first), `failures` (all), `trace_hash` (16 hex digits), `trace_lines`,
//!   `reproduce` (the command that replays it on its own).
//! - `"seed"` (only with `--report-all`): every seed run, passing or not: `tool`, `target`,
//!   `seed`, `ok`, `trace_hash`, `trace_lines`.
//! - `"summary"`, one per target and shard, last: `tool`, `target`, `profile`, `options`,
//!   `seeds` (`{"start": A, "end": B}`, B excluded: the whole range, not the shard's part),
//!   `shard` (`{"index": K, "count": N, "scheme": "stride"}`), `run`, `passed`, `failed`,
//!   `callbacks`, `seconds`, `seeds_per_sec`, `jobs` and `digest`: the XOR of a 64-bit mix of
//!   (seed, trace hash, trace lines, failed) over the seeds run. XOR does not depend on the
//!   order, so the digests of disjoint shards XOR to the digest of the unsharded run, and two
//!   runs with the same digest ran the same seeds with the same traces (up to 64-bit
//!   collisions).
//!
//! Within a target, failure lines come in seed order, then seed lines in seed order, then the
//! summary; the file does not depend on `--jobs` or on timing except for `seconds`,
//! `seeds_per_sec` and `jobs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use serde_json::{json, Map, Value};

use crate::shard::{Shard, SCHEME};
use crate::trace::TraceSummary;

/// The digest contribution of one seed: a 64-bit mix of its seed, trace and verdict.
pub fn seed_digest(seed: u64, trace: TraceSummary, failed: bool) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let lines = trace.lines as u64;
    for b in seed
        .to_le_bytes()
        .into_iter()
        .chain(trace.hash.to_le_bytes())
        .chain(lines.to_le_bytes())
        .chain([u8::from(failed)])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser, so that XOR-ing many of them mixes well.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A hash as reports write it: 16 lowercase hex digits.
pub fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// What every line of one target's report shares.
#[derive(Clone, Debug)]
pub struct Header {
    /// The program: `"evsim"`, or another tool writing the same format.
    pub tool: String,
    /// The target's name.
    pub target: String,
    /// The fault profile (or the tool's equivalent).
    pub profile: String,
    /// Everything else a run depends on besides the seed (an object).
    pub options: Value,
}

impl Header {
    /// A failing seed's line.
    pub fn failure(
        &self,
        seed: u64,
        failures: &[String],
        trace: TraceSummary,
        reproduce: &str,
    ) -> Value {
        json!({
            "type": "failure",
            "tool": self.tool,
            "target": self.target,
            "profile": self.profile,
            "options": self.options,
            "seed": seed,
            "failure": failures.first().cloned().unwrap_or_default(),
            "failures": failures,
            "trace_hash": hex(trace.hash),
            "trace_lines": trace.lines,
            "reproduce": reproduce,
        })
    }

    /// A seed's line (`--report-all`).
    pub fn seed(&self, seed: u64, ok: bool, trace: TraceSummary) -> Value {
        json!({
            "type": "seed",
            "tool": self.tool,
            "target": self.target,
            "seed": seed,
            "ok": ok,
            "trace_hash": hex(trace.hash),
            "trace_lines": trace.lines,
        })
    }

    /// The summary line.
    pub fn summary(&self, s: &Totals) -> Value {
        json!({
            "type": "summary",
            "tool": self.tool,
            "target": self.target,
            "profile": self.profile,
            "options": self.options,
            "seeds": {"start": s.seeds.start, "end": s.seeds.end},
            "shard": {"index": s.shard.index, "count": s.shard.count, "scheme": SCHEME},
            "run": s.run,
            "passed": s.run.saturating_sub(s.failed),
            "failed": s.failed,
            "callbacks": s.callbacks,
            "seconds": s.seconds,
            "seeds_per_sec": if s.seconds > 0.0 { s.run as f64 / s.seconds } else { 0.0 },
            "jobs": s.jobs,
            "digest": hex(s.digest),
        })
    }
}

/// The figures of a summary line.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// The whole seed range.
    pub seeds: Range<u64>,
    /// This part of it.
    pub shard: Shard,
    /// Seeds run.
    pub run: u64,
    /// Seeds failed.
    pub failed: u64,
    /// Callbacks run (simulated), or the tool's equivalent work count.
    pub callbacks: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Threads.
    pub jobs: u64,
    /// The XOR of [`seed_digest`] over the seeds run.
    pub digest: u64,
}

/// Lines as a JSON Lines text.
pub fn to_jsonl(lines: &[Value]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.to_string());
        s.push('\n');
    }
    s
}

/// Parses a JSON Lines report: every non-blank line an object with a known `"type"`.
pub fn parse(name: &str, text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("{name}:{}: not JSON: {e}", i + 1))?;
        match v.get("type").and_then(Value::as_str) {
            Some("failure" | "seed" | "summary") => out.push(v),
            Some(t) => return Err(format!("{name}:{}: unknown line type {t:?}", i + 1)),
            None => return Err(format!("{name}:{}: no \"type\"", i + 1)),
        }
    }
    Ok(out)
}

fn field<'a>(v: &'a Value, k: &str, at: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| format!("{at}: missing field {k:?}"))
}

fn u64_field(v: &Value, k: &str, at: &str) -> Result<u64, String> {
    field(v, k, at)?
        .as_u64()
        .ok_or_else(|| format!("{at}: field {k:?} is not an unsigned integer"))
}

fn str_field<'a>(v: &'a Value, k: &str, at: &str) -> Result<&'a str, String> {
    field(v, k, at)?
        .as_str()
        .ok_or_else(|| format!("{at}: field {k:?} is not a string"))
}

fn hex_field(v: &Value, k: &str, at: &str) -> Result<u64, String> {
    let s = str_field(v, k, at)?;
    u64::from_str_radix(s, 16).map_err(|e| format!("{at}: field {k:?} = {s:?}: {e}"))
}

/// A summary's seed range and shard.
pub fn range_and_shard(summary: &Value, at: &str) -> Result<(Range<u64>, Shard, String), String> {
    let seeds = field(summary, "seeds", at)?;
    let range = u64_field(seeds, "start", at)?..u64_field(seeds, "end", at)?;
    let sh = field(summary, "shard", at)?;
    let shard = Shard::new(u64_field(sh, "index", at)?, u64_field(sh, "count", at)?)
        .map_err(|e| format!("{at}: {e}"))?;
    let scheme = str_field(sh, "scheme", at)?.to_owned();
    Ok((range, shard, scheme))
}

/// One target's merged result.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The merged summary line (`shard` 1/1, `merged_from` the number of shards).
    pub summary: Value,
    /// The failure lines, in seed order.
    pub failures: Vec<Value>,
    /// The seed lines (`--report-all`), in seed order; empty unless every shard had them.
    pub seeds: Vec<Value>,
}

impl Merged {
    /// The merged report's lines: failures, seeds, summary.
    pub fn lines(&self) -> Vec<Value> {
        let mut v = self.failures.clone();
        v.extend(self.seeds.iter().cloned());
        v.push(self.summary.clone());
        v
    }
}

struct Part {
    file: String,
    summary: Value,
    failures: Vec<Value>,
    seeds: Vec<Value>,
}

/// Merges the reports `(name, text)` of the shards of one or more targets. Fails if a report
/// does not parse or lacks its summary, if the shards of a target disagree on the tool,
/// profile, options, seed range, N or scheme, if a shard appears twice, if one is missing, or
/// if a shard's lines do not add up (a report cut short).
pub fn merge(reports: &[(String, String)]) -> Result<Vec<Merged>, String> {
    // (tool, target) -> its parts, in the order given.
    let mut groups: BTreeMap<(String, String), Vec<Part>> = BTreeMap::new();
    for (name, text) in reports {
        let lines = parse(name, text)?;
        let mut parts: BTreeMap<(String, String), Part> = BTreeMap::new();
        let mut pending: Vec<(usize, Value)> = Vec::new();
        for (i, l) in lines.into_iter().enumerate() {
            let at = format!("{name}: line {}", i + 1);
            let key = (
                str_field(&l, "tool", &at)?.to_owned(),
                str_field(&l, "target", &at)?.to_owned(),
            );
            if l["type"] == "summary" {
                if parts.contains_key(&key) {
                    return Err(format!("{at}: a second summary of {} in one report", key.1));
                }
                parts.insert(
                    key,
                    Part {
                        file: name.clone(),
                        summary: l,
                        failures: Vec::new(),
                        seeds: Vec::new(),
                    },
                );
            } else {
                pending.push((i, l));
            }
        }
        for (i, l) in pending {
            let at = format!("{name}: line {}", i + 1);
            let key = (
                str_field(&l, "tool", &at)?.to_owned(),
                str_field(&l, "target", &at)?.to_owned(),
            );
            let p = parts.get_mut(&key).ok_or_else(|| {
                format!(
                    "{at}: no summary line for {}: the shard did not finish",
                    key.1
                )
            })?;
            if l["type"] == "failure" {
                p.failures.push(l);
            } else {
                p.seeds.push(l);
            }
        }
        if parts.is_empty() {
            return Err(format!(
                "{name}: no summary line: the shard did not finish (or this is not a report)"
            ));
        }
        for (k, p) in parts {
            groups.entry(k).or_default().push(p);
        }
    }
    groups
        .into_iter()
        .map(|((tool, target), parts)| merge_target(&tool, &target, parts))
        .collect()
}

fn merge_target(tool: &str, target: &str, parts: Vec<Part>) -> Result<Merged, String> {
    let first = &parts[0];
    let (range, shard0, scheme) = range_and_shard(&first.summary, &first.file)?;
    let n = shard0.count;
    let mut by_index: BTreeMap<u64, &Part> = BTreeMap::new();
    for p in &parts {
        let at = &p.file;
        let (r, sh, sc) = range_and_shard(&p.summary, at)?;
        for k in ["profile", "options"] {
            if p.summary.get(k) != first.summary.get(k) {
                return Err(format!(
                    "{target}: the shards disagree on {k}: {} in {} but {} in {}",
                    first.summary.get(k).unwrap_or(&Value::Null),
                    first.file,
                    p.summary.get(k).unwrap_or(&Value::Null),
                    at
                ));
            }
        }
        if r != range {
            return Err(format!(
                "{target}: the shards disagree on the seed range: {}..{} in {} but {}..{} in {at}",
                range.start, range.end, first.file, r.start, r.end
            ));
        }
        if sc != scheme || sh.count != n {
            return Err(format!(
                "{target}: the shards overlap: shard {shard0} ({scheme}) in {} and {sh} ({sc}) in {at} cut the range differently",
                first.file
            ));
        }
        if let Some(other) = by_index.insert(sh.index, p) {
            return Err(format!(
                "{target}: the shards overlap: shard {sh} is in both {} and {at}",
                other.file
            ));
        }
        // The shard's own lines must add up.
        let run = u64_field(&p.summary, "run", at)?;
        let failed = u64_field(&p.summary, "failed", at)?;
        if run != sh.len(&range) {
            return Err(format!(
                "{at}: shard {sh} of {target} ran {run} seeds of the {} it holds",
                sh.len(&range)
            ));
        }
        if p.failures.len() as u64 != failed {
            return Err(format!(
                "{at}: shard {sh} of {target} counts {failed} failures but lists {}",
                p.failures.len()
            ));
        }
        if !p.seeds.is_empty() && p.seeds.len() as u64 != run {
            return Err(format!(
                "{at}: shard {sh} of {target} ran {run} seeds but lists {}",
                p.seeds.len()
            ));
        }
        for l in p.failures.iter().chain(&p.seeds) {
            let seed = u64_field(l, "seed", at)?;
            if !sh.contains(&range, seed) {
                return Err(format!(
                    "{at}: seed {seed} of {target} is not in shard {sh} of {}..{}",
                    range.start, range.end
                ));
            }
        }
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| !by_index.contains_key(k))
        .take(20)
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        let more = (1..=n).filter(|k| !by_index.contains_key(k)).count() - missing.len();
        return Err(format!(
            "{target}: shards missing: {}{} ({} of {n} given)",
            missing.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            by_index.len()
        ));
    }
    let sum = |k: &str| -> Result<u64, String> {
        parts
            .iter()
            .map(|p| u64_field(&p.summary, k, &p.file))
            .sum()
    };
    let mut digest = 0u64;
    let mut seconds = 0f64;
    let mut rate = 0f64;
    for p in &parts {
        digest ^= hex_field(&p.summary, "digest", &p.file)?;
        let s = p
            .summary
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        seconds = seconds.max(s);
        rate += p
            .summary
            .get("seeds_per_sec")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
    }
    let mut failures: Vec<Value> = parts.iter().flat_map(|p| p.failures.clone()).collect();
    failures.sort_by_key(|l| l["seed"].as_u64());
    let all_seeds = parts
        .iter()
        .all(|p| !p.seeds.is_empty() || p.summary["run"] == 0);
    let mut seeds: Vec<Value> = if all_seeds {
        parts.iter().flat_map(|p| p.seeds.clone()).collect()
    } else {
        Vec::new()
    };
    seeds.sort_by_key(|l| l["seed"].as_u64());
    let run = sum("run")?;
    let failed = sum("failed")?;
    let mut summary = Map::new();
    summary.insert("type".into(), json!("summary"));
    summary.insert("tool".into(), json!(tool));
    summary.insert("target".into(), json!(target));
    summary.insert("profile".into(), first.summary["profile"].clone());
    summary.insert("options".into(), first.summary["options"].clone());
    summary.insert(
        "seeds".into(),
        json!({"start": range.start, "end": range.end}),
    );
    summary.insert(
        "shard".into(),
        json!({"index": 1, "count": 1, "scheme": scheme}),
    );
    summary.insert("run".into(), json!(run));
    summary.insert("passed".into(), json!(run - failed.min(run)));
    summary.insert("failed".into(), json!(failed));
    summary.insert("callbacks".into(), json!(sum("callbacks")?));
    summary.insert("seconds".into(), json!(seconds));
    summary.insert("seeds_per_sec".into(), json!(rate));
    summary.insert("jobs".into(), json!(sum("jobs")?));
    summary.insert("digest".into(), json!(hex(digest)));
    summary.insert("merged_from".into(), json!(n));
    Ok(Merged {
        summary: Value::Object(summary),
        failures,
        seeds,
    })
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML for targets' results `(summary, failure lines)`: one testsuite per target, one
/// testcase per failing seed (its failures and reproduce line), and one testcase for all the
/// passing seeds together (one testcase per seed would not scale to 10^8 seeds).
pub fn junit(results: &[(Value, Vec<Value>)]) -> String {
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let u64_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let tests_of = |s: &Value, f: &Vec<Value>| f.len() as u64 + u64::from(u64_of(s, "passed") > 0);
    let total: u64 = results.iter().map(|(s, f)| tests_of(s, f)).sum();
    let failures: usize = results.iter().map(|(_, f)| f.len()).sum();
    let tool = results
        .first()
        .map(|(s, _)| str_of(s, "tool"))
        .unwrap_or_else(|| "evsim".to_owned());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\">",
        xml(&tool)
    );
    for (s, fails) in results {
        let target = str_of(s, "target");
        let profile = str_of(s, "profile");
        let (range, shard) = match range_and_shard(s, "summary") {
            Ok((r, sh, _)) => (r, sh),
            Err(_) => (0..0, Shard::WHOLE),
        };
        let suite = format!("{target} (faults {profile})");
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
            xml(&suite),
            tests_of(s, fails),
            fails.len(),
            s.get("seconds").and_then(Value::as_f64).unwrap_or(0.0)
        );
        let class = format!("{}.{}", xml(&tool), xml(&target));
        for f in fails {
            let seed = u64_of(f, "seed");
            let mut body = String::new();
            for m in f
                .get("failures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(body, "{}", m.as_str().unwrap_or(""));
            }
            let _ = write!(body, "reproduce: {}", str_of(f, "reproduce"));
            let _ = writeln!(
                out,
                "    <testcase classname=\"{class}\" name=\"seed {seed}\">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml(&str_of(f, "failure")),
                xml(&body)
            );
        }
        let passed = u64_of(s, "passed");
        if passed > 0 {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{class}\" name=\"{passed} passing seeds of {}..{} (shard {shard})\"/>",
                range.start, range.end
            );
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            tool: "evsim".into(),
            target: "t".into(),
            profile: "none".into(),
            options: json!({"clients": 3}),
        }
    }

    fn tr(h: u64) -> TraceSummary {
        TraceSummary { hash: h, lines: 5 }
    }

    /// A shard's report of seeds 0..10 where seeds 3 and 7 fail.
    fn report(shard: Shard, all: bool) -> String {
        let h = header();
        let range = 0..10;
        let mut lines = Vec::new();
        let mut t = Totals {
            seeds: range.clone(),
            shard,
            jobs: 1,
            seconds: 1.0,
            ..Totals::default()
        };
        let mut seeds = Vec::new();
        for s in shard.seeds(&range) {
            let bad = s == 3 || s == 7;
            t.run += 1;
            t.callbacks += 10;
            t.digest ^= seed_digest(s, tr(s * 11), bad);
            if bad {
                t.failed += 1;
                lines.push(h.failure(s, &["boom \"x\"\n".into()], tr(s * 11), "evsim run t"));
            }
            if all {
                seeds.push(h.seed(s, !bad, tr(s * 11)));
            }
        }
        lines.extend(seeds);
        lines.push(h.summary(&t));
        to_jsonl(&lines)
    }

    #[test]
    fn shards_merge_to_the_whole() {
        let whole = merge(&[("w".into(), report(Shard::WHOLE, true))]).unwrap();
        let parts: Vec<(String, String)> = (1..=3)
            .map(|k| (format!("s{k}"), report(Shard::new(k, 3).unwrap(), true)))
            .collect();
        let merged = merge(&parts).unwrap();
        assert_eq!(merged.len(), 1);
        let strip = |v: &Value| {
            let mut v = v.clone();
            for k in ["seconds", "seeds_per_sec", "jobs", "merged_from"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        };
        assert_eq!(merged[0].failures, whole[0].failures);
        assert_eq!(merged[0].seeds, whole[0].seeds);
        assert_eq!(merged[0].seeds.len(), 10);
        assert_eq!(strip(&merged[0].summary), strip(&whole[0].summary));
        assert_eq!(merged[0].summary["failed"], 2);
        assert_eq!(merged[0].failures[1]["failure"], "boom \"x\"\n");
        // The merged report is itself a report that merges to itself.
        let again = merge(&[("m".into(), to_jsonl(&merged[0].lines()))]).unwrap();
        assert_eq!(strip(&again[0].summary), strip(&merged[0].summary));
    }

    #[test]
    fn missing_overlapping_and_disagreeing_shards_are_errors() {
        let r = |k, n| report(Shard::new(k, n).unwrap(), false);
        let e = merge(&[("a".into(), r(1, 3)), ("b".into(), r(3, 3))]).unwrap_err();
        assert!(e.contains("missing: 2/3"), "{e}");
        let e = merge(&[
            ("a".into(), r(1, 2)),
            ("b".into(), r(2, 2)),
            ("c".into(), r(2, 2)),
        ])
        .unwrap_err();
        assert!(e.contains("overlap") && e.contains("2/2"), "{e}");
        let e = merge(&[("a".into(), r(1, 2)), ("b".into(), r(2, 3))]).unwrap_err();
        assert!(e.contains("overlap"), "{e}");
        let other = r(2, 2).replace("\"none\"", "\"chaos\"");
        let e = merge(&[("a".into(), r(1, 2)), ("b".into(), other)]).unwrap_err();
        assert!(e.contains("disagree on profile"), "{e}");
        let other = r(2, 2).replace("\"clients\":3", "\"clients\":4");
        let e = merge(&[("a".into(), r(1, 2)), ("b".into(), other)]).unwrap_err();
        assert!(e.contains("disagree on options"), "{e}");
        // A report cut short: no summary.
        let cut: String = r(1, 1).lines().next().unwrap().to_owned();
        assert!(merge(&[("a".into(), cut)])
            .unwrap_err()
            .contains("did not finish"));
        assert!(merge(&[("a".into(), "{not json".into())])
            .unwrap_err()
            .contains("a:1"));
        assert!(merge(&[("a".into(), String::new())]).is_err());
    }

    #[test]
    fn reports_of_several_targets_merge_target_by_target() {
        // Each shard's report holds two targets (as `explore scenarios:DIR` writes).
        let two = |k| {
            let r = report(Shard::new(k, 2).unwrap(), false);
            format!("{r}{}", r.replace("\"target\":\"t\"", "\"target\":\"u\""))
        };
        let m = merge(&[("a".into(), two(1)), ("b".into(), two(2))]).unwrap();
        assert_eq!(m.len(), 2);
        for (g, name) in m.iter().zip(["t", "u"]) {
            assert_eq!(g.summary["target"], name);
            assert_eq!(g.summary["run"], 10);
            assert_eq!(g.failures.len(), 2);
            assert!(g.failures.iter().all(|f| f["target"] == name));
        }
        // A target missing from one shard's report is a missing shard of that target.
        let e = merge(&[
            ("a".into(), two(1)),
            ("b".into(), report(Shard::new(2, 2).unwrap(), false)),
        ])
        .unwrap_err();
        assert!(e.contains("u: shards missing: 2/2"), "{e}");
    }

    #[test]
    fn junit_lists_failures_with_their_reproduce_lines() {
        let m = merge(&[("w".into(), report(Shard::WHOLE, false))]).unwrap();
        let x = junit(&[(m[0].summary.clone(), m[0].failures.clone())]);
        assert!(x.contains("tests=\"3\" failures=\"2\""), "{x}");
        assert!(x.contains("name=\"seed 7\""), "{x}");
        assert!(x.contains("reproduce: evsim run t"), "{x}");
        assert!(x.contains("boom &quot;x&quot;"), "{x}");
        assert!(x.contains("8 passing seeds of 0..10 (shard 1/1)"), "{x}");
    }
}
