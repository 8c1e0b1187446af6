"""The recipe record: how a model was trained, written once at training and carried with its weights.

Like nnU-Net's plans, the record says what a model needs to be used as it was trained: the network (backbone,
its arguments, channels, FD settings), the grid (``sampling``, ``spatial_size``, ``patch_size``,
``target_spacing``), the intensity scaling and its parameters (``intensity``, ``ct_window``,
``intensity_percentiles``), the classes (``out_channels``, ``class_names``), and the bundle's name and version
(``bundle``). A bundle's ``train.json`` lists it once, as its ``recipe``.
It rides inside the weights wherever they go:

- ``model.pt`` (a plain state dict, as MONAI Label and ``monai.bundle`` expect): the state dict's own metadata,
  ``state._metadata[""]["freq_transforms"]``; every :class:`~freq_transforms.networks.FrequencyDisentangledNet`
  re-writes it in ``state_dict()``, so a re-save keeps it;
- TorchScript (``python -m monai.bundle ckpt_export``): the scripted network's ``recipe_json`` attribute, and the
  extra file ``recipe.json`` once :func:`write_recipe_into` has stamped it;
- ONNX: the model's ``metadata_props`` entry ``freq_transforms_recipe`` (:func:`write_recipe_into`; MONAI's
  ``onnx_export`` writes no metadata of its own).

:func:`read_recipe` reads it back from any of the three.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

__all__ = ["RECORD_KEY", "ONNX_KEY", "TORCHSCRIPT_FILE", "NETWORK_KEYS", "GRID_KEYS", "RECIPE_KEYS", "as_json_values",
           "unwrap", "recorded_settings", "weights_with_record", "read_state_dict", "read_recipe",
           "write_recipe_into", "write_onnx_metadata"]

RECORD_KEY = "freq_transforms"
ONNX_KEY = "freq_transforms_recipe"
TORCHSCRIPT_FILE = "recipe.json"
# every setting of FrequencyDisentangledNet that can decide which weights fit it
NETWORK_KEYS = ("backbone", "backbone_kwargs", "in_channels", "out_channels", "spatial_dims", "fusion", "arch",
                "cutoff", "mask", "centered", "axes", "learnable_cutoff", "features", "fuse")
GRID_KEYS = ("sampling", "spatial_size", "patch_size", "target_spacing")
RECIPE_KEYS = NETWORK_KEYS + GRID_KEYS + ("intensity", "ct_window", "intensity_percentiles", "class_names", "bundle",
                                          "freq_transforms_version")


def as_json_values(value: Any) -> Any:
    """``value`` with tuples as lists, as it reads back from JSON."""
    return json.loads(json.dumps(value, default=list))


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel, so weights load without ``module.``."""
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return network.module if isinstance(network, parallel) else network


def recorded_settings(state: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The record kept in a loaded state dict's metadata (``None`` for files without one)."""
    metadata = getattr(state, "_metadata", None) or {}
    record = metadata.get("", {}).get(RECORD_KEY)
    return dict(record) if isinstance(record, dict) else None


def weights_with_record(network: torch.nn.Module, **recipe: Any) -> Dict[str, Any]:
    """``network``'s ``state_dict`` with its settings and ``recipe`` (grid, intensity, classes, bundle ...) in the
    state dict's metadata. An FD network keeps ``recipe`` (``recipe_json``), so its later saves carry it too.

    The tensors are CPU copies, so weights trained on a GPU load where there is none, also through loaders that
    pass no ``map_location`` (``monai.bundle ckpt_export`` loads with ignite's ``Checkpoint.load_objects``)."""
    target = unwrap(network)
    if recipe and isinstance(getattr(target, "recipe_json", None), str):
        target.recipe_json = json.dumps(as_json_values({**json.loads(target.recipe_json or "{}"), **recipe}))
    state = target.state_dict()
    config = getattr(target, "config", None)
    if isinstance(config, dict) and recorded_settings(state) is None:
        state._metadata.setdefault("", {})[RECORD_KEY] = as_json_values({**recipe, **config})
    on_cpu = type(state)((key, value.detach().cpu() if torch.is_tensor(value) else value)
                         for key, value in state.items())
    on_cpu._metadata = state._metadata
    return on_cpu


def read_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """The weights in ``path``: a plain state dict, or the ``"model"`` entry of a dict of objects."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return state


def _torchscript_recipe(path: Path) -> Optional[Dict[str, Any]]:
    extra = {TORCHSCRIPT_FILE: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    text = extra[TORCHSCRIPT_FILE] or getattr(module, "recipe_json", "")
    return json.loads(text) if text else None


def _onnx_recipe(path: Path) -> Optional[Dict[str, Any]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    text = {p.key: p.value for p in model.metadata_props}.get(ONNX_KEY)
    return json.loads(text) if text else None


def read_recipe(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The recipe carried by a weights file: ``model.pt`` (state dict), TorchScript (``.ts``/``.pt`` archive of a
    scripted network) or ONNX (``.onnx``); ``None`` where it carries none. Example:
    ``read_recipe("models/model.pt")["sampling"]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".onnx":
        return _onnx_recipe(path)
    if _is_torchscript(path):
        return _torchscript_recipe(path)
    return recorded_settings(read_state_dict(path))


def _zip_names(path: Path) -> list:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _is_torchscript(path: Path) -> bool:
    return zipfile.is_zipfile(path) and any(n.endswith("/constants.pkl") for n in _zip_names(path))


def _torchscript_extra_files(path: Path) -> Dict[str, Any]:
    names = [n.split("/extra/", 1)[1] for n in _zip_names(path) if "/extra/" in n]
    extra: Dict[str, Any] = {name: "" for name in names}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return {"module": module, "extra": extra}


def write_onnx_metadata(path: str | os.PathLike, entries: Mapping[str, str]) -> Path:
    """Set ``entries`` in an ONNX file's ``metadata_props`` (others kept), its weights embedded; the file is
    replaced whole."""
    import onnx

    from .atomic import atomic_write

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    data = model.SerializeToString()
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_recipe_into(exported: str | os.PathLike, recipe: Mapping[str, Any]) -> Path:
    """Stamp ``recipe`` into an exported model: ONNX ``metadata_props`` (``freq_transforms_recipe``), or the
    TorchScript extra file ``recipe.json`` (its other extra files, such as MONAI's ``metadata.json``, kept). The
    file is replaced whole, never left half-written."""
    from .atomic import atomic_write

    path, text = Path(exported), json.dumps(as_json_values(dict(recipe)), sort_keys=True)
    if path.suffix == ".onnx":
        return write_onnx_metadata(path, {ONNX_KEY: text})
    loaded = _torchscript_extra_files(path)
    extra = {**loaded["extra"], TORCHSCRIPT_FILE: text}
    buffer = io.BytesIO()
    torch.jit.save(loaded["module"], buffer, _extra_files=extra)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
