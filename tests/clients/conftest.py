"""Fixtures for the client-compatibility tests: the fleet-audit binary and simulators it serves."""
import os
import subprocess
import pathlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOW = "1764400000"


def binary() -> str:
    b = os.environ.get("FLEET_AUDIT_BIN")
    if b:
        return b
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "fleet-audit"
        if p.exists():
            return str(p)
    raise RuntimeError("build fleet-audit first (cargo build) or set FLEET_AUDIT_BIN")


class Sim:
    def __init__(self, *args: str, now: str = NOW):
        self.proc = subprocess.Popen(
            [binary(), "sim", "--now", now, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = self.proc.stdout.readline().strip()
        assert first.startswith("listening on http://"), first
        self.url = first.removeprefix("listening on ")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_env():
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="AKIDCLIENTTEST",
        AWS_SECRET_ACCESS_KEY="client-test-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    return env


@pytest.fixture(scope="session")
def sim(aws_env):
    s = Sim("--things", "2000", "--jobs", "4", "--seed", "7")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def fa():
    return binary()


@pytest.fixture(scope="session")
def aws_cli():
    return str(ROOT / ".venv" / "bin" / "aws")


def as_if_yesterday(out):
    """Makes the audit in the dated output `out` the one a run of the day before left: its date folder
    and its manifest say the day before. Returns (yesterday, today)."""
    import datetime
    import json
    m = json.loads((out / "_manifest.json").read_text())
    today = m["date"]
    yesterday = (datetime.date.fromisoformat(today) - datetime.timedelta(days=1)).isoformat()
    if (out / f"date={today}").exists():
        (out / f"date={today}").rename(out / f"date={yesterday}")
    for p in m["parts"]:
        p["file"] = p["file"].replace(f"date={today}/", f"date={yesterday}/")
    m["date"] = yesterday
    (out / "_manifest.json").write_text(json.dumps(m))
    # A Delta table's log names the folder and the partition value: they move too (the statistics'
    # timestamps stay what the rows hold).
    for commit in sorted((out / "_delta_log").glob("*.json")):
        text = commit.read_text()
        for old, new in ((f"date={today}/", f"date={yesterday}/"),
                         (f'"date":"{today}"', f'"date":"{yesterday}"'),
                         (f'"fleetAuditDate":"{today}"', f'"fleetAuditDate":"{yesterday}"')):
            text = text.replace(old, new)
        commit.write_text(text)
    return yesterday, today
