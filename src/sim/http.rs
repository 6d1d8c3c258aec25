//! What every route of the simulator answers with: an `ok` body, the AWS error shapes (`error`,
//! `not_found`, `invalid`, the name checks `bad_thing` and `bad_job`), a dropped connection, and the
//! query string the list operations take. The routes (`server`, `list`, `faults`) use these; these
//! use none of them.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::{wire, Simulator};
use crate::input::names::{is_valid_job_id, is_valid_thing_name};

pub(super) type Body = Full<Bytes>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(super) struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

/// An AWS-style error answer.
pub(super) fn error(
    sim: &Simulator,
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response<Body> {
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

pub(super) fn ok(sim: &Simulator, body: Vec<u8>) -> Response<Body> {
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

pub(super) fn not_found(sim: &Simulator, what: &str) -> Response<Body> {
    error(
        sim,
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        what,
    )
}

pub(super) fn invalid(sim: &Simulator, what: &str) -> Response<Body> {
    error(
        sim,
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        what,
    )
}

/// Percent-decodes one path segment or query value (`+` stays `+`, as in AWS's URI encoding).
pub(super) fn decode(s: &str) -> Option<String> {
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
pub(super) struct Query {
    pub(super) max_results: Option<String>,
    pub(super) next_token: Option<String>,
    pub(super) status: Option<String>,
    pub(super) execution_number: Option<String>,
    /// CancelJobExecution's and DeleteJobExecution's `force`.
    pub(super) force: Option<String>,
    /// `POST /_sim/advance`'s `seconds`.
    pub(super) seconds: Option<String>,
    /// ListThings' filters.
    pub(super) thing_type_name: Option<String>,
    pub(super) attribute_name: Option<String>,
    pub(super) attribute_value: Option<String>,
}

pub(super) fn parse_query(q: Option<&str>) -> Option<Query> {
    let mut out = Query::default();
    for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = decode(v)?;
        match k {
            "maxResults" => out.max_results = Some(v),
            "nextToken" => out.next_token = Some(v),
            "status" => out.status = Some(v),
            "executionNumber" => out.execution_number = Some(v),
            "force" => out.force = Some(v),
            "seconds" => out.seconds = Some(v),
            "thingTypeName" => out.thing_type_name = Some(v),
            "attributeName" => out.attribute_name = Some(v),
            "attributeValue" => out.attribute_value = Some(v),
            _ => {}
        }
    }
    Some(out)
}

/// The InvalidRequestException answer for a thing name AWS would refuse, if it is one.
pub(super) fn bad_thing(sim: &Simulator, t: &str) -> Option<Response<Body>> {
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
pub(super) fn bad_job(sim: &Simulator, j: &str) -> Option<Response<Body>> {
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
