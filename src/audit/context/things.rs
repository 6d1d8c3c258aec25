//! The things a context stage asked the index about, packed and kept in two generations.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dataset::schema::{ThingContext, ThingShape};

/// The things a stage asked the index about, packed: its shape (type, attributes, groups) and its
/// disconnect reason interned, its connectivity in place, 24 bytes a thing in the table; the last
/// [`GENERATION`] to two generations of them, each with the shapes of its things, so that memory
/// stays bounded whatever the fleet, a thing with attributes of its own (a serial number) included.
#[derive(Default)]
pub(super) struct Things {
    current: Generation,
    /// The generation before: a thing seen again moves back to `current`.
    older: Generation,
    reasons: Vec<Arc<str>>,
}

/// One generation's things, and the shapes they use.
#[derive(Default)]
struct Generation {
    packed: HashMap<u64, Packed>,
    shapes: Vec<Arc<ThingShape>>,
    shape_ids: HashMap<Arc<ThingShape>, u32>,
}

impl Generation {
    fn shape_id(&mut self, shape: &Arc<ThingShape>) -> u32 {
        if let Some(id) = self.shape_ids.get(shape) {
            return *id;
        }
        let id = self.shapes.len() as u32;
        self.shapes.push(shape.clone());
        self.shape_ids.insert(shape.clone(), id);
        id
    }
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
    /// The shapes kept, in the current generation and the older one.
    #[cfg(test)]
    pub(super) fn shapes_kept(&self) -> (usize, usize) {
        (self.current.shapes.len(), self.older.shapes.len())
    }

    pub(super) fn known(&self, key: u128) -> bool {
        let k = short(key);
        self.current.packed.contains_key(&k) || self.older.packed.contains_key(&k)
    }

    /// Keeps `p`, of `shape`, in the current generation; a full generation becomes the older
    /// one, and the older one is dropped with its shapes.
    fn keep(&mut self, k: u64, mut p: Packed, shape: Option<&Arc<ThingShape>>) {
        if self.current.packed.capacity() == 0 {
            // Sized once: a table grown by doubling would leave its old sizes behind.
            self.current.packed.reserve(GENERATION);
        }
        if self.current.packed.len() >= GENERATION {
            // The oldest table is dropped before the new one is made, the same size: its room is
            // used again.
            self.older = std::mem::take(&mut self.current);
            self.current.packed.reserve(GENERATION);
        }
        p.shape = shape.map_or(NOT_INDEXED, |s| self.current.shape_id(s));
        self.current.packed.insert(k, p);
    }

    pub(super) fn insert(&mut self, key: u128, t: Option<ThingContext>) {
        let shape = t.as_ref().map(|t| t.shape.clone());
        let p = match t {
            None => Packed {
                shape: NOT_INDEXED,
                connected: 0,
                reason: NO_REASON,
                at_ms: NO_TIME,
            },
            Some(t) => Packed {
                // Set by `keep`, in the generation it goes to.
                shape: NOT_INDEXED,
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
        self.keep(short(key), p, shape.as_ref());
    }

    /// The context of a thing asked about, `None` when it is not in the index (or not asked).
    pub(super) fn get(&mut self, key: u128) -> Option<ThingContext> {
        let k = short(key);
        let (p, shape) = match self.current.packed.get(&k) {
            Some(p) => (*p, self.current.shapes.get(p.shape as usize).cloned()),
            None => {
                // Seen again: kept on, in the current generation, its shape with it.
                let p = self.older.packed.remove(&k)?;
                let shape = self.older.shapes.get(p.shape as usize).cloned();
                self.keep(k, p, shape.as_ref());
                (p, shape)
            }
        };
        let shape = shape?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Things, GENERATION};
    use crate::dataset::schema::{ThingContext, ThingShape};

    #[test]
    fn things_are_kept_two_generations_and_a_thing_seen_again_stays() {
        let ctx = |n: u64| ThingContext {
            shape: Arc::new(ThingShape {
                thing_type: Some(format!("type-{}", n % 3)),
                ..ThingShape::default()
            }),
            connected: Some(n.is_multiple_of(2)),
            connectivity_at_ms: Some(n as i64),
            disconnect_reason: (n % 2 == 1).then(|| Arc::from("CONNECTION_LOST")),
        };
        let key = |n: u64| u128::from(n) << 64 | 7;
        let mut t = Things::default();
        for n in 0..GENERATION as u64 {
            t.insert(key(n), Some(ctx(n)));
        }
        // Thing 0 read again while in the older generation: it moves back to the current one.
        for n in GENERATION as u64..(GENERATION as u64 + 10) {
            t.insert(key(n), Some(ctx(n)));
        }
        assert_eq!(t.get(key(0)), Some(ctx(0)));
        for n in (GENERATION as u64 + 10)..(2 * GENERATION as u64 + 5) {
            t.insert(key(n), Some(ctx(n)));
        }
        assert!(t.known(key(0)), "kept on when seen again");
        assert!(!t.known(key(1)), "two generations ago: dropped");
        assert_eq!(
            t.get(key(2 * GENERATION as u64)),
            Some(ctx(2 * GENERATION as u64))
        );
        assert_eq!(t.shapes_kept().0, 3, "a shape is kept once a generation");
    }

    #[test]
    fn things_with_attributes_of_their_own_keep_their_shapes_two_generations_only() {
        // A serial number per thing: every thing its own shape.
        let ctx = |n: u64| ThingContext {
            shape: Arc::new(ThingShape {
                attributes: vec![("serial".into(), format!("SN-{n:012}"))],
                ..ThingShape::default()
            }),
            ..ThingContext::default()
        };
        let key = |n: u64| u128::from(n) << 64;
        let mut t = Things::default();
        let n = 3 * GENERATION as u64 + 7;
        for i in 0..n {
            t.insert(key(i), Some(ctx(i)));
        }
        let (current, older) = t.shapes_kept();
        assert_eq!(
            (current, older),
            (7, GENERATION),
            "the oldest generation's shapes went with it"
        );
        assert_eq!(t.get(key(n - 1)), Some(ctx(n - 1)));
        // A thing of the older generation seen again takes its shape back with it.
        let back = n - 8;
        assert_eq!(t.get(key(back)), Some(ctx(back)));
        assert_eq!(t.shapes_kept().0, 8);
        assert_eq!(t.get(key(back)), Some(ctx(back)));
    }
}
