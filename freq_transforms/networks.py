"""Frequency-disentangled fusion networks wrapping any MONAI segmentation backbone."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from monai.networks import nets
from monai.networks.blocks import Convolution
from torch import nn

from .fourier import (MASK_SHAPES, apply_along_axes, apply_low_pass, box_bases, build_mask, check_cutoff, filtered_dims,
                      separable_low_pass, soft_low_pass_mask, spectral_fuse)


__all__ = ["FUSIONS", "FUSE_OPS", "ARCHS", "BACKBONE_DEFAULTS", "build_backbone", "backbone_divisor",
           "input_convs", "split_input_convs", "FrequencySplit", "FrequencyBranches", "LowFrequencyCorrection",
           "cell_centres", "linear_interpolation_matrix", "FrequencyDisentangledNet"]

FUSIONS = ("none", "early", "late")
FUSE_OPS = ("spectral", "concat", "add")
ARCHS = ("v2", "paper")

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


def probe(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int],
          before_each: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """``net``'s output for a zero input of the smallest size it takes (twice its divisor, at least 16, else 32,
    64, 96 or 128 per axis), in eval mode without gradients. The input of the current attempt is
    ``probe.last_input``; ``before_each`` is called before every attempt."""
    sizes = [[max(2 * int(d), 16) for d in divisor][:spatial_dims]] + [[n] * spatial_dims for n in (32, 64, 96, 128)]
    was_training = net.training
    error: Optional[Exception] = None
    try:
        for size in sizes:
            x = torch.zeros(1, in_channels, *size)
            probe.last_input = x  # type: ignore[attr-defined]
            if before_each is not None:
                before_each()
            try:
                with torch.no_grad():
                    return net.eval()(x)
            except RuntimeError as err:  # too small for its downsampling: try a larger size
                error = err
    finally:
        net.train(was_training)
    raise ValueError(f"{type(net).__name__} ran on no probe input of {in_channels} channels up to 128 voxels per "
                     f"axis ({error})")


def input_convs(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int]) -> List[str]:
    """Names of the convs that read the network's input tensor itself (found by one small forward pass).

    For MONAI's UNet these are the first residual unit's conv and its residual conv; for SegResNet
    ``convInit``; for SwinUNETR the patch embedding and the first encoder block.
    """
    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    found: List[str] = []
    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, conv_types):
            def hook(mod: nn.Module, args: Tuple[Any, ...], name: str = name) -> None:
                current = probe.last_input  # type: ignore[attr-defined]
                if args and isinstance(args[0], torch.Tensor) and args[0].data_ptr() == current.data_ptr():
                    found.append(name)
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        probe(net, in_channels, spatial_dims, divisor, before_each=found.clear)
    finally:
        for handle in hooks:
            handle.remove()
    return sorted(set(found))


def split_input_convs(net: nn.Module, in_channels: int, spatial_dims: int, divisor: Sequence[int]) -> List[str]:
    """Let ``net`` take ``[low, high]`` (``2 * in_channels`` channels) where it took the image.

    Each conv that reads the input gets a second copy of its input weights, so at initialisation
    ``conv([low, high]) == conv(low + high) == conv(image)``: the network computes exactly what the
    plain backbone computes, and training can then weigh the two bands apart. Returns the conv names.
    """
    names = input_convs(net, in_channels, spatial_dims, divisor)
    if not names:
        raise ValueError(f"early fusion (arch='v2') found no conv reading the input of {type(net).__name__}; "
                         "use arch='paper' for this backbone")
    modules = dict(net.named_modules())
    for name in names:
        conv = modules[name]
        if conv.groups != 1:
            raise ValueError(f"early fusion (arch='v2') cannot split the grouped input conv {name!r} of "
                             f"{type(net).__name__}; use arch='paper'")
        conv.weight = nn.Parameter(torch.cat([conv.weight.data, conv.weight.data], dim=1))
        conv.in_channels = 2 * in_channels
    if isinstance(getattr(net, "in_channels", None), int):
        net.in_channels = 2 * in_channels
    return names


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
        x = x.float()
        low = self._float32_low(x)
        return low, x - low

    @torch.jit.export
    def stacked(self, x: torch.Tensor) -> torch.Tensor:
        """``torch.cat(self(x), dim=1)``, the ``[low, high]`` channels, written in place (no extra copies) unless a
        gradient must flow to the input or a learnable cutoff."""
        x = x.float()
        low = self._float32_low(x)
        channels = x.shape[1]
        out = torch.empty([x.shape[0], 2 * channels] + list(x.shape[2:]), dtype=torch.float32, device=x.device)
        if torch.jit.is_tracing() or torch.is_grad_enabled() and (x.requires_grad or low.requires_grad):
            return torch.cat([low, x - low], dim=1)  # autograd cannot differentiate through out=, nor ONNX export it
        out[:, :channels] = low
        torch.sub(x, low, out=out[:, channels:])
        return out

    def _float32_low(self, x: torch.Tensor) -> torch.Tensor:
        # the split runs in float32 whatever autocast says: cuFFT's half precision takes power-of-two sizes
        # only (48 is not), and autocast would run the matrix products in 16 bit. TorchScript needs a
        # constant device type.
        if x.is_cuda:
            with torch.autocast(device_type="cuda", enabled=False):
                low = self._low(x)
        else:
            with torch.autocast(device_type="cpu", enabled=False):
                low = self._low(x)
        return low.float()  # scripted code ignores the autocast switch on CPU

    def _low(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask_shape == "box" and self.centered and not self.learnable_cutoff:
            # the same box low-pass without full-size FFTs (several times faster at 160x160x128 on CPU)
            bases = box_bases(list(x.shape[-self.spatial_dims:]), self.fixed_cutoff, self.axes, x.device)
            return separable_low_pass(x, bases, self._dims(x))
        return apply_low_pass(x, self.mask_for(x), self._dims(x), self.centered)

    def fuse(self, low: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        other = other.float()
        return spectral_fuse(low.float(), other, self.mask_for(other), self._dims(other), self.centered)


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


def cell_centres(size: int, stride: int, device: torch.device) -> torch.Tensor:
    """Centres of the cells ``avg_pool(kernel=stride, ceil_mode=True)`` averages over an axis of ``size`` voxels
    (the last cell may be partial): ``(start + end - 1) / 2`` for cells ``[k * stride, min((k + 1) * stride, size))``."""
    starts = torch.arange(0, size, stride, device=device, dtype=torch.float32)
    ends = torch.clamp(starts + stride, max=float(size))
    return (starts + ends - 1.0) / 2.0


def linear_interpolation_matrix(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(len(source), len(target))`` matrix of 1-D linear interpolation from values at the increasing positions
    ``source`` to the positions ``target`` (held constant beyond the first and last source position).

    ``source`` must be evenly spaced except for its last step, which may be shorter (as :func:`cell_centres` of a
    partial last cell). ``F.interpolate`` places coarse samples on a uniform grid (``align_corners=False``: sample
    ``i`` at ``(i + 0.5) * full / coarse - 0.5``); this takes the positions given, so samples and pooled cells agree
    on where they are. Built from element-wise operations only, so it exports to ONNX.
    """
    count = source.shape[0]
    if count == 1:
        return torch.ones(1, target.shape[0], device=target.device, dtype=torch.float32)
    clamped = torch.clamp(target, min=float(source[0]), max=float(source[-1]))
    step = source[1] - source[0]
    left = torch.clamp(torch.floor((clamped - source[0]) / step), min=0.0, max=float(count - 2)).long()
    weight = (clamped - source[left]) / (source[left + 1] - source[left])
    rows = torch.arange(count, device=target.device)[:, None]
    return (rows == left[None, :]).float() * (1.0 - weight)[None, :] + \
        (rows == (left + 1)[None, :]).float() * weight[None, :]


class LowFrequencyCorrection(nn.Module):
    """Late fusion, v2: class-logit corrections from the low-frequency part, computed on a coarse grid.

    The low part holds only frequencies below ``cutoff / 2`` cycles per voxel, so its samples on a grid
    ``stride`` times coarser (``stride <= 1 / cutoff``) keep all of it. There, conv-norm-LeakyReLU layers
    read it together with the backbone's class probabilities (of the average-pooled logits); the low part is
    sampled at the centres of the pooled cells, and the correction is interpolated back from those centres,
    so every value is used where it was taken. A 1x1 conv
    whose weights start at zero maps them to per-class corrections, upsampled (trilinear, separable) and
    added to the backbone's logits. At initialisation the correction is exactly zero, so a late-fusion
    network starts as its backbone and the low band can only add what helps.

    ``forward(low, logits)``: ``low`` ``(B, in_channels, *spatial)``, ``logits`` ``(B, classes, *spatial)``
    -> corrected logits of the shape of ``logits``.

    Example::

        >>> head = LowFrequencyCorrection(3, in_channels=1, classes=3)
        >>> logits = torch.rand(1, 3, 64, 64, 48)
        >>> torch.equal(head(torch.rand(1, 1, 64, 64, 48), logits), logits)  # zero at initialisation
        True
    """

    def __init__(self, spatial_dims: int, in_channels: int, classes: int, features: int = 8, stride: int = 8) -> None:
        super().__init__()
        self.spatial_dims, self.stride = spatial_dims, stride
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

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 3:
            return F.avg_pool3d(x, self.stride, ceil_mode=True)
        return F.avg_pool2d(x, self.stride, ceil_mode=True)

    def sample(self, low: torch.Tensor) -> torch.Tensor:
        """``low`` at the centres of the pooled cells (linear interpolation between the two nearest voxels):
        band-limited, so these samples keep it, and they sit where the pooled probabilities do."""
        dims = list(range(2, low.dim()))
        matrices = [linear_interpolation_matrix(torch.arange(low.shape[d], device=low.device, dtype=torch.float32),
                                                cell_centres(low.shape[d], self.stride, low.device)) for d in dims]
        return apply_along_axes(low, matrices, dims, last_first=True)

    def forward(self, low: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(self._pool(logits), dim=1)
        samples = self.sample(low.to(logits.dtype))
        correction = self.out(self.body(torch.cat([samples, probabilities], dim=1)))
        return self.upsample_add(correction, logits)

    def upsample_add(self, correction: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` plus ``correction`` (one value per pooled cell) interpolated linearly from the cell centres
        to every voxel."""
        dims = list(range(2, logits.dim()))
        matrices = [linear_interpolation_matrix(cell_centres(logits.shape[d], self.stride, logits.device),
                                                torch.arange(logits.shape[d], device=logits.device,
                                                             dtype=torch.float32)) for d in dims]
        # every axis but the last, then the last one fused with the addition (one pass over full-size memory)
        correction = apply_along_axes(correction, matrices[:-1], dims[:-1]).contiguous()
        last = matrices[-1].to(logits.dtype)
        fused = torch.addmm(logits.reshape(-1, last.shape[1]), correction.reshape(-1, last.shape[0]), last)
        return fused.view(logits.shape)


class _NoCorrection(nn.Module):
    """Stands in for :class:`LowFrequencyCorrection` where a network has none."""

    def forward(self, low: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits


class _NoBranches(nn.Module):
    """Stands in for the branches of the baseline (fusion="none"), which has none."""

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return low, high


class FrequencyDisentangledNet(nn.Module):
    """Frequency-disentangled (FD) segmentation around any MONAI backbone.

    The input ``(B, in_channels, *spatial)`` is split into low and high parts (:class:`FrequencySplit`;
    the split is part of the network, in float32). ``fusion="none"`` is the plain backbone on the image
    (the baseline). Two layer layouts, chosen by ``arch``:

    ``arch="v2"`` (default): FD at the backbone's cost, starting as the backbone.

    * ``early``: low and high enter the backbone's own input convs as two channel groups
      (:func:`split_input_convs`: the per-band convs folded into the first layer, same function class
      as the paper's linear branch convs). The two weight copies start equal, so at initialisation the
      network equals the plain backbone; training can weigh the bands apart.
    * ``late``: the backbone maps the high part to class logits, as the plain backbone maps the image;
      :class:`LowFrequencyCorrection` adds low-frequency corrections to them from a head whose last
      layer starts at zero, computed on a coarse grid (the low part is band-limited). No class can be
      lost to an unnormalised fusion, and the low band can only add.

    ``arch="paper"``: the layout of the paper's released code, kept for reproduction. Each part goes
    through its own bias-free 3x3(x3) conv (``features`` channels); ``early`` fuses them before the
    backbone, ``late`` fuses conv(low) with the backbone's ``features``-channel output of conv(high)
    and a head (conv-norm-LeakyReLU, 1x1 conv) gives the logits. ``fuse``: ``"spectral"`` (released
    code: conv(low)'s spectrum replaces the low band of the other branch's), ``"concat"`` or ``"add"``.

    Args:
        backbone: a ``monai.networks.nets`` name (``"UNet"``, ``"SegResNet"``, ``"DynUNet"``,
            ``"SwinUNETR"``, ...) built with the channels this wrapper needs; a factory
            ``f(in_channels, out_channels) -> nn.Module``; or a ready module whose channels must fit
            (for ``arch="v2"`` a plain ``in_channels -> out_channels`` backbone, which early fusion adapts).
        in_channels, out_channels: image channels and number of classes.
        fusion: ``"none"``, ``"early"`` (default, as in every bundle) or ``"late"``.
        arch: ``"v2"`` or ``"paper"`` (see above).
        cutoff, mask, centered, axes: the split (see :func:`freq_transforms.fourier.low_pass_mask`).
        features: ``paper``: channels of each branch conv (paper: 8); ``v2`` late: width of the
            low-frequency head.
        fuse: fusion operator of ``arch="paper"`` (default ``"concat"``, as in every bundle; the released code's
            is ``"spectral"``); ``v2`` has none to choose.
        learnable_cutoff: train the cutoff through a soft sigmoid-edged mask.
        spatial_dims: 2 or 3.
        backbone_kwargs: extra arguments for a named backbone (override the defaults).
        pad_to_divisible: zero-pad inputs to the backbone's divisibility and crop outputs back, so
            any size works; if ``False`` such inputs raise a ``ValueError`` naming the divisor.

    The constructor arguments are kept in ``net.config`` (a plain dict), so a checkpoint can say which
    network it belongs to.

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
                 arch: str = "v2") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if fuse not in FUSE_OPS:
            raise ValueError(f"fuse must be one of {FUSE_OPS}, got {fuse!r}")
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self._config = {"backbone": backbone if isinstance(backbone, str) else type(backbone).__name__,
                        "in_channels": in_channels, "out_channels": out_channels, "fusion": fusion, "arch": arch,
                        "cutoff": cutoff, "mask": mask, "features": features, "fuse": fuse,
                        "learnable_cutoff": learnable_cutoff, "spatial_dims": spatial_dims, "centered": centered,
                        "axes": None if axes is None else list(axes), "backbone_kwargs": dict(backbone_kwargs or {})}
        self.fusion, self.fuse_op, self.spatial_dims = fusion, fuse, spatial_dims
        self.v2 = arch == "v2"
        self.in_channels, self.out_channels, self.features = in_channels, out_channels, features
        self.pad_to_divisible = pad_to_divisible
        self.split = FrequencySplit(cutoff, mask, spatial_dims, axes, centered, learnable_cutoff)
        self.branches: nn.Module = _NoBranches()
        self.head: nn.Module = nn.Identity()
        self.correction: nn.Module = _NoCorrection()
        self.divisor: List[int] = []
        if self.v2 or fusion == "none":
            self._build_v2(backbone, backbone_kwargs or {}, cutoff)
        else:
            self._build_paper(backbone, backbone_kwargs or {})

    def _build_v2(self, backbone: Backbone, backbone_kwargs: Dict[str, Any], cutoff: float) -> None:
        """The plain backbone (``none``), its input convs split in two (early v2), or a zero-started low-band
        correction of its logits (late v2)."""
        self.backbone = self._make_backbone(backbone, self.in_channels, self.out_channels, backbone_kwargs)
        self.divisor = backbone_divisor(self.backbone, self.spatial_dims)
        if self.fusion == "early" and self.v2:
            split_input_convs(self.backbone, self.in_channels, self.spatial_dims, self.divisor)
        if self.fusion == "late" and self.v2:
            stride = 2 ** max(0, min(3, int(math.floor(math.log2(1.0 / cutoff)))))  # <= 1 / cutoff, <= 8
            self.correction = LowFrequencyCorrection(self.spatial_dims, self.in_channels, self.out_channels,
                                                     self.features, stride)

    def _build_paper(self, backbone: Backbone, backbone_kwargs: Dict[str, Any]) -> None:
        """The released code's layout: a conv per band, fused before the backbone (early) or after it, then a
        head (late)."""
        self.branches = FrequencyBranches(self.spatial_dims, self.in_channels, self.features)
        fused_channels = 2 * self.features if self.fuse_op == "concat" else self.features
        backbone_in = {"early": fused_channels, "late": self.features}[self.fusion]
        backbone_out = self.features if self.fusion == "late" else self.out_channels
        self.backbone = self._make_backbone(backbone, backbone_in, backbone_out, backbone_kwargs)
        self.divisor = backbone_divisor(self.backbone, self.spatial_dims)
        if self.fusion == "late":
            self.head = self._make_head(fused_channels)

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor arguments that fix the parameter layout (a copy)."""
        return dict(self._config)

    @torch.jit.unused
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; with ``strict``, weights trained with other settings that matter (``arch``,
        ``fusion``, ``cutoff``, ...; :func:`freq_transforms.checkpoint.settings_that_matter`) stop with one line
        naming the constructor keywords to use, and the bundle overrides, whoever loads them (``monai.bundle
        ckpt_export``, MONAI Label)."""
        if strict:
            from .checkpoint import WeightsMismatchError, describe_mismatch

            problem = describe_mismatch(self, state_dict, style="python")
            if problem is not None:
                raise WeightsMismatchError(f"the weights do not fit this network: {problem}")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

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

    @torch.jit.unused
    def check_onnx_exportable(self) -> None:
        """Raise one line naming the setting when this network needs an FFT, which ONNX cannot express: a mask
        other than the centred box (the separable split is matrix products), a learnable cutoff, or the paper
        layout's spectral fuse."""
        from .bundle_checks import OnnxExportError

        config = self._config
        fft = []
        if self.fusion != "none" and (config["mask"] != "box" or not config["centered"] or config["learnable_cutoff"]):
            fft.append(f"mask={config['mask']!r}, centered={config['centered']}, "
                       f"learnable_cutoff={config['learnable_cutoff']}")
        if self.fusion != "none" and not self.v2 and self.fuse_op == "spectral":
            fft.append("fuse='spectral'")
        if fft:
            raise OnnxExportError(f"ONNX export: {'; '.join(fft)} needs an FFT, which ONNX cannot express; export with "
                            "mask='box', centered=True, a fixed cutoff and (arch='paper') fuse='concat' or 'add'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if torch.onnx.is_in_onnx_export():
                self.check_onnx_exportable()
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, *{self.spatial_dims} spatial dims), "
                             f"got {list(x.shape)}")
        if self.fusion == "none":
            return self._run_backbone(x)
        if self.v2:
            return self._forward_v2(x)
        return self._forward_paper(x)

    def _forward_v2(self, x: torch.Tensor) -> torch.Tensor:
        if self.fusion == "early":
            return self._run_backbone(self.split.stacked(x))
        low, high = self.split(x)
        return self.correction(low, self._run_backbone(high))

    def _forward_paper(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.split(x)
        low_features, high_features = self.branches(low, high)
        if self.fusion == "early":
            return self._run_backbone(self._fuse(low_features, high_features))
        return self.head(self._fuse(low_features, self._run_backbone(high_features)))
