"""Which of a bundle's configs run together, and the command line for each of them with the FD overlay.

The zoo runs a config that has no ``network_def`` of its own on top of the train config (``evaluate.json``), one
named after another config on top of that one (``multi_gpu_evaluate.json`` on ``evaluate.json``,
``inference_trt.json`` on ``inference.json``), and one with its own ``network_def`` alone (``inference.json``).
monai.bundle has no such rule: the zoo writes it into each bundle's README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["OVERLAY_FILE", "CONFIG_SUFFIXES", "bundle_config", "bundle_parser", "config_files", "config_group",
           "overlay_commands"]

OVERLAY_FILE = "configs/fd_overlay.json"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
NOT_WORKFLOWS = ("metadata", "fd_overlay")  # configs/ files that are not workflow configs
MULTI_GPU_PREFIX = "multi_gpu_"


def bundle_config(bundle_root: Path, name: str) -> Optional[Path]:
    """``configs/<name>.json``, ``.yaml`` or ``.yml`` of a bundle, if there is one."""
    for suffix in CONFIG_SUFFIXES:
        path = bundle_root / "configs" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def bundle_parser(root: Path, configs: List[Path], overrides: Optional[Dict[str, Any]] = None) -> Any:
    """A ``ConfigParser`` of ``configs`` as ``monai.bundle run`` reads them (``bundle_root`` set, the bundle's
    ``scripts/`` importable), with ``overrides`` (ids, ``#`` for nesting) applied."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(c) for c in configs])
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return parser


def config_files(bundle_root: Path) -> List[Path]:
    """The bundle's workflow configs (every JSON/YAML in ``configs/`` but metadata and the overlay), sorted."""
    return sorted(p for p in (bundle_root / "configs").iterdir()
                  if p.suffix in CONFIG_SUFFIXES and p.stem not in NOT_WORKFLOWS)


def _load(config: Path) -> Dict[str, Any]:
    from monai.bundle import ConfigParser

    try:
        loaded = ConfigParser.load_config_file(str(config))
    except Exception:  # noqa: BLE001  (an unreadable config is reported when it runs)
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _base(bundle_root: Path, name: str) -> Optional[Path]:
    """The config ``name`` runs on top of, by the zoo's naming (``multi_gpu_X`` on X, ``X_trt`` on X)."""
    candidates = [name[len(MULTI_GPU_PREFIX):]] if name.startswith(MULTI_GPU_PREFIX) else []
    parts = name.split("_")
    candidates += ["_".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]
    return next((c for c in map(lambda n: bundle_config(bundle_root, n), candidates) if c is not None), None)


def config_group(bundle_root: Path, train: Path, config: Path) -> List[Path]:
    """The configs ``config`` runs with, in order (``[train, evaluate, multi_gpu_evaluate]``)."""
    if config == train:
        return [train]
    base = _base(bundle_root, config.stem)
    if base is not None and base != config:
        return config_group(bundle_root, train, base) + [config]
    loaded = _load(config)
    return [config] if "network_def" in loaded and not _sets_missing_sections(loaded) else [train, config]


def _sets_missing_sections(config: Dict[str, Any]) -> bool:
    """Whether ``config`` sets nested ids (``validate#handlers``) of sections it does not define: it runs on top of
    the config that does (the zoo's HoVerNet ``evaluate.json`` has its own ``network_def`` and replaces
    ``validate#handlers`` of ``train.json``)."""
    return any("#" in key and key.split("#")[0] not in config for key in config)


def loads_exported_network(config: Path) -> bool:
    """Whether ``config`` sets ``network_def`` to an expression (a TorchScript/TensorRT file loaded) rather than a
    component: the overlay does not belong on its command line, it belongs on the export's."""
    network_def = _load(config).get("network_def")
    return network_def is not None and not (isinstance(network_def, dict) and "_target_" in network_def)


def _files(bundle_root: Path, paths: List[Path], overlay: bool) -> str:
    names = [p.relative_to(bundle_root).as_posix() for p in paths] + ([OVERLAY_FILE] if overlay else [])
    return "\"['" + "','".join(names) + "']\""


def overlay_commands(bundle_root: Path, train: Path) -> Dict[str, str]:
    """The command line, run from the bundle root, for every workflow config of the bundle with the overlay."""
    meta = bundle_config(bundle_root, "metadata")
    meta_arg = f" --meta_file {meta.relative_to(bundle_root).as_posix()}" if meta else ""
    ordered = [train] + [c for c in config_files(bundle_root) if c != train]
    lines = {}
    for config in ordered:
        network = _load(config).get("network")
        if network is not None and "@network_def" not in json.dumps(network):
            continue  # its network is not network_def: the overlay would change nothing there
        group = config_group(bundle_root, train, config)
        exported = loads_exported_network(config)
        multi = any(p.stem.startswith(MULTI_GPU_PREFIX) for p in group)
        runner = "torchrun --standalone --nnodes=1 --nproc_per_node=<GPUs> -m monai.bundle run" if multi \
            else "python -m monai.bundle run"
        label = config.stem + (" (runs the network exported with the overlay)" if exported else "")
        lines[label] = f"{runner} --config_file {_files(bundle_root, group, not exported)}{meta_arg}"
    return lines
