"""Bit-exact resume: every random state and every training object in one checkpoint, saved each epoch."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from .distributed import is_main_process
from .weights import OverwritingDiskSaver, set_aside_previous_weights

__all__ = ["RandomStates", "ResumeCheckpoint"]

logger = logging.getLogger(__name__)


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
    random states, ...) to ``path`` after every trainer epoch (atomic, rank 0 only); attaching it to a trainer that
    will start afresh sets the folder's previous weights aside; when the trainer starts and
    ``path`` exists, ``Checkpoint.load_objects`` puts them back and training continues from the next epoch. When
    training completes the file is deleted, so a later run starts afresh.

    Bit-exact only when every epoch starts a fresh pass of the data loader: ignite's ``Engine`` carries a loader
    iterator across epochs when ``epoch_length`` is not its length, and a resumed run cannot rebuild one half
    consumed. The bundles' ``train#sampler`` (a ``RandomSampler`` of ``epoch_length * batch_size`` draws) makes
    the lengths equal; ignite's ``DeterministicEngine`` would do it too, but MONAI's trainers are plain engines.

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
        """Load at start, save after every epoch, delete when complete; a run that will not resume first sets
        the previous weights of ``path``'s folder aside (:func:`set_aside_previous_weights`)."""
        set_aside_previous_weights(str(self.path.parent), self.enabled)
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
        if is_main_process():
            self.path.unlink(missing_ok=True)
