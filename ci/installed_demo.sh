#!/usr/bin/env bash
# The package as a user installs it (non-editable, fresh venv), run from outside the checkout: the demo must find
# the bundles it ships (freq_transforms.bundles) for a few iterations. About 2 minutes, most of it installing.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "torch==${TORCH_VERSION:-2.13.0}"
"$WORK/venv/bin/pip" install --quiet "$REPO"
cd "$WORK"
"$WORK/venv/bin/python" -c "import freq_transforms, pathlib; p = pathlib.Path(freq_transforms.__file__); \
assert 'site-packages' in str(p), p; print('installed at', p.parent)"
"$WORK/venv/bin/python" -m freq_transforms demo --out "$WORK/demo" --n_cases 8 --epochs 2 --val_interval 1
test -s "$WORK/demo/results.md" && test -s "$WORK/demo/demo.png"
echo "installed demo: ok"
