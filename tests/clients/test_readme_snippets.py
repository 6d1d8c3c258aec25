"""Every ```python block of README.md and of the manual (docs/*.md), run as written against the outputs a
reader has: the demo's file (`demo-out/executions.parquet`), a directory output (`--out audit/`), and a
partitioned, dated one (`--partition-by date,job_id`, two audits a day apart). A snippet names the output
`audit/`, as the commands of README and docs/ do: the test puts each output there (the demo's file
replaces that name, since it is a file).

What the snippet reads (its table `t`) must be the latest audit, every row of it and nothing else:
its counts by job and status are the ones `fleet-audit report --json` gives for the same output."""
import collections
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, as_if_yesterday

README = ROOT / "README.md"
# The front page and the manual: every file whose snippets are run, in order.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


# The first line of a ```python block that maintains a Delta table rather than reads an audit.
UPKEEP = "# Upkeep of a --table-format delta output"


def python_blocks(upkeep=False):
    """(file, first line number, code) of every ```python block of README.md and docs/*.md (those that
    read an audit, or with `upkeep` those that maintain a Delta table); the file as a path from the
    repository's root (`docs/outputs.md`)."""
    blocks = []
    for page in PAGES:
        name, lines = page.relative_to(ROOT).as_posix(), page.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```python":
                start = i + 1
                end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
                code = "\n".join(lines[start:end]) + "\n"
                # A Delta table's upkeep (compaction) is no reader: test_the_delta_upkeep_snippet runs it.
                if upkeep == code.startswith(UPKEEP):
                    blocks.append((name, start + 1, code))
                i = end
            i += 1
    return blocks


BLOCKS = python_blocks()
UPKEEP_BLOCKS = python_blocks(upkeep=True)


def test_readme_has_python_snippets():
    assert BLOCKS, "neither README.md nor docs/*.md has a ```python block"


def run(fa, sim, aws_env, lists, out, *extra):
    r = subprocess.run(
        [fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
         "--out", str(out), "--endpoint-url", sim.url, "--rps", "0", "--quiet", *extra],
        env=aws_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def outputs(fa, sim, aws_env, tmp_path_factory):
    """name -> (path of the output, path a snippet's `audit/` stands for)."""
    base = tmp_path_factory.mktemp("readme-outputs")
    r = subprocess.run([fa, "demo", "--things", "1500", "--jobs", "3", "--out", str(base / "demo-out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lists = base / "lists"
    lists.mkdir()
    # The session simulator's fleet (conftest's `sim`: 2,000 things x 4 jobs), named as it names them.
    things = [f"thing-{i:06d}" for i in range(2000)]
    (lists / "things.txt").write_text("\n".join(things) + "\n")
    (lists / "jobs.txt").write_text("\n".join(f"job-{j:03d}" for j in range(4)) + "\n")
    flat = base / "flat"
    run(fa, sim, aws_env, lists, flat)
    dated = base / "dated"
    run(fa, sim, aws_env, lists, dated, "--partition-by", "date,job_id", "--part-rows", "700")
    as_if_yesterday(dated)
    run(fa, sim, aws_env, lists, dated, "--partition-by", "date,job_id", "--part-rows", "700", "--resume")
    assert len(list(dated.glob("date=*"))) == 2, "two audits, a day apart"
    return {
        "demo": base / "demo-out" / "executions.parquet",
        "directory": flat,
        "dated-partitioned": dated,
    }


def expected_counts(fa, path):
    """{(job_id, status or None): rows} of the output's latest audit, as `fleet-audit report` reads it."""
    import json
    r = subprocess.run([fa, "report", str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    counts = {}
    for job in json.loads(r.stdout)["jobs"]:
        for status, n in job["by_status"].items():
            if n:
                counts[(job["job_id"], status)] = n
        if job["no_status"]:
            counts[(job["job_id"], None)] = job["no_status"]
    return counts


@pytest.mark.parametrize("kind", ["demo", "directory", "dated-partitioned"])
@pytest.mark.parametrize("page,line,code", BLOCKS, ids=[f"{page}:{n}" for page, n, _ in BLOCKS])
def test_readme_python_snippet_reads_the_latest_audit(fa, outputs, kind, page, line, code, tmp_path, monkeypatch):
    names = set(re.findall(r"""["'](audit/?)["']""", code))
    assert names, f"{page}:{line}: the snippet does not read `audit/`, the output the manual's commands write"
    output = outputs[kind]
    if output.is_dir():
        shutil.copytree(output, tmp_path / "audit")
    else:
        (tmp_path / "demo-out").mkdir()
        shutil.copy(output, tmp_path / "demo-out" / output.name)
        for name in names:
            code = code.replace(f'"{name}"', f'"demo-out/{output.name}"').replace(f"'{name}'", f"'demo-out/{output.name}'")
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "__readme__"}
    exec(compile("\n" * (line - 1) + code, str(ROOT / page), "exec"), scope)
    assert "t" in scope, f"{page}:{line}: the snippet's table is no longer named `t`"
    t = scope["t"]
    got = collections.Counter()
    for job_id, status in zip(t.column("job_id").to_pylist(), t.column("status").to_pylist()):
        got[(str(job_id), status)] += 1
    want = expected_counts(fa, output)
    assert sum(got.values()) == sum(want.values()), \
        f"{kind}: the snippet read {sum(got.values())} rows, the latest audit has {sum(want.values())}"
    assert dict(got) == want


@pytest.mark.parametrize("page,line,code", UPKEEP_BLOCKS, ids=[f"{p}:{n}" for p, n, _ in UPKEEP_BLOCKS])
def test_the_delta_upkeep_snippet_keeps_the_table_readable(fa, sim, aws_env, page, line, code, tmp_path,
                                                           monkeypatch):
    """The manual's compaction of a Delta output, run on one of two audits in parts: the table is
    compacted (a new version, fewer files), every reader still reads the latest audit whole, and the
    next audit is published over the compacted table."""
    from deltalake import DeltaTable
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "things.txt").write_text("\n".join(f"thing-{i:06d}" for i in range(600)) + "\n")
    (lists / "jobs.txt").write_text("job-000\njob-001\n")
    audit = tmp_path / "audit"
    table = ["--table-format", "delta", "--partition-by", "job_id", "--part-rows", "100"]
    run(fa, sim, aws_env, lists, audit, *table)
    run(fa, sim, aws_env, lists, audit, *table, "--overwrite")
    before = DeltaTable(str(audit))
    files_before, rows = len(before.file_uris()), before.to_pyarrow_table().num_rows
    assert rows == 1200 and files_before > 2
    monkeypatch.chdir(tmp_path)
    exec(compile("\n" * (line - 1) + code, str(ROOT / page), "exec"), {"__name__": "__readme__"})
    after = DeltaTable(str(audit))
    assert after.version() == before.version() + 1, "the compaction is a version of its own"
    assert len(after.file_uris()) == 2, "one file a job_id partition"
    assert after.to_pyarrow_table().num_rows == rows
    assert sum(expected_counts(fa, audit).values()) == rows, "report reads the compacted table"
    run(fa, sim, aws_env, lists, audit, *table, "--overwrite")
    latest = DeltaTable(str(audit))
    assert latest.to_pyarrow_table().num_rows == rows
    assert [h["operation"] for h in latest.history()][:2] == ["WRITE", "OPTIMIZE"]
    assert not set(after.file_uris()) & set(latest.file_uris()), "the new audit replaced the compacted one"
