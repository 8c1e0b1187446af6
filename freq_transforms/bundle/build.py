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
  and ``expected_results_file`` (Markdown beside it), and ``options``: named models one config away from the
  default (``{"accurate": {settings}}``), each written as ``configs/<option>.json``. Where ``eval_metrics`` says
  which ``point`` of the front the weights are (with ``options`` of its own), the README opens with that front.

A task's values replace the keys of the same name in each shared config that has them, except that
``inference.json`` builds the network without training-only heads (deep supervision): MONAI's ``ckpt_export``
scripts that network, and the trained heads' weights are dropped when they load. Metadata and README are filled
from it. ``python -m freq_transforms bundles build`` writes ``bundles/<name>/`` for every task file;
``--check`` only reports the files that differ.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Optional

from ..atomic import atomic_write_text
from ..networks.checkpoint import inference_kwargs
from .schema import settings_table
from .settings import keys_table

__all__ = ["load_task", "dump_config", "bundle_files", "build_bundles"]

CONFIGS = ("train", "evaluate", "inference", "inference_onnx", "multi_gpu_train")
BASES = {"evaluate": "train", "multi_gpu_train": "train", "inference_onnx": "inference"}  # listed after their base
INTENSITY_WORDS = {"paper": "min-max per image, as in the paper", "ct_window": "Hounsfield window -57..164 HU, clipped",
                   "percentile": "0.5-99.5 percentiles of each image, clipped"}
WIDTH = 118


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


def _inline(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _packed(items: List[str], indent: int, width: int) -> List[str]:
    """``items`` (already rendered, each with its trailing comma but the last) greedily filled into lines."""
    lines, line = [], ""
    for item in items:
        if line and indent + len(line) + 1 + len(item) > width:
            lines.append(" " * indent + line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return lines + ([" " * indent + line] if line else [])


def _render(value: Any, indent: int, room: int, width: int = WIDTH) -> str:
    """``value`` as JSON starting at column ``indent`` with ``room`` columns left on its first line: inline where
    it fits, else one item per line, scalar-only lists and objects packed several to a line."""
    flat = _inline(value)
    if not isinstance(value, (dict, list)) or len(flat) <= room:
        return flat
    inner = indent + 4
    pairs = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    rendered = []
    for key, item in pairs:
        head = "" if key is None else f"{json.dumps(key)}: "
        rendered.append(head + _render(item, inner, width - inner - len(head) - 1, width))
    items = [r + ("," if i < len(rendered) - 1 else "") for i, r in enumerate(rendered)]
    scalars = all(not isinstance(v, (dict, list)) or len(_inline(v)) < 40 for _, v in pairs)
    body = _packed(items, inner, width) if scalars else [" " * inner + item for item in items]
    close = "}" if isinstance(value, dict) else "]"
    return ("{" if isinstance(value, dict) else "[") + "\n" + "\n".join(body) + "\n" + " " * indent + close


def dump_config(config: Dict[str, Any], width: int = WIDTH) -> str:
    """A bundle config as JSON the way a person writes it: one top-level key per line, a value on that line where
    it fits in ``width`` columns, short scalar items several to a line (``json.dumps(indent=4)`` gives every
    list item its own line)."""
    lines = []
    for index, (key, value) in enumerate(config.items()):
        head = f"    {json.dumps(key)}: "
        comma = "," if index < len(config) - 1 else ""
        lines.append(head + _render(value, 4, width - len(head) - 1, width) + comma)
    return "{\n" + "\n".join(lines) + "\n}\n"


def _referenced_settings(config: Any) -> List[str]:
    """The settings keys ``config`` refers to (``@key`` anywhere in it), in the schema's order."""
    text = json.dumps(config)
    return [key for key in settings_table() if re.search(rf"@{key}\b(?![#\w])", text)]


def _with_settings(config: Dict[str, Any], task: Dict[str, Any], keys: List[str], layered: bool) -> Dict[str, Any]:
    """``config`` with each of ``keys`` set (the task's value, else the schema's default) after ``bundle_root``,
    and listed in its ``settings`` component (``settings#key`` entries for a config listed after its base)."""
    table = settings_table()
    values = {key: task.get(key, table[key].default) for key in keys}
    out: Dict[str, Any] = {}
    for name, value in config.items():
        if name == "settings" and not layered:
            value = {**value, **{key: f"@{key}" for key in keys}}
        out[name] = value
        if name == "bundle_root" or (layered and not out.keys() - {name}):
            out.update(values)
    if layered:
        out.update({f"settings#{key}": f"@{key}" for key in keys})
    return out


def config_settings(name: str) -> List[str]:
    """The settings keys config ``name`` sets and lists in its ``settings`` (the schema's ``read_by``); a config
    listed after its base (``evaluate``) only those its base lacks."""
    return [key for key, setting in settings_table().items() if name in setting.read_by]


def _configs(source: Path, task: Dict[str, Any], bundle_name: str) -> Dict[str, str]:
    files = {}
    for name in CONFIGS:
        config = json.loads((source / "configs" / f"{name}.json").read_text())
        keys = config_settings(name)
        missing = sorted(set(_referenced_settings(config)) - set(keys) - set(config_settings(BASES.get(name, ""))))
        if missing:
            raise ValueError(f"configs/{name}.json refers to @{missing[0]}, which the settings schema does not give "
                             f"it (freq_transforms.bundle.settings: configs=)")
        config = _with_settings(config, task, keys, layered=name in BASES)
        if name == "inference" and isinstance(config.get("backbone_kwargs"), dict):
            config["backbone_kwargs"] = inference_kwargs(config["backbone_kwargs"])
        if isinstance(config.get("recipe"), dict):  # the recipe names the bundle that trained the weights
            config["recipe"]["bundle"] = {"name": bundle_name, "version": task["version"]}
        files[f"configs/{name}.json"] = dump_config(config)
    return files


def _option_configs(task: Dict[str, Any]) -> Dict[str, str]:
    """``configs/<option>.json`` for each of the task's ``options``, listed after inference.json (or train.json, to
    train it): its settings, and, where one of them changes the weights (a schema key with ``weights``, e.g.
    ``backbone``), ``ckpt_dir`` ``models/<option>/``, where its own weights are. An option of inference settings
    alone (``ensemble``, ``sw_overlap``) runs the default's weights."""
    table, files = settings_table(), {}
    for option, keys in task.get("options", {}).items():
        unknown = [key for key in keys if key not in table]
        if option in CONFIGS or unknown:
            raise ValueError(f"task option {option!r}: " + (f"{unknown[0]!r} is no bundle setting" if unknown else
                                                             "the name of a shared config"))
        own_weights = any(table[key].weights for key in keys)
        files[f"configs/{option}.json"] = dump_config(
            {**keys, **({"ckpt_dir": f"$@bundle_root + '/models/{option}'"} if own_weights else {})})
    return files


def _x(size: Any) -> str:
    return "x".join(str(s) for s in size)


def _spacing_words(target_spacing: Any) -> str:
    if target_spacing == "median":
        return "the median spacing of the training cases"
    return f"{_x(target_spacing)} mm"


def _sampling_words(task: Dict[str, Any]) -> Dict[str, str]:
    """README text for the grid: what a model sees, and the cutoff in cycles per mm."""
    from ..sampling import cutoff_cycles_per_mm

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
    from .. import __version__

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


def _dice_words(metrics: Dict[str, Any]) -> str:
    ci = metrics.get("val_mean_dice_ci95")
    return f"{100 * metrics['val_mean_dice']:.2f}" + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "")


def _models_section(task: Dict[str, Any]) -> str:
    """The README's front: the default and each option of ``eval_metrics`` (the weights' own record: ``point``,
    validation Dice, seconds per case), and the configs that run each; empty for a bundle without that record."""
    metrics = task.get("eval_metrics", {})
    if "point" not in metrics:
        return ""
    rows = [("configs/inference.json", metrics)] + [
        (f"\"['configs/inference.json','configs/{option}.json']\"", option_metrics)
        for option, option_metrics in metrics.get("options", {}).items()]
    lines = ["## Models: Dice against seconds per case", "",
             "Each row is a point of the front: validation Dice (the protocol under Expected results) against the "
             "seconds per real case of its own inference on a 2-core CPU. Run a row with `python -m monai.bundle run "
             "--config_file <configs>`; list the same option config after `configs/train.json` to train it. "
             "MONAI Label serves the default.", "",
             "| model | validation Dice (%) | seconds per case, torch / onnxruntime | `--config_file` |",
             "|---|---|---|---|"]
    for configs, point in rows:
        name, words = point["point"].split(": ", 1)
        seconds = f"{point['infer_seconds_per_case_torch']:g} / {point['infer_seconds_per_case_onnxruntime']:g}"
        lines.append(f"| **{name}**: {words} | {_dice_words(point)} | {seconds} | `{configs}` |")
    return "\n".join(lines) + "\n\n"


def _readme(source: Path, name: str, task: Dict[str, Any], task_dir: Path) -> str:
    labels = task["labels"]
    table = settings_table()
    recipe = {key: json.dumps(task.get(key, table[key].default)) for key in ("sw_overlap",)}
    results = task_dir / task["expected_results_file"] if "expected_results_file" in task else source / "no_weights.md"
    values = {"name": name, "labels": ", ".join(f"{i} {n}" for i, n in enumerate(labels)),
              "labels_no_bg": ", ".join(f"{n} = {i}" for i, n in enumerate(labels) if i > 0),
              "size": "x".join(str(s) for s in task["spatial_size"]), "spatial_size": str(task["spatial_size"]),
              "size_commas": ", ".join(str(s) for s in task["spatial_size"]),
              "ratio": "/".join(str(r) for r in task["split_ratio"]), "expected_results": results.read_text().strip(),
              **recipe, **_sampling_words(task), "keys_table": keys_table(task, list(settings_table())),
              "tta_default": json.dumps(task.get("tta", False)), "ensemble_default": json.dumps(task.get("ensemble", False)),
              "ensemble_note": f"\n{task['ensemble_note']}\n" if "ensemble_note" in task else "",
              "models": _models_section(task),
              **{key: task[key] for key in ("title", "task", "dataset_dir", "data_source", "fusion", "arch",
                                            "intensity", "intensity_note", "defaults_note")}}
    return Template((source / "readme_template.md").read_text()).substitute(values)


def bundle_files(source: Path, name: str, task: Dict[str, Any], task_dir: Path, license_text: str) -> Dict[str, str]:
    """Every generated file of bundle ``name``: relative path -> text."""
    return {**_configs(source, task, name), **_option_configs(task),
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
