"""`fleet-audit describe` with the AWS CLI's global options, against `aws iot describe-job-execution`
(the AWS CLI from PyPI, unchanged) on the same simulated executions: identical stdout for json, text
and table, with and without --query, the same error line for a missing execution, yaml that parses
back to the json, and AWS CLI v2's exit codes."""
import json
import socket
import subprocess
import urllib.request

import pytest
import yaml

from test_aws_clients import cli, client

QUERIES = [
    None,
    "execution.status",  # a scalar
    "[execution][*].thingArn",  # a list projection
    "execution.[jobId, status, versionNumber]",  # a multi-select list
    "execution.nope",  # a missing field
    "execution.statusDetails",  # a nested map
    "execution.{z:status,a:executionNumber,m:jobId}",  # a multiselect hash: the expression's order
    "{x:execution.{s:status,j:jobId},b:execution.executionNumber}",  # hashes nested
    "[execution][*].{t:thingArn,d:statusDetails}",  # a projection of hashes, one holding a map
]


def executions(url):
    """(label, thing, job) of executions of each shape: status details with several keys, none,
    started, force-canceled; found through the list and describe APIs."""
    iot = client(url)
    wanted = {
        "details": lambda e: len(e.get("statusDetails", {}).get("detailsMap", {})) >= 2,
        "no-details": lambda e: len(e.get("statusDetails", {}).get("detailsMap", {})) <= 1,
        "started": lambda e: "startedAt" in e,
        "force-canceled": lambda e: e.get("forceCanceled") is True,
    }
    found = {}
    for job in ["job-000", "job-001", "job-002", "job-003"]:
        for status in ["IN_PROGRESS", "QUEUED", "CANCELED", "SUCCEEDED", "FAILED"]:
            page = iot.list_job_executions_for_job(jobId=job, status=status, maxResults=25)
            for s in page["executionSummaries"]:
                thing = s["thingArn"].split("/")[-1]
                e = iot.describe_job_execution(jobId=job, thingName=thing)["execution"]
                for label, ok in wanted.items():
                    if label not in found and ok(e):
                        found[label] = (thing, job)
            if len(found) == len(wanted):
                return [(k, *v) for k, v in found.items()]
    missing = set(wanted) - set(found)
    pytest.fail(f"no execution of shape {missing} in the simulated fleet")


@pytest.fixture(scope="module")
def shapes(sim):
    return executions(sim.url)


def fa_describe(fa, env, url, thing, job, *extra):
    return subprocess.run([fa, "describe", "--endpoint-url", url, "--job-id", job, "--thing-name", thing, *extra],
                          env=env, capture_output=True, text=True)


@pytest.mark.parametrize("output", ["json", "text", "table"])
@pytest.mark.parametrize("query", QUERIES)
def test_describe_prints_what_the_aws_cli_prints(sim, aws_env, aws_cli, fa, shapes, output, query):
    extra = ["--output", output] + (["--query", query] if query else [])
    for label, thing, job in shapes:
        want = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", job, "--thing-name", thing, *extra)
        got = fa_describe(fa, aws_env, sim.url, thing, job, *extra)
        assert want.returncode == 0, want.stderr
        assert got.returncode == 0, got.stderr
        assert got.stdout == want.stdout, f"{label} {output} {query}:\n{got.stdout}\n---\n{want.stdout}"


@pytest.mark.parametrize("output", ["json", "text", "table"])
def test_a_missing_execution_gives_the_cli_error_line_and_v2_exit_code(sim, aws_env, aws_cli, fa, output):
    want = cli(aws_cli, aws_env, sim.url, "describe-job-execution", "--job-id", "job-000", "--thing-name", "ghost",
               "--output", output)
    got = fa_describe(fa, aws_env, sim.url, "ghost", "job-000", "--output", output)
    assert got.stdout == want.stdout == ""
    assert got.stderr.strip() == want.stderr.strip()
    # The PyPI CLI is v1 (255 here); v2 exits 254 when the service refused the call.
    assert want.returncode == 255 and got.returncode == 254


def test_an_endpoint_that_refuses_the_connection_reads_as_the_cli_says_it(aws_env, aws_cli, fa):
    """Issue 23, item 12: a connection failure is the AWS CLI's line, naming the URL called (a
    thing name with ':' percent-encoded, a base path kept), exit 255."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    for url in [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/base/"]:
        args = ("--job-id", "job-000", "--thing-name", "thing:0001", "--execution-number", "3")
        want = cli(aws_cli, aws_env, url, "describe-job-execution", *args)
        got = fa_describe(fa, aws_env, url, "thing:0001", "job-000", "--execution-number", "3")
        assert want.stderr.strip().startswith("Could not connect to the endpoint URL:"), want.stderr
        assert got.stderr == want.stderr, f"{got.stderr!r} != {want.stderr!r}"
        assert got.stdout == want.stdout == ""
        assert want.returncode == got.returncode == 255


def test_yaml_parses_back_to_the_json(sim, aws_env, fa, shapes):
    for label, thing, job in shapes:
        for query in QUERIES:
            q = ["--query", query] if query else []
            out = fa_describe(fa, aws_env, sim.url, thing, job, "--output", "json", *q).stdout
            # An empty answer ({}) prints nothing in json and yaml alike, as the CLI does.
            doc = json.loads(out) if out else {}
            y = fa_describe(fa, aws_env, sim.url, thing, job, "--output", "yaml", *q)
            s = fa_describe(fa, aws_env, sim.url, thing, job, "--output", "yaml-stream", *q)
            assert y.returncode == 0 and s.returncode == 0, (y.stderr, s.stderr)
            if doc == {}:
                assert y.stdout == "", (label, query, y.stdout)
            else:
                assert yaml.safe_load(y.stdout) == doc, (label, query, y.stdout)
            assert yaml.safe_load(s.stdout) == [doc], (label, query, s.stdout)


def stats(url):
    with urllib.request.urlopen(f"{url}/_sim/stats") as r:
        return json.load(r)["operations"].get("DescribeJobExecution", 0)


def test_settings_precedence_exit_codes_and_debug(sim, aws_env, fa, shapes, tmp_path):
    _, thing, job = shapes[0]
    config = tmp_path / "config"
    config.write_text("[default]\noutput = text\n")
    env = dict(aws_env, AWS_CONFIG_FILE=str(config))
    # The profile's output, then AWS_DEFAULT_OUTPUT over it, then the flag over both.
    text = fa_describe(fa, env, sim.url, thing, job, "--query", "execution.jobId")
    assert text.stdout == f"{job}\n", text.stderr
    table = fa_describe(fa, dict(env, AWS_DEFAULT_OUTPUT="json"), sim.url, thing, job, "--query", "execution.jobId")
    assert table.stdout == f'"{job}"\n'
    flag = fa_describe(fa, dict(env, AWS_DEFAULT_OUTPUT="json"), sim.url, thing, job, "--query", "execution.jobId",
                       "--output", "text")
    assert flag.stdout == f"{job}\n"

    before = stats(sim.url)
    for extra, code, words in [
        (["--output", "xml"], 252, "argument --output: Invalid choice"),
        (["--query", "execution.["], 252, "Bad value for --query execution.["),
        (["--cli-read-timeout", "-1"], 252, "argument --cli-read-timeout"),
        (["--ca-bundle", str(tmp_path / "missing.pem")], 253, "missing.pem cannot be read"),
        (["--no-such-flag"], 252, "--no-such-flag"),
    ]:
        r = fa_describe(fa, aws_env, sim.url, thing, job, *extra)
        assert r.returncode == code, (extra, r.returncode, r.stderr)
        assert words in r.stderr, (extra, r.stderr)
    assert stats(sim.url) == before, "no call made for a bad option"

    ok = fa_describe(fa, aws_env, sim.url, thing, job, "--debug", "--no-cli-pager", "--cli-connect-timeout", "5",
                     "--cli-read-timeout", "0")
    assert ok.returncode == 0, ok.stderr
    assert "DEBUG - request: GET" in ok.stderr and "DEBUG - answer: HTTP 200" in ok.stderr
    assert aws_env["AWS_SECRET_ACCESS_KEY"] not in ok.stderr
    assert "Signature=" not in ok.stderr and "<redacted>" in ok.stderr


def test_the_input_skeleton_is_the_aws_clis(aws_env, aws_cli, fa):
    """`--generate-cli-skeleton input`, byte for byte (the CLI from PyPI has no other kinds)."""
    want = subprocess.run([aws_cli, "iot", "describe-job-execution", "--generate-cli-skeleton", "input"],
                          env=aws_env, capture_output=True, text=True)
    got = subprocess.run([fa, "describe", "--generate-cli-skeleton", "input"],
                         env=aws_env, capture_output=True, text=True)
    assert want.returncode == got.returncode == 0, (want.stderr, got.stderr)
    assert got.stdout == want.stdout
