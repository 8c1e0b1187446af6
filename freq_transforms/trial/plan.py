"""The trial's split and its grid of runs: one fixed test part, one fixed validation part and nested training
subsets, the same for every fusion; cases that share one image stay in one part.

The split itself is :func:`freq_transforms.data.split_datalist` (participant groups from image fingerprints,
nested ``n_train`` subsets ordered by the seed); this module adds the grid and the checks that stop a trial whose
parts would be empty before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data import cached_fingerprints, split_datalist
from ..fd_options import FUSIONS
from .wiring import Item, TrialError

__all__ = ["Run", "TrialSplit", "trial_splits", "trial_runs", "image_groups", "check_parts", "largest", "n_label",
           "sorted_sizes"]

HELD_OUT_RATIO = (3, 1, 1)  # train pool, validation, test: a held-out test part of the dataset
WITH_TEST_DIR_RATIO = (4, 1, 0)  # the test cases come from --test_dir


@dataclass(frozen=True)
class Run:
    """One training of the grid: ``n`` training cases (``None``: the whole pool) of fold ``fold``, seed ``seed``,
    fusion ``fusion``."""

    n: Optional[int]
    seed: int
    fusion: str
    fold: int = 0

    @property
    def name(self) -> str:
        return f"fold{self.fold}_n{n_label(self.n)}_s{self.seed}_{self.fusion}"


def n_label(n: Optional[int]) -> str:
    return "all" if n is None else str(n)


def largest(n_train: Sequence[Optional[int]]) -> Optional[int]:
    """The largest training-set size (``None``, the whole pool, is larger than any number)."""
    return max(n_train, key=lambda n: math.inf if n is None else n)


@dataclass
class TrialSplit:
    """One fold's parts: a training pool, whose first ``n`` cases in each seed's order train; validation;
    test. ``train_by_run`` holds lists a bundle drew itself (``--split bundle``), by ``(n, seed)``."""

    fold: int
    pool: List[Item]
    val: List[Item]
    test: List[Item]
    train_by_seed: Dict[int, List[Item]] = field(default_factory=dict)
    train_by_run: Dict[Tuple[Optional[int], int], List[Item]] = field(default_factory=dict)

    def train(self, n: Optional[int], seed: int) -> List[Item]:
        if (n, seed) in self.train_by_run:
            return self.train_by_run[(n, seed)]
        return self.train_by_seed[seed][:n]


def image_groups(cases: Sequence[Item], image_key: str) -> List[List[int]]:
    """Indices of ``cases`` grouped by identical image content (as :func:`freq_transforms.data.participant_groups`,
    for a bundle's own image key)."""
    by_hash: Dict[str, List[int]] = {}
    for index, digest in enumerate(cached_fingerprints([str(case[image_key]) for case in cases])):
        by_hash.setdefault(digest, []).append(index)
    return sorted(by_hash.values(), key=lambda group: group[0])


def check_parts(split: TrialSplit, n_train: Sequence[Optional[int]], test_needed: bool = True) -> None:
    where = f" (fold {split.fold})" if split.fold else ""
    if not split.val:
        raise TrialError(f"the validation part{where} would be empty: the dataset has too few cases")
    if test_needed and not split.test:
        raise TrialError(f"the test part{where} would be empty: the dataset has too few cases (or give --test_dir)")
    biggest = largest(n_train)
    if biggest is not None and biggest > len(split.pool):
        raise TrialError(f"n_train {biggest} is more than the {len(split.pool)} training cases{where}: "
                         f"choose n_train up to {len(split.pool)}")


def trial_splits(cases: List[Item], image_key: str, n_train: Sequence[Optional[int]], seeds: Sequence[int],
                 folds: Optional[int] = None, test_cases: Optional[List[Item]] = None,
                 split_seed: int = 0) -> List[TrialSplit]:
    """The trial's parts: with ``folds`` K, K folds (test fold k, validation fold k+1, the rest the pool; every
    case tested once); else one split, whose test part is ``test_cases`` (``--test_dir``) or a held-out fifth.
    Raises :class:`TrialError` (one line) when a part would be empty or ``n_train`` exceeds the pool."""
    if not cases:
        raise TrialError("the bundle lists no cases in the dataset")
    groups = image_groups(cases, image_key)
    ratio = WITH_TEST_DIR_RATIO if test_cases is not None else HELD_OUT_RATIO
    splits = []
    for fold in range(folds or 1):
        parts = split_datalist(cases, ratio, split_seed, seed=0, groups=groups, folds=folds, fold=fold) \
            if (folds or len(cases) >= 3) else {"train": list(cases), "val": [], "test": []}
        split = TrialSplit(fold, parts["train"], parts["val"], test_cases if test_cases is not None else parts["test"])
        for seed in seeds:  # each seed its own order of the pool: n = 4 are the first 4 of n = 8
            split.train_by_seed[seed] = [split.pool[i] for i in np.random.default_rng(seed).permutation(len(split.pool))]
        check_parts(split, n_train)
        splits.append(split)
    return splits


def trial_runs(splits: Sequence[TrialSplit], n_train: Sequence[Optional[int]], seeds: Sequence[int],
               fusions: Sequence[str]) -> List[Run]:
    """Every run of the grid, fusion innermost, so the runs of one comparison finish together."""
    for fusion in fusions:
        if fusion not in FUSIONS:
            raise TrialError(f"fusion must be among {', '.join(FUSIONS)}, got {fusion!r}")
    return [Run(n, seed, fusion, split.fold) for split in splits for n in sorted_sizes(n_train) for seed in seeds
            for fusion in fusions]


def sorted_sizes(n_train: Sequence[Optional[int]]) -> List[Optional[int]]:
    """Distinct sizes, smallest first, the whole pool (``None``) last."""
    return sorted(set(n_train), key=lambda n: math.inf if n is None else n)


def describe(splits: Sequence[TrialSplit]) -> Dict[str, Any]:
    """Cases per part, for the plan."""
    return {"folds": len(splits), "pool": [len(s.pool) for s in splits], "val": [len(s.val) for s in splits],
            "test": [len(s.test) for s in splits]}
