"""The checked :class:`Settings` every bundle config builds, and what else comes from the one schema of the
bundle settings (:mod:`freq_transforms.bundle.schema`):

* the check: one ``jsonschema`` validation (MONAI checks ``metadata.json`` with it) in :class:`Settings`, whose
  first failing key ends the run in one line;
* the keys ``bundles build`` writes into each config, with the task's values or these defaults, and the
  ``settings`` component that lists them;
* the key table of every bundle README (:func:`keys_table`);
* the recipe stored beside the weights (:func:`recipe_record`).

Example::

    >>> Settings(fusion="erly")
    Traceback (most recent call last):
    ...
    freq_transforms.errors.SettingsError: fusion must be one of none, early, late, got 'erly'
    >>> Settings(fusion="early", augment=True)["augment"]
    True
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ..errors import SettingsError
from .checks import install_one_line_errors
from .overrides import check_overrides
from .schema import PARTS, settings_table, words

__all__ = ["check_values", "Settings", "recipe_record", "keys_table"]

FIRE_WORDS = {"true": "True", "false": "False", "null": "None", "none": "None"}


def _error_line(key: str, value: Any) -> str:
    setting = settings_table()[key]
    allowed = words(setting.kind) + (" or null" if setting.nullable else "")
    line = f"{key} must be {allowed}, got {value!r}"
    if isinstance(value, str) and value.strip().lower() in FIRE_WORDS:  # fire hands the word over as text
        line += f" (pass --{key} {FIRE_WORDS[value.strip().lower()]}: monai.bundle's fire reads only that as the value)"
    return line


def _check_schema(values: Mapping[str, Any]) -> None:
    import jsonschema

    table = settings_table()
    from .schema import schema

    validator = jsonschema.Draft7Validator(schema())
    errors = sorted(validator.iter_errors(dict(values)), key=lambda e: list(table).index(e.path[0])
                    if e.path and e.path[0] in table else -1)
    for error in errors:
        key = error.path[0] if error.path else None
        if key in table:
            raise SettingsError(_error_line(str(key), values[key]))


def _check_pairs(values: Mapping[str, Any]) -> None:
    """What one key's type cannot say: counts that must agree, an index within its count, increasing bounds."""
    names, classes = values.get("class_names"), values.get("num_classes")
    if names is not None and classes is not None and len(names) != classes:
        raise SettingsError(f"class_names has {len(names)} names but num_classes is {classes}: give one name per "
                            "class, background first")
    for count, index in (("folds", "fold"), ("members", "member")):
        if values.get(count) is not None and values.get(index, 0) >= values[count]:
            raise SettingsError(f"{index} must be an integer in 0..{values[count] - 1} for {count}={values[count]}, "
                                f"got {values[index]!r}")
    for key in ("ct_window", "intensity_percentiles"):
        if values.get(key) is not None and not values[key][0] < values[key][1]:
            raise SettingsError(f"{key} must be two increasing numbers [low, high], got {values[key]!r}")


def check_values(values: Mapping[str, Any]) -> None:
    """Raise :class:`SettingsError` naming the first of ``values`` (key -> value, any subset of the settings)
    that the schema or a pair rule refuses: what :class:`Settings` checks, without the command line."""
    unknown = sorted(set(values) - set(settings_table()))
    if unknown:
        raise SettingsError(f"{unknown[0]} is not a bundle setting (freq_transforms.bundle.settings)")
    _check_schema(values)
    _check_pairs(values)


class Settings(dict):
    """A bundle's settings, checked: building it installs the one-line errors
    (:func:`~freq_transforms.bundle.checks.install_one_line_errors`), checks the command line's overrides
    (:func:`~freq_transforms.bundle.overrides.check_overrides`) and every given key against :func:`schema`;
    the first bad key stops in one line. Keys left out take their defaults. Every bundle config builds one
    ``settings`` component that lists its keys (``"fusion": "@fusion"``), and passes it where many are needed.

    Example::

        >>> settings = Settings(sampling="resize", epochs=10)
        >>> settings["lr_schedule"], settings.max_epochs, settings.epoch_length
        ('constant', 10, None)
    """

    def __init__(self, **values: Any) -> None:
        install_one_line_errors()
        check_overrides()
        check_values(values)
        defaults = {key: setting.default for key, setting in settings_table().items()}
        super().__init__({**defaults, **values})
        if self["lr_schedule"] is None:
            self["lr_schedule"] = "poly" if self["sampling"] == "patch" else "constant"

    @property
    def max_epochs(self) -> int:
        """The trainer's epochs: ``epochs``, or ``steps`` in whole epochs of ``iterations_per_epoch``."""
        steps = self["steps"]
        return self["epochs"] if steps is None else -(-steps // self["iterations_per_epoch"])

    @property
    def epoch_length(self) -> Optional[int]:
        """Iterations per epoch: ``iterations_per_epoch`` in patch mode or with ``steps``, else one pass."""
        counted = self["sampling"] == "patch" or self["steps"] is not None
        return self["iterations_per_epoch"] if counted else None

    @property
    def member_dir(self) -> str:
        """``/fold<member>`` when this run trains one member of a fold ensemble (``members``), else ``''``: the
        subfolder of ``models/`` and ``eval/`` it writes to."""
        return "" if self["members"] is None else f"/fold{self['member']}"

    @property
    def lr_power(self) -> float:
        """The poly schedule's power (0: a constant learning rate)."""
        return 0.9 if self["lr_schedule"] == "poly" else 0.0

    def uses_amp(self, device: Any) -> bool:
        """Mixed precision on ``device``: never off CUDA; there, ``amp`` or (null) on."""
        import torch

        return torch.device(device).type == "cuda" and self["amp"] is not False

    def check_network(self, network: Any) -> bool:
        """In patch mode, ``patch_size`` must be divisible by ``network.divisor`` per axis (the backbone's
        strides; a network without one, an ONNX session, is not checked); :class:`SettingsError` with a size that
        is, otherwise. Returns ``True``."""
        from .checks import check_patch_size

        divisor = getattr(network, "divisor", None)
        return divisor is None or check_patch_size(self["sampling"], self["patch_size"], divisor)


def recipe_record(settings: Mapping[str, Any], target_spacing: Any, bundle: Mapping[str, str]) -> Dict[str, Any]:
    """What trained weights carry besides the network's own settings: every ``weights`` key outside the network
    part (``target_spacing`` as resolved in mm), the bundle's name and version, and the package version."""
    from .. import __version__

    table = settings_table()
    record = {key: settings[key] for key, s in table.items() if s.weights and s.part != "network"}
    record.update(target_spacing=target_spacing, class_names=settings["class_names"], bundle=dict(bundle),
                  freq_transforms_version=__version__)
    return record


def keys_table(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The README table of ``keys`` (Markdown): key, its value in this bundle (``values``, else the default),
    meaning, by part of the pipeline."""
    import json

    table = settings_table()
    rows = ["| key | default | part | meaning |", "|---|---|---|---|"]
    for part in PARTS:
        for key in (k for k in keys if table[k].part == part):
            value = values.get(key, table[key].default)
            mark = " (the weights depend on it)" if table[key].weights else ""
            rows.append(f"| `{key}` | `{json.dumps(value)}` | {part} | {table[key].meaning}{mark} |")
    return "\n".join(rows)
