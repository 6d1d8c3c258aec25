//! The targets of a run: the accounts and regions it audits at once, each with its own client and its
//! own rate limiter (every account and region has its own API quota).
//!
//! Targets are the product of `--profiles` (or `--profile`), `--role-arn` (repeatable) and `--regions`
//! (or `--region`). Each is configured through the same [`load_sdk_config`] as a single-target run; a
//! role is assumed through STS with the profile's credentials. Before the first IoT call every target
//! is checked (region, credentials, the role assumed) and its account id is read once with STS
//! GetCallerIdentity, so every row can carry `account_id` and `region`.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::aws::client::org::{enabled_regions, org_accounts, OrgAccount, OrgError};
use crate::aws::client::IotClient;
use crate::aws::client::{
    account_of_arn, assume_role, caller_account, load_sdk_config, preflight, ClientSettings,
    SetupError,
};

use futures::future::BoxFuture;

/// Where a row was read from: one target of a run (an account and a region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The region called (`None`: the writer's).
    pub region: Option<String>,
    /// The account called, as STS named it (`None`: unknown).
    pub account_id: Option<String>,
}

/// One target of a run, ready to call.
pub(crate) struct TargetClient<C> {
    /// Names the target in progress and summaries (ignored with one target).
    pub label: String,
    pub client: Arc<C>,
    /// The region and account its rows carry.
    pub origin: Arc<Origin>,
}

/// A target of a run waiting for its turn: its label, and how it is connected. Targets checked before
/// the run are ready; an organization's are connected when their turn comes, so that at most
/// `--max-targets-in-flight` clients (and their connections) exist at a time, whatever the number of
/// targets.
pub(crate) struct PendingTarget<C> {
    pub label: String,
    /// What its spec says of it before it is connected (its region; its account, from the role it
    /// assumes): a target that cannot be connected is still named by region and account.
    pub known: Origin,
    /// Makes the connecting future when the turn comes: a waiting target holds only what the
    /// closure captures (its spec), not a future's whole state.
    connect: Box<dyn FnOnce() -> BoxFuture<'static, Result<TargetClient<C>, SetupError>> + Send>,
}

impl<C: Send + Sync + 'static> PendingTarget<C> {
    /// A target already connected.
    pub(crate) fn ready(t: TargetClient<C>) -> Self {
        PendingTarget {
            label: t.label.clone(),
            known: (*t.origin).clone(),
            connect: Box::new(move || Box::pin(futures::future::ready(Ok(t)))),
        }
    }

    /// Connects the target (for a lazy one: configures it, assumes its role, reads its account).
    pub async fn connect(self) -> Result<TargetClient<C>, SetupError> {
        (self.connect)().await
    }
}

impl PendingTarget<IotClient> {
    /// A target connected (its role assumed, its account read) when its turn comes.
    pub fn lazy(spec: TargetSpec) -> Self {
        PendingTarget {
            label: spec.label.clone(),
            known: Origin {
                region: spec.client.region.clone(),
                account_id: spec.client.role_arn.as_deref().and_then(account_of_role),
            },
            connect: Box::new(move || {
                Box::pin(async move {
                    let t = resolve_one(&spec).await?;
                    Ok(TargetClient {
                        label: t.label,
                        client: Arc::new(IotClient::new(&t.sdk)),
                        origin: t.origin,
                    })
                })
            }),
        }
    }
}

/// The account of a role ARN (`arn:aws:iam::123456789012:role/NAME`).
fn account_of_role(arn: &str) -> Option<String> {
    let id = arn.split(':').nth(4)?;
    is_account_id(id).then(|| id.to_string())
}

/// One target as the flags name it, before any network call.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// A short stable name: the parts that vary between targets (profile, role, region).
    pub label: String,
    pub client: ClientSettings,
}

/// The flags that make targets, validated by [`expand`].
#[derive(Debug, Clone, Default)]
pub struct TargetFlags {
    pub regions: Vec<String>,
    pub profiles: Vec<String>,
    pub role_arns: Vec<String>,
    /// `REGION=URL` endpoint overrides (for emulators and private endpoints).
    pub region_endpoints: Vec<(String, String)>,
    /// `--regions all`: the regions enabled in each account (Account ListRegions).
    pub all_regions: bool,
    /// `--org-role NAME` and the accounts it narrows to: every ACTIVE account of the organization.
    pub org: Option<OrgFlags>,
}

/// An organization-wide audit's flags.
#[derive(Debug, Clone, Default)]
pub struct OrgFlags {
    /// The role assumed in each account: `arn:aws:iam::<id>:role/<role>`.
    pub role: String,
    /// `--accounts`: only these (each must be an ACTIVE account of the organization).
    pub accounts: Vec<String>,
    /// `--exclude-accounts`: not these.
    pub exclude: Vec<String>,
}

/// Why the target flags cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("--{flag}: {value:?}: {reason}")]
    Bad {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("--{flag}: {value} is given twice")]
    Twice { flag: &'static str, value: String },
    #[error("--{flag} cannot be combined with --{with}")]
    Conflict {
        flag: &'static str,
        with: &'static str,
    },
}

/// Whether `id` is an AWS account id (12 digits).
fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `name` is an IAM role name (1 to 64 of letters, digits and `+=,.@_-`).
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Checks the organization flags (before any network call).
pub(crate) fn check_org(f: &TargetFlags) -> Result<(), TargetError> {
    let Some(org) = &f.org else {
        return Ok(());
    };
    if !is_role_name(&org.role) {
        return Err(TargetError::Bad {
            flag: "org-role",
            value: org.role.clone(),
            reason:
                "not a role name (1 to 64 letters, digits and +=,.@_-; the ARN is made per account)",
        });
    }
    if !f.role_arns.is_empty() {
        return Err(TargetError::Conflict {
            flag: "org-role",
            with: "role-arn",
        });
    }
    if !f.profiles.is_empty() {
        return Err(TargetError::Conflict {
            flag: "org-role",
            with: "profiles",
        });
    }
    for (flag, ids) in [
        ("accounts", &org.accounts),
        ("exclude-accounts", &org.exclude),
    ] {
        if let Some(bad) = ids.iter().find(|id| !is_account_id(id)) {
            return Err(TargetError::Bad {
                flag,
                value: bad.clone(),
                reason: "not an account id (12 digits)",
            });
        }
    }
    Ok(())
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

/// Splits a comma list, refusing empty items and repeats.
pub(crate) fn split_list(flag: &'static str, v: &str) -> Result<Vec<String>, TargetError> {
    let mut out: Vec<String> = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(TargetError::Bad {
                flag,
                value: v.to_string(),
                reason: "an empty item in the comma-separated list",
            });
        }
        if out.iter().any(|o| o == item) {
            return Err(TargetError::Twice {
                flag,
                value: item.to_string(),
            });
        }
        out.push(item.to_string());
    }
    Ok(out)
}

/// Parses one `--region-endpoint REGION=URL`.
pub(crate) fn parse_region_endpoint(v: &str) -> Result<(String, String), TargetError> {
    let bad = |reason| TargetError::Bad {
        flag: "region-endpoint",
        value: v.to_string(),
        reason,
    };
    let (region, url) = v.split_once('=').ok_or(bad("must be REGION=URL"))?;
    if !is_region(region) {
        return Err(bad(
            "the region must be lowercase letters, digits and dashes",
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad("the URL must start with http:// or https://"));
    }
    Ok((region.to_string(), url.to_string()))
}

/// The targets of a run: every combination of profile, role and region. With none of the flags, the
/// one target of `base` (its region, profile and endpoint).
pub(crate) fn expand(
    base: &ClientSettings,
    f: &TargetFlags,
) -> Result<Vec<TargetSpec>, TargetError> {
    for r in &f.regions {
        if !is_region(r) {
            return Err(TargetError::Bad {
                flag: "regions",
                value: r.clone(),
                reason: "not a region name (lowercase letters, digits and dashes)",
            });
        }
    }
    for a in &f.role_arns {
        let ok = a.starts_with("arn:") && a.contains(":role/") && account_of_arn(a).is_some();
        if !ok {
            return Err(TargetError::Bad {
                flag: "role-arn",
                value: a.clone(),
                reason: "not a role ARN (arn:aws:iam::123456789012:role/NAME)",
            });
        }
        if f.role_arns.iter().filter(|b| *b == a).count() > 1 {
            return Err(TargetError::Twice {
                flag: "role-arn",
                value: a.clone(),
            });
        }
    }
    let one = |v: &Option<String>| vec![v.clone()];
    let profiles = if f.profiles.is_empty() {
        one(&base.profile)
    } else {
        f.profiles.iter().cloned().map(Some).collect()
    };
    let roles = if f.role_arns.is_empty() {
        one(&base.role_arn)
    } else {
        f.role_arns.iter().cloned().map(Some).collect()
    };
    let regions = if f.regions.is_empty() {
        one(&base.region)
    } else {
        f.regions.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::new();
    for p in &profiles {
        for role in &roles {
            for r in &regions {
                let mut parts = Vec::new();
                if profiles.len() > 1 {
                    parts.push(p.clone().unwrap_or_else(|| "default".into()));
                }
                if roles.len() > 1 {
                    let a = role.as_deref().unwrap_or("");
                    let name = a.rsplit('/').next().unwrap_or(a);
                    parts.push(format!("{}:{name}", account_of_arn(a).unwrap_or("?")));
                }
                parts.push(r.clone().unwrap_or_else(|| "default-region".into()));
                let endpoint = r
                    .as_ref()
                    .and_then(|r| f.region_endpoints.iter().find(|(er, _)| er == r))
                    .map(|(_, u)| u.clone())
                    .or_else(|| base.endpoint_url.clone());
                out.push(TargetSpec {
                    label: parts.join("/"),
                    client: ClientSettings {
                        region: r.clone(),
                        profile: p.clone(),
                        role_arn: role.clone(),
                        endpoint_url: endpoint,
                        ..base.clone()
                    },
                });
            }
        }
    }
    Ok(out)
}

/// A target ready to call: its SDK configuration and what its rows carry.
pub(crate) struct ResolvedTarget {
    pub label: String,
    pub sdk: SdkConfig,
    pub origin: Arc<Origin>,
}

/// Configures and checks one target: region set, credentials usable (the role assumed), account id
/// read.
pub(crate) async fn resolve_one(spec: &TargetSpec) -> Result<ResolvedTarget, SetupError> {
    // The source credentials first (a clear message when there are none), then the role (assumed by
    // the identity cache on the first call, GetCallerIdentity's).
    let base = load_sdk_config(&ClientSettings {
        role_arn: None,
        ..spec.client.clone()
    })
    .await;
    preflight(&base).await?;
    let role = spec.client.role_arn.as_deref();
    let sdk = match role {
        Some(r) => assume_role(base, r).await,
        None => base,
    };
    // STS names the account the credentials really are in.
    let account_id = caller_account(&sdk, role).await?;
    let region = sdk.region().map(|r| r.to_string());
    Ok(ResolvedTarget {
        label: spec.label.clone(),
        origin: Arc::new(Origin { region, account_id }),
        sdk,
    })
}

/// Configures and checks every target (concurrently). Any failure stops the run before the first IoT
/// call, naming the target (the first failing one in target order) when there are several.
pub(crate) async fn resolve(specs: &[TargetSpec]) -> Result<Vec<ResolvedTarget>, SetupError> {
    let named = specs.len() > 1;
    let checks = specs.iter().map(|spec| async move {
        resolve_one(spec).await.map_err(|e| match named {
            true => SetupError::InTarget {
                target: spec.label.clone(),
                source: Box::new(e),
            },
            false => e,
        })
    });
    // All checks run at once; the first failure in target order is reported, so the message does
    // not depend on which answer came first.
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}

/// Why the targets of an organization-wide audit (or of `--regions all`) could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Flags(#[from] TargetError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error("--accounts: {0} is not an ACTIVE account of the organization")]
    NotInOrg(String),
    #[error("--org-role: no ACTIVE account of the organization is left to audit")]
    NoAccounts,
}

/// The IAM partition of a region's ARNs.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The targets of a run. With `--org-role` they are every ACTIVE account of the organization the base
/// credentials manage (Organizations ListAccounts), narrowed by `--accounts` / `--exclude-accounts`,
/// each through its role; with `--regions all`, in each account's enabled regions (Account
/// ListRegions, from the base credentials). These calls are made here, before the first IoT call.
/// Otherwise the targets are [`expand`]'s, without any call.
pub async fn plan(base: &ClientSettings, f: &TargetFlags) -> Result<Vec<TargetSpec>, PlanError> {
    check_org(f)?;
    if f.org.is_none() && !f.all_regions {
        return Ok(expand(base, f)?);
    }
    let sdk = load_sdk_config(&ClientSettings {
        role_arn: None,
        ..base.clone()
    })
    .await;
    preflight(&sdk).await?;
    let me = caller_account(&sdk, None).await?;
    let home = sdk.region().map(|r| r.to_string());
    let Some(org) = &f.org else {
        // `--regions all` in one account: the caller's.
        let regions = enabled_regions(&sdk, None, me.as_deref().unwrap_or("this account")).await?;
        return Ok(expand(
            base,
            &TargetFlags {
                regions,
                all_regions: false,
                ..f.clone()
            },
        )?);
    };
    let accounts = audited_accounts(&sdk, org).await?;
    let regions: Vec<Vec<String>> = if f.all_regions {
        use futures::{StreamExt, TryStreamExt};
        // The management account names itself by leaving the account out.
        futures::stream::iter(accounts.iter().map(|a| {
            let member = (me.as_deref() != Some(a.id.as_str())).then_some(a.id.as_str());
            enabled_regions(&sdk, member, &a.id)
        }))
        .buffered(16)
        .try_collect()
        .await?
    } else {
        let list = match (&f.regions[..], &home) {
            ([], Some(h)) => vec![h.clone()],
            ([], None) => return Err(SetupError::NoRegion.into()),
            (r, _) => r.to_vec(),
        };
        vec![list; accounts.len()]
    };
    Ok(org_targets(base, f, org, &accounts, regions))
}

/// The ACTIVE accounts of the organization to audit: `--accounts` (each must be one of them) if
/// given, less `--exclude-accounts`; none left is an error.
async fn audited_accounts(sdk: &SdkConfig, org: &OrgFlags) -> Result<Vec<OrgAccount>, PlanError> {
    let mut accounts: Vec<OrgAccount> = org_accounts(sdk)
        .await?
        .into_iter()
        .filter(|a| a.active)
        .collect();
    if let Some(id) = org
        .accounts
        .iter()
        .find(|id| !accounts.iter().any(|a| &a.id == *id))
    {
        return Err(PlanError::NotInOrg(id.clone()));
    }
    if !org.accounts.is_empty() {
        accounts.retain(|a| org.accounts.contains(&a.id));
    }
    accounts.retain(|a| !org.exclude.contains(&a.id));
    if accounts.is_empty() {
        return Err(PlanError::NoAccounts);
    }
    Ok(accounts)
}

/// A target per account and each of its `regions` (`ACCOUNT/REGION`), through the account's role
/// and at the region's endpoint (`--region-endpoint`, else the base one).
fn org_targets(
    base: &ClientSettings,
    f: &TargetFlags,
    org: &OrgFlags,
    accounts: &[OrgAccount],
    regions: Vec<Vec<String>>,
) -> Vec<TargetSpec> {
    let mut out = Vec::new();
    for (a, regions) in accounts.iter().zip(regions) {
        for r in regions {
            let endpoint = f
                .region_endpoints
                .iter()
                .find(|(er, _)| *er == r)
                .map(|(_, u)| u.clone())
                .or_else(|| base.endpoint_url.clone());
            out.push(TargetSpec {
                label: format!("{}/{r}", a.id),
                client: ClientSettings {
                    role_arn: Some(format!(
                        "arn:{}:iam::{}:role/{}",
                        partition_of(&r),
                        a.id,
                        org.role
                    )),
                    region: Some(r),
                    endpoint_url: endpoint,
                    ..base.clone()
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_product_of_profiles_roles_and_regions() {
        let base = ClientSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        let one = expand(&base, &TargetFlags::default()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].client.region.as_deref(), Some("us-east-1"));
        let f = TargetFlags {
            regions: vec!["eu-west-1".into(), "us-west-2".into()],
            role_arns: vec![
                "arn:aws:iam::111122223333:role/audit".into(),
                "arn:aws:iam::444455556666:role/audit".into(),
            ],
            region_endpoints: vec![("us-west-2".into(), "http://127.0.0.1:2".into())],
            ..Default::default()
        };
        let t = expand(&base, &f).unwrap();
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "111122223333:audit/eu-west-1",
                "111122223333:audit/us-west-2",
                "444455556666:audit/eu-west-1",
                "444455556666:audit/us-west-2"
            ]
        );
        assert_eq!(
            t[0].client.endpoint_url.as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(
            t[1].client.endpoint_url.as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(
            t[3].client.role_arn.as_deref(),
            Some("arn:aws:iam::444455556666:role/audit")
        );
    }

    #[test]
    fn bad_target_flags_are_named() {
        let base = ClientSettings::default();
        let bad_region = TargetFlags {
            regions: vec!["EU_WEST".into()],
            ..Default::default()
        };
        assert!(expand(&base, &bad_region)
            .unwrap_err()
            .to_string()
            .starts_with("--regions: \"EU_WEST\""));
        let bad_role = TargetFlags {
            role_arns: vec!["audit".into()],
            ..Default::default()
        };
        assert!(expand(&base, &bad_role)
            .unwrap_err()
            .to_string()
            .contains("not a role ARN"));
        assert_eq!(
            split_list("regions", "a,b,a").unwrap_err().to_string(),
            "--regions: a is given twice"
        );
        assert!(split_list("regions", "a,,b").is_err());
        assert_eq!(
            parse_region_endpoint("eu-west-1=http://127.0.0.1:9").unwrap(),
            ("eu-west-1".into(), "http://127.0.0.1:9".into())
        );
        assert!(parse_region_endpoint("http://127.0.0.1:9").is_err());
    }
}
