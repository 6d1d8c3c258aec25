//! The things' context in an account without fleet indexing (or whose policy does not permit
//! SearchIndex): their thing type and attributes from the registry's listing (ListThings, 250 a
//! page) and their groups from the groups' member lists (ListThingGroups, then
//! ListThingsInThingGroup per group, 250 a page). The account's whole registry is read once, at the
//! first thing that needs it: a call per 250 things of the account, where asking thing by thing
//! would be a call or two per audited thing. Connectivity has no such source: it stays unknown.

use std::collections::HashMap;
use std::sync::Arc;

use super::things::short;
use super::{Stage, Stop, LIST_THINGS, LIST_THINGS_IN_GROUP, LIST_THING_GROUPS};
use crate::aws::client::{FleetContext, FleetLister, ThingContext, ThingShape, MAX_GROUPS};
use crate::input::pair::pair_key;

/// The account's things as its registry lists them: the short keys of their names, sorted, and
/// beside each the index of its shape; a shape is kept once for all the things alike. About 12
/// bytes a thing: a million-thing account's registry is 12 MB, beside at most [`MAX_SHAPES`]
/// shapes as listed (and those their groups make).
#[derive(Default)]
pub(super) struct Registry {
    keys: Vec<u64>,
    shape_of: Vec<u32>,
    shapes: Shapes,
}

impl Registry {
    /// Thing `name`'s context: its shape, its connectivity unknown.
    pub(super) fn get(&self, name: &str) -> Option<ThingContext> {
        let i = self.keys.binary_search(&short(pair_key(name, ""))).ok()?;
        Some(ThingContext {
            shape: self.shapes.all[self.shape_of[i] as usize].clone(),
            connected: None,
            connectivity_at_ms: None,
            disconnect_reason: None,
        })
    }
}

/// Most distinct shapes read from the registry's listing of things (about 200 bytes each).
pub(super) const MAX_SHAPES: usize = 200_000;

/// The distinct shapes, each once, by index.
#[derive(Default)]
struct Shapes {
    all: Vec<Arc<ThingShape>>,
    index: HashMap<Arc<ThingShape>, u32>,
}

impl Shapes {
    fn intern(&mut self, shape: ThingShape) -> u32 {
        if let Some(i) = self.index.get(&shape) {
            return *i;
        }
        let s = Arc::new(shape);
        let i = self.all.len() as u32;
        self.all.push(s.clone());
        self.index.insert(s, i);
        i
    }
}

impl<C: FleetContext + FleetLister> Stage<C> {
    /// The account's registry, read whole; `None` when nothing of it could be read (said by
    /// [`Stage::call`]).
    pub(super) async fn read_registry(&mut self) -> Result<Option<Registry>, Stop> {
        let Some(mut registry) = self.read_things().await? else {
            return Ok(None);
        };
        if !self.read_groups(&mut registry).await? {
            self.warn(
                "the registry's thing groups could not all be read: the things have no thing \
                 context from the registry",
            );
            // None of it: a thing's groups would be short of some (wrong, where unknown is null).
            return Ok(None);
        }
        Ok(Some(registry))
    }

    /// The registry's things with their type and attributes (ListThings), their groups not read.
    async fn read_things(&mut self) -> Result<Option<Registry>, Stop> {
        let client = self.client.clone();
        let mut shapes = Shapes::default();
        let mut listed_things: Vec<(u64, u32)> = Vec::new();
        let mut full = false;
        let listed = self
            .pages(
                LIST_THINGS,
                "ListThings",
                |t| client.list_things(t),
                |page| {
                    for (name, shape) in page {
                        listed_things.push((short(pair_key(&name, "")), shapes.intern(shape)));
                    }
                    // Things with attributes of their own (a serial number) are a shape each:
                    // past this many, the registry is read no further, so memory stays bounded.
                    full = shapes.all.len() >= MAX_SHAPES;
                    !full
                },
            )
            .await?;
        if full {
            self.warn(&format!(
                "the registry's things have more than {} distinct types and attribute sets: \
                 the things listed after the first {} have no thing context (fleet indexing \
                 gives it to every thing)",
                crate::audit::summary::thousands(MAX_SHAPES as u64),
                crate::audit::summary::thousands(listed_things.len() as u64)
            ));
        }
        // The pages read hold what they hold: a listing that broke off leaves the things past
        // it without context, not the ones before.
        if !listed {
            if listed_things.is_empty() {
                return Ok(None);
            }
            self.warn(&format!(
                "ListThings broke off after {} things: the things past them have no thing context",
                listed_things.len()
            ));
        }
        listed_things.sort_unstable_by_key(|(k, _)| *k);
        listed_things.dedup_by_key(|(k, _)| *k);
        let (keys, shape_of): (Vec<u64>, Vec<u32>) = listed_things.into_iter().unzip();
        Ok(Some(Registry {
            keys,
            shape_of,
            shapes,
        }))
    }

    /// Each thing's groups into `registry`, from the account's groups and their members; whether
    /// every listing was read.
    async fn read_groups(&mut self, registry: &mut Registry) -> Result<bool, Stop> {
        let client = self.client.clone();
        let Registry {
            keys,
            shape_of,
            shapes,
        } = registry;
        let mut groups = Vec::new();
        let listed = self
            .pages(
                LIST_THING_GROUPS,
                "ListThingGroups",
                |t| client.list_thing_groups(t),
                |page| {
                    groups.extend(page);
                    true
                },
            )
            .await?;
        if !listed {
            return Ok(false);
        }
        // Groups in name order, so that each thing's come sorted, as a document's do.
        groups.sort();
        groups.dedup();
        // A shape with one more group is made once per shape and group, not once per thing.
        let mut with_group: HashMap<(u32, usize), u32> = HashMap::new();
        for (g, group) in groups.iter().enumerate() {
            let what = format!("ListThingsInThingGroup {group}");
            let listed = self
                .pages(
                    LIST_THINGS_IN_GROUP,
                    &what,
                    |t| client.list_things_in_group(group, t),
                    |page| {
                        for name in page {
                            // A member the listing of things did not have (made since) is left out.
                            let Ok(i) = keys.binary_search(&short(pair_key(&name, ""))) else {
                                continue;
                            };
                            let old = shape_of[i];
                            shape_of[i] = *with_group.entry((old, g)).or_insert_with(|| {
                                let mut shape = (*shapes.all[old as usize]).clone();
                                if shape.groups.len() < MAX_GROUPS {
                                    shape.groups.push(group.clone());
                                }
                                shapes.intern(shape)
                            });
                        }
                        true
                    },
                )
                .await?;
            if !listed {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
