"""Frequency-disentangled (FD) segmentation for MONAI: Fourier split, transforms, fusion networks,
data helpers and the command line behind the FD bundle collection.

The public names load on first use (PEP 562), so ``python -m freq_transforms --help`` starts without torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.9.1"

_EXPORTS = {
    "disentangle": "fourier", "low_pass_mask": "fourier", "soft_low_pass_mask": "fourier", "spectral_fuse": "fourier",
    "FrequencyDisentangledNet": "networks", "FrequencySplit": "networks", "build_backbone": "networks",
    "FrequencyDisentangle": "transforms", "FrequencyDisentangled": "transforms",
    "FrequencyDisentangleD": "transforms", "FrequencyDisentangleDict": "transforms",
    "IntensityScale": "intensity", "IntensityScaled": "intensity",
}

__all__ = [*_EXPORTS, "__version__"]


SUBPACKAGES = ("bundle", "cli", "data", "handlers", "lab", "networks", "trial")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in SUBPACKAGES:  # a config's "$import freq_transforms" then reaches freq_transforms.data.move_files
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
