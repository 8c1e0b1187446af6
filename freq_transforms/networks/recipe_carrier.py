"""What an FD network does with its weights' record: checks it on load, keeps it, writes it back on save."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping

import torch
from torch import nn

from .checkpoint import describe_mismatch, inference_kwargs, load_weights, without_training_heads
from ..errors import MissingWeightsError, WeightsMismatchError
from ..recipe import NETWORK_KEYS, RECORD_KEY, as_json_values, read_recipe, recorded_settings

__all__ = ["RecipeCarrier"]


class RecipeCarrier(nn.Module):
    """A module whose ``state_dict`` carries its settings (``config``) and the recipe of its weights
    (``recipe_json``, a JSON string TorchScript keeps), and whose ``load_state_dict`` checks the settings first.
    Subclasses set ``self._config`` (their constructor arguments) and ``self.recipe_json``."""

    @classmethod
    def from_weights(cls, path: str | os.PathLike, map_location: Any = "cpu",
                     training_heads: bool = False) -> "RecipeCarrier":
        """The network (of this class: ``FrequencyDisentangledNet.from_weights``) a weights file's recipe record
        describes, with those weights loaded, in eval mode.

        ``path``: a bundle's ``models/model.pt`` (or a fold member's). Training-only heads (deep supervision) are
        left out unless ``training_heads``: the network predicts as the trained one does in eval mode. One line
        names the file where it is missing or carries no record (weights of an older version: build the network
        with the bundle's settings and call ``load_state_dict``).

        Example::

            >>> from freq_transforms import FrequencyDisentangledNet
            >>> net = FrequencyDisentangledNet.from_weights("bundles/heart_mri_fd_segmentation/models/model.pt")
            >>> net(torch.rand(1, 1, 96, 96, 64)).shape
            torch.Size([1, 2, 96, 96, 64])
        """
        if not Path(path).is_file():
            raise MissingWeightsError(f"{path} does not exist")
        record = read_recipe(path)
        if not record:
            raise WeightsMismatchError(f"{path} carries no recipe record: build FrequencyDisentangledNet with the "
                                       "settings it was trained with and call load_state_dict")
        settings = {key: record[key] for key in NETWORK_KEYS if key in record}
        if not training_heads:
            settings["backbone_kwargs"] = inference_kwargs(settings.get("backbone_kwargs") or {})
        network = cls(**settings)
        load_weights(network, path, map_location)
        return network.to(map_location).eval()

    @torch.jit.unused
    def state_dict(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """``nn.Module.state_dict`` with the settings that built the network, and the recipe of the weights, in its
        metadata, whoever saves it (a re-save keeps the record)."""
        state = super().state_dict(*args, **kwargs)
        if not args and not kwargs.get("prefix"):
            record = {**json.loads(self.recipe_json or "{}"), **as_json_values(self.config)}
            state._metadata.setdefault("", {})[RECORD_KEY] = record
        return state

    @torch.jit.unused
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; with ``strict``, weights trained with other settings that matter stop with
        one line naming the constructor keywords and the bundle overrides, whoever loads them (``monai.bundle
        ckpt_export``, MONAI Label). The file's recipe is kept in ``recipe_json``. Deep-supervision heads this
        network lacks are dropped: it is built for inference (``deep_supervision False``)."""
        state_dict = without_training_heads(self, state_dict)
        if strict:
            problem = describe_mismatch(self, state_dict, style="python")
            if problem is not None:
                raise WeightsMismatchError(f"the weights do not fit this network: {problem}")
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.recipe_json = json.dumps(recorded_settings(state_dict) or {})
        return result
