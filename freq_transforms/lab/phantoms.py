"""Synthetic MSD-layout datasets for the five FD tasks: tests, demos and first runs with no download.

Each case has anatomy-like ellipsoids with per-case shape variation, a smooth multiplicative bias
field and noise, so a network has to learn location, shape and contrast; everything is
deterministic given the seed. Images are written as NIfTI with real (non-identity) affines.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

__all__ = ["TASKS", "PhantomTask", "make_case", "write_phantom_dataset", "write_image_label_pairs"]

Array = np.ndarray


@dataclass(frozen=True)
class PhantomTask:
    """What a task's phantoms look like: grid, spacing, labels, modality and a case generator."""

    name: str
    shape: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    labels: Dict[str, str]
    modality: str
    draw: Callable[[np.random.Generator, Array], Tuple[Array, Array]] = field(repr=False)
    dtype: type = np.float32


def _grid(shape: Sequence[int]) -> Array:
    """Normalised coordinates in [-1, 1] along each axis, shape (3, *shape)."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _ellipsoid(grid: Array, center: Sequence[float], radii: Sequence[float], angle: float = 0.0) -> Array:
    """Boolean ellipsoid, rotated by ``angle`` (radians) in the first two axes."""
    x, y, z = (grid[i] - center[i] for i in range(3))
    c, s = np.cos(angle), np.sin(angle)
    xr, yr = c * x + s * y, -s * x + c * y
    return (xr / radii[0]) ** 2 + (yr / radii[1]) ** 2 + (z / radii[2]) ** 2 <= 1.0


def _jitter(rng: np.random.Generator, values: Sequence[float], scale: float) -> List[float]:
    return [v + rng.normal(0.0, scale) for v in values]


def _scaled(rng: np.random.Generator, radii: Sequence[float], spread: float = 0.12) -> List[float]:
    factor = rng.uniform(1.0 - spread, 1.0 + spread)
    return [r * factor * rng.uniform(0.93, 1.07) for r in radii]


def _bias_field(rng: np.random.Generator, shape: Sequence[int], strength: float = 0.2) -> Array:
    coarse = rng.normal(0.0, 1.0, size=[4, 4, 4])
    field_ = ndimage.zoom(coarse, [n / 4 for n in shape], order=3)[: shape[0], : shape[1], : shape[2]]
    field_ = field_ / (np.abs(field_).max() + 1e-6)
    return (1.0 + strength * field_).astype(np.float32)


def _smooth_texture(rng: np.random.Generator, shape: Sequence[int], sigma: float) -> Array:
    return ndimage.gaussian_filter(rng.normal(0.0, 1.0, size=shape), sigma).astype(np.float32)


def _mirror_pair(rng: np.random.Generator, grid: Array, offset: Sequence[float], radii: Sequence[float]) -> Array:
    """Two roughly symmetric ellipsoids left and right of the midline (axis 0)."""
    spread = abs(offset[0]) + rng.normal(0.0, 0.02)
    base = _jitter(rng, offset[1:], 0.02)
    left = _ellipsoid(grid, [-spread, *base], _scaled(rng, radii), rng.normal(0.0, 0.2))
    right = _ellipsoid(grid, [spread, *_jitter(rng, base, 0.01)], _scaled(rng, radii), rng.normal(0.0, 0.2))
    return left | right


def _head(rng: np.random.Generator, grid: Array) -> Array:
    return _ellipsoid(grid, _jitter(rng, [0.0, 0.0, 0.0], 0.02), _scaled(rng, [0.82, 0.9, 0.85], 0.05))


def _qsm_background(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    head = _head(rng, grid)
    image = 0.02 * _smooth_texture(rng, grid.shape[1:], 2.0) * head
    veins = _ellipsoid(grid, _jitter(rng, [0.0, 0.55, 0.3], 0.03), [0.03, 0.25, 0.03])
    image = image + 0.12 * veins * head  # a paramagnetic vein: bright but not a target
    # iron-rich deep grey matter (putamen, pallidus, caudate): about 1-2 % of the head, 0.03-0.12 ppm
    for offset, radii, ppm in (([0.3, 0.1, 0.15], [0.12, 0.25, 0.18], 0.04), ([0.2, 0.1, 0.1], [0.07, 0.15, 0.1], 0.1),
                               ([0.18, 0.3, 0.3], [0.08, 0.2, 0.12], 0.05)):
        image = image + rng.uniform(0.8, 1.2) * ppm * _mirror_pair(rng, grid, offset, radii) * head
    # a few dipole streak voxels of several ppm either sign: the heavy tails that make min-max a poor scaling
    streaks = (rng.random(grid.shape[1:]) < 2e-4) & head
    image = image + streaks * rng.choice([-1.0, 1.0], grid.shape[1:]) * rng.uniform(0.5, 2.0, grid.shape[1:])
    return image, head


def _draw_red_nucleus(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    image, head = _qsm_background(rng, grid)
    nuclei = _mirror_pair(rng, grid, [0.08, -0.05, 0.0], [0.06, 0.07, 0.08])
    nigra = _mirror_pair(rng, grid, [0.16, 0.08, -0.05], [0.04, 0.12, 0.05]) & ~nuclei  # distractor
    image = image + rng.uniform(0.08, 0.14) * nuclei + rng.uniform(0.05, 0.09) * nigra
    noisy = image * _bias_field(rng, grid.shape[1:], 0.1) + rng.normal(0.0, 0.015, grid.shape[1:]) * head
    return noisy.astype(np.float32), nuclei.astype(np.uint8)


def _draw_dentate_nucleus(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    image, head = _qsm_background(rng, grid)
    outer = _mirror_pair(rng, grid, [0.22, -0.55, -0.45], [0.12, 0.1, 0.1])
    inner = _mirror_pair(rng, grid, [0.22, -0.53, -0.45], [0.06, 0.05, 0.06])
    dentate = outer & ~inner  # a folded shell, as the dentate nucleus looks in QSM
    image = image + rng.uniform(0.07, 0.12) * dentate
    noisy = image * _bias_field(rng, grid.shape[1:], 0.1) + rng.normal(0.0, 0.015, grid.shape[1:]) * head
    return noisy.astype(np.float32), dentate.astype(np.uint8)


def _draw_spleen(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    body = _ellipsoid(grid, [0.0, 0.0, 0.0], _scaled(rng, [0.9, 0.7, 1.2], 0.05))
    image = np.full(grid.shape[1:], -1000.0, dtype=np.float32)
    image[body] = -90.0  # fat
    organs = _ellipsoid(grid, [0.0, 0.0, 0.0], [0.75, 0.55, 1.2])
    image[organs] = 40.0
    liver = _ellipsoid(grid, _jitter(rng, [-0.35, -0.05, 0.1], 0.03), _scaled(rng, [0.35, 0.4, 0.5]))
    image[liver] = 60.0
    spine = _ellipsoid(grid, [0.0, 0.5, 0.0], [0.1, 0.1, 1.3])
    image[spine] = 700.0
    spleen = _ellipsoid(grid, _jitter(rng, [0.45, 0.15, 0.15], 0.04), _scaled(rng, [0.14, 0.22, 0.3]),
                        rng.normal(0.6, 0.2)) & organs
    image[spleen] = rng.uniform(100.0, 130.0)  # portal-venous enhancement
    image = image + 25.0 * _smooth_texture(rng, grid.shape[1:], 1.5) * body
    image = image + rng.normal(0.0, 12.0, grid.shape[1:])
    return image.astype(np.float32), spleen.astype(np.uint8)


def _draw_heart(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    body = _ellipsoid(grid, [0.0, 0.0, 0.0], _scaled(rng, [0.9, 0.75, 1.1], 0.05))
    image = 120.0 * body + 30.0 * _smooth_texture(rng, grid.shape[1:], 2.0) * body
    ventricle = _ellipsoid(grid, _jitter(rng, [-0.15, -0.2, -0.1], 0.03), _scaled(rng, [0.3, 0.25, 0.3]))
    atrium = _ellipsoid(grid, _jitter(rng, [0.15, 0.2, 0.15], 0.04), _scaled(rng, [0.22, 0.18, 0.2]),
                        rng.normal(0.0, 0.3))
    veins = _mirror_pair(rng, grid, [0.25, 0.35, 0.2], [0.05, 0.12, 0.05]) & ~atrium
    image = image + 250.0 * (ventricle | atrium | veins)  # bright blood pool (bSSFP-like)
    image = image * _bias_field(rng, grid.shape[1:], 0.3)
    image = np.abs(image + rng.normal(0.0, 15.0, grid.shape[1:]))  # magnitude (Rician-like) noise
    return image.astype(np.float32), atrium.astype(np.uint8)


def _draw_hippocampus(rng: np.random.Generator, grid: Array) -> Tuple[Array, Array]:
    # a curved tube along axis 1 (anterior -> posterior); the head (anterior) is thicker
    t = grid[1]
    bend = 0.25 * rng.uniform(0.7, 1.3) * t ** 2
    thickness = np.where(t < 0, 0.32, 0.2) * rng.uniform(0.85, 1.15) * (1.0 - 0.4 * t ** 2)
    dist = np.sqrt((grid[0] - bend) ** 2 + ((grid[2] - 0.1 * t) / 0.8) ** 2)
    tube = (dist <= thickness) & (np.abs(t) <= 0.8)
    cut = rng.normal(-0.05, 0.05)
    label = np.zeros(tube.shape, dtype=np.uint8)
    label[tube & (t < cut)] = 1  # anterior
    label[tube & (t >= cut)] = 2  # posterior
    image = 60.0 + 20.0 * _smooth_texture(rng, grid.shape[1:], 2.0)
    white = _ellipsoid(grid, [0.5, 0.0, 0.4], [0.5, 1.2, 0.4])
    image = image + 50.0 * white + 35.0 * tube
    image = image * _bias_field(rng, grid.shape[1:], 0.15) + rng.normal(0.0, 6.0, grid.shape[1:])
    return np.clip(image, 0, 255).astype(np.float32), label


TASKS: Dict[str, PhantomTask] = {
    "red_nucleus": PhantomTask("red_nucleus", (80, 80, 64), (1.5, 1.5, 1.5),
                               {"0": "background", "1": "red nucleus"}, "QSM", _draw_red_nucleus),
    "dentate_nucleus": PhantomTask("dentate_nucleus", (80, 80, 64), (1.5, 1.5, 1.5),
                                   {"0": "background", "1": "dentate nucleus"}, "QSM", _draw_dentate_nucleus),
    "spleen": PhantomTask("spleen", (80, 80, 48), (4.0, 4.0, 6.0),
                          {"0": "background", "1": "spleen"}, "CT", _draw_spleen),
    "heart": PhantomTask("heart", (80, 80, 48), (2.5, 2.5, 2.7),
                         {"0": "background", "1": "left atrium"}, "MRI", _draw_heart),
    "hippocampus": PhantomTask("hippocampus", (36, 50, 35), (1.0, 1.0, 1.0),
                               {"0": "background", "1": "Anterior", "2": "Posterior"}, "MRI",
                               _draw_hippocampus, np.uint8),
}


def _affine(rng: np.random.Generator, spacing: Sequence[float], shape: Sequence[int]) -> Array:
    affine = np.diag([*spacing, 1.0])
    affine[0, 0] *= -1.0  # LPS-ish storage, as many scanners write it
    affine[:3, 3] = [rng.uniform(-20, 20) + s * n / 2 for s, n in zip(spacing, shape)]
    return affine


def make_case(task: str, seed: int, shape: Optional[Sequence[int]] = None) -> Tuple[Array, Array, Array]:
    """One phantom case: ``(image, label, affine)``; ``shape`` overrides the task's grid."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    spec = TASKS[task]
    grid_shape = tuple(int(n) for n in (shape or spec.shape))
    rng = np.random.default_rng(seed)
    image, label = spec.draw(rng, _grid(grid_shape))
    return image.astype(spec.dtype), label.astype(np.uint8), _affine(rng, spec.spacing, grid_shape)


def _dataset_json(spec: PhantomTask, names: List[str]) -> Dict:
    return {
        "name": f"{spec.name}_phantoms",
        "description": f"Synthetic {spec.modality} phantoms for the {spec.name} task (freq_transforms)",
        "licence": "CC0 (generated)",
        "tensorImageSize": "3D",
        "modality": {"0": spec.modality},
        "labels": spec.labels,
        "numTraining": len(names),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names],
        "test": [],
    }


def write_phantom_dataset(task: str, out: str | os.PathLike, n: int = 12, seed: int = 0,
                          shape: Optional[Sequence[int]] = None, overwrite: bool = False,
                          progress: bool = True) -> Path:
    """Write ``n`` phantom cases of ``task`` to ``out`` in MSD layout and return ``out``.

    The folder is built next to ``out`` and renamed into place, so a crash leaves no half dataset.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True to replace it)")
    spec = TASKS[task]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        names = [f"{task}_{i:03d}" for i in range(int(n))]
        for i, name in enumerate(tqdm(names, desc=f"phantoms {task}", disable=not progress)):
            image, label, affine = make_case(task, seed * 100_003 + i, shape)
            nib.save(nib.Nifti1Image(image, affine), tmp / "imagesTr" / f"{name}.nii.gz")
            nib.save(nib.Nifti1Image(label, affine), tmp / "labelsTr" / f"{name}.nii.gz")
        (tmp / "dataset.json").write_text(json.dumps(_dataset_json(spec, names), indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_image_label_pairs(out: str | os.PathLike, n: int, num_classes: int = 4, shape: Sequence[int] = (32, 32, 32),
                            seed: int = 0, image_name: str = "img{:02d}.nii.gz",
                            label_name: str = "lbl{:02d}.nii.gz") -> List[Tuple[Path, Path]]:
    """Write ``n`` image/label phantom pairs with ``num_classes`` labels (0 background) into ``out`` under the file
    names a bundle's configs glob for (the zoo's segmentation template reads ``img*.nii.gz`` / ``lbl*.nii.gz``).

    Each foreground class is an ellipsoid of its own intensity, position jittered per case, in a noisy body.
    Works for 2-D ``shape`` too. Returns the written ``(image, label)`` paths.
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(int(n)):
        rng = np.random.default_rng(seed * 100_003 + i)
        axes = [np.linspace(-1.0, 1.0, int(k), dtype=np.float32) for k in shape]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"))
        label = np.zeros(tuple(int(k) for k in shape), np.uint8)
        image = np.where((grid ** 2).sum(0) <= 0.9, 0.2, 0.0).astype(np.float32)
        for c in range(1, int(num_classes)):
            angle = 2 * np.pi * c / (int(num_classes) - 1)
            centre = np.zeros(len(shape), np.float32)
            centre[:2] = 0.45 * np.cos(angle), 0.45 * np.sin(angle)
            centre += rng.normal(0.0, 0.04, len(shape)).astype(np.float32)
            inside = (((grid - centre.reshape(-1, *[1] * len(shape))) / 0.22) ** 2).sum(0) <= 1.0
            label[inside] = c
            image[inside] = 0.2 + 0.8 * c / (int(num_classes) - 1)
        image += rng.normal(0.0, 0.05, image.shape).astype(np.float32)
        affine = np.diag([1.0] * 3 + [1.0])
        paths = out / image_name.format(i), out / label_name.format(i)
        nib.save(nib.Nifti1Image(image, affine), paths[0])
        nib.save(nib.Nifti1Image(label, affine), paths[1])
        written.append(paths)
    return written
