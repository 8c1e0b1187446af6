"""PNG figures: an image's low/high frequency parts, and demo predictions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .data import _load_nifti, _voxels, publish  # noqa: E402
from .fourier import disentangle  # noqa: E402

__all__ = ["load_volume", "frequency_split_figure", "prediction_figure", "save_figure"]


def load_volume(path: str | os.PathLike) -> np.ndarray:
    """A NIfTI volume as float32 (first channel of a 4-D image)."""
    data = _voxels(_load_nifti(str(path)), str(path)).astype(np.float32)
    return data[..., 0] if data.ndim == 4 else data


def save_figure(fig: plt.Figure, out: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG through a temp file and rename (no half-written PNG)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix=f".{out.stem}.", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        publish(tmp, out)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return out


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


def prediction_figure(image: str | os.PathLike, label: str | os.PathLike, predictions: Dict[str, str],
                      out: str | os.PathLike, cutoff: float = 0.1) -> Path:
    """Image, its low/high parts, the label and each prediction on the slice with the most label."""
    volume, truth = load_volume(image), load_volume(label)
    index = int(np.argmax(truth.reshape(-1, truth.shape[2]).astype(bool).sum(0)))
    low, high = disentangle(torch.from_numpy(volume)[None], cutoff)
    panels: List = [("image", volume, "gray"), (f"low ({cutoff})", low[0].numpy(), "gray"),
                    (f"high ({cutoff})", high[0].numpy(), "gray"), ("label", truth, "viridis")]
    panels += [(f"pred: fusion={name}", load_volume(path), "viridis") for name, path in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3))
    vmax = max(float(truth.max()), 1.0)
    for ax, (title, data, cmap) in zip(axes, panels):
        kwargs = {"vmin": 0, "vmax": vmax} if cmap == "viridis" else {}
        ax.imshow(_middle_slice(data, index), cmap=cmap, origin="lower", interpolation="nearest", **kwargs)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return save_figure(fig, out)
