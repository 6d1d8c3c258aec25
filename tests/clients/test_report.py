"""`fleet-audit report --json` checked against an independent computation: the same classes recomputed
with DuckDB SQL over the Parquet file that `fleet-audit demo` wrote."""
import datetime
import json
import subprocess

import duckdb
import pytest

THINGS = "3000"
JOBS = "4"


@pytest.fixture(scope="module")
def demo_dataset(fa, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-demo")
    # A share of executions report a status AWS does not send today; the report must keep it as spelled.
    r = subprocess.run(
        [fa, "demo", "--things", THINGS, "--jobs", JOBS, "--future-status", "0.03", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    path = out / "executions.parquet"
    assert path.exists()
    return path


def report(fa, path, *flags):
    r = subprocess.run([fa, "report", str(path), "--json", *flags], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ms(d: str) -> int:
    """Milliseconds of `24h`, `90m`, `5m`, `30s`."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    for u in ("ms", "s", "m", "h", "d"):
        if d.endswith(u) and d[: -len(u)].isdigit():
            return int(d[: -len(u)]) * units[u]
    raise ValueError(d)


# The classes by docs/report.md's rules: a QUEUED execution of a job not running is waiting, not
# stuck; an IN_PROGRESS one is stale after --stale-after or its job's timeout when shorter; only an
# IN_PROGRESS one can be near its timeout.
RUNNING = "coalesce(job_status, 'IN_PROGRESS') = 'IN_PROGRESS'"
STALE = "least($stale, coalesce(job_in_progress_timeout_minutes * 60000, $stale))"
CLASSES_SQL = f"""
SELECT job_id,
       count(*) AS total,
       count(*) FILTER (WHERE status IS NULL) AS no_status,
       count(*) FILTER (WHERE status = 'QUEUED' AND {RUNNING}
                          AND epoch_ms(fetched_at) - epoch_ms(queued_at) > $queued) AS stuck_queued,
       count(*) FILTER (WHERE status = 'IN_PROGRESS'
                          AND epoch_ms(fetched_at) - epoch_ms(last_updated_at) >= {STALE}) AS stale_in_progress,
       count(*) FILTER (WHERE status = 'TIMED_OUT') AS timed_out,
       count(*) FILTER (WHERE status = 'IN_PROGRESS'
                          AND approximate_seconds_before_timed_out * 1000 < $near) AS near_timeout,
       count(*) FILTER (WHERE status = 'QUEUED' AND NOT {RUNNING}) AS waiting,
       count(*) FILTER (WHERE status IN ('QUEUED', 'IN_PROGRESS') AND job_status IS NOT NULL
                          AND job_in_progress_timeout_minutes IS NULL) AS no_timeout,
       count(*) FILTER (WHERE outcome = 'not_found') AS not_found,
       count(*) FILTER (WHERE outcome = 'error') AS errors
FROM read_parquet($path)
GROUP BY job_id
ORDER BY job_id
"""

STATUS_SQL = """
SELECT job_id, status, count(*) FROM read_parquet($path) WHERE status IS NOT NULL GROUP BY ALL
"""

# Every stuck or timed-out row with its class, since when, and age; ranked as the report ranks them.
OLDEST_SQL = f"""
WITH aged AS (
  SELECT thing_name, job_id, status,
         CASE WHEN status = 'QUEUED' THEN 'stuck_queued'
              WHEN status = 'IN_PROGRESS' THEN 'stale_in_progress'
              ELSE 'timed_out' END AS class,
         CASE WHEN status = 'QUEUED' THEN epoch_ms(queued_at) ELSE epoch_ms(last_updated_at) END AS since_ms,
         epoch_ms(fetched_at) AS fetched_ms
  FROM read_parquet($path)
  WHERE (status = 'QUEUED' AND {RUNNING} AND epoch_ms(fetched_at) - epoch_ms(queued_at) > $queued)
     OR (status = 'IN_PROGRESS' AND epoch_ms(fetched_at) - epoch_ms(last_updated_at) >= {STALE})
     OR (status = 'TIMED_OUT' AND last_updated_at IS NOT NULL)
)
SELECT thing_name, job_id, class, status, since_ms, (fetched_ms - since_ms) // 1000 AS age_s
FROM aged
ORDER BY fetched_ms - since_ms DESC, thing_name, job_id
"""


@pytest.mark.parametrize(
    "queued,stale,near",
    [("24h", "1h", "5m"), ("90m", "30m", "10m"), ("3d", "6h", "30s")],
)
def test_report_counts_equal_duckdb(fa, demo_dataset, queued, stale, near):
    flags = ["--queued-after", queued, "--stale-after", stale, "--near-timeout", near, "--top", "10"]
    doc = report(fa, demo_dataset, *flags)
    params = {"path": str(demo_dataset), "queued": ms(queued), "stale": ms(stale), "near": ms(near)}
    con = duckdb.connect()

    assert doc["thresholds"] == {
        "queued_after_s": ms(queued) // 1000,
        "stale_after_s": ms(stale) // 1000,
        "near_timeout_s": ms(near) // 1000,
        "top": 10,
    }
    cur = con.execute(CLASSES_SQL, params)
    cols = [d[0] for d in cur.description]
    expected = [dict(zip(cols, row)) for row in cur.fetchall()]
    assert [j["job_id"] for j in doc["jobs"]] == [e["job_id"] for e in expected]
    assert len(expected) == int(JOBS)
    for job, exp in zip(doc["jobs"], expected):
        for k, v in exp.items():
            assert job[k] == v, (job["job_id"], k)

    by_status = {}
    for job_id, status, n in con.execute(STATUS_SQL, {"path": str(demo_dataset)}).fetchall():
        by_status.setdefault(job_id, {})[status] = n
    all_statuses = {s for counts in by_status.values() for s in counts}
    assert "PAUSED" in all_statuses, "the demo was asked for an unknown status value"
    for job in doc["jobs"]:
        assert set(job["by_status"]) == all_statuses
        nonzero = {s: n for s, n in job["by_status"].items() if n}
        assert nonzero == by_status[job["job_id"]], job["job_id"]

    # Totals are the sums over jobs.
    totals = doc["totals"]
    assert totals["jobs"] == int(JOBS)
    for k in cols[1:]:
        assert totals[k] == sum(e[k] for e in expected), k
    for s in all_statuses:
        assert totals["by_status"][s] == sum(c.get(s, 0) for c in by_status.values()), s
    assert totals["total"] == int(THINGS) * int(JOBS)

    # The oldest pairs: same rows, same order, same ages, over all jobs and per job.
    ranked = con.execute(OLDEST_SQL, {k: v for k, v in params.items() if k != "near"}).fetchall()
    assert len(ranked) == totals["stuck_queued"] + totals["stale_in_progress"] + totals["timed_out"]

    def as_doc(rows):
        return [
            {"thing_name": t, "job_id": j, "class": c, "status": s, "since_ms": since, "age_s": age}
            for t, j, c, s, since, age in rows
        ]

    def parsed(entries):
        out = []
        for e in entries:
            since = datetime.datetime.fromisoformat(e["since"].replace("Z", "+00:00"))
            assert e["since"].endswith("Z")
            out.append({**{k: v for k, v in e.items() if k != "since"},
                        "since_ms": round(since.timestamp() * 1000)})
        return out

    assert parsed(totals["oldest"]) == as_doc(ranked[:10])
    for job in doc["jobs"]:
        mine = [r for r in ranked if r[1] == job["job_id"]][:10]
        assert parsed(job["oldest"]) == as_doc(mine), job["job_id"]


def test_report_fail_on_follows_the_counts(fa, demo_dataset):
    # The expected codes come from the rows (DuckDB), not from the tool's own report.
    import duckdb
    rows = f"read_parquet('{demo_dataset}')"
    errors, timed_out = duckdb.sql(
        f"SELECT count(*) FILTER (outcome = 'error'), count(*) FILTER (status = 'TIMED_OUT') FROM {rows}"
    ).fetchall()[0]
    r = subprocess.run([fa, "report", str(demo_dataset), "--fail-on", "errors"], capture_output=True, text=True)
    assert r.returncode == (3 if errors else 0), (errors, r.stderr)
    assert timed_out > 0, "the demo fleet has timed-out executions"
    for fail_on in ["timed-out", "stuck,timed-out"]:
        r = subprocess.run([fa, "report", str(demo_dataset), "--fail-on", fail_on],
                           capture_output=True, text=True)
        assert r.returncode == 3, (fail_on, r.stderr)
    # The report's own count agrees with the rows.
    assert report(fa, demo_dataset)["totals"]["errors"] == errors


def test_snappy_parquet_as_pyarrow_writes_it_is_read(fa, demo_dataset, tmp_path):
    """Issue 22, item 13b: pyarrow (and Spark) write snappy-compressed Parquet by default; `report`
    and `report --baseline` read such a file exactly as the tool's own zstd one."""
    import pyarrow.parquet as pq

    snappy = tmp_path / "rewritten.parquet"
    pq.write_table(pq.read_table(demo_dataset), snappy)  # pyarrow's default codec
    codecs = {pq.ParquetFile(snappy).metadata.row_group(0).column(i).compression
              for i in range(pq.ParquetFile(snappy).metadata.num_columns)}
    assert codecs == {"SNAPPY"}, codecs
    ours, theirs = report(fa, demo_dataset), report(fa, snappy)
    assert theirs["totals"] == ours["totals"]
    assert theirs["jobs"] == ours["jobs"]
    since = report(fa, demo_dataset, "--baseline", str(snappy))
    assert since["changes"]["totals"]["new_stuck"] == 0
