"""The context columns against moto (an AWS emulator nobody here wrote): things with types,
attributes and groups, and jobs with and without an in-progress timeout, all made through boto3;
fleet-audit's `thing_type`, `thing_attributes`, `thing_groups`, `job_status` and
`job_in_progress_timeout_minutes` must equal what boto3 reads back from moto."""
import subprocess

import boto3
import duckdb
import pytest

from conftest import Moto

THINGS = [f"dev-{i:02}" for i in range(12)]


@pytest.fixture(scope="module")
def iot_moto(aws_env):
    m = Moto(aws_env)
    iot = boto3.client("iot", endpoint_url=m.url, region_name="us-east-1",
                       aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"])
    for t in ("sensor", "gateway"):
        iot.create_thing_type(thingTypeName=t)
    for g in ("eu", "canary"):
        iot.create_thing_group(thingGroupName=g)
    arns = []
    for i, name in enumerate(THINGS):
        kw = {"thingTypeName": ["sensor", "gateway"][i % 2]} if i % 4 != 3 else {}
        arns.append(iot.create_thing(thingName=name, attributePayload={
            "attributes": {"model": f"M{i % 3}", "firmware": f"1.{i % 2}.0"}}, **kw)["thingArn"])
        if i % 2 == 0:
            iot.add_thing_to_thing_group(thingGroupName="eu", thingName=name)
        if i % 3 == 0:
            iot.add_thing_to_thing_group(thingGroupName="canary", thingName=name)
    iot.create_job(jobId="with-timeout", targets=arns[:8], document="{}",
                   timeoutConfig={"inProgressTimeoutInMinutes": 45})
    iot.create_job(jobId="no-timeout", targets=arns[4:], document="{}")
    yield m, iot
    m.stop()


def test_context_columns_equal_boto3_reads_from_moto(iot_moto, fa, aws_env, tmp_path):
    m, iot = iot_moto
    (tmp_path / "things.txt").write_text("\n".join(THINGS) + "\n")
    (tmp_path / "jobs.txt").write_text("with-timeout\nno-timeout\n")
    out = tmp_path / "a.parquet"
    r = subprocess.run([fa, "run", "--things", str(tmp_path / "things.txt"), "--jobs", str(tmp_path / "jobs.txt"),
                        "--out", str(out), "--endpoint-url", m.url, "--region", "us-east-1", "--rps", "0",
                        "--quiet"], env=aws_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = duckdb.sql(f"""select thing_name, job_id, outcome, thing_type, map_entries(thing_attributes),
        thing_groups, job_status, job_in_progress_timeout_minutes from read_parquet('{out}')""").fetchall()
    assert len(rows) == 2 * len(THINGS)
    for thing, job, outcome, ttype, attrs, groups, status, timeout in rows:
        d = iot.describe_thing(thingName=thing)
        assert ttype == d.get("thingTypeName"), thing
        assert {a["key"]: a["value"] for a in attrs} == d["attributes"], thing
        want = sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"])
        assert sorted(groups) == want, thing
        j = iot.describe_job(jobId=job)["job"]
        assert status == j["status"], job
        assert timeout == j.get("timeoutConfig", {}).get("inProgressTimeoutInMinutes"), job
    # The fixture made both kinds of everything: a type and none, groups and none, a timeout and none.
    assert {r[3] for r in rows} == {"sensor", "gateway", None}
    assert any(r[5] == [] for r in rows) and any(len(r[5]) == 2 for r in rows)
    assert {r[7] for r in rows} == {45, None}
