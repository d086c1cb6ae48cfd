#!/usr/bin/env bash
# Run every test (unit, integration, e2e) the way CI does. As root on Debian/Ubuntu:
#   bash tests/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev-setup.sh
exec .venv/bin/python -m pytest -ra "$@" tests
