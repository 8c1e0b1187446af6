"""MSD datalists and input listings: what a dataset folder or an inference input holds, with clear errors."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List


from ..errors import DataError

__all__ = ["Item", "NIFTI_SUFFIXES", "load_msd_datalist", "image_list", "bundle_image_list", "move_files"]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")

Item = Dict[str, str]


def _read_dataset_json(dataset_dir: Path) -> Dict[str, Any]:
    if not dataset_dir.is_dir():
        raise DataError(f"dataset_dir {dataset_dir} does not exist or is not a folder")
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: an MSD-layout dataset needs dataset.json beside imagesTr/ and labelsTr/")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("training"), list):
        raise DataError(f"{path} has no 'training' list")
    return meta


def load_msd_datalist(dataset_dir: str | os.PathLike, key: str = "training", need_labels: bool = True) -> List[Item]:
    """Entries of ``dataset.json[key]`` with absolute paths, checked to exist.

    MSD lists files as ``./imagesTr/x.nii.gz``; plain strings (MSD's ``test`` list) become ``{"image": ...}``.
    """
    root = Path(dataset_dir).expanduser().resolve()
    meta = _read_dataset_json(root)
    entries = meta.get(key)
    if not isinstance(entries, list):
        raise DataError(f"{root / 'dataset.json'} has no {key!r} list")
    items: List[Item] = []
    for index, entry in enumerate(entries):
        entry = {"image": entry} if isinstance(entry, str) else entry
        fields = ("image", "label") if need_labels else ("image",)
        missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise DataError(f"{root / 'dataset.json'}: {key}[{index}] has no {missing[0]!r} entry")
        item = {f: str((root / entry[f]).resolve()) for f in ("image", "label") if f in entry}
        for f, file in item.items():
            if not Path(file).is_file():
                raise DataError(f"{file} ({key}[{index}] {f} in {root / 'dataset.json'}) does not exist")
        items.append(item)
    return items


def image_list(path: str | os.PathLike) -> List[str]:
    """Images to run inference on: a single file, or every ``.nii``/``.nii.gz`` in a folder (sorted)."""
    target = Path(path).expanduser()
    if target.is_file():
        return [str(target.resolve())]
    if not target.is_dir():
        raise DataError(f"input_dir {target} does not exist (give a folder of .nii.gz images or one file)")
    files = sorted(str(p.resolve()) for p in target.iterdir() if p.name.endswith(NIFTI_SUFFIXES)
                   and not p.name.startswith("."))
    if not files:
        raise DataError(f"input_dir {target} holds no .nii or .nii.gz images")
    return files


def bundle_image_list(path: str | os.PathLike) -> List[str]:
    """:func:`image_list` for bundle configs: a bad ``input_dir`` reads ``input check failed: ...`` (one line
    from ``python -m monai.bundle run``: :mod:`freq_transforms.bundle.checks`)."""
    try:
        return image_list(path)
    except DataError as err:
        raise DataError(f"input check failed: {err}") from None


def move_files(src_dir: str | os.PathLike, dst_dir: str | os.PathLike) -> List[str]:
    """Move every file of ``src_dir`` into ``dst_dir`` by atomic renames, then remove ``src_dir``.

    Bundles write metric reports into a hidden staging folder first, so a kill never leaves a
    half-written CSV under the name a reader looks for.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in sorted(src.iterdir()) if src.is_dir() else []:
        if path.is_file():
            os.replace(path, dst / path.name)
            moved.append(str(dst / path.name))
    if src.is_dir() and not any(src.iterdir()):
        src.rmdir()
    return moved
