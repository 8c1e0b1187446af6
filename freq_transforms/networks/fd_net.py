"""The FD wrapper around any MONAI backbone.

The input ``(B, in_channels, *spatial)`` is split into low and high bands
(:class:`~freq_transforms.frequency_split.FrequencySplit`, part of the network, in float32). ``fusion="none"`` is
the plain backbone on the image (the baseline). Two layer layouts, chosen by ``arch``:

``arch="v2"`` (default), FD at the backbone's cost, starting as the backbone:

* ``early``: low and high enter the backbone's own input convs as two channel groups
  (:func:`~freq_transforms.networks.backbones.split_input_convs`) whose weight copies start equal, so at
  initialisation the network equals the plain backbone; training can weigh the bands apart.
* ``late``: the backbone maps the high band to class logits, and
  :class:`~freq_transforms.networks.low_frequency_correction.LowFrequencyCorrection` adds zero-started
  corrections from the low band computed on a coarse grid. No class can be lost to an unnormalised fusion.

``arch="paper"``: the layout of the paper's released code (:mod:`freq_transforms.networks.paper_layout`): each band
goes through its own bias-free conv (``features`` channels); ``early`` fuses them before the backbone, ``late``
fuses conv(low) with the backbone's output on conv(high) and a head gives the logits. ``fuse``: ``"spectral"``
(released code), ``"concat"`` or ``"add"``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..fd_options import check_choices, check_onnx_exportable
from ..frequency_split import FrequencySplit
from .backbones import (Backbone, backbone_divisor, build_backbone, check_segmentation_output, crop_each, crop_to,
                        fixed_input_size, pad_for_backbone, probe, split_input_convs)
from .low_frequency_correction import LowFrequencyCorrection, NoCorrection
from .paper_layout import FrequencyBranches, NoBranches, fuse_bands, late_fusion_head
from .recipe_carrier import RecipeCarrier

__all__ = ["FrequencyDisentangledNet"]


def _module_backbone(backbone: nn.Module, in_channels: int, out_channels: int, fusion: str) -> nn.Module:
    for attr, need in (("in_channels", in_channels), ("out_channels", out_channels)):
        have = getattr(backbone, attr, None)
        if isinstance(have, int) and have != need:
            raise ValueError(f"backbone {attr}={have} does not fit fusion={fusion!r} (needs {need}); "
                             "pass the backbone by name or as a factory so the wrapper sets its channels")
    return backbone


def make_backbone(backbone: Backbone, spatial_dims: int, in_channels: int, out_channels: int, fusion: str,
                  kwargs: Dict[str, Any]) -> nn.Module:
    """The backbone from a ``monai.networks.nets`` name, a ready module (channels checked) or a factory."""
    if isinstance(backbone, str):
        return build_backbone(backbone, spatial_dims, in_channels, out_channels, **kwargs)
    if isinstance(backbone, nn.Module):
        return _module_backbone(backbone, in_channels, out_channels, fusion)
    if callable(backbone):
        return backbone(in_channels, out_channels)
    raise TypeError(f"backbone must be a MONAI network name, a module or a factory, got {type(backbone).__name__}")


class FrequencyDisentangledNet(RecipeCarrier):
    """Frequency-disentangled (FD) segmentation around any MONAI backbone (layouts: this module's docstring).

    Args:
        backbone: a ``monai.networks.nets`` name (``"UNet"``, ...), a factory ``f(in_channels, out_channels)``,
            or a ready module whose channels fit; ``backbone_kwargs`` override a named one's defaults.
        in_channels, out_channels, spatial_dims: image channels, classes, 2 or 3.
        fusion: ``"none"``, ``"early"`` (default) or ``"late"``; arch: ``"v2"`` or ``"paper"``.
        cutoff, mask, centered, axes, learnable_cutoff: the split (:func:`freq_transforms.fourier.low_pass_mask`).
        features: ``paper``: channels of each branch conv (paper: 8); ``v2`` late: width of the correction head.
        fuse: fuse op of ``arch="paper"`` (default ``"concat"``; the released code's is ``"spectral"``).
        pad_to_divisible: pad inputs to the backbone's divisor (or, for a backbone that takes one size only,
            such as UNETR, up to that size) and crop back; else a ``ValueError``.
        probe_size: a spatial size the backbone takes (a bundle's ``roi_size``), where early v2 is checked to
            start as the backbone; default: the smallest size found. A backbone that cannot be wrapped stops
            with one line (``ValueError``) saying why.

    ``net.config`` holds the constructor arguments; ``net.state_dict()`` records them (with the training recipe
    of loaded or saved weights, ``net.recipe_json``) in its metadata (:mod:`freq_transforms.recipe`).

    Example::

        >>> net = FrequencyDisentangledNet("UNet", 1, 3)  # early fusion v2, the bundles' default
        >>> net(torch.rand(1, 1, 33, 47, 29)).shape
        torch.Size([1, 3, 33, 47, 29])
    """

    __jit_unused_properties__ = ["config"]

    def __init__(self, backbone: Backbone = "UNet", in_channels: int = 1, out_channels: int = 2,
                 fusion: str = "early", cutoff: float = 0.1, mask: str = "box", features: int = 8,
                 fuse: str = "concat", learnable_cutoff: bool = False, spatial_dims: int = 3,
                 centered: bool = True, axes: Optional[Sequence[int]] = None,
                 backbone_kwargs: Optional[Dict[str, Any]] = None, pad_to_divisible: bool = True,
                 arch: str = "v2", probe_size: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        check_choices(fusion, fuse, arch, spatial_dims)
        self._config = {"backbone": backbone if isinstance(backbone, str) else type(backbone).__name__,
                        "in_channels": in_channels, "out_channels": out_channels, "fusion": fusion, "arch": arch,
                        "cutoff": cutoff, "mask": mask, "features": features, "fuse": fuse,
                        "learnable_cutoff": learnable_cutoff, "spatial_dims": spatial_dims, "centered": centered,
                        "axes": None if axes is None else list(axes), "backbone_kwargs": dict(backbone_kwargs or {})}
        self.fusion, self.fuse_op, self.spatial_dims, self.v2 = fusion, fuse, spatial_dims, arch == "v2"
        self.in_channels, self.out_channels, self.features = in_channels, out_channels, features
        self.pad_to_divisible, self.recipe_json = pad_to_divisible, ""
        self.split = FrequencySplit(cutoff, mask, spatial_dims, axes, centered, learnable_cutoff)
        paper = fusion != "none" and not self.v2
        self.branches: nn.Module = FrequencyBranches(spatial_dims, in_channels, features) if paper else NoBranches()
        fused = 2 * features if fuse == "concat" else features
        backbone_in = (fused if fusion == "early" else features) if paper else in_channels
        backbone_out = features if paper and fusion == "late" else out_channels
        self.backbone = make_backbone(backbone, spatial_dims, backbone_in, backbone_out, fusion,
                                      dict(backbone_kwargs or {}))
        self.divisor: List[int] = backbone_divisor(self.backbone, spatial_dims)
        # the one size the backbone takes, or zeros (TorchScript cannot type an empty list attribute)
        self.fixed_size: List[int] = fixed_input_size(self.backbone) or [0] * spatial_dims
        self.head: nn.Module = late_fusion_head(spatial_dims, fused, features, out_channels) \
            if paper and fusion == "late" else nn.Identity()
        self.correction: nn.Module = NoCorrection()
        if self.v2 and fusion == "early":
            split_input_convs(self.backbone, in_channels, spatial_dims, self.divisor, probe_size)
        if self.v2 and fusion == "late":
            output = probe(self.backbone, in_channels, spatial_dims, self.divisor, size=probe_size)
            check_segmentation_output(self.backbone, output, spatial_dims)
            stride = 2 ** max(0, min(3, int(math.floor(math.log2(1.0 / cutoff)))))  # <= 1 / cutoff, <= 8
            self.correction = LowFrequencyCorrection(spatial_dims, in_channels, out_channels, features, stride,
                                                     self.split.axes)

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor arguments that fix the parameter layout (a copy)."""
        return dict(self._config)

    def _run_backbone(self, x: torch.Tensor) -> torch.Tensor:
        sizes = list(x.shape[2:])
        padded = pad_for_backbone(x, self.divisor, self.fixed_size, self.pad_to_divisible)
        out = self.backbone(padded)
        if list(padded.shape[2:]) == sizes:
            return out
        if isinstance(out, torch.Tensor):
            return crop_to(out, sizes)
        return crop_each(out, list(padded.shape[2:]), sizes)  # deep-supervision heads as a list (eager only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if torch.onnx.is_in_onnx_export():
                check_onnx_exportable(self._config)
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, *{self.spatial_dims} spatial dims), "
                             f"got {list(x.shape)}")
        if self.fusion == "none":
            return self._run_backbone(x)
        if self.v2 and self.fusion == "early":
            return self._run_backbone(self.split.stacked(x))
        low, high = self.split(x)
        if self.v2:
            logits = self._run_backbone(high)
            if isinstance(logits, torch.Tensor):
                return self.correction(low, logits)
            return self._correct_each(low, logits)
        low_features, high_features = self.branches(low, high)
        if self.fusion == "early":
            return self._run_backbone(self._fuse(low_features, high_features))
        return self.head(self._fuse(low_features, self._run_backbone(high_features)))

    @torch.jit.unused
    def _correct_each(self, low: torch.Tensor, heads: Any) -> Any:
        """Late v2 on each head of a list of deep-supervision outputs at the input's resolution; coarser heads
        (SegResNetDS, MedNeXt) pass unchanged: the low band they would be corrected from is coarser than the
        correction's own grid."""
        size = list(low.shape[2:])
        return type(heads)(self.correction(low, head) if list(head.shape[-len(size):]) == size else head
                           for head in heads)

    def _fuse(self, low: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        if self.fuse_op == "spectral":
            return self.split.fuse(low, other)
        return fuse_bands(self.fuse_op, low, other)
