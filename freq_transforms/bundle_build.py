"""Build the bundles from their plain-file source, so a bundle author edits JSON and Markdown, not Python.

The source folder (``bundle_source/`` in the repository) holds:

* ``configs/*.json``, ``configs/logging.conf``: the configs every bundle shares;
* ``metadata.json``: the metadata every bundle shares;
* ``readme_template.md``: the bundle README, with ``${name}`` placeholders (``string.Template``);
* ``data_license/<kind>.txt`` and ``no_weights.md`` (the "Expected results" of a bundle without weights);
* ``tasks/<bundle name>.json``: one file per bundle: its version and changelog, labels, spatial size, split,
  defaults (fusion, arch, intensity, backbone, backbone_kwargs; ``sampling`` with ``patch_size``,
  ``target_spacing``, ``crop_foreground`` and the reason, ``sampling_note``; optionally ``augment``, ``epochs``,
  ``val_interval``, ``batch_size``, ``samples_per_volume``, ``iterations_per_epoch``, ``lr_schedule``: the recipe
  of shipped weights; ``tta``, ``ensemble`` and ``sw_overlap``: how they predict, ``ensemble_note`` saying why in
  the README) with the reasons (``defaults_note``, ``intensity_note``), data notes, and optionally ``eval_metrics``
  and ``expected_results_file`` (Markdown beside it).

A task's values replace the keys of the same name in each shared config that has them, except that
``inference.json`` builds the network without training-only heads (deep supervision): MONAI's ``ckpt_export``
scripts that network, and the trained heads' weights are dropped when they load. Metadata and README are filled
from it. ``python -m freq_transforms bundles build`` writes ``bundles/<name>/`` for every task file;
``--check`` only reports the files that differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Optional

from .atomic import atomic_write_text
from .checkpoint import inference_kwargs

__all__ = ["TASK_KEYS", "load_task", "bundle_files", "build_bundles"]

# keys of the shared configs that a task sets (where a config has them)
TASK_KEYS = ("dataset_dir", "spatial_size", "num_classes", "class_names", "split_ratio", "fusion", "arch", "intensity",
             "augment", "epochs", "val_interval", "batch_size", "sampling", "patch_size", "target_spacing",
             "crop_foreground", "samples_per_volume", "iterations_per_epoch", "largest_component", "backbone",
             "backbone_kwargs", "lr_schedule", "tta", "ensemble", "sw_overlap")
CONFIGS = ("train", "evaluate", "inference", "inference_onnx", "multi_gpu_train")
INTENSITY_WORDS = {"paper": "min-max per image, as in the paper", "ct_window": "Hounsfield window -57..164 HU, clipped",
                   "percentile": "0.5-99.5 percentiles of each image, clipped"}


def load_task(path: Path) -> Dict[str, Any]:
    """A task file with the derived values (``num_classes``, ``class_names``) filled in."""
    try:
        task = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    required = ("version", "changelog", "title", "task", "modality", "format", "labels", "spatial_size",
                "split_ratio", "dataset_dir", "data_source", "data_license", "intensity", "intensity_note",
                "fusion", "arch", "defaults_note", "sampling", "patch_size", "target_spacing", "crop_foreground",
                "sampling_note")
    missing = [key for key in required if key not in task]
    if missing:
        raise ValueError(f"{path} has no {missing[0]!r} (a task file needs {', '.join(required)})")
    return {**task, "num_classes": len(task["labels"]), "class_names": task["labels"]}


def _configs(source: Path, task: Dict[str, Any], bundle_name: str) -> Dict[str, str]:
    files = {}
    for name in CONFIGS:
        config = json.loads((source / "configs" / f"{name}.json").read_text())
        config.update({key: task[key] for key in TASK_KEYS if key in config and key in task})
        if name == "inference" and isinstance(config.get("backbone_kwargs"), dict):
            config["backbone_kwargs"] = inference_kwargs(config["backbone_kwargs"])
        if isinstance(config.get("recipe"), dict):  # the recipe names the bundle that trained the weights
            config["recipe"]["bundle"] = {"name": bundle_name, "version": task["version"]}
        files[f"configs/{name}.json"] = json.dumps(config, indent=4) + "\n"
    return files


def _x(size: Any) -> str:
    return "x".join(str(s) for s in size)


def _spacing_words(target_spacing: Any) -> str:
    if target_spacing == "median":
        return "the median spacing of the training cases"
    return f"{_x(target_spacing)} mm"


def _sampling_words(task: Dict[str, Any]) -> Dict[str, str]:
    """README text for the grid: what a model sees, and the cutoff in cycles per mm."""
    from .sampling import cutoff_cycles_per_mm

    spacing = task["target_spacing"]
    if spacing == "median":
        band = "0.05 cycles per voxel of the target spacing along each axis (0.05 / s cycles per mm at spacing s)"
    else:
        mm = cutoff_cycles_per_mm(0.1, spacing)
        band = (f"about {'x'.join(f'{v:.3g}' for v in mm)} cycles per mm (wavelengths above about "
                f"{'x'.join(f'{1 / v:.0f}' for v in mm)} mm) along the R, A, S axes, the same for every case (0.05 "
                "cycles per voxel; the box keeps the odd number of frequency bins nearest to 0.1 x the window size, "
                "so the edge lies within half a bin of it)")
    return {"sampling": task["sampling"], "patch_size": json.dumps(task["patch_size"]),
            "patch_x": _x(task["patch_size"]), "target_spacing": json.dumps(task["target_spacing"]),
            "spacing_words": _spacing_words(spacing), "crop_foreground": json.dumps(task["crop_foreground"]),
            "patch_band": band, "sampling_note": task["sampling_note"],
            "largest_component": json.dumps(task.get("largest_component", False)),
            "input_size": _x(task["patch_size"] if task["sampling"] == "patch" else task["spatial_size"]),
            "input_commas": ", ".join(str(s) for s in (task["patch_size"] if task["sampling"] == "patch"
                                                       else task["spatial_size"]))}


def _metadata(source: Path, name: str, task: Dict[str, Any]) -> Dict[str, Any]:
    from . import __version__

    meta = json.loads((source / "metadata.json").read_text())
    labels, size = task["labels"], task["spatial_size"]
    meta.update({"version": task["version"], "changelog": task["changelog"], "name": name, "task": task["title"],
                 "data_source": task["data_source"], "eval_metrics": task.get("eval_metrics", {})})
    meta["required_packages_version"]["freq_transforms"] = __version__
    meta["description"] = f"{task['title']} {meta['description']}"
    patch = task["sampling"] == "patch"
    grid = (f"resampled to {_spacing_words(task['target_spacing'])} and cut into {_x(task['patch_size'])} patches "
            "(sliding window at inference)" if patch else f"resized to {_x(size)}")
    if patch:
        size = task["patch_size"]
    meta["image_classes"] = (f"single channel {task['modality']} image, scaled to [0, 1] "
                             f"({INTENSITY_WORDS[task['intensity']]}) and {grid}")
    meta["label_classes"] = "single channel labels: " + ", ".join(f"{i} is {n}" for i, n in enumerate(labels))
    meta["pred_classes"] = (f"{len(labels)} channels of unnormalised class scores (logits, unbounded, hence no "
                            "value_range; softmax gives class probabilities and argmax the label map, as "
                            "inference.json does): " + ", ".join(f"channel {i} is {n}" for i, n in enumerate(labels)))
    image, pred = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    image.update({"format": task["format"], "modality": task["modality"], "spatial_shape": size,
                  "is_patch_data": patch})
    pred.update({"format": "logits", "value_range": [], "num_channels": len(labels), "spatial_shape": size,
                 "channel_def": {str(i): n for i, n in enumerate(labels)}})
    return meta


def _lr_schedule_words(task: Dict[str, Any]) -> str:
    if "lr_schedule" in task:
        return f"`{task['lr_schedule']}` (chosen for this task's shipped weights)"
    return "`poly` in patch mode, `constant` in resize mode"


def _readme(source: Path, name: str, task: Dict[str, Any], task_dir: Path) -> str:
    labels = task["labels"]
    train = json.loads((source / "configs" / "train.json").read_text())
    recipe = {key: json.dumps(task.get(key, train[key])) for key in ("epochs", "augment", "val_interval", "batch_size",
                                                                      "samples_per_volume", "iterations_per_epoch",
                                                                      "backbone", "backbone_kwargs", "sw_overlap")}
    results = task_dir / task["expected_results_file"] if "expected_results_file" in task else source / "no_weights.md"
    values = {"name": name, "labels": ", ".join(f"{i} {n}" for i, n in enumerate(labels)),
              "labels_no_bg": ", ".join(f"{n} = {i}" for i, n in enumerate(labels) if i > 0),
              "size": "x".join(str(s) for s in task["spatial_size"]), "spatial_size": str(task["spatial_size"]),
              "size_commas": ", ".join(str(s) for s in task["spatial_size"]),
              "ratio": "/".join(str(r) for r in task["split_ratio"]), "expected_results": results.read_text().strip(),
              **recipe, **_sampling_words(task), "lr_schedule_words": _lr_schedule_words(task),
              "tta_default": json.dumps(task.get("tta", False)), "ensemble_default": json.dumps(task.get("ensemble", False)),
              "ensemble_note": f"\n{task['ensemble_note']}\n" if "ensemble_note" in task else "",
              **{key: task[key] for key in ("title", "task", "dataset_dir", "data_source", "fusion", "arch",
                                            "intensity", "intensity_note", "defaults_note")}}
    return Template((source / "readme_template.md").read_text()).substitute(values)


def bundle_files(source: Path, name: str, task: Dict[str, Any], task_dir: Path, license_text: str) -> Dict[str, str]:
    """Every generated file of bundle ``name``: relative path -> text."""
    return {**_configs(source, task, name),
            "configs/metadata.json": json.dumps(_metadata(source, name, task), indent=4) + "\n",
            "configs/logging.conf": (source / "configs" / "logging.conf").read_text(),
            "docs/README.md": _readme(source, name, task, task_dir),
            "docs/data_license.txt": (source / "data_license" / f"{task['data_license']}.txt").read_text(),
            "LICENSE": license_text}


def build_bundles(source: Path, out: Path, check: bool = False, license_file: Optional[Path] = None) -> List[str]:
    """Write (or with ``check`` compare) ``out/<name>/`` for every ``source/tasks/<name>.json``; returns the
    paths that differ (``check``) or were written."""
    license_text = (license_file or source.parent / "LICENSE").read_text()
    tasks = sorted((source / "tasks").glob("*.json"))
    if not tasks:
        raise ValueError(f"{source / 'tasks'} holds no task files (<bundle name>.json)")
    changed = []
    for path in tasks:
        files = bundle_files(source, path.stem, load_task(path), path.parent, license_text)
        for rel, text in files.items():
            target = out / path.stem / rel
            if target.is_file() and target.read_text() == text:
                continue
            changed.append(str(target))
            if not check:
                atomic_write_text(target, text)
    return changed
