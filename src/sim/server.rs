//! The simulator's HTTP side: accepting connections, routing, the authentication checks and test
//! hooks, and the describe answers.
//!
//! What a request may meet before its answer (quota, injected faults, latency) is decided in
//! [`super::faults`], and the listings with their page tokens are in [`super::list`], so that this
//! file reads as the path of one request: route, count, check the caller, then answer.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::http::{
    bad_job, bad_thing, decode, error, invalid, not_found, ok, parse_query, Body, Dropped, Query,
};
use super::{faults, list, registry, remedy, wire, Operation, Simulator};

/// Accepts connections on `listener` until `shutdown` completes, then closes them all.
pub async fn serve(listener: TcpListener, sim: Arc<Simulator>, shutdown: impl Future<Output = ()>) {
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let sim = sim.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let sim = sim.clone();
                        async move { handle(&sim, req).await }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

enum Route {
    DescribeJobExecution(String, String),
    ListForThing(String),
    ListForJob(String),
    DescribeJob(String),
    ListJobs,
    CancelJobExecution(String, String),
    SearchIndex,
    ThingConnectivity(String),
    ThingGroupsForThing(String),
    ListThings,
    ListThingGroups,
    ThingsInGroup(String),
    DeleteJobExecution(String, String, String),
    Stats,
    Reset,
    Advance,
}

impl Route {
    fn operation(&self) -> Option<Operation> {
        Some(match self {
            Route::DescribeJobExecution(..) => Operation::DescribeJobExecution,
            Route::ListForThing(_) => Operation::ListJobExecutionsForThing,
            Route::ListForJob(_) => Operation::ListJobExecutionsForJob,
            Route::DescribeJob(_) => Operation::DescribeJob,
            Route::ListJobs => Operation::ListJobs,
            Route::CancelJobExecution(..) => Operation::CancelJobExecution,
            Route::SearchIndex => Operation::SearchIndex,
            Route::ThingConnectivity(_) => Operation::GetThingConnectivityData,
            Route::ThingGroupsForThing(_) => Operation::ListThingGroupsForThing,
            Route::ListThings => Operation::ListThings,
            Route::ListThingGroups => Operation::ListThingGroups,
            Route::ThingsInGroup(_) => Operation::ListThingsInThingGroup,
            Route::DeleteJobExecution(..) => Operation::DeleteJobExecution,
            Route::Stats | Route::Reset | Route::Advance => return None,
        })
    }
}

fn route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    Some(match (m, segs.as_slice()) {
        ("GET", ["things", t, "jobs", j]) => Route::DescribeJobExecution(decode(t)?, decode(j)?),
        ("GET", ["things", t, "jobs"]) => Route::ListForThing(decode(t)?),
        ("GET", ["jobs", j, "things"]) => Route::ListForJob(decode(j)?),
        ("GET", ["jobs", j]) => Route::DescribeJob(decode(j)?),
        ("GET", ["jobs"]) => Route::ListJobs,
        ("POST", ["indices", "search"]) => Route::SearchIndex,
        ("POST", ["things", t, "connectivity-data"]) => Route::ThingConnectivity(decode(t)?),
        ("GET", ["things", t, "thing-groups"]) => Route::ThingGroupsForThing(decode(t)?),
        ("GET", ["things"]) => Route::ListThings,
        ("GET", ["thing-groups"]) => Route::ListThingGroups,
        ("GET", ["thing-groups", g, "things"]) => Route::ThingsInGroup(decode(g)?),
        ("PUT", ["things", t, "jobs", j, "cancel"]) => {
            Route::CancelJobExecution(decode(t)?, decode(j)?)
        }
        ("DELETE", ["things", t, "jobs", j, "executionNumber", n]) => {
            Route::DeleteJobExecution(decode(t)?, decode(j)?, decode(n)?)
        }
        ("GET", ["_sim", "stats"]) => Route::Stats,
        ("POST", ["_sim", "reset"]) => Route::Reset,
        ("POST", ["_sim", "advance"]) => Route::Advance,
        _ => return None,
    })
}

/// The region a SigV4 `Authorization` header is signed for (`Credential=KEY/DATE/REGION/...`).
fn signing_region(auth: &str) -> &str {
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("")
}

/// The answer to a request without an `Authorization` header, counted.
fn unauthenticated(sim: &Simulator) -> Response<Body> {
    sim.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
    error(
        sim,
        StatusCode::FORBIDDEN,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
}

/// A request's `Authorization` header (empty when absent) and its whole body as text.
async fn auth_and_body(req: Request<Incoming>) -> Result<(String, String), Dropped> {
    use http_body_util::BodyExt;
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|_| Dropped)?
        .to_bytes();
    Ok((auth, String::from_utf8_lossy(&body).into_owned()))
}

/// An STS request (a form-encoded POST to `/`): see [`super::sts`].
async fn sts(sim: &Simulator, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    sim.stats.sts.fetch_add(1, Ordering::Relaxed);
    let (auth, body) = auth_and_body(req).await?;
    let n = sim.request_ids.fetch_add(1, Ordering::Relaxed);
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    let a = if auth.is_empty() {
        super::sts::StsAnswer {
            status: 403,
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error></ErrorResponse>".into(),
        }
    } else {
        super::sts::answer(&auth, &body, &id, sim.org())
    };
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-amzn-RequestId", v);
    }
    Ok(r)
}

/// Organizations ListAccounts (`POST /` with its X-Amz-Target) and Account ListRegions (`POST
/// /listRegions`), answered from the simulated organization.
async fn organizations(
    sim: &Simulator,
    req: Request<Incoming>,
    list_regions: bool,
) -> Result<Response<Body>, Dropped> {
    sim.stats.organizations.fetch_add(1, Ordering::Relaxed);
    let (auth, body) = auth_and_body(req).await?;
    if auth.is_empty() {
        return Ok(unauthenticated(sim));
    }
    let caller = super::sts::caller_account(&auth);
    let a = if list_regions {
        super::org::list_regions(sim.org(), caller, &body)
    } else {
        super::org::list_accounts(sim.org(), caller, &body)
    };
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    let kind = if list_regions {
        "application/json"
    } else {
        "application/x-amz-json-1.1"
    };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(t) = a.error_type {
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(t));
    }
    let n = sim.request_ids.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("00000000-0000-4000-8000-{n:012x}")) {
        h.insert("x-amzn-RequestId", v);
    }
    Ok(r)
}

async fn handle(sim: &Simulator, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    if req.method() == Method::POST && req.uri().path() == "/" {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if target == "AWSOrganizationsV20161128.ListAccounts" {
            return organizations(sim, req, false).await;
        }
        return sts(sim, req).await;
    }
    if req.method() == Method::POST && req.uri().path() == "/listRegions" {
        return organizations(sim, req, true).await;
    }
    let Some(route) = route(req.method(), req.uri().path()) else {
        sim.stats.unknown.fetch_add(1, Ordering::Relaxed);
        return Ok(error(
            sim,
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "The requested operation is not supported by this endpoint",
        ));
    };
    let Some(op) = route.operation() else {
        return Ok(match route {
            Route::Reset => {
                sim.reset_stats();
                ok(sim, b"{}".to_vec())
            }
            Route::Advance => remedy::advance(sim, req.uri().query()),
            _ => ok(
                sim,
                serde_json::to_vec(&sim.stats()).expect("stats serialize"),
            ),
        });
    };
    sim.count(op);

    if let Some(refusal) = refused(sim, op, req.headers()) {
        return Ok(refusal);
    }
    // A test holding this operation (`Simulator::hold_after`) catches the request here.
    sim.pass_gate(op).await;
    if let Some(fault) = faults::decide(sim, op).await {
        return fault.answer(sim);
    }
    let Some(query) = parse_query(req.uri().query()) else {
        return Ok(invalid(sim, "Malformed query string"));
    };
    sim.stats.handled[op as usize].fetch_add(1, Ordering::Relaxed);
    Ok(match route {
        Route::CancelJobExecution(t, j) => {
            let (_, body) = auth_and_body(req).await?;
            remedy::cancel(sim, &t, &j, &query, &body)
        }
        Route::DeleteJobExecution(t, j, n) => remedy::delete(sim, &t, &j, &n, &query),
        Route::DescribeJobExecution(t, j) => describe_execution(sim, &t, &j, &query),
        Route::ListForJob(j) => list::for_job(sim, &j, &query),
        Route::ListForThing(t) => list::for_thing(sim, &t, &query),
        Route::ListJobs => list::jobs(sim, &query),
        Route::DescribeJob(j) => describe_job(sim, &j),
        Route::SearchIndex => {
            let (_, body) = auth_and_body(req).await?;
            registry::search(sim, &body)
        }
        Route::ThingConnectivity(t) => registry::connectivity(sim, &t),
        Route::ThingGroupsForThing(t) => registry::groups_for_thing(sim, &t),
        Route::ListThings => registry::things(sim, &query),
        Route::ListThingGroups => registry::thing_groups(sim, &query),
        Route::ThingsInGroup(g) => registry::things_in_group(sim, &g, &query),
        Route::Stats | Route::Reset | Route::Advance => unreachable!("handled above"),
    })
}

/// What AWS answers instead of an IoT operation to a request it refuses: unsigned, signed with one
/// of the test hooks' access keys (expired, denied), or signed for a region not enabled.
fn refused(sim: &Simulator, op: Operation, headers: &hyper::HeaderMap) -> Option<Response<Body>> {
    if !headers.contains_key(hyper::header::AUTHORIZATION) {
        return Some(unauthenticated(sim));
    }
    // Test hooks: the simulator accepts any signature, except from these access key ids, which stand
    // for credentials AWS would refuse.
    let auth = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.contains("Credential=AKIDEXPIRED/") {
        return Some(error(
            sim,
            StatusCode::FORBIDDEN,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    if auth.contains("Credential=AKIDDENIED/") {
        return Some(error(
            sim,
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &format!("User is not authorized to perform: iot:{}", op.name()),
        ));
    }
    // An organization's accounts have opt-in regions that are not enabled: AWS refuses any token
    // there, as this does for requests signed for such a region.
    if super::org::is_disabled_region(sim.org(), signing_region(auth)) {
        return Some(error(
            sim,
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    None
}

fn describe_execution(sim: &Simulator, t: &str, j: &str, q: &Query) -> Response<Body> {
    if let Some(r) = bad_thing(sim, t).or_else(|| bad_job(sim, j)) {
        return r;
    }
    let wanted = match q.execution_number.as_deref() {
        None => None,
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => return invalid(sim, "executionNumber must be a non-negative long"),
        },
    };
    let fleet = sim.fleet();
    let exec = fleet
        .thing_index(t)
        .zip(fleet.job_index(j))
        .and_then(|(i, jj)| fleet.execution(i, jj))
        .filter(|e| wanted.is_none_or(|n| n == e.execution_number));
    match exec {
        Some(e) => {
            let mut body = Vec::with_capacity(512);
            wire::describe_execution(&mut body, fleet, &e);
            ok(sim, body)
        }
        None => not_found(
            sim,
            &format!("Job Execution for job {j} on thing {t} does not exist"),
        ),
    }
}

fn describe_job(sim: &Simulator, j: &str) -> Response<Body> {
    if let Some(r) = bad_job(sim, j) {
        return r;
    }
    let fleet = sim.fleet();
    match fleet.job_index(j) {
        Some(jj) => {
            let mut body = Vec::with_capacity(1024);
            wire::describe_job(&mut body, fleet, jj);
            ok(sim, body)
        }
        None => not_found(sim, &format!("Job {j} does not exist")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_operations() {
        let r = route(&Method::GET, "/things/thing%3A1/jobs/job-001").unwrap();
        assert!(matches!(r, Route::DescribeJobExecution(t, j) if t == "thing:1" && j == "job-001"));
        assert!(matches!(
            route(&Method::GET, "/jobs/job-001/things"),
            Some(Route::ListForJob(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/jobs"),
            Some(Route::ListJobs)
        ));
        assert!(route(&Method::DELETE, "/jobs/job-001").is_none());
        assert!(matches!(
            route(&Method::PUT, "/things/t1/jobs/job-001/cancel"),
            Some(Route::CancelJobExecution(t, j)) if t == "t1" && j == "job-001"
        ));
        assert!(matches!(
            route(&Method::DELETE, "/things/t1/jobs/job-001/executionNumber/3"),
            Some(Route::DeleteJobExecution(_, _, n)) if n == "3"
        ));
        assert!(route(&Method::GET, "/things/t1/jobs/job-001/cancel").is_none());
        assert!(route(&Method::GET, "/nope").is_none());
    }
}
