#!/usr/bin/env bash
# End-to-end check of every bundle in a real MONAI Label 0.8.5 server (tests/test_monailabel.py):
# phantom weights, /info, inference per bundle, one training round. Builds .venv-monailabel on first use.
# Usage: bash ci/monailabel_e2e.sh [pytest args]; MONAILABEL_E2E_TIMEOUT (seconds, default 1800) bounds it.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_monailabel.sh
timeout --kill-after=60 "${MONAILABEL_E2E_TIMEOUT:-1800}" \
  python -m pytest -q -p no:cacheprovider -m monailabel -rs tests/test_monailabel.py "$@"
