"""What a run reports: per-class Dice metrics, the validation CSV, the training clock behind its ``seconds`` column,
and a way to attach one handler defined elsewhere in a config."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from ignite.engine import Engine, Events

from ..atomic import atomic_write_text
from .distributed import is_main_process

__all__ = ["class_dice_metrics", "ValidationMetricsCSV", "TrainingClock", "SharedHandler"]

logger = logging.getLogger(__name__)


class _ClassChannel:
    """``output_transform`` of a per-class metric: channel ``index`` of the one-hot ``pred`` and ``label``."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, output: Any) -> Any:
        from monai.handlers import from_engine

        preds, labels = from_engine(["pred", "label"])(output)
        keep = slice(self.index, self.index + 1)
        return [p[keep] for p in preds], [y[keep] for y in labels]


def class_dice_metrics(class_names: Sequence[str], prefix: str = "val") -> Dict[str, Any]:
    """``<prefix>_dice_<name>`` MeanDice handlers, one per foreground class, for an evaluator's
    ``additional_metrics``: a class the network never predicts shows as 0 at the first validation."""
    from monai.handlers import MeanDice

    return {f"{prefix}_dice_{name.replace(' ', '_')}": MeanDice(include_background=True, output_transform=_ClassChannel(i))
            for i, name in enumerate(class_names) if i > 0}


class ValidationMetricsCSV:
    """Evaluator handler: after each validation, one row (training epoch and every metric) in ``path``
    (rewritten atomically) and a warning for each class whose Dice is 0 (never predicted where it is).
    MONAI's evaluators run with the trainer's epoch as their own, so the rows carry the training epoch.

    Args:
        path: CSV file, e.g. ``eval/validation_metrics.csv``.
        clock: the trainer's :class:`TrainingClock`; adds ``iteration`` and ``seconds`` (of training, resumed
            pieces added up) columns, for a validation-Dice-against-time curve.
    """

    def __init__(self, path: str, clock: Optional["TrainingClock"] = None) -> None:
        self.path, self.clock = Path(path), clock
        self.rows: list = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float, torch.Tensor))
                   and torch.as_tensor(v).numel() == 1}
        for name, value in metrics.items():
            if name.startswith("val_dice_") and value == 0.0:
                logger.warning(f"{name} is 0 at epoch {epoch}: that class is not predicted where it is")
        if not is_main_process():
            return
        timing = {} if self.clock is None else {"iteration": self.clock.iteration, "seconds": round(self.clock.seconds, 1)}
        self.rows.append({"epoch": epoch, **timing, **metrics})
        first = ["epoch"] + list(timing)
        columns = first + sorted({k for row in self.rows for k in row} - set(first))
        lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in self.rows]
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def state_dict(self) -> Dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = list(state["rows"])


class TrainingClock:
    """Trainer handler: training seconds and iterations so far, added up over resumed pieces (``state_dict``
    goes into ``resume.pt``), for the ``seconds`` column of :class:`ValidationMetricsCSV`. Validation time
    counts too: it is part of what a run costs."""

    def __init__(self) -> None:
        self.before, self.iteration = 0.0, 0
        self._started: Optional[float] = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._count)

    def _start(self, engine: Engine) -> None:
        self._started, self.iteration = time.perf_counter(), int(engine.state.iteration)

    def _count(self, engine: Engine) -> None:
        self.iteration = int(engine.state.iteration)

    @property
    def seconds(self) -> float:
        return self.before + (0.0 if self._started is None else time.perf_counter() - self._started)

    def state_dict(self) -> Dict[str, Any]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.before = float(state["seconds"])
        if self._started is not None:  # loaded as the trainer starts: count this piece from now
            self._started = time.perf_counter()


class SharedHandler:
    """Attach a handler defined elsewhere in the config (``{"_target_": "freq_transforms.handlers.SharedHandler",
    "handler": "@training_clock"}``): MONAI's ``ConfigWorkflow`` property check and MONAI Label read every entry
    of ``train#handlers`` as a component with a ``_target_``, so a bare ``"@training_clock"`` entry breaks them."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def attach(self, engine: Engine) -> None:
        self.handler.attach(engine)
