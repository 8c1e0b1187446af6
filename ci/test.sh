#!/usr/bin/env bash
# Install the package with test extras into .venv and run the test suite without the long end-to-end tests (marked
# slow; PYTEST_MARKERS=slow runs those alone, as .ci/run does after this; PYTEST_MARKERS= runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_env.sh test,ray
# one pytest-xdist worker per core (PYTEST_WORKERS=0 runs them in this process)
python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-auto}" --timeout 900 --durations=15 \
    -m "${PYTEST_MARKERS-not slow}" "$@"
