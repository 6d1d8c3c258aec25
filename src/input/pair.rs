//! The pair: one (thing, job) to audit, and the one way it is hashed.
//!
//! Every hash of a pair is xxh3 over `thing_name`, a NUL byte and `job_id` (no seed, so the same on
//! every machine and version): 64 bits to pick a shard ([`pair_hash`], part of `--shard`'s contract)
//! and to find duplicate input lines ([`Pair::line_hash`], which adds the execution number), 128 bits
//! where a collision would lose a row ([`pair_key`]: the pairs a resumed discovery skips).

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// One pair to describe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub thing_name: String,
    pub job_id: String,
    /// The execution number asked for (from a pairs file), or `None` for the latest.
    pub execution_number: Option<i64>,
}

fn hasher(thing_name: &str, job_id: &str) -> Xxh3 {
    let mut h = Xxh3::new();
    h.update(thing_name.as_bytes());
    h.update(&[0]);
    h.update(job_id.as_bytes());
    h
}

/// The pair's hash: `xxh3_64` of `thing_name`, a NUL byte, and `job_id`.
pub(crate) fn pair_hash(thing_name: &str, job_id: &str) -> u64 {
    hasher(thing_name, job_id).digest()
}

/// The pair's 128-bit key (`xxh3_128` of the same bytes): a set of these never confuses two pairs.
pub(crate) fn pair_key(thing_name: &str, job_id: &str) -> u128 {
    hasher(thing_name, job_id).digest128()
}

/// A name's hash (a job id or a thing name): `xxh3_64` of its bytes.
pub(crate) fn name_hash(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

impl Pair {
    /// The hash of an input line holding this pair: the pair's bytes, then the execution number.
    pub(crate) fn line_hash(&self) -> u64 {
        let mut h = hasher(&self.thing_name, &self.job_id);
        h.update(&[0xff]);
        h.update(&self.execution_number.unwrap_or(-1).to_le_bytes());
        h.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_share_one_encoding() {
        assert_eq!(pair_hash("t", "j"), xxh3_64(b"t\0j"));
        assert_eq!(
            pair_key("t", "j"),
            xxhash_rust::xxh3::xxh3_128(b"t\0j"),
            "the 128-bit key hashes the same bytes"
        );
        let p = |n| Pair {
            thing_name: "t".into(),
            job_id: "j".into(),
            execution_number: n,
        };
        assert_ne!(p(None).line_hash(), p(Some(1)).line_hash());
        assert_eq!(p(Some(1)).line_hash(), p(Some(1)).line_hash());
    }
}
