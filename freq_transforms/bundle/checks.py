"""Show a bad setting or file as one line, and the checks the settings schema cannot express.

:func:`install_one_line_errors` lets such an error (:class:`freq_transforms.errors.DataError`) end ``python -m
monai.bundle run`` with that one line instead of monai.bundle's wrapped traceback; a bundle's ``settings``
component (:class:`freq_transforms.bundle.settings.Settings`), the command line's ``main`` and the overlay call it,
importing this module does not. :func:`flag` reads the package's own command line's boolean words;
:func:`check_patch_size` needs the backbone.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional, Sequence

from ..errors import DataError, OnnxExportError, SettingsError

__all__ = ["flag", "check_patch_size", "one_line_errors", "install_one_line_errors"]

TRUE_WORDS, FALSE_WORDS = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")  # monai.utils.str2bool's


def flag(value: Any, key: str) -> bool:
    """The boolean option ``key``'s ``value`` as a ``bool``; :class:`SettingsError` naming ``key`` otherwise.

    The words of ``monai.utils.str2bool`` (yes/true/t/y/1, no/false/f/n/0, any case), plus the integers 0/1;
    not MONAI's function itself, because importing ``monai.utils`` imports torch, seconds a command line that
    only reads its options should not pay. The package's command line reads its boolean options through it
    (bundle keys are checked by the settings schema instead).

    Example::

        >>> flag("false", "tta"), flag(True, "tta"), flag(1, "tta")
        (False, True, True)
        >>> flag("maybe", "tta")
        Traceback (most recent call last):
        ...
        freq_transforms.errors.SettingsError: tta must be true or false, got 'maybe'
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{key} must be true or false, got {value!r}")


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

