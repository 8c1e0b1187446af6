"""Intensity scaling by modality: the paper's min-max, a CT Hounsfield window, or robust percentiles."""

from __future__ import annotations

from typing import Dict, Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import (MapTransform, ScaleIntensity, ScaleIntensityRange, ScaleIntensityRangePercentiles,
                              Transform)
from monai.utils import TransformBackends

__all__ = ["INTENSITY_MODES", "IntensityScale", "IntensityScaled", "NanToZerod"]

INTENSITY_MODES = ("paper", "ct_window", "percentile")


class IntensityScale(Transform):
    """Scale an image to [0, 1] the way its modality calls for.

    * ``"paper"``: min-max of each image (the paper's choice); for CT it is set by air and bone, for QSM by
      a few streak voxels.
    * ``"ct_window"``: the Hounsfield window ``window`` mapped to [0, 1] and clipped (MONAI's spleen bundle
      uses -57..164 HU, a soft-tissue window).
    * ``"percentile"``: the ``percentiles`` of each image mapped to [0, 1] and clipped, robust to the
      heavy tails of signed QSM maps (0.5-99.5 % by default).

    Works on ``(C, H, W[, D])`` arrays or tensors (MetaTensor metadata kept).

    Example::

        >>> scale = IntensityScale("ct_window", window=(-57, 164))
        >>> scale(torch.tensor([[-1000.0, -57.0, 53.5, 164.0, 700.0]]))
        tensor([[0.0000, 0.0000, 0.5000, 1.0000, 1.0000]])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, mode: str = "paper", window: Sequence[float] = (-57.0, 164.0),
                 percentiles: Sequence[float] = (0.5, 99.5)) -> None:
        if mode not in INTENSITY_MODES:
            raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {mode!r}")
        low, high = (float(v) for v in (window if mode == "ct_window" else percentiles))
        if not low < high:
            raise ValueError(f"intensity {mode!r} needs a lower bound below the upper one, got {[low, high]}")
        if mode == "percentile" and not 0.0 <= low < high <= 100.0:
            raise ValueError(f"intensity percentiles must lie in 0..100, got {[low, high]}")
        self.mode = mode
        if mode == "paper":
            self.scale: Transform = ScaleIntensity(minv=0.0, maxv=1.0)
        elif mode == "ct_window":
            self.scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        else:
            self.scale = ScaleIntensityRangePercentiles(lower=low, upper=high, b_min=0.0, b_max=1.0, clip=True)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return self.scale(img)


class IntensityScaled(MapTransform):
    """Dictionary version of :class:`IntensityScale`.

    Example::

        >>> IntensityScaled("image", mode="percentile")({"image": torch.randn(1, 8, 8, 8)})["image"].max()
        tensor(1.)
    """

    backend = IntensityScale.backend

    def __init__(self, keys: KeysCollection, mode: str = "paper", window: Sequence[float] = (-57.0, 164.0),
                 percentiles: Sequence[float] = (0.5, 99.5), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scale = IntensityScale(mode, window, percentiles)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> Dict[Hashable, NdarrayOrTensor]:
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = self.scale(out[key])
        return out


class NanToZerod(MapTransform):
    """Replace NaN and Inf voxels of ``keys`` by 0 when ``nan_policy`` is ``"zero"``; leave them otherwise
    (``"error"``: the case checks have already refused such a file). MONAI has no NaN transform; this is
    ``torch.nan_to_num`` behind a bundle's ``nan_policy`` key, so a config needs no expression for it.

    Example::

        >>> import torch
        >>> NanToZerod("image", nan_policy="zero")({"image": torch.tensor([float("nan"), 1.0])})["image"]
        tensor([0., 1.])
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, keys: KeysCollection, nan_policy: str = "error", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.enabled = nan_policy == "zero"

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> Dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.enabled:
            for key in self.key_iterator(d):
                d[key] = torch.nan_to_num(torch.as_tensor(d[key]), 0.0, 0.0, 0.0)
        return d
