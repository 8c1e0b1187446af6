"""MONAI transforms that split an image into its low- and high-frequency parts."""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Flip, MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .fourier import MASK_SHAPES, check_cutoff, disentangle, stack_bands

__all__ = ["FrequencyDisentangle", "FrequencyDisentangled", "FrequencyDisentangleD", "FrequencyDisentangleDict",
           "RandFlipAxesd"]

OUTPUT_MODES = ("stack", "keys")


class FrequencyDisentangle(Transform):
    """Split a channel-first image into low- and high-frequency parts in Fourier space.

    The input ``(C, H, W[, D])`` becomes ``(2C, H, W[, D])`` with channels ``[low_0, ..., low_C-1, high_0, ...,
    high_C-1]``, the order early fusion feeds its backbone (:func:`freq_transforms.fourier.stack_bands`).
    ``low + high`` gives back the
    input exactly (float32 precision). Metadata of a ``MetaTensor`` is kept.

    Args:
        cutoff: fraction of each filtered axis's spectrum width kept in the low band (paper's beta, 0.1).
        mask: ``"box"`` (paper), ``"ball"`` or ``"gaussian"``.
        axes: spatial axes to filter, default all (the released code filtered ``[0, 1]`` only).
        centered: ``True`` for a true low-pass (paper's text); ``False`` reproduces the released code,
            whose "low" band is really the highest frequencies (see :mod:`freq_transforms.fourier`).

    Example::

        >>> split = FrequencyDisentangle(cutoff=0.1)
        >>> split(torch.rand(1, 64, 64, 48)).shape
        torch.Size([2, 64, 64, 48])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, cutoff: float = 0.1, mask: str = "box", axes: Optional[Sequence[int]] = None,
                 centered: bool = True) -> None:
        self.cutoff = check_cutoff(cutoff)
        if mask not in MASK_SHAPES:
            raise ValueError(f"mask must be one of {MASK_SHAPES}, got {mask!r}")
        self.mask = mask
        self.axes: Optional[List[int]] = None if axes is None else [int(a) for a in axes]
        self.centered = centered

    def split(self, img: NdarrayOrTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(low, high)`` as float tensors shaped like ``img`` (``(C, *spatial)``)."""
        data = convert_to_tensor(img, track_meta=False)
        spatial_dims = data.dim() - 1
        if spatial_dims not in (2, 3):
            raise ValueError(f"expected a channel-first 2-D or 3-D image (C, H, W[, D]), got shape {tuple(data.shape)}")
        return disentangle(data, self.cutoff, self.mask, self.axes, self.centered, spatial_dims)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        low, high = self.split(img)
        stacked = stack_bands(low, high, channel_dim=0)
        dtype = img.dtype if torch.is_tensor(img) and img.is_floating_point() else torch.float32
        out, *_ = convert_to_dst_type(stacked, img, dtype=dtype)
        return out


class FrequencyDisentangled(MapTransform):
    """Dictionary version of :class:`FrequencyDisentangle`.

    Args:
        keys: keys of the images to split.
        output: ``"stack"`` replaces each image by its ``(2C, ...)`` ``[low..., high...]`` stack;
            ``"keys"`` keeps the image and adds ``<key><low_suffix>`` and ``<key><high_suffix>``.
        low_suffix, high_suffix: suffixes of the new keys for ``output="keys"``.
        cutoff, mask, axes, centered: see :class:`FrequencyDisentangle`.
        allow_missing_keys: do not raise if a key is missing.

    Example (inside a bundle config)::

        {"_target_": "freq_transforms.FrequencyDisentangled", "keys": "image", "output": "keys"}
    """

    backend = FrequencyDisentangle.backend

    def __init__(self, keys: KeysCollection, cutoff: float = 0.1, mask: str = "box",
                 axes: Optional[Sequence[int]] = None, centered: bool = True, output: str = "stack",
                 low_suffix: str = "_low", high_suffix: str = "_high", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {OUTPUT_MODES}, got {output!r}")
        self.splitter = FrequencyDisentangle(cutoff, mask, axes, centered)
        self.output = output
        self.low_suffix = low_suffix
        self.high_suffix = high_suffix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> Dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            if self.output == "stack":
                d[key] = self.splitter(d[key])
                continue
            low, high = self.splitter.split(d[key])
            dtype = torch.float32
            d[f"{key}{self.low_suffix}"], *_ = convert_to_dst_type(low, d[key], dtype=dtype)
            d[f"{key}{self.high_suffix}"], *_ = convert_to_dst_type(high, d[key], dtype=dtype)
        return d


FrequencyDisentangleD = FrequencyDisentangleDict = FrequencyDisentangled


class RandFlipAxesd(RandomizableTransform, MapTransform):
    """Flip ``keys`` along each axis of ``spatial_axes`` independently, each with probability ``prob`` (nnU-Net's
    mirroring augmentation). MONAI's ``RandFlipd`` flips all its axes together on one draw and ``RandAxisFlipd``
    one random axis; this draws once per axis. No axes: it does nothing.

    Example::

        >>> import torch
        >>> flip = RandFlipAxesd(["image", "label"], spatial_axes=[0], prob=1.0)
        >>> flip({"image": torch.arange(3.0)[None], "label": torch.arange(3.0)[None]})["image"].tolist()
        [[2.0, 1.0, 0.0]]
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, keys: KeysCollection, spatial_axes: Sequence[int] = (), prob: float = 0.5,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.spatial_axes = [int(a) for a in spatial_axes]
        self._flips: List[int] = []

    def randomize(self, data: Optional[Any] = None) -> None:
        self._flips = [axis for axis in self.spatial_axes if self.R.rand() < self.prob]

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> Dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize()
        if self._flips:
            flip = Flip(spatial_axis=self._flips)
            for key in self.key_iterator(d):
                d[key] = flip(d[key])
        return d
