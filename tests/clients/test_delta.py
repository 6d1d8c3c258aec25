"""`run --table-format delta` read back by the Delta readers users have: deltalake, polars and DuckDB's
`delta_scan`. Every complete audit is one commit of the table; an audit under way, or killed, is seen
by none of them; `--resume` publishes it once; `--overwrite` replaces the table's audit in one commit
and keeps the files an older version names; the same on an S3 prefix (moto's server)."""
import collections
import glob
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from conftest import ROOT, Moto, Sim, free_port

DAY = 86_400
FLEET = ["--things", "300", "--jobs", "3", "--seed", "31"]
PAIRS = 300 * 3
# A second audit slow enough to be caught mid-way: a part every 50 rows, 25 calls a second (900 pairs:
# about 36 s in all; it is killed after its first part, a couple of seconds in).
SLOW = ["--rps", "25", "--part-rows", "50"]


def utc_date(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def all_pairs(lists: pathlib.Path) -> set:
    things = (lists / "things.txt").read_text().split()
    jobs = (lists / "jobs.txt").read_text().split()
    pairs = {(t, j) for t in things for j in jobs}
    assert len(pairs) == PAIRS
    return pairs


def run(fa, env, *args, timeout=180):
    """One run to its end (exit 0); the summary (--summary-json) it wrote."""
    with tempfile.TemporaryDirectory() as d:
        summary = pathlib.Path(d) / "summary.json"
        r = subprocess.run([fa, "run", *args, "--quiet", "--summary-json", str(summary)], env=env,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr}"
        return json.loads(summary.read_text())


def start(fa, env, *args):
    """A run in the background (its stderr kept for the failure message)."""
    err = tempfile.TemporaryFile("w+")
    p = subprocess.Popen([fa, "run", *args, "--quiet"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=err)
    p.err = err
    return p


def kill(p):
    """SIGKILL, if it still runs (one that ended already failed the test where it was waited for)."""
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)


def wait_for_part(p, read_manifest, before: set, timeout=90):
    """Waits until the run `p` (a run other than those in `before`) has committed a part of an audit
    that is not complete yet; returns that manifest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            p.err.seek(0)
            pytest.fail(f"the run ended (exit {p.returncode}) before it was caught mid-way:\n{p.err.read()}")
        try:
            m = read_manifest()
        except (ValueError, OSError):
            m = None  # being replaced at this instant
        if m and m.get("run_id") not in before and m["parts"] and not m["complete"]:
            return m
        time.sleep(0.05)
    p.kill()
    pytest.fail(f"no part of a new audit within {timeout} s")


# --- the readers ------------------------------------------------------------------------------------

def key_rows(columns: dict, n: int):
    """(run_id, thing_name, job_id, date or None) of each row, counted."""
    date = columns.get("date") or [None] * n
    return collections.Counter(
        (r, t, j, None if d is None else str(d))
        for r, t, j, d in zip(columns["run_id"], columns["thing_name"], columns["job_id"], date))


def read_deltalake(uri, storage_options=None, version=None):
    t = DeltaTable(uri, version=version, storage_options=storage_options).to_pyarrow_table()
    return key_rows({c: t.column(c).to_pylist() for c in t.column_names}, t.num_rows)


def read_polars(uri, storage_options=None, version=None):
    df = pl.read_delta(uri, version=version, storage_options=storage_options)
    return key_rows({c: df[c].to_list() for c in df.columns}, df.height)


def extension(name):
    """The path of a DuckDB extension the venv has as a wheel (duckdb-extension-NAME, built for this
    DuckDB): loaded by path, nothing downloaded."""
    found = glob.glob(f"{sys.prefix}/lib/python3*/site-packages/duckdb_extension_{name}/extensions/*/{name}.duckdb_extension")
    assert found, f"duckdb-extension-{name}=={duckdb.__version__} is not installed in the venv (scripts/requirements.txt)"
    return found[0]


def duckdb_con(s3=None):
    """DuckDB with the delta extension; with `s3` (moto's URL, key id, secret) also httpfs, which
    delta_scan reads an s3:// table through, and a secret for that endpoint."""
    con = duckdb.connect()
    if s3:
        url, key_id, secret = s3
        con.execute(f"LOAD '{extension('httpfs')}'")
        con.execute(f"""CREATE SECRET moto (TYPE s3, KEY_ID '{key_id}', SECRET '{secret}', REGION 'us-east-1',
                        ENDPOINT '{url.removeprefix("http://")}', URL_STYLE 'path', USE_SSL false)""")
    con.execute(f"LOAD '{extension('delta')}'")
    return con


def read_duckdb(uri, con=None):
    con = con or duckdb_con()
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan('{uri}')").fetchall()]
    date = "CAST(date AS VARCHAR)" if "date" in cols else "NULL"
    rows = con.execute(f"SELECT run_id, thing_name, job_id, {date} FROM delta_scan('{uri}')").fetchall()
    return collections.Counter(rows)


def local_readers(out: pathlib.Path):
    return {"deltalake": read_deltalake(str(out)), "polars": read_polars(str(out)),
            "duckdb": read_duckdb(str(out))}


def manifest_rows(out: pathlib.Path, m: dict):
    """The rows of the manifest's current audit, read by pyarrow from its parts (the tool's own record
    of the audit, independent of the Delta log)."""
    files = [str(out / p["file"]) for p in m["parts"]]
    t = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(out)).to_table()
    return key_rows({c: t.column(c).to_pylist() for c in t.column_names}, t.num_rows)


def assert_one_audit(rows: collections.Counter, pairs: set, date=None):
    """`rows` hold every pair exactly once (and, when given, all of one date)."""
    assert sum(rows.values()) == len(pairs)
    assert {(t, j) for _, t, j, _ in rows} == pairs
    assert max(rows.values()) == 1
    if date is not None:
        assert {d for *_, d in rows} == {date}


def commits(history):
    """Delta history, oldest first: (version, operation, mode, fleetAuditRunId)."""
    return [(h["version"], h["operation"], h["operationParameters"]["mode"], h.get("fleetAuditRunId"))
            for h in sorted(history, key=lambda h: h["version"])]


def assert_filters_agree(out: pathlib.Path):
    """Filtered scans (which skip files by the statistics the commits carry) count what a full read
    filtered afterwards counts: no file skipped that holds a matching row."""
    full = pl.read_delta(str(out))
    hi = full["fetched_at"].max()
    con = duckdb_con()
    for sql, expr in [("status = 'QUEUED'", pl.col("status") == "QUEUED"),
                      ("thing_name = 'thing-000123'", pl.col("thing_name") == "thing-000123"),
                      (f"fetched_at = TIMESTAMPTZ '{hi.isoformat()}'", pl.col("fetched_at") == hi),
                      ("approximate_seconds_before_timed_out >= 1000",
                       pl.col("approximate_seconds_before_timed_out") >= 1000)]:
        want = full.filter(expr).height
        assert want > 0, sql
        assert pl.scan_delta(str(out)).filter(expr).select(pl.len()).collect().item() == want, sql
        assert con.execute(f"SELECT count(*) FROM delta_scan('{out}') WHERE {sql}").fetchone()[0] == want, sql


def live_files(out: pathlib.Path, version=None):
    """The files of the table's version, relative to it."""
    return sorted(os.path.relpath(u, out) for u in DeltaTable(str(out), version=version).file_uris())


@pytest.fixture
def env(aws_env):
    return dict(aws_env, AWS_EC2_METADATA_DISABLED="true")


# --- 1. local, one audit a date --------------------------------------------------------------------

def test_dated_table_publishes_each_complete_audit_once(fa, env, tmp_path):
    """Two simulated days (`--as-of`, two `date=` partitions): the first audit is version 0; the second,
    caught mid-way and then killed with SIGKILL, is seen by no reader; `--resume` publishes it as
    version 1, each pair once per audit; a `--resume` of the complete audit publishes nothing more."""
    t1 = int(time.time()) - DAY
    t2 = t1 + DAY
    out = tmp_path / "audit"
    common = ["--out", str(out), "--partition-by", "date", "--table-format", "delta"]
    manifest = lambda: json.loads((out / "_manifest.json").read_text())

    s = Sim(*FLEET, "--write-lists", str(tmp_path), now=str(t1))
    try:
        lists = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt")]
        pairs = all_pairs(tmp_path)
        first = run(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t1), "--rps", "0")
    finally:
        s.stop()
    assert first["complete"] and first["pairs"] == PAIRS
    r1 = first["run_id"]
    m1 = manifest()
    first_rows = manifest_rows(out, m1)
    assert_one_audit(first_rows, pairs, date=utc_date(t1))
    assert {r for r, *_ in first_rows} == {r1}
    assert sorted(p.name for p in (out / "_delta_log").glob("*.json")) == ["00000000000000000000.json"]
    readers = local_readers(out)
    for name, rows in readers.items():
        assert rows == first_rows, name
    dt = DeltaTable(str(out))
    assert dt.version() == 0
    assert dt.metadata().partition_columns == ["date"]
    # `date` is a Delta `date` column (not a string), as every reader types it.
    assert dt.to_pyarrow_table().schema.field("date").type == pa.date32()
    assert pl.read_delta(str(out)).schema["date"] == pl.Date
    assert duckdb_con().execute(f"SELECT typeof(date) FROM delta_scan('{out}') LIMIT 1").fetchone()[0] == "DATE"
    assert dt.transaction_version(f"fleet-audit:{r1}") is not None

    s = Sim(*FLEET, "--epoch", str(t1), now=str(t2))
    try:
        second = start(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t2), "--resume", *SLOW)
        try:
            m2 = wait_for_part(second, manifest, {r1})
            r2 = m2["run_id"]
            # Its parts are on disk, under the new date, and listed by the manifest ...
            assert all((out / p["file"]).is_file() for p in m2["parts"])
            assert all(p["file"].startswith(f"date={utc_date(t2)}/") for p in m2["parts"])
            # ... and no reader sees them: the table is still the first audit.
            for name, rows in local_readers(out).items():
                assert rows == first_rows, f"{name} read a part of an audit under way"
            assert DeltaTable(str(out)).version() == 0
        finally:
            kill(second)
        for name, rows in local_readers(out).items():
            assert rows == first_rows, f"{name} after the second audit was killed"
        assert DeltaTable(str(out)).version() == 0
        assert manifest()["run_id"] == r2 and not manifest()["complete"]

        resumed = run(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t2), "--resume",
                      "--rps", "0", "--part-rows", "50")
        assert resumed["complete"]
        m = manifest()
        assert m["complete"] and m["run_id"] == r2
        second_rows = manifest_rows(out, m)
        assert_one_audit(second_rows, pairs, date=utc_date(t2))
        assert r1 not in {r for r, *_ in second_rows}
        both = first_rows + second_rows
        for name, rows in local_readers(out).items():
            assert rows == both, f"{name} after --resume"
        # Each pair once per audit: twice in the table, once under each date.
        by_pair = collections.Counter((t, j) for (_, t, j, _), n in both.items() for _ in range(n))
        assert set(by_pair) == pairs and set(by_pair.values()) == {2}

        dt = DeltaTable(str(out))
        assert commits(dt.history()) == [(0, "WRITE", "Append", r1), (1, "WRITE", "Append", r2)]
        assert dt.transaction_version(f"fleet-audit:{r2}") is not None
        # The table's files are exactly the two audits' parts; version 0 is still the first audit alone.
        assert live_files(out) == sorted(p["file"] for p in m1["parts"] + m["parts"])
        assert live_files(out, version=0) == sorted(p["file"] for p in m1["parts"])
        assert read_deltalake(str(out), version=0) == first_rows
        assert_filters_agree(out)

        # A --resume of the complete audit ends before any call, and publishes nothing more.
        again = run(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t2), "--resume")
        assert again.get("already_complete") is True
        assert DeltaTable(str(out)).version() == 1
        assert sorted(p.name for p in (out / "_delta_log").glob("*.json")) == [
            "00000000000000000000.json", "00000000000000000001.json"]
    finally:
        s.stop()


# --- 2. local, --overwrite -------------------------------------------------------------------------

def test_overwrite_replaces_the_audit_in_one_commit_and_keeps_older_versions(fa, env, tmp_path):
    """`--partition-by job_id` (no date): an audit, then an `--overwrite` killed mid-way (the table is
    still the first audit), finished by `--resume` (version 1: the second audit alone); then another
    `--overwrite` killed, and `--overwrite` again to completion (version 2). Every older version stays
    readable: its files are never deleted."""
    out = tmp_path / "audit"
    common = ["--out", str(out), "--partition-by", "job_id", "--table-format", "delta"]
    manifest = lambda: json.loads((out / "_manifest.json").read_text())
    s = Sim(*FLEET, "--write-lists", str(tmp_path))
    try:
        lists = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt"),
                 "--endpoint-url", s.url]
        pairs = all_pairs(tmp_path)
        a = run(fa, env, *lists, *common, "--rps", "0")["run_id"]
        ma = manifest()
        a_rows = manifest_rows(out, ma)
        assert_one_audit(a_rows, pairs)
        for name, rows in local_readers(out).items():
            assert rows == a_rows, name
        assert DeltaTable(str(out)).metadata().partition_columns == ["job_id"]

        b = start(fa, env, *lists, *common, "--overwrite", *SLOW)
        try:
            mb = wait_for_part(b, manifest, {a})
            assert all((out / p["file"]).is_file() for p in mb["parts"])
            for name, rows in local_readers(out).items():
                assert rows == a_rows, f"{name} read a part of an --overwrite under way"
        finally:
            kill(b)
        for name, rows in local_readers(out).items():
            assert rows == a_rows, f"{name} after the --overwrite was killed"
        assert DeltaTable(str(out)).version() == 0

        done = run(fa, env, *lists, *common, "--resume", "--rps", "0", "--part-rows", "50")
        assert done["complete"]
        mb = manifest()
        assert mb["complete"] and mb["run_id"] != a
        b_rows = manifest_rows(out, mb)
        assert_one_audit(b_rows, pairs)
        assert a not in {r for r, *_ in b_rows}
        for name, rows in local_readers(out).items():
            assert rows == b_rows, f"{name} after the --overwrite was resumed"
        dt = DeltaTable(str(out))
        assert commits(dt.history()) == [(0, "WRITE", "Append", a), (1, "WRITE", "Overwrite", mb["run_id"])]

        d = start(fa, env, *lists, *common, "--overwrite", *SLOW)
        try:
            md = wait_for_part(d, manifest, {a, mb["run_id"]})
        finally:
            kill(d)
        for name, rows in local_readers(out).items():
            assert rows == b_rows, f"{name} after the second --overwrite was killed"
        assert DeltaTable(str(out)).version() == 1
        e = run(fa, env, *lists, *common, "--overwrite", "--rps", "0")["run_id"]
        me = manifest()
        assert me["run_id"] == e and me["complete"]
        e_rows = manifest_rows(out, me)
        assert_one_audit(e_rows, pairs)
        assert {r for r, *_ in e_rows} == {e}
        for name, rows in local_readers(out).items():
            assert rows == e_rows, f"{name} after --overwrite"
        dt = DeltaTable(str(out))
        assert commits(dt.history()) == [(0, "WRITE", "Append", a), (1, "WRITE", "Overwrite", mb["run_id"]),
                                         (2, "WRITE", "Overwrite", e)]
        assert md["run_id"] not in {h.get("fleetAuditRunId") for h in dt.history()}
        assert live_files(out) == sorted(p["file"] for p in me["parts"])
        # Older versions are still whole: every file they name is on disk.
        assert live_files(out, version=0) == sorted(p["file"] for p in ma["parts"])
        assert live_files(out, version=1) == sorted(p["file"] for p in mb["parts"])
        assert all((out / f).is_file() for v in (0, 1) for f in live_files(out, version=v))
        assert read_deltalake(str(out), version=0) == a_rows
        assert read_polars(str(out), version=0) == a_rows
        assert read_deltalake(str(out), version=1) == b_rows
        assert read_polars(str(out), version=1) == b_rows
    finally:
        s.stop()


# --- 3. S3 ---------------------------------------------------------------------------------------

@pytest.fixture
def moto(aws_env):
    m = Moto(aws_env)
    yield m
    m.stop()


def test_dated_table_on_s3(fa, env, tmp_path, moto):
    """The dated table on `s3://bucket/prefix/` (`--partition-by date,job_id`), read by deltalake,
    polars and DuckDB through moto's S3 server: the first audit; the second caught mid-way, then killed
    (no reader sees it, no commit); `--resume` publishes it as version 1."""
    moto.s3.create_bucket(Bucket="fleet")
    env = dict(env, AWS_ENDPOINT_URL_S3=moto.url)
    uri = "s3://fleet/audit/"
    so = {"AWS_ENDPOINT_URL": moto.url, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
          "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": "us-east-1"}

    manifest = lambda: moto.get_json("fleet", "audit/_manifest.json")

    duck = duckdb_con(s3=(moto.url, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))

    def readers():
        return {"deltalake": read_deltalake(uri, so), "polars": read_polars(uri, so), "duckdb": read_duckdb(uri, duck)}

    t1 = int(time.time()) - DAY
    t2 = t1 + DAY
    common = ["--out", uri, "--partition-by", "date,job_id", "--table-format", "delta"]
    s = Sim(*FLEET, "--write-lists", str(tmp_path), now=str(t1))
    try:
        lists = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt")]
        pairs = all_pairs(tmp_path)
        r1 = run(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t1), "--rps", "0")["run_id"]
    finally:
        s.stop()
    first = readers()
    for name, rows in first.items():
        assert_one_audit(rows, pairs, date=utc_date(t1))
        assert {r for r, *_ in rows} == {r1}, name
    first_rows = first["deltalake"]
    assert first["polars"] == first["duckdb"] == first_rows
    assert DeltaTable(uri, storage_options=so).metadata().partition_columns == ["date", "job_id"]
    assert moto.keys("fleet", "audit/_delta_log/") == ["audit/_delta_log/00000000000000000000.json"]

    s = Sim(*FLEET, "--epoch", str(t1), now=str(t2))
    try:
        second = start(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t2), "--resume", *SLOW)
        try:
            m2 = wait_for_part(second, manifest, {r1})
            r2 = m2["run_id"]
            for p in m2["parts"]:
                assert moto.exists("fleet", f"audit/{p['file']}"), p["file"]
            for name, rows in readers().items():
                assert rows == first_rows, f"{name} read a part of an audit under way"
        finally:
            kill(second)
        for name, rows in readers().items():
            assert rows == first_rows, f"{name} after the second audit was killed"
        assert DeltaTable(uri, storage_options=so).version() == 0
        assert moto.keys("fleet", "audit/_delta_log/") == ["audit/_delta_log/00000000000000000000.json"]

        run(fa, env, *lists, *common, "--endpoint-url", s.url, "--as-of", str(t2), "--resume", "--rps", "0",
            "--part-rows", "50")
    finally:
        s.stop()
    after = readers()
    assert after["polars"] == after["duckdb"] == after["deltalake"]
    of_date = lambda rows, d: collections.Counter({k: n for k, n in rows.items() if k[3] == d})
    assert of_date(after["deltalake"], utc_date(t1)) == first_rows
    second_rows = of_date(after["deltalake"], utc_date(t2))
    assert sum(after["deltalake"].values()) == 2 * PAIRS
    assert_one_audit(second_rows, pairs, date=utc_date(t2))
    assert r1 not in {r for r, *_ in second_rows}
    dt = DeltaTable(uri, storage_options=so)
    assert commits(dt.history()) == [(0, "WRITE", "Append", r1), (1, "WRITE", "Append", r2)]
    assert read_deltalake(uri, so, version=0) == first_rows


# --- 4. an interrupted first audit --------------------------------------------------------------

def test_an_interrupted_first_audit_is_no_table_until_resumed(fa, env, tmp_path):
    """A first audit killed after committing parts leaves no commit: no reader finds a table. Its
    `--resume` publishes exactly one commit, the whole audit."""
    out = tmp_path / "audit"
    common = ["--out", str(out), "--table-format", "delta"]
    manifest = lambda: json.loads((out / "_manifest.json").read_text()) if (out / "_manifest.json").exists() else None
    s = Sim(*FLEET, "--write-lists", str(tmp_path))
    try:
        lists = ["--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt"),
                 "--endpoint-url", s.url]
        pairs = all_pairs(tmp_path)
        p = start(fa, env, *lists, *common, *SLOW)
        try:
            m = wait_for_part(p, manifest, set())
            assert all((out / part["file"]).is_file() for part in m["parts"])
        finally:
            kill(p)
        assert not list(out.glob("_delta_log/*.json"))
        assert not DeltaTable.is_deltatable(str(out))
        with pytest.raises(TableNotFoundError):
            DeltaTable(str(out))
        with pytest.raises(TableNotFoundError):
            pl.read_delta(str(out))
        with pytest.raises(duckdb.IOException, match="No files in log segment"):
            read_duckdb(str(out))

        done = run(fa, env, *lists, *common, "--resume", "--rps", "0", "--part-rows", "50")
        assert done["complete"]
        m = manifest()
        rows = manifest_rows(out, m)
        assert_one_audit(rows, pairs)
        for name, got in local_readers(out).items():
            assert got == rows, name
        dt = DeltaTable(str(out))
        assert commits(dt.history()) == [(0, "WRITE", "Append", m["run_id"])]
        assert live_files(out) == sorted(part["file"] for part in m["parts"])
        assert sorted(p.name for p in (out / "_delta_log").glob("*.json")) == ["00000000000000000000.json"]
    finally:
        s.stop()
