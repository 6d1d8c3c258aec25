//! The AWS Organization a simulator stands for (`sim --org-accounts N`), on the simulator's own
//! endpoint:
//! - Organizations ListAccounts (awsJson1_1: `POST /` with `X-Amz-Target:
//!   AWSOrganizationsV20161128.ListAccounts`), pages of at most 20 accounts. Account 0 is the
//!   management account, the simulator's own ([`ACCOUNT_ID`]); every 25th account is SUSPENDED.
//! - Account ListRegions (restJson1: `POST /listRegions`), the same regions for every account
//!   ([`REGIONS`]: four enabled, two not), for the caller's own account or, from the management
//!   account, a member's (`AccountId`).
//! - Which member accounts lack the audit role (`--org-missing-role P`, a deterministic share of them):
//!   STS AssumeRole into those is refused as AWS refuses it ([`OrgSpec::refuses_role`]).
//!
//! IoT requests signed for a region that is not enabled are refused (UnrecognizedClientException,
//! 403), as AWS refuses them.
//!
//! Only the management account may call ListAccounts or name another account in ListRegions; any
//! other caller is refused with AccessDeniedException. Without `--org-accounts` the simulator's
//! account is in no organization (AWSOrganizationsNotInUseException).

use super::fleet::ACCOUNT_ID;

/// The regions every simulated account has, with their opt-in status (sorted by name, as AWS lists
/// them).
pub(crate) const REGIONS: [(&str, &str); 6] = [
    ("af-south-1", "DISABLED"),
    ("ap-southeast-2", "ENABLED_BY_DEFAULT"),
    ("eu-west-1", "ENABLED_BY_DEFAULT"),
    ("me-south-1", "DISABLED"),
    ("us-east-1", "ENABLED_BY_DEFAULT"),
    ("us-west-2", "ENABLED"),
];

/// The organization's id in account ARNs.
const ORG_ID: &str = "o-sim0000001";

/// The simulated organization; `accounts == 0` is none.
#[derive(Debug, Clone, Default)]
pub struct OrgSpec {
    /// Accounts in the organization, the management account included.
    pub accounts: u32,
    /// The share of member accounts (not the management account) where AssumeRole is refused.
    pub missing_role: f64,
    /// Chooses which accounts lack the role.
    pub seed: u64,
}

/// One simulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    pub status: &'static str,
}

/// An answer of the Organizations or Account API: HTTP status, error type (`x-amzn-ErrorType`, for
/// an error) and JSON body.
pub(crate) struct JsonAnswer {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub body: String,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl OrgSpec {
    /// Account `i` of the organization (0 is the management account).
    pub fn account(&self, i: u32) -> OrgAccount {
        let id = if i == 0 {
            ACCOUNT_ID.to_string()
        } else {
            format!("{:012}", 300_000_000_000u64 + u64::from(i))
        };
        let status = if i % 25 == 24 { "SUSPENDED" } else { "ACTIVE" };
        OrgAccount { id, status }
    }

    fn index_of(&self, account: &str) -> Option<u32> {
        if account == ACCOUNT_ID {
            return (self.accounts > 0).then_some(0);
        }
        let n: u64 = account.parse().ok()?;
        let i = u32::try_from(n.checked_sub(300_000_000_000)?).ok()?;
        (account.len() == 12 && i > 0 && i < self.accounts).then_some(i)
    }

    /// Whether AssumeRole into `account` is refused: a member account of the organization chosen by
    /// `--org-missing-role`.
    pub fn refuses_role(&self, account: &str) -> bool {
        match self.index_of(account) {
            Some(i) if i > 0 && self.missing_role > 0.0 => {
                let u = splitmix(self.seed ^ u64::from(i).wrapping_mul(0x2545_F491_4F6C_DD1D));
                (u >> 11) as f64 / (1u64 << 53) as f64 <= self.missing_role
            }
            _ => false,
        }
    }

    /// Whether `account` is an ACTIVE account of the organization.
    fn is_active(&self, account: &str) -> bool {
        self.index_of(account)
            .is_some_and(|i| self.account(i).status == "ACTIVE")
    }
}

/// Whether `region` is one of the simulated opt-in regions that is not enabled (with an organization
/// only: a simulator without one serves every region).
pub(crate) fn is_disabled_region(org: &OrgSpec, region: &str) -> bool {
    org.accounts > 0
        && REGIONS
            .iter()
            .any(|(r, s)| *r == region && *s == "DISABLED")
}

fn json_error(status: u16, kind: &'static str, message: &str, awsjson: bool) -> JsonAnswer {
    // awsJson1_1 names the error in `__type`; restJson1 in the x-amzn-ErrorType header.
    let body = if awsjson {
        serde_json::json!({ "__type": kind, "Message": message })
    } else {
        serde_json::json!({ "message": message })
    };
    JsonAnswer {
        status,
        error_type: Some(kind),
        body: body.to_string(),
    }
}

/// ListAccounts, for a caller whose credentials stand for `caller` (an account id).
pub(crate) fn list_accounts(org: &OrgSpec, caller: &str, body: &str) -> JsonAnswer {
    if org.accounts == 0 {
        return json_error(
            400,
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
            true,
        );
    }
    if caller != ACCOUNT_ID {
        return json_error(
            400,
            "AccessDeniedException",
            "You don't have permissions to access this resource.",
            true,
        );
    }
    let req: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let max = req["MaxResults"].as_u64().unwrap_or(20);
    if !(1..=20).contains(&max) {
        return json_error(
            400,
            "InvalidInputException",
            "MaxResults must be between 1 and 20.",
            true,
        );
    }
    let start: u32 = match req["NextToken"].as_str() {
        None => 0,
        Some(t) => match t.strip_prefix("acct-").and_then(|n| n.parse().ok()) {
            Some(n) if n < org.accounts => n,
            _ => {
                return json_error(
                    400,
                    "InvalidInputException",
                    "The NextToken is not valid.",
                    true,
                )
            }
        },
    };
    let end = (start + max as u32).min(org.accounts);
    let accounts: Vec<serde_json::Value> = (start..end)
        .map(|i| {
            let a = org.account(i);
            serde_json::json!({
                "Id": a.id,
                "Arn": format!("arn:aws:organizations::{ACCOUNT_ID}:account/{ORG_ID}/{}", a.id),
                "Email": format!("aws+{}@example.com", a.id),
                "Name": format!("sim-account-{i}"),
                "Status": a.status,
                "State": a.status,
                "JoinedMethod": if i == 0 { "INVITED" } else { "CREATED" },
                "JoinedTimestamp": 1_700_000_000.0 + f64::from(i) * 86_400.0,
            })
        })
        .collect();
    let mut out = serde_json::json!({ "Accounts": accounts });
    if end < org.accounts {
        out["NextToken"] = format!("acct-{end}").into();
    }
    JsonAnswer {
        status: 200,
        error_type: None,
        body: out.to_string(),
    }
}

/// ListRegions, for a caller whose credentials stand for `caller`.
pub(crate) fn list_regions(org: &OrgSpec, caller: &str, body: &str) -> JsonAnswer {
    let req: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let Some(account) = req["AccountId"].as_str() {
        if account == caller {
            return json_error(
                400,
                "ValidationException",
                "The management account can't specify its own AccountId; it must call the operation in standalone context by not including the AccountId parameter.",
                false,
            );
        }
        if caller != ACCOUNT_ID || org.accounts == 0 || !org.is_active(account) {
            return json_error(
                403,
                "AccessDeniedException",
                "User is not authorized to perform: account:ListRegions",
                false,
            );
        }
    }
    let wanted: Vec<&str> = req["RegionOptStatusContains"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let regions: Vec<serde_json::Value> = REGIONS
        .iter()
        .filter(|(_, s)| wanted.is_empty() || wanted.contains(s))
        .map(|(r, s)| serde_json::json!({ "RegionName": r, "RegionOptStatus": s }))
        .collect();
    JsonAnswer {
        status: 200,
        error_type: None,
        body: serde_json::json!({ "Regions": regions }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgSpec {
        OrgSpec {
            accounts: 50,
            missing_role: 0.1,
            seed: 7,
        }
    }

    #[test]
    fn accounts_page_by_twenty_and_some_are_suspended() {
        let o = org();
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let body = match &token {
                Some(t) => serde_json::json!({ "NextToken": t }).to_string(),
                None => "{}".into(),
            };
            let a = list_accounts(&o, ACCOUNT_ID, &body);
            assert_eq!(a.status, 200, "{}", a.body);
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            let page = v["Accounts"].as_array().unwrap();
            assert!(page.len() <= 20);
            ids.extend(page.iter().map(|a| {
                (
                    a["Id"].as_str().unwrap().to_string(),
                    a["Status"].as_str().unwrap().to_string(),
                )
            }));
            token = v["NextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(ids.len(), 50);
        assert_eq!(ids[0].0, ACCOUNT_ID);
        let suspended = ids.iter().filter(|(_, s)| s == "SUSPENDED").count();
        assert_eq!(suspended, 2); // accounts 24 and 49
        assert_eq!(
            list_accounts(&o, "300000000001", "{}").error_type,
            Some("AccessDeniedException")
        );
        assert_eq!(
            list_accounts(&OrgSpec::default(), ACCOUNT_ID, "{}").error_type,
            Some("AWSOrganizationsNotInUseException")
        );
    }

    #[test]
    fn a_share_of_member_accounts_refuses_the_role() {
        let o = OrgSpec {
            accounts: 2_000,
            missing_role: 0.1,
            seed: 7,
        };
        let refused = (0..2_000)
            .filter(|i| o.refuses_role(&o.account(*i).id))
            .count();
        assert!((150..=250).contains(&refused), "{refused}");
        assert!(!o.refuses_role(ACCOUNT_ID));
        assert!(!o.refuses_role("999999999999"));
        let none = OrgSpec {
            missing_role: 0.0,
            ..o
        };
        assert!((0..2_000).all(|i| !none.refuses_role(&none.account(i).id)));
    }

    #[test]
    fn regions_filter_by_status_and_members_only_from_the_management_account() {
        let o = org();
        let enabled = r#"{"RegionOptStatusContains":["ENABLED","ENABLED_BY_DEFAULT"]}"#;
        let a = list_regions(&o, ACCOUNT_ID, enabled);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        let names: Vec<&str> = v["Regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["RegionName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["ap-southeast-2", "eu-west-1", "us-east-1", "us-west-2"]
        );
        let member = r#"{"AccountId":"300000000003"}"#;
        assert_eq!(list_regions(&o, ACCOUNT_ID, member).status, 200);
        assert_eq!(list_regions(&o, "300000000005", member).status, 403);
        let own = format!(r#"{{"AccountId":"{ACCOUNT_ID}"}}"#);
        assert_eq!(list_regions(&o, ACCOUNT_ID, &own).status, 400);
        // A suspended account is refused.
        assert_eq!(
            list_regions(&o, ACCOUNT_ID, r#"{"AccountId":"300000000024"}"#).status,
            403
        );
    }
}
