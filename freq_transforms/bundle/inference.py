"""Inference inputs checked before they are predicted: a bad file is named in one line, the good ones still run.

MONAI's ``LoadImaged`` fails inside a DataLoader worker, so a truncated file among good ones ends a run in worker
tracebacks that never name it. Here every input is read once up front (:class:`InferenceInputs`); the same check
runs as the first preprocessing transform (:class:`CheckImaged`), which is what MONAI Label applies.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Hashable, List, Mapping, Sequence, Set, Tuple

from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..data import check_case
from ..errors import DataError

__all__ = ["check_image_file", "CheckImaged", "InferenceInputs"]

logger = logging.getLogger(__name__)

_GOOD: Set[Tuple[str, int, int, int, str]] = set()  # files already read and found fit, with the settings used


def check_image_file(path: str, in_channels: int = 1, nan_policy: str = "error") -> None:
    """Raise :class:`DataError` naming ``path`` and the reason if it cannot be segmented: unreadable or truncated,
    not NIfTI, not 3-D with ``in_channels`` volumes, NaN/Inf voxels (unless ``nan_policy="zero"``). A file found
    fit is remembered (by path, size and modification time), so a second check costs no second read."""
    try:
        stat = os.stat(path)
    except OSError:
        raise DataError(f"{path} does not exist") from None
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, int(in_channels), str(nan_policy))
    if key in _GOOD:
        return
    check_case(str(path), None, None, int(in_channels), nan_policy)
    _GOOD.add(key)


class CheckImaged(MapTransform):
    """Dictionary transform: check the image *file* named by each key (:func:`check_image_file`) before
    ``LoadImaged`` reads it, so a bad input fails with one line naming the file.

    Args:
        keys: keys holding file paths (e.g. ``"image"``).
        in_channels: volumes per image (a 4-D file must hold this many).
        nan_policy: ``"error"`` (NaN/Inf voxels are a bad input) or ``"zero"`` (they are replaced later).

    Example::

        >>> CheckImaged("image")({"image": "missing.nii.gz"})
        Traceback (most recent call last):
        ...
        freq_transforms.errors.DataError: missing.nii.gz does not exist
    """

    def __init__(self, keys: KeysCollection, in_channels: int = 1, nan_policy: str = "error",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.in_channels, self.nan_policy = in_channels, nan_policy

    def __call__(self, data: Mapping[Hashable, object]) -> Dict[Hashable, object]:
        out = dict(data)
        for key in self.key_iterator(out):
            if isinstance(out[key], (str, os.PathLike)):
                check_image_file(str(out[key]), self.in_channels, self.nan_policy)
        return out


class InferenceInputs:
    """The inputs of an inference run, checked before any is predicted.

    Each file that cannot be segmented is logged as one ``ERROR`` line naming it and the reason, and left out;
    the others are predicted (``items()``). After the run, ``finish()`` raises one line summarising what was
    left out ("2 of 40 inputs could not be read: a.nii.gz (...), ..."), so the command exits non-zero; nothing is
    written for a left-out case. If no input is readable, construction raises at once.

    Args:
        files: image paths (e.g. from :func:`freq_transforms.data.bundle_image_list`).
        in_channels: volumes per image.
        nan_policy: as for :func:`check_image_file`.
    """

    def __init__(self, files: Sequence[str], in_channels: int = 1, nan_policy: str = "error") -> None:
        self.files = list(files)
        self.good: List[str] = []
        self.bad: Dict[str, str] = {}
        for path in self.files:
            try:
                check_image_file(path, in_channels, nan_policy)
                self.good.append(path)
            except DataError as err:
                self.bad[path] = str(err)
                logger.error(f"input check failed: {err}")
        if not self.good:
            raise DataError(f"none of the {len(self.files)} inputs could be read: {self._listing()}")

    def _listing(self) -> str:
        return "; ".join(self.bad.values())

    def items(self) -> List[Dict[str, str]]:
        """``[{"image": path}, ...]`` for the inputs that passed."""
        return [{"image": path} for path in self.good]

    def finish(self) -> bool:
        """``True`` if every input was predicted; else raise :class:`DataError` with the one-line summary."""
        if self.bad:
            names = ", ".join(Path(p).name for p in self.bad)
            raise DataError(f"{len(self.bad)} of {len(self.files)} inputs could not be read and were not "
                            f"segmented: {names} (reasons above)")
        return True
