"""`fleet-audit schema` checked against a real dataset: the DuckDB view it prints is executed by DuckDB
over the Parquet file `fleet-audit demo` wrote (and over a Hive-partitioned copy), and the schema table,
Glue TableInput and Athena DDL are compared column by column with the file's schema as pyarrow reads it."""
import json
import re
import subprocess

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROWS = 1000  # 500 things x 2 jobs


@pytest.fixture(scope="module")
def demo_dir(fa, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddl-demo")
    r = subprocess.run(
        [fa, "demo", "--things", "500", "--jobs", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "executions.parquet").exists()
    return out


@pytest.fixture(scope="module")
def arrow_schema(demo_dir):
    return pq.read_schema(demo_dir / "executions.parquet")


def schema(fa, *args):
    r = subprocess.run([fa, "schema", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def describe(con, sql, params=None):
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {sql}", params).fetchall()]


def comment_columns(ddl):
    """The (column, type) pairs the DuckDB DDL's comment lists."""
    out = []
    for line in ddl.splitlines():
        m = re.match(r"^--   (\S+)\s+(.+?)(\s+\(from the folder names\))?$", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def hive_type(t: pa.DataType) -> str:
    """The Hive type of a pyarrow type, written independently of the Rust mapping."""
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_map(t):
        return f"map<{hive_type(t.key_type)},{hive_type(t.item_type)}>"
    if pa.types.is_list(t):
        return f"array<{hive_type(t.value_type)}>"
    raise AssertionError(f"unexpected type {t}")


def arrow_name(t: pa.DataType) -> str:
    """The type as the schema table (docs/outputs.md, "Schema") spells it."""
    if pa.types.is_string(t):
        return "utf8"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, {t.tz}]"
    if pa.types.is_map(t):
        return f"map<{arrow_name(t.key_type)}, {arrow_name(t.item_type)}>"
    if pa.types.is_list(t):
        return f"list<{arrow_name(t.value_type)}>"
    return str(t)


def test_duckdb_view_has_the_datasets_columns_types_and_rows(fa, demo_dir, arrow_schema):
    ddl = schema(fa, "--ddl", "duckdb", "--location", str(demo_dir))
    con = duckdb.connect()
    con.execute(ddl)
    view = describe(con, "fleet_audit")
    files = describe(con, "SELECT * FROM read_parquet($p)", {"p": str(demo_dir / "executions.parquet")})
    assert view == files
    assert [n for n, _ in view] == arrow_schema.names
    # The comment states exactly what DESCRIBE shows.
    assert comment_columns(ddl) == view
    assert con.execute("SELECT count(*) FROM fleet_audit").fetchone()[0] == ROWS
    assert con.execute("SELECT count(DISTINCT (thing_name, job_id)) FROM fleet_audit").fetchone()[0] == ROWS


def test_duckdb_view_reads_hive_partition_folders(fa, demo_dir, tmp_path):
    parted = tmp_path / "by-job"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet($p)) TO '{parted}' (FORMAT parquet, PARTITION_BY (job_id))",
        {"p": str(demo_dir / "executions.parquet")},
    )
    assert sorted(p.name for p in parted.iterdir()) == ["job_id=job-000", "job_id=job-001"]
    ddl = schema(fa, "--ddl", "duckdb", "--location", str(parted), "--partition-by", "job_id")
    con.execute(ddl)
    view = describe(con, "fleet_audit")
    assert comment_columns(ddl) == view
    assert view[-1] == ("job_id", "VARCHAR"), "the partition column comes last, from the folders"
    assert [n for n, _ in view].count("job_id") == 1
    assert con.execute("SELECT count(*), count(DISTINCT job_id) FROM fleet_audit").fetchone() == (ROWS, 2)
    same = con.execute(
        "SELECT count(*) FROM fleet_audit v JOIN read_parquet($p) f USING (thing_name, job_id)"
        " WHERE v.status IS NOT DISTINCT FROM f.status AND v.queued_at IS NOT DISTINCT FROM f.queued_at",
        {"p": str(demo_dir / "executions.parquet")},
    ).fetchone()[0]
    assert same == ROWS


def test_schema_table_matches_the_file(fa, arrow_schema):
    lines = schema(fa).splitlines()
    assert lines[0].split() == ["column", "arrow", "type", "nullable"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert [r[0] for r in rows] == arrow_schema.names
    for (name, ty, nullable), field in zip(rows, arrow_schema):
        assert ty == arrow_name(field.type), name
        assert nullable == ("yes" if field.nullable else "no"), name


def test_glue_table_input_matches_the_file(fa, arrow_schema):
    doc = json.loads(schema(fa, "--ddl", "glue", "--location", "s3://audit-bucket/fleet", "--partition-by", "date,job_id"))
    sd = doc["StorageDescriptor"]
    assert sd["Location"] == "s3://audit-bucket/fleet/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    want = [(f.name, hive_type(f.type)) for f in arrow_schema if f.name != "job_id"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == want
    assert doc["PartitionKeys"] == [{"Name": "date", "Type": "string"}, {"Name": "job_id", "Type": "string"}]


def test_athena_ddl_matches_the_file(fa, arrow_schema):
    ddl = schema(fa, "--ddl", "athena", "--location", "s3://audit-bucket/fleet/")
    cols = re.findall(r"^  `(\w+)` (\S+?),?$", ddl, flags=re.M)
    assert cols == [(f.name, hive_type(f.type)) for f in arrow_schema]
    assert "STORED AS PARQUET" in ddl and "LOCATION 's3://audit-bucket/fleet/'" in ddl


def audit(fa, sim, aws_env, out, *extra):
    r = subprocess.run(
        [fa, "run", "--pairs", str(out.parent / "pairs.csv"), "--out", str(out),
         "--endpoint-url", sim.url, "--rps", "0", "--quiet", *extra],
        capture_output=True, text=True, timeout=300, env=aws_env,
    )
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def partitioned_runs(fa, sim, aws_env, tmp_path_factory):
    """The same 1,200 pairs audited flat and with --partition-by date,job_id (small parts)."""
    base = tmp_path_factory.mktemp("partitioned")
    pairs = ["thing_name,job_id"] + [f"thing-{i:06d},job-{j:03d}" for i in range(300) for j in range(4)]
    (base / "pairs.csv").write_text("\n".join(pairs) + "\n")
    audit(fa, sim, aws_env, base / "flat")
    audit(fa, sim, aws_env, base / "parted", "--partition-by", "date,job_id", "--part-rows", "250")
    return base / "flat", base / "parted"


PER_RUN = {"run_id", "fetched_at", "attempts", "error_message"}


def test_duckdb_view_over_a_real_partitioned_run(fa, partitioned_runs):
    flat, parted = partitioned_runs
    folders = sorted(p.relative_to(parted).as_posix() for p in parted.glob("*/*"))
    assert len(folders) == 4 and all(re.fullmatch(r"date=\d{4}-\d\d-\d\d/job_id=job-00\d", f) for f in folders), folders
    for f in parted.glob("*/*/*.parquet"):
        assert "job_id" not in pq.read_schema(f).names, f
    ddl = schema(fa, "--ddl", "duckdb", "--location", str(parted), "--partition-by", "date,job_id")
    con = duckdb.connect()
    con.execute(ddl)
    view = describe(con, "fleet_audit")
    assert comment_columns(ddl) == view
    assert view[-2:] == [("date", "VARCHAR"), ("job_id", "VARCHAR")]
    cols = [n for n, _ in view if n not in PER_RUN and n != "date"]
    select = ", ".join(cols)
    got = con.execute(f"SELECT {select} FROM fleet_audit ORDER BY thing_name, job_id").fetchall()
    want = con.execute(
        f"SELECT {select} FROM read_parquet($p) ORDER BY thing_name, job_id", {"p": str(flat / "*.parquet")}
    ).fetchall()
    assert len(got) == 1200
    assert got == want
    # hive_partitioning alone (no view) reads the same rows.
    plain = con.execute(
        f"SELECT {select} FROM read_parquet($p, hive_partitioning = true) ORDER BY thing_name, job_id",
        {"p": str(parted / "**" / "*.parquet")},
    ).fetchall()
    assert plain == want


def test_report_reads_a_partitioned_run_like_a_flat_one(fa, partitioned_runs):
    flat, parted = partitioned_runs
    def counts(p):
        r = subprocess.run([fa, "report", str(p), "--json"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        return [{k: v for k, v in j.items() if k != "oldest"} for j in doc["jobs"]]
    assert counts(parted) == counts(flat)
    assert len(counts(parted)) == 4


def test_athena_and_glue_tables_match_a_real_partitioned_run(fa, partitioned_runs):
    """The table definitions for --partition-by date,job_id describe the files the run wrote: the
    columns are the files' columns (job_id is not among them), the partition keys are the folders."""
    _, parted = partitioned_runs
    files = sorted(parted.glob("*/*/*.parquet"))
    file_schema = pq.read_schema(files[0])
    keys = [seg.split("=")[0] for seg in files[0].relative_to(parted).parts[:-1]]
    assert keys == ["date", "job_id"]
    doc = json.loads(schema(fa, "--ddl", "glue", "--location", "s3://b/p/", "--partition-by", "date,job_id"))
    cols = [(c["Name"], c["Type"]) for c in doc["StorageDescriptor"]["Columns"]]
    assert cols == [(f.name, hive_type(f.type)) for f in file_schema]
    assert [k["Name"] for k in doc["PartitionKeys"]] == keys
    ddl = schema(fa, "--ddl", "athena", "--location", "s3://b/p/", "--partition-by", "date,job_id")
    body, parts = ddl.split("PARTITIONED BY")
    assert re.findall(r"^  `(\w+)` (\S+?),?$", body, flags=re.M) == cols
    assert re.findall(r"`(\w+)`", parts.split(")")[0]) == keys


def test_delta_table_definitions_run_in_duckdb_and_match_athenas_form(fa, sim, aws_env, partitioned_runs,
                                                                        tmp_path):
    """`schema --ddl duckdb-delta` run as printed in DuckDB (its delta extension from PyPI) reads the
    Delta output's rows, those of the same pairs audited flat; `--ddl athena-delta` is AWS's statement
    for a Delta table (columns come from the log: nothing but LOCATION and table_type)."""
    import glob
    import sys
    flat, _ = partitioned_runs
    out = flat.parent / "delta"
    audit(fa, sim, aws_env, out, "--partition-by", "date,job_id", "--part-rows", "250",
          "--table-format", "delta")
    ext = glob.glob(f"{sys.prefix}/lib/python3*/site-packages/duckdb_extension_delta/extensions/*/"
                    "delta.duckdb_extension")
    assert ext, "duckdb-extension-delta (scripts/requirements.txt) is not installed"
    con = duckdb.connect(config={"extension_directory": str(tmp_path / "ext")})
    con.execute(f"INSTALL '{ext[0]}'")
    ddl = schema(fa, "--ddl", "duckdb-delta", "--location", str(out))
    assert "LOAD delta;" in ddl
    con.execute(ddl)
    cols = [n for n, _ in describe(con, "fleet_audit") if n not in PER_RUN | {"date"}]
    select = ", ".join(cols)
    got = con.execute(f"SELECT {select} FROM fleet_audit ORDER BY thing_name, job_id").fetchall()
    want = con.execute(f"SELECT {select} FROM read_parquet($f) ORDER BY thing_name, job_id",
                       {"f": f"{flat}/*.parquet"}).fetchall()
    assert len(got) == 1200 and got == want
    dtypes = dict(describe(con, "fleet_audit"))
    assert dtypes["date"] == "DATE" and dtypes["fetched_at"] == "TIMESTAMP WITH TIME ZONE"

    athena = schema(fa, "--ddl", "athena-delta", "--location", "s3://my-bucket/fleet-audit")
    documented = re.compile(
        r"CREATE EXTERNAL TABLE (\w+\.)?\w+\s+LOCATION 's3://[^']+/'\s+TBLPROPERTIES \('table_type' = 'DELTA'\)")
    assert documented.fullmatch(athena.strip()), athena
    r = subprocess.run([fa, "schema", "--ddl", "athena-delta", "--location", "s3://b/p/", "--partition-by",
                        "date"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "drop --partition-by" in r.stderr
