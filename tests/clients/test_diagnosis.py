"""The diagnosis (issue 25) against the simulator, checked with clients nobody here wrote: boto3 reads
the simulator's fleet (its jobs, things, connectivity and every thing's queue) and the causes are
computed from those reads by the rules of docs/diagnosis.md; DuckDB computes them from the dataset's
columns. Both must equal what `fleet-audit report --json` says."""
import json
import subprocess
from collections import Counter

import boto3
import duckdb
import pytest
from botocore.config import Config

from conftest import NOW, Sim

DAY_MS = 24 * 3600 * 1000
FLEET = ["--things", "600", "--jobs", "8", "--seed", "11", "--active-share", "0.4"]


def client(url):
    return boto3.client("iot", endpoint_url=url, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}))


def audit(fa, sim, tmp_path, env, *flags):
    lists = tmp_path / "lists"
    lists.mkdir(exist_ok=True)
    (lists / "things.txt").write_text("".join(f"thing-{i:06}\n" for i in range(600)))
    (lists / "jobs.txt").write_text("".join(f"job-{j:03}\n" for j in range(8)))
    out = tmp_path / "audit.parquet"
    r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                        "--out", str(out), "--endpoint-url", sim.url, "--region", "us-east-1", "--rps", "0",
                        "--as-of", NOW, "--quiet", *flags], env=env, capture_output=True, text=True)
    return r, out


@pytest.fixture(scope="module")
def fleet_sim(aws_env):
    s = Sim(*FLEET)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def audited(fa, fleet_sim, tmp_path_factory, aws_env):
    tmp = tmp_path_factory.mktemp("diagnosis")
    r, out = audit(fa, fleet_sim, tmp, aws_env)
    assert r.returncode == 0, r.stderr
    report = subprocess.run([fa, "report", str(out), "--json"], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    return out, json.loads(report.stdout), r.stderr


def indexed(c, names):
    """The fleet index's documents of `names` (SearchIndex, 100 a call): a thing not indexed yet has
    none, and its connectivity is unknown."""
    docs = {}
    for k in range(0, len(names), 100):
        q = " OR ".join(f"thingName:{n}" for n in names[k:k + 100])
        docs.update({d["thingName"]: d for d in c.search_index(queryString=q, maxResults=100)["things"]})
    return docs


def sim_truth(url, fetched_ms):
    """Every execution's class and cause as boto3 reads the simulator: its jobs (DescribeJob), each
    thing's executions (ListJobExecutionsForThing) and connectivity (the fleet index: SearchIndex)."""
    c = client(url)
    jobs, timeouts = {}, {}
    for page in c.get_paginator("list_jobs").paginate():
        for j in page["jobs"]:
            d = c.describe_job(jobId=j["jobId"])["job"]
            jobs[j["jobId"]] = d["status"]
            timeouts[j["jobId"]] = d.get("timeoutConfig", {}).get("inProgressTimeoutInMinutes")
    things = [t["thingName"] for p in c.get_paginator("list_things").paginate() for t in p["things"]]
    docs = indexed(c, things)
    causes = Counter()
    for t in things:
        execs = [e for p in c.get_paginator("list_job_executions_for_thing").paginate(thingName=t)
                 for e in p["executionSummaries"]]
        connected = docs[t]["connectivity"]["connected"] if t in docs else None
        running = {e["jobId"] for e in execs if e["jobExecutionSummary"]["status"] == "IN_PROGRESS"}
        for e in execs:
            s = e["jobExecutionSummary"]
            job = e["jobId"]
            if s["status"] == "QUEUED" and jobs[job] == "IN_PROGRESS":
                age = fetched_ms - int(s["queuedAt"].timestamp() * 1000)
                if age > DAY_MS:
                    if connected is False:
                        cause = "device_offline"
                    elif running - {job}:
                        cause = "blocked"
                    elif connected:
                        cause = "not_picked_up"
                    else:
                        cause = "unknown"
                    causes[("stuck_queued", cause)] += 1
            if s["status"] == "IN_PROGRESS":
                age = fetched_ms - int(s["lastUpdatedAt"].timestamp() * 1000)
                # An hour, or the job's in-progress timeout when shorter.
                if age >= min(3600 * 1000, (timeouts[job] or 60) * 60 * 1000):
                    cause = {False: "device_offline", True: "no_progress", None: "unknown"}[connected]
                    causes[("stale_in_progress", cause)] += 1
    return causes


def report_causes(doc_counts):
    return Counter({(cls, cause): n for cls, by in doc_counts["causes"].items() for cause, n in by.items()})


def test_every_stuck_execution_has_the_cause_the_simulator_made(audited, fleet_sim):
    out, doc, _ = audited
    fetched = duckdb.sql(f"select max(epoch_ms(fetched_at)) from read_parquet('{out}')").fetchone()[0]
    truth = sim_truth(fleet_sim.url, fetched)
    got = report_causes(doc["totals"])
    assert got == truth
    # The simulated fleet has every cause (`unknown`: the things not indexed yet).
    assert {cause for _, cause in got} == {"device_offline", "blocked", "not_picked_up", "no_progress",
                                           "unknown"}, got
    for cause in ["device_offline", "blocked", "not_picked_up"]:
        assert got[("stuck_queued", cause)] > 0, got
    # Exactly one cause each: the causes add up to the stuck classes.
    for cls in ["stuck_queued", "stale_in_progress"]:
        assert sum(n for (c, _), n in got.items() if c == cls) == doc["totals"][cls]
    # A QUEUED execution of a job not running is waiting, not stuck.
    assert doc["totals"]["waiting"] > 0


CAUSES_SQL = """
select job_id, cls, cause, count(*) n from (
  select job_id,
    case when status = 'QUEUED' then 'stuck_queued' else 'stale_in_progress' end cls,
    case
      when connected = false then 'device_offline'
      when status = 'QUEUED' and blocked_by is not null then 'blocked'
      when status = 'QUEUED' and connected and queue_read then 'not_picked_up'
      when status = 'IN_PROGRESS' and connected then 'no_progress'
      else 'unknown' end cause
  from read_parquet('{path}')
  where (status = 'QUEUED' and coalesce(job_status, 'IN_PROGRESS') = 'IN_PROGRESS'
         and fetched_at - queued_at > interval {hours} hours)
     or (status = 'IN_PROGRESS' and fetched_at - last_updated_at >= least(interval 1 hour,
         coalesce(to_minutes(job_in_progress_timeout_minutes), interval 1 hour)))
) group by all
"""


@pytest.mark.parametrize("hours", [24, 1])
def test_duckdb_over_the_columns_gives_the_report_causes(audited, fa, hours):
    """At the run's --queued-after (24h) and at a shorter one, where the rows stuck between the two
    had no queue read: not `not_picked_up` (nothing said there is nothing ahead) but `unknown`."""
    out, doc, _ = audited
    if hours != 24:
        doc = json.loads(subprocess.run([fa, "report", str(out), "--json", "--queued-after", f"{hours}h"],
                                        capture_output=True, text=True, check=True).stdout)
        assert report_causes(doc["totals"])[("stuck_queued", "unknown")] > 0
    rows = duckdb.sql(CAUSES_SQL.format(path=out, hours=hours)).fetchall()
    by_job = {}
    for job, cls, cause, n in rows:
        by_job.setdefault(job, Counter())[(cls, cause)] = n
    for j in doc["jobs"]:
        assert report_causes(j) == by_job.get(j["job_id"], Counter()), j["job_id"]
    total = sum(by_job.values(), Counter())
    assert report_causes(doc["totals"]) == total
    # Blocked ones name the job holding them up, and the report counts them by that job.
    held = Counter(dict(duckdb.sql(f"""select blocked_by, count(*) from read_parquet('{out}')
        where status = 'QUEUED' and coalesce(connected, true) and blocked_by is not null
          and coalesce(job_status, 'IN_PROGRESS') = 'IN_PROGRESS'
          and fetched_at - queued_at > interval {hours} hours group by 1""").fetchall()))
    assert {h["job_id"]: h["holds_up"] for h in doc["held_up"]} == held


def test_context_columns_equal_what_boto3_reads(audited, fleet_sim):
    out, _, _ = audited
    c = client(fleet_sim.url)
    con = duckdb.connect()
    sample = con.sql(f"""select distinct thing_name, thing_type, map_entries(thing_attributes) a, thing_groups,
        connected, epoch_ms(connectivity_at), disconnect_reason from read_parquet('{out}')
        order by thing_name""").fetchall()
    docs = indexed(c, [s[0] for s in sample])
    assert 0 < len(docs) < len(sample), "the sample has things indexed and one not yet"
    for name, ttype, attrs, groups, connected, at, reason in sample:
        if name not in docs:
            assert (ttype, attrs, groups, connected, at, reason) == (None, None, None, None, None, None)
            continue
        d = docs[name]
        assert ttype == d.get("thingTypeName"), name
        assert {a["key"]: a["value"] for a in attrs} == d["attributes"], name
        assert sorted(groups) == sorted(g["groupName"] for g in
                                        c.list_thing_groups_for_thing(thingName=name)["thingGroups"]), name
        conn = c.get_thing_connectivity_data(thingName=name)
        assert connected == conn["connected"], name
        assert at == round(conn["timestamp"].timestamp() * 1000), name
        assert reason == conn.get("disconnectReason"), name
    for job, status, timeout in con.sql(f"""select distinct job_id, job_status, job_in_progress_timeout_minutes
            from read_parquet('{out}')""").fetchall():
        j = c.describe_job(jobId=job)["job"]
        assert status == j["status"], job
        assert timeout == j.get("timeoutConfig", {}).get("inProgressTimeoutInMinutes"), job


def test_the_extra_calls_are_one_per_job_and_one_per_hundred_things(audited, fleet_sim, fa, tmp_path, aws_env):
    # A fresh simulator, so that its counts are this run's.
    s = Sim(*FLEET)
    try:
        r, _ = audit(fa, s, tmp_path, aws_env)
        assert r.returncode == 0, r.stderr
        ops = json.loads(subprocess.run(["curl", "-fsS", f"{s.url}/_sim/stats"], capture_output=True,
                                        text=True).stdout)["operations"]
    finally:
        s.stop()
    assert ops["DescribeJob"] == 8
    # 600 things, 100 a call; a batch also goes after 2 s of waiting, so a slow machine makes a few
    # more, never one a thing.
    assert 6 <= ops["SearchIndex"] <= 12, ops
    assert ops["GetThingConnectivityData"] == 0 and ops["ListThingGroupsForThing"] == 0
    assert ops["ListThings"] == ops["ListThingGroups"] == ops["ListThingsInThingGroup"] == 0, ops


@pytest.mark.parametrize("indexing,warning", [
    ("off", "fleet indexing does not answer"),
    ("registry", "fleet indexing has no connectivity"),
])
def test_without_connectivity_causes_that_need_it_are_unknown_said_once(fa, tmp_path, aws_env, indexing, warning):
    s = Sim(*FLEET, "--fleet-indexing", indexing)
    try:
        r, out = audit(fa, s, tmp_path, aws_env)
        ops = json.loads(subprocess.run(["curl", "-fsS", f"{s.url}/_sim/stats"], capture_output=True,
                                        text=True).stdout)["operations"]
        c = client(s.url)
        registry = {t["thingName"]: t for p in c.get_paginator("list_things").paginate(maxResults=250)
                    for t in p["things"]}
        groups = {n: sorted(g["groupName"] for g in c.list_thing_groups_for_thing(thingName=n)["thingGroups"])
                  for n in registry}
        members = {g["groupName"]: sum(len(p["things"]) for p in c.get_paginator("list_things_in_thing_group")
                                       .paginate(thingGroupName=g["groupName"]))
                   for g in c.list_thing_groups()["thingGroups"]}
    finally:
        s.stop()
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning") == 1 and warning in r.stderr, r.stderr
    doc = json.loads(subprocess.run([fa, "report", str(out), "--json"], capture_output=True, text=True).stdout)
    got = report_causes(doc["totals"])
    assert got[("stuck_queued", "unknown")] > 0 and got[("stale_in_progress", "unknown")] > 0, got
    # Only what needs no connectivity is still told apart: a queue held up by another job.
    assert set(cause for _, cause in got) <= {"unknown", "blocked"}, got
    rows = duckdb.sql(f"""select distinct thing_name, thing_type, map_entries(thing_attributes), thing_groups,
        connected from read_parquet('{out}')""").fetchall()
    assert len(rows) == 600 and all(connected is None for *_, connected in rows)
    assert sum(ttype is not None for _, ttype, *_ in rows) > 0
    if indexing == "off":
        # Without an index, what the things are comes from the registry's listings, every thing's
        # as boto3 reads it, in a call per 250 things and per group's 250 members.
        for name, ttype, attrs, in_groups, _ in rows:
            t = registry[name]
            assert ttype == t.get("thingTypeName"), name
            assert {a["key"]: a["value"] for a in attrs} == t["attributes"], name
            assert sorted(in_groups) == groups[name], name
        assert ops["ListThings"] == -(-len(registry) // 250), ops
        assert ops["ListThingGroups"] == 1, ops
        assert ops["ListThingsInThingGroup"] == sum(-(-n // 250) or 1 for n in members.values()), (ops, members)
        assert ops["SearchIndex"] == 1, "asked once, then no more"
    else:
        assert ops["ListThings"] == ops["ListThingGroups"] == ops["ListThingsInThingGroup"] == 0, ops


@pytest.mark.parametrize("key,sql", [
    ("thing_type", "coalesce(thing_type, '(none)')"),
    ("thing_group", "coalesce(unnest(coalesce(thing_groups, ['(none)'])), '(none)')"),
    ("attribute:firmware", "coalesce(thing_attributes['firmware'], '(none)')"),
    ("connected", "case when connected then 'true' when not connected then 'false' else 'unknown' end"),
    ("job_id", "job_id"),
])
def test_group_by_counts_each_group_as_duckdb_does(audited, fa, key, sql):
    out, _, _ = audited
    doc = json.loads(subprocess.run([fa, "report", str(out), "--json", "--group-by", key],
                                    capture_output=True, text=True, check=True).stdout)
    groups = doc["groups"]
    assert {g["key"] for g in groups} == {key}
    want = dict(duckdb.sql(f"select v, count(*) from (select {sql} v from read_parquet('{out}')) group by v").fetchall())
    assert {g["value"]: g["total"] for g in groups} == want
    failed = dict(duckdb.sql(f"""select v, count(*) filter (where status = 'FAILED') from
        (select {sql} v, status from read_parquet('{out}')) group by v""").fetchall())
    assert {g["value"]: g["by_status"].get("FAILED", 0) for g in groups} == failed
    shares = [(g["classes"]["stuck_queued"] + g["classes"]["stale_in_progress"]) / g["total"] for g in groups]
    assert shares == sorted(shares, reverse=True), "largest stuck share first"


def test_a_bad_model_and_firmware_stands_out(audited, fa):
    """The simulated M200 on firmware 1.2.0 fails half its updates: grouping by firmware on the M200s
    shows it, as an engineer would find it."""
    out, _, _ = audited
    rows = duckdb.sql(f"""select thing_attributes['firmware'] fw,
        avg(case when status = 'FAILED' then 1 else 0 end) failed
        from read_parquet('{out}') where thing_attributes['model'] = 'M200'
        and status in ('SUCCEEDED', 'FAILED') group by 1 order by 2 desc""").fetchall()
    assert rows[0][0] == "1.2.0" and rows[0][1] > 0.3 and rows[-1][1] < 0.2, rows


def test_the_html_report_shows_each_cause_and_the_groups(audited, fa, tmp_path):
    out, doc, _ = audited
    page = tmp_path / "r.html"
    r = subprocess.run([fa, "report", str(out), "--html", str(page), "--group-by", "thing_type"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert "Why they are stuck" in html and "By thing_type" in html
    for w in doc["why"]:
        assert f"<strong>{w['cause']}</strong>" in html
        for ex in w["oldest"]:
            assert ex["thing_name"] in html
    for h in doc["held_up"]:
        assert h["job_id"] in html


def test_plan_selects_by_cause(audited, fa, tmp_path):
    """`plan --cause`: the cancellations of exactly the report's not_picked_up executions, each action
    saying its cause; a class without causes is refused."""
    out, doc, _ = audited
    plan = tmp_path / "cancel.plan"
    r = subprocess.run([fa, "plan", str(out), "--out", str(plan), "--class", "stuck_queued",
                        "--cause", "not_picked_up,blocked"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = plan.read_text().splitlines()
    header, actions = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["selectors"]["causes"] == ["not_picked_up", "blocked"]
    got = Counter(a["cause"] for a in actions)
    want = report_causes(doc["totals"])
    assert got == {"not_picked_up": want[("stuck_queued", "not_picked_up")],
                   "blocked": want[("stuck_queued", "blocked")]}
    assert all(a["class"] == "stuck_queued" and a["status"] == "QUEUED" for a in actions)
    bad = subprocess.run([fa, "plan", str(out), "--out", str(tmp_path / "p2"), "--class", "timed_out",
                          "--cause", "blocked", "--action", "delete"], capture_output=True, text=True)
    assert bad.returncode == 2 and "only stuck executions have a cause" in bad.stderr, bad.stderr
    assert not (tmp_path / "p2").exists()
