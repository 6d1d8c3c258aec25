"""A `--table-format delta` output kept up as users keep it: compacted and vacuumed with deltalake
between daily audits (this tool's readers and the next day's `--baseline latest` follow the table, not
the manifest's parts, which are gone); `--resume --retry-errors` published as one more commit that
keeps the previous version whole; and the outputs a Delta run must refuse (exit 2, nothing touched):
another writer's table, a plain dated output, and a Delta output run without the flag."""
import collections
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from conftest import Sim

DAY = 86_400
FLEET = ["--things", "300", "--jobs", "3", "--seed", "31"]
PAIRS = 300 * 3
FAST = ["--rps", "0", "--list-rps", "0"]


# --- helpers (after test_delta.py's) ---------------------------------------------------------------

def utc_date(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def attempt(fa, env, *args, timeout=180):
    """One run to its end: (exit code, stderr, the summary it wrote or None)."""
    with tempfile.TemporaryDirectory() as d:
        summary = pathlib.Path(d) / "summary.json"
        r = subprocess.run([fa, "run", *args, "--quiet", "--summary-json", str(summary)], env=env,
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stderr, (json.loads(summary.read_text()) if summary.exists() else None)


def run(fa, env, *args, timeout=180):
    """One run to its end (exit 0); the summary (--summary-json) it wrote."""
    code, err, summary = attempt(fa, env, *args, timeout=timeout)
    assert code == 0, f"{args}: exit {code}\n{err}"
    return summary


def report(fa, *args):
    r = subprocess.run([fa, "report", *args, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"report {args}: exit {r.returncode}\n{r.stderr}"
    return json.loads(r.stdout)


def sim_stats(s: Sim) -> dict:
    with urllib.request.urlopen(f"{s.url}/_sim/stats") as resp:
        return json.load(resp)


def iot_calls(s: Sim) -> dict:
    """The IoT operations the simulator answered that were not zero."""
    return {op: n for op, n in sim_stats(s)["operations"].items() if n}


def table_rows(out: pathlib.Path, version=None):
    """Every row of the table's version (deltalake), as dicts, `date` as a string."""
    rows = DeltaTable(str(out), version=version).to_pyarrow_table().to_pylist()
    for r in rows:
        if "date" in r:
            r["date"] = str(r["date"])
    return rows


def per_date(rows) -> dict:
    return dict(collections.Counter(r["date"] for r in rows))


def live_files(out: pathlib.Path, version=None):
    """The files of the table's version, relative to it."""
    return sorted(os.path.relpath(u, out) for u in DeltaTable(str(out), version=version).file_uris())


def commits(history):
    """Delta history, oldest first: (version, operation, mode, fleetAuditRunId)."""
    return [(h["version"], h["operation"], h.get("operationParameters", {}).get("mode"), h.get("fleetAuditRunId"))
            for h in sorted(history, key=lambda h: h["version"])]


def listing(d: pathlib.Path) -> dict:
    """Every file and folder under `d`: relative path -> (kind, size, mtime_ns)."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = pathlib.Path(root) / name
            st = p.lstat()
            out[str(p.relative_to(d))] = ("dir" if p.is_dir() else "file", st.st_size, st.st_mtime_ns)
    return out


def error_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.startswith("fleet-audit: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def env(aws_env):
    return dict(aws_env, AWS_EC2_METADATA_DISABLED="true")


# --- 1. compaction and vacuum between daily audits -----------------------------------------------------

def test_compacted_and_vacuumed_table_is_read_through_and_extended(fa, env, tmp_path):
    """Two daily audits (the daily command, `--as-of` a day apart) into a dated Delta table, each in
    several parts; deltalake compacts the table and vacuums everything no version needs (the parts the
    manifest names are then gone). `report --trend`, `report` and the third day's `--baseline latest`
    read the table: the trend's totals are deltalake's per date, the report is the latest date's, and
    the third day carries rows from the second and is appended as one more commit."""
    t1 = int(time.time()) - 2 * DAY
    days = [t1, t1 + DAY, t1 + 2 * DAY]
    dates = [utc_date(t) for t in days]
    out = tmp_path / "audit"

    def daily(i):
        extra = [] if i == 0 else ["--epoch", str(t1)]
        s = Sim(*FLEET, *extra, "--write-lists", str(tmp_path), now=str(days[i]))
        try:
            return run(fa, env, "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out),
                       "--partition-by", "date", "--resume", "--baseline", "latest", "--table-format", "delta",
                       "--endpoint-url", s.url, "--as-of", str(days[i]), *FAST, "--part-rows", "100")
        finally:
            s.stop()

    first, second = daily(0), daily(1)
    assert first["complete"] and second["complete"]
    r1, r2 = first["run_id"], second["run_id"]
    assert second["carried"] > 0, second

    dt = DeltaTable(str(out))
    assert dt.version() == 1
    assert commits(dt.history()) == [(0, "WRITE", "Append", r1), (1, "WRITE", "Append", r2)]
    before = table_rows(out)
    counts = per_date(before)
    assert counts == {dates[0]: first["pairs"], dates[1]: second["pairs"]}
    parts_before = live_files(out)
    # Several parts a date, so that the compaction has something to merge.
    for d in dates[:2]:
        assert sum(f.startswith(f"date={d}/") for f in parts_before) > 1, parts_before

    # What a user does between audits.
    DeltaTable(str(out)).optimize.compact()
    DeltaTable(str(out)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
    compacted = DeltaTable(str(out))
    v_compacted = compacted.version()
    assert v_compacted > 1
    after_files = live_files(out)
    assert len([f for f in after_files if f.startswith(f"date={dates[0]}/")]) == 1, after_files
    assert len([f for f in after_files if f.startswith(f"date={dates[1]}/")]) == 1, after_files
    # The premise: every part the manifest names is gone from the disk.
    m = json.loads((out / "_manifest.json").read_text())
    manifest_parts = [p["file"] for a in [m, *m.get("earlier", [])] for p in a["parts"]]
    assert sorted(manifest_parts) == sorted(parts_before)
    assert not [f for f in manifest_parts if (out / f).exists()]
    rows = table_rows(out)
    assert per_date(rows) == counts
    # The second day's daily command again (a retried schedule): its audit is complete and
    # published, its parts compacted and vacuumed away: nothing to do, no commit (not "part missing").
    again = daily(1)
    assert again.get("already_complete") is True and again["complete"], again
    assert DeltaTable(str(out)).version() == v_compacted

    def by_date(rows, d):
        return [r for r in rows if r["date"] == d]

    # report --trend: one audit per date, the totals deltalake counts.
    doc = report(fa, str(out), "--trend")
    trend = doc["trend"]
    assert [p["date"] for p in trend] == dates[:2]
    assert [p["run_id"] for p in trend] == [r1, r2]
    assert all(p["complete"] for p in trend)
    assert {p["date"]: p["total"] for p in trend} == counts
    for p in trend:
        mine = by_date(rows, p["date"])
        assert p["timed_out"] == sum(r["status"] == "TIMED_OUT" for r in mine), p
        assert p["not_found"] == sum(r["outcome"] == "not_found" for r in mine), p
        assert p["errors"] == sum(r["outcome"] == "error" for r in mine), p

    # report: the latest date's audit, as deltalake reads it.
    latest = by_date(rows, dates[1])
    doc = report(fa, str(out))
    assert doc["complete"] is True
    assert doc["totals"]["total"] == len(latest)
    assert doc["totals"]["by_status"] == dict(collections.Counter(r["status"] for r in latest if r["status"]))
    assert doc["totals"]["no_status"] == sum(r["status"] is None for r in latest)
    assert {j["job_id"]: j["total"] for j in doc["jobs"]} == dict(collections.Counter(r["job_id"] for r in latest))

    # The third day's daily run: its baseline, the second day's audit, read through the compacted table.
    third = daily(2)
    assert third["complete"]
    r3 = third["run_id"]
    assert third["carried"] > 0, third
    assert third["baseline"] == f"{out}/date={dates[1]}", third

    dt = DeltaTable(str(out))
    assert dt.version() == v_compacted + 1
    history = commits(dt.history())
    assert history[-1] == (v_compacted + 1, "WRITE", "Append", r3)
    assert [h[3] for h in history if h[1] == "WRITE"] == [r1, r2, r3]
    rows = table_rows(out)
    assert per_date(rows) == {dates[0]: first["pairs"], dates[1]: second["pairs"], dates[2]: third["pairs"]}
    for d, run_id in zip(dates, [r1, r2, r3]):
        mine = by_date(rows, d)
        pairs = collections.Counter((r["thing_name"], r["job_id"]) for r in mine)
        assert max(pairs.values()) == 1, f"a pair twice on {d}"
        assert {r["run_id"] for r in mine} == {run_id}, d
    # The carried rows are the second day's rows of the same execution.
    day2 = {(r["thing_name"], r["job_id"]): r for r in by_date(rows, dates[1])}
    carried = [r for r in by_date(rows, dates[2]) if r["source"] == "carried"]
    assert len(carried) == third["carried"]
    for r in carried:
        assert r["carried_from"] == r2, r
        b = day2[(r["thing_name"], r["job_id"])]
        for col in ("status", "last_updated_at", "execution_number", "version_number", "queued_at", "started_at"):
            assert r[col] == b[col], (col, r, b)

    trend = report(fa, str(out), "--trend")["trend"]
    assert [p["date"] for p in trend] == dates
    assert {p["date"]: p["total"] for p in trend} == per_date(rows)


# --- 2. --retry-errors: one more commit ------------------------------------------------------------

def test_retry_errors_is_one_more_commit_and_keeps_the_previous_version(fa, env, tmp_path):
    """An audit of a 5xx storm with one attempt a pair (error rows, exit 4), then `--resume
    --retry-errors` against the same fleet, well: one more commit, whose version holds every pair
    once and no error row; the rows that were not errors are as they were; the previous version is
    still readable with its error rows, every file it names still on disk."""
    out = tmp_path / "audit"
    common = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out),
              "--partition-by", "date", "--table-format", "delta", "--rps", "0", "--max-attempts", "1",
              "--part-rows", "50"]
    s = Sim(*FLEET, "--fault-5xx", "0.03", "--write-lists", str(tmp_path))
    try:
        code, err, first = attempt(fa, env, *common, "--endpoint-url", s.url)
    finally:
        s.stop()
    assert code == 4, err
    assert first["complete"] and first["errors"] > 0, first
    r1 = first["run_id"]
    dt = DeltaTable(str(out))
    assert dt.version() == 0
    v0 = table_rows(out)
    assert len(v0) == PAIRS
    errors = {(r["thing_name"], r["job_id"]) for r in v0 if r["outcome"] == "error"}
    assert len(errors) == first["errors"]
    v0_files = live_files(out)
    with_errors = sorted(f for f in v0_files
                         if "error" in pq.read_table(out / f, columns=["outcome"]).column("outcome").to_pylist())

    s = Sim(*FLEET)
    try:
        retry = run(fa, env, *common, "--endpoint-url", s.url, "--resume", "--retry-errors")
        calls = iot_calls(s)
        assert calls.pop("DescribeJobExecution") == len(errors), "one describe an error row"
        # Besides, the context of the rows described again (run --context, the default all).
        assert set(calls) <= {"DescribeJob", "SearchIndex", "ListJobs", "ListJobExecutionsForJob"}, calls
    finally:
        s.stop()
    assert retry["retried_errors"]["retried"] == len(errors), retry
    assert retry["retried_errors"]["errors"] == 0, retry
    assert retry["retried_errors"]["parts"] == len(with_errors), retry

    # Exactly one more commit.
    dt = DeltaTable(str(out))
    assert dt.version() == 1
    assert sorted(p.name for p in (out / "_delta_log").glob("*.json")) == [
        "00000000000000000000.json", "00000000000000000001.json"]
    history = commits(dt.history())
    assert [(v, op, run_id) for v, op, _, run_id in history] == [(0, "WRITE", r1), (1, "WRITE", r1)]
    assert dt.transaction_version(f"fleet-audit:{r1}") is not None

    # The latest version: the same pairs, once each, no error row; the others untouched.
    v1 = table_rows(out)
    assert len(v1) == PAIRS
    assert {(r["thing_name"], r["job_id"]) for r in v1} == {(r["thing_name"], r["job_id"]) for r in v0}
    assert not [r for r in v1 if r["outcome"] == "error"]
    old = {(r["thing_name"], r["job_id"]): r for r in v0}
    for r in v1:
        key = (r["thing_name"], r["job_id"])
        if key in errors:
            assert r["outcome"] in ("ok", "not_found") and r["source"] == "describe", r
        else:
            assert r == old[key], key
    # The error parts left the table, new ones came in, the other parts stayed.
    v1_files = live_files(out)
    assert sorted(set(v0_files) - set(v1_files)) == with_errors
    assert len(set(v1_files) - set(v0_files)) == len(with_errors)

    # The previous version is whole: every file it names on disk, its error rows read back.
    assert live_files(out, version=0) == v0_files
    assert all((out / f).is_file() for f in v0_files)
    again = table_rows(out, version=0)
    assert sorted(map(repr, again)) == sorted(map(repr, v0))
    assert {(r["thing_name"], r["job_id"]) for r in again if r["outcome"] == "error"} == errors

    # This tool's readers follow the latest version.
    doc = report(fa, str(out), "--trend")
    assert doc["totals"]["total"] == PAIRS and doc["totals"]["errors"] == 0
    assert [(p["run_id"], p["total"], p["errors"]) for p in doc["trend"]] == [(r1, PAIRS, 0)]


# --- 3-4. refusals -----------------------------------------------------------------------------------

def test_another_writers_table_is_refused_and_left_alone(fa, env, tmp_path):
    out = tmp_path / "foreign"
    write_deltalake(str(out), pa.table({"thing_name": ["thing-000001", "thing-000002"],
                                        "job_id": ["job-000", "job-001"], "n": [1, 2]}))
    snapshot = listing(out)
    rows = table_rows(out)
    s = Sim(*FLEET, "--write-lists", str(tmp_path))
    try:
        lists = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt"),
                 "--endpoint-url", s.url, "--rps", "0"]
        for extra in (["--overwrite"], ["--overwrite", "--partition-by", "date"], ["--resume"]):
            code, err, _ = attempt(fa, env, *lists, "--out", str(out), "--table-format", "delta", *extra)
            assert code == 2, f"{extra}: exit {code}\n{err}"
            line = error_line(err)
            assert str(out) in line and "did not make" in line, line
            assert listing(out) == snapshot, f"{extra}: the table was touched"
        assert iot_calls(s) == {}
    finally:
        s.stop()
    assert DeltaTable(str(out)).version() == 0
    assert table_rows(out) == rows
    assert not list(tmp_path.glob(".*.fleet-audit.lock"))


def dated_output(fa, env, tmp_path, out, t1, delta: bool):
    """A complete `--partition-by date` audit of day `t1` (the daily command), with or without
    `--table-format delta`."""
    s = Sim(*FLEET, "--write-lists", str(tmp_path), now=str(t1))
    try:
        fmt = ["--table-format", "delta"] if delta else []
        run(fa, env, "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out), "--partition-by", "date",
            "--resume", "--baseline", "latest", *fmt, "--endpoint-url", s.url, "--as-of", str(t1), *FAST)
    finally:
        s.stop()


def refusals(fa, env, tmp_path, out, t1, flag: list):
    """The daily command of the next day, and an `--overwrite` of the day's audit, with `flag`: each
    (exit code, the error line); the output's listing unchanged by each, and no IoT call made."""
    snapshot = listing(out)
    got = {}
    s = Sim(*FLEET, "--epoch", str(t1), now=str(t1 + DAY))
    try:
        jobs = ["--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out), "--partition-by", "date",
                "--endpoint-url", s.url, *FAST]
        for name, extra in (("next day", ["--resume", "--baseline", "latest", "--as-of", str(t1 + DAY)]),
                            ("same day --resume", ["--resume", "--as-of", str(t1)]),
                            ("same day --overwrite", ["--overwrite", "--as-of", str(t1)])):
            code, err, _ = attempt(fa, env, *jobs, *extra, *flag)
            got[name] = (code, err)
            assert listing(out) == snapshot, f"{name}: the output was touched\n{err}"
        assert iot_calls(s) == {}
    finally:
        s.stop()
    for name, (code, err) in got.items():
        assert code == 2, f"{name}: exit {code}\n{err}"
    return {name: error_line(err) for name, (_, err) in got.items()}


def test_delta_run_on_a_plain_dated_output_is_refused(fa, env, tmp_path):
    out = tmp_path / "audit"
    t1 = int(time.time()) - DAY
    dated_output(fa, env, tmp_path, out, t1, delta=False)
    lines = refusals(fa, env, tmp_path, out, t1, ["--table-format", "delta"])
    assert not (out / "_delta_log").exists()
    for name, line in lines.items():
        assert str(out) in line and "--table-format" in line, f"{name}: {line}"
    for name, line in lines.items():
        assert not re.search(r"\s{2,}", line), f"{name}: a run of spaces in the message: {line!r}"


def test_plain_run_on_a_delta_output_is_refused(fa, env, tmp_path):
    out = tmp_path / "audit"
    t1 = int(time.time()) - DAY
    dated_output(fa, env, tmp_path, out, t1, delta=True)
    rows = table_rows(out)
    lines = refusals(fa, env, tmp_path, out, t1, [])
    assert DeltaTable(str(out)).version() == 0
    assert table_rows(out) == rows
    for name, line in lines.items():
        assert str(out) in line and "pass --table-format delta" in line, f"{name}: {line!r}"
    for name, line in lines.items():
        assert not re.search(r"\s{2,}", line), f"{name}: a run of spaces in the message: {line!r}"


def test_a_refused_output_costs_no_call(fa, env, tmp_path):
    """docs/outputs.md, Delta Lake tables: what is refused is refused "exit 2, before any call", as a
    plain output that exists is (no STS call either)."""
    t1 = int(time.time()) - DAY
    foreign = tmp_path / "foreign"
    write_deltalake(str(foreign), pa.table({"thing_name": ["thing-000001"], "job_id": ["job-000"]}))
    plain, delta = tmp_path / "plain", tmp_path / "delta"
    dated_output(fa, env, tmp_path, plain, t1, delta=False)
    dated_output(fa, env, tmp_path, delta, t1, delta=True)
    s = Sim(*FLEET, now=str(t1))
    try:
        common = ["--discover", "--jobs", str(tmp_path / "jobs.txt"), "--partition-by", "date",
                  "--endpoint-url", s.url, "--as-of", str(t1), *FAST]
        cases = {"exists (the reference)": ["--out", str(plain)],
                 "another writer's table": ["--out", str(foreign), "--table-format", "delta", "--overwrite"],
                 "delta on a plain output": ["--out", str(plain), "--table-format", "delta", "--resume"],
                 "plain on a delta output": ["--out", str(delta), "--resume"]}
        calls = {}
        for name, args in cases.items():
            before = sim_stats(s)
            code, err, _ = attempt(fa, env, *common, *args)
            assert code == 2, f"{name}: exit {code}\n{err}"
            after = sim_stats(s)
            calls[name] = {k: after[k] - before[k] for k in ("sts", "unauthenticated", "unknown")}
            calls[name].update({op: n - before["operations"][op] for op, n in after["operations"].items()
                                if n != before["operations"][op]})
        assert calls == {name: {"sts": 0, "unauthenticated": 0, "unknown": 0} for name in cases}
    finally:
        s.stop()


# --- 6. what an attack found: broken unpublished audits, outputs inside a table ---------------------------

def test_an_unpublished_audit_whose_parts_are_gone_is_never_published(fa, env, tmp_path):
    """A crash between the manifest's last write and the commit, then a VACUUM of the files no version
    names (the crashed audit's parts): the next run refuses (exit 2) and commits nothing, so no reader
    ever meets a version naming a missing file; `--overwrite` of that date makes the audit again."""
    out = tmp_path / "audit"
    t1 = int(time.time()) - DAY
    dated_output(fa, env, tmp_path, out, t1, delta=True)
    first = table_rows(out)
    s = Sim(*FLEET, "--epoch", str(t1), now=str(t1 + DAY))
    try:
        daily = ["--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(out), "--partition-by", "date",
                 "--table-format", "delta", "--endpoint-url", s.url, "--as-of", str(t1 + DAY), *FAST]
        run(fa, env, *daily, "--resume", "--baseline", "latest")
        # The state a crash before the commit leaves: the manifest complete, version 1 absent.
        (out / "_delta_log" / "00000000000000000001.json").unlink()
        DeltaTable(str(out)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
        assert not list((out / f"date={utc_date(t1 + DAY)}").glob("part-*"))
        vacuumed = DeltaTable(str(out)).version()  # the vacuum's own commits
        code, err, _ = attempt(fa, env, *daily, "--resume")
        assert code == 2, err
        assert "missing" in error_line(err) and "--overwrite" in error_line(err), err
        assert DeltaTable(str(out)).version() == vacuumed and table_rows(out) == first
        run(fa, env, *daily, "--overwrite")
        rows = table_rows(out)
        counts = per_date(rows)
        assert set(counts) == {utc_date(t1), utc_date(t1 + DAY)} and counts[utc_date(t1)] == len(first)
        assert len({(r["date"], r["thing_name"], r["job_id"]) for r in rows}) == len(rows)
    finally:
        s.stop()


def test_an_output_inside_a_table_is_refused_and_the_table_untouched(fa, env, tmp_path):
    out = tmp_path / "audit"
    t1 = int(time.time()) - DAY
    dated_output(fa, env, tmp_path, out, t1, delta=True)
    before, rows = listing(out), table_rows(out)
    s = Sim(*FLEET, now=str(t1))
    try:
        for inner in (out / f"date={utc_date(t1)}", out / "_delta_log" / "sub", out / "x.parquet"):
            code, err, _ = attempt(fa, env, "--things", str(tmp_path / "things.txt"), "--jobs",
                                   str(tmp_path / "jobs.txt"), "--out", str(inner), "--overwrite",
                                   "--endpoint-url", s.url, "--as-of", str(t1), "--rps", "0")
            assert code == 2, f"{inner}: {err}"
            assert "inside" in error_line(err) and str(out) in error_line(err), err
        assert iot_calls(s) == {} and sim_stats(s)["sts"] == 0
    finally:
        s.stop()
    assert listing(out) == before and table_rows(out) == rows
