//! The things' context in an account without fleet indexing (or whose policy does not permit
//! SearchIndex): their thing type and attributes from the registry's listing (ListThings, 250 a
//! page) and their groups from the groups' member lists (ListThingGroups, then
//! ListThingsInThingGroup per group, 250 a page). The account's whole registry is read once, at the
//! first thing that needs it: a call per 250 things of the account, where asking thing by thing
//! would be a call or two per audited thing. Connectivity has no such source: it stays unknown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::things::short;
use super::{Stage, Stop, LIST_THINGS, LIST_THINGS_IN_GROUP, LIST_THING_GROUPS};
use crate::aws::client::{FleetContext, FleetLister, Page, ThingContext, ThingShape, MAX_GROUPS};
use crate::input::pair::pair_key;

/// Most pages of one listing: a listing that pages on past this (or repeats a token) is an
/// answer gone wrong, and the rest of it is not read.
const MAX_PAGES: usize = 1_000_000;

/// The account's things as its registry lists them, by the short key of their name; a shape is
/// kept once for all the things alike.
#[derive(Default)]
pub(super) struct Registry {
    things: HashMap<u64, Arc<ThingShape>>,
}

impl Registry {
    /// Thing `name`'s context: its shape, its connectivity unknown.
    pub(super) fn get(&self, name: &str) -> Option<ThingContext> {
        self.things
            .get(&short(pair_key(name, "")))
            .map(|shape| ThingContext {
                shape: shape.clone(),
                connected: None,
                connectivity_at_ms: None,
                disconnect_reason: None,
            })
    }
}

/// One shape for all things alike.
fn intern(shapes: &mut HashSet<Arc<ThingShape>>, shape: ThingShape) -> Arc<ThingShape> {
    if let Some(s) = shapes.get(&shape) {
        return s.clone();
    }
    let s = Arc::new(shape);
    shapes.insert(s.clone());
    s
}

impl<C: FleetContext + FleetLister> Stage<C> {
    /// The account's registry, read whole; `None` when a listing could not be read (said by
    /// [`Stage::call`]).
    pub(super) async fn read_registry(&mut self) -> Result<Option<Registry>, Stop> {
        let client = self.client.clone();
        let mut shapes = HashSet::new();
        let mut things: HashMap<u64, Arc<ThingShape>> = HashMap::new();
        let listed = self
            .pages(
                LIST_THINGS,
                "ListThings",
                |t| client.list_things(t),
                |page| {
                    for (name, shape) in page {
                        things.insert(short(pair_key(&name, "")), intern(&mut shapes, shape));
                    }
                },
            )
            .await?;
        if !listed {
            return Ok(None);
        }
        let mut groups = Vec::new();
        let listed = self
            .pages(
                LIST_THING_GROUPS,
                "ListThingGroups",
                |t| client.list_thing_groups(t),
                |page| groups.extend(page),
            )
            .await?;
        if !listed {
            return Ok(None);
        }
        // Each thing's groups, sorted as a document's are.
        groups.sort();
        groups.dedup();
        let mut member_of: HashMap<u64, Vec<String>> = HashMap::new();
        for group in &groups {
            let what = format!("ListThingsInThingGroup {group}");
            let listed = self
                .pages(
                    LIST_THINGS_IN_GROUP,
                    &what,
                    |t| client.list_things_in_group(group, t),
                    |page| {
                        for name in page {
                            member_of
                                .entry(short(pair_key(&name, "")))
                                .or_default()
                                .push(group.clone());
                        }
                    },
                )
                .await?;
            if !listed {
                return Ok(None);
            }
        }
        for (key, mut in_groups) in member_of {
            // A member the listing of things missed (made since) has its groups only.
            let base = things.get(&key).map(|s| (**s).clone()).unwrap_or_default();
            in_groups.truncate(MAX_GROUPS);
            let shape = ThingShape {
                groups: in_groups,
                ..base
            };
            things.insert(key, intern(&mut shapes, shape));
        }
        Ok(Some(Registry { things }))
    }

    /// Every page of one listing through [`Stage::call`], each page's items to `take`; whether
    /// the listing was read to its end (or to a token it had given before).
    async fn pages<T, F, Fut>(
        &mut self,
        api: usize,
        what: &str,
        mut call: F,
        mut take: impl FnMut(Vec<T>),
    ) -> Result<bool, Stop>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, crate::aws::client::CallError>>,
    {
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let Some(page) = self.call(api, what, || call(token.clone())).await? else {
                return Ok(false);
            };
            take(page.items);
            token = page.next_token;
            match &token {
                None => return Ok(true),
                Some(t) if !seen.insert(t.clone()) => return Ok(true),
                Some(_) => {}
            }
        }
        Ok(true)
    }
}
