"""Which cases share one image: a hash of each image's voxels, cached per file version."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write_text
from .case_checks import nifti_voxels, read_nifti
from .datalist import Item

__all__ = ["image_fingerprint", "fingerprint_cache_file", "cached_fingerprints", "participant_groups"]

logger = logging.getLogger(__name__)



def image_fingerprint(path: str) -> str:
    """SHA-256 of an image's voxels (shape, dtype and values; not the header or the compression)."""
    image = read_nifti(path)
    voxels = np.ascontiguousarray(nifti_voxels(image, path))
    digest = hashlib.sha256(f"{voxels.shape}{voxels.dtype}".encode())
    digest.update(voxels.tobytes())
    return digest.hexdigest()


def fingerprint_cache_file() -> Path:
    """Where image fingerprints are kept between runs: ``$FREQ_TRANSFORMS_CACHE/fingerprints.json``, by default
    under ``$XDG_CACHE_HOME`` (``~/.cache``)/freq_transforms."""
    root = os.environ.get("FREQ_TRANSFORMS_CACHE") or \
        str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "freq_transforms")
    return Path(root) / "fingerprints.json"


def _file_key(path: str) -> str:
    stat = os.stat(path)
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def cached_fingerprints(paths: Sequence[str]) -> List[str]:
    """:func:`image_fingerprint` of each path, read from and added to :func:`fingerprint_cache_file` (keyed by
    path, size and modification time, so a changed file is hashed again): a dataset's voxels are hashed once,
    not at every train and evaluate start. An unwritable cache folder only costs the re-hashing."""
    cache_file = fingerprint_cache_file()
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    keys = [_file_key(p) for p in paths]
    missing = [i for i, key in enumerate(keys) if key not in cache]
    for i in tqdm(missing, desc="hashing images", disable=len(missing) < 50, leave=False):
        cache[keys[i]] = image_fingerprint(paths[i])
    if missing:
        try:
            atomic_write_text(cache_file, json.dumps(cache))
        except OSError as err:
            logger.warning(f"image fingerprints not cached ({cache_file}: {err})")
    return [cache[key] for key in keys]


def participant_groups(items: Sequence[Item]) -> List[List[int]]:
    """Indices of ``items`` grouped by identical image content (e.g. MSD heart la_005 / la_026: one image,
    two annotations), in order of first appearance. Cases of one group are one participant: any split must
    keep them together, or the same image is trained on and scored. Fingerprints are cached
    (:func:`cached_fingerprints`)."""
    by_hash: Dict[str, List[int]] = {}
    for index, digest in enumerate(cached_fingerprints([item["image"] for item in items])):
        by_hash.setdefault(digest, []).append(index)
    return sorted(by_hash.values(), key=lambda group: group[0])
