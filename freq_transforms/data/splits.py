"""Deterministic splits: fixed validation and test parts, nested small training sets, K-fold cross-validation,
and cases with identical images kept in one part."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_text

from ..errors import DataError
from .case_checks import check_datalist
from .datalist import Item, load_msd_datalist
from .fingerprints import participant_groups

__all__ = ["split_datalist", "fold_assignment", "make_split", "bundle_split"]

logger = logging.getLogger(__name__)



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


def _member_split(train: List[Item], items: Sequence[Item], groups: Optional[List[List[int]]], members: int,
                  member: int, split_seed: int) -> Dict[str, List[Item]]:
    """Member ``member`` of a ``members``-model ensemble (nnU-Net's folds): ``train`` cut into ``members`` folds,
    the member trains on the others and validates on fold ``member``; duplicates stay in one fold."""
    position = {item["image"]: k for k, item in enumerate(train)}
    within = [[position[items[i]["image"]] for i in group if items[i]["image"] in position] for group in groups or []]
    parts = fold_assignment(train, int(members), split_seed, [g for g in within if g])
    if not 0 <= int(member) < len(parts):
        raise DataError(f"member must be in 0..{len(parts) - 1} for members={members}, got {member}")
    return {"train": [item for k, part in enumerate(parts) if k != int(member) for item in part],
            "val": parts[int(member)]}


def split_datalist(items: Sequence[Item], split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0,
                   seed: int = 0, n_train: Optional[int] = None, groups: Optional[List[List[int]]] = None,
                   folds: Optional[int] = None, fold: int = 0, members: Optional[int] = None, member: int = 0,
                   train_on_val: bool = False) -> Dict[str, List[Item]]:
    """Participant-level train/val/test split; ``n_train`` takes a nested subset of the train part.

    Cases are sorted by image path and shuffled with ``split_seed`` before cutting, so val and test
    depend only on the data and ``split_seed``. The train part is then ordered by ``seed`` and its
    first ``n_train`` cases are used: a smaller set is always contained in a larger one.

    ``groups`` (from :func:`participant_groups`) keeps cases of one participant in one part. With ``folds``
    K, the split is fold ``fold`` of a K-fold cross-validation (:func:`fold_assignment`): test is that
    fold, validation the next one (cyclically), train the rest, so over the K folds every case is tested
    exactly once and validated exactly once; ``split_ratio`` is then not used.

    ``train_on_val`` adds the validation part to the train part (every case outside the test part trains; the
    validation part is still what ``val`` returns). With ``members`` K the train part (after ``n_train``) is cut
    into K folds and the split is member ``member``'s (:func:`_member_split`): ``val`` is its held-out fold.
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
    if train_on_val:
        train = train + val
    split = {"train": _nested_train(train, seed, n_train, len(items)), "val": val, "test": test}
    if members is not None:
        split.update(_member_split(split["train"], items, groups, members, member, split_seed))
    return split


def make_split(dataset_dir: str, split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0,
               seed: int = 0, n_train: Optional[int] = None, output_dir: Optional[str] = None,
               num_classes: Optional[int] = None, in_channels: int = 1, nan_policy: str = "error",
               check: bool = True, folds: Optional[int] = None, fold: int = 0,
               split_file: str = "split.json", members: Optional[int] = None, member: int = 0,
               train_on_val: bool = False) -> Dict[str, List[Item]]:
    """The split a bundle trains and evaluates on, written to ``output_dir/<split_file>`` for audit
    (evaluation writes its own file, so the training run's record stays).

    Cases with identical images are found by content hash and kept in one part (:func:`participant_groups`);
    ``folds``/``fold`` select one fold of a cross-validation, ``members``/``member`` one member of a fold
    ensemble, ``train_on_val`` trains on the validation part too (:func:`split_datalist`). With ``check`` every
    case used is read once and checked (:func:`check_case`) before training starts.
    """
    items = load_msd_datalist(dataset_dir)
    groups = participant_groups(items)
    split = split_datalist(items, split_ratio, split_seed, seed, n_train, groups, folds, fold, members, member,
                           train_on_val)
    if check:
        check_datalist([item for part in split.values() for item in part], num_classes, in_channels, nan_policy)
    if output_dir:
        duplicates = [[Path(items[i]["image"]).name for i in group] for group in groups if len(group) > 1]
        record = {"dataset_dir": str(Path(dataset_dir).resolve()), "split_ratio": list(split_ratio),
                  "split_seed": split_seed, "seed": seed, "n_train": n_train, "folds": folds,
                  "fold": fold if folds else None, "members": members, "member": member if members else None,
                  "train_on_val": bool(train_on_val), "same_image_groups": duplicates,
                  "counts": {k: len(v) for k, v in split.items()}, **split}
        atomic_write_text(Path(output_dir) / split_file, json.dumps(record, indent=2))
    return split


SPLIT_SETTINGS = ("dataset_dir", "split_ratio", "split_seed", "seed", "n_train", "num_classes", "in_channels",
                  "nan_policy", "folds", "fold", "split_file", "members", "member", "train_on_val")


def bundle_split(settings: Mapping[str, Any], output_dir: Optional[str] = None) -> Dict[str, List[Item]]:
    """:func:`make_split` of a bundle's checked ``settings`` (:class:`freq_transforms.bundle.settings.Settings`;
    ``check_data`` is ``check``), written under ``output_dir``: a data problem reads ``dataset check failed: <file>
    ...`` (one line from ``python -m monai.bundle run``: :mod:`freq_transforms.bundle.checks`)."""
    try:
        return make_split(**{key: settings[key] for key in SPLIT_SETTINGS}, check=settings["check_data"],
                          output_dir=output_dir)
    except DataError as err:
        raise DataError(f"dataset check failed: {err}") from None


def epoch_sampler(dataset: Sequence[Any], epoch_length: Optional[int], batch_size: int) -> Any:
    """A ``RandomSampler`` that draws ``epoch_length * batch_size`` cases for every epoch (one shuffled pass when
    ``epoch_length`` is None), so each epoch starts a fresh pass of the loader and a resumed run draws the same
    cases also where epochs end mid-pass (ignite would carry a half-used loader across epochs)."""
    from torch.utils.data import RandomSampler  # torch only when a bundle trains

    return RandomSampler(dataset, num_samples=None if epoch_length is None else epoch_length * batch_size)


def evaluation_cases(split: Mapping[str, List[Item]], settings: Mapping[str, Any]) -> List[Item]:
    """The cases a bundle's ``evaluate.json`` scores: the split's test part, or every case of
    ``test_dataset_dir`` (an MSD-layout folder, checked as training checks its own) when the settings name one."""
    from .case_checks import checked_datalist

    if settings["test_dataset_dir"] is None:
        return split["test"]
    return checked_datalist(settings["test_dataset_dir"], settings["num_classes"], settings["in_channels"],
                            settings["nan_policy"])
