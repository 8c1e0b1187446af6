#!/usr/bin/env bash
# Install the package into .venv and run the main job: FD vs its plain backbone on hippocampus phantoms.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup_env.sh
python -m freq_transforms demo --out demo_output "$@"
