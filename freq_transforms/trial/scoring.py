"""Score a bundle's prediction against its label on the label's own grid: Dice and HD95 in mm per class.

The trial scores every bundle's predictions itself, so the numbers mean the same thing for every bundle whatever
its own metrics are. Dice and HD95 are MONAI's (``compute_dice``, ``compute_hausdorff_distance`` with the
spacing of the label's affine, ``monai.data.utils.affine_to_spacing``); this module only loads the two files,
checks they share one grid, and one-hot encodes them.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from .wiring import TrialError

__all__ = ["score_case", "label_classes", "case_stem", "case_mean"]


def case_stem(path: str) -> str:
    """A case's name: its file name without the image extension (a prediction's name starts with it)."""
    return re.sub(r"\.(nii\.gz|nii|mha|nrrd|png)$", "", Path(path).name)


def case_mean(values: List[float]) -> float:
    """The mean over classes of one case's scores, classes where a score is undefined (NaN HD95) left out; NaN when
    none is defined."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _load(path: Path):
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:  # a trailing channel axis some writers keep
        data = data[..., 0]
    return np.rint(data).astype(np.int64), image.affine


def label_classes(label_paths: List[Path]) -> int:
    """The number of classes, background included: the largest label value over ``label_paths``, plus one."""
    return 1 + max(int(_load(path)[0].max()) for path in label_paths)


def _one_hot(labels: np.ndarray, classes: int) -> torch.Tensor:
    tensor = torch.as_tensor(labels)[None, None]
    return torch.cat([(tensor == c) for c in range(classes)], dim=1).float()


def score_case(prediction: Path, label: Path, classes: int) -> Dict[str, List[float]]:
    """``{"dice": [...], "hd95": [...]}`` for classes 1..``classes``-1 of one case. Dice of a class absent from
    both is 1; HD95 where either is empty is NaN (stored as null)."""
    from monai.data.utils import affine_to_spacing
    from monai.metrics import compute_dice, compute_hausdorff_distance

    predicted, _ = _load(prediction)
    truth, affine = _load(label)
    if predicted.shape != truth.shape:
        raise TrialError(f"the prediction {prediction.name} has shape {list(predicted.shape)}, its label "
                         f"{label.name} {list(truth.shape)}: the bundle's inference does not return predictions on "
                         "each input's grid, so the trial cannot score them there")
    y_pred, y = _one_hot(predicted, classes), _one_hot(truth, classes)
    dice = compute_dice(y_pred, y, include_background=False, ignore_empty=False)[0]
    spacing = affine_to_spacing(torch.as_tensor(affine, dtype=torch.float64), r=3).tolist()
    with warnings.catch_warnings():  # MONAI 1.6 warns about its own deprecated argument inside this call
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=False, percentile=95, spacing=spacing)[0]
    return {"dice": [float(d) for d in dice], "hd95": [float(h) if math.isfinite(float(h)) else float("nan")
                                                        for h in hd95]}
