//! The simulator's HTTP side: routing, authentication check, quota, faults, and the answers.

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

use super::fleet::STATUSES;
use super::{wire, Operation, Simulator};
use crate::names::{is_valid_job_id, is_valid_thing_name};

type Body = Full<Bytes>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

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

/// An AWS-style error answer.
fn error(sim: &Simulator, status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(wire::error_body(message))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(kind) {
        h.insert("x-amzn-ErrorType", v);
    }
    request_id(sim, h);
    r
}

fn ok(sim: &Simulator, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request_id(sim, h);
    r
}

fn request_id(sim: &Simulator, h: &mut hyper::HeaderMap) {
    let n = sim.request_ids.fetch_add(1, Ordering::Relaxed);
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-amzn-RequestId", v);
    }
}

fn not_found(sim: &Simulator, what: &str) -> Response<Body> {
    error(
        sim,
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        what,
    )
}

fn invalid(sim: &Simulator, what: &str) -> Response<Body> {
    error(
        sim,
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        what,
    )
}

/// Percent-decodes one path segment or query value (`+` stays `+`, as in AWS's URI encoding).
fn decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The query parameters the list operations take.
#[derive(Default)]
struct Query {
    max_results: Option<String>,
    next_token: Option<String>,
    status: Option<String>,
    execution_number: Option<String>,
}

fn parse_query(q: Option<&str>) -> Option<Query> {
    let mut out = Query::default();
    for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = decode(v)?;
        match k {
            "maxResults" => out.max_results = Some(v),
            "nextToken" => out.next_token = Some(v),
            "status" => out.status = Some(v),
            "executionNumber" => out.execution_number = Some(v),
            _ => {}
        }
    }
    Some(out)
}

enum Route {
    DescribeJobExecution(String, String),
    ListForThing(String),
    ListForJob(String),
    DescribeJob(String),
    ListJobs,
    Stats,
    Reset,
}

impl Route {
    fn operation(&self) -> Option<Operation> {
        Some(match self {
            Route::DescribeJobExecution(..) => Operation::DescribeJobExecution,
            Route::ListForThing(_) => Operation::ListJobExecutionsForThing,
            Route::ListForJob(_) => Operation::ListJobExecutionsForJob,
            Route::DescribeJob(_) => Operation::DescribeJob,
            Route::ListJobs => Operation::ListJobs,
            Route::Stats | Route::Reset => return None,
        })
    }
}

fn route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    Some(match (get, segs.as_slice()) {
        (true, ["things", t, "jobs", j]) => Route::DescribeJobExecution(decode(t)?, decode(j)?),
        (true, ["things", t, "jobs"]) => Route::ListForThing(decode(t)?),
        (true, ["jobs", j, "things"]) => Route::ListForJob(decode(j)?),
        (true, ["jobs", j]) => Route::DescribeJob(decode(j)?),
        (true, ["jobs"]) => Route::ListJobs,
        (true, ["_sim", "stats"]) => Route::Stats,
        (false, ["_sim", "reset"]) if method == Method::POST => Route::Reset,
        _ => return None,
    })
}

/// An STS request (a form-encoded POST to `/`): see [`super::sts`].
async fn sts(sim: &Simulator, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    use http_body_util::BodyExt;
    sim.stats.sts.fetch_add(1, Ordering::Relaxed);
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
    let n = sim.request_ids.fetch_add(1, Ordering::Relaxed);
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    let a = if auth.is_empty() {
        super::sts::StsAnswer {
            status: 403,
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error></ErrorResponse>".into(),
        }
    } else {
        super::sts::answer(&auth, &String::from_utf8_lossy(&body), &id)
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

async fn handle(sim: &Simulator, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    if req.method() == Method::POST && req.uri().path() == "/" {
        return sts(sim, req).await;
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
            _ => ok(
                sim,
                serde_json::to_vec(&sim.stats()).expect("stats serialize"),
            ),
        });
    };
    sim.stats.operations[op as usize].fetch_add(1, Ordering::Relaxed);

    if !req.headers().contains_key(hyper::header::AUTHORIZATION) {
        sim.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
        return Ok(error(
            sim,
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    }
    // Test hooks: the simulator accepts any signature, except from these access key ids, which stand
    // for credentials AWS would refuse.
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.contains("Credential=AKIDEXPIRED/") {
        return Ok(error(
            sim,
            StatusCode::FORBIDDEN,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    if auth.contains("Credential=AKIDDENIED/") {
        return Ok(error(
            sim,
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "User is not authorized to perform: iot:DescribeJobExecution",
        ));
    }
    if let Some(limiters) = &sim.limiters {
        if limiters[op as usize].check().is_err() {
            sim.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Ok(throttled(sim));
        }
    }
    let f = &sim.faults;
    if f.p_drop > 0.0 && rand::random::<f64>() < f.p_drop {
        sim.stats.fault_drop.fetch_add(1, Ordering::Relaxed);
        return Err(Dropped);
    }
    if f.p_throttle > 0.0 && rand::random::<f64>() < f.p_throttle {
        sim.stats.fault_throttle.fetch_add(1, Ordering::Relaxed);
        sim.stats.throttled.fetch_add(1, Ordering::Relaxed);
        return Ok(throttled(sim));
    }
    if f.p_5xx > 0.0 && rand::random::<f64>() < f.p_5xx {
        sim.stats.fault_5xx.fetch_add(1, Ordering::Relaxed);
        return Ok(if rand::random::<bool>() {
            error(
                sim,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "Service is unavailable",
            )
        } else {
            error(
                sim,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailureException",
                "An internal failure occurred",
            )
        });
    }
    if f.p_slow > 0.0 && rand::random::<f64>() < f.p_slow {
        sim.stats.fault_slow.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(f.slow).await;
    }
    if let Some(d) = sim.latency.sample() {
        tokio::time::sleep(d).await;
    }
    if f.p_garbage > 0.0 && rand::random::<f64>() < f.p_garbage {
        sim.stats.fault_garbage.fetch_add(1, Ordering::Relaxed);
        return Ok(ok(sim, b"{\"execution\": {\"jobId\": \"job-0".to_vec()));
    }
    let Some(query) = parse_query(req.uri().query()) else {
        return Ok(invalid(sim, "Malformed query string"));
    };
    Ok(match route {
        Route::DescribeJobExecution(t, j) => describe_execution(sim, &t, &j, &query),
        Route::ListForJob(j) => list_for_job(sim, &j, &query),
        Route::ListForThing(t) => list_for_thing(sim, &t, &query),
        Route::ListJobs => list_jobs(sim, &query),
        Route::DescribeJob(j) => describe_job(sim, &j),
        Route::Stats | Route::Reset => unreachable!("handled above"),
    })
}

fn throttled(sim: &Simulator) -> Response<Body> {
    error(
        sim,
        StatusCode::BAD_REQUEST,
        "ThrottlingException",
        "Rate exceeded",
    )
}

/// The InvalidRequestException answer for a thing name AWS would refuse, if it is one.
fn bad_thing(sim: &Simulator, t: &str) -> Option<Response<Body>> {
    if is_valid_thing_name(t) {
        None
    } else {
        Some(invalid(
            sim,
            "1 validation error detected: Value at 'thingName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+",
        ))
    }
}

/// The InvalidRequestException answer for a job id AWS would refuse, if it is one.
fn bad_job(sim: &Simulator, j: &str) -> Option<Response<Body>> {
    if is_valid_job_id(j) {
        None
    } else {
        Some(invalid(
            sim,
            "1 validation error detected: Value at 'jobId' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        ))
    }
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

/// Parses maxResults (1..=250, default 50) and the opaque nextToken for a listing scope.
fn page_params(q: &Query, scope: u64) -> Result<(usize, u64), &'static str> {
    let max = match q.max_results.as_deref() {
        None => 50,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=250).contains(&n) => n,
            _ => return Err("maxResults must be between 1 and 250"),
        },
    };
    let start = match q.next_token.as_deref() {
        None => 0,
        Some(t) => token::decode(t, scope).ok_or("The nextToken is invalid or expired")?,
    };
    Ok((max, start))
}

fn status_filter(q: &Query) -> Result<Option<&str>, &'static str> {
    match q.status.as_deref() {
        None => Ok(None),
        Some(s) if STATUSES.contains(&s) => Ok(Some(s)),
        Some(_) => Err("status is not a valid JobExecutionStatus"),
    }
}

fn scope_of(kind: u64, id: &str, status: Option<&str>) -> u64 {
    let mut h: u64 = kind.wrapping_mul(0x100_0000_01B3);
    for b in id.bytes().chain([0]).chain(status.unwrap_or("").bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// A listing's parameters: status filter, the token scope, page size and start position.
struct Listing<'q> {
    status: Option<&'q str>,
    scope: u64,
    max: usize,
    start: u64,
}

/// Parses a listing's query; `kind` and `id` bind its page tokens to this listing only. The error is
/// the InvalidRequestException message.
fn listing<'q>(
    q: &'q Query,
    kind: u64,
    id: &str,
    status: Result<Option<&'q str>, &'static str>,
) -> Result<Listing<'q>, &'static str> {
    let status = status?;
    let scope = scope_of(kind, id, status);
    let (max, start) = page_params(q, scope)?;
    Ok(Listing {
        status,
        scope,
        max,
        start,
    })
}

/// Writes, comma-separated, the items at positions `start..end` that `write` accepts (it returns
/// whether it wrote one), at most `max`; returns the position a next page starts from, if any.
fn fill_page(
    body: &mut Vec<u8>,
    start: u64,
    end: u64,
    max: usize,
    mut write: impl FnMut(u64, &mut Vec<u8>) -> bool,
) -> Option<u64> {
    let mut n = 0;
    let mut pos = start;
    while pos < end && n < max {
        let mark = body.len();
        if n > 0 {
            body.push(b',');
        }
        if write(pos, body) {
            n += 1;
        } else {
            body.truncate(mark);
        }
        pos += 1;
    }
    (pos < end).then_some(pos)
}

/// `{"<array>":[...]` plus the page token, for a listing of positions `0..end`.
fn page_answer(
    sim: &Simulator,
    l: &Listing,
    array: &str,
    end: u64,
    write: impl FnMut(u64, &mut Vec<u8>) -> bool,
) -> Response<Body> {
    let mut body = Vec::with_capacity(64 + l.max * 200);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(array.as_bytes());
    body.extend_from_slice(b"\":[");
    let next = fill_page(&mut body, l.start, end, l.max, write);
    body.push(b']');
    let token = next.map(|pos| token::encode(pos, l.scope));
    wire::close_page(&mut body, token.as_deref());
    ok(sim, body)
}

fn list_for_job(sim: &Simulator, j: &str, q: &Query) -> Response<Body> {
    if let Some(r) = bad_job(sim, j) {
        return r;
    }
    let l = match listing(q, 1, j, status_filter(q)) {
        Ok(l) => l,
        Err(m) => return invalid(sim, m),
    };
    let fleet = sim.fleet();
    let Some(jj) = fleet.job_index(j) else {
        return not_found(sim, &format!("Job {j} does not exist"));
    };
    page_answer(
        sim,
        &l,
        "executionSummaries",
        fleet.spec().things,
        |i, body| {
            let Some(e) = fleet
                .execution(i, jj)
                .filter(|e| l.status.is_none_or(|s| s == e.status))
            else {
                return false;
            };
            body.extend_from_slice(b"{\"thingArn\":");
            wire::push_str(body, &fleet.thing_arn(i));
            body.extend_from_slice(b",\"jobExecutionSummary\":");
            wire::execution_summary(body, &e);
            body.push(b'}');
            true
        },
    )
}

fn list_for_thing(sim: &Simulator, t: &str, q: &Query) -> Response<Body> {
    if let Some(r) = bad_thing(sim, t) {
        return r;
    }
    let l = match listing(q, 2, t, status_filter(q)) {
        Ok(l) => l,
        Err(m) => return invalid(sim, m),
    };
    let fleet = sim.fleet();
    let Some(i) = fleet.thing_index(t) else {
        return not_found(sim, &format!("Thing {t} does not exist"));
    };
    page_answer(
        sim,
        &l,
        "executionSummaries",
        u64::from(fleet.spec().jobs),
        |j, body| {
            let Some(e) = fleet
                .execution(i, j as u32)
                .filter(|e| l.status.is_none_or(|s| s == e.status))
            else {
                return false;
            };
            body.extend_from_slice(b"{\"jobId\":");
            wire::push_str(body, &fleet.jobs()[j as usize].id);
            body.extend_from_slice(b",\"jobExecutionSummary\":");
            wire::execution_summary(body, &e);
            body.push(b'}');
            true
        },
    )
}

fn list_jobs(sim: &Simulator, q: &Query) -> Response<Body> {
    let status = match q.status.as_deref() {
        Some(s) if !crate::names::JOB_STATUSES.contains(&s) => {
            Err("status is not a valid JobStatus")
        }
        s => Ok(s),
    };
    let l = match listing(q, 3, "", status) {
        Ok(l) => l,
        Err(m) => return invalid(sim, m),
    };
    let fleet = sim.fleet();
    page_answer(sim, &l, "jobs", u64::from(fleet.spec().jobs), |j, body| {
        if l.status
            .is_some_and(|s| s != fleet.jobs()[j as usize].status)
        {
            return false;
        }
        wire::job_summary(body, fleet, j as u32);
        true
    })
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

/// Opaque page tokens: a position bound to the listing it came from, with a check value so that a
/// token edited by hand or replayed on another listing is refused as AWS refuses it.
pub(crate) mod token {
    const KEY: u64 = 0x5EED_F1EE_7A0D_17ED;

    fn check(pos: u64, scope: u64) -> u32 {
        let mut z = pos ^ scope ^ KEY;
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        (z ^ (z >> 33)) as u32
    }

    pub fn encode(pos: u64, scope: u64) -> String {
        format!("{:016x}{:08x}", pos ^ KEY, check(pos, scope))
    }

    pub fn decode(t: &str, scope: u64) -> Option<u64> {
        if t.len() != 24 {
            return None;
        }
        let pos = u64::from_str_radix(&t[..16], 16).ok()? ^ KEY;
        let c = u32::from_str_radix(&t[16..], 16).ok()?;
        (c == check(pos, scope)).then_some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_other_scopes() {
        let t = token::encode(1234, 77);
        assert_eq!(token::decode(&t, 77), Some(1234));
        assert_eq!(token::decode(&t, 78), None);
        assert_eq!(token::decode("garbage", 77), None);
        let mut edited = t.clone().into_bytes();
        edited[15] = if edited[15] == b'0' { b'1' } else { b'0' };
        assert_eq!(token::decode(&String::from_utf8(edited).unwrap(), 77), None);
    }

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
        assert!(route(&Method::GET, "/nope").is_none());
    }
}
