"""PNG figures: an image's low/high frequency parts, and demo predictions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from ..data import load_voxels  # noqa: E402
from ..fourier import disentangle  # noqa: E402

__all__ = ["load_volume", "frequency_split_figure", "prediction_figure", "save_figure"]


def load_volume(path: str | os.PathLike) -> np.ndarray:
    """A NIfTI volume as float32 (first channel of a 4-D image)."""
    data = load_voxels(str(path)).astype(np.float32)
    return data[..., 0] if data.ndim == 4 else data


def save_figure(fig: plt.Figure, out: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG through a temp file and rename (no half-written PNG)."""
    try:
        return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _middle_slice(volume: np.ndarray, index: int | None = None) -> np.ndarray:
    return volume[:, :, volume.shape[2] // 2 if index is None else index].T


def frequency_split_figure(image: str | os.PathLike, out: str | os.PathLike, cutoffs: Sequence[float] = (0.05, 0.1, 0.25),
                           mask: str = "box", centered: bool = True) -> Path:
    """One row per cutoff: image, low part, high part (middle axial slice)."""
    volume = load_volume(image)
    fig, axes = plt.subplots(len(cutoffs), 3, figsize=(9, 3 * len(cutoffs)), squeeze=False)
    for row, cutoff in zip(axes, cutoffs):
        low, high = disentangle(torch.from_numpy(volume)[None], cutoff, mask, centered=centered)
        for ax, data, title in zip(row, (volume, low[0].numpy(), high[0].numpy()),
                                   ("image", f"low (cutoff {cutoff})", f"high (cutoff {cutoff})")):
            ax.imshow(_middle_slice(data), cmap="gray", origin="lower")
            ax.set_title(title)
            ax.axis("off")
    fig.suptitle(f"{Path(image).name}: {mask} mask, {'centred' if centered else 'released-code (unshifted)'} split")
    return save_figure(fig, out)


def _mean_dice(prediction: np.ndarray, truth: np.ndarray, classes: int) -> float:
    """Mean Dice (%) over the foreground classes of one whole case (a class absent from both counts 100)."""
    scores = []
    for c in range(1, classes):
        p, t = prediction == c, truth == c
        total = p.sum() + t.sum()
        scores.append(1.0 if total == 0 else 2.0 * np.logical_and(p, t).sum() / total)
    return 100.0 * float(np.mean(scores))


def prediction_figure(image: str | os.PathLike, label: str | os.PathLike, predictions: Dict[str, str],
                      out: str | os.PathLike, cutoff: float = 0.1,
                      class_names: Optional[Sequence[str]] = None, data_note: str = "") -> Path:
    """Image, its low/high bands at ``cutoff``, the label and each prediction (with its mean foreground Dice on the
    whole case) on the axial slice with the most label; a legend names each label colour, and the title names the
    case, the slice and ``data_note`` (e.g. that the data are phantoms)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    volume, truth = load_volume(image), load_volume(label)
    index = int(np.argmax(truth.reshape(-1, truth.shape[2]).astype(bool).sum(0)))
    low, high = disentangle(torch.from_numpy(volume)[None], cutoff)
    panels: List = [("image", volume, None), (f"low band (cutoff {cutoff})", low[0].numpy(), None),
                    (f"high band (cutoff {cutoff})", high[0].numpy(), None), ("label", truth, "labels")]
    classes = max(int(truth.max()) + 1, 2)
    for name, path in predictions.items():
        predicted = load_volume(path)
        panels.append((f"fusion={name}\nDice {_mean_dice(predicted, truth, classes):.1f}%", predicted, "labels"))
    names = list(class_names) if class_names else [f"class {i}" for i in range(classes)]
    colours = plt.get_cmap("tab10")(np.arange(max(classes, len(names))) % 10)
    colours[0] = (0.0, 0.0, 0.0, 1.0)  # background black
    labels_cmap = ListedColormap(colours[: len(names)])
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.4))
    for ax, (title, data, kind) in zip(axes, panels):
        if kind == "labels":
            ax.imshow(_middle_slice(data, index), cmap=labels_cmap, vmin=-0.5, vmax=len(names) - 0.5,
                      origin="lower", interpolation="nearest")
        else:
            ax.imshow(_middle_slice(data, index), cmap="gray", origin="lower")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.legend(handles=[Patch(color=colours[i], label=name) for i, name in enumerate(names)], loc="lower center",
               ncol=len(names), fontsize=9, frameon=False)
    note = f"{data_note}: " if data_note else ""
    fig.suptitle(f"{note}{Path(image).name}, axial slice {index} of {truth.shape[2]} (the slice with the most label)",
                 fontsize=10)
    return save_figure(fig, out)


def _validation_rows(path: str | os.PathLike) -> Dict[str, np.ndarray]:
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "seconds" not in rows[0]:
        raise ValueError(f"{path} has no seconds column (validation_metrics.csv of freq_transforms >= 0.5.0)")
    return {key: np.array([float(row[key]) for row in rows]) for key in ("seconds", "iteration", "val_mean_dice")}


def dice_time_figure(curves: Dict[str, str], out: str | os.PathLike, title: str = "") -> Path:
    """PNG of validation mean Dice against training time (minutes) for each ``label -> validation_metrics.csv``,
    the best so far marked: what a given amount of compute buys."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, path in curves.items():
        rows = _validation_rows(path)
        minutes, dice = rows["seconds"] / 60.0, 100.0 * rows["val_mean_dice"]
        line, = ax.plot(minutes, dice, marker="o", markersize=3, label=label)
        ax.plot(minutes, np.maximum.accumulate(dice), linestyle=":", color=line.get_color())
    ax.set_xlabel("training time (minutes, validation included)")
    ax.set_ylabel("validation mean Dice (%)")
    ax.set_title(title or "validation Dice against time (dotted: best so far)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)
