#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (the real aws-sdk-iot against the simulator),
# then the client-compatibility tests (AWS CLI, boto3, pyarrow, DuckDB from PyPI) against the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
cargo test --locked
cargo build --locked
FLEET_AUDIT_BIN="$PWD/target/debug/fleet-audit" .venv/bin/python -m pytest -q tests/clients
