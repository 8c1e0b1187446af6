"""The low/high split as a module: the first layer of every FD network (image in, ``(low, high)`` out, in float32).

The functional split is :mod:`freq_transforms.fourier`; this module holds its settings (and a learnable cutoff) and
the band stacking that early fusion feeds its backbone, in the package's one channel order
(:func:`freq_transforms.fourier.stack_bands`: all low channels, then all high channels).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .fourier import (MASK_SHAPES, apply_low_pass, box_bases, build_mask, check_cutoff, filtered_dims,
                      separable_low_pass, soft_low_pass_mask, spectral_fuse, stack_bands)

__all__ = ["FrequencySplit"]


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
        """``stack_bands(*self(x))``, the ``[low..., high...]`` channels, written in place (no extra copies) unless a
        gradient must flow to the input or a learnable cutoff."""
        x = x.float()
        low = self._float32_low(x)
        channels = x.shape[1]
        out = torch.empty([x.shape[0], 2 * channels] + list(x.shape[2:]), dtype=torch.float32, device=x.device)
        if torch.jit.is_tracing() or torch.is_grad_enabled() and (x.requires_grad or low.requires_grad):
            return stack_bands(low, x - low)  # autograd cannot differentiate through out=, nor ONNX export it
        out[:, :channels] = low
        torch.sub(x, low, out=out[:, channels:])
        if not torch.jit.is_scripting():
            return _with_meta_of(x, out)
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


@torch.jit.unused
def _with_meta_of(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out`` with ``x``'s MONAI metadata (a ``MetaTensor``'s affine, file names, batch flag), which a tensor made
    by ``torch.empty`` lacks: MONAI's networks pass it through, and ``SaveImaged`` names its files from it."""
    from monai.data import MetaTensor

    if not isinstance(x, MetaTensor):
        return out
    result = MetaTensor(out)
    result.copy_meta_from(x)
    return result
