"""Frequency-disentangled fusion networks wrapping any MONAI segmentation backbone."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from monai.networks import nets
from monai.networks.blocks import Convolution
from torch import nn

from .fourier import (MASK_SHAPES, apply_low_pass, build_mask, check_cutoff, filtered_dims, soft_low_pass_mask,
                      spectral_fuse)

__all__ = ["FUSIONS", "FUSE_OPS", "BACKBONE_DEFAULTS", "build_backbone", "backbone_divisor",
           "FrequencySplit", "FrequencyBranches", "FrequencyDisentangledNet"]

FUSIONS = ("none", "early", "late")
FUSE_OPS = ("spectral", "concat", "add")

# Small-data defaults per backbone name; any keyword given in ``backbone_kwargs`` overrides them.
BACKBONE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "UNet": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2, "norm": "instance"},
    "SegResNet": {"init_filters": 8, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
    "DynUNet": {"kernel_size": (3, 3, 3, 3), "strides": (1, 2, 2, 2), "upsample_kernel_size": (2, 2, 2),
                "filters": (16, 32, 64, 128), "norm_name": "instance"},
    "SwinUNETR": {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (3, 6, 12, 24)},
    "BasicUNet": {"features": (8, 16, 32, 64, 128, 8)},
    "AttentionUnet": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2)},
}

Backbone = Union[str, nn.Module, Callable[[int, int], nn.Module]]


def build_backbone(name: str, spatial_dims: int, in_channels: int, out_channels: int,
                   **kwargs: Any) -> nn.Module:
    """Instantiate ``monai.networks.nets.<name>`` with this package's small-data defaults.

    Example: ``build_backbone("UNet", 3, 1, 2, channels=(8, 16, 32), strides=(2, 2))``.
    """
    net_cls = getattr(nets, name, None)
    if not (isinstance(net_cls, type) and issubclass(net_cls, nn.Module)):
        raise ValueError(f"backbone {name!r} is not a network in monai.networks.nets "
                         f"(known defaults: {sorted(BACKBONE_DEFAULTS)})")
    options = {**BACKBONE_DEFAULTS.get(name, {}), **kwargs}
    return net_cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **options)


def _stride_product(strides: Any, spatial_dims: int) -> List[int]:
    divisor = [1] * spatial_dims
    for stride in strides:
        per_axis = list(stride) if isinstance(stride, (list, tuple)) else [stride] * spatial_dims
        divisor = [a * int(s) for a, s in zip(divisor, per_axis)]
    return divisor


def backbone_divisor(net: nn.Module, spatial_dims: int) -> List[int]:
    """Per-axis size the backbone's input must be divisible by (1 where unknown)."""
    if isinstance(net, (nets.UNet, nets.AttentionUnet, nets.DynUNet)):
        return _stride_product(net.strides, spatial_dims)
    if isinstance(net, nets.SegResNet):
        return [2 ** (len(net.blocks_down) - 1)] * spatial_dims
    if isinstance(net, nets.BasicUNet):
        return [16] * spatial_dims
    if isinstance(net, nets.SwinUNETR):
        return [32] * spatial_dims
    return [1] * spatial_dims


class FrequencySplit(nn.Module):
    """Low/high split and spectral fusion with one (fixed or learnable) low-band mask.

    ``forward(x)`` returns ``(low, high)`` for ``x`` of shape ``(B, C, *spatial)``;
    ``fuse(low, other)`` puts ``low``'s spectrum into the low band of ``other``'s.
    """

    __jit_unused_properties__ = ["cutoff"]

    def __init__(self, cutoff: float = 0.1, mask: str = "box", spatial_dims: int = 3,
                 axes: Optional[Sequence[int]] = None, centered: bool = True,
                 learnable_cutoff: bool = False, temperature: float = 0.01) -> None:
        super().__init__()
        cutoff = check_cutoff(cutoff)
        if mask not in MASK_SHAPES:
            raise ValueError(f"mask must be one of {MASK_SHAPES}, got {mask!r}")
        if learnable_cutoff and not centered:
            raise ValueError("learnable_cutoff needs centered=True (a symmetric low-pass)")
        self.mask_shape = mask
        self.spatial_dims = spatial_dims
        self.axes: List[int] = filtered_dims(spatial_dims, spatial_dims, None if axes is None else list(axes))
        self.centered = centered
        self.learnable_cutoff = learnable_cutoff
        self.temperature = temperature
        self.fixed_cutoff = cutoff
        # the cutoff is stored as a logit so that it stays in (0, 1) while it is trained
        self.cutoff_logit = nn.Parameter(torch.tensor(math.log(cutoff / (1.0 - cutoff))),
                                         requires_grad=learnable_cutoff)

    @property
    def cutoff(self) -> float:
        """Current cutoff (trained value when ``learnable_cutoff``)."""
        return float(torch.sigmoid(self.cutoff_logit.detach()))

    def mask_for(self, x: torch.Tensor) -> torch.Tensor:
        """Mask in the spectrum layout used for ``x``, broadcastable to its spectrum."""
        spatial_shape = list(x.shape[-self.spatial_dims:])
        if self.learnable_cutoff:
            mask = soft_low_pass_mask(spatial_shape, torch.sigmoid(self.cutoff_logit), self.mask_shape,
                                      self.axes, self.centered, True, self.temperature)
        else:
            mask = build_mask(spatial_shape, self.fixed_cutoff, self.mask_shape, self.axes,
                              self.centered, self.centered, x.device)
        return mask.to(x.dtype)

    def _dims(self, x: torch.Tensor) -> List[int]:
        return [x.dim() - self.spatial_dims + a for a in self.axes]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        low = apply_low_pass(x, self.mask_for(x), self._dims(x), self.centered)
        return low, x - low

    def fuse(self, low: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return spectral_fuse(low, other, self.mask_for(other), self._dims(other), self.centered)


class FrequencyBranches(nn.Module):
    """One 3x3(x3) conv per branch, as in the paper's code (no norm or activation right after it).

    ``forward(low, high)`` maps two ``(B, in_channels, *spatial)`` tensors to two
    ``(B, features, *spatial)`` tensors. Both convs run as one grouped conv: the same weights and
    result as two separate convs, about half the time on CPU (1-channel full-resolution convs are
    memory-bound).
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


class _NoBranches(nn.Module):
    """Stands in for the branches of the baseline (fusion="none"), which has none."""

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return low, high


class FrequencyDisentangledNet(nn.Module):
    """Frequency-disentangled (FD) segmentation around any MONAI backbone.

    The input ``(B, in_channels, *spatial)`` is split into low and high parts
    (:class:`FrequencySplit`); each goes through its own conv (``features`` channels):

    * ``fusion="none"``: the plain backbone on the image (the baseline).
    * ``fusion="early"``: conv(low) and conv(high) are fused, then the backbone gives the logits.
    * ``fusion="late"``: the backbone maps conv(high) to ``features`` channels; these are fused
      with conv(low) and a small head (conv-norm-LeakyReLU, 1x1 conv) gives the logits.

    ``fuse``: ``"spectral"`` (released code: conv(low)'s spectrum replaces the low band of the other
    branch's spectrum), ``"concat"`` or ``"add"``.

    Args:
        backbone: a ``monai.networks.nets`` name (``"UNet"``, ``"SegResNet"``, ``"DynUNet"``,
            ``"SwinUNETR"``, ...) built with the channels this wrapper needs; a factory
            ``f(in_channels, out_channels) -> nn.Module``; or a ready module whose channels must fit.
        in_channels, out_channels: image channels and number of classes.
        cutoff, mask, centered, axes: the split (see :func:`freq_transforms.fourier.low_pass_mask`).
        features: channels of each branch conv (paper: 8).
        learnable_cutoff: train the cutoff through a soft sigmoid-edged mask.
        spatial_dims: 2 or 3.
        backbone_kwargs: extra arguments for a named backbone (override the defaults).
        pad_to_divisible: zero-pad inputs to the backbone's divisibility and crop outputs back, so
            any size works; if ``False`` such inputs raise a ``ValueError`` naming the divisor.

    Example::

        >>> net = FrequencyDisentangledNet("UNet", 1, 3, fusion="late")
        >>> net(torch.rand(1, 1, 33, 47, 29)).shape
        torch.Size([1, 3, 33, 47, 29])
    """

    def __init__(self, backbone: Backbone = "UNet", in_channels: int = 1, out_channels: int = 2,
                 fusion: str = "late", cutoff: float = 0.1, mask: str = "box", features: int = 8,
                 fuse: str = "spectral", learnable_cutoff: bool = False, spatial_dims: int = 3,
                 centered: bool = True, axes: Optional[Sequence[int]] = None,
                 backbone_kwargs: Optional[Dict[str, Any]] = None, pad_to_divisible: bool = True) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if fuse not in FUSE_OPS:
            raise ValueError(f"fuse must be one of {FUSE_OPS}, got {fuse!r}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.fusion, self.fuse_op, self.spatial_dims = fusion, fuse, spatial_dims
        self.in_channels, self.out_channels, self.features = in_channels, out_channels, features
        self.pad_to_divisible = pad_to_divisible
        self.split = FrequencySplit(cutoff, mask, spatial_dims, axes, centered, learnable_cutoff)
        self.branches: nn.Module = FrequencyBranches(spatial_dims, in_channels, features)
        fused_channels = 2 * features if fuse == "concat" else features
        backbone_in = {"none": in_channels, "early": fused_channels, "late": features}[fusion]
        backbone_out = features if fusion == "late" else out_channels
        self.backbone = self._make_backbone(backbone, backbone_in, backbone_out, backbone_kwargs or {})
        self.divisor: List[int] = backbone_divisor(self.backbone, spatial_dims)
        self.head = self._make_head(fused_channels) if fusion == "late" else nn.Identity()
        if fusion == "none":  # the baseline has no branches; keep the parameter count honest
            self.branches = _NoBranches()

    def _make_backbone(self, backbone: Backbone, in_channels: int, out_channels: int,
                       kwargs: Dict[str, Any]) -> nn.Module:
        if isinstance(backbone, str):
            return build_backbone(backbone, self.spatial_dims, in_channels, out_channels, **kwargs)
        if isinstance(backbone, nn.Module):
            self._check_module_channels(backbone, in_channels, out_channels)
            return backbone
        if callable(backbone):
            return backbone(in_channels, out_channels)
        raise TypeError(f"backbone must be a MONAI network name, a module or a factory, got {type(backbone).__name__}")

    def _check_module_channels(self, module: nn.Module, in_channels: int, out_channels: int) -> None:
        for attr, need in (("in_channels", in_channels), ("out_channels", out_channels)):
            have = getattr(module, attr, None)
            if isinstance(have, int) and have != need:
                raise ValueError(f"backbone {attr}={have} does not fit fusion={self.fusion!r} (needs {need}); "
                                 "pass the backbone by name or as a factory so the wrapper sets its channels")

    def _make_head(self, in_channels: int) -> nn.Module:
        return nn.Sequential(
            Convolution(self.spatial_dims, in_channels, self.features, kernel_size=3, norm="instance",
                        act=("leakyrelu", {"negative_slope": 0.01, "inplace": True})),
            Convolution(self.spatial_dims, self.features, self.out_channels, kernel_size=1, conv_only=True),
        )

    def _fuse(self, low: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        if self.fuse_op == "spectral":
            return self.split.fuse(low, other)
        if self.fuse_op == "concat":
            return torch.cat([low, other], dim=1)
        return low + other

    def _run_backbone(self, x: torch.Tensor) -> torch.Tensor:
        sizes = list(x.shape[2:])
        pads: List[int] = []
        for size, div in zip(sizes, self.divisor):
            pads.append((div - size % div) % div)
        if sum(pads) == 0:
            return self.backbone(x)
        if not self.pad_to_divisible:
            raise ValueError(f"input spatial size {sizes} must be divisible by {self.divisor} for this backbone "
                             "(or construct with pad_to_divisible=True)")
        flat: List[int] = []
        for p in pads[::-1]:  # F.pad takes the last axis first
            flat += [0, p]
        out = self.backbone(F.pad(x, flat))
        if self.spatial_dims == 3:
            return out[:, :, : sizes[0], : sizes[1], : sizes[2]]
        return out[:, :, : sizes[0], : sizes[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, *{self.spatial_dims} spatial dims), "
                             f"got {list(x.shape)}")
        if self.fusion == "none":
            return self._run_backbone(x)
        low_features, high_features = self.branches(*self.split(x))
        if self.fusion == "early":
            return self._run_backbone(self._fuse(low_features, high_features))
        return self.head(self._fuse(low_features, self._run_backbone(high_features)))
