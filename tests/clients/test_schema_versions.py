"""Schema version 3 (timestamps in microseconds, as Delta readers need them) beside version 2's
milliseconds: a version 2 dataset still serves as `--baseline`, is reported, and counts in
`report --trend` beside version 3 audits of the same output."""
import json
import subprocess
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import Sim, as_if_yesterday

TIMES = ("fetched_at", "queued_at", "started_at", "last_updated_at")


def as_version_2(table: pa.Table) -> pa.Table:
    """The table as fleet-audit's schema version 2 wrote it: every timestamp in milliseconds."""
    for name in TIMES:
        i = table.schema.get_field_index(name)
        field = table.schema.field(i)
        assert field.type == pa.timestamp("us", tz="UTC"), field
        table = table.set_column(i, pa.field(name, pa.timestamp("ms", tz="UTC"), field.nullable),
                                 pc.cast(table.column(name), pa.timestamp("ms", tz="UTC")))
    return table


def run(fa, env, *args):
    rates = ["--rps", "0"] + (["--list-rps", "0"] if "--discover" in args else [])
    r = subprocess.run([fa, "run", *args, *rates, "--quiet"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def report(fa, *args):
    r = subprocess.run([fa, "report", *args, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_version_2_dataset_is_a_baseline_and_is_reported(fa, aws_env, tmp_path):
    now = int(time.time())
    fleet = ["--things", "400", "--jobs", "3", "--seed", "41", "--active-share", "0.3",
             "--changed-share", "0.1", "--write-lists", str(tmp_path)]
    s = Sim(*fleet, now=str(now - 86_400))
    try:
        first = tmp_path / "first.parquet"
        run(fa, aws_env, "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out", str(first),
            "--endpoint-url", s.url)
    finally:
        s.stop()
    old = tmp_path / "version2.parquet"
    pq.write_table(as_version_2(pq.read_table(first)), old)
    assert pq.read_schema(old).field("fetched_at").type == pa.timestamp("ms", tz="UTC")
    # Reported alike: the same rows, the same classes, the same oldest executions.
    a, b = report(fa, str(first)), report(fa, str(old))
    assert a["totals"] == b["totals"]
    assert a["totals"]["total"] > 0
    # The next day's audit carries from it what did not change.
    s = Sim(*fleet, "--epoch", str(now - 86_400), now=str(now))
    try:
        summary = tmp_path / "summary.json"
        run(fa, aws_env, "--discover", "--jobs", str(tmp_path / "jobs.txt"), "--out",
            str(tmp_path / "second.parquet"), "--endpoint-url", s.url, "--baseline", str(old),
            "--summary-json", str(summary))
    finally:
        s.stop()
    done = json.loads(summary.read_text())
    assert done["carried"] > 0 and done["baseline"] == str(old)
    second = pq.read_table(tmp_path / "second.parquet")
    assert second.schema.field("queued_at").type == pa.timestamp("us", tz="UTC")
    carried = second.filter(pc.equal(second.column("source"), "carried"))
    assert carried.num_rows == done["carried"]
    # A carried row keeps the baseline's times, to the millisecond, now in microseconds.
    base = {(r["thing_name"], r["job_id"]): r for r in pq.read_table(old).to_pylist()}
    for r in carried.to_pylist()[:50]:
        assert r["queued_at"] == base[(r["thing_name"], r["job_id"])]["queued_at"]


def test_the_trend_counts_a_version_2_audit_beside_a_version_3_one(fa, sim, aws_env, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "things.txt").write_text("\n".join(f"thing-{i:06d}" for i in range(500)) + "\n")
    (lists / "jobs.txt").write_text("job-000\njob-001\n")
    out = tmp_path / "audit"
    args = ["--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"), "--out", str(out),
            "--endpoint-url", sim.url, "--partition-by", "date", "--resume"]
    run(fa, aws_env, *args)
    yesterday, today = as_if_yesterday(out)
    run(fa, aws_env, *args)
    before = report(fa, str(out), "--trend")["trend"]
    # Yesterday's audit rewritten as version 2 wrote it (a manifest of then recorded no digests).
    m = json.loads((out / "_manifest.json").read_text())
    (day1,) = m["earlier"]
    for p in day1["parts"]:
        path = out / p["file"]
        pq.write_table(as_version_2(pq.read_table(path, partitioning=None)), path)
        p.pop("size", None)
        p.pop("xxh3", None)
    (out / "_manifest.json").write_text(json.dumps(m))
    after = report(fa, str(out), "--trend")["trend"]
    assert [p["date"] for p in after] == [yesterday, today]
    assert after == before
