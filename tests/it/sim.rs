//! The simulator on the wire, one raw HTTP/1.1 request at a time: every fault knob, the quota,
//! authentication, error shapes, and pagination that lists every execution exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;
use fleet_audit::sim::{Faults, Operation, SimServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer: status (0 when the connection closed without one), headers (lower-cased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn get(server: &SimServer, path: &str, auth: bool) -> Answer {
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let auth = if auth {
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20261129/us-east-1/iot/aws4_request\r\n"
    } else {
        ""
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: sim\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer {
            status: 0,
            headers: vec![],
            body: text,
        };
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn sim_with(faults: Faults) -> SimServer {
    let mut cfg = sim_config(fleet(50, 2, 4));
    cfg.faults = faults;
    start(cfg).await
}

/// A pair that has an execution in `fleet(50, 2, 4)`.
fn existing(server: &SimServer) -> String {
    let f = server.simulator().fleet();
    let i = (0..50).find(|&i| f.execution(i, 0).is_some()).unwrap();
    format!("/things/{}/jobs/job-000", f.thing_name(i))
}

#[tokio::test]
async fn describe_answers_the_seed_shape_and_aws_errors() {
    let server = sim_with(Faults::default()).await;
    let a = get(&server, &existing(&server), true).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(a.header("x-amzn-requestid").is_some());
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let e = &v["execution"];
    for k in [
        "jobId",
        "status",
        "statusDetails",
        "thingArn",
        "queuedAt",
        "lastUpdatedAt",
        "executionNumber",
        "versionNumber",
    ] {
        assert!(!e[k].is_null(), "{k} missing in {}", a.body);
    }
    assert!(
        !a.body.contains("null"),
        "absent fields are omitted: {}",
        a.body
    );
    // Epoch seconds with three decimals.
    let q = e["queuedAt"].as_f64().unwrap();
    assert!((1.7e9..1.8e9).contains(&q));

    let a = get(&server, "/things/nobody/jobs/job-000", true).await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert!(a.body.contains("\"message\""));
    let a = get(&server, "/things/bad%20name/jobs/job-000", true).await;
    assert_eq!(
        (a.status, a.header("x-amzn-errortype")),
        (400, Some("InvalidRequestException"))
    );
    let a = get(
        &server,
        &format!("{}?executionNumber=x", existing(&server)),
        true,
    )
    .await;
    assert_eq!(a.status, 400);
    let a = get(
        &server,
        &format!("{}?executionNumber=99", existing(&server)),
        true,
    )
    .await;
    assert_eq!(a.status, 404);
    let a = get(&server, &existing(&server), false).await;
    assert_eq!(
        (a.status, a.header("x-amzn-errortype")),
        (403, Some("MissingAuthenticationTokenException"))
    );
    // Every request counts under its operation, answered or not.
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 6);
    assert_eq!(server.stats().unauthenticated, 1);
}

// The quota's buckets run on tokio's clock: with it paused, no token comes back between the
// requests however slowly they are served, until the test advances it.
#[tokio::test(start_paused = true)]
async fn quota_throttles_with_http_400() {
    let mut cfg = sim_config(fleet(10, 1, 1));
    cfg.quota_rps = Some(1.0);
    cfg.quota_burst = Some(2);
    let server = start(cfg).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let a = get(&server, "/things/thing-000001/jobs/job-000", true).await;
        codes.push((a.status, a.header("x-amzn-errortype").map(str::to_string)));
    }
    let throttled = codes
        .iter()
        .filter(|(s, t)| *s == 400 && t.as_deref() == Some("ThrottlingException"))
        .count();
    assert_eq!(throttled, 2, "{codes:?}");
    assert_eq!(
        codes.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [200, 200, 400, 400],
        "the burst first, then throttles"
    );
    assert_eq!(server.stats().throttled, 2);
    // Other operations have their own bucket.
    assert_eq!(get(&server, "/jobs/job-000", true).await.status, 200);
    // One second (1 call/s) gives one token back: one more answer, then a throttle again.
    tokio::time::advance(Duration::from_secs(1)).await;
    let path = "/things/thing-000001/jobs/job-000";
    assert_eq!(get(&server, path, true).await.status, 200);
    assert_eq!(get(&server, path, true).await.status, 400);
    assert_eq!(server.stats().throttled, 3);
}

#[tokio::test]
async fn each_fault_knob_misbehaves_as_told() {
    let path = |s: &SimServer| existing(s);
    // 5xx
    let s = sim_with(Faults {
        p_5xx: 1.0,
        ..Faults::default()
    })
    .await;
    let a = get(&s, &path(&s), true).await;
    assert!(a.status == 500 || a.status == 503, "{}", a.status);
    assert!(matches!(
        a.header("x-amzn-errortype"),
        Some("InternalFailureException" | "ServiceUnavailableException")
    ));
    // drop: the connection closes without an answer
    let s = sim_with(Faults {
        p_drop: 1.0,
        ..Faults::default()
    })
    .await;
    let a = get(&s, &path(&s), true).await;
    assert_eq!(a.status, 0, "no answer expected, got {}", a.body);
    assert_eq!(s.stats().faults["drop"], 1);
    // garbage: 200 with a body that is not JSON
    let s = sim_with(Faults {
        p_garbage: 1.0,
        ..Faults::default()
    })
    .await;
    let a = get(&s, &path(&s), true).await;
    assert_eq!(a.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&a.body).is_err());
    // throttle regardless of quota
    let s = sim_with(Faults {
        p_throttle: 1.0,
        ..Faults::default()
    })
    .await;
    let a = get(&s, &path(&s), true).await;
    assert_eq!(
        (a.status, a.header("x-amzn-errortype")),
        (400, Some("ThrottlingException"))
    );
    // slow: the answer comes, after the stall
    let s = sim_with(Faults {
        p_slow: 1.0,
        slow: Duration::from_millis(300),
        ..Faults::default()
    })
    .await;
    let t = Instant::now();
    let a = get(&s, &path(&s), true).await;
    assert_eq!(a.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Probability 0 never fires.
    let s = sim_with(Faults::default()).await;
    for _ in 0..20 {
        assert_eq!(get(&s, &path(&s), true).await.status, 200);
    }
    assert_eq!(s.stats().faults.values().sum::<u64>(), 0);
}

#[tokio::test]
async fn pagination_lists_every_execution_exactly_once() {
    let server = start(sim_config(fleet(1_000, 3, 6))).await;
    let fleet = server.simulator().fleet();
    for (job, j) in [("job-000", 0u32), ("job-002", 2)] {
        for max in [1usize, 7, 250] {
            let mut seen = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut p = format!("/jobs/{job}/things?maxResults={max}");
                if let Some(t) = &token {
                    p.push_str(&format!("&nextToken={t}"));
                }
                let a = get(&server, &p, true).await;
                assert_eq!(a.status, 200, "{}", a.body);
                let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
                let items = v["executionSummaries"].as_array().unwrap();
                assert!(items.len() <= max);
                for it in items {
                    seen.push(it["thingArn"].as_str().unwrap().to_string());
                }
                pages += 1;
                match v["nextToken"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
                if max == 1 && pages > 2_000 {
                    panic!("runaway pagination");
                }
            }
            let unique: HashSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{job} max {max}: a thing twice");
            let expected = (0..1_000)
                .filter(|&i| fleet.execution(i, j).is_some())
                .count();
            assert_eq!(seen.len(), expected, "{job} max {max}");
        }
    }
    // Tokens are opaque and bound to their listing.
    let a = get(&server, "/jobs/job-000/things?maxResults=5", true).await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let t = v["nextToken"].as_str().unwrap();
    let other = get(
        &server,
        &format!("/jobs/job-001/things?nextToken={t}"),
        true,
    )
    .await;
    assert_eq!(other.status, 400);
    assert_eq!(
        get(&server, "/jobs/job-000/things?maxResults=251", true)
            .await
            .status,
        400
    );
    assert_eq!(
        get(&server, "/jobs/job-000/things?status=BOGUS", true)
            .await
            .status,
        400
    );
}
