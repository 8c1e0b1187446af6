"""The package's error types: bad input that ends a command with one line naming the file or key at fault.

A leaf module (no imports from the package), so every layer can raise them without importing another.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["DataError", "SettingsError", "WeightsMismatchError", "MissingWeightsError", "OnnxExportError", "root_cause", "one_line", "missing_module"]


class DataError(ValueError):
    """Bad input (a data file, a setting, a checkpoint that does not fit); the message, one line, names the file
    or key at fault."""


class SettingsError(DataError):
    """A bundle setting (config key or override) that cannot work; the message names the key."""


class WeightsMismatchError(DataError):
    """Weights that do not fit the network they are loaded into; the message says which settings to change."""


class MissingWeightsError(DataError):
    """A weights file that is not there; the message names it and how to point at one that is."""


class OnnxExportError(BaseException):
    """A network setting that ONNX cannot express (an FFT); the message names it.

    A ``BaseException`` on purpose: torch's ONNX exporter catches every ``Exception`` of its capture strategies
    and tries the next, ending in an unrelated conversion error that hides this reason.
    """


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of ``error``'s chain: monai.bundle wraps a constructor's or expression's error in
    'Failed to instantiate ...' / 'Failed to evaluate ...'."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None:
            break
        error = inner
    return error


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of ``error``'s root cause."""
    cause = root_cause(error)
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


# pip packages of the optional modules a command may need, where the module's name is not the package's
PIP_NAMES = {"ray": '"freq_transforms[ray]"', "monailabel": "monailabel"}


def missing_module(error: BaseException) -> Optional[str]:
    """``"<module> is not installed: pip install <package>"`` where ``error``'s chain holds an ``ImportError`` of a
    module that is not installed (MONAI's ``OptionalImportError`` included); ``None`` otherwise."""
    cause: Optional[BaseException] = error
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ImportError):
            found = cause.name or _module_named_in(str(cause))
            if found:
                top = found.split(".")[0]
                return f"{top} is not installed: pip install {PIP_NAMES.get(top, top)}"
        cause = cause.__cause__ or cause.__context__
    return None


def _module_named_in(message: str) -> Optional[str]:
    match = re.search(r"[Mm]odule '?([A-Za-z_][\w.]*)'? (?:is not installed|not found)|No module named '([\w.]+)'",
                      message)
    return (match.group(1) or match.group(2)) if match else None
