//! The three listings (ListJobExecutionsForJob, ListJobExecutionsForThing, ListJobs) and what they
//! share: maxResults and status checks, the page walk, and the opaque page tokens.
//!
//! They are apart from the routing and the describe answers because paging is the one part of the
//! wire whose state the client carries (the token), and its rule, that a token works only on the
//! listing and status filter it came from, is easier to keep right in one place.

use hyper::Response;

use super::fleet::STATUSES;
use super::http::{bad_job, bad_thing, invalid, not_found, ok, Body, Query};
use super::{wire, Simulator};

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

/// ListJobExecutionsForJob: the things job `j` targets, in thing order.
pub(super) fn for_job(sim: &Simulator, j: &str, q: &Query) -> Response<Body> {
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

/// ListJobExecutionsForThing: the jobs that target thing `t`, in job order.
pub(super) fn for_thing(sim: &Simulator, t: &str, q: &Query) -> Response<Body> {
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

/// ListJobs, in job order.
pub(super) fn jobs(sim: &Simulator, q: &Query) -> Response<Body> {
    let status = match q.status.as_deref() {
        Some(s) if !crate::input::names::JOB_STATUSES.contains(&s) => {
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
        if l.status.is_some_and(|s| s != fleet.job_status(j as u32)) {
            return false;
        }
        wire::job_summary(body, fleet, j as u32);
        true
    })
}

/// A page token for position `pos` of the listing `scope` names (the registry's listings too).
pub(super) fn encode_token(pos: u64, scope: u64) -> String {
    token::encode(pos, scope)
}

/// The position a page token holds, if it is one of listing `scope`'s.
pub(super) fn decode_token(t: &str, scope: u64) -> Option<u64> {
    token::decode(t, scope)
}

/// Opaque page tokens: a position bound to the listing it came from, with a check value so that a
/// token edited by hand or replayed on another listing is refused as AWS refuses it.
mod token {
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

    pub(crate) fn decode(t: &str, scope: u64) -> Option<u64> {
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
}
