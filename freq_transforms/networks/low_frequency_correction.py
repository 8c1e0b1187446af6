"""Late fusion, v2: class-logit corrections from the low band, computed on a coarse grid."""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["LowFrequencyCorrection", "NoCorrection"]


class LowFrequencyCorrection(nn.Module):
    """Class-logit corrections from the low band, computed on a grid ``stride`` times coarser.

    The low band holds only frequencies below ``cutoff / 2`` cycles per voxel along the axes the split
    filters, so its samples on a grid ``stride <= 1 / cutoff`` times coarser along those axes keep all of it;
    axes the split leaves alone keep stride 1, and no stride exceeds its axis. There, conv-norm-LeakyReLU
    layers read the low band (linearly interpolated to the centres of the pooled cells) together with the
    backbone's class probabilities (of the average-pooled logits). A 1x1 conv whose weights start at zero maps
    them to per-class corrections, interpolated back (``F.interpolate``, ``align_corners=False``: sample ``i``
    sits at the centre of cell ``i`` where the size divides by the stride) and added to the logits. At
    initialisation the correction is exactly zero, so a late-fusion network starts as its backbone.

    ``forward(low, logits)``: ``low`` ``(B, in_channels, *spatial)``, ``logits`` ``(B, classes, *spatial)``
    (or deep-supervision heads stacked as ``(B, heads, classes, *spatial)``, each corrected) -> corrected logits
    of the shape of ``logits``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the low band.
        classes: channels of the logits.
        features: width of the hidden layers.
        stride: the coarsening along filtered axes.
        axes: the spatial axes the split filters (default all).

    Example::

        >>> head = LowFrequencyCorrection(3, in_channels=1, classes=3)
        >>> logits = torch.rand(1, 3, 64, 64, 48)
        >>> torch.equal(head(torch.rand(1, 1, 64, 64, 48), logits), logits)  # zero at initialisation
        True
    """

    def __init__(self, spatial_dims: int, in_channels: int, classes: int, features: int = 8, stride: int = 8,
                 axes: Sequence[int] | None = None) -> None:
        super().__init__()
        self.spatial_dims, self.stride = spatial_dims, int(stride)
        self.axes: List[int] = list(range(spatial_dims)) if axes is None else [int(a) for a in axes]
        self.mode = "trilinear" if spatial_dims == 3 else "bilinear"
        act = ("leakyrelu", {"negative_slope": 0.01, "inplace": True})
        self.body = nn.Sequential(
            Convolution(spatial_dims, in_channels + classes, features, kernel_size=3, norm="instance", act=act),
            Convolution(spatial_dims, features, features, kernel_size=3, norm="instance", act=act),
        )
        self.out = Convolution(spatial_dims, features, classes, kernel_size=1, conv_only=True)
        conv = self.out.conv if hasattr(self.out, "conv") else self.out
        nn.init.zeros_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)

    def strides(self, shape: List[int]) -> List[int]:
        """The coarsening per spatial axis of an input of spatial ``shape``."""
        return [min(self.stride, n) if axis in self.axes else 1 for axis, n in enumerate(shape)]

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` averaged over its cells (a partial last cell averages the voxels it has)."""
        strides = self.strides(list(x.shape[2:]))
        if self.spatial_dims == 3:
            return F.avg_pool3d(x, strides, strides, ceil_mode=True)
        return F.avg_pool2d(x, strides, strides, ceil_mode=True)

    def resample(self, x: torch.Tensor, size: List[int]) -> torch.Tensor:
        """``x`` linearly interpolated to spatial ``size`` (cell centres to voxels, or back)."""
        return F.interpolate(x, size=size, mode=self.mode, align_corners=False)

    def forward(self, low: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() == self.spatial_dims + 3:  # deep-supervision heads stacked as (B, heads, classes, ...)
            heads = logits.shape[1]
            flat = logits.reshape([logits.shape[0] * heads] + list(logits.shape[2:]))
            return self.correct(low.repeat_interleave(heads, dim=0), flat).reshape(logits.shape)
        return self.correct(low, logits)

    def correct(self, low: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(B, classes, *spatial)`` plus the correction computed from ``low``."""
        probabilities = torch.softmax(self.pool(logits), dim=1)
        samples = self.resample(low.to(logits.dtype), list(probabilities.shape[2:]))
        correction = self.out(self.body(torch.cat([samples, probabilities], dim=1)))
        return logits + self.resample(correction, list(logits.shape[2:]))


class NoCorrection(nn.Module):
    """Stands in for :class:`LowFrequencyCorrection` where a network has none."""

    def forward(self, low: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits
