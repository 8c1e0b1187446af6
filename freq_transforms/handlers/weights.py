"""Saving and loading a bundle's ``model.pt``: ignite's ``Checkpoint`` and ``DiskSaver`` with what those do not do
(the recipe record in the file, no moment without a ``model.pt``, the settings check on load), and setting the
previous weights aside before a fresh run."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from ..networks.checkpoint import load_weights
from ..recipe import unwrap, weights_with_record
from .distributed import is_main_process

__all__ = ["set_aside_previous_weights", "OverwritingDiskSaver", "RecordedWeights", "BestModelSaver",
           "SaveIfNeverValidated", "WeightsLoader"]

logger = logging.getLogger(__name__)

EXPORTS = ("model.ts", "model.onnx")  # files made from model.pt: stale once it is retrained


def set_aside_previous_weights(ckpt_dir: str, resume: bool = True) -> Optional[Path]:
    """Before a training run starts afresh, keep ``model.pt`` of ``ckpt_dir`` in ``ckpt_dir/previous/<time>/``
    (a copy: the file stays where it is until the run saves its own, so MONAI Label can fine-tune from it)
    and move there what would no longer match the new weights: the exports ``model.ts`` and ``model.onnx``, and
    the ensemble members ``fold*/`` (an ensemble that ``--ensemble true`` would otherwise average in place of the
    new model); log one line saying where.

    Nothing happens when the run resumes (``resume`` and ``resume.pt`` present: ``model.pt`` is this run's)
    or on ranks other than 0. Returns the folder the files went to, or ``None``.
    """
    ckpt = Path(ckpt_dir)
    if not is_main_process() or (resume and (ckpt / "resume.pt").is_file()):
        return None
    weights = ckpt / "model.pt"
    moved = [ckpt / name for name in EXPORTS if (ckpt / name).is_file()]
    moved += sorted(member.parent for member in ckpt.glob("fold*/model.pt"))
    if not weights.is_file() and not moved:
        return None
    dest = ckpt / "previous" / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():  # two runs in the same second
        dest = dest.with_name(dest.name + "-1")
    dest.mkdir(parents=True)
    kept = []
    if weights.is_file():
        shutil.copy2(weights, dest / weights.name)
        kept.append("model.pt copied")
    for path in moved:
        os.replace(path, dest / path.name)
    if moved:
        kept.append(f"{', '.join(p.name for p in moved)} moved")
    logger.warning(f"training starts afresh: the previous {' and '.join(kept)} to {dest}")
    return dest


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
            see :func:`freq_transforms.recipe.weights_with_record`.
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


class RecordedWeights:
    """``network``'s weights with their settings record, as an object ignite's ``Checkpoint`` saves
    (``state_dict``) and loads (``load_state_dict``, checked)."""

    def __init__(self, network: torch.nn.Module, record: Optional[Mapping[str, Any]] = None) -> None:
        self.network, self.record = network, dict(record or {})

    def state_dict(self) -> Dict[str, Any]:
        return weights_with_record(self.network, **self.record)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unwrap(self.network).load_state_dict(state)


class SaveIfNeverValidated:
    """Trainer handler: when training completes and ``saver`` never saw a validation, save the final weights;
    with ``final``, save them whatever validation said (a budget fixed in steps keeps its last model, not the best
    validation epoch).

    Without it a run with no validation data would train and then leave the old ``model.pt`` in place.
    """

    def __init__(self, saver: BestModelSaver, final: bool = False) -> None:
        self.saver, self.final = saver, bool(final)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if self.final:
            self.saver.save(f"final weights after {engine.state.iteration} steps (a fixed budget)")
        elif self.saver.best == float("-inf"):
            self.saver.save(f"final weights after epoch {engine.state.epoch}; no validation ran")


class WeightsLoader:
    """Load a bundle's ``models/model.pt`` into its network when an engine starts, or stop with one line naming
    the file and the overrides to pass.

    MONAI's ``CheckpointLoader`` loads a dict of objects (``load_dict``); this loads one network's weights with
    the settings check and the ``spatial_size`` warning of :func:`load_weights`. Call it with the engine
    (``"$@checkpointloader(@evaluator)"``) or attach it.
    """

    def __init__(self, load_path: str, network: torch.nn.Module, map_location: Any = "cpu",
                 recipe: Optional[Mapping[str, Any]] = None) -> None:
        self.load_path, self.network, self.map_location, self.recipe = load_path, network, map_location, recipe

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Optional[Engine] = None) -> None:
        record = load_weights(self.network, self.load_path, self.map_location, self.recipe)
        version = (record or {}).get("freq_transforms_version")
        logger.info(f"loaded {self.load_path}" + (f" (trained with freq_transforms {version})" if version else ""))
