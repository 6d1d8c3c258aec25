//! What `describe` sees of the wire: an SDK interceptor that keeps the answer's raw body (read once
//! the SDK has loaded it, after deserialization) (so the
//! document keeps the service's order of a status-details map, as the AWS CLI prints it) and, with
//! `--debug`, logs the request and the answer on stderr with every credential header redacted.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Headers whose values are secrets (or signatures made from them).
const REDACTED: [&str; 3] = [
    "authorization",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Keeps the last answer's body; logs each exchange when `debug`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture {
    pub debug: bool,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    /// The last request's URI (as sent, before any answer): a connection failure names it, as the
    /// AWS CLI does.
    uri: Arc<Mutex<Option<String>>>,
}

impl Capture {
    pub fn new(debug: bool) -> Self {
        Capture {
            debug,
            body: Arc::default(),
            uri: Arc::default(),
        }
    }

    /// The last request's URI, if one was about to be sent.
    pub(crate) fn uri(&self) -> Option<String> {
        self.uri.lock().expect("uri lock").clone()
    }

    /// The last answer's body, if it was read.
    pub fn body(&self) -> Option<Vec<u8>> {
        self.body.lock().expect("body lock").clone()
    }
}

fn header_lines<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    headers
        .map(|(k, v)| {
            let v = if REDACTED.contains(&k.to_ascii_lowercase().as_str()) {
                "<redacted>"
            } else {
                v
            };
            format!("    {k}: {v}\n")
        })
        .collect()
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "fleet-audit describe capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.uri.lock().expect("uri lock") = Some(context.request().uri().to_string());
        if self.debug {
            let r = context.request();
            eprintln!(
                "DEBUG - request: {} {}\n{}",
                r.method(),
                crate::redact::redact(r.uri()),
                header_lines(r.headers().iter())
            );
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = context.response();
        let body = r.body().bytes().map(<[u8]>::to_vec);
        if self.debug {
            eprintln!(
                "DEBUG - answer: HTTP {}\n{}    body: {}",
                r.status().as_u16(),
                header_lines(r.headers().iter()),
                body.as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_else(|| "(streamed)".into())
            );
        }
        *self.body.lock().expect("body lock") = body;
        Ok(())
    }
}
