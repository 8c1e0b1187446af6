"""The layers of the paper's released code, kept for reproduction (``arch="paper"``): one bias-free conv per band,
a fuse op, and the full-resolution head of late fusion."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["FrequencyBranches", "NoBranches", "late_fusion_head", "fuse_bands"]


class FrequencyBranches(nn.Module):
    """One 3x3(x3) conv per branch, as in the paper's code (no norm or activation right after it).

    ``forward(low, high)`` maps two ``(B, in_channels, *spatial)`` tensors to two
    ``(B, features, *spatial)`` tensors. Both convs run as one grouped conv: the same weights and
    result as two separate convs, about half the time on CPU (1-channel full-resolution convs are
    memory-bound).

    Example::

        >>> branches = FrequencyBranches(3, in_channels=1, features=8)
        >>> [t.shape[1] for t in branches(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8))]
        [8, 8]
    """

    def __init__(self, spatial_dims: int, in_channels: int, features: int) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv_low = conv(in_channels, features, kernel_size=3, padding=1, bias=False)
        self.conv_high = conv(in_channels, features, kernel_size=3, padding=1, bias=False)
        self.spatial_dims, self.features = spatial_dims, features

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        weight = torch.cat([self.conv_low.weight, self.conv_high.weight], dim=0)
        stacked = torch.cat([low, high], dim=1)
        if self.spatial_dims == 3:
            both = F.conv3d(stacked, weight, padding=1, groups=2)
        else:
            both = F.conv2d(stacked, weight, padding=1, groups=2)
        return both[:, : self.features], both[:, self.features:]


class NoBranches(nn.Module):
    """Stands in for the branches where a network has none (``fusion="none"``, ``arch="v2"``)."""

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return low, high


def late_fusion_head(spatial_dims: int, in_channels: int, features: int, out_channels: int) -> nn.Module:
    """The released code's late-fusion head: conv-norm-LeakyReLU, then a 1x1 conv to the logits."""
    return nn.Sequential(
        Convolution(spatial_dims, in_channels, features, kernel_size=3, norm="instance",
                    act=("leakyrelu", {"negative_slope": 0.01, "inplace": True})),
        Convolution(spatial_dims, features, out_channels, kernel_size=1, conv_only=True),
    )


def fuse_bands(op: str, low: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``"concat"`` or ``"add"`` of the two band features (``"spectral"`` lives on the split, which has the mask)."""
    if op == "concat":
        return torch.cat([low, other], dim=1)
    return low + other
