//! The accounts of an AWS Organization and the regions enabled in an account, for organization-wide
//! audits (`--org-role`, `--regions all`): Organizations ListAccounts and Account ListRegions through
//! the SDK, with the credentials of the management account (or a delegated administrator).
//!
//! These are a few set-up calls before the audit, not the audit's own calls, so their clients keep
//! the SDK's standard retries (the engine's `call_with_retries` owns the retries of IoT calls).

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;

use super::{classify_sdk_error, CallError};

/// One account of the organization, as ListAccounts names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    pub name: Option<String>,
    /// ACTIVE (not SUSPENDED, not being closed or removed).
    pub active: bool,
}

/// Why the organization's accounts or an account's regions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("Organizations ListAccounts failed (the credentials must be the management account's or a delegated administrator's): {0}")]
    Accounts(CallError),
    #[error("Account ListRegions of account {account} failed: {source}")]
    Regions { account: String, source: CallError },
}

const ATTEMPTS: u32 = 5;

fn retried() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(ATTEMPTS)
}

/// The shared configuration's timeouts (each attempt within the call timeout), the whole operation
/// allowed its attempts and the backoff between them.
fn timeouts(config: &SdkConfig) -> aws_config::timeout::TimeoutConfig {
    let base = config
        .timeout_config()
        .cloned()
        .unwrap_or_else(|| super::call_timeouts(super::DEFAULT_CALL_TIMEOUT, None));
    super::retried_timeouts(&base, ATTEMPTS)
}

/// Every account of the organization the credentials of `config` manage, in ListAccounts' order.
pub(crate) async fn org_accounts(config: &SdkConfig) -> Result<Vec<OrgAccount>, OrgError> {
    use aws_sdk_organizations::types::{AccountState, AccountStatus};
    let conf = aws_sdk_organizations::config::Builder::from(config)
        .retry_config(retried())
        .timeout_config(timeouts(config))
        .build();
    let client = aws_sdk_organizations::Client::from_conf(conf);
    let mut pages = client.list_accounts().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| OrgError::Accounts(classify_sdk_error(e)))?;
        for a in page.accounts() {
            let Some(id) = a.id() else { continue };
            // `State` is the newer field; older answers carry only `Status`.
            let active = match (a.state(), a.status()) {
                (Some(s), _) => *s == AccountState::Active,
                (None, Some(s)) => *s == AccountStatus::Active,
                (None, None) => false,
            };
            out.push(OrgAccount {
                id: id.to_string(),
                name: a.name().map(str::to_string),
                active,
            });
        }
    }
    Ok(out)
}

/// The regions enabled in `account` (ENABLED or ENABLED_BY_DEFAULT), sorted; `None` is the caller's
/// own account (the management account must not name itself).
pub(crate) async fn enabled_regions(
    config: &SdkConfig,
    account: Option<&str>,
    label: &str,
) -> Result<Vec<String>, OrgError> {
    use aws_sdk_account::types::RegionOptStatus;
    let conf = aws_sdk_account::config::Builder::from(config)
        .retry_config(retried())
        .timeout_config(timeouts(config))
        .build();
    let client = aws_sdk_account::Client::from_conf(conf);
    let mut pages = client
        .list_regions()
        .set_account_id(account.map(str::to_string))
        .region_opt_status_contains(RegionOptStatus::Enabled)
        .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| OrgError::Regions {
            account: label.to_string(),
            source: classify_sdk_error(e),
        })?;
        out.extend(
            page.regions()
                .iter()
                .filter(|r| {
                    matches!(
                        r.region_opt_status(),
                        Some(RegionOptStatus::Enabled | RegionOptStatus::EnabledByDefault)
                    )
                })
                .filter_map(|r| r.region_name().map(str::to_string)),
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}
