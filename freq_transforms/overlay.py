"""FD on any MONAI model-zoo segmentation bundle: one overlay config that wraps the bundle's own network.

``python -m freq_transforms overlay <bundle_root>`` reads the bundle's train config (JSON or YAML), checks that its
``network_def`` builds a network whose first layer is a convolution, and writes ``configs/fd_overlay.json``:

* ``fd_backbone_def``: the bundle's own ``network_def``, unchanged, in MONAI's ``"_mode_": "callable"``;
* ``network_def``: :class:`FrequencyOverlay` around it.

Listed after the bundle's configs (``--config_file "['configs/train.json','configs/fd_overlay.json']"``), it
replaces only ``network_def``; ``network`` (``$@network_def.to(@device)``, DDP in multi-GPU configs) and every
transform, loss, handler and checkpoint name of the bundle stay as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from . import bundle_checks  # noqa: F401  (one-line errors for monai.bundle runs that load the overlay)
from .checkpoint import describe_mismatch
from .errors import DataError, WeightsMismatchError
from .networks import FrequencyDisentangledNet
from .networks.backbones import backbone_divisor, probe
from .recipe import recorded_settings

__all__ = ["OVERLAY_FILE", "OverlayError", "FrequencyOverlay", "first_layer", "first_conv", "overlay_config",
           "bundle_networks", "write_overlay"]

OVERLAY_FILE = "configs/fd_overlay.json"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
CONV_TYPES = (nn.Conv2d, nn.Conv3d)


class OverlayError(DataError):
    """A bundle that cannot be overlaid (no ``network_def``, a first layer that is not a convolution, ...)."""


def first_layer(network: nn.Module) -> Tuple[str, nn.Module]:
    """The first module with parameters of its own, in registration order (the layer that reads the image in
    MONAI's networks and in plain ``nn.Sequential`` ones)."""
    for name, module in network.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            return name, module
    raise OverlayError(f"{type(network).__name__} has no layer with parameters")


def first_conv(network: nn.Module) -> nn.Module:
    """The network's first layer, checked to be the 2-D or 3-D convolution FD wraps; else :class:`OverlayError`."""
    name, layer = first_layer(network)
    if not isinstance(layer, CONV_TYPES):
        raise OverlayError(f"the first layer of {type(network).__name__} ({name}: {type(layer).__name__}) is not "
                           "a 2-D or 3-D convolution: FD cannot be overlaid")
    return layer


class FrequencyOverlay(FrequencyDisentangledNet):
    """:class:`FrequencyDisentangledNet` around a bundle's own network, built from its ``network_def``.

    ``backbone_factory()`` (the bundle's ``network_def`` in ``"_mode_": "callable"``) is called first, before any
    random number is drawn here, so with ``arch="v2"`` the overlaid network starts as exactly the bundle's network
    of the same seed (early fusion: split input convs with equal weights; late fusion: a zero-started
    correction). Image channels and spatial dims are read from the network's first convolution, classes from
    its output. ``arch="paper"`` rebuilds the network with ``in_channels``/``out_channels`` for its branch
    features (the ``network_def`` must take those keywords).

    The state dict records the FD settings and the overlay file, so weights of the plain network loaded into the
    overlay (or the other way round) stop with one line naming ``overlay_file``.

    Args:
        backbone_factory: builds the bundle's network with no arguments (or with ``in_channels``/``out_channels``).
        fusion, arch, cutoff, mask, features, fuse, centered, learnable_cutoff: as for
            :class:`FrequencyDisentangledNet`.
        overlay_file: the overlay config, named in errors.

    Example::

        >>> from functools import partial
        >>> from monai.networks.nets import UNet
        >>> net = FrequencyOverlay(partial(UNet, 3, 1, 2, channels=(8, 16), strides=(2,)), fusion="early")
    """

    def __init__(self, backbone_factory: Callable[..., nn.Module], fusion: str = "early", arch: str = "v2",
                 cutoff: float = 0.1, mask: str = "box", features: int = 8, fuse: str = "concat",
                 centered: bool = True, learnable_cutoff: bool = False, overlay_file: str = OVERLAY_FILE) -> None:
        network = backbone_factory()
        layer = first_conv(network)
        spatial_dims = 3 if isinstance(layer, nn.Conv3d) else 2
        in_channels = int(layer.in_channels)
        out_channels = int(probe(network, in_channels, spatial_dims, backbone_divisor(network, spatial_dims)).shape[1])
        backbone: Any = network
        if arch == "paper" and fusion != "none":
            backbone = _rebuilding_factory(backbone_factory)
        super().__init__(backbone, in_channels, out_channels, fusion=fusion, cutoff=cutoff, mask=mask,
                         features=features, fuse=fuse, learnable_cutoff=learnable_cutoff, spatial_dims=spatial_dims,
                         centered=centered, arch=arch)
        self.overlay_file = overlay_file
        self._config["overlay"] = overlay_file

    @torch.jit.unused
    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        """Load FD weights of this overlay; weights of the plain network, or of other FD settings, stop with one
        line naming the overlay file."""
        if strict:
            if recorded_settings(state_dict) is None and not any(k.startswith("backbone.") for k in state_dict):
                raise WeightsMismatchError(
                    f"these are weights of the bundle's own network, not of its FD overlay {self.overlay_file}: "
                    f"load them without {self.overlay_file} in --config_file, or train with it first")
            problem = describe_mismatch(self, state_dict, style="bundle")
            if problem is not None:
                raise WeightsMismatchError(f"the weights do not fit the FD overlay {self.overlay_file}: {problem} "
                                           f"(or edit {self.overlay_file})")
        result = nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)
        self.recipe_json = json.dumps(recorded_settings(state_dict) or {})
        return result


def _rebuilding_factory(factory: Callable[..., nn.Module]) -> Callable[[int, int], nn.Module]:
    def build(in_channels: int, out_channels: int) -> nn.Module:
        try:
            return factory(in_channels=in_channels, out_channels=out_channels)
        except TypeError as err:
            raise OverlayError(f"arch='paper' rebuilds network_def with in_channels/out_channels, which it does not "
                               f"take ({err}); use arch='v2'") from None
    return build


def bundle_config(bundle_root: Path, name: str) -> Optional[Path]:
    """``configs/<name>.json``, ``.yaml`` or ``.yml`` of a bundle, if there is one."""
    for suffix in CONFIG_SUFFIXES:
        path = bundle_root / "configs" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _network_def(train_config: Path) -> Dict[str, Any]:
    from monai.bundle import ConfigParser

    try:
        config = ConfigParser.load_config_file(str(train_config))
    except Exception as err:  # JSON and YAML parsers raise their own types
        raise OverlayError(f"{train_config} could not be read ({type(err).__name__}: {err})") from None
    network_def = config.get("network_def") if isinstance(config, dict) else None
    if not isinstance(network_def, dict) or "_target_" not in network_def:
        raise OverlayError(f"{train_config} has no network_def component (a dict with _target_): FD wraps a "
                           "bundle's network_def and cannot be overlaid here")
    if network_def.get("_target_") == "freq_transforms.overlay.FrequencyOverlay":
        raise OverlayError(f"{train_config} already defines an FD overlay network_def")
    return network_def


def _uses_network_def(config_file: Path) -> bool:
    """Whether the config's ``network`` reaches ``network_def`` (``$@network_def.to(@device)``, or a DDP component
    whose ``module`` does); a config without ``network`` defers to the one it is combined with."""
    from monai.bundle import ConfigParser

    config = ConfigParser.load_config_file(str(config_file))
    return "network" not in config or "@network_def" in json.dumps(config["network"])


def _build_bundle_network(bundle_root: Path, configs: List[Path]) -> nn.Module:
    """The bundle's own network, built from its configs as monai.bundle would (its ``scripts/`` importable)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(c) for c in configs])
    parser["bundle_root"] = str(bundle_root)
    if str(bundle_root) not in sys.path:
        sys.path.insert(0, str(bundle_root))
    try:
        network = parser.get_parsed_content("network_def", instantiate=True)
    except Exception as err:
        raise OverlayError(f"network_def of {configs[0]} could not be built ({type(err).__name__}: {err})") from None
    if not isinstance(network, nn.Module):
        raise OverlayError(f"network_def of {configs[0]} builds a {type(network).__name__}, not a torch module")
    return network


def _defines_network(config: Path) -> bool:
    from monai.bundle import ConfigParser

    try:
        return "network_def" in ConfigParser.load_config_file(str(config))
    except Exception:  # an unreadable config is reported when it runs
        return False


def _commands(bundle_root: Path, train: Path) -> Dict[str, str]:
    """The command lines a user runs from the bundle root, for the configs this bundle has. A config without its
    own ``network_def`` (``evaluate.json``, ``multi_gpu_train.json``) runs on top of the train config, as the zoo
    documents; one with it (``test.yaml``, ``inference.json``) runs alone; the overlay comes last."""
    def files(*paths: Path) -> str:
        names = [p.relative_to(bundle_root).as_posix() for p in paths] + [OVERLAY_FILE]
        return "\"['" + "','".join(names) + "']\""

    def with_train(config: Path) -> List[Path]:
        return [config] if _defines_network(config) else [train, config]

    meta = bundle_config(bundle_root, "metadata")
    meta_arg = f" --meta_file {meta.relative_to(bundle_root).as_posix()}" if meta else ""
    lines = {"train": f"python -m monai.bundle run --config_file {files(train)}{meta_arg}"}
    for label, names in (("evaluate", ("evaluate", "test")), ("inference", ("inference",))):
        config = next((c for c in map(lambda n: bundle_config(bundle_root, n), names) if c is not None), None)
        if config is not None:
            lines[label] = f"python -m monai.bundle run --config_file {files(*with_train(config))}{meta_arg}"
    multi = bundle_config(bundle_root, "multi_gpu_train")
    if multi is not None and _uses_network_def(multi):
        lines["multi-GPU train"] = ("torchrun --standalone --nnodes=1 --nproc_per_node=<GPUs> -m monai.bundle run "
                                    f"--config_file {files(*with_train(multi))}{meta_arg}")
    return lines


def overlay_config(network_def: Dict[str, Any], fusion: str = "early", arch: str = "v2", cutoff: float = 0.1,
                   mask: str = "box", features: int = 8, fuse: str = "concat") -> Dict[str, Any]:
    """The overlay's content for a bundle's ``network_def``: that network kept as ``fd_backbone_def`` (callable
    mode) and a ``network_def`` wrapping it."""
    return {
        "fd_backbone_def": {**network_def, "_mode_": "callable"},
        "network_def": {"_target_": "freq_transforms.overlay.FrequencyOverlay", "backbone_factory": "@fd_backbone_def",
                        "fusion": fusion, "arch": arch, "cutoff": cutoff, "mask": mask, "features": features,
                        "fuse": fuse, "overlay_file": OVERLAY_FILE},
    }


def bundle_networks(bundle_root: str | Path, fusions: Sequence[str] = ("none", "early", "late"), seed: int = 0,
                    arch: str = "v2") -> Dict[str, nn.Module]:
    """The bundle's own network (``"none"``) and its overlaid versions, each built with ``seed`` from the
    bundle's train config plus the overlay in memory (nothing is written): what the bench compares."""
    from monai.bundle import ConfigParser

    root = Path(bundle_root).resolve()
    train = bundle_config(root, "train")
    if train is None:
        raise OverlayError(f"{root / 'configs'} has no train.json or train.yaml: is {root} a bundle folder?")
    network_def = _network_def(train)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    networks = {}
    for fusion in fusions:
        parser = ConfigParser()
        parser.read_config(str(train))
        parser["bundle_root"] = str(root)
        if fusion != "none":
            parser.update(overlay_config(network_def, fusion, arch))
        torch.manual_seed(seed)
        networks[fusion] = parser.get_parsed_content("network_def")
    return networks


def write_overlay(bundle_root: str | Path, fusion: str = "early", arch: str = "v2", cutoff: float = 0.1,
                  mask: str = "box", features: int = 8, fuse: str = "concat") -> Dict[str, str]:
    """Check ``bundle_root`` and write its ``configs/fd_overlay.json``; return the command lines to run with it.

    Raises :class:`OverlayError` (one line, nothing written) where the bundle has no train config or
    ``network_def``, or its network's first layer is not a convolution.
    """
    root = Path(bundle_root).resolve()
    bundle_checks.check_fd_settings(fusion, arch, fuse, mask, cutoff, features)
    train = bundle_config(root, "train")
    if train is None:
        raise OverlayError(f"{root / 'configs'} has no train.json or train.yaml: is {root} a bundle folder?")
    network_def = _network_def(train)
    if not _uses_network_def(train):
        raise OverlayError(f"network in {train} does not use network_def (the zoo writes $@network_def.to(@device)): "
                           "an overlay of network_def would change nothing")
    first_conv(_build_bundle_network(root, [train]))
    overlay = overlay_config(network_def, fusion, arch, cutoff, mask, features, fuse)
    from .atomic import atomic_write_text

    atomic_write_text(root / OVERLAY_FILE, json.dumps(overlay, indent=4) + "\n")
    return _commands(root, train)
