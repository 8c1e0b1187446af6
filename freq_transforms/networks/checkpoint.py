"""Do these weights fit this network and this configuration? The one-line answer when they do not.

Reads the record of :mod:`freq_transforms.recipe`: where it differs from the network in a setting that matters, or
(files without a record) where the layer shapes fit another layout, the answer names what to change, as Python
keywords where Python code loads the weights (``FrequencyDisentangledNet.load_state_dict``) and as bundle
overrides where a bundle does. Grid settings other than those trained with are a warning naming the override.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..errors import MissingWeightsError, WeightsMismatchError
from ..fd_options import ARCHS, FUSE_OPS, FUSIONS
from ..recipe import NETWORK_KEYS, as_json_values, read_state_dict, recorded_settings, unwrap

__all__ = ["settings_that_matter", "Mismatch", "find_mismatch", "describe_mismatch", "checkpoint_mismatch",
           "inference_kwargs", "without_training_heads", "load_weights"]

logger = logging.getLogger(__name__)

BUNDLE_KEY = {"out_channels": "num_classes"}  # constructor keyword -> bundle config key
# backbone keywords that add layers used in training only (DynUNet's deep-supervision heads: its forward in eval mode
# returns the main head alone), and the parameter names of those layers (DynUNet registers each head twice)
TRAINING_ONLY_KWARGS = ("deep_supervision", "deep_supr_num")
TRAINING_ONLY_LAYERS = (".deep_supervision_heads.", ".super_head.")


def settings_that_matter(config: Mapping[str, Any]) -> List[str]:
    """The settings that change the parameters of a network built with ``config``, or what it computes with them:
    the backbone and channels always; the split for FD; ``features`` where a layer has that width (the paper layout,
    late v2's head); ``fuse`` for the paper layout only (v2 has no fuse op)."""
    keys = ["backbone", "backbone_kwargs", "in_channels", "out_channels", "spatial_dims", "fusion"]
    if config.get("fusion") == "none":
        return keys
    keys += ["arch", "cutoff", "mask", "centered", "axes", "learnable_cutoff"]
    if config.get("arch") == "paper":
        keys += ["features", "fuse"]
    elif config.get("fusion") == "late":
        keys += ["features"]
    return keys


def _flag_value(value: Any) -> str:
    """A value as ``python -m monai.bundle run --key VALUE`` takes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return f'"{json.dumps(value)}"'
    return repr(value)


@dataclass
class Mismatch:
    """Why weights do not fit a network: the settings they were trained with against the network's, or, where
    neither the record nor any layout explains it, a ``reason``. ``alternatives``: other settings they fit too."""

    trained: Dict[str, Any] = field(default_factory=dict)
    configured: Dict[str, Any] = field(default_factory=dict)
    alternatives: List[Dict[str, Any]] = field(default_factory=list)
    reason: Optional[str] = None

    def _said(self, current: str) -> str:
        return (", ".join(f"{k}={v!r}" for k, v in self.trained.items()) + f", {current} "
                + ", ".join(f"{k}={self.configured[k]!r}" for k in self.trained))

    @staticmethod
    def _overrides(settings: Mapping[str, Any]) -> str:
        return " ".join(f"--{BUNDLE_KEY.get(k, k)} {_flag_value(v)}" for k, v in settings.items())

    @staticmethod
    def _keywords(settings: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in settings.items())

    def for_bundle(self) -> str:
        """One line ending with the bundle overrides to pass (``pass --fusion late``)."""
        if self.reason:
            return self.reason
        line = f"it was trained with {self._said('the config says')}: pass {self._overrides(self.trained)}"
        if self.alternatives:
            line += " (or " + "; ".join(self._overrides(m) for m in self.alternatives) + ": the weights fit these too)"
        return line

    def for_overlay(self) -> str:
        """One line ending with the overrides of an overlaid zoo bundle, whose FD settings sit under
        ``network_def`` (``pass --network_def#fusion late``), or the overlay command that rewrites them."""
        if self.reason:
            return self.reason
        overrides = " ".join(f"--network_def#{k} {_flag_value(v)}" for k, v in self.trained.items())
        options = " ".join(f"--{k} {_flag_value(v)}" for k, v in self.trained.items())
        return (f"it was trained with {self._said('the overlay says')}: pass {overrides}, or re-run python -m "
                f"freq_transforms overlay <bundle_root> {options} --force")

    def for_python(self) -> str:
        """One line ending with the constructor keywords (``FrequencyDisentangledNet(..., fusion='late')``)."""
        if self.reason:
            return self.reason
        return (f"it was trained with {self._said('this network has')}: build FrequencyDisentangledNet(..., "
                f"{self._keywords(self.trained)}) (in a bundle: pass {self._overrides(self.trained)})")


def _record_mismatch(network: torch.nn.Module, record: Dict[str, Any]) -> Optional[Mismatch]:
    config = getattr(network, "config", None)
    if not isinstance(config, dict):
        return None
    current = as_json_values({k: config.get(k) for k in NETWORK_KEYS})
    record = {**record, "backbone_kwargs": _inference_kwargs(record.get("backbone_kwargs"), current["backbone_kwargs"])}
    differ = [k for k in settings_that_matter(record) if k in record and record[k] != current[k]]
    if not differ:
        return None
    return Mismatch({k: record[k] for k in differ}, {k: current[k] for k in differ})


def _inference_kwargs(trained: Any, configured: Any) -> Any:
    """The trained ``backbone_kwargs`` as a network without the training-only heads sees them: where the configured
    network has no deep supervision, weights trained with it fit (their extra heads are dropped on load)."""
    if not isinstance(trained, dict) or not trained.get("deep_supervision"):
        return trained
    configured = configured if isinstance(configured, dict) else {}
    if configured.get("deep_supervision"):
        return trained
    kept = {k: v for k, v in trained.items() if k not in TRAINING_ONLY_KWARGS}
    return {**kept, **{k: configured[k] for k in TRAINING_ONLY_KWARGS if k in configured}}


def inference_kwargs(backbone_kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """``backbone_kwargs`` without the keywords that add training-only heads: what an inference network is built
    with, so TorchScript can script it (DynUNet's deep-supervision heads cannot be) and it computes the same."""
    return {k: v for k, v in backbone_kwargs.items() if k not in TRAINING_ONLY_KWARGS}


def without_training_heads(network: torch.nn.Module, state_dict: Mapping[str, Any]) -> Mapping[str, Any]:
    """``state_dict`` less the parameters of training-only heads (deep supervision) that ``network`` does not have,
    metadata kept; unchanged when there are none. So a network built for inference or TorchScript export
    (``deep_supervision False``) loads weights trained with the heads."""
    own = set(network.state_dict())
    extra = [k for k in state_dict if k not in own and any(name in f".{k}" for name in TRAINING_ONLY_LAYERS)]
    if not extra:
        return state_dict
    kept = type(state_dict)((k, v) for k, v in state_dict.items() if k not in extra)
    kept._metadata = getattr(state_dict, "_metadata", {})
    return kept


def _layout(state: Mapping[str, Any]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _layout_mismatch(network: torch.nn.Module, state_dict: Mapping[str, Any]) -> Optional[Mismatch]:
    """For files without a record: rebuild the network with each ``arch`` x ``fusion`` x ``fuse`` and name the
    settings whose layer shapes the file has."""
    from monai.networks import nets

    wanted = _layout(without_training_heads(network, state_dict))
    if _layout(network.state_dict()) == wanted:
        return None
    config = getattr(network, "config", None)
    if not isinstance(config, dict) or not isinstance(config.get("backbone"), str) or \
            not hasattr(nets, config["backbone"]):
        return Mismatch(reason="the checkpoint's parameters do not fit the network (different layer names or shapes)")
    current = {k: config[k] for k in ("arch", "fusion", "fuse")}
    matches: List[Dict[str, str]] = []
    for arch in ARCHS:
        for fusion in FUSIONS:
            for fuse in (FUSE_OPS if arch == "paper" and fusion != "none" else (config["fuse"],)):
                candidate = {"arch": arch, "fusion": fusion, "fuse": fuse}
                if candidate == current:
                    continue
                try:
                    built = type(network)(**{**config, **candidate})
                except (ValueError, TypeError, RuntimeError):
                    continue
                if _layout(built.state_dict()) == wanted:
                    matches.append({k: v for k, v in candidate.items() if v != current[k]})
    if not matches:
        return Mismatch(reason="its parameters fit no arch/fusion/fuse setting of this network: check num_classes, "
                               "features, backbone and backbone_kwargs against the run that trained it")
    matches.sort(key=len)
    best = matches[0]
    return Mismatch(best, {k: current[k] for k in best}, [m for m in matches[1:] if set(m) == set(best)])


def find_mismatch(network: torch.nn.Module, state_dict: Mapping[str, Any]) -> Optional[Mismatch]:
    """``None`` if ``state_dict`` belongs to ``network``; else a :class:`Mismatch`: from the settings the file
    records (only those that matter, :func:`settings_that_matter`), or for files without them from its layer
    shapes."""
    record = recorded_settings(state_dict)
    return (_record_mismatch(network, record) if record else None) or _layout_mismatch(network, state_dict)


def describe_mismatch(network: torch.nn.Module, state_dict: Mapping[str, Any], style: str = "bundle") -> Optional[str]:
    """:func:`find_mismatch` as one line, worded for a bundle (``style="bundle"``: overrides), an overlaid zoo bundle (``"overlay"``) or for Python
    (``"python"``: constructor keywords)."""
    problem = find_mismatch(network, state_dict)
    if problem is None:
        return None
    if style == "overlay":
        return problem.for_overlay()
    return problem.for_python() if style == "python" else problem.for_bundle()


def checkpoint_mismatch(network: torch.nn.Module, state_dict: Mapping[str, Any]) -> Optional[str]:
    """The layer-shape check alone (files without a record), worded for a bundle."""
    problem = _layout_mismatch(network, state_dict)
    return None if problem is None else problem.for_bundle()


def load_weights(network: torch.nn.Module, path: str | os.PathLike, map_location: Any = "cpu",
                 recipe: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """Load a ``state_dict`` file into ``network`` (DDP unwrapped), or stop with one line naming the file and the
    bundle overrides to pass. A ``recipe`` (the config's, :func:`freq_transforms.bundle.settings.recipe_record`)
    whose ``sampling``, ``intensity``, ``spatial_size``, ``patch_size`` or ``target_spacing`` differ from the one
    trained with is a warning naming the override: the weights fit, but they see input they were not trained on.
    Returns the record."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint {path} does not exist: train first, or pass --bundle_root <the "
                                  "bundle folder> (python -m freq_transforms bundles list shows where each lives)")
    target = unwrap(network)
    full = read_state_dict(path, map_location)
    state = without_training_heads(target, full)
    if len(state) < len(full):
        logger.info(f"{path}: {len(full) - len(state)} tensors of training-only heads (deep supervision) left out: "
                    "this network predicts with the main head, as the trained one does in eval mode")
    problem = describe_mismatch(target, state, style="bundle")
    if problem is not None:
        raise WeightsMismatchError(f"checkpoint {path} does not fit the configured network: {problem}")
    torch.nn.Module.load_state_dict(target, state)  # checked above; the network's own check would repeat it
    record = recorded_settings(state)
    if isinstance(getattr(target, "recipe_json", None), str):
        target.recipe_json = json.dumps(record or {})
    _warn_on_other_grid(path, record or {}, recipe or {})
    return record


def _warn_on_other_grid(path: Path, record: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    trained = record.get("sampling", "resize")
    sampling = config.get("sampling", trained)
    if sampling != trained:
        logger.warning(f"checkpoint {path} was trained with sampling {trained!r}, the config says {sampling!r}: "
                       f"pass --sampling {trained} to match it")
        return
    intensity = (record.get("intensity"), config.get("intensity"))
    if None not in intensity and intensity[0] != intensity[1]:
        logger.warning(f"checkpoint {path} was trained with intensity {intensity[0]!r}, the config says "
                       f"{intensity[1]!r}: pass --intensity {intensity[0]} to match it")
    keys = ("patch_size", "target_spacing") if sampling == "patch" else ("spatial_size",)
    for key in keys:
        was, now = record.get(key), config.get(key)
        if was and now is not None and [float(v) for v in was] != [float(v) for v in now]:
            logger.warning(f"checkpoint {path} was trained at {key} {list(was)}, the config says {list(now)}: "
                           f"pass --{key} \"{list(was)}\" to match it")
