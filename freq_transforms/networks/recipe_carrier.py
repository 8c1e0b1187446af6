"""What an FD network does with its weights' record: checks it on load, keeps it, writes it back on save."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping

import torch
from torch import nn

from ..checkpoint import describe_mismatch, without_training_heads
from ..errors import WeightsMismatchError
from ..recipe import RECORD_KEY, as_json_values, recorded_settings

__all__ = ["RecipeCarrier"]


class RecipeCarrier(nn.Module):
    """A module whose ``state_dict`` carries its settings (``config``) and the recipe of its weights
    (``recipe_json``, a JSON string TorchScript keeps), and whose ``load_state_dict`` checks the settings first.
    Subclasses set ``self._config`` (their constructor arguments) and ``self.recipe_json``."""

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
