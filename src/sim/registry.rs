//! The registry and fleet-indexing calls a diagnosis makes, answered from the fleet's things
//! (`fleet/things`) in botocore's `iot` shapes: SearchIndex (`POST /indices/search`, the
//! `AWS_Things` index, 100 documents a page), GetThingConnectivityData (`POST
//! /things/T/connectivity-data`), ListThingGroupsForThing (`GET /things/T/thing-groups`) and
//! ListThings (`GET /things`), ListThingGroups (`GET /thing-groups`) and ListThingsInThingGroup
//! (`GET /thing-groups/G/things`).
//!
//! One thing in a hundred is not indexed yet (`Thing::indexed`): SearchIndex does not find it; the
//! registry calls and GetThingConnectivityData do.
//!
//! Fleet indexing is the account's choice ([`Indexing`]): off, SearchIndex answers
//! ResourceNotFoundException for the index; registry only, its documents carry no `connectivity`
//! and GetThingConnectivityData is refused; both on, everything is there.
//!
//! The query language is the part of AWS's that a diagnosis needs: terms `thingName:NAME` (a
//! trailing `*` matches a prefix), `thingTypeName:T`, `thingGroupNames:G`,
//! `connectivity.connected:true|false`, or `*`, joined by `OR`, a field's values optionally in
//! parentheses (`thingName:(a OR b)`). Anything else is InvalidQueryException, so a client never
//! relies on a query this simulator would read otherwise than AWS.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::fleet::{Fleet, Thing};
use super::http::{bad_thing, error, invalid, not_found, ok, Body, Query};
use super::Simulator;

/// What fleet indexing the simulated account has enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Indexing {
    /// No index: SearchIndex answers ResourceNotFoundException.
    Off,
    /// The registry (and thing groups) indexed, not connectivity.
    Registry,
    /// Registry and connectivity.
    #[default]
    Connectivity,
}

const INDEX: &str = "AWS_Things";
const SEARCH_MAX: usize = 100;

/// One term of a query.
#[derive(Debug, PartialEq)]
enum Term {
    All,
    Name(String),
    NamePrefix(String),
    Type(String),
    Group(String),
    Connected(bool),
}

/// The terms of `q`, any of which a document matches; `None`: not a query this simulator reads.
fn parse_query(q: &str) -> Option<Vec<Term>> {
    let mut terms = Vec::new();
    let mut field: Option<&str> = None;
    for raw in q.split_whitespace() {
        if raw == "OR" {
            continue;
        }
        let (f, value) = match (field, raw.split_once(':')) {
            (Some(f), _) => (f, raw),
            (None, Some((f, v))) => (f, v),
            (None, None) if raw == "*" => {
                terms.push(Term::All);
                continue;
            }
            _ => return None,
        };
        let mut value = value;
        if field.is_none() {
            if let Some(v) = value.strip_prefix('(') {
                field = Some(f);
                value = v;
            }
        }
        if let Some(v) = value.strip_suffix(')') {
            field?;
            field = None;
            value = v;
        }
        if value.is_empty() || value.contains(['(', ')', ':']) {
            return None;
        }
        terms.push(match f {
            "thingName" if value == "*" => Term::All,
            "thingName" => match value.strip_suffix('*') {
                Some(p) => Term::NamePrefix(p.to_string()),
                None => Term::Name(value.to_string()),
            },
            "thingTypeName" => Term::Type(value.to_string()),
            "thingGroupNames" => Term::Group(value.to_string()),
            "connectivity.connected" => Term::Connected(value.parse().ok()?),
            _ => return None,
        });
    }
    (field.is_none() && !terms.is_empty()).then_some(terms)
}

fn matches(terms: &[Term], name: &str, t: &Thing, indexing: Indexing) -> bool {
    terms.iter().any(|term| match term {
        Term::All => true,
        Term::Name(n) => n == name,
        Term::NamePrefix(p) => name.starts_with(p.as_str()),
        Term::Type(ty) => t.type_name == Some(ty.as_str()),
        Term::Group(g) => t.groups.contains(&g.as_str()),
        Term::Connected(c) => indexing == Indexing::Connectivity && t.connected == *c,
    })
}

/// A thing's attributes as a JSON object.
fn attributes(t: &Thing) -> Value {
    Value::Object(
        t.attributes
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect::<Map<_, _>>(),
    )
}

/// The index's document of thing `i`.
fn document(fleet: &Fleet, i: u64, t: &Thing, indexing: Indexing) -> Value {
    let mut d = Map::new();
    d.insert("thingName".into(), fleet.thing_name(i).into());
    d.insert("thingId".into(), format!("{:032x}", i).into());
    if let Some(ty) = t.type_name {
        d.insert("thingTypeName".into(), ty.into());
    }
    d.insert("thingGroupNames".into(), t.groups.clone().into());
    d.insert("attributes".into(), attributes(t));
    if indexing == Indexing::Connectivity {
        let mut c = Map::new();
        c.insert("connected".into(), t.connected.into());
        c.insert("timestamp".into(), t.connectivity_at_ms.into());
        if let Some(r) = t.disconnect_reason {
            c.insert("disconnectReason".into(), r.into());
        }
        d.insert("connectivity".into(), Value::Object(c));
    }
    Value::Object(d)
}

fn invalid_query(sim: &Simulator, what: &str) -> Response<Body> {
    error(sim, StatusCode::BAD_REQUEST, "InvalidQueryException", what)
}

/// A page position carried in a token of the form the listings use.
fn page_start(token: Option<&str>, scope: u64) -> Option<u64> {
    match token {
        None => Some(0),
        Some(t) => super::list::decode_token(t, scope),
    }
}

fn scope_of(query: &str) -> u64 {
    query.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// SearchIndex over `AWS_Things`.
pub(super) fn search(sim: &Simulator, body: &str) -> Response<Body> {
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return invalid(sim, "The request body is not valid JSON");
    };
    let index = req["indexName"].as_str().unwrap_or(INDEX);
    let Some(query) = req["queryString"].as_str() else {
        return invalid(sim, "queryString is required");
    };
    let max = match &req["maxResults"] {
        Value::Null => SEARCH_MAX,
        v => match v.as_u64() {
            Some(n) if (1..=SEARCH_MAX as u64).contains(&n) => n as usize,
            _ => return invalid(sim, "maxResults must be between 1 and 100"),
        },
    };
    if sim.indexing() == Indexing::Off || index != INDEX {
        return not_found(sim, &format!("Index {index} does not exist"));
    }
    let Some(terms) = parse_query(query) else {
        return invalid_query(sim, &format!("Syntax error in query string: {query}"));
    };
    let scope = scope_of(query);
    let Some(start) = page_start(req["nextToken"].as_str(), scope) else {
        return invalid(sim, "The nextToken is invalid or expired");
    };
    let fleet = sim.fleet();
    // Names asked for one by one are looked up; any other term scans the fleet in thing order.
    let positions: Box<dyn Iterator<Item = u64>> =
        if terms.iter().all(|t| matches!(t, Term::Name(_))) {
            let mut v: Vec<u64> = terms
                .iter()
                .filter_map(|t| match t {
                    Term::Name(n) => fleet.thing_index(n),
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            Box::new(v.into_iter())
        } else {
            Box::new(0..fleet.spec().things)
        };
    let indexing = sim.indexing();
    let mut things = Vec::new();
    let mut next = None;
    let mut seen = 0u64;
    for i in positions {
        let t = fleet.thing(i);
        if !t.indexed || !matches(&terms, &fleet.thing_name(i), &t, indexing) {
            continue;
        }
        seen += 1;
        if seen <= start {
            continue;
        }
        if things.len() == max {
            next = Some(super::list::encode_token(seen - 1, scope));
            break;
        }
        things.push(document(fleet, i, &t, indexing));
    }
    let mut out = Map::new();
    if let Some(n) = next {
        out.insert("nextToken".into(), n.into());
    }
    out.insert("things".into(), things.into());
    out.insert("thingGroups".into(), Value::Array(Vec::new()));
    ok(sim, serde_json::to_vec(&Value::Object(out)).expect("json"))
}

/// The index of thing `t`, or the answer for a name AWS refuses or does not hold.
fn known_thing(sim: &Simulator, t: &str) -> Result<u64, Box<Response<Body>>> {
    if let Some(r) = bad_thing(sim, t) {
        return Err(Box::new(r));
    }
    sim.fleet()
        .thing_index(t)
        .ok_or_else(|| Box::new(not_found(sim, &format!("Thing {t} cannot be found."))))
}

/// GetThingConnectivityData: one thing's connectivity, where connectivity indexing is on.
pub(super) fn connectivity(sim: &Simulator, t: &str) -> Response<Body> {
    let i = match known_thing(sim, t) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    if sim.indexing() != Indexing::Connectivity {
        return invalid(
            sim,
            "Fleet indexing connectivity is not enabled for this account",
        );
    }
    let thing = sim.fleet().thing(i);
    let mut out = json!({
        "thingName": t,
        "connected": thing.connected,
        "timestamp": thing.connectivity_at_ms as f64 / 1000.0,
    });
    if let Some(r) = thing.disconnect_reason {
        out["disconnectReason"] = r.into();
    }
    ok(sim, serde_json::to_vec(&out).expect("json"))
}

/// ListThingGroupsForThing: the groups of thing `t`, on one page.
pub(super) fn groups_for_thing(sim: &Simulator, t: &str) -> Response<Body> {
    let i = match known_thing(sim, t) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let fleet = sim.fleet();
    let groups: Vec<Value> = fleet
        .thing(i)
        .groups
        .iter()
        .map(|g| json!({"groupName": g, "groupArn": fleet.thing_group_arn(g)}))
        .collect();
    ok(
        sim,
        serde_json::to_vec(&json!({ "thingGroups": groups })).expect("json"),
    )
}

/// A registry listing's page size: 1..=250 (default 50), or the answer to a bad one.
fn registry_max(sim: &Simulator, q: &Query) -> Result<usize, Box<Response<Body>>> {
    match q.max_results.as_deref().map(str::parse::<usize>) {
        None => Ok(50),
        Some(Ok(n)) if (1..=250).contains(&n) => Ok(n),
        Some(_) => Err(Box::new(invalid(
            sim,
            "maxResults must be between 1 and 250",
        ))),
    }
}

/// ListThingGroups: the fleet's thing groups, by name.
pub(super) fn thing_groups(sim: &Simulator, q: &Query) -> Response<Body> {
    let max = match registry_max(sim, q) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let fleet = sim.fleet();
    let all = fleet.thing_groups();
    let Some(start) = page_start(q.next_token.as_deref(), scope_of("thing-groups")) else {
        return invalid(sim, "The nextToken is invalid or expired");
    };
    let start = (start as usize).min(all.len());
    let end = (start + max).min(all.len());
    let groups: Vec<Value> = all[start..end]
        .iter()
        .map(|g| json!({"groupName": g, "groupArn": fleet.thing_group_arn(g)}))
        .collect();
    let mut out = json!({ "thingGroups": groups });
    if end < all.len() {
        out["nextToken"] = super::list::encode_token(end as u64, scope_of("thing-groups")).into();
    }
    ok(sim, serde_json::to_vec(&out).expect("json"))
}

/// ListThingsInThingGroup: the names of the things in `group`, in thing order.
pub(super) fn things_in_group(sim: &Simulator, group: &str, q: &Query) -> Response<Body> {
    let max = match registry_max(sim, q) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let fleet = sim.fleet();
    if !fleet.thing_groups().contains(&group) {
        return not_found(sim, &format!("Thing group {group} cannot be found."));
    }
    let scope = scope_of(group);
    let Some(start) = page_start(q.next_token.as_deref(), scope) else {
        return invalid(sim, "The nextToken is invalid or expired");
    };
    let mut things = Vec::new();
    let mut next = None;
    for i in start..fleet.spec().things {
        if !fleet.thing(i).groups.contains(&group) {
            continue;
        }
        if things.len() == max {
            next = Some(super::list::encode_token(i, scope));
            break;
        }
        things.push(Value::from(fleet.thing_name(i)));
    }
    let mut out = json!({ "things": things });
    if let Some(n) = next {
        out["nextToken"] = n.into();
    }
    ok(sim, serde_json::to_vec(&out).expect("json"))
}

/// ListThings: the registry in thing order, 1..=250 a page (default 50), filtered by thing type or
/// one attribute.
pub(super) fn things(sim: &Simulator, q: &Query) -> Response<Body> {
    let max = match registry_max(sim, q) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let filter = format!(
        "{:?}{:?}{:?}",
        q.thing_type_name, q.attribute_name, q.attribute_value
    );
    let scope = scope_of(&filter);
    let Some(start) = page_start(q.next_token.as_deref(), scope) else {
        return invalid(sim, "The nextToken is invalid or expired");
    };
    let fleet = sim.fleet();
    let mut things = Vec::new();
    let mut next = None;
    for i in start..fleet.spec().things {
        let t = fleet.thing(i);
        let type_ok = q
            .thing_type_name
            .as_deref()
            .is_none_or(|ty| t.type_name == Some(ty));
        let attr_ok = q.attribute_name.as_deref().is_none_or(|a| {
            t.attributes
                .iter()
                .any(|(k, v)| *k == a && q.attribute_value.as_deref().is_none_or(|x| x == *v))
        });
        if !(type_ok && attr_ok) {
            continue;
        }
        if things.len() == max {
            next = Some(super::list::encode_token(i, scope));
            break;
        }
        let mut d = json!({
            "thingName": fleet.thing_name(i),
            "thingArn": fleet.thing_arn(i),
            "attributes": attributes(&t),
            "version": 1,
        });
        if let Some(ty) = t.type_name {
            d["thingTypeName"] = ty.into();
        }
        things.push(d);
    }
    let mut out = json!({ "things": things });
    if let Some(n) = next {
        out["nextToken"] = n.into();
    }
    ok(sim, serde_json::to_vec(&out).expect("json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_as_aws_reads_them_or_not_at_all() {
        assert_eq!(
            parse_query("thingName:a OR thingName:b-1"),
            Some(vec![Term::Name("a".into()), Term::Name("b-1".into())])
        );
        assert_eq!(
            parse_query("thingName:(a OR b)"),
            Some(vec![Term::Name("a".into()), Term::Name("b".into())])
        );
        assert_eq!(parse_query("*"), Some(vec![Term::All]));
        assert_eq!(
            parse_query("connectivity.connected:false"),
            Some(vec![Term::Connected(false)])
        );
        assert_eq!(
            parse_query("thingName:thing-0*"),
            Some(vec![Term::NamePrefix("thing-0".into())])
        );
        for bad in [
            "",
            "thingName:a AND thingName:b",
            "shadow.reported.x:1",
            "thingName:(a OR b",
            "connectivity.connected:maybe",
            "a",
        ] {
            assert_eq!(parse_query(bad), None, "{bad}");
        }
    }
}
