"""`run --metrics` and `report --metrics`: the file parses with Prometheus' own parser
(prometheus_client from PyPI) and its values equal the report's JSON and the run's summary."""
import json
import subprocess

import pytest

from prometheus_client.parser import text_string_to_metric_families

from conftest import Sim


def families(path):
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def samples(f):
    return {tuple(sorted(s.labels.items())): s.value for s in f.samples}


def test_run_and_report_metrics_equal_the_report_and_the_summary(aws_env, fa, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "300", "--jobs", "3", "--seed", "5", "--write-lists", str(lists))
    try:
        out, prom, summary = tmp_path / "audit", tmp_path / "run.prom", tmp_path / "summary.json"
        r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                            "--out", str(out), "--endpoint-url", s.url, "--rps", "0", "--quiet",
                            "--summary-json", str(summary), "--metrics", str(prom)],
                           env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()
    report_prom = tmp_path / "report.prom"
    rep = subprocess.run([fa, "report", str(out), "--json", "--metrics", str(report_prom)],
                         capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    run_f, rep_f = families(prom), families(report_prom)
    # The parser drops a counter's `_total` from the family name.
    assert {"fleet_audit_executions", "fleet_audit_stuck", "fleet_audit_stuck_by_cause", "fleet_audit_pairs",
            "fleet_audit_calls", "fleet_audit_throttled", "fleet_audit_run_duration_seconds",
            "fleet_audit_last_success_timestamp_seconds"} <= set(run_f)
    assert set(rep_f) == {"fleet_audit_executions", "fleet_audit_stuck", "fleet_audit_stuck_by_cause"}
    for fams in (run_f, rep_f):
        executions = samples(fams["fleet_audit_executions"])
        stuck = samples(fams["fleet_audit_stuck"])
        for job in doc["jobs"]:
            for status, n in job["by_status"].items():
                assert executions.get((("job_id", job["job_id"]), ("status", status)), 0) == n
            for cls in ["stuck_queued", "stale_in_progress", "timed_out", "near_timeout", "waiting", "no_timeout",
                        "not_found", "errors"]:
                assert stuck[(("class", cls), ("job_id", job["job_id"]))] == job[cls], (job["job_id"], cls)
        # Each stuck class by cause, zeros included: the report's causes.
        by_cause = samples(fams["fleet_audit_stuck_by_cause"])
        for job in doc["jobs"]:
            for cls in ["stuck_queued", "stale_in_progress"]:
                for cause in ["device_offline", "blocked", "not_picked_up", "no_progress", "unknown"]:
                    key = (("cause", cause), ("class", cls), ("job_id", job["job_id"]))
                    assert by_cause[key] == job["causes"][cls].get(cause, 0), key
        assert sum(executions.values()) == doc["totals"]["total"] - doc["totals"]["no_status"]
    sm = json.loads(summary.read_text())
    pairs = samples(run_f["fleet_audit_pairs"])
    assert pairs[(("outcome", "ok"),)] == sm["ok"]
    assert pairs[(("outcome", "not_found"),)] == sm["not_found"]
    assert pairs[(("outcome", "error"),)] == sm["errors"]
    assert samples(run_f["fleet_audit_calls"])[(("api", "DescribeJobExecution"),)] == sm["attempts"]
    assert samples(run_f["fleet_audit_calls"])[(("api", "context"),)] == sm["context_calls"] > 0
    assert samples(run_f["fleet_audit_throttled"])[()] == sm["throttled"]
    assert abs(samples(run_f["fleet_audit_run_duration_seconds"])[()] - sm["elapsed_s"]) < 1e-6
    assert samples(run_f["fleet_audit_last_success_timestamp_seconds"])[()] > 1.7e9


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pushgateway(tmp_path):
    """Debian's prometheus-pushgateway (installed by .ci/run) on a free loopback port."""
    import shutil
    import time
    import urllib.request
    exe = shutil.which("prometheus-pushgateway")
    assert exe, "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)"
    port = free_port()
    p = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}",
                          f"--persistence.file={tmp_path / 'pg.db'}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1)
            break
        except OSError:
            if p.poll() is not None:
                raise RuntimeError(p.stderr.read().decode())
            time.sleep(0.1)
    yield url
    p.terminate()
    p.wait(timeout=10)


def pushed(url):
    """The groups the Pushgateway holds, read back from its API: [(labels, {metric: [(labels, value)]})]."""
    import urllib.request
    with urllib.request.urlopen(f"{url}/api/v1/metrics") as r:
        data = json.load(r)["data"]
    groups = []
    for g in data:
        metrics = {}
        for name, fam in g.items():
            if isinstance(fam, dict) and "metrics" in fam:
                metrics[name] = [(m.get("labels", {}), float(m["value"])) for m in fam["metrics"] if "value" in m]
        groups.append((g["labels"], metrics))
    return groups


def test_a_push_lands_in_the_pushgateway_grouped_by_target(aws_env, fa, tmp_path, pushgateway):
    lists = tmp_path / "lists"
    s = Sim("--things", "200", "--jobs", "2", "--seed", "6", "--write-lists", str(lists))
    try:
        out, summary = tmp_path / "audit", tmp_path / "summary.json"
        r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                            "--out", str(out), "--endpoint-url", s.url, "--rps", "0", "--quiet",
                            "--region", "eu-west-1", "--summary-json", str(summary),
                            "--metrics-push", pushgateway],
                           env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "warning" not in r.stderr, r.stderr
    finally:
        s.stop()
    done = json.loads(summary.read_text())
    (labels, metrics), = pushed(pushgateway)
    assert labels == {"job": "fleet-audit", "target": "eu-west-1", "out": str(out)}
    pairs = {m["outcome"]: v for m, v in metrics["fleet_audit_pairs_total"]}
    assert pairs == {"ok": done["ok"], "not_found": done["not_found"], "error": done["errors"]}
    assert metrics["fleet_audit_run_duration_seconds"][0][1] == pytest.approx(done["elapsed_s"])
    # The report of the same dataset pushes its own group, which equals its JSON.
    rep = subprocess.run([fa, "report", str(out), "--json", "--metrics-push", pushgateway],
                         capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    groups = {tuple(sorted(l.items())): m for l, m in pushed(pushgateway)}
    report_group = groups[(("job", "fleet-audit"), ("out", str(out)))]
    executions = {(m["job_id"], m["status"]): v for m, v in report_group["fleet_audit_executions"] if v > 0}
    assert executions == {(j["job_id"], s): float(n) for j in doc["jobs"] for s, n in j["by_status"].items()
                          if n > 0}
    assert executions


def test_a_dead_pushgateway_is_a_warning_and_the_audit_succeeds(aws_env, fa, tmp_path):
    lists = tmp_path / "lists"
    s = Sim("--things", "50", "--jobs", "2", "--seed", "6", "--write-lists", str(lists))
    try:
        r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                            "--out", str(tmp_path / "audit"), "--endpoint-url", s.url, "--rps", "0", "--quiet",
                            "--metrics-push", f"http://127.0.0.1:{free_port()}"],
                           env=aws_env, capture_output=True, text=True, timeout=120)
    finally:
        s.stop()
    assert r.returncode == 0, r.stderr
    assert "warning: cannot push the metrics to http://127.0.0.1:" in r.stderr
    assert (tmp_path / "audit" / "_manifest.json").exists()


def test_a_run_against_a_baseline_writes_the_changes_the_report_finds(aws_env, fa, tmp_path):
    """`run --discover --baseline OLD --metrics`: its `fleet_audit_changes` equal `report NEW --baseline OLD`'s."""
    lists = tmp_path / "lists"
    first = Sim("--things", "300", "--jobs", "3", "--seed", "8", "--epoch", "1764000000",
                "--write-lists", str(lists), now="1764400000")
    try:
        r = subprocess.run([fa, "run", "--discover", "--jobs", str(lists / "jobs.txt"), "--out", str(tmp_path / "old"),
                            "--endpoint-url", first.url, "--rps", "0", "--list-rps", "0", "--quiet"],
                           env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        first.stop()
    # Two days later, the same fleet has moved on.
    later = Sim("--things", "300", "--jobs", "3", "--seed", "8", "--epoch", "1764000000", now="1764572800")
    prom = tmp_path / "run.prom"
    try:
        r = subprocess.run([fa, "run", "--discover", "--jobs", str(lists / "jobs.txt"), "--out", str(tmp_path / "new"),
                            "--baseline", str(tmp_path / "old"), "--metrics", str(prom),
                            "--endpoint-url", later.url, "--rps", "0", "--list-rps", "0", "--quiet"],
                           env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        later.stop()
    rep = subprocess.run([fa, "report", str(tmp_path / "new"), "--baseline", str(tmp_path / "old"), "--json"],
                         capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    changes = samples(families(prom)["fleet_audit_changes"])
    want = {(("change", k), ("job_id", j["job_id"])): float(v)
            for j in doc["changes"]["jobs"] for k, v in j.items() if k != "job_id"}
    assert changes == want, (changes, doc["changes"])
    assert sum(changes.values()) > 0, "the fleet moved: some change is counted"


def test_a_run_over_several_targets_pushes_one_group_naming_them(aws_env, fa, tmp_path, pushgateway):
    lists = tmp_path / "lists"
    s = Sim("--things", "50", "--jobs", "2", "--seed", "9", "--write-lists", str(lists))
    try:
        out, summary = tmp_path / "audit", tmp_path / "summary.json"
        r = subprocess.run([fa, "run", "--things", str(lists / "things.txt"), "--jobs", str(lists / "jobs.txt"),
                            "--out", str(out), "--regions", "eu-west-1,ap-south-1",
                            "--region-endpoint", f"eu-west-1={s.url}", "--region-endpoint", f"ap-south-1={s.url}",
                            "--rps", "0", "--quiet", "--summary-json", str(summary), "--metrics-push", pushgateway],
                           env=aws_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()
    done = json.loads(summary.read_text())
    targets = [t["target"] for t in done["targets"]]
    assert len(targets) == 2 and any("eu-west-1" in t for t in targets) and any("ap-south-1" in t for t in targets)
    (labels, metrics), = pushed(pushgateway)
    assert labels == {"job": "fleet-audit", "target": "+".join(targets), "out": str(out)}
    pairs = {m["outcome"]: v for m, v in metrics["fleet_audit_pairs_total"]}
    assert sum(pairs.values()) == 200
