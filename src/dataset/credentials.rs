//! How an S3 output is reached: aws-config's credentials bridged into object_store (the same
//! provider chain as the IoT client, cached, never printed) and the endpoint override.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::AwsCredential;
use object_store::CredentialProvider;

/// aws-config's credentials provider as object_store's: the same chain as the IoT client (profiles,
/// environment, SSO, web identity, assume-role, IMDS), cached until shortly before expiry so that a
/// chain that calls STS is not called per request.
pub(super) struct SdkCredentials {
    pub(super) provider: SharedCredentialsProvider,
    pub(super) cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl std::fmt::Debug for SdkCredentials {
    // Never the keys: this is what object_store may print in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SdkCredentials(aws-config provider chain)")
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let fresh = |expiry: &Option<SystemTime>| {
            expiry.is_none_or(|e| {
                e.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > Duration::from_secs(300))
            })
        };
        if let Some((c, expiry)) = cached.as_ref() {
            if fresh(expiry) {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}

/// The S3 endpoint override: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (as the AWS SDKs read them;
/// blank means unset).
pub(crate) fn s3_endpoint(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|k| env(k).filter(|e| !e.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s3_endpoint_variable_wins_over_the_global_one() {
        fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        }
        let both = [
            ("AWS_ENDPOINT_URL", "http://all:1"),
            ("AWS_ENDPOINT_URL_S3", "http://s3:2"),
        ];
        assert_eq!(s3_endpoint(env(&both)).as_deref(), Some("http://s3:2"));
        let global = [
            ("AWS_ENDPOINT_URL", "http://all:1"),
            ("AWS_ENDPOINT_URL_S3", " "),
        ];
        assert_eq!(s3_endpoint(env(&global)).as_deref(), Some("http://all:1"));
        assert_eq!(s3_endpoint(env(&[])), None);
    }
}
