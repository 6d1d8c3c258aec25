//! The plan file read back: whole, or refused with the line and the rule.

use super::planfile::{encode, read, write_new, Action, AuditRef, Header, Selectors, PLAN_FORMAT};
use super::PlanError;

fn header() -> Header {
    Header {
        fleet_audit_plan: PLAN_FORMAT,
        plan_id: "plan-1-abc".into(),
        created_at: "2026-12-06T00:00:00.000Z".into(),
        audit: AuditRef {
            path: "audit/".into(),
            run_ids: vec!["1-abc".into()],
            audited_at: "2026-12-05T00:00:00.000Z".into(),
            audited_at_ms: 1,
        },
        selectors: Selectors {
            classes: vec!["stuck_queued".into()],
            jobs: vec![],
            things: None,
            older_than: None,
            causes: vec![],
            queued_after: "24h".into(),
            stale_after: "1h".into(),
            near_timeout: "5m".into(),
        },
        action: "cancel".into(),
        force: false,
        counts: vec![],
        skipped: Default::default(),
        actions: 0,
        actions_sha256: String::new(),
    }
}

fn action(n: u64, thing: &str) -> Action {
    Action {
        n,
        account_id: Some("123456789012".into()),
        region: Some("us-east-1".into()),
        job_id: "job-000".into(),
        thing_name: thing.into(),
        action: "cancel".into(),
        force: false,
        expected_version: 1,
        execution_number: 1,
        status: "QUEUED".into(),
        class: "stuck_queued".into(),
        cause: None,
        age_seconds: Some(90_000),
        fetched_at: "2026-12-05T00:00:00.000Z".into(),
        run_id: Some("1-abc".into()),
    }
}

#[test]
fn a_plan_reads_back_whole_and_an_edit_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.plan");
    let (h, bytes) = encode(header(), &[action(1, "t-1"), action(2, "t-2")]);
    assert_eq!(h.actions, 2);
    write_new(&p, &bytes).unwrap();
    let plan = read(&p).unwrap();
    assert_eq!(plan.header, h);
    assert_eq!(plan.actions.len(), 2);
    assert!(matches!(write_new(&p, &bytes), Err(PlanError::Exists(_))));

    // One thing name changed: the checksum no longer holds.
    let edited = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("\"t-2\"", "\"t-3\"", 1);
    let q = d.path().join("edited.plan");
    std::fs::write(&q, edited).unwrap();
    let e = read(&q).unwrap_err();
    assert!(matches!(e, PlanError::Edited { .. }), "{e}");
    assert!(e.to_string().contains("edited after it was written"), "{e}");

    // A line dropped, the checksum recomputed by hand: the count and numbering still catch it.
    let (_, one) = encode(header(), &[action(2, "t-2")]);
    let r = d.path().join("renumbered.plan");
    std::fs::write(&r, one).unwrap();
    let e = read(&r).unwrap_err().to_string();
    assert!(
        e.contains("renumbered.plan:2:") && e.contains("action number 2"),
        "{e}"
    );

    // An action that is not the header's kind, or a name AWS refuses.
    let mut del = action(1, "t-1");
    del.action = "delete".into();
    let (_, b) = encode(header(), &[del]);
    std::fs::write(&r, b).unwrap();
    assert!(read(&r).unwrap_err().to_string().contains("plan of cancel"));
    let (_, b) = encode(header(), &[action(1, "bad thing")]);
    std::fs::write(&r, b).unwrap();
    assert!(read(&r)
        .unwrap_err()
        .to_string()
        .contains("not a valid thing name"));
    std::fs::write(&r, "not json\n").unwrap();
    assert!(read(&r).unwrap_err().to_string().contains(":1: the header"));
}
