"""The training loss for any backbone output: logits, or deep-supervision heads."""

from __future__ import annotations

from typing import Any, List, Union

import torch
from monai.losses import DeepSupervisionLoss
from torch import nn

__all__ = ["HeadsLoss"]


class HeadsLoss(nn.Module):
    """``loss`` on a network's training output, whether logits ``(B, C, *spatial)`` or deep-supervision heads,
    weighted as MONAI's :class:`~monai.losses.DeepSupervisionLoss` weighs them (``weight_mode`` ``exp``: the main
    head 1, the next 0.5, ...).

    ``DeepSupervisionLoss`` takes the heads as a list; DynUNet with ``deep_supervision`` stacks them into one tensor
    ``(B, heads, C, *spatial)`` in training (one output in eval mode), so this unbinds such a stack first. That is
    all it adds: a bundle can then keep one loss whether ``backbone_kwargs`` asks for deep supervision or not.

    Example::

        >>> from monai.losses import DiceCELoss
        >>> loss = HeadsLoss(DiceCELoss(to_onehot_y=True, softmax=True))
        >>> target = torch.zeros(2, 1, 8, 8, 8)
        >>> heads = torch.randn(2, 3, 3, 8, 8, 8)  # DynUNet: main head and 2 deep-supervision heads, 3 classes
        >>> bool(loss(heads, target) > 0), bool(loss(heads[:, 0], target) > 0)
        (True, True)
    """

    def __init__(self, loss: nn.Module, weight_mode: str = "exp") -> None:
        super().__init__()
        self.supervised = DeepSupervisionLoss(loss, weight_mode=weight_mode)

    def forward(self, input: Union[torch.Tensor, List[torch.Tensor]], target: torch.Tensor) -> Any:
        if isinstance(input, torch.Tensor) and input.ndim == target.ndim + 1:
            input = list(torch.unbind(input, dim=1))
        return self.supervised(input, target)
