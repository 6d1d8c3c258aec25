//! The calls that change the fleet, CancelJobExecution and DeleteJobExecution, answered as AWS
//! answers them; and the test hook that moves the simulator's clock (`POST /_sim/advance`).
//!
//! The change itself, checked and made under one lock, is the fleet's ([`super::fleet::Fleet::cancel`],
//! [`super::fleet::Fleet::delete`]); this file reads the request (its body checked against botocore's
//! `iot` model: `expectedVersion` a long, `statusDetails` at most 10 entries of `[a-zA-Z0-9:_-]+` keys
//! up to 128 characters and non-empty values without control characters) and words the answer.

use hyper::{Response, StatusCode};

use super::fleet::{Cancel, Refusal};
use super::http::{bad_job, bad_thing, error, invalid, not_found, ok, parse_query, Body, Query};
use super::Simulator;

/// At most this many `statusDetails` entries (AWS's limit).
const MAX_DETAILS: usize = 10;

/// `force=true|false`, absent: false; `None` for any other value.
fn force(q: &Query) -> Option<bool> {
    match q.force.as_deref() {
        None | Some("false") => Some(false),
        Some("true") => Some(true),
        Some(_) => None,
    }
}

fn valid_key(k: &str) -> bool {
    (1..=128).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

fn valid_value(v: &str) -> bool {
    !v.is_empty() && !v.chars().any(char::is_control)
}

/// CancelJobExecution's body: `expectedVersion` and `statusDetails`, both optional.
fn cancel_body(body: &str, force: bool) -> Result<Cancel, String> {
    let mut req = Cancel {
        force,
        ..Cancel::default()
    };
    if body.trim().is_empty() {
        return Ok(req);
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "The request body is not valid JSON".to_string())?;
    let obj = v
        .as_object()
        .ok_or("The request body must be a JSON object")?;
    if let Some(x) = obj.get("expectedVersion") {
        req.expected_version = Some(x.as_i64().ok_or("expectedVersion must be a long")?);
    }
    if let Some(d) = obj.get("statusDetails") {
        let d = d.as_object().ok_or("statusDetails must be a map")?;
        if d.len() > MAX_DETAILS {
            return Err(format!(
                "statusDetails has {} entries; at most {MAX_DETAILS} are allowed",
                d.len()
            ));
        }
        let mut pairs = Vec::with_capacity(d.len());
        for (k, v) in d {
            let v = v.as_str().ok_or("statusDetails values must be strings")?;
            if !valid_key(k) || !valid_value(v) {
                return Err(format!("statusDetails entry `{k}` is not valid"));
            }
            pairs.push((k.clone(), v.to_string()));
        }
        pairs.sort();
        req.status_details = Some(pairs);
    }
    Ok(req)
}

/// The answer to a refused change, in AWS's words.
fn refusal(sim: &Simulator, r: Refusal, t: &str, j: &str) -> Response<Body> {
    match r {
        Refusal::NotFound(_) => not_found(
            sim,
            &format!("Job Execution for job {j} on thing {t} does not exist"),
        ),
        Refusal::InvalidState(m) => error(
            sim,
            StatusCode::CONFLICT,
            "InvalidStateTransitionException",
            &m,
        ),
        Refusal::VersionConflict(m) => {
            error(sim, StatusCode::CONFLICT, "VersionConflictException", &m)
        }
        Refusal::Invalid(m) => invalid(sim, &m),
    }
}

/// The thing's and job's indices (`Ok(None)`: the fleet has no such pair), or the answer AWS gives
/// for names it refuses.
fn pair(sim: &Simulator, t: &str, j: &str) -> Result<Option<(u64, u32)>, Box<Response<Body>>> {
    if let Some(r) = bad_thing(sim, t).or_else(|| bad_job(sim, j)) {
        return Err(Box::new(r));
    }
    let fleet = sim.fleet();
    Ok(fleet.thing_index(t).zip(fleet.job_index(j)))
}

/// The pair's indices, or the answer to a request about a pair that cannot be changed.
macro_rules! pair_or_answer {
    ($sim:expr, $t:expr, $j:expr) => {
        match pair($sim, $t, $j) {
            Ok(Some(p)) => p,
            Ok(None) => return refusal($sim, Refusal::NotFound(String::new()), $t, $j),
            Err(r) => return *r,
        }
    };
}

/// `PUT /things/{thingName}/jobs/{jobId}/cancel?force=`.
pub(super) fn cancel(sim: &Simulator, t: &str, j: &str, q: &Query, body: &str) -> Response<Body> {
    let (i, jj) = pair_or_answer!(sim, t, j);
    let Some(force) = force(q) else {
        return invalid(sim, "force must be true or false");
    };
    let req = match cancel_body(body, force) {
        Err(m) => return invalid(sim, &m),
        Ok(req) => req,
    };
    match sim.fleet().cancel(i, jj, &req) {
        Ok(()) => ok(sim, b"{}".to_vec()),
        Err(r) => refusal(sim, r, t, j),
    }
}

/// `DELETE /things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}?force=`.
pub(super) fn delete(sim: &Simulator, t: &str, j: &str, n: &str, q: &Query) -> Response<Body> {
    let (i, jj) = pair_or_answer!(sim, t, j);
    let Ok(number) = n.parse::<i64>() else {
        return invalid(sim, "executionNumber must be a long");
    };
    let Some(force) = force(q) else {
        return invalid(sim, "force must be true or false");
    };
    match sim.fleet().delete(i, jj, number, force) {
        // AWS answers a delete with an empty body.
        Ok(()) => ok(sim, Vec::new()),
        Err(r) => refusal(sim, r, t, j),
    }
}

/// `POST /_sim/advance?seconds=N`: the fleet's clock moves N seconds on (N a whole number, at most
/// a year), and the answer says the new now in epoch seconds.
pub(super) fn advance(sim: &Simulator, query: Option<&str>) -> Response<Body> {
    let seconds = parse_query(query)
        .and_then(|q| q.seconds)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s <= 366 * 86_400);
    let Some(seconds) = seconds else {
        return invalid(sim, "advance needs seconds=N, a whole number up to a year");
    };
    let now = sim.fleet().advance(seconds * 1000);
    let mut body = b"{\"now\":".to_vec();
    super::wire::push_ts(&mut body, now);
    body.push(b'}');
    ok(sim, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_bodies_are_checked_as_aws_does() {
        let c = cancel_body(
            r#"{"expectedVersion":3,"statusDetails":{"by":"fleet-audit","plan":"p-1"}}"#,
            true,
        )
        .unwrap();
        assert_eq!(c.expected_version, Some(3));
        assert!(c.force);
        assert_eq!(
            c.status_details.unwrap(),
            vec![
                ("by".to_string(), "fleet-audit".to_string()),
                ("plan".into(), "p-1".into())
            ]
        );
        assert!(cancel_body("", false).unwrap().status_details.is_none());
        let eleven: Vec<String> = (0..11).map(|k| format!("\"k{k}\":\"v\"")).collect();
        let too_many = format!("{{\"statusDetails\":{{{}}}}}", eleven.join(","));
        assert!(cancel_body(&too_many, false)
            .unwrap_err()
            .contains("at most 10"));
        for bad in [
            r#"{"statusDetails":{"a b":"v"}}"#,
            r#"{"statusDetails":{"k":""}}"#,
            r#"{"statusDetails":{"k":"line\nbreak"}}"#,
            r#"{"expectedVersion":"3"}"#,
            "[1]",
            "{",
        ] {
            assert!(cancel_body(bad, false).is_err(), "{bad}");
        }
    }
}
