"""Frequency-disentangled (FD) segmentation for MONAI: Fourier split, transforms, fusion networks,
data helpers and the command line behind the FD bundle collection."""

from .fourier import disentangle, low_pass_mask, soft_low_pass_mask, spectral_fuse
from .intensity import IntensityScale, IntensityScaled
from .networks import FrequencyDisentangledNet, FrequencySplit, build_backbone
from .transforms import FrequencyDisentangle, FrequencyDisentangled, FrequencyDisentangleD, FrequencyDisentangleDict

__version__ = "0.3.0"

__all__ = [
    "disentangle", "low_pass_mask", "soft_low_pass_mask", "spectral_fuse",
    "FrequencyDisentangledNet", "FrequencySplit", "build_backbone",
    "FrequencyDisentangle", "FrequencyDisentangled", "FrequencyDisentangleD", "FrequencyDisentangleDict",
    "IntensityScale", "IntensityScaled", "__version__",
]
