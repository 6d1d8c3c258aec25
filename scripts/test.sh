#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (the real aws-sdk-iot against the simulator),
# then the client-compatibility tests (AWS CLI, boto3, pyarrow, DuckDB from PyPI) against the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
# Every locked package, for every platform: the Docker build-context test reads them with `cargo metadata
# --offline`, and some (object_store's TLS stack on Android/Windows) are never needed to build here.
cargo fetch --locked
# `cargo test` also builds target/debug/fleet-audit (the integration tests run it), so no second
# `cargo build`: that one would rebuild every dependency without the dev-dependencies' features.
cargo test --locked
# The benches' own asserts, each benchmark run once in test mode (test profile: the dependencies are
# those the tests built), so a bench that no longer compiles or asserts wrongly fails the suite.
cargo test --locked --benches
FLEET_AUDIT_BIN="$PWD/target/debug/fleet-audit" .venv/bin/python -m pytest -q tests/clients
