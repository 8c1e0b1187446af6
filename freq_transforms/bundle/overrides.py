"""Overrides of a ``python -m monai.bundle run`` command line that name no key of the configs it runs.

monai.bundle accepts any override and sets it, so ``--epoch 2`` (for ``--epochs``) would train with the default
silently. :func:`check_overrides` runs first in every workflow of this project's bundles (through
:class:`freq_transforms.bundle.settings.Settings`) and stops such a run in one line naming the nearest key.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import SettingsError

__all__ = ["check_overrides", "unknown_override"]


def _is_bundle_run(argv: Sequence[str]) -> bool:
    """Whether this process is ``python -m monai.bundle run`` (or ``torchrun -m monai.bundle run``); MONAI Label
    and other programs that run a bundle in-process pass their overrides otherwise."""
    parts = Path(argv[0]).parts if argv else ()
    return len(argv) > 1 and argv[1] == "run" and parts[-3:] == ("monai", "bundle", "__main__.py")


def _named_options(args: Sequence[str]) -> Dict[str, Any]:
    """``--key value``, ``--key=value`` and a bare ``--key`` of a fire command line, as key -> value."""
    options: Dict[str, Any] = {}
    index = 0
    while index < len(args):
        token, index = args[index], index + 1
        if not token.startswith("--") or len(token) == 2:
            continue
        key, equals, value = token[2:].partition("=")
        if not equals and index < len(args) and not args[index].startswith("--"):
            value, index = args[index], index + 1
        options.setdefault(key.replace("-", "_"), value)
    return options


def _nearest(word: str, choices: Sequence[Any], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _keywords(target: Any) -> Optional[List[str]]:
    """The keywords a component's ``_target_`` takes, following ``**kwargs`` to the base classes' ``__init__``
    (MONAI's ``DataLoader`` hands them to torch's); ``None``: any, or it cannot be told without running."""
    import inspect
    from pydoc import locate

    from monai.bundle.config_item import ComponentLocator

    found = locate(target) if "." in str(target) else None
    if found is None:
        module = ComponentLocator().get_component_module_name(str(target))
        module = module[0] if isinstance(module, list) else module
        found = locate(f"{module}.{target}") if module else None
    functions = [c.__dict__["__init__"] for c in inspect.getmro(found) if "__init__" in c.__dict__ and c is not object] \
        if inspect.isclass(found) else [found]
    names: List[str] = []
    for function in functions:
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            return None
        names += [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"]
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names
    return None


def _new_part(key: str, node: Any, part: str) -> Optional[str]:
    """Why the last ``part`` of ``key`` cannot be set in ``node`` (a dict): it exists, or ``node`` is a component
    whose ``_target_`` takes that keyword, or it is one of the config's own ``_..._`` keys."""
    if not isinstance(node, dict) or part in node or part.startswith("_"):
        return None
    keywords = _keywords(node["_target_"]) if "_target_" in node else list(node)
    if keywords is None or part in keywords:
        return None
    what = f"{node['_target_']} takes no keyword" if "_target_" in node else "there is no key"
    return f"--{key}: {what} {part!r}{_nearest(part, keywords)}"


def unknown_override(key: str, config: Mapping[str, Any]) -> Optional[str]:
    """Why ``key`` (``epochs``, ``validate#dataloader#num_workers``) names no key of ``config``; ``None`` if it
    does. Every part of a nested id exists, except a keyword its component's ``_target_`` takes."""
    first, *rest = key.split("#")
    if first not in config:
        return f"--{key} names no key of the bundle's configs{_nearest(first, list(config), '--')}"
    node: Any = config[first]
    for depth, part in enumerate(rest[:-1], start=1):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            siblings = list(node) if isinstance(node, dict) else []
            where = "#".join([first, *rest[:depth - 1]])
            return f"--{key}: {where} has no {part!r}{_nearest(part, siblings)}"
    return _new_part(key, node, rest[-1]) if rest else None


def check_overrides(argv: Optional[Sequence[str]] = None) -> None:
    """Raise :class:`SettingsError` for a ``python -m monai.bundle run`` override that names no key of the bundle's
    configs (``--epoch 2`` for ``--epochs``), naming the nearest key. A key of another config of the bundle passes
    (one set of overrides for train, evaluate and inference). monai.bundle accepts any override and sets
    it, so a misspelt one would train with the default silently. Options of ``run`` itself (``--meta_file``
    ...) pass; other programs (MONAI Label, the lab) are not checked."""
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return
    options = _named_options(argv[2:])
    if "config_file" not in options:
        return
    import inspect

    from monai.bundle import ConfigParser, scripts

    own = {name for name, p in inspect.signature(scripts.run).parameters.items() if p.kind != p.VAR_KEYWORD}
    files = options["config_file"]
    if isinstance(files, str) and files.strip().startswith("["):
        import ast

        files = ast.literal_eval(files)
    config = ConfigParser.load_config_files(files)
    elsewhere = _keys_of_sibling_configs(files)
    for key in options:
        first = key.split("#")[0]
        if key in own or first == "_meta_" or (first not in config and first in elsewhere):
            continue  # a key of another config of the bundle: users pass one set of overrides to all of them
        problem = unknown_override(key, {**{k: None for k in elsewhere}, **config})
        if problem is not None:
            raise SettingsError(problem)


def _keys_of_sibling_configs(files: Any) -> List[str]:
    """The top-level keys of every config in the folders of ``files`` (the bundle's ``configs/``)."""
    from monai.bundle import ConfigParser

    listed = [files] if isinstance(files, str) else list(files)
    folders = {Path(str(f).split(",")[0]).parent for f in listed}
    keys: List[str] = []
    for path in sorted(p for folder in folders for p in folder.glob("*") if p.suffix in (".json", ".yaml", ".yml")):
        try:
            loaded = ConfigParser.load_config_file(str(path))
        except Exception:  # noqa: BLE001  (metadata, or a file that is not a config)
            continue
        keys += [str(k) for k in loaded] if isinstance(loaded, dict) else []
    return keys
