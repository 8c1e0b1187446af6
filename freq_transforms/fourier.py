"""Fourier-space low/high frequency split: the functional core of frequency-disentangled learning.

Conventions
-----------
* The last ``spatial_dims`` axes of a tensor are spatial; everything before them (batch, channels)
  is carried through untouched.
* ``cutoff`` is the paper's beta: the fraction of each filtered axis's spectrum width kept in the
  low band. For the default box mask on an axis of ``n`` voxels the low band holds the
  ``round_to_odd(cutoff * n)`` frequency bins centred on zero (at least one bin, the DC term).
  An odd width keeps the mask symmetric under ``k -> -k``, so the low part of a real image is
  exactly real and the fast real FFT (``rfftn``) can be used.
* ``centered=True`` (default) is a true low-pass about the zero frequency, as the paper describes.
  ``centered=False`` reproduces the authors' released code, which never ``fftshift``-ed: its box of
  ``int(cutoff * n)`` bins sits at the centre of the *unshifted* spectrum, i.e. around the Nyquist
  frequency, so its "low" part is really the highest-frequency band. It is kept for ablations only.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch

MASK_SHAPES = ("box", "ball", "gaussian")

__all__ = ["MASK_SHAPES", "check_cutoff", "filtered_dims", "low_pass_mask", "build_mask", "soft_low_pass_mask",
           "disentangle", "apply_low_pass", "box_bases", "apply_along_axes", "separable_low_pass", "spectral_fuse",
           "stack_bands"]


def check_cutoff(cutoff: float, name: str = "cutoff") -> float:
    """Return ``cutoff`` as a float, raising ``ValueError`` unless it lies strictly inside (0, 1)."""
    value = float(cutoff)
    if not 0.0 < value < 1.0 or math.isnan(value):
        raise ValueError(f"{name} must lie strictly between 0 and 1 (fraction of the spectrum kept), got {cutoff!r}")
    return value


def _check_shape(shape: str) -> None:
    if shape not in MASK_SHAPES:
        raise ValueError(f"mask shape must be one of {MASK_SHAPES}, got {shape!r}")


def filtered_dims(ndim: int, spatial_dims: int = 3, axes: Optional[List[int]] = None) -> List[int]:
    """Tensor dimensions that are filtered: ``axes`` (spatial axis numbers, default all) mapped to ``ndim``.

    Example: ``filtered_dims(5, 3, [0, 1]) == [2, 3]`` (x and y of a B,C,X,Y,Z tensor).
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if ndim < spatial_dims:
        raise ValueError(f"input has {ndim} dims, fewer than spatial_dims={spatial_dims}")
    spatial_axes = list(range(spatial_dims)) if axes is None else [int(a) for a in axes]
    if len(spatial_axes) == 0 or len(set(spatial_axes)) != len(spatial_axes):
        raise ValueError(f"axes must be distinct spatial axis numbers, got {axes}")
    for a in spatial_axes:
        if a < 0 or a >= spatial_dims:
            raise ValueError(f"axes entries must be in [0, {spatial_dims - 1}], got {axes}")
    first = ndim - spatial_dims
    return [first + a for a in sorted(spatial_axes)]


def _frequency_distance(size: int, centered: bool, half: bool, device: torch.device) -> torch.Tensor:
    """|frequency| in cycles/sample of each FFT bin (0 .. 0.5), or for ``centered=False`` the
    distance from the unshifted array centre (index ``size // 2``) in the same units."""
    if centered:
        freqs = torch.fft.rfftfreq(size, device=device) if half else torch.fft.fftfreq(size, device=device)
        return freqs.abs()
    index = torch.arange(size, device=device, dtype=torch.float32)
    return (index - float(size // 2)).abs() / float(size)


def _box_profile(size: int, cutoff: float, centered: bool, half: bool, device: torch.device) -> torch.Tensor:
    """1-D 0/1 box of the low band along one axis."""
    if centered:
        half_width = int(math.floor((cutoff * size - 1.0) / 2.0 + 0.5))  # nearest odd width, >= 1 bin
        half_width = max(half_width, 0)
        freqs = torch.fft.rfftfreq(size, device=device) if half else torch.fft.fftfreq(size, device=device)
        bins = (freqs * size).round().abs()
        return (bins <= half_width).float()
    width = max(int(size * cutoff), 1)  # released code: int(width * beta), at the unshifted centre
    start = size // 2 - width // 2
    index = torch.arange(size, device=device)
    return ((index >= start) & (index < start + width)).float()


def _axis_view(profile: torch.Tensor, position: int, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[position] = profile.shape[0]
    return profile.reshape(shape)


def low_pass_mask(
    spatial_shape: Sequence[int],
    cutoff: float = 0.1,
    shape: str = "box",
    axes: Optional[List[int]] = None,
    centered: bool = True,
    rfft: bool = False,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Low-band mask in the (unshifted) FFT layout of an image of ``spatial_shape``.

    Args:
        spatial_shape: image size, e.g. ``(160, 160, 128)``.
        cutoff: fraction of each filtered axis's spectrum width kept in the low band (paper's beta).
        shape: ``"box"`` (paper), ``"ball"`` (ellipsoid in frequency units) or ``"gaussian"`` (soft,
            ``sigma = cutoff / 2`` cycles/sample).
        axes: spatial axes that are filtered (default: all); the mask is constant along the others.
            The released code used ``[0, 1]``.
        centered: ``True`` for a true low-pass about zero frequency; ``False`` for the released
            code's box at the centre of the unshifted spectrum (a high-frequency band).
        rfft: return the half-spectrum layout of ``torch.fft.rfftn`` (last filtered axis ``n // 2 + 1``).
        device: where to build the mask.

    Returns:
        float32 tensor with values in [0, 1], one dim per spatial axis; unfiltered axes have size 1
        (it broadcasts against the spectrum).

    Example::

        >>> low_pass_mask((8, 8), cutoff=0.4).sum()  # 3 x 3 bins around DC
        tensor(9.)
    """
    cutoff = check_cutoff(cutoff)
    _check_shape(shape)
    if rfft and not centered:
        raise ValueError("rfft layout needs a symmetric mask: use centered=True")
    spatial_axes = filtered_dims(len(spatial_shape), len(spatial_shape), axes)
    device = device if device is not None else torch.device("cpu")
    return build_mask([int(s) for s in spatial_shape], cutoff, shape, spatial_axes, centered, rfft, device)


def build_mask(spatial_shape: List[int], cutoff: float, shape: str, axes: List[int], centered: bool,
               rfft: bool, device: torch.device) -> torch.Tensor:
    """:func:`low_pass_mask` without argument checks (TorchScript-friendly); ``axes`` sorted."""
    ndim = len(spatial_shape)
    half_dim = axes[-1] if rfft else -1
    if shape == "box":
        mask = torch.ones([1] * ndim, device=device)
        for d in axes:
            mask = mask * _axis_view(_box_profile(spatial_shape[d], cutoff, centered, d == half_dim, device), d, ndim)
        return mask
    radius2 = torch.zeros([1] * ndim, device=device)
    for d in axes:
        dist = _frequency_distance(spatial_shape[d], centered, d == half_dim, device) / (cutoff / 2.0)
        radius2 = radius2 + _axis_view(dist * dist, d, ndim)
    if shape == "ball":
        return (radius2 <= 1.0).float()
    return torch.exp(-0.5 * radius2)


def soft_low_pass_mask(
    spatial_shape: List[int],
    cutoff: torch.Tensor,
    shape: str = "box",
    axes: Optional[List[int]] = None,
    centered: bool = True,
    rfft: bool = True,
    temperature: float = 0.01,
) -> torch.Tensor:
    """Differentiable low-band mask whose ``cutoff`` is a tensor (for a learnable cutoff).

    ``axes`` must be sorted spatial axis numbers (default all); no argument checks (TorchScript).
    Box and ball edges are sigmoids ``sigmoid((cutoff/2 - |f|) / temperature)`` with ``|f|`` in
    cycles/sample; ``"gaussian"`` is ``exp(-|f|^2 / (2 (cutoff/2)^2))``. Layout as in :func:`low_pass_mask`.
    """
    ndim = len(spatial_shape)
    dims: List[int] = list(range(ndim)) if axes is None else axes
    half_dim = dims[-1] if rfft else -1
    device = cutoff.device
    radius = cutoff / 2.0
    if shape == "box":
        mask = torch.ones([1] * ndim, device=device)
        for d in dims:
            dist = _frequency_distance(int(spatial_shape[d]), centered, d == half_dim, device)
            mask = mask * _axis_view(torch.sigmoid((radius - dist) / temperature), d, ndim)
        return mask
    dist2 = torch.zeros([1] * ndim, device=device)
    for d in dims:
        dist = _frequency_distance(int(spatial_shape[d]), centered, d == half_dim, device)
        dist2 = dist2 + _axis_view(dist * dist, d, ndim)
    if shape == "ball":
        return torch.sigmoid((radius - torch.sqrt(dist2 + 1e-12)) / temperature)
    return torch.exp(-0.5 * dist2 / (radius * radius))


def _as_float(x: torch.Tensor) -> torch.Tensor:
    if x.is_complex():
        raise TypeError("disentangle expects a real-valued image, got a complex tensor")
    return x if x.is_floating_point() else x.float()


def apply_low_pass(x: torch.Tensor, mask: torch.Tensor, dims: List[int], centered: bool) -> torch.Tensor:
    """Low part of ``x``: inverse FFT of the spectrum times ``mask`` over ``dims`` (real output).

    ``mask`` is in rfft layout when ``centered`` and full-FFT layout otherwise (see :func:`low_pass_mask`).
    """
    sizes = [x.shape[d] for d in dims]
    if centered:
        return torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * mask, s=sizes, dim=dims)
    return torch.fft.ifftn(torch.fft.fftn(x, dim=dims) * mask, dim=dims).real


def box_bases(spatial_shape: List[int], cutoff: float, axes: List[int], device: torch.device,
              dtype: torch.dtype = torch.float32) -> List[torch.Tensor]:
    """Orthonormal real bases of the centred box low band, one ``(n, 2h + 1)`` matrix per axis in ``axes``.

    Column 0 is the constant, then ``cos`` and ``sin`` of the kept frequencies ``1 .. h`` (the same bins as
    :func:`low_pass_mask`). An axis whose box keeps every bin gets an empty ``(n, 0)`` matrix (no filtering).
    """
    bases: List[torch.Tensor] = []
    for d in axes:
        size = int(spatial_shape[d])
        half_width = max(int(math.floor((cutoff * size - 1.0) / 2.0 + 0.5)), 0)
        if 2 * half_width + 1 >= size:
            bases.append(torch.zeros(size, 0, device=device, dtype=dtype))
            continue
        index = torch.arange(size, device=device, dtype=torch.float64)
        freqs = torch.arange(1, half_width + 1, device=device, dtype=torch.float64)
        angles = 2.0 * math.pi * index[:, None] * freqs[None, :] / size
        constant = torch.full([size, 1], 1.0 / math.sqrt(size), device=device, dtype=torch.float64)
        scale = math.sqrt(2.0 / size)
        bases.append(torch.cat([constant, scale * torch.cos(angles), scale * torch.sin(angles)], dim=1).to(dtype))
    return bases


def apply_along_axes(x: torch.Tensor, matrices: List[torch.Tensor], dims: List[int],
                     last_first: bool = False) -> torch.Tensor:
    """Multiply ``x`` along each dim ``dims[i]`` by ``matrices[i]`` (``(n_in, n_out)``; ``(n, 0)`` skips the
    axis): a separable linear map as a few thin matrix products. ``last_first`` treats the last dim first
    (best when it shrinks); otherwise it comes last, and the result is contiguous (best when it grows)."""
    order = list(range(len(dims)))
    if last_first:
        order = order[::-1]
    for i in order:
        if matrices[i].shape[1] > 0:
            last = x.dim() - 1  # positive dims: the ONNX exporter writes a negative one into Transpose as is
            moved = torch.movedim(x, dims[i], last).contiguous()
            x = torch.movedim(moved @ matrices[i].to(moved.dtype), last, dims[i])
    return x


def separable_low_pass(x: torch.Tensor, bases: List[torch.Tensor], dims: List[int]) -> torch.Tensor:
    """Low part of ``x`` for a centred box mask: projection onto the low-frequency basis of each axis.

    Equal to :func:`apply_low_pass` with the box mask (to float rounding) but without full-size FFTs:
    the image is reduced to its ``(2h + 1)`` coefficients per axis and expanded back, a few thin matrix
    products. ``bases`` from :func:`box_bases`, one per entry of ``dims``.
    """
    coefficients = apply_along_axes(x, bases, dims, last_first=True)
    return apply_along_axes(coefficients, [b.t() if b.shape[1] > 0 else b for b in bases], dims)


def _broadcast_mask(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    return mask.reshape([1] * (ndim - mask.dim()) + list(mask.shape))


def disentangle(
    x: torch.Tensor,
    cutoff: float = 0.1,
    shape: str = "box",
    axes: Optional[List[int]] = None,
    centered: bool = True,
    spatial_dims: int = 3,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` into its low- and high-frequency parts, ``low + high == x``.

    Args:
        x: real tensor ``(..., *spatial)``; the last ``spatial_dims`` axes are spatial, leading
            axes (batch, channels) are carried through. Integer input is converted to float32.
        cutoff, shape, axes, centered: see :func:`low_pass_mask`.
        spatial_dims: 2 or 3.

    Returns:
        ``(low, high)``, both real and shaped like ``x``. ``low`` is the inverse FFT of the spectrum
        inside the mask; ``high = x - low`` is the inverse FFT of the spectrum outside it.

    Example::

        >>> img = torch.rand(1, 32, 32, 24)       # C, H, W, D
        >>> low, high = disentangle(img, cutoff=0.1)
        >>> torch.allclose(low + high, img)
        True
    """
    x = _as_float(x)
    dims = filtered_dims(x.dim(), spatial_dims, axes)
    spatial_shape = list(x.shape[-spatial_dims:])
    spatial_axes = [d - (x.dim() - spatial_dims) for d in dims]
    mask = low_pass_mask(spatial_shape, cutoff, shape, spatial_axes, centered, rfft=centered, device=x.device)
    low = apply_low_pass(x, _broadcast_mask(mask, x.dim()).to(x.dtype), dims, centered)
    return low, x - low


def spectral_fuse(low: torch.Tensor, other: torch.Tensor, mask: torch.Tensor, dims: List[int], centered: bool) -> torch.Tensor:
    """The released code's fusion: ``low``'s spectrum replaces the low band of ``other``'s spectrum.

    ``fused = IFFT(FFT(low) * mask + FFT(other) * (1 - mask))`` (real part), over ``dims``.
    Both inputs have the same shape; ``mask`` as in :func:`apply_low_pass`.
    """
    sizes = [other.shape[d] for d in dims]
    if centered:
        spectrum = torch.fft.rfftn(low, dim=dims) * mask + torch.fft.rfftn(other, dim=dims) * (1.0 - mask)
        return torch.fft.irfftn(spectrum, s=sizes, dim=dims)
    spectrum = torch.fft.fftn(low, dim=dims) * mask + torch.fft.fftn(other, dim=dims) * (1.0 - mask)
    return torch.fft.ifftn(spectrum, dim=dims).real


def stack_bands(low: torch.Tensor, high: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """The bands stacked on the channel axis in the package's one channel order, ``[low_0 .. low_C-1, high_0 ..
    high_C-1]``: ``(B, C, *spatial)`` each -> ``(B, 2C, *spatial)`` (``channel_dim=0`` for ``(C, *spatial)``).
    Early fusion feeds its backbone this stack, and :class:`~freq_transforms.transforms.FrequencyDisentangle`
    returns it."""
    return torch.cat([low, high], dim=channel_dim)
