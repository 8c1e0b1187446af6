"""Which intensity scaling suits a modality: target contrast on phantoms (``python -m freq_transforms contrast``)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from ..intensity import INTENSITY_MODES, IntensityScale
from .phantoms import make_case

__all__ = ["phantom_contrast"]


def phantom_contrast(task: str, modes: Sequence[str] = INTENSITY_MODES, n: int = 6) -> Dict[str, float]:
    """Mean over ``n`` phantoms of ``task`` of (mean scaled target) - (mean scaled surrounding tissue), per mode.

    The surrounding tissue is the non-target head (QSM), the other soft tissue 20..80 HU (CT) or the
    non-target body (MRI): how far each scaling sets the target apart where the network has to find it."""
    result = {}
    for mode in modes:
        scale, values = IntensityScale(mode), []
        for seed in range(int(n)):
            image, label, _ = make_case(task, seed)
            if task == "spleen":
                around = (image > 20) & (image < 80) & (label == 0)
            else:
                around = (image != 0) & (label == 0)
            scaled = np.asarray(scale(torch.from_numpy(image)[None])[0])
            values.append(float(scaled[label > 0].mean() - scaled[around].mean()))
        result[mode] = float(np.mean(values))
    return result
