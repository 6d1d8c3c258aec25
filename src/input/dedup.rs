//! Exact de-duplication in two passes: a sorted vector of 64-bit hashes finds the suspects (hashes
//! seen more than once); only lines with a suspect hash are compared by content, so a collision never
//! drops a pair and memory stays at 8 bytes a line.

use std::collections::{HashMap, HashSet};

use super::InputError;

/// Hashes that occur more than once in `v` (which is sorted in place).
pub(super) fn repeated(mut v: Vec<u64>) -> HashSet<u64> {
    v.sort_unstable();
    v.windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect()
}

/// Exact de-duplication given the set of hashes seen more than once.
#[derive(Default)]
pub(super) struct Dedup {
    pub(super) suspects: HashSet<u64>,
    pub(super) seen: HashMap<u64, Vec<String>>,
}

impl Dedup {
    /// Whether the key was seen before (and records it if not).
    pub(super) fn is_duplicate(&mut self, h: u64, key: impl FnOnce() -> String) -> bool {
        if !self.suspects.contains(&h) {
            return false;
        }
        let k = key();
        let seen = self.seen.entry(h).or_default();
        if seen.contains(&k) {
            true
        } else {
            seen.push(k);
            false
        }
    }
}

/// The distinct count of `total` lines whose hashes repeat as `suspects`: `total` when none does
/// (no second read), else what `second_pass` (a de-duplicating read) yields. `(unique, duplicates)`.
pub(super) fn distinct<I, T>(
    total: u64,
    suspects: &HashSet<u64>,
    second_pass: impl FnOnce() -> Result<I, InputError>,
) -> Result<(u64, u64), InputError>
where
    I: Iterator<Item = Result<T, InputError>>,
{
    if suspects.is_empty() {
        return Ok((total, 0));
    }
    let mut unique = 0;
    for r in second_pass()? {
        r?;
        unique += 1;
    }
    Ok((unique, total - unique))
}
