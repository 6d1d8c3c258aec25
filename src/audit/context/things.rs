//! The things a context stage asked the index about, packed and kept in two generations.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dataset::schema::{ThingContext, ThingShape};

/// The things a stage asked the index about, packed: its shape (type, attributes, groups) and its
/// disconnect reason interned, its connectivity in place, 24 bytes a thing in the table; the last
/// [`GENERATION`] to two generations of them, so that memory stays bounded whatever the fleet.
#[derive(Default)]
pub(super) struct Things {
    packed: HashMap<u64, Packed>,
    /// The generation before: a thing seen again moves back to `packed`.
    older: HashMap<u64, Packed>,
    pub(super) shapes: Vec<Arc<ThingShape>>,
    shape_ids: HashMap<Arc<ThingShape>, u32>,
    reasons: Vec<Arc<str>>,
}

/// One thing: `shape == NOT_INDEXED` when the index has no document of it.
#[derive(Clone, Copy)]
struct Packed {
    shape: u32,
    /// 0: not known, 1: disconnected, 2: connected.
    connected: u8,
    reason: u16,
    at_ms: i64,
}

/// Things kept per generation, two generations at most: two tables of 2^18 slots, about 13 MB.
/// A thing's rows of several jobs meet again within that many things in the fleets this is made
/// for (a discovery by job lists each job's things in the same order); past it, a thing is asked
/// about again.
pub(super) const GENERATION: usize = 200_000;

/// A thing's key in [`Things`]: half of its name's 128-bit hash. Two names of a million things
/// share one with a chance of about 3 in 100 million.
pub(super) fn short(key: u128) -> u64 {
    (key >> 64) as u64
}

const NOT_INDEXED: u32 = u32::MAX;
const NO_REASON: u16 = u16::MAX;
const NO_TIME: i64 = i64::MIN;

impl Things {
    pub(super) fn known(&self, key: u128) -> bool {
        let k = short(key);
        self.packed.contains_key(&k) || self.older.contains_key(&k)
    }

    /// Keeps `p` in the current generation; a full generation becomes the older one, and the
    /// older one is dropped.
    fn keep(&mut self, k: u64, p: Packed) {
        if self.packed.capacity() == 0 {
            // Sized once: a table grown by doubling would leave its old sizes behind.
            self.packed.reserve(GENERATION);
        }
        if self.packed.len() >= GENERATION {
            // The oldest table is dropped before the new one is made, the same size: its room is
            // used again.
            self.older = std::mem::take(&mut self.packed);
            self.packed.reserve(GENERATION);
        }
        self.packed.insert(k, p);
    }

    pub(super) fn insert(&mut self, key: u128, t: Option<ThingContext>) {
        let p = match t {
            None => Packed {
                shape: NOT_INDEXED,
                connected: 0,
                reason: NO_REASON,
                at_ms: NO_TIME,
            },
            Some(t) => Packed {
                shape: match self.shape_ids.get(&t.shape) {
                    Some(id) => *id,
                    None => {
                        let id = self.shapes.len() as u32;
                        self.shapes.push(t.shape.clone());
                        self.shape_ids.insert(t.shape, id);
                        id
                    }
                },
                connected: match t.connected {
                    None => 0,
                    Some(false) => 1,
                    Some(true) => 2,
                },
                reason: match t.disconnect_reason {
                    None => NO_REASON,
                    Some(r) => match self.reasons.iter().position(|x| *x == r) {
                        Some(k) => k as u16,
                        // A handful of reasons exist; past that many, the rest are not kept.
                        None if self.reasons.len() < usize::from(NO_REASON) => {
                            self.reasons.push(r);
                            (self.reasons.len() - 1) as u16
                        }
                        None => NO_REASON,
                    },
                },
                at_ms: t.connectivity_at_ms.unwrap_or(NO_TIME),
            },
        };
        self.keep(short(key), p);
    }

    /// The context of a thing asked about, `None` when it is not in the index (or not asked).
    pub(super) fn get(&mut self, key: u128) -> Option<ThingContext> {
        let k = short(key);
        let p = match self.packed.get(&k) {
            Some(p) => *p,
            None => {
                // Seen again: kept on, in the current generation.
                let p = self.older.remove(&k)?;
                self.keep(k, p);
                p
            }
        };
        let shape = self.shapes.get(p.shape as usize)?.clone();
        Some(ThingContext {
            shape,
            connected: match p.connected {
                1 => Some(false),
                2 => Some(true),
                _ => None,
            },
            connectivity_at_ms: (p.at_ms != NO_TIME).then_some(p.at_ms),
            disconnect_reason: self.reasons.get(usize::from(p.reason)).cloned(),
        })
    }
}
