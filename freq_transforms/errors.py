"""The package's error types: bad input that ends a command with one line naming the file or key at fault.

A leaf module (no imports from the package), so every layer can raise them without importing another.
"""

from __future__ import annotations

__all__ = ["DataError", "SettingsError", "WeightsMismatchError", "OnnxExportError"]


class DataError(ValueError):
    """Bad input (a data file, a setting, a checkpoint that does not fit); the message, one line, names the file
    or key at fault."""


class SettingsError(DataError):
    """A bundle setting (config key or override) that cannot work; the message names the key."""


class WeightsMismatchError(DataError):
    """Weights that do not fit the network they are loaded into; the message says which settings to change."""


class OnnxExportError(BaseException):
    """A network setting that ONNX cannot express (an FFT); the message names it.

    A ``BaseException`` on purpose: torch's ONNX exporter catches every ``Exception`` of its capture strategies
    and tries the next, ending in an unrelated conversion error that hides this reason.
    """
