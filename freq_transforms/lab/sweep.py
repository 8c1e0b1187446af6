"""The paper's experiment grid through a bundle's own configs: n_train x fusion x seed, resumable.

Every run trains with ``configs/train.json`` and scores with ``configs/evaluate.json`` (monai.bundle),
in ``OUT/runs/n<n>_<fusion>_s<seed>/``. A run with ``done.json`` is skipped when the sweep is started
again; a killed run resumes from its ``models/resume.pt``; a failed run is recorded in
``OUT/failures.json`` and the sweep goes on. Summaries: ``summary.csv``, ``summary.md`` (laid out like the
paper's Tables 2-3) and ``dice_vs_ntrain.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..data import load_msd_datalist
from ..errors import root_cause
from ..metrics import bootstrap_ci, paired_difference_ci, read_metric_csv
from .runner import QUIET_LOGGING, bundle_configs, bundle_default, run_bundle

__all__ = ["run_sweep", "summarize", "summary_table", "train_and_evaluate"]


def _run_name(n: Optional[int], fusion: str, seed: int, arch: Optional[str] = None, fold: Optional[int] = None) -> str:
    layout = f"_{arch}" if arch == "paper" and fusion != "none" else ""
    return f"n{'all' if n is None else n}_{fusion}{layout}_s{seed}{'' if fold is None else f'_f{fold}'}"


def _arch_of(record: Dict[str, Any]) -> str:
    """The layout a record was trained with; records from before ``arch`` existed are the paper layout."""
    return "-" if record["fusion"] == "none" else str(record.get("arch") or "paper")


def train_and_evaluate(bundle: Path, run_dir: Path, common: Dict[str, Any], n: Optional[int], fusion: str, seed: int,
                       epochs: int, test_dir: Optional[str], logging_file: str) -> Dict[str, Any]:
    """Train (unless ``trained.json`` marks it done) and evaluate one run; return its per-case metrics.

    ``common`` holds the bundle overrides shared by the grid (``dataset_dir``, ``arch``, ...)."""
    overrides = {**common, "bundle_root": str(run_dir), "n_train": n, "fusion": fusion, "seed": seed}
    if not (run_dir / "trained.json").is_file():  # a kill during training resumes from models/resume.pt
        run_bundle(bundle, ["train"], logging_file=logging_file, epochs=epochs, **overrides)
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


def run_sweep(bundle: Path, dataset_dir: str, out: Path, n_train: Sequence[Optional[int]], fusions: Sequence[str],
              seeds: Sequence[int], epochs: int, test_dir: Optional[str] = None,
              overrides: Optional[Dict[str, Any]] = None, archs: Optional[Sequence[str]] = None,
              folds: Optional[int] = None) -> Path:
    """Run (or resume) the grid and write the summaries; returns ``out / 'summary.md'``.

    ``archs`` (e.g. ``["v2", "paper"]``) repeats every FD mode for each layer layout; ``fusion=none`` runs
    once. Default: the ``arch`` of ``overrides`` or of the bundle.

    ``folds`` K cross-validates: every run is repeated for each fold (tested on that fold, validated on the
    next, trained on the rest), so every case is a test case exactly once; ``folds.json`` records which
    cases each fold tests, and summaries pool all cases (each first averaged over seeds)."""
    bundle_configs(bundle, "train", "evaluate", "metadata")  # a wrong bundle or dataset stops here, not per run
    load_msd_datalist(dataset_dir)
    if test_dir:
        load_msd_datalist(test_dir)
    out.mkdir(parents=True, exist_ok=True)
    logging_file = str(atomic_write_text(out / "quiet_logging.conf", QUIET_LOGGING))
    common = {"dataset_dir": str(Path(dataset_dir).resolve()), **(overrides or {})}
    layouts = list(archs) if archs else [bundle_default(bundle, "arch", common)]
    failures: Dict[str, str] = {}
    fold_ids: List[Optional[int]] = [None]
    if folds:
        fold_ids = list(range(int(folds)))
        _write_folds(out, dataset_dir, int(folds), int(common.get("split_seed", 0)))
    grid = [(n, f, a, s, k) for n in n_train for f in fusions for a in (layouts[:1] if f == "none" else layouts)
            for s in seeds for k in fold_ids]
    progress = tqdm(grid, desc="sweep", unit="run")
    for n, fusion, arch, seed, fold in progress:
        name = _run_name(n, fusion, seed, arch, fold)
        run_dir = out / "runs" / name
        progress.set_postfix_str(name)
        if (run_dir / "done.json").is_file():
            continue
        run_overrides = {**common, "arch": arch, **({} if fold is None else {"folds": int(folds), "fold": fold})}
        try:
            record = train_and_evaluate(bundle, run_dir, run_overrides, n, fusion, seed, epochs, test_dir, logging_file)
            atomic_write_text(run_dir / "done.json", json.dumps(record, indent=2))
        except Exception as err:  # one failed run must not stop the grid
            cause = root_cause(err)
            failures[name] = f"{type(cause).__name__}: {cause}"
            atomic_write_text(run_dir / "failure.txt", traceback.format_exc())
    atomic_write_text(out / "failures.json", json.dumps(failures, indent=2))
    summary = summarize(out, bundle.name)
    if failures:
        print(f"{len(failures)} of {len(grid)} runs failed (see {out / 'failures.json'}): " + ", ".join(failures))
    return summary


def _write_folds(out: Path, dataset_dir: str, folds: int, split_seed: int) -> None:
    """``out/folds.json``: the test cases of every fold and the groups of identical images, for audit."""
    from ..data import fold_assignment, participant_groups

    items = load_msd_datalist(dataset_dir)
    groups = participant_groups(items)
    parts = fold_assignment(items, folds, split_seed, groups)
    record = {"folds": folds, "split_seed": split_seed, "dataset_dir": str(Path(dataset_dir).resolve()),
              "same_image_groups": [[Path(items[i]["image"]).name for i in g] for g in groups if len(g) > 1],
              "test_cases": {str(k): [Path(item["image"]).name for item in part] for k, part in enumerate(parts)}}
    atomic_write_text(out / "folds.json", json.dumps(record, indent=2))


def _finite(values: List[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def _pooled(records: List[Dict[str, Any]], key: str) -> Dict[str, float]:
    """Per test case, the mean over seeds (cases are the bootstrap unit)."""
    cases: Dict[str, List[float]] = {}
    for record in records:
        for file, value in zip(record["files"], record[key]):
            cases.setdefault(file, []).append(value)
    return {file: float(np.mean(v)) if all(math.isfinite(x) for x in v) else float("nan") for file, v in cases.items()}


def _class_columns(dice: Dict[str, List[Any]]) -> Dict[str, List[float]]:
    """Per-case Dice of each foreground class (``class0`` is the first foreground class in MONAI's CSVs)."""
    return {key: values for key, values in dice.items() if key.startswith("class")}


def _class_dice_from_csv(run_dir: Path) -> Optional[Dict[str, List[float]]]:
    """Per-class per-case test Dice of a run recorded before records kept it (from its eval CSV)."""
    for name in ("test_mean_dice_raw.csv", "val_mean_dice_raw.csv"):
        path = run_dir / "eval" / name
        if path.is_file():
            return _class_columns(read_metric_csv(path))
    return None


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


def load_records(out: Path) -> List[Dict[str, Any]]:
    """Every finished run's record under ``out``, with validation Dice and train-part size filled in for
    runs recorded before those fields existed."""
    records = []
    for done in sorted((out / "runs").glob("*/done.json")):
        record = json.loads(done.read_text())
        record["run"] = done.parent.name
        if "class_dice" not in record:
            found = _class_dice_from_csv(done.parent)
            if found:
                record["class_dice"] = found
        if "val_dice" not in record:
            record["val_dice"] = _best_validation_dice(done.parent)
            record["train_part"] = _train_part_size(done.parent)
        records.append(record)
    return records


def export_records(out: Path, dest: Path, task: str) -> Path:
    """Copy a sweep's per-run records (per-case metrics, split, validation Dice; no weights) to ``dest`` and
    summarise them there: a small folder to commit or share, which ``summarize`` can redo without the runs."""
    records = load_records(out)
    if not records:
        raise ValueError(f"no finished runs under {out} (expected {out / 'runs'}/<run>/done.json)")
    for record in records:
        name = record["run"]
        atomic_write_text(dest / "runs" / name / "done.json", json.dumps(record, indent=2))
        split = out / "runs" / name / "eval" / "split.json"
        if split.is_file():
            atomic_write_text(dest / "runs" / name / "eval" / "split.json", split.read_text())
    if (out / "folds.json").is_file():
        atomic_write_text(dest / "folds.json", (out / "folds.json").read_text())
    return summarize(dest, task)


def compare_runs(a: Path, b: Path, n_train: Optional[int], fusion_a: str, fusion_b: str,
                 arch_a: Optional[str] = None, arch_b: Optional[str] = None, seed: Optional[int] = None) -> str:
    """Paired bootstrap of mean test Dice, sweep ``a`` (``fusion_a``) minus sweep ``b`` (``fusion_b``), same n.

    For ablations run as separate sweeps (e.g. ``centered=False`` against the default) or layouts in one
    sweep (``arch_a="v2", arch_b="paper"``); each case's Dice is first averaged over the seeds of its side
    (``seed``: that seed only, on both sides)."""
    def records(out: Path, fusion: str, arch: Optional[str]) -> List[Dict[str, Any]]:
        found = [r for r in load_records(out) if r["n_train"] == n_train and r["fusion"] == fusion
                 and (arch is None or _arch_of(r) == arch) and (seed is None or r["seed"] == seed)]
        if not found:
            raise ValueError(f"no finished run with n_train={n_train}, fusion={fusion}"
                             f"{'' if arch is None else f', arch={arch}'} under {out}")
        return found

    first, second = _pooled(records(a, fusion_a, arch_a), "dice"), _pooled(records(b, fusion_b, arch_b), "dice")
    cases = sorted(set(first) & set(second))
    if not cases:
        raise ValueError(f"{a} and {b} share no test cases")
    diff = paired_difference_ci([first[c] for c in cases], [second[c] for c in cases])
    means = (100 * np.mean([first[c] for c in cases]), 100 * np.mean([second[c] for c in cases]))
    return (f"{len(cases)} test cases: A {means[0]:.2f}, B {means[1]:.2f}, A - B {diff.format(100)} "
            f"(mean Dice %, paired 95% bootstrap CI)")


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


def summarize(out: Path, task: str) -> Path:
    """``summary.csv``, ``summary.md`` and ``dice_vs_ntrain.png`` from every finished run under ``out``."""
    rows, table = summary_table(load_records(out), task)
    if rows:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out / "summary.csv", buffer.getvalue())
        _plot(rows, out / "dice_vs_ntrain.png")
    return atomic_write_text(out / "summary.md", table + SUMMARY_NOTE)


def _plot_x(row: Dict[str, Any]) -> Optional[int]:
    """x position of a summary row: n_train, or the size of the whole train part for ``n_train=all``."""
    return row["n_train"] if row["n_train"] is not None else (row["train_part"] or None)


def _plot(rows: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    from .plots import save_figure

    rows = [r for r in rows if _plot_x(r) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for fusion, arch in [("none", "-"), ("early", "v2"), ("late", "v2"), ("early", "paper"), ("late", "paper")]:
        mine = sorted((r for r in rows if r["fusion"] == fusion and r.get("arch", "paper") == arch), key=_plot_x)
        if not mine:
            continue
        xs = [_plot_x(r) for r in mine]
        ys = np.array([r["dice"] for r in mine]) * 100
        err = np.array([[r["dice"] - r["dice_low"], r["dice_high"] - r["dice"]] for r in mine]).T * 100
        label = f"fusion={fusion}" if arch == "-" else f"fusion={fusion} ({arch})"
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label, linestyle="--" if arch == "paper" else "-")
    ax.set_xscale("log")
    ticks = sorted({_plot_x(r) for r in rows})
    whole = {_plot_x(r) for r in rows if r["n_train"] is None}
    ax.set_xticks(ticks, labels=[f"{x} (all)" if x in whole else str(x) for x in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training cases (n_train)")
    ax.set_ylabel("mean test Dice (%) with 95% CI")
    if rows:
        ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)
