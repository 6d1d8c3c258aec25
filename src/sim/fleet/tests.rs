//! The fleet's draws and history, checked.

use super::*;

fn spec(things: u64, jobs: u32, seed: u64) -> FleetSpec {
    FleetSpec {
        things,
        jobs,
        seed,
        now_ms: 1_764_400_000_000,
        epoch_ms: None,
        changed_share: None,
        region: "us-east-1".into(),
        future_status: 0.0,
        active_share: None,
    }
}

#[test]
fn same_seed_same_fleet_other_seed_other_fleet() {
    let a = Fleet::new(spec(2_000, 5, 7));
    let b = Fleet::new(spec(2_000, 5, 7));
    let c = Fleet::new(spec(2_000, 5, 8));
    let all = |f: &Fleet| {
        (0..2_000u64)
            .flat_map(|i| (0..5u32).map(move |j| (i, j)))
            .map(|(i, j)| f.execution(i, j))
            .collect::<Vec<_>>()
    };
    assert_eq!(all(&a), all(&b));
    assert_ne!(all(&a), all(&c));
}

#[test]
fn fleet_has_the_interesting_mix_and_coherent_timestamps() {
    let f = Fleet::new(spec(5_000, 6, 42));
    let mut seen = std::collections::HashMap::new();
    let mut missing = 0;
    for i in 0..5_000 {
        for j in 0..6 {
            let Some(e) = f.execution(i, j) else {
                missing += 1;
                continue;
            };
            *seen.entry(e.status).or_insert(0u32) += 1;
            assert!(e.queued_at_ms <= e.last_updated_at_ms, "{e:?}");
            assert!(e.last_updated_at_ms <= f.spec().now_ms, "{e:?}");
            if let Some(s) = e.started_at_ms {
                assert!(e.queued_at_ms <= s && s <= e.last_updated_at_ms, "{e:?}");
            }
            if e.approximate_seconds_before_timed_out.is_some() {
                assert!(matches!(e.status, "QUEUED" | "IN_PROGRESS"), "{e:?}");
            }
            if e.status == "QUEUED" {
                assert_eq!(e.started_at_ms, None);
            }
        }
    }
    assert!(missing > 0, "some pairs must have no execution");
    for s in STATUSES {
        assert!(seen.get(s).copied().unwrap_or(0) > 0, "no {s} in {seen:?}");
    }
    // Stuck for days: QUEUED executions older than a day exist.
    let old_queued = (0..5_000)
        .filter_map(|i| f.execution(i, 0))
        .filter(|e| e.status == "QUEUED" && f.spec().now_ms - e.queued_at_ms > DAY_MS)
        .count();
    assert!(old_queued > 0);
}

#[test]
fn names_round_trip_and_reject_lookalikes() {
    let f = Fleet::new(spec(1_000, 12, 1));
    assert_eq!(f.thing_name(42), "thing-000042");
    assert_eq!(f.thing_index("thing-000042"), Some(42));
    assert_eq!(f.thing_index("thing-42"), None);
    assert_eq!(f.thing_index("thing-001000"), None);
    assert_eq!(f.job_index("job-011"), Some(11));
    assert_eq!(f.job_index("job-11"), None);
    assert_eq!(f.job_index("job-0011"), None);
    assert_eq!(f.job_index("job-012"), None);
    let big = Fleet::new(spec(10_000_000, 1, 1));
    assert_eq!(big.thing_name(5), "thing-0000005");
}

#[test]
fn status_counts_match_a_scan() {
    let f = Fleet::new(spec(3_000, 3, 9));
    for j in 0..3 {
        let c = f.status_counts(j);
        let total: u64 = c.by_status.iter().sum();
        let scanned = (0..3_000).filter(|&i| f.execution(i, j).is_some()).count() as u64;
        assert_eq!(total, scanned);
    }
}

#[test]
fn active_share_is_honoured() {
    let mut s = spec(20_000, 4, 3);
    s.active_share = Some(0.1);
    let f = Fleet::new(s);
    let (mut n, mut active) = (0, 0);
    for i in 0..20_000 {
        for j in 0..4 {
            if let Some(e) = f.execution(i, j) {
                n += 1;
                active += matches!(e.status, "QUEUED" | "IN_PROGRESS") as u32;
            }
        }
    }
    let share = f64::from(active) / f64::from(n);
    assert!((0.05..0.12).contains(&share), "{share}");
}

#[test]
fn future_status_share_is_honoured() {
    let mut s = spec(10_000, 1, 3);
    s.future_status = 0.1;
    let f = Fleet::new(s);
    let n = (0..10_000)
        .filter_map(|i| f.execution(i, 0))
        .filter(|e| e.status == FUTURE_STATUS)
        .count();
    assert!((300..1_200).contains(&n), "{n}");
}

#[test]
fn a_day_later_is_the_same_fleet_moved_on() {
    let mut day0 = spec(20_000, 5, 11);
    day0.active_share = Some(0.1);
    day0.changed_share = Some(0.01);
    let mut day1 = day0.clone();
    day1.epoch_ms = Some(day0.now_ms);
    day1.now_ms = day0.now_ms + DAY_MS;
    // The epoch given explicitly is the snapshot itself.
    let mut at_epoch = day0.clone();
    at_epoch.epoch_ms = Some(day0.now_ms);
    let (a, b, e) = (Fleet::new(day0), Fleet::new(day1), Fleet::new(at_epoch));
    let (mut n, mut changed, mut new, mut timed_out) = (0u32, 0u32, 0u32, 0u32);
    let (mut queued, mut queued_changed) = (0u32, 0u32);
    for i in 0..20_000 {
        for j in 0..5 {
            assert_eq!(a.execution(i, j), e.execution(i, j));
            let after = b.execution(i, j);
            let Some(before) = a.execution(i, j) else {
                if let Some(x) = after {
                    assert!(x.queued_at_ms > a.spec().now_ms, "{x:?}");
                    new += 1;
                }
                continue;
            };
            let after = after.expect("an execution does not vanish");
            n += 1;
            // Only a normal device moves its executions on.
            let normal = a.behaviour(i) == super::Behaviour::Normal;
            let back = a.reconnects_at(i).is_some_and(|t| t < b.spec().now_ms);
            if !normal && !back {
                assert_eq!(before, after, "a held device's execution moved");
            }
            queued += u32::from(before.status == "QUEUED" && normal);
            queued_changed += u32::from(
                before.status == "QUEUED" && after.last_updated_at_ms != before.last_updated_at_ms,
            );
            assert_eq!(before.queued_at_ms, after.queued_at_ms);
            assert_eq!(before.execution_number, after.execution_number);
            assert!(after.last_updated_at_ms <= b.spec().now_ms, "{after:?}");
            if before.last_updated_at_ms == after.last_updated_at_ms {
                // Nothing happened: the same execution, but for the running timer.
                assert_eq!(before.status, after.status);
                assert_eq!(before.version_number, after.version_number);
                assert_eq!(before.details, after.details);
                continue;
            }
            changed += 1;
            assert!(
                after.last_updated_at_ms > a.spec().now_ms,
                "{before:?} {after:?}"
            );
            assert!(after.version_number > before.version_number);
            assert!(
                matches!(before.status, "QUEUED" | "IN_PROGRESS"),
                "a finished execution moved: {before:?} -> {after:?}"
            );
            if after.status == "TIMED_OUT" {
                timed_out += 1;
                let end = after.started_at_ms.unwrap() + 30 * MINUTE_MS;
                let end2 = after.started_at_ms.unwrap() + 120 * MINUTE_MS;
                assert!(after.last_updated_at_ms == end || after.last_updated_at_ms == end2);
            }
        }
    }
    // A tenth of the active executions have an event each day (1% of the fleet over its 10%
    // active share): every queued one of a normal device that changed was started by it.
    let share = f64::from(queued_changed) / f64::from(queued);
    assert!(
        (0.08..0.12).contains(&share),
        "{queued_changed} of {queued}"
    );
    assert!(f64::from(changed) / f64::from(n) < 0.05, "{changed} of {n}");
    assert!(timed_out > 0 && new > 0, "{timed_out} timed out, {new} new");
}

#[test]
fn cancels_and_deletes_are_kept_and_counted_as_the_clock_moves() {
    let f = Fleet::new(spec(300, 2, 9));
    let find = |status: &str| {
        (0..300)
            .find_map(|i| f.execution(i, 0).filter(|e| e.status == status).map(|_| i))
            .unwrap()
    };
    let before = f.status_counts(0);
    let q = find("QUEUED");
    let v = f.execution(q, 0).unwrap().version_number;
    let stale = Cancel {
        expected_version: Some(v + 1),
        ..Cancel::default()
    };
    assert!(matches!(
        f.cancel(q, 0, &stale),
        Err(Refusal::VersionConflict(_))
    ));
    let ours = Cancel {
        expected_version: Some(v),
        status_details: Some(vec![("plan".into(), "p-1".into())]),
        ..Cancel::default()
    };
    f.cancel(q, 0, &ours).unwrap();
    let e = f.execution(q, 0).unwrap();
    assert_eq!(
        (e.status, e.version_number, e.force_canceled),
        ("CANCELED", v + 1, Some(false))
    );
    assert!(matches!(
        f.cancel(q, 0, &Cancel::default()),
        Err(Refusal::InvalidState(_))
    ));
    let p = find("IN_PROGRESS");
    assert!(matches!(
        f.cancel(p, 0, &Cancel::default()),
        Err(Refusal::InvalidState(_))
    ));
    let n = f.execution(p, 0).unwrap().execution_number;
    assert!(matches!(
        f.delete(p, 0, n, false),
        Err(Refusal::InvalidState(_))
    ));
    f.delete(p, 0, n, true).unwrap();
    assert_eq!(f.execution(p, 0), None);
    let at = |s: &str| STATUSES.iter().position(|x| *x == s).unwrap();
    let after = f.status_counts(0);
    assert_eq!(
        after.by_status[at("QUEUED")],
        before.by_status[at("QUEUED")] - 1
    );
    assert_eq!(
        after.by_status[at("CANCELED")],
        before.by_status[at("CANCELED")] + 1
    );
    assert_eq!(
        after.by_status[at("IN_PROGRESS")],
        before.by_status[at("IN_PROGRESS")] - 1
    );
    // A day later the history moved the fleet on, but not what callers did; the counts are a scan.
    f.advance(DAY_MS);
    assert_eq!(f.now_ms(), f.spec().now_ms + DAY_MS);
    assert_eq!(f.execution(q, 0), Some(e));
    assert_eq!(f.execution(p, 0), None);
    let mut scan = StatusCounts::default();
    for i in 0..300 {
        if let Some(x) = f.execution(i, 0) {
            scan.by_status[at(x.status)] += 1;
        }
    }
    assert_eq!(f.status_counts(0), scan);
    assert_eq!(f.changed(), 2);
}
