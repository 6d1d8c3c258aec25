//! The context of a diagnosis: the types of a job's (DescribeJob, made by `FleetLister::describe_job`
//! with the counts a discovery's plan reads) and of a thing's, and the calls that read things:
//! SearchIndex on `AWS_Things` (a page of thing documents: thing type, attributes, groups,
//! connectivity), and, for an account without fleet indexing, the registry's listings (ListThings,
//! ListThingGroups, ListThingsInThingGroup). One request per call through `aws-sdk-iot`; paging,
//! limits and retries are the caller's.

use std::future::Future;

use aws_sdk_iot::types::ThingDocument;

use std::sync::Arc;

use super::{classify_sdk_error, CallError, IotClient, Page};

/// A job as DescribeJob reports it, as much as the diagnosis uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobContext {
    /// `IN_PROGRESS`, `SCHEDULED`, `CANCELED`, `COMPLETED`, `DELETION_IN_PROGRESS`.
    pub status: Option<String>,
    /// `timeoutConfig.inProgressTimeoutInMinutes`.
    pub in_progress_timeout_minutes: Option<i64>,
}

/// A thing as the fleet index reports it: what it is (shared by the many things alike) and its
/// connectivity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThingContext {
    pub shape: Arc<ThingShape>,
    /// `None`: connectivity is not indexed in the account.
    pub connected: Option<bool>,
    /// When the thing last connected or disconnected, epoch milliseconds.
    pub connectivity_at_ms: Option<i64>,
    pub disconnect_reason: Option<Arc<str>>,
}

/// A thing's type, attributes and groups: a fleet has few distinct ones, each kept once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ThingShape {
    pub thing_type: Option<String>,
    /// Sorted by name.
    pub attributes: Vec<(String, String)>,
    /// Sorted.
    pub groups: Vec<String>,
}

/// Most attributes and groups kept of one thing document.
const MAX_ATTRIBUTES: usize = 100;
pub(crate) const MAX_GROUPS: usize = 100;

/// Most entries a registry listing answers a page (ListThings, ListThingGroups,
/// ListThingsInThingGroup).
pub(crate) const REGISTRY_PAGE: i32 = 250;

/// Most documents SearchIndex answers a page.
pub(crate) const SEARCH_PAGE: i32 = 100;
/// The fleet index of things.
pub(crate) const THINGS_INDEX: &str = "AWS_Things";

/// The context calls, one request per call.
pub(crate) trait FleetContext: Send + Sync + 'static {
    /// One page of `AWS_Things` documents matching `query`: each thing's name and context.
    fn search_things(
        &self,
        query: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(String, ThingContext)>, CallError>> + Send;

    /// One page of the registry's things (ListThings): each thing's name and shape, its groups
    /// empty (ListThings does not name them).
    fn list_things(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(String, ThingShape)>, CallError>> + Send;

    /// One page of the account's thing groups' names (ListThingGroups).
    fn list_thing_groups(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, CallError>> + Send;

    /// One page of the names of the things directly in `group` (ListThingsInThingGroup).
    fn list_things_in_group(
        &self,
        group: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, CallError>> + Send;
}

/// A thing's type and attributes as the registry lists them, cut as a document's are.
fn registry_shape(
    thing_type: Option<&str>,
    attributes: Option<&std::collections::HashMap<String, String>>,
) -> ThingShape {
    let mut attributes: Vec<(String, String)> = attributes
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    attributes.sort();
    attributes.truncate(MAX_ATTRIBUTES);
    ThingShape {
        thing_type: thing_type.map(str::to_string),
        attributes,
        groups: Vec::new(),
    }
}

/// A thing document as the row's context.
fn thing_context(d: &ThingDocument) -> ThingContext {
    // AWS allows a thing 50 attributes and 10 thing groups (more with dynamic and billing groups);
    // a document with more is cut, so one odd answer cannot take the memory of a run.
    let mut shape = registry_shape(d.thing_type_name(), d.attributes());
    let mut groups: Vec<String> = d.thing_group_names().to_vec();
    groups.sort();
    groups.truncate(MAX_GROUPS);
    shape.groups = groups;
    let c = d.connectivity();
    ThingContext {
        shape: Arc::new(shape),
        connected: c.and_then(|c| c.connected()),
        connectivity_at_ms: c.and_then(|c| c.timestamp()),
        disconnect_reason: c.and_then(|c| c.disconnect_reason()).map(Arc::from),
    }
}

impl FleetContext for IotClient {
    async fn search_things(
        &self,
        query: &str,
        next_token: Option<String>,
    ) -> Result<Page<(String, ThingContext)>, CallError> {
        let out = self
            .sdk()
            .search_index()
            .index_name(THINGS_INDEX)
            .query_string(query)
            .max_results(SEARCH_PAGE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(Page {
            items: out
                .things()
                .iter()
                .filter_map(|d| Some((d.thing_name()?.to_string(), thing_context(d))))
                .collect(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn list_things(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<(String, ThingShape)>, CallError> {
        let out = self
            .sdk()
            .list_things()
            .max_results(REGISTRY_PAGE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(Page {
            items: out
                .things()
                .iter()
                .filter_map(|t| {
                    let shape = registry_shape(t.thing_type_name(), t.attributes());
                    Some((t.thing_name()?.to_string(), shape))
                })
                .collect(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn list_thing_groups(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        let out = self
            .sdk()
            .list_thing_groups()
            .max_results(REGISTRY_PAGE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(Page {
            items: out
                .thing_groups()
                .iter()
                .filter_map(|g| g.group_name().map(str::to_string))
                .collect(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn list_things_in_group(
        &self,
        group: &str,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        let out = self
            .sdk()
            .list_things_in_thing_group()
            .thing_group_name(group)
            .max_results(REGISTRY_PAGE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(Page {
            items: out.things().to_vec(),
            next_token: out.next_token().map(str::to_string),
        })
    }
}
