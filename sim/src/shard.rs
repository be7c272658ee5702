//! Shards: the K-th of N deterministic, disjoint parts of a seed range (or of a case stream)
//! whose union is the whole, so that a run can be spread over the machines of a scheduler people
//! already have (a CI matrix, a Kubernetes Indexed Job, a Slurm job array).
//!
//! The parts are *strided*: with the range `A..B` and `--shard K/N` (K counts from 1), the
//! shard runs the seeds `s` of `A..B` with `(s - A) % N == K - 1`, i.e. `A+K-1, A+K-1+N, …`.
//! Striding keeps the shards' loads even when seeds get slower along the range, and a seed's
//! run does not depend on which shard runs it (each seed is its own simulation).
//!
//! ```
//! use evloop_sim::shard::Shard;
//! let s = Shard::parse("3/4").unwrap();
//! let seeds: Vec<u64> = s.seeds(&(10..20)).collect();
//! assert_eq!(seeds, [12, 16]);
//! assert!(Shard::parse("0/4").is_err()); // K counts from 1
//! ```

use std::ops::Range;

/// The command-line options that choose a shard, shared by `evsim explore` and
/// `evconform fuzz` (flatten them into a clap command).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ShardArgs {
    /// Run only part K of N (K from 1 to N): the seeds (or cases) s of the range A..B with
    /// (s - A) % N == K - 1. The shards of one range are disjoint and cover it. See
    /// docs/scale-out.md.
    #[arg(long, value_name = "K/N", conflicts_with = "shard_from_env")]
    pub shard: Option<String>,
    /// Take K and N from the scheduler: EVSIM_SHARD=K/N, Slurm's SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, Kubernetes' JOB_COMPLETION_INDEX (with --shard-count or
    /// EVSIM_SHARD_COUNT), GitLab's CI_NODE_INDEX and CI_NODE_TOTAL.
    #[arg(long)]
    pub shard_from_env: bool,
    /// N for --shard-from-env where the scheduler does not give it (Kubernetes).
    #[arg(long, value_name = "N", requires = "shard_from_env",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_count: Option<u64>,
}

impl ShardArgs {
    /// The shard the options name, or `None` without `--shard`/`--shard-from-env`. A shard
    /// taken from the environment is reported on stderr, prefixed with `tool`.
    pub fn resolve(&self, tool: &str) -> Result<Option<Shard>, String> {
        if let Some(s) = &self.shard {
            return Shard::parse(s).map(Some);
        }
        if self.shard_from_env {
            let (s, from) = Shard::from_env(|k| std::env::var(k).ok(), self.shard_count)?;
            eprintln!("{tool}: shard {s} (from {from})");
            return Ok(Some(s));
        }
        Ok(None)
    }
}

/// How the parts are cut, as written in reports.
pub const SCHEME: &str = "stride";

/// The K-th (1-based) of N parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// K, from 1 to `count`.
    pub index: u64,
    /// N, at least 1.
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The environment variables `--shard-from-env` reads, in the order it tries them.
pub const ENV_HELP: &str =
    "EVSIM_SHARD=K/N (any scheduler; GitHub Actions: set it from the matrix); \
SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (and SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_STEP); \
JOB_COMPLETION_INDEX (Kubernetes Indexed Job, 0-based) with --shard-count or EVSIM_SHARD_COUNT; \
CI_NODE_INDEX with CI_NODE_TOTAL (GitLab parallel, 1-based)";

impl Shard {
    /// The whole range: `1/1`.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// `K/N` with `1 <= K <= N`, checked.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!("shard {index}/{count}: N must be at least 1"));
        }
        if index == 0 {
            return Err(format!(
                "shard {index}/{count}: K counts from 1 (1 to {count})"
            ));
        }
        if index > count {
            return Err(format!(
                "shard {index}/{count}: K must be at most N ({count})"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N` (K counts from 1).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected K/N, e.g. 3/4 (K counts from 1)"))?;
        let k: u64 = k
            .trim()
            .parse()
            .map_err(|e| format!("--shard {s:?}: K: {e}"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|e| format!("--shard {s:?}: N: {e}"))?;
        Shard::new(k, n).map_err(|e| format!("--shard {s:?}: {e}"))
    }

    /// K and N from a scheduler's environment (`get` reads a variable; see [`ENV_HELP`] for
    /// the order). `count` is `--shard-count`: N where the scheduler does not say it
    /// (Kubernetes), checked against it where it does. Returns the shard and where it came
    /// from.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        count: Option<u64>,
    ) -> Result<(Shard, &'static str), String> {
        let num = |name: &str| -> Result<Option<u64>, String> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|e| format!("{name}={v:?}: {e}")),
            }
        };
        let total = |from_env: Option<u64>, what: &str| -> Result<u64, String> {
            match (from_env, count) {
                (Some(a), Some(b)) if a != b => {
                    Err(format!("--shard-count {b} disagrees with {what}={a}"))
                }
                (Some(a), _) => Ok(a),
                (None, Some(b)) => Ok(b),
                (None, None) => Err(format!(
                    "{what} is not set: give N with --shard-count N or EVSIM_SHARD_COUNT"
                )),
            }
        };
        if let Some(v) = get("EVSIM_SHARD").filter(|v| !v.trim().is_empty()) {
            let s = Shard::parse(&v).map_err(|e| format!("EVSIM_SHARD: {e}"))?;
            total(Some(s.count), "EVSIM_SHARD's N")?;
            return Ok((s, "EVSIM_SHARD"));
        }
        let env_count = num("EVSIM_SHARD_COUNT")?;
        let count_or_env = |from: Option<u64>, what: &str| -> Result<u64, String> {
            match (from, env_count) {
                (None, Some(c)) => total(Some(c), "EVSIM_SHARD_COUNT"),
                _ => total(from, what),
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let n = count_or_env(num("SLURM_ARRAY_TASK_COUNT")?, "SLURM_ARRAY_TASK_COUNT")?;
            if id < min || (id - min) % step != 0 {
                return Err(format!(
                    "SLURM_ARRAY_TASK_ID={id} is not MIN + i*STEP (MIN {min}, STEP {step})"
                ));
            }
            let k = (id - min) / step + 1;
            let s = Shard::new(k, n).map_err(|e| format!("from SLURM_ARRAY_TASK_*: {e}"))?;
            return Ok((s, "SLURM_ARRAY_TASK_ID"));
        }
        if let Some(i) = num("JOB_COMPLETION_INDEX")? {
            let n = count_or_env(None, "the job's completions")?;
            let k = i
                .checked_add(1)
                .ok_or_else(|| format!("JOB_COMPLETION_INDEX={i}: too large"))?;
            let s = Shard::new(k, n).map_err(|e| format!("from JOB_COMPLETION_INDEX: {e}"))?;
            return Ok((s, "JOB_COMPLETION_INDEX"));
        }
        if let Some(k) = num("CI_NODE_INDEX")? {
            let n = count_or_env(num("CI_NODE_TOTAL")?, "CI_NODE_TOTAL")?;
            let s = Shard::new(k, n).map_err(|e| format!("from CI_NODE_INDEX: {e}"))?;
            return Ok((s, "CI_NODE_INDEX"));
        }
        Err(format!(
            "--shard-from-env: no scheduler variable is set; expected one of: {ENV_HELP}"
        ))
    }

    /// The number of seeds of `range` in this shard.
    pub fn len(&self, range: &Range<u64>) -> u64 {
        let total = range.end.saturating_sub(range.start);
        let k0 = self.index - 1;
        if total <= k0 {
            0
        } else {
            (total - k0 - 1) / self.count + 1
        }
    }

    /// True if no seed of `range` is in this shard (N larger than the range).
    pub fn is_empty(&self, range: &Range<u64>) -> bool {
        self.len(range) == 0
    }

    /// The `i`-th seed of this shard (`i < len`).
    pub fn nth(&self, range: &Range<u64>, i: u64) -> u64 {
        range.start + (self.index - 1) + i * self.count
    }

    /// True if `seed` is in `range` and in this shard.
    pub fn contains(&self, range: &Range<u64>, seed: u64) -> bool {
        range.contains(&seed) && (seed - range.start) % self.count == self.index - 1
    }

    /// This shard's seeds of `range`, in order.
    pub fn seeds(&self, range: &Range<u64>) -> impl Iterator<Item = u64> + '_ {
        let r = range.clone();
        let me = *self;
        (0..self.len(range)).map(move |i| me.nth(&r, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn shards_tile_the_range() {
        for (a, b) in [
            (0u64, 1u64),
            (0, 10),
            (7, 8),
            (5, 103),
            (u64::MAX - 9, u64::MAX),
        ] {
            for n in 1..=12u64 {
                let mut seen = Vec::new();
                for k in 1..=n {
                    let s = Shard::new(k, n).unwrap();
                    let v: Vec<u64> = s.seeds(&(a..b)).collect();
                    assert_eq!(v.len() as u64, s.len(&(a..b)));
                    assert!(v.iter().all(|&x| s.contains(&(a..b), x)));
                    seen.extend(v);
                }
                seen.sort_unstable();
                assert_eq!(seen, (a..b).collect::<Vec<_>>(), "{a}..{b} in {n}");
            }
        }
    }

    #[test]
    fn parse_rejects_bad_shards() {
        assert_eq!(Shard::parse("1/1"), Ok(Shard::WHOLE));
        assert_eq!(Shard::parse(" 4 / 4 "), Ok(Shard { index: 4, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "3", "a/4", "3/b", "-1/4", "/", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let m: BTreeMap<&str, &str> = vars.iter().copied().collect();
        move |k| m.get(k).map(|v| v.to_string())
    }

    #[test]
    fn schedulers_environments() {
        let s = |k, n| Shard::new(k, n).unwrap();
        assert_eq!(
            Shard::from_env(env(&[("EVSIM_SHARD", "2/5")]), None).unwrap(),
            (s(2, 5), "EVSIM_SHARD")
        );
        // Slurm: `--array=0-7` and `--array=1-8` both give 1/8 for their first task.
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(Shard::from_env(env(&slurm), None).unwrap().0, s(1, 8));
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(Shard::from_env(env(&slurm), None).unwrap().0, s(8, 8));
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(Shard::from_env(env(&slurm), None).unwrap().0, s(4, 4));
        // Kubernetes: the index is 0-based and the total comes from a flag or a variable.
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(Shard::from_env(env(&k8s), Some(4)).unwrap().0, s(4, 4));
        assert!(Shard::from_env(env(&k8s), None).is_err());
        assert!(Shard::from_env(env(&k8s), Some(3)).is_err());
        let k8s = [("JOB_COMPLETION_INDEX", "0"), ("EVSIM_SHARD_COUNT", "10")];
        assert_eq!(Shard::from_env(env(&k8s), None).unwrap().0, s(1, 10));
        assert!(Shard::from_env(env(&k8s), Some(9)).is_err());
        // GitLab: 1-based.
        let gl = [("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")];
        assert_eq!(
            Shard::from_env(env(&gl), None).unwrap(),
            (s(2, 3), "CI_NODE_INDEX")
        );
        assert!(Shard::from_env(env(&gl), Some(4)).is_err());
        // Nothing set, or nonsense.
        assert!(Shard::from_env(env(&[]), Some(4)).is_err());
        assert!(
            Shard::from_env(env(&[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "3")]), None).is_err()
        );
        assert!(
            Shard::from_env(env(&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "3")]), None).is_err()
        );
    }
}
