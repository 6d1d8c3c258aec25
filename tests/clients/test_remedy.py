"""Remediation against `fleet-audit sim`: the simulator's CancelJobExecution, DeleteJobExecution and clock,
checked with boto3 and the AWS CLI as AWS documents them; and `fleet-audit plan` over a real audit, its
actions checked against the dataset with DuckDB."""
import hashlib
import json
import subprocess
import urllib.request

import boto3
import botocore.config
import duckdb
import pytest

from conftest import NOW, Sim


def client(url, retries=1):
    return boto3.client(
        "iot", endpoint_url=url, region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": retries, "mode": "standard"}),
    )


def cli(aws_cli, env, url, *args):
    return subprocess.run([aws_cli, "iot", *args, "--endpoint-url", url], env=env, capture_output=True, text=True)


def pair_in(iot, status, jobs=("job-000", "job-001", "job-002")):
    for job in jobs:
        for s in iot.list_job_executions_for_job(jobId=job, status=status, maxResults=5)["executionSummaries"]:
            return s["thingArn"].split("/")[-1], job
    pytest.fail(f"no {status} execution")


def stats(url):
    return json.loads(urllib.request.urlopen(url + "/_sim/stats").read())


def advance(url, seconds):
    req = urllib.request.Request(f"{url}/_sim/advance?seconds={seconds}", method="POST", data=b"")
    return json.loads(urllib.request.urlopen(req).read())


def test_cancel_is_guarded_by_the_version_and_kept_as_aws_keeps_it(aws_env, aws_cli):
    s = Sim("--things", "300", "--jobs", "3", "--seed", "11")
    try:
        iot = client(s.url)
        thing, job = pair_in(iot, "QUEUED")
        before = iot.describe_job_execution(jobId=job, thingName=thing)["execution"]
        v = before["versionNumber"]
        with pytest.raises(iot.exceptions.VersionConflictException) as e:
            iot.cancel_job_execution(jobId=job, thingName=thing, expectedVersion=v + 1)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert iot.describe_job_execution(jobId=job, thingName=thing)["execution"] == before, "a refused cancel changes nothing"
        r = cli(aws_cli, aws_env, s.url, "cancel-job-execution", "--job-id", job, "--thing-name", thing,
                "--expected-version", str(v), "--status-details", "cancelledBy=fleet-audit,plan=plan-1")
        assert r.returncode == 0, r.stderr
        r = cli(aws_cli, aws_env, s.url, "describe-job-execution", "--job-id", job, "--thing-name", thing)
        after = json.loads(r.stdout)["execution"]
        assert after["status"] == "CANCELED" and after["versionNumber"] == v + 1
        assert after["forceCanceled"] is False
        assert after["statusDetails"] == {"detailsMap": {"cancelledBy": "fleet-audit", "plan": "plan-1"}}
        assert after["queuedAt"] == before["queuedAt"].timestamp() and "approximateSecondsBeforeTimedOut" not in after
        listed = [x for x in iot.list_job_executions_for_thing(thingName=thing)["executionSummaries"] if x["jobId"] == job]
        assert listed[0]["jobExecutionSummary"]["status"] == "CANCELED"
        # Again: a terminal execution is no longer cancellable; with its new version, the same.
        for kw in ({}, {"expectedVersion": v + 1}):
            with pytest.raises(iot.exceptions.InvalidStateTransitionException):
                iot.cancel_job_execution(jobId=job, thingName=thing, **kw)
        # IN_PROGRESS needs force, and is then force-cancelled.
        t2, j2 = pair_in(iot, "IN_PROGRESS")
        with pytest.raises(iot.exceptions.InvalidStateTransitionException):
            iot.cancel_job_execution(jobId=j2, thingName=t2)
        iot.cancel_job_execution(jobId=j2, thingName=t2, force=True)
        assert iot.describe_job_execution(jobId=j2, thingName=t2)["execution"]["forceCanceled"] is True
        # At most 10 status details; a missing execution is ResourceNotFound.
        with pytest.raises(iot.exceptions.InvalidRequestException):
            iot.cancel_job_execution(jobId=j2, thingName=t2, statusDetails={f"k{i}": "v" for i in range(11)})
        with pytest.raises(iot.exceptions.ResourceNotFoundException):
            iot.cancel_job_execution(jobId="job-000", thingName="no-such-thing")
        st = stats(s.url)["operations"]
        assert st["CancelJobExecution"] == 8
    finally:
        s.stop()


def test_delete_needs_force_for_an_active_execution_and_then_it_is_gone(aws_env, aws_cli):
    s = Sim("--things", "300", "--jobs", "3", "--seed", "12")
    try:
        iot = client(s.url)
        thing, job = pair_in(iot, "QUEUED")
        n = iot.describe_job_execution(jobId=job, thingName=thing)["execution"]["executionNumber"]
        with pytest.raises(iot.exceptions.InvalidStateTransitionException):
            iot.delete_job_execution(jobId=job, thingName=thing, executionNumber=n)
        with pytest.raises(iot.exceptions.ResourceNotFoundException):
            iot.delete_job_execution(jobId=job, thingName=thing, executionNumber=n + 1, force=True)
        r = cli(aws_cli, aws_env, s.url, "delete-job-execution", "--job-id", job, "--thing-name", thing,
                "--execution-number", str(n), "--force")
        assert r.returncode == 0, r.stderr
        r = cli(aws_cli, aws_env, s.url, "describe-job-execution", "--job-id", job, "--thing-name", thing)
        assert "ResourceNotFoundException" in r.stderr
        t2, j2 = pair_in(iot, "SUCCEEDED")
        n2 = iot.describe_job_execution(jobId=j2, thingName=t2)["execution"]["executionNumber"]
        iot.delete_job_execution(jobId=j2, thingName=t2, executionNumber=n2)
        assert all(x["jobId"] != j2 for x in iot.list_job_executions_for_thing(thingName=t2)["executionSummaries"])
    finally:
        s.stop()


def test_the_remediation_calls_have_their_own_quota(aws_env):
    s = Sim("--things", "50", "--jobs", "1", "--seed", "3", "--remediation-quota-rps", "0.1", "--quota-burst", "1")
    try:
        iot = client(s.url)
        answers = []
        for _ in range(3):
            try:
                iot.cancel_job_execution(jobId="job-000", thingName="no-such-thing")
            except iot.exceptions.ThrottlingException as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
                answers.append("throttled")
            except iot.exceptions.ResourceNotFoundException:
                answers.append("not_found")
        assert answers == ["not_found", "throttled", "throttled"]
        # DescribeJobExecution has no quota here: its calls all answer.
        for _ in range(5):
            with pytest.raises(iot.exceptions.ResourceNotFoundException):
                iot.describe_job_execution(jobId="job-000", thingName="no-such-thing")
    finally:
        s.stop()


def test_the_clock_moves_the_fleet_on_and_keeps_what_callers_did(aws_env):
    s = Sim("--things", "400", "--jobs", "2", "--seed", "5")
    try:
        iot = client(s.url)
        thing, job = pair_in(iot, "QUEUED", jobs=("job-000", "job-001"))
        iot.cancel_job_execution(jobId=job, thingName=thing)
        cancelled = iot.describe_job_execution(jobId=job, thingName=thing)["execution"]

        def statuses():
            out = {}
            for j in ("job-000", "job-001"):
                for page in iot.get_paginator("list_job_executions_for_job").paginate(jobId=j):
                    for e in page["executionSummaries"]:
                        out[(e["thingArn"], j)] = (e["jobExecutionSummary"]["status"],
                                                   e["jobExecutionSummary"]["lastUpdatedAt"])
            return out

        day0 = statuses()
        assert advance(s.url, 86400)["now"] == float(NOW) + 86400
        day1 = statuses()
        moved = [k for k in day0 if k in day1 and day0[k] != day1[k]]
        assert moved, "a day later some executions moved on"
        assert max(v[1].timestamp() for v in day1.values()) <= float(NOW) + 86400
        assert iot.describe_job_execution(jobId=job, thingName=thing)["execution"] == cancelled
        bad = urllib.request.Request(f"{s.url}/_sim/advance?seconds=-1", method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(bad)
    finally:
        s.stop()


def plan_of(fa, audit_dir, plan, *flags):
    """`fleet-audit plan` of an audit, exit 0; the plan's actions."""
    r = subprocess.run([fa, "plan", str(audit_dir), "--out", str(plan), *flags], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in plan.read_text().splitlines()[1:]]


def audit(fa, env, tmp_path, s, lists, out):
    r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                        "--out", str(out), "--endpoint-url", s.url, "--rps", "0", "--quiet",
                        "--as-of", NOW], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_plan_lists_every_stuck_queued_execution_once_with_its_version(fa, aws_env, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "600", "--jobs", "3", "--seed", "21", "--write-lists", str(lists))
    try:
        out = tmp_path / "audit"
        audit(fa, aws_env, tmp_path, s, lists, out)
        plan = tmp_path / "plan.jsonl"
        r = subprocess.run([fa, "plan", str(out), "--out", str(plan), "--class", "stuck_queued",
                            "--jobs", "job-000,job-002"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lines = plan.read_bytes().split(b"\n", 1)
        header = json.loads(lines[0])
        assert header["actions_sha256"] == hashlib.sha256(lines[1]).hexdigest()
        actions = [json.loads(x) for x in lines[1].splitlines()]
        assert header["actions"] == len(actions) > 0
        assert [a["n"] for a in actions] == list(range(1, len(actions) + 1))
        con = duckdb.connect()
        want = con.execute(
            f"""SELECT thing_name, job_id, version_number, execution_number FROM read_parquet('{out}/**/*.parquet')
                WHERE status = 'QUEUED' AND job_id IN ('job-000', 'job-002')
                  AND epoch_ms(fetched_at) - epoch_ms(queued_at) > 24 * 3600 * 1000""").fetchall()
        got = [(a["thing_name"], a["job_id"], a["expected_version"], a["execution_number"]) for a in actions]
        assert sorted(got) == sorted(want)
        assert {a["action"] for a in actions} == {"cancel"} and not any(a["force"] for a in actions)
        assert sum(c["count"] for c in header["counts"]) == len(actions)
        assert "cancel" in r.stdout and header["plan_id"] in r.stdout
        # Never over an existing file; a plan edited afterwards is refused when read back.
        again = subprocess.run([fa, "plan", str(out), "--out", str(plan), "--class", "stuck_queued"],
                               capture_output=True, text=True)
        assert again.returncode == 2 and "already exists" in again.stderr
        assert plan.read_bytes().split(b"\n", 1)[0] == lines[0]
    finally:
        s.stop()


def test_plan_refuses_bad_selectors_before_reading_anything(fa, tmp_path):
    things = tmp_path / "things.txt"
    things.write_text("thing-1\nbad thing\n")
    r = subprocess.run([fa, "plan", str(tmp_path / "nope"), "--out", str(tmp_path / "p"), "--class", "stuck_queued",
                        "--things", str(things)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{things}:2:" in r.stderr
    r = subprocess.run([fa, "plan", str(tmp_path / "nope"), "--out", str(tmp_path / "p")], capture_output=True, text=True)
    assert r.returncode == 2 and "--class" in r.stderr
    assert not (tmp_path / "p").exists()


def rows_by_pair(path):
    con = duckdb.connect()
    cols = "thing_name, job_id, status, version_number, last_updated_at, status_details"
    return {(r[0], r[1]): r[2:] for r in con.execute(
        f"SELECT {cols} FROM read_parquet('{path}/**/*.parquet') WHERE outcome = 'ok'").fetchall()}


def test_audit_plan_a_day_later_apply_cancels_exactly_the_unchanged(fa, aws_env, aws_cli, tmp_path):
    """issue 26's first Done-when: audit -> plan --class stuck_queued for two jobs -> a day passes -> apply.
    Every planned execution unchanged since the audit is CANCELED (read back with the AWS CLI), every
    one that changed is version_conflict and untouched, and a full re-audit differs from the fleet's own
    day (the same seed a day on, nobody cancelling) exactly in the applied executions."""
    day = 86400
    lists = tmp_path / "lists"
    fleet = ["--things", "400", "--jobs", "8", "--seed", "23", "--active-share", "0.6"]
    s = Sim(*fleet, "--write-lists", str(lists))
    truth = Sim(*fleet, "--epoch", NOW, now=str(int(NOW) + day))
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "cancel.plan"
        # Two jobs running with stuck executions (a QUEUED one of a job not running is waiting).
        rep = json.loads(subprocess.run([fa, "report", str(first), "--json"], capture_output=True,
                                        text=True, check=True).stdout)
        two = [j["job_id"] for j in rep["jobs"] if j["stuck_queued"] > 0][:2]
        assert len(two) == 2, rep["jobs"]
        actions = plan_of(fa, first, plan, "--class", "stuck_queued", "--jobs", ",".join(two))
        assert len(actions) > 20
        advance(s.url, day)
        out = tmp_path / "actions"
        r = subprocess.run([fa, "apply", str(plan), "--out", str(out), "--yes", "--endpoint-url", s.url,
                            "--as-of", str(int(NOW) + day)], env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        con = duckdb.connect()
        got = {(t, j): (o, rec) for t, j, o, rec in con.execute(
            f"SELECT thing_name, job_id, outcome, recognised FROM read_parquet('{out}/*.parquet')").fetchall()}
        assert len(got) == len(actions), "a row per action"
        iot_truth = client(truth.url)
        applied = set()
        for a in actions:
            key = (a["thing_name"], a["job_id"])
            moved = iot_truth.describe_job_execution(jobId=a["job_id"], thingName=a["thing_name"])["execution"]
            unchanged = moved["versionNumber"] == a["expected_version"]
            assert got[key] == ("applied" if unchanged else "version_conflict", False), (key, moved)
            if unchanged:
                applied.add(key)
        assert applied and len(applied) < len(actions), "both outcomes occur"
        for t, j in list(applied)[:5]:
            r = cli(aws_cli, aws_env, s.url, "describe-job-execution", "--job-id", j, "--thing-name", t)
            e = json.loads(r.stdout)["execution"]
            assert e["status"] == "CANCELED" and e["statusDetails"]["detailsMap"]["fleetAuditPlan"] == json.loads(
                plan.read_text().splitlines()[0])["plan_id"]
        assert stats(s.url)["operations"]["CancelJobExecution"] == len(actions), "one call an action"
        # report ACTIONS counts by job and outcome, as the rows say; exit 0 (no error).
        r = subprocess.run([fa, "report", str(out), "--json"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep["actions"] == len(actions) and rep["outcomes"]["applied"] == len(applied)
        by_job = dict(con.execute(f"SELECT job_id, count(*) FILTER (outcome = 'applied') FROM "
                                  f"read_parquet('{out}/*.parquet') GROUP BY ALL").fetchall())
        assert {j["job_id"]: j["outcomes"]["applied"] for j in rep["jobs"]} == by_job
        # A full re-audit against the fleet's own day.
        again, own = tmp_path / "again", tmp_path / "own"
        for sim, dest in ((s, again), (truth, own)):
            r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                                "--out", str(dest), "--endpoint-url", sim.url, "--rps", "0", "--quiet",
                                "--as-of", str(int(NOW) + day)], env=aws_env, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        a_rows, o_rows = rows_by_pair(again), rows_by_pair(own)
        assert set(a_rows) == set(o_rows)
        differ = {k for k in a_rows if a_rows[k] != o_rows[k]}
        assert differ == applied
        assert all(a_rows[k][0] == "CANCELED" for k in applied)
        # The report of the re-audit against the first shows them as transitions to CANCELED.
        r = subprocess.run([fa, "report", str(again), "--baseline", str(first), "--json"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        moves = {(t["from"], t["to"]): t["count"] for t in json.loads(r.stdout)["changes"]["transitions"]}
        assert moves[("QUEUED", "CANCELED")] == len(applied)
    finally:
        s.stop()
        truth.stop()


def sent_lines(journal):
    try:
        return sum(1 for l in journal.read_text().splitlines() if l.startswith("sent "))
    except FileNotFoundError:
        return 0


def test_apply_killed_three_times_then_resumed_equals_an_uninterrupted_apply(fa, aws_env, tmp_path):
    """issue 26's second Done-when: kill -9 during apply three times, then --resume: every action's row
    exactly once, no call handled twice for one action (the simulator's counts), outcomes equal to an
    uninterrupted apply's on a twin of the fleet."""
    import os
    import signal
    import time
    day = 86400
    lists = tmp_path / "lists"
    fleet = ["--things", "1200", "--jobs", "2", "--seed", "29", "--active-share", "0.8"]
    s = Sim(*fleet, "--latency-ms", "10", "--write-lists", str(lists))
    twin = Sim(*fleet)
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "cancel.plan"
        n = len(plan_of(fa, first, plan, "--class", "stuck_queued"))
        assert n >= 60, n
        for sim in (s, twin):
            advance(sim.url, day)
        common = ["--yes", "--as-of", str(int(NOW) + day), "--rps", "25"]

        def apply(sim, out, *extra):
            return [fa, "apply", str(plan), "--out", str(out), "--endpoint-url", sim.url, *common, *extra]

        whole = tmp_path / "whole"
        r = subprocess.run(apply(twin, whole), env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out = tmp_path / "actions"
        journal = tmp_path / ".actions.fleet-audit.journal"
        for k, at in enumerate((n // 5, 2 * n // 5, 3 * n // 5)):
            p = subprocess.Popen(apply(s, out, *(["--resume"] if k else [])), env=aws_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 60
            while sent_lines(journal) < at and p.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            assert p.poll() is None, f"apply ended before its kill: {p.stderr.read()}"
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        r = subprocess.run(apply(s, out, "--resume"), env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

        con = duckdb.connect()
        rows = con.execute(f"SELECT action_n, outcome FROM read_parquet('{out}/*.parquet')").fetchall()
        want = con.execute(f"SELECT action_n, outcome FROM read_parquet('{whole}/*.parquet')").fetchall()
        assert len(rows) == len({a for a, _ in rows}) == n, "a row per action, once"
        assert sorted(rows) == sorted(want), "outcomes as an uninterrupted apply's"
        assert {o for _, o in rows} >= {"applied", "version_conflict"}
        # The kills left calls sent whose rows were not committed: those were read back, not sent again.
        assert con.execute(f"SELECT count(*) FROM read_parquet('{out}/*.parquet') WHERE recognised").fetchone()[0] > 0
        got, ref = stats(s.url), stats(twin.url)
        assert got["most_changes_per_execution"] == ref["most_changes_per_execution"] == 1, \
            "no execution received a second cancel"
        applied = sum(1 for _, o in rows if o == "applied")
        assert got["changed"] == ref["changed"] == applied
        # An action whose call a kill stopped before it left is settled by describing the execution
        # when it changed meanwhile (the answer AWS would give): at most n calls reached the fleet.
        assert applied <= got["change_targets"] <= ref["change_targets"] == n
    finally:
        s.stop()
        twin.stop()


def test_actions_that_fail_exit_1_and_are_reported_as_errors(fa, aws_env, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "300", "--jobs", "2", "--seed", "31", "--write-lists", str(lists))
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "p.plan"
        plan_of(fa, first, plan, "--class", "stuck_queued")
    finally:
        s.stop()
    n = len(plan.read_text().splitlines()) - 1
    broken = Sim("--things", "300", "--jobs", "2", "--seed", "31", "--fault-5xx", "1")
    try:
        out = tmp_path / "actions"
        r = subprocess.run([fa, "apply", str(plan), "--out", str(out), "--yes", "--endpoint-url", broken.url,
                            "--as-of", NOW, "--max-attempts", "2", "--rps", "0"], env=aws_env,
                           capture_output=True, text=True)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"error {n}" in r.stdout
        r = subprocess.run([fa, "report", str(out)], capture_output=True, text=True)
        assert r.returncode == 1 and "error: job-" in r.stdout, r.stdout
        assert stats(broken.url)["changed"] == 0
    finally:
        broken.stop()


def rehash(plan, header_edit=None, actions_edit=None):
    """The plan rewritten as an attacker would: lines edited, the checksum made again."""
    lines = plan.read_text().splitlines()
    header, actions = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    if actions_edit:
        actions = actions_edit(actions)
    if header_edit:
        header_edit(header)
    body = "".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions)
    header["actions"] = len(actions)
    header["actions_sha256"] = hashlib.sha256(body.encode()).hexdigest()
    plan.write_text(json.dumps(header, separators=(",", ":")) + "\n" + body)


def test_a_rehashed_plan_is_held_to_its_audit_and_refused_before_any_call(fa, aws_env, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "300", "--jobs", "2", "--seed", "37", "--write-lists", str(lists))
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "p.plan"
        plan_of(fa, first, plan, "--class", "stuck_queued")
        original = plan.read_text()
        con = duckdb.connect()
        running = con.execute(f"SELECT thing_name, job_id, version_number, execution_number FROM "
                              f"read_parquet('{first}/*.parquet') WHERE status = 'IN_PROGRESS' LIMIT 1").fetchone()

        def forced(actions):
            a = dict(actions[0], thing_name=running[0], job_id=running[1], expected_version=running[2],
                     execution_number=running[3], force=True, n=len(actions) + 1)
            return actions + [a]

        edits = {
            "an execution the audit never read": (None, lambda acts: acts + [dict(acts[0], thing_name="thing-999999", n=len(acts) + 1)]),
            "an IN_PROGRESS execution called QUEUED, forced": (lambda h: h.update(force=True), forced),
            "the age moved": (lambda h: h["audit"].update(audited_at_ms=h["audit"]["audited_at_ms"] + 5 * 86400000), None),
            "the counts": (lambda h: [c.update(count=1) for c in h["counts"]], None),
            "one execution twice": (None, lambda acts: acts + [dict(acts[0], n=len(acts) + 1)]),
        }
        for name, (h_edit, a_edit) in edits.items():
            plan.write_text(original)
            rehash(plan, h_edit, a_edit)
            r = subprocess.run([fa, "apply", str(plan), "--out", str(tmp_path / "acts"), "--yes",
                                "--endpoint-url", s.url, "--as-of", NOW], env=aws_env, capture_output=True, text=True)
            assert r.returncode == 2, f"{name}: {r.stdout}{r.stderr}"
            assert "apply: error: " in r.stderr and str(plan) in r.stderr, f"{name}: {r.stderr}"
        assert stats(s.url)["operations"]["CancelJobExecution"] == 0
        assert not (tmp_path / "acts").exists()
    finally:
        s.stop()


def test_a_forced_delete_leaves_an_execution_that_moved_since_the_audit(fa, aws_env, tmp_path):
    """AWS's DeleteJobExecution has no expectedVersion: apply reads the execution first, and one that
    moved since the audit is version_conflict, untouched."""
    day = 86400
    lists = tmp_path / "lists"
    fleet = ["--things", "400", "--jobs", "2", "--seed", "41", "--active-share", "0.7"]
    s = Sim(*fleet, "--write-lists", str(lists))
    truth = Sim(*fleet, "--epoch", NOW, now=str(int(NOW) + day))
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "d.plan"
        actions = plan_of(fa, first, plan, "--class", "stuck_queued,stale_in_progress", "--action", "delete",
                          "--force")
        advance(s.url, day)
        out = tmp_path / "actions"
        r = subprocess.run([fa, "apply", str(plan), "--out", str(out), "--yes", "--endpoint-url", s.url,
                            "--as-of", str(int(NOW) + day)], env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        got = dict(duckdb.connect().execute(
            f"SELECT action_n, outcome FROM read_parquet('{out}/*.parquet')").fetchall())
        iot = client(truth.url)
        moved = 0
        for a in actions:
            now = iot.describe_job_execution(jobId=a["job_id"], thingName=a["thing_name"])["execution"]
            unchanged = now["versionNumber"] == a["expected_version"]
            moved += not unchanged
            assert got[a["n"]] == ("applied" if unchanged else "version_conflict"), a
        assert 0 < moved < len(actions)
        assert stats(s.url)["changed"] == len(actions) - moved
    finally:
        s.stop()
        truth.stop()


def test_refused_credentials_stop_the_apply_at_once(fa, aws_env, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "600", "--jobs", "2", "--seed", "43", "--write-lists", str(lists))
    try:
        first = tmp_path / "first"
        audit(fa, aws_env, tmp_path, s, lists, first)
        plan = tmp_path / "p.plan"
        n = len(plan_of(fa, first, plan, "--class", "stuck_queued"))
        assert n > 10
        denied = dict(aws_env, AWS_ACCESS_KEY_ID="AKIDDENIED")
        r = subprocess.run([fa, "apply", str(plan), "--out", str(tmp_path / "acts"), "--yes", "--endpoint-url", s.url,
                            "--as-of", NOW], env=denied, capture_output=True, text=True)
        assert r.returncode == 1 and "AccessDeniedException" in r.stderr, r.stderr
        assert stats(s.url)["operations"]["CancelJobExecution"] <= 4, "no more than the calls in flight"
        # Another plan cannot take over the output while the first's journal names calls.
        other = tmp_path / "other.plan"
        plan_of(fa, first, other, "--class", "stuck_queued", "--jobs", "job-000")
        r = subprocess.run([fa, "apply", str(other), "--out", str(tmp_path / "acts"), "--yes", "--resume",
                            "--endpoint-url", s.url, "--as-of", NOW], env=aws_env, capture_output=True, text=True)
        assert r.returncode == 2 and "another plan" in r.stderr, r.stderr
    finally:
        s.stop()
