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
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from monai.networks.utils import eval_mode

from . import checks as bundle_checks
from ..atomic import atomic_write_text
from .input_size import bundle_input_sizes
from ..networks.checkpoint import describe_mismatch
from ..errors import DataError, WeightsMismatchError, one_line
from ..networks import FrequencyDisentangledNet
from ..networks.backbones import backbone_divisor, first_tensor, probe
from .settings import check_values
from .configs import OVERLAY_FILE, Bundle, config_files, overlay_commands
from ..recipe import recorded_settings

__all__ = ["OVERLAY_FILE", "OverlayError", "FrequencyOverlay", "first_layer", "first_conv", "overlay_config",
           "bundle_networks", "write_overlay"]

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
        probe_size: the bundle's input size (``roi_size``), where the network is probed; default: the smallest
            size it takes.

    Example::

        >>> from functools import partial
        >>> from monai.networks.nets import UNet
        >>> net = FrequencyOverlay(partial(UNet, 3, 1, 2, channels=(8, 16), strides=(2,)), fusion="early")
    """

    def __init__(self, backbone_factory: Callable[..., nn.Module], fusion: str = "early", arch: str = "v2",
                 cutoff: float = 0.1, mask: str = "box", features: int = 8, fuse: str = "concat",
                 centered: bool = True, learnable_cutoff: bool = False, overlay_file: str = OVERLAY_FILE,
                 probe_size: Optional[Sequence[int]] = None) -> None:
        # the overlay's named step of a zoo bundle's run: its configs' initialize is the bundle's own, so building
        # the overlaid network installs the one-line errors the bundles here install in theirs
        bundle_checks.install_one_line_errors()
        network = backbone_factory()
        layer = first_conv(network)
        spatial_dims = 3 if isinstance(layer, nn.Conv3d) else 2
        in_channels = int(layer.in_channels)
        divisor = backbone_divisor(network, spatial_dims)
        out_channels = int(first_tensor(probe(network, in_channels, spatial_dims, divisor, size=probe_size)).shape[1])
        backbone: Any = network
        if arch == "paper" and fusion != "none":
            backbone = _rebuilding_factory(backbone_factory)
        super().__init__(backbone, in_channels, out_channels, fusion=fusion, cutoff=cutoff, mask=mask,
                         features=features, fuse=fuse, learnable_cutoff=learnable_cutoff, spatial_dims=spatial_dims,
                         centered=centered, arch=arch, probe_size=probe_size)
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
            problem = describe_mismatch(self, state_dict, style="overlay")
            if problem is not None:
                raise WeightsMismatchError(f"the weights do not fit the FD overlay {self.overlay_file}: {problem}")
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


def _network_def(bundle: Bundle, train_config: Path) -> Dict[str, Any]:
    try:
        config = bundle.content(train_config)
    except Exception as err:  # JSON and YAML parsers raise their own types
        raise OverlayError(f"{train_config} could not be read ({type(err).__name__}: {err})") from None
    network_def = config.get("network_def") if isinstance(config, dict) else None
    if not isinstance(network_def, dict) or "_target_" not in network_def:
        raise OverlayError(f"{train_config} has no network_def component (a dict with _target_): FD wraps a "
                           "bundle's network_def and cannot be overlaid here")
    if network_def.get("_target_") == "freq_transforms.bundle.overlay.FrequencyOverlay":
        raise OverlayError(f"{train_config} already defines an FD overlay network_def")
    return network_def


def _uses_network_def(bundle: Bundle, config_file: Path) -> bool:
    """Whether the config's ``network`` reaches ``network_def`` (``$@network_def.to(@device)``, or a DDP component
    whose ``module`` does); a config without ``network`` defers to the one it is combined with."""
    config = bundle.content(config_file)
    return "network" not in config or "@network_def" in json.dumps(config["network"])


def _build_bundle_network(bundle: Bundle, configs: List[Path]) -> nn.Module:
    """The bundle's own network, built from its configs as monai.bundle would (its ``scripts/`` importable)."""
    try:
        network = bundle.parser(configs).get_parsed_content("network_def", instantiate=True)
    except Exception as err:
        raise OverlayError(f"network_def of {configs[0]} could not be built ({one_line(err)})") from None
    if not isinstance(network, nn.Module):
        raise OverlayError(f"network_def of {configs[0]} builds a {type(network).__name__}, not a torch module")
    return network


def _runs_at(network: nn.Module, in_channels: int, size: Sequence[int]) -> bool:
    """Whether ``network`` takes ``size``; a network that does but returns a dict (several tasks' outputs, as
    HoVerNet) is refused: FD pads, crops and corrects class logits, one tensor or a list of heads."""
    try:
        with eval_mode(network):
            output = network(torch.rand(1, in_channels, *size))
    except Exception:  # noqa: BLE001  (networks refuse sizes with RuntimeError, ValueError, AssertionError, ...)
        return False
    if isinstance(output, dict):
        raise OverlayError(f"{type(network).__name__} returns a dict ({', '.join(map(str, output))}), not class "
                           "logits: FD wraps networks whose output is one tensor or a list of deep-supervision heads")
    return True


def _input_size(bundle: Bundle, train: Path, network: nn.Module) -> List[int]:
    """The bundle's own input size (its configs' ``roi_size``, patch or crop size) where its network runs; else
    the smallest size it takes; else one line saying it ran on none."""
    layer = first_conv(network)
    spatial_dims, in_channels = (3 if isinstance(layer, nn.Conv3d) else 2), int(layer.in_channels)
    groups = [bundle.group(train, c) for c in [train] + config_files(bundle.root)]
    sizes = bundle_input_sizes(bundle, groups, spatial_dims)
    for size in sizes:
        if _runs_at(network, in_channels, size):
            return size
    try:
        probe(network, in_channels, spatial_dims, backbone_divisor(network, spatial_dims))
    except ValueError as err:
        raise OverlayError(f"the network of {train} ran on none of its configs' sizes {sizes} ({err})") from None
    return list(probe.last_input.shape[2:])  # type: ignore[attr-defined]


def _check_wraps(bundle: Bundle, train: Path, overlay: Dict[str, Any], size: List[int]) -> None:
    """Build the overlaid network and run it once at ``size``; any failure is one :class:`OverlayError` line."""
    fusion = overlay["network_def"]["fusion"]
    try:
        torch.manual_seed(0)
        network = bundle.parser([train], overlay).get_parsed_content("network_def")
        with eval_mode(network):
            output = first_tensor(network(torch.rand(1, network.in_channels, *size)))
        if list(output.shape[2:]) != list(size):
            raise ValueError(f"it returned spatial size {list(output.shape[2:])}")
    except Exception as err:  # noqa: BLE001
        raise OverlayError(f"FD fusion={fusion!r} cannot wrap the network of {train.name} at its input size "
                           f"{size}: {one_line(err)}; nothing written") from None


def _check_not_overwriting(bundle_root: Path, overlay: Dict[str, Any], force: bool) -> None:
    """Refuse to replace an overlay of other settings that sits beside trained weights (they would no longer
    load), unless ``force``."""
    path = bundle_root / OVERLAY_FILE
    weights = sorted(p for suffix in ("*.pt", "*.ts") for p in (bundle_root / "models").glob(suffix))
    if force or not path.is_file() or not weights:
        return
    old = json.loads(path.read_text()).get("network_def", {})
    changed = {k: (old.get(k), v) for k, v in overlay["network_def"].items() if old.get(k) != v}
    if changed:
        said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise OverlayError(f"{path} ({said}) sits beside trained weights {weights[0].relative_to(bundle_root)}, "
                           "which would no longer load: pass --force to overwrite it, or move models/ away")


def overlay_config(network_def: Dict[str, Any], fusion: str = "early", arch: str = "v2", cutoff: float = 0.1,
                   mask: str = "box", features: int = 8, fuse: str = "concat",
                   probe_size: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The overlay's content for a bundle's ``network_def``: that network kept as ``fd_backbone_def`` (callable
    mode) and a ``network_def`` wrapping it (checked at ``probe_size``, the bundle's input size)."""
    return {
        "fd_backbone_def": {**network_def, "_mode_": "callable"},
        "network_def": {"_target_": "freq_transforms.bundle.overlay.FrequencyOverlay", "backbone_factory": "@fd_backbone_def",
                        "fusion": fusion, "arch": arch, "cutoff": cutoff, "mask": mask, "features": features,
                        "fuse": fuse, "overlay_file": OVERLAY_FILE,
                        "probe_size": None if probe_size is None else list(probe_size)},
    }


def bundle_networks(bundle_root: str | Path, fusions: Sequence[str] = ("none", "early", "late"), seed: int = 0,
                    arch: str = "v2") -> Dict[str, nn.Module]:
    """The bundle's own network (``"none"``) and its overlaid versions, each built with ``seed`` from the
    bundle's train config plus the overlay in memory (nothing is written): what the bench compares."""
    bundle = Bundle(Path(bundle_root).resolve())
    train = _train_config(bundle)
    network_def = _network_def(bundle, train)
    networks = {}
    for fusion in fusions:
        parser = bundle.parser([train], None if fusion == "none" else overlay_config(network_def, fusion, arch))
        torch.manual_seed(seed)
        networks[fusion] = parser.get_parsed_content("network_def")
    return networks


def _train_config(bundle: Bundle) -> Path:
    train = bundle.config("train")
    if train is None:
        raise OverlayError(f"{bundle.root / 'configs'} has no train.json or train.yaml: is {bundle.root} a bundle "
                           "folder?")
    return train


def write_overlay(bundle_root: str | Path, fusion: str = "early", arch: str = "v2", cutoff: float = 0.1,
                  mask: str = "box", features: int = 8, fuse: str = "concat", force: bool = False) -> Dict[str, str]:
    """Check that FD wraps ``bundle_root``'s network, write its ``configs/fd_overlay.json`` and return the command
    line for each of its configs.

    The overlaid network is built for ``fusion`` and run once at the bundle's own input size (its configs'
    ``roi_size``, patch or crop size, :func:`~freq_transforms.bundle.input_size.bundle_input_sizes`), which the
    overlay records as ``probe_size``. Anything that stops it (no train config or ``network_def``, a first layer
    that is not a convolution, a network FD cannot wrap, an overlay of other settings beside trained weights
    without ``force``) raises :class:`OverlayError`, one line, and nothing is written.
    """
    root = Path(bundle_root).resolve()
    check_values({"fusion": fusion, "arch": arch, "fuse": fuse, "mask": mask, "cutoff": cutoff, "features": features})
    bundle = Bundle(root)
    train = _train_config(bundle)
    network_def = _network_def(bundle, train)
    if not _uses_network_def(bundle, train):
        raise OverlayError(f"network in {train} does not use network_def (the zoo writes $@network_def.to(@device)): "
                           "an overlay of network_def would change nothing")
    size = _input_size(bundle, train, _build_bundle_network(bundle, [train]))
    overlay = overlay_config(network_def, fusion, arch, cutoff, mask, features, fuse, size)
    _check_wraps(bundle, train, overlay, size)
    _check_not_overwriting(root, overlay, force)
    atomic_write_text(root / OVERLAY_FILE, json.dumps(overlay, indent=4) + "\n")
    return overlay_commands(root, train, bundle)
