#!/usr/bin/env bash
# Shows that the real AWS CLI and boto3 (from PyPI, in .venv) accept `fleet-audit sim`'s answers
# unchanged: the seed's describe-job-execution document, ResourceNotFoundException for a missing pair,
# ThrottlingException (HTTP 400) past the quota, pagination, and `fleet-audit describe` printing the
# same document as `aws iot describe-job-execution`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
cargo build --locked -q
FLEET_AUDIT_BIN="$PWD/target/debug/fleet-audit" .venv/bin/python -m pytest -v tests/clients/test_aws_clients.py "$@"
