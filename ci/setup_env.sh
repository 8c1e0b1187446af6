#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the package into it.
# Usage: source ci/setup_env.sh [extra]   e.g. "test"; VENV overrides the location (default .venv).
set -euo pipefail
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
# torch first, pinned: the CPU wheel on this machine's disk (a loose torch pulls a multi-GB CUDA build)
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$PIP" install --quiet "torch==${TORCH_VERSION:-2.13.0}"
EXTRA="${1:-}"
"$PIP" install --quiet -e ".${EXTRA:+[$EXTRA]}"
export PATH="$PWD/$VENV/bin:$PATH"
