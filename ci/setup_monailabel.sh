#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment with MONAI Label 0.8.5 beside monai 1.6.1 and this
# package, following ../shared/notes/monailabel.md. Kept apart from .venv because MONAI Label needs
# torchvision, which only imports with torch 2.14.1 (a ~5.5 GB build that pip takes from this machine's disk).
# Usage: source ci/setup_monailabel.sh   (MLVENV overrides the location, default .venv-monailabel)
set -euo pipefail
MLVENV="${MLVENV:-.venv-monailabel}"
if [ ! -x "$MLVENV/bin/python" ]; then
  python3 -m venv "$MLVENV"
fi
PIP="$MLVENV/bin/pip"
if ! "$MLVENV/bin/python" -c "import monailabel, torchvision" 2>/dev/null; then
  "$PIP" install --quiet "torch==2.14.1" "torchvision==0.29.1"
  "$PIP" install --quiet "monai==1.6.1"
  "$PIP" install --quiet --no-deps "monailabel==0.8.5" "pydicom-seg==0.4.1"
  # MONAI Label's run-time needs, by hand: its declared pins (numpy<2 via numpymaxflow, sam2) are not needed to serve
  "$PIP" install --quiet fastapi uvicorn pydantic pydantic-settings python-dotenv python-multipart httpx \
    schedule timeloop expiringdict expiring_dict cachetools watchdog pynrrd filelock passlib pyjwt bcrypt \
    requests requests-toolbelt einops pyyaml psutil scipy shapely scikit-learn scikit-image SimpleITK itk \
    girder-client jsonschema "pydicom<3" "dicomweb-client[gcp]==0.59.1"
fi
# installed, not editable: the server must find freq_transforms as a user's pip install provides it
"$PIP" install --quiet --force-reinstall --no-deps . && "$PIP" install --quiet ".[test]"
export PATH="$(cd "$MLVENV" && pwd)/bin:$PATH"  # MLVENV may be relative or absolute
