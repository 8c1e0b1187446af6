"""The trial on a bundle's own split (``--split bundle``; ``python -m freq_transforms sweep``): for bundles that
draw their parts themselves from an ``n_train`` and a ``seed`` key (and ``folds``/``fold`` for cross-validation),
as this project's bundles do, so that results recorded with those keys keep their cases.

The trial resolves the lists the bundle draws for each ``(n, seed, fold)`` and hands them over as it hands its own
split, with the bundle's keys set too; every fusion gets the same lists. The test cases are the bundle's own
evaluate config's (or ``--test_dir``); a bundle whose evaluation scores its validation cases has no test part here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .plan import Run, TrialSplit, check_parts, sorted_sizes
from .wiring import BundleWiring, Item, TrialError, keys_of, resolved_list

__all__ = ["SPLIT_KEYS", "split_keys", "bundle_own_splits"]

SPLIT_KEYS = ("n_train", "seed")


def split_keys(run: Run, folds: Optional[int]) -> Dict[str, Any]:
    """The bundle's own keys that draw ``run``'s lists."""
    return {"n_train": run.n, "seed": run.seed, **({"folds": folds, "fold": run.fold} if folds else {})}


def _check_keys(wiring: BundleWiring, folds: Optional[int]) -> None:
    config = wiring.bundle.parser(wiring.train_configs).get()
    missing = [k for k in SPLIT_KEYS + (("folds", "fold") if folds else ()) if k not in config]
    if missing:
        raise TrialError(f"--split bundle needs the bundle's own {', '.join(missing)} key(s), which "
                         f"{wiring.train_configs[0].name} lacks: leave the split to the trial")


def _test_cases(wiring: BundleWiring, keys: Dict[str, Any], val: List[Item]) -> List[Item]:
    if not (wiring.test_configs and wiring.test_data):
        raise TrialError("the bundle has no evaluate config with its own test cases: give --test_dir")
    test = resolved_list(wiring.bundle.parser(wiring.test_configs, keys), wiring.test_data)
    if not test or any(case in val for case in test):
        raise TrialError(f"the bundle's evaluate config scores its validation cases ({wiring.test_data}), which is no "
                         "test: give --test_dir, or leave the split to the trial")
    return test


def bundle_own_splits(wiring: BundleWiring, dataset_dir: Path, scratch: Path, n_train: Sequence[Optional[int]],
                      seeds: Sequence[int], folds: Optional[int], overrides: Dict[str, Any],
                      test_cases: Optional[List[Item]] = None) -> List[TrialSplit]:
    """One :class:`TrialSplit` per fold with the lists the bundle draws for every ``(n, seed)``. Raises
    :class:`TrialError` (one line) where the bundle has no such keys, its validation part changes with ``n`` or
    the seed (the runs would not be paired), or a part is empty."""
    _check_keys(wiring, folds)
    base = {**keys_of(overrides, wiring.bundle.parser(wiring.train_configs)), "dataset_dir": str(dataset_dir),
            "bundle_root": str(scratch)}
    splits = []
    for fold in range(folds or 1):
        def lists(n: Optional[int], seed: int) -> Dict[str, Any]:
            keys = {**base, **split_keys(Run(n, seed, "none", fold), folds)}
            parser = wiring.bundle.parser(wiring.train_configs, keys)
            return {"keys": keys, "train": resolved_list(parser, wiring.train_data),
                    "val": resolved_list(parser, wiring.val_data)}

        whole = lists(None, seeds[0])
        test = test_cases if test_cases is not None else _test_cases(wiring, whole["keys"], whole["val"])
        split = TrialSplit(fold, whole["train"], whole["val"], test)
        for n in sorted_sizes(n_train):
            for seed in seeds:
                drawn = whole if (n, seed) == (None, seeds[0]) else lists(n, seed)
                if drawn["val"] != split.val:
                    raise TrialError(f"the bundle's validation part changes with n_train or seed (n = {n}, seed "
                                     f"{seed}): its runs would not be paired; leave the split to the trial")
                split.train_by_run[(n, seed)] = drawn["train"]
        check_parts(split, n_train)
        splits.append(split)
    return splits
