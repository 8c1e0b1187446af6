"""Ignite handlers for the bundles: best-model and resume checkpoints (ignite's ``Checkpoint`` and ``DiskSaver``)
with what those do not do (the settings record in ``model.pt``, bit-exact resume with every random state, no moment
without a ``model.pt``), validation schedule and per-class metrics."""

from __future__ import annotations

import gc
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import ValidationHandler

from .checkpoint import RecordedWeights, WeightsLoader, load_weights, recorded_settings, unwrap, weights_with_record

__all__ = ["distributed_device", "unwrap", "recorded_settings", "weights_with_record", "load_weights", "WeightsLoader",
           "OverwritingDiskSaver", "BestModelSaver", "class_dice_metrics", "ValidationMetricsCSV",
           "set_aside_previous_weights", "RandomStates", "ResumeCheckpoint", "PeriodicValidation",
           "SaveIfNeverValidated", "leave_process_group", "PolyLearningRate", "TrainingClock", "SharedHandler"]

logger = logging.getLogger(__name__)


def distributed_device() -> torch.device:
    """The device of this rank: ``cuda:<LOCAL_RANK>`` where CUDA is available, else the CPU.

    ``ignite.distributed.device()`` answers the CPU for a gloo group even where CUDA is available, and its local
    rank is known only once a process group exists; torchrun sets ``LOCAL_RANK`` before (the global rank names a
    GPU only on the first node).
    """
    rank = idist.get_local_rank() if idist.get_world_size() > 1 else int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device(f"cuda:{rank}") if torch.cuda.is_available() else torch.device("cpu")


def _is_main_process() -> bool:
    return idist.get_rank() == 0


def leave_process_group() -> None:
    """End a distributed run: wait for every rank at a barrier, then destroy the default process group.

    Without the barrier a rank that finishes first (rank > 0 skips logging and saving) shuts its gloo/NCCL
    connections down while rank 0 is still working. The ``gc.collect()`` releases communication work objects
    kept alive by reference cycles while the interpreter is still intact, not during its teardown.
    No-op when no process group is initialised.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    gc.collect()


def set_aside_previous_weights(ckpt_dir: str, resume: bool = True) -> Optional[Path]:
    """Before a training run starts afresh, keep ``model.pt`` of ``ckpt_dir`` in ``ckpt_dir/previous/<time>/``
    (a copy: the file stays where it is until the run saves its own, so MONAI Label can fine-tune from it)
    and move ``model.ts`` there (an export would no longer match the weights); log one line saying where.

    Nothing happens when the run resumes (``resume`` and ``resume.pt`` present: ``model.pt`` is this run's)
    or on ranks other than 0. Returns the folder the files went to, or ``None``.
    """
    ckpt = Path(ckpt_dir)
    if not _is_main_process() or (resume and (ckpt / "resume.pt").is_file()):
        return None
    weights, export = ckpt / "model.pt", ckpt / "model.ts"
    if not weights.is_file() and not export.is_file():
        return None
    dest = ckpt / "previous" / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():  # two runs in the same second
        dest = dest.with_name(dest.name + "-1")
    dest.mkdir(parents=True)
    kept = []
    if weights.is_file():
        shutil.copy2(weights, dest / weights.name)
        kept.append("model.pt copied")
    if export.is_file():
        os.replace(export, dest / export.name)
        kept.append("model.ts moved")
    logger.warning(f"training starts afresh: the previous {' and '.join(kept)} to {dest}")
    return dest


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
        if not _is_main_process():
            return
        timing = {} if self.clock is None else {"iteration": self.clock.iteration, "seconds": round(self.clock.seconds, 1)}
        self.rows.append({"epoch": epoch, **timing, **metrics})
        first = ["epoch"] + list(timing)
        columns = first + sorted({k for row in self.rows for k in row} - set(first))
        lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in self.rows]
        from .atomic import atomic_write_text

        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def state_dict(self) -> Dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = list(state["rows"])


class OverwritingDiskSaver(DiskSaver):
    """ignite's ``DiskSaver`` (atomic, rank 0 only) under one fixed file name that it overwrites in place.

    ignite's ``Checkpoint`` removes the file it is about to replace before saving the new one; under a fixed
    name (``model.pt``, what inference loads) that would leave a moment with no weights at all. Here the old file
    stays until the atomic rename replaces it.
    """

    def __init__(self, dirname: str, filename: str) -> None:
        super().__init__(dirname, atomic=True, create_dir=True, require_empty=False)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Optional[Mapping] = None) -> None:
        super().__call__(checkpoint, self.filename, metadata)

    def remove(self, filename: str) -> None:
        """Nothing to remove: the next save replaces the file atomically."""


class BestModelSaver(Checkpoint):
    """ignite ``Checkpoint`` of the network's weights (with their settings record) to ``save_dir/filename``
    whenever the evaluator's key metric improves; its ``state_dict`` carries the best score, so a resumed run
    does not overwrite a better model with a worse one.

    Attach to the validation evaluator (``val_handlers``).

    Args:
        save_dir: folder of the model file.
        network: the trained network (DDP is unwrapped).
        metric_name: the evaluator metric to maximise (default: its key metric).
        filename: model file name (``model.pt``, what inference.json loads).
        record: settings to keep in the file beside the network's own (e.g. ``spatial_size``, bundle version);
            see :func:`freq_transforms.checkpoint.weights_with_record`.
    """

    def __init__(self, save_dir: str, network: torch.nn.Module, metric_name: Optional[str] = None,
                 filename: str = "model.pt", record: Optional[Mapping[str, Any]] = None) -> None:
        self.path = Path(save_dir) / filename
        self.metric_name = metric_name
        self.weights = RecordedWeights(network, record)
        super().__init__({"model": self.weights}, OverwritingDiskSaver(save_dir, filename),
                         score_function=self._score, n_saved=1, filename_pattern=filename)

    def _score(self, engine: Engine) -> float:
        name = self.metric_name or getattr(engine.state, "key_metric_name", None)
        if name is None or name not in engine.state.metrics:
            raise KeyError(f"BestModelSaver: metric {name!r} not computed by the evaluator")
        return float(engine.state.metrics[name])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        before = self.best
        super().__call__(engine)
        if self.best != before:
            logger.info(f"saved {self.path} (score {self.best:.4f} at epoch {engine.state.epoch})")

    @property
    def best(self) -> float:
        """The best score saved so far (``-inf`` before the first)."""
        return float(self._saved[-1].priority) if self._saved else float("-inf")

    def save(self, why: str) -> None:
        """Write the network's weights to ``path`` now, whatever the score (rank 0 only)."""
        self.save_handler(self.weights.state_dict(), self.path.name)
        logger.info(f"saved {self.path} ({why})")


def _plain(value: Any) -> Any:
    """NumPy arrays and tuples as lists, so the state loads with ``torch.load(weights_only=True)``."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _numpy_state(state: Sequence[Any]) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)


class RandomStates:
    """The random number generators a training run draws from, as one ``state_dict``: Python's, NumPy's and
    torch's global ones (CPU and CUDA; the data loader's shuffle and its workers' seeds come from torch's)
    and each random transform's own (MONAI ``Randomizable.R``). In a resume checkpoint they make a killed
    and resumed run end with the same weights as an uninterrupted one.

    Args:
        transforms: the training transforms (a ``Compose``, nested ones included), or ``None``.
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms: list = []
        self._collect(transforms, set())

    def _collect(self, obj: Any, seen: set) -> None:
        """Every ``Randomizable`` in ``obj``, nested ones too (``RandAffined`` keeps two more inside), found
        the way MONAI's ``set_rnd`` walks a transform."""
        from monai.transforms import Randomizable, Transform

        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            for item in obj:
                self._collect(item, seen)
            return
        if isinstance(obj, Randomizable):
            self.transforms.append(obj)
        if isinstance(obj, (Transform, Randomizable)):
            for value in vars(obj).values():
                if isinstance(value, (Transform, Randomizable, list, tuple)):
                    self._collect(value, seen)

    def state_dict(self) -> Dict[str, Any]:
        return {"python": _plain(random.getstate()), "numpy": _plain(np.random.get_state()),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "transforms": [_plain(t.R.get_state()) for t in self.transforms]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(_numpy_state(state["numpy"]))
        torch.set_rng_state(state["torch"].cpu())
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if len(state["transforms"]) != len(self.transforms):
            raise ValueError(f"resume state has {len(state['transforms'])} random transforms, the config "
                             f"{len(self.transforms)} (augment changed?); delete the resume file to start afresh")
        for transform, saved in zip(self.transforms, state["transforms"]):
            transform.R.set_state(_numpy_state(saved))


class ResumeCheckpoint(Checkpoint):
    """Resume training after a crash or kill: the same command continues where the last epoch ended.

    ignite's ``Checkpoint`` of every object in ``save_dict`` (model, optimizer, trainer engine, best-model saver,
    random states, ...) to ``path`` after every trainer epoch (atomic, rank 0 only); when the trainer starts and
    ``path`` exists, ``Checkpoint.load_objects`` puts them back and training continues from the next epoch. When
    training completes the file is deleted, so a later run starts afresh.

    Args:
        path: resume file, e.g. ``models/resume.pt``.
        save_dict: name -> object with ``state_dict``/``load_state_dict`` (the trainer engine included).
        map_location: device for loading (``cpu`` for a GPU checkpoint on a CPU machine).
        enabled: ``False`` disables loading (saving still happens).
    """

    def __init__(self, path: str, save_dict: Mapping[str, Any], map_location: Any = "cpu", enabled: bool = True) -> None:
        self.path = Path(path)
        self.map_location = map_location
        self.enabled = enabled
        super().__init__(dict(save_dict), OverwritingDiskSaver(str(self.path.parent), self.path.name), n_saved=1,
                         filename_pattern=self.path.name)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.complete)

    def load(self, engine: Engine) -> None:
        if not (self.enabled and self.path.is_file()):
            return
        try:
            state = torch.load(self.path, map_location=self.map_location, weights_only=True)
        except Exception as err:
            raise RuntimeError(f"resume file {self.path} could not be loaded ({err}); delete it to start afresh") from None
        missing = [name for name in self.to_save if name not in state]
        if missing:
            raise KeyError(f"resume file {self.path} has no {missing[0]!r} entry; delete it to start afresh")
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(self.to_save, state)
        if engine.state.epoch > max_epochs:
            raise ValueError(f"resume file {self.path} is at epoch {engine.state.epoch}, beyond epochs={max_epochs}")
        engine.state.max_epochs = max_epochs
        logger.warning(f"resumed from {self.path} at epoch {engine.state.epoch} of {max_epochs}")

    def complete(self, engine: Engine) -> None:
        if _is_main_process():
            self.path.unlink(missing_ok=True)


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


class SaveIfNeverValidated:
    """Trainer handler: when training completes and ``saver`` never saw a validation, save the final weights.

    Without it a run with no validation data would train and then leave the old ``model.pt`` in place.
    """

    def __init__(self, saver: BestModelSaver) -> None:
        self.saver = saver

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if self.saver.best == float("-inf"):
            self.saver.save(f"final weights after epoch {engine.state.epoch}; no validation ran")


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
