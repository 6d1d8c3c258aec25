"""The AWS CLI and boto3, unchanged, against `fleet-audit sim`; `fleet-audit describe` against the CLI;
and a dataset written by `fleet-audit run` read back independently with pyarrow and DuckDB."""
import json
import subprocess

import boto3
import botocore.config
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Sim

SEED_KEYS = ["jobId", "status", "statusDetails", "thingArn", "queuedAt", "lastUpdatedAt", "executionNumber", "versionNumber"]
MODEL_ORDER = ["jobId", "status", "forceCanceled", "statusDetails", "thingArn", "queuedAt", "startedAt",
               "lastUpdatedAt", "executionNumber", "versionNumber", "approximateSecondsBeforeTimedOut"]


def client(url, retries=3):
    return boto3.client(
        "iot", endpoint_url=url, region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": retries, "mode": "standard"}),
    )


def cli(aws_cli, env, url, *args):
    return subprocess.run([aws_cli, "iot", *args, "--endpoint-url", url], env=env, capture_output=True, text=True)


def find_pair(iot, status):
    """A (thing, job) whose execution has `status`, found through the list API."""
    for job in ["job-000", "job-001", "job-002", "job-003"]:
        page = iot.list_job_executions_for_job(jobId=job, status=status, maxResults=5)
        for s in page["executionSummaries"]:
            return s["thingArn"].split("/")[-1], job
    pytest.fail(f"no {status} execution in the fleet")


def test_cli_prints_the_seed_documents_shape(sim, aws_env, aws_cli):
    thing, job = find_pair(client(sim.url), "QUEUED")
    r = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", job, "--thing-name", thing)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    e = doc["execution"]
    assert list(doc) == ["execution"]
    for k in SEED_KEYS:
        assert k in e, k
    assert "startedAt" not in e, "QUEUED has not started"
    assert [k for k in MODEL_ORDER if k in e] == list(e), "members in model order"
    assert isinstance(e["queuedAt"], float) and e["queuedAt"] == round(e["queuedAt"], 3)
    assert e["thingArn"] == f"arn:aws:iot:us-east-1:123456789012:thing/{thing}"
    assert r.stdout.startswith('{\n    "execution": {\n        "jobId": ')


def test_missing_pair_is_resource_not_found(sim, aws_env, aws_cli):
    r = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", "job-000", "--thing-name", "no-such-thing")
    assert r.returncode != 0
    assert "An error occurred (ResourceNotFoundException) when calling the DescribeJobExecution operation" in r.stderr


def test_past_the_quota_is_throttling_exception_as_http_400(aws_env, aws_cli):
    s = Sim("--things", "10", "--jobs", "1", "--quota-rps", "0.1", "--quota-burst", "1")
    try:
        iot = client(s.url, retries=1)
        codes = []
        for _ in range(5):
            try:
                iot.describe_job_execution(jobId="job-000", thingName="thing-000001")
                codes.append("ok")
            except iot.exceptions.ThrottlingException as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
                codes.append("throttled")
            except iot.exceptions.ResourceNotFoundException:
                codes.append("not_found")
        assert "throttled" in codes, codes
        env = dict(aws_env, AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
        r = cli(aws_cli, env, s.url, "describe-job-execution", "--job-id", "job-000", "--thing-name", "thing-000001")
        r = cli(aws_cli, env, s.url, "describe-job-execution", "--job-id", "job-000", "--thing-name", "thing-000001")
        assert "ThrottlingException" in r.stderr, r.stderr
    finally:
        s.stop()


def test_boto3_pagination_lists_every_execution_once(sim):
    iot = client(sim.url)
    for job in ["job-000", "job-003"]:
        seen = []
        for page in iot.get_paginator("list_job_executions_for_job").paginate(jobId=job, PaginationConfig={"PageSize": 37}):
            seen += [s["thingArn"] for s in page["executionSummaries"]]
        assert len(seen) == len(set(seen))
        details = iot.describe_job(jobId=job)["job"]["jobProcessDetails"]
        counted = sum(v for k, v in details.items() if k.startswith("numberOf"))
        assert len(seen) == counted > 0
        # Every listed execution describes with the same status.
        for arn in seen[:20]:
            thing = arn.split("/")[-1]
            listed = iot.list_job_executions_for_thing(thingName=thing)["executionSummaries"]
            by_job = {s["jobId"]: s["jobExecutionSummary"]["status"] for s in listed}
            assert by_job[job] == iot.describe_job_execution(jobId=job, thingName=thing)["execution"]["status"]
    jobs = [j["jobId"] for p in iot.get_paginator("list_jobs").paginate(PaginationConfig={"PageSize": 3}) for j in p["jobs"]]
    assert jobs == ["job-000", "job-001", "job-002", "job-003"]


def test_bad_names_and_tokens_are_invalid_request(sim):
    iot = client(sim.url)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_job_executions_for_job(jobId="job-000", nextToken="forged")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.describe_job_execution(jobId="job:000", thingName="thing-000001")


@pytest.mark.parametrize("status", ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELED", "REJECTED", "REMOVED"])
def test_fleet_audit_describe_equals_the_aws_cli(sim, aws_env, aws_cli, fa, status):
    thing, job = find_pair(client(sim.url), status)
    want = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", job, "--thing-name", thing)
    got = subprocess.run([fa, "describe", "--endpoint-url", sim.url, "--job-id", job, "--thing-name", thing],
                         env=aws_env, capture_output=True, text=True)
    assert want.returncode == 0 and got.returncode == 0, (want.stderr, got.stderr)
    assert json.loads(got.stdout) == json.loads(want.stdout)
    # The same text, byte for byte, whatever the details map holds: describe prints its keys in the
    # answer's wire order (the SDK hands the map over unordered; `wire_order` puts it back).
    assert got.stdout == want.stdout


def test_fleet_audit_describe_error_line_matches_the_cli(sim, aws_env, aws_cli, fa):
    want = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", "job-000", "--thing-name", "ghost")
    got = subprocess.run([fa, "describe", "--endpoint-url", sim.url, "--job-id", "job-000", "--thing-name", "ghost"],
                         env=aws_env, capture_output=True, text=True)
    assert got.returncode != 0
    assert got.stderr.strip() == want.stderr.strip()


def test_run_dataset_reads_back_in_pyarrow_and_duckdb(sim, aws_env, fa, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "500", "--jobs", "3", "--seed", "3", "--write-lists", str(lists))
    try:
        out = tmp_path / "audit.parquet"
        summary = tmp_path / "summary.json"
        r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                            "--out", str(out), "--endpoint-url", s.url, "--rps", "0", "--quiet",
                            "--summary-json", str(summary)], env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        t = pq.read_table(out)
        assert t.num_rows == 1500
        assert t.schema.field("fetched_at").type == pa.timestamp("us", tz="UTC")
        assert t.schema.field("status_details").type == pa.map_(pa.string(), pa.string())
        s_json = json.loads(summary.read_text())
        assert set(s_json) >= {"pairs", "ok", "not_found", "errors", "attempts", "throttled", "elapsed_s", "calls_per_s"}
        con = duckdb.connect()
        by_outcome = dict(con.execute(f"SELECT outcome, count(*) FROM '{out}' GROUP BY outcome").fetchall())
        assert by_outcome.get("ok", 0) == s_json["ok"] and by_outcome.get("not_found", 0) == s_json["not_found"]
        assert con.execute(f"SELECT count(DISTINCT (thing_name, job_id)) FROM '{out}'").fetchone()[0] == 1500
        # Independent truth: boto3's list of each job's executions, by status.
        iot = client(s.url)
        truth = {}
        for job in ["job-000", "job-001", "job-002"]:
            for page in iot.get_paginator("list_job_executions_for_job").paginate(jobId=job):
                for e in page["executionSummaries"]:
                    st = e["jobExecutionSummary"]["status"]
                    truth[st] = truth.get(st, 0) + 1
        got = dict(con.execute(f"SELECT status, count(*) FROM '{out}' WHERE outcome = 'ok' GROUP BY status").fetchall())
        assert got == truth
    finally:
        s.stop()
