#!/usr/bin/env python3
"""What users write today instead of fleet-audit: boto3 in a ThreadPoolExecutor.

Calls DescribeJobExecution for every (thing, job) pair of a things list x a jobs list (the first
--limit pairs, things in file order, every job for each), with boto3's standard retry mode, and writes
the same columns as fleet-audit (src/dataset/schema.rs) to one zstd Parquet file with pyarrow. Rows are held
in memory until the end, as such scripts usually do. It is the Python baseline of scripts/bench.sh.

    scripts/boto3_audit.py --things DIR/things.txt --jobs DIR/jobs.txt --endpoint-url URL \
        --threads 32 --limit 5000 --out audit.parquet

Credentials and region come from the usual AWS_* variables. Prints one line on stdout:
`calls=.. pairs=.. ok=.. not_found=.. errors=.. elapsed_s=.. calls_per_s=.. threads=..`.
"""
import argparse
import datetime
import itertools
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("region", pa.string()),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("thing_name", pa.string(), nullable=False),
        pa.field("requested_execution_number", pa.int64()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("fetched_at", TS, nullable=False),
        pa.field("status", pa.string()),
        pa.field("force_canceled", pa.bool_()),
        pa.field("status_details", pa.map_(pa.string(), pa.string())),
        pa.field("thing_arn", pa.string()),
        pa.field("queued_at", TS),
        pa.field("started_at", TS),
        pa.field("last_updated_at", TS),
        pa.field("execution_number", pa.int64()),
        pa.field("version_number", pa.int64()),
        pa.field("approximate_seconds_before_timed_out", pa.int64()),
    ]
)


def names(path):
    """One name a line; blank lines and # comments skipped, as fleet-audit reads lists."""
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--things", required=True)
    p.add_argument("--jobs", required=True)
    p.add_argument("--endpoint-url")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--limit", type=int, help="audit only the first N pairs")
    p.add_argument("--out", required=True, help="Parquet file to write")
    a = p.parse_args()

    jobs = list(names(a.jobs))
    pairs = ((t, j) for t in names(a.things) for j in jobs)
    if a.limit is not None:
        pairs = itertools.islice(pairs, a.limit)
    pairs = list(pairs)

    client = boto3.client(
        "iot",
        region_name=a.region,
        endpoint_url=a.endpoint_url,
        config=botocore.config.Config(
            max_pool_connections=a.threads,
            retries={"mode": "standard", "max_attempts": 5},
        ),
    )
    run_id = uuid.uuid4().hex

    def describe(pair):
        thing, job = pair
        row = {"run_id": run_id, "region": a.region, "job_id": job, "thing_name": thing}
        try:
            r = client.describe_job_execution(thingName=thing, jobId=job)
            e = r.get("execution", {})
            details = (e.get("statusDetails") or {}).get("detailsMap")
            row.update(
                outcome="ok",
                attempts=r["ResponseMetadata"].get("RetryAttempts", 0) + 1,
                status=e.get("status"),
                force_canceled=e.get("forceCanceled"),
                status_details=sorted(details.items()) if details is not None else None,
                thing_arn=e.get("thingArn"),
                queued_at=e.get("queuedAt"),
                started_at=e.get("startedAt"),
                last_updated_at=e.get("lastUpdatedAt"),
                execution_number=e.get("executionNumber"),
                version_number=e.get("versionNumber"),
                approximate_seconds_before_timed_out=e.get("approximateSecondsBeforeTimedOut"),
            )
        except botocore.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            row.update(
                outcome="not_found" if code == "ResourceNotFoundException" else "error",
                error_code=code,
                error_message=err.response.get("Error", {}).get("Message"),
                attempts=err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1,
            )
        except botocore.exceptions.BotoCoreError as err:
            row.update(outcome="error", error_code=type(err).__name__, error_message=str(err), attempts=1)
        row["fetched_at"] = datetime.datetime.now(datetime.timezone.utc)
        return row

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=a.threads) as pool:
        rows = list(pool.map(describe, pairs))
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), a.out, compression="zstd")
    elapsed = time.monotonic() - start

    by = {o: sum(1 for r in rows if r["outcome"] == o) for o in ("ok", "not_found", "error")}
    calls = sum(r["attempts"] for r in rows)
    print(
        f"calls={calls} pairs={len(rows)} ok={by['ok']} not_found={by['not_found']} errors={by['error']} "
        f"elapsed_s={elapsed:.3f} calls_per_s={calls / elapsed:.1f} threads={a.threads}"
    )
    return 1 if by["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
