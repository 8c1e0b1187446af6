"""When to validate and what learning rate to use: epoch-level schedules that follow MONAI Label's overrides and
survive a resume."""

from __future__ import annotations

import logging
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler

__all__ = ["LR_SCHEDULES", "PeriodicValidation", "PolyLearningRate"]

LR_SCHEDULES = ("constant", "poly")  # PolyLearningRate's power 0 and 0.9

logger = logging.getLogger(__name__)


class PeriodicValidation(ValidationHandler):
    """``ValidationHandler`` that validates every ``interval`` epochs *and* after the last epoch.

    A run shorter than the interval (MONAI Label's ``max_epochs`` 1, say) still validates, so the best
    model is saved; an empty validation set (MONAI Label's ``val_split`` 0) is skipped with a warning.
    """

    def __init__(self, interval: int, validator: Any = None) -> None:
        super().__init__(interval, validator, epoch_level=True)

    def attach(self, engine: Engine) -> None:
        def due(trainer: Engine, epoch: int) -> bool:
            return epoch % self.interval == 0 or epoch == trainer.state.max_epochs
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=due), self)

    def __call__(self, engine: Engine) -> None:
        loader = getattr(self.validator, "data_loader", None)
        if loader is not None and len(loader) == 0:
            logger.warning("validation skipped: the validation set is empty")
            return
        super().__call__(engine)


class PolyLearningRate:
    """Trainer handler: at the start of each epoch set the learning rate to ``base * (1 - e / E) ** power``
    (nnU-Net's "poly" schedule; ``e`` epochs done, ``E`` the trainer's ``max_epochs``); ``power`` 0 keeps it
    constant.

    ``torch.optim.lr_scheduler.PolynomialLR`` with MONAI's ``LrScheduleHandler`` fixes ``E`` when built and
    keeps state; this reads ``E`` from the engine, so MONAI Label's ``max_epochs`` override is honoured, and
    the rate follows from the epoch alone, so a resumed run continues the same schedule.

    Example::

        >>> PolyLearningRate.factor(epochs_done=50, max_epochs=100, power=0.9)  # doctest: +ELLIPSIS
        0.535...
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, power: float = 0.9) -> None:
        self.optimizer, self.base_lr, self.power = optimizer, float(base_lr), float(power)

    @staticmethod
    def factor(epochs_done: int, max_epochs: int, power: float) -> float:
        return (1.0 - min(epochs_done, max_epochs) / max(max_epochs, 1)) ** power if power else 1.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        lr = self.base_lr * self.factor(engine.state.epoch - 1, engine.state.max_epochs, self.power)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
