//! What an object store's failures say: [`RemoteError`], naming the URL concerned and never a
//! credential, and S3's answers (`<Error><Code>NoSuchBucket</Code>…`) in a person's words.

use std::path::PathBuf;

/// Errors of the object store, naming the URL concerned. Credentials never appear in them.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{url}: {reason}")]
    Config { url: String, reason: String },
    #[error("cannot {action} {url}: {}", store_words(source, false))]
    Store {
        action: &'static str,
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read {path} to upload it: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A conditional write found the object changed by someone else.
    #[error("{url} was changed by another writer since this run last wrote it: this run no longer owns the output")]
    Conflict { url: String },
    /// This run's lease on the output ran out before it could renew it: it stops writing, since
    /// another run may take the output over now.
    #[error("{url}: this run's lock was not renewed for {idle_s:.0} s (its lease is {lease_s:.0} s): it stops writing before another run may take the output over")]
    LeaseLapsed {
        url: String,
        idle_s: f64,
        lease_s: f64,
    },
}

impl RemoteError {
    /// The message without the URL (for a caller that names it already).
    pub fn reason(&self) -> String {
        match self {
            RemoteError::Config { reason, .. } => reason.clone(),
            RemoteError::Store { action, source, .. } => {
                format!("cannot {action} it: {}", store_words(source, true))
            }
            RemoteError::Local { .. }
            | RemoteError::Conflict { .. }
            | RemoteError::LeaseLapsed { .. } => self.to_string(),
        }
    }
}

/// An object store's error in a person's words: S3's answer (`<Error><Code>NoSuchBucket</Code>…`)
/// becomes a sentence that says what is wrong and what to do; any other error is the store's own
/// text (`chain`: with its causes), its URLs' passwords masked.
fn store_words(e: &object_store::Error, chain: bool) -> String {
    let text = if chain {
        crate::aws::client::error_chain(e)
    } else {
        e.to_string()
    };
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + len].to_string())
    };
    let Some(code) = tag("Code") else {
        return crate::redact::redact(&text).into_owned();
    };
    let message = tag("Message").unwrap_or_default();
    let said = match code.as_str() {
        "NoSuchBucket" => format!(
            "the bucket {} does not exist: create it, or check the URL's bucket name and the S3 endpoint (AWS_ENDPOINT_URL_S3, the region)",
            tag("BucketName").unwrap_or_else(|| "named".into())
        ),
        "AccessDenied" | "AllAccessDisabled" => format!(
            "S3 refused access ({code}: {message}): the credentials need s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and s3:DeleteObject under the prefix"
        ),
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" => format!(
            "S3 refused the credentials ({code}: {message}): check the access key, its secret and the profile"
        ),
        "ExpiredToken" | "TokenRefreshRequired" => format!(
            "the credentials have expired ({code}): refresh them (aws sso login, a new session token or assumed role) before running again"
        ),
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => format!(
            "the bucket is in another region ({code}: {message}): give its region (AWS_REGION or the profile's)"
        ),
        _ => format!("S3 answered {code}: {message}"),
    };
    crate::redact::redact(&said).into_owned()
}
