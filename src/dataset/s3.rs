//! A dataset directory in an object store (`s3://bucket/prefix/`), through the `object_store` crate.
//!
//! It owns how the store is reached: the bucket and prefix of the URL, the region, credentials and
//! endpoint from the same AWS configuration as the IoT client (credentials bridged from aws-config's
//! provider, so profiles, environment, SSO and assume-role all work and no secret is ever logged), and
//! the few operations a dataset needs: list, get, put (the manifest), delete, and upload a local file
//! as a multipart upload that is completed only when every byte is sent and aborted otherwise, so no
//! partial object ever becomes visible. Every request is retried by object_store's `RetryConfig`.
//!
//! `error`: what the store's failures say (`RemoteError`); `lease`: the writer's side of the lease
//! (`check_owned` before every write).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig,
    UpdateVersion, WriteMultipart,
};
use tokio::io::AsyncReadExt;

mod error;
mod lease;

pub(crate) use super::credentials::s3_endpoint;
use super::credentials::SdkCredentials;
pub use error::RemoteError;
use lease::LeaseState;

/// Name of the lock object of an object-store dataset, under its prefix.
pub(crate) const LOCK: &str = "_fleet-audit.lock";

/// An object-store URL given as `--out`: where the dataset lies, not yet connected.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `s3://bucket/prefix/`, always ending in `/`.
    pub url: String,
    pub bucket: String,
    /// The key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    display: PathBuf,
}

impl PartialEq for Remote {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}
impl Eq for Remote {}

/// Whether `out` names an object store (`scheme://…`) rather than a local path.
pub(crate) fn is_url(out: &str) -> bool {
    out.split_once("://")
        .is_some_and(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl Remote {
    /// Parses `s3://bucket[/prefix][/]`. Other schemes are refused with the reason.
    pub fn parse(out: &str) -> Result<Remote, String> {
        let Some((scheme, rest)) = out.split_once("://") else {
            return Err(format!("{out:?} is not a URL"));
        };
        if scheme != "s3" {
            return Err(format!(
                "{scheme}:// is not supported: use s3://bucket/prefix/ or a local directory"
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if bucket.is_empty() {
            return Err("names no bucket (s3://BUCKET/prefix/)".into());
        }
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3-63 lower-case letters, digits, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !prefix.is_empty()
        {
            return Err(format!("prefix {prefix:?} has an empty, . or .. segment"));
        }
        let url = if prefix.is_empty() {
            format!("s3://{bucket}/")
        } else {
            format!("s3://{bucket}/{prefix}/")
        };
        Ok(Remote {
            display: PathBuf::from(&url),
            url,
            bucket: bucket.to_string(),
            prefix,
        })
    }

    /// The URL as a path, for messages and summaries.
    pub fn display(&self) -> &Path {
        &self.display
    }

    /// Connects with the AWS configuration of `client` (`--profile`, `--region`, the default chain)
    /// in `fallback_region` when it names none, and the endpoint variables of the environment: the
    /// one way both the writer and the readers reach a bucket.
    pub(crate) async fn connect_as(
        &self,
        client: &crate::aws::client::ClientSettings,
        fallback_region: Option<aws_config::Region>,
    ) -> Result<Arc<RemoteDir>, RemoteError> {
        let mut sdk = crate::aws::client::load_sdk_config(client).await;
        if sdk.region().is_none() {
            if let Some(r) = fallback_region {
                sdk = sdk.into_builder().region(r).build();
            }
        }
        self.connect(&sdk, |k| std::env::var(k).ok())
    }

    /// Builds the store from the AWS configuration `sdk` (region and credentials) and the endpoint
    /// variables read by `env` (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`).
    pub fn connect(
        &self,
        sdk: &SdkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<RemoteDir>, RemoteError> {
        let dir = RemoteDir::open(self, sdk, env, upload_retry())?;
        super::files::remove_dead_staging(&std::env::temp_dir());
        Ok(Arc::new(dir))
    }
}

/// The retries of every request: up to 6 more attempts with exponential backoff (100 ms doubling,
/// jittered, capped at 15 s), within 2 minutes: transient errors (5xx, throttling, a dropped connection)
/// are ridden out, while a store that is gone stops the run in seconds rather than minutes.
fn upload_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 6,
        retry_timeout: Duration::from_secs(120),
    }
}

/// The check of an output before the run (list the prefix, put and delete a probe) retries this
/// often within [`CHECK_WITHIN`]: an unreachable endpoint must be reported in seconds, not after the
/// minutes of retries a write in the run rides out ([`upload_retry`]).
pub(crate) const CHECK_RETRIES: usize = 2;
/// See [`CHECK_RETRIES`].
pub(crate) const CHECK_WITHIN: Duration = Duration::from_secs(10);

/// What the check before the run tried, for its error messages.
pub(crate) fn check_note() -> String {
    format!(
        "checked before any IoT call, with {CHECK_RETRIES} retries within {} s",
        CHECK_WITHIN.as_secs()
    )
}

/// A connected dataset directory in an object store.
#[derive(Debug)]
pub struct RemoteDir {
    url: String,
    prefix: String,
    store: Arc<dyn ObjectStore>,
    /// The same store with few retries, for the check before the run (an unreachable endpoint must
    /// be reported in seconds, not after minutes of retries).
    pub(super) quick: Arc<dyn ObjectStore>,
    /// The ETag of the manifest as this process last read or wrote it (`None`: there is none yet):
    /// every manifest write is conditional on it, so a writer that lost the output can never
    /// overwrite another's manifest.
    manifest_etag: std::sync::Mutex<Option<String>>,
    /// The lease this run holds on the output, when it holds one (see `lock`).
    lease: std::sync::Mutex<Option<LeaseState>>,
}

/// An object's bytes with its version.
#[derive(Debug, Clone)]
pub(crate) struct Versioned {
    pub bytes: bytes::Bytes,
    pub e_tag: Option<String>,
    /// When the store last wrote it (the store's clock), epoch milliseconds.
    pub last_modified_ms: i64,
}

/// Size of each uploaded part of a multipart upload (S3's minimum, except for the last part).
const CHUNK: usize = 8 * 1024 * 1024;

impl RemoteDir {
    fn open(
        r: &Remote,
        sdk: &SdkConfig,
        env: impl Fn(&str) -> Option<String>,
        retry: RetryConfig,
    ) -> Result<RemoteDir, RemoteError> {
        let config_err = |reason: String| RemoteError::Config {
            url: r.url.clone(),
            reason,
        };
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| config_err("no AWS credentials provider configured".into()))?;
        let credentials = Arc::new(SdkCredentials {
            provider,
            cached: tokio::sync::Mutex::new(None),
        });
        let endpoint = s3_endpoint(env);
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let shown = endpoint.as_deref().map(crate::redact::redact);
        tracing::debug!(url = %r.url, endpoint = ?shown, %region, "S3 output");
        let build = |retry: RetryConfig| {
            let mut options = ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(120));
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(&r.bucket)
                .with_region(&region)
                .with_credentials(credentials.clone())
                .with_retry(retry);
            if let Some(e) = &endpoint {
                // An S3-compatible store (MinIO, moto, LocalStack): path-style addressing, and plain
                // HTTP when the endpoint says so.
                b = b
                    .with_endpoint(e.trim_end_matches('/'))
                    .with_virtual_hosted_style_request(false);
                if e.starts_with("http://") {
                    b = b.with_allow_http(true);
                    options = options.with_allow_http(true);
                }
            }
            b.with_client_options(options)
                .build()
                .map_err(|e| config_err(crate::redact::redact(&e.to_string()).into_owned()))
        };
        let quick = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: CHECK_RETRIES,
            retry_timeout: CHECK_WITHIN,
        };
        Ok(RemoteDir {
            url: r.url.clone(),
            prefix: r.prefix.clone(),
            store: Arc::new(build(retry)?),
            quick: Arc::new(build(quick)?),
            manifest_etag: std::sync::Mutex::new(None),
            lease: std::sync::Mutex::new(None),
        })
    }

    /// `s3://bucket/prefix/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of a file of the dataset.
    pub(crate) fn url_of(&self, relative: &str) -> String {
        format!("{}{relative}", self.url)
    }

    pub(super) fn key(&self, relative: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(relative)
        } else {
            ObjPath::from(format!("{}/{relative}", self.prefix))
        }
    }

    pub(super) fn err(
        &self,
        action: &'static str,
        relative: &str,
        source: object_store::Error,
    ) -> RemoteError {
        RemoteError::Store {
            action,
            url: self.url_of(relative),
            source,
        }
    }

    /// Whether any object but the output's lock lies under the prefix (few retries).
    pub(crate) async fn holds_objects(&self) -> Result<bool, RemoteError> {
        let lock = self.key(LOCK);
        let mut objects = self.quick.list(Some(&self.key("")));
        while let Some(meta) = objects
            .try_next()
            .await
            .map_err(|e| self.err("list", "", e))?
        {
            if meta.location != lock {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks the location is writable, with few retries: a probe object is put and deleted.
    pub(crate) async fn check_writable(&self) -> Result<(), RemoteError> {
        let probe = format!(".fleet-audit-probe-{:08x}", rand::random::<u32>());
        self.quick
            .put(&self.key(&probe), b"probe".to_vec().into())
            .await
            .map_err(|e| self.err("write to", "", e))?;
        self.quick
            .delete(&self.key(&probe))
            .await
            .map_err(|e| self.err("delete a probe object in", "", e))
    }

    /// Every object under the prefix: (path relative to the prefix, size).
    pub async fn list(&self) -> Result<Vec<(String, u64)>, RemoteError> {
        let prefix = self.key("");
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.err("list", "", e))?;
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                full.strip_prefix(&base)
                    .map(|rel| (rel.to_string(), m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The bytes of a file, or `None` when it does not exist.
    pub async fn get(&self, relative: &str) -> Result<Option<bytes::Bytes>, RemoteError> {
        match self.store.get(&self.key(relative)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.err("read", relative, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read", relative, e)),
        }
    }

    /// Replaces a small file with one PUT (a PUT is atomic: readers see the old or the new object).
    pub async fn put(&self, relative: &str, body: Vec<u8>) -> Result<(), RemoteError> {
        self.store
            .put(&self.key(relative), body.into())
            .await
            .map(drop)
            .map_err(|e| self.err("write", relative, e))
    }

    /// The bytes of a file with its ETag and modification time, or `None` when it does not exist.
    pub(crate) async fn get_versioned(
        &self,
        relative: &str,
    ) -> Result<Option<Versioned>, RemoteError> {
        match self.store.get(&self.key(relative)).await {
            Ok(r) => {
                let e_tag = r.meta.e_tag.clone();
                let last_modified_ms = r.meta.last_modified.timestamp_millis();
                let bytes = r.bytes().await.map_err(|e| self.err("read", relative, e))?;
                Ok(Some(Versioned {
                    bytes,
                    e_tag,
                    last_modified_ms,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read", relative, e)),
        }
    }

    /// A conditional PUT: `if_match` `None` creates the file only if it does not exist
    /// (`If-None-Match: *`), `Some(etag)` replaces it only if it is still that version (`If-Match`).
    /// Returns the new ETag, or `None` when the condition did not hold (someone else wrote it).
    pub(crate) async fn put_if(
        &self,
        relative: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Option<String>, RemoteError> {
        let mode = match if_match {
            None => PutMode::Create,
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_string()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let key = self.key(relative);
        match self.store.put_opts(&key, body.into(), opts).await {
            Ok(r) => match r.e_tag {
                Some(t) => Ok(Some(t)),
                // A store that answers without an ETag: ask for it.
                None => match self.store.head(&key).await {
                    Ok(meta) => Ok(meta.e_tag),
                    Err(e) => Err(self.err("read", relative, e)),
                },
            },
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.err("write", relative, e)),
        }
    }

    /// The manifest's bytes, remembering its ETag for the next [`RemoteDir::put_manifest`].
    pub(crate) async fn get_manifest(&self) -> Result<Option<bytes::Bytes>, RemoteError> {
        let got = self.get_versioned(super::MANIFEST).await?;
        let mut etag = self.manifest_etag.lock().expect("manifest etag lock");
        *etag = got.as_ref().and_then(|v| v.e_tag.clone());
        Ok(got.map(|v| v.bytes))
    }

    /// Replaces the manifest only if it is still the version this process last read or wrote (or,
    /// when there was none, only if there still is none): a conflict is [`RemoteError::Conflict`].
    pub(crate) async fn put_manifest(&self, body: Vec<u8>) -> Result<(), RemoteError> {
        self.check_owned()?;
        let last = self
            .manifest_etag
            .lock()
            .expect("manifest etag lock")
            .clone();
        let new = match self
            .put_if(super::MANIFEST, body.clone(), last.as_deref())
            .await?
        {
            Some(new) => Some(new),
            // A write whose answer was lost and that the client retried fails its own condition:
            // it is ours if the manifest now holds exactly what we wrote (every write is stamped).
            None => self
                .get_versioned(super::MANIFEST)
                .await?
                .filter(|v| v.bytes.as_ref() == body.as_slice())
                .and_then(|v| v.e_tag),
        };
        match new {
            Some(new) => {
                *self.manifest_etag.lock().expect("manifest etag lock") = Some(new);
                Ok(())
            }
            None => Err(RemoteError::Conflict {
                url: self.url_of(super::MANIFEST),
            }),
        }
    }

    pub async fn delete(&self, relative: &str) -> Result<(), RemoteError> {
        match self.store.delete(&self.key(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                if relative == super::MANIFEST {
                    *self.manifest_etag.lock().expect("manifest etag lock") = None;
                }
                Ok(())
            }
            Err(e) => Err(self.err("delete", relative, e)),
        }
    }

    /// Uploads the local file `local` as `relative` with a multipart upload: completed only once every
    /// byte is sent, aborted on any failure (nothing becomes visible then).
    pub async fn upload(&self, local: &Path, relative: &str) -> Result<(), RemoteError> {
        self.check_owned()?;
        let upload = self
            .store
            .put_multipart(&self.key(relative))
            .await
            .map_err(|e| self.err("upload", relative, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let local_err = |source| RemoteError::Local {
            path: local.to_path_buf(),
            source,
        };
        let sent: Result<(), RemoteError> = async {
            let mut f = tokio::fs::File::open(local).await.map_err(local_err)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await.map_err(local_err)?;
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(4)
                    .await
                    .map_err(|e| self.err("upload", relative, e))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => w
                .finish()
                .await
                .map(drop)
                .map_err(|e| self.err("upload", relative, e)),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_bucket_and_prefix() {
        let r = Remote::parse("s3://my-bucket/a/b").unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.prefix.as_str(), r.url.as_str()),
            ("my-bucket", "a/b", "s3://my-bucket/a/b/")
        );
        let r = Remote::parse("s3://my-bucket").unwrap();
        assert_eq!((r.prefix.as_str(), r.url.as_str()), ("", "s3://my-bucket/"));
        assert!(Remote::parse("s3://").unwrap_err().contains("no bucket"));
        assert!(Remote::parse("s3:///x").unwrap_err().contains("no bucket"));
        assert!(Remote::parse("s3://My_Bucket/x")
            .unwrap_err()
            .contains("not a bucket name"));
        assert!(Remote::parse("gs://b/x")
            .unwrap_err()
            .contains("not supported"));
        assert!(Remote::parse("s3://bucket/a//b").is_err());
        assert!(is_url("s3://b/p") && !is_url("out/dir") && !is_url("./a://b"));
    }
}
