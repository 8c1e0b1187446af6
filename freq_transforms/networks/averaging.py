"""Averaged prediction: a K-fold ensemble and nnU-Net's test-time mirroring as one network.

MONAI averages an ensemble outside the network (``MeanEnsembled`` after an ``EnsembleEvaluator``) and has no
mirror averaging for segmentation (``TestTimeAugmentation`` draws random transforms to estimate uncertainty). Both
are one module here, so that any inferer (sliding window included) runs it as it runs one network, and one ONNX
export carries the whole ensemble and every mirrored copy (``configs/inference_onnx.json``).

:class:`AveragingInferer` runs that module inside any MONAI inferer, so a bundle's ``inferer`` key averages for whoever
calls it with the bundle's network: the bundle's own evaluators, and MONAI Label, which builds ``network_def``,
loads ``models/model.pt`` into it and calls ``inferer`` (it never runs ``evaluator``).

The module returns the logarithm of the mean class probabilities. The bundles' post-processing (softmax, then
argmax) reads them as one network's logits: ``softmax(log p) = p`` wherever ``p`` sums to one over classes.
"""

from __future__ import annotations

import copy
import itertools
import logging
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import torch
from monai.inferers import Inferer
from torch import nn

from .checkpoint import load_weights
from ..errors import DataError

__all__ = ["MeanProbabilities", "AveragingInferer", "mirror_flips", "ensemble_members", "weights_file",
           "averaged_network"]

logger = logging.getLogger(__name__)

MEMBERS = "fold*/model.pt"  # an ensemble's members under a bundle's models/

MIN_PROBABILITY = 1e-12  # log(0) would be -inf; this keeps argmax and softmax exact to float precision


def mirror_flips(axes: Sequence[int]) -> List[Tuple[int, ...]]:
    """Every combination of the spatial ``axes`` (0-based, as ``monai.transforms.Flip``'s ``spatial_axis``),
    the identity first: nnU-Net's mirroring, 2**len(axes) copies.

    Example::

        >>> mirror_flips([0, 1])
        [(), (0,), (1,), (0, 1)]
    """
    axes = sorted(set(int(a) for a in axes))
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


class MeanProbabilities(nn.Module):
    """Log of the mean softmax probabilities of ``networks`` over every mirrored copy of the input.

    Args:
        networks: the members (one network: mirroring only); each maps ``(B, C, *spatial)`` to logits
            ``(B, K, *spatial)``.
        mirror_axes: spatial axes to mirror (``()``: none; ``(0, 1, 2)``: nnU-Net's 8 copies in 3-D).

    Example::

        >>> net = MeanProbabilities([nn.Conv3d(1, 3, 1)], mirror_axes=(0, 1, 2))
        >>> net(torch.rand(1, 1, 8, 8, 8)).exp().sum(1).allclose(torch.ones(1, 8, 8, 8))
        True
    """

    def __init__(self, networks: Sequence[nn.Module], mirror_axes: Sequence[int] = ()) -> None:
        super().__init__()
        if not networks:
            raise ValueError("MeanProbabilities needs at least one network")
        self.members = nn.ModuleList(networks)
        self.flips = mirror_flips(mirror_axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            for axes in self.flips:
                dims = [a + 2 for a in axes]
                logits = member(torch.flip(x, dims) if dims else x)
                probabilities = torch.softmax(logits, dim=1)
                probabilities = torch.flip(probabilities, dims) if dims else probabilities
                total = probabilities if total is None else total + probabilities
        return torch.log(torch.clamp(total / (len(self.members) * len(self.flips)), min=MIN_PROBABILITY))


def ensemble_members(models_dir: str, pattern: str = MEMBERS) -> List[Path]:
    """The fold models of a bundle (``models/fold0/model.pt``, ...), sorted; one line when there are none."""
    found = sorted(Path(models_dir).glob(pattern))
    if not found:
        raise DataError(f"ensemble: no {pattern} under {models_dir}; train the folds or pass --ensemble False")
    return found


def weights_file(models_dir: str, ensemble: Any = False) -> str:
    """The file a bundle loads into its network and reads its recipe from: ``models_dir/model.pt``; with
    ``ensemble`` and no such file (fold models only, as training ``members`` leaves them), the first fold model."""
    single = Path(models_dir) / "model.pt"
    return str(ensemble_members(models_dir)[0] if ensemble and not single.is_file() else single)


def averaged_network(network: nn.Module, tta: bool = False, ensemble: bool = False, models_dir: str = "models",
                     map_location: Any = "cpu", mirror_axes: Sequence[int] = (0, 1, 2)) -> nn.Module:
    """What a bundle's evaluator runs: ``network`` itself when neither ``tta`` nor ``ensemble``; else a
    :class:`MeanProbabilities` of ``network`` (mirrored over ``mirror_axes`` with ``tta``) or, with ``ensemble``,
    of a copy of ``network`` per fold model in ``models_dir`` (each loaded, and checked, now).

    ``network`` keeps its own weights loading (the bundle's ``checkpointloader`` loads ``model.pt`` into it when
    the evaluator starts, which reaches it here too as it is the same module). With ``ensemble`` and no fold
    models but a ``models_dir/model.pt`` (a bundle that ships an ensemble, retrained as one model: training
    sets the old members aside), that one model runs, with a warning: the prediction a user just trained."""
    if ensemble and _single_model_only(models_dir):
        logger.warning(f"ensemble: no fold*/model.pt under {models_dir}, so its model.pt runs alone "
                       "(pass --ensemble False to say so, or train the members)")
        ensemble = False
    if not (tta or ensemble):
        return network
    members = [network]
    if ensemble:
        members, paths = [], ensemble_members(models_dir)
        for path in paths:
            member = copy.deepcopy(network)
            load_weights(member, path, map_location)
            members.append(member.eval())
        logger.info(f"ensemble of {len(paths)}: {', '.join(p.parent.name for p in paths)} (under {models_dir})")
    if tta:
        logger.info(f"test-time mirroring: {len(mirror_flips(mirror_axes))} copies (axes {list(mirror_axes)})")
    return MeanProbabilities(members, mirror_axes if tta else ())


def _single_model_only(models_dir: str) -> bool:
    models = Path(models_dir)
    return (models / "model.pt").is_file() and not any(models.glob(MEMBERS))


class AveragingInferer(Inferer):
    """``inferer`` run on :func:`averaged_network` of the network it is called with: one model, its mirrored
    copies (``tta``) and the fold models in ``models_dir`` (``ensemble``), their probabilities averaged. MONAI's
    inferers run the one network they are given, and MONAI Label gives the bundle's ``inferer`` the network it
    built from ``network_def`` with ``models/model.pt`` in it; this is what makes that the bundle's prediction.

    The averaged network is kept while ``network`` and the files under ``models_dir`` stay the same, and built
    again when either changes: MONAI Label keeps one inferer between requests and loads new weights into the
    same network after a training round, which sets the members aside.

    Args:
        inferer: what runs the averaged network (a ``SlidingWindowInferer`` in patch mode).
        tta, ensemble, models_dir, map_location, mirror_axes: as :func:`averaged_network`.

    Example::

        >>> from monai.inferers import SimpleInferer
        >>> net = nn.Conv3d(1, 2, 1)
        >>> out = AveragingInferer(SimpleInferer(), tta=True, mirror_axes=[0])(torch.rand(1, 1, 4, 4, 4), net)
        >>> out.shape, bool(out.exp().sum(1).allclose(torch.ones(1, 4, 4, 4)))
        (torch.Size([1, 2, 4, 4, 4]), True)
    """

    def __init__(self, inferer: Inferer, tta: bool = False, ensemble: bool = False, models_dir: str = "models",
                 map_location: Any = "cpu", mirror_axes: Sequence[int] = (0, 1, 2)) -> None:
        super().__init__()
        self.inferer = inferer
        self.tta, self.ensemble, self.models_dir = bool(tta), bool(ensemble), str(models_dir)
        self.map_location, self.mirror_axes = map_location, tuple(mirror_axes)
        self._built: Optional[Tuple[nn.Module, Any, nn.Module]] = None  # (network, files' state, averaged)

    def averaged(self, network: nn.Module) -> nn.Module:
        """What runs for ``network``: itself, or a :class:`MeanProbabilities` around it or its fold models."""
        files = _files_state(self.models_dir) if self.ensemble else None
        if self._built is None or self._built[0] is not network or self._built[1] != files:
            averaged = averaged_network(network, self.tta, self.ensemble, self.models_dir, self.map_location,
                                        self.mirror_axes)
            self._built = (network, files, averaged)
        return self._built[2]

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return self.inferer(inputs, self.averaged(network), *args, **kwargs)


def _files_state(models_dir: str) -> List[Tuple[str, int]]:
    models = Path(models_dir)
    files = sorted(models.glob(MEMBERS)) + [models / "model.pt"]
    return [(str(f), f.stat().st_mtime_ns) for f in files if f.is_file()]
