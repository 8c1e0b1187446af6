"""One run of this project's bundle through its own train and evaluate configs, and the table of such runs:
what the demo trains and reports (``python -m freq_transforms demo``).

The grid of runs with paired statistics is the trial (:mod:`freq_transforms.trial`; ``sweep`` is the trial on the
bundle's own split). A run trains with ``configs/train.json`` (resuming from ``models/resume.pt`` after a kill) and
scores its test split with ``configs/evaluate.json``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from ..atomic import atomic_write_text
from ..data import load_msd_datalist
from ..metrics import bootstrap_ci, mean_per_case, paired_difference_ci, read_metric_csv
from .runner import bundle_default, run_bundle

__all__ = ["summary_table", "train_and_evaluate"]


def _run_name(n: Optional[int], fusion: str, seed: int, arch: Optional[str] = None, fold: Optional[int] = None) -> str:
    layout = f"_{arch}" if arch == "paper" and fusion != "none" else ""
    return f"n{'all' if n is None else n}_{fusion}{layout}_s{seed}{'' if fold is None else f'_f{fold}'}"


def _arch_of(record: Dict[str, Any]) -> str:
    """The layout a record was trained with; records from before ``arch`` existed are the paper layout."""
    return "-" if record["fusion"] == "none" else str(record.get("arch") or "paper")


def train_and_evaluate(bundle: Path, run_dir: Path, common: Dict[str, Any], n: Optional[int], fusion: str, seed: int,
                       epochs: int, test_dir: Optional[str], logging_file: str,
                       train_overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train (unless ``trained.json`` marks it done) and evaluate one run; return its per-case metrics.

    ``common`` holds the bundle overrides shared by the grid (``dataset_dir``, ``arch``, ...);
    ``train_overrides`` those of the training alone (the demo's progress handler)."""
    overrides = {**common, "bundle_root": str(run_dir), "n_train": n, "fusion": fusion, "seed": seed}
    if not (run_dir / "trained.json").is_file():  # a kill during training resumes from models/resume.pt
        run_bundle(bundle, ["train"], logging_file=logging_file, epochs=epochs, **overrides,
                   **(train_overrides or {}))
        atomic_write_text(run_dir / "trained.json", json.dumps({"epochs": epochs}))
    run_bundle(bundle, ["train", "evaluate"], logging_file=logging_file, test_dataset_dir=test_dir, **overrides)
    dice = read_metric_csv(run_dir / "eval" / "test_mean_dice_raw.csv")
    hd95 = read_metric_csv(run_dir / "eval" / "test_hd95_raw.csv")
    return {"n_train": n, "fusion": fusion, "arch": bundle_default(bundle, "arch", common), "seed": seed,
            "fold": common.get("fold") if common.get("folds") else None,
            "epochs": epochs, "sampling": bundle_default(bundle, "sampling", common),
            **_training_cost(run_dir), "val_dice": _best_validation_dice(run_dir),
            "train_part": _train_part_size(run_dir), "files": dice["filename"], "dice": dice["mean"],
            "hd95": hd95["mean"], "class_dice": _class_columns(dice)}


def _finite(values: List[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def _pooled(records: List[Dict[str, Any]], key: str) -> Dict[str, float]:
    """Per test case, the mean over seeds (cases are the bootstrap unit)."""
    return mean_per_case((file, value) for record in records for file, value in zip(record["files"], record[key]))


def _class_columns(dice: Dict[str, List[Any]]) -> Dict[str, List[float]]:
    """Per-case Dice of each foreground class (``class0`` is the first foreground class in MONAI's CSVs)."""
    return {key: values for key, values in dice.items() if key.startswith("class")}


def _paired_with_none(fd: List[Dict[str, Any]], none: List[Dict[str, Any]]) -> str:
    """FD - none, paired over test cases, both sides averaged over the seeds they share only (same cases,
    same seeds); the seeds are named when either side has others."""
    shared = {r["seed"] for r in fd} & {r["seed"] for r in none}
    if not shared:
        return "no shared seed"
    mine = _pooled([r for r in fd if r["seed"] in shared], "dice")
    base = _pooled([r for r in none if r["seed"] in shared], "dice")
    common = sorted(set(base) & set(mine))
    text = paired_difference_ci([mine[c] for c in common], [base[c] for c in common]).format(100)
    if shared != {r["seed"] for r in fd} | {r["seed"] for r in none}:
        text += f" (seeds {' '.join(map(str, sorted(shared)))})"
    return text


def _worst_class_dice(records: List[Dict[str, Any]]) -> Optional[float]:
    """Lowest mean test Dice of any foreground class in any run of ``records`` (about 0: a class was lost)."""
    means = [float(np.mean(values)) for r in records for values in (r.get("class_dice") or {}).values()]
    return min(means) if means else None


def _best_validation_dice(run_dir: Path) -> float:
    """The best validation Dice the run's model selection saw (``eval/validation_metrics.csv``)."""
    path = run_dir / "eval" / "validation_metrics.csv"
    if not path.is_file():
        return float("nan")
    with path.open() as handle:
        values = [float(row["val_mean_dice"]) for row in csv.DictReader(handle) if row.get("val_mean_dice")]
    return max(values) if values else float("nan")


def _training_cost(run_dir: Path) -> Dict[str, Any]:
    """Optimiser steps and training seconds (validation included) at the run's last validation."""
    path = run_dir / "eval" / "validation_metrics.csv"
    if not path.is_file():
        return {}
    with path.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("seconds")]
    return {"iterations": int(rows[-1]["iteration"]), "train_seconds": float(rows[-1]["seconds"])} if rows else {}


def _train_part_size(run_dir: Path) -> Optional[int]:
    """Cases in the train part the run's n_train cases were drawn from (dataset minus val and test)."""
    try:
        split = json.loads((run_dir / "eval" / "split.json").read_text())
        return len(load_msd_datalist(split["dataset_dir"])) - split["counts"]["val"] - split["counts"]["test"]
    except (OSError, KeyError, ValueError):
        return None


def _n_label(n: Optional[int], part: Optional[int]) -> str:
    if n is None:
        return f"{part} (100%)" if part else "all"
    return f"{n} ({100 * n / part:.1f}%)" if part else str(n)


SUMMARY_NOTE = ("\nval Dice: the best validation Dice of each run's model selection (validation split, mean over seeds), "
                "the only number to choose settings by. With folds, every case is tested in exactly one fold and the "
                "cases of all folds are pooled. Test Dice: mean over test cases of the per-case Dice (mean over "
                "classes, original image grid), each case first averaged over seeds; 95% percentile bootstrap CIs over "
                "cases (scipy.stats.bootstrap, 10,000 resamples); FD - none is a paired bootstrap over the same cases. "
                "HD95 excludes cases where it is undefined (empty prediction); see summary.csv hd95_cases. Worst class: "
                "the lowest mean test Dice of any foreground class in any single run of the row (near 0: that run lost "
                "a class; n/a: records from before per-class Dice was kept).\n")


SUMMARY_HEADER = ("| task | n (%) | FD | arch | seeds | val Dice (%) | Dice (%) [95% CI] | HD95 (mm) [95% CI] | "
                  "worst class (%) | FD - none, Dice [95% CI] |")


def summary_table(records: List[Dict[str, Any]], task: str) -> Tuple[List[Dict[str, Any]], str]:
    """Rows (one per n_train x fusion x arch, seeds and folds pooled) and their Markdown table, with FD - none
    paired over the same cases and seeds: the one report of the sweep, ``export`` and the demo."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["n_train"], record["fusion"], _arch_of(record)), []).append(record)
    rows, lines = [], [SUMMARY_HEADER, "|---|---|---|---|---|---|---|---|---|---|"]
    order = {"none": 0, "early": 1, "late": 2}
    layout_order = {"-": 0, "v2": 1, "paper": 2}
    for key in sorted(groups, key=lambda k: (math.inf if k[0] is None else k[0], layout_order.get(k[2], 3),
                                             order.get(k[1], 9))):
        n, fusion, arch = key
        dice = _pooled(groups[key], "dice")
        hd95 = _finite(list(_pooled(groups[key], "hd95").values()))
        d_ci, h_ci = bootstrap_ci(list(dice.values())), bootstrap_ci(hd95) if hd95 else None
        diff = ""
        if fusion != "none" and (n, "none", "-") in groups:
            diff = _paired_with_none(groups[key], groups[(n, "none", "-")])
        seeds = sorted({r["seed"] for r in groups[key]})
        folds = {r.get("fold") for r in groups[key]} - {None}
        val_dice = float(np.mean([r["val_dice"] for r in groups[key]]))
        part = groups[key][0].get("train_part")
        worst = _worst_class_dice(groups[key])
        worst_text = "n/a" if worst is None else f"{100 * worst:.2f}"
        rows.append({"task": task, "n_train": n, "train_part": part if part else "", "fusion": fusion, "arch": arch,
                     "seeds": " ".join(map(str, seeds)), "val_dice": val_dice, "cases": len(dice), "dice": d_ci.mean,
                     "dice_low": d_ci.low, "dice_high": d_ci.high,
                     "hd95": h_ci.mean if h_ci else "", "hd95_low": h_ci.low if h_ci else "",
                     "hd95_high": h_ci.high if h_ci else "", "hd95_cases": len(hd95),
                     "worst_class_dice": "" if worst is None else worst, "fd_minus_none": diff})
        hd_text = h_ci.format() if h_ci else "n/a"
        seed_cell = f"{len(seeds)} x {len(folds)} folds" if folds else str(len(seeds))
        lines.append(f"| {task} | {_n_label(n, part)} | {fusion} | {arch} | {seed_cell} | {100 * val_dice:.2f} | "
                     f"{d_ci.format(100)} | {hd_text} | {worst_text} | {diff} |")
    return rows, "\n".join(lines) + "\n"
