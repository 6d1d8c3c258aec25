//! The fleet client: one DescribeJobExecution attempt, as a trait, and its `aws-sdk-iot` implementation.
//!
//! The trait is the seam between the audit engine and AWS: the engine owns rate limiting, retries and
//! timeouts, and calls [`FleetClient::describe_job_execution`] once per attempt. [`IotClient`] is the
//! real implementation and the only one the product uses; it is built by [`load_sdk_config`], the one
//! place that turns region, profile, endpoint and credentials into SDK configuration. The SDK's own
//! retry layer is switched off there, so exactly one retry owner exists (the call module, deciding
//! by the retry module's classes). For tests, [`fake::FakeFleet`] answers from memory and
//! [`faulty::Faulty`] wraps any client with failures and latency.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::JobExecution;

mod context;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod faulty;
mod list;
pub(crate) mod org;
mod remedy;
pub(crate) use context::{FleetContext, MAX_GROUPS, SEARCH_PAGE};
pub use context::{JobContext, ThingContext, ThingShape};
pub use list::ExecutionSummary;
pub(crate) use list::{FleetLister, JobCounts, ListedExecution, Page, MAX_PAGE};
pub(crate) use remedy::FleetChanger;
pub use remedy::{CancelRequest, DeleteRequest};

/// One job execution as DescribeJobExecution reported it; absent fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionRecord {
    pub job_id: Option<String>,
    /// As AWS spells it; a value the SDK does not know is kept as sent.
    pub status: Option<String>,
    pub force_canceled: Option<bool>,
    /// `statusDetails.detailsMap`, sorted by key; `None` when absent.
    pub status_details: Option<Vec<(String, String)>>,
    pub thing_arn: Option<String>,
    pub queued_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub last_updated_at_ms: Option<i64>,
    pub execution_number: Option<i64>,
    pub version_number: Option<i64>,
    pub approximate_seconds_before_timed_out: Option<i64>,
}

/// Why one attempt failed, separating what the service said from what the transport did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The service answered with an error (`x-amzn-ErrorType` code and message).
    #[error("{code}: {message}")]
    Service {
        code: String,
        message: String,
        http_status: u16,
    },
    /// The attempt took longer than the per-attempt timeout.
    #[error("attempt timed out after {0:?}")]
    Timeout(Duration),
    /// The SDK gave up waiting (a connect timeout): the transport's own words, which say how long.
    #[error("timed out: {0}")]
    TransportTimeout(String),
    /// The connection failed or was closed before an answer.
    #[error("connection error: {0}")]
    Connection(String),
    /// An answer arrived but could not be understood.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// No credentials could be found or used to sign.
    #[error("credentials unavailable: {0}")]
    Credentials(String),
    /// The request could not be built or sent for another reason.
    #[error("{0}")]
    Other(String),
}

impl CallError {
    /// The value of the `error_code` column: the AWS error code, or a transport class.
    pub fn code(&self) -> &str {
        match self {
            CallError::Service { code, .. } => code,
            CallError::Timeout(_) | CallError::TransportTimeout(_) => "Timeout",
            CallError::Connection(_) => "ConnectionError",
            CallError::Malformed(_) => "MalformedResponse",
            CallError::Credentials(_) => "CredentialsError",
            CallError::Other(_) => "ClientError",
        }
    }

    /// What a person does about an error that every call would meet (credentials, permissions),
    /// by its code: `; ` and the next step (empty for any other error).
    pub(crate) fn next_step(&self) -> &'static str {
        match self.code() {
        "ExpiredTokenException" | "ExpiredToken" => {
            "; the credentials have expired: refresh them (aws sso login, a new session token or \
             assumed role) before running again"
        }
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedException" => {
            "; the credentials lack a permission: README's IAM section lists the actions a run needs"
        }
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature" => {
            "; the credentials are not valid here: check the access key, its secret, the profile and \
             the region"
        }
        "MissingAuthenticationTokenException" | "MissingAuthenticationToken" => {
            "; the request was not signed: check the endpoint URL and that credentials are set"
        }
        "CredentialsError" => {
            "; no credentials: set AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role"
        }
        _ => "",
    }
    }

    /// The value of the `error_message` column.
    pub fn message(&self) -> String {
        match self {
            CallError::Service { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// One DescribeJobExecution attempt. Implementations make exactly one request per call and never retry.
pub(crate) trait FleetClient: Send + Sync + 'static {
    fn describe_job_execution(
        &self,
        thing_name: &str,
        job_id: &str,
        execution_number: Option<i64>,
    ) -> impl Future<Output = Result<ExecutionRecord, CallError>> + Send;
}

/// Where and as whom to call AWS.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides the endpoint (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_IOT` are read by the SDK itself).
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the default chain (the embedded simulator uses these).
    pub static_credentials: Option<Credentials>,
    /// Upper bound of connection set-up (at most the call timeout).
    pub connect_timeout: Option<Duration>,
    /// Upper bound of one SDK call (`--call-timeout`): its connection, each read of its answer and
    /// the whole operation. `None`: [`DEFAULT_CALL_TIMEOUT`].
    pub call_timeout: Option<Duration>,
    /// A role to assume (through STS, with the credentials above as the source) before calling IoT.
    pub role_arn: Option<String>,
}

/// Errors before the first call: configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no AWS region: pass --region or set AWS_REGION (or a region in the profile)")]
    NoRegion,
    #[error("no usable AWS credentials: {0}")]
    NoCredentials(String),
    /// STS refused the credentials (GetCallerIdentity answered with an error).
    #[error("AWS refused the credentials: {0}{hint}", hint = .0.next_step())]
    Rejected(CallError),
    /// STS refused to assume the role (it is missing, or does not trust the caller).
    #[error("cannot assume {role}: {reason}")]
    RoleRefused { role: String, reason: String },
    /// One target of several could not be set up.
    #[error("target {target}: {source}")]
    InTarget {
        target: String,
        source: Box<SetupError>,
    },
}

/// The call timeout of SDK configuration built without one (`--call-timeout`'s default).
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK's timeouts for calls of at most `call` each: connecting (at most `connect`), every read of
/// an answer, an attempt and the whole operation (one attempt: the SDK does not retry). A set-up call
/// made before the engine's own timeout applies (STS GetCallerIdentity, AssumeRole) ends within them
/// even against an endpoint that accepts connections and never answers.
pub(crate) fn call_timeouts(call: Duration, connect: Option<Duration>) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(connect.unwrap_or(Duration::from_secs(5)).min(call))
        .read_timeout(call)
        .operation_attempt_timeout(call)
        .operation_timeout(call)
        .build()
}

/// `t` for a client with the SDK's retries (Organizations, Account): each attempt as in `t`, the
/// whole operation `attempts` of them and the standard backoff between (at most 20 s each).
pub(crate) fn retried_timeouts(t: &TimeoutConfig, attempts: u32) -> TimeoutConfig {
    let attempt = t
        .operation_attempt_timeout()
        .unwrap_or(DEFAULT_CALL_TIMEOUT);
    let backoff = Duration::from_secs(20) * attempts.saturating_sub(1);
    t.to_builder()
        .operation_timeout(attempt * attempts + backoff)
        .build()
}

/// Builds SDK configuration from the default chain and the overrides in `s`. The SDK's retries are
/// disabled: the audit engine is the only retry owner. Every call has connect, read and operation
/// timeouts ([`call_timeouts`] of `s.call_timeout`).
pub async fn load_sdk_config(s: &ClientSettings) -> SdkConfig {
    let call = s.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        // Our per-attempt timeout already ends a stalled answer; the SDK's throughput watch on every
        // response body would only add timer and clock work to each call.
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .timeout_config(call_timeouts(call, s.connect_timeout));
    if let Some(r) = &s.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(p) = &s.profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = &s.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    if let Some(c) = &s.static_credentials {
        loader = loader.credentials_provider(c.clone());
    }
    let base = loader.load().await;
    match &s.role_arn {
        Some(role) => assume_role(base, role).await,
        None => base,
    }
}

/// `base` with the credentials of `role`, assumed through STS with `base`'s credentials, region and
/// endpoint (an emulator's STS when an endpoint is given). The SDK's identity cache calls AssumeRole
/// when first needed and again before the credentials expire.
pub(crate) async fn assume_role(base: SdkConfig, role: &str) -> SdkConfig {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .configure(&base)
        .session_name("fleet-audit")
        .build()
        .await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// STS's refusal to assume a role, when that is what `e` (a call's error) comes down to: its code
/// and message (`AccessDenied: User ... is not authorized to perform: sts:AssumeRole ...`), instead of
/// the credential chain's nested error.
fn role_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(a) = c.downcast_ref::<aws_sdk_sts::operation::assume_role::AssumeRoleError>() {
            return Some(format!(
                "{}: {}",
                a.code().unwrap_or("refused"),
                a.message().unwrap_or("no message")
            ));
        }
        cur = c.source();
    }
    None
}

/// Who the credentials of `config` are, from STS GetCallerIdentity: the account id. `Err` when STS
/// refuses the credentials (IoT would refuse them too), or, with a `role` (assumed-role credentials,
/// which only STS can give), when STS cannot be reached; otherwise an unreachable STS gives
/// `Ok(None)` and the run goes on without an account id. A refusal to assume `role` is
/// [`SetupError::RoleRefused`], in STS's own words.
pub(crate) async fn caller_account(
    config: &SdkConfig,
    role: Option<&str>,
) -> Result<Option<String>, SetupError> {
    let required = role.is_some();
    let sts = aws_sdk_sts::Client::new(config);
    let err = match sts.get_caller_identity().send().await {
        Ok(out) => return Ok(out.account),
        Err(e) => e,
    };
    if let (Some(role), Some(reason)) = (role, role_refusal(&err)) {
        return Err(SetupError::RoleRefused {
            role: role.to_string(),
            reason,
        });
    }
    let chain = error_chain(&err);
    match classify_sdk_error(err) {
        err @ CallError::Service { .. } => Err(SetupError::Rejected(err)),
        CallError::Credentials(m) => Err(SetupError::NoCredentials(m)),
        _ if required => Err(SetupError::NoCredentials(chain)),
        other => {
            tracing::warn!(error = %other, "STS GetCallerIdentity failed; account_id stays empty");
            Ok(None)
        }
    }
}

/// The account id in an ARN (`arn:aws:iam::123456789012:role/name` -> `123456789012`).
pub(crate) fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Checks that a region is set and that credentials resolve, before any IoT call is made.
pub(crate) async fn preflight(config: &SdkConfig) -> Result<(), SetupError> {
    if config.region().is_none() {
        return Err(SetupError::NoRegion);
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| SetupError::NoCredentials("no credentials provider configured".into()))?;
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| SetupError::NoCredentials(error_chain(&e)))
}

/// The real client: `aws-sdk-iot` with signing, endpoint resolution and parsing, no SDK retries.
#[derive(Clone, Debug)]
pub(crate) struct IotClient {
    client: aws_sdk_iot::Client,
}

impl IotClient {
    pub fn new(config: &SdkConfig) -> Self {
        IotClient {
            client: aws_sdk_iot::Client::new(config),
        }
    }

    /// The SDK client itself, for callers that need an operation the traits do not wrap.
    pub fn sdk(&self) -> &aws_sdk_iot::Client {
        &self.client
    }
}

impl FleetClient for IotClient {
    async fn describe_job_execution(
        &self,
        thing_name: &str,
        job_id: &str,
        execution_number: Option<i64>,
    ) -> Result<ExecutionRecord, CallError> {
        let out = self
            .client
            .describe_job_execution()
            .thing_name(thing_name)
            .job_id(job_id)
            .set_execution_number(execution_number)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        match out.execution {
            Some(e) => Ok(record_from_sdk(e)),
            None => Err(CallError::Malformed("answer has no execution".into())),
        }
    }
}

/// Epoch milliseconds of an SDK timestamp, rounded to the nearest millisecond.
///
/// AWS IoT sends epoch seconds with three decimals; the SDK parses them as a float, so
/// `1763957089.373` arrives as `...089.372999999`. Truncating (as `DateTime::to_millis` does) would
/// lose a millisecond; rounding recovers exactly what AWS sent.
pub(crate) fn epoch_millis(d: &aws_smithy_types::DateTime) -> i64 {
    d.secs()
        .saturating_mul(1000)
        .saturating_add((f64::from(d.subsec_nanos()) / 1e6).round() as i64)
}

/// Converts the SDK's JobExecution into our record.
pub(crate) fn record_from_sdk(e: JobExecution) -> ExecutionRecord {
    let ms = |d: Option<aws_smithy_types::DateTime>| d.as_ref().map(epoch_millis);
    ExecutionRecord {
        job_id: e.job_id,
        status: e.status.map(|s| s.as_str().to_string()),
        force_canceled: e.force_canceled,
        status_details: e.status_details.and_then(|d| d.details_map).map(|m| {
            let mut v: Vec<(String, String)> = m.into_iter().collect();
            v.sort();
            v
        }),
        thing_arn: e.thing_arn,
        queued_at_ms: ms(e.queued_at),
        started_at_ms: ms(e.started_at),
        last_updated_at_ms: ms(e.last_updated_at),
        execution_number: e.execution_number,
        version_number: Some(e.version_number),
        approximate_seconds_before_timed_out: e.approximate_seconds_before_timed_out,
    }
}

/// The error and all its sources, joined with `: `, with the userinfo of any URL in them redacted
/// (an endpoint given as `http://user:password@host`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    crate::redact::redact(&s).into_owned()
}

/// Maps any SDK operation error to a [`CallError`].
pub(crate) fn classify_sdk_error<E, R>(err: SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status_code();
            let e = ctx.err();
            match e.code() {
                Some(code) => CallError::Service {
                    code: code.to_string(),
                    message: e.message().unwrap_or("").to_string(),
                    http_status: status,
                },
                // No error code: a 2xx whose body did not parse, or an error without a type.
                None if (200..300).contains(&status) => CallError::Malformed(error_chain(&err)),
                None => CallError::Service {
                    code: format!("HTTP{status}"),
                    message: e
                        .message()
                        .map(str::to_string)
                        .unwrap_or_else(|| error_chain(&err)),
                    http_status: status,
                },
            }
        }
        SdkError::TimeoutError(_) => CallError::TransportTimeout(error_chain(&err)),
        SdkError::DispatchFailure(d) => {
            let chain = error_chain(&err);
            if d.is_timeout() {
                CallError::TransportTimeout(chain)
            } else if d.is_io() || d.is_other() {
                CallError::Connection(chain)
            } else if chain.contains("credential") || chain.contains("identity") {
                CallError::Credentials(chain)
            } else {
                CallError::Connection(chain)
            }
        }
        SdkError::ResponseError(_) => CallError::Malformed(error_chain(&err)),
        SdkError::ConstructionFailure(_) => {
            let chain = error_chain(&err);
            if chain.contains("credential") || chain.contains("identity") {
                CallError::Credentials(chain)
            } else {
                CallError::Other(chain)
            }
        }
        _ => CallError::Other(error_chain(&err)),
    }
}

/// Access to the HTTP status of a raw response, so that classification works for any operation.
pub(crate) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_timeouts_keep_the_transport_words_not_a_zero_duration() {
        use aws_sdk_iot::operation::describe_job_execution::DescribeJobExecutionError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        use aws_smithy_runtime_api::http::Response;
        type E = SdkError<DescribeJobExecutionError, Response>;
        let op: E = SdkError::timeout_error("operation timeout occurred after 3s");
        let connect: E = SdkError::dispatch_failure(ConnectorError::timeout(
            "HTTP connect timeout occurred after 5s".into(),
        ));
        for (err, words) in [(op, "after 3s"), (connect, "after 5s")] {
            let e = classify_sdk_error(err);
            let msg = e.to_string();
            assert_eq!(e.code(), "Timeout", "{msg}");
            assert!(msg.contains(words) && !msg.contains("0ns"), "{msg}");
        }
    }

    #[tokio::test]
    async fn every_sdk_call_has_connect_read_and_operation_timeouts() {
        let s = ClientSettings {
            region: Some("us-east-1".into()),
            call_timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let sdk = load_sdk_config(&s).await;
        let t = sdk.timeout_config().unwrap();
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.read_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(2)));
        // With the SDK's retries (Organizations, Account): each attempt as long, the whole
        // operation its attempts and the backoff between.
        let r = retried_timeouts(t, 5);
        assert_eq!(r.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(r.operation_timeout(), Some(Duration::from_secs(90)));
        let d = call_timeouts(DEFAULT_CALL_TIMEOUT, None);
        assert_eq!(d.connect_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(d.read_timeout(), Some(DEFAULT_CALL_TIMEOUT));
    }

    #[test]
    fn timestamps_round_to_the_millisecond_aws_sent() {
        let d = aws_smithy_types::DateTime::from_secs_f64(1_763_957_089.373);
        assert_eq!(
            d.to_millis().unwrap(),
            1_763_957_089_372,
            "the SDK's own conversion truncates"
        );
        assert_eq!(epoch_millis(&d), 1_763_957_089_373);
        let d = aws_smithy_types::DateTime::from_secs_f64(1_560_787_023.999_5);
        assert_eq!(epoch_millis(&d), 1_560_787_024_000);
    }
}
