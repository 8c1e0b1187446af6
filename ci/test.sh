#!/usr/bin/env bash
# Install the package with test extras into .venv and run the test suite (CPU; about 9 min on an idle 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_env.sh test
python -m pytest -q -p no:cacheprovider --timeout 900 --durations=15 "$@"
