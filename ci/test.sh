#!/usr/bin/env bash
# Install the package with test extras into .venv and run the test suite (CPU; about 9 min on an idle 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_env.sh test
# one worker per core (pytest-xdist): most of a test is a child process importing MONAI, which one core leaves idle
python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-auto}" --timeout 900 --durations=15 "$@"
