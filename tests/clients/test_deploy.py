"""deploy/ checked without a cluster or a Docker engine: the Kubernetes manifests and the Batch job
definition parse and agree with each other and with the Dockerfile, the Dockerfile copies what Cargo
needs, and the shell line both schedulers run is executed for every index with the real binary against
the simulator (paths moved under a temporary directory): the shards' union is the whole input."""
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess

import duckdb
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def k8s():
    docs = [d for f in ("base.yaml", "indexed-job.yaml", "cronjob.yaml")
            for d in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert len(kinds) == len(docs), "one object of each kind"
    return kinds


@pytest.fixture(scope="module")
def schedule():
    return json.loads((DEPLOY / "aws" / "schedule.json").read_text())


@pytest.fixture(scope="module")
def batch():
    return json.loads((DEPLOY / "batch" / "job-definition.json").read_text())


def dockerfile_stages():
    """[(stage name, [instruction lines])] of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, flags=re.I)
            stages.append((m.group(1), []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def container(job):
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def env_of(pairs):
    return {e["name"]: e["value"] for e in pairs}


def test_indexed_job_is_consistent(k8s):
    job = k8s["Job"]
    spec = job["spec"]
    pod = spec["template"]["spec"]
    c = container(job)
    env = env_of(c["env"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(env["SHARDS"])
    # Per-index retries and a failure policy need restartPolicy Never; one writer per shard directory.
    assert spec["backoffLimitPerIndex"] >= 1
    assert pod["restartPolicy"] == "Never"
    assert spec["podReplacementPolicy"] == "Failed"
    # Exit codes 2 (bad input) and 4 (complete with error rows) fail the index at once: a retry
    # cannot fix either. The rule must be there (a loop over the rules passes when it is deleted).
    rules = spec["podFailurePolicy"]["rules"]
    by_codes = [r for r in rules if "onExitCodes" in r]
    assert len(by_codes) == 1, rules
    rule = by_codes[0]
    assert rule["action"] == "FailIndex"
    assert rule["onExitCodes"]["containerName"] == c["name"]
    assert rule["onExitCodes"]["operator"] == "In"
    assert set(rule["onExitCodes"]["values"]) == {2, 4}
    # An evicted or preempted pod is retried without counting.
    assert any(
        r["action"] == "Ignore"
        and {"type": "DisruptionTarget"} in r.get("onPodConditions", [])
        for r in rules
    ), rules
    # Credentials from IRSA.
    sa = k8s["ServiceAccount"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    # Inputs from the ConfigMap, output to the PVC, every mount backed by a volume.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["input"]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    assert volumes["output"]["persistentVolumeClaim"]["claimName"] == k8s["PersistentVolumeClaim"]["metadata"]["name"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/input"] == "input" and mounts["/output"] == "output"
    assert set(k8s["ConfigMap"]["data"]) == {"things.txt", "jobs.txt"}
    # The shell puts the index into the path; exec makes fleet-audit PID 1 (it gets SIGTERM).
    assert c["command"] == ["/bin/sh", "-c"]
    script = c["args"][0]
    assert "--shard \"auto/${SHARDS}\"" in script and "--resume" in script
    assert "--out \"/output/shard-${JOB_COMPLETION_INDEX}\"" in script
    assert re.search(r"^\s*exec fleet-audit run", script, flags=re.M)
    # The image's user can write the volume.
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 10001


def test_batch_job_definition_is_consistent(batch):
    assert batch["type"] == "container"
    cp = batch["containerProperties"]
    # Batch sets the command, never the entrypoint: the image is the Dockerfile's `batch` stage (sh -c).
    assert cp["image"].endswith(":batch")
    (script,) = cp["command"]
    assert "--shard \"auto/${SHARDS}\"" in script and "--resume" in script
    assert "--out \"/output/shard-${AWS_BATCH_JOB_ARRAY_INDEX}\"" in script
    assert script.lstrip().startswith("set -eu;") and "exec fleet-audit run" in script
    assert cp["jobRoleArn"].startswith("arn:aws:iam::")
    volumes = {v["name"] for v in cp["volumes"]}
    assert {m["sourceVolume"] for m in cp["mountPoints"]} <= volumes
    assert {m["containerPath"] for m in cp["mountPoints"]} == {"/input", "/output"}
    # AWS Batch reserves AWS_BATCH_* for itself.
    assert not any(e["name"].startswith("AWS_BATCH") for e in cp["environment"])
    rs = batch["retryStrategy"]
    assert 1 < rs["attempts"] <= 10
    exits = {e.get("onExitCode"): e["action"] for e in rs["evaluateOnExit"]}
    assert exits["2"] == exits["4"] == "EXIT"
    assert rs["evaluateOnExit"][-1] == {"onReason": "*", "action": "RETRY"}


def test_dockerfile_matches_the_repository():
    stages = dict(dockerfile_stages())
    assert list(stages)[-1] == "runtime", "the default target is the last stage"
    assert 'ENTRYPOINT ["fleet-audit"]' in stages["runtime"]
    assert 'ENTRYPOINT ["/bin/sh", "-c"]' in stages["batch"]
    builder = stages["builder"]
    copied = []
    for line in builder:
        if line.startswith("COPY "):
            copied += line.split()[1:-1]
    for src in copied:
        assert (ROOT / src).exists(), src
    assert any("cargo build --release --locked" in line for line in builder)
    assert any("target/release/fleet-audit" in line for line in builder)
    # Cargo refuses a manifest whose declared bench files are missing: they must be copied.
    benches = re.findall(r'\[\[bench\]\]\s*name\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text())
    assert benches and "benches" in copied
    for b in benches:
        assert (ROOT / "benches" / f"{b}.rs").exists(), b
    assert not (ROOT / "build.rs").exists() or "build.rs" in copied
    base = stages["base"]
    assert any("ca-certificates" in line for line in base)
    assert "USER 10001:10001" in base
    assert any("/usr/local/bin/fleet-audit" in line for line in base)
    # The build context filter lets through exactly what is copied.
    ignore = [l for l in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert ignore[0] == "*"
    assert {l.lstrip("!").rstrip("/") for l in ignore[1:]} == set(copied)


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not on PATH")
def test_the_build_context_is_a_loadable_locked_package(tmp_path):
    """`cargo metadata --locked` on a copy holding only what the Dockerfile copies."""
    for src in ("Cargo.toml", "Cargo.lock", "src", "benches"):
        p = ROOT / src
        (shutil.copytree if p.is_dir() else shutil.copy)(p, tmp_path / src)
    r = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    pkg = next(p for p in json.loads(r.stdout)["packages"] if p["name"] == "fleet-audit")
    assert any(t["kind"] == ["bin"] and t["name"] == "fleet-audit" for t in pkg["targets"])


def run_shard_script(script, index_var, index, env, tmp, fa):
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "fleet-audit"
    if not link.exists():
        link.symlink_to(fa)
    script = script.replace("/input/", f"{tmp}/input/").replace("/output", f"{tmp}/output")
    full = dict(env)
    full["PATH"] = f"{bindir}:{os.environ['PATH']}"
    full[index_var] = str(index)
    return subprocess.run(["/bin/sh", "-c", script], env=full, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("scheduler", ["k8s", "batch"])
def test_every_index_of_the_shell_line_covers_the_input_once(scheduler, k8s, batch, fa, sim, aws_env, tmp_path):
    if scheduler == "k8s":
        c = container(k8s["Job"])
        script, env, var = c["args"][0], env_of(c["env"]), "JOB_COMPLETION_INDEX"
    else:
        cp = batch["containerProperties"]
        script, env, var = cp["command"][0], env_of(cp["environment"]), "AWS_BATCH_JOB_ARRAY_INDEX"
    (tmp_path / "input").mkdir()
    for name, body in k8s["ConfigMap"]["data"].items():
        (tmp_path / "input" / name).write_text(body)
    things = k8s["ConfigMap"]["data"]["things.txt"].split()
    jobs = k8s["ConfigMap"]["data"]["jobs.txt"].split()
    full_env = dict(aws_env, **env, AWS_ENDPOINT_URL=sim.url)
    n = int(env["SHARDS"])
    for k in range(n):
        r = run_shard_script(script, var, k, full_env, tmp_path, fa)
        assert r.returncode == 0, r.stderr
        parts = list((tmp_path / "output" / f"shard-{k}").glob("part-*.parquet"))
        assert parts and all(f"-s{k}of{n}-" in p.name for p in parts)
        summary = json.loads((tmp_path / "output" / "_summaries" / f"shard-{k}.json").read_text())
        assert summary["complete"]
    # A retried index resumes its directory, finds it complete, and succeeds without a call.
    r = run_shard_script(script, var, 0, full_env, tmp_path, fa)
    assert r.returncode == 0, r.stderr
    assert "already complete" in r.stderr
    con = duckdb.connect()
    pairs = con.execute(
        "SELECT thing_name, job_id, count(*) FROM read_parquet($glob) GROUP BY ALL",
        {"glob": f"{tmp_path}/output/**/*.parquet"},
    ).fetchall()
    assert sorted((t, j) for t, j, _ in pairs) == sorted((t, j) for t in things for j in jobs)
    assert all(c == 1 for _, _, c in pairs), "no pair twice"


def cron_container(k8s):
    (c,) = k8s["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return c


def test_the_cronjob_is_the_indexed_job_once_a_day(k8s):
    cron = k8s["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] > 0
    assert len(cron["schedule"].split()) == 5
    job = cron["jobTemplate"]["spec"]
    one_off = k8s["Job"]["spec"]
    for key in ("completionMode", "completions", "parallelism", "backoffLimitPerIndex",
                "podReplacementPolicy", "podFailurePolicy"):
        assert job[key] == one_off[key], key
    c = cron_container(k8s)
    assert job["completions"] == int(env_of(c["env"])["SHARDS"])
    pod, one_pod = job["template"]["spec"], one_off["template"]["spec"]
    assert pod["serviceAccountName"] == one_pod["serviceAccountName"]
    assert pod["volumes"] == one_pod["volumes"]
    assert c["image"] == container(k8s["Job"])["image"]
    script = c["args"][0]
    for flag in ("--discover", "--partition-by date", "--baseline latest", "--resume", "--metrics",
                 "--table-format delta"):
        assert flag in script, flag
    assert re.search(r"^\s*exec fleet-audit run", script, flags=re.M)


def model_case(value, shape):
    """`value` with its keys in the casing of `shape`'s members (EventBridge Scheduler's universal
    targets take PascalCase; Batch's own API is camelCase); an unknown key stays as it is, so the
    validator names it."""
    if shape.type_name == "structure" and isinstance(value, dict):
        members = {k.lower(): k for k in shape.members}
        out = {}
        for k, v in value.items():
            name = members.get(k.lower(), k)
            out[name] = model_case(v, shape.members[name]) if name in shape.members else v
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [model_case(v, shape.member) for v in value]
    return value


def test_the_schedule_is_a_create_schedule_request_that_submits_the_batch_job(schedule, batch):
    import botocore.session
    from botocore.validate import ParamValidator
    session = botocore.session.get_session()
    create = session.get_service_model("scheduler").operation_model("CreateSchedule")
    report = ParamValidator().validate(schedule, create.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert schedule["ScheduleExpression"].startswith("cron(")
    target = schedule["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
    submit = json.loads(target["Input"])
    shape = session.get_service_model("batch").operation_model("SubmitJob").input_shape
    report = ParamValidator().validate(model_case(submit, shape), shape)
    assert not report.has_errors(), report.generate_report()
    assert submit["JobDefinition"] == batch["jobDefinitionName"]
    assert submit["ArrayProperties"]["Size"] == int(env_of(batch["containerProperties"]["environment"])["SHARDS"])
    (script,) = submit["ContainerOverrides"]["Command"]
    for flag in ("--discover", "--partition-by date", "--baseline latest", "--resume", "--metrics",
                 "--table-format delta"):
        assert flag in script, flag


@pytest.mark.parametrize("scheduler", ["cronjob", "schedule"])
def test_the_daily_line_runs_two_consecutive_dates(scheduler, k8s, schedule, batch, fa, aws_env, tmp_path):
    """The scheduled command of every index, on a simulated fleet and the same fleet a day later: two
    date partitions per shard, the second audited with the first as its baseline."""
    import time
    from conftest import Sim, as_if_yesterday
    if scheduler == "cronjob":
        c = cron_container(k8s)
        script, env, var = c["args"][0], env_of(c["env"]), "JOB_COMPLETION_INDEX"
    else:
        (script,) = json.loads(schedule["Target"]["Input"])["ContainerOverrides"]["Command"]
        env, var = env_of(batch["containerProperties"]["environment"]), "AWS_BATCH_JOB_ARRAY_INDEX"
    (tmp_path / "input").mkdir()
    for name, body in k8s["ConfigMap"]["data"].items():
        (tmp_path / "input" / name).write_text(body)
    jobs = k8s["ConfigMap"]["data"]["jobs.txt"].split()
    n = int(env["SHARDS"])
    now = int(time.time())
    fleet = ["--things", "1000", "--jobs", str(len(jobs)), "--seed", "23", "--active-share", "0.3",
             "--changed-share", "0.1"]
    carried = 0
    for day, extra in enumerate([[], ["--epoch", str(now - 86_400)]]):
        s = Sim(*fleet, *extra, now=str(now - 86_400 + day * 86_400))
        try:
            # The rate is not what is tested here: no limit, so a thousand executions take seconds.
            full_env = dict(aws_env, **env, AWS_ENDPOINT_URL=s.url)
            full_env["RPS_PER_SHARD"] = "0"
            for k in range(n):
                r = run_shard_script(script, var, k, full_env, tmp_path, fa)
                assert r.returncode == 0, r.stderr
                summary = json.loads((tmp_path / "output" / "_summaries" / f"daily-shard-{k}.json").read_text())
                assert summary["complete"]
                assert (tmp_path / "output" / "_metrics" / f"fleet_audit_shard_{k}.prom").exists()
                if day == 1:
                    carried += summary["carried"]
                    assert summary.get("baseline", "").endswith(f"shard-{k}/date={yesterday}")
        finally:
            s.stop()
        if day == 0:
            for k in range(n):
                yesterday, today = as_if_yesterday(tmp_path / "output" / "daily" / f"shard-{k}")
    assert carried > 0, "the second day carries the executions unchanged since the first"
    con = duckdb.connect()
    per_date = con.execute(
        "SELECT CAST(date AS VARCHAR), count(*), count(DISTINCT job_id) FROM read_parquet($glob, hive_partitioning = true) GROUP BY ALL ORDER BY 1",
        {"glob": f"{tmp_path}/output/daily/**/*.parquet"},
    ).fetchall()
    assert [d for d, _, _ in per_date] == [yesterday, today]
    assert all(j == len(jobs) for _, _, j in per_date), "every job, each date"
    sources = dict(con.execute(
        "SELECT source, count(*) FROM read_parquet($glob, hive_partitioning = true) WHERE date = $d GROUP BY ALL",
        {"glob": f"{tmp_path}/output/daily/**/*.parquet", "d": today},
    ).fetchall())
    assert sources.get("carried") == carried
    # Each shard's output is a Delta table of one commit per daily audit (a shard of no job's, empty
    # ones), and the tables together are the rows of every date, read by deltalake.
    from deltalake import DeltaTable
    dates = collections.Counter()
    for k in range(n):
        t = DeltaTable(str(tmp_path / "output" / "daily" / f"shard-{k}"))
        assert [h["operation"] for h in t.history()] == ["WRITE", "WRITE"]
        dates.update(str(d) for d in t.to_pyarrow_table().column("date").to_pylist())
    assert dict(dates) == {d: rows for d, rows, _ in per_date}


PROMETHEUS = DEPLOY / "prometheus"


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests():
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is installed by .ci/run"
    for args in (["check", "rules", "fleet-audit.rules.yml"], ["test", "rules", "fleet-audit.tests.yml"]):
        r = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout, r.stdout


def test_every_series_the_rules_use_is_one_the_tool_writes(fa, sim, aws_env, tmp_path):
    """A rule on a name the tool does not write would never fire: each metric the rules name, with
    each label value they match, is in a real run's --metrics and its report's."""
    rules = yaml.safe_load((PROMETHEUS / "fleet-audit.rules.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    names = set(re.findall(r"\b(fleet_audit_[a-z_]+)", exprs))
    (tmp_path / "t.txt").write_text("".join(f"thing-{i:06}\n" for i in range(50)))
    (tmp_path / "j.txt").write_text("job-000\njob-001\n")
    run = subprocess.run([fa, "run", "--things", str(tmp_path / "t.txt"), "--jobs", str(tmp_path / "j.txt"),
                          "--out", str(tmp_path / "a.parquet"), "--endpoint-url", sim.url, "--region",
                          "us-east-1", "--rps", "0", "--quiet", "--metrics", str(tmp_path / "run.prom")],
                         env=aws_env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rep = subprocess.run([fa, "report", str(tmp_path / "a.parquet"), "--metrics", str(tmp_path / "report.prom")],
                         capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    written = (tmp_path / "run.prom").read_text() + (tmp_path / "report.prom").read_text()
    for name in names:
        assert re.search(rf"^{name}[{{ ]", written, re.M), name
    for label in re.findall(r'(\w+)="([^"]+)"', exprs):
        assert f'{label[0]}="{label[1]}"' in written, label
