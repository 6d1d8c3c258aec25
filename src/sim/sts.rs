//! The two STS actions a run needs, on the simulator's own endpoint: GetCallerIdentity (the account id
//! of each target) and AssumeRole (`--role-arn`). STS speaks the AWS query protocol: a form-encoded
//! POST to `/` answered in XML.
//!
//! Credentials the simulator issues for a role carry the role's account in the access key id
//! (`ASIA` + 12 digits + `SIM0`), so GetCallerIdentity with them names that account without any state
//! kept; any other key is the simulator's own account ([`ACCOUNT_ID`]). The test hooks of IoT apply:
//! `AKIDEXPIRED` is refused as an expired token, `AKIDDENIED` as access denied (AssumeRole only).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fleet::ACCOUNT_ID;
use super::org::OrgSpec;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An STS answer: HTTP status and XML body.
pub(crate) struct StsAnswer {
    pub status: u16,
    pub body: String,
}

fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error(status: u16, code: &str, message: &str, request_id: &str) -> StsAnswer {
    StsAnswer {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(message)
        ),
    }
}

/// The account a request's `Authorization` header stands for.
pub(crate) fn caller_account(auth: &str) -> &str {
    account_of_key(access_key_of(auth))
}

/// The account an access key id stands for.
fn account_of_key(access_key: &str) -> &str {
    match access_key.strip_prefix("ASIA") {
        Some(rest)
            if rest.len() == 16
                && rest.ends_with("SIM0")
                && rest[..12].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &rest[..12]
        }
        _ => ACCOUNT_ID,
    }
}

/// The access key id of a request's `Authorization` header (`Credential=AKID/...`).
fn access_key_of(auth: &str) -> &str {
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
}

/// Answers one STS request, given its `Authorization` header and form body; AssumeRole into an
/// account of `org` without the role is refused.
pub fn answer(auth: &str, body: &str, request_id: &str, org: &OrgSpec) -> StsAnswer {
    let key = access_key_of(auth);
    if key == "AKIDEXPIRED" {
        return error(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
            request_id,
        );
    }
    match form_value(body, "Action").as_deref() {
        Some("GetCallerIdentity") => caller_identity(key, request_id),
        Some("AssumeRole") => assume_role(key, body, request_id, org),
        _ => error(
            400,
            "InvalidAction",
            "The action is not valid for this web service",
            request_id,
        ),
    }
}

/// GetCallerIdentity: the account the access key `key` stands for, as a user of the simulator's own
/// account or as the role assumed in another.
fn caller_identity(key: &str, request_id: &str) -> StsAnswer {
    let account = account_of_key(key);
    let arn = if account == ACCOUNT_ID {
        format!("arn:aws:iam::{account}:user/fleet-audit-sim")
    } else {
        format!("arn:aws:sts::{account}:assumed-role/sim/fleet-audit")
    };
    StsAnswer {
        status: 200,
        body: format!(
            "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDASIMULATOR</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ),
    }
}

/// AssumeRole: credentials for the role of the form's `RoleArn` (refused to the test hook's denied
/// key, for an ARN that names no role, and in an account of `org` without the role).
fn assume_role(key: &str, body: &str, request_id: &str, org: &OrgSpec) -> StsAnswer {
    if key == "AKIDDENIED" {
        return error(
            403,
            "AccessDenied",
            "User is not authorized to perform: sts:AssumeRole",
            request_id,
        );
    }
    let role = form_value(body, "RoleArn").unwrap_or_default();
    let session = form_value(body, "RoleSessionName").unwrap_or_default();
    let account = role.split(':').nth(4).unwrap_or("");
    let name = role.rsplit('/').next().unwrap_or("");
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return error(
            400,
            "ValidationError",
            "RoleArn is not a valid role ARN",
            request_id,
        );
    }
    if org.refuses_role(account) {
        let caller = account_of_key(key);
        return error(
            403,
            "AccessDenied",
            &format!("User: arn:aws:iam::{caller}:user/fleet-audit-sim is not authorized to perform: sts:AssumeRole on resource: {role}"),
            request_id,
        );
    }
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(3600);
    let expiration = aws_smithy_types::DateTime::from_secs(expires.as_secs() as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    StsAnswer {
        status: 200,
        body: format!(
            "<AssumeRoleResponse xmlns=\"{NS}\"><AssumeRoleResult><Credentials><AccessKeyId>ASIA{account}SIM0</AccessKeyId><SecretAccessKey>simulated-secret-for-{account}</SecretAccessKey><SessionToken>simulated-session-token</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROASIMULATOR:{session}</AssumedRoleId><Arn>arn:aws:sts::{account}:assumed-role/{name}/{session}</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></AssumeRoleResponse>",
            session = xml_escape(&session),
            name = xml_escape(name),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_credentials_name_the_role_account() {
        let a = answer(
            "AWS4-HMAC-SHA256 Credential=AKIDSIM/20261129/us-east-1/sts/aws4_request",
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Faudit&RoleSessionName=fleet-audit",
            "r1",
            &OrgSpec::default(),
        );
        assert_eq!(a.status, 200);
        assert!(
            a.body
                .contains("<AccessKeyId>ASIA111122223333SIM0</AccessKeyId>"),
            "{}",
            a.body
        );
        let who = answer(
            "AWS4-HMAC-SHA256 Credential=ASIA111122223333SIM0/20261129/us-east-1/sts/aws4_request",
            "Action=GetCallerIdentity&Version=2011-06-15",
            "r2",
            &OrgSpec::default(),
        );
        assert!(
            who.body.contains("<Account>111122223333</Account>"),
            "{}",
            who.body
        );
        let own = answer(
            "Credential=AKIDSIM/x",
            "Action=GetCallerIdentity",
            "r3",
            &OrgSpec::default(),
        );
        assert!(own
            .body
            .contains(&format!("<Account>{ACCOUNT_ID}</Account>")));
        let expired = answer(
            "Credential=AKIDEXPIRED/x",
            "Action=GetCallerIdentity",
            "r4",
            &OrgSpec::default(),
        );
        assert_eq!(expired.status, 403);
        assert!(expired.body.contains("<Code>ExpiredToken</Code>"));
    }

    #[test]
    fn assume_role_into_an_account_without_the_role_is_refused() {
        let org = OrgSpec {
            accounts: 100,
            missing_role: 1.0,
            seed: 1,
        };
        let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A300000000007%3Arole%2Faudit&RoleSessionName=fleet-audit";
        let a = answer("Credential=AKIDSIM/x", body, "r5", &org);
        assert_eq!(a.status, 403);
        assert!(a.body.contains("<Code>AccessDenied</Code>"), "{}", a.body);
        assert!(a.body.contains("arn:aws:iam::300000000007:role/audit"));
        let ok = answer(
            "Credential=AKIDSIM/x",
            body,
            "r6",
            &OrgSpec {
                missing_role: 0.0,
                ..org
            },
        );
        assert_eq!(ok.status, 200);
    }
}
