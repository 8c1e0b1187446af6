"""Paired comparisons between finished trials, and a trial's records to share.

``compare`` pairs two trial folders (or two fusions of one) over their shared test cases: an ablation is a second
trial with other ``--overrides``. It also reads the per-run records (``runs/<run>/done.json``) that the sweep wrote
before it became the trial, so the folders in ``docs/results/`` stay comparable. ``export`` copies a trial's
per-run results (scores, cases, times; no weights, no predictions) and redoes its report there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..atomic import atomic_write_text
from ..metrics import mean_per_case, paired_difference_ci
from .one_run import RESULT_FILE
from .plan import n_label
from .report import write_report
from .scoring import case_mean, case_stem
from .wiring import TrialError

__all__ = ["folder_runs", "compare_folders", "export_trial"]

SWEEP_RECORD = "done.json"  # the sweep's per-run record, before the sweep became the trial


def _from_trial(result: Dict[str, Any], layout: Optional[str]) -> Dict[str, Any]:
    return {"n": result["n"], "fusion": result["fusion"], "seed": result["seed"],
            "arch": "-" if result["fusion"] == "none" else (layout or "-"),
            "dice": {case_stem(case): case_mean(scores["dice"]) for case, scores in result["test"].items()}}


def _from_sweep(record: Dict[str, Any]) -> Dict[str, Any]:
    arch = "-" if record["fusion"] == "none" else str(record.get("arch") or "paper")  # paper: before arch existed
    return {"n": record["n_train"], "fusion": record["fusion"], "seed": record["seed"], "arch": arch,
            "dice": {case_stem(f): float(d) for f, d in zip(record["files"], record["dice"])}}


def folder_runs(folder: Path) -> List[Dict[str, Any]]:
    """Every finished run under ``folder`` (a trial, or a sweep's records): n, fusion, seed, FD layout and test
    Dice per case (mean over classes)."""
    plan = folder / "plan.json"
    layout = json.loads(plan.read_text()).get("layout") if plan.is_file() else None
    runs = [_from_trial(json.loads(p.read_text()), layout) for p in sorted(folder.glob(f"runs/*/{RESULT_FILE}"))]
    runs += [_from_sweep(json.loads(p.read_text())) for p in sorted(folder.glob(f"runs/*/{SWEEP_RECORD}"))]
    if not runs:
        raise TrialError(f"no finished run under {folder} (expected {folder / 'runs'}/<run>/{RESULT_FILE})")
    return runs


def _per_case(runs: List[Dict[str, Any]]) -> Dict[str, float]:
    return mean_per_case((case, value) for run in runs for case, value in run["dice"].items())


def compare_folders(a: Path, b: Path, n: Optional[int], fusion_a: str, fusion_b: str, arch_a: Optional[str] = None,
                    arch_b: Optional[str] = None, seed: Optional[int] = None) -> str:
    """Paired bootstrap of mean test Dice, ``a`` (``fusion_a``) minus ``b`` (``fusion_b``), same ``n``; each case
    first averaged over the seeds of its side (``seed``: that seed only, on both sides)."""
    def side(folder: Path, fusion: str, arch: Optional[str]) -> Dict[str, float]:
        found = [r for r in folder_runs(folder) if r["n"] == n and r["fusion"] == fusion
                 and (arch is None or r["arch"] == arch) and (seed is None or r["seed"] == seed)]
        if not found:
            raise TrialError(f"no finished run with n_train={n_label(n)}, fusion={fusion}"
                             f"{'' if arch is None else f', arch={arch}'} under {folder}")
        return _per_case(found)

    first, second = side(a, fusion_a, arch_a), side(b, fusion_b, arch_b)
    cases = sorted(set(first) & set(second))
    if not cases:
        raise TrialError(f"{a} and {b} share no test cases")
    difference = paired_difference_ci([first[c] for c in cases], [second[c] for c in cases])
    means = (100 * np.mean([first[c] for c in cases]), 100 * np.mean([second[c] for c in cases]))
    return (f"{len(cases)} test cases: A {means[0]:.2f}, B {means[1]:.2f}, A - B {difference.format(100)} "
            f"(mean Dice %, paired 95% bootstrap CI)")


def export_trial(out: Path, dest: Path) -> Path:
    """Copy ``out``'s plan and per-run results to ``dest`` and write the trial's report there; returns
    ``dest/trial.md``. Nothing is written when ``out`` holds no finished trial run."""
    results = sorted(out.glob(f"runs/*/{RESULT_FILE}"))
    if not results or not (out / "plan.json").is_file():
        raise TrialError(f"no finished trial under {out} (expected {out / 'plan.json'} and "
                         f"{out / 'runs'}/<run>/{RESULT_FILE})")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "plan.json", dest / "plan.json")
    for path in results:
        atomic_write_text(dest / "runs" / path.parent.name / RESULT_FILE, path.read_text())
    plan = json.loads((out / "plan.json").read_text())
    write_report(dest, [json.loads(p.read_text()) for p in results], plan)
    return dest / "trial.md"
