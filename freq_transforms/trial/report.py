"""The trial's answer: per n and fusion, validation and test Dice and HD95 with bootstrap CIs, the paired
difference to ``none`` with its CI and a verdict worded from it, the cost, and a figure.

Each case's score is averaged over seeds first (the test cases are the same for every seed and fusion), so the
CIs are over cases, and the paired difference pairs each case with itself (:mod:`freq_transforms.metrics`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..atomic import atomic_write_text
from ..metrics import Interval, bootstrap_ci, mean_per_case, paired_difference_ci
from .plan import n_label, sorted_sizes
from .scoring import case_mean

__all__ = ["VerdictRules", "summarise", "verdict", "write_report"]

FUSION_LABEL = {"none": "none", "early": "early v2", "late": "late v2"}


def _per_case(results: Sequence[Dict[str, Any]], part: str, metric: str) -> Dict[str, float]:
    """Case -> the mean over classes, then over seeds (NaN HD95 classes left out of the class mean)."""
    return mean_per_case(((f"{result['fold']}/{case}", case_mean(scores[metric])) for result in results
                          for case, scores in result[part].items()), undefined="skip")


def _interval(values: Dict[str, float]) -> Dict[str, float]:
    if not values:
        return {}
    ci = bootstrap_ci(list(values.values()))
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "cases": len(values)}


@dataclass(frozen=True)
class VerdictRules:
    """How the paired test Dice difference to ``none`` is worded.

    ``margin``: Dice points of practical equivalence around 0: a CI above ``+margin`` is a gain, below ``-margin`` a
    loss, inside ``±margin`` level, anything else inconclusive. ``min_cases``: with fewer test cases no interval is
    shown (a bootstrap over 2 cases is no interval). ``learned``: test Dice (fraction) below which a model did not
    learn: one that finds nothing of a structure scores about 0, one that finds some of it tens of points."""

    margin: float = 0.5
    min_cases: int = 10
    learned: float = 0.10

    def __post_init__(self) -> None:
        if not (isinstance(self.margin, (int, float)) and self.margin >= 0):
            raise ValueError(f"--margin must be a number of Dice points >= 0, got {self.margin!r}")
        if not (isinstance(self.min_cases, int) and self.min_cases >= 2):
            raise ValueError(f"--min_cases must be a whole number >= 2, got {self.min_cases!r}")


def verdict(fusion: str, n: Optional[int], difference: Interval, cases: int, dice: Tuple[float, float],
            rules: VerdictRules = VerdictRules()) -> str:
    """One line worded from the CI of the paired Dice difference (fractions; printed in points) over ``cases`` test
    cases, with ``dice`` the mean test Dice of the fusion and of ``none``.

    Example::

        >>> verdict("early", 4, Interval(0.012, 0.008, 0.017), 42, (0.86, 0.85))
        'early v2 +1.2 [0.8, 1.7]: gain at n = 4 (CI above +0.5 points)'
    """
    label, at = FUSION_LABEL.get(fusion, fusion), f"n = {n_label(n)}"
    if max(dice) < rules.learned:
        return (f"{label} at {at}: did not learn (test Dice {100 * dice[0]:.1f}, none {100 * dice[1]:.1f}): raise "
                "the budget")
    points = [difference.mean * 100, difference.low * 100, difference.high * 100]
    if cases < rules.min_cases:
        return (f"{label} {points[0]:+.1f} at {at}: {cases} test cases, too few for an interval (at least "
                f"{rules.min_cases}, --min_cases)")
    digits = 1 if len({f"{p:.1f}" for p in points}) == 3 else 2  # one decimal unless it hides the interval
    said = f"{label} {points[0]:+.{digits}f} [{points[1]:.{digits}f}, {points[2]:.{digits}f}]"
    margin = rules.margin
    if points[1] > margin:
        return f"{said}: gain at {at} (CI above +{margin:g} points)"
    if points[2] < -margin:
        return f"{said}: loss at {at} (CI below -{margin:g} points)"
    if points[1] >= -margin and points[2] <= margin:
        return f"{said}: level at {at} (CI within ±{margin:g} points)"
    return f"{said}: inconclusive at {at} (CI reaches beyond ±{margin:g} points)"


def _grouped(results: Sequence[Dict[str, Any]]) -> Dict[Tuple[Optional[int], str], List[Dict[str, Any]]]:
    groups: Dict[Tuple[Optional[int], str], List[Dict[str, Any]]] = defaultdict(list)
    for result in results:
        groups[(result["n"], result["fusion"])].append(result)
    return groups


def summarise(results: Sequence[Dict[str, Any]], rules: VerdictRules = VerdictRules()) -> Dict[str, Any]:
    """The rows of the report (one per n and fusion) and the paired comparisons to ``none``."""
    groups = _grouped(results)
    rows, comparisons = [], []
    order = {n: i for i, n in enumerate(sorted_sizes([n for n, _ in groups]))}
    for (n, fusion), group in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] != "none", kv[0][1])):
        test_dice = _per_case(group, "test", "dice")
        none = groups.get((n, "none"), [])
        train_seconds = float(np.mean([r["train_seconds"] for r in group]))
        row = {"n": n, "train_size": float(np.mean([len(r["train_cases"]) for r in group])), "fusion": fusion,
               "runs": len(group), "val_dice": _interval(_per_case(group, "val", "dice")),
               "test_dice": _interval(test_dice), "test_hd95": _interval(_per_case(group, "test", "hd95")),
               "train_seconds": train_seconds,
               "infer_seconds": float(np.mean([r["infer_seconds"] for r in group]))}
        if none:
            row["cost_ratio"] = train_seconds / float(np.mean([r["train_seconds"] for r in none]))
        rows.append(row)
        if fusion != "none" and none:
            base = _per_case(none, "test", "dice")
            shared = sorted(set(base) & set(test_dice))
            if shared:
                mine, theirs = [test_dice[c] for c in shared], [base[c] for c in shared]
                difference = paired_difference_ci(mine, theirs)
                said = verdict(fusion, n, difference, len(shared), (float(np.mean(mine)), float(np.mean(theirs))),
                               rules)
                comparisons.append({"n": n, "fusion": fusion, "cases": len(shared), "mean": difference.mean,
                                    "low": difference.low, "high": difference.high, "verdict": said})
    return {"rows": rows, "comparisons": comparisons}


def _cell(interval: Dict[str, float], scale: float = 100.0) -> str:
    if not interval:
        return "-"
    return f"{interval['mean'] * scale:.1f} [{interval['low'] * scale:.1f}, {interval['high'] * scale:.1f}]"


def _markdown(summary: Dict[str, Any], plan: Dict[str, Any]) -> str:
    sizes = ", ".join(n_label(n) for n in plan["n_train"])
    lines = [f"# Trial: {plan['bundle']}", "",
             f"Cases: {plan['cases']} in the dataset, split by the {plan.get('split', 'trial')}; per fold: training "
             f"pool {plan['parts']['pool']}, validation {plan['parts']['val']}, test {plan['parts']['test']}; n_train "
             f"{sizes}, seeds {plan['seeds']}, fusions {plan['fusions']}. Each test case's score is averaged over "
             "seeds; CIs are 95 % bootstrap over test cases.", "",
             "| n | fusion | validation Dice | test Dice | test HD95 (mm) | train s / run | vs none | infer s / run |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        ratio = f"{row['cost_ratio']:.2f}x" if "cost_ratio" in row else "-"
        fusion = FUSION_LABEL.get(row["fusion"], row["fusion"])
        lines.append(f"| {n_label(row['n'])} | {fusion} | {_cell(row['val_dice'])} | "
                     f"{_cell(row['test_dice'])} | {_cell(row['test_hd95'], 1.0)} | {row['train_seconds']:.0f} | "
                     f"{ratio} | {row['infer_seconds']:.0f} |")
    rules = VerdictRules(**plan.get("verdict", {}))
    lines += ["", "Paired test Dice difference to `none` (points, same cases, seeds and budget; gain or loss where the "
              f"CI lies beyond ±{rules.margin:g} points, level within it, else inconclusive; no interval under "
              f"{rules.min_cases} test cases):", ""]
    lines += [f"- {c['verdict']}" for c in summary["comparisons"]] or ["- no fusion to compare with none"]
    if summary.get("failed"):
        lines += ["", f"Runs that failed ({len(summary['failed'])}; left out above; the same command runs them "
                  "again):", ""] + [f"- `{name}`: {line}" for name, line in summary["failed"].items()]
    lines += ["", "![Dice against n](trial.png)", ""]
    return "\n".join(lines)


def _figure(summary: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for fusion in dict.fromkeys(r["fusion"] for r in summary["rows"]):
        rows = [r for r in summary["rows"] if r["fusion"] == fusion and r["test_dice"]]
        n = [r["train_size"] for r in rows]
        mean = [100 * r["test_dice"]["mean"] for r in rows]
        ax.plot(n, mean, marker="o", label=FUSION_LABEL.get(fusion, fusion))
        ax.fill_between(n, [100 * r["test_dice"]["low"] for r in rows], [100 * r["test_dice"]["high"] for r in rows],
                        alpha=0.2)
    ax.set_xlabel("training cases (n)")
    ax.set_ylabel("test Dice (%)")
    ticks = sorted({(r["train_size"], n_label(r["n"])) for r in summary["rows"]})
    ax.set_xticks([t[0] for t in ticks], labels=[f"{t[0]:.0f} (all)" if t[1] == "all" else t[1] for t in ticks])
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out: Path, results: Sequence[Dict[str, Any]], plan: Dict[str, Any],
                 failed: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Write ``trial.json``, ``trial.md`` and ``trial.png`` in ``out``; return the summary. The plan's ``verdict``
    entry holds the :class:`VerdictRules` (their defaults where it has none); ``failed``: run name -> its one-line
    error, for runs that did not finish (reported, and left out of the comparisons)."""
    summary = {**summarise(results, VerdictRules(**plan.get("verdict", {}))), "failed": dict(failed or {})}
    atomic_write_text(out / "trial.json", json.dumps({"plan": plan, **summary, "runs": list(results)}, indent=1))
    atomic_write_text(out / "trial.md", _markdown(summary, plan))
    _figure(summary, out / "trial.png")
    return summary
