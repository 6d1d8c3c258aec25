"""`run --metrics` and `report --metrics`: the file parses with Prometheus' own parser
(prometheus_client from PyPI) and its values equal the report's JSON and the run's summary."""
import json
import subprocess

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
    assert {"fleet_audit_executions", "fleet_audit_stuck", "fleet_audit_pairs", "fleet_audit_calls",
            "fleet_audit_throttled", "fleet_audit_run_duration_seconds",
            "fleet_audit_last_success_timestamp_seconds"} <= set(run_f)
    assert set(rep_f) == {"fleet_audit_executions", "fleet_audit_stuck"}
    for fams in (run_f, rep_f):
        executions = samples(fams["fleet_audit_executions"])
        stuck = samples(fams["fleet_audit_stuck"])
        for job in doc["jobs"]:
            for status, n in job["by_status"].items():
                assert executions.get((("job_id", job["job_id"]), ("status", status)), 0) == n
            for cls in ["stuck_queued", "stale_in_progress", "timed_out", "near_timeout", "not_found", "errors"]:
                assert stuck[(("class", cls), ("job_id", job["job_id"]))] == job[cls], (job["job_id"], cls)
        assert sum(executions.values()) == doc["totals"]["total"] - doc["totals"]["no_status"]
    sm = json.loads(summary.read_text())
    pairs = samples(run_f["fleet_audit_pairs"])
    assert pairs[(("outcome", "ok"),)] == sm["ok"]
    assert pairs[(("outcome", "not_found"),)] == sm["not_found"]
    assert pairs[(("outcome", "error"),)] == sm["errors"]
    assert samples(run_f["fleet_audit_calls"])[(("api", "DescribeJobExecution"),)] == sm["attempts"]
    assert samples(run_f["fleet_audit_throttled"])[()] == sm["throttled"]
    assert abs(samples(run_f["fleet_audit_run_duration_seconds"])[()] - sm["elapsed_s"]) < 1e-6
    assert samples(run_f["fleet_audit_last_success_timestamp_seconds"])[()] > 1.7e9
