"""Check a bundle's settings before it writes anything, and show a bad setting or file as one line.

``check_settings`` runs first in every bundle workflow (``initialize``): a wrong override (``--spatial_size
"[64,64]"`` for a 3-D bundle, ``--fusion erly``) stops there, naming the key, before the previous weights are set
aside or ``split.json`` is written. Importing this module (every bundle config does) also lets such an error, and
a dataset problem (:class:`freq_transforms.data.DataError`), end ``python -m monai.bundle run`` with that one line
instead of monai.bundle's wrapped traceback (:func:`one_line_errors`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Mapping, Optional, Sequence, Tuple

from .bundle_overrides import check_overrides
from .errors import DataError, OnnxExportError, SettingsError
from .fd_options import ARCHS, FUSE_OPS, FUSIONS

__all__ = ["SettingsError", "OnnxExportError", "flag", "Flags", "optional", "Optionals", "check_settings",
           "check_overrides", "check_fd_settings", "check_patch_size", "one_line_errors",
           "install_one_line_errors"]

MASKS = ("box", "ball", "gaussian")
INTENSITIES = ("paper", "ct_window", "percentile")
SAMPLINGS = ("resize", "patch")  # as freq_transforms.sampling
LR_SCHEDULES = ("constant", "poly")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_ints(key: str, value: Any, length: int, what: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != length or \
            not all(_is_int(v) and v > 0 for v in value):
        raise SettingsError(f"{key} must be {length} positive integers ({what}), got {value!r}")


TRUE_WORDS, FALSE_WORDS = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")  # monai.utils.str2bool's


def flag(value: Any, key: str) -> bool:
    """The boolean bundle key ``key``'s ``value`` as a ``bool``; :class:`SettingsError` naming ``key`` otherwise.

    The words of ``monai.utils.str2bool`` (yes/true/t/y/1, no/false/f/n/0, any case), plus the integers 0/1 and the key
    named in the error; not MONAI's function itself, because importing ``monai.utils`` imports torch, seconds a
    command line that only checks its options should not pay. ``python -m monai.bundle run --augment
    false`` hands the config the *string* ``'false'`` (fire reads only ``True``/``False`` as booleans), which a bare ``if @augment``
    would take as true. Every boolean key in the bundle configs is read through this function, so ``true``,
    ``False``, ``yes``, ``0`` ... all mean what they say, and anything else stops the run in one line.

    Example::

        >>> flag("false", "augment"), flag(True, "augment"), flag(1, "augment")
        (False, True, True)
        >>> flag("maybe", "augment")
        Traceback (most recent call last):
        ...
        freq_transforms.errors.SettingsError: augment must be true or false, got 'maybe'
    """
    if isinstance(value, bool):
        return value
    if _is_int(value) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{key} must be true or false, got {value!r}")


class Flags(dict):
    """Every boolean key of a bundle, read once through :func:`flag`: a bundle config builds one ``flags``
    component and reads ``@flags['augment']`` wherever it needs the value. A bad value stops the run in one line
    naming the key, when ``settings_check`` builds it, before anything is written.

    Example::

        >>> Flags(augment="false", amp=1)
        {'augment': False, 'amp': True}
    """

    def __init__(self, **values: Any) -> None:
        super().__init__({key: flag(value, key) for key, value in values.items()})
        # built only by a bundle's configs, also where their initialize never runs: the zoo's export commands
        # (ckpt_export, onnx_export, verify_net_in_out) build network_def, which reads these flags
        install_one_line_errors()


NULL_WORDS = ("null", "none", "")


def optional(value: Any, key: str) -> Any:
    """``value`` of the nullable bundle key ``key``, with ``null``/``none`` in any case (what fire hands over for
    ``--n_train null``: the string) read as ``None``; any other value unchanged, for its own check.

    Example::

        >>> optional("null", "n_train"), optional("None", "folds"), optional(5, "folds")
        (None, None, 5)
    """
    if isinstance(value, str) and value.strip().lower() in NULL_WORDS:
        return None
    return value


class Optionals(dict):
    """Every key of a bundle whose default is ``null``, read once through :func:`optional`: a config builds one
    ``optional`` component and reads ``@optional['n_train']`` wherever it needs the value.

    Example::

        >>> Optionals(n_train="null", folds=5)
        {'n_train': None, 'folds': 5}
    """

    def __init__(self, **values: Any) -> None:
        super().__init__({key: optional(value, key) for key, value in values.items()})


def check_flags(flags: Optional[Mapping[str, Any]]) -> None:
    """Raise :class:`SettingsError` naming the first key in ``flags`` (key -> value) that is not a boolean."""
    for key, value in (flags or {}).items():
        flag(value, key)


def _one_of(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SettingsError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _positive(key: str, value: Any, integer: bool = True) -> None:
    ok = _is_int(value) if integer else isinstance(value, (int, float)) and not isinstance(value, bool)
    if value is not None and (not ok or value <= 0):
        raise SettingsError(f"{key} must be a positive {'integer' if integer else 'number'}, got {value!r}")


def _network_settings(spatial_size: Any, spatial_dims: int, num_classes: Any, class_names: Optional[Sequence[str]],
                      in_channels: Any, fusion: Any, arch: Any, fuse: Any, mask: Any, cutoff: Any,
                      features: Any) -> None:
    _positive_ints("spatial_size", spatial_size, spatial_dims, f"one per axis of a {spatial_dims}-D image")
    if not _is_int(num_classes) or num_classes < 2:
        raise SettingsError(f"num_classes must be an integer >= 2 (background and at least one class), got "
                            f"{num_classes!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise SettingsError(f"class_names has {len(class_names)} names but num_classes is {num_classes}: give one "
                            "name per class, background first")
    _positive("in_channels", in_channels)
    check_fd_settings(fusion, arch, fuse, mask, cutoff, features)


def check_fd_settings(fusion: Any, arch: Any, fuse: Any, mask: Any, cutoff: Any, features: Any) -> None:
    """Raise :class:`SettingsError` naming the first FD setting (bundle key or overlay option) that cannot work."""
    _one_of("fusion", fusion, FUSIONS)
    _one_of("arch", arch, ARCHS)
    _one_of("fuse", fuse, FUSE_OPS)
    _one_of("mask", mask, MASKS)
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not 0 < cutoff < 1:
        raise SettingsError(f"cutoff must be a number between 0 and 1 (a fraction of the spectrum), got {cutoff!r}")
    _positive("features", features)


def _intensity_settings(intensity: Any, ct_window: Any, intensity_percentiles: Any) -> None:
    _one_of("intensity", intensity, INTENSITIES)
    for key, value, low, high in (("ct_window", ct_window, -1e5, 1e5),
                                  ("intensity_percentiles", intensity_percentiles, 0, 100)):
        if value is None:
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 2 or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) or \
                not low <= value[0] < value[1] <= high:
            raise SettingsError(f"{key} must be two increasing numbers [low, high], got {value!r}")


def _sampling_settings(sampling: Any, patch_size: Any, target_spacing: Any, sw_overlap: Any, spatial_dims: int,
                       samples_per_volume: Any, iterations_per_epoch: Any, lr_schedule: Any) -> None:
    if sampling is None:
        return
    _one_of("sampling", sampling, SAMPLINGS)
    _positive_ints("patch_size", patch_size, spatial_dims, f"one per axis of a {spatial_dims}-D image")
    if target_spacing != "median" and (
            not isinstance(target_spacing, (list, tuple)) or len(target_spacing) != spatial_dims or
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in target_spacing)):
        raise SettingsError(f"target_spacing must be {spatial_dims} positive numbers in mm (one per axis, RAS "
                            f"order) or 'median' (of the training cases), got {target_spacing!r}")
    if sw_overlap is not None and (isinstance(sw_overlap, bool) or not isinstance(sw_overlap, (int, float)) or
                                   not 0 <= sw_overlap < 1):
        raise SettingsError(f"sw_overlap must be a number in [0, 1) (fraction of a window shared with the next), "
                            f"got {sw_overlap!r}")
    _positive("samples_per_volume", samples_per_volume)
    _positive("iterations_per_epoch", iterations_per_epoch)
    if lr_schedule is not None:
        _one_of("lr_schedule", lr_schedule, LR_SCHEDULES)


def check_patch_size(sampling: str, patch_size: Sequence[int], divisor: Sequence[int]) -> bool:
    """Raise :class:`SettingsError` when a patch-mode ``patch_size`` is not divisible by the backbone's
    ``divisor`` (``FrequencyDisentangledNet.divisor``); ``True`` otherwise.

    Example::

        >>> check_patch_size("patch", [96, 96, 40], [16, 16, 16])
        Traceback (most recent call last):
        ...
        freq_transforms.errors.SettingsError: patch_size [96, 96, 40] must be divisible by [16, 16, 16] per axis for this backbone (e.g. [96, 96, 32])
    """
    if sampling != "patch":
        return True
    if any(int(p) % int(d) for p, d in zip(patch_size, divisor)):
        nearest = [max(int(d), int(round(int(p) / int(d))) * int(d)) for p, d in zip(patch_size, divisor)]
        raise SettingsError(f"patch_size {list(patch_size)} must be divisible by {list(divisor)} per axis for this "
                            f"backbone (e.g. {nearest})")
    return True


def _k_of(keys: Tuple[str, str], count: Any, index: Any, without: str) -> None:
    """``count`` parts (an integer >= 2, or null for ``without``) and ``index`` one of them."""
    if count is None:
        return
    if not _is_int(count) or count < 2:
        raise SettingsError(f"{keys[0]} must be an integer >= 2 (or null for {without}), got {count!r}")
    if not _is_int(index) or not 0 <= index < count:
        raise SettingsError(f"{keys[1]} must be an integer in 0..{count - 1} for {keys[0]}={count}, got {index!r}")


def _training_settings(split_ratio: Any, n_train: Any, folds: Any, fold: Any, epochs: Any, val_interval: Any,
                       batch_size: Any, learning_rate: Any) -> None:
    if split_ratio is not None and (not isinstance(split_ratio, (list, tuple)) or len(split_ratio) != 3 or
                                    not all(isinstance(r, (int, float)) and r >= 0 for r in split_ratio)):
        raise SettingsError(f"split_ratio must be three non-negative numbers (train, val, test), got {split_ratio!r}")
    _positive("n_train", n_train)
    _k_of(("folds", "fold"), folds, fold, "split_ratio")
    _positive("epochs", epochs)
    _positive("val_interval", val_interval)
    _positive("batch_size", batch_size)
    _positive("learning_rate", learning_rate, integer=False)


def check_settings(spatial_size: Any, num_classes: Any, in_channels: Any, fusion: Any, arch: Any, fuse: Any,
                   mask: Any, cutoff: Any, features: Any, intensity: Any, ct_window: Any = None,
                   intensity_percentiles: Any = None, class_names: Optional[Sequence[str]] = None,
                   spatial_dims: int = 3, split_ratio: Any = None, n_train: Any = None, folds: Any = None,
                   fold: Any = 0, epochs: Any = None, val_interval: Any = None, batch_size: Any = None,
                   learning_rate: Any = None, sampling: Any = None, patch_size: Any = None,
                   target_spacing: Any = None, sw_overlap: Any = None, samples_per_volume: Any = None,
                   iterations_per_epoch: Any = None, lr_schedule: Any = None, members: Any = None,
                   member: Any = 0, steps: Any = None, flags: Optional[Mapping[str, Any]] = None) -> bool:
    """Raise :class:`SettingsError` naming the first bundle key whose value cannot work; ``True`` otherwise.

    Keyword names are the bundle's config keys, so ``"settings_check": {"_target_":
    "freq_transforms.bundle_checks.check_settings", "spatial_size": "@spatial_size", ...}`` checks what a run was
    given, overrides included. Training-only keys (``split_ratio`` ... ``learning_rate``) are checked when passed;
    so are the sampling keys (``sampling`` ... ``lr_schedule``; ``patch_size``'s divisibility is
    :func:`check_patch_size`'s, as it needs the backbone). ``flags`` maps each boolean key to its value
    (:func:`flag`). First, the overrides of a ``monai.bundle run`` command line are checked to name keys of its
    configs (:func:`check_overrides`).

    Example::

        >>> check_settings([64, 64], 3, 1, "early", "v2", "concat", "box", 0.1, 8, "paper")
        Traceback (most recent call last):
        ...
        freq_transforms.errors.SettingsError: spatial_size must be 3 positive integers (one per axis of a 3-D image), got [64, 64]
    """
    check_overrides()
    _network_settings(spatial_size, spatial_dims, num_classes, class_names, in_channels, fusion, arch, fuse, mask,
                      cutoff, features)
    _intensity_settings(intensity, ct_window, intensity_percentiles)
    _sampling_settings(sampling, patch_size, target_spacing, sw_overlap, spatial_dims, samples_per_volume,
                       iterations_per_epoch, lr_schedule)
    check_flags(flags)
    _training_settings(split_ratio, n_train, folds, fold, epochs, val_interval, batch_size, learning_rate)
    _k_of(("members", "member"), members, member, "one model")
    _positive("steps", steps)
    return True


def _input_error(error: BaseException) -> Optional[BaseException]:
    """The :class:`DataError` in ``error``'s chain of causes (monai.bundle wraps it in 'Failed to evaluate ...')."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (DataError, OnnxExportError)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def one_line_errors() -> None:
    """Make an uncaught exception caused by a bad setting or input file print ``error: <message>`` and nothing
    else (exit status 1). Every other exception keeps the usual traceback. Installed once
    (:func:`install_one_line_errors`)."""
    previous = sys.excepthook
    if getattr(previous, "freq_transforms_one_line", False):
        return

    def hook(kind, error, traceback) -> None:
        found = _input_error(error)
        if found is None:
            previous(kind, error, traceback)
        else:
            print(f"error: {found}", file=sys.stderr)

    hook.freq_transforms_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _log_without_traceback() -> None:
    """Drop the traceback from log records of such an error whose message already says it: MONAI's
    ``StatsHandler`` logs every exception that ends a run with ``logger.exception(f"Exception: {e}")`` (a
    traceback on stdout) before the error reaches the excepthook. A record that does not say it (a server's
    "Exception in ASGI application") keeps its traceback, whose last line does."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "freq_transforms_one_line", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        error = record.exc_info[1] if record.exc_info else None
        found = _input_error(error) if error is not None else None
        if found is not None and str(found) in str(record.msg):  # the line already says it: drop the traceback
            record.exc_info, record.exc_text = None, None
        return record

    factory.freq_transforms_one_line = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def install_one_line_errors() -> bool:
    """Make a bad setting or input file end a ``python -m monai.bundle run`` in one ``error: ...`` line: the
    interpreter's excepthook prints such an error alone, and log records of it lose their traceback. Nothing else
    changes; calling it again changes nothing. Each bundle's ``initialize`` calls it first, building its ``flags``
    does too (for the commands that never run ``initialize``), and so does the command line's ``main``; importing
    this module does not. Returns ``True`` (so a config expression can call it)."""
    one_line_errors()
    _log_without_traceback()
    return True

