"""A bundle's configs read once (:class:`Bundle`), which of them run together, and the command line for each of
them with the FD overlay.

The zoo runs a config that has no ``network_def`` of its own on top of the train config (``evaluate.json``), one
named after another config on top of that one (``multi_gpu_evaluate.json`` on ``evaluate.json``,
``inference_trt.json`` on ``inference.json``), and one with its own ``network_def`` alone (``inference.json``).
monai.bundle has no such rule: the zoo writes it into each bundle's README.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["OVERLAY_FILE", "CONFIG_SUFFIXES", "Bundle", "bundle_config", "bundle_parser", "config_files",
           "config_group", "overlay_commands"]

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


class Bundle:
    """A bundle folder whose config files are each read from disk once: one object per command, passed to the
    trial, the overlay and ONNX inference, which build as many parsers of it as they need.

    ``ConfigParser.read_config`` reads its files at every call; this keeps each file's content and hands out
    copies, merged the way ``monai.bundle run`` merges a list of files (later ids, ``#`` for nesting, win).

    Example::

        >>> bundle = Bundle("bundles/hippocampus_mri_fd_segmentation")            # doctest: +SKIP
        >>> bundle.parser([bundle.config("train")], {"epochs": 2}).get("epochs")  # doctest: +SKIP
        2
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._contents: Dict[Path, Dict[str, Any]] = {}

    def content(self, config: Path) -> Dict[str, Any]:
        """A copy of ``config``'s content (read on first use; ``{}`` for a file that is not a mapping)."""
        from monai.bundle import ConfigParser

        key = Path(config).resolve()
        if key not in self._contents:
            loaded = ConfigParser.load_config_file(str(config))
            self._contents[key] = loaded if isinstance(loaded, dict) else {}
        return copy.deepcopy(self._contents[key])

    def config(self, name: str) -> Optional[Path]:
        """``configs/<name>.json``, ``.yaml`` or ``.yml``, if the bundle has one."""
        return bundle_config(self.root, name)

    def group(self, train: Path, config: Path) -> List[Path]:
        """The configs ``config`` runs with, in order (:func:`config_group`)."""
        return config_group(self.root, train, config, self)

    def parser(self, configs: List[Path], overrides: Optional[Dict[str, Any]] = None,
               root: Optional[Path] = None) -> Any:
        """A ``ConfigParser`` of ``configs`` as ``monai.bundle run`` reads them (``bundle_root`` set to ``root``,
        this bundle's by default, and its ``scripts/`` importable), with ``overrides`` (ids, ``#`` for nesting)
        applied."""
        from monai.bundle import ConfigParser

        merged = ConfigParser(config={})
        for config in configs:
            for key, value in self.content(config).items():
                merged[key] = value
        parser = ConfigParser()
        parser.read_config(merged.get())
        root = Path(root or self.root)
        parser["bundle_root"] = str(root)
        for key, value in (overrides or {}).items():
            parser[key] = value
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return parser


def bundle_parser(root: Path, configs: List[Path], overrides: Optional[Dict[str, Any]] = None) -> Any:
    """:meth:`Bundle.parser` of a bundle read for this one parser (a command that reads a bundle more than once
    keeps one :class:`Bundle`)."""
    return Bundle(root).parser(configs, overrides)


def config_files(bundle_root: Path) -> List[Path]:
    """The bundle's workflow configs (every JSON/YAML in ``configs/`` but metadata and the overlay), sorted."""
    return sorted(p for p in (bundle_root / "configs").iterdir()
                  if p.suffix in CONFIG_SUFFIXES and p.stem not in NOT_WORKFLOWS)


def _load(config: Path, bundle: Optional[Bundle] = None) -> Dict[str, Any]:
    try:
        return (bundle or Bundle(config.parents[1])).content(config)
    except Exception:  # noqa: BLE001  (an unreadable config is reported when it runs)
        return {}


def _base(bundle_root: Path, name: str) -> Optional[Path]:
    """The config ``name`` runs on top of, by the zoo's naming (``multi_gpu_X`` on X, ``X_trt`` on X)."""
    candidates = [name[len(MULTI_GPU_PREFIX):]] if name.startswith(MULTI_GPU_PREFIX) else []
    parts = name.split("_")
    candidates += ["_".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]
    return next((c for c in map(lambda n: bundle_config(bundle_root, n), candidates) if c is not None), None)


def config_group(bundle_root: Path, train: Path, config: Path, bundle: Optional[Bundle] = None) -> List[Path]:
    """The configs ``config`` runs with, in order (``[train, evaluate, multi_gpu_evaluate]``)."""
    if config == train:
        return [train]
    base = _base(bundle_root, config.stem)
    if base is not None and base != config:
        return config_group(bundle_root, train, base, bundle) + [config]
    loaded = _load(config, bundle)
    return [config] if "network_def" in loaded and not _sets_missing_sections(loaded) else [train, config]


def _sets_missing_sections(config: Dict[str, Any]) -> bool:
    """Whether ``config`` sets nested ids (``validate#handlers``) of sections it does not define: it runs on top of
    the config that does (the zoo's HoVerNet ``evaluate.json`` has its own ``network_def`` and replaces
    ``validate#handlers`` of ``train.json``)."""
    return any("#" in key and key.split("#")[0] not in config for key in config)


def loads_exported_network(config: Path, bundle: Optional[Bundle] = None) -> bool:
    """Whether ``config`` sets ``network_def`` to an expression (a TorchScript/TensorRT file loaded) rather than a
    component: the overlay does not belong on its command line, it belongs on the export's."""
    network_def = _load(config, bundle).get("network_def")
    return network_def is not None and not (isinstance(network_def, dict) and "_target_" in network_def)


def _files(bundle_root: Path, paths: List[Path], overlay: bool) -> str:
    names = [p.relative_to(bundle_root).as_posix() for p in paths] + ([OVERLAY_FILE] if overlay else [])
    return "\"['" + "','".join(names) + "']\""


def overlay_commands(bundle_root: Path, train: Path, bundle: Optional[Bundle] = None) -> Dict[str, str]:
    """The command line, run from the bundle root, for every workflow config of the bundle with the overlay."""
    bundle = bundle or Bundle(bundle_root)
    meta = bundle_config(bundle_root, "metadata")
    meta_arg = f" --meta_file {meta.relative_to(bundle_root).as_posix()}" if meta else ""
    ordered = [train] + [c for c in config_files(bundle_root) if c != train]
    lines = {}
    for config in ordered:
        network = _load(config, bundle).get("network")
        if network is not None and "@network_def" not in json.dumps(network):
            continue  # its network is not network_def: the overlay would change nothing there
        group = bundle.group(train, config)
        exported = loads_exported_network(config, bundle)
        multi = any(p.stem.startswith(MULTI_GPU_PREFIX) for p in group)
        runner = "torchrun --standalone --nnodes=1 --nproc_per_node=<GPUs> -m monai.bundle run" if multi \
            else "python -m monai.bundle run"
        label = config.stem + (" (runs the network exported with the overlay)" if exported else "")
        lines[label] = f"{runner} --config_file {_files(bundle_root, group, not exported)}{meta_arg}"
    return lines
