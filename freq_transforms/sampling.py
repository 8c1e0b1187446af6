"""Patch-mode planning: the spacing a bundle resamples to, and what the Fourier cutoff means in millimetres.

A bundle's ``sampling`` is ``"resize"`` (the paper's recipe: every volume ``Resized`` to ``spatial_size``) or
``"patch"`` (the zoo's and nnU-Net's: ``Spacingd`` to ``target_spacing``, ``patch_size`` patches drawn by
``RandCropByPosNegLabeld`` in training, ``SlidingWindowInferer`` at that spacing otherwise).
``target_spacing`` is three numbers in mm (RAS axis order, as after ``Orientationd``) or ``"median"``: the
per-axis median spacing of the training cases, as nnU-Net plans it. Training resolves ``"median"`` from its
training list and records the result in ``models/model.pt``; evaluation and inference take it from there, so
every workflow of one model resamples to the same grid.

MONAI plans no spacing itself (``monai.apps.auto3dseg``'s ``DataAnalyzer`` computes spacing statistics over a
whole dataset, with every image loaded); this reads only the NIfTI headers.

Example::

    >>> resolve_target_spacing("patch", [1.5, 1.5, 2.0])
    [1.5, 1.5, 2.0]
    >>> resolve_target_spacing("resize", "median") is None
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import nibabel as nib
import numpy as np
from monai.config import KeysCollection
from monai.inferers import Inferer, SimpleInferer, SlidingWindowInferer
from monai.transforms import CropForegroundd, InvertibleTransform, MapTransform, Resized, Spacingd, SpatialPadd

from .errors import DataError

__all__ = ["SAMPLINGS", "ras_spacing", "median_spacing", "recorded_target_spacing", "resolve_target_spacing",
           "cutoff_cycles_per_mm", "TargetSpacingd", "Gridd", "grid_inferer",
           "random_transforms"]

SAMPLINGS = ("resize", "patch")


def ras_spacing(path: str | os.PathLike) -> List[float]:
    """Voxel spacing (mm) of the image at ``path`` along the R, A, S axes, i.e. as ``Orientationd("RAS")``
    leaves it; only the header is read."""
    try:
        affine = nib.load(str(path)).affine
    except Exception as err:  # nibabel raises several kinds for a file that is not an image
        raise DataError(f"{path}: cannot read the image header ({err})") from None
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    ras_axis_of_voxel_axis = nib.orientations.io_orientation(affine)[:, 0].astype(int)
    out = [0.0, 0.0, 0.0]
    for voxel_axis, ras_axis in enumerate(ras_axis_of_voxel_axis):
        out[ras_axis] = float(spacing[voxel_axis])
    return out


def median_spacing(datalist: Sequence[Mapping[str, Any]], key: str = "image") -> List[float]:
    """Per-axis median of :func:`ras_spacing` over the ``key`` files of ``datalist`` (nnU-Net's target)."""
    if not datalist:
        raise DataError("target_spacing 'median' needs training cases to take the median spacing of, and the "
                        "training list is empty: set target_spacing to three numbers in mm")
    spacings = np.array([ras_spacing(item[key]) for item in datalist])
    return [round(float(v), 4) for v in np.median(spacings, axis=0)]


def recorded_target_spacing(weights: str | os.PathLike) -> Optional[List[float]]:
    """The ``target_spacing`` recorded in a bundle checkpoint, or ``None`` (no file, or trained in resize mode)."""
    if not Path(weights).is_file():
        return None
    from .recipe import read_recipe

    value = (read_recipe(weights) or {}).get("target_spacing")
    return [float(v) for v in value] if value else None


def resolve_target_spacing(sampling: str, target_spacing: Any,
                           datalist: Optional[Sequence[Mapping[str, Any]]] = None,
                           weights: Optional[str | os.PathLike] = None) -> Optional[List[float]]:
    """The spacing (mm, RAS order) ``Spacingd`` resamples to, or ``None`` in resize mode.

    ``target_spacing`` three numbers is returned as floats; ``"median"`` is the spacing recorded in ``weights``
    when that file has one (evaluation, inference), else the median over ``datalist`` (training). The values
    themselves are checked by the settings schema (:class:`freq_transforms.bundle.settings.Settings`).
    """
    if sampling != "patch":
        return None
    if target_spacing != "median":
        return [float(v) for v in target_spacing]
    recorded = recorded_target_spacing(weights) if weights is not None else None
    if recorded is not None:
        return recorded
    if datalist is None:
        raise DataError(f"target_spacing 'median' is taken from the training cases or from {weights}'s record, "
                        "and neither is at hand: set --target_spacing to three numbers in mm")
    return median_spacing(datalist)


def cutoff_cycles_per_mm(cutoff: float, spacing: Sequence[float]) -> List[float]:
    """Half-width of the low band in cycles per mm along each axis: ``cutoff`` is the fraction of each axis's
    spectrum kept, centred on zero, so the band reaches ``cutoff / 2`` cycles per voxel, ``cutoff / (2 s)``
    cycles per mm at spacing ``s``. In patch mode ``s`` is the target spacing for every case; in resize mode it
    is each case's extent divided by ``spatial_size``, so the band differs from case to case."""
    return [round(cutoff / (2.0 * float(s)), 5) for s in spacing]



class TargetSpacingd(Spacingd):
    """``monai.transforms.Spacingd`` that leaves alone entries named ``<key>_*`` which are not meta dicts.

    MONAI 1.6's ``Spacingd`` treats every ``<key>_*`` entry as the meta dict of ``<key>`` and calls ``.update`` on
    it after a NIfTI input, so a plain string there fails (``'str' object has no attribute 'update'``): MONAI
    Label's ``image_path``, say, or a label copy named ``label_orig``. Those entries are set aside for the call and
    put back; everything else, the inverse included, is ``Spacingd``'s.

    Example::

        >>> import torch
        >>> from monai.data import MetaTensor
        >>> data = {"image": MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": "a.nii.gz"}),
        ...         "image_path": "a.nii.gz"}
        >>> out = TargetSpacingd("image", pixdim=(2.0, 2.0, 2.0))(data)
        >>> tuple(out["image"].shape), out["image_path"]
        ((1, 2, 2, 2), 'a.nii.gz')
    """

    def __call__(self, data: Mapping[Any, Any], lazy: Optional[bool] = None) -> Dict[Any, Any]:
        prefixes = tuple(f"{key}_" for key in self.keys)
        aside = {k: v for k, v in data.items()
                 if isinstance(k, str) and k.startswith(prefixes) and not isinstance(v, dict)}
        out = super().__call__({k: v for k, v in data.items() if k not in aside}, lazy=lazy)
        out.update(aside)
        return out


class Gridd(MapTransform, InvertibleTransform):
    """Bring ``keys`` onto the grid the network sees, by the bundle's ``sampling``: ``"resize"`` resizes each
    volume to ``spatial_size`` (``Resized``); ``"patch"`` resamples to ``pixdim`` mm (:class:`TargetSpacingd`),
    crops to the image's nonzero region with ``crop_foreground`` (``CropForegroundd``) and, with ``pad_to_patch``
    (training and validation; the sliding window pads by itself), pads to at least ``patch_size``
    (``SpatialPadd``). Keys in ``nearest_keys`` (labels) are interpolated nearest-neighbour.

    MONAI's own transforms do the work and record it, so ``Invertd`` maps a prediction back onto the input's
    grid; this class only chooses them from one key, so a config lists one transform instead of four that switch
    themselves off by expressions. It is not a ``Compose``: ``CacheDataset`` caches up to the first ``Compose``
    it meets, and this part is deterministic.

    Example::

        >>> import torch
        >>> grid = Gridd("image", sampling="resize", spatial_size=[8, 8, 4])
        >>> tuple(grid({"image": torch.zeros(1, 16, 16, 8)})["image"].shape)
        (1, 8, 8, 4)
    """

    def __init__(self, keys: KeysCollection, sampling: str = "resize", spatial_size: Sequence[int] = (128, 128, 96),
                 pixdim: Optional[Sequence[float]] = None, patch_size: Sequence[int] = (96, 96, 64),
                 crop_foreground: bool = False, pad_to_patch: bool = True,
                 nearest_keys: Sequence[str] = ("label", "original_label"), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        keys = list(self.keys)
        nearest = [k in nearest_keys for k in keys]
        if sampling == "resize":
            modes = ["nearest" if n else "trilinear" for n in nearest]
            self.transforms: List[Any] = [Resized(keys, spatial_size, mode=modes, allow_missing_keys=allow_missing_keys)]
            return
        self.transforms = [TargetSpacingd(keys, pixdim=pixdim, mode=["nearest" if n else "bilinear" for n in nearest],
                                          allow_missing_keys=allow_missing_keys)]
        if crop_foreground:
            self.transforms.append(CropForegroundd(keys, source_key=keys[0], allow_missing_keys=allow_missing_keys))
        if pad_to_patch:
            self.transforms.append(SpatialPadd(keys, spatial_size=patch_size, allow_missing_keys=allow_missing_keys))

    def __call__(self, data: Mapping[Any, Any]) -> Dict[Any, Any]:
        d = dict(data)
        for transform in self.transforms:
            d = transform(d)
        return d

    def inverse(self, data: Mapping[Any, Any]) -> Dict[Any, Any]:
        d = dict(data)
        for transform in reversed(self.transforms):
            transform.allow_missing_keys = self.allow_missing_keys  # Invertd's allow_missing_keys_mode sets ours
            d = transform.inverse(d)
        return d


def grid_inferer(sampling: str, patch_size: Sequence[int], sw_batch_size: int = 2, sw_overlap: float = 0.5) -> Inferer:
    """The inferer of a bundle's ``sampling``: ``SlidingWindowInferer`` over ``patch_size`` windows with gaussian
    blending in patch mode, one pass of the network (``SimpleInferer``) in resize mode."""
    if sampling == "patch":
        return SlidingWindowInferer(roi_size=patch_size, sw_batch_size=sw_batch_size, overlap=sw_overlap,
                                    mode="gaussian")
    return SimpleInferer()


def random_transforms(sampling: str, patch_sampler: Any, augment: bool, augmentations: Sequence[Any]) -> List[Any]:
    """The random part of a bundle's training pipeline: ``patch_sampler`` in patch mode, then ``augmentations``
    when ``augment``; what ``train#random_transforms`` lists after the cached deterministic part."""
    return ([patch_sampler] if sampling == "patch" else []) + (list(augmentations) if augment else [])
