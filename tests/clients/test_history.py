"""`report CURRENT --baseline PREVIOUS` checked against an independent computation: the change counts
and the transition matrix recomputed with DuckDB SQL over the two datasets of a simulated fleet a day
apart (the second audited incrementally, `run --discover --baseline`)."""
import json
import subprocess
import time
import urllib.request

import duckdb
import pytest

from conftest import Sim, as_if_yesterday

DAY = 86_400
QUEUED_AFTER_MS = 24 * 3_600_000
STALE_AFTER_MS = 3_600_000


@pytest.fixture(scope="module")
def two_days(fa, aws_env, tmp_path_factory):
    d = tmp_path_factory.mktemp("history")
    now = int(time.time())
    fleet = ["--things", "3000", "--jobs", "4", "--seed", "21", "--active-share", "0.3",
             "--changed-share", "0.1", "--write-lists", str(d)]
    outs = []
    for i, extra in enumerate([[], ["--epoch", str(now - DAY)]]):
        s = Sim(*fleet, *extra, now=str(now - DAY + i * DAY))
        try:
            out = d / f"day{i}"
            baseline = ["--baseline", str(outs[0])] if outs else []
            r = subprocess.run(
                [fa, "run", "--discover", "--jobs", str(d / "jobs.txt"), "--out", str(out),
                 "--endpoint-url", s.url, "--rps", "0", "--list-rps", "0", "--quiet",
                 "--summary-json", str(d / f"summary{i}.json"), *baseline],
                env=aws_env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            outs.append(out)
        finally:
            s.stop()
    summary = json.loads((d / "summary1.json").read_text())
    assert summary["carried"] > 0 and summary["baseline"] == str(outs[0])
    return outs


def glob(p):
    return str(p / "**" / "*.parquet")


# docs/report.md's rules: a QUEUED execution of a job not running is waiting, not stuck; an
# IN_PROGRESS one is stale after --stale-after, or its job's in-progress timeout when shorter.
STUCK = """((status = 'QUEUED' AND coalesce(job_status, 'IN_PROGRESS') = 'IN_PROGRESS'
             AND epoch_ms(fetched_at) - epoch_ms(queued_at) > {q})
            OR (status = 'IN_PROGRESS' AND epoch_ms(fetched_at) - epoch_ms(last_updated_at)
                >= least({s}, coalesce(job_in_progress_timeout_minutes * 60000, {s}))))""".format(
    q=QUEUED_AFTER_MS, s=STALE_AFTER_MS)

JOINED = f"""
WITH b AS (SELECT thing_name, job_id, status, {STUCK} AS stuck FROM read_parquet('{{base}}')),
     c AS (SELECT thing_name, job_id, status, {STUCK} AS stuck FROM read_parquet('{{cur}}'))
"""


def changes_sql(base, cur):
    return JOINED.format(base=base, cur=cur) + """
SELECT c.job_id,
       count(*) FILTER (WHERE c.stuck AND (b.stuck IS NULL OR NOT b.stuck)) AS new_stuck,
       count(*) FILTER (WHERE b.stuck AND NOT c.stuck AND c.status IN ('SUCCEEDED', 'QUEUED', 'IN_PROGRESS')) AS recovered,
       count(*) FILTER (WHERE b.stuck AND NOT c.stuck AND c.status = 'TIMED_OUT') AS ended_timed_out,
       count(*) FILTER (WHERE b.stuck AND NOT c.stuck AND c.status IN ('FAILED', 'REJECTED')) AS ended_failed,
       count(*) FILTER (WHERE b.stuck AND NOT c.stuck AND c.status IN ('CANCELED', 'REMOVED')) AS ended_canceled,
       count(*) FILTER (WHERE b.stuck AND NOT c.stuck AND (c.status IS NULL OR c.status NOT IN
                        ('SUCCEEDED', 'QUEUED', 'IN_PROGRESS', 'TIMED_OUT', 'FAILED', 'REJECTED', 'CANCELED', 'REMOVED'))) AS ended_other,
       count(*) FILTER (WHERE b.stuck AND c.stuck) AS still_stuck,
       count(*) FILTER (WHERE c.status = 'TIMED_OUT' AND b.status IS DISTINCT FROM 'TIMED_OUT') AS new_timed_out,
       count(*) FILTER (WHERE c.status = 'FAILED' AND b.status IS DISTINCT FROM 'FAILED') AS new_failed
FROM c LEFT JOIN b USING (thing_name, job_id)
GROUP BY c.job_id ORDER BY c.job_id
"""


def transitions_sql(base, cur):
    return JOINED.format(base=base, cur=cur) + """
SELECT b.status AS "from", c.status AS "to", count(*) AS count
FROM b FULL OUTER JOIN c USING (thing_name, job_id)
GROUP BY ALL
"""


def test_report_changes_match_duckdb(fa, two_days):
    base, cur = two_days
    r = subprocess.run([fa, "report", str(cur), "--baseline", str(base), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    changes = json.loads(r.stdout)["changes"]
    assert changes["baseline"] == str(base)
    con = duckdb.connect()
    keys = ["new_stuck", "recovered", "ended_timed_out", "ended_failed", "ended_canceled", "ended_other", "still_stuck", "new_timed_out", "new_failed"]
    rows = con.execute(changes_sql(glob(base), glob(cur))).fetchall()
    want_jobs = [dict(zip(["job_id", *keys], row)) for row in rows]
    got_jobs = [{k: j[k] for k in ["job_id", *keys]} for j in changes["jobs"]]
    assert got_jobs == want_jobs
    totals = {k: sum(j[k] for j in want_jobs) for k in keys}
    assert changes["totals"] == totals
    # A fleet a day later has moved: every kind of change happens.
    assert all(totals[k] > 0 for k in ["new_stuck", "still_stuck", "new_timed_out", "new_failed"]), totals
    # A stuck execution that timed out is no recovery: it is counted apart (issue 23, item 1).
    assert totals["ended_timed_out"] > 0, totals

    want_tr = {(f, t): n for f, t, n in con.execute(transitions_sql(glob(base), glob(cur))).fetchall()}
    got_tr = {(t["from"], t["to"]): t["count"] for t in changes["transitions"]}
    assert got_tr == want_tr
    assert any(f == "QUEUED" and t == "IN_PROGRESS" for f, t in got_tr)
    assert any(f is None for f, _ in got_tr), "new executions appear as (null -> status)"


def test_the_plan_names_the_baseline_and_a_bad_one_is_exit_2(fa, aws_env, two_days, tmp_path):
    base, _ = two_days
    s = Sim("--things", "3000", "--jobs", "4", "--seed", "21", "--write-lists", str(tmp_path))
    try:
        run = [fa, "run", "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(tmp_path / "o"),
               "--endpoint-url", s.url, "--rps", "0", "--list-rps", "0"]
        r = subprocess.run([*run, "--baseline", str(base), "--dry-run"], env=aws_env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"baseline: {base} (" in r.stderr and "of the describes saved" in r.stderr, r.stderr
        r = subprocess.run([*run, "--baseline", str(tmp_path / "nowhere")], env=aws_env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert f"baseline {tmp_path / 'nowhere'}: cannot be read" in r.stderr
        with urllib.request.urlopen(f"{s.url}/_sim/stats") as resp:
            stats = json.load(resp)
        assert stats["operations"]["DescribeJobExecution"] == 0
        assert stats["operations"]["ListJobExecutionsForJob"] == 0
    finally:
        s.stop()


def test_change_metrics_equal_the_report(fa, two_days, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    base, cur = two_days
    prom = tmp_path / "fleet_audit.prom"
    r = subprocess.run([fa, "report", str(cur), "--baseline", str(base), "--json", "--metrics", str(prom)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    changes = json.loads(r.stdout)["changes"]
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    got = {(s.labels["job_id"], s.labels["change"]): s.value for s in families["fleet_audit_changes"].samples}
    want = {(j["job_id"], k): float(j[k]) for j in changes["jobs"]
            for k in ["new_stuck", "recovered", "ended_timed_out", "ended_failed", "ended_canceled", "ended_other", "still_stuck", "new_timed_out", "new_failed"]}
    assert got == want
    assert families["fleet_audit_changes"].type == "gauge"


def test_fail_on_new_conditions_and_the_html_section(fa, two_days, tmp_path):
    base, cur = two_days
    page = tmp_path / "r.html"
    r = subprocess.run([fa, "report", str(cur), "--baseline", str(base), "--fail-on", "new-stuck",
                        "--html", str(page)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "--fail-on matched: new-stuck" in r.stderr
    assert "since the previous audit" in r.stdout
    assert "<h2>Since the previous audit</h2>" in page.read_text()
    # The same dataset as its own baseline: nothing is new.
    r = subprocess.run([fa, "report", str(cur), "--baseline", str(cur), "--fail-on",
                        "new-stuck,new-timed-out,new-failed"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # Without a baseline the new-* conditions cannot be decided: bad input.
    r = subprocess.run([fa, "report", str(cur), "--fail-on", "new-stuck"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "give --baseline" in r.stderr


def test_the_daily_command_pair_and_the_trend(fa, aws_env, tmp_path):
    """README's daily command on a fleet a day apart (the first day without an audit to compare
    with), then `report --trend`."""
    now = int(time.time())
    fleet = ["--things", "2000", "--jobs", "3", "--seed", "22", "--active-share", "0.3",
             "--changed-share", "0.1", "--write-lists", str(tmp_path)]
    out = tmp_path / "audit"
    runs = []
    for i, extra in enumerate([[], ["--epoch", str(now - DAY)]]):
        s = Sim(*fleet, *extra, now=str(now - DAY + i * DAY))
        try:
            daily = ["--baseline", "latest", "--report"]
            r = subprocess.run(
                [fa, "run", "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out),
                 "--partition-by", "date", "--resume", "--endpoint-url", s.url, "--rps", "0",
                 "--list-rps", "0", "--quiet", *daily],
                env=aws_env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            runs.append(r)
        finally:
            s.stop()
        if i == 0:
            yesterday, today = as_if_yesterday(out)
    assert f"since the previous audit ({out}/date={yesterday})" in runs[1].stdout

    page = tmp_path / "trend.html"
    r = subprocess.run([fa, "report", str(out), "--trend", "--json", "--html", str(page)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    trend = doc["trend"]
    assert [p["date"] for p in trend] == [yesterday, today]
    con = duckdb.connect()
    per_date = dict(con.execute(
        f"SELECT CAST(date AS VARCHAR), count(*) FROM read_parquet('{glob(out)}', hive_partitioning = true)"
        " GROUP BY ALL").fetchall())
    assert {p["date"]: p["total"] for p in trend} == per_date
    timed_out = dict(con.execute(
        f"SELECT CAST(date AS VARCHAR), count(*) FILTER (WHERE status = 'TIMED_OUT')"
        f" FROM read_parquet('{glob(out)}', hive_partitioning = true) GROUP BY ALL").fetchall())
    assert {p["date"]: p["timed_out"] for p in trend} == timed_out
    # The report itself is of the latest audit.
    assert doc["totals"]["total"] == per_date[today]
    assert "<h2>Trend</h2>" in page.read_text() and "<polyline" in page.read_text()
