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
from monai.transforms import Spacingd

from .errors import DataError

__all__ = ["SAMPLINGS", "ras_spacing", "median_spacing", "recorded_target_spacing", "resolve_target_spacing",
           "cutoff_cycles_per_mm", "TargetSpacingd"]

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
    themselves are checked by :func:`freq_transforms.bundle_checks.check_settings`.
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
