"""Ignite handlers for the bundles: atomic best-model saving and kill-safe resumption."""

from __future__ import annotations

import gc
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler

from .data import publish
from .networks import RECORD_KEY, _json_like, describe_mismatch, recorded_settings

__all__ = ["atomic_torch_save", "is_main_process", "local_rank", "distributed_device", "unwrap", "recorded_settings",
           "weights_with_record",
           "load_weights", "CheckpointLoader", "BestModelSaver",
           "class_dice_metrics", "ValidationMetricsCSV", "set_aside_previous_weights", "RandomStates",
           "ResumeCheckpoint",
           "PeriodicValidation", "SaveIfNeverValidated", "leave_process_group"]

logger = logging.getLogger(__name__)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same folder, then rename: a kill never leaves a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        publish(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


def local_rank() -> int:
    """This process's GPU index on its node: ``LOCAL_RANK`` as set by torchrun (0 when unset). The global
    rank names a GPU only on the first node."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def distributed_device() -> torch.device:
    """The device of this rank: ``cuda:<LOCAL_RANK>`` where CUDA is available, else the CPU."""
    return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")


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


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel, so weights load without ``module.``."""
    return network.module if isinstance(network, (torch.nn.parallel.DistributedDataParallel,
                                                  torch.nn.DataParallel)) else network


def weights_with_record(network: torch.nn.Module, **extra: Any) -> Dict[str, Any]:
    """``network``'s ``state_dict`` with the settings that built it (``network.config``, plus ``extra`` such as
    ``spatial_size``) recorded in the state dict's own metadata. The file stays a plain state dict: MONAI's
    loaders, MONAI Label and ``load_state_dict`` read it as before and ignore the record."""
    target = unwrap(network)
    state = target.state_dict()
    config = getattr(target, "config", None)
    if isinstance(config, dict):
        state._metadata.setdefault("", {})[RECORD_KEY] = _json_like({**config, **extra})
    return state


def load_weights(network: torch.nn.Module, path: str | os.PathLike, map_location: Any = "cpu",
                 spatial_size: Optional[Sequence[int]] = None) -> Optional[Dict[str, Any]]:
    """Load a ``state_dict`` file into ``network`` (DDP unwrapped), or stop with one line naming the file and
    the overrides to pass when it was trained with other settings: read from the settings the file records
    (:func:`weights_with_record`), or for older files inferred from its layer shapes (``arch`` / ``fusion`` /
    ``fuse``). A different ``spatial_size`` than the one trained at is logged as a warning. Returns the record."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: train first or point bundle_root at a bundle with weights")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    target = unwrap(network)
    record = recorded_settings(state)
    problem = describe_mismatch(target, state)
    if problem is not None:
        message = f"checkpoint {path} does not fit the configured network: {problem}"
        logger.error(message)
        raise ValueError(message)
    target.load_state_dict(state)
    trained_at = (record or {}).get("spatial_size")
    if trained_at and spatial_size is not None and list(trained_at) != list(spatial_size):
        logger.warning(f"checkpoint {path} was trained at spatial_size {list(trained_at)}, the config says "
                       f"{list(spatial_size)}: pass --spatial_size \"{list(trained_at)}\" to match it")
    return record


class CheckpointLoader:
    """MONAI's ``CheckpointLoader`` for a bundle's ``models/model.pt`` with a one-line mismatch error.

    Call it with the engine (``"$@checkpointloader(@evaluator)"``) or attach it (loads when the engine
    starts). A checkpoint trained with another ``arch``/``fusion``/``fuse`` stops with the override to pass.
    """

    def __init__(self, load_path: str, network: torch.nn.Module, map_location: Any = "cpu",
                 spatial_size: Optional[Sequence[int]] = None) -> None:
        self.load_path, self.network, self.map_location = load_path, network, map_location
        self.spatial_size = spatial_size

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Optional[Engine] = None) -> None:
        record = load_weights(self.network, self.load_path, self.map_location, self.spatial_size)
        version = (record or {}).get("freq_transforms_version")
        logger.info(f"loaded {self.load_path}" + (f" (trained with freq_transforms {version})" if version else ""))


def set_aside_previous_weights(ckpt_dir: str, resume: bool = True) -> Optional[Path]:
    """Before a training run starts afresh, keep ``model.pt`` of ``ckpt_dir`` in ``ckpt_dir/previous/<time>/``
    (a copy: the file stays where it is until the run saves its own, so MONAI Label can fine-tune from it)
    and move ``model.ts`` there (an export would no longer match the weights); log one line saying where.

    Nothing happens when the run resumes (``resume`` and ``resume.pt`` present: ``model.pt`` is this run's)
    or on ranks other than 0. Returns the folder the files went to, or ``None``.
    """
    ckpt = Path(ckpt_dir)
    if not is_main_process() or (resume and (ckpt / "resume.pt").is_file()):
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
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
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
        self.rows.append({"epoch": epoch, **metrics})
        columns = ["epoch"] + sorted({k for row in self.rows for k in row} - {"epoch"})
        lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in self.rows]
        from .data import atomic_write_text

        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def state_dict(self) -> Dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = list(state["rows"])


class BestModelSaver:
    """Save the network's ``state_dict`` atomically whenever the evaluator's key metric improves.

    Attach to the validation evaluator (``val_handlers``). ``state_dict``/``load_state_dict`` carry the
    best value so that a resumed run does not overwrite a better model with a worse one.

    Args:
        save_dir: folder of the model file.
        network: the trained network (DDP is unwrapped).
        metric_name: the evaluator metric to maximise (default: its key metric).
        filename: model file name (``model.pt``, what inference.json loads).
        record: settings to keep in the file beside the network's own (e.g. ``spatial_size``, bundle version);
            see :func:`weights_with_record`.
    """

    def __init__(self, save_dir: str, network: torch.nn.Module, metric_name: Optional[str] = None,
                 filename: str = "model.pt", record: Optional[Mapping[str, Any]] = None) -> None:
        self.path = Path(save_dir) / filename
        self.network = network
        self.record = dict(record or {})
        self.metric_name = metric_name
        self.best = float("-inf")
        self.best_epoch = -1

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        name = self.metric_name or getattr(engine.state, "key_metric_name", None)
        if name is None or name not in engine.state.metrics:
            raise KeyError(f"BestModelSaver: metric {name!r} not computed by the evaluator")
        value = float(engine.state.metrics[name])
        epoch = self._trainer_epoch(engine)
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            self.save(f"{name} {value:.4f} at epoch {epoch}")

    def save(self, why: str) -> None:
        """Write the network's weights to ``path`` now (main process only)."""
        if is_main_process():
            atomic_torch_save(weights_with_record(self.network, **self.record), self.path)
            logger.info(f"saved {self.path} ({why})")

    @staticmethod
    def _trainer_epoch(engine: Engine) -> int:
        return int(getattr(engine.state, "epoch", -1))

    def state_dict(self) -> Dict[str, float]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])


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


class ResumeCheckpoint:
    """Resume training after a crash or kill: the same command continues where the last epoch ended.

    After every trainer epoch it writes ``path`` atomically with each object's ``state_dict`` (model,
    optimizer, trainer engine, best-model tracker, ...); when the trainer starts and ``path`` exists, it
    loads them back (``weights_only=True``, ``map_location``) and training continues from the next epoch.
    When training completes the file is kept renamed to ``<name>.done`` so a later run starts afresh.

    Args:
        path: resume file, e.g. ``models/resume.pt``.
        save_dict: name -> object with ``state_dict``/``load_state_dict`` (the trainer engine included).
        map_location: device for loading (``cpu`` for a GPU checkpoint on a CPU machine).
        enabled: ``False`` disables loading (saving still happens).
    """

    def __init__(self, path: str, save_dict: Mapping[str, Any], map_location: Any = "cpu", enabled: bool = True) -> None:
        self.path = Path(path)
        self.save_dict = dict(save_dict)
        self.map_location = map_location
        self.enabled = enabled

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)
        engine.add_event_handler(Events.COMPLETED, self.complete)

    def _state(self) -> Dict[str, Any]:
        return {name: unwrap(obj).state_dict() if isinstance(obj, torch.nn.Module) else obj.state_dict()
                for name, obj in self.save_dict.items()}

    def save(self, engine: Engine) -> None:
        if is_main_process():
            atomic_torch_save(self._state(), self.path)

    def load(self, engine: Engine) -> None:
        if not (self.enabled and self.path.is_file()):
            return
        try:
            state = torch.load(self.path, map_location=self.map_location, weights_only=True)
        except Exception as err:
            raise RuntimeError(f"resume file {self.path} could not be loaded ({err}); delete it to start afresh") from None
        max_epochs = engine.state.max_epochs
        for name, obj in self.save_dict.items():
            if name not in state:
                raise KeyError(f"resume file {self.path} has no {name!r} entry; delete it to start afresh")
            target = unwrap(obj) if isinstance(obj, torch.nn.Module) else obj
            target.load_state_dict(state[name])
        if engine.state.epoch > max_epochs:
            raise ValueError(f"resume file {self.path} is at epoch {engine.state.epoch}, beyond epochs={max_epochs}")
        engine.state.max_epochs = max_epochs
        logger.warning(f"resumed from {self.path} at epoch {engine.state.epoch} of {max_epochs}")

    def complete(self, engine: Engine) -> None:
        if is_main_process() and self.path.is_file():
            os.replace(self.path, self.path.with_suffix(self.path.suffix + ".done"))


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
        if self.saver.best_epoch < 0:
            self.saver.save(f"final weights after epoch {engine.state.epoch}; no validation ran")
