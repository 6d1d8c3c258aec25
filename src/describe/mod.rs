//! `fleet-audit describe`: the AWS CLI's `aws iot describe-job-execution`, kept whole.
//!
//! Same options (`--job-id`, `--thing-name`, `--execution-number`, `--cli-input-json|yaml`,
//! `--generate-cli-skeleton`) and the CLI's global options (`options`: `--output`, `--query`,
//! timeouts, `--ca-bundle`, `--debug`, `--color`), same output document (members in the API model's
//! order, a status-details map in the service's order, 4-space indent, epoch-seconds timestamps as
//! the CLI prints them) in every output format (`format`), the same error line on a service error,
//! and AWS CLI v2's exit codes. `request` reads the request (`--cli-input-*` merged with the flags);
//! `wire` captures the raw answer and the `--debug` log.

pub(crate) mod format;
pub(crate) mod options;
mod request;
mod spell;
mod table;
mod wire;
mod yaml;

use std::time::Duration;

use aws_sdk_iot::types::JobExecution;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::aws::call::EngineSettings;
use crate::aws::call::{call_with_retries, Counters, Final};
use crate::aws::client::{classify_sdk_error, CallError};
use crate::aws::limit::{burst_for, CallLimiter};
use crate::aws::retry::Backoff;

pub(crate) use request::{request_of, DescribeRequest};

/// DescribeJobExecution's quota per account and region (calls a second), and the attempts of one
/// call (the first included).
const DESCRIBE_RPS: f64 = 10.0;
const DESCRIBE_ATTEMPTS: u32 = 5;

/// Errors of the describe command, with AWS CLI v2's exit codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DescribeError {
    /// Bad syntax or a bad parameter (exit 252).
    #[error("{0}")]
    Usage(String),
    /// Invalid configuration or credentials (exit 253).
    #[error("{0}")]
    Config(String),
    /// The service answered with an error (exit 254).
    #[error(
        "An error occurred ({code}) when calling the DescribeJobExecution operation: {message}"
    )]
    Service { code: String, message: String },
    /// No answer could be had (exit 255).
    #[error("{0}")]
    Transport(String),
}

/// AWS CLI v2's exit code of a command interrupted by Ctrl-C.
pub(crate) const EXIT_INTERRUPTED: i32 = 130;

impl DescribeError {
    /// 252 bad syntax or parameter, 253 invalid configuration or credentials, 254 the service
    /// refused the call, 255 anything else.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            DescribeError::Usage(_) => 252,
            DescribeError::Config(_) => 253,
            DescribeError::Service { .. } => 254,
            DescribeError::Transport(_) => 255,
        }
    }
}

fn output_skeleton() -> Value {
    json!({
        "execution": {
            "jobId": "jobId",
            "status": "QUEUED",
            "forceCanceled": true,
            "statusDetails": {"detailsMap": {"KeyName": "value"}},
            "thingArn": "thingArn",
            "queuedAt": "1970-01-01T00:00:00",
            "startedAt": "1970-01-01T00:00:00",
            "lastUpdatedAt": "1970-01-01T00:00:00",
            "executionNumber": 0,
            "versionNumber": 0,
            "approximateSecondsBeforeTimedOut": 0
        }
    })
}

/// Prints `v` as the AWS CLI does (Python's `json.dumps(v, indent=4)`).
pub(crate) fn to_cli_json(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("serializing a Value cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// The skeleton text for `--generate-cli-skeleton KIND`, or a usage error.
pub fn skeleton(kind: &str) -> Result<String, DescribeError> {
    match kind {
        "input" => Ok(request::INPUT_SKELETON.to_string()),
        "yaml-input" => Ok(request::YAML_SKELETON.to_string()),
        "output" => Ok(to_cli_json(&output_skeleton())),
        other => Err(DescribeError::Usage(format!(
            "argument --generate-cli-skeleton: Invalid choice, valid choices are: input | yaml-input | output (got {other:?})"
        ))),
    }
}

fn ts(d: &aws_smithy_types::DateTime) -> Value {
    // Python's float repr and serde_json's both print the shortest representation that round-trips.
    let ms = crate::aws::client::epoch_millis(d);
    serde_json::Number::from_f64(ms as f64 / 1000.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// The CLI's document for a DescribeJobExecution answer: members in model order, absent ones omitted.
pub(crate) fn execution_document(e: &JobExecution) -> Value {
    let mut m = Map::new();
    if let Some(v) = e.job_id() {
        m.insert("jobId".into(), v.into());
    }
    if let Some(v) = e.status() {
        m.insert("status".into(), v.as_str().into());
    }
    if let Some(v) = e.force_canceled() {
        m.insert("forceCanceled".into(), v.into());
    }
    if let Some(d) = e.status_details() {
        let mut sd = Map::new();
        if let Some(map) = d.details_map() {
            let mut kv: Vec<_> = map.iter().collect();
            kv.sort();
            sd.insert(
                "detailsMap".into(),
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect(),
                ),
            );
        }
        m.insert("statusDetails".into(), Value::Object(sd));
    }
    if let Some(v) = e.thing_arn() {
        m.insert("thingArn".into(), v.into());
    }
    for (k, v) in [
        ("queuedAt", e.queued_at()),
        ("startedAt", e.started_at()),
        ("lastUpdatedAt", e.last_updated_at()),
    ] {
        if let Some(d) = v {
            m.insert(k.into(), ts(d));
        }
    }
    if let Some(v) = e.execution_number() {
        m.insert("executionNumber".into(), v.into());
    }
    m.insert("versionNumber".into(), e.version_number().into());
    if let Some(v) = e.approximate_seconds_before_timed_out() {
        m.insert("approximateSecondsBeforeTimedOut".into(), v.into());
    }
    json!({ "execution": Value::Object(m) })
}

/// Replaces the document's status-details map by the one in the answer's raw body, which keeps the
/// service's key order (the SDK hands the map over unordered; the CLI prints it in wire order).
fn wire_order(doc: &mut Value, raw: Option<&[u8]>) {
    let Some(raw) = raw.and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
        return;
    };
    let wire = raw.pointer("/execution/statusDetails/detailsMap");
    let ours = doc.pointer_mut("/execution/statusDetails/detailsMap");
    if let (Some(Value::Object(wire)), Some(Value::Object(ours))) = (wire, ours) {
        let same = wire.len() == ours.len() && wire.iter().all(|(k, v)| ours.get(k) == Some(v));
        if same {
            *ours = wire.clone();
        }
    }
}

/// Calls DescribeJobExecution (retrying transient failures) and returns the CLI's document.
/// `attempt_timeout`: the longest one attempt may take (`None`: no limit); `debug` logs each
/// exchange on stderr.
pub async fn describe(
    client: &aws_sdk_iot::Client,
    req: &DescribeRequest,
    attempt_timeout: Option<Duration>,
    debug: bool,
) -> Result<Value, DescribeError> {
    // The product's call layer, as for a run's calls: a limiter token per attempt (the API's
    // quota), the retry classification and backoff, the attempts counted.
    let limiter = CallLimiter::new(
        Some(DESCRIBE_RPS),
        burst_for(None, Some(DESCRIBE_RPS)),
        true,
    );
    let settings = EngineSettings {
        concurrency: 1,
        max_attempts: DESCRIBE_ATTEMPTS,
        // No limit (`--cli-read-timeout 0`): tokio's timer takes a far future for it.
        call_timeout: attempt_timeout.unwrap_or(Duration::MAX),
        backoff: Backoff::default(),
    };
    let counters = Counters::default();
    let (_never, shutdown) = watch::channel(false);
    // The last attempt's capture: its URL names the endpoint in a transport error.
    let last = std::sync::Mutex::new(wire::Capture::new(debug));
    let attempted = call_with_retries(
        &limiter,
        &settings,
        &counters,
        &counters.attempts,
        &shutdown,
        || {
            let capture = wire::Capture::new(debug);
            *last.lock().unwrap_or_else(|p| p.into_inner()) = capture.clone();
            let sent = client
                .describe_job_execution()
                .job_id(&req.job_id)
                .thing_name(&req.thing_name)
                .set_execution_number(req.execution_number)
                .customize()
                .interceptor(capture.clone())
                .send();
            async move {
                let out = sent.await.map_err(classify_sdk_error)?;
                Ok(match out.execution() {
                    Some(e) => {
                        let mut doc = execution_document(e);
                        wire_order(&mut doc, capture.body().as_deref());
                        doc
                    }
                    None => json!({}),
                })
            }
        },
    )
    .await;
    if debug {
        eprintln!(
            "DEBUG - DescribeJobExecution: {} attempts, {} throttled",
            attempted.attempts,
            Counters::get(&counters.throttled)
        );
    }
    let capture = last.into_inner().unwrap_or_else(|p| p.into_inner());
    let err = match attempted.result {
        Final::Ok(doc) => return Ok(doc),
        Final::NotFound(e) | Final::Failed(e) | Final::Fatal(e) => e,
        // The shutdown above is never set: Ctrl-C ends the command where it waits (`app`).
        Final::Interrupted => unreachable!("describe's shutdown is never set"),
    };
    Err(cli_error(err, &capture))
}

/// The AWS CLI's error for a call that ended with `err`; `capture` holds its last attempt.
fn cli_error(err: CallError, capture: &wire::Capture) -> DescribeError {
    match err {
        CallError::Service { code, message, .. } => DescribeError::Service { code, message },
        CallError::Credentials(m) => {
            DescribeError::Config(format!("Unable to locate credentials: {m}"))
        }
        // In the AWS CLI's words (botocore's EndpointConnectionError, ConnectTimeoutError,
        // ReadTimeoutError), naming the URL it called.
        CallError::Connection(_) if capture.uri().is_some() => DescribeError::Transport(format!(
            "Could not connect to the endpoint URL: \"{}\"",
            capture.uri().unwrap_or_default()
        )),
        CallError::TransportTimeout(ref m) if capture.uri().is_some() => {
            let what = if m.to_ascii_lowercase().contains("connect") {
                "Connect"
            } else {
                "Read"
            };
            DescribeError::Transport(format!(
                "{what} timeout on endpoint URL: \"{}\"",
                capture.uri().unwrap_or_default()
            ))
        }
        CallError::Timeout(_) if capture.uri().is_some() => DescribeError::Transport(format!(
            "Read timeout on endpoint URL: \"{}\"",
            capture.uri().unwrap_or_default()
        )),
        other => DescribeError::Transport(other.to_string()),
    }
}

/// Applies `--query` to the document as the AWS CLI does (before formatting). The JMESPath crate
/// hands objects back sorted; the CLI's keep their order: a multiselect hash's (`{z:status,a:..}`)
/// the expression's, and one of the document's objects the document's.
pub(crate) fn apply_query(
    doc: &Value,
    query: Option<&jmespath::Expression<'static>>,
) -> Result<Value, DescribeError> {
    let Some(q) = query else {
        return Ok(doc.clone());
    };
    let data = jmespath::Variable::from_serializable(doc)
        .map_err(|e| DescribeError::Usage(format!("Bad value for --query {q}: {e}")))?;
    let found = q
        .search(data)
        .map_err(|e| DescribeError::Usage(format!("Bad value for --query {q}: {e}")))?;
    let mut v = serde_json::to_value(&*found).unwrap_or(Value::Null);
    let mut hashes = Vec::new();
    hash_keys(q.as_ast(), &mut hashes);
    reorder_like(&mut v, doc, &hashes);
    Ok(v)
}

/// The keys of every multiselect hash in `ast`, each in the expression's order (a key written twice
/// keeps its first place, as a Python dict does).
fn hash_keys(ast: &jmespath::ast::Ast, out: &mut Vec<Vec<String>>) {
    use jmespath::ast::Ast;
    match ast {
        Ast::MultiHash { elements, .. } => {
            let mut keys: Vec<String> = Vec::new();
            for kv in elements {
                if !keys.contains(&kv.key) {
                    keys.push(kv.key.clone());
                }
                hash_keys(&kv.value, out);
            }
            out.push(keys);
        }
        Ast::MultiList { elements, .. } => elements.iter().for_each(|e| hash_keys(e, out)),
        Ast::Function { args, .. } => args.iter().for_each(|e| hash_keys(e, out)),
        Ast::Comparison { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => {
            hash_keys(lhs, out);
            hash_keys(rhs, out);
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            hash_keys(predicate, out);
            hash_keys(then, out);
        }
        Ast::Expref { ast, .. } => hash_keys(ast, out),
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            hash_keys(node, out)
        }
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => {}
    }
}

/// Gives every object of `v` the key order of a multiselect hash of the query with the same keys,
/// else of an object of `like` (the document) with the same keys.
fn reorder_like(v: &mut Value, like: &Value, hashes: &[Vec<String>]) {
    fn objects<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
        match v {
            Value::Object(m) => {
                out.push(m);
                m.values().for_each(|c| objects(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| objects(c, out)),
            _ => {}
        }
    }
    let mut known = Vec::new();
    objects(like, &mut known);
    fn fix(v: &mut Value, known: &[&Map<String, Value>], hashes: &[Vec<String>]) {
        match v {
            Value::Object(m) => {
                let same = |keys: Vec<&String>| {
                    keys.len() == m.len() && keys.iter().all(|key| m.contains_key(*key))
                };
                let model: Option<Vec<String>> = hashes
                    .iter()
                    .find(|h| same(h.iter().collect()))
                    .cloned()
                    .or_else(|| {
                        known
                            .iter()
                            .find(|k| same(k.keys().collect()))
                            .map(|k| k.keys().cloned().collect())
                    });
                if let Some(model) = model {
                    let mut ordered = Map::new();
                    for key in &model {
                        if let Some(val) = m.remove(key) {
                            ordered.insert(key.clone(), val);
                        }
                    }
                    *m = ordered;
                }
                m.values_mut().for_each(|c| fix(c, known, hashes));
            }
            Value::Array(a) => a.iter_mut().for_each(|c| fix(c, known, hashes)),
            _ => {}
        }
    }
    fix(v, &known, hashes);
}

/// The SDK configuration of `client` with the global options applied: the socket timeouts (0: no
/// limit) and, with a CA bundle, an HTTPS client that trusts only that bundle.
pub(crate) async fn sdk_config(
    client: &crate::aws::client::ClientSettings,
    opts: &options::GlobalOptions,
) -> Result<aws_config::SdkConfig, DescribeError> {
    use aws_config::timeout::TimeoutConfig;
    let sdk = crate::aws::client::load_sdk_config(client).await;
    // The AWS CLI's timeouts, not a run's: no read or operation limit but the options' (each
    // attempt is bounded by `attempt_timeout`).
    let mut timeouts = sdk
        .timeout_config()
        .cloned()
        .unwrap_or_else(|| TimeoutConfig::builder().build())
        .into_builder()
        .disable_read_timeout()
        .disable_operation_timeout()
        .disable_operation_attempt_timeout();
    match opts.connect_timeout {
        Some(Some(d)) => timeouts = timeouts.connect_timeout(d),
        Some(None) => timeouts = timeouts.disable_connect_timeout(),
        None => {}
    }
    match opts.read_timeout {
        Some(Some(d)) => timeouts = timeouts.read_timeout(d),
        Some(None) => timeouts = timeouts.disable_read_timeout(),
        None => {}
    }
    let mut b = sdk.into_builder().timeout_config(timeouts.build());
    if let Some((path, pem)) = &opts.ca_bundle {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
        let bad = |e: &dyn std::fmt::Display| {
            DescribeError::Config(format!(
                "the CA bundle {} cannot be used: {e}",
                path.display()
            ))
        };
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(pem.clone());
        let ctx = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| bad(&e))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(ctx)
            .build_https();
        b = b.http_client(http);
    }
    Ok(b.build())
}

/// How long one attempt may take: no limit with `--cli-read-timeout 0`, else 30 s or twice the read
/// timeout, whichever is longer.
pub(crate) fn attempt_timeout(opts: &options::GlobalOptions) -> Option<Duration> {
    match opts.read_timeout {
        Some(None) => None,
        Some(Some(d)) => Some((d * 2).max(Duration::from_secs(30))),
        None => Some(Duration::from_secs(30)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeletons_and_cli_json_format() {
        // As `aws iot describe-job-execution --generate-cli-skeleton input` prints it (a literal, not
        // the constant compared with itself; tests/clients/test_describe_formats.py runs the CLI).
        assert_eq!(
            skeleton("input").unwrap(),
            "{\n    \"jobId\": \"\",\n    \"thingName\": \"\",\n    \"executionNumber\": 0\n}"
        );
        let out: Value = serde_json::from_str(&skeleton("output").unwrap()).unwrap();
        assert!(out["execution"]["approximateSecondsBeforeTimedOut"].is_number());
        assert!(skeleton("bogus").is_err());
        let doc =
            json!({"execution": {"jobId": "j", "statusDetails": {}, "queuedAt": 1560787023.636}});
        assert_eq!(
            to_cli_json(&doc),
            "{\n    \"execution\": {\n        \"jobId\": \"j\",\n        \"statusDetails\": {},\n        \"queuedAt\": 1560787023.636\n    }\n}"
        );
    }

    #[test]
    fn a_query_keeps_the_expression_order_of_its_hashes_and_the_document_order_of_its_objects() {
        let doc = json!({"execution": {"jobId": "j", "status": "QUEUED", "executionNumber": 3,
            "statusDetails": {"detailsMap": {"z": "1", "a": "2"}}}});
        let q = |e: &str| {
            let v = apply_query(&doc, Some(&jmespath::compile(e).unwrap())).unwrap();
            serde_json::to_string(&v).unwrap()
        };
        assert_eq!(
            q("execution.{z:status,a:executionNumber,m:jobId}"),
            r#"{"z":"QUEUED","a":3,"m":"j"}"#
        );
        assert_eq!(
            q("{x:execution.{s:status,j:jobId},b:execution.executionNumber}"),
            r#"{"x":{"s":"QUEUED","j":"j"},"b":3}"#
        );
        assert_eq!(
            q("execution.statusDetails.detailsMap"),
            r#"{"z":"1","a":"2"}"#
        );
        assert_eq!(q("{a:jobId,a:status}"), r#"{"a":null}"#);
    }
}
