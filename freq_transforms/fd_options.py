"""The FD choices :class:`~freq_transforms.networks.FrequencyDisentangledNet` takes (fusion, fuse, arch), and their checks.

Kept apart from the network so that the weights record (:mod:`freq_transforms.networks.checkpoint`) can list the layouts a
file may fit without importing the network module.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import OnnxExportError

__all__ = ["FUSIONS", "FUSE_OPS", "ARCHS", "check_choices", "check_onnx_exportable"]

FUSIONS = ("none", "early", "late")
FUSE_OPS = ("spectral", "concat", "add")
ARCHS = ("v2", "paper")


def check_choices(fusion: str, fuse: str, arch: str, spatial_dims: int) -> None:
    """Raise ``ValueError`` naming the first argument outside its choices."""
    for name, value, choices in (("fusion", fusion, FUSIONS), ("fuse", fuse, FUSE_OPS), ("arch", arch, ARCHS),
                                 ("spatial_dims", spatial_dims, (2, 3))):
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_onnx_exportable(config: Mapping[str, Any]) -> None:
    """Raise :class:`OnnxExportError` naming the setting when a network built with ``config`` needs an FFT, which
    ONNX cannot express: a mask other than the centred box (the separable split is matrix products), a learnable
    cutoff, or the paper layout's spectral fuse."""
    if config["fusion"] == "none":
        return
    fft = []
    if config["mask"] != "box" or not config["centered"] or config["learnable_cutoff"]:
        fft.append(f"mask={config['mask']!r}, centered={config['centered']}, "
                   f"learnable_cutoff={config['learnable_cutoff']}")
    if config["arch"] == "paper" and config["fuse"] == "spectral":
        fft.append("fuse='spectral'")
    if fft:
        raise OnnxExportError(f"ONNX export: {'; '.join(fft)} needs an FFT, which ONNX cannot express; export with "
                              "mask='box', centered=True, a fixed cutoff and (arch='paper') fuse='concat' or 'add'")
