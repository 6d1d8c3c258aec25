//! Shards: a stable hash partition of an audit's work, so that N processes (a Kubernetes Indexed Job,
//! an AWS Batch array job, N terminals) each take one part with no coordination between them.
//!
//! A hash of the names, not a range of lines, decides where work goes: the partition then depends only
//! on what a pair is called, never on the order of the input files or on what another shard saw, so
//! each shard computes its own part alone and the N parts are disjoint and cover the input exactly.
//! Describe mode partitions pairs by `xxh3_64(thing_name + "\0" + job_id)`; discovery partitions the
//! jobs (or things) it lists by `xxh3_64(name)`. The hashes are fixed (xxh3 has no seed here): the same
//! names fall in the same shard on every machine and every version that keeps this module's contract.
//!
//! `--shard N` (or `auto/N`) takes the index from the scheduler: `JOB_COMPLETION_INDEX` (Kubernetes
//! Indexed Job) or `AWS_BATCH_JOB_ARRAY_INDEX` (AWS Batch array job). Parsing takes the environment as
//! a lookup function so that it stays pure and testable.

use std::fmt;

/// The environment variables that carry a shard index, in the order they are consulted.
pub(crate) const INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Shard `index` of `count` (0-based): the pairs whose hash modulo `count` is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a `--shard` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `K/N`, `N` or `auto/N`.
    #[error("`{0}` is not K/N, N or auto/N (for example 2/8, or 8 to take K from the scheduler)")]
    Syntax(String),
    /// `N` is 0.
    #[error("the shard count must be at least 1")]
    ZeroCount,
    /// `K` is not below `N`.
    #[error(
        "shard index {index}{from} must be below the shard count {count} (indexes are 0-based)"
    )]
    OutOfRange {
        index: u64,
        count: u32,
        /// ` (from VAR)` when the index came from the environment, else empty.
        from: String,
    },
    /// `N` or `auto/N` with neither variable set.
    #[error("--shard without an index needs JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job) in the environment; neither is set (or give K/N)")]
    NoIndex,
    /// A variable holds something other than a non-negative integer.
    #[error("{var}={value:?} is not a shard index (a non-negative integer)")]
    BadIndexVar { var: &'static str, value: String },
    /// Both variables are set, to different indexes.
    #[error("JOB_COMPLETION_INDEX={k8s} and AWS_BATCH_JOB_ARRAY_INDEX={batch} disagree; unset one, or give K/N")]
    Conflict { k8s: u64, batch: u64 },
}

/// Parses a run of ASCII digits (no sign, no blanks) as u64.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The hashes a shard is chosen by: one encoding of a pair for every use (`crate::input::pair`).
pub(crate) use crate::input::pair::{name_hash, pair_hash};

impl Shard {
    /// Shard `index` of `count`; `index` must be below `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::OutOfRange {
                index: index.into(),
                count,
                from: String::new(),
            });
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N`, or `N` / `auto/N` with K from [`INDEX_VARS`] looked up through `env` (a variable
    /// set to an empty string counts as unset). When both variables are set they must agree.
    pub fn parse(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(spec.to_string());
        let spec_t = spec.trim();
        let (k, n) = match spec_t.split_once('/') {
            Some((k, n)) => (Some(k.trim()), n.trim()),
            None => (None, spec_t),
        };
        let count = digits(n).ok_or_else(syntax)?;
        let count = u32::try_from(count).map_err(|_| syntax())?;
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        let (index, from) = match k {
            Some("auto") | None => index_from_env(&env)?,
            Some(k) => (digits(k).ok_or_else(syntax)?, String::new()),
        };
        if index >= u64::from(count) {
            return Err(ShardError::OutOfRange { index, count, from });
        }
        Ok(Shard {
            index: index as u32,
            count,
        })
    }

    /// The 0-based index K.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards N.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn owns_hash(&self, h: u64) -> bool {
        h % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether the pair belongs to this shard (describe mode).
    pub fn owns_pair(&self, thing_name: &str, job_id: &str) -> bool {
        self.owns_hash(pair_hash(thing_name, job_id))
    }

    /// Whether a job id or thing name belongs to this shard (discovery).
    pub fn owns_name(&self, name: &str) -> bool {
        self.owns_hash(name_hash(name))
    }

    /// `s<K>of<N>`, as it appears in part file names.
    pub(crate) fn file_tag(&self) -> String {
        format!("s{}of{}", self.index, self.count)
    }
}

/// `K/N`.
impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The index the scheduler set, and ` (from VAR)` for messages.
fn index_from_env(env: &impl Fn(&str) -> Option<String>) -> Result<(u64, String), ShardError> {
    let mut found: Vec<(&'static str, u64)> = Vec::new();
    for var in INDEX_VARS {
        let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let index = digits(value.trim()).ok_or(ShardError::BadIndexVar { var, value })?;
        found.push((var, index));
    }
    match found.as_slice() {
        [] => Err(ShardError::NoIndex),
        [(var, index)] => Ok((*index, format!(" (from {var})"))),
        [(var, a), (_, b)] if a == b => Ok((*a, format!(" (from {var})"))),
        [(_, a), (_, b), ..] => Err(ShardError::Conflict { k8s: *a, batch: *b }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use xxhash_rust::xxh3::xxh3_64;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn explicit_k_of_n() {
        let s = Shard::parse("2/8", none).unwrap();
        assert_eq!((s.index(), s.count()), (2, 8));
        assert_eq!(s.to_string(), "2/8");
        assert_eq!(s.file_tag(), "s2of8");
        assert_eq!(
            Shard::parse(" 0 / 1 ", none).unwrap(),
            Shard::new(0, 1).unwrap()
        );
        // An explicit K wins over the environment.
        let s = Shard::parse("1/4", env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap();
        assert_eq!(s.index(), 1);
    }

    #[test]
    fn bad_specs_are_refused_with_their_reason() {
        for bad in [
            "",
            "x",
            "1/",
            "/4",
            "a/4",
            "-1/4",
            "+1/4",
            "1/2/3",
            "1.5/4",
            "1/99999999999",
        ] {
            assert_eq!(
                Shard::parse(bad, none),
                Err(ShardError::Syntax(bad.to_string())),
                "{bad:?}"
            );
        }
        assert_eq!(Shard::parse("0/0", none), Err(ShardError::ZeroCount));
        assert_eq!(Shard::parse("0", none), Err(ShardError::ZeroCount));
        let e = Shard::parse("4/4", none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard index 4 must be below the shard count 4 (indexes are 0-based)"
        );
        assert!(matches!(
            Shard::new(3, 3),
            Err(ShardError::OutOfRange {
                index: 3,
                count: 3,
                ..
            })
        ));
    }

    #[test]
    fn n_alone_and_auto_take_the_index_from_the_scheduler() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(Shard::parse("4", &k8s).unwrap(), Shard::new(3, 4).unwrap());
        assert_eq!(
            Shard::parse("auto/4", &k8s).unwrap(),
            Shard::new(3, 4).unwrap()
        );
        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0")]);
        assert_eq!(
            Shard::parse("auto/2", batch).unwrap(),
            Shard::new(0, 2).unwrap()
        );
        // Both set and agreeing is fine; disagreeing is refused.
        let both = env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
        ]);
        assert_eq!(Shard::parse("2", both).unwrap(), Shard::new(1, 2).unwrap());
        let clash = env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("AWS_BATCH_JOB_ARRAY_INDEX", "0"),
        ]);
        assert_eq!(
            Shard::parse("2", clash),
            Err(ShardError::Conflict { k8s: 1, batch: 0 })
        );
    }

    #[test]
    fn a_missing_or_bad_index_is_a_clear_error() {
        let e = Shard::parse("auto/4", none).unwrap_err();
        assert_eq!(e, ShardError::NoIndex);
        let msg = e.to_string();
        assert!(
            msg.contains("JOB_COMPLETION_INDEX") && msg.contains("AWS_BATCH_JOB_ARRAY_INDEX"),
            "{msg}"
        );
        // Set but empty counts as unset.
        assert_eq!(
            Shard::parse("4", env(&[("JOB_COMPLETION_INDEX", " ")])),
            Err(ShardError::NoIndex)
        );
        let e = Shard::parse("4", env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "two")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_BATCH_JOB_ARRAY_INDEX=\"two\" is not a shard index (a non-negative integer)"
        );
        // K >= N names where K came from.
        let e = Shard::parse("auto/4", env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard index 4 (from JOB_COMPLETION_INDEX) must be below the shard count 4 (indexes are 0-based)"
        );
    }

    #[test]
    fn the_pair_hash_is_xxh3_of_thing_nul_job() {
        for (t, j) in [("thing-000001", "job-001"), ("", ""), ("a:b_c-d", "x")] {
            assert_eq!(pair_hash(t, j), xxh3_64(format!("{t}\0{j}").as_bytes()));
        }
        // The NUL keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(pair_hash("ab", "c"), pair_hash("a", "bc"));
        // Fixed values: a change here moves pairs between shards, which breaks resumes and mixes
        // datasets that different versions wrote.
        assert_eq!(
            pair_hash("thing-000001", "job-001"),
            2_859_990_943_101_929_874
        );
        assert_eq!(name_hash("job-001"), 13_706_389_774_260_544_141);
        assert_eq!(name_hash("job-001"), xxh3_64(b"job-001"));
    }

    #[test]
    fn shards_partition_pairs_exactly_and_evenly() {
        let n = 5;
        let shards: Vec<Shard> = (0..n).map(|k| Shard::new(k, n).unwrap()).collect();
        let mut sizes = vec![0u32; n as usize];
        for t in 0..2000 {
            for j in 0..5 {
                let (t, j) = (format!("thing-{t:06}"), format!("job-{j:03}"));
                let owners: Vec<usize> = (0..n as usize)
                    .filter(|&k| shards[k].owns_pair(&t, &j))
                    .collect();
                assert_eq!(owners.len(), 1, "{t}/{j} owned by {owners:?}");
                sizes[owners[0]] += 1;
            }
        }
        // 10,000 pairs over 5 shards: each within 10% of 2,000.
        for s in sizes {
            assert!((1800..=2200).contains(&s), "{s}");
        }
        // A single shard owns everything.
        let all = Shard::new(0, 1).unwrap();
        assert!(all.owns_pair("x", "y") && all.owns_name("z"));
    }
}
