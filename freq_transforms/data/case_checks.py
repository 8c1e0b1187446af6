"""Can a case be trained on as it is? One read of each file, and a one-line error naming it when not."""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import nibabel as nib
import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .datalist import Item, load_msd_datalist

__all__ = ["NAN_POLICIES", "read_nifti", "nifti_voxels", "load_voxels", "check_case", "check_datalist", "checked_datalist"]

logger = logging.getLogger(__name__)

NAN_POLICIES = ("error", "zero")
AFFINE_TOLERANCE = 1e-3  # mm; real scanners' image/label headers differ by float rounding only


def read_nifti(path: str) -> nib.Nifti1Image:
    try:
        image = nib.load(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except Exception as err:  # nibabel raises several types for files that are not NIfTI
        raise DataError(f"{path} is not a readable NIfTI file ({type(err).__name__}: {err})") from None
    return image


def nifti_voxels(image: nib.Nifti1Image, path: str) -> np.ndarray:
    try:
        return np.asanyarray(image.dataobj)
    except Exception as err:  # truncated or corrupt gzip streams fail only when the voxels are read
        raise DataError(f"{path} is corrupt or truncated ({type(err).__name__}: {err})") from None


def load_voxels(path: str) -> np.ndarray:
    """The voxels of a NIfTI file, or :class:`DataError` naming the file when it cannot be read."""
    return nifti_voxels(read_nifti(path), path)


def check_case(image_path: str, label_path: Optional[str] = None, num_classes: Optional[int] = None,
               in_channels: int = 1, nan_policy: str = "error") -> None:
    """Raise :class:`DataError` naming the file if a case cannot be trained on as it is.

    Checks: readable NIfTI, 3-D (or 4-D with ``in_channels`` volumes), finite voxels unless
    ``nan_policy="zero"``, label of the image's shape and affine, whole-number label values within
    ``0 .. num_classes - 1``.
    """
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    image = read_nifti(image_path)
    spatial = image.shape[:3]
    channels = image.shape[3] if len(image.shape) == 4 else 1
    if len(image.shape) not in (3, 4) or channels != in_channels:
        raise DataError(f"{image_path} has shape {image.shape}: expected a 3-D volume (in_channels={in_channels}); "
                        "for a 4-D file give one volume per case or set in_channels to its number of volumes")
    voxels = nifti_voxels(image, image_path)
    bad = int(np.size(voxels) - np.count_nonzero(np.isfinite(voxels))) if voxels.dtype.kind == "f" else 0
    if bad and nan_policy == "error":
        raise DataError(f"{image_path} has {bad} NaN/Inf voxels; clean it or set nan_policy='zero' to replace them by 0")
    if label_path is None:
        return
    label = read_nifti(label_path)
    if tuple(label.shape[:3]) != tuple(spatial) or len(label.shape) > 3 and label.shape[3] != 1:
        raise DataError(f"{label_path} has shape {label.shape} but its image {image_path} has {image.shape}")
    if not np.allclose(label.affine, image.affine, atol=AFFINE_TOLERANCE):
        raise DataError(f"{label_path} and {image_path} have different affines (tolerance {AFFINE_TOLERANCE} mm)")
    values = np.unique(nifti_voxels(label, label_path))
    if not np.all(np.isfinite(values)) or not np.allclose(values, np.round(values), atol=1e-3):
        raise DataError(f"{label_path} holds non-integer label values {values[:8].tolist()}")
    if num_classes is not None:
        outside = [v for v in np.round(values).astype(int).tolist() if not 0 <= v < int(num_classes)]
        if outside:
            raise DataError(f"{label_path} holds label values {outside} outside the declared classes "
                            f"0..{int(num_classes) - 1}")


def check_datalist(items: Sequence[Item], num_classes: Optional[int] = None, in_channels: int = 1,
                   nan_policy: str = "error", progress: bool = True) -> None:
    """:func:`check_case` on every item (a progress bar for long lists); the first problem raises."""
    for item in tqdm(items, desc="checking cases", disable=not progress or len(items) < 20, leave=False):
        check_case(item["image"], item.get("label"), num_classes, in_channels, nan_policy)


def checked_datalist(dataset_dir: str, num_classes: Optional[int] = None, in_channels: int = 1,
                     nan_policy: str = "error", key: str = "training") -> List[Item]:
    """:func:`load_msd_datalist` plus :func:`check_datalist` (e.g. an external test set)."""
    items = load_msd_datalist(dataset_dir, key)
    check_datalist(items, num_classes, in_channels, nan_policy)
    return items
