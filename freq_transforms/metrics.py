"""Summary statistics for per-case segmentation metrics: means with bootstrap confidence intervals."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
from monai.data.utils import affine_to_spacing
from monai.metrics import HausdorffDistanceMetric
from scipy import stats

__all__ = ["Interval", "bootstrap_ci", "paired_difference_ci", "mean_per_case", "read_metric_csv", "HausdorffDistanceMM"]


class HausdorffDistanceMM(HausdorffDistanceMetric):
    """``monai.metrics.HausdorffDistanceMetric`` in millimetres: each case's spacing comes from its label's affine.

    MONAI's ignite handler passes no spacing, so its distances are in voxels. Here ``y`` (a ``MetaTensor``
    on the original image grid, shape ``(1, C, *spatial)``) supplies ``spacing``; a plain tensor falls back to
    voxels. Use it through ``monai.handlers.IgniteMetricHandler(metric_fn=HausdorffDistanceMM(...))``.

    Example::

        >>> metric = HausdorffDistanceMM(include_background=False, percentile=95)
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:  # type: ignore[override]
        affine = getattr(y, "affine", None)
        if kwargs.get("spacing") is None and affine is not None:
            affine = torch.as_tensor(affine, dtype=torch.float64)
            matrix = affine[0] if affine.ndim == 3 else affine  # a batch of one
            kwargs["spacing"] = affine_to_spacing(matrix, r=matrix.shape[-1] - 1).tolist()
        return super()._compute_tensor(y_pred, y, **kwargs)


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval."""

    mean: float
    low: float
    high: float

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        return f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of per-case values")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or Inf values: define them (e.g. Dice 0 for an empty prediction) first")
    return array


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000,
                 method: str = "percentile", seed: int = 0) -> Interval:
    """Mean of ``values`` with a bootstrap CI over cases (``scipy.stats.bootstrap``).

    One case gives a zero-width interval. Example: ``bootstrap_ci([0.8, 0.82, 0.79]).format(100)``.
    """
    array = _finite(values, "values")
    if array.size == 1 or np.ptp(array) == 0:
        return Interval(float(array.mean()), float(array.mean()), float(array.mean()))
    result = stats.bootstrap((array,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method=method, rng=np.random.default_rng(seed))
    return Interval(float(array.mean()), float(result.confidence_interval.low), float(result.confidence_interval.high))


def paired_difference_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                         n_resamples: int = 10_000, method: str = "percentile", seed: int = 0) -> Interval:
    """Mean of ``a - b`` over the same cases with a paired bootstrap CI (cases resampled together)."""
    first, second = _finite(a, "a"), _finite(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"paired values need the same cases: {first.size} vs {second.size}")
    return bootstrap_ci(first - second, confidence, n_resamples, method, seed)


def mean_per_case(scores: Iterable[Tuple[str, float]], undefined: str = "nan") -> Dict[str, float]:
    """Each case's mean over the runs that scored it (seeds), from ``(case, value)`` pairs: the unit the bootstrap
    resamples and the paired difference pairs. ``undefined="nan"``: a case with any non-finite value is NaN;
    ``"skip"``: non-finite values are left out, and a case with none left is left out too.

    Example::

        >>> mean_per_case([("a", 0.5), ("b", 0.6), ("a", 0.75), ("b", float("nan"))], undefined="skip")
        {'a': 0.625, 'b': 0.6}
    """
    cases: Dict[str, List[float]] = {}
    for case, value in scores:
        cases.setdefault(case, []).append(float(value))
    if undefined == "skip":
        cases = {case: [v for v in values if np.isfinite(v)] for case, values in cases.items()}
        return {case: float(np.mean(values)) for case, values in cases.items() if values}
    return {case: float(np.mean(values)) for case, values in cases.items()}


def read_metric_csv(path: str | os.PathLike) -> Dict[str, List[float]]:
    """Per-case columns of a MONAI ``MetricsSaver`` ``*_raw.csv`` (``filename`` plus one column per class)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} holds no cases")
    columns: Dict[str, List[float]] = {key: [] for key in rows[0]}
    for row in rows:
        for key, value in row.items():
            columns[key].append(value if key == "filename" else float(value))
    return columns
