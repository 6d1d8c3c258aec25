"""Fixtures for the client-compatibility tests: the fleet-audit binary and simulators it serves."""
import json
import os
import socket
import subprocess
import pathlib
import time
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto's S3 server on a free port of loopback, and a boto3 client of it (objects the tool wrote
    are private: read them signed)."""

    def __init__(self, env):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert self.proc.poll() is None and time.monotonic() < deadline, "moto_server did not answer"
                time.sleep(0.1)
        self.s3 = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                               aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def exists(self, bucket, key) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("404", "NoSuchKey"), e
            return False

    def get_json(self, bucket, key):
        try:
            return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def keys(self, bucket, prefix):
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


