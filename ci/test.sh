#!/usr/bin/env bash
# Install the package with test extras into .venv and run the test suite (CPU; 9 min 8 s on the 2-core machine with nothing else running, 17 min 22 s beside a training job, 2026-12-04).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_env.sh test
# one pytest-xdist worker per core (PYTEST_WORKERS=0 runs them in this process)
python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-auto}" --timeout 900 --durations=15 "$@"
