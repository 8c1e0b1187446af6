"""MSD datalists and deterministic, nested small-training-set splits for the FD bundles."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import logging

import nibabel as nib
import numpy as np
from tqdm import tqdm

from .atomic import atomic_write_text
from .errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["DataError", "load_msd_datalist", "image_fingerprint", "participant_groups", "cached_fingerprints", "fingerprint_cache_file", "split_datalist",
           "fold_assignment", "make_split", "bundle_split", "image_list", "bundle_image_list", "load_voxels",
           "NAN_POLICIES", "check_case", "check_datalist", "checked_datalist", "move_files"]

NAN_POLICIES = ("error", "zero")
AFFINE_TOLERANCE = 1e-3  # mm; real scanners' image/label headers differ by float rounding only

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


def _split_counts(total: int, ratio: Sequence[float]) -> List[int]:
    if len(ratio) != 3 or min(ratio) < 0 or sum(ratio) <= 0:
        raise DataError(f"split_ratio must be three non-negative numbers (train, val, test), got {list(ratio)}")
    weights = np.asarray(ratio, dtype=float) / float(sum(ratio))
    n_val = int(round(total * weights[1]))
    n_test = int(round(total * weights[2]))
    if total >= 3:  # every part non-empty where it was asked for
        n_val = max(n_val, 1 if weights[1] > 0 else 0)
        n_test = max(n_test, 1 if weights[2] > 0 else 0)
    n_train = total - n_val - n_test
    if n_train < 1:
        raise DataError(f"{total} cases are too few to split into train/val/test with split_ratio {list(ratio)}")
    return [n_train, n_val, n_test]


def image_fingerprint(path: str) -> str:
    """SHA-256 of an image's voxels (shape, dtype and values; not the header or the compression)."""
    image = _load_nifti(path)
    voxels = np.ascontiguousarray(_voxels(image, path))
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


def _shuffled_groups(items: Sequence[Item], split_seed: int, groups: Optional[List[List[int]]]) -> List[List[Item]]:
    """Participants in a ``split_seed`` order: cases sorted by path and permuted (as without groups), each
    group placed where its first case lands."""
    order = sorted(range(len(items)), key=lambda i: items[i]["image"])
    permuted = [order[i] for i in np.random.default_rng(split_seed).permutation(len(items))]
    group_of = {i: tuple(g) for g in (groups or [[i] for i in range(len(items))]) for i in g}
    seen, result = set(), []
    for index in permuted:
        group = group_of.get(index, (index,))
        if group not in seen:
            seen.add(group)
            result.append([items[i] for i in sorted(group, key=lambda i: items[i]["image"])])
    return result


def _cut(participants: List[List[Item]], counts: Sequence[int]) -> List[List[Item]]:
    """Cut participants into parts of about ``counts`` cases; a participant goes whole into the part where
    its first case falls."""
    bounds = np.cumsum(counts)
    parts: List[List[Item]] = [[] for _ in counts]
    position = 0
    for cases in participants:
        part = int(np.searchsorted(bounds, position, side="right"))
        parts[min(part, len(counts) - 1)].extend(cases)
        position += len(cases)
    return parts


def fold_assignment(items: Sequence[Item], folds: int, split_seed: int = 0,
                    groups: Optional[List[List[int]]] = None) -> List[List[Item]]:
    """``folds`` disjoint parts of ``items`` for cross-validation: participants in ``split_seed`` order, each to the
    fold with the fewest cases so far (sizes differ by at most one group); duplicates stay together."""
    if int(folds) < 2:
        raise DataError(f"folds must be at least 2, got {folds}")
    participants = _shuffled_groups(items, split_seed, groups)
    if len(participants) < 3 * 1 or int(folds) > len(participants):
        raise DataError(f"{len(participants)} participants are too few for folds={folds}")
    parts: List[List[Item]] = [[] for _ in range(int(folds))]
    for cases in participants:
        min(parts, key=len).extend(cases)
    return parts


def _nested_train(train: List[Item], seed: int, n_train: Optional[int], total: int) -> List[Item]:
    train = [train[i] for i in np.random.default_rng(seed).permutation(len(train))]
    if n_train is None:
        return train
    if int(n_train) < 1:
        raise DataError(f"n_train must be at least 1, got {n_train}")
    if int(n_train) > len(train):
        raise DataError(f"n_train={n_train} is larger than the train part ({len(train)} cases of {total})")
    return train[: int(n_train)]


def split_datalist(items: Sequence[Item], split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0,
                   seed: int = 0, n_train: Optional[int] = None, groups: Optional[List[List[int]]] = None,
                   folds: Optional[int] = None, fold: int = 0) -> Dict[str, List[Item]]:
    """Participant-level train/val/test split; ``n_train`` takes a nested subset of the train part.

    Cases are sorted by image path and shuffled with ``split_seed`` before cutting, so val and test
    depend only on the data and ``split_seed``. The train part is then ordered by ``seed`` and its
    first ``n_train`` cases are used: a smaller set is always contained in a larger one.

    ``groups`` (from :func:`participant_groups`) keeps cases of one participant in one part. With ``folds``
    K, the split is fold ``fold`` of a K-fold cross-validation (:func:`fold_assignment`): test is that
    fold, validation the next one (cyclically), train the rest, so over the K folds every case is tested
    exactly once and validated exactly once; ``split_ratio`` is then not used.
    """
    if len(items) == 0:
        raise DataError("the training list is empty: nothing to split")
    if folds is not None:
        parts = fold_assignment(items, int(folds), split_seed, groups)
        if not 0 <= int(fold) < len(parts):
            raise DataError(f"fold must be in 0..{len(parts) - 1} for folds={folds}, got {fold}")
        val_fold = (int(fold) + 1) % len(parts)
        test, val = parts[int(fold)], parts[val_fold]
        train = [item for k, part in enumerate(parts) if k not in (int(fold), val_fold) for item in part]
    else:
        participants = _shuffled_groups(items, split_seed, groups)
        train, val, test = _cut(participants, _split_counts(len(items), split_ratio))
        if not train:
            raise DataError(f"{len(items)} cases are too few to split into train/val/test with split_ratio "
                            f"{list(split_ratio)}")
    return {"train": _nested_train(train, seed, n_train, len(items)), "val": val, "test": test}


def _load_nifti(path: str) -> nib.Nifti1Image:
    try:
        image = nib.load(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except Exception as err:  # nibabel raises several types for files that are not NIfTI
        raise DataError(f"{path} is not a readable NIfTI file ({type(err).__name__}: {err})") from None
    return image


def _voxels(image: nib.Nifti1Image, path: str) -> np.ndarray:
    try:
        return np.asanyarray(image.dataobj)
    except Exception as err:  # truncated or corrupt gzip streams fail only when the voxels are read
        raise DataError(f"{path} is corrupt or truncated ({type(err).__name__}: {err})") from None


def load_voxels(path: str) -> np.ndarray:
    """The voxels of a NIfTI file, or :class:`DataError` naming the file when it cannot be read."""
    return _voxels(_load_nifti(path), path)


def check_case(image_path: str, label_path: Optional[str] = None, num_classes: Optional[int] = None,
               in_channels: int = 1, nan_policy: str = "error") -> None:
    """Raise :class:`DataError` naming the file if a case cannot be trained on as it is.

    Checks: readable NIfTI, 3-D (or 4-D with ``in_channels`` volumes), finite voxels unless
    ``nan_policy="zero"``, label of the image's shape and affine, whole-number label values within
    ``0 .. num_classes - 1``.
    """
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    image = _load_nifti(image_path)
    spatial = image.shape[:3]
    channels = image.shape[3] if len(image.shape) == 4 else 1
    if len(image.shape) not in (3, 4) or channels != in_channels:
        raise DataError(f"{image_path} has shape {image.shape}: expected a 3-D volume (in_channels={in_channels}); "
                        "for a 4-D file give one volume per case or set in_channels to its number of volumes")
    voxels = _voxels(image, image_path)
    bad = int(np.size(voxels) - np.count_nonzero(np.isfinite(voxels))) if voxels.dtype.kind == "f" else 0
    if bad and nan_policy == "error":
        raise DataError(f"{image_path} has {bad} NaN/Inf voxels; clean it or set nan_policy='zero' to replace them by 0")
    if label_path is None:
        return
    label = _load_nifti(label_path)
    if tuple(label.shape[:3]) != tuple(spatial) or len(label.shape) > 3 and label.shape[3] != 1:
        raise DataError(f"{label_path} has shape {label.shape} but its image {image_path} has {image.shape}")
    if not np.allclose(label.affine, image.affine, atol=AFFINE_TOLERANCE):
        raise DataError(f"{label_path} and {image_path} have different affines (tolerance {AFFINE_TOLERANCE} mm)")
    values = np.unique(_voxels(label, label_path))
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


def make_split(dataset_dir: str, split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0,
               seed: int = 0, n_train: Optional[int] = None, output_dir: Optional[str] = None,
               num_classes: Optional[int] = None, in_channels: int = 1, nan_policy: str = "error",
               check: bool = True, folds: Optional[int] = None, fold: int = 0,
               split_file: str = "split.json") -> Dict[str, List[Item]]:
    """The split a bundle trains and evaluates on, written to ``output_dir/<split_file>`` for audit
    (evaluation writes its own file, so the training run's record stays).

    Cases with identical images are found by content hash and kept in one part (:func:`participant_groups`);
    ``folds``/``fold`` select one fold of a cross-validation (:func:`split_datalist`). With ``check`` every
    case used is read once and checked (:func:`check_case`) before training starts.
    """
    items = load_msd_datalist(dataset_dir)
    groups = participant_groups(items)
    split = split_datalist(items, split_ratio, split_seed, seed, n_train, groups, folds, fold)
    if check:
        check_datalist([item for part in split.values() for item in part], num_classes, in_channels, nan_policy)
    if output_dir:
        duplicates = [[Path(items[i]["image"]).name for i in group] for group in groups if len(group) > 1]
        record = {"dataset_dir": str(Path(dataset_dir).resolve()), "split_ratio": list(split_ratio),
                  "split_seed": split_seed, "seed": seed, "n_train": n_train, "folds": folds,
                  "fold": fold if folds else None, "same_image_groups": duplicates,
                  "counts": {k: len(v) for k, v in split.items()}, **split}
        atomic_write_text(Path(output_dir) / split_file, json.dumps(record, indent=2))
    return split


def bundle_split(*args: Any, **kwargs: Any) -> Dict[str, List[Item]]:
    """:func:`make_split` for bundle configs: a data problem reads ``dataset check failed: <file> ...``
    (one line from ``python -m monai.bundle run``: :mod:`freq_transforms.bundle_checks`)."""
    try:
        return make_split(*args, **kwargs)
    except DataError as err:
        raise DataError(f"dataset check failed: {err}") from None


NIFTI_SUFFIXES = (".nii", ".nii.gz")


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
    from ``python -m monai.bundle run``: :mod:`freq_transforms.bundle_checks`)."""
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
