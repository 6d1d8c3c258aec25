#!/usr/bin/env bash
# Creates .venv (if needed) with the pinned Python tools of scripts/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s scripts/requirements.txt "$stamp" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$stamp"
fi
