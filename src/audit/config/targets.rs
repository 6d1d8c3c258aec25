//! Where a run calls: the connection flags, the accounts and regions audited at once, how many at a
//! time, and `--as-of` (a simulator's clock, refused against AWS).

use crate::aws::client::ClientSettings;
use crate::aws::targets::TargetFlags;
use crate::cli::{ConnectionArgs, RunArgs};

use super::{flag, ConfigError};

/// The targets of a run: the connection every target starts from, the accounts and regions around
/// it, and how many are audited at once.
#[derive(Debug, Clone, Default)]
pub struct TargetSettings {
    /// The run's own connection (`--region`, `--profile`, `--endpoint-url`, `--call-timeout`).
    pub client: ClientSettings,
    /// The accounts and regions audited at once, around `client` (none given: `client` alone).
    pub flags: TargetFlags,
    /// `--max-targets-in-flight`: targets audited at once (the others wait without a client).
    pub max_in_flight: usize,
}

impl TargetSettings {
    pub(super) fn from_args(
        a: &RunArgs,
        call_timeout: std::time::Duration,
    ) -> Result<Self, ConfigError> {
        if a.max_targets_in_flight == 0 {
            return Err(flag("max-targets-in-flight", "must be at least 1"));
        }
        Ok(TargetSettings {
            client: ClientSettings {
                // Every SDK call of the run (STS, Organizations, Account, IoT) ends within it.
                call_timeout: Some(call_timeout),
                ..ClientSettings::from(&a.connection)
            },
            flags: target_flags(a)?,
            max_in_flight: a.max_targets_in_flight,
        })
    }

    /// Whether the run has one target (one account and region), as the flags name it.
    pub(crate) fn is_one(&self) -> bool {
        let t = &self.flags;
        t.org.is_none()
            && !t.all_regions
            && t.regions.len() <= 1
            && t.profiles.len() <= 1
            && t.role_arns.len() <= 1
    }
}

impl From<&ConnectionArgs> for ClientSettings {
    fn from(c: &ConnectionArgs) -> Self {
        ClientSettings {
            region: c.region.clone(),
            profile: c.profile.clone(),
            endpoint_url: c.endpoint_url.clone(),
            static_credentials: None,
            connect_timeout: None,
            call_timeout: None,
            role_arn: None,
        }
    }
}

/// The multi-target flags, split and parsed.
fn target_flags(a: &RunArgs) -> Result<TargetFlags, ConfigError> {
    let list = |flag, v: &Option<String>| {
        v.as_deref()
            .map(|v| crate::aws::targets::split_list(flag, v))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let mut regions = list("regions", &a.regions)?;
    let all_regions = regions.iter().any(|r| r == "all");
    if all_regions && regions.len() > 1 {
        return Err(crate::aws::targets::TargetError::Bad {
            flag: "regions",
            value: regions.join(","),
            reason: "`all` stands alone",
        }
        .into());
    }
    if all_regions {
        regions.clear();
    }
    let org = a.org_role.as_ref().map(|role| {
        Ok::<_, crate::aws::targets::TargetError>(crate::aws::targets::OrgFlags {
            role: role.clone(),
            accounts: list("accounts", &a.accounts)?,
            exclude: list("exclude-accounts", &a.exclude_accounts)?,
        })
    });
    let flags = TargetFlags {
        regions,
        all_regions,
        org: org.transpose()?,
        profiles: list("profiles", &a.profiles)?,
        role_arns: a.role_arns.clone(),
        region_endpoints: a
            .region_endpoints
            .iter()
            .map(|v| crate::aws::targets::parse_region_endpoint(v))
            .collect::<Result<_, _>>()?,
    };
    crate::aws::targets::check_org(&flags)?;
    Ok(flags)
}

/// `--as-of T`: a time in epoch seconds, for a run against a simulator only. The IoT endpoint must
/// be set and none of AWS's: a real account's executions are as of the real time, and rows dated
/// otherwise would lie about when they were seen.
pub(super) fn check_as_of(t: f64, a: &RunArgs) -> Result<i64, ConfigError> {
    // From 2001-09-09 to 2286-11-20: epoch seconds, not milliseconds.
    if !(t.is_finite() && (1e9..1e10).contains(&t)) {
        return Err(flag(
            "as-of",
            "must be a time in epoch seconds (a simulator's --now, such as 1764806400)",
        ));
    }
    let mut endpoints: Vec<String> = a.connection.endpoint_url.iter().cloned().collect();
    endpoints.extend(
        a.region_endpoints
            .iter()
            .filter_map(|e| e.split_once('=').map(|(_, url)| url.to_string())),
    );
    if a.connection.endpoint_url.is_none() {
        // What the SDK reads when no flag names an endpoint.
        endpoints.extend(
            ["AWS_ENDPOINT_URL_IOT", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty())),
        );
    }
    if endpoints.is_empty() {
        return Err(flag(
            "as-of",
            "is for a run against a simulator: give its --endpoint-url (against AWS, a run's time is this machine's clock)",
        ));
    }
    if let Some(aws) = endpoints.iter().find(|u| is_aws_host(u)) {
        return Err(flag(
            "as-of",
            format!(
                "is for a run against a simulator, and {} is AWS's endpoint",
                crate::redact::redact(aws)
            ),
        ));
    }
    Ok((t * 1000.0).round() as i64)
}

/// Whether an endpoint URL's host is AWS's (`*.amazonaws.com`, `*.amazonaws.com.cn`, `*.api.aws`).
fn is_aws_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}
