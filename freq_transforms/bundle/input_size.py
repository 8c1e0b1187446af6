"""The input size a bundle's network sees, read from its configs: where the overlay checks that FD wraps it.

A zoo bundle keeps that size wherever its author put it: the inferer's ``roi_size``, a crop's ``spatial_size``, a
top-level ``patch_size``, the network's ``img_size``. MONAI has no common key for it, so the configs are searched
for these keys at any depth, and each value is resolved by ``monai.bundle.ConfigParser`` (``"@patch_size"``,
``"$..."``) as a run would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Sequence, Tuple

from .configs import Bundle

__all__ = ["SIZE_KEYS", "bundle_input_sizes", "ids_with_key"]

# In order of trust: what the network sees at inference, then at training, then any size.
SIZE_KEYS = ("roi_size", "patch_size", "crop_size", "spatial_size", "img_size")


def ids_with_key(config: Any, key: str, prefix: str = "") -> Iterator[str]:
    """The config ids (``a#b#0#roi_size``) of every ``key`` at any depth of a parsed config."""
    items: Sequence[Tuple[Any, Any]] = ()
    if isinstance(config, dict):
        items = list(config.items())
    elif isinstance(config, list):
        items = list(enumerate(config))
    for name, value in items:
        path = f"{prefix}#{name}" if prefix else str(name)
        if name == key:
            yield path
        yield from ids_with_key(value, key, path)


def _as_size(value: Any, spatial_dims: int) -> List[int]:
    """``value`` as one positive size per axis (an int stands for every axis), or ``[]``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * spatial_dims
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and len(value) == spatial_dims and \
            all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return [int(v) for v in value]
    return []


def bundle_input_sizes(bundle: Bundle, config_groups: Sequence[Sequence[Path]], spatial_dims: int) -> List[List[int]]:
    """The sizes the bundle's configs give for its network input, most trusted first, without repeats.

    ``config_groups``: the config files of each workflow as they run together (``[[train], [train, evaluate],
    [inference]]``). A value that cannot be resolved without running the workflow is skipped.

    Example: the zoo spleen bundle gives ``[[96, 96, 96]]`` (its inferer's ``roi_size`` and its crop's
    ``spatial_size``).
    """
    sizes: List[List[int]] = []
    parsers = []
    for group in config_groups:
        try:
            parsers.append(bundle.parser(list(group)))
        except KeyError:  # it sets ids of a section no config of the group has: it cannot run as grouped
            continue
    for key in SIZE_KEYS:
        for parser in parsers:
            for config_id in ids_with_key(parser.get(), key):
                try:
                    size = _as_size(parser.get_parsed_content(config_id, instantiate=False), spatial_dims)
                except Exception:  # noqa: BLE001  (an expression that needs the running workflow)
                    continue
                if size and size not in sizes:
                    sizes.append(size)
    return sizes
